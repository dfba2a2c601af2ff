//! `--self-test`: the lab's own checks (a harness = false bench runs no `#[test]`).
//! Prints one line per check and `N passed, N failed`; no check asserts a timing.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use readyloop::sys::stats::Counts;

use crate::cli::{self, Mode};
use crate::loadgen::{self, Bounds, EchoClient};
use crate::report::{self, Cell, Outcome, Sample};
use crate::servers::{self, ServerProc};

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
    }
}

fn cells() -> Vec<Cell> {
    vec![
        Cell {
            workload: "round-trip".into(),
            contender: "epoll-et".into(),
            idle: None,
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
            outcome: Outcome::Measured(vec![sample(10, 500.0, None)]),
        },
        Cell {
            workload: "idle-sweep".into(),
            contender: "select".into(),
            idle: Some(4000),
            outcome: Outcome::NotApplicable("FD_SETSIZE".into()),
        },
        Cell {
            workload: "idle-sweep".into(),
            contender: "select".into(),
            idle: Some(0),
            outcome: Outcome::Measured(vec![sample(10, 500.0, Some(30))]),
        },
    ]
}

fn table_rendering() -> Result<(), String> {
    let cs = cells();
    let rt: Vec<&Cell> = cs.iter().filter(|c| c.workload == "round-trip").collect();
    let t = report::throughput_table(&rt, "round trips/s", false, Some(1000.0));
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
    ensure(p(&["--contenders", "nginx"]).is_err(), "unknown contender")?;
    ensure(p(&["--connections"]).is_err(), "missing value")?;
    ensure(
        p(&["--serve", "fork", "--cpu", "0"])
            == Ok(Mode::Serve {
                name: "fork".into(),
                cpu: Some(0),
            }),
        "serve mode",
    )
}

fn counts_protocol() -> Result<(), String> {
    let c = Counts([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    let line = servers::format_counts(Some(c));
    ensure(servers::parse_counts(&line) == Some(Some(c)), line)?;
    ensure(servers::parse_counts("counts none") == Some(None), "none")?;
    ensure(servers::parse_counts("counts 1 2").is_none(), "short")
}

fn child_process_round_trip() -> Result<(), String> {
    let e = |e: std::io::Error| e.to_string();
    for name in ["epoll-et", "threads"] {
        let mut srv = ServerProc::spawn(name, None).map_err(e)?;
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

/// Runs every check; returns the exit code.
pub fn run() -> i32 {
    let checks: [Check; 10] = [
        ("loadgen counts exactly", loadgen_counts_exactly),
        ("loadgen stops on time", loadgen_stops_on_time),
        ("churn counts connections", churn_counts_connections),
        ("idle connections open", idle_connections_open),
        ("median, min, max", stat_median_min_max),
        ("table rendering", table_rendering),
        ("json shape", json_shape),
        ("cli parsing", cli_parsing),
        ("child counts protocol", counts_protocol),
        ("child process round trip", child_process_round_trip),
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
