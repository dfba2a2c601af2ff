//! The TFTP server end to end, on every backend: real clients (tftp-hpa's `tftp`,
//! `atftp`, `curl`) getting and putting files, a Rust client that loses, delays and
//! duplicates packets on purpose, malformed packets, the path jail, the limits, and the
//! `tftp_server` example as a child process.
//!
//! Each case is written inside `per_backend!` (from `tests/support`), which adds one
//! test per backend. A missing
//! client skips its case with a note, except under `CI=true`, where it fails
//! (`scripts/setup` installs them). Every socket read has a timeout and every external
//! client runs under `timeout`, so a broken server fails a case, never hangs it.
//!
//! The file larger than 32 MiB (block numbers wrap past 65535 at 512-byte blocks) goes
//! through tftp-hpa, download and upload, on two backends (select and epoll-et: about
//! 4 s each in a debug build); everything else runs on every backend.

#[macro_use]
mod support;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use readyloop::net::Listen;
use readyloop::proto::tftp::packet::{self, ErrorCode, Mode, Packet};
use readyloop::proto::tftp::{TftpConfig, TftpServer};
use readyloop::reactor::Config;
use readyloop::selector::Backend;

use support::*;

/// Retransmission timeout of the in-process servers in the cases that count the
/// server's retransmissions (short, so they are quick); the other cases keep the
/// server's default (1 s, 5 retries), so a client stalled on a loaded machine is not
/// taken for a lost one.
const TIMEOUT: Duration = Duration::from_millis(100);
/// Retries in those cases.
const RETRIES: u32 = 4;
/// Retransmission timeout of the cases that lose packets on purpose: long enough that
/// a test thread delayed by a busy machine rarely causes an extra one.
const LOSSY_TIMEOUT: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------

/// A fresh directory under the temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("readyloop-tftp-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `n` pattern bytes.
fn pattern(n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n);
    send_pattern(&mut v, n as u64).unwrap();
    v
}

/// A server root with a few files, and the in-process server on it.
struct Fixture {
    lt: LoopThread,
    addr: SocketAddr,
    root: TempDir,
}

fn config(root: &Path) -> TftpConfig {
    let mut cfg = TftpConfig::new(root);
    cfg.allow_write = true;
    cfg
}

fn short_timeout(cfg: &mut TftpConfig) {
    cfg.timeout = TIMEOUT;
    cfg.retries = RETRIES;
}

fn lossy_timeout(cfg: &mut TftpConfig) {
    cfg.timeout = LOSSY_TIMEOUT;
    cfg.retries = 10;
}

fn serve(backend: Backend, tag: &str, tune: impl FnOnce(&mut TftpConfig)) -> Fixture {
    let root = TempDir::new(tag);
    let mut cfg = config(root.path());
    tune(&mut cfg);
    let (lt, addr) = spawn_loop(backend, Config::default(), move |r| {
        let server = TftpServer::new(cfg).unwrap();
        r.bind_udp("127.0.0.1:0", server).unwrap().1
    });
    Fixture { lt, addr, root }
}

impl Fixture {
    fn put_file(&self, name: &str, data: &[u8]) {
        std::fs::write(self.root.join(name), data).unwrap();
    }

    /// Waits until only the well-known socket is left (every transfer ended).
    fn idle(&self) {
        eventually(DEADLINE, "every transfer socket closed", || {
            (self.lt.call(|ctx| ctx.handler_count()) == 1).then_some(())
        });
    }

