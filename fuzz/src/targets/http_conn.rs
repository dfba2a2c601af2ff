//! A whole HTTP connection (`HttpServer::factory`'s protocol on a reactor, through the
//! in-process [`Harness`]): request heads, bodies, pipelining, keep-alive, linger,
//! backpressure, files (ranges, validators, listings, `sendfile`), the timers.
//!
//! The input is a program: byte 0 picks the backend, byte 1 the configuration (which
//! timeouts are zero, a document root or not, small limits, small watermarks), then
//! operations: send the next bytes (in chunks the input sizes), send a canned request,
//! run the loop, half-close, close.
//!
//! Properties:
//! * With no timeout due (all long), the answer depends only on the bytes sent: the
//!   same stream sent in one write on another backend gets the same responses (`Date`
//!   and interim `100 Continue`, which depends on how the body arrives, aside).
//! * With every timeout zero, the server closes the connection by itself.
//! * Once the client has gone, the connection is removed and the open-connections
//!   counter is back to zero.
//! * The loop always settles (no busy loop), and the server never stops reading for
//!   good while its output is being read.
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::Duration;

use readyloop::proto::http::{FileOptions, HttpConfig, HttpServer, Limits, Response, Router};

use super::harness::{backend, Harness};
use super::Input;

/// Canned requests the program can send whole (a shortcut to deep states).
pub const CANNED: &[&[u8]] = &[
    b"GET /hello.txt HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /hello.txt HTTP/1.1\r\nHost: h\r\nRange: bytes=2-5\r\n\r\n",
    b"HEAD /big.bin HTTP/1.0\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
    b"GET /dir2/ HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"GET /dir HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /big.bin HTTP/1.1\r\nHost: h\r\nRange: bytes=-100\r\n\r\n",
    b"GET /hello.txt HTTP/1.1\r\nHost: h\r\nIf-None-Match: *\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"GET /%2e%2e/x HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /big.bin HTTP/1.1\r\nHost: h\r\n\r\n",
    b"\r\n",
    b"PUT /hello.txt HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi",
    b"GET /hello.txt HTTP/1.1\r\nHost: h\r\nIf-Range: \"x\"\r\nRange: bytes=0-0\r\n\r\n",
];

/// The document root: made once per process under the temporary directory.
fn site() -> &'static PathBuf {
    static SITE: OnceLock<PathBuf> = OnceLock::new();
    SITE.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("readyloop-fuzz-site-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("dir")).expect("site");
        std::fs::create_dir_all(root.join("dir2/sub")).expect("site");
        std::fs::write(root.join("hello.txt"), b"Hello, world!\n").expect("site");
        std::fs::write(root.join("dir/index.html"), b"<p>index</p>\n").expect("site");
        std::fs::write(root.join("dir2/a b.txt"), b"a\n").expect("site");
        std::fs::write(root.join(".hidden"), b"secret\n").expect("site");
        let big: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(root.join("big.bin"), big).expect("site");
        root
    })
}

fn router() -> Router {
    let mut r = Router::new();
    r.post("/echo", |req| {
        Response::bytes(200, "application/octet-stream", req.body().to_vec())
    });
    r.get("/plaintext", |_| {
        Response::bytes(200, "text/plain", &b"Hello, World!"[..])
    });
    r
}

/// The configuration a flags byte asks for.
fn config(flags: u8) -> HttpConfig {
    let t = |bit: u8| {
        if flags & bit != 0 {
            Duration::ZERO
        } else {
            Duration::from_secs(3600)
        }
    };
    let mut cfg = HttpConfig {
        header_timeout: t(1),
        body_timeout: t(2),
        keepalive_timeout: t(4),
        linger_timeout: t(8),
        root: (flags & 16 != 0).then(|| site().clone()),
        files: FileOptions {
            // big.bin goes out by descriptor (sendfile), hello.txt from memory.
            cache_max_file: 4096,
            ..FileOptions::default()
        },
        ..HttpConfig::default()
    };
    if flags & 32 != 0 {
        cfg.limits = Limits {
            max_request_line: 64,
            max_head: 256,
            max_headers: 6,
            max_body: 64,
        };
    }
    if flags & 64 != 0 {
        cfg.listen.stream.high_watermark = 1024;
        cfg.listen.stream.low_watermark = 256;
    }
    cfg
}

