//! The data channel: passive listeners opened per transfer, active connections,
//! and the data connection's protocol, all handlers on the control connection's
//! reactor.
//!
//! * [`PassiveListener`]: a listening socket for one `PASV`/`EPSV`. The first
//!   connection from the control peer's address becomes the data connection and the
//!   listener removes itself; connections from any other address are closed and
//!   logged (port theft, RFC 2577).
//! * [`connect_active`]: the connect for `PORT`/`EPRT`, on the net layer's
//!   non-blocking `connect_tcp` (completion on writability, bounded by a timeout).
//! * [`DataConn`]: the data connection's [`Protocol`]: sends bytes (listings), a file
//!   region with `sendfile(2)`, or a file converted to ASCII line ends; or receives
//!   into an [`Upload`]. It reports to the control connection with
//!   [`ToControl`] events and never calls it back synchronously.
//!
//! Every stage has a bound: the control connection times out the setup (listener or
//! connect) and this connection aborts a transfer that makes no progress for
//! `stall_timeout` (a client that connects and never reads).

use std::any::Any;
use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use super::store::{error_code, Upload};
use crate::net::{Conn, Listen, PeerAddr, Protocol, Stream, StreamConfig};
use crate::reactor::{Ctx, Handler, HandlerId, TimerId};
use crate::selector::{Interest, Readiness};
use crate::sys::socket;

/// What a data connection is asked to do.
pub(crate) enum Job {
    /// Send these bytes (a listing).
    Bytes(Vec<u8>),
    /// Send a file region with `sendfile(2)` (binary `RETR`).
    File {
        file: Rc<File>,
        offset: u64,
        len: u64,
    },
    /// Send a file from `offset` with LF turned into CRLF (ASCII `RETR`).
    Ascii { file: File, offset: u64 },
    /// Receive into an upload (CRLF turned into LF in ASCII mode).
    Recv { upload: Upload, ascii: bool },
}

/// Control connection -> data connection.
pub(crate) enum ToData {
    Start(Job),
    Abort,
}

/// How a transfer ended.
pub(crate) type Outcome = Result<Option<PathBuf>, (u16, String)>;

/// Data channel -> control connection.
pub(crate) enum ToControl {
    /// The data connection `id` is up.
    Connected { seq: u64, id: HandlerId },
    /// An active connect failed.
    ConnectFailed { seq: u64, error: String },
    /// The transfer ended (`bytes` moved over the data connection).
    Finished {
        seq: u64,
        bytes: u64,
        outcome: Outcome,
    },
}