    /// Names in the root that are leftover temporary files.
    fn temp_files(&self) -> Vec<String> {
        std::fs::read_dir(self.root.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tftp-part"))
            .collect()
    }
}

// ---------------------------------------------------------------------------------
// External clients
// ---------------------------------------------------------------------------------

/// Runs `tool args` in `dir` under `timeout 60`; returns its output.
fn run_in(dir: &Path, tool: &str, args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("60")
        .arg(tool)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"))
}

fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// tftp-hpa: `tftp 127.0.0.1 PORT -m MODE -c CMD FILE`.
fn tftp_hpa(dir: &Path, addr: SocketAddr, mode: &str, cmd: &str, file: &str) -> Output {
    let port = addr.port().to_string();
    run_in(
        dir,
        "tftp",
        &["127.0.0.1", &port, "-m", mode, "-c", cmd, file],
    )
}

fn same_file(a: &Path, b: &Path) {
    let x = std::fs::read(a).unwrap_or_else(|e| panic!("read {}: {e}", a.display()));
    let y = std::fs::read(b).unwrap_or_else(|e| panic!("read {}: {e}", b.display()));
    assert!(
        x == y,
        "{} ({} bytes) and {} ({} bytes) differ",
        a.display(),
        x.len(),
        b.display(),
        y.len()
    );
}

const TEXT: &[u8] = b"first line\nsecond line\nbare\rcarriage return\n\n\ttab line\nno newline";

per_backend!(
    fn tftp_hpa_get_put(backend: Backend) {
        if !have_tool("tftp", "tftp-hpa") {
            return;
        }
        let f = serve(backend, "hpa", |_| {});
        let local = TempDir::new("hpa-local");
        f.put_file("bin", &pattern(200_000));
        f.put_file("exact", &pattern(512 * 8));
        f.put_file("empty", b"");
        f.put_file("text.txt", TEXT);
        for name in ["bin", "exact", "empty"] {
            ok(
                &tftp_hpa(local.path(), f.addr, "binary", "get", name),
                &format!("{backend}: tftp get {name}"),
            );
            same_file(&local.join(name), &f.root.join(name));
        }
        // Netascii: the client converts CR LF back to its local LF.
        ok(
            &tftp_hpa(local.path(), f.addr, "ascii", "get", "text.txt"),
            "tftp ascii get",
        );
        same_file(&local.join("text.txt"), &f.root.join("text.txt"));
        // Uploads, binary and ascii, under new names.
        std::fs::write(local.join("up.bin"), pattern(100_001)).unwrap();
        ok(
            &tftp_hpa(local.path(), f.addr, "binary", "put", "up.bin"),
            "tftp put",
        );
        std::fs::write(local.join("up.txt"), TEXT).unwrap();
        ok(
            &tftp_hpa(local.path(), f.addr, "ascii", "put", "up.txt"),
            "tftp ascii put",
        );
        f.idle();
        same_file(&local.join("up.bin"), &f.root.join("up.bin"));
        same_file(&local.join("up.txt"), &f.root.join("up.txt"));
        // A missing file is error 1, and the client says so.
        let out = tftp_hpa(local.path(), f.addr, "binary", "get", "missing");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(all.contains("Error code 1"), "{backend}: {all}");
        f.idle();
        assert!(f.temp_files().is_empty());
        f.lt.stop().unwrap();
    }
);

per_backend!(
    #[backends(select, epoll_et)]
    /// Over 32 MiB at 512-byte blocks: block numbers wrap past 65535, both directions.
    /// The download and upload take about 4 s per backend in a debug build, so they run
    /// on two: select (level-triggered, the oldest) and epoll-et (edge-triggered).
    fn big_file_block_wrap(backend: Backend) {
        if !have_tool("tftp", "tftp-hpa") {
            return;
        }
        let f = serve(backend, "big", |_| {});
        let local = TempDir::new("big-local");
        let size = (33 << 20) + 777;
        f.put_file("big", &pattern(size));
        ok(
            &tftp_hpa(local.path(), f.addr, "binary", "get", "big"),
            &format!("{backend}: get big"),
        );
        same_file(&local.join("big"), &f.root.join("big"));
        std::fs::rename(local.join("big"), local.join("big-up")).unwrap();
        ok(
            &tftp_hpa(local.path(), f.addr, "binary", "put", "big-up"),
            &format!("{backend}: put big"),
        );
        f.idle();
        same_file(&local.join("big-up"), &f.root.join("big-up"));
        f.lt.stop().unwrap();
    }
);

per_backend!(
    fn atftp_options(backend: Backend) {
        if !have_tool("atftp", "atftp") {
            return;
        }
        let f = serve(backend, "atftp", |_| {});
        let local = TempDir::new("atftp-local");
        f.put_file("data", &pattern(300_000));
        let port = f.addr.port().to_string();
        let cases: &[&[&str]] = &[
            &[],
            &["--option", "blksize 1428", "--option", "tsize enable"],
            &["--option", "timeout 2"],
            &["--option", "blksize 65464"],
            &["--option", "windowsize 16", "--option", "blksize 1428"],
            &["--option", "windowsize 4"],
        ];
        for (i, opts) in cases.iter().enumerate() {
            let got = format!("got{i}");
            let mut args = vec!["-g", "-r", "data", "-l", &got];
            args.extend_from_slice(opts);
            args.extend_from_slice(&["127.0.0.1", &port]);
            ok(
                &run_in(local.path(), "atftp", &args),
                &format!("{backend}: atftp get {opts:?}"),
            );
            same_file(&local.join(&got), &f.root.join("data"));
            // And the same options for an upload.
            let put = format!("put{i}");
            let mut args = vec!["-p", "-l", &got, "-r", &put];
            args.extend_from_slice(opts);
            args.extend_from_slice(&["127.0.0.1", &port]);
            ok(
                &run_in(local.path(), "atftp", &args),
                &format!("{backend}: atftp put {opts:?}"),
            );
        }
        f.idle();
        for i in 0..cases.len() {
            same_file(&f.root.join(&format!("put{i}")), &f.root.join("data"));
        }
        f.lt.stop().unwrap();
    }

    fn curl_download(backend: Backend) {
        if !have_tool("curl", "curl") {
            return;
        }
        let f = serve(backend, "curl", |_| {});
        let local = TempDir::new("curl-local");
        f.put_file("file.bin", &pattern(123_457));
        for blksize in ["512", "1024", "8192"] {
            let url = format!("tftp://{}/file.bin", f.addr);
            let out = run_in(
                local.path(),
                "curl",
                &["-sS", "--tftp-blksize", blksize, "-o", "got", &url],
            );
            ok(&out, &format!("{backend}: curl {url} blksize {blksize}"));
            same_file(&local.join("got"), &f.root.join("file.bin"));
        }
        f.lt.stop().unwrap();
    }
);

// ---------------------------------------------------------------------------------
// A Rust client that misbehaves on purpose
// ---------------------------------------------------------------------------------

struct Client {
    sock: UdpSocket,
    server: SocketAddr,
}

impl Client {
    fn new(server: SocketAddr) -> Client {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Client { sock, server }
    }

