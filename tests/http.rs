//! The HTTP server end to end, on every backend, with real clients: `curl` (GET,
//! HEAD, ranges, conditional requests, keep-alive reuse, chunked upload), raw sockets
//! (pipelining, malformed input, path traversal, slowloris, HTTP/1.0), `wrk` (a short
//! bounded load with zero errors) and the `http_server` example as a child process.
//!
//! Each case is written inside `per_backend!` (from `tests/support`), which adds one test
//! per backend (`pipelining::epoll_et`, ...). Every server is in-process on loopback port 0 with
//! its own temporary document root; every socket read has a timeout, every child
//! process a deadline. A missing `curl` or `wrk` skips its case with a note, except
//! under `CI=true`, where it fails.

#[macro_use]
mod support;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use readyloop::proto::http::{HttpConfig, HttpServer, Response, Router};
use readyloop::reactor::Config;
use readyloop::selector::Backend;
use support::{
    connect, curl, eventually, expect_closed, have_tool, run_with_deadline, spawn_loop, text,
    LoopThread, ServerProcess, IO_TIMEOUT,
};

const BIG: usize = 3 << 20;
const INDEX: &str = "<!DOCTYPE html><html><body><h1>test index</h1></body></html>\n";
const HELLO: &str = "Hello, file!\n0123456789\n";
const SECRET: &str = "TOP-SECRET-OUTSIDE-ROOT";

fn big_byte(i: usize) -> u8 {
    (i.wrapping_mul(7) % 251) as u8
}

// ---------------------------------------------------------------------------------
// A server on a background thread, with its own document root
// ---------------------------------------------------------------------------------

struct Server {
    addr: SocketAddr,
    /// The loop; taken (stopped) before the directory goes.
    lt: Option<LoopThread>,
    dir: PathBuf,
}

/// Builds `dir/root` (the document root) and `dir/secret.txt` (outside it).
fn make_site(dir: &Path) {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(dir.join("secret.txt"), SECRET).unwrap();
    std::fs::write(root.join("index.html"), INDEX).unwrap();
    std::fs::write(root.join("hello.txt"), HELLO).unwrap();
    std::fs::write(root.join("sub/index.html"), "sub index\n").unwrap();
    std::fs::write(root.join(".hidden"), SECRET).unwrap();
    std::fs::write(root.join("docs/plain.txt"), "plain\n").unwrap();
    std::fs::write(root.join("docs/a <b> & \"c\".txt"), "weird\n").unwrap();
    std::fs::write(root.join("docs/.dotfile"), SECRET).unwrap();
    let big: Vec<u8> = (0..BIG).map(big_byte).collect();
    std::fs::write(root.join("big.bin"), big).unwrap();
    std::os::unix::fs::symlink(dir.join("secret.txt"), root.join("escape.txt")).unwrap();
    std::os::unix::fs::symlink(dir, root.join("escape-dir")).unwrap();
    std::os::unix::fs::symlink(root.join("hello.txt"), root.join("inside.txt")).unwrap();
}

/// Warnings logged by the in-process servers (all of them: filter by something unique
/// to one server, such as its directory).
static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Access-log lines of the in-process servers.
static ACCESS: Mutex<Vec<String>> = Mutex::new(Vec::new());
const ACCESS_TARGET: &str = "readyloop::http::access";

/// `env_logger` as usual (`RUST_LOG`), plus a copy of every warning in [`WARNINGS`]
/// and of every access-log line in [`ACCESS`].
struct CaptureLog(env_logger::Logger);

impl log::Log for CaptureLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Warn || m.target() == ACCESS_TARGET || self.0.enabled(m)
    }

    fn log(&self, r: &log::Record<'_>) {
        if r.level() <= log::Level::Warn {
            if let Ok(mut w) = WARNINGS.lock() {
                w.push(r.args().to_string());
            }
        }
        if r.target() == ACCESS_TARGET {
            if let Ok(mut w) = ACCESS.lock() {
                w.push(r.args().to_string());
            }
        }
        if self.0.matches(r) {
            self.0.log(r);
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}

fn init_logs() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let inner = env_logger::builder().is_test(true).build();
        let max = inner.filter().max(log::LevelFilter::Info);
        if log::set_boxed_logger(Box::new(CaptureLog(inner))).is_ok() {
            log::set_max_level(max);
        }
    });
}

/// The body bytes of the access-log line for `request` (`GET /x HTTP/1.1`), once
/// there is one.
fn logged_bytes(request: &str) -> Option<u64> {
    let quoted = format!("\"{request}\" ");
    let lines = ACCESS.lock().ok()?;
    let line = lines.iter().find(|l| l.contains(&quoted))?;
    let rest = &line[line.find(&quoted)? + quoted.len()..];
    rest.split(' ').nth(1)?.parse().ok()
}

