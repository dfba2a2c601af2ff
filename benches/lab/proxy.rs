//! The `proxy` workload: bulk bytes through a TCP relay to an echo backend and back,
//! this crate's relay (`readyloop::proto::relay`, the `proxy` example's protocol) on
//! its reactor against a tokio relay (`copy_bidirectional` per connection on a
//! current-thread runtime), in the same run, contenders alternating within each
//! round.
//!
//! Each relay runs on its own thread of the lab process (pinned to the server CPU
//! when the lab pins), so its CPU time is that thread's (`/proc/thread-self/schedstat`,
//! read by the thread itself around its loop). The backend is this crate's echo on
//! epoll in another thread, shared by every point; the client writes and reads on
//! blocking sockets (one writer and one reader thread per connection). Figures:
//! payload MB/s (bytes sent by the client / time until the last echoed byte came
//! back; each byte crosses the relay twice) and relay CPU milliseconds per MiB of
//! payload.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use readyloop::net::{Listen, StreamConfig};
use readyloop::proto::echo::{Echo, EchoOptions};
use readyloop::proto::relay::Relay;
use readyloop::reactor::{Handle, Reactor};
use readyloop::selector::Backend;

use crate::cli::Options;
use crate::common::procfs;

/// The relays compared.
pub const CONTENDERS: [&str; 3] = ["readyloop-epoll-et", "readyloop-epoll", "tokio"];

/// One measured point.
#[derive(Clone, Copy, Debug)]
pub struct Point {
    pub mb_per_sec: f64,
    pub cpu_ms_per_mib: f64,
}

/// A relay running on its own thread; `cpu` yields its thread CPU time once it ends.
struct RelayRun {
    addr: SocketAddr,
    stop: Option<Handle>,
    cpu: mpsc::Receiver<io::Result<u64>>,
}

fn spawn_readyloop(backend: Backend, to: SocketAddr, cpu: Option<usize>) -> io::Result<RelayRun> {
    let (tx_addr, rx_addr) = mpsc::channel();
    let (tx_cpu, rx_cpu) = mpsc::channel();
    thread::Builder::new()
        .name(format!("relay-{backend}"))
        .spawn(move || {
            if let Some(c) = cpu {
                crate::os::pin_to(c);
            }
            let setup = (|| {
                let mut r = Reactor::new(backend)?;
                let f = Relay::factory(to, Duration::from_secs(5), StreamConfig::default());
                let (_, addr) = r.listen_tcp("127.0.0.1:0", f)?;
                Ok::<_, io::Error>((r, addr))
            })();
            let mut r = match setup {
                Ok((r, addr)) => {
                    let _ = tx_addr.send(Ok((addr, r.handle())));
                    r
                }
                Err(e) => {
                    let _ = tx_addr.send(Err(e));
                    return;
                }
            };
            let c0 = procfs::thread_cpu_ns();
            let res = r.run();
            let c1 = procfs::thread_cpu_ns();
            let _ = tx_cpu.send(res.and_then(|()| match (c0, c1) {
                (Some(a), Some(b)) => Ok(b.saturating_sub(a)),
                _ => Err(io::Error::other("no /proc/thread-self/schedstat")),
            }));
        })?;
    let (addr, handle) = rx_addr
        .recv_timeout(Duration::from_secs(10))
        .map_err(|e| io::Error::other(format!("relay set-up: {e}")))??;
    Ok(RelayRun {
        addr,
        stop: Some(handle),
        cpu: rx_cpu,
    })
}