    fn send(&self, p: &[u8], to: SocketAddr) {
        self.sock.send_to(p, to).unwrap();
    }

    fn request(&self, op: u16, name: &str, opts: &[(&str, &str)]) {
        let p = packet::request_packet(op, name.as_bytes(), Mode::Octet, opts);
        self.send(&p, self.server);
    }

    /// The next datagram within `wait` (None on timeout).
    fn recv_within(&self, wait: Duration) -> Option<(Vec<u8>, SocketAddr)> {
        self.sock.set_read_timeout(Some(wait)).unwrap();
        let mut buf = vec![0u8; 70_000];
        let r = loop {
            match self.sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    buf.truncate(n);
                    break Some((buf, from));
                }
                Err(e) if is_timeout(&e) => break None,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => panic!("recv: {e} ({:?})", e.kind()),
            }
        };
        self.sock
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        r
    }

    fn recv(&self) -> (Vec<u8>, SocketAddr) {
        self.recv_within(Duration::from_secs(5))
            .expect("a datagram from the server within 5 s")
    }

    /// Expects an ERROR with `code`; returns its message.
    fn expect_error(&self, code: ErrorCode) -> String {
        let (p, _) = self.recv();
        match packet::parse(&p) {
            Ok(Packet::Error { code: c, message }) => {
                assert_eq!(c, code as u16, "{}", String::from_utf8_lossy(message));
                String::from_utf8_lossy(message).into_owned()
            }
            other => panic!("expected ERROR {code:?}, got {other:?}"),
        }
    }
}

fn data_of(p: &[u8]) -> (u16, Vec<u8>) {
    match packet::parse(p) {
        Ok(Packet::Data { block, data }) => (block, data.to_vec()),
        other => panic!("expected DATA, got {other:?}"),
    }
}

