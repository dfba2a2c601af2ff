//! Naming rules: case folding, nickname and room validity, ban masks, text
//! sanitising, and the flood-limit token bucket.

use super::{NICK_MAX, ROOM_MAX};

/// Whether `text` matches the IRC wildcard `mask` (`*` any run, `?` one character),
/// compared case-insensitively as [`fold`] does.
pub fn mask_match(mask: &str, text: &str) -> bool {
    let m: Vec<char> = fold(mask).chars().collect();
    let t: Vec<char> = fold(text).chars().collect();
    let (mut mi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if mi < m.len() && (m[mi] == '?' || m[mi] == t[ti]) {
            mi += 1;
            ti += 1;
        } else if mi < m.len() && m[mi] == '*' {
            star = Some((mi, ti));
            mi += 1;
        } else if let Some((smi, sti)) = star {
            mi = smi + 1;
            ti = sti + 1;
            star = Some((smi, sti + 1));
        } else {
            return false;
        }
    }
    m[mi..].iter().all(|&c| c == '*')
}

/// IRC's `rfc1459` case folding: ASCII lower case, and `[]\~` to `{}|^`.
pub fn fold(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '[' => '{',
            ']' => '}',
            '\\' => '|',
            '~' => '^',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

fn nick_special(c: char) -> bool {
    matches!(c, '[' | ']' | '\\' | '`' | '_' | '^' | '{' | '|' | '}')
}

/// Whether `nick` is a well-formed nickname.
pub fn valid_nick(nick: &str) -> bool {
    let mut chars = nick.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    nick.len() <= NICK_MAX
        && (first.is_ascii_alphabetic() || nick_special(first))
        && chars.all(|c| c.is_ascii_alphanumeric() || nick_special(c) || c == '-')
}

/// Whether `room` (without `#`) is a well-formed room name: 1 to [`ROOM_MAX`] bytes,
/// no spaces, control characters, `,` `:` or `#`.
pub fn valid_room(room: &str) -> bool {
    !room.is_empty()
        && room.len() <= ROOM_MAX
        && room
            .chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && !matches!(c, ',' | ':' | '#'))
}

/// Makes untrusted text safe to relay on one line: control characters (CR, NUL, ...)
/// become spaces, except IRC formatting codes (bold, colour, CTCP's `\x01`...), which
/// clients understand. Leading and trailing whitespace is kept.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\x01' | '\x02' | '\x03' | '\x0f' | '\x16' | '\x1d' | '\x1f' => c,
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

/// A token bucket: `burst` tokens, refilled at `rate` per second; each line costs one.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    tokens: f64,
    burst: f64,
    rate: f64,
    last: Option<std::time::Instant>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(burst: u32, rate: f64) -> TokenBucket {
        TokenBucket {
            tokens: f64::from(burst),
            burst: f64::from(burst),
            rate,
            last: None,
        }
    }

    /// Takes a token at `now` if there is one.
    pub fn take(&mut self, now: std::time::Instant) -> bool {
        if let Some(last) = self.last {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
