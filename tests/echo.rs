//! The echo server, end to end, on every backend: TCP, UDP and Unix-domain echo in
//! process, bulk transfers and misbehaving clients, and the `echo_server` example as a
//! child process (ready lines, memory, SIGTERM, bad flags, a real `nc`).
//!
//! Every case takes a [`Backend`] and is written inside `per_backend!` (from
//! `tests/support`), which adds one test per backend (`tcp_echo_messages::select`,
//! `bulk_transfer_binary::epoll_et`, ...).
//! Sockets are real, on loopback port 0 or in the temp dir; every read and write has a
//! timeout and every "eventually" a deadline, so a broken backend fails, never hangs.

#[macro_use]
mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use readyloop::net::{Listen, ListenConfig};
use readyloop::proto::echo::{Echo, EchoOptions, UdpEcho};
use readyloop::reactor::Config;
use readyloop::selector::Backend;

use support::*;

/// Bytes pushed through one connection by the bulk cases. The debug build echoes
/// 100 MiB in well under a second on loopback, so every backend gets the full size.
const BULK: u64 = 100 << 20;
/// Most the echo server's peak RSS may grow over a case (it holds at most a high
/// watermark of output per connection, 256 KiB by default).
const RSS_GROWTH: u64 = 64 << 20;

/// An in-process echo server on TCP (`opts`), returning the loop and its address.
fn tcp_echo(backend: Backend, opts: EchoOptions) -> (LoopThread, SocketAddr) {
    spawn_loop(backend, Config::default(), move |r| {
        r.listen_tcp("127.0.0.1:0", Echo::factory(opts)).unwrap().1
    })
}

/// How many handlers the loop holds (the listener counts as one).
fn handlers(lt: &LoopThread) -> usize {
    lt.call(|ctx| ctx.handler_count())
}

// ---------------------------------------------------------------------------------
// In-process TCP
// ---------------------------------------------------------------------------------

per_backend!(
    fn tcp_echo_messages(backend: Backend) {
        let (lt, addr) = tcp_echo(backend, EchoOptions::default());
        let mut c = connect(addr);
        for msg in [
            &b"hello\n"[..],
            b"x",
            b"a longer line with spaces and \x00 \xff bytes\r\n",
            &[b'z'; 70_000],
        ] {
            assert_eq!(round_trip(&mut c, msg), msg, "{backend}");
        }
        // A second client at the same time is served too.
        let mut d = connect(addr);
        assert_eq!(round_trip(&mut d, b"second"), b"second");
        assert_eq!(round_trip(&mut c, b"first again"), b"first again");
        drop((c, d));
        lt.stop().unwrap();
    }

    fn tcp_pipelined(backend: Backend) {
        let (lt, addr) = tcp_echo(backend, EchoOptions::default());
        let mut c = connect(addr);
        // Many small requests in one write, then many small writes without reading.
        let mut all = Vec::new();
        let burst: Vec<u8> = (0..1000)
            .flat_map(|i| format!("req {i}\n").into_bytes())
            .collect();
        c.write_all(&burst).unwrap();
        all.extend_from_slice(&burst);
        for i in 0..500 {
            let m = format!("small write {i};");
            c.write_all(m.as_bytes()).unwrap();
            all.extend_from_slice(m.as_bytes());
        }
        let mut back = vec![0u8; all.len()];
        c.read_exact(&mut back).unwrap();
        assert!(
            back == all,
            "{backend}: pipelined data came back out of order"
        );
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(
            read_to_eof(&mut c).unwrap(),
            b"",
            "nothing extra before EOF"
        );
        lt.stop().unwrap();
    }
);

/// Sends `n` pattern bytes (from a writer thread), shuts the write side, and expects
/// all `n` back, then EOF.
fn shutdown_write_round(addr: SocketAddr, n: u64) {
    let mut c = connect(addr);
    let mut w = c.try_clone().unwrap();
    let writer = thread::spawn(move || {
        send_pattern(&mut w, n).expect("send");
        w.shutdown(Shutdown::Write).expect("shutdown(write)");
    });
    expect_pattern_then_eof(&mut c, n);
    writer.join().unwrap();
}

