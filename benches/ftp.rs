//! FTP benchmark: `cargo bench --bench ftp [-- options]`.
//!
//! Same files, same client, one run: this crate's FTP server (a child process: this
//! binary re-executed in the hidden `--serve BACKEND ROOT` mode, logging at `warn`),
//! vsftpd (standalone, anonymous, `use_sendfile=YES`, transfer log off, generated
//! configuration) and pyftpdlib (`/usr/bin/python3 -m pyftpdlib`, anonymous; it logs
//! each command at INFO, which it cannot turn off from its command line).
//!
//! Workloads, each over one control connection, passive mode (`EPSV`), binary:
//! * `big`: `RETR` of a 100 MiB file (`--big-mib`), `--big-reps` times in a row:
//!   MiB/s and server CPU per MiB;
//! * `small`: `RETR` of 1000 files of 1 KiB (`--small`), one data connection each:
//!   files/s and server CPU per file.
//!
//! Server CPU is the on-CPU time (`/proc/PID/task/*/schedstat`, nanoseconds) of the
//! server process and all its descendants (vsftpd serves each session in processes
//! it forks), sampled before the session and again before its `QUIT`.
//! The client is a small blocking FTP client in this process (reads into a reused
//! 256 KiB buffer). Every contender runs `--reps` times (default 3); the table shows
//! the median. No pinning: on a shared machine the figures are noisy, CPU per unit
//! less so than throughput.
//!
//! With no argument (as `cargo test --benches` would run it) it runs a quick
//! self-check of this crate's server only.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use readyloop::proto::ftp::{FtpConfig, FtpServer};
use readyloop::selector::Backend;

#[path = "common/mod.rs"]
mod common;

use common::child::{self, Ending};
use common::server::{Daemon, Running, ServerProc};
use common::{os, procfs, table};

const TIMEOUT: Duration = Duration::from_secs(30);

struct Opts {
    backends: Vec<Backend>,
    contenders: Vec<String>,
    big_mib: usize,
    big_reps: usize,
    small: usize,
    reps: usize,
}

fn usage() -> &'static str {
    "cargo bench --bench ftp -- [--quick] [--backend NAME]... [--contenders readyloop,vsftpd,pyftpdlib]
    [--big-mib N (100)] [--big-reps N (3)] [--small N (1000)] [--reps N (3)]\n"
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve") {
        serve(&args[1..]);
    }
    if args.iter().any(|a| a == "--help") {
        print!("{}", usage());
        return;
    }
    let mut o = Opts {
        backends: vec![Backend::EpollEt],
        contenders: vec!["readyloop".into(), "vsftpd".into(), "pyftpdlib".into()],
        big_mib: 100,
        big_reps: 3,
        small: 1000,
        reps: 3,
    };
    let mut explicit_backends = Vec::new();
    // `cargo test --benches` runs the binary with no argument; `cargo bench` adds `--bench`.
    let self_check = args.is_empty();
    if self_check {
        o.contenders = vec!["readyloop".into()];
        o.big_mib = 8;
        o.big_reps = 1;
        o.small = 50;
        o.reps = 1;
    }
    let mut it = args.iter().filter(|a| *a != "--bench");
    while let Some(a) = it.next() {
        let mut val = || {
            it.next().cloned().unwrap_or_else(|| {
                eprintln!("ftp bench: {a} needs a value\n{}", usage());
                std::process::exit(2)
            })
        };
        let num = |s: String| -> usize {
            s.parse().unwrap_or_else(|_| {
                eprintln!("ftp bench: bad number {s}");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--quick" => {
                o.big_mib = 16;
                o.big_reps = 1;
                o.small = 100;
                o.reps = 1;
            }
            "--backend" => {
                let b = val();
                match b.parse::<Backend>() {
                    Ok(b) => explicit_backends.push(b),
                    Err(e) => {
                        eprintln!("ftp bench: {b}: {e}");
                        std::process::exit(2)
                    }
                }
            }
            "--contenders" => o.contenders = val().split(',').map(str::to_string).collect(),
            "--big-mib" => o.big_mib = num(val()),
            "--big-reps" => o.big_reps = num(val()),
            "--small" => o.small = num(val()),
            "--reps" => o.reps = num(val()).max(1),
            other => {
                eprintln!("ftp bench: unknown option {other}\n{}", usage());
                std::process::exit(2)
            }
        }
    }
    if !explicit_backends.is_empty() {
        o.backends = explicit_backends;
    }
    match run(&o) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("ftp bench: {e}");
            std::process::exit(1)
        }
    }
}

