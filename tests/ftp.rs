//! The FTP server end to end, on every backend, with real clients: `curl` (list,
//! download, upload, resume, PASV/EPSV/PORT), `lftp` (mirror both ways, put, rm,
//! mkdir), Python's `ftplib` (`tests/support/ftp_checks.py`: reply codes, REST, ABOR
//! mid-transfer, bounce refusal, jail escapes, failed-login delay, idle timeout,
//! oversize lines), raw sockets for the hostile cases (PASV and never connect,
//! connect and never read, a reset mid-upload, thousands of PASV in a row), the
//! mini protocol with a classroom-style Python client, and the `ftp_server` example
//! as a child process.
//!
//! Every server is in-process on loopback port 0 with its own temporary root; every
//! socket read has a timeout, every child process a deadline. A missing client
//! skips its case with a note, except under `CI=true`, where it fails.

#[macro_use]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use readyloop::proto::ftp::accounts::{hash_password, user_line, HashCost};
use readyloop::proto::ftp::{FtpConfig, FtpServer, Users};
use readyloop::reactor::Config;
use readyloop::selector::Backend;
use support::{curl, have_tool, run_with_deadline, spawn_loop, text, LoopThread, IO_TIMEOUT};

const HELLO: &[u8] = b"Hello, FTP!\n";
const BIG: usize = 1 << 20;
const SECRET: &str = "TOP-SECRET-OUTSIDE-ROOT";

fn big_byte(i: usize) -> u8 {
    (i.wrapping_mul(7) % 251) as u8
}

/// The system Python (it has the Debian modules; `python3` on PATH may not).
const PYTHON: &str = "/usr/bin/python3";

// ---------------------------------------------------------------------------------
// A server on a background thread, with its own root
// ---------------------------------------------------------------------------------

struct Server {
    addr: SocketAddr,
    mini: SocketAddr,
    lt: LoopThread,
    dir: PathBuf,
}

