//! # readyloop
//!
//! An event-loop reactor written by hand on the operating system's readiness APIs
//! (`select`, `poll`, `epoll`), with protocol servers on top and a lab to compare the
//! backends. Linux only. See the README for a tour and `docs/ARCHITECTURE.md` for the
//! design of record.
//!
//! Layers, bottom up (imports point down only; `net` calls [`sys`] directly for
//! socket calls, besides the reactor):
//! * [`sys`]: the only module with `unsafe`: thin wrappers over libc.
//! * [`selector`]: the `Selector` backends and the Python-shaped [`selector::KeyedSelector`].
//! * [`reactor`]: the loop: dispatch, timers, waker, signals, shutdown.
//! * [`net`]: listeners, buffered stream connections, UDP, Unix sockets.
//! * [`proto`]: protocols (echo, HTTP, chat, FTP, TFTP, ...), no socket syscalls of
//!   their own.
//!
//! [`recipes`]: short compiled programs for shared state, a client with a connect
//! timeout, a relay with flow control, an idle timeout, lines, a custom graceful
//! shutdown, and selectors with tokens.

#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod net;
pub mod proto;
pub mod reactor;
#[doc = include_str!("../docs/recipes.md")]
pub mod recipes {}
pub mod selector;
pub mod slab;
#[allow(unsafe_code)]
pub mod sys;
