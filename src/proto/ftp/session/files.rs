//! File system commands on the jail: `MKD`, `RMD`, `DELE`, `RNFR`/`RNTO`, `SIZE`,
//! `MDTM`.

use std::fs::Metadata;
use std::time::SystemTime;

use crate::net::Conn;
use crate::proto::ftp::reply::quote_path;
use crate::proto::ftp::store::{self, show};

use super::{err, io_err, path_err, Res, Session, ACCESS_TARGET};

impl Session {
    /// Logs a change to the file system (`verb` on virtual path `v`).
    fn log_change(&self, verb: &str, v: &[u8]) {
        log::info!(target: ACCESS_TARGET, "{} {} {verb} {}", self.peer_str(), self.user(), show(v));
    }

    pub(super) fn cmd_mkd(&mut self, conn: &mut Conn<'_, '_>, arg: &[u8]) -> Res {
        self.need_write()?;
        let (v, real) = self.resolve(arg)?;
        std::fs::create_dir(&real).map_err(|e| io_err(&e))?;
        self.log_change("MKD", &v);
        let mut t = quote_path(&v);
        t.extend_from_slice(b" created.");
        self.send(conn, 257, t);
        Ok(())
    }

    pub(super) fn cmd_rmd(&mut self, conn: &mut Conn<'_, '_>, arg: &[u8]) -> Res {
        self.need_write()?;
        let (v, real) = self.resolve(arg)?;
        if v == b"/" {
            return err(550, "Cannot remove the root directory.");
        }
        std::fs::remove_dir(&real).map_err(|e| io_err(&e))?;
        self.log_change("RMD", &v);
        self.send(conn, 250, "Directory removed.");
        Ok(())
    }

    pub(super) fn cmd_dele(&mut self, conn: &mut Conn<'_, '_>, arg: &[u8]) -> Res {
        self.need_write()?;
        let (v, real) = self.resolve(arg)?;
        let m = std::fs::symlink_metadata(&real).map_err(|e| io_err(&e))?;
        if m.is_dir() {
            return err(550, "Is a directory (use RMD).");
        }
        std::fs::remove_file(&real).map_err(|e| io_err(&e))?;
        self.log_change("DELE", &v);
        self.send(conn, 250, "File deleted.");
        Ok(())
    }

    pub(super) fn cmd_rnfr(&mut self, conn: &mut Conn<'_, '_>, arg: &[u8]) -> Res {
        self.need_write()?;
        let (v, real) = self.resolve(arg)?;
        if v == b"/" {
            return err(550, "Cannot rename the root directory.");
        }
        std::fs::symlink_metadata(&real).map_err(|e| io_err(&e))?;
        self.rnfr = Some(v);
        self.send(conn, 350, "Ready for RNTO.");
        Ok(())
    }

    pub(super) fn cmd_rnto(&mut self, conn: &mut Conn<'_, '_>, arg: &[u8]) -> Res {
        let Some(from) = self.rnfr.take() else {
            return err(503, "RNFR required first.");
        };
        self.need_write()?;
        let from_real = self.jail().real(&from).map_err(path_err)?;
        let (v, real) = self.resolve(arg)?;
        if v == b"/" {
            return err(550, "Cannot rename to the root directory.");
        }
        std::fs::rename(&from_real, &real).map_err(|e| io_err(&e))?;
        log::info!(
            target: ACCESS_TARGET,
            "{} {} RENAME {} {}",
            self.peer_str(),
            self.user(),
            show(&from),
            show(&v)
        );
        self.send(conn, 250, "Rename successful.");
        Ok(())
    }

    /// The metadata of the regular file `arg` names (550 for anything else).
    fn regular_file(&self, arg: &[u8]) -> Result<Metadata, (u16, String)> {
        let (_, real) = self.resolve(arg)?;
        let m = std::fs::metadata(&real).map_err(|e| io_err(&e))?;
        if !m.is_file() {
            return err(550, "Not a regular file.");
        }
        Ok(m)
    }

    pub(super) fn cmd_size(&mut self, conn: &mut Conn<'_, '_>, arg: &[u8]) -> Res {
        let m = self.regular_file(arg)?;
        self.send(conn, 213, m.len().to_string());
        Ok(())
    }

    pub(super) fn cmd_mdtm(&mut self, conn: &mut Conn<'_, '_>, arg: &[u8]) -> Res {
        let m = self.regular_file(arg)?;
        let t = m.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        self.send(conn, 213, store::timeval(t));
        Ok(())
    }
}
