//! The pure IRC message parser.

/// A parsed IRC message (`[@tags] [:prefix] COMMAND params... [:trailing]`).
#[derive(Debug, PartialEq, Eq)]
pub struct IrcMessage<'a> {
    /// The prefix (without `:`), if any (clients rarely send one).
    pub prefix: Option<&'a str>,
    /// The command as sent (compare case-insensitively).
    pub command: &'a str,
    /// The parameters, the trailing one included (at most 15).
    pub params: Vec<&'a str>,
}

/// Parses one line (without CRLF). `None` for an empty line.
pub fn parse(line: &str) -> Option<IrcMessage<'_>> {
    let mut rest = line.trim_start_matches(' ');
    if rest.starts_with('@') {
        // IRCv3 message tags: not negotiated, so ignored.
        rest = rest
            .split_once(' ')
            .map_or("", |(_, r)| r)
            .trim_start_matches(' ');
    }
    let mut prefix = None;
    if let Some(p) = rest.strip_prefix(':') {
        let (pre, r) = p.split_once(' ').unwrap_or((p, ""));
        prefix = Some(pre);
        rest = r.trim_start_matches(' ');
    }
    let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
    if command.is_empty() {
        return None;
    }
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() {
            break;
        }
        if params.len() == 14 {
            params.push(rest.strip_prefix(':').unwrap_or(rest));
            break;
        }
        if let Some(trailing) = rest.strip_prefix(':') {
            params.push(trailing);
            break;
        }
        let (p, r) = rest.split_once(' ').unwrap_or((rest, ""));
        params.push(p);
        rest = r;
    }
    Some(IrcMessage {
        prefix,
        command,
        params,
    })
}