/// `--serve BACKEND ROOT`: this crate's server, then the benches' control protocol.
fn serve(args: &[String]) -> ! {
    let (Some(backend), Some(root)) = (args.first(), args.get(1)) else {
        child::fail("ftp bench server", &"--serve BACKEND ROOT");
    };
    let backend: Backend = backend
        .parse()
        .unwrap_or_else(|e| child::fail("ftp bench server", &e));
    let root = PathBuf::from(root);
    child::serve_reactor("ftp bench server", backend, Ending::Stop, false, move |r| {
        let cfg = FtpConfig {
            anonymous: true,
            ..FtpConfig::new(root)
        };
        Ok(vec![FtpServer::new(cfg)?.listen(r, "127.0.0.1:0")?.1])
    })
}

struct Site {
    dir: PathBuf,
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn make_site(o: &Opts) -> io::Result<Site> {
    let dir = std::env::temp_dir().join(format!("readyloop-ftp-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("small"))?;
    let mut f = std::fs::File::create(root.join("big.bin"))?;
    let chunk: Vec<u8> = (0..1 << 20)
        .map(|i: usize| (i.wrapping_mul(7) % 251) as u8)
        .collect();
    for _ in 0..o.big_mib {
        f.write_all(&chunk)?;
    }
    for i in 0..o.small {
        std::fs::write(
            root.join(format!("small/f{i:05}.bin")),
            &chunk[i % 1000..i % 1000 + 1024],
        )?;
    }
    // vsftpd refuses a root writable by the anonymous user; nobody can write here.
    std::process::Command::new("chmod")
        .args(["-R", "a+rX,go-w"])
        .arg(&dir)
        .status()?;
    Ok(Site { dir })
}

/// A running contender.
struct Server {
    name: String,
    run: Running,
    port: u16,
}

fn wait_listening(port: u16) -> io::Result<()> {
    let t0 = Instant::now();
    loop {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
            let mut r = BufReader::new(s);
            let mut l = String::new();
            r.get_mut().set_read_timeout(Some(TIMEOUT))?;
            r.read_line(&mut l)?;
            if l.starts_with("220") {
                let _ = r.get_mut().write_all(b"QUIT\r\n");
                return Ok(());
            }
        }
        if t0.elapsed() > TIMEOUT {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("nothing on port {port}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start(name: &str, backend: Backend, site: &Site) -> io::Result<Server> {
    let root = site.dir.join("root");
    let (cmd, port) = match name {
        "readyloop" => {
            let args = [backend.name().into(), root.into_os_string()];
            let p = ServerProc::start(name, &[], &args, &[("RUST_LOG", "warn")])?;
            return Ok(Server {
                name: format!("readyloop ({backend})"),
                port: p.addr.port(),
                run: Running::Ours(p),
            });
        }
        "vsftpd" => vsftpd(site, &root)?,
        "pyftpdlib" => pyftpdlib(&root)?,
        other => return Err(io::Error::other(format!("unknown contender {other}"))),
    };
    outside(name, cmd, port)
}

/// Starts an outside server's command (tied to the bench) and waits for its banner.
fn outside(name: &str, mut cmd: Command, port: u16) -> io::Result<Server> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    os::tie_to_bench(&mut cmd, None);
    let child = cmd.spawn()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let d = Daemon::new(name, child, addr, None, Vec::new());
    wait_listening(port)?;
    Ok(Server {
        name: name.into(),
        run: Running::Outside(d),
        port,
    })
}

/// vsftpd: standalone, anonymous, sendfile, no transfer log; its configuration in
/// the site's directory.
fn vsftpd(site: &Site, root: &Path) -> io::Result<(Command, u16)> {
    let port = os::free_port()?;
    let empty = site.dir.join("empty");
    std::fs::create_dir_all(&empty)?;
    let conf = site.dir.join("vsftpd.conf");
    std::fs::write(
        &conf,
        format!(
            "listen=YES\nlisten_ipv6=NO\nlisten_address=127.0.0.1\nlisten_port={port}\n\
             background=NO\nanonymous_enable=YES\nno_anon_password=YES\nanon_root={}\n\
             local_enable=NO\nwrite_enable=NO\nftp_username=ftp\n\
             secure_chroot_dir={}\nseccomp_sandbox=NO\nuse_sendfile=YES\n\
             xferlog_enable=NO\nsyslog_enable=NO\nvsftpd_log_file=/dev/null\n\
             pasv_enable=YES\nmax_clients=0\nmax_per_ip=0\n",
            root.display(),
            empty.display()
        ),
    )?;
    let mut cmd = Command::new("vsftpd");
    cmd.arg(&conf);
    Ok((cmd, port))
}

/// pyftpdlib, anonymous, serving `root`.
fn pyftpdlib(root: &Path) -> io::Result<(Command, u16)> {
    let port = os::free_port()?;
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.args([
        "-m",
        "pyftpdlib",
        "-i",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-d",
    ])
    .arg(root);
    Ok((cmd, port))
}

struct Client {
    r: BufReader<TcpStream>,
    buf: Vec<u8>,
}

impl Client {
    fn connect(port: u16) -> io::Result<Client> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(TIMEOUT))?;
        let mut c = Client {
            r: BufReader::new(s),
            buf: vec![0; 256 * 1024],
        };
        c.expect("220")?;
        let r = c.cmd("USER anonymous", "")?;
        if r.starts_with("331") {
            c.cmd("PASS bench@", "230")?;
        }
        c.cmd("TYPE I", "200")?;
        Ok(c)
    }

    fn reply(&mut self) -> io::Result<String> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.r.read_line(&mut line)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "control closed",
                ));
            }
            // skip the middle of multi-line replies
            if line.len() >= 4 && line.as_bytes()[3] == b' ' && line.as_bytes()[0].is_ascii_digit()
            {
                return Ok(line);
            }
        }
    }

    fn expect(&mut self, code: &str) -> io::Result<String> {
        let r = self.reply()?;
        if !r.starts_with(code) {
            return Err(io::Error::other(format!("wanted {code}, got {r:?}")));
        }
        Ok(r)
    }

    fn cmd(&mut self, line: &str, code: &str) -> io::Result<String> {
        self.r
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())?;
        self.expect(code)
    }

    /// RETR over EPSV; returns the bytes received.
    fn retr(&mut self, name: &str) -> io::Result<u64> {
        let r = self.cmd("EPSV", "229")?;
        let port: u16 = r
            .split("|||")
            .nth(1)
            .and_then(|p| p.split('|').next())
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad 229 {r:?}")))?;
        let mut d = TcpStream::connect(("127.0.0.1", port))?;
        d.set_read_timeout(Some(TIMEOUT))?;
        self.cmd(&format!("RETR {name}"), "1")?; // 150 or 125
        let mut n = 0u64;
        loop {
            let k = d.read(&mut self.buf)?;
            if k == 0 {
                break;
            }
            n += k as u64;
        }
        self.expect("226")?;
        Ok(n)
    }

    fn quit(mut self) {
        let _ = self.cmd("QUIT", "221");
    }
}

