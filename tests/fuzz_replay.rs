//! Replays every fuzz target over its committed corpus (`fuzz/corpus/<target>/`),
//! without libFuzzer: the targets' logic (`fuzz/src/targets/`) is compiled in here, so
//! `cargo test` catches a regression any corpus input finds, on a stable toolchain
//! and without `cargo fuzz`. Fuzzing itself: `fuzz/README.md`.
//!
//! `FUZZ_REPLAY_DIR=path`: also replay every file under `path/<target>/` (a crash
//! directory, say).

#[allow(dead_code)]
#[path = "../fuzz/src/targets/mod.rs"]
mod targets;

use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

fn replay(name: &str, run: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut inputs = files(&root.join(name));
    assert!(
        !inputs.is_empty(),
        "no corpus for fuzz target {name} in {}",
        root.display()
    );
    if let Some(extra) = std::env::var_os("FUZZ_REPLAY_DIR") {
        inputs.extend(files(&Path::new(&extra).join(name)));
    }
    for path in &inputs {
        let data = std::fs::read(path).expect("corpus file");
        let r = std::panic::catch_unwind(|| run(&data));
        assert!(r.is_ok(), "fuzz target {name} fails on {}", path.display());
    }
}

#[test]
fn every_target_has_a_corpus_entry_point() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    for (name, _) in targets::TARGETS {
        assert!(
            dir.join(format!("{name}.rs")).is_file(),
            "fuzz target {name} has no fuzz_targets/{name}.rs"
        );
    }
    assert_eq!(
        files(&dir).len(),
        targets::TARGETS.len(),
        "a fuzz_targets/ file not in TARGETS"
    );
}

macro_rules! replay_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let (_, run) = targets::TARGETS
                    .iter()
                    .find(|(n, _)| *n == stringify!($name))
                    .expect("target listed in TARGETS");
                replay(stringify!($name), *run);
            }
        )*
        #[test]
        fn every_target_is_replayed() {
            let listed: Vec<&str> = vec![$(stringify!($name)),*];
            for (name, _) in targets::TARGETS {
                assert!(listed.contains(name), "{name} is not replayed here");
            }
        }
    };
}

replay_tests!(
    line_buffer,
    http_head,
    http_body,
    http_range,
    http_path,
    irc_message,
    http_conn,
    chat_line,
    chat_irc,
    chat_udp,
    ftp_command,
    ftp_mini,
    ftp_reply,
    ftp_conn,
    tftp_packet,
    kv_command,
);