fn stats_bytes_sent(addr: SocketAddr) -> u64 {
    let (r, _) = exchange(addr, &get("/api/stats"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["bytes_sent"].as_u64().unwrap()
}

fn warnings_about(what: &str) -> usize {
    WARNINGS
        .lock()
        .map_or(0, |w| w.iter().filter(|l| l.contains(what)).count())
}

fn start(backend: Backend, tweak: impl FnOnce(&mut HttpConfig) + Send + 'static) -> Server {
    static N: AtomicUsize = AtomicUsize::new(0);
    init_logs();
    let dir = std::env::temp_dir().join(format!(
        "readyloop-http-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    make_site(&dir);
    let root = dir.join("root");
    let (lt, addr) = spawn_loop(backend, Config::default(), move |reactor| {
        let mut cfg = HttpConfig {
            root: Some(root),
            ..HttpConfig::default()
        };
        tweak(&mut cfg);
        let mut router = Router::with_builtins();
        router.get("/custom", |req| {
            Response::text(200, format!("custom {}", req.query().unwrap_or("")))
        });
        router.get("/files/*", |req| {
            Response::text(200, format!("files route {}", req.path()))
        });
        router.get("/panic", |_| -> Response {
            panic!("route handler bug (expected by the test)")
        });
        let server = HttpServer::new(cfg, router).expect("server");
        server.listen(reactor, "127.0.0.1:0").expect("listen").1
    });
    Server {
        addr,
        lt: Some(lt),
        dir,
    }
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.lt.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------
// Raw clients
// ---------------------------------------------------------------------------------

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response (`head_only`: the request was HEAD, so no body follows).
fn read_response(r: &mut BufReader<TcpStream>, head_only: bool) -> io::Result<Resp> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "EOF before status line",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (n, v) = h.split_once(':').expect("header line");
        headers.push((n.trim().to_string(), v.trim().to_string()));
    }
    let mut resp = Resp {
        status,
        headers,
        body: Vec::new(),
    };
    let bodiless = head_only || status < 200 || status == 204 || status == 304;
    if !bodiless {
        let len: usize = resp
            .header("content-length")
            .expect("every response has Content-Length")
            .parse()
            .unwrap();
        resp.body = vec![0; len];
        r.read_exact(&mut resp.body)?;
    }
    Ok(resp)
}

/// Sends `raw` on a new connection and reads one response.
fn exchange(addr: SocketAddr, raw: &[u8]) -> (Resp, BufReader<TcpStream>) {
    let mut s = connect(addr);
    s.write_all(raw).unwrap();
    let mut r = BufReader::new(s);
    let resp = read_response(&mut r, false).expect("a response");
    (resp, r)
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes()
}

// ---------------------------------------------------------------------------------
// External tools
// ---------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------

per_backend!(
    fn curl_get_and_head(backend: Backend) {
        if !have_tool("curl", "curl") {
            return;
        }
        let s = start(backend, |_| {});
        let out = curl(&["-i", &s.url("/")], None);
        let got = text(&out.stdout);
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        for h in [
            "Server: readyloop",
            "Date: ",
            "Content-Type: text/html",
            "ETag: \"",
            "Last-Modified: ",
        ] {
            assert!(got.contains(h), "missing {h}: {got}");
        }
        assert!(got.contains(&format!("Content-Length: {}\r\n", INDEX.len())));
        assert!(got.ends_with(INDEX));
        let out = curl(&["-I", &s.url("/hello.txt")], None);
        let got = text(&out.stdout);
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        assert!(
            got.contains(&format!("Content-Length: {}\r\n", HELLO.len())),
            "{got}"
        );
        assert!(got.ends_with("\r\n\r\n"), "HEAD has no body: {got:?}");
        let out = curl(
            &["-w", "%{http_code}", "-o", "/dev/null", &s.url("/nope")],
            None,
        );
        assert_eq!(text(&out.stdout), "404");
        // Directory without slash: redirect; curl -L follows to the index.
        let out = curl(&["-L", &s.url("/sub")], None);
        assert_eq!(text(&out.stdout), "sub index\n");
        let out = curl(&[&s.url("/custom?x=1")], None);
        assert_eq!(text(&out.stdout), "custom x=1");
    }

    fn curl_keepalive_reuse(backend: Backend) {
        if !have_tool("curl", "curl") {
            return;
        }
        let s = start(backend, |_| {});
        let out = curl(
            &[
                "-v",
                &s.url("/"),
                &s.url("/hello.txt"),
                &s.url("/plaintext"),
                &s.url("/api/stats"),
            ],
            None,
        );
        let err = text(&out.stderr);
        let body = text(&out.stdout);
        assert!(
            err.contains("Re-using existing"),
            "no connection reuse: {err}"
        );
        assert!(
            body.contains(HELLO) && body.contains("Hello, World!"),
            "{body}"
        );
        let stats = &body[body.find("{\"connections_open\"").expect("stats json")..];
        assert!(
            stats.contains("\"connections_total\":1,"),
            "one connection: {stats}"
        );
        assert!(stats.contains("\"requests\":3,"), "{stats}");
        assert!(
            stats.contains(&format!("\"backend\":\"{backend}\"")),
            "{stats}"
        );
    }

    fn curl_ranges_and_conditionals(backend: Backend) {
        if !have_tool("curl", "curl") {
            return;
        }
        let s = start(backend, |_| {});
        let out = curl(&["-i", "-r", "0-4", &s.url("/hello.txt")], None);
        let got = text(&out.stdout);
        assert!(got.starts_with("HTTP/1.1 206 "), "{got}");
        assert!(
            got.contains(&format!("Content-Range: bytes 0-4/{}", HELLO.len())),
            "{got}"
        );
        assert!(got.ends_with("\r\n\r\nHello"), "{got}");
        // Suffix range of the big file (sendfile path).
        let out = curl(&["-r", "-100", &s.url("/big.bin")], None);
        let want: Vec<u8> = (BIG - 100..BIG).map(big_byte).collect();
        assert_eq!(out.stdout, want);
        // Unsatisfiable.
        let out = curl(&["-i", "-r", "99999-", &s.url("/hello.txt")], None);
        let got = text(&out.stdout);
        assert!(got.starts_with("HTTP/1.1 416 "), "{got}");
        assert!(
            got.contains(&format!("Content-Range: bytes */{}", HELLO.len())),
            "{got}"
        );
        // Several ranges: documented fallback, the whole file with 200.
        let out = curl(
            &["-w", "%{http_code}", "-r", "0-1,3-4", &s.url("/hello.txt")],
            None,
        );
        assert_eq!(text(&out.stdout), format!("{HELLO}200"));
        // ETag -> If-None-Match -> 304.
        let out = curl(&["-I", &s.url("/hello.txt")], None);
        let head = text(&out.stdout);
        let etag = head
            .lines()
            .find_map(|l| l.strip_prefix("ETag: "))
            .expect("ETag")
            .trim()
            .to_string();
        let lm = head
            .lines()
            .find_map(|l| l.strip_prefix("Last-Modified: "))
            .expect("Last-Modified")
            .trim()
            .to_string();
        let inm = format!("If-None-Match: {etag}");
        let out = curl(&["-i", "-H", &inm, &s.url("/hello.txt")], None);
        let got = text(&out.stdout);
        assert!(got.starts_with("HTTP/1.1 304 "), "{got}");
        assert!(
            got.ends_with("\r\n\r\n") && !got.contains("Content-Length"),
            "{got}"
        );
        let out = curl(
            &[
                "-w",
                "%{http_code}",
                "-o",
                "/dev/null",
                "-H",
                "If-None-Match: \"other\"",
                &s.url("/hello.txt"),
            ],
            None,
        );
        assert_eq!(text(&out.stdout), "200");
        let ims = format!("If-Modified-Since: {lm}");
        let out = curl(
            &[
                "-w",
                "%{http_code}",
                "-o",
                "/dev/null",
                "-H",
                &ims,
                &s.url("/hello.txt"),
            ],
            None,
        );
        assert_eq!(text(&out.stdout), "304");
        let out = curl(
            &[
                "-w",
                "%{http_code}",
                "-o",
                "/dev/null",
                "-H",
                "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT",
                &s.url("/hello.txt"),
            ],
            None,
        );
        assert_eq!(text(&out.stdout), "200");
        // If-Range with a stale validator: the whole file.
        let out = curl(
            &[
                "-w",
                "%{http_code}",
                "-r",
                "0-4",
                "-H",
                "If-Range: \"stale\"",
                &s.url("/hello.txt"),
            ],
            None,
        );
        assert_eq!(text(&out.stdout), format!("{HELLO}200"));
    }

    fn curl_chunked_upload(backend: Backend) {
        if !have_tool("curl", "curl") {
            return;
        }
        let s = start(backend, |_| {});
        let out = curl(
            &["-T", "-", "-X", "POST", &s.url("/echo")],
            Some(b"chunked hello"),
        );
        assert_eq!(text(&out.stdout), "chunked hello");
        // A bigger body, many chunks and reads.
        let data: Vec<u8> = (0..300_000).map(|i| b'a' + (i % 26) as u8).collect();
        let out = curl(
            &[
                "-v",
                "-T",
                "-",
                "-X",
                "POST",
                "-H",
                "Content-Type: text/x-test",
                &s.url("/echo"),
            ],
            Some(&data),
        );
        assert!(text(&out.stderr).contains("Transfer-Encoding: chunked"));
        assert!(text(&out.stderr).contains("Content-Type: text/x-test"));
        assert_eq!(out.stdout, data);
        // Content-Length body with Expect: 100-continue (curl sends it above 1 MiB or on request).
        let out = curl(
            &[
                "-v",
                "-H",
                "Expect: 100-continue",
                "--data-binary",
                "@-",
                &s.url("/echo"),
            ],
            Some(b"expect me"),
        );
        assert_eq!(text(&out.stdout), "expect me");
        assert!(
            text(&out.stderr).contains("100 Continue"),
            "{}",
            text(&out.stderr)
        );
        // Over the body limit: 413.
        let s = start(backend, |c| c.limits.max_body = 1000);
        let big = vec![b'x'; 5000];
        let out = run_with_deadline(
            Command::new("curl").args([
                "-sS",
                "--max-time",
                "10",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-T",
                "-",
                "-X",
                "POST",
                &s.url("/echo"),
            ]),
            Some(&big),
            Duration::from_secs(20),
        );
        assert_eq!(text(&out.stdout), "413");
    }

    fn pipelining(backend: Backend) {
        let s = start(backend, |_| {});
        let mut c = connect(s.addr);
        let mut reqs = Vec::new();
        reqs.extend(get("/hello.txt"));
        reqs.extend(b"HEAD /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        reqs.extend(get("/big.bin"));
        reqs.extend(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nabcde");
        reqs.extend(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n");
        reqs.extend(get("/plaintext"));
        reqs.extend(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        c.write_all(&reqs).unwrap();
        let mut r = BufReader::new(c);
        let a = read_response(&mut r, false).unwrap();
        assert_eq!((a.status, text(&a.body)), (200, HELLO.to_string()));
        let b = read_response(&mut r, true).unwrap();
        assert_eq!(b.status, 200);
        assert_eq!(
            b.header("content-length"),
            Some(HELLO.len().to_string().as_str())
        );
        let big = read_response(&mut r, false).unwrap();
        assert_eq!(big.body.len(), BIG);
        assert!(
            big.body.iter().enumerate().all(|(i, &b)| b == big_byte(i)),
            "big body intact"
        );
        let d = read_response(&mut r, false).unwrap();
        assert_eq!(text(&d.body), "abcde");
        let e = read_response(&mut r, false).unwrap();
        assert_eq!(text(&e.body), "xyz");
        let f = read_response(&mut r, false).unwrap();
        assert_eq!(text(&f.body), "Hello, World!");
        let g = read_response(&mut r, false).unwrap();
        assert_eq!(g.header("connection"), Some("close"));
        assert_eq!(text(&g.body), HELLO);
        expect_closed(&mut r, backend.name());
    }

    fn pipelining_under_backpressure(backend: Backend) {
        // 40 pipelined requests, half for a 3 MiB file, sent before any answer is read:
        // all answered in order (the server pauses reading while output is backed up).
        let s = start(backend, |_| {});
        let c = connect(s.addr);
        let n = 40;
        let mut reqs = Vec::new();
        for i in 0..n {
            reqs.extend(get(if i % 2 == 0 { "/big.bin" } else { "/hello.txt" }));
        }
        let w = c.try_clone().unwrap();
        let writer = thread::spawn(move || {
            let mut w = w;
            w.write_all(&reqs).unwrap();
        });
        thread::sleep(Duration::from_millis(100));
        let mut r = BufReader::new(c);
        for i in 0..n {
            let resp = read_response(&mut r, false).unwrap();
            assert_eq!(resp.status, 200);
            if i % 2 == 0 {
                assert_eq!(resp.body.len(), BIG, "response {i}");
                assert_eq!(resp.body[BIG - 1], big_byte(BIG - 1));
            } else {
                assert_eq!(text(&resp.body), HELLO, "response {i}");
            }
        }
        writer.join().unwrap();
        r.get_mut().shutdown(Shutdown::Write).unwrap();
        expect_closed(&mut r, backend.name());
    }

    fn malformed_requests(backend: Backend) {
        let s = start(backend, |c| {
            c.limits.max_request_line = 1024;
            c.limits.max_head = 4096;
            c.limits.max_headers = 20;
            c.limits.max_body = 1000;
        });
        let many_headers: String = (0..30).map(|i| format!("X-{i}: v\r\n")).collect();
        let cases: Vec<(Vec<u8>, u16)> = vec![
        (b"GARBAGE\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\nHost t\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n".to_vec(), 400),
        (
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            400,
        ),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(), 400),
        (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n".to_vec(), 400),
        (b"GET /%ff%fe HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(), 400),
        (b"GET nopath HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(), 400),
        (format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(2000)).into_bytes(), 414),
        (format!("GET / HTTP/1.1\r\nHost: t\r\nX: {}\r\n\r\n", "b".repeat(5000)).into_bytes(), 431),
        (format!("GET / HTTP/1.1\r\nHost: t\r\n{many_headers}\r\n").into_bytes(), 431),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n".to_vec(), 413),
        (b"BREW /pot HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(), 501),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(), 501),
        (b"GET / HTTP/2.0\r\n\r\n".to_vec(), 505),
        // A space inside the target is a malformed line, not a version to refuse.
        (b"GET /a b HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1 extra\r\nHost: t\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\nHost: t\r\nExpect: tea\r\n\r\n".to_vec(), 417),
    ];
        for (raw, want) in cases {
            let (resp, mut r) = exchange(s.addr, &raw);
            assert_eq!(resp.status, want, "{:?}", text(&raw));
            if want != 501 || raw.starts_with(b"POST") {
                assert_eq!(resp.header("connection"), Some("close"), "{:?}", text(&raw));
                expect_closed(&mut r, backend.name());
            }
        }
        // A refused request after a good one on the same connection: the good answer,
        // then the 400, then EOF.
        let mut raw = get("/plaintext");
        raw.extend(b"NOT HTTP AT ALL\r\n\r\n");
        let (a, mut r) = exchange(s.addr, &raw);
        assert_eq!(a.status, 200);
        assert_eq!(read_response(&mut r, false).unwrap().status, 400);
        expect_closed(&mut r, backend.name());
        // Random garbage never kills the server.
        let mut x: u32 = 0x1234_5678;
        for _ in 0..50 {
            let junk: Vec<u8> = (0..200)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let mut c = connect(s.addr);
            let _ = c.write_all(&junk);
            let _ = c.write_all(b"\r\n\r\n");
            let mut sink = Vec::new();
            let _ = c.read_to_end(&mut sink);
        }
        let (ok, _) = exchange(s.addr, &get("/plaintext"));
        assert_eq!(ok.status, 200, "still serving after garbage");
    }

    fn path_traversal(backend: Backend) {
        let s = start(backend, |_| {});
        for (path, allowed) in [
            ("/../secret.txt", &[400][..]),
            ("/docs/../../secret.txt", &[400]),
            ("/%2e%2e/secret.txt", &[400]),
            ("/%2E%2E%2Fsecret.txt", &[400]),
            ("/docs/%2e%2e/%2e%2e/secret.txt", &[400]),
            ("/..%5csecret.txt", &[400]),
            ("/docs\\..\\..\\secret.txt", &[400]),
            ("/hello.txt%00.html", &[400]),
            ("/escape.txt", &[404]),
            ("/escape-dir/secret.txt", &[404]),
            ("/escape-dir/", &[404]),
            ("/.hidden", &[404]),
            ("/%2ehidden", &[404]),
            ("/docs/.dotfile", &[404]),
            ("//etc/passwd", &[404]),
            ("/./hello.txt/..", &[200, 301]),
        ] {
            let (resp, _) = exchange(s.addr, &get(path));
            assert!(
                allowed.contains(&resp.status),
                "{path}: {} {:?}",
                resp.status,
                text(&resp.body)
            );
            assert!(
                !text(&resp.body).contains(SECRET),
                "{path} leaked the secret"
            );
        }
        let (resp, _) = exchange(s.addr, &get("/inside.txt"));
        assert_eq!(
            (resp.status, text(&resp.body)),
            (200, HELLO.to_string()),
            "symlink inside the root"
        );
        let (resp, _) = exchange(s.addr, &get("/docs/../hello.txt"));
        assert_eq!(resp.status, 200, "a .. that stays inside is resolved");
        // Absolute-form target.
        let (resp, _) = exchange(
            s.addr,
            b"GET http://t/hello.txt HTTP/1.1\r\nHost: t\r\n\r\n",
        );
        assert_eq!((resp.status, text(&resp.body)), (200, HELLO.to_string()));
    }

    fn directory_listing(backend: Backend) {
        let s = start(backend, |_| {});
        let (resp, _) = exchange(s.addr, &get("/docs/"));
        assert_eq!(resp.status, 200);
        assert!(resp
            .header("content-type")
            .unwrap()
            .starts_with("text/html"));
        let page = text(&resp.body);
        assert!(
            page.contains("a &lt;b&gt; &amp; &quot;c&quot;.txt"),
            "{page}"
        );
        assert!(
            page.contains("href=\"a%20%3Cb%3E%20%26%20%22c%22.txt\""),
            "{page}"
        );
        assert!(page.contains("plain.txt"));
        assert!(!page.contains("dotfile"), "dotfiles hidden: {page}");
        let (resp, _) = exchange(s.addr, &get("/docs/a%20%3Cb%3E%20%26%20%22c%22.txt"));
        assert_eq!(
            (resp.status, text(&resp.body)),
            (200, "weird\n".to_string())
        );
        let (resp, _) = exchange(s.addr, &get("/docs"));
        assert_eq!(
            (resp.status, resp.header("location")),
            (301, Some("/docs/"))
        );
        // Never an off-site (protocol-relative) Location.
        let (resp, _) = exchange(s.addr, &get("//docs?x=1"));
        assert_eq!(
            (resp.status, resp.header("location")),
            (301, Some("/docs/?x=1"))
        );
        let s = start(backend, |c| c.files.listing = false);
        let (resp, _) = exchange(s.addr, &get("/docs/"));
        assert_eq!(resp.status, 403);
    }

    fn methods(backend: Backend) {
        let s = start(backend, |_| {});
        let (r, _) = exchange(s.addr, b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(r.status, 204);
        assert!(r.header("allow").unwrap().contains("GET"));
        let (r, _) = exchange(s.addr, b"DELETE /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(
            (r.status, r.header("allow")),
            (405, Some("GET, HEAD, OPTIONS"))
        );
        let (r, _) = exchange(s.addr, b"OPTIONS /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(
            (r.status, r.header("allow")),
            (204, Some("GET, HEAD, OPTIONS"))
        );
        let (r, _) = exchange(s.addr, &get("/echo"));
        assert_eq!((r.status, r.header("allow")), (405, Some("POST, OPTIONS")));
        let (r, _) = exchange(
            s.addr,
            b"PUT /api/stats HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
        );
        assert_eq!(
            (r.status, r.header("allow")),
            (405, Some("GET, HEAD, OPTIONS"))
        );
        let (r, mut rd) = exchange(s.addr, b"FOO / HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(r.status, 501);
        // 501 on a well-formed request keeps the connection.
        rd.get_mut().write_all(&get("/plaintext")).unwrap();
        assert_eq!(read_response(&mut rd, false).unwrap().status, 200);
        let (r, _) = exchange(s.addr, &get("/api/stats"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(text(&r.body).contains("\"connections_open\":"));
    }

    fn http10_and_connection_header(backend: Backend) {
        let s = start(backend, |_| {});
        // 1.0 without keep-alive: answered, then closed.
        let (r, mut rd) = exchange(s.addr, b"GET /hello.txt HTTP/1.0\r\n\r\n");
        assert_eq!((r.status, text(&r.body)), (200, HELLO.to_string()));
        assert_eq!(r.header("connection"), Some("close"));
        expect_closed(&mut rd, backend.name());
        // 1.0 with keep-alive: stays open.
        let (r, mut rd) = exchange(
            s.addr,
            b"GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        );
        assert_eq!(r.header("connection"), Some("keep-alive"));
        rd.get_mut()
            .write_all(b"GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        assert_eq!(
            text(&read_response(&mut rd, false).unwrap().body),
            "Hello, World!"
        );
        // 1.1 with Connection: close.
        let (r, mut rd) = exchange(
            s.addr,
            b"GET /plaintext HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(r.header("connection"), Some("close"));
        expect_closed(&mut rd, backend.name());
        // 1.1 default keep-alive: no Connection header, several requests in turn.
        let mut c = BufReader::new(connect(s.addr));
        for _ in 0..5 {
            c.get_mut().write_all(&get("/plaintext")).unwrap();
            let r = read_response(&mut c, false).unwrap();
            assert_eq!(r.header("connection"), None);
            assert!(r.header("date").is_some() && r.header("server") == Some("readyloop"));
        }
    }

    fn expect_continue_raw(backend: Backend) {
        let s = start(backend, |_| {});
        let mut c = connect(s.addr);
        c.write_all(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        )
        .unwrap();
        let mut r = BufReader::new(c);
        let cont = read_response(&mut r, false).unwrap();
        assert_eq!(cont.status, 100);
        r.get_mut().write_all(b"hello").unwrap();
        let resp = read_response(&mut r, false).unwrap();
        assert_eq!((resp.status, text(&resp.body)), (200, "hello".to_string()));
    }

    fn slowloris_gets_408(backend: Backend) {
        let s = start(backend, |c| {
            c.header_timeout = Duration::from_millis(300);
            c.body_timeout = Duration::from_millis(300);
            c.keepalive_timeout = Duration::from_millis(400);
            c.linger_timeout = Duration::from_millis(500);
        });
        // Trickled head: 408 within the header timeout, however steady the trickle.
        let t0 = Instant::now();
        let mut c = connect(s.addr);
        c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n").unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        c.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        while t0.elapsed() < Duration::from_secs(5) {
            let _ = c.write_all(b"X-Slow: 1\r\n");
            match c.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
        let elapsed = t0.elapsed();
        let got = text(&got);
        assert!(got.starts_with("HTTP/1.1 408 "), "{got:?}");
        assert!(got.contains("Connection: close"));
        assert!(elapsed < Duration::from_secs(3), "closed after {elapsed:?}");
        // Slow body: 408 too.
        let mut c = connect(s.addr);
        c.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
            .unwrap();
        let mut r = BufReader::new(c);
        assert_eq!(read_response(&mut r, false).unwrap().status, 408);
        // Idle keep-alive connection: closed quietly after the keep-alive timeout.
        let (ok, mut r) = exchange(s.addr, &get("/plaintext"));
        assert_eq!(ok.status, 200);
        let t0 = Instant::now();
        expect_closed(&mut r, backend.name());
        assert!(t0.elapsed() < Duration::from_secs(3));
        // A connection that never sends anything is closed after the header timeout.
        let mut c = connect(s.addr);
        let t0 = Instant::now();
        let mut sink = Vec::new();
        let _ = c.read_to_end(&mut sink);
        assert!(sink.is_empty());
        assert!(t0.elapsed() < Duration::from_secs(3));
    }

    fn max_connections(backend: Backend) {
        let s = start(backend, |c| c.listen.max_connections = 2);
        let mut a = BufReader::new(connect(s.addr));
        let mut b = BufReader::new(connect(s.addr));
        for c in [&mut a, &mut b] {
            c.get_mut().write_all(&get("/plaintext")).unwrap();
            assert_eq!(read_response(c, false).unwrap().status, 200);
        }
        let mut third = connect(s.addr);
        let _ = third.write_all(&get("/plaintext"));
        // Refused: closed without an answer (EOF, or a reset because our request was
        // unread). A timeout means it was neither served nor refused.
        let mut sink = Vec::new();
        match third.read_to_end(&mut sink) {
            Ok(_) => assert!(
                sink.is_empty(),
                "{backend}: third connection served: {:?}",
                text(&sink)
            ),
            Err(e) => assert_eq!(
                e.kind(),
                io::ErrorKind::ConnectionReset,
                "{backend}: third connection neither refused nor served: {e}"
            ),
        }
        drop(a);
        // A slot frees up eventually.
        let t0 = Instant::now();
        loop {
            let mut c = connect(s.addr);
            let _ = c.write_all(&get("/plaintext"));
            let mut r = BufReader::new(c);
            if let Ok(resp) = read_response(&mut r, false) {
                assert_eq!(resp.status, 200);
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(5), "no slot freed");
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn wrk_load(backend: Backend) {
        if !have_tool("wrk", "wrk") {
            return;
        }
        let s = start(backend, |c| c.access_log = false);
        for path in ["/plaintext", "/hello.txt"] {
            let out = run_with_deadline(
                Command::new("wrk").args(["-t1", "-c10", "-d1s", "--timeout", "5s", &s.url(path)]),
                None,
                Duration::from_secs(20),
            );
            let report = text(&out.stdout);
            assert!(
                out.status.success(),
                "wrk failed: {report} {}",
                text(&out.stderr)
            );
            assert!(!report.contains("Socket errors"), "{path}: {report}");
            assert!(!report.contains("Non-2xx"), "{path}: {report}");
            let requests: u64 = report
                .lines()
                .find_map(|l| {
                    l.split_once(" requests in ")
                        .map(|(n, _)| n.trim().parse().unwrap())
                })
                .unwrap_or_else(|| panic!("no request count: {report}"));
            assert!(requests > 100, "{path}: only {requests} requests: {report}");
        }
    }
);

per_backend!(
    fn example_server_process(backend: Backend) {
        let mut srv = ServerProcess::example("http_server", backend, &["--listen", "127.0.0.1:0"]);
        let addr = srv.ready_addr("tcp");
        assert!(addr.ip().is_loopback(), "{addr}");
        // The bundled site.
        let (r, _) = exchange(addr, &get("/"));
        assert_eq!(r.status, 200);
        assert!(text(&r.body).contains("readyloop"));
        let (r, _) = exchange(addr, &get("/hello.txt"));
        assert_eq!(r.status, 200);
        // Issue 9's request, which made the example exit on every backend: answered,
        // and the process lives on and serves.
        let (r, _) = exchange(
            addr,
            b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nRange: bytes\xc3\xa9=0-1\r\n\r\n",
        );
        assert!(
            r.status == 200 || r.status == 416,
            "{backend}: {}",
            r.status
        );
        assert!(
            srv.wait_exit(Duration::ZERO).is_none(),
            "{backend}: http_server exited"
        );
        let (r, _) = exchange(addr, &get("/hello.txt"));
        assert_eq!(r.status, 200, "{backend}: served after the Range request");
        // SIGTERM: graceful, exit 0.
        srv.terminate();
        let status = srv
            .wait_exit(IO_TIMEOUT)
            .expect("http_server did not exit after SIGTERM");
        let err = srv.stderr_to_end();
        assert!(status.success(), "exit {status:?}: {err}");
        assert!(
            err.contains("\"GET /hello.txt HTTP/1.1\" 200 "),
            "access log: {err}"
        );
    }

    fn cache_notices_rewrite_with_old_mtime(backend: Backend) {
        // Revalidate on every request, so only the change check decides.
        let s = start(backend, |c| c.files.revalidate = Duration::ZERO);
        let path = s.dir.join("root/same.txt");
        std::fs::write(&path, "version A\n").unwrap();
        let (a, _) = exchange(s.addr, &get("/same.txt"));
        assert_eq!((a.status, text(&a.body)), (200, "version A\n".to_string()));
        // Rewrite in place with the same size and put the old mtime back (as `cp -p`,
        // `rsync -t`, `tar x` or `touch -r` do): same inode, size and mtime; only the
        // ctime (which no one can set) tells the file changed.
        use std::os::unix::fs::MetadataExt;
        let before = std::fs::metadata(&path).unwrap();
        let mtime = before.modified().unwrap();
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all(b"version B\n").unwrap();
        f.set_modified(mtime).unwrap();
        // File times tick coarsely: make sure the ctime did move.
        for _ in 0..200 {
            let m = std::fs::metadata(&path).unwrap();
            if (m.ctime(), m.ctime_nsec()) != (before.ctime(), before.ctime_nsec()) {
                break;
            }
            thread::sleep(Duration::from_millis(5));
            f.set_modified(mtime).unwrap();
        }
        drop(f);
        let after = std::fs::metadata(&path).unwrap();
        assert_eq!(after.modified().unwrap(), mtime);
        assert_eq!(after.len(), before.len());
        let (b, _) = exchange(s.addr, &get("/same.txt"));
        assert_eq!(
            (b.status, text(&b.body)),
            (200, "version B\n".to_string()),
            "served stale cached contents"
        );
    }

    fn stray_crlf_after_request_keeps_connection_idle(backend: Backend) {
        // Old clients send an extra CRLF after a POST body; RFC 9112 2.2: a server
        // ignores empty lines before a request line. The connection is then idle (keep-alive
        // timeout), not inside a request head (header timeout, 408).
        let s = start(backend, |c| {
            c.header_timeout = Duration::from_millis(200);
            c.keepalive_timeout = Duration::from_secs(60);
        });
        let mut c = connect(s.addr);
        c.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc\r\n")
            .unwrap();
        let mut r = BufReader::new(c);
        let a = read_response(&mut r, false).unwrap();
        assert_eq!((a.status, text(&a.body)), (200, "abc".to_string()));
        // Stay idle well past the header timeout (far below the keep-alive timeout).
        thread::sleep(Duration::from_millis(800));
        r.get_mut().write_all(&get("/plaintext")).unwrap();
        let b = read_response(&mut r, false).unwrap();
        assert_eq!(
            (b.status, text(&b.body)),
            (200, "Hello, World!".to_string()),
            "an idle keep-alive connection got {}",
            b.status
        );
    }

    fn range_numbers_beyond_u64(backend: Backend) {
        // Positions too large for 64 bits are still valid syntax (RFC 9110 14.1.1: 1*DIGIT):
        // a first position past the end is unsatisfiable (416, as nginx answers), a last
        // position past the end means "to the end", a suffix longer than the file is all
        // of it.
        let s = start(backend, |_| {});
        let huge = "99999999999999999999999";
        let ask = |range: String| {
            let raw = format!("GET /hello.txt HTTP/1.1\r\nHost: t\r\nRange: {range}\r\n\r\n");
            exchange(s.addr, raw.as_bytes()).0
        };
        let all = format!("bytes 0-{}/{}", HELLO.len() - 1, HELLO.len());
        let r = ask(format!("bytes={huge}-"));
        assert_eq!(r.status, 416, "first position beyond u64");
        let unsat = format!("bytes */{}", HELLO.len());
        assert_eq!(r.header("content-range"), Some(unsat.as_str()));
        let r = ask(format!("bytes=0-{huge}"));
        assert_eq!(r.status, 206, "last position beyond u64");
        assert_eq!(r.header("content-range"), Some(all.as_str()));
        assert_eq!(text(&r.body), HELLO);
        let r = ask(format!("bytes=-{huge}"));
        assert_eq!(r.status, 206, "suffix beyond u64");
        assert_eq!(r.header("content-range"), Some(all.as_str()));
        assert_eq!(text(&r.body), HELLO);
    }

    fn header_timeout_counts_from_connect(backend: Backend) {
        // The first head must be complete within the header timeout of the connection's
        // start (HttpConfig::header_timeout): waiting before the first byte must not buy
        // the client a second full period.
        // With TCP_DEFER_ACCEPT (the default) the kernel holds a silent connection and
        // the server first sees it with its first bytes: the timeout counts from there.
        // Off here, so the server has the connection from the connect.
        let s = start(backend, |c| {
            c.header_timeout = Duration::from_millis(400);
            c.keepalive_timeout = Duration::from_secs(60);
            c.listen.defer_accept = None;
        });
        let mut c = connect(s.addr);
        let t0 = Instant::now();
        thread::sleep(Duration::from_millis(300));
        let _ = c.write_all(b"GET /plaintext HTTP/1.1\r\n");
        thread::sleep(Duration::from_millis(300));
        let _ = c.write_all(b"Host: t\r\n\r\n");
        // Well before IO_TIMEOUT: a server that waits for more must fail the case, not
        // pass it as a read error.
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut r = BufReader::new(c);
        // A 408, or a close without an answer; never the answer to the late request,
        // and never silence.
        match read_response(&mut r, false) {
            Ok(resp) => assert_eq!(
            resp.status, 408,
            "{backend}: a head completed 600 ms after connect (header timeout 400 ms) was served"
        ),
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
                ),
                "{backend}: no 408 and no close {:?} after connect: {e}",
                t0.elapsed()
            ),
        }
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "{backend}: the header timeout (400 ms) took {:?}",
            t0.elapsed()
        );
    }

    /// The request from issue 9: a `Range` unit holding a multi-byte character (bytes
    /// 0xC3 0xA9) used to slice a `&str` inside the character, and the panic took the
    /// whole server down. Now the range is invalid syntax (the whole file, 200), and the
    /// server keeps serving, this connection and others.
    fn range_with_non_ascii_bytes(backend: Backend) {
        let s = start(backend, |_| {});
        let mut c = BufReader::new(connect(s.addr));
        for range in [
            &b"bytes\xc3\xa9=0-1"[..],
            b"bytes=\xc3\xa9-1",
            b"bytes=0-\xc3\xa9",
            b"byte\xc3\xa9",
            b"\xff\xfe\xfd\xfc\xfb\xfa\xf9",
        ] {
            let mut raw = b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nRange: ".to_vec();
            raw.extend_from_slice(range);
            raw.extend_from_slice(b"\r\n\r\n");
            c.get_mut().write_all(&raw).unwrap();
            let resp = read_response(&mut c, false)
                .unwrap_or_else(|e| panic!("{backend}: Range {range:?}: no answer: {e}"));
            assert!(
                resp.status == 200 || resp.status == 416,
                "{backend}: Range {range:?}: {}",
                resp.status
            );
            if resp.status == 200 {
                assert_eq!(text(&resp.body), HELLO, "{backend}");
            }
        }
        let (r, _) = exchange(s.addr, &get("/plaintext"));
        assert_eq!(r.status, 200, "{backend}: the server stopped serving");
    }
);

fn stats_json(addr: SocketAddr) -> serde_json::Value {
    let (r, _) = exchange(addr, &get("/api/stats"));
    assert_eq!(r.status, 200);
    serde_json::from_slice(&r.body).expect("stats JSON")
}

per_backend!(
    /// A route handler that panics costs its connection only (closed without an
    /// answer); a keep-alive client is still served on its connection, the server's
    /// open-connection count stays right (the protocol heard `connection_lost`), and
    /// `/api/stats` counts the panic.
    fn panicking_route_costs_one_connection(backend: Backend) {
        let s = start(backend, |_| {});
        let before = stats_json(s.addr)["panics_contained"]
            .as_u64()
            .expect("panics_contained in /api/stats");
        let mut keep = BufReader::new(connect(s.addr));
        keep.get_mut().write_all(&get("/plaintext")).unwrap();
        assert_eq!(read_response(&mut keep, false).unwrap().status, 200);

        let mut bad = connect(s.addr);
        bad.write_all(&get("/panic")).unwrap();
        let mut r = BufReader::new(bad);
        expect_closed(&mut r, backend.name());

        keep.get_mut().write_all(&get("/plaintext")).unwrap();
        let resp = read_response(&mut keep, false).expect("keep-alive client still served");
        assert_eq!(resp.status, 200, "{backend}");
        let stats = stats_json(s.addr);
        // Other cases of this binary may panic too (the counter is per process).
        let after = stats["panics_contained"].as_u64().unwrap();
        assert!(after > before, "{backend}: panic not counted: {stats}");
        // The keep-alive client and the stats request itself.
        assert_eq!(stats["connections_open"], 2, "{backend}: {stats}");
    }

    fn file_cache_bounds_open_descriptors(backend: Backend) {
        // Files above cache_max_file are cached as open descriptors. With a descriptor per
        // distinct large file (up to 4096 entries), a site with ~1000 of them exhausted the
        // common limit of 1024: every uncached file became a 404, new connections failed.
        let s = start(backend, |c| c.files.cache_max_open = 4);
        let dir = s.dir.join("root/many");
        std::fs::create_dir_all(&dir).unwrap();
        let n = 40;
        for i in 0..n {
            let f = std::fs::File::create(dir.join(format!("f{i}.bin"))).unwrap();
            f.set_len(300 * 1024).unwrap(); // above cache_max_file: sendfile, no copy
        }
        for i in 0..n {
            let (r, _) = exchange(s.addr, &get(&format!("/many/f{i}.bin")));
            assert_eq!((r.status, r.body.len()), (200, 300 * 1024), "f{i}.bin");
        }
        // Descriptors this process holds on files under that directory (the server runs
        // in-process; the directory is this test's own).
        let open = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|t| t.starts_with(&dir))
            .count();
        assert!(
            open <= 4,
            "{open} descriptors held open for {n} cached files"
        );
    }

    fn dot_segments_resolved_before_routing(backend: Backend) {
        // The router and every handler see the path with `.` and `..` resolved (RFC 3986
        // 5.2.4, after percent-decoding): `/files/*` must not claim `/files/../x`.
        let s = start(backend, |_| {});
        for (path, want) in [
            ("/files/../hello.txt", HELLO.to_string()),
            ("/files/%2e%2e/hello.txt", HELLO.to_string()),
            ("/files/sub/../../hello.txt", HELLO.to_string()),
            ("/files/./a/./b", "files route /files/a/b".to_string()),
            ("/files/a/../b", "files route /files/b".to_string()),
            ("/x/../files/c", "files route /files/c".to_string()),
        ] {
            let (r, _) = exchange(s.addr, &get(path));
            assert_eq!((r.status, text(&r.body)), (200, want), "{path}");
        }
        // Climbing above `/` is refused, whoever would have handled the path.
        for path in ["/files/../../hello.txt", "/files/%2e%2e/%2E%2E/x", "/.."] {
            let (r, _) = exchange(s.addr, &get(path));
            assert_eq!(r.status, 400, "{path}");
        }
    }

    fn absolute_form_keeps_query(backend: Backend) {
        // `GET http://host/path?q HTTP/1.1` means what `GET /path?q` means (RFC 9112 3.2.2);
        // the authority ends at the first `/` or `?`, so a `/` inside the query is not the
        // path, and an empty path is `/` with the query kept.
        let s = start(backend, |_| {});
        for (target, want) in [
            ("http://t/custom?q=1", "custom q=1"),
            ("HTTP://t:80/custom?a=/b&c=d", "custom a=/b&c=d"),
            ("/custom?a=/b&c=d", "custom a=/b&c=d"),
        ] {
            let raw = format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n");
            let (r, _) = exchange(s.addr, raw.as_bytes());
            assert_eq!(
                (r.status, text(&r.body)),
                (200, want.to_string()),
                "{target}"
            );
        }
        // No path, a query with a slash: the root, not `/custom`.
        let (r, _) = exchange(
            s.addr,
            b"GET http://t?x=/custom HTTP/1.1\r\nHost: t\r\n\r\n",
        );
        assert_eq!((r.status, text(&r.body)), (200, INDEX.to_string()));
        // The query survives into a redirect built from it.
        let (r, _) = exchange(
            s.addr,
            b"GET http://t/docs?x=/y HTTP/1.1\r\nHost: t\r\n\r\n",
        );
        assert_eq!((r.status, r.header("location")), (301, Some("/docs/?x=/y")));
    }

    fn options_on_missing_file_is_404(backend: Backend) {
        // OPTIONS names a resource as GET does: a missing one is 404, not 204.
        let s = start(backend, |_| {});
        for path in ["/nope.txt", "/docs/nope/", "/escape.txt", "/.hidden"] {
            let (get_r, _) = exchange(s.addr, &get(path));
            let raw = format!("OPTIONS {path} HTTP/1.1\r\nHost: t\r\n\r\n");
            let (r, _) = exchange(s.addr, raw.as_bytes());
            assert_eq!((r.status, get_r.status), (404, 404), "OPTIONS {path}");
        }
        // Existing resources and `*` are unchanged.
        for path in ["/hello.txt", "/docs/", "/"] {
            let raw = format!("OPTIONS {path} HTTP/1.1\r\nHost: t\r\n\r\n");
            let (r, _) = exchange(s.addr, raw.as_bytes());
            assert_eq!(
                (r.status, r.header("allow")),
                (204, Some("GET, HEAD, OPTIONS")),
                "OPTIONS {path}"
            );
        }
        let (r, _) = exchange(s.addr, b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(r.status, 204);
    }

    fn listing_hides_symlinks_out_of_the_root(backend: Backend) {
        // A listing shows what fetching serves: a symlink leading out of the root (or to a
        // hidden file) is a 404 when fetched, so it is not listed either.
        let s = start(backend, |_| {});
        let docs = s.dir.join("root/docs");
        std::os::unix::fs::symlink(s.dir.join("secret.txt"), docs.join("out.txt")).unwrap();
        std::os::unix::fs::symlink(&s.dir, docs.join("outdir")).unwrap();
        std::os::unix::fs::symlink(s.dir.join("root/.hidden"), docs.join("tohidden")).unwrap();
        std::os::unix::fs::symlink(s.dir.join("root/hello.txt"), docs.join("in.txt")).unwrap();
        std::os::unix::fs::symlink(s.dir.join("root/sub"), docs.join("indir")).unwrap();
        let (resp, _) = exchange(s.addr, &get("/docs/"));
        let page = text(&resp.body);
        for name in ["out.txt", "outdir", "tohidden"] {
            let (r, _) = exchange(s.addr, &get(&format!("/docs/{name}")));
            assert_eq!(r.status, 404, "{name} is not served");
            assert!(!page.contains(name), "{name} listed: {page}");
        }
        for name in ["in.txt", "indir/"] {
            assert!(
                page.contains(&format!("href=\"{name}\"")),
                "{name} missing: {page}"
            );
            let (r, _) = exchange(s.addr, &get(&format!("/docs/{name}")));
            assert_eq!(r.status, 200, "{name} is served");
        }
    }

    fn listing_omits_non_utf8_names(backend: Backend) {
        // Paths are decoded as UTF-8 (Request::path is a str), so a file whose name is not
        // UTF-8 cannot be fetched (400); the listing omits it rather than show a dead link.
        use std::os::unix::ffi::OsStrExt;
        let s = start(backend, |_| {});
        let name = std::ffi::OsStr::from_bytes(b"bad\xff\xfename.txt");
        std::fs::write(s.dir.join("root/docs").join(name), "x\n").unwrap();
        let (r, _) = exchange(s.addr, &get("/docs/bad%FF%FEname.txt"));
        assert_eq!(r.status, 400);
        let (resp, _) = exchange(s.addr, &get("/docs/"));
        let page = text(&resp.body);
        assert!(!page.contains("name.txt"), "non-UTF-8 name listed: {page}");
        assert!(page.contains("plain.txt"), "{page}");
    }

    fn symlink_warnings_are_rate_limited(backend: Backend) {
        // Each request for a symlink out of the root used to log a warning: a client could
        // fill the log at the rate it sends requests.
        let s = start(backend, |_| {});
        let t0 = Instant::now();
        let n = 50;
        let mut c = BufReader::new(connect(s.addr));
        for _ in 0..n {
            c.get_mut().write_all(&get("/escape.txt")).unwrap();
            assert_eq!(read_response(&mut c, false).unwrap().status, 404);
        }
        // At most one a second (plus one for a second boundary crossed).
        let bound = t0.elapsed().as_secs() as usize + 2;
        let dir = s.dir.to_string_lossy().into_owned();
        let logged = warnings_about(&dir);
        assert!(logged >= 1, "the first one is logged");
        assert!(logged <= bound, "{logged} warnings for {n} requests");
    }

    fn aborted_download_counts_bytes_sent(backend: Backend) {
        // A client that hangs up mid-response: the access log and /api/stats count what
        // reached the kernel, not the whole body queued.
        let s = start(backend, |_| {});
        let size: u64 = 256 << 20; // sparse: sendfile reads holes as zeros
        let name = format!("huge-{}.bin", s.addr.port());
        std::fs::File::create(s.dir.join("root").join(&name))
            .unwrap()
            .set_len(size)
            .unwrap();
        let before = stats_bytes_sent(s.addr);
        let mut c = BufReader::new(connect(s.addr));
        c.get_mut().write_all(&get(&format!("/{name}"))).unwrap();
        let mut line = String::new();
        c.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "{line:?}");
        let mut some = [0u8; 4096];
        c.read_exact(&mut some).unwrap();
        drop(c); // unread data: a reset
        let request = format!("GET /{name} HTTP/1.1");
        let logged = eventually(IO_TIMEOUT, "the access-log line", || logged_bytes(&request));
        assert!(logged < size, "logged {logged} of {size} bytes");
        let sent = stats_bytes_sent(s.addr) - before;
        assert!(sent < size, "stats count {sent} bytes sent of {size}");
        // A response sent in full is logged in full, while its connection stays open.
        let mut c = BufReader::new(connect(s.addr));
        let q = format!("/hello.txt?{}", s.addr.port());
        c.get_mut().write_all(&get(&q)).unwrap();
        assert_eq!(read_response(&mut c, false).unwrap().status, 200);
        let request = format!("GET {q} HTTP/1.1");
        let logged = eventually(IO_TIMEOUT, "the access-log line", || logged_bytes(&request));
        assert_eq!(logged, HELLO.len() as u64);
    }
);
