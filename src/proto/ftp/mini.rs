//! The classroom's "mini FTP": each message is a 4-byte length (Python's
//! `struct.pack('i', n)`: signed, little-endian on x86-64), a UTF-8 JSON header of
//! that length, and, for `put`, exactly `filesize` raw bytes.
//!
//! ```text
//! {"cmd": "put", "filename": "a.txt", "filesize": 123}   + 123 bytes
//! {"cmd": "get", "filename": "a.txt"}                    -> header (filesize set) + bytes
//! {"cmd": "list", "reply": true}                         -> header with "files"
//! ```
//!
//! The classroom client sends a `put` and reads nothing after it, so a `put` is
//! answered only when its header asks with `"reply": true` (then with
//! `{"cmd": "put", "status": "ok"|"error", ...}`). A `get` is always answered: a
//! missing file gets `filesize: 0` with `"status": "error"` and an `"error"` text,
//! which a classroom client takes for an empty file instead of hanging. Unknown
//! commands are answered only when `"reply": true`, and logged.
//!
//! Limits: a header longer than [`MiniConfig::max_header`], a negative length,
//! a header that is not a JSON object, or a `filesize` over
//! [`MiniConfig::max_filesize`] closes the connection (logged): the stream cannot be
//! trusted past them. A `put` whose file cannot be stored (bad name, read-only) still
//! reads its `filesize` bytes, so the connection stays in step. Uploads are atomic
//! (see [`super::store::Upload`]); a connection lost mid-upload keeps the old file.

use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::jail;
use super::store::{self, Upload, UploadMode};
use super::Shared;
use crate::net::{Conn, Protocol};
use crate::proto::framing::LengthPrefixed;
use crate::reactor::TimerId;

/// The log target (one line per request).
pub const MINI_TARGET: &str = "readyloop::ftp::mini";

/// Mini front-end settings.
#[derive(Clone, Debug)]
pub struct MiniConfig {
    /// Longest JSON header in bytes.
    pub max_header: usize,
    /// Largest `put` in bytes.
    pub max_filesize: u64,
    /// Refuse `put` (reading and discarding the bytes).
    pub read_only: bool,
}

impl Default for MiniConfig {
    fn default() -> MiniConfig {
        MiniConfig {
            max_header: 8 * 1024,
            max_filesize: 1 << 30,
            read_only: false,
        }
    }
}

/// A parsed request header.
#[derive(Debug, PartialEq, Eq)]
pub struct Header {
    /// `cmd`.
    pub cmd: String,
    /// `filename` (may be empty).
    pub filename: String,
    /// `filesize` (0 when absent).
    pub filesize: u64,
    /// The client asked for replies (`"reply": true`).
    pub reply: bool,
}

/// Parses a header's bytes (a JSON object). Pure; a fuzzing entry point.
///
/// # Errors
///
/// A message for the reply: the bytes are not JSON, not an object, have no string
/// `"cmd"`, a `"filename"` that is neither a string nor null, or a `"filesize"`
/// that is not a non-negative integer.
pub fn parse_header(bytes: &[u8]) -> Result<Header, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("bad JSON: {e}"))?;
    let Value::Object(m) = v else {
        return Err("the header is not a JSON object".into());
    };
    let cmd = match m.get("cmd") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err("no \"cmd\"".into()),
    };
    let filename = match m.get("filename") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        _ => return Err("\"filename\" is not a string".into()),
    };
    let filesize = match m.get("filesize") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_u64()
            .ok_or_else(|| "\"filesize\" is not a non-negative integer".to_string())?,
    };
    let reply = matches!(m.get("reply"), Some(Value::Bool(true)));
    Ok(Header {
        cmd,
        filename,
        filesize,
        reply,
    })
}

enum State {
    Header,
    Body {
        upload: Option<Upload>,
        error: Option<String>,
        remaining: u64,
        header: Header,
        started: Instant,
    },
}

/// One mini-protocol connection.
pub(crate) struct MiniConn {
    sh: Rc<Shared>,
    dec: LengthPrefixed,
    state: State,
    timer: Option<TimerId>,
    last_active: Instant,
}

impl MiniConn {
    pub(crate) fn new(sh: Rc<Shared>) -> MiniConn {
        MiniConn {
            dec: LengthPrefixed::new(sh.cfg.mini.max_header),
            sh,
            state: State::Header,
            timer: None,
            last_active: Instant::now(),
        }
    }

    fn send(&self, conn: &mut Conn<'_, '_>, v: &Value) {
        let mut out = Vec::new();
        // A header is far below i32::MAX.
        if LengthPrefixed::encode(v.to_string().as_bytes(), &mut out).is_ok() {
            conn.write(&out);
        }
    }

