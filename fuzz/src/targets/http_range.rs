//! `proto::http::files::parse_range`: the `Range` header.
//!
//! Properties: never a panic (the value is whatever bytes the client sent); a single
//! range lies inside the representation (`start <= end < len`); and the result equals
//! a reference model written over bytes (RFC 9110 14.1.2 syntax, one range, the
//! documented fallbacks).
use readyloop::proto::http::files::{parse_range, RangeSpec};

use super::Input;

/// Whitespace around the pieces: `u8::is_ascii_whitespace` (no vertical tab).
fn ws(b: &u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0c | b'\r' | b' ')
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !ws(first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !ws(last) {
            break;
        }
        s = rest;
    }
    s
}

fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

fn model(v: &[u8], len: u64) -> RangeSpec {
    let v = trim(v);
    if v.len() < 6 || !v[..6].eq_ignore_ascii_case(b"bytes=") {
        return RangeSpec::Full;
    }
    let mut parts = v[6..]
        .split(|&b| b == b',')
        .map(trim)
        .filter(|p| !p.is_empty());
    let (Some(one), None) = (parts.next(), parts.next()) else {
        return RangeSpec::Full;
    };
    let Some(dash) = one.iter().position(|&b| b == b'-') else {
        return RangeSpec::Full;
    };
    let (a, b) = (trim(&one[..dash]), trim(&one[dash + 1..]));
    if a.is_empty() {
        return match digits(b) {
            None => RangeSpec::Full,
            Some(0) => RangeSpec::Unsatisfiable,
            Some(_) if len == 0 => RangeSpec::Unsatisfiable,
            Some(n) => RangeSpec::Single(len.saturating_sub(n), len - 1),
        };
    }
    let Some(start) = digits(a) else {
        return RangeSpec::Full;
    };
    let end = if b.is_empty() {
        u64::MAX
    } else {
        match digits(b) {
            Some(e) if e >= start => e,
            _ => return RangeSpec::Full,
        }
    };
    if start >= len {
        return RangeSpec::Unsatisfiable;
    }
    RangeSpec::Single(start, end.min(len - 1))
}

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let len = match input.byte() % 4 {
        0 => 0,
        1 => u64::from(input.byte()),
        2 => u64::from(input.u16()) << 16 | u64::from(input.u16()),
        _ => u64::MAX - u64::from(input.byte()),
    };
    let value = input.rest();
    let got = parse_range(value, len);
    match got {
        RangeSpec::Single(a, b) => assert!(a <= b && b < len, "{a}-{b} of {len}"),
        RangeSpec::Unsatisfiable | RangeSpec::Full => {}
    }
    assert_eq!(
        got,
        model(value, len),
        "{:?} for {len} bytes",
        String::from_utf8_lossy(value)
    );
}
