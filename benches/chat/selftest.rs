//! The self-test of the pure parts (`--self-test`, or no argument at all).

use std::collections::BTreeMap;
use std::path::Path;

use crate::cli::{parse_args, Mode};
use crate::common;
use crate::common::procfs::busy_pct;
use crate::common::{procfs, strace};
use crate::irc::{decimal, privmsg_trailing, split_irc, trailing, Stamp};
use crate::measure::{strace_writes, Sample};
use crate::report::{render_table, Cell, HEADER};
use crate::server::ngircd_config;
use crate::ROOM;

/// A group of checks; `check(name, ok)` records one.
type Group = fn(&mut dyn FnMut(&str, bool));

pub fn self_test() -> i32 {
    let mut failed = 0;
    let mut check = |name: &str, ok: bool| {
        println!("{} {name}", if ok { "ok  " } else { "FAIL" });
        if !ok {
            failed += 1;
        }
    };
    let groups: [Group; 6] = [
        irc_lines,
        stamps,
        ngircd_configuration,
        harness_and_proc,
        table_rendering,
        arguments,
    ];
    for group in groups {
        group(&mut check);
    }
    if failed == 0 {
        println!("self-test: all checks passed");
        0
    } else {
        println!("self-test: {failed} check(s) failed");
        1
    }
}

/// IRC lines.
fn irc_lines(check: &mut dyn FnMut(&str, bool)) {
    let (p, c, r) = split_irc(":a!u@h PRIVMSG #lobby :rlb 2 1 7 123\r\n");
    check(
        "split prefixed line",
        p == Some("a!u@h") && c == "PRIVMSG" && r == "#lobby :rlb 2 1 7 123",
    );
    check("trailing param", trailing(r) == "rlb 2 1 7 123");
    let (p, c, r) = split_irc("PING :bench.local");
    check(
        "split unprefixed line",
        p.is_none() && c == "PING" && r == ":bench.local",
    );
    check("trailing only", trailing(":x y") == "x y");
    check("no trailing", trailing("a b") == "b");
    let (_, c, r) = split_irc(":srv 366 b1 #lobby :End of NAMES list");
    check(
        "numeric",
        c == "366" && r.contains(ROOM) && trailing(r) == "End of NAMES list",
    );
    check("empty line", split_irc("") == (None, "", ""));
}

/// Stamps.
fn stamps(check: &mut dyn FnMut(&str, bool)) {
    let s = Stamp {
        phase: 2,
        sender: 3,
        seq: 4_000_000,
        nanos: 18_446_744_073_709_551_615,
    };
    check("stamp round trip", Stamp::decode(&s.encode()) == Some(s));
    check(
        "stamp with padding",
        Stamp::decode("rlb 1 2 3 4 xxxx").map(|s| s.nanos) == Some(4),
    );
    check("not a stamp", Stamp::decode("hello 1 2 3 4").is_none());
    check("short stamp", Stamp::decode("rlb 1 2 3").is_none());
    check("bad number", Stamp::decode("rlb 1 x 3 4").is_none());
    check(
        "privmsg fast path",
        privmsg_trailing(b":a!u@h PRIVMSG #lobby :rlb 2 1 7 123\r") == Some(&b"rlb 2 1 7 123"[..]),
    );
    check(
        "privmsg fast path: other commands",
        privmsg_trailing(b":srv NOTICE b1 :rlb 1 2 3 4").is_none()
            && privmsg_trailing(b"PING :x").is_none(),
    );
    check(
        "number too long",
        decimal(b"99999999999999999999").is_none(),
    );
}

/// ngircd configuration.
fn ngircd_configuration(check: &mut dyn FnMut(&str, bool)) {
    let conf = ngircd_config(16667, Path::new("/tmp/x"));
    for key in [
        "[Global]",
        "Name = bench.local",
        "Listen = 127.0.0.1",
        "Ports = 16667",
        "[Limits]",
        "MaxConnections = 0",
        "MaxConnectionsIP = 0",
        "MaxJoins = 0",
        "MaxPenaltyTime = 0",
        "PingTimeout = 600",
        "[Options]",
        "PAM = no",
        "DNS = no",
        "Ident = no",
        "PidFile = /tmp/x/ngircd.pid",
    ] {
        check(&format!("ngircd config has {key:?}"), conf.contains(key));
    }
    check(
        "ngircd sections in order",
        conf.find("[Global]") < conf.find("[Limits]")
            && conf.find("[Limits]") < conf.find("[Options]"),
    );
}