/// The tokio relay: serves exactly `conns` connections (each `copy_bidirectional`
/// to a fresh backend connection), then ends.
fn spawn_tokio(to: SocketAddr, conns: usize, cpu: Option<usize>) -> io::Result<RelayRun> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let (tx_cpu, rx_cpu) = mpsc::channel();
    thread::Builder::new()
        .name("relay-tokio".into())
        .spawn(move || {
            if let Some(c) = cpu {
                crate::os::pin_to(c);
            }
            let c0 = procfs::thread_cpu_ns();
            let res = (|| -> io::Result<()> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()?;
                rt.block_on(async move {
                    let l = tokio::net::TcpListener::from_std(listener)?;
                    let mut tasks = Vec::new();
                    for _ in 0..conns {
                        let (mut c, _) = l.accept().await?;
                        c.set_nodelay(true)?;
                        tasks.push(tokio::spawn(async move {
                            let mut b = tokio::net::TcpStream::connect(to).await?;
                            b.set_nodelay(true)?;
                            tokio::io::copy_bidirectional(&mut c, &mut b).await?;
                            Ok::<(), io::Error>(())
                        }));
                    }
                    for t in tasks {
                        t.await.map_err(io::Error::other)??;
                    }
                    Ok(())
                })
            })();
            let c1 = procfs::thread_cpu_ns();
            let _ = tx_cpu.send(res.and_then(|()| match (c0, c1) {
                (Some(a), Some(b)) => Ok(b.saturating_sub(a)),
                _ => Err(io::Error::other("no /proc/thread-self/schedstat")),
            }));
        })?;
    Ok(RelayRun {
        addr,
        stop: None,
        cpu: rx_cpu,
    })
}

/// `conns` connections through `addr`, each sending `bytes` and reading them back
/// until EOF. Returns the time from the first write to the last EOF.
fn transfer(addr: SocketAddr, conns: usize, bytes: u64) -> io::Result<Duration> {
    let start = Instant::now();
    let mut threads = Vec::new();
    for _ in 0..conns {
        let mut w = TcpStream::connect(addr)?;
        w.set_nodelay(true)?;
        w.set_read_timeout(Some(Duration::from_secs(30)))?;
        w.set_write_timeout(Some(Duration::from_secs(30)))?;
        let mut r = w.try_clone()?;
        threads.push(thread::spawn(move || -> io::Result<()> {
            let chunk = vec![0x5au8; 64 * 1024];
            let mut sent = 0u64;
            while sent < bytes {
                let n = (bytes - sent).min(chunk.len() as u64) as usize;
                w.write_all(&chunk[..n])?;
                sent += n as u64;
            }
            w.shutdown(Shutdown::Write)
        }));
        threads.push(thread::spawn(move || -> io::Result<()> {
            let mut buf = vec![0u8; 64 * 1024];
            let mut got = 0u64;
            loop {
                match r.read(&mut buf)? {
                    0 => break,
                    n => got += n as u64,
                }
            }
            if got == bytes {
                Ok(())
            } else {
                Err(io::Error::other(format!(
                    "{got} of {bytes} bytes came back"
                )))
            }
        }));
    }
    for t in threads {
        t.join()
            .map_err(|_| io::Error::other("client thread panicked"))??;
    }
    Ok(start.elapsed())
}

/// One point: start the relay, move the bytes, stop it, read its CPU time.
fn point(name: &str, to: SocketAddr, o: &Options, cpu: Option<usize>) -> Result<Point, String> {
    let conns = o.bulk_connections.max(1);
    let bytes = per_connection_bytes(o);
    let e = |e: io::Error| format!("{name}: {e}");
    let mut relay = match name {
        "readyloop-epoll-et" => spawn_readyloop(Backend::EpollEt, to, cpu),
        "readyloop-epoll" => spawn_readyloop(Backend::Epoll, to, cpu),
        "tokio" => spawn_tokio(to, conns, cpu),
        other => return Err(format!("unknown proxy contender {other}")),
    }
    .map_err(e)?;
    let took = transfer(relay.addr, conns, bytes);
    if let Some(h) = relay.stop.take() {
        let _ = h.stop();
    }
    let took = took.map_err(e)?;
    let cpu_ns = relay
        .cpu
        .recv_timeout(Duration::from_secs(30))
        .map_err(|err| format!("{name}: the relay did not end: {err}"))?
        .map_err(e)?;
    let mib = (bytes * conns as u64) as f64 / (1024.0 * 1024.0);
    Ok(Point {
        mb_per_sec: (bytes * conns as u64) as f64 / 1e6 / took.as_secs_f64().max(1e-9),
        cpu_ms_per_mib: cpu_ns as f64 / 1e6 / mib,
    })
}

