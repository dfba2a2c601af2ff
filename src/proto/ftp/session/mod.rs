//! The control connection: login, the command state machine, and the data channel
//! bookkeeping (which handler is the data channel, which transfer waits for it).
//!
//! Data channel states (`Chan`): none; a passive listener waiting; an active
//! connect in progress; a data connection up. A transfer command (`Xfer`) waits for
//! the connection if it is not up yet; `150` goes out when the transfer starts,
//! `226` (or an error) when the data connection reports the end. Every data channel
//! gets a sequence number, so a late report from an old one is ignored.
//!
//! # Where things are
//! This file holds the session state, the line reader and the [`Protocol`] glue;
//! `dispatch` maps a parsed command to its `cmd_*` method (one a command); `login`
//! (`USER`, `PASS`, the failed-login delay), `navigation` (paths, `CWD`, listings,
//! `STAT`), `files` (`MKD`, `DELE`, renames, ...), `transfer` (`RETR`, `STOR`, `ABOR`,
//! `TYPE`, ...) and `datachan` (`PASV`, `PORT`, passive and active data connections)
//! hold them.

use std::any::Any;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::command::{parse_command, CommandError, Verb};
use super::data::{Job, ToControl};
use super::jail::{Jail, PathError};
use super::reply::reply;
use super::store::{error_code, show};
use super::{Account, Shared};
use crate::net::{Conn, PeerAddr, Protocol};
use crate::proto::framing::{Line, LineBuffer};
use crate::reactor::{HandlerId, TimerId};

mod datachan;
mod dispatch;
mod files;
mod login;
mod navigation;
mod transfer;

/// The log target for logins and changes.
pub const ACCESS_TARGET: &str = "readyloop::ftp::access";
/// The log target for transfers.
pub const XFER_TARGET: &str = "readyloop::ftp::xfer";

/// Most command lines kept while a failed login's delay runs (reading is paused, so
/// no more than one read's worth arrives anyway).
const MAX_PENDING_LINES: usize = 256;

/// Most password checks running at once (each on its own thread); beyond, a check
/// runs on the loop thread.
const MAX_VERIFY_THREADS: usize = 4;
/// How often a session looks for its password check's answer.
const VERIFY_POLL: Duration = Duration::from_millis(2);

struct Verifying {
    rx: mpsc::Receiver<bool>,
    acc: Account,
    timer: TimerId,
    started: Instant,
}

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
    /// A password check running on its own thread: reading paused, lines queued.
    verifying: Option<Verifying>,
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
            verifying: None,
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

    fn peer_str(&self) -> String {
        self.peer
            .map_or_else(|| "unix".to_string(), |p| p.to_string())
    }

    // ---- paths --------------------------------------------------------------

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
        if self.pending.len() > MAX_PENDING_LINES && self.blocked() {
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
        } else if self.verifying.as_ref().is_some_and(|v| v.timer == id) {
            self.poll_verify(conn);
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
        if let Some(v) = self.verifying.take() {
            conn.cancel_timer(v.timer);
            self.sh
                .verifying
                .set(self.sh.verifying.get().saturating_sub(1));
        }
        if self.counted {
            self.counted = false;
            self.sh.counts.release(self.peer_ip());
            log::info!(target: ACCESS_TARGET, "{} {} disconnected", self.peer_str(), self.user());
        }
    }
}