/// The shared harness: protocol, statistics, tables; /proc parsing.
fn harness_and_proc(check: &mut dyn FnMut(&str, bool)) {
    for bad in common::server::self_check() {
        check(bad, false);
    }
    for bad in common::table::self_check() {
        check(bad, false);
    }
    let stat = "1234 (chat server) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
    check("stat ticks", procfs::parse_stat_ticks(stat) == Some(300));
    let status = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
    check(
        "VmRSS",
        procfs::parse_status_kb(status, "VmRSS") == Some(1024),
    );
    check(
        "VmHWM",
        procfs::parse_status_kb(status, "VmHWM") == Some(2048),
    );
    check(
        "missing key",
        procfs::parse_status_kb(status, "VmSwap").is_none(),
    );
    let m = strace::parse_strace_calls(
        "calls syscall\n------ ----\n 10 write\n 5 writev\n 7 epoll_wait\n 22 total\n",
    );
    check(
        "strace parse",
        m.get("write") == Some(&10) && strace_writes(&m) == 15,
    );
    let ps = "cpu  10 0 10 80 0 0 0 0 0 0\ncpu0 5 0 5 40 0 0 0 0 0 0\ncpu1 5 0 5 30 10 0 0 0 0 0\nintr 1\n";
    let j = procfs::parse_proc_stat(ps);
    check("proc stat per cpu", j == vec![(10, 50), (10, 50)]);
    check(
        "busy pct",
        busy_pct(&[(10, 50)], &[(60, 150)]) == vec![50.0],
    );
}

/// Table rendering.
fn table_rendering(check: &mut dyn FnMut(&str, bool)) {
    let mut cells = BTreeMap::new();
    let sample = |d: f64, lost: u64| Sample {
        deliveries_per_sec: d,
        p50_us: Some(100.0),
        p99_us: Some(900.0),
        hwm_mib: Some(12.5),
        rss_end_mib: Some(10.0),
        cpu_us_per_delivery: Some(0.25),
        server_cpu_pct: Some(5.0),
        writes_per_delivery: Some(0.5),
        lost,
        ..Sample::default()
    };
    cells.insert(
        "epoll".to_string(),
        Cell {
            samples: vec![sample(300.0, 0), sample(100.0, 1), sample(200.0, 0)],
            failure: None,
        },
    );
    cells.insert(
        "select".to_string(),
        Cell {
            samples: vec![],
            failure: Some("n/a (FD_SETSIZE)".into()),
        },
    );
    let order = vec![
        "epoll".to_string(),
        "select".to_string(),
        "ngircd".to_string(),
    ];
    let t = render_table(&order, &cells);
    let lines: Vec<&str> = t.lines().collect();
    check("table has header, rule, 3 rows", lines.len() == 5);
    check(
        "table header",
        lines[0].starts_with("| contender | deliveries/s"),
    );
    check("table rule", lines[1].starts_with("| --- | ---: |"));
    check(
        "table row",
        lines[2] == "| epoll | 200 [100–300] | 100 | 900 | 12.5 / 10.0 | 0.250 | 5 | 0.500 | 1 |",
    );
    check(
        "table n/a row",
        lines[3].starts_with("| select | n/a (FD_SETSIZE) |"),
    );
    check(
        "table not run",
        lines[4].starts_with("| ngircd | not run |"),
    );
    check(
        "columns agree",
        lines
            .iter()
            .all(|l| l.matches(" | ").count() == HEADER.len() - 1),
    );
}

/// Arguments.
fn arguments(check: &mut dyn FnMut(&str, bool)) {
    let parse = |a: &[&str]| parse_args(a.iter().map(|s| s.to_string()).collect());
    check(
        "no args: self-test",
        matches!(parse(&[]), Ok(Mode::SelfTest)),
    );
    check(
        "quick",
        matches!(parse(&["--quick", "--bench"]), Ok(Mode::Bench(o)) if o.clients == 50 && o.rounds == 1 && o.rate == 1000.0),
    );
    check(
        "quick keeps an explicit rate",
        matches!(parse(&["--quick", "--rate", "50"]), Ok(Mode::Bench(o)) if o.rate == 50.0),
    );
    check(
        "quick with clients",
        matches!(parse(&["--quick", "--clients", "80"]), Ok(Mode::Bench(o)) if o.clients == 80),
    );
    check(
        "contenders",
        matches!(parse(&["--contenders", "epoll,ngircd"]), Ok(Mode::Bench(o)) if o.contenders == ["epoll", "ngircd"]),
    );
    check(
        "unknown contender",
        parse(&["--contenders", "nginx"]).is_err(),
    );
    check("bad rate", parse(&["--rate", "0"]).is_err());
    check(
        "client threads",
        matches!(parse(&["--client-threads", "3"]), Ok(Mode::Bench(o)) if o.client_threads == 3)
            && matches!(parse(&["--quick"]), Ok(Mode::Bench(o)) if o.client_threads == 2)
            && parse(&["--client-threads", "0"]).is_err(),
    );
    check(
        "senders < clients",
        parse(&["--clients", "4", "--senders", "4"]).is_err(),
    );
}
