//! Logging in: `USER`, `PASS` (checked on a helper thread), and the delay after a
//! failed login (commands that arrive meanwhile wait, then run in order).

use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::net::Conn;
use crate::proto::ftp::jail::Jail;
use crate::proto::ftp::store::show;
use crate::proto::ftp::Account;

use super::{
    err, Login, Res, Session, Verifying, Who, ACCESS_TARGET, MAX_VERIFY_THREADS, VERIFY_POLL,
};

impl Session {
    pub(super) fn is_anonymous_name(name: &[u8]) -> bool {
        name.eq_ignore_ascii_case(b"anonymous") || name.eq_ignore_ascii_case(b"ftp")
    }

    pub(super) fn cmd_pass(&mut self, conn: &mut Conn<'_, '_>, arg: &[u8]) -> Res {
        let Login::Pass { name } = std::mem::replace(&mut self.login, Login::User) else {
            return match self.login {
                Login::In => err(230, "Already logged in."),
                _ => err(503, "Login with USER first."),
            };
        };
        let cfg = &self.sh.cfg;
        if Self::is_anonymous_name(&name) && cfg.anonymous {
            let w = Who {
                name: "anonymous".into(),
                jail: self.sh.anon_jail.clone(),
                write: cfg.anonymous_upload,
            };
            self.logged_in(conn, w);
            return Ok(());
        }
        let Some(acc) = cfg.users.as_ref().and_then(|u| u.get(&name)).cloned() else {
            self.login_failed(conn, &name, Duration::ZERO);
            return Ok(());
        };
        // Argon2 costs tens of milliseconds at the default parameters: verify on a
        // thread of its own so the loop keeps serving everyone else; reading pauses
        // and a short timer polls for the answer.
        if self.sh.verifying.get() < MAX_VERIFY_THREADS {
            let (tx, rx) = mpsc::channel();
            let hash = acc.hash.clone();
            let pw = arg.to_vec();
            let spawned = std::thread::Builder::new()
                .name("ftp-argon2".into())
                .spawn(move || {
                    let _ = tx.send(crate::proto::ftp::accounts::verify(&hash, &pw));
                });
            if spawned.is_ok() {
                self.sh.verifying.set(self.sh.verifying.get() + 1);
                conn.pause_reading();
                self.verifying = Some(Verifying {
                    rx,
                    acc,
                    timer: conn.set_timer(VERIFY_POLL),
                    started: Instant::now(),
                });
                return Ok(());
            }
        }
        // Too many verifications at once (or no thread): verify here.
        let ok = crate::proto::ftp::accounts::verify(&acc.hash, arg);
        self.verified(conn, acc, ok, Instant::now());
        Ok(())
    }

    /// A password check finished.
    pub(super) fn verified(
        &mut self,
        conn: &mut Conn<'_, '_>,
        acc: Account,
        ok: bool,
        started: Instant,
    ) {
        if !ok {
            self.login_failed(conn, acc.name.as_bytes(), started.elapsed());
            return;
        }
        match Jail::new(&acc.root) {
            Ok(j) => {
                let w = Who {
                    name: acc.name.clone(),
                    jail: Rc::new(j),
                    write: acc.write,
                };
                self.logged_in(conn, w);
            }
            Err(e) => {
                log::warn!("user {}: root {}: {e}", acc.name, acc.root.display());
                self.send(conn, 550, "Home directory unavailable.");
            }
        }
    }

    pub(super) fn logged_in(&mut self, conn: &mut Conn<'_, '_>, w: Who) {
        log::info!(target: ACCESS_TARGET, "{} login {}", self.peer_str(), w.name);
        self.who = Some(w);
        self.login = Login::In;
        self.cwd = b"/".to_vec();
        self.send(conn, 230, "Login successful.");
    }

    /// Answers 530 after the login delay (less the time the check took already).
    pub(super) fn login_failed(&mut self, conn: &mut Conn<'_, '_>, name: &[u8], spent: Duration) {
        self.attempts += 1;
        log::info!(
            target: ACCESS_TARGET,
            "{} failed login {} (attempt {})",
            self.peer_str(),
            show(name),
            self.attempts
        );
        let cfg = &self.sh.cfg;
        self.close_after_delay = self.attempts >= cfg.max_login_attempts;
        self.delay = Some(conn.set_timer(cfg.login_delay.saturating_sub(spent)));
        conn.pause_reading();
    }

    /// The verification thread's answer, if it is there.
    pub(super) fn poll_verify(&mut self, conn: &mut Conn<'_, '_>) {
        let Some(v) = self.verifying.take() else {
            return;
        };
        let ok = match v.rx.try_recv() {
            Ok(ok) => ok,
            Err(mpsc::TryRecvError::Empty) => {
                self.verifying = Some(Verifying {
                    timer: conn.set_timer(VERIFY_POLL),
                    ..v
                });
                return;
            }
            Err(mpsc::TryRecvError::Disconnected) => false,
        };
        self.sh
            .verifying
            .set(self.sh.verifying.get().saturating_sub(1));
        self.verified(conn, v.acc, ok, v.started);
        if self.delay.is_none() && !self.closing {
            conn.resume_reading();
            self.run_pending(conn);
        }
    }

    pub(super) fn blocked(&self) -> bool {
        self.delay.is_some() || self.verifying.is_some()
    }

    pub(super) fn after_delay(&mut self, conn: &mut Conn<'_, '_>) {
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

    pub(super) fn run_pending(&mut self, conn: &mut Conn<'_, '_>) {
        while !self.blocked() && !self.closing {
            let Some(line) = self.pending.pop_front() else {
                break;
            };
            match line {
                Some(l) => self.line(conn, &l),
                None => self.send(conn, 500, "Command line too long."),
            }
        }
    }

    pub(super) fn cmd_user(&mut self, conn: &mut Conn<'_, '_>, arg: &[u8]) -> Res {
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
}