/// What the program did, for the replay in one piece.
enum End {
    Open,
    HalfClosed,
    Closed,
}

/// Output with what legitimately varies removed: `Date` lines, and `100 Continue`
/// (sent only when the body has not arrived with the head).
fn normalise(out: &[u8]) -> Vec<u8> {
    const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
    let mut v = Vec::with_capacity(out.len());
    let mut i = 0;
    while i < out.len() {
        let rest = &out[i..];
        if rest.starts_with(CONTINUE) {
            i += CONTINUE.len();
        } else if rest.starts_with(b"\r\nDate: ") {
            let end = rest[2..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .map_or(rest.len(), |p| p + 2);
            i += end;
        } else {
            v.push(out[i]);
            i += 1;
        }
    }
    v
}

/// Runs one connection: the stream, then the end. Returns the client's output.
fn session(be: u8, flags: u8, chunks: &[(Vec<u8>, bool)], end: &End) -> (Vec<u8>, bool) {
    let server = HttpServer::new(config(flags), router()).expect("server");
    let mut h = Harness::new(backend(be));
    let cfg = Rc::new(server.config().listen.stream.clone());
    let mut factory = server.factory();
    let proto = factory(&readyloop::net::PeerAddr::Unix).expect("protocol");
    let c = h.connect(proto, cfg);
    for (chunk, pump) in chunks {
        h.send(c, chunk);
        if *pump {
            h.pump();
        }
    }
    h.pump();
    match end {
        End::Open => {}
        End::HalfClosed => {
            h.shutdown_write(c);
            h.pump();
        }
        End::Closed => h.close(c),
    }
    let out = std::mem::take(&mut h.clients[c].out);
    let eof = h.clients[c].eof;
    // The client goes: the server must let go of the connection.
    h.close(c);
    h.pump();
    h.assert_no_panics();
    assert_eq!(h.reactor.handler_count(), 0, "connection left behind");
    assert_eq!(
        server.stats().connections_open.get(),
        0,
        "open-connection count"
    );
    (out, eof)
}

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let be = input.byte();
    let flags = input.byte();
    // (bytes, pump after sending them)
    let mut chunks: Vec<(Vec<u8>, bool)> = Vec::new();
    let mut end = End::Open;
    while !input.is_empty() {
        let op = input.byte();
        match op % 8 {
            0..=3 => {
                let n = usize::from(input.byte());
                chunks.push((input.take(n).to_vec(), false));
            }
            4 => match chunks.last_mut() {
                Some(last) => last.1 = true,
                None => chunks.push((Vec::new(), true)),
            },
            5 => {
                end = End::HalfClosed;
                break;
            }
            6 => {
                end = End::Closed;
                break;
            }
            _ => {
                let i = usize::from(input.byte()) % CANNED.len();
                chunks.push((CANNED[i].to_vec(), false));
            }
        }
    }
    let (out, eof) = session(be, flags, &chunks, &end);
    if out.is_empty() {
        // Nothing, or something: a response starts with a status line.
    } else {
        assert!(
            out.starts_with(b"HTTP/1."),
            "{:?}",
            String::from_utf8_lossy(&out)
        );
    }
    if flags & 15 == 15 && !matches!(end, End::Closed) {
        // Every timeout zero: whatever state it is in, the server closes.
        assert!(eof, "the server kept a connection with every timeout zero");
    }
    if flags & 15 == 0 {
        // No timer due: the same bytes in one write, on another backend, get the same
        // answer.
        let whole: Vec<u8> = chunks.iter().flat_map(|(c, _)| c.iter().copied()).collect();
        let (out2, eof2) = session(be.wrapping_add(1), flags, &[(whole, false)], &end);
        assert_eq!(
            String::from_utf8_lossy(&normalise(&out2)),
            String::from_utf8_lossy(&normalise(&out)),
            "the answer depends on how the bytes arrived"
        );
        if !matches!(end, End::Closed) {
            assert_eq!(eof, eof2, "closed in one run only");
        }
    }
}