impl Server {
    fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// Handlers registered with the reactor (listeners, sessions, data channels).
    fn handlers(&self) -> usize {
        self.lt.call(|ctx| ctx.handler_count())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.lt.handle.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `dir/root` (anonymous root, with `alice/` for the user), `dir/secret.txt` outside.
fn make_tree(dir: &Path) {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(root.join("alice")).unwrap();
    std::fs::write(dir.join("secret.txt"), SECRET).unwrap();
    std::fs::write(root.join("hello.txt"), HELLO).unwrap();
    std::fs::write(root.join("lines.txt"), "one\ntwo\nthree\n").unwrap();
    std::fs::write(root.join("sub/inner.txt"), "inner\n").unwrap();
    let big: Vec<u8> = (0..BIG).map(big_byte).collect();
    std::fs::write(root.join("big.bin"), big).unwrap();
    // sparse: sendfile reads holes as zeros, nothing is written to disk
    std::fs::File::create(root.join("huge.bin"))
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    std::os::unix::fs::symlink(dir.join("secret.txt"), root.join("escape.txt")).unwrap();
    std::os::unix::fs::symlink(dir, root.join("escape-dir")).unwrap();
    std::os::unix::fs::symlink(root.join("hello.txt"), root.join("inside.txt")).unwrap();
}

fn cheap() -> HashCost {
    HashCost {
        memory_kib: 64,
        passes: 1,
    }
}

fn start(backend: Backend, tweak: impl FnOnce(&mut FtpConfig) + Send + 'static) -> Server {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "readyloop-ftp-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    make_tree(&dir);
    let root = dir.join("root");
    let hash = hash_password(b"secret", cheap()).unwrap();
    let users = format!(
        "{}{}",
        user_line("alice", &hash, true, &root.join("alice")).unwrap(),
        user_line("reader", &hash, false, &root).unwrap()
    );
    let users = Users::parse(&users).unwrap();
    let (lt, (addr, mini)) = spawn_loop(backend, Config::default(), move |reactor| {
        let mut cfg = FtpConfig {
            users: Some(users),
            anonymous: true,
            login_delay: Duration::from_millis(200),
            data_setup_timeout: Duration::from_secs(5),
            stall_timeout: Duration::from_secs(5),
            ..FtpConfig::new(root)
        };
        tweak(&mut cfg);
        let server = FtpServer::new(cfg).expect("server");
        let (_, addr) = server.listen(reactor, "127.0.0.1:0").expect("listen");
        let (_, mini) = server.listen_mini(reactor, "127.0.0.1:0").expect("mini");
        (addr, mini)
    });
    Server {
        addr,
        mini,
        lt,
        dir,
    }
}

// ---------------------------------------------------------------------------------
// External tools
// ---------------------------------------------------------------------------------

fn python_case(s: &Server, case: &str) {
    if !have_tool(PYTHON, "python3") {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/ftp_checks.py");
    let out = run_with_deadline(
        Command::new(PYTHON)
            .arg(&script)
            .arg("127.0.0.1")
            .arg(s.addr.port().to_string())
            .arg(s.root())
            .arg(case),
        None,
        Duration::from_secs(60),
    );
    assert!(
        out.status.success() && out.stdout.ends_with(b"ok\n"),
        "ftp_checks.py {case}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------
// A small raw client for the hostile cases
// ---------------------------------------------------------------------------------

struct Ctl {
    r: BufReader<TcpStream>,
}

impl Ctl {
    fn connect(addr: SocketAddr) -> Ctl {
        let s = support::connect(addr);
        let mut c = Ctl {
            r: BufReader::new(s),
        };
        assert!(c.reply().starts_with("220"));
        c
    }

    fn login(addr: SocketAddr) -> Ctl {
        let mut c = Ctl::connect(addr);
        assert!(c.cmd("USER anonymous").starts_with("331"));
        assert!(c.cmd("PASS x@y").starts_with("230"));
        c
    }

    /// One reply (multi-line replies joined), with its code.
    fn reply(&mut self) -> String {
        let mut all = String::new();
        let mut line = String::new();
        self.r.read_line(&mut line).unwrap();
        assert!(line.len() >= 4, "short reply {line:?}");
        all.push_str(&line);
        if line.as_bytes()[3] == b'-' {
            let end = format!("{} ", &line[..3]);
            loop {
                line.clear();
                if self.r.read_line(&mut line).unwrap() == 0 {
                    break;
                }
                all.push_str(&line);
                if line.starts_with(&end) {
                    break;
                }
            }
        }
        all
    }

    fn send(&mut self, line: &str) {
        // One write: two small ones would meet Nagle and a delayed ACK (40 ms each).
        let s = self.r.get_mut();
        s.write_all(format!("{line}\r\n").as_bytes()).unwrap();
    }

    fn cmd(&mut self, line: &str) -> String {
        self.send(line);
        self.reply()
    }

    /// `EPSV`, returning the data address.
    fn epsv(&mut self, addr: SocketAddr) -> SocketAddr {
        let r = self.cmd("EPSV");
        assert!(r.starts_with("229"), "{r}");
        let port: u16 = r
            .split("|||")
            .nth(1)
            .and_then(|p| p.split('|').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("bad 229 {r:?}"));
        SocketAddr::new(addr.ip(), port)
    }
}

// ---------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------

per_backend!(
    fn curl_list_download_upload_resume(backend: Backend) {
        if !have_tool("curl", "curl") {
            return;
        }
        let s = start(backend, |_| {});
        let base = format!("ftp://{}", s.addr);
        let list = text(&curl(&[&format!("{base}/")], None).stdout);
        assert!(list.contains("hello.txt") && list.contains("sub"), "{list}");
        assert!(!list.contains("escape"), "listing shows links out: {list}");
        let names = text(&curl(&["--list-only", &format!("{base}/sub/")], None).stdout);
        assert_eq!(names.trim(), "inner.txt");
        assert_eq!(curl(&[&format!("{base}/hello.txt")], None).stdout, HELLO);
        let big = std::fs::read(s.root().join("big.bin")).unwrap();
        for mode in [
            &["--ftp-pasv"][..],
            &["--disable-epsv"],
            &["--ftp-port", "127.0.0.1"],
        ] {
            let mut args = mode.to_vec();
            let url = format!("{base}/big.bin");
            args.push(&url);
            assert!(curl(&args, None).stdout == big, "download with {mode:?}");
        }
        // upload with -T as alice, then resume a partial download with -C -
        let local = s.dir.join("local.bin");
        std::fs::write(&local, &big[..300_000]).unwrap();
        let user = "alice:secret";
        let l = local.to_str().unwrap();
        for mode in [&["--ftp-pasv"][..], &["--ftp-port", "127.0.0.1"]] {
            let mut args = mode.to_vec();
            let url = format!("{base}/up.bin");
            args.extend(["-u", user, "-T", l, &url]);
            curl(&args, None);
            assert_eq!(
                std::fs::read(s.root().join("alice/up.bin")).unwrap(),
                &big[..300_000]
            );
            std::fs::remove_file(s.root().join("alice/up.bin")).unwrap();
        }
        // curl -C - -T: resume an upload (SIZE, then APPE)
        std::fs::write(s.root().join("alice/part.bin"), &big[..1000]).unwrap();
        std::fs::write(&local, &big[..5000]).unwrap();
        curl(
            &["-u", user, "-C", "-", "-T", l, &format!("{base}/part.bin")],
            None,
        );
        assert_eq!(
            std::fs::read(s.root().join("alice/part.bin")).unwrap(),
            &big[..5000]
        );
        // resume a download
        let out = s.dir.join("partial.bin");
        std::fs::write(&out, &big[..12_345]).unwrap();
        curl(
            &[
                "-C",
                "-",
                "-o",
                out.to_str().unwrap(),
                &format!("{base}/big.bin"),
            ],
            None,
        );
        assert!(std::fs::read(&out).unwrap() == big, "resumed download");
        // anonymous uploads are refused
        let out = run_with_deadline(
            Command::new("curl").args([
                "-sS",
                "--max-time",
                "10",
                "-T",
                l,
                &format!("{base}/x.bin"),
            ]),
            None,
            Duration::from_secs(20),
        );
        assert!(!out.status.success());
        assert!(!s.root().join("x.bin").exists());
    }

    fn lftp_mirror_put_rm_mkdir(backend: Backend) {
        if !have_tool("lftp", "lftp") {
            return;
        }
        let s = start(backend, |_| {});
        let local = s.dir.join("mirror");
        let upload = s.dir.join("upload");
        std::fs::create_dir_all(upload.join("deep/er")).unwrap();
        std::fs::write(upload.join("a.txt"), "a\n").unwrap();
        std::fs::write(upload.join("deep/er/b.bin"), vec![7u8; 70_000]).unwrap();
        let script = format!(
            "set cmd:fail-exit yes; set net:max-retries 1; set net:timeout 10; \
         set ftp:ssl-allow no; set xfer:clobber yes; \
         open -u alice,secret ftp://{addr}; \
         mirror -R {up} /pushed; \
         put {up}/a.txt -o /put.txt; \
         mkdir /made; rm /put.txt; \
         open -u anonymous,x@y ftp://{addr}; \
         mirror --exclude-glob huge.bin --exclude-glob alice/ / {local}",
            addr = s.addr,
            up = upload.display(),
            local = local.display()
        );
        let out = run_with_deadline(
            Command::new("lftp").args(["-c", &script]),
            None,
            Duration::from_secs(60),
        );
        assert!(
            out.status.success(),
            "lftp failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let home = s.root().join("alice");
        assert_eq!(std::fs::read(home.join("pushed/a.txt")).unwrap(), b"a\n");
        assert_eq!(
            std::fs::read(home.join("pushed/deep/er/b.bin")).unwrap(),
            vec![7u8; 70_000]
        );
        assert!(home.join("made").is_dir());
        assert!(!home.join("put.txt").exists());
        assert_eq!(std::fs::read(local.join("hello.txt")).unwrap(), HELLO);
        assert_eq!(
            std::fs::read(local.join("big.bin")).unwrap(),
            std::fs::read(s.root().join("big.bin")).unwrap()
        );
        assert_eq!(
            std::fs::read(local.join("sub/inner.txt")).unwrap(),
            b"inner\n"
        );
        assert!(!local.join("escape.txt").exists() && !local.join("escape-dir").exists());
    }

    fn ftplib_commands(backend: Backend) {
        let s = start(backend, |_| {});
        python_case(&s, "commands");
        python_case(&s, "jail");
    }

    fn ftplib_abort_mid_transfer(backend: Backend) {
        let s = start(backend, |_| {});
        python_case(&s, "abort");
    }

    fn ftplib_logins_and_uploads(backend: Backend) {
        let s = start(backend, |_| {});
        python_case(&s, "login");
    }

    fn ftplib_idle_timeout(backend: Backend) {
        let s = start(backend, |c| c.idle_timeout = Duration::from_millis(600));
        python_case(&s, "idle");
    }

    fn pasv_and_never_connect(backend: Backend) {
        let s = start(backend, |c| {
            c.data_setup_timeout = Duration::from_millis(300);
        });
        let base = s.handlers();
        let mut c = Ctl::login(s.addr);
        let data = c.epsv(s.addr);
        assert_eq!(s.handlers(), base + 2, "session + passive listener");
        // Nobody connects: the listener goes after the setup timeout.
        support::eventually(IO_TIMEOUT, "the passive listener to close", || {
            (s.handlers() == base + 1).then_some(())
        });
        assert!(TcpStream::connect(data).is_err(), "passive port still open");
        // A transfer command after PASV whose connection never comes: 425.
        c.epsv(s.addr);
        assert!(c.cmd("RETR hello.txt").starts_with("425"));
        assert!(c.cmd("NOOP").starts_with("200"));
        // Active mode to a port nobody listens on: 425 once the connect fails.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        assert!(c
            .cmd(&format!("EPRT |1|127.0.0.1|{port}|"))
            .starts_with("200"));
        let r = c.cmd("RETR hello.txt");
        assert!(r.starts_with("425"), "{r}");
        assert!(c.cmd("NOOP").starts_with("200"));
        assert_eq!(s.handlers(), base + 1, "nothing left of the data channels");
    }

    fn connect_and_never_read(backend: Backend) {
        let s = start(backend, |c| {
            c.stall_timeout = Duration::from_millis(400);
        });
        let mut c = Ctl::login(s.addr);
        assert!(c.cmd("TYPE I").starts_with("200"));
        let data = support::connect(c.epsv(s.addr));
        assert!(c.cmd("RETR huge.bin").starts_with("150"));
        // Meanwhile other sessions are served, many transfers at once.
        let addr = s.addr;
        let others: Vec<_> = (0..8)
            .map(|_| {
                thread::spawn(move || {
                    let mut o = Ctl::login(addr);
                    let d = support::connect(o.epsv(addr));
                    assert!(o.cmd("RETR big.bin").starts_with("150"));
                    let mut got = Vec::new();
                    (&d).read_to_end(&mut got).unwrap();
                    assert_eq!(got.len(), BIG);
                    assert!(o.reply().starts_with("226"));
                })
            })
            .collect();
        for t in others {
            t.join().unwrap();
        }
        // The stalled transfer is aborted with 426; the session goes on.
        let r = c.reply();
        assert!(r.starts_with("426"), "{r}");
        assert!(c.cmd("NOOP").starts_with("200"));
        drop(data);
    }

    fn reset_mid_upload_keeps_old_file(backend: Backend) {
        let s = start(backend, |_| {});
        let home = s.root().join("alice");
        std::fs::write(home.join("keep.txt"), b"old content").unwrap();
        let mut c = Ctl::connect(s.addr);
        c.cmd("USER alice");
        assert!(c.cmd("PASS secret").starts_with("230"));
        let data = support::connect(c.epsv(s.addr));
        assert!(c.cmd("STOR keep.txt").starts_with("150"));
        (&data).write_all(&[b'x'; 100_000]).unwrap();
        readyloop::sys::socket::set_linger_zero(data.as_fd()).unwrap();
        drop(data); // RST
        let r = c.reply();
        assert!(r.starts_with("426"), "{r}");
        assert_eq!(
            std::fs::read(home.join("keep.txt")).unwrap(),
            b"old content"
        );
        let names: Vec<_> = std::fs::read_dir(&home)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "temporary file left: {names:?}");
        // ABOR of an upload: same.
        let data = support::connect(c.epsv(s.addr));
        assert!(c.cmd("STOR keep.txt").starts_with("150"));
        (&data).write_all(b"partial").unwrap();
        let r = c.cmd("ABOR");
        assert!(r.starts_with("426"), "{r}");
        assert!(c.reply().starts_with("226"));
        drop(data);
        assert_eq!(
            std::fs::read(home.join("keep.txt")).unwrap(),
            b"old content"
        );
        support::eventually(IO_TIMEOUT, "the temporary file to go", || {
            (std::fs::read_dir(&home).unwrap().count() == 1).then_some(())
        });
    }

    fn thousands_of_pasv_leak_nothing(backend: Backend) {
        // A narrow port range of its own: a leaked listener would use it up.
        let lo = support::free_port_range(20);
        let s = start(backend, move |c| c.passive_ports = Some((lo, lo + 19)));
        let base = s.handlers();
        let timers = s.lt.call(|ctx| ctx.pending_timers());
        let mut c = Ctl::login(s.addr);
        for i in 0..2000 {
            let r = c.cmd(if i % 2 == 0 { "PASV" } else { "EPSV" });
            assert!(r.starts_with("227") || r.starts_with("229"), "#{i}: {r}");
        }
        assert_eq!(s.handlers(), base + 2, "session + one passive listener");
        assert!(s.lt.call(|ctx| ctx.pending_timers()) <= timers + 3);
        // and it still transfers
        let d = support::connect(c.epsv(s.addr));
        assert!((lo..=lo + 19).contains(&d.peer_addr().unwrap().port()));
        assert!(c.cmd("RETR hello.txt").starts_with("150"));
        let mut got = Vec::new();
        (&d).read_to_end(&mut got).unwrap();
        assert_eq!(got, HELLO);
        assert!(c.reply().starts_with("226"));
    }

    fn connection_limits(backend: Backend) {
        let s = start(backend, |c| {
            c.max_per_address = 2;
            c.max_line = 64;
        });
        let mut a = Ctl::connect(s.addr);
        let _b = Ctl::connect(s.addr);
        let mut third = TcpStream::connect(s.addr).unwrap();
        third.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut got = String::new();
        third.read_to_string(&mut got).unwrap();
        assert!(got.starts_with("421"), "{got}");
        // Oversize lines: 500 each, never buffered, the session goes on.
        a.send(&"x".repeat(100_000));
        assert!(a.reply().starts_with("500"));
        assert!(a.cmd("NOOP").starts_with("200"));
    }

    /// The classroom client (Python, as written in the course) against `--mini`.
    fn mini_classroom_client(backend: Backend) {
        if !have_tool(PYTHON, "python3") {
            return;
        }
        let s = start(backend, |_| {});
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/mini_client.py");
        let src = s.dir.join("upload.bin");
        std::fs::write(&src, (0..200_000).map(big_byte).collect::<Vec<u8>>()).unwrap();
        let port = s.mini.port().to_string();
        let py = |args: &[&str]| {
            let out = run_with_deadline(
                Command::new(PYTHON)
                    .arg(&script)
                    .arg("127.0.0.1")
                    .arg(&port)
                    .args(args)
                    .current_dir(&s.dir),
                None,
                Duration::from_secs(30),
            );
            assert!(
                out.status.success(),
                "mini_client.py {args:?}: {}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
            text(&out.stdout)
        };
        // put exactly as the classroom does (reads nothing after it)
        py(&["put", src.to_str().unwrap()]);
        support::eventually(IO_TIMEOUT, "the upload to land", || {
            std::fs::read(s.root().join("upload.bin"))
                .ok()
                .filter(|b| b.len() == 200_000)
        });
        assert_eq!(
            std::fs::read(s.root().join("upload.bin")).unwrap(),
            std::fs::read(&src).unwrap()
        );
        // get: into the current directory
        std::fs::remove_file(&src).unwrap();
        py(&["get", "big.bin"]);
        assert_eq!(
            std::fs::read(s.dir.join("big.bin")).unwrap(),
            std::fs::read(s.root().join("big.bin")).unwrap()
        );
        let listing = py(&["list"]);
        assert!(
            listing.contains("hello.txt") && !listing.contains("escape"),
            "{listing}"
        );
        let missing = py(&["get", "nope.txt"]);
        assert!(missing.contains("error"), "{missing}");
    }

    fn mini_framing_and_limits(backend: Backend) {
        let s = start(backend, |c| c.mini.max_filesize = 1000);
        let frame = |h: &str| {
            let mut v = (h.len() as i32).to_le_bytes().to_vec();
            v.extend_from_slice(h.as_bytes());
            v
        };
        let read_frame = |c: &mut TcpStream| -> serde_json::Value {
            let mut len = [0u8; 4];
            c.read_exact(&mut len).unwrap();
            let mut h = vec![0u8; i32::from_le_bytes(len) as usize];
            c.read_exact(&mut h).unwrap();
            serde_json::from_slice(&h).unwrap()
        };
        // Sticky packets: two puts and a list in one write, then one put byte by byte.
        let mut c = support::connect(s.mini);
        let mut all = frame(r#"{"cmd":"put","filename":"s1.txt","filesize":3}"#);
        all.extend_from_slice(b"one");
        all.extend(frame(
            r#"{"cmd":"put","filename":"s2.txt","filesize":3,"reply":true}"#,
        ));
        all.extend_from_slice(b"two");
        c.write_all(&all).unwrap();
        assert_eq!(read_frame(&mut c)["status"], "ok");
        let mut split = frame(r#"{"cmd":"put","filename":"s3.txt","filesize":5,"reply":true}"#);
        split.extend_from_slice(b"three");
        for b in split.chunks(1) {
            c.write_all(b).unwrap();
        }
        assert_eq!(read_frame(&mut c)["status"], "ok");
        for (n, want) in [("s1.txt", "one"), ("s2.txt", "two"), ("s3.txt", "three")] {
            assert_eq!(std::fs::read_to_string(s.root().join(n)).unwrap(), want);
        }
        // A bad name still consumes its bytes (the stream stays in step); escapes refused.
        c.write_all(&frame(
            r#"{"cmd":"put","filename":"../../evil.txt","filesize":2,"reply":true}"#,
        ))
        .unwrap();
        c.write_all(b"ev").unwrap();
        let v = read_frame(&mut c);
        // `..` stops at the root: it lands inside, never outside
        assert_eq!(v["status"], "ok", "{v}");
        assert!(!s.dir.join("evil.txt").exists());
        c.write_all(&frame(
            r#"{"cmd":"put","filename":"escape-dir/x","filesize":1,"reply":true}"#,
        ))
        .unwrap();
        c.write_all(b"x").unwrap();
        assert_eq!(read_frame(&mut c)["status"], "error");
        c.write_all(&frame(r#"{"cmd":"get","filename":"escape.txt"}"#))
            .unwrap();
        let v = read_frame(&mut c);
        assert_eq!(
            (v["status"].as_str(), v["filesize"].as_u64()),
            (Some("error"), Some(0))
        );
        // Oversize filesize: a clean close, nothing stored.
        c.write_all(&frame(
            r#"{"cmd":"put","filename":"big.txt","filesize":1001}"#,
        ))
        .unwrap();
        let mut rest = Vec::new();
        assert_eq!(c.read_to_end(&mut rest).unwrap(), 0);
        assert!(!s.root().join("big.txt").exists());
        // Negative and huge header lengths: closed.
        for len in [-1i32, i32::MAX, 1 << 20] {
            let mut c = support::connect(s.mini);
            c.write_all(&len.to_le_bytes()).unwrap();
            let mut rest = Vec::new();
            // Closed: EOF (or a reset), with nothing sent; a timeout means it was not.
            match c.read_to_end(&mut rest) {
                Ok(n) => assert_eq!(n, 0, "length {len}"),
                Err(e) => assert_eq!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset,
                    "length {len}: not closed: {e}"
                ),
            }
        }
        // A connection lost mid-put keeps the old file, leaves no temporary.
        std::fs::write(s.root().join("s1.txt"), "kept").unwrap();
        let mut c = support::connect(s.mini);
        c.write_all(&frame(
            r#"{"cmd":"put","filename":"s1.txt","filesize":100}"#,
        ))
        .unwrap();
        c.write_all(b"partial").unwrap();
        drop(c);
        thread::sleep(Duration::from_millis(100));
        assert_eq!(
            std::fs::read_to_string(s.root().join("s1.txt")).unwrap(),
            "kept"
        );
        support::eventually(IO_TIMEOUT, "no temporary file", || {
            let n = std::fs::read_dir(s.root())
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .ends_with(".part")
                })
                .count();
            (n == 0).then_some(())
        });
    }

    fn example_server_process(backend: Backend) {
        let bin = support::example("ftp_server");
        let dir =
            std::env::temp_dir().join(format!("readyloop-ftp-ex-{}-{backend}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("root")).unwrap();
        std::fs::write(dir.join("root/f.txt"), "file\n").unwrap();
        // --add-user reads the password from stdin and writes only a hash.
        let users = dir.join("users");
        let mut add = Command::new(&bin)
            .args(["--users", users.to_str().unwrap(), "--add-user", "bob"])
            .args(["--user-root", dir.join("root").to_str().unwrap()])
            .args(["--hash-memory-kib", "64", "--hash-passes", "1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        add.stdin.take().unwrap().write_all(b"pw123\n").unwrap();
        assert!(support::wait_child(&mut add, IO_TIMEOUT).is_some_and(|s| s.success()));
        let file = std::fs::read_to_string(&users).unwrap();
        assert!(
            file.starts_with("bob:$argon2id$") && !file.contains("pw123"),
            "{file}"
        );
        let mut child = Command::new(&bin)
            .args(["--backend", backend.name(), "--listen", "127.0.0.1:0"])
            .args(["--root", dir.join("root").to_str().unwrap()])
            .args(["--users", users.to_str().unwrap(), "--mini", "127.0.0.1:0"])
            .args(["--login-delay-ms", "50"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let ftp = rx.recv_timeout(IO_TIMEOUT).unwrap_or_default();
        let mini = rx.recv_timeout(IO_TIMEOUT).unwrap_or_default();
        let suffix = format!(" (backend {backend})");
        let addr: Option<SocketAddr> = ftp
            .strip_prefix("listening on ftp://")
            .and_then(|r| r.strip_suffix(&suffix))
            .and_then(|a| a.parse().ok());
        let ok_mini = mini.starts_with("listening on mini://127.0.0.1:") && mini.ends_with(&suffix);
        let result = std::panic::catch_unwind(|| {
            let addr = addr.unwrap_or_else(|| panic!("ready line {ftp:?}"));
            assert!(ok_mini, "mini ready line {mini:?}");
            let mut c = Ctl::connect(addr);
            c.cmd("USER bob");
            assert!(c.cmd("PASS pw123").starts_with("230"));
            let d = support::connect(c.epsv(addr));
            assert!(c.cmd("RETR f.txt").starts_with("150"));
            let mut got = String::new();
            (&d).read_to_string(&mut got).unwrap();
            assert_eq!(got, "file\n");
            assert!(c.reply().starts_with("226"));
            // anonymous is off when a users file is given (no --anonymous)
            let mut a = Ctl::connect(addr);
            a.cmd("USER anonymous");
            assert!(a.cmd("PASS x").starts_with("530"));
        });
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = result {
            std::panic::resume_unwind(e);
        }
    }

    /// A password check (Argon2 at a real cost) runs off the loop: another session is
    /// served while it runs, so its `NOOP` is answered before the slow login's `230`.
    fn login_check_does_not_stall_the_loop(backend: Backend) {
        // A few MiB: tens of milliseconds in a release build, far more in this debug one.
        let cost = HashCost {
            memory_kib: 2 * 1024,
            passes: 1,
        };
        let t0 = Instant::now();
        let h = hash_password(b"pw", cost).unwrap();
        let took = t0.elapsed();
        let s = start(backend, move |c| {
            let line = user_line("slow", &h, false, &c.root).unwrap();
            c.users = Some(Users::parse(&line).unwrap());
        });
        let mut a = Ctl::connect(s.addr);
        assert!(a.cmd("USER slow").starts_with("331"));
        a.send("PASS pw");
        let mut b = Ctl::connect(s.addr);
        assert!(b.cmd("NOOP").starts_with("200"));
        let sock = a.r.get_ref();
        sock.set_nonblocking(true).unwrap();
        let mut one = [0u8; 1];
        let early = sock.peek(&mut one);
        sock.set_nonblocking(false).unwrap();
        assert!(
        matches!(&early, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the login was answered before another session's NOOP: {early:?} (a hash takes {took:?})"
    );
        assert!(a.reply().starts_with("230"));
    }
);