    fn real(&self, name: &str) -> Result<(Vec<u8>, std::path::PathBuf), String> {
        let v = jail::normalize(b"/", name.as_bytes()).map_err(|_| "bad file name".to_string())?;
        if v == b"/" {
            return Err("no file name".into());
        }
        let real = self
            .sh
            .anon_jail
            .real(&v)
            .map_err(|_| "permission denied".to_string())?;
        Ok((v, real))
    }

    fn header(&mut self, conn: &mut Conn<'_, '_>, h: Header) -> bool {
        match h.cmd.as_str() {
            "put" => self.put(conn, h),
            "get" => self.get(conn, &h),
            "list" => self.list(conn, &h),
            "quit" | "exit" => false,
            other => {
                let peer = conn.peer().clone();
                log::info!(target: MINI_TARGET, "{peer} unknown command {other:?}");
                if h.reply {
                    self.send(
                        conn,
                        &json!({"cmd": other, "status": "error", "error": "unknown command"}),
                    );
                }
                true
            }
        }
    }

    /// `put`: the body that follows goes to the file (or is read and dropped, for
    /// the error reply at its end); over the size limit closes.
    fn put(&mut self, conn: &mut Conn<'_, '_>, h: Header) -> bool {
        let peer = conn.peer().clone();
        if h.filesize > self.sh.cfg.mini.max_filesize {
            log::warn!(
                target: MINI_TARGET,
                "{peer} put {}: {} bytes over the limit {}; closing",
                h.filename,
                h.filesize,
                self.sh.cfg.mini.max_filesize
            );
            if h.reply {
                self.send(conn, &json!({"cmd": "put", "status": "error", "filename": h.filename, "error": "file too large"}));
            }
            return false;
        }
        let (upload, error) = if self.sh.cfg.mini.read_only {
            (None, Some("read-only".to_string()))
        } else {
            match self.real(&h.filename) {
                Ok((_, real)) => match Upload::create(&real, UploadMode::Replace) {
                    Ok(u) => (Some(u), None),
                    Err(e) => (None, Some(e.to_string())),
                },
                Err(e) => (None, Some(e)),
            }
        };
        self.state = State::Body {
            upload,
            error,
            remaining: h.filesize,
            header: h,
            started: Instant::now(),
        };
        true
    }

    /// `get`: the header reply, then the file's bytes.
    fn get(&mut self, conn: &mut Conn<'_, '_>, h: &Header) -> bool {
        let peer = conn.peer().clone();
        let res = self.real(&h.filename).and_then(|(_, real)| {
            let f = crate::sys::file::open_read(&real).map_err(|e| e.to_string())?;
            let m = crate::sys::file::fstat(&f).map_err(|e| e.to_string())?;
            if !m.is_file() {
                return Err("not a regular file".into());
            }
            Ok((f, m.len()))
        });
        match res {
            Ok((f, len)) => {
                self.send(
                    conn,
                    &json!({"cmd": "get", "status": "ok", "filename": h.filename, "filesize": len}),
                );
                conn.send_file(Rc::new(f), 0, len);
                log::info!(target: MINI_TARGET, "{peer} get {} {len} bytes", h.filename);
            }
            Err(e) => {
                log::info!(target: MINI_TARGET, "{peer} get {}: {e}", h.filename);
                self.send(conn, &json!({"cmd": "get", "status": "error", "filename": h.filename, "filesize": 0, "error": e}));
            }
        }
        true
    }

    /// `list`: a directory's entries as JSON.
    fn list(&mut self, conn: &mut Conn<'_, '_>, h: &Header) -> bool {
        let dir = if h.filename.is_empty() {
            "/".to_string()
        } else {
            h.filename.clone()
        };
        let res = jail::normalize(b"/", dir.as_bytes())
            .map_err(|_| "bad name".to_string())
            .and_then(|v| {
                self.sh
                    .anon_jail
                    .real(&v)
                    .map_err(|_| "permission denied".to_string())
            })
            .and_then(|real| {
                store::read_dir(&real, &self.sh.anon_jail, self.sh.cfg.max_listing)
                    .map_err(|e| e.to_string())
            });
        match res {
            Ok(entries) => {
                let files: Vec<Value> = entries
                    .iter()
                    .map(|e| json!({"name": store::show(&e.name), "size": e.meta.len(), "dir": e.meta.is_dir()}))
                    .collect();
                self.send(
                    conn,
                    &json!({"cmd": "list", "status": "ok", "filesize": 0, "files": files}),
                );
            }
            Err(e) => self.send(
                conn,
                &json!({"cmd": "list", "status": "error", "filesize": 0, "error": e}),
            ),
        }
        true
    }

