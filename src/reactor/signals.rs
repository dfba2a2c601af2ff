//! SIGINT/SIGTERM: a graceful shutdown on the first signal, a stop on the second
//! ([`Reactor::handle_signals`]).

use std::any::Any;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use super::{Ctx, Handler, Reactor};
use crate::selector::{Interest, Readiness};

/// The handler for the signal pipe: a byte arrives per SIGINT/SIGTERM.
struct SignalHandler {
    rx: UnixStream,
    ids: Vec<signal_hook::SigId>,
}

impl Handler for SignalHandler {
    fn fd(&self) -> RawFd {
        self.rx.as_raw_fd()
    }

    fn ready(&mut self, ctx: &mut Ctx<'_>, _r: Readiness) {
        let mut buf = [0u8; 64];
        let mut got = false;
        loop {
            match crate::sys::read(std::os::fd::AsFd::as_fd(&self.rx), &mut buf) {
                Ok(0) => break,
                Ok(_) => got = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        if got {
            log::info!("received SIGINT/SIGTERM");
            ctx.shutdown();
        }
    }

    fn shutdown(&mut self, _ctx: &mut Ctx<'_>) {
        // Stay registered: a second signal during the graceful phase stops at once.
    }

    fn removed(&mut self, _ctx: &mut Ctx<'_>) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

impl Reactor {
    /// Installs SIGINT and SIGTERM handlers that start a graceful shutdown (a second
    /// signal stops at once). Process-wide: call it from a server's `main`, not a library.
    ///
    /// # Errors
    ///
    /// The pipe the signal handlers write to cannot be made (out of descriptors),
    /// `signal-hook` cannot install a handler, or the backend refuses the pipe's
    /// descriptor (as [`insert`](Self::insert)).
    pub fn handle_signals(&mut self) -> io::Result<()> {
        let (rx, tx) = UnixStream::pair()?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        let tx: OwnedFd = tx.into();
        let tx2 = tx.try_clone()?;
        let ids = vec![
            signal_hook::low_level::pipe::register(signal_hook::consts::SIGINT, tx)?,
            signal_hook::low_level::pipe::register(signal_hook::consts::SIGTERM, tx2)?,
        ];
        self.insert(
            Box::new(SignalHandler { rx, ids }),
            Some(Interest::READABLE),
        )?;
        Ok(())
    }
}
