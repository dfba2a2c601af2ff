//! `proto::tftp::packet::parse` (every datagram a TFTP server receives), option
//! negotiation on what it parsed, the netascii codec, and the discovery answer parser.
//!
//! Input: byte 0 picks the part, the rest is the datagram (or text).
//!
//! Properties: never a panic; a parsed packet serialised again parses to the same
//! packet; a request has a non-empty file name without NUL and at most `MAX_OPTIONS`
//! options with non-empty names; negotiation grants only values inside the RFC ranges
//! and the server's limits, and its OACK names only known options, each once;
//! netascii encoded in input-chosen block sizes decodes back to the input; a discovery
//! answer that parses survives `answer` and `parse_answer` unchanged.
use std::time::Duration;

use readyloop::proto::discovery::{answer, parse_answer, parse_probe, probe};
use readyloop::proto::tftp::netascii::{Decoder, Encoder};
use readyloop::proto::tftp::options::{negotiate, Limits, MAX_BLKSIZE, MIN_BLKSIZE};
use readyloop::proto::tftp::packet::{self, parse, Packet, MAX_OPTIONS};

use super::Input;

fn push_cstr(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(s);
    out.push(0);
}

/// The packet as bytes again (the inverse of `parse` on what it accepts).
fn serialise(p: &Packet<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    match p {
        Packet::Rrq(r) | Packet::Wrq(r) => {
            let op = if matches!(p, Packet::Rrq(_)) {
                packet::RRQ
            } else {
                packet::WRQ
            };
            out.extend_from_slice(&op.to_be_bytes());
            push_cstr(&mut out, r.filename);
            push_cstr(
                &mut out,
                match r.mode {
                    packet::Mode::Octet => b"octet",
                    packet::Mode::Netascii => b"netascii",
                },
            );
            for (n, v) in &r.options {
                push_cstr(&mut out, n);
                push_cstr(&mut out, v);
            }
        }
        Packet::Data { block, data } => {
            packet::data_header(&mut out, *block);
            out.extend_from_slice(data);
        }
        Packet::Ack { block } => out.extend_from_slice(&packet::ack(*block)),
        Packet::Error { code, message } => {
            out.extend_from_slice(&packet::ERROR.to_be_bytes());
            out.extend_from_slice(&code.to_be_bytes());
            push_cstr(&mut out, message);
        }
        Packet::Oack { options } => {
            out.extend_from_slice(&packet::OACK.to_be_bytes());
            for (n, v) in options {
                push_cstr(&mut out, n);
                push_cstr(&mut out, v);
            }
        }
    }
    out
}

fn check_packet(data: &[u8]) {
    let Ok(p) = parse(data) else { return };
    if let Packet::Rrq(r) | Packet::Wrq(r) = &p {
        assert!(!r.filename.is_empty() && !r.filename.contains(&0));
        assert!(r.options.len() <= MAX_OPTIONS);
        assert!(r.options.iter().all(|(n, _)| !n.is_empty()));
        let limits = Limits {
            max_blksize: 1428,
            max_window: 16,
            max_window_bytes: 8192,
            max_file_size: 1 << 20,
            timeout: Duration::from_secs(1),
        };
        for read in [true, false] {
            if let Ok((params, oack)) = negotiate(&r.options, read, Some(5), &limits) {
                assert!((MIN_BLKSIZE..=MAX_BLKSIZE.min(1428)).contains(&params.blksize));
                assert!((1..=16).contains(&params.window));
                assert!(params.window == 1 || usize::from(params.window) * params.blksize <= 8192);
                assert!(params.timeout >= Duration::from_secs(1));
                assert!(params.timeout <= Duration::from_secs(255));
                for (i, (name, _)) in oack.iter().enumerate() {
                    assert!(["blksize", "timeout", "tsize", "windowsize"].contains(name));
                    assert!(oack[..i].iter().all(|(n, _)| n != name), "{name} twice");
                }
            }
        }
    }
    let again = serialise(&p);
    assert_eq!(
        parse(&again),
        Ok(p.clone()),
        "re-serialised packet parses the same"
    );
}

fn check_netascii(inp: &mut Input<'_>) {
    let block = usize::from(inp.byte() % 64) + 1;
    let text = inp.rest();
    let mut enc = Encoder::new();
    let mut dec = Decoder::new();
    let mut rest = text;
    let mut back = Vec::new();
    // Each round consumes input or ends: bounded by twice the input plus one.
    for _ in 0..=2 * text.len() + 1 {
        let mut out = Vec::new();
        let n = enc.encode(rest, &mut out, block);
        rest = &rest[n..];
        assert!(out.len() <= block);
        dec.decode(&out, &mut back);
        if out.len() < block {
            break;
        }
    }
    dec.finish(&mut back);
    assert_eq!(back, text, "netascii round trip");
}

fn check_discovery(data: &[u8]) {
    if let Some(nonce) = parse_probe(data) {
        let nonce = std::str::from_utf8(nonce).expect("nonce is ASCII");
        assert_eq!(parse_probe(&probe(nonce)), Some(nonce.as_bytes()));
    }
    if let Ok(a) = parse_answer(data) {
        // Built again, it parses to the same nonce, the name (cut to MAX_NAME
        // characters) and the offers that fit in a datagram (a prefix).
        let b = answer(&a.nonce, &a.name, &a.offers);
        assert!(b.len() <= readyloop::proto::discovery::MAX_DATAGRAM);
        let again = parse_answer(&b).expect("a built answer parses");
        assert_eq!(again.nonce, a.nonce);
        assert!(
            a.name.starts_with(&again.name),
            "the name, or its first MAX_NAME chars"
        );
        assert!(a.offers.starts_with(&again.offers));
    }
}

/// The target.
pub fn run(data: &[u8]) {
    let mut inp = Input::new(data);
    match inp.byte() % 3 {
        0 => check_packet(inp.rest()),
        1 => check_netascii(&mut inp),
        _ => check_discovery(inp.rest()),
    }
}
