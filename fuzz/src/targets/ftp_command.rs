//! FTP command lines (`proto::ftp::command`), the path jail's `normalize`, and the
//! reply writer (`proto::ftp::reply`). Byte 0 of the input picks the parser.
//!
//! Properties:
//! * `parse_command`: the name is the verb upper-cased, 3 or 4 ASCII letters; written
//!   back (`NAME SP arg`, 0xFF doubled as telnet requires) it parses to the same
//!   command.
//! * `parse_port`, `parse_eprt`, `parse_epsv`, `parse_rest`: what parses, formatted
//!   back in the command's syntax, parses to the same value.
//! * `normalize`: an absolute virtual path with no empty, `.` or `..` segment and no
//!   control byte, a fixed point (normalizing it again from `/` gives it back), whose
//!   `..` is its `parent`; joined under a root it never leaves it.
//! * `reply`/`multiline`: whatever the text (an echoed path), the reply is exactly its
//!   lines: one CRLF per line, no other CR or LF, middle lines indented.
use std::net::SocketAddr;
use std::path::{Component, Path};

use readyloop::proto::ftp::command::{
    parse_command, parse_eprt, parse_epsv, parse_port, parse_rest, EpsvArg,
};
use readyloop::proto::ftp::jail::{file_name, normalize, parent};
use readyloop::proto::ftp::reply::{multiline, reply};

use super::Input;

fn escape_iac(b: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(b.len());
    for &x in b {
        v.push(x);
        if x == 0xFF {
            v.push(0xFF);
        }
    }
    v
}

fn command(line: &[u8]) {
    let Ok(c) = parse_command(line) else {
        return;
    };
    assert!((3..=4).contains(&c.name.len()), "{:?}", c.name);
    assert!(c.name.iter().all(u8::is_ascii_uppercase), "{:?}", c.name);
    let mut wire = c.name.clone();
    if !c.arg.is_empty() {
        wire.push(b' ');
        wire.extend_from_slice(&escape_iac(&c.arg));
    }
    assert_eq!(parse_command(&wire).as_ref(), Ok(&c), "{wire:?}");
}

fn addresses(arg: &[u8]) {
    if let Some(a) = parse_port(arg) {
        let SocketAddr::V4(v4) = a else {
            panic!("PORT gave {a}")
        };
        let [h1, h2, h3, h4] = v4.ip().octets();
        let p = v4.port();
        let back = format!("{h1},{h2},{h3},{h4},{},{}", p >> 8, p & 0xff);
        assert_eq!(parse_port(back.as_bytes()), Some(a), "{back}");
    }
    if let Some(a) = parse_eprt(arg) {
        let proto = if a.is_ipv4() { 1 } else { 2 };
        let back = format!("|{proto}|{}|{}|", a.ip(), a.port());
        assert_eq!(parse_eprt(back.as_bytes()), Some(a), "{back}");
    }
    if let Some(e) = parse_epsv(arg) {
        let back = match e {
            EpsvArg::Any => String::new(),
            EpsvArg::All => "ALL".into(),
            EpsvArg::Proto(n) => n.to_string(),
        };
        assert_eq!(parse_epsv(back.as_bytes()), Some(e), "{back}");
    }
    if let Some(n) = parse_rest(arg) {
        assert_eq!(parse_rest(n.to_string().as_bytes()), Some(n));
    }
}

fn paths(cwd: &[u8], arg: &[u8]) {
    // The session's directory is itself always a normalized path.
    let Ok(cwd) = normalize(b"/", cwd) else {
        return;
    };
    let Ok(p) = normalize(&cwd, arg) else {
        assert!(arg.iter().any(|&b| b < 0x20 || b == 0x7f));
        return;
    };
    assert!(p.starts_with(b"/"));
    assert!(!p.iter().any(|&b| b < 0x20 || b == 0x7f));
    if p != b"/" {
        for seg in p[1..].split(|&b| b == b'/') {
            assert!(!seg.is_empty() && seg != b"." && seg != b"..", "{p:?}");
        }
    }
    assert_eq!(
        normalize(b"/", &p).as_deref(),
        Ok(&p[..]),
        "not a fixed point"
    );
    assert_eq!(
        normalize(&p, b"..").as_deref(),
        Ok(parent(&p)),
        "parent of {p:?}"
    );
    if p != b"/" {
        assert!(!file_name(&p).is_empty());
    }
    let root = Path::new("/srv/ftp");
    let mut real = root.to_path_buf();
    for seg in p.split(|&b| b == b'/').filter(|s| !s.is_empty()) {
        real.push(std::ffi::OsStr::from_bytes(seg));
    }
    assert!(real.starts_with(root));
    assert!(real
        .components()
        .all(|c| matches!(c, Component::RootDir | Component::Normal(_))));
}

fn replies(code: u16, a: &[u8], b: &[u8]) {
    let code = 100 + code % 500;
    let mut out = Vec::new();
    reply(&mut out, code, a);
    assert!(out.ends_with(b"\r\n"));
    let body = &out[..out.len() - 2];
    assert!(!body.contains(&b'\r') && !body.contains(&b'\n'), "{out:?}");
    assert!(body.starts_with(format!("{code} ").as_bytes()));

    out.clear();
    multiline(&mut out, code, a, [b, a], b);
    let lines: Vec<&[u8]> = out.split(|&x| x == b'\n').collect();
    assert_eq!(lines.len(), 5, "{out:?}"); // 4 lines, then nothing after the last LF
    assert!(lines[0].starts_with(format!("{code}-").as_bytes()));
    assert!(lines[1].starts_with(b" ") && lines[2].starts_with(b" "));
    assert!(lines[3].starts_with(format!("{code} ").as_bytes()));
    for l in &lines[..4] {
        assert!(l.ends_with(b"\r") && !l[..l.len() - 1].contains(&b'\r'));
    }
    assert!(lines[4].is_empty());
}

use std::os::unix::ffi::OsStrExt;

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    match input.byte() % 4 {
        0 => command(input.rest()),
        1 => addresses(input.rest()),
        2 => {
            let n = usize::from(input.byte());
            let cwd = input.take(n);
            paths(cwd, input.rest());
        }
        _ => {
            let code = input.u16();
            let n = usize::from(input.byte());
            let a = input.take(n);
            replies(code, a, input.rest());
        }
    }
}
