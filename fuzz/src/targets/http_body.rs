//! `proto::http::parser::BodyDecoder`: `Content-Length` and chunked request bodies.
//!
//! Properties: the input decoded in one piece, byte by byte, and split at points the
//! input chooses gives the same body, the same bytes used and the same outcome (done,
//! waiting, or the same error status); the decoded body never passes the limit; a
//! length body is exactly the first `n` bytes; and a body chunk-encoded by the target
//! (chunk sizes chosen by the input, with extensions and trailers) decodes back to
//! itself, in any split.
use readyloop::proto::http::parser::{BodyDecoder, BodyFraming};

use super::Input;

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    body: Vec<u8>,
    used: usize,
    done: bool,
    error: Option<u16>,
}

/// Feeds `pieces` in order, as a connection does: stops at the first error, and at
/// completion (the rest is the next request's).
fn decode<'a>(framing: BodyFraming, max: u64, pieces: impl Iterator<Item = &'a [u8]>) -> Outcome {
    let mut d = BodyDecoder::new(framing, max);
    let mut body = Vec::new();
    let mut used = 0;
    for p in pieces {
        if d.is_done() {
            break;
        }
        match d.feed(p, &mut body) {
            Ok(n) => {
                assert!(n <= p.len());
                assert!(
                    n == p.len() || d.is_done(),
                    "input left over before the end"
                );
                used += n;
            }
            Err(e) => {
                return Outcome {
                    body,
                    used,
                    done: false,
                    error: Some(e.status),
                }
            }
        }
        assert_eq!(d.total(), body.len() as u64);
        assert!(
            d.total() <= max,
            "body of {} over the limit {max}",
            d.total()
        );
    }
    Outcome {
        body,
        used,
        done: d.is_done(),
        error: None,
    }
}

fn splits(stream: &[u8], cuts: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut points: Vec<usize> = cuts.iter().map(|&c| c % (stream.len() + 1)).collect();
    points.sort_unstable();
    let mut out = Vec::new();
    let mut at = 0;
    for p in points.into_iter().chain([stream.len()]) {
        out.push(at..p);
        at = p;
    }
    out
}

fn check_splits(framing: BodyFraming, max: u64, stream: &[u8], cuts: &[usize]) -> Outcome {
    let whole = decode(framing, max, std::iter::once(stream));
    let bytewise = decode(framing, max, stream.chunks(1));
    // An error's partial body may differ (a piece is decoded up to the bad byte, or
    // not at all): compare the outcome, and the body only when there is no error.
    let same = |a: &Outcome, b: &Outcome, what: &str| {
        assert_eq!(a.error, b.error, "{what}: error");
        if a.error.is_none() {
            assert_eq!(a, b, "{what}");
        }
    };
    same(&bytewise, &whole, "byte by byte vs one piece");
    let ranges = splits(stream, cuts);
    let split = decode(framing, max, ranges.into_iter().map(|r| &stream[r]));
    same(&split, &whole, "split vs one piece");
    whole
}

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.byte();
    let max = u64::from(input.u16());
    let ncuts = usize::from(input.byte() % 8);
    let cuts: Vec<usize> = (0..ncuts).map(|_| usize::from(input.u16())).collect();
    match mode % 3 {
        0 => {
            // Raw chunked input.
            let stream = input.rest();
            let o = check_splits(BodyFraming::Chunked, max, stream, &cuts);
            if o.done {
                assert!(o.used <= stream.len());
            }
        }
        1 => {
            // Content-Length.
            let len = u64::from(input.u16());
            let stream = input.rest();
            let framing = if len == 0 {
                BodyFraming::None
            } else {
                BodyFraming::Length(len)
            };
            let o = check_splits(framing, u64::MAX, stream, &cuts);
            let n = (len as usize).min(stream.len());
            assert_eq!(o.error, None);
            assert_eq!(o.body, &stream[..n]);
            assert_eq!(o.used, n);
            assert_eq!(o.done, n as u64 == len);
        }
        _ => {
            // A body the target encodes: sizes from the input, then the body bytes.
            let nchunks = usize::from(input.byte() % 8);
            let sizes: Vec<usize> = (0..nchunks).map(|_| usize::from(input.byte())).collect();
            let style = input.byte();
            let body = input.rest();
            let mut wire = Vec::new();
            let mut at = 0;
            let eol: &[u8] = if style & 1 == 1 { b"\n" } else { b"\r\n" };
            for (i, &s) in sizes.iter().enumerate() {
                let s = s.min(body.len() - at);
                if s == 0 {
                    continue;
                }
                if style & 2 == 2 {
                    wire.extend_from_slice(format!("{s:X}").as_bytes());
                } else {
                    wire.extend_from_slice(format!("{s:x}").as_bytes());
                }
                if style & 4 == 4 && i % 2 == 0 {
                    wire.extend_from_slice(b" ;name=\"v\"");
                }
                wire.extend_from_slice(eol);
                wire.extend_from_slice(&body[at..at + s]);
                wire.extend_from_slice(eol);
                at += s;
            }
            if at < body.len() {
                wire.extend_from_slice(format!("{:x}", body.len() - at).as_bytes());
                wire.extend_from_slice(eol);
                wire.extend_from_slice(&body[at..]);
                wire.extend_from_slice(eol);
            }
            wire.extend_from_slice(b"0");
            wire.extend_from_slice(eol);
            if style & 8 == 8 {
                wire.extend_from_slice(b"X-Trailer: t");
                wire.extend_from_slice(eol);
            }
            wire.extend_from_slice(eol);
            let next = wire.len();
            wire.extend_from_slice(b"GET / HTTP/1.1\r\n");
            let o = check_splits(BodyFraming::Chunked, u64::MAX, &wire, &cuts);
            assert_eq!(o.error, None, "{:?}", String::from_utf8_lossy(&wire));
            assert!(o.done);
            assert_eq!(o.body, body);
            assert_eq!(o.used, next, "the next request's bytes were taken");
            // Over a limit below the body's size: 413, never more than the limit.
            if !body.is_empty() {
                let o = decode(
                    BodyFraming::Chunked,
                    body.len() as u64 - 1,
                    std::iter::once(&wire[..]),
                );
                assert_eq!(o.error, Some(413));
            }
        }
    }
}
