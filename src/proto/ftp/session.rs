//! The control connection: login, the command state machine, and the data channel
//! bookkeeping (which handler is the data channel, which transfer waits for it).
//!
//! Data channel states (`Chan`): none; a passive listener waiting; an active
//! connect in progress; a data connection up. A transfer command (`Xfer`) waits for
//! the connection if it is not up yet; `150` goes out when the transfer starts,
//! `226` (or an error) when the data connection reports the end. Every data channel
//! gets a sequence number, so a late report from an old one is ignored.

use std::any::Any;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Instant, SystemTime};

use super::command::{self, parse_command, Command, CommandError, EpsvArg, Verb};
use super::data::{same_host, Connector, Job, PassiveListener, ToControl, ToData};
use super::jail::{self, Jail, PathError};
use super::reply::{multiline, quote_path, reply};
use super::store::{self, error_code, show, Upload, UploadMode};
use super::Shared;
use crate::net::{Conn, PeerAddr, Protocol};
use crate::proto::framing::{Line, LineBuffer};
use crate::reactor::{HandlerId, TimerId};

/// The log target for logins and changes.
pub const ACCESS_TARGET: &str = "readyloop::ftp::access";
/// The log target for transfers.
pub const XFER_TARGET: &str = "readyloop::ftp::xfer";

/// Most command lines kept while a failed login's delay runs (reading is paused, so
/// no more than one read's worth arrives anyway).
const MAX_PENDING_LINES: usize = 256;

enum Login {
    User,
    Pass { name: Vec<u8> },
    In,
}

/// Who is logged in.
struct Who {
    name: String,
    jail: Rc<Jail>,
    write: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chan {
    None,
    Passive(HandlerId),
    Active(SocketAddr),
    Connecting(HandlerId),
    Connected(HandlerId),
}

struct Xfer {
    verb: &'static str,
    path: String,
    started: Instant,
    /// Waiting for the data connection.
    job: Option<Job>,
    /// The 150 text.
    opening: Vec<u8>,
}

pub(crate) struct Session {
    sh: Rc<Shared>,
    peer: Option<SocketAddr>,
    lines: LineBuffer,
    pending: VecDeque<Option<Vec<u8>>>,
    out: Vec<u8>,
    counted: bool,
    login: Login,
    who: Option<Who>,
    attempts: u32,
    cwd: Vec<u8>,
    ascii: bool,
    rest: u64,
    rnfr: Option<Vec<u8>>,
    epsv_all: bool,
    seq: u64,
    chan: Chan,
    xfer: Option<Xfer>,
    setup_timer: Option<TimerId>,
    idle_timer: Option<TimerId>,
    last_active: Instant,
    /// A failed login's delay: reading paused, lines queued.
    delay: Option<TimerId>,
    /// After the delay: close (too many attempts).
    close_after_delay: bool,
    closing: bool,
}

type Res = Result<(), (u16, String)>;

fn err<T>(code: u16, msg: impl Into<String>) -> Result<T, (u16, String)> {
    Err((code, msg.into()))
}

fn path_err(e: PathError) -> (u16, String) {
    match e {
        PathError::BadBytes => (501, "Control characters are not allowed in paths.".into()),
        PathError::Outside => (550, "Permission denied.".into()),
    }
}

fn io_err(e: &std::io::Error) -> (u16, String) {
    let code = error_code(e);
    let text = match code {
        452 => "Insufficient storage space.".to_string(),
        550 if e.kind() == std::io::ErrorKind::NotFound => "No such file or directory.".into(),
        550 if e.kind() == std::io::ErrorKind::PermissionDenied => "Permission denied.".into(),
        _ => format!("Action failed: {e}."),
    };
    (code, text)
}

impl Session {
    pub(crate) fn new(sh: Rc<Shared>, peer: &PeerAddr) -> Session {
        let peer = match peer {
            PeerAddr::Inet(a) => Some(*a),
            PeerAddr::Unix => None,
        };
        Session {
            lines: LineBuffer::new(sh.cfg.max_line),
            sh,
            peer,
            pending: VecDeque::new(),
            out: Vec::new(),
            counted: false,
            login: Login::User,
            who: None,
            attempts: 0,
            cwd: b"/".to_vec(),
            ascii: false,
            rest: 0,
            rnfr: None,
            epsv_all: false,
            seq: 0,
            chan: Chan::None,
            xfer: None,
            setup_timer: None,
            idle_timer: None,
            last_active: Instant::now(),
            delay: None,
            close_after_delay: false,
            closing: false,
        }
    }