per_backend!(
    /// Reads `name` while dropping the first copy of some blocks, delaying one ACK and
    /// sending every ACK twice. The file must arrive whole, and the duplicated ACKs must
    /// not make the server send each block twice (the Sorcerer's Apprentice bug).
    fn lossy_read(backend: Backend) {
        let f = serve(backend, "lossy-read", lossy_timeout);
        let blocks = 120u64;
        let file = pattern(512 * (blocks as usize - 1) + 100);
        f.put_file("f", &file);
        let c = Client::new(f.addr);
        c.request(packet::RRQ, "f", &[]);
        let mut got = Vec::new();
        let mut expect = 1u64;
        let mut packets = 0u64;
        let mut dropped = std::collections::HashSet::new();
        let start = Instant::now();
        loop {
            assert!(start.elapsed() < DEADLINE, "{backend}: transfer too slow");
            let (p, tid) = c.recv();
            packets += 1;
            let (block, data) = data_of(&p);
            if block != expect as u16 {
                // A retransmission of a block we have: acknowledge it again (RFC 1350).
                assert_eq!(block, (expect - 1) as u16, "{backend}: unexpected block");
                c.send(&packet::ack(block), tid);
                continue;
            }
            if expect % 25 == 0 && dropped.insert(expect) {
                continue; // "lost": the server must retransmit it
            }
            if expect == 60 {
                // A delayed ACK: the server times out and repeats block 60 meanwhile.
                std::thread::sleep(LOSSY_TIMEOUT * 2);
            }
            got.extend_from_slice(&data);
            c.send(&packet::ack(block), tid);
            c.send(&packet::ack(block), tid);
            if data.len() < 512 {
                break;
            }
            expect += 1;
        }
        assert_eq!(expect, blocks);
        assert!(got == file, "{backend}: file differs");
        // Retransmissions: 4 dropped blocks, a repeat or two for the delayed ACK (and a
        // few more if this thread is descheduled for a timeout). With the Sorcerer's
        // Apprentice bug every block would come twice (about 240 packets).
        assert!(
            packets <= blocks + 30,
            "{backend}: {packets} DATA packets for {blocks} blocks"
        );
        // Nothing more arrives: the duplicate ACKs of the last block start nothing.
        assert!(c.recv_within(LOSSY_TIMEOUT * 2).is_none());
        f.idle();
        f.lt.stop().unwrap();
    }

    /// A client that stops answering: the server retransmits `RETRIES` times, then sends
    /// ERROR 0 and forgets the transfer.
    fn retry_limit(backend: Backend) {
        let f = serve(backend, "retry", short_timeout);
        f.put_file("f", &pattern(5000));
        let c = Client::new(f.addr);
        c.request(packet::RRQ, "f", &[]);
        let mut copies = 0;
        let start = Instant::now();
        let msg = loop {
            let (p, _) = c.recv();
            match packet::parse(&p) {
                Ok(Packet::Data { block: 1, .. }) => copies += 1,
                Ok(Packet::Error { code: 0, message }) => {
                    break String::from_utf8_lossy(message).into_owned()
                }
                other => panic!("{backend}: unexpected {other:?}"),
            }
        };
        assert_eq!(
            copies,
            1 + RETRIES,
            "{backend}: block 1 sent {copies} times"
        );
        assert!(msg.contains("timed out"), "{msg}");
        assert!(start.elapsed() >= TIMEOUT * RETRIES);
        f.idle();
        // An abandoned upload leaves no file, not even a temporary one.
        c.request(packet::WRQ, "half", &[]);
        let (p, tid) = c.recv();
        assert_eq!(packet::parse(&p), Ok(Packet::Ack { block: 0 }));
        let mut d = Vec::new();
        packet::data_header(&mut d, 1);
        d.extend_from_slice(&[7u8; 512]);
        c.send(&d, tid);
        assert_eq!(packet::parse(&c.recv().0), Ok(Packet::Ack { block: 1 }));
        assert_eq!(
            f.temp_files().len(),
            1,
            "the upload goes to a temporary file"
        );
        assert!(!f.root.join("half").exists());
        // The server repeats ACK 1 `RETRIES` times, then gives up.
        let mut acks = 0;
        let m = loop {
            match packet::parse(&c.recv().0) {
                Ok(Packet::Ack { block: 1 }) => acks += 1,
                Ok(Packet::Error { code: 0, message }) => {
                    break String::from_utf8_lossy(message).into_owned()
                }
                other => panic!("{backend}: unexpected {other:?}"),
            }
        };
        assert_eq!(acks, RETRIES);
        assert!(m.contains("timed out"), "{m}");
        f.idle();
        assert!(!f.root.join("half").exists());
        assert!(f.temp_files().is_empty(), "{:?}", f.temp_files());
        f.lt.stop().unwrap();
    }

    /// An upload whose blocks are duplicated and one lost: every block written once, the
    /// file complete, the lost one recovered through the server's ACK retransmission.
    fn lossy_write(backend: Backend) {
        let f = serve(backend, "lossy-write", lossy_timeout);
        let file = pattern(512 * 40 + 33);
        let c = Client::new(f.addr);
        c.request(packet::WRQ, "up", &[]);
        let (p, tid) = c.recv();
        assert_eq!(packet::parse(&p), Ok(Packet::Ack { block: 0 }));
        let chunks: Vec<&[u8]> = file.chunks(512).collect();
        // The next ACK of `block`, skipping repeats of earlier ones (retransmissions, if
        // this thread was slow for a timeout).
        let ack = |block: u16| loop {
            match packet::parse(&c.recv().0) {
                Ok(Packet::Ack { block: b }) if b == block => return,
                Ok(Packet::Ack { block: b }) if b < block => {}
                other => panic!("{backend}: expected ACK {block}, got {other:?}"),
            }
        };
        for (i, chunk) in chunks.iter().enumerate() {
            let block = (i + 1) as u16;
            let mut d = Vec::new();
            packet::data_header(&mut d, block);
            d.extend_from_slice(chunk);
            if block == 20 {
                // "Lost": the server times out and repeats ACK 19.
                ack(19);
            }
            c.send(&d, tid);
            c.send(&d, tid); // duplicated by the network
            ack(block);
            ack(block);
        }
        f.idle();
        assert!(std::fs::read(f.root.join("up")).unwrap() == file);
        assert!(f.temp_files().is_empty());
        f.lt.stop().unwrap();
    }

    /// RFC 7440: OACK, then windows of 8 blocks acknowledged once; a gap reported with
    /// the ACK of the block before it makes the server resend from there.
    fn windowed_read(backend: Backend) {
        let f = serve(backend, "window", |_| {});
        let file = pattern(512 * 30 + 1);
        f.put_file("w", &file);
        let c = Client::new(f.addr);
        c.request(packet::RRQ, "w", &[("windowsize", "8"), ("tsize", "0")]);
        let (p, tid) = c.recv();
        match packet::parse(&p) {
            Ok(Packet::Oack { options }) => {
                assert!(options.contains(&(&b"windowsize"[..], &b"8"[..])));
                let size = file.len().to_string();
                assert!(options.contains(&(&b"tsize"[..], size.as_bytes())));
            }
            other => panic!("expected OACK, got {other:?}"),
        }
        c.send(&packet::ack(0), tid);
        // First window: blocks 1..=8; pretend 5 was lost: ACK 4.
        let mut got = Vec::new();
        for b in 1..=8u16 {
            let (block, data) = data_of(&c.recv().0);
            assert_eq!(block, b);
            if b <= 4 {
                got.extend_from_slice(&data);
            }
        }
        c.send(&packet::ack(4), tid);
        let mut next = 5u16;
        loop {
            let mut last = false;
            let mut end = next;
            for _ in 0..8 {
                let (block, data) = data_of(&c.recv().0);
                assert_eq!(block, end, "{backend}: window resent from the gap");
                got.extend_from_slice(&data);
                end += 1;
                if data.len() < 512 {
                    last = true;
                    break;
                }
            }
            c.send(&packet::ack(end - 1), tid);
            if last {
                break;
            }
            next = end;
        }
        assert!(got == file);
        f.idle();
        f.lt.stop().unwrap();
    }

    /// RFC 7440 upload: windows of 4 acknowledged once; a lost block makes the server
    /// acknowledge the last one in order, once, and the next window counts from there.
    fn windowed_write(backend: Backend) {
        let f = serve(backend, "window-write", |_| {});
        let file = pattern(512 * 10 + 3);
        let blocks: Vec<&[u8]> = file.chunks(512).collect();
        let c = Client::new(f.addr);
        c.request(packet::WRQ, "ww", &[("windowsize", "4")]);
        let (p, tid) = c.recv();
        match packet::parse(&p) {
            Ok(Packet::Oack { options }) => {
                assert_eq!(options, vec![(&b"windowsize"[..], &b"4"[..])])
            }
            other => panic!("expected OACK, got {other:?}"),
        }
        let send = |b: usize| {
            let mut d = Vec::new();
            packet::data_header(&mut d, b as u16);
            d.extend_from_slice(blocks[b - 1]);
            c.send(&d, tid);
        };
        let ack = || match packet::parse(&c.recv().0) {
            Ok(Packet::Ack { block }) => block,
            other => panic!("{backend}: expected an ACK, got {other:?}"),
        };
        for b in 1..=4 {
            send(b);
        }
        assert_eq!(ack(), 4, "{backend}: one ACK per window");
        // Block 7 is lost: 8 is out of order, so the server acknowledges 6 (once).
        for b in [5, 6, 8] {
            send(b);
        }
        assert_eq!(ack(), 6);
        // The next window starts at 7 and is acknowledged at its end, 10.
        for b in 7..=10 {
            send(b);
        }
        assert_eq!(ack(), 10, "{backend}: the window counts from the gap's ACK");
        send(11);
        assert_eq!(ack(), 11);
        f.idle();
        assert!(std::fs::read(f.root.join("ww")).unwrap() == file);
        f.lt.stop().unwrap();
    }

    /// Packets from another address to a transfer's port get ERROR 5 and change nothing.
    fn unknown_tid(backend: Backend) {
        let f = serve(backend, "tid", |_| {});
        let file = pattern(512 * 3 + 5);
        f.put_file("t", &file);
        let c = Client::new(f.addr);
        let stranger = Client::new(f.addr);
        c.request(packet::RRQ, "t", &[]);
        let mut got = Vec::new();
        loop {
            let (p, tid) = c.recv();
            let (block, data) = data_of(&p);
            stranger.send(&packet::ack(block), tid);
            stranger.expect_error(ErrorCode::UnknownTid);
            got.extend_from_slice(&data);
            c.send(&packet::ack(block), tid);
            if data.len() < 512 {
                break;
            }
        }
        assert!(got == file);
        f.idle();
        f.lt.stop().unwrap();
    }

    /// Malformed packets on the well-known port get the right ERROR (or none, for an
    /// ERROR), and the server goes on serving.
    fn malformed_packets(backend: Backend) {
        let f = serve(backend, "malformed", |_| {});
        f.put_file("ok", b"fine");
        let c = Client::new(f.addr);
        let many: Vec<(&str, &str)> = (0..200).map(|_| ("opt", "1")).collect();
        let huge = packet::request_packet(packet::RRQ, b"ok", Mode::Octet, &many);
        let cases: Vec<(Vec<u8>, ErrorCode)> = vec![
            (b"".to_vec(), ErrorCode::IllegalOperation),
            (b"\x00".to_vec(), ErrorCode::IllegalOperation),
            (b"\x00\x09\x00\x01".to_vec(), ErrorCode::IllegalOperation),
            (b"\x00\x01ok".to_vec(), ErrorCode::IllegalOperation),
            (b"\x00\x01ok\x00octet".to_vec(), ErrorCode::IllegalOperation),
            (
                b"\x00\x01ok\x00mail\x00".to_vec(),
                ErrorCode::IllegalOperation,
            ),
            (
                b"\x00\x01\x00octet\x00".to_vec(),
                ErrorCode::IllegalOperation,
            ),
            (huge, ErrorCode::IllegalOperation),
            (
                b"\x00\x01ok\x00octet\x00blksize\x004\x00".to_vec(),
                ErrorCode::OptionRefused,
            ),
            (
                b"\x00\x01ok\x00octet\x00windowsize\x000\x00".to_vec(),
                ErrorCode::OptionRefused,
            ),
            (packet::ack(1).to_vec(), ErrorCode::UnknownTid),
            (b"\x00\x03\x00\x01data".to_vec(), ErrorCode::UnknownTid),
        ];
        for (p, code) in &cases {
            c.send(p, f.addr);
            c.expect_error(*code);
        }
        // An ERROR is never answered.
        c.send(&packet::error(ErrorCode::NotFound, "x"), f.addr);
        c.send(b"\x00\x05\x00", f.addr);
        assert!(c.recv_within(Duration::from_millis(300)).is_none());
        // A datagram as large as UDP allows, of garbage.
        c.send(&vec![0xffu8; 65_000], f.addr);
        c.expect_error(ErrorCode::IllegalOperation);
        // Still serving.
        c.request(packet::RRQ, "ok", &[]);
        let (p, tid) = c.recv();
        assert_eq!(data_of(&p), (1, b"fine".to_vec()));
        // Garbage from the peer on the transfer socket is dropped; the transfer goes on.
        c.send(b"\x00", tid);
        c.send(b"\x00\x04", tid);
        c.send(&packet::ack(1), tid);
        f.idle();
        assert!(c.recv_within(TIMEOUT * 2).is_none());
        f.lt.stop().unwrap();
    }

    /// A flood of garbage gets at most `MAX_ERRORS_PER_SEC` answers a second, and the
    /// server still serves afterwards.
    fn error_replies_are_rate_limited(backend: Backend) {
        use readyloop::proto::tftp::MAX_ERRORS_PER_SEC;
        let f = serve(backend, "flood", |_| {});
        f.put_file("ok", b"fine");
        let c = Client::new(f.addr);
        let sent = 3 * MAX_ERRORS_PER_SEC as usize;
        let start = Instant::now();
        for _ in 0..sent {
            c.send(b"\x00\x09garbage", f.addr);
        }
        let mut answers = 0usize;
        while c.recv_within(Duration::from_millis(300)).is_some() {
            answers += 1;
        }
        // One window of MAX_ERRORS_PER_SEC per second elapsed (plus the one started).
        let windows = start.elapsed().as_secs() as usize + 2;
        assert!(
            answers <= windows * MAX_ERRORS_PER_SEC as usize && answers < sent,
            "{backend}: {answers} answers to {sent} datagrams in {:?}",
            start.elapsed()
        );
        assert!(answers > 0);
        // A second later the server answers again, and serves.
        std::thread::sleep(Duration::from_millis(1100));
        c.request(packet::RRQ, "missing", &[]);
        c.expect_error(ErrorCode::NotFound);
        c.request(packet::RRQ, "ok", &[]);
        let (p, tid) = c.recv();
        assert_eq!(data_of(&p), (1, b"fine".to_vec()));
        c.send(&packet::ack(1), tid);
        f.idle();
        f.lt.stop().unwrap();
    }

    /// The jail and the refusals: error codes 1, 2, 6 and 0.
    fn refusals(backend: Backend) {
        let f = serve(backend, "refuse", |c| {
            c.max_transfers = 1;
            short_timeout(c);
        });
        let outside = TempDir::new("outside");
        std::fs::write(outside.join("secret"), b"secret").unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), f.root.join("link-out")).unwrap();
        std::fs::create_dir(f.root.join("sub")).unwrap();
        f.put_file("exists", b"x");
        // A FIFO: opening it for reading would block the loop until a writer came.
        let st = Command::new("mkfifo")
            .arg(f.root.join("fifo"))
            .status()
            .expect("run mkfifo");
        assert!(st.success());
        let c = Client::new(f.addr);
        let secret = outside.join("secret");
        let escape = format!(
            "../{}/secret",
            outside.path().file_name().unwrap().to_string_lossy()
        );
        for name in [
            escape.as_str(),
            secret.to_str().unwrap(),
            "link-out",
            "sub",
            "sub/../../x",
            "fifo",
        ] {
            c.request(packet::RRQ, name, &[]);
            c.expect_error(ErrorCode::AccessViolation);
            c.request(packet::WRQ, name, &[]);
            let m = c.recv().0;
            assert!(
                matches!(packet::parse(&m), Ok(Packet::Error { code: 2 | 6, .. })),
                "{name}: {:?}",
                packet::parse(&m)
            );
        }
        c.request(packet::RRQ, "missing", &[]);
        c.expect_error(ErrorCode::NotFound);
        c.request(packet::WRQ, "nodir/file", &[]);
        c.expect_error(ErrorCode::NotFound);
        c.request(packet::WRQ, "exists", &[]);
        c.expect_error(ErrorCode::FileExists);
        c.request(packet::WRQ, "big", &[("tsize", "99999999999999")]);
        c.expect_error(ErrorCode::DiskFull);
        // One transfer at most: a second client is refused while the first runs.
        c.request(packet::RRQ, "exists", &[]);
        let (p, _) = c.recv();
        assert_eq!(data_of(&p), (1, b"x".to_vec()));
        let d = Client::new(f.addr);
        d.request(packet::RRQ, "exists", &[]);
        let m = d.expect_error(ErrorCode::Undefined);
        assert!(m.contains("too many transfers"), "{m}");
        f.idle();
        f.lt.stop().unwrap();
        // Writes are off by default.
        let g = serve(backend, "readonly", |c| c.allow_write = false);
        let c = Client::new(g.addr);
        c.request(packet::WRQ, "new", &[]);
        c.expect_error(ErrorCode::AccessViolation);
        assert!(!g.root.join("new").exists());
        g.lt.stop().unwrap();
    }

    /// Many transfers at once on one reactor.
    fn concurrent_transfers(backend: Backend) {
        let f = serve(backend, "concurrent", |_| {});
        let file = pattern(512 * 20 + 7);
        f.put_file("c", &file);
        let clients: Vec<Client> = (0..16).map(|_| Client::new(f.addr)).collect();
        for c in &clients {
            c.request(packet::RRQ, "c", &[]);
        }
        let mut got: Vec<Vec<u8>> = vec![Vec::new(); clients.len()];
        let mut done = vec![false; clients.len()];
        let start = Instant::now();
        while done.iter().any(|d| !d) {
            assert!(start.elapsed() < DEADLINE);
            for (i, c) in clients.iter().enumerate() {
                if done[i] {
                    continue;
                }
                let (p, tid) = c.recv();
                let (block, data) = data_of(&p);
                if usize::from(block) != got[i].len() / 512 + 1 {
                    continue;
                }
                got[i].extend_from_slice(&data);
                c.send(&packet::ack(block), tid);
                done[i] = data.len() < 512;
            }
        }
        assert!(got.iter().all(|g| *g == file));
        f.idle();
        f.lt.stop().unwrap();
    }

    /// The example binary: ready line, a real download, SIGTERM.
    fn example_server(backend: Backend) {
        if !have_tool("tftp", "tftp-hpa") {
            return;
        }
        let root = TempDir::new("example");
        std::fs::write(root.join("hello.txt"), b"hello over tftp\n").unwrap();
        let mut srv = ServerProcess::example(
            "tftp_server",
            backend,
            &[
                "--listen",
                "127.0.0.1:0",
                "--root",
                root.path().to_str().unwrap(),
            ],
        );
        let url = srv.ready_url();
        let addr: SocketAddr = url
            .strip_prefix("tftp://")
            .unwrap_or_else(|| panic!("ready line {url}"))
            .parse()
            .unwrap();
        let local = TempDir::new("example-local");
        ok(
            &tftp_hpa(local.path(), addr, "binary", "get", "hello.txt"),
            "get from the example",
        );
        same_file(&local.join("hello.txt"), &root.join("hello.txt"));
        // Read-only by default.
        std::fs::write(local.join("up"), b"nope").unwrap();
        let out = tftp_hpa(local.path(), addr, "binary", "put", "up");
        let all = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(all.contains("Error code 2"), "{all}");
        assert!(!root.join("up").exists());
        srv.terminate();
        let st = srv.wait_exit(DEADLINE).expect("exit after SIGTERM");
        assert!(st.success(), "{st}\n{}", srv.stderr_to_end());
    }
);
