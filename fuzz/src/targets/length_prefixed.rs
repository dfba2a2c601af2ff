//! `proto::framing::LengthPrefixed`: the mini protocol's frames (4-byte signed
//! little-endian length, then the payload), sticky packets and all.
//!
//! Properties: a stream decoded in one piece, byte by byte, and split at points the
//! input chooses gives the same frames and the same error; a frame takes exactly its
//! bytes off the input (what follows stays with the caller); a frame is never over the
//! limit; payloads the target encodes decode back to themselves.
use readyloop::proto::framing::{FrameError, LengthPrefixed};

use super::Input;

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    frames: Vec<Vec<u8>>,
    error: Option<FrameError>,
    idle: bool,
}

fn decode<'a>(max: usize, pieces: impl Iterator<Item = &'a [u8]>) -> Outcome {
    let mut d = LengthPrefixed::new(max);
    let mut frames = Vec::new();
    for p in pieces {
        let mut input = p;
        loop {
            let before = input.len();
            match d.decode(&mut input) {
                Ok(Some(f)) => {
                    assert!(f.len() <= max);
                    assert!(input.len() < before || f.is_empty());
                    frames.push(f);
                }
                Ok(None) => {
                    assert!(input.is_empty(), "input left without a frame");
                    break;
                }
                Err(e) => {
                    return Outcome {
                        frames,
                        error: Some(e),
                        idle: false,
                    }
                }
            }
            if input.is_empty() && d.is_idle() {
                break;
            }
        }
    }
    Outcome {
        frames,
        error: None,
        idle: d.is_idle(),
    }
}

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let max = usize::from(input.u16());
    let ncuts = usize::from(input.byte() % 8);
    let cuts: Vec<usize> = (0..ncuts).map(|_| usize::from(input.u16())).collect();
    let encode = input.byte() & 1 == 1;
    let raw = input.rest();
    let (stream, payloads) = if encode {
        // The rest is payloads, each prefixed by one length byte of the input.
        let mut stream = Vec::new();
        let mut payloads = Vec::new();
        let mut r = Input::new(raw);
        while !r.is_empty() {
            let n = usize::from(r.byte());
            let p = r.take(n);
            LengthPrefixed::encode(p, &mut stream).expect("encode");
            payloads.push(p.to_vec());
        }
        (stream, Some(payloads))
    } else {
        (raw.to_vec(), None)
    };
    let whole = decode(max, std::iter::once(&stream[..]));
    assert_eq!(decode(max, stream.chunks(1)), whole, "byte by byte");
    let mut points: Vec<usize> = cuts.iter().map(|&c| c % (stream.len() + 1)).collect();
    points.sort_unstable();
    let mut pieces = Vec::new();
    let mut at = 0;
    for p in points.into_iter().chain([stream.len()]) {
        pieces.push(&stream[at..p]);
        at = p;
    }
    assert_eq!(decode(max, pieces.into_iter()), whole, "split at {cuts:?}");
    if let Some(payloads) = payloads {
        if payloads.iter().all(|p| p.len() <= max) {
            assert_eq!(whole.error, None);
            assert_eq!(whole.frames, payloads);
            assert!(whole.idle);
        } else {
            let first_big = payloads.iter().position(|p| p.len() > max).unwrap();
            assert_eq!(whole.frames, payloads[..first_big]);
            assert_eq!(
                whole.error,
                Some(FrameError::TooLong(payloads[first_big].len()))
            );
        }
    }
}
