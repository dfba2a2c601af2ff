//! Fuzz target bodies, one module per parser that sees network bytes. Each `run(data)`
//! feeds the bytes to its parser and asserts properties, not only "no panic": a failed
//! assertion is a crash libFuzzer reports (and the corpus replay test fails on).
//!
//! This file is also compiled into the root crate's `tests/fuzz_replay.rs`, which
//! replays every committed corpus (`fuzz/corpus/<target>/`) without libFuzzer, so the
//! modules use only `readyloop`, `std` and what the root crate depends on.

pub mod chat_conn;
pub mod ftp_command;
pub mod ftp_conn;
pub mod ftp_mini;
pub mod ftp_reply;
pub mod harness;
pub mod http_body;
pub mod http_conn;
pub mod http_head;
pub mod http_path;
pub mod http_range;
pub mod irc_message;
pub mod kv_command;
pub mod line_buffer;
pub mod tftp_packet;

/// A target's entry point.
pub type Target = fn(&[u8]);

/// Every target, by name (the names of `fuzz/fuzz_targets/*.rs` and of the corpus
/// directories).
pub const TARGETS: &[(&str, Target)] = &[
    ("line_buffer", line_buffer::run),
    ("http_head", http_head::run),
    ("http_body", http_body::run),
    ("http_range", http_range::run),
    ("http_path", http_path::run),
    ("irc_message", irc_message::run),
    ("http_conn", http_conn::run),
    ("chat_line", chat_conn::run_line),
    ("chat_irc", chat_conn::run_irc),
    ("chat_udp", chat_conn::run_udp),
    ("ftp_command", ftp_command::run),
    ("ftp_mini", ftp_mini::run),
    ("ftp_reply", ftp_reply::run),
    ("ftp_conn", ftp_conn::run),
    ("tftp_packet", tftp_packet::run),
    ("kv_command", kv_command::run),
];

/// Reads structured choices from the fuzz input, front to back; past the end every
/// read gives zeros / empty slices, so any input is a valid program.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }

    /// Whether everything has been read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte (0 past the end).
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next little-endian u16.
    pub fn u16(&mut self) -> u16 {
        u16::from(self.byte()) | u16::from(self.byte()) << 8
    }

    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (a, b) = self.data.split_at(n);
        self.data = b;
        a
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.data.len())
    }
}

/// A logger that formats every record and drops it, so the servers' log lines (the
/// access log, warnings with client data in them) are exercised too.
struct FormatAndDrop;

impl log::Log for FormatAndDrop {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}", record.target(), record.args());
        std::hint::black_box(line);
    }

    fn flush(&self) {}
}

/// Installs [`FormatAndDrop`] (once per process; a no-op if a logger is set).
pub fn init_logging() {
    static LOGGER: FormatAndDrop = FormatAndDrop;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
}
