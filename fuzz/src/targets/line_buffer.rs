//! `proto::framing::LineBuffer`: the line framing of the chat front ends.
//!
//! Properties, for a stream fed in one piece, byte by byte, and split at points the
//! input chooses, pushed (`push`) or pulled (`feed` + `next_line`): the same events (lines and overflows) in the same order, equal to a
//! reference model (split at `\n`, strip one `\r`, too long is `TooLong`); no line
//! holds `\n` or exceeds the limit; the bytes held of a partial line stay bounded.
use readyloop::proto::framing::{Line, LineBuffer};

use super::Input;

#[derive(Debug, PartialEq, Eq, Clone)]
enum Ev {
    Line(Vec<u8>),
    TooLong,
}

fn feed(lb: &mut LineBuffer, chunk: &[u8], max: usize, out: &mut Vec<Ev>) {
    lb.push(chunk, |l| {
        out.push(match l {
            Line::Line(b) => {
                assert!(b.len() <= max, "a line longer than the limit");
                assert!(!b.contains(&b'\n'), "a line holding a newline");
                Ev::Line(b.to_vec())
            }
            Line::TooLong => Ev::TooLong,
        });
        true
    });
    assert!(
        lb.pending() <= max + 1,
        "pending {} > max + 1 = {}",
        lb.pending(),
        max + 1
    );
}

/// The model: complete lines of the whole stream; a line (without `\r\n` or `\n`) over
/// `max` is one `TooLong`.
fn model(stream: &[u8], max: usize) -> Vec<Ev> {
    let mut out = Vec::new();
    let mut parts: Vec<&[u8]> = stream.split(|&b| b == b'\n').collect();
    let last = parts.pop().unwrap_or_default();
    for p in parts {
        let p = p.strip_suffix(b"\r").unwrap_or(p);
        out.push(if p.len() > max {
            Ev::TooLong
        } else {
            Ev::Line(p.to_vec())
        });
    }
    // An incomplete last line is reported as too long as soon as it cannot fit.
    if last.len() > max + 1 {
        out.push(Ev::TooLong);
    }
    out
}

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let max = usize::from(input.byte() % 64);
    let ncuts = usize::from(input.byte() % 16);
    let cuts: Vec<usize> = (0..ncuts).map(|_| usize::from(input.u16())).collect();
    let stream = input.rest();

    let mut whole = Vec::new();
    feed(&mut LineBuffer::new(max), stream, max, &mut whole);
    assert_eq!(whole, model(stream, max), "one piece vs the model");

    let mut bytewise = Vec::new();
    let mut lb = LineBuffer::new(max);
    for b in stream.chunks(1) {
        feed(&mut lb, b, max, &mut bytewise);
    }
    assert_eq!(bytewise, whole, "byte by byte vs one piece");

    let mut points: Vec<usize> = cuts.iter().map(|&c| c % (stream.len() + 1)).collect();
    points.sort_unstable();
    let mut split = Vec::new();
    let mut lb = LineBuffer::new(max);
    let mut at = 0;
    for p in points.into_iter().chain([stream.len()]) {
        feed(&mut lb, &stream[at..p], max, &mut split);
        at = p;
    }
    assert_eq!(split, whole, "split at {cuts:?} vs one piece");

    // Pull style (`feed`, then `next_line` until `None`) in the same pieces.
    let mut pulled = Vec::new();
    let mut lb = LineBuffer::new(max);
    let mut at = 0;
    for p in points_of(&cuts, stream.len()) {
        lb.feed(&stream[at..p]);
        at = p;
        while let Some(l) = lb.next_line() {
            pulled.push(match l {
                Line::Line(b) => Ev::Line(b.to_vec()),
                Line::TooLong => Ev::TooLong,
            });
        }
        assert!(lb.pending() <= max + 1, "pull: pending {}", lb.pending());
    }
    assert_eq!(pulled, whole, "pull style vs push style");
}

fn points_of(cuts: &[usize], len: usize) -> Vec<usize> {
    let mut points: Vec<usize> = cuts.iter().map(|&c| c % (len + 1)).collect();
    points.sort_unstable();
    points.push(len);
    points
}
