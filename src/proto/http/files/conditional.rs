//! `Range` and `If-None-Match`: byte ranges and entity-tag comparison.

/// A `Range` header's meaning for a representation of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeSpec {
    /// Serve the whole representation (no, invalid or multiple ranges).
    Full,
    /// Bytes `start..=end`.
    Single(u64, u64),
    /// 416.
    Unsatisfiable,
}

/// A byte position: `None` unless all digits. Too large for `u64` saturates: it is
/// still valid syntax and past the end of any file.
fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        s.iter()
            .try_fold(0u64, |n, &d| {
                n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            })
            .unwrap_or(u64::MAX),
    )
}

/// Interprets a `Range` header value for `len` bytes. Works on bytes throughout: the
/// value comes from the network and need not be UTF-8 (or ASCII).
pub fn parse_range(value: &[u8], len: u64) -> RangeSpec {
    let v = value.trim_ascii();
    let Some((unit, set)) = v.split_at_checked(6) else {
        return RangeSpec::Full;
    };
    if !unit.eq_ignore_ascii_case(b"bytes=") {
        return RangeSpec::Full;
    }
    let mut parts = set
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|p| !p.is_empty());
    let (Some(one), None) = (parts.next(), parts.next()) else {
        // None at all (invalid) or several (documented fallback): the whole file.
        return RangeSpec::Full;
    };
    let Some(dash) = one.iter().position(|&b| b == b'-') else {
        return RangeSpec::Full;
    };
    let (a, b) = (one[..dash].trim_ascii(), one[dash + 1..].trim_ascii());
    if a.is_empty() {
        let Some(n) = digits(b) else {
            return RangeSpec::Full;
        };
        if n == 0 || len == 0 {
            return RangeSpec::Unsatisfiable;
        }
        return RangeSpec::Single(len.saturating_sub(n), len - 1);
    }
    let Some(start) = digits(a) else {
        return RangeSpec::Full;
    };
    let end = if b.is_empty() {
        u64::MAX
    } else {
        match digits(b) {
            Some(e) if e >= start => e,
            _ => return RangeSpec::Full,
        }
    };
    if start >= len {
        return RangeSpec::Unsatisfiable;
    }
    RangeSpec::Single(start, end.min(len - 1))
}

/// Whether an `If-None-Match` value matches `etag` (weak comparison).
pub fn etag_matches(value: &[u8], etag: &str) -> bool {
    let v = value.trim_ascii();
    if v == b"*" {
        return true;
    }
    v.split(|&b| b == b',').any(|t| {
        let t = t.trim_ascii();
        let t = t.strip_prefix(b"W/").unwrap_or(t);
        t == etag.as_bytes()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeSpec::*;
        assert_eq!(parse_range(b"bytes=0-4", 10), Single(0, 4));
        assert_eq!(parse_range(b"bytes=5-", 10), Single(5, 9));
        assert_eq!(parse_range(b"bytes=-3", 10), Single(7, 9));
        assert_eq!(parse_range(b"bytes=-30", 10), Single(0, 9));
        assert_eq!(parse_range(b"bytes=2-100", 10), Single(2, 9));
        assert_eq!(parse_range(b"bytes=10-", 10), Unsatisfiable);
        assert_eq!(parse_range(b"bytes=-0", 10), Unsatisfiable);
        assert_eq!(parse_range(b"bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range(b"bytes=5-2", 10), Full);
        assert_eq!(parse_range(b"bytes=0-1,3-4", 10), Full);
        assert_eq!(parse_range(b"items=0-1", 10), Full);
        assert_eq!(parse_range(b"bytes=a-b", 10), Full);
        assert_eq!(parse_range(b"bytes=", 10), Full);
        let huge = "99999999999999999999999";
        assert_eq!(
            parse_range(format!("bytes={huge}-").as_bytes(), 10),
            Unsatisfiable
        );
        assert_eq!(
            parse_range(format!("bytes=0-{huge}").as_bytes(), 10),
            Single(0, 9)
        );
        assert_eq!(
            parse_range(format!("bytes=-{huge}").as_bytes(), 10),
            Single(0, 9)
        );
        assert_eq!(parse_range(format!("bytes={huge}-1").as_bytes(), 10), Full);
        // Not ASCII, not UTF-8, a multi-byte character across the unit's end (this
        // one killed the server: a `&str` sliced inside a character).
        assert_eq!(parse_range("bytesé=0-1".as_bytes(), 10), Full);
        assert_eq!(parse_range("bytes=é-1".as_bytes(), 10), Full);
        assert_eq!(parse_range("bytes=0-1é".as_bytes(), 10), Full);
        assert_eq!(parse_range("byteé".as_bytes(), 10), Full);
        assert_eq!(parse_range(b"bytes=\xff-\xfe", 10), Full);
        assert_eq!(parse_range(b"BYTES= 1 - 2 ", 10), Single(1, 2));
        assert_eq!(parse_range("é".as_bytes(), 10), Full);
    }

    #[test]
    fn etags() {
        assert!(etag_matches(b"\"a-1\"", "\"a-1\""));
        assert!(etag_matches(b"W/\"a-1\", \"b\"", "\"a-1\""));
        assert!(etag_matches(b"*", "\"x\""));
        assert!(!etag_matches(b"\"a-2\"", "\"a-1\""));
    }
}
