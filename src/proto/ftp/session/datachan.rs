//! The data channel: passive listeners, active connects, and the transfer that waits
//! for the connection (`Chan`, `Xfer`).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::net::{Conn, PeerAddr};
use crate::proto::ftp::data::{connect_active, Job, PassiveListener, ToControl, ToData};
use crate::reactor::HandlerId;

use super::{err, Chan, Res, Session, Xfer, XFER_TARGET};

impl Session {
    /// Tears down the data channel (listener, connect or connection) and forgets
    /// any transfer; later reports from it are ignored.
    pub(super) fn drop_chan(&mut self, conn: &mut Conn<'_, '_>) {
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

    pub(super) fn local_ip(&self, conn: &mut Conn<'_, '_>) -> Result<IpAddr, (u16, String)> {
        match conn.local_addr() {
            Ok(PeerAddr::Inet(a)) => Ok(a.ip()),
            _ => err(425, "Cannot determine the local address."),
        }
    }

    /// Opens a passive listener; returns its address.
    pub(super) fn open_passive(
        &mut self,
        conn: &mut Conn<'_, '_>,
    ) -> Result<SocketAddr, (u16, String)> {
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
    pub(super) fn begin(
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
                let id = connect_active(
                    conn.reactor(),
                    addr,
                    self.sh.cfg.data_setup_timeout,
                    me,
                    self.seq,
                    &self.sh.data_stream,
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
    pub(super) fn start_xfer(&mut self, conn: &mut Conn<'_, '_>, id: HandlerId) {
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

    pub(super) fn on_data_event(&mut self, conn: &mut Conn<'_, '_>, ev: ToControl) {
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
}
