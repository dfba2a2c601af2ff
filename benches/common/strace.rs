//! `strace -c -f -p PID` around a measurement (the lab's `--strace`, the chat bench's).

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `strace -c -f -p PID` attached to a process while `during` runs; returns the
/// calls per syscall name (and `total`).
pub fn strace_counts<T>(
    pid: u32,
    out: &Path,
    during: impl FnOnce() -> Result<T, String>,
) -> Result<(BTreeMap<String, u64>, T), String> {
    let mut st = Command::new("strace")
        .args(["-f", "-c", "-U", "calls,name", "-o"])
        .arg(out)
        .arg("-p")
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("strace: {e}"))?;
    // strace says `Process N attached` on stderr once it traces.
    let stderr = st.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let attached = loop {
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(l) if l.contains("attached") => break true,
            Ok(_) => continue,
            Err(_) => break false,
        }
    };
    if !attached {
        let _ = st.kill();
        let _ = st.wait();
        return Err("strace did not attach".into());
    }
    let r = during();
    // SIGINT makes strace detach and report.
    let _ = super::os::kill(st.id(), libc::SIGINT);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match st.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = st.kill();
                let _ = st.wait();
                return Err("strace did not stop".into());
            }
        }
    }
    let v = r?;
    let text = fs::read_to_string(out).map_err(|e| format!("strace output: {e}"))?;
    let _ = fs::remove_file(out);
    Ok((parse_strace_calls(&text), v))
}

/// Parses `strace -c -U calls,name` output: `calls name` per line.
pub fn parse_strace_calls(text: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        if let (Some(n), Some(name), None) = (it.next(), it.next(), it.next()) {
            if let Ok(n) = n.parse::<u64>() {
                m.insert(name.to_string(), n);
            }
        }
    }
    m
}
