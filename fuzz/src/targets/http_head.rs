//! `proto::http::parser::parse_head`: HTTP/1.x request heads.
//!
//! Properties: a head that parses re-serialises (request line, `name: value` lines)
//! to one that parses the same (method, target, version, headers, framing and
//! connection flags); every prefix of it is incomplete, never an error or a different
//! head; the offsets lie inside the head; `Ok(Some(n))` has `n` within the input; the
//! body framing obeys the limits.
use readyloop::proto::http::parser::{parse_head, BodyFraming, Head, Limits};

use super::Input;

/// What a parse means, independent of where in the buffer the pieces lie.
#[derive(Debug, PartialEq, Eq)]
struct Meaning {
    method: Vec<u8>,
    target: Vec<u8>,
    minor: u8,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    body: BodyFraming,
    flags: (bool, bool, bool, bool),
}

fn meaning(buf: &[u8], h: &Head) -> Meaning {
    Meaning {
        method: buf[h.method.clone()].to_vec(),
        target: buf[h.target.clone()].to_vec(),
        minor: h.minor,
        headers: h
            .headers
            .iter()
            .map(|(n, v)| (buf[n.clone()].to_vec(), buf[v.clone()].to_vec()))
            .collect(),
        body: h.body,
        flags: (
            h.conn_close,
            h.conn_keep_alive,
            h.expect_continue,
            h.has_host,
        ),
    }
}

fn serialise(m: &Meaning) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&m.method);
    out.push(b' ');
    out.extend_from_slice(&m.target);
    out.extend_from_slice(format!(" HTTP/1.{}\r\n", m.minor).as_bytes());
    for (n, v) in &m.headers {
        out.extend_from_slice(n);
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let small = input.byte() & 1 == 1;
    let cut = usize::from(input.u16());
    let buf = input.rest();
    let limits = if small {
        Limits {
            max_request_line: 40,
            max_head: 120,
            max_headers: 4,
            max_body: 100,
        }
    } else {
        Limits::default()
    };
    let mut head = Head::default();
    let Ok(Some(n)) = parse_head(buf, &limits, &mut head) else {
        return;
    };
    assert!(
        n <= buf.len() && n == head.len,
        "head length {n} of {}",
        buf.len()
    );
    for r in [&head.method, &head.target]
        .into_iter()
        .chain(head.headers.iter().flat_map(|(a, b)| [a, b]))
    {
        assert!(
            r.start <= r.end && r.end <= n,
            "offset {r:?} outside the head of {n}"
        );
    }
    match head.body {
        BodyFraming::Length(l) => assert!(l > 0 && l <= limits.max_body),
        BodyFraming::Chunked => assert!(head.minor >= 1),
        BodyFraming::None => {}
    }
    assert!(head.minor >= 1 || !head.expect_continue);
    assert!(head.minor == 0 || head.has_host);
    let m = meaning(buf, &head);

    // Every prefix of a good head is incomplete (a single cut, chosen by the input).
    let c = cut % n;
    let mut h2 = Head::default();
    assert_eq!(
        parse_head(&buf[..c], &limits, &mut h2),
        Ok(None),
        "prefix of {c} bytes of a {n}-byte head"
    );

    // Re-serialised (canonical spacing), it parses to the same meaning. A canonical
    // head can be longer than the original (": " after each name), so the limits on
    // size are lifted for this step.
    let wire = serialise(&m);
    let roomy = Limits {
        max_request_line: usize::MAX,
        max_head: usize::MAX,
        ..limits.clone()
    };
    let mut h3 = Head::default();
    match parse_head(&wire, &roomy, &mut h3) {
        Ok(Some(n3)) => {
            assert_eq!(n3, wire.len());
            assert_eq!(
                meaning(&wire, &h3),
                m,
                "re-serialised head means something else"
            );
        }
        other => panic!(
            "re-serialised head {:?} does not parse: {other:?}",
            String::from_utf8_lossy(&wire)
        ),
    }
}
