//! Gating a case on something outside the crate: [`have_tool`] and [`require`]. A
//! missing requirement skips the case with a note, except under `CI=true`, where it
//! fails: CI must not pass by skipping.

use std::process::{Command, Stdio};

/// Whether `tool` is on the PATH; if not, [`require`] says so (`package` is what
/// `scripts/setup` installs for it).
pub fn have_tool(tool: &str, package: &str) -> bool {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    require(
        ok,
        tool,
        &format!("apt-get install -y {package}; see scripts/setup"),
    )
}

/// The one way a case gates on something outside the crate (a client tool, a Python
/// package, network namespaces): returns `ok`. When it is `false`, the case is skipped
/// with a note on stderr, except under `CI=true`, where it fails naming `what` and how
/// to get it (`install`): CI must not pass by skipping.
pub fn require(ok: bool, what: &str, install: &str) -> bool {
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{what} is required under CI=true ({install})");
        }
        eprintln!("note: {what} not available ({install}); skipping this case");
    }
    ok
}