    fn peer_ip(&self) -> Option<IpAddr> {
        self.peer.map(|p| p.ip())
    }

    fn user(&self) -> &str {
        self.who.as_ref().map_or("-", |w| w.name.as_str())
    }

    fn send(&mut self, conn: &mut Conn<'_, '_>, code: u16, text: impl AsRef<[u8]>) {
        self.out.clear();
        reply(&mut self.out, code, text.as_ref());
        conn.write(&self.out);
        self.out.clear();
    }

    fn send_raw(&mut self, conn: &mut Conn<'_, '_>) {
        conn.write(&self.out);
        self.out.clear();
    }

    // ---- timers -------------------------------------------------------------

    fn arm_idle(&mut self, conn: &mut Conn<'_, '_>) {
        if self.idle_timer.is_none() {
            self.idle_timer = Some(conn.set_timer(self.sh.cfg.idle_timeout));
        }
    }

    fn arm_setup(&mut self, conn: &mut Conn<'_, '_>) {
        if let Some(t) = self.setup_timer.take() {
            conn.cancel_timer(t);
        }
        self.setup_timer = Some(conn.set_timer(self.sh.cfg.data_setup_timeout));
    }

    fn cancel_setup(&mut self, conn: &mut Conn<'_, '_>) {
        if let Some(t) = self.setup_timer.take() {
            conn.cancel_timer(t);
        }
    }

    // ---- data channel -------------------------------------------------------

    /// Tears down the data channel (listener, connect or connection) and forgets
    /// any transfer; later reports from it are ignored.
    fn drop_chan(&mut self, conn: &mut Conn<'_, '_>) {
        match std::mem::replace(&mut self.chan, Chan::None) {
            Chan::Passive(id) | Chan::Connecting(id) => conn.reactor().remove(id),
            Chan::Connected(id) => {
                if !conn.notify(id, Box::new(ToData::Abort)) {
                    conn.reactor().remove(id);
                }
            }
            Chan::None | Chan::Active(_) => {}
        }
        self.xfer = None;
        self.seq += 1;
        self.cancel_setup(conn);
    }

    fn local_ip(&self, conn: &mut Conn<'_, '_>) -> Result<IpAddr, (u16, String)> {
        match conn.local_addr() {
            Ok(PeerAddr::Inet(a)) => Ok(a.ip()),
            _ => err(425, "Cannot determine the local address."),
        }
    }

    /// Opens a passive listener; returns its address.
    fn open_passive(&mut self, conn: &mut Conn<'_, '_>) -> Result<SocketAddr, (u16, String)> {
        let Some(peer) = self.peer_ip() else {
            return err(425, "Passive mode needs a TCP control connection.");
        };
        let ip = self.local_ip(conn)?;
        self.drop_chan(conn);
        let cfg = &self.sh.cfg;
        let sock = PassiveListener::bind(ip, cfg.passive_ports, self.sh.counts.next_port())
            .map_err(|e| (425, format!("Cannot open passive connection: {e}.")))?;
        let addr = sock
            .local_addr()
            .map_err(|e| (425, format!("Cannot open passive connection: {e}.")))?;
        if let Some((lo, hi)) = cfg.passive_ports {
            let next = if addr.port() >= hi {
                lo
            } else {
                addr.port() + 1
            };
            self.sh.counts.set_next_port(next);
        }
        let me = conn.id();
        let id = PassiveListener::register(
            conn.reactor(),
            sock,
            me,
            self.seq,
            peer,
            self.sh.data_stream.clone(),
            self.sh.cfg.stall_timeout,
        )
        .map_err(|e| (425, format!("Cannot open passive connection: {e}.")))?;
        self.chan = Chan::Passive(id);
        self.arm_setup(conn);
        Ok(addr)
    }

