//! One transfer on its own socket (its transfer ID): the read and write state machines.
//!
//! Blocks are counted internally with a `u64` sequence number; the wire carries its low
//! 16 bits, so block numbers wrap from 65535 to 0 and files of any size go through.
//!
//! **Read** (the server sends): with an OACK, it waits for ACK 0 first. It keeps the
//! blocks of the current window (at most `windowsize` of them) until they are
//! acknowledged. An ACK that moves the window on sends the next blocks; an ACK for a
//! block inside the window (the client saw a gap, RFC 7440) resends from there. An ACK
//! that moves nothing (a duplicate, or a stale one) is ignored: only the timer
//! retransmits, so duplicated ACKs never double the traffic (the Sorcerer's Apprentice
//! bug of RFC 1350's original rule).
//!
//! **Write** (the server receives): in-order DATA is written to a temporary file in
//! the target directory and acknowledged (every `windowsize` blocks, and the last).
//! A duplicate of the last block is acknowledged again (our ACK may have been lost);
//! an out-of-order block gets one ACK of the last in-order block per gap, and the
//! window count restarts there (the sender's next window starts after it). The short
//! final block completes the upload: the temporary file is linked to its name (never
//! replacing a file that appeared meanwhile: ERROR 6) and removed; the transfer then
//! lingers one timeout to acknowledge a repeated final block. An upload that ends any
//! other way removes its temporary file.
//!
//! Either side retransmits what it last sent when its timeout passes without progress,
//! up to the retry limit; then it sends ERROR 0 and ends. An ERROR from the peer ends
//! the transfer at once. Packets from any other address get ERROR 5 and change nothing.
//!
//! This file holds the state machines; `sides` the file ends (reading a source,
//! storing and committing a write).

use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::BufReader;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::netascii::{Decoder, Encoder};
use super::packet::{self, ErrorCode, Packet};
use crate::net::{DatagramProtocol, Datagrams};
use crate::reactor::TimerId;

mod sides;

use sides::complete;

/// What the server and its transfers share.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Peers with a transfer in progress (a repeated request from one is ignored).
    pub peers: HashSet<SocketAddr>,
    /// Transfers in progress.
    pub active: usize,
    /// Transfers completed.
    pub completed: u64,
    /// Transfers that ended with an error or a timeout.
    pub failed: u64,
}

/// Where a read transfer's bytes come from.
pub(crate) struct Source {
    /// Read ahead in large chunks: one `read` per 32 KiB, not one per block.
    file: BufReader<File>,
    /// For netascii: the encoder and a buffer of raw file bytes.
    ascii: Option<(Encoder, Vec<u8>, usize)>,
    eof: bool,
}

/// The sending side.
pub(crate) struct Reader {
    src: Source,
    /// Highest block acknowledged (0: none, or the OACK).
    acked: u64,
    /// Highest block sent.
    sent: u64,
    /// Packets of blocks `acked+1 ..= sent`.
    window: VecDeque<Vec<u8>>,
    /// Spare packet buffers.
    spare: Vec<Vec<u8>>,
    /// The final (short) block's number, once read.
    last: Option<u64>,
    /// Payload bytes read from the file so far.
    bytes: u64,
}

/// The receiving side.
pub(crate) struct Writer {
    file: Option<File>,
    tmp: PathBuf,
    dest: PathBuf,
    decoder: Option<Decoder>,
    /// Highest block received in order.
    received: u64,
    /// Blocks received since the last ACK we sent.
    since_ack: u16,
    /// An ACK for a gap was sent and nothing moved since.
    gap_acked: bool,
    written: u64,
    max_size: u64,
    /// The upload is complete and renamed (lingering for a repeated final block).
    done: bool,
    conv: Vec<u8>,
}

pub(crate) enum Side {
    Read(Reader),
    Write(Writer),
}

/// One transfer: the protocol of its own UDP socket.
pub(crate) struct Transfer {
    pub(crate) peer: SocketAddr,
    pub(crate) name: String,
    pub(crate) side: Side,
    pub(crate) blksize: usize,
    pub(crate) window: u16,
    pub(crate) timeout: Duration,
    pub(crate) max_retries: u32,
    /// The OACK to send first (and resend until answered), if options were accepted.
    pub(crate) oack: Option<Vec<u8>>,
    pub(crate) shared: Rc<RefCell<Shared>>,
    retries: u32,
    deadline: Instant,
    timer: Option<TimerId>,
    finished: bool,
    ok: bool,
    started_at: Instant,
}

/// Block number on the wire.
fn wire(seq: u64) -> u16 {
    seq as u16
}

