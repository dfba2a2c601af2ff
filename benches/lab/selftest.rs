//! `--self-test`: the lab's own checks (a harness = false bench runs no `#[test]`).
//! Prints one line per check and `N passed, N failed`; no check asserts a timing.
//! Past 600 lines on purpose: a flat list of independent checks, one function each,
//! named in the table at the end; splitting it would only scatter that list.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use readyloop::sys::stats::Counts;

use crate::cli::{self, Mode};
use crate::loadgen::{self, Bounds, EchoClient};
use crate::report::{self, Cell, Outcome, Sample};
use crate::servers;
use crate::{http, nginx, wrk};

type Check = (&'static str, fn() -> Result<(), String>);

fn ensure(cond: bool, what: impl Into<String>) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what.into())
    }
}

/// A throwaway blocking echo server on a thread (the load generator's test peer).
fn test_echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut r = s.try_clone().expect("clone");
                let _ = std::io::copy(&mut r, &mut s);
            });
        }
    });
    addr
}

fn loadgen_counts_exactly() -> Result<(), String> {
    let addr = test_echo();
    let mut c = EchoClient::connect(addr, 3, 64).map_err(|e| e.to_string())?;
    let r = c
        .run(Bounds {
            max_ops: 50,
            duration: Duration::from_secs(30),
        })
        .map_err(|e| e.to_string())?;
    ensure(r.ops == 50, format!("ops {} != 50", r.ops))?;
    ensure(
        r.hist.len() == 50,
        format!("histogram has {}", r.hist.len()),
    )?;
    ensure(r.bytes == 50 * 64, format!("bytes {}", r.bytes))?;
    ensure(r.errors == 0, format!("{} errors", r.errors))?;
    let p50 = r.quantile_us(0.5).ok_or("no p50")?;
    let p99 = r.quantile_us(0.99).ok_or("no p99")?;
    ensure(p50 > 0.0 && p50 <= p99, format!("p50 {p50} p99 {p99}"))?;
    // Fewer operations than connections: only that many start.
    let r = c
        .run(Bounds {
            max_ops: 2,
            duration: Duration::from_secs(30),
        })
        .map_err(|e| e.to_string())?;
    ensure(r.ops == 2, format!("ops {} != 2", r.ops))
}

fn loadgen_stops_on_time() -> Result<(), String> {
    let addr = test_echo();
    let mut c = EchoClient::connect(addr, 2, 16 * 1024).map_err(|e| e.to_string())?;
    let r = c
        .run(Bounds {
            max_ops: u64::MAX,
            duration: Duration::from_millis(30),
        })
        .map_err(|e| e.to_string())?;
    ensure(
        r.ops > 0 && r.errors == 0,
        format!("ops {} errors {}", r.ops, r.errors),
    )?;
    ensure(r.bytes == r.ops * 16 * 1024, "bulk bytes")
}

fn churn_counts_connections() -> Result<(), String> {
    let addr = test_echo();
    let r = loadgen::churn(
        addr,
        4,
        Bounds {
            max_ops: 20,
            duration: Duration::from_secs(30),
        },
    )
    .map_err(|e| e.to_string())?;
    ensure(
        r.ops == 20 && r.errors == 0,
        format!("ops {} errors {}", r.ops, r.errors),
    )
}

fn idle_connections_open() -> Result<(), String> {
    let addr = test_echo();
    let mut v = Vec::new();
    loadgen::open_idle(addr, 25, 10, &mut v).map_err(|e| e.to_string())?;
    ensure(v.len() == 25, format!("{} idle", v.len()))
}

/// The open-loop generator offers exactly rate × duration operations, none before
/// it is due.
fn open_loop_paces() -> Result<(), String> {
    let addr = test_echo();
    let req = loadgen::Request::Echo(loadgen::pattern(64));
    let mut c = loadgen::OpenLoop::connect(addr, 4, req).map_err(|e| e.to_string())?;
    let r = c
        .run(
            Some(2000.0),
            Bounds {
                max_ops: u64::MAX,
                duration: Duration::from_millis(100),
            },
        )
        .map_err(|e| e.to_string())?;
    let p = &r.phase;
    ensure(p.ops == 200, format!("ops {} != 200", p.ops))?;
    ensure(p.errors == 0, format!("{} errors", p.errors))?;
    ensure(p.hist.len() == 200, "histogram")?;
    // The 200th operation is due 99.5 ms after the start.
    ensure(
        p.elapsed >= Duration::from_micros(99_500),
        format!("finished in {:?}: sent ahead of schedule", p.elapsed),
    )?;
    // Closed loop (no rate) with an operation cap.
    let r = c
        .run(
            None,
            Bounds {
                max_ops: 30,
                duration: Duration::from_secs(30),
            },
        )
        .map_err(|e| e.to_string())?;
    ensure(
        r.phase.ops == 30,
        format!("closed loop ops {}", r.phase.ops),
    )
}

