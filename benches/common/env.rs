//! The machine and the output folder, for every bench's report.

use std::path::PathBuf;

/// The machine, for the report: cores, CPU model, kernel.
pub fn machine_info() -> String {
    // The machine's processors from /proc/cpuinfo, not `available_parallelism`,
    // which counts only the CPUs this (possibly pinned) process may use.
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cores = match cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count()
    {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|m| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown kernel".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            let l = s.lines().find(|l| l.starts_with("MemTotal"))?.to_string();
            let kb: u64 = l.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!("{:.0} GiB", kb as f64 / 1024.0 / 1024.0))
        })
        .unwrap_or_else(|| "? GiB".into());
    format!("{cores} cores ({model}), {mem} RAM, Linux {kernel}")
}

/// Where results go: `explicit`, else `$CARGO_TARGET_DIR/lab`, else `target/lab`
/// next to the running bench binary, else `target/lab` in the crate.
pub fn out_dir(explicit: Option<&PathBuf>) -> PathBuf {
    if let Some(d) = explicit {
        return d.clone();
    }
    if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(t).join("lab");
    }
    // target/release/deps/lab-HASH → target/lab
    if let Ok(exe) = std::env::current_exe() {
        if let Some(t) = exe.ancestors().nth(3) {
            if t.file_name().is_some_and(|n| n == "target") {
                return t.join("lab");
            }
        }
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("lab")
}