impl Transfer {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        peer: SocketAddr,
        name: String,
        side: Side,
        params: super::options::Params,
        max_retries: u32,
        oack: Option<Vec<u8>>,
        shared: Rc<RefCell<Shared>>,
    ) -> Transfer {
        let now = Instant::now();
        Transfer {
            peer,
            name,
            side,
            blksize: params.blksize,
            window: params.window.max(1),
            timeout: params.timeout,
            max_retries,
            oack,
            shared,
            retries: 0,
            deadline: now,
            timer: None,
            finished: false,
            ok: false,
            started_at: now,
        }
    }

    /// Pushes the retransmission deadline one timeout ahead (the timer follows lazily).
    fn arm(&mut self, dg: &mut Datagrams<'_, '_>) {
        self.deadline = Instant::now() + self.timeout;
        if self.timer.is_none() {
            self.timer = Some(dg.set_timer(self.timeout));
        }
    }

    fn progress(&mut self, dg: &mut Datagrams<'_, '_>) {
        self.retries = 0;
        self.arm(dg);
    }

    fn send(&self, dg: &mut Datagrams<'_, '_>, p: &[u8]) {
        dg.send_to(p, self.peer);
    }

    /// Ends the transfer (the handler is removed after this callback).
    fn finish(&mut self, dg: &mut Datagrams<'_, '_>, ok: bool) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.ok = ok;
        if let Some(t) = self.timer.take() {
            dg.cancel_timer(t);
        }
        let id = dg.id();
        dg.reactor().remove(id);
    }

    fn fail(&mut self, dg: &mut Datagrams<'_, '_>, code: ErrorCode, msg: &str) {
        log::info!("tftp: {} {}: {msg}", self.peer, self.name);
        self.send(dg, &packet::error(code, msg));
        self.finish(dg, false);
    }

    // ---- read side ----

    /// Sends new blocks until the window is full or the file ends.
    fn fill_window(&mut self, dg: &mut Datagrams<'_, '_>) {
        let Side::Read(r) = &mut self.side else {
            return;
        };
        let mut failed = None;
        while r.last.is_none() && r.sent < r.acked + u64::from(self.window) {
            let seq = r.sent + 1;
            let mut p = r.spare.pop().unwrap_or_default();
            packet::data_header(&mut p, wire(seq));
            if let Err(e) = r.src.fill(&mut p, self.blksize) {
                failed = Some(e);
                break;
            }
            r.bytes += (p.len() - 4) as u64;
            if p.len() - 4 < self.blksize {
                r.last = Some(seq);
            }
            dg.send_to(&p, self.peer);
            r.window.push_back(p);
            r.sent = seq;
        }
        if let Some(e) = failed {
            log::warn!("tftp: reading {}: {e}", self.name);
            self.fail(dg, ErrorCode::Undefined, "read error");
        }
    }

    fn resend_window(&mut self, dg: &mut Datagrams<'_, '_>) {
        if let Some(o) = &self.oack {
            dg.send_to(o, self.peer);
            return;
        }
        if let Side::Read(r) = &self.side {
            for p in &r.window {
                dg.send_to(p, self.peer);
            }
        }
    }

    fn read_ack(&mut self, dg: &mut Datagrams<'_, '_>, block: u16) {
        if self.oack.is_some() {
            if block == 0 {
                self.oack = None;
                self.progress(dg);
                self.fill_window(dg);
            }
            return;
        }
        let Side::Read(r) = &mut self.side else {
            return;
        };
        // The sequence number in acked+1..=sent whose low bits are `block`.
        let ahead = u64::from(block.wrapping_sub(wire(r.acked)));
        if ahead == 0 || r.acked + ahead > r.sent {
            // A duplicate or stale ACK: never a reason to send (Sorcerer's Apprentice).
            return;
        }
        r.acked += ahead;
        for _ in 0..ahead {
            if let Some(p) = r.window.pop_front() {
                if r.spare.len() < usize::from(self.window) {
                    r.spare.push(p);
                }
            }
        }
        if r.last == Some(r.acked) {
            log::info!(
                "tftp: sent {} to {} ({} blocks, {} bytes, {:?})",
                self.name,
                self.peer,
                r.acked,
                r.bytes,
                self.started_at.elapsed()
            );
            self.finish(dg, true);
            return;
        }
        let gap = r.acked < r.sent;
        self.progress(dg);
        if gap {
            // The client lost a block inside the window: resend the rest of it.
            self.resend_window(dg);
        }
        self.fill_window(dg);
    }

    // ---- write side ----

    fn write_data(&mut self, dg: &mut Datagrams<'_, '_>, block: u16, data: &[u8]) {
        if self.oack.is_some() {
            // The first DATA answers the OACK.
            self.oack = None;
        }
        let blksize = self.blksize;
        let window = self.window;
        let peer = self.peer;
        let Side::Write(w) = &mut self.side else {
            return;
        };
        if w.done {
            if block == wire(w.received) {
                dg.send_to(&packet::ack(block), peer);
            }
            return;
        }
        if block != wire(w.received + 1) {
            if block == wire(w.received) && window == 1 {
                // Our ACK was lost; the sender repeated the block.
                dg.send_to(&packet::ack(block), peer);
            } else if !w.gap_acked {
                w.gap_acked = true;
                // The sender starts its next window after this ACK: count from here.
                w.since_ack = 0;
                dg.send_to(&packet::ack(wire(w.received)), peer);
            }
            return;
        }
        if let Err((code, msg)) = w.store(data, blksize) {
            self.fail(dg, code, msg);
            return;
        }
        w.written += data.len() as u64;
        w.received += 1;
        w.since_ack += 1;
        w.gap_acked = false;
        let last = data.len() < blksize;
        if last {
            match complete(w) {
                Ok(()) => {
                    w.done = true;
                    log::info!(
                        "tftp: received {} from {} ({} bytes, {:?})",
                        self.name,
                        self.peer,
                        w.written,
                        self.started_at.elapsed()
                    );
                }
                Err((code, msg)) => {
                    self.fail(dg, code, &msg);
                    return;
                }
            }
        }
        if last || w.since_ack >= window {
            w.since_ack = 0;
            dg.send_to(&packet::ack(block), peer);
        }
        self.progress(dg);
        if last {
            self.ok = true;
        }
    }
}