/// A server that answers every request 20 ms late, offered 1000/s on one connection
/// for 50 ms: the 50th request is due at 49 ms and answered at about 1 s, and its
/// latency counts from when it was due (coordinated omission corrected), not from
/// when the connection got round to sending it (which would say 20 ms).
fn open_loop_corrects_coordinated_omission() -> Result<(), String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = l.local_addr().map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        let Ok((mut s, _)) = l.accept() else { return };
        let mut b = [0u8; 64];
        loop {
            let mut got = 0;
            while got < 64 {
                match s.read(&mut b[got..]) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got += n,
                }
            }
            std::thread::sleep(Duration::from_millis(20));
            if s.write_all(&b).is_err() {
                return;
            }
        }
    });
    let req = loadgen::Request::Echo(loadgen::pattern(64));
    let mut c = loadgen::OpenLoop::connect(addr, 1, req).map_err(|e| e.to_string())?;
    let r = c
        .run(
            Some(1000.0),
            Bounds {
                max_ops: u64::MAX,
                duration: Duration::from_millis(50),
            },
        )
        .map_err(|e| e.to_string())?;
    let p = &r.phase;
    ensure(
        p.ops == 50 && p.errors == 0,
        format!("{} ops {} errors", p.ops, p.errors),
    )?;
    let max_ms = p.hist.max() as f64 / 1e6;
    let p50_ms = p.quantile_us(0.5).unwrap_or(0.0) / 1e3;
    // 50 replies, 20 ms apart: the last is in at >= 1000 ms, due at 49 ms.
    ensure(
        max_ms >= 900.0,
        format!("max latency {max_ms:.0} ms < 900 ms"),
    )?;
    ensure(p50_ms >= 400.0, format!("p50 {p50_ms:.0} ms < 400 ms"))
}

