//! The fuzz targets' logic, one module per parser (see `targets/mod.rs`); the
//! binaries in `fuzz_targets/` are one-line libFuzzer entry points into it.

#[path = "targets/mod.rs"]
pub mod targets;
