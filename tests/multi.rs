//! Multi-reactor serving: a [`Pool`] of reactors with a [`PoolListener`], every backend
//! × every accept strategy (`reuseport`, `shared`, `handoff`).
//!
//! * connections spread over 4 reactors (400 connections: none starves), and every
//!   byte of a connection is served by one reactor;
//! * the connection limit is global (across reactors), not per reactor;
//! * `echo_server --threads 3` flushes every connection's output on SIGTERM and exits
//!   0; `http_server --threads 2` serves.
//!
//! Each case is written inside `per_backend!` (from `tests/support`): one test per
//! backend, and per strategy where the case takes one (`spread::epoll_et::shared`).
//!
//! The heavy cases take a process-wide lock, so the 2-core machine runs one at a time.

#[macro_use]
mod support;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use readyloop::net::AcceptStrategy::{Handoff, ReusePort, Shared};
use readyloop::net::{AcceptStrategy, Conn, ListenConfig, PoolListener, Protocol};
use readyloop::reactor::pool::{Pool, RunningPool};
use readyloop::reactor::{Config, PanicPolicy};
use readyloop::selector::Backend;
use support::{
    check_pattern_until_eof, connect, curl, eventually, have_tool, round_trip, send_until_blocked,
    served_after_flood, ServerProcess, DEADLINE,
};

/// One heavy case at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Answers every message with the index of the reactor serving it (`r2\n`).
struct Tag(usize);

impl Protocol for Tag {
    fn data_received(&mut self, conn: &mut Conn<'_, '_>, data: &[u8]) {
        for _ in data.iter().filter(|&&b| b == b'\n') {
            conn.write(format!("r{}\n", self.0).as_bytes());
        }
    }
}

/// A pool of `threads` reactors serving [`Tag`] on a fresh port.
fn tag_pool(
    backend: Backend,
    strategy: AcceptStrategy,
    threads: usize,
    cfg: ListenConfig,
) -> (RunningPool, Arc<PoolListener>) {
    let l = PoolListener::bind("127.0.0.1:0", strategy, threads, cfg).expect("bind");
    let attach = l.clone();
    let pool = Pool::new(backend, threads)
        .start(move |reactor, member| {
            let i = member.index();
            attach.attach(reactor, member, move |_: &_| {
                Some(Box::new(Tag(i)) as Box<dyn Protocol>)
            })?;
            Ok(())
        })
        .expect("start the pool");
    (pool, l)
}

/// Stops the pool gracefully and checks it ends within the deadline.
fn finish(pool: RunningPool, what: &str) {
    let (tx, rx) = mpsc::channel();
    pool.shutdown();
    thread::spawn(move || {
        let _ = tx.send(pool.wait());
    });
    rx.recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("{what}: the pool did not finish"))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
}

/// Sends `rounds` messages one at a time and returns the reactor of each answer.
fn tagged_rounds(addr: SocketAddr, rounds: usize) -> Vec<String> {
    let s = connect(addr);
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    (0..rounds)
        .map(|i| {
            w.write_all(format!("m{i}\n").as_bytes()).unwrap();
            let mut line = String::new();
            r.read_line(&mut line).expect("answer");
            assert!(line.starts_with('r'), "answer {line:?}");
            line.trim_end().to_string()
        })
        .collect()
}

/// `echo_server --threads 3 --accept STRATEGY` on `backend` (under `ulimit -n N`
/// with `nofile`), and its address.
fn echo_pool(
    backend: Backend,
    strategy: AcceptStrategy,
    nofile: Option<u32>,
) -> (ServerProcess, SocketAddr) {
    let args = ["--listen", "127.0.0.1:0", "--threads", "3"];
    let mut srv = ServerProcess::echo_server(
        backend,
        &[&args[..], &["--accept", strategy.name()]].concat(),
        nofile,
    );
    let addr = srv.tcp_addr();
    (srv, addr)
}

/// A fresh directory in the temp dir holding `files`, to serve from.
fn temp_root(tag: &str, backend: Backend, files: &[(&str, &[u8])]) -> PathBuf {
    let root = std::env::temp_dir().join(format!(
        "readyloop-multi-{tag}-{}-{}",
        std::process::id(),
        backend.name()
    ));
    std::fs::create_dir_all(&root).unwrap();
    for (name, data) in files {
        std::fs::write(root.join(name), data).unwrap();
    }
    root
}