per_backend!(
    fn shutdown_write_then_eof(backend: Backend) {
        let (lt, addr) = tcp_echo(backend, EchoOptions::default());
        // Tiny (data and FIN likely in one readiness report), one buffer's worth, and
        // enough to cross the high watermark so the FIN arrives while reading is paused.
        for n in [0, 1, 5, 64 * 1024, 4 << 20] {
            shutdown_write_round(addr, n);
        }
        // The server closed each connection; only the listener is left.
        eventually(DEADLINE, "connections released", || {
            (handlers(&lt) == 1).then_some(())
        });
        lt.stop().unwrap();
    }

    fn vanishing_clients(backend: Backend) {
        let (lt, addr) = tcp_echo(backend, EchoOptions::default());
        // Three clients push data without reading until the server stops reading them
        // (its output is pending), then vanish three ways.
        let mut rst = connect(addr);
        let mut dropped = connect(addr);
        let mut drained = connect(addr);
        for c in [&mut rst, &mut dropped, &mut drained] {
            let (sent, _) = send_until_blocked(c, Duration::from_millis(200), 16 << 20);
            assert!(sent > 0);
        }
        assert_eq!(
            handlers(&lt),
            4,
            "{backend}: listener and three connections"
        );
        // 1. RST: SO_LINGER 0 then close.
        readyloop::sys::socket::set_linger_zero(rst.as_fd()).unwrap();
        drop(rst);
        // 2. Plain close with unread data (the kernel resets too).
        drop(dropped);
        // 3. Read a little, then close mid-stream.
        let mut buf = vec![0u8; CHUNK];
        let n = drained.read(&mut buf).unwrap();
        assert!(
            n > 0 && buf[..n] == *pattern_at(0, n),
            "{backend}: echo of the start"
        );
        drop(drained);
        // The server notices, frees them, and keeps serving.
        eventually(DEADLINE, "vanished connections released", || {
            (handlers(&lt) == 1).then_some(())
        });
        let mut c = connect(addr);
        assert_eq!(
            round_trip(&mut c, b"still here"),
            b"still here",
            "{backend}"
        );
        drop(c);
        lt.stop().unwrap();
    }

    fn udp_echo(backend: Backend) {
        let (lt, addr) = spawn_loop(backend, Config::default(), |r| {
            r.bind_udp("127.0.0.1:0", UdpEcho::default()).unwrap().1
        });
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut buf = [0u8; 2048];
        for i in 0..20 {
            let msg = format!("datagram {i} {}", "x".repeat(i * 50));
            // UDP may drop; loopback practically never does, but retry a few times.
            let back = (0..5)
                .find_map(|_| {
                    c.send_to(msg.as_bytes(), addr).unwrap();
                    let (n, from) = c.recv_from(&mut buf).ok()?;
                    assert_eq!(from, addr);
                    Some(buf[..n].to_vec())
                })
                .unwrap_or_else(|| panic!("{backend}: no reply to datagram {i}"));
            assert_eq!(back, msg.as_bytes());
        }
        // An empty datagram is a datagram.
        let empty = (0..5).any(|_| {
            c.send_to(b"", addr).unwrap();
            matches!(c.recv_from(&mut buf), Ok((0, _)))
        });
        assert!(empty, "{backend}: an empty datagram is echoed");
        // A burst, then collect every reply (order between datagrams is not promised).
        for i in 0..50u8 {
            c.send_to(&[i; 16], addr).unwrap();
        }
        let mut seen = [false; 50];
        let start = Instant::now();
        while seen.iter().any(|s| !s) && start.elapsed() < Duration::from_secs(3) {
            if let Ok((16, _)) = c.recv_from(&mut buf) {
                seen[buf[0] as usize] = true;
            }
        }
        let missing = seen.iter().filter(|s| !**s).count();
        assert!(
            missing <= 2,
            "{backend}: {missing} of 50 datagrams not echoed"
        );
        lt.stop().unwrap();
    }

    fn unix_echo(backend: Backend) {
        let path = temp_socket_path("echo");
        let p = path.clone();
        // A stale socket file left by a dead server is replaced...
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let (lt, second) = spawn_loop(backend, Config::default(), move |r| {
            r.listen_unix(
                &p,
                Echo::factory(EchoOptions::default()),
                Default::default(),
            )
            .unwrap();
            // ...but a live one is not.
            r.listen_unix(
                &p,
                Echo::factory(EchoOptions::default()),
                Default::default(),
            )
            .map(drop)
            .map_err(|e| e.kind())
        });
        assert_eq!(second, Err(ErrorKind::AddrInUse), "{backend}");
        let mut c = UnixStream::connect(&path).unwrap();
        c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        c.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        for msg in [&b"over a unix socket\n"[..], b"1", &[7u8; 100_000]] {
            assert_eq!(round_trip(&mut c, msg), msg, "{backend}");
        }
        // Half-close: everything comes back, then EOF.
        let mut w = c.try_clone().unwrap();
        let writer = thread::spawn(move || {
            send_pattern(&mut w, 3 << 20).unwrap();
            w.shutdown(Shutdown::Write).unwrap();
        });
        expect_pattern_then_eof(&mut c, 3 << 20);
        writer.join().unwrap();
        assert!(path.exists());
        lt.stop().unwrap();
        assert!(
            !path.exists(),
            "{backend}: socket file removed when the listener closes"
        );
    }

    fn upper_variant(backend: Backend) {
        let upper = EchoOptions { upper: true };
        let (lt, (tcp, udp)) = spawn_loop(backend, Config::default(), move |r| {
            let tcp = r.listen_tcp("127.0.0.1:0", Echo::factory(upper)).unwrap().1;
            let udp = r.bind_udp("127.0.0.1:0", UdpEcho::new(upper)).unwrap().1;
            (tcp, udp)
        });
        let mut c = connect(tcp);
        assert_eq!(
            round_trip(&mut c, b"Hello, World! 123 \xe9\xff\n"),
            b"HELLO, WORLD! 123 \xe9\xff\n",
            "{backend}: only ASCII letters change"
        );
        let back = udp_round_trip(udp, b"shout me");
        assert_eq!(back, b"SHOUT ME");
        drop(c);
        lt.stop().unwrap();
    }
);