    /// Starts (or queues) a transfer on the data channel.
    fn begin(
        &mut self,
        conn: &mut Conn<'_, '_>,
        verb: &'static str,
        path: String,
        job: Job,
        opening: Vec<u8>,
    ) -> Res {
        if self.xfer.is_some() {
            return err(450, "A transfer is already in progress.");
        }
        self.rest = 0;
        match self.chan {
            Chan::None => err(425, "Use PORT, EPRT, PASV or EPSV first."),
            Chan::Passive(_) | Chan::Connecting(_) => {
                self.xfer = Some(Xfer {
                    verb,
                    path,
                    started: Instant::now(),
                    job: Some(job),
                    opening,
                });
                Ok(())
            }
            Chan::Active(addr) => {
                let me = conn.id();
                let id = Connector::start(
                    conn.reactor(),
                    addr,
                    me,
                    self.seq,
                    self.sh.data_stream.clone(),
                    self.sh.cfg.stall_timeout,
                )
                .map_err(|e| (425, format!("Cannot open data connection: {e}.")))?;
                self.chan = Chan::Connecting(id);
                self.arm_setup(conn);
                self.xfer = Some(Xfer {
                    verb,
                    path,
                    started: Instant::now(),
                    job: Some(job),
                    opening,
                });
                Ok(())
            }
            Chan::Connected(id) => {
                self.xfer = Some(Xfer {
                    verb,
                    path,
                    started: Instant::now(),
                    job: Some(job),
                    opening,
                });
                self.start_xfer(conn, id);
                Ok(())
            }
        }
    }

    /// The data connection is up and a transfer waits: go.
    fn start_xfer(&mut self, conn: &mut Conn<'_, '_>, id: HandlerId) {
        let Some(x) = self.xfer.as_mut() else { return };
        let Some(job) = x.job.take() else { return };
        x.started = Instant::now();
        let opening = std::mem::take(&mut x.opening);
        self.cancel_setup(conn);
        self.send(conn, 150, opening);
        if !conn.notify(id, Box::new(ToData::Start(job))) {
            self.chan = Chan::None;
            self.xfer = None;
            self.seq += 1;
            self.send(conn, 425, "Cannot open data connection.");
        }
    }

    fn on_data_event(&mut self, conn: &mut Conn<'_, '_>, ev: ToControl) {
        match ev {
            ToControl::Connected { seq, id } => {
                if seq != self.seq || self.closing {
                    conn.reactor().remove(id);
                    return;
                }
                self.chan = Chan::Connected(id);
                if self.xfer.is_some() {
                    self.start_xfer(conn, id);
                }
            }
            ToControl::ConnectFailed { seq, error } => {
                if seq != self.seq {
                    return;
                }
                log::info!("{}: active connect failed: {error}", self.peer_str());
                self.chan = Chan::None;
                self.cancel_setup(conn);
                if self.xfer.take().is_some() {
                    self.send(conn, 425, "Cannot open data connection.");
                }
                self.seq += 1;
            }
            ToControl::Finished {
                seq,
                bytes,
                outcome,
            } => {
                if seq != self.seq {
                    return;
                }
                self.chan = Chan::None;
                self.seq += 1;
                let Some(x) = self.xfer.take() else { return };
                let secs = x.started.elapsed().as_secs_f64();
                let (status, code, text) = match &outcome {
                    Ok(Some(p)) if x.verb == "STOU" => {
                        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
                        (
                            "ok",
                            226,
                            format!(
                                "Transfer complete (stored as {}).",
                                name.unwrap_or_default()
                            ),
                        )
                    }
                    Ok(_) => ("ok", 226, "Transfer complete.".to_string()),
                    Err((c, m)) => ("failed", *c, m.clone()),
                };
                log::info!(
                    target: XFER_TARGET,
                    "{} {} {} {} {bytes} bytes {secs:.6} s {status}",
                    self.peer_str(),
                    self.user(),
                    x.verb,
                    x.path
                );
                self.send(conn, code, text);
                self.last_active = Instant::now();
            }
        }
    }

