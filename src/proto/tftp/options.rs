//! Option negotiation: RFC 2347 (OACK), 2348 (blksize), 2349 (timeout, tsize) and
//! RFC 7440 (windowsize).
//!
//! | option | valid | out of range |
//! |---|---|---|
//! | `blksize` | 8..=65464 | below 8: refused (ERROR 8); above: clamped to the server's maximum |
//! | `timeout` | 1..=255 seconds | refused (ERROR 8) |
//! | `tsize` | a size | a read answers with the file size (octet only; netascii omits it), whatever value the client sent; a write over the server's limit is refused with ERROR 3 |
//! | `windowsize` | 1..=65535 | 0 or above: refused (ERROR 8); larger than the server allows: clamped |
//!
//! A value that is not a decimal number is refused (ERROR 8). Unknown options are
//! ignored (RFC 2347); a repeated option counts once (the first). Names are
//! case-insensitive. Only accepted options appear in the OACK; with none, no OACK.

use std::time::Duration;

use super::packet::ErrorCode;

/// Largest block size RFC 2348 allows.
pub const MAX_BLKSIZE: usize = 65464;
/// Smallest block size RFC 2348 allows.
pub const MIN_BLKSIZE: usize = 8;
/// The RFC 1350 block size.
pub const DEFAULT_BLKSIZE: usize = 512;

/// The server's limits for negotiation.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest block size granted.
    pub max_blksize: usize,
    /// Largest window (blocks) granted.
    pub max_window: u16,
    /// Most bytes of one window (window x blksize); the window is clamped to fit, so a
    /// transfer's buffer stays bounded whatever the client asks.
    pub max_window_bytes: usize,
    /// Largest upload announced through `tsize`.
    pub max_file_size: u64,
    /// Timeout when the client does not ask for one.
    pub timeout: Duration,
}

/// What a transfer runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Bytes per DATA block.
    pub blksize: usize,
    /// Retransmission timeout.
    pub timeout: Duration,
    /// Blocks in flight before an ACK (RFC 7440).
    pub window: u16,
}