#[derive(Clone, Copy)]
struct Sample {
    secs: f64,
    cpu: f64,
}

/// Runs `work` over one session and measures the server's CPU around it (the
/// session's own processes included, sampled before `QUIT` while they live).
fn measure(srv: &Server, work: impl FnOnce(&mut Client) -> io::Result<()>) -> io::Result<Sample> {
    let pid = srv.run.pid();
    let tree_cpu_ns =
        |pid| procfs::tree_cpu_ns(pid).ok_or_else(|| io::Error::other("no /proc: no server CPU"));
    let cpu0 = tree_cpu_ns(pid)?;
    let t0 = Instant::now();
    let mut c = Client::connect(srv.port)?;
    work(&mut c)?;
    let secs = t0.elapsed().as_secs_f64();
    let cpu = tree_cpu_ns(pid)?.saturating_sub(cpu0) as f64 / 1e9;
    c.quit();
    std::thread::sleep(Duration::from_millis(50));
    Ok(Sample { secs, cpu })
}

fn run(o: &Opts) -> io::Result<()> {
    let site = make_site(o)?;
    let big = (o.big_mib as u64) << 20;
    let mut rows = Vec::new();
    let mut names: Vec<(String, Backend)> = Vec::new();
    for c in &o.contenders {
        if c == "readyloop" {
            names.extend(o.backends.iter().map(|b| (c.clone(), *b)));
        } else {
            names.push((c.clone(), Backend::EpollEt));
        }
    }
    for (name, backend) in names {
        let srv = match start(&name, backend, &site) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("ftp bench: {name}: cannot start: {e}; skipped");
                continue;
            }
        };
        match bench_one(o, &srv, big) {
            Ok(r) => rows.push(r),
            Err(e) => eprintln!("ftp bench: {}: {e}; skipped", srv.name),
        }
        if let Err(e) = srv.run.stop() {
            eprintln!("ftp bench: {e}");
        }
    }
    println!(
        "\nFTP: RETR {} MiB x {} and {} x 1 KiB over one control connection (EPSV, binary); median of {} run(s)\n",
        o.big_mib, o.big_reps, o.small, o.reps
    );
    println!("| server | big: MiB/s | big: server CPU ms/MiB | small: files/s | small: server CPU µs/file |");
    println!("|---|---:|---:|---:|---:|");
    for (n, bt, bc, st, sc) in &rows {
        println!("| {n} | {bt:.0} | {bc:.3} | {st:.0} | {sc:.0} |");
    }
    if rows.len() < o.contenders.len() {
        return Err(io::Error::other("a contender failed (see above)"));
    }
    Ok(())
}

