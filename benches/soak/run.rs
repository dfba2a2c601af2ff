//! One backend's soak: the server, the clients for `--duration`, the samples, the
//! settle and the idle measurement.

use std::io::{self, BufReader, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use readyloop::selector::Backend;
use serde_json::Value;

use crate::cli::Options;
use crate::clients::{
    chat_pair, connect, echo_client, half_close_client, http_client, http_response, misbehave, Rng,
    Tally, PACE,
};
use crate::common::procfs;
use crate::server::{sample, spawn, Point};

pub struct Run {
    pub backend: Backend,
    pub secs: f64,
    pub points: Vec<Point>,
    pub baseline_fds: u64,
    pub end_fds: u64,
    pub idle_cpu: f64,
    pub panics: Option<u64>,
    pub echo_trips: u64,
    pub http_requests: u64,
    pub chat_messages: u64,
    pub half_closes: u64,
    pub misbehaving: u64,
    pub errors: u64,
    pub first_errors: Vec<String>,
    pub clean_exit: bool,
}

impl Run {
    /// Points after the first fifth of the run (warm-up).
    pub fn warm(&self) -> &[Point] {
        let cut = self.points.iter().position(|p| p.t >= self.secs / 5.0);
        &self.points[cut.unwrap_or(0)..]
    }

    pub fn range(&self, f: impl Fn(&Point) -> u64) -> (u64, u64) {
        let w = self.warm();
        (
            w.iter().map(&f).min().unwrap_or(0),
            w.iter().map(&f).max().unwrap_or(0),
        )
    }

    pub fn ok(&self) -> bool {
        self.errors == 0 && self.end_fds <= self.baseline_fds && self.idle_cpu <= 5.0
    }
}

pub fn stats_panics(addr: SocketAddr) -> Option<u64> {
    let mut r = BufReader::new(connect(addr).ok()?);
    r.get_mut()
        .write_all(b"GET /api/stats HTTP/1.1\r\nHost: soak\r\n\r\n")
        .ok()?;
    let (_, body) = http_response(&mut r).ok()?;
    serde_json::from_slice::<Value>(&body).ok()?["panics_contained"].as_u64()
}

pub fn soak_one(backend: Backend, o: &Options) -> io::Result<Run> {
    let (server, addrs) = spawn(backend)?;
    let pid = server.pid();
    thread::sleep(Duration::from_millis(200));
    let baseline_fds = procfs::fd_count(pid);
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut workers = Vec::new();
    // Well-behaved: two of each kind; misbehaving: two threads.
    for w in 0..8u64 {
        let (stop, t) = (stop.clone(), tally.clone());
        workers.push(thread::spawn(move || {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (w + 1));
            let mut n = 0u64;
            while !stop.load(Relaxed) {
                n += 1;
                let id = w * 1_000_000 + n;
                let res = match w {
                    0 | 1 => echo_client(addrs.echo, &stop, &t, &mut rng),
                    2 | 3 => http_client(addrs.http, &stop, &t, &mut rng),
                    4 | 5 => chat_pair(addrs.chat, id, &t),
                    6 => half_close_client(addrs.echo, &t, &mut rng),
                    _ => {
                        misbehave(&addrs, &mut rng, id);
                        t.misbehaving.fetch_add(1, Relaxed);
                        Ok(())
                    }
                };
                if let Err(e) = res {
                    t.error(format!("worker {w}: {e}"));
                }
                thread::sleep(PACE);
            }
        }));
    }
    // The second misbehaving thread.
    {
        let (stop, t) = (stop.clone(), tally.clone());
        workers.push(thread::spawn(move || {
            let mut rng = Rng(0xdead_beef);
            let mut n = 0;
            while !stop.load(Relaxed) {
                n += 1;
                misbehave(&addrs, &mut rng, 9_000_000 + n);
                t.misbehaving.fetch_add(1, Relaxed);
            }
        }));
    }
    let mut points = vec![sample(pid, start)];
    while start.elapsed() < o.duration {
        thread::sleep(o.interval.min(o.duration.saturating_sub(start.elapsed())));
        points.push(sample(pid, start));
        let p = points[points.len() - 1];
        eprint!(
            "\r{backend}: {:>4.0}/{} s  rss {} KiB  fds {}  errors {}   ",
            p.t,
            o.duration.as_secs(),
            p.rss_kb,
            p.fds,
            tally.errors.load(Relaxed)
        );
    }
    eprintln!();
    stop.store(true, Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let secs = start.elapsed().as_secs_f64();
    // Let close timeouts and lingering closes finish (2 s server-side), then idle.
    let settle = Instant::now();
    while procfs::fd_count(pid) > baseline_fds && settle.elapsed() < Duration::from_secs(10) {
        thread::sleep(Duration::from_millis(200));
    }
    let end_fds = procfs::fd_count(pid);
    let c0 = procfs::cpu_ns(pid).unwrap_or(0);
    let t0 = Instant::now();
    thread::sleep(Duration::from_secs(3));
    let idle_ns = procfs::cpu_ns(pid).unwrap_or(0).saturating_sub(c0);
    let idle_cpu = idle_ns as f64 / 1e9 / t0.elapsed().as_secs_f64() * 100.0;
    points.push(sample(pid, start));
    let panics = stats_panics(addrs.http);
    let clean_exit = match server.stop() {
        Ok(()) => true,
        Err(e) => {
            eprintln!("soak: {e}");
            false
        }
    };
    let t = Arc::try_unwrap(tally).unwrap_or_default();
    Ok(Run {
        backend,
        secs,
        points,
        baseline_fds,
        end_fds,
        idle_cpu,
        panics,
        echo_trips: t.echo_trips.into_inner(),
        http_requests: t.http_requests.into_inner(),
        chat_messages: t.chat_messages.into_inner(),
        half_closes: t.half_closes.into_inner(),
        misbehaving: t.misbehaving.into_inner(),
        errors: t.errors.into_inner(),
        first_errors: t.first_errors.into_inner().unwrap_or_default(),
        clean_exit,
    })
}