    fn peer_str(&self) -> String {
        self.peer
            .map_or_else(|| "unix".to_string(), |p| p.to_string())
    }

    // ---- paths --------------------------------------------------------------

    fn jail(&self) -> Rc<Jail> {
        match &self.who {
            Some(w) => w.jail.clone(),
            None => self.sh.anon_jail.clone(),
        }
    }

    /// `arg` as a normalized virtual path and its checked real path.
    fn resolve(&self, arg: &[u8]) -> Result<(Vec<u8>, PathBuf), (u16, String)> {
        let v = jail::normalize(&self.cwd, arg).map_err(path_err)?;
        let real = self.jail().real(&v).map_err(path_err)?;
        Ok((v, real))
    }

    fn need_write(&self) -> Res {
        match &self.who {
            Some(w) if w.write => Ok(()),
            _ => err(550, "Permission denied."),
        }
    }

    // ---- login --------------------------------------------------------------

    fn is_anonymous_name(name: &[u8]) -> bool {
        name.eq_ignore_ascii_case(b"anonymous") || name.eq_ignore_ascii_case(b"ftp")
    }

    fn cmd_pass(&mut self, conn: &mut Conn<'_, '_>, arg: &[u8]) -> Res {
        let Login::Pass { name } = std::mem::replace(&mut self.login, Login::User) else {
            return match self.login {
                Login::In => err(230, "Already logged in."),
                _ => err(503, "Login with USER first."),
            };
        };
        let shown = show(&name);
        let cfg = &self.sh.cfg;
        let who = if Self::is_anonymous_name(&name) && cfg.anonymous {
            Some(Who {
                name: "anonymous".into(),
                jail: self.sh.anon_jail.clone(),
                write: cfg.anonymous_upload,
            })
        } else {
            match cfg.users.as_ref().and_then(|u| u.get(&name)) {
                Some(acc) if super::accounts::verify(&acc.hash, arg) => {
                    match Jail::new(&acc.root) {
                        Ok(j) => Some(Who {
                            name: acc.name.clone(),
                            jail: Rc::new(j),
                            write: acc.write,
                        }),
                        Err(e) => {
                            log::warn!("user {shown}: root {}: {e}", acc.root.display());
                            return err(550, "Home directory unavailable.");
                        }
                    }
                }
                _ => None,
            }
        };
        match who {
            Some(w) => {
                log::info!(target: ACCESS_TARGET, "{} login {}", self.peer_str(), w.name);
                self.who = Some(w);
                self.login = Login::In;
                self.cwd = b"/".to_vec();
                self.send(conn, 230, "Login successful.");
            }
            None => {
                self.attempts += 1;
                log::info!(
                    target: ACCESS_TARGET,
                    "{} failed login {shown} (attempt {})",
                    self.peer_str(),
                    self.attempts
                );
                self.close_after_delay = self.attempts >= cfg.max_login_attempts;
                self.delay = Some(conn.set_timer(cfg.login_delay));
                conn.pause_reading();
            }
        }
        Ok(())
    }

    fn after_delay(&mut self, conn: &mut Conn<'_, '_>) {
        self.delay = None;
        if self.close_after_delay {
            self.send(conn, 530, "Login incorrect.");
            self.send(conn, 421, "Too many failed logins; closing.");
            self.closing = true;
            conn.close();
            return;
        }
        self.send(conn, 530, "Login incorrect.");
        conn.resume_reading();
        self.run_pending(conn);
    }