type Row = (String, f64, f64, f64, f64);

fn bench_one(o: &Opts, srv: &Server, big: u64) -> io::Result<Row> {
    {
        let (mut bt, mut bc, mut st, mut sc) = (vec![], vec![], vec![], vec![]);
        for _ in 0..o.reps {
            let s = measure(srv, |c| {
                for _ in 0..o.big_reps {
                    let n = c.retr("big.bin")?;
                    if n != big {
                        return Err(io::Error::other(format!("got {n} of {big} bytes")));
                    }
                }
                Ok(())
            })?;
            let mib = (o.big_mib * o.big_reps) as f64;
            bt.push(mib / s.secs);
            bc.push(s.cpu * 1e3 / mib);
            let s = measure(srv, |c| {
                for i in 0..o.small {
                    let n = c.retr(&format!("small/f{i:05}.bin"))?;
                    if n != 1024 {
                        return Err(io::Error::other(format!("small file: {n} bytes")));
                    }
                }
                Ok(())
            })?;
            st.push(o.small as f64 / s.secs);
            sc.push(s.cpu * 1e6 / o.small as f64);
        }
        let m = |v: Vec<f64>| table::median(&v).unwrap_or(f64::NAN);
        Ok((srv.name.clone(), m(bt), m(bc), m(st), m(sc)))
    }
}
