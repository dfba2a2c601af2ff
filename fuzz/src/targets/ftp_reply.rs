//! FTP replies (`proto::ftp::reply`) and the jail's path helpers (`parent`,
//! `file_name`), the parts of the control connection the `ftp_command` target (command
//! lines, addresses, `normalize`) does not cover. Byte 0 of the input picks which.
//!
//! Properties:
//! * `reply`/`multiline`: whatever the text (an echoed path, say), the reply is exactly
//!   its lines: one CRLF per line, no other CR or LF, `NNN SP`/`NNN-` first, middle
//!   lines indented, so nothing a client sends can forge a reply line.
//! * `normalize`, `parent`, `file_name`: the `..` of a normalized path is its `parent`,
//!   its `file_name` is its last segment (empty only for `/`), and joined under a root
//!   it never leaves it.
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use readyloop::proto::ftp::jail::{file_name, normalize, parent};
use readyloop::proto::ftp::reply::{multiline, reply};

use super::Input;

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
    let name = file_name(&p);
    assert_eq!(name.is_empty(), p == b"/", "file_name of {p:?}");
    if p != b"/" {
        let par = parent(&p);
        let mut again = par.to_vec();
        if again != b"/" {
            again.push(b'/');
        }
        again.extend_from_slice(name);
        assert_eq!(again, p, "parent + file_name");
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

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    match input.byte() % 2 {
        0 => {
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