    // ---- commands -----------------------------------------------------------

    fn run_pending(&mut self, conn: &mut Conn<'_, '_>) {
        while self.delay.is_none() && !self.closing {
            let Some(line) = self.pending.pop_front() else {
                break;
            };
            match line {
                Some(l) => self.line(conn, &l),
                None => self.send(conn, 500, "Command line too long."),
            }
        }
    }

    fn line(&mut self, conn: &mut Conn<'_, '_>, line: &[u8]) {
        self.last_active = Instant::now();
        let cmd = match parse_command(line) {
            Ok(c) => c,
            Err(CommandError::Empty) => return self.send(conn, 500, "Empty command."),
            Err(CommandError::BadVerb) => {
                return self.send(conn, 500, "Syntax error, command unrecognized.")
            }
        };
        if cmd.verb == Verb::Pass {
            log::debug!("{} > PASS ****", self.peer_str());
        } else {
            log::debug!(
                "{} > {} {}",
                self.peer_str(),
                show(&cmd.name),
                show(&cmd.arg)
            );
        }
        if let Err((code, text)) = self.dispatch(conn, &cmd) {
            self.send(conn, code, text);
        }
        // A restart point is used (or lost) by the next transfer command, whatever
        // came between (ftplib and curl send PASV/EPSV after REST).
        if matches!(
            cmd.verb,
            Verb::Retr
                | Verb::Stor
                | Verb::Appe
                | Verb::Stou
                | Verb::List
                | Verb::Nlst
                | Verb::Mlsd
        ) {
            self.rest = 0;
        }
    }

