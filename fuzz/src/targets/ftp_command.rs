//! `proto::ftp::command` and `proto::ftp::jail::normalize`: the FTP control
//! connection's parsers (command lines, `PORT`/`EPRT`/`EPSV`/`REST` arguments, paths).
//!
//! Properties: never a panic on any bytes; a parsed verb is 3 or 4 upper-case ASCII
//! letters; a parsed command re-serialised (`NAME SP arg`, 0xFF doubled as telnet
//! `IAC IAC`) parses to the same command; an address `PORT`/`EPRT` accepts, written
//! back in its own syntax, parses to the same address; a normalized path starts with
//! `/`, has no empty, `.` or `..` segment and no control byte, and is a fixed point
//! (normalizing it again from any directory gives it back).
use readyloop::proto::ftp::command::{
    parse_command, parse_eprt, parse_epsv, parse_port, parse_rest, CommandError,
};
use readyloop::proto::ftp::jail::normalize;

fn check_path(cwd: &[u8], arg: &[u8]) {
    let Ok(p) = normalize(cwd, arg) else {
        assert!(
            arg.iter().any(|&b| b < 0x20 || b == 0x7f),
            "refused a path without control bytes"
        );
        return;
    };
    assert_eq!(p.first(), Some(&b'/'));
    assert!(
        !p.iter().any(|&b| b < 0x20 || b == 0x7f),
        "control byte kept"
    );
    if p.len() > 1 {
        for seg in p[1..].split(|&b| b == b'/') {
            assert!(
                !matches!(seg, b"" | b"." | b".."),
                "segment {seg:?} in {p:?}"
            );
        }
    }
    assert_eq!(
        normalize(b"/elsewhere", &p).as_ref(),
        Ok(&p),
        "not a fixed point"
    );
}

pub fn run(data: &[u8]) {
    match parse_command(data) {
        Ok(c) => {
            assert!((3..=4).contains(&c.name.len()));
            assert!(c.name.iter().all(u8::is_ascii_uppercase));
            let mut line = c.name.clone();
            line.push(b' ');
            for &b in &c.arg {
                line.push(b);
                if b == 0xFF {
                    line.push(0xFF);
                }
            }
            let again = parse_command(&line).expect("a re-serialised command parses");
            // An argument made only of spaces round-trips as itself.
            assert_eq!(again, c, "round trip of {line:?}");
            if let Some(a) = parse_port(&c.arg) {
                let std::net::IpAddr::V4(ip) = a.ip() else {
                    panic!("PORT gave IPv6")
                };
                let o = ip.octets();
                let s = format!(
                    "{},{},{},{},{},{}",
                    o[0],
                    o[1],
                    o[2],
                    o[3],
                    a.port() >> 8,
                    a.port() & 0xff
                );
                assert_eq!(parse_port(s.as_bytes()), Some(a));
            }
            if let Some(a) = parse_eprt(&c.arg) {
                let proto = if a.is_ipv4() { 1 } else { 2 };
                let s = format!("|{proto}|{}|{}|", a.ip(), a.port());
                assert_eq!(parse_eprt(s.as_bytes()), Some(a));
            }
            let _ = parse_epsv(&c.arg);
            if let Some(n) = parse_rest(&c.arg) {
                assert_eq!(parse_rest(n.to_string().as_bytes()), Some(n));
            }
            check_path(b"/some/dir", &c.arg);
        }
        Err(CommandError::Empty) | Err(CommandError::BadVerb) => {}
    }
    // The raw bytes as arguments, too (no verb in front).
    let _ = parse_port(data);
    let _ = parse_eprt(data);
    let _ = parse_epsv(data);
    let _ = parse_rest(data);
    let (cwd, arg) = data.split_at(data.iter().position(|&b| b == 0).unwrap_or(0));
    if !cwd.iter().any(|&b| b < 0x20 || b == 0x7f) {
        if let Ok(c) = normalize(b"/", cwd) {
            check_path(&c, arg);
        }
    }
}