fn http_response_framing() -> Result<(), String> {
    let f = loadgen::http_response_len;
    let ok = b"HTTP/1.1 200 OK\r\nServer: x\r\ncontent-length: 5\r\n\r\nhello";
    ensure(f(ok).ok() == Some(Some((ok.len(), 5))), "complete response")?;
    ensure(f(&ok[..ok.len() - 1]).ok() == Some(None), "short body")?;
    ensure(f(&ok[..20]).ok() == Some(None), "short head")?;
    ensure(
        f(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n").is_err(),
        "404 is an error",
    )?;
    ensure(
        f(b"HTTP/1.1 200 OK\r\n\r\n").is_err(),
        "no Content-Length is an error",
    )
}

fn latency_rates_and_table() -> Result<(), String> {
    let r = crate::latency::rates(87_654.0, &[0.1, 0.5, 1.0, 1.25]);
    ensure(r == [8_800, 44_000, 88_000, 110_000], format!("{r:?}"))?;
    let mk = |name: &str, offered: u64, p99: f64| Cell {
        workload: "latency-echo".into(),
        contender: name.into(),
        idle: None,
        offered: Some(offered),
        outcome: Outcome::Measured(vec![Sample {
            p99_us: Some(p99),
            cpu_us_per_op: Some(7.5),
            ..sample(100, 1000.0, None)
        }]),
    };
    let cs = [mk("epoll-et", 100, 20.0), mk("epoll-et", 200, 500.0)];
    let refs: Vec<&Cell> = cs.iter().collect();
    let t = report::latency_tables(&refs, &["epoll-et".into(), "poll".into()], &[100, 200]);
    ensure(
        t.contains("| `epoll-et` | 10.0 / 20.0 / 30.0 | 10.0 / 500 / 30.0 |"),
        t.clone(),
    )?;
    ensure(
        t.contains("| `epoll-et` | 7.50 (1.0k) | 7.50 (1.0k) |"),
        t.clone(),
    )?;
    ensure(
        !t.contains("`poll`"),
        "a contender without cells has no row",
    )
}

/// The headline columns: fixed-load CPU per op, and the ratio to the reference
/// paired by round (round 1: 6/4, round 2: 9/3: median 2.25x).
fn headline_paired_by_round() -> Result<(), String> {
    let mk = |name: &str, cpus: &[f64]| Cell {
        workload: "round-trip".into(),
        contender: name.into(),
        idle: None,
        offered: None,
        outcome: Outcome::Measured(
            cpus.iter()
                .map(|c| Sample {
                    fixed_cpu_us_per_op: Some(*c),
                    ..sample(100, 1000.0, None)
                })
                .collect(),
        ),
    };
    let cs = [mk("epoll-et", &[6.0, 9.0]), mk("ref-mio", &[4.0, 3.0])];
    let refs: Vec<&Cell> = cs.iter().collect();
    let p = report::paired_cpu(&refs, "epoll-et", "ref-mio").ok_or("no ratio")?;
    ensure(
        p.median == 2.25 && p.min == 1.5 && p.max == 3.0,
        format!("{p:?}"),
    )?;
    let h = report::Headline {
        rate: 20_000.0,
        reference: "ref-mio".into(),
    };
    let t = report::throughput_table(&refs, "round trips/s", false, None, Some(&h));
    ensure(
        t.contains("| server CPU µs/op @ 20k/s | min–max | vs `ref-mio` (paired) | round trips/s"),
        t.clone(),
    )?;
    ensure(
        t.contains("| `epoll-et` | **7.50** | 6.00–9.00 | 2.25x (1.50–3.00) | 1.0k |"),
        t.clone(),
    )
}

fn stat_median_min_max() -> Result<(), String> {
    let s = report::stat(&[3.0, 1.0, 2.0]).ok_or("none")?;
    ensure(
        s.median == 2.0 && s.min == 1.0 && s.max == 3.0,
        format!("{s:?}"),
    )?;
    let s = report::stat(&[4.0, 1.0, 2.0, 3.0]).ok_or("none")?;
    ensure(s.median == 2.5, format!("{s:?}"))?;
    ensure(report::stat(&[]).is_none(), "empty")
}

fn sample(ops: u64, ops_per_sec: f64, syscalls: Option<u64>) -> Sample {
    Sample {
        ops,
        ops_per_sec,
        mb_per_sec: 0.0,
        p50_us: Some(10.0),
        p99_us: Some(20.0),
        p999_us: Some(30.0),
        errors: 0,
        counts: syscalls.map(|n| {
            let mut c = Counts::default();
            c.0[2] = n / 2; // read
            c.0[3] = n - n / 2; // write
            c
        }),
        cpu_us_per_op: None,
        load_cpu: None,
        fixed_cpu_us_per_op: None,
    }
}

fn cells() -> Vec<Cell> {
    vec![
        Cell {
            workload: "round-trip".into(),
            contender: "epoll-et".into(),
            idle: None,
            offered: None,
            outcome: Outcome::Measured(vec![
                sample(100, 1000.0, Some(200)),
                sample(100, 3000.0, Some(220)),
                sample(100, 2000.0, Some(210)),
            ]),
        },
        Cell {
            workload: "round-trip".into(),
            contender: "threads".into(),
            idle: None,
            offered: None,
            outcome: Outcome::Measured(vec![sample(10, 500.0, None)]),
        },
        Cell {
            workload: "idle-sweep".into(),
            contender: "select".into(),
            idle: Some(4000),
            offered: None,
            outcome: Outcome::NotApplicable("FD_SETSIZE".into()),
        },
        Cell {
            workload: "idle-sweep".into(),
            contender: "select".into(),
            idle: Some(0),
            offered: None,
            outcome: Outcome::Measured(vec![sample(10, 500.0, Some(30))]),
        },
    ]
}

fn table_rendering() -> Result<(), String> {
    let cs = cells();
    let rt: Vec<&Cell> = cs.iter().filter(|c| c.workload == "round-trip").collect();
    let t = report::throughput_table(&rt, "round trips/s", false, Some(1000.0), None);
    let lines: Vec<&str> = t.lines().collect();
    ensure(lines.len() == 4, format!("{} lines:\n{t}", lines.len()))?;
    ensure(lines[1].starts_with("| --- | ---:"), "separator")?;
    let cols = lines[0].matches('|').count();
    ensure(
        lines.iter().all(|l| l.matches('|').count() == cols),
        "ragged table",
    )?;
    ensure(
        lines[2].contains("`epoll-et` | 2.0k | 1.0k–3.0k | 2.00x"),
        lines[2].to_string(),
    )?;
    ensure(lines[2].contains("| 2.10 |"), "median syscalls/op 2.10")?;
    ensure(
        lines[3].contains("`threads`") && lines[3].contains("| – |"),
        lines[3].to_string(),
    )?;
    let idle: Vec<&Cell> = cs.iter().filter(|c| c.workload == "idle-sweep").collect();
    let t = report::idle_table(&idle, &["select".to_string()], &[0, 4000]);
    ensure(t.contains("n/a (FD_SETSIZE)"), t.clone())?;
    ensure(t.contains("| 10.0 (p99 20.0) |"), t)
}

fn json_shape() -> Result<(), String> {
    let v = report::json_results(&cells());
    let arr = v.as_array().ok_or("not an array")?;
    ensure(arr.len() == 4, "4 objects")?;
    for o in arr {
        for k in [
            "workload",
            "contender",
            "ops_per_sec",
            "p50_us",
            "p99_us",
            "syscalls_per_op",
        ] {
            ensure(o.get(k).is_some(), format!("missing {k} in {o}"))?;
        }
    }
    ensure(arr[0]["ops_per_sec"] == 2000.0, "median ops/s")?;
    ensure(
        arr[0]["syscalls_per_op"] == 2.1,
        format!("{}", arr[0]["syscalls_per_op"]),
    )?;
    ensure(arr[1]["syscalls_per_op"].is_null(), "threads syscalls null")?;
    ensure(
        arr[2]["ops_per_sec"].is_null() && arr[2]["status"] == "n/a",
        "n/a cell",
    )?;
    ensure(arr[2]["idle_connections"] == 4000, "idle count")
}

fn cli_parsing() -> Result<(), String> {
    let p = |a: &[&str]| cli::parse(a.iter().map(|s| s.to_string()));
    let Ok(Mode::Lab(o)) = p(&["--bench", "--quick", "--contenders", "fork,epoll"]) else {
        return Err("quick".into());
    };
    ensure(
        o.quick && o.contenders == ["epoll", "fork"],
        format!("{o:?}"),
    )?;
    let Ok(Mode::Lab(o)) = p(&[
        "--workloads",
        "bulk,round-trip",
        "--duration",
        "0.5",
        "--rounds",
        "2",
    ]) else {
        return Err("workloads".into());
    };
    ensure(o.workloads == ["round-trip", "bulk"], "workload order")?;
    ensure(
        o.duration == Duration::from_millis(500) && o.rounds == 2,
        "duration, rounds",
    )?;
    ensure(p(&[]) == Ok(Mode::SelfTest), "no argument: self-test")?;
    let Ok(Mode::Lab(o)) = p(&[
        "--workloads",
        "latency",
        "--loads",
        "1,0.2",
        "--fixed-rate",
        "5000",
    ]) else {
        return Err("latency options".into());
    };
    ensure(
        o.load_fractions == [0.2, 1.0] && o.fixed_rate == 5000.0 && o.http_fixed_rate == 5000.0,
        format!("{o:?}"),
    )?;
    ensure(p(&["--loads", "0"]).is_err(), "a zero load")?;
    ensure(p(&["--fixed-rate", "-1"]).is_err(), "a negative fixed rate")?;
    ensure(p(&["--contenders", "apache"]).is_err(), "unknown contender")?;
    let Ok(Mode::Lab(o)) = p(&[
        "--workloads",
        "http",
        "--contenders",
        "nginx,epoll-et,threads",
        "--http-connections",
        "8",
        "--duration",
        "1.5",
    ]) else {
        return Err("http options".into());
    };
    ensure(o.workloads == ["http"], "http workload")?;
    ensure(
        o.http_contenders() == ["epoll-et", "nginx"],
        format!("http contenders {:?}", o.http_contenders()),
    )?;
    ensure(
        o.echo_contenders() == ["epoll-et", "threads"],
        "echo contenders skip nginx",
    )?;
    ensure(
        o.http_connections == 8 && o.http_seconds() == 2,
        "wrk -c8 -d2s",
    )?;
    let Ok(Mode::Lab(o)) = p(&["--quick"]) else {
        return Err("quick".into());
    };
    ensure(
        o.workloads.iter().any(|w| w == "http") && o.http_contenders().len() == 7,
        "--quick runs http on the six backends and nginx",
    )?;
    ensure(
        o.http_connections == 4 && o.http_seconds() == 1,
        "--quick: wrk -c4 -d1s",
    )?;
    ensure(
        p(&["--serve", "epoll", "--http-root", "/tmp/x"])
            == Ok(Mode::Serve {
                name: "epoll".into(),
                cpu: None,
                http_root: Some("/tmp/x".into()),
            }),
        "serve http mode",
    )?;
    ensure(p(&["--connections"]).is_err(), "missing value")?;
    ensure(
        p(&["--serve", "fork", "--cpu", "0"])
            == Ok(Mode::Serve {
                name: "fork".into(),
                cpu: Some(0),
                http_root: None,
            }),
        "serve mode",
    )
}

/// The shared harness's pure parts: the control protocol, medians and tables.
fn counts_protocol() -> Result<(), String> {
    let mut bad = crate::common::server::self_check();
    bad.extend(crate::common::table::self_check());
    ensure(bad.is_empty(), format!("failed: {bad:?}"))
}

fn child_process_round_trip() -> Result<(), String> {
    let e = |e: std::io::Error| e.to_string();
    for name in ["epoll-et", "threads"] {
        let mut srv = servers::spawn(name, None).map_err(e)?;
        let mut c = EchoClient::connect(srv.addr, 2, 64).map_err(e)?;
        srv.stats_on().map_err(e)?;
        let r = c
            .run(Bounds {
                max_ops: 100,
                duration: Duration::from_secs(30),
            })
            .map_err(e)?;
        let counts = srv.stats_off().map_err(e)?;
        drop(c);
        srv.stop().map_err(e)?;
        ensure(r.ops == 100, format!("{name}: ops {}", r.ops))?;
        match (servers::is_crate(name), counts) {
            (true, Some(c)) => ensure(c.syscalls() >= 200, format!("{name}: {c:?}"))?,
            (false, None) => {}
            (_, c) => return Err(format!("{name}: counts {c:?}")),
        }
    }
    Ok(())
}

/// wrk 4.1's output, captured from a run of this lab's HTTP server.
const WRK_SAMPLE: &str = "\
Running 2s test @ http://127.0.0.1:18080/plaintext
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   406.32us  428.80us   9.74ms   98.19%
    Req/Sec    77.95k    10.46k   94.87k    60.00%
  Latency Distribution
     50%  325.00us
     75%  452.00us
     90%  563.00us
     99%    1.35ms
  154894 requests in 2.00s, 19.79MB read
Requests/sec:  77314.98
Transfer/sec:      9.88MB
";

/// wrk's output with both error lines and a 1 MiB body (sizes in GB, times in ms).
const WRK_ERRORS: &str = "\
Running 1s test @ http://127.0.0.1:18080/1m.bin
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    35.81ms   11.46ms  89.46ms   71.79%
    Req/Sec     0.92k   117.53     1.16k    66.67%
  Latency Distribution
     50%   36.28ms
     75%   42.18ms
     90%   50.18ms
     99%   1.02s
  1829 requests in 1.10s, 1.79GB read
  Socket errors: connect 2, read 3, write 0, timeout 4
  Non-2xx or 3xx responses: 7
Requests/sec:   1662.73
Transfer/sec:      1.63GB
";

fn wrk_output_parser() -> Result<(), String> {
    let r = wrk::parse(WRK_SAMPLE)?;
    ensure(r.requests == 154_894, format!("requests {}", r.requests))?;
    ensure(r.seconds == 2.0, format!("seconds {}", r.seconds))?;
    ensure(r.requests_per_sec == 77314.98, "Requests/sec")?;
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * b.abs().max(1.0);
    ensure(
        close(r.transfer_per_sec, 9.88 * 1024.0 * 1024.0),
        format!("Transfer/sec {}", r.transfer_per_sec),
    )?;
    ensure(
        close(r.bytes_read, 19.79 * 1024.0 * 1024.0),
        format!("read {}", r.bytes_read),
    )?;
    ensure(
        r.p50_us == Some(325.0) && r.p75_us == Some(452.0) && r.p90_us == Some(563.0),
        format!("p50/75/90 {:?} {:?} {:?}", r.p50_us, r.p75_us, r.p90_us),
    )?;
    ensure(
        r.p99_us.is_some_and(|p| close(p, 1350.0)),
        format!("p99 {:?}", r.p99_us),
    )?;
    ensure(r.errors() == 0, "no errors")?;
    let r = wrk::parse(WRK_ERRORS)?;
    ensure(
        r.socket_errors == [2, 3, 0, 4] && r.non_2xx == 7 && r.errors() == 16,
        format!("errors {:?} {}", r.socket_errors, r.non_2xx),
    )?;
    ensure(
        r.requests == 1829 && close(r.seconds, 1.1),
        format!("{} in {}", r.requests, r.seconds),
    )?;
    ensure(
        r.p50_us.is_some_and(|p| close(p, 36280.0)) && r.p99_us == Some(1.02e6),
        format!("{:?} {:?}", r.p50_us, r.p99_us),
    )?;
    ensure(close(r.transfer_per_sec, 1.63 * 1024f64.powi(3)), "GB/s")?;
    ensure(
        wrk::parse("unable to connect to 127.0.0.1:1").is_err(),
        "no summary",
    )?;
    ensure(
        wrk::parse_time_us("2.5m") == Some(150e6) && wrk::parse_time_us("x").is_none(),
        "time units",
    )?;
    let argv = wrk::command_line(Some(1), 50, 3, "http://127.0.0.1:1/x");
    ensure(
        argv.join(" ")
            == "taskset -c 1 wrk -t1 -c50 -d3s --timeout 5s --latency http://127.0.0.1:1/x",
        argv.join(" "),
    )
}

fn nginx_config_generation() -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("readyloop-lab-selftest-{}", std::process::id()));
    let root = dir.join("root");
    let conf = nginx::config(&dir, &root, 18123);
    let d = dir.display().to_string();
    for needle in [
        "worker_processes 1;".to_string(),
        "master_process off;".into(),
        "daemon off;".into(),
        "access_log off;".into(),
        "sendfile on;".into(),
        "keepalive_timeout 75s;".into(),
        "listen 127.0.0.1:18123;".into(),
        format!("pid {d}/nginx.pid;"),
        format!("error_log {d}/error.log warn;"),
        format!("client_body_temp_path {d}/client_body;"),
        format!("root {};", root.display()),
        "location = /plaintext {".into(),
        "return 200 \"Hello, World!\";".into(),
        "default_type text/plain;".into(),
    ] {
        ensure(
            conf.contains(&needle),
            format!("config lacks {needle:?}:\n{conf}"),
        )?;
    }
    ensure(
        conf.matches('{').count() == conf.matches('}').count(),
        "unbalanced braces",
    )?;
    let port = crate::common::os::free_port().map_err(|e| e.to_string())?;
    ensure(port > 0, "free port")?;
    // With nginx installed, nginx itself checks the syntax (`nginx -t`).
    if let Some(bin) = nginx::binary() {
        std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
        let path = dir.join("nginx.conf");
        std::fs::write(&path, &conf).map_err(|e| e.to_string())?;
        let out = std::process::Command::new(bin)
            .arg("-t")
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&path)
            .output()
            .map_err(|e| e.to_string())?;
        let _ = std::fs::remove_dir_all(&dir);
        ensure(
            out.status.success(),
            format!("nginx -t: {}", String::from_utf8_lossy(&out.stderr)),
        )?;
    }
    Ok(())
}

