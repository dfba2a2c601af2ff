//! File calls for servers that serve files (the HTTP static-file service):
//! `sendfile(2)` from a file to a socket, and counted wrappers over the `std::fs`
//! calls a file server makes (open, stat, realpath, read, readdir), so protocols make
//! no syscalls of their own and the lab's syscall accounting sees every one.
//!
//! Files are opened read-only, close-on-exec, non-blocking (opening a FIFO must not
//! block the loop) and without becoming a controlling terminal.

use std::ffi::OsString;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::stats::{count, Syscall};

/// Largest count passed to one `sendfile` call (the kernel caps it near 2 GiB anyway).
const SENDFILE_MAX: usize = 1 << 30;

/// `sendfile(out, file, &offset, count)`: copies up to `count` bytes of `file` from
/// `offset` to the socket `out` without passing them through user space. Does not move
/// the file's own position, so one open file can serve many connections at once.
/// Returns the number of bytes sent; `Ok(0)` with `count > 0` means the file ended
/// before `offset` (it was truncated under us).
///
/// # Errors
///
/// `InvalidInput` for an offset past `off_t`; the kernel's error otherwise
/// (`WouldBlock` on a full socket, `EPIPE`/`ECONNRESET` when the peer is gone).
pub fn sendfile(
    out: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    offset: u64,
    count: usize,
) -> io::Result<usize> {
    let mut off = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "sendfile offset too large"))?;
    let len = count.min(SENDFILE_MAX);
    #[cfg(feature = "fault-injection")]
    let len = super::fault_len!(Write, len);
    super::stats::count(Syscall::Write);
    let n = nix::sys::sendfile::sendfile(out, file, Some(&mut off), len)
        .map_err(io::Error::from)
        .inspect_err(super::stats::note_error)?;
    Ok(n)
}

/// Opens `path` read-only (close-on-exec, non-blocking, no controlling terminal).
///
/// # Errors
///
/// As `std::fs::OpenOptions::open`: `NotFound`, `PermissionDenied`, `EMFILE`.
pub fn open_read(path: &Path) -> io::Result<File> {
    count(Syscall::Other);
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

/// `fstat` of an open file.
///
/// # Errors
///
/// As `std::fs::File::metadata`.
pub fn fstat(file: &File) -> io::Result<Metadata> {
    count(Syscall::Other);
    file.metadata()
}

/// `stat` of a path (follows symlinks).
///
/// # Errors
///
/// As `std::fs::metadata`: `NotFound`, `PermissionDenied`.
pub fn stat(path: &Path) -> io::Result<Metadata> {
    count(Syscall::Other);
    std::fs::metadata(path)
}

/// `realpath`: the absolute path with every symlink, `.` and `..` resolved.
///
/// # Errors
///
/// As `std::fs::canonicalize`: `NotFound` for a missing component, `ELOOP`.
pub fn canonicalize(path: &Path) -> io::Result<PathBuf> {
    count(Syscall::Other);
    std::fs::canonicalize(path)
}

/// Reads exactly `buf.len()` bytes at `offset` (`pread`), without moving the position.
///
/// # Errors
///
/// `UnexpectedEof` if the file ends first; the kernel's read error otherwise.
pub fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    count(Syscall::Read);
    file.read_exact_at(buf, offset)
}

/// One entry of a directory listing.
#[derive(Clone, Debug)]
pub struct DirEntry {
    /// The file name (no path).
    pub name: OsString,
    /// Whether it is a directory (symlinks followed).
    pub is_dir: bool,
    /// Whether the entry itself is a symbolic link (the other fields describe its
    /// target).
    pub is_symlink: bool,
    /// Size in bytes (0 for directories).
    pub len: u64,
    /// Last modification time, if known.
    pub modified: Option<std::time::SystemTime>,
}

/// The entries of directory `path` (not `.` and `..`), unsorted, at most `max` of them.
/// Entries that vanish or cannot be stat'ed while listing are skipped.
///
/// # Errors
///
/// Opening the directory failed (`NotFound`, `PermissionDenied`, `ENOTDIR`).
/// Entries that fail later are skipped, not reported.
pub fn read_dir(path: &Path, max: usize) -> io::Result<Vec<DirEntry>> {
    count(Syscall::Other);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path)? {
        if out.len() >= max {
            break;
        }
        let Ok(entry) = entry else { continue };
        count(Syscall::Other);
        // Follow symlinks, as a client following the link would.
        let Ok(meta) = std::fs::metadata(entry.path()) else {
            continue;
        };
        // The directory entry's own type (d_type: usually no syscall).
        let is_symlink = entry.file_type().is_ok_and(|t| t.is_symlink());
        out.push(DirEntry {
            name: entry.file_name(),
            is_symlink,
            is_dir: meta.is_dir(),
            len: if meta.is_dir() { 0 } else { meta.len() },
            modified: meta.modified().ok(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn sendfile_copies_a_region() {
        let dir = std::env::temp_dir().join(format!("readyloop-sendfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(b"0123456789")
            .unwrap();
        let f = open_read(&path).unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        assert_eq!(sendfile(a.as_fd(), f.as_fd(), 3, 4).unwrap(), 4);
        // Past the end: 0.
        assert_eq!(sendfile(a.as_fd(), f.as_fd(), 10, 4).unwrap(), 0);
        drop(a);
        let mut got = Vec::new();
        b.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"3456");
        let mut buf = [0u8; 3];
        read_exact_at(&f, &mut buf, 7).unwrap();
        assert_eq!(&buf, b"789");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