/// The example `name` on `backend`, listening on port 0 and serving `root`, with
/// `extra` arguments; and the address of its `scheme://` ready line.
fn pool_server(
    name: &str,
    scheme: &str,
    backend: Backend,
    root: &Path,
    extra: &[&str],
) -> (ServerProcess, SocketAddr) {
    let root = root.to_str().expect("a UTF-8 temp dir");
    let mut args = vec!["--listen", "127.0.0.1:0", "--root", root];
    args.extend_from_slice(extra);
    let mut srv = ServerProcess::example(name, backend, &args);
    let addr = srv.ready_addr(scheme);
    (srv, addr)
}

/// SIGTERM, then the exit status (within the deadline).
fn stop_server(srv: &mut ServerProcess, backend: Backend) -> std::process::ExitStatus {
    srv.terminate();
    srv.wait_exit(DEADLINE).unwrap_or_else(|| {
        panic!(
            "{backend}: still running after SIGTERM; stderr:\n{}",
            srv.stderr()
        )
    })
}

per_backend!(
    #[each(reuseport = ReusePort, shared = Shared, handoff = Handoff)]
    /// 400 connections (8 clients at a time, 3 messages each) over 4 reactors: every
    /// connection is answered by a single reactor, and every reactor serves some.
    fn spread(backend: Backend, strategy: AcceptStrategy) {
        let _g = serial();
        let (pool, l) = tag_pool(backend, strategy, 4, ListenConfig::default());
        let addr = l.local_addr();
        let per_client = 50;
        let clients: Vec<_> = (0..8)
            .map(|_| {
                thread::spawn(move || {
                    (0..per_client)
                        .map(|_| {
                            let tags = tagged_rounds(addr, 3);
                            assert!(
                                tags.iter().all(|t| *t == tags[0]),
                                "one connection answered by several reactors: {tags:?}"
                            );
                            tags[0][1..].parse::<usize>().unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut per_reactor = [0usize; 4];
        for c in clients {
            for r in c.join().expect("client") {
                per_reactor[r] += 1;
            }
        }
        let stats = pool.stats();
        finish(pool, "spread");
        assert_eq!(per_reactor.iter().sum::<usize>(), 400);
        let served: Vec<u64> = stats.iter().map(|s| s.served).collect();
        assert_eq!(
            served.iter().map(|&n| n as usize).collect::<Vec<_>>(),
            per_reactor,
            "the counters agree with what clients saw"
        );
        assert!(
            per_reactor.iter().all(|&n| n >= 10),
            "{backend} {strategy}: a reactor starved: {per_reactor:?}"
        );
        let accepted: u64 = stats.iter().map(|s| s.accepted).sum();
        assert_eq!(accepted, 400, "{stats:?}");
        if strategy == AcceptStrategy::Handoff {
            assert_eq!(stats[0].accepted, 400, "reactor 0 accepts everything");
            assert_eq!(per_reactor, [100; 4], "round-robin");
        }
    }

    /// `max_connections` 10 over 4 reactors: 10 connections are served in all, not 40.
    fn global_limit(backend: Backend, strategy: AcceptStrategy) {
        let _g = serial();
        let cfg = ListenConfig {
            max_connections: 10,
            ..ListenConfig::default()
        };
        let (pool, l) = tag_pool(backend, strategy, 4, cfg);
        let addr = l.local_addr();
        let mut conns: Vec<TcpStream> = (0..30).map(|_| connect(addr)).collect();
        let mut served = 0;
        for c in &mut conns {
            c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            // A refused connection is closed at once: the write may fail or the read
            // sees EOF (or a reset).
            if c.write_all(b"x\n").is_err() {
                continue;
            }
            let mut buf = [0u8; 8];
            match c.read(&mut buf) {
                Ok(n) if n > 0 => served += 1,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                    panic!("{backend} {strategy}: a connection neither served nor refused")
                }
                Err(_) => {}
            }
        }
        assert_eq!(
            served, 10,
            "{backend} {strategy}: served {served} of 30 with limit 10"
        );
        assert_eq!(l.open_connections(), 10);
        // Closing served connections makes room again, on whichever reactor.
        drop(conns);
        support::eventually(DEADLINE, "connections uncounted", || {
            (l.open_connections() == 0).then_some(())
        });
        let tags = tagged_rounds(addr, 1);
        assert_eq!(tags.len(), 1);
        finish(pool, "global_limit");
    }

    /// `echo_server --threads 3`: clients with output pending (they stopped reading),
    /// SIGTERM: every connection gets its echoed bytes (a checked prefix of what it
    /// sent, at least what was buffered), then EOF; the process exits 0.
    fn graceful_shutdown_flushes(backend: Backend, strategy: AcceptStrategy) {
        let _g = serial();
        let (mut srv, addr) = echo_pool(backend, strategy, None);
        let mut clients: Vec<(TcpStream, u64)> = (0..6)
            .map(|_| {
                let mut c = connect(addr);
                let (sent, stalled) =
                    send_until_blocked(&mut c, Duration::from_millis(150), 4 << 20);
                assert!(stalled || sent == 4 << 20);
                (c, sent)
            })
            .collect();
        srv.terminate();
        for (c, sent) in &mut clients {
            let (got, end) = check_pattern_until_eof(c);
            end.unwrap_or_else(|e| panic!("{backend} {strategy}: after {got} bytes: {e}"));
            assert!(
                got > 0 && got <= *sent,
                "{backend} {strategy}: {got} of {sent}"
            );
        }
        let st = srv
            .wait_exit(DEADLINE)
            .unwrap_or_else(|| panic!("{backend} {strategy}: still running after SIGTERM"));
        let log = srv.stderr_to_end();
        assert!(
            st.success(),
            "{backend} {strategy}: exit {st}; stderr:\n{log}"
        );
        assert!(log.contains("graceful shutdown"), "stderr:\n{log}");
        assert_eq!(
            log.matches("served").count(),
            3,
            "a counter line per reactor; stderr:\n{log}"
        );
    }
);

per_backend!(
    #[backends(poll, epoll_et)]
    #[each(reuseport = ReusePort, shared = Shared, handoff = Handoff)]
    /// `echo_server --threads 3` under `ulimit -n 64`, flooded with more connections than
    /// it has descriptors: every reactor sheds or pauses instead of spinning, and once
    /// the flood leaves, new clients are served again. On a level-triggered and an
    /// edge-triggered backend, every strategy (each case holds 120 connections for 1.5 s).
    fn fd_exhaustion(backend: Backend, strategy: AcceptStrategy) {
        let _g = serial();
        let (srv, addr) = echo_pool(backend, strategy, Some(64));
        let mut first = connect(addr);
        assert_eq!(round_trip(&mut first, b"first"), b"first");
        let cpu_before = srv.cpu_time();
        let flood_start = Instant::now();
        let flood: Vec<TcpStream> = (0..120)
            .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok())
            .collect();
        assert!(flood.len() >= 80, "only {} connects", flood.len());
        eventually(
            Duration::from_secs(5),
            "a warning about descriptors",
            || {
                srv.stderr()
                    .lines()
                    .any(|l| l.contains("WARN") && l.contains("file descriptors"))
                    .then_some(())
            },
        );
        thread::sleep(Duration::from_millis(1500).saturating_sub(flood_start.elapsed()));
        let cpu = srv.cpu_time() - cpu_before;
        assert!(
            cpu < Duration::from_millis(600),
            "{backend} {strategy}: {cpu:?} of CPU while out of descriptors"
        );
        served_after_flood(&mut first, flood, addr, &format!("{backend} {strategy}"));
    }
);

per_backend!(
    /// `http_server --threads 2` answers on every backend (default strategy).
    fn http_two_threads(backend: Backend) {
        let _g = serial();
        let mut srv = ServerProcess::example(
            "http_server",
            backend,
            &[
                "--listen",
                "127.0.0.1:0",
                "--threads",
                "2",
                "--no-access-log",
            ],
        );
        let addr = srv.ready_addr("tcp");
        for _ in 0..20 {
            let mut c = connect(addr);
            c.write_all(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut resp = Vec::new();
            c.read_to_end(&mut resp).unwrap();
            assert!(resp.starts_with(b"HTTP/1.1 200"), "{backend}: {resp:?}");
        }
        let st = stop_server(&mut srv, backend);
        assert!(st.success(), "{backend}: exit {st}");
    }

    /// `ftp_server --threads 3`: curl fetches a file and a listing (passive data
    /// connections stay on the session's reactor), and `--max-connections 2` holds across
    /// the reactors: a third control connection gets 421. SIGTERM: exit 0.
    fn ftp_three_threads(backend: Backend) {
        let _g = serial();
        if !have_tool("curl", "curl") {
            return;
        }
        let root = temp_root("ftp", backend, &[("hello.txt", b"hello from a pool\n")]);
        let (mut srv, addr) = pool_server(
            "ftp_server",
            "ftp",
            backend,
            &root,
            &["--threads", "3", "--max-connections", "2"],
        );
        for path in ["hello.txt", "hello.txt", ""] {
            let out = curl(&[&format!("ftp://{addr}/{path}")], None);
            assert!(out.status.success(), "{backend}: curl {path:?}: {out:?}");
            let body = String::from_utf8_lossy(&out.stdout);
            assert!(body.contains("hello"), "{backend}: {path:?}: {body:?}");
        }
        let greet = |c: &TcpStream| {
            let mut l = String::new();
            BufReader::new(c.try_clone().unwrap())
                .read_line(&mut l)
                .unwrap();
            l
        };
        // Sessions of finished curl runs may still be closing: wait until two fit.
        let (a, b) = eventually(DEADLINE, "two sessions admitted", || {
            let a = connect(addr);
            let b = connect(addr);
            (greet(&a).starts_with("220") && greet(&b).starts_with("220")).then_some((a, b))
        });
        let c = connect(addr);
        let third = greet(&c);
        assert!(
            third.starts_with("421"),
            "{backend}: third session got {third:?}"
        );
        drop((a, b, c));
        let st = stop_server(&mut srv, backend);
        let _ = std::fs::remove_dir_all(&root);
        assert!(st.success(), "{backend}: exit {st}");
    }

    /// `tftp_server --threads 3` (a `SO_REUSEPORT` UDP socket per reactor): curl gets a
    /// file six times (six client ports, hashed over the reactors); SIGTERM: exit 0.
    fn tftp_three_threads(backend: Backend) {
        let _g = serial();
        if !have_tool("curl", "curl") {
            return;
        }
        let body: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let root = temp_root("tftp", backend, &[("f.bin", &body)]);
        let (mut srv, addr) =
            pool_server("tftp_server", "tftp", backend, &root, &["--threads", "3"]);
        for _ in 0..6 {
            let out = curl(&[&format!("tftp://{addr}/f.bin")], None);
            assert!(out.status.success(), "{backend}: curl: {out:?}");
            assert!(
                out.stdout == body,
                "{backend}: {} bytes back",
                out.stdout.len()
            );
        }
        let st = stop_server(&mut srv, backend);
        let _ = std::fs::remove_dir_all(&root);
        assert!(st.success(), "{backend}: exit {st}");
    }
);

/// Under `PanicPolicy::Propagate` a panic ends its reactor's thread: the pool shuts
/// the others down and reports the failure instead of hanging.
#[test]
fn a_dead_reactor_stops_the_pool() {
    let _g = serial();
    let cfg = Config {
        panic_policy: PanicPolicy::Propagate,
        ..Config::default()
    };
    let pool = Pool::new(Backend::Poll, 3)
        .config(cfg)
        .start(|reactor, member| {
            if member.index() == 1 {
                reactor.call_later(Duration::from_millis(20), |_| panic!("boom"));
            }
            Ok(())
        })
        .unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(pool.wait());
    });
    let err = rx
        .recv_timeout(DEADLINE)
        .expect("the pool hung")
        .expect_err("a reactor died and the pool reported success");
    assert!(
        err.to_string().contains("reactor 1 panicked: boom"),
        "{err}"
    );
}

/// Under the default `PanicPolicy::Contain` a panicking closure costs nothing more:
/// the pool keeps serving on every reactor and then shuts down cleanly.
#[test]
fn a_contained_panic_keeps_the_pool() {
    let _g = serial();
    let (tx, rx) = mpsc::channel::<()>();
    let tx = Mutex::new(tx);
    let l = PoolListener::bind(
        "127.0.0.1:0",
        AcceptStrategy::Handoff,
        2,
        ListenConfig::default(),
    )
    .unwrap();
    let attach = l.clone();
    let pool = Pool::new(Backend::EpollEt, 2)
        .start(move |reactor, member| {
            let i = member.index();
            attach.attach(reactor, member, move |_: &_| {
                Some(Box::new(Tag(i)) as Box<dyn Protocol>)
            })?;
            if i == 1 {
                let tx = tx.lock().unwrap().clone();
                reactor.call_later(Duration::from_millis(1), move |_| {
                    let _ = tx.send(());
                    panic!("contained boom")
                });
            }
            Ok(())
        })
        .unwrap();
    rx.recv_timeout(DEADLINE).expect("the timer ran");
    let tags: Vec<String> = (0..4)
        .flat_map(|_| tagged_rounds(l.local_addr(), 1))
        .collect();
    assert!(
        tags.contains(&"r1".to_string()),
        "reactor 1 still serves: {tags:?}"
    );
    finish(pool, "contained panic");
}

per_backend!(
    /// `EPOLLEXCLUSIVE` is a registration option of the selector layer: honoured by the
    /// epoll backends (the key says so), refused by none (the others register normally);
    /// an exclusive key can be modified (re-registered) and still reports readiness.
    fn exclusive_registration(backend: Backend) {
        use readyloop::selector::{Interest, KeyedSelector};
        use std::os::fd::AsRawFd;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let mut sel = KeyedSelector::new(backend).unwrap();
        let key = sel
            .register_exclusive(l.as_raw_fd(), Interest::READABLE, ())
            .unwrap();
        let want = matches!(backend, Backend::Epoll | Backend::EpollEt);
        assert_eq!(key.exclusive, want, "{backend}");
        let token = key.token;
        sel.modify_token(token, Interest::BOTH).unwrap();
        sel.modify_token(token, Interest::READABLE).unwrap();
        let _c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let t = Instant::now();
        let readable = loop {
            let got: Vec<bool> = sel
                .select(Some(Duration::from_millis(100)))
                .unwrap()
                .map(|(_, r)| r.is_readable())
                .collect();
            if got.contains(&true) || t.elapsed() > DEADLINE {
                break got.contains(&true);
            }
        };
        assert!(readable, "{backend}: a pending connection is reported");
        sel.unregister(l.as_raw_fd()).unwrap();
    }
);

/// `handoff-least`: a new connection goes to the reactor with the fewest open
/// connections (ties round-robin).
#[test]
fn handoff_least_loaded() {
    let _g = serial();
    let strategy: AcceptStrategy = "handoff-least".parse().unwrap();
    let (pool, l) = tag_pool(Backend::EpollEt, strategy, 4, ListenConfig::default());
    let addr = l.local_addr();
    let open_tagged = || {
        let s = connect(addr);
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        w.write_all(b"m\n").unwrap();
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        (w, line.trim_end().to_string())
    };
    let mut held: Vec<(TcpStream, String)> = (0..8).map(|_| open_tagged()).collect();
    let mut per: Vec<usize> = (0..4)
        .map(|i| held.iter().filter(|(_, t)| *t == format!("r{i}")).count())
        .collect();
    assert_eq!(per, [2, 2, 2, 2], "ties go round-robin");
    // Reactor 2 loses its two connections: the next two go there.
    held.retain(|(_, t)| t != "r2");
    let stats = pool.stats_handles();
    eventually(DEADLINE, "reactor 2 empty", || {
        (stats[2].open() == 0).then_some(())
    });
    let (a, ta) = open_tagged();
    let (b, tb) = open_tagged();
    assert_eq!((ta.as_str(), tb.as_str()), ("r2", "r2"));
    held.push((a, ta));
    held.push((b, tb));
    per = (0..4)
        .map(|i| held.iter().filter(|(_, t)| *t == format!("r{i}")).count())
        .collect();
    assert_eq!(per, [2, 2, 2, 2]);
    drop(held);
    finish(pool, "handoff_least_loaded");
}

/// A setup that fails on one reactor starts nothing and returns the error.
#[test]
fn a_failed_setup_starts_nothing() {
    let err = Pool::new(Backend::Epoll, 3)
        .start(|_, member| {
            if member.index() == 2 {
                Err(std::io::Error::other("no"))
            } else {
                Ok(())
            }
        })
        .expect_err("setup failed");
    assert!(err.to_string().contains("reactor 2"), "{err}");
}

/// `reuseport` with port 0: every reactor's socket is on the port the first got.
#[test]
fn reuseport_port_zero() {
    let l = PoolListener::bind(
        "127.0.0.1:0",
        AcceptStrategy::ReusePort,
        4,
        ListenConfig::default(),
    )
    .unwrap();
    assert_ne!(l.local_addr().port(), 0);
    assert_eq!(
        "handoff".parse::<AcceptStrategy>(),
        Ok(AcceptStrategy::Handoff)
    );
    assert!("herd".parse::<AcceptStrategy>().is_err());
}