/// Payload bytes per connection: 2 MiB with `--quick`, else 32 MiB.
pub fn per_connection_bytes(o: &Options) -> u64 {
    if o.quick {
        2 << 20
    } else {
        32 << 20
    }
}

/// Runs the workload: `o.rounds` rounds, contenders rotating. Prints a markdown table
/// and returns the number of failed points.
pub fn run(o: &Options, server_cpu: Option<usize>) -> usize {
    let contenders: Vec<&str> = CONTENDERS.to_vec();
    // The echo backend, shared by every point.
    let (tx, rx) = mpsc::channel();
    let backend_thread = thread::spawn(move || {
        let setup = (|| {
            let mut r = Reactor::new(Backend::Epoll)?;
            let (_, addr) = r.listen_tcp("127.0.0.1:0", Echo::factory(EchoOptions::default()))?;
            Ok::<_, io::Error>((r, addr))
        })();
        match setup {
            Ok((mut r, addr)) => {
                let _ = tx.send(Ok((addr, r.handle())));
                let _ = r.run();
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        }
    });
    let (to, backend_handle) = match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            eprintln!("lab: proxy: echo backend: {e}");
            return contenders.len();
        }
        Err(e) => {
            eprintln!("lab: proxy: echo backend: {e}");
            return contenders.len();
        }
    };
    let mut results: Vec<(String, Vec<Point>, Option<String>)> = contenders
        .iter()
        .map(|c| (c.to_string(), Vec::new(), None))
        .collect();
    for round in 0..o.rounds {
        eprintln!("lab: proxy round {}/{}", round + 1, o.rounds);
        for i in 0..contenders.len() {
            let idx = (i + round) % contenders.len();
            if results[idx].2.is_some() {
                continue;
            }
            match point(contenders[idx], to, o, server_cpu) {
                Ok(p) => results[idx].1.push(p),
                Err(e) => {
                    eprintln!("lab: proxy / {e}");
                    results[idx].2 = Some(e);
                }
            }
        }
    }
    let _ = backend_handle.stop();
    let _ = backend_thread.join();
    print_table(o, &results);
    results
        .iter()
        .filter(|r| r.2.is_some() || r.1.is_empty())
        .count()
}

fn median_min_max(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let med = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (med, v[0], v[n - 1])
}

fn print_table(o: &Options, results: &[(String, Vec<Point>, Option<String>)]) {
    let conns = o.bulk_connections.max(1);
    let mib = per_connection_bytes(o) >> 20;
    println!(
        "\n### `proxy`: relay to an echo backend, {conns} connection(s) x {mib} MiB each way \
         ({} round(s), contenders alternating)\n",
        o.rounds
    );
    println!("| relay | payload MB/s (median, min–max) | relay CPU ms/MiB (median, min–max) |");
    println!("|---|---|---|");
    for (name, points, err) in results {
        if let Some(e) = err {
            println!("| {name} | failed: {e} | |");
            continue;
        }
        if points.is_empty() {
            println!("| {name} | no point | |");
            continue;
        }
        let (m, lo, hi) = median_min_max(points.iter().map(|p| p.mb_per_sec).collect());
        let (c, clo, chi) = median_min_max(points.iter().map(|p| p.cpu_ms_per_mib).collect());
        println!("| {name} | {m:.0} ({lo:.0}–{hi:.0}) | {c:.2} ({clo:.2}–{chi:.2}) |");
    }
}
