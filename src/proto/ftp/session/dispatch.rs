//! The command table: one arm per verb, after the login and argument checks.

use std::net::IpAddr;
use std::time::SystemTime;

use crate::net::Conn;
use crate::proto::ftp::command::{self, Command, EpsvArg, Verb};
use crate::proto::ftp::data::same_host;
use crate::proto::ftp::reply::{multiline, quote_path};
use crate::proto::ftp::store::{self, show, UploadMode};

use super::{err, io_err, path_err, Chan, Login, Res, Session, ACCESS_TARGET, XFER_TARGET};

impl Session {
    pub(super) fn dispatch(&mut self, conn: &mut Conn<'_, '_>, cmd: &Command) -> Res {
        let arg = cmd.arg.as_slice();
        // Commands allowed before login.
        match cmd.verb {
            Verb::User => return self.cmd_user(conn, arg),
            Verb::Pass => return self.cmd_pass(conn, arg),
            Verb::Quit => {
                self.send(conn, 221, "Goodbye.");
                self.drop_chan(conn);
                self.closing = true;
                conn.close();
                return Ok(());
            }
            Verb::Noop => {
                self.send(conn, 200, "NOOP ok.");
                return Ok(());
            }
            Verb::Syst => {
                self.send(conn, 215, "UNIX Type: L8");
                return Ok(());
            }
            Verb::Feat => {
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
                return Ok(());
            }
            Verb::Opts => return self.cmd_opts(conn, arg),
            Verb::Help => {
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
                return Ok(());
            }
            Verb::Unknown => return err(500, format!("Unknown command {}.", show(&cmd.name))),
            v if v.not_implemented() => return err(502, "Command not implemented."),
            _ => {}
        }
        if !matches!(self.login, Login::In) {
            return err(530, "Please login with USER and PASS.");
        }
        match cmd.verb {
            Verb::Stat => self.cmd_stat(conn, arg),
            Verb::Pwd => {
                let q = quote_path(&self.cwd);
                let mut t = q;
                t.extend_from_slice(b" is the current directory.");
                self.send(conn, 257, t);
                Ok(())
            }
            Verb::Cwd => self.cmd_cwd(conn, arg),
            Verb::Cdup => self.cmd_cwd(conn, b".."),
            Verb::Mkd => {
                self.need_write()?;
                let (v, real) = self.resolve(arg)?;
                std::fs::create_dir(&real).map_err(|e| io_err(&e))?;
                log::info!(target: ACCESS_TARGET, "{} {} MKD {}", self.peer_str(), self.user(), show(&v));
                let mut t = quote_path(&v);
                t.extend_from_slice(b" created.");
                self.send(conn, 257, t);
                Ok(())
            }
            Verb::Rmd => {
                self.need_write()?;
                let (v, real) = self.resolve(arg)?;
                if v == b"/" {
                    return err(550, "Cannot remove the root directory.");
                }
                std::fs::remove_dir(&real).map_err(|e| io_err(&e))?;
                log::info!(target: ACCESS_TARGET, "{} {} RMD {}", self.peer_str(), self.user(), show(&v));
                self.send(conn, 250, "Directory removed.");
                Ok(())
            }
            Verb::Dele => {
                self.need_write()?;
                let (v, real) = self.resolve(arg)?;
                let m = std::fs::symlink_metadata(&real).map_err(|e| io_err(&e))?;
                if m.is_dir() {
                    return err(550, "Is a directory (use RMD).");
                }
                std::fs::remove_file(&real).map_err(|e| io_err(&e))?;
                log::info!(target: ACCESS_TARGET, "{} {} DELE {}", self.peer_str(), self.user(), show(&v));
                self.send(conn, 250, "File deleted.");
                Ok(())
            }
            Verb::Rnfr => {
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
            Verb::Rnto => {
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
            Verb::Type => {
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
            Verb::Mode => match arg.trim_ascii().to_ascii_uppercase().as_slice() {
                b"S" => {
                    self.send(conn, 200, "Mode set to S.");
                    Ok(())
                }
                b"" => err(501, "MODE needs an argument."),
                _ => err(504, "Only stream mode (S) is supported."),
            },
            Verb::Stru => match arg.trim_ascii().to_ascii_uppercase().as_slice() {
                b"F" => {
                    self.send(conn, 200, "Structure set to F.");
                    Ok(())
                }
                b"" => err(501, "STRU needs an argument."),
                _ => err(504, "Only file structure (F) is supported."),
            },
            Verb::Pasv => {
                if self.epsv_all {
                    return err(503, "Only EPSV is allowed after EPSV ALL.");
                }
                let addr = self.open_passive(conn)?;
                let IpAddr::V4(ip) = addr.ip().to_canonical() else {
                    self.drop_chan(conn);
                    return err(425, "PASV works on IPv4 only; use EPSV.");
                };
                let o = ip.octets();
                let (p1, p2) = (addr.port() >> 8, addr.port() & 0xff);
                self.send(
                    conn,
                    227,
                    format!(
                        "Entering Passive Mode ({},{},{},{},{p1},{p2}).",
                        o[0], o[1], o[2], o[3]
                    ),
                );
                Ok(())
            }
            Verb::Epsv => {
                let Some(a) = command::parse_epsv(arg) else {
                    return err(501, "Bad EPSV argument.");
                };
                match a {
                    EpsvArg::All => {
                        self.epsv_all = true;
                        self.send(conn, 200, "EPSV ALL ok.");
                        return Ok(());
                    }
                    EpsvArg::Proto(p) => {
                        let v6 = self.local_ip(conn)?.to_canonical().is_ipv6();
                        if (p == 1 && v6) || (p == 2 && !v6) || !(1..=2).contains(&p) {
                            return err(
                                522,
                                if v6 {
                                    "Network protocol not supported, use (2)"
                                } else {
                                    "Network protocol not supported, use (1)"
                                },
                            );
                        }
                    }
                    EpsvArg::Any => {}
                }
                let addr = self.open_passive(conn)?;
                self.send(
                    conn,
                    229,
                    format!("Entering Extended Passive Mode (|||{}|).", addr.port()),
                );
                Ok(())
            }
            Verb::Port | Verb::Eprt => {
                if self.epsv_all {
                    return err(503, "Only EPSV is allowed after EPSV ALL.");
                }
                let addr = if cmd.verb == Verb::Port {
                    command::parse_port(arg)
                } else {
                    command::parse_eprt(arg)
                };
                let Some(addr) = addr else {
                    if cmd.verb == Verb::Eprt {
                        let bad_proto = arg.get(1).is_some_and(|&b| b != b'1' && b != b'2');
                        if bad_proto {
                            return err(522, "Network protocol not supported, use (1,2)");
                        }
                    }
                    return err(501, "Bad address syntax.");
                };
                let ok = self.peer_ip().is_some_and(|p| same_host(p, addr.ip()));
                if !ok || addr.port() < 1024 {
                    log::warn!(
                        target: ACCESS_TARGET,
                        "{} {} refused {} {addr} (not the client's address, or a privileged port)",
                        self.peer_str(),
                        self.user(),
                        show(&cmd.name)
                    );
                    return err(
                        501,
                        "Rejected: data connections go to your own address only (RFC 2577).",
                    );
                }
                self.drop_chan(conn);
                self.chan = Chan::Active(addr);
                self.send(
                    conn,
                    200,
                    format!("{} command successful.", show(&cmd.name)),
                );
                Ok(())
            }
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
            Verb::Rest => {
                let Some(n) = command::parse_rest(arg) else {
                    return err(501, "REST needs a byte offset.");
                };
                self.rest = n;
                self.send(conn, 350, format!("Restart position accepted ({n})."));
                Ok(())
            }
            Verb::Size => {
                let (_, real) = self.resolve(arg)?;
                let m = std::fs::metadata(&real).map_err(|e| io_err(&e))?;
                if !m.is_file() {
                    return err(550, "Not a regular file.");
                }
                self.send(conn, 213, m.len().to_string());
                Ok(())
            }
            Verb::Mdtm => {
                let (_, real) = self.resolve(arg)?;
                let m = std::fs::metadata(&real).map_err(|e| io_err(&e))?;
                if !m.is_file() {
                    return err(550, "Not a regular file.");
                }
                let t = m.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                self.send(conn, 213, store::timeval(t));
                Ok(())
            }
            Verb::Abor => {
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
            Verb::Allo => {
                self.send(conn, 202, "ALLO command ignored.");
                Ok(())
            }
            _ => err(502, "Command not implemented."),
        }
    }
}
