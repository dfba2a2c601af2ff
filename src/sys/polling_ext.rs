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
    // SAFETY: `Poller::add` asks that the source be deleted before it is dropped,
    // which nothing here can enforce (the `Selector` trait is public and safe, and
    // `KeyedSelector::unregister` tolerates already-closed descriptors). It is sound
    // only because this crate is Linux-only: the poller is epoll, and the kernel
    // drops a closed file from the epoll set by itself; no memory is at stake.
    unsafe { poller.add_with_mode(fd, ev, mode) }
}
