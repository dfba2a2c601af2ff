//! `poll(2)`.

use std::io;
use std::time::Duration;

use super::syscall;

pub use libc::pollfd as PollFd;
pub use libc::{POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, POLLPRI, POLLRDHUP};

/// Calls `poll(2)` on `fds`. Returns how many entries have non-zero `revents`.
pub fn poll(fds: &mut [PollFd], timeout: Option<Duration>) -> io::Result<usize> {
    // SAFETY: `fds` is a valid, writable slice of pollfd structs of the given length.
    let n = syscall!(
        Wait,
        poll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            super::timeout_ms(timeout)
        )
    )?;
    Ok(n as usize)
}
