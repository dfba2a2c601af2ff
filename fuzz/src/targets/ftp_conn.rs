//! A whole FTP control connection (`FtpServer::factory`'s session on a reactor,
//! through the in-process [`Harness`]): login, navigation, listings and transfers
//! asked for (no data connection is ever made: the control connection is a Unix
//! socket pair, so `PASV`/`EPSV` answer 425, and `PORT`/`EPRT` lines are turned into
//! `NOOP` before sending, so the fuzzer never makes the server connect anywhere).
//!
//! The input: byte 0 picks the backend, byte 1 the configuration (uploads allowed, a
//! zero idle timeout, short lines), then operations: send bytes, send a canned
//! command, run the loop, half-close, close. Each execution gets a fresh root.
//!
//! Properties: the server greets with 220; every reply line is CRLF-terminated with no
//! other CR or LF, and is `NNN SP`/`NNN-` or an indented middle line of a multi-line
//! reply; nothing is created outside the root; with a zero idle timeout the server
//! closes by itself; once the client goes, the session is gone (`sessions() == 0`, no
//! handler left); the loop settles.
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use readyloop::net::PeerAddr;
use readyloop::proto::ftp::command::{parse_command, Verb};
use readyloop::proto::ftp::{FtpConfig, FtpServer};

use super::harness::{backend, Harness};
use super::Input;

/// Canned commands the program can send whole.
pub const CANNED: &[&[u8]] = &[
    b"USER anonymous\r\nPASS x@y\r\n",
    b"USER ftp\r\nPASS \r\n",
    b"SYST\r\nFEAT\r\nHELP\r\nSTAT\r\n",
    b"PWD\r\nCWD dir\r\nCDUP\r\nCWD /dir/../..\r\n",
    b"MKD new\r\nRMD new\r\n",
    b"RNFR hello.txt\r\nRNTO moved.txt\r\n",
    b"DELE moved.txt\r\n",
    b"TYPE I\r\nMODE S\r\nSTRU F\r\n",
    b"PASV\r\nEPSV\r\nEPSV ALL\r\n",
    b"LIST\r\nNLST dir\r\nMLSD\r\nMLST hello.txt\r\n",
    b"REST 5\r\nRETR hello.txt\r\n",
    b"STOR up.txt\r\nAPPE up.txt\r\nSTOU\r\n",
    b"SIZE hello.txt\r\nMDTM hello.txt\r\n",
    b"ABOR\r\nNOOP\r\nALLO 10\r\n",
    b"OPTS UTF8 ON\r\nSITE x\r\nREIN\r\nACCT a\r\n",
    b"QUIT\r\n",
    b"\xff\xf4\xff\xf2ABOR\r\n",
    b"USER bob\r\nPASS wrong\r\n",
];

/// The session's root: a fresh directory for each execution, under a per-process one
/// that must hold nothing else when the session ends.
fn fresh_root() -> (PathBuf, PathBuf) {
    static N: AtomicU64 = AtomicU64::new(0);
    let base = std::env::temp_dir().join(format!("readyloop-fuzz-ftp-{}", std::process::id()));
    let n = N.fetch_add(1, Ordering::Relaxed);
    let jail = base.join(format!("j{n}"));
    let root = jail.join("root");
    std::fs::create_dir_all(root.join("dir/sub")).expect("ftp root");
    std::fs::write(root.join("hello.txt"), b"Hello, world!\n").expect("ftp root");
    std::fs::write(root.join("dir/a b.txt"), b"a\n").expect("ftp root");
    (jail, root)
}

fn config(flags: u8, root: PathBuf) -> FtpConfig {
    let mut cfg = FtpConfig::new(root);
    cfg.anonymous = true;
    cfg.anonymous_upload = flags & 1 != 0;
    cfg.login_delay = Duration::ZERO;
    if flags & 2 != 0 {
        cfg.idle_timeout = Duration::ZERO;
    }
    if flags & 4 != 0 {
        cfg.max_line = 32;
    }
    cfg
}

/// `PORT`/`EPRT` lines (as the server would parse them) become `NOOP`.
fn defang(stream: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stream.len());
    for piece in stream.split_inclusive(|&b| b == b'\n') {
        let line = piece.strip_suffix(b"\n").unwrap_or(piece);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match parse_command(line) {
            Ok(c) if matches!(c.verb, Verb::Port | Verb::Eprt) => {
                out.extend_from_slice(b"NOOP");
                if piece.ends_with(b"\n") {
                    out.push(b'\n');
                }
            }
            _ => out.extend_from_slice(piece),
        }
    }
    out
}

fn check_replies(out: &[u8]) {
    if out.is_empty() {
        return;
    }
    assert!(
        out.starts_with(b"220"),
        "{:?}",
        String::from_utf8_lossy(out)
    );
    assert!(out.ends_with(b"\r\n"), "{:?}", String::from_utf8_lossy(out));
    for line in out[..out.len() - 2].split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        assert!(
            !line.contains(&b'\r'),
            "CR in {:?}",
            String::from_utf8_lossy(line)
        );
        let numbered = line.len() >= 4
            && line[..3].iter().all(u8::is_ascii_digit)
            && (line[3] == b' ' || line[3] == b'-');
        assert!(
            numbered || line.starts_with(b" ") || line.len() == 3,
            "reply line {:?}",
            String::from_utf8_lossy(line)
        );
    }
}

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let be = input.byte();
    let flags = input.byte();
    let (jail, root) = fresh_root();
    let server = FtpServer::new(config(flags, root)).expect("ftp server");
    let mut h = Harness::new(backend(be));
    let cfg = Rc::new(server.config().listen.stream.clone());
    let peer = PeerAddr::Inet(([127, 0, 0, 1], 40000).into());
    let proto = server.factory()(&peer).expect("session");
    let c = h.connect(proto, cfg);
    h.pump();
    let mut closed = false;
    while !input.is_empty() && !closed {
        let op = input.byte();
        match op % 8 {
            0..=3 => {
                let n = usize::from(input.byte());
                h.send(c, &defang(input.take(n)));
            }
            4 => h.pump(),
            5 => {
                let i = usize::from(input.byte()) % CANNED.len();
                h.send(c, CANNED[i]);
            }
            6 => h.shutdown_write(c),
            _ => {
                h.pump();
                h.close(c);
                closed = true;
            }
        }
    }
    h.pump();
    check_replies(&h.clients[c].out);
    if flags & 2 != 0 && !closed {
        assert!(h.clients[c].eof, "idle timeout zero, still open");
    }
    h.close(c);
    h.pump();
    h.assert_no_panics();
    assert_eq!(server.sessions(), 0, "session left after the client went");
    assert_eq!(h.reactor.handler_count(), 0, "handler left behind");
    // Nothing beside the root.
    let names: Vec<_> = std::fs::read_dir(&jail)
        .expect("jail")
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    assert_eq!(
        names,
        [std::ffi::OsString::from("root")],
        "written outside the root"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&jail);
}
