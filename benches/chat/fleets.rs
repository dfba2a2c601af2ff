//! Every client of the benchmark, in `--client-threads` fleets: each step (join,
//! settle, phase) runs every fleet on its own thread and adds up what they saw.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::os::pin_to;
use crate::fleet::{new_histogram, Fleet, PhaseOut, PhasePlan};

/// Every client, in `threads` fleets; each step runs every fleet on its own thread
/// (pinned to its CPU) and waits for all.
pub struct Fleets {
    pub fleets: Vec<Fleet>,
    pub cpus: Vec<Option<usize>>,
    pub clients: usize,
}

impl Fleets {
    /// `cpus`: one entry per client thread (its length is the thread count).
    pub fn new(
        addr: SocketAddr,
        explicit_join: bool,
        cpus: &[Option<usize>],
    ) -> io::Result<Fleets> {
        let epoch = Instant::now();
        let threads = cpus.len().max(1);
        let fleets = (0..threads)
            .map(|k| Fleet::new(addr, explicit_join, epoch, k, threads))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Fleets {
            fleets,
            cpus: cpus.to_vec(),
            clients: 0,
        })
    }

    /// Runs `f` on every fleet, each on its own thread, calling `tick` about every
    /// 250 ms meanwhile; the first error wins.
    pub fn each<T: Send>(
        &mut self,
        f: impl Fn(&mut Fleet) -> Result<T, String> + Sync,
        tick: &mut dyn FnMut(),
    ) -> Result<Vec<T>, String> {
        let f = &f;
        let cpus = &self.cpus;
        std::thread::scope(|s| {
            let handles: Vec<_> = self
                .fleets
                .iter_mut()
                .enumerate()
                .map(|(k, fleet)| {
                    let cpu = cpus.get(k).copied().flatten();
                    s.spawn(move || {
                        if let Some(c) = cpu {
                            pin_to(c);
                        }
                        f(fleet)
                    })
                })
                .collect();
            let mut last = Instant::now();
            while !handles.iter().all(|h| h.is_finished()) {
                std::thread::sleep(Duration::from_millis(5));
                if last.elapsed() >= Duration::from_millis(250) {
                    last = Instant::now();
                    tick();
                }
            }
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("a client thread panicked".into()))
                })
                .collect()
        })
    }

    /// Connects and registers clients `0..n` (each fleet its share, at most `wave`
    /// registering at once in all); returns when the last fleet is done.
    pub fn join_all(&mut self, n: usize, wave: usize, limit: Duration) -> Result<Duration, String> {
        self.clients = n;
        let wave = wave.div_ceil(self.fleets.len()).max(1);
        let t = self.each(|f| f.join_all(n, wave, limit), &mut || {})?;
        Ok(t.into_iter().max().unwrap_or_default())
    }

    pub fn settle(&mut self, quiet: Duration, limit: Duration) -> Result<(), String> {
        self.each(|f| f.settle(quiet, limit), &mut || {})
            .map(|_| ())
    }

    /// Sends `rate` messages per second for `duration` from clients `0..senders`
    /// (interleaved; each fleet sends for its own senders on a shared schedule),
    /// counts deliveries while sending (the window, `on_tick` about every 250 ms), then
    /// drains until every delivery arrived or none came for 3 s.
    pub fn phase(
        &mut self,
        phase: u32,
        senders: usize,
        rate: f64,
        duration: Duration,
        on_tick: &mut dyn FnMut(),
    ) -> Result<PhaseOut, String> {
        let plan = PhasePlan {
            phase,
            senders,
            rate,
            duration,
            // A moment ahead, so every thread is up when the first message is due.
            t0: Instant::now() + Duration::from_millis(2),
            sent: (0..senders).map(|_| AtomicU64::new(0)).collect(),
            done: AtomicUsize::new(0),
            fleets: self.fleets.len(),
        };
        let end = plan.t0 + duration;
        let mut tick = || {
            if Instant::now() < end {
                on_tick();
            }
        };
        let outs = self.each(|f| f.phase(&plan), &mut tick)?;
        let n = self.clients as u64;
        let mut got = vec![vec![0u32; plan.per_sender()]; senders];
        let mut hist = new_histogram();
        let mut out = PhaseOut::default();
        for o in &outs {
            for (acc, v) in got.iter_mut().zip(&o.got) {
                for (a, c) in acc.iter_mut().zip(v) {
                    *a += c;
                }
            }
            let _ = hist.add(&o.hist);
            out.in_window += o.in_window;
            out.self_echo += o.self_echo;
            out.window = out.window.max(o.window);
            out.client_cpu += o.client_cpu;
        }
        let sent: Vec<u64> = plan.sent.iter().map(|c| c.load(Ordering::SeqCst)).collect();
        out.sent = sent.iter().sum();
        out.expected = out.sent * (n - 1);
        out.received = got.iter().flatten().map(|&c| c as u64).sum();
        for (v, &s) in got.iter().zip(&sent) {
            out.lost += v
                .iter()
                .take(s as usize)
                .map(|&c| (n - 1).saturating_sub(c as u64))
                .sum::<u64>();
        }
        let q = |x: f64| (!hist.is_empty()).then(|| hist.value_at_quantile(x) as f64 / 1000.0);
        out.p50_us = q(0.5);
        out.p99_us = q(0.99);
        out.max_us = (!hist.is_empty()).then(|| hist.max() as f64 / 1000.0);
        Ok(out)
    }
}