/// Whether two addresses are the same host (an IPv4-mapped IPv6 address equals its
/// IPv4 form).
pub(crate) fn same_host(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

/// A passive listener for one transfer.
pub(crate) struct PassiveListener {
    sock: TcpListener,
    control: HandlerId,
    seq: u64,
    peer: IpAddr,
    stream_cfg: Rc<StreamConfig>,
    stall_timeout: Duration,
}

impl PassiveListener {
    /// Binds a listener on `ip`, on a free port of `ports` (or any port).
    pub(crate) fn bind(
        ip: IpAddr,
        ports: Option<(u16, u16)>,
        start: u16,
    ) -> io::Result<TcpListener> {
        let Some((lo, hi)) = ports else {
            return TcpListener::bind(SocketAddr::new(ip, 0));
        };
        let n = u32::from(hi - lo) + 1;
        let first = u32::from(start.clamp(lo, hi) - lo);
        let mut last = io::Error::new(io::ErrorKind::AddrInUse, "no free passive port");
        for i in 0..n {
            let port = lo + ((first + i) % n) as u16;
            match TcpListener::bind(SocketAddr::new(ip, port)) {
                Ok(l) => return Ok(l),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Registers a listener (bound with [`bind`](Self::bind)) for the control
    /// connection `control`; returns its handler id.
    pub(crate) fn register(
        ctx: &mut Ctx<'_>,
        sock: TcpListener,
        control: HandlerId,
        seq: u64,
        peer: IpAddr,
        stream_cfg: Rc<StreamConfig>,
        stall_timeout: Duration,
    ) -> io::Result<HandlerId> {
        sock.set_nonblocking(true)?;
        let l = PassiveListener {
            sock,
            control,
            seq,
            peer,
            stream_cfg,
            stall_timeout,
        };
        ctx.insert(Box::new(l), Some(Interest::READABLE))
    }
}

/// Wraps an accepted data socket in a [`DataConn`] and registers it (its
/// `connection_made` tells the control connection).
fn start_data(
    ctx: &mut Ctx<'_>,
    fd: OwnedFd,
    peer: SocketAddr,
    control: HandlerId,
    seq: u64,
    cfg: Rc<StreamConfig>,
    stall_timeout: Duration,
) {
    let dc = DataConn::new(control, seq, stall_timeout);
    match Stream::new(fd, PeerAddr::Inet(peer), Box::new(dc), cfg) {
        Ok(stream) => {
            if let Err(e) = stream.register(ctx) {
                log::warn!("data connection from {peer}: cannot register: {e}");
            }
        }
        Err(e) => log::warn!("data connection from {peer}: {e}"),
    }
}

impl Handler for PassiveListener {
    fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    fn ready(&mut self, ctx: &mut Ctx<'_>, _r: Readiness) {
        // Bounded: a flood of foreign connections cannot keep us here.
        for _ in 0..64 {
            match socket::accept(self.sock.as_fd()) {
                Ok((fd, PeerAddr::Inet(a))) if same_host(a.ip(), self.peer) => {
                    let me = ctx.id();
                    start_data(
                        ctx,
                        fd,
                        a,
                        self.control,
                        self.seq,
                        self.stream_cfg.clone(),
                        self.stall_timeout,
                    );
                    ctx.remove(me);
                    return;
                }
                Ok((_, peer)) => {
                    log::warn!(
                        "refused data connection from {peer}: not the control connection's address {}",
                        self.peer
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("passive accept: {e}");
                    return;
                }
            }
        }
        if ctx.is_edge() {
            ctx.requeue(ctx.id(), Readiness::READABLE);
        }
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Starts the active-mode connect to `addr` (the net layer's non-blocking
/// `connect_tcp`, bounded by `timeout`); the data connection reports `Connected` or
/// `ConnectFailed` to `control`.
pub(crate) fn connect_active(
    ctx: &mut Ctx<'_>,
    addr: SocketAddr,
    timeout: Duration,
    control: HandlerId,
    seq: u64,
    stream_cfg: &StreamConfig,
    stall_timeout: Duration,
) -> io::Result<HandlerId> {
    let dc = DataConn::new(control, seq, stall_timeout);
    ctx.connect_tcp_with(addr, timeout, dc, stream_cfg.clone())
}

/// What the data connection is doing.
enum State {
    /// Connected, waiting for a job (reading paused).
    Idle,
    /// Bytes or a file region queued; done when drained.
    Sending,
    /// ASCII conversion of a file, one chunk per drain.
    Ascii {
        file: File,
        offset: u64,
        last_cr: bool,
        eof: bool,
        error: Option<io::Error>,
    },
    /// Receiving an upload.
    Recv {
        upload: Upload,
        ascii: bool,
        pending_cr: bool,
    },
    /// Finished (or aborted).
    Done,
}

/// Size of one ASCII chunk.
const ASCII_CHUNK: usize = 64 * 1024;

/// The data connection's protocol (see the module docs).
pub(crate) struct DataConn {
    control: HandlerId,
    seq: u64,
    state: State,
    /// Bytes handed to the kernel when the job started.
    sent_base: u64,
    received: u64,
    stall_timeout: Duration,
    timer: Option<TimerId>,
    last_progress: u64,
    finished: bool,
}

impl DataConn {
    fn new(control: HandlerId, seq: u64, stall_timeout: Duration) -> DataConn {
        DataConn {
            control,
            seq,
            state: State::Idle,
            sent_base: 0,
            received: 0,
            stall_timeout,
            timer: None,
            last_progress: 0,
            finished: false,
        }
    }

    fn bytes(&self, conn: &Conn<'_, '_>) -> u64 {
        conn.bytes_sent().saturating_sub(self.sent_base) + self.received
    }

    /// Ends the transfer: closes the connection (gracefully on success) and tells
    /// the control connection. Never called while the control connection is the
    /// caller (it is always the data connection's own callback).
    fn finish(&mut self, conn: &mut Conn<'_, '_>, outcome: Outcome) {
        if self.finished {
            return;
        }
        self.finished = true;
        let bytes = self.bytes(conn);
        self.state = State::Done;
        if outcome.is_ok() {
            conn.close();
        } else {
            conn.abort();
        }
        if let Some(t) = self.timer.take() {
            conn.cancel_timer(t);
        }
        let ev = ToControl::Finished {
            seq: self.seq,
            bytes,
            outcome,
        };
        conn.notify(self.control, Box::new(ev));
    }

    /// Queues the next ASCII chunk (or asks to hear when all is sent).
    fn fill_ascii(&mut self, conn: &mut Conn<'_, '_>) {
        let State::Ascii {
            file,
            offset,
            last_cr,
            eof,
            error,
        } = &mut self.state
        else {
            return;
        };
        if !*eof {
            let mut buf = vec![0u8; ASCII_CHUNK];
            match file.read_at(&mut buf, *offset) {
                Ok(0) => *eof = true,
                Ok(n) => {
                    *offset += n as u64;
                    let mut out = Vec::with_capacity(n + n / 16);
                    for &b in &buf[..n] {
                        if b == b'\n' && !*last_cr {
                            out.push(b'\r');
                        }
                        out.push(b);
                        *last_cr = b == b'\r';
                    }
                    conn.write(&out);
                }
                Err(e) => {
                    *eof = true;
                    *error = Some(e);
                }
            }
        }
        conn.notify_drained();
    }

    fn start(&mut self, conn: &mut Conn<'_, '_>, job: Job) {
        self.sent_base = conn.bytes_sent();
        self.last_progress = 0;
        match job {
            Job::Bytes(b) => {
                conn.write(&b);
                conn.notify_drained();
                self.state = State::Sending;
            }
            Job::File { file, offset, len } => {
                if len > 0 {
                    conn.send_file(file, offset, len);
                }
                conn.notify_drained();
                self.state = State::Sending;
            }
            Job::Ascii { file, offset } => {
                self.state = State::Ascii {
                    file,
                    offset,
                    last_cr: false,
                    eof: false,
                    error: None,
                };
                self.fill_ascii(conn);
            }
            Job::Recv { upload, ascii } => {
                self.state = State::Recv {
                    upload,
                    ascii,
                    pending_cr: false,
                };
                conn.resume_reading();
            }
        }
        self.arm(conn);
    }

    fn arm(&mut self, conn: &mut Conn<'_, '_>) {
        if self.timer.is_none() {
            self.timer = Some(conn.set_timer(self.stall_timeout));
        }
    }
}

impl Protocol for DataConn {
    fn connection_made(&mut self, conn: &mut Conn<'_, '_>) {
        // Nothing is read before an upload starts (the control connection's
        // setup timer bounds how long we wait for the job).
        conn.pause_reading();
        let ev = ToControl::Connected {
            seq: self.seq,
            id: conn.id(),
        };
        if !conn.notify(self.control, Box::new(ev)) {
            // The control connection is gone.
            self.finished = true;
            conn.abort();
        }
    }

    fn connection_failed(&mut self, conn: &mut Conn<'_, '_>, reason: &io::Error) {
        self.finished = true;
        let ev = ToControl::ConnectFailed {
            seq: self.seq,
            error: reason.to_string(),
        };
        conn.notify(self.control, Box::new(ev));
    }

    fn data_received(&mut self, conn: &mut Conn<'_, '_>, data: &[u8]) {
        self.received += data.len() as u64;
        let State::Recv {
            upload,
            ascii,
            pending_cr,
        } = &mut self.state
        else {
            return;
        };
        let res = if *ascii {
            let mut out = Vec::with_capacity(data.len() + 1);
            for &b in data {
                if *pending_cr && b != b'\n' {
                    out.push(b'\r');
                }
                *pending_cr = b == b'\r';
                if b != b'\r' {
                    out.push(b);
                }
            }
            upload.write(&out)
        } else {
            upload.write(data)
        };
        if let Err(e) = res {
            let code = error_code(&e);
            let code = if code == 550 || code == 452 {
                code
            } else {
                451
            };
            self.finish(conn, Err((code, format!("write failed: {e}"))));
        }
    }

    fn eof_received(&mut self, conn: &mut Conn<'_, '_>) -> bool {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Recv {
                mut upload,
                pending_cr,
                ..
            } => {
                let res = if pending_cr {
                    upload.write(b"\r")
                } else {
                    Ok(())
                };
                let outcome = match res.and_then(|()| upload.commit()) {
                    Ok(p) => Ok(Some(p)),
                    Err(e) => Err((error_code(&e).max(451), format!("cannot store: {e}"))),
                };
                self.finish(conn, outcome);
                false
            }
            other => {
                // The client half-closed while we send (or before a job): go on.
                self.state = other;
                true
            }
        }
    }

    fn output_drained(&mut self, conn: &mut Conn<'_, '_>) {
        match &mut self.state {
            State::Sending => self.finish(conn, Ok(None)),
            State::Ascii { eof: false, .. } => self.fill_ascii(conn),
            State::Ascii {
                eof: true, error, ..
            } => {
                let outcome = match error.take() {
                    Some(e) => Err((451, format!("read failed: {e}"))),
                    None => Ok(None),
                };
                self.finish(conn, outcome);
            }
            _ => {}
        }
    }

    fn event(&mut self, conn: &mut Conn<'_, '_>, event: Box<dyn Any>) {
        let Ok(ev) = event.downcast::<ToData>() else {
            return;
        };
        match *ev {
            ToData::Start(job) => {
                if matches!(self.state, State::Idle) && !self.finished {
                    self.start(conn, job);
                }
            }
            ToData::Abort => {
                // The control connection already answered: no report back.
                self.finished = true;
                self.state = State::Done; // drops an upload: its temp file goes
                conn.abort();
            }
        }
    }

    fn timer(&mut self, conn: &mut Conn<'_, '_>, id: TimerId) {
        if self.timer != Some(id) {
            return;
        }
        self.timer = None;
        let progress = self.bytes(conn);
        if progress == self.last_progress && !matches!(self.state, State::Idle | State::Done) {
            log::info!(
                "{}: data connection made no progress in {:?}; aborting",
                conn.peer(),
                self.stall_timeout
            );
            self.finish(
                conn,
                Err((426, "Data connection timed out; transfer aborted".into())),
            );
            return;
        }
        self.last_progress = progress;
        self.arm(conn);
    }

    fn connection_lost(&mut self, conn: &mut Conn<'_, '_>, reason: Option<&io::Error>) {
        if self.finished {
            return;
        }
        let idle = matches!(self.state, State::Idle);
        let msg = match reason {
            Some(e) => format!("Connection closed; transfer aborted ({e})"),
            None => "Connection closed; transfer aborted".into(),
        };
        self.state = State::Done;
        if idle {
            // Lost before any job: the control connection learns it when it starts one.
            self.finished = true;
        }
        if !idle {
            self.finished = true;
            let ev = ToControl::Finished {
                seq: self.seq,
                bytes: self.bytes(conn),
                outcome: Err((426, msg)),
            };
            conn.notify(self.control, Box::new(ev));
        }
    }
}
