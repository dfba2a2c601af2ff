//! RFC 862 echo, over TCP, Unix-domain streams and UDP.
//!
//! The stream echo writes back exactly what it reads, pipelined data included; when the
//! client shuts its write side, everything it sent is still echoed before the server
//! closes (the connection's graceful close). With `upper`, ASCII letters come back in
//! upper case (the classroom variant); other bytes pass through unchanged.

use std::net::SocketAddr;

use crate::net::{Conn, DatagramProtocol, Datagrams, PeerAddr, Protocol};

/// Echo options.
#[derive(Clone, Copy, Debug, Default)]
pub struct EchoOptions {
    /// Answer in upper case.
    pub upper: bool,
}

/// The stream echo protocol.
#[derive(Debug, Default)]
pub struct Echo {
    opts: EchoOptions,
    scratch: Vec<u8>,
}

impl Echo {
    /// A new echo protocol.
    pub fn new(opts: EchoOptions) -> Echo {
        Echo {
            opts,
            scratch: Vec::new(),
        }
    }

    /// A factory for listeners: `reactor.listen_tcp(addr, Echo::factory(opts))`.
    pub fn factory(opts: EchoOptions) -> impl FnMut(&PeerAddr) -> Option<Box<dyn Protocol>> {
        move |_| Some(Box::new(Echo::new(opts)) as Box<dyn Protocol>)
    }
}

/// Transforms `data` per the options: borrowed as-is, or upper-cased into `scratch`.
fn transform<'a>(opts: EchoOptions, data: &'a [u8], scratch: &'a mut Vec<u8>) -> &'a [u8] {
    if opts.upper {
        scratch.clear();
        scratch.extend(data.iter().map(u8::to_ascii_uppercase));
        scratch
    } else {
        data
    }
}

impl Protocol for Echo {
    fn data_received(&mut self, conn: &mut Conn<'_, '_>, data: &[u8]) {
        conn.write(transform(self.opts, data, &mut self.scratch));
    }

    fn connection_lost(&mut self, conn: &mut Conn<'_, '_>, reason: Option<&std::io::Error>) {
        match reason {
            Some(e) => log::debug!("echo: {} lost: {e}", conn.peer()),
            None => log::debug!("echo: {} closed", conn.peer()),
        }
    }
}

/// The datagram echo: every datagram goes back to its sender.
#[derive(Debug, Default)]
pub struct UdpEcho {
    opts: EchoOptions,
    scratch: Vec<u8>,
}

impl UdpEcho {
    /// A new UDP echo.
    pub fn new(opts: EchoOptions) -> UdpEcho {
        UdpEcho {
            opts,
            scratch: Vec::new(),
        }
    }
}

impl DatagramProtocol for UdpEcho {
    fn datagram_received(&mut self, dg: &mut Datagrams<'_, '_>, data: &[u8], from: SocketAddr) {
        dg.send_to(transform(self.opts, data, &mut self.scratch), from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_only_touches_ascii_letters() {
        let mut s = Vec::new();
        let opts = EchoOptions { upper: true };
        assert_eq!(transform(opts, b"abc \xff\n1z", &mut s), b"ABC \xff\n1Z");
        let plain = EchoOptions::default();
        assert_eq!(transform(plain, b"abc", &mut s), b"abc");
    }
}