    fn finish_put(&mut self, conn: &mut Conn<'_, '_>) {
        let State::Body {
            upload,
            error,
            header,
            started,
            ..
        } = std::mem::replace(&mut self.state, State::Header)
        else {
            return;
        };
        let peer = conn.peer().clone();
        let res = match (upload, error) {
            (Some(u), None) => u.commit().map(|_| ()).map_err(|e| e.to_string()),
            (_, Some(e)) => Err(e),
            (None, None) => Err("not stored".into()),
        };
        let secs = started.elapsed().as_secs_f64();
        match &res {
            Ok(()) => {
                log::info!(target: MINI_TARGET, "{peer} put {} {} bytes {secs:.3} s ok", header.filename, header.filesize)
            }
            Err(e) => log::info!(target: MINI_TARGET, "{peer} put {} failed: {e}", header.filename),
        }
        if header.reply {
            let v = match res {
                Ok(()) => {
                    json!({"cmd": "put", "status": "ok", "filename": header.filename, "filesize": header.filesize})
                }
                Err(e) => {
                    json!({"cmd": "put", "status": "error", "filename": header.filename, "filesize": header.filesize, "error": e})
                }
            };
            self.send(conn, &v);
        }
    }
}

impl Protocol for MiniConn {
    fn connection_made(&mut self, conn: &mut Conn<'_, '_>) {
        self.timer = Some(conn.set_timer(self.sh.cfg.idle_timeout));
    }

    fn data_received(&mut self, conn: &mut Conn<'_, '_>, data: &[u8]) {
        self.last_active = Instant::now();
        let mut input = data;
        while !input.is_empty() && !conn.is_closing() {
            match &mut self.state {
                State::Header => match self.dec.decode(&mut input) {
                    Ok(Some(bytes)) => match parse_header(&bytes) {
                        Ok(h) => {
                            if !self.header(conn, h) {
                                conn.close();
                                return;
                            }
                        }
                        Err(e) => {
                            log::warn!(target: MINI_TARGET, "{}: {e}; closing", conn.peer());
                            conn.close();
                            return;
                        }
                    },
                    Ok(None) => {}
                    Err(e) => {
                        log::warn!(target: MINI_TARGET, "{}: {e}; closing", conn.peer());
                        conn.close();
                        return;
                    }
                },
                State::Body {
                    upload,
                    error,
                    remaining,
                    ..
                } => {
                    let n = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(input.len());
                    if let Some(u) = upload {
                        if let Err(e) = u.write(&input[..n]) {
                            *error = Some(e.to_string());
                            *upload = None; // removes the temporary file
                        }
                    }
                    *remaining -= n as u64;
                    input = &input[n..];
                }
            }
            if matches!(self.state, State::Body { remaining: 0, .. }) {
                self.finish_put(conn);
            }
        }
        // A put of 0 bytes is complete with its header.
        if matches!(self.state, State::Body { remaining: 0, .. }) {
            self.finish_put(conn);
        }
    }

    fn timer(&mut self, conn: &mut Conn<'_, '_>, id: TimerId) {
        if self.timer != Some(id) {
            return;
        }
        let idle = self.last_active.elapsed();
        let limit = self.sh.cfg.idle_timeout;
        if idle >= limit && conn.output_len() == 0 {
            log::info!(target: MINI_TARGET, "{}: idle timeout", conn.peer());
            conn.close();
            self.timer = None;
            return;
        }
        let rest = limit.saturating_sub(idle).max(Duration::from_millis(10));
        self.timer = Some(conn.set_timer(rest));
    }

    fn connection_lost(&mut self, conn: &mut Conn<'_, '_>, _reason: Option<&std::io::Error>) {
        if let State::Body {
            header, remaining, ..
        } = &self.state
        {
            log::info!(
                target: MINI_TARGET,
                "{} put {}: connection lost with {remaining} bytes missing; not stored",
                conn.peer(),
                header.filename
            );
        }
        // Dropping the state drops an unfinished upload (its temporary file goes).
        self.state = State::Header;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        let h = parse_header(br#"{"cmd": "put", "filename": "a.txt", "filesize": 123}"#).unwrap();
        assert_eq!(
            h,
            Header {
                cmd: "put".into(),
                filename: "a.txt".into(),
                filesize: 123,
                reply: false
            }
        );
        assert!(
            parse_header(br#"{"cmd":"list","reply":true}"#)
                .unwrap()
                .reply
        );
        assert!(parse_header(br#"{"cmd":"put","filesize":-1}"#).is_err());
        assert!(parse_header(br#"{"cmd":"put","filesize":1.5}"#).is_err());
        assert!(parse_header(br#"[1,2]"#).is_err());
        assert!(parse_header(b"\xff\xfe").is_err());
        assert!(parse_header(br#"{"filename":"x"}"#).is_err());
    }
}