// ---------------------------------------------------------------------------------
// The example binary
// ---------------------------------------------------------------------------------

per_backend!(
    /// 100 MiB through one connection of the `echo_server` binary (writer and reader
    /// threads, every byte checked); its peak RSS must stay bounded.
    fn bulk_transfer_binary(backend: Backend) {
        let mut srv = ServerProcess::echo_server(backend, &["--listen", "127.0.0.1:0"], None);
        let addr = srv.tcp_addr();
        let mut c = connect(addr);
        assert_eq!(round_trip(&mut c, b"warm up"), b"warm up");
        let before = srv.rss();
        let start = Instant::now();
        let mut w = c.try_clone().unwrap();
        let writer = thread::spawn(move || {
            send_pattern(&mut w, BULK).expect("send");
            w.shutdown(Shutdown::Write).expect("shutdown(write)");
        });
        let reader = thread::spawn(move || expect_pattern_then_eof(&mut c, BULK));
        reader.join().expect("reader");
        writer.join().expect("writer");
        let took = start.elapsed();
        let peak = srv.peak_rss();
        eprintln!(
            "{backend}: {} MiB echoed in {took:.2?}; server RSS {} KiB before, peak {} KiB",
            BULK >> 20,
            before >> 10,
            peak >> 10
        );
        assert!(
            peak.saturating_sub(before) < RSS_GROWTH,
            "{backend}: server RSS grew from {before} to a peak of {peak} bytes"
        );
    }

    /// A client that sends without ever reading: the server stops reading it (its memory
    /// stays bounded) and keeps serving the others.
    fn non_reading_client_is_bounded(backend: Backend) {
        let mut srv = ServerProcess::echo_server(backend, &["--listen", "127.0.0.1:0"], None);
        let addr = srv.tcp_addr();
        let mut other = connect(addr);
        assert_eq!(round_trip(&mut other, b"before"), b"before");
        let before = srv.rss();
        let mut hog = connect(addr);
        // Without backpressure the server would take all of this (and hold it).
        let limit = 256 << 20;
        let (sent, stalled) = send_until_blocked(&mut hog, Duration::from_millis(300), limit);
        assert!(
            stalled,
            "{backend}: the server took {sent} bytes from a client that never reads"
        );
        let peak = srv.peak_rss();
        eprintln!(
            "{backend}: hog stalled after {} KiB; server RSS {} KiB before, peak {} KiB",
            sent >> 10,
            before >> 10,
            peak >> 10
        );
        assert!(
            peak.saturating_sub(before) < 32 << 20,
            "{backend}: server RSS grew from {before} to a peak of {peak} bytes"
        );
        // Others are still served, while the hog sits there...
        assert_eq!(round_trip(&mut other, b"during"), b"during", "{backend}");
        let mut newcomer = connect(addr);
        assert_eq!(round_trip(&mut newcomer, b"new"), b"new", "{backend}");
        // ...and after it reads everything back and leaves.
        hog.shutdown(Shutdown::Write).unwrap();
        expect_pattern_then_eof(&mut hog, sent);
        assert_eq!(round_trip(&mut other, b"after"), b"after", "{backend}");
    }

    /// The binary on TCP, UDP and a Unix socket: ready lines, echo on each, SIGTERM ->
    /// exit status 0, socket file removed.
    fn example_binary_end_to_end(backend: Backend) {
        let path = temp_socket_path("bin");
        let path_arg = path.to_str().unwrap().to_string();
        let mut srv = ServerProcess::echo_server(
            backend,
            &[
                "--listen",
                "127.0.0.1:0",
                "--udp",
                "127.0.0.1:0",
                "--unix",
                &path_arg,
            ],
            None,
        );
        let tcp = srv.tcp_addr();
        let udp_url = srv.ready_url();
        let udp: SocketAddr = udp_url
            .strip_prefix("udp://")
            .unwrap_or_else(|| panic!("expected udp:// second, got {udp_url}"))
            .parse()
            .unwrap();
        assert_eq!(srv.ready_url(), format!("unix:{path_arg}"));
        assert!(path.exists());

        let mut c = connect(tcp);
        assert_eq!(round_trip(&mut c, b"tcp hello\n"), b"tcp hello\n");

        let back = udp_round_trip(udp, b"udp hello");
        assert_eq!(back, b"udp hello");

        let mut x = UnixStream::connect(&path).unwrap();
        x.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        assert_eq!(round_trip(&mut x, b"unix hello\n"), b"unix hello\n");
        drop(x);

        // SIGTERM with a client still connected (idle): graceful shutdown, status 0.
        srv.terminate();
        let st = srv
            .wait_exit(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("{backend}: still running 5 s after SIGTERM"));
        assert!(
            st.success(),
            "{backend}: exit {st}; stderr:\n{}",
            srv.stderr()
        );
        assert_eq!(
            read_to_eof(&mut c).unwrap(),
            b"",
            "the idle client sees EOF"
        );
        assert!(
            !path.exists(),
            "{backend}: unix socket file removed on exit"
        );
        let log = srv.stderr_to_end();
        assert!(log.contains("graceful shutdown"), "stderr:\n{log}");
    }

    /// A real client: `nc` (netcat-openbsd) pipes a line through the server. Under
    /// `CI=true` a missing `nc` fails the case; elsewhere it is skipped with a note.
    fn nc_client(backend: Backend) {
        let help = match Command::new("nc").arg("-h").output() {
            Ok(o) => {
                String::from_utf8_lossy(&o.stdout).into_owned()
                    + &String::from_utf8_lossy(&o.stderr)
            }
            Err(e) => {
                require(
                    false,
                    &format!("nc ({e})"),
                    "apt-get install -y netcat-openbsd",
                );
                return;
            }
        };
        let (lt, addr) = tcp_echo(backend, EchoOptions::default());
        // -N: shut the socket's write side at EOF on stdin (the server then echoes and
        // closes); older builds only have -q SECS.
        let close_flag: &[&str] = if help.contains("-N") {
            &["-N"]
        } else {
            &["-q", "1"]
        };
        let mut child = Command::new("nc")
            .args(close_flag)
            .args(["-w", "5", "127.0.0.1", &addr.port().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nc");
        let input = b"hello from nc\nsecond line\n";
        child.stdin.take().unwrap().write_all(input).unwrap(); // dropped: EOF on stdin
        let mut stdout = child.stdout.take().unwrap();
        let reader = thread::spawn(move || {
            let mut out = Vec::new();
            let _ = stdout.read_to_end(&mut out);
            out
        });
        let st = wait_child(&mut child, Duration::from_secs(10));
        if st.is_none() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{backend}: nc did not exit within 10 s");
        }
        let out = reader.join().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(input),
            "{backend}: nc got the echo"
        );
        lt.stop().unwrap();
    }

    fn connection_limit(backend: Backend) {
        let (lt, addr) = spawn_loop(backend, Config::default(), |r| {
            let cfg = ListenConfig {
                max_connections: 2,
                ..ListenConfig::default()
            };
            r.listen_tcp_with("127.0.0.1:0", Echo::factory(EchoOptions::default()), cfg)
                .unwrap()
                .1
        });
        let mut a = connect(addr);
        let mut b = connect(addr);
        assert_eq!(round_trip(&mut a, b"a"), b"a");
        assert_eq!(round_trip(&mut b, b"b"), b"b");
        // The third is accepted and closed at once.
        let mut c = connect(addr);
        let _ = c.write_all(b"c");
        match read_to_eof(&mut c) {
            Ok(data) => assert_eq!(data, b"", "{backend}: refused connection got data"),
            Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{backend}: {e}"),
        }
        // A freed place is taken again.
        drop(a);
        eventually(DEADLINE, "a's place freed", || {
            (handlers(&lt) == 2).then_some(())
        });
        let mut d = connect(addr);
        assert_eq!(round_trip(&mut d, b"d"), b"d", "{backend}");
        assert_eq!(round_trip(&mut b, b"b2"), b"b2");
        drop((b, d));
        lt.stop().unwrap();
    }

    /// SIGTERM starts a graceful shutdown that waits for a client's pending output; a
    /// second SIGTERM stops at once (status 0 both ways).
    fn second_sigterm_stops_at_once(backend: Backend) {
        let mut srv = ServerProcess::echo_server(backend, &["--listen", "127.0.0.1:0"], None);
        let addr = srv.tcp_addr();
        let mut hog = connect(addr);
        let (_, stalled) = send_until_blocked(&mut hog, Duration::from_millis(200), 256 << 20);
        assert!(stalled);
        srv.terminate();
        // The first signal is handled (the listener closes) before the second is sent,
        // so the two are not read as one.
        eventually(
            DEADLINE,
            "listener closed after SIGTERM",
            || match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => Some(()),
                _ => None,
            },
        );
        assert!(
            srv.wait_exit(Duration::from_millis(300)).is_none(),
            "{backend}: exited with output still pending; stderr:\n{}",
            srv.stderr()
        );
        let t = Instant::now();
        srv.terminate();
        let st = srv
            .wait_exit(Duration::from_secs(3))
            .unwrap_or_else(|| panic!("{backend}: still running after a second SIGTERM"));
        assert!(st.success(), "{backend}: exit {st}");
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{backend}: {:?}",
            t.elapsed()
        );
        let log = srv.stderr_to_end();
        assert!(log.contains("second shutdown request"), "stderr:\n{log}");
    }
);

