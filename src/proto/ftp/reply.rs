//! Replies as RFC 959 4.2 writes them: `code SP text CRLF`, or a multi-line reply
//! `code-first CRLF`, lines, `code SP last CRLF`; a middle line is indented by a space,
//! so one that starts with digits cannot be taken for the end.

/// Appends a one-line reply. CR and LF in `text` (an echoed path, say) become spaces.
pub fn reply(out: &mut Vec<u8>, code: u16, text: &[u8]) {
    out.extend_from_slice(format!("{code} ").as_bytes());
    push_clean(out, text);
    out.extend_from_slice(b"\r\n");
}

/// Appends a multi-line reply: `first`, each of `lines` (indented), then `last`.
pub fn multiline<'a>(
    out: &mut Vec<u8>,
    code: u16,
    first: &[u8],
    lines: impl IntoIterator<Item = &'a [u8]>,
    last: &[u8],
) {
    out.extend_from_slice(format!("{code}-").as_bytes());
    push_clean(out, first);
    out.extend_from_slice(b"\r\n");
    for l in lines {
        out.push(b' ');
        push_clean(out, l);
        out.extend_from_slice(b"\r\n");
    }
    reply(out, code, last);
}

fn push_clean(out: &mut Vec<u8>, text: &[u8]) {
    out.extend(text.iter().map(|&b| match b {
        b'\r' | b'\n' | 0 => b' ',
        b => b,
    }));
}

/// RFC 959 quoting of a path in a 257 reply: `"` doubled, the whole in quotes.
pub fn quote_path(path: &[u8]) -> Vec<u8> {
    let mut q = Vec::with_capacity(path.len() + 2);
    q.push(b'"');
    for &b in path {
        q.push(b);
        if b == b'"' {
            q.push(b'"');
        }
    }
    q.push(b'"');
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_multi_line() {
        let mut out = Vec::new();
        reply(&mut out, 200, b"ok\r\ninjected");
        assert_eq!(out, b"200 ok  injected\r\n");
        out.clear();
        multiline(
            &mut out,
            211,
            b"Features:",
            [&b"MDTM"[..], b"211 x"],
            b"End",
        );
        assert_eq!(out, b"211-Features:\r\n MDTM\r\n 211 x\r\n211 End\r\n");
        assert_eq!(quote_path(b"/a\"b"), b"\"/a\"\"b\"");
    }
}