fn http_table_rendering() -> Result<(), String> {
    let cs = vec![
        Cell {
            workload: "http-1m".into(),
            contender: "epoll-et".into(),
            idle: None,
            offered: None,
            outcome: Outcome::Measured(vec![
                Sample {
                    mb_per_sec: 900.0,
                    cpu_us_per_op: Some(4.0),
                    load_cpu: Some(0.99),
                    ..sample(100, 900.0, Some(300))
                },
                Sample {
                    mb_per_sec: 1100.0,
                    cpu_us_per_op: Some(6.0),
                    ..sample(100, 1100.0, Some(300))
                },
            ]),
        },
        Cell {
            workload: "http-1m".into(),
            contender: "nginx".into(),
            idle: None,
            offered: None,
            outcome: Outcome::NotApplicable("nginx: not installed".into()),
        },
    ];
    let refs: Vec<&Cell> = cs.iter().collect();
    let t = report::http_table(&refs, Some(500.0), true, None, None);
    let lines: Vec<&str> = t.lines().collect();
    ensure(lines.len() == 4, t.clone())?;
    ensure(
        lines[0].contains("| vs nginx | MB/s |"),
        lines[0].to_string(),
    )?;
    ensure(
        lines[2].contains(
            "`epoll-et` | 1.0k | 900–1.1k | 2.00x | 1.0k | 10.0 | 20.0 | 5.00 | 99% | 3.00 |",
        ),
        lines[2].to_string(),
    )?;
    ensure(
        lines[3].contains("`nginx` | nginx: not installed |"),
        lines[3].to_string(),
    )?;
    let cols = lines[0].matches('|').count();
    ensure(
        lines.iter().all(|l| l.matches('|').count() == cols),
        "ragged table",
    )?;
    let v = report::json_results(&cs);
    ensure(v[0]["mb_per_sec"] == 1000.0, format!("{}", v[0]))?;
    ensure(v[0]["server_cpu_us_per_op"] == 5.0, format!("{}", v[0]))?;
    ensure(v[1]["status"] == "n/a", "n/a nginx")
}

