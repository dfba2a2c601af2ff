//! `proto::ftp::mini::parse_header`: the mini protocol's JSON request header (the
//! payload of a length-prefixed frame).
//!
//! Properties: a header that parses, written back as JSON, parses to the same header;
//! parsing never panics on any bytes.
use readyloop::proto::ftp::mini::parse_header;

pub fn run(data: &[u8]) {
    let Ok(h) = parse_header(data) else {
        return;
    };
    let back = serde_json::json!({
        "cmd": h.cmd,
        "filename": h.filename,
        "filesize": h.filesize,
        "reply": h.reply,
    });
    let bytes = serde_json::to_vec(&back).expect("json");
    assert_eq!(parse_header(&bytes).as_ref(), Ok(&h), "{back}");
}
