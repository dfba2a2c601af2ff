//! `poll(2)`.

use std::io;
use std::time::Duration;

use super::syscall;

pub use libc::pollfd as PollFd;
pub use libc::{POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, POLLPRI, POLLRDHUP};

/// Calls `poll(2)` on `fds`. Returns how many entries have non-zero `revents`.
///
/// # Errors
///
/// The kernel's error: `EINTR`, `ENOMEM`, `EINVAL` (more descriptors than
/// `RLIMIT_NOFILE`).
pub fn poll(fds: &mut [PollFd], timeout: Option<Duration>) -> io::Result<usize> {
    #[cfg(feature = "fault-injection")]
    let spurious = super::fault_wait!();
    // SAFETY: `fds` is a valid, writable slice of pollfd structs of the given length.
    let n = syscall!(
        Wait,
        poll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            super::timeout_ms(timeout)
        )
    )?;
    #[cfg(feature = "fault-injection")]
    if spurious {
        let watched: Vec<usize> = (0..fds.len())
            .filter(|&i| fds[i].fd >= 0 && fds[i].events & (POLLIN | POLLOUT) != 0)
            .collect();
        if !watched.is_empty() {
            let p = &mut fds[watched[super::fault::pick(watched.len())]];
            if p.revents == 0 {
                p.revents = p.events & (POLLIN | POLLOUT);
                return Ok(n as usize + 1);
            }
        }
    }
    Ok(n as usize)
}
