//! A tiny client for the FTP server's "mini" front end (`ftp_server --mini ADDR`):
//! each message is a 4-byte little-endian signed length, a JSON header, and for
//! `put` the file's bytes; `get` answers with a header (`filesize` set) and the bytes.
//!
//! ```text
//! cargo run --example ftp_server -- --root /tmp/store --mini 127.0.0.1:9999
//! cargo run --example mini_client -- 127.0.0.1:9999 put ./notes.txt
//! cargo run --example mini_client -- 127.0.0.1:9999 get notes.txt
//! cargo run --example mini_client -- 127.0.0.1:9999 list
//! ```
//!
//! `put` asks for a reply (`"reply": true`) so it can report the outcome; the
//! classroom's own client does not, and the server then answers nothing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use readyloop::proto::framing::LengthPrefixed;
use serde_json::{json, Value};

fn die(msg: impl std::fmt::Display) -> ! {
    eprintln!("mini_client: {msg}");
    std::process::exit(1);
}

fn send_header(s: &mut TcpStream, v: &Value) {
    let mut out = Vec::new();
    LengthPrefixed::encode(v.to_string().as_bytes(), &mut out).unwrap_or_else(|e| die(e));
    s.write_all(&out).unwrap_or_else(|e| die(e));
}

fn read_header(s: &mut TcpStream) -> Value {
    let mut dec = LengthPrefixed::new(1 << 20);
    let mut byte = [0u8; 1];
    // One byte at a time: whatever follows the header (file bytes) stays unread.
    loop {
        match s.read(&mut byte) {
            Ok(0) => die("connection closed before a reply"),
            Ok(_) => {}
            Err(e) => die(e),
        }
        let mut input = &byte[..];
        match dec.decode(&mut input) {
            Ok(Some(h)) => return serde_json::from_slice(&h).unwrap_or_else(|e| die(e)),
            Ok(None) => {}
            Err(e) => die(e),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (addr, cmd) = match args.as_slice() {
        [a, c, ..] => (a.as_str(), c.as_str()),
        _ => die("usage: mini_client ADDR put FILE | get NAME | list [DIR]"),
    };
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| die(format!("{addr}: {e}")));
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    match (cmd, args.get(2)) {
        ("put", Some(file)) => {
            let data = std::fs::read(file).unwrap_or_else(|e| die(format!("{file}: {e}")));
            let name = Path::new(file)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_else(|| die("the file name must be UTF-8"));
            send_header(
                &mut s,
                &json!({"cmd": "put", "filename": name, "filesize": data.len(), "reply": true}),
            );
            s.write_all(&data).unwrap_or_else(|e| die(e));
            println!("{}", read_header(&mut s));
        }
        ("get", Some(name)) => {
            send_header(&mut s, &json!({"cmd": "get", "filename": name}));
            let h = read_header(&mut s);
            if h["status"] != "ok" {
                die(format!("get {name}: {h}"));
            }
            let size = h["filesize"].as_u64().unwrap_or(0);
            let mut data = Vec::new();
            (&mut s)
                .take(size)
                .read_to_end(&mut data)
                .unwrap_or_else(|e| die(e));
            if data.len() as u64 != size {
                die(format!("got {} of {size} bytes", data.len()));
            }
            let out = Path::new(name)
                .file_name()
                .unwrap_or_else(|| die("no file name"));
            std::fs::write(out, &data).unwrap_or_else(|e| die(e));
            println!("{h}");
        }
        ("list", dir) => {
            let dir = dir.map_or("/", String::as_str);
            send_header(
                &mut s,
                &json!({"cmd": "list", "filename": dir, "reply": true}),
            );
            let h = read_header(&mut s);
            for f in h["files"].as_array().into_iter().flatten() {
                println!(
                    "{}{}\t{}",
                    f["name"].as_str().unwrap_or("?"),
                    if f["dir"] == true { "/" } else { "" },
                    f["size"]
                );
            }
        }
        _ => die("usage: mini_client ADDR put FILE | get NAME | list [DIR]"),
    }
}