/// This crate's HTTP server in a child process serves the lab's content and counts.
fn child_process_http() -> Result<(), String> {
    let site = http::Site::create().map_err(|e| e.to_string())?;
    let mut srv = http::start("epoll-et", &site, None, None)?;
    srv.stats_on().map_err(http::text)?;
    let mut c = crate::client::Client::connect(srv.addr()).map_err(|e| e.to_string())?;
    for t in &http::TARGETS {
        for _ in 0..3 {
            let r = c.get(t.path).map_err(|e| format!("{}: {e}", t.path))?;
            http::check_reply(t, &r)?;
            ensure(r.server == "readyloop", format!("server {:?}", r.server))?;
        }
    }
    let n = http::warm(srv.addr(), &http::TARGETS[0], 50, Duration::from_secs(30))?;
    ensure(n == 50, format!("warm-up made {n} requests"))?;
    drop(c);
    let counts = srv.stats_off().map_err(http::text)?.ok_or("no counts")?;
    srv.stop().map_err(http::text)?;
    ensure(counts.syscalls() >= 59, format!("{counts:?}"))?;
    ensure(
        http::start("threads", &site, None, None).is_err(),
        "threads does not serve HTTP",
    )
}

/// Runs every check; returns the exit code.
pub fn run() -> i32 {
    let checks: [Check; 20] = [
        ("loadgen counts exactly", loadgen_counts_exactly),
        ("open loop paces", open_loop_paces),
        (
            "open loop corrects coordinated omission",
            open_loop_corrects_coordinated_omission,
        ),
        ("http response framing", http_response_framing),
        ("latency rates and table", latency_rates_and_table),
        ("headline paired by round", headline_paired_by_round),
        ("loadgen stops on time", loadgen_stops_on_time),
        ("churn counts connections", churn_counts_connections),
        ("idle connections open", idle_connections_open),
        ("median, min, max", stat_median_min_max),
        ("table rendering", table_rendering),
        ("json shape", json_shape),
        ("cli parsing", cli_parsing),
        ("child counts protocol", counts_protocol),
        ("child process round trip", child_process_round_trip),
        ("wrk output parser", wrk_output_parser),
        ("nginx config generation", nginx_config_generation),
        ("http table rendering", http_table_rendering),
        ("child process http", child_process_http),
        ("accept workload parts", crate::accept::self_check),
    ];
    let (mut passed, mut failed) = (0, 0);
    for (name, f) in checks {
        match f() {
            Ok(()) => {
                passed += 1;
                println!("ok   {name}");
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {name}: {e}");
            }
        }
    }
    println!("lab self-test: {passed} passed, {failed} failed");
    i32::from(failed > 0)
}