impl DatagramProtocol for Transfer {
    fn started(&mut self, dg: &mut Datagrams<'_, '_>) {
        {
            let mut s = self.shared.borrow_mut();
            s.active += 1;
            s.peers.insert(self.peer);
        }
        self.arm(dg);
        if let Some(o) = &self.oack {
            dg.send_to(o, self.peer);
            return;
        }
        match self.side {
            Side::Read(_) => self.fill_window(dg),
            Side::Write(_) => self.send(dg, &packet::ack(0)),
        }
    }

    fn datagram_received(&mut self, dg: &mut Datagrams<'_, '_>, data: &[u8], from: SocketAddr) {
        if self.finished {
            return;
        }
        if from != self.peer {
            log::debug!("tftp: {from} is not the peer of {}", self.name);
            if data.get(..2) != Some(&packet::ERROR.to_be_bytes()[..]) {
                dg.send_to(
                    &packet::error(ErrorCode::UnknownTid, "unknown transfer ID"),
                    from,
                );
            }
            return;
        }
        let p = match packet::parse(data) {
            Ok(p) => p,
            Err(e) => {
                log::debug!("tftp: {from}: dropped malformed packet: {e}");
                return;
            }
        };
        match (p, &self.side) {
            (Packet::Error { code, message }, _) => {
                log::info!(
                    "tftp: {} ended {} with ERROR {code}: {}",
                    self.peer,
                    self.name,
                    String::from_utf8_lossy(message)
                );
                self.finish(dg, false);
            }
            (Packet::Ack { block }, Side::Read(_)) => self.read_ack(dg, block),
            (Packet::Data { block, data }, Side::Write(_)) => self.write_data(dg, block, data),
            // A repeated request: the transfer's own retransmissions answer it.
            (Packet::Rrq(_), Side::Read(_)) | (Packet::Wrq(_), Side::Write(_)) => {}
            _ => self.fail(dg, ErrorCode::IllegalOperation, "unexpected packet"),
        }
    }

    fn timer(&mut self, dg: &mut Datagrams<'_, '_>, id: TimerId) {
        if self.timer != Some(id) {
            return;
        }
        self.timer = None;
        if self.finished {
            return;
        }
        let now = Instant::now();
        if now < self.deadline {
            self.timer = Some(dg.set_timer(self.deadline - now));
            return;
        }
        if let Side::Write(w) = &self.side {
            if w.done {
                // Lingered long enough for a repeated final block.
                self.finish(dg, true);
                return;
            }
        }
        if self.retries >= self.max_retries {
            self.fail(dg, ErrorCode::Undefined, "timed out");
            return;
        }
        self.retries += 1;
        log::debug!(
            "tftp: {} {}: timeout, retransmission {}",
            self.peer,
            self.name,
            self.retries
        );
        match &mut self.side {
            Side::Read(_) => self.resend_window(dg),
            Side::Write(w) => {
                // The OACK until the first block arrives, then an ACK of the last
                // block received in order (which also reports a lost window's gap;
                // the sender's next window starts after it).
                w.since_ack = 0;
                let p = match &self.oack {
                    Some(o) => o.clone(),
                    None => packet::ack(wire(w.received)).to_vec(),
                };
                self.send(dg, &p);
            }
        }
        self.arm(dg);
    }

    fn stopped(&mut self, dg: &mut Datagrams<'_, '_>) {
        if let Some(t) = self.timer.take() {
            dg.cancel_timer(t);
        }
        if let Side::Write(w) = &mut self.side {
            if !w.done {
                w.file = None;
                let _ = std::fs::remove_file(&w.tmp);
            }
        }
        let mut s = self.shared.borrow_mut();
        s.active = s.active.saturating_sub(1);
        s.peers.remove(&self.peer);
        if self.ok {
            s.completed += 1;
        } else {
            s.failed += 1;
        }
    }
}
