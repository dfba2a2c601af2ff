//! `proto::framing::LengthPrefixed` and `proto::ftp::mini::parse_header`: the mini
//! file protocol's framing and headers.
//!
//! Properties, for a stream fed in one piece, byte by byte, and split at points the
//! input chooses: the same frames (or the same error, at the same frame) in the same
//! order, equal to a reference model (4-byte signed little-endian length, then that
//! many bytes; a negative length or one over the limit is an error and ends the
//! stream); no frame over the limit; the decoder takes no byte past a complete frame.
//! `parse_header` never panics; a header it accepts, written back as JSON, parses to
//! the same header.
use readyloop::proto::framing::{FrameError, LengthPrefixed};
use readyloop::proto::ftp::mini::parse_header;

use super::Input;

#[derive(Debug, PartialEq, Eq)]
enum Ev {
    Frame(Vec<u8>),
    Err(FrameError),
}

fn feed(d: &mut LengthPrefixed, mut chunk: &[u8], max: usize, out: &mut Vec<Ev>) -> bool {
    while !chunk.is_empty() {
        let before = chunk.len();
        match d.decode(&mut chunk) {
            Ok(Some(f)) => {
                assert!(f.len() <= max);
                out.push(Ev::Frame(f));
            }
            Ok(None) => assert!(chunk.is_empty(), "Ok(None) with input left"),
            Err(e) => {
                out.push(Ev::Err(e));
                return false;
            }
        }
        assert!(chunk.len() < before || before == 0, "no progress");
    }
    true
}

fn model(stream: &[u8], max: usize) -> Vec<Ev> {
    let mut out = Vec::new();
    let mut s = stream;
    while s.len() >= 4 {
        let n = i32::from_le_bytes([s[0], s[1], s[2], s[3]]);
        let Ok(len) = usize::try_from(n) else {
            out.push(Ev::Err(FrameError::Negative(n)));
            return out;
        };
        if len > max {
            out.push(Ev::Err(FrameError::TooLong(len)));
            return out;
        }
        if s.len() < 4 + len {
            return out;
        }
        out.push(Ev::Frame(s[4..4 + len].to_vec()));
        s = &s[4 + len..];
    }
    out
}

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let max = usize::from(input.u16());
    let ncuts = usize::from(input.byte() % 16);
    let cuts: Vec<usize> = (0..ncuts).map(|_| usize::from(input.u16())).collect();
    let stream = input.rest();

    let mut whole = Vec::new();
    feed(&mut LengthPrefixed::new(max), stream, max, &mut whole);
    assert_eq!(whole, model(stream, max), "one piece vs the model");

    let mut bytewise = Vec::new();
    let mut d = LengthPrefixed::new(max);
    for b in stream.chunks(1) {
        if !feed(&mut d, b, max, &mut bytewise) {
            break;
        }
    }
    assert_eq!(bytewise, whole, "byte by byte vs one piece");

    let mut points: Vec<usize> = cuts.iter().map(|&c| c % (stream.len() + 1)).collect();
    points.sort_unstable();
    let mut split = Vec::new();
    let mut d = LengthPrefixed::new(max);
    let mut at = 0;
    for p in points.into_iter().chain([stream.len()]) {
        if !feed(&mut d, &stream[at..p], max, &mut split) {
            break;
        }
        at = p;
    }
    assert_eq!(split, whole, "split at {cuts:?} vs one piece");

    for ev in whole.iter().chain([&Ev::Frame(stream.to_vec())]) {
        let Ev::Frame(f) = ev else { continue };
        if let Ok(h) = parse_header(f) {
            let json = serde_json::json!({
                "cmd": h.cmd, "filename": h.filename, "filesize": h.filesize, "reply": h.reply
            });
            let again = parse_header(json.to_string().as_bytes()).expect("re-parse");
            assert_eq!(again, h);
        }
    }
}
