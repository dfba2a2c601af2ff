//! The two sides of a transfer: the file [`Source`] a read sends from (netascii
//! encoded if asked), and the [`Writer`] a write stores into (a temporary file linked
//! under its name at the end).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::PathBuf;

use crate::proto::tftp::netascii::{Decoder, Encoder};
use crate::proto::tftp::packet::ErrorCode;

use super::{Reader, Source, Writer};

impl Source {
    pub(crate) fn new(file: File, netascii: bool) -> Source {
        Source {
            file: BufReader::with_capacity(32 * 1024, file),
            ascii: netascii.then(|| (Encoder::new(), Vec::new(), 0)),
            eof: false,
        }
    }

    /// Appends up to `n` payload bytes to `out`; fewer only at the end of the file.
    pub(super) fn fill(&mut self, out: &mut Vec<u8>, n: usize) -> io::Result<()> {
        let limit = out.len() + n;
        match &mut self.ascii {
            None => {
                let start = out.len();
                out.resize(limit, 0);
                let mut got = start;
                while got < limit {
                    match self.file.read(&mut out[got..]) {
                        Ok(0) => break,
                        Ok(k) => got += k,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                out.truncate(got);
            }
            Some((enc, raw, pos)) => loop {
                if out.len() >= limit {
                    break;
                }
                if *pos == raw.len() {
                    if self.eof {
                        if enc.has_pending() {
                            enc.encode(&[], out, limit);
                            continue;
                        }
                        break;
                    }
                    raw.resize(16 * 1024, 0);
                    *pos = 0;
                    let k = loop {
                        match self.file.read(raw) {
                            Ok(k) => break k,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(e),
                        }
                    };
                    raw.truncate(k);
                    self.eof = k == 0;
                    continue;
                }
                *pos += enc.encode(&raw[*pos..], out, limit);
            },
        }
        Ok(())
    }
}

impl Reader {
    pub(crate) fn new(src: Source) -> Reader {
        Reader {
            src,
            acked: 0,
            sent: 0,
            window: VecDeque::new(),
            spare: Vec::new(),
            last: None,
            bytes: 0,
        }
    }
}

impl Writer {
    pub(crate) fn new(
        file: File,
        tmp: PathBuf,
        dest: PathBuf,
        netascii: bool,
        max_size: u64,
    ) -> Writer {
        Writer {
            file: Some(file),
            tmp,
            dest,
            decoder: netascii.then(Decoder::new),
            received: 0,
            since_ack: 0,
            gap_acked: false,
            written: 0,
            max_size,
            done: false,
            conv: Vec::new(),
        }
    }

    /// Stores one in-order block (netascii decoded if asked): a block over
    /// `blksize`, past the size limit or failing to write is the error to send.
    pub(super) fn store(
        &mut self,
        data: &[u8],
        blksize: usize,
    ) -> Result<(), (ErrorCode, &'static str)> {
        if data.len() > blksize {
            return Err((ErrorCode::IllegalOperation, "block larger than blksize"));
        }
        if self.written + data.len() as u64 > self.max_size {
            return Err((ErrorCode::DiskFull, "file too large"));
        }
        let bytes: &[u8] = match &mut self.decoder {
            Some(d) => {
                self.conv.clear();
                d.decode(data, &mut self.conv);
                if data.len() < blksize {
                    d.finish(&mut self.conv);
                }
                &self.conv
            }
            None => data,
        };
        let res = match &mut self.file {
            Some(f) => f.write_all(bytes),
            None => Ok(()),
        };
        if let Err(e) = res {
            let (code, msg) = if e.raw_os_error() == Some(libc::ENOSPC)
                || e.raw_os_error() == Some(libc::EDQUOT)
                || e.raw_os_error() == Some(libc::EFBIG)
            {
                (ErrorCode::DiskFull, "disk full")
            } else {
                (ErrorCode::Undefined, "write error")
            };
            log::warn!("tftp: writing {}: {e}", self.tmp.display());
            return Err((code, msg));
        }
        Ok(())
    }
}

/// Closes the temporary file and links it under its real name (refusing to replace).
pub(super) fn complete(w: &mut Writer) -> Result<(), (ErrorCode, String)> {
    if let Some(f) = w.file.take() {
        if let Err(e) = f.sync_all() {
            log::warn!("tftp: sync {}: {e}", w.tmp.display());
            return Err((ErrorCode::DiskFull, "cannot store the file".into()));
        }
    }
    let res = std::fs::hard_link(&w.tmp, &w.dest);
    let _ = std::fs::remove_file(&w.tmp);
    match res {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            Err((ErrorCode::FileExists, "file already exists".into()))
        }
        Err(e) => {
            log::warn!("tftp: link {}: {e}", w.dest.display());
            Err((ErrorCode::AccessViolation, "cannot store the file".into()))
        }
    }
}
