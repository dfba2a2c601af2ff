//! A deterministic byte pattern for bulk transfers: a dropped, duplicated or
//! reordered chunk shows, checked in `memcmp`-sized slices as the bytes come.

use std::io::{self, Read, Write};
use std::sync::OnceLock;

/// The pattern repeats every `PERIOD` bytes: a prime, so it never lines up with
/// buffer sizes and a dropped, duplicated or reordered chunk shows.
const PERIOD: usize = 65_521;
/// Largest slice [`pattern_at`] hands out.
pub const CHUNK: usize = 32 * 1024;

fn pattern() -> &'static [u8] {
    static P: OnceLock<Vec<u8>> = OnceLock::new();
    P.get_or_init(|| {
        // xorshift32, twice the period so any window of CHUNK bytes is contiguous.
        let mut x: u32 = 0x9e37_79b9;
        let one: Vec<u8> = (0..PERIOD)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect();
        [one.as_slice(), one.as_slice()].concat()
    })
}

/// The pattern bytes at stream offset `offset`, `len <= CHUNK` of them.
pub fn pattern_at(offset: u64, len: usize) -> &'static [u8] {
    assert!(len <= CHUNK);
    let start = (offset % PERIOD as u64) as usize;
    &pattern()[start..start + len]
}

/// Writes `total` pattern bytes.
pub fn send_pattern(w: &mut impl Write, total: u64) -> io::Result<()> {
    let mut sent = 0u64;
    while sent < total {
        let n = (total - sent).min(CHUNK as u64) as usize;
        w.write_all(pattern_at(sent, n))?;
        sent += n as u64;
    }
    Ok(())
}

/// Reads pattern bytes as they come, checking each one, until EOF or an error.
/// Returns how many arrived (all of them checked) and how the stream ended.
pub fn check_pattern_until_eof(r: &mut impl Read) -> (u64, io::Result<()>) {
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return (got, Ok(())),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return (got, Err(e)),
        };
        if buf[..n] != *pattern_at(got, n) {
            let bad = (0..n)
                .find(|&i| buf[i] != pattern_at(got + i as u64, 1)[0])
                .unwrap_or(0);
            return (
                got,
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("pattern mismatch at stream offset {}", got + bad as u64),
                )),
            );
        }
        got += n as u64;
    }
}

/// Reads exactly `total` pattern bytes then expects EOF.
pub fn expect_pattern_then_eof(r: &mut impl Read, total: u64) {
    let (got, end) = check_pattern_until_eof(r);
    if let Err(e) = end {
        panic!("after {got} of {total} bytes: {e}");
    }
    assert_eq!(got, total, "bytes echoed before EOF");
}
