//! Protocols on the reactor. Each is a handler over bytes with no syscalls of its own,
//! plus pure parsers and framers that can be tested without sockets.

pub mod chat;
pub mod discovery;
pub mod echo;
pub mod framing;
pub mod ftp;
pub mod http;
pub mod jail;
pub mod kv;
pub mod relay;
pub mod tftp;
