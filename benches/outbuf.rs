//! Micro-measurement behind `OutBuf`'s `COPY_BELOW` (issue 14 part 3): the CPU cost
//! per queued message of copying it into the output buffer's tail, of queueing a
//! shared `Bytes` by reference (gathered `sendmsg`), and of the old `Vec` + `send`,
//! on loopback TCP with a reader thread draining the other end.
//!
//! `cargo bench --bench outbuf -- BATCH SIZE` (defaults 30 and 120:
//! messages queued per flush, bytes per message); pin it (`taskset -c 0`) on a busy
//! machine. Figures: `docs/lab/chat-fanout.md`.
use bytes::Bytes;
use readyloop::net::OutBuf;
use readyloop::sys::socket::send_vectored;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

/// This thread's time on a CPU (`/proc/thread-self/schedstat`, first field).
fn cpu() -> Duration {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let ns = s
        .split_whitespace()
        .next()
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(ns)
}

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let batch: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(30);
    let size: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(120);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = vec![0u8; 1 << 20];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    });
    let c = TcpStream::connect(a).unwrap();
    c.set_nonblocking(false).unwrap();
    let msg = Bytes::from(vec![b'm'; size]);
    let iters = 20000usize;
    let mut res = [[0f64; 2]; 3];
    for round in 0..6 {
        for (variant, acc) in res.iter_mut().enumerate() {
            let mut out = OutBuf::default();
            let mut old: Vec<u8> = Vec::new();
            let t0 = cpu();
            for _ in 0..iters {
                match variant {
                    0 => {
                        for _ in 0..batch {
                            out.extend(&msg);
                        }
                    }
                    1 => {
                        for _ in 0..batch {
                            out.push_shared(&msg);
                        }
                    }
                    _ => {
                        for _ in 0..batch {
                            old.extend_from_slice(&msg);
                        }
                    }
                }
                if variant < 2 {
                    while !out.is_empty() {
                        out.write_with(|iov| send_vectored(c.as_fd(), iov, false))
                            .unwrap();
                    }
                } else {
                    let mut off = 0;
                    while off < old.len() {
                        off += readyloop::sys::socket::send(c.as_fd(), &old[off..]).unwrap();
                    }
                    old.clear();
                }
            }
            let ns = (cpu() - t0).as_nanos() as f64 / (iters * batch) as f64;
            if round > 0 {
                acc[0] += ns;
                acc[1] += 1.0;
            }
        }
    }
    let names = [
        "copy into OutBuf tail + send",
        "push_shared (copied up to 1 KiB, else by reference + sendmsg)",
        "old Vec + send",
    ];
    for (v, name) in names.iter().enumerate() {
        println!(
            "batch {batch} size {size}: {name}: {:.1} ns/message",
            res[v][0] / res[v][1]
        );
    }
}
