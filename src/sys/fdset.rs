//! `select(2)` and its `fd_set`.
//!
//! An `fd_set` is a fixed bitmap of `FD_SETSIZE` (1024 on Linux) bits. `FD_SET` on a
//! descriptor at or above that size writes past the end of the struct, so [`FdSet`]
//! refuses such descriptors instead of corrupting memory.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::syscall;

/// `FD_SETSIZE`: descriptors must be below this to be used with `select`.
pub const FD_SETSIZE: usize = libc::FD_SETSIZE;

/// A bounds-checked `fd_set`.
#[derive(Clone, Copy)]
pub struct FdSet(libc::fd_set);

impl Default for FdSet {
    fn default() -> Self {
        Self::new()
    }
}

impl FdSet {
    /// An empty set.
    pub fn new() -> FdSet {
        let mut raw = std::mem::MaybeUninit::<libc::fd_set>::zeroed();
        // SAFETY: an all-zero fd_set is a valid (empty) set; FD_ZERO keeps it so and
        // is called only to follow the API's documented protocol.
        unsafe {
            libc::FD_ZERO(raw.as_mut_ptr());
            FdSet(raw.assume_init())
        }
    }

    fn check(fd: RawFd) -> io::Result<()> {
        if fd < 0 || fd as usize >= FD_SETSIZE {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("fd {fd} is outside select()'s range 0..{FD_SETSIZE} (FD_SETSIZE)"),
            ))
        } else {
            Ok(())
        }
    }

    /// Adds `fd`; refuses descriptors outside `0..FD_SETSIZE`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a descriptor outside `0..FD_SETSIZE`.
    pub fn insert(&mut self, fd: RawFd) -> io::Result<()> {
        Self::check(fd)?;
        // SAFETY: `fd` is in 0..FD_SETSIZE, so FD_SET writes inside the bitmap.
        unsafe { libc::FD_SET(fd, &mut self.0) };
        Ok(())
    }

    /// Removes `fd` (no-op for descriptors outside the range).
    pub fn remove(&mut self, fd: RawFd) {
        if Self::check(fd).is_ok() {
            // SAFETY: `fd` is in 0..FD_SETSIZE, so FD_CLR writes inside the bitmap.
            unsafe { libc::FD_CLR(fd, &mut self.0) };
        }
    }

    /// Whether `fd` is in the set (false for descriptors outside the range).
    pub fn contains(&self, fd: RawFd) -> bool {
        // SAFETY: `fd` is in 0..FD_SETSIZE, so FD_ISSET reads inside the bitmap.
        Self::check(fd).is_ok() && unsafe { libc::FD_ISSET(fd, &self.0) }
    }
}

/// Calls `select(2)` on descriptors `0..nfds`. Returns how many bits are set.
/// `EINTR` is returned as an error for the caller to treat as "no events".
///
/// # Errors
///
/// The kernel's error: `EINTR`, `EBADF` (a descriptor in a set is closed),
/// `ENOMEM`.
pub fn select(
    nfds: usize,
    read: &mut FdSet,
    write: &mut FdSet,
    timeout: Option<Duration>,
) -> io::Result<usize> {
    #[cfg(feature = "fault-injection")]
    let spurious = super::fault_wait!();
    #[cfg(feature = "fault-injection")]
    let (read_in, write_in) = (*read, *write);
    let ms = super::timeout_ms(timeout);
    let mut tv = libc::timeval {
        tv_sec: (ms / 1000) as libc::time_t,
        tv_usec: ((ms % 1000) * 1000) as libc::suseconds_t,
    };
    let tvp = if ms < 0 {
        std::ptr::null_mut()
    } else {
        &mut tv as *mut libc::timeval
    };
    let nfds = nfds.min(FD_SETSIZE) as libc::c_int;
    // SAFETY: both sets are valid fd_set structs, only descriptors below FD_SETSIZE
    // were inserted and nfds is clamped to FD_SETSIZE; tvp is null or points at `tv`.
    let n = syscall!(
        Wait,
        select(nfds, &mut read.0, &mut write.0, std::ptr::null_mut(), tvp)
    )?;
    #[cfg(feature = "fault-injection")]
    if spurious {
        let watched: Vec<RawFd> = (0..nfds)
            .filter(|&fd| read_in.contains(fd) || write_in.contains(fd))
            .collect();
        if !watched.is_empty() {
            let fd = watched[super::fault::pick(watched.len())];
            if !read.contains(fd) && !write.contains(fd) {
                if read_in.contains(fd) {
                    let _ = read.insert(fd);
                } else {
                    let _ = write.insert(fd);
                }
                return Ok(n as usize + 1);
            }
        }
    }
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_out_of_range() {
        let mut s = FdSet::new();
        assert!(s.insert(FD_SETSIZE as RawFd).is_err());
        assert!(s.insert(-1).is_err());
        assert!(!s.contains(FD_SETSIZE as RawFd));
        s.insert(3).unwrap();
        assert!(s.contains(3));
        s.remove(3);
        assert!(!s.contains(3));
    }
}
