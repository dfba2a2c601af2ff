//! Paths and listings: the jail, `PWD`, `CWD`, `LIST`/`NLST`/`MLSD`, `MLST`, `STAT`,
//! `OPTS`.

use std::path::PathBuf;
use std::rc::Rc;
use std::time::SystemTime;

use crate::net::Conn;
use crate::proto::ftp::command::Verb;
use crate::proto::ftp::data::Job;
use crate::proto::ftp::jail::{self, Jail};
use crate::proto::ftp::reply::{multiline, quote_path};
use crate::proto::ftp::store::{self, show};

use super::{err, io_err, path_err, Chan, Res, Session};

impl Session {
    pub(super) fn jail(&self) -> Rc<Jail> {
        match &self.who {
            Some(w) => w.jail.clone(),
            None => self.sh.anon_jail.clone(),
        }
    }

    /// `arg` as a normalized virtual path and its checked real path.
    pub(super) fn resolve(&self, arg: &[u8]) -> Result<(Vec<u8>, PathBuf), (u16, String)> {
        let v = jail::normalize(&self.cwd, arg).map_err(path_err)?;
        let real = self.jail().real(&v).map_err(path_err)?;
        Ok((v, real))
    }

    pub(super) fn need_write(&self) -> Res {
        match &self.who {
            Some(w) if w.write => Ok(()),
            _ => err(550, "Permission denied."),
        }
    }

    // ---- login --------------------------------------------------------------

    pub(super) fn cmd_opts(&mut self, conn: &mut Conn<'_, '_>, arg: &[u8]) -> Res {
        let a = arg.trim_ascii().to_ascii_uppercase();
        if a == b"UTF8 ON" || a == b"UTF8" || a == b"UTF-8 ON" {
            self.send(conn, 200, "Always in UTF8 mode.");
            Ok(())
        } else if a.starts_with(b"MLST") {
            self.send(conn, 200, "MLST OPTS type;size;modify;perm;unix.mode;");
            Ok(())
        } else {
            err(501, "Option not understood.")
        }
    }

    pub(super) fn cmd_stat(&mut self, conn: &mut Conn<'_, '_>, arg: &[u8]) -> Res {
        if arg.is_empty() {
            let lines = [
                format!("Connected to {}", self.peer_str()),
                format!("Logged in as {}", self.user()),
                format!("TYPE: {}", if self.ascii { "ASCII" } else { "BINARY" }),
                format!(
                    "Data connection: {}",
                    match (&self.chan, &self.xfer) {
                        (_, Some(x)) if x.job.is_none() => "transfer in progress",
                        (Chan::None, _) => "none",
                        (Chan::Active(_), _) => "active (PORT)",
                        _ => "passive",
                    }
                ),
            ];
            multiline(
                &mut self.out,
                211,
                b"readyloop FTP server status:",
                lines.iter().map(|s| s.as_bytes()),
                b"End of status",
            );
            self.send_raw(conn);
            return Ok(());
        }
        let listing = self.listing(Verb::List, arg)?;
        let rows: Vec<&[u8]> = listing
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .filter(|l| !l.is_empty())
            .collect();
        multiline(
            &mut self.out,
            213,
            b"Status follows:",
            rows,
            b"End of status",
        );
        self.send_raw(conn);
        Ok(())
    }

    pub(super) fn cmd_pwd(&mut self, conn: &mut Conn<'_, '_>) -> Res {
        let mut t = quote_path(&self.cwd);
        t.extend_from_slice(b" is the current directory.");
        self.send(conn, 257, t);
        Ok(())
    }

    pub(super) fn cmd_cwd(&mut self, conn: &mut Conn<'_, '_>, arg: &[u8]) -> Res {
        let (v, real) = self.resolve(arg)?;
        match std::fs::metadata(&real) {
            Ok(m) if m.is_dir() => {
                self.cwd = v;
                self.send(conn, 250, "Directory successfully changed.");
                Ok(())
            }
            Ok(_) => err(550, "Not a directory."),
            Err(e) => Err(io_err(&e)),
        }
    }

    /// A listing's bytes. `LIST` and `NLST` take `ls` options (`-la`), ignored.
    pub(super) fn listing(&self, verb: Verb, arg: &[u8]) -> Result<Vec<u8>, (u16, String)> {
        let mut path = arg.trim_ascii_start();
        if verb != Verb::Mlsd {
            while path.first() == Some(&b'-') {
                let end = path.iter().position(|&b| b == b' ').unwrap_or(path.len());
                path = path[end..].trim_ascii_start();
            }
        }
        let (_, real) = self.resolve(path)?;
        let jail = self.jail();
        let meta = std::fs::metadata(&real).map_err(|e| io_err(&e))?;
        let now = SystemTime::now();
        let mut out = Vec::new();
        let write = self.who.as_ref().is_some_and(|w| w.write);
        if !meta.is_dir() {
            if verb == Verb::Mlsd {
                return err(501, "Not a directory.");
            }
            let name =
                jail::file_name(&jail::normalize(&self.cwd, path).map_err(path_err)?).to_vec();
            match verb {
                Verb::Nlst => {
                    out.extend_from_slice(path);
                    out.extend_from_slice(b"\r\n");
                }
                _ => store::list_line(&mut out, &name, &meta, now),
            }
            return Ok(out);
        }
        let entries =
            store::read_dir(&real, &jail, self.sh.cfg.max_listing).map_err(|e| io_err(&e))?;
        for e in entries {
            match verb {
                Verb::Nlst => {
                    out.extend_from_slice(&e.name);
                    out.extend_from_slice(b"\r\n");
                }
                Verb::Mlsd => {
                    let kind = if e.meta.is_dir() { "dir" } else { "file" };
                    store::mlsx_facts(&mut out, &e.meta, kind, write);
                    out.extend_from_slice(&e.name);
                    out.extend_from_slice(b"\r\n");
                }
                _ => store::list_line(&mut out, &e.name, &e.meta, now),
            }
        }
        Ok(out)
    }

    pub(super) fn cmd_list(&mut self, conn: &mut Conn<'_, '_>, verb: Verb, arg: &[u8]) -> Res {
        let bytes = self.listing(verb, arg)?;
        let name = match verb {
            Verb::Nlst => "NLST",
            Verb::Mlsd => "MLSD",
            _ => "LIST",
        };
        let path = show(&jail::normalize(&self.cwd, arg).unwrap_or_default());
        self.begin(
            conn,
            name,
            path,
            Job::Bytes(bytes),
            b"Here comes the directory listing.".to_vec(),
        )
    }

    pub(super) fn cmd_mlst(&mut self, conn: &mut Conn<'_, '_>, arg: &[u8]) -> Res {
        let (v, real) = self.resolve(arg)?;
        let m = std::fs::metadata(&real).map_err(|e| io_err(&e))?;
        let write = self.who.as_ref().is_some_and(|w| w.write);
        let kind = if v == b"/" || v == self.cwd {
            if m.is_dir() {
                "cdir"
            } else {
                "file"
            }
        } else if m.is_dir() {
            "dir"
        } else {
            "file"
        };
        let mut line = Vec::new();
        store::mlsx_facts(&mut line, &m, kind, write);
        line.extend_from_slice(&v);
        let mut first = b"Listing ".to_vec();
        first.extend_from_slice(&v);
        multiline(&mut self.out, 250, &first, [line.as_slice()], b"End");
        self.send_raw(conn);
        Ok(())
    }
}
