//! File transfer commands: `RETR`, `STOR`/`APPE`/`STOU`, `ABOR`, and the transfer
//! parameters `TYPE`, `MODE`, `STRU`, `REST`.

use std::rc::Rc;

use crate::net::Conn;
use crate::proto::ftp::data::Job;
use crate::proto::ftp::jail;
use crate::proto::ftp::store::{show, Upload, UploadMode};

use super::{err, io_err, path_err, Res, Session, XFER_TARGET};
use crate::proto::ftp::command;

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

    pub(super) fn cmd_type(&mut self, conn: &mut Conn<'_, '_>, arg: &[u8]) -> Res {
        let a = arg.trim_ascii().to_ascii_uppercase();
        let parts: Vec<&[u8]> = a.split(|&b| b == b' ').filter(|p| !p.is_empty()).collect();
        match parts.as_slice() {
            [b"A"] | [b"A", b"N"] => {
                self.ascii = true;
                self.send(conn, 200, "Switching to ASCII mode.");
            }
            [b"I"] | [b"L", b"8"] => {
                self.ascii = false;
                self.send(conn, 200, "Switching to Binary mode.");
            }
            [] => return err(501, "TYPE needs an argument."),
            _ => return err(504, "Type not supported."),
        }
        Ok(())
    }

    pub(super) fn cmd_mode(&mut self, conn: &mut Conn<'_, '_>, arg: &[u8]) -> Res {
        let unsupported = "Only stream mode (S) is supported.";
        self.only_choice(conn, arg, "MODE", b"S", "Mode set to S.", unsupported)
    }

    pub(super) fn cmd_stru(&mut self, conn: &mut Conn<'_, '_>, arg: &[u8]) -> Res {
        let unsupported = "Only file structure (F) is supported.";
        self.only_choice(conn, arg, "STRU", b"F", "Structure set to F.", unsupported)
    }

    /// A parameter with one supported value (`MODE S`, `STRU F`): 200 `done` for it,
    /// 501 without an argument, 504 `unsupported` for anything else.
    fn only_choice(
        &mut self,
        conn: &mut Conn<'_, '_>,
        arg: &[u8],
        name: &str,
        value: &[u8],
        done: &str,
        unsupported: &str,
    ) -> Res {
        match arg.trim_ascii().to_ascii_uppercase().as_slice() {
            a if a == value => {
                self.send(conn, 200, done);
                Ok(())
            }
            b"" => err(501, format!("{name} needs an argument.")),
            _ => err(504, unsupported),
        }
    }

    pub(super) fn cmd_rest(&mut self, conn: &mut Conn<'_, '_>, arg: &[u8]) -> Res {
        let Some(n) = command::parse_rest(arg) else {
            return err(501, "REST needs a byte offset.");
        };
        self.rest = n;
        self.send(conn, 350, format!("Restart position accepted ({n})."));
        Ok(())
    }

    pub(super) fn cmd_abor(&mut self, conn: &mut Conn<'_, '_>) -> Res {
        if self.xfer.is_some() {
            let started = self.xfer.as_ref().is_some_and(|x| x.job.is_none());
            let x = self.xfer.take();
            self.drop_chan(conn);
            if let Some(x) = x {
                log::info!(
                    target: XFER_TARGET,
                    "{} {} {} {} aborted",
                    self.peer_str(),
                    self.user(),
                    x.verb,
                    x.path
                );
            }
            if started {
                self.send(conn, 426, "Connection closed; transfer aborted.");
            }
            self.send(conn, 226, "Abort successful.");
        } else {
            self.drop_chan(conn);
            self.send(conn, 225, "No transfer to abort.");
        }
        Ok(())
    }
}