// ---------------------------------------------------------------------------------
// Backend-independent
// ---------------------------------------------------------------------------------

#[test]
fn bad_backend_name_is_refused() {
    let bin = example("echo_server");
    let mut child = Command::new(&bin)
        .args(["--backend", "kqueue", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let st = wait_child(&mut child, Duration::from_secs(10)).expect("exits at once");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!st.success(), "exit status {st}");
    assert!(err.contains("kqueue"), "names the bad value: {err}");
    for b in Backend::ALL {
        assert!(err.contains(b.name()), "lists {}: {err}", b.name());
    }
}

#[test]
fn udp_ignores_errors_from_earlier_sends() {
    // An ICMP port-unreachable from a reply to a vanished client surfaces as an error
    // on the next recv; the socket must keep serving everyone else.
    let (lt, addr) = spawn_loop(Backend::best(), Config::default(), |r| {
        r.bind_udp("127.0.0.1:0", UdpEcho::default()).unwrap().1
    });
    for _ in 0..5 {
        let gone = UdpSocket::bind("127.0.0.1:0").unwrap();
        gone.send_to(b"reply to nobody", addr).unwrap();
    }
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 16];
    let ok = (0..10).any(|_| {
        c.send_to(b"alive?", addr).unwrap();
        matches!(c.recv_from(&mut buf), Ok((6, _)))
    });
    assert!(ok, "the UDP echo kept serving");
    lt.stop().unwrap();
}
