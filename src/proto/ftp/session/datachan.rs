//! The data channel: `PASV`, `EPSV`, `PORT`/`EPRT`, passive listeners, active
//! connects, and the transfer that waits for the connection (`Chan`, `Xfer`).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::net::{Conn, PeerAddr};
use crate::proto::ftp::data::{connect_active, Job, PassiveListener, ToControl, ToData};
use crate::reactor::HandlerId;

use crate::proto::ftp::command::{self, Command, EpsvArg, Verb};
use crate::proto::ftp::data::same_host;
use crate::proto::ftp::store::show;

use super::{err, Chan, Res, Session, Xfer, ACCESS_TARGET, XFER_TARGET};

impl Session {
    /// Tears down the data channel (listener, connect or connection) and forgets
    /// any transfer; later reports from it are ignored.
    pub(super) fn drop_chan(&mut self, conn: &mut Conn<'_, '_>) {
        match std::mem::replace(&mut self.chan, Chan::None) {
            Chan::Passive(id) | Chan::Connecting(id) => conn.remove_handler(id),
            Chan::Connected(id) => {
                if !conn.notify(id, Box::new(ToData::Abort)) {
                    conn.remove_handler(id);
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
            conn.ctx(),
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
        let xfer = Xfer {
            verb,
            path,
            started: Instant::now(),
            job: Some(job),
            opening,
        };
        match self.chan {
            Chan::None => return err(425, "Use PORT, EPRT, PASV or EPSV first."),
            Chan::Passive(_) | Chan::Connecting(_) => self.xfer = Some(xfer),
            Chan::Active(addr) => {
                let me = conn.id();
                let id = connect_active(
                    conn.ctx(),
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
                self.xfer = Some(xfer);
            }
            Chan::Connected(id) => {
                self.xfer = Some(xfer);
                self.start_xfer(conn, id);
            }
        }
        Ok(())
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
                    conn.remove_handler(id);
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

    pub(super) fn cmd_pasv(&mut self, conn: &mut Conn<'_, '_>) -> Res {
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

    pub(super) fn cmd_epsv(&mut self, conn: &mut Conn<'_, '_>, arg: &[u8]) -> Res {
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

    /// `PORT` and `EPRT`: the data connection goes to the client's own address.
    pub(super) fn cmd_port(&mut self, conn: &mut Conn<'_, '_>, cmd: &Command) -> Res {
        let arg = cmd.arg.as_slice();
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
}