    fn dispatch(&mut self, conn: &mut Conn<'_, '_>, cmd: &Command) -> Res {
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
                let feats: [&[u8]; 10] = [
                    b"EPRT",
                    b"EPSV",
                    b"MDTM",
                    b"MLST type*;size*;modify*;perm*;unix.mode*;",
                    b"PASV",
                    b"REST STREAM",
                    b"SIZE",
                    b"TVFS",
                    b"UTF8",
                    b"LANG EN*",
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

    fn cmd_user(&mut self, conn: &mut Conn<'_, '_>, arg: &[u8]) -> Res {
        if matches!(self.login, Login::In) {
            return err(530, "Already logged in; cannot change user.");
        }
        if arg.is_empty() {
            return err(501, "USER needs a name.");
        }
        if Self::is_anonymous_name(arg) && self.sh.cfg.anonymous {
            self.send(
                conn,
                331,
                "Anonymous login ok, send your e-mail address as password.",
            );
        } else {
            self.send(conn, 331, "Please specify the password.");
        }
        self.login = Login::Pass { name: arg.to_vec() };
        Ok(())
    }

    fn cmd_opts(&mut self, conn: &mut Conn<'_, '_>, arg: &[u8]) -> Res {
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

    fn cmd_stat(&mut self, conn: &mut Conn<'_, '_>, arg: &[u8]) -> Res {
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

    fn cmd_cwd(&mut self, conn: &mut Conn<'_, '_>, arg: &[u8]) -> Res {
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
    fn listing(&self, verb: Verb, arg: &[u8]) -> Result<Vec<u8>, (u16, String)> {
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

    fn cmd_list(&mut self, conn: &mut Conn<'_, '_>, verb: Verb, arg: &[u8]) -> Res {
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

    fn cmd_mlst(&mut self, conn: &mut Conn<'_, '_>, arg: &[u8]) -> Res {
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

    fn cmd_retr(&mut self, conn: &mut Conn<'_, '_>, arg: &[u8]) -> Res {
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

    fn cmd_store(
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
        let (v, real) = self.resolve(arg)?;
        if v == b"/" {
            return err(550, "Not a file name.");
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

impl Protocol for Session {
    fn connection_made(&mut self, conn: &mut Conn<'_, '_>) {
        let cfg = &self.sh.cfg;
        let ip = self.peer_ip();
        if !self
            .sh
            .counts
            .admit(ip, cfg.max_connections, cfg.max_per_address)
        {
            log::warn!(
                target: ACCESS_TARGET,
                "{} refused: too many connections",
                self.peer_str()
            );
            self.send(conn, 421, "Too many connections; try again later.");
            self.closing = true;
            conn.close();
            return;
        }
        self.counted = true;
        // ABOR sent as urgent data (Python's ftplib) must arrive whole.
        if let Err(e) = conn.set_oob_inline(true) {
            log::debug!("{}: SO_OOBINLINE: {e}", self.peer_str());
        }
        log::info!(target: ACCESS_TARGET, "{} connected", self.peer_str());
        let greeting = self.sh.cfg.greeting.clone();
        self.send(conn, 220, greeting);
        self.last_active = Instant::now();
        self.arm_idle(conn);
    }

    fn data_received(&mut self, conn: &mut Conn<'_, '_>, data: &[u8]) {
        if self.closing {
            return;
        }
        let mut lines = Vec::new();
        self.lines.push(data, |l| {
            lines.push(match l {
                Line::Line(b) => Some(b.to_vec()),
                Line::TooLong => None,
            });
            true
        });
        self.pending.extend(lines);
        if self.pending.len() > MAX_PENDING_LINES && self.delay.is_some() {
            log::info!(
                "{}: too many commands during a login delay; closing",
                self.peer_str()
            );
            self.closing = true;
            conn.close();
            return;
        }
        self.run_pending(conn);
    }

    fn event(&mut self, conn: &mut Conn<'_, '_>, event: Box<dyn Any>) {
        if let Ok(ev) = event.downcast::<ToControl>() {
            self.on_data_event(conn, *ev);
        }
    }

    fn timer(&mut self, conn: &mut Conn<'_, '_>, id: TimerId) {
        if self.delay == Some(id) {
            self.after_delay(conn);
        } else if self.setup_timer == Some(id) {
            self.setup_timer = None;
            let waiting = self.xfer.as_ref().is_none_or(|x| x.job.is_some());
            if waiting && self.chan != Chan::None && !matches!(self.chan, Chan::Active(_)) {
                let had_xfer = self.xfer.is_some();
                log::info!("{}: data connection setup timed out", self.peer_str());
                self.drop_chan(conn);
                if had_xfer {
                    self.send(conn, 425, "Cannot open data connection (timed out).");
                }
            }
        } else if self.idle_timer == Some(id) {
            self.idle_timer = None;
            let idle = self.last_active.elapsed();
            let busy = self.xfer.as_ref().is_some_and(|x| x.job.is_none());
            if busy || idle < self.sh.cfg.idle_timeout {
                let rest = self.sh.cfg.idle_timeout.saturating_sub(if busy {
                    std::time::Duration::ZERO
                } else {
                    idle
                });
                self.idle_timer = Some(conn.set_timer(rest));
                return;
            }
            log::info!(target: ACCESS_TARGET, "{} {} idle timeout", self.peer_str(), self.user());
            self.send(conn, 421, "Timeout: closing control connection.");
            self.drop_chan(conn);
            self.closing = true;
            conn.close();
        }
    }

    fn shutdown(&mut self, conn: &mut Conn<'_, '_>) {
        self.send(conn, 421, "Server shutting down.");
        self.drop_chan(conn);
        self.closing = true;
        conn.close();
    }

    fn connection_lost(&mut self, conn: &mut Conn<'_, '_>, _reason: Option<&std::io::Error>) {
        self.drop_chan(conn);
        if let Some(t) = self.idle_timer.take() {
            conn.cancel_timer(t);
        }
        if let Some(t) = self.delay.take() {
            conn.cancel_timer(t);
        }
        if self.counted {
            self.counted = false;
            self.sh.counts.release(self.peer_ip());
            log::info!(target: ACCESS_TARGET, "{} {} disconnected", self.peer_str(), self.user());
        }
    }
}
