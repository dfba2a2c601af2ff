//! The soak's self-test (`--self-test`, or no argument at all).

use std::str::FromStr;

use readyloop::selector::Backend;

use crate::cli::{parse_args, Mode};
use crate::common;
use crate::common::procfs;

pub fn self_test() -> i32 {
    let mut failed = 0;
    let mut check = |what: &str, ok: bool| {
        println!("{} {what}", if ok { "ok  " } else { "FAIL" });
        failed += usize::from(!ok);
    };
    let parse = |a: &[&str]| parse_args(a.iter().map(|s| s.to_string()).collect());
    check(
        "no argument: self-test",
        matches!(parse(&[]), Ok(Mode::SelfTest)),
    );
    check(
        "quick: 25 s on epoll-et",
        matches!(parse(&["--quick", "--bench"]), Ok(Mode::Soak(o)) if o.duration.as_secs() == 25 && o.backends == [Backend::EpollEt]),
    );
    check(
        "default: 600 s on every backend",
        matches!(parse(&["--bench"]), Ok(Mode::Soak(o)) if o.duration.as_secs() == 600 && o.backends.len() == 6 && o.interval.as_secs() == 10),
    );
    check(
        "duration and backends",
        matches!(parse(&["--duration", "60", "--backends", "poll,select"]), Ok(Mode::Soak(o)) if o.duration.as_secs() == 60 && o.backends == [Backend::Poll, Backend::Select]),
    );
    check("too short", parse(&["--duration", "1"]).is_err());
    check("unknown backend", parse(&["--backends", "kqueue"]).is_err());
    check(
        "serve mode",
        matches!(parse(&["--serve", "poll"]), Ok(Mode::Serve(Backend::Poll))),
    );
    check(
        "stat fields",
        procfs::parse_stat_ticks("1 (a b) S 1 1 1 0 -1 0 0 0 0 0 7 5 0 0") == Some(12),
    );
    check(
        "this process has server-CPU time",
        procfs::cpu_ns(std::process::id()).is_some_and(|n| n > 0),
    );
    for bad in common::server::self_check() {
        check(bad, false);
    }
    check(
        "this process has descriptors",
        procfs::fd_count(std::process::id()) > 0,
    );
    check(
        "this process has RSS",
        procfs::status_kb(std::process::id(), "VmRSS").is_some_and(|k| k > 0),
    );
    check("Backend parses", Backend::from_str("epoll-et").is_ok());
    if failed == 0 {
        println!("self-test: all checks passed");
        0
    } else {
        println!("self-test: {failed} check(s) failed");
        1
    }
}
