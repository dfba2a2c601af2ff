//! Outside programs (nginx, ngIRCd, wrk, strace, atftp, ...): where they are, and what a
//! missing one means. Under `CI=true` a missing tool is a failure, never a silent skip.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Whether this run is CI's (`CI=true`).
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Where program `bin` is: on `PATH`, else in `/usr/sbin`, `/sbin` or
/// `/usr/local/sbin` (daemons live there and `PATH` may lack them).
pub fn which(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into(), "/usr/local/sbin".into()])
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

/// Whether `prog arg` (e.g. `-V`, `--version`) runs.
pub fn runs(prog: &str, arg: &str) -> bool {
    Command::new(prog)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// The first line `prog arg` prints (on stdout, else stderr), for the report.
pub fn version_line(prog: &std::path::Path, arg: &str) -> Option<String> {
    let out = Command::new(prog).arg(arg).output().ok()?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    Some(
        String::from_utf8_lossy(&text)
            .lines()
            .next()?
            .trim()
            .to_string(),
    )
}

/// What to do about a missing tool: `Err` (a failure, with the reason) under
/// `CI=true`, else `Ok(reason)` for a "not applicable" note.
///
/// # Errors
/// Under `CI=true`: `"WHAT: not installed (CI=true)"`.
pub fn missing(what: &str) -> Result<String, String> {
    if ci() {
        Err(format!("{what}: not installed (CI=true)"))
    } else {
        Ok(format!("{what}: not installed"))
    }
}
