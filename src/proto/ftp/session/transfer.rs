//! File transfer commands: `RETR`, and `STOR`/`APPE`/`STOU`.

use std::rc::Rc;

use crate::net::Conn;
use crate::proto::ftp::data::Job;
use crate::proto::ftp::jail::{self};
use crate::proto::ftp::store::{show, Upload, UploadMode};

use super::{err, io_err, path_err, Res, Session};

impl Session {
    pub(super) fn cmd_retr(&mut self, conn: &mut Conn<'_, '_>, arg: &[u8]) -> Res {
        if arg.is_empty() {
            return err(501, "RETR needs a file name.");
        }
        let (v, real) = self.resolve(arg)?;
        let file = crate::sys::file::open_read(&real).map_err(|e| io_err(&e))?;
        let meta = crate::sys::file::fstat(&file).map_err(|e| io_err(&e))?;
        if !meta.is_file() {
            return err(550, "Not a regular file.");
        }
        let len = meta.len();
        let offset = self.rest;
        if offset > len {
            self.rest = 0;
            return err(554, "Restart position beyond the end of the file.");
        }
        let job = if self.ascii {
            Job::Ascii { file, offset }
        } else {
            Job::File {
                file: Rc::new(file),
                offset,
                len: len - offset,
            }
        };
        let opening = format!(
            "Opening {} mode data connection for {} ({} bytes).",
            if self.ascii { "ASCII" } else { "BINARY" },
            show(jail::file_name(&v)),
            len - offset
        );
        self.begin(conn, "RETR", show(&v), job, opening.into_bytes())
    }

    pub(super) fn cmd_store(
        &mut self,
        conn: &mut Conn<'_, '_>,
        verb: &'static str,
        arg: &[u8],
        mode: UploadMode,
    ) -> Res {
        self.need_write()?;
        if self.xfer.is_some() {
            return err(450, "A transfer is already in progress.");
        }
        let arg: &[u8] = if verb == "STOU" && arg.is_empty() {
            b"upload"
        } else {
            arg
        };
        if arg.is_empty() {
            return err(501, format!("{verb} needs a file name."));
        }
        let (mut v, mut real) = self.resolve(arg)?;
        if v == b"/" {
            return err(550, "Not a file name.");
        }
        if verb == "STOU" {
            // Name the file in the 150 reply: the first free of name, name.1, ...
            // (the commit links without replacing, so a race picks the next one).
            for i in 1..1000u32 {
                if std::fs::symlink_metadata(&real).is_err() {
                    break;
                }
                let mut nv = jail::normalize(&self.cwd, arg).map_err(path_err)?;
                nv.extend_from_slice(format!(".{i}").as_bytes());
                real = self.jail().real(&nv).map_err(path_err)?;
                v = nv;
            }
        }
        if std::fs::metadata(&real).is_ok_and(|m| m.is_dir()) {
            return err(550, "Is a directory.");
        }
        let upload = Upload::create(&real, mode).map_err(|e| io_err(&e))?;
        let opening = if verb == "STOU" {
            format!("FILE: {}", show(jail::file_name(&v)))
        } else {
            "Ok to send data.".to_string()
        };
        let job = Job::Recv {
            upload,
            ascii: self.ascii,
        };
        self.begin(conn, verb, show(&v), job, opening.into_bytes())
    }
}
