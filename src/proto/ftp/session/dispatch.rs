//! The command table: a verb allowed before login runs at once; any other needs a
//! login, then goes to its `cmd_*` method.

use crate::net::Conn;
use crate::proto::ftp::command::{self, Command, Verb};
use crate::proto::ftp::reply::multiline;
use crate::proto::ftp::store::{show, UploadMode};

use super::{err, Login, Res, Session};

impl Session {
    pub(super) fn dispatch(&mut self, conn: &mut Conn<'_, '_>, cmd: &Command) -> Res {
        let arg = cmd.arg.as_slice();
        if let Some(done) = self.before_login(conn, cmd, arg) {
            return done;
        }
        if !matches!(self.login, Login::In) {
            return err(530, "Please login with USER and PASS.");
        }
        self.logged_in_command(conn, cmd, arg)
    }

    /// The commands allowed before login (and the unknown ones); `None` for the rest.
    fn before_login(&mut self, conn: &mut Conn<'_, '_>, cmd: &Command, arg: &[u8]) -> Option<Res> {
        Some(match cmd.verb {
            Verb::User => self.cmd_user(conn, arg),
            Verb::Pass => self.cmd_pass(conn, arg),
            Verb::Quit => self.cmd_quit(conn),
            Verb::Noop => self.ok(conn, 200, "NOOP ok."),
            Verb::Syst => self.ok(conn, 215, "UNIX Type: L8"),
            Verb::Feat => self.cmd_feat(conn),
            Verb::Opts => self.cmd_opts(conn, arg),
            Verb::Help => self.cmd_help(conn),
            Verb::Unknown => err(500, format!("Unknown command {}.", show(&cmd.name))),
            v if v.not_implemented() => err(502, "Command not implemented."),
            _ => return None,
        })
    }

    fn logged_in_command(&mut self, conn: &mut Conn<'_, '_>, cmd: &Command, arg: &[u8]) -> Res {
        match cmd.verb {
            Verb::Stat => self.cmd_stat(conn, arg),
            Verb::Pwd => self.cmd_pwd(conn),
            Verb::Cwd => self.cmd_cwd(conn, arg),
            Verb::Cdup => self.cmd_cwd(conn, b".."),
            Verb::Mkd => self.cmd_mkd(conn, arg),
            Verb::Rmd => self.cmd_rmd(conn, arg),
            Verb::Dele => self.cmd_dele(conn, arg),
            Verb::Rnfr => self.cmd_rnfr(conn, arg),
            Verb::Rnto => self.cmd_rnto(conn, arg),
            Verb::Type => self.cmd_type(conn, arg),
            Verb::Mode => self.cmd_mode(conn, arg),
            Verb::Stru => self.cmd_stru(conn, arg),
            Verb::Pasv => self.cmd_pasv(conn),
            Verb::Epsv => self.cmd_epsv(conn, arg),
            Verb::Port | Verb::Eprt => self.cmd_port(conn, cmd),
            Verb::List | Verb::Nlst | Verb::Mlsd => self.cmd_list(conn, cmd.verb, arg),
            Verb::Mlst => self.cmd_mlst(conn, arg),
            Verb::Retr => self.cmd_retr(conn, arg),
            Verb::Stor => {
                let mode = if self.rest > 0 {
                    UploadMode::Resume(self.rest)
                } else {
                    UploadMode::Replace
                };
                self.cmd_store(conn, "STOR", arg, mode)
            }
            Verb::Appe => self.cmd_store(conn, "APPE", arg, UploadMode::Append),
            Verb::Stou => self.cmd_store(conn, "STOU", arg, UploadMode::Unique),
            Verb::Rest => self.cmd_rest(conn, arg),
            Verb::Size => self.cmd_size(conn, arg),
            Verb::Mdtm => self.cmd_mdtm(conn, arg),
            Verb::Abor => self.cmd_abor(conn),
            Verb::Allo => self.ok(conn, 202, "ALLO command ignored."),
            _ => err(502, "Command not implemented."),
        }
    }

    /// Sends a one-line reply and succeeds.
    fn ok(&mut self, conn: &mut Conn<'_, '_>, code: u16, text: &str) -> Res {
        self.send(conn, code, text);
        Ok(())
    }

    fn cmd_quit(&mut self, conn: &mut Conn<'_, '_>) -> Res {
        self.send(conn, 221, "Goodbye.");
        self.drop_chan(conn);
        self.closing = true;
        conn.close();
        Ok(())
    }

    fn cmd_feat(&mut self, conn: &mut Conn<'_, '_>) -> Res {
        let feats: [&[u8]; 9] = [
            b"EPRT",
            b"EPSV",
            b"MDTM",
            b"MLST type*;size*;modify*;perm*;unix.mode*;",
            b"PASV",
            b"REST STREAM",
            b"SIZE",
            b"TVFS",
            b"UTF8",
        ];
        multiline(&mut self.out, 211, b"Features:", feats, b"End");
        self.send_raw(conn);
        Ok(())
    }

    fn cmd_help(&mut self, conn: &mut Conn<'_, '_>) -> Res {
        let names: Vec<&[u8]> = command::verb_names().collect();
        let mut rows: Vec<Vec<u8>> = Vec::new();
        for chunk in names.chunks(8) {
            rows.push(chunk.join(&b' '));
        }
        multiline(
            &mut self.out,
            214,
            b"The following commands are recognized:",
            rows.iter().map(Vec::as_slice),
            b"Help OK.",
        );
        self.send_raw(conn);
        Ok(())
    }
}
