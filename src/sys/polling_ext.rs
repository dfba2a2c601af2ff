//! The one `unsafe` call the `polling` adapter needs: `Poller::add`, which is unsafe
//! because the poller must not outlive the source's registration.

use std::io;
use std::os::fd::RawFd;

/// Adds `fd` to `poller` in `mode`.
///
/// The selector layer guarantees the contract `polling` asks for: a descriptor is
/// deregistered (`Poller::delete`) before it is closed ("deregister before close").
pub fn add(
    poller: &polling::Poller,
    fd: RawFd,
    ev: polling::Event,
    mode: polling::PollMode,
) -> io::Result<()> {
    super::stats::count(super::stats::Syscall::Ctl);
    // SAFETY: the registry removes this descriptor from the poller before the owner
    // closes it, which is what `Poller::add` requires.
    unsafe { poller.add_with_mode(fd, ev, mode) }
}