/// The outcome: parameters, and the OACK options (empty: send no OACK).
pub type Negotiation = (Params, Vec<(&'static str, String)>);

/// A refusal: the error code and message to send.
pub type Refusal = (ErrorCode, String);

fn number(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

fn refuse(name: &str, value: &[u8]) -> Refusal {
    (
        ErrorCode::OptionRefused,
        format!(
            "option {name} {} refused",
            String::from_utf8_lossy(&value[..value.len().min(32)])
        ),
    )
}

/// Negotiates `options` for a read (`file_size`: the size to announce for `tsize`,
/// `None` when unknown, as in netascii) or a write (`file_size` unused).
/// Unknown options are ignored, and a repeated option counts once (the first);
/// accepted ones are clamped to `limits` and listed for the OACK.
///
/// # Errors
///
/// The [`Refusal`] to send as an ERROR packet: `OptionRefused` (8) for a value that
/// is not a decimal number, a `blksize` below 8, a `timeout` outside 1..=255 or a
/// `windowsize` outside 1..=65535; `DiskFull` (3) for a write whose `tsize` is over
/// `limits.max_file_size`.
pub fn negotiate(
    options: &[(&[u8], &[u8])],
    read: bool,
    file_size: Option<u64>,
    limits: &Limits,
) -> Result<Negotiation, Refusal> {
    let mut p = Params {
        blksize: DEFAULT_BLKSIZE,
        timeout: limits.timeout,
        window: 1,
    };
    let mut oack: Vec<(&'static str, String)> = Vec::new();
    let mut window_asked: Option<u64> = None;
    for &(name, value) in options {
        let known = ["blksize", "timeout", "tsize", "windowsize"]
            .into_iter()
            .find(|k| name.eq_ignore_ascii_case(k.as_bytes()));
        let Some(key) = known else { continue };
        if oack.iter().any(|(k, _)| *k == key) || (key == "windowsize" && window_asked.is_some()) {
            continue;
        }
        if key == "tsize" && read {
            // The client sends 0 (RFC 2349); any value is taken as the question
            // (atftp sends the word "enable").
            if let Some(size) = file_size {
                oack.push((key, size.to_string()));
            }
            continue;
        }
        let n = number(value).ok_or_else(|| refuse(key, value))?;
        match key {
            "blksize" => {
                if n < MIN_BLKSIZE as u64 {
                    return Err(refuse(key, value));
                }
                let max = limits.max_blksize.clamp(MIN_BLKSIZE, MAX_BLKSIZE);
                p.blksize = n.min(max as u64) as usize;
                oack.push((key, p.blksize.to_string()));
            }
            "timeout" => {
                if !(1..=255).contains(&n) {
                    return Err(refuse(key, value));
                }
                p.timeout = Duration::from_secs(n);
                oack.push((key, n.to_string()));
            }
            "tsize" => {
                if n > limits.max_file_size {
                    return Err((
                        ErrorCode::DiskFull,
                        format!(
                            "file too large ({n} bytes; at most {})",
                            limits.max_file_size
                        ),
                    ));
                } else {
                    oack.push((key, n.to_string()));
                }
            }
            _ => {
                if !(1..=65535).contains(&n) {
                    return Err(refuse(key, value));
                }
                window_asked = Some(n);
            }
        }
    }
    // The window is clamped once the block size is known.
    if let Some(n) = window_asked {
        let fit = (limits.max_window_bytes / p.blksize).max(1);
        let w = n.min(u64::from(limits.max_window.max(1))).min(fit as u64);
        p.window = w as u16;
        oack.push(("windowsize", p.window.to_string()));
    }
    Ok((p, oack))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_blksize: MAX_BLKSIZE,
        max_window: 64,
        max_window_bytes: 1 << 20,
        max_file_size: 1 << 30,
        timeout: Duration::from_secs(1),
    };

    fn neg(opts: &[(&str, &str)], read: bool, size: Option<u64>) -> Result<Negotiation, Refusal> {
        let o: Vec<(&[u8], &[u8])> = opts
            .iter()
            .map(|(a, b)| (a.as_bytes(), b.as_bytes()))
            .collect();
        negotiate(&o, read, size, &LIMITS)
    }

    #[test]
    fn defaults_without_options() {
        let (p, oack) = neg(&[], true, Some(5)).unwrap();
        assert_eq!(p.blksize, 512);
        assert_eq!(p.window, 1);
        assert!(oack.is_empty());
    }

    #[test]
    fn accepted_and_clamped() {
        let (p, oack) = neg(
            &[
                ("BLKSIZE", "1428"),
                ("tsize", "0"),
                ("timeout", "3"),
                ("windowsize", "16"),
                ("unknown", "x"),
                ("blksize", "9"),
            ],
            true,
            Some(12345),
        )
        .unwrap();
        assert_eq!(
            p,
            Params {
                blksize: 1428,
                timeout: Duration::from_secs(3),
                window: 16
            }
        );
        assert_eq!(
            oack,
            vec![
                ("blksize", "1428".to_string()),
                ("tsize", "12345".to_string()),
                ("timeout", "3".to_string()),
                ("windowsize", "16".to_string()),
            ]
        );
        let (p, oack) = neg(
            &[("blksize", "100000"), ("windowsize", "65535")],
            true,
            None,
        )
        .unwrap();
        assert_eq!(p.blksize, MAX_BLKSIZE);
        // 1 MiB / 65464 = 16 blocks.
        assert_eq!(p.window, 16);
        assert_eq!(oack[0].1, "65464");
        // Netascii reads do not announce a size.
        let (_, oack) = neg(&[("tsize", "0")], true, None).unwrap();
        assert!(oack.is_empty());
    }

    #[test]
    fn refusals() {
        for (o, v) in [
            ("blksize", "7"),
            ("blksize", "x"),
            ("blksize", ""),
            ("timeout", "0"),
            ("timeout", "256"),
            ("windowsize", "0"),
            ("windowsize", "65536"),
            ("blksize", "99999999999999999999999"),
        ] {
            let e = neg(&[(o, v)], true, Some(1)).unwrap_err();
            assert_eq!(e.0, ErrorCode::OptionRefused, "{o} {v}");
        }
        let e = neg(&[("tsize", "2000000000")], false, None).unwrap_err();
        assert_eq!(e.0, ErrorCode::DiskFull);
        let e = neg(&[("tsize", "-1")], false, None).unwrap_err();
        assert_eq!(e.0, ErrorCode::OptionRefused);
        // A read takes any tsize value as the question.
        let (_, oack) = neg(&[("tsize", "enable")], true, Some(9)).unwrap();
        assert_eq!(oack, vec![("tsize", "9".to_string())]);
        let (_, oack) = neg(&[("tsize", "2000")], false, None).unwrap();
        assert_eq!(oack, vec![("tsize", "2000".to_string())]);
    }
}
