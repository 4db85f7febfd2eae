//! A minimal D-Bus client: one connection, synchronous method calls, the few
//! types systemd's manager API needs (`s o g b u v a(ss) a(sv)`).
//!
//! Contract: [`Connection::open`] connects to a D-Bus socket by path and
//! authenticates as the caller's uid (`EXTERNAL`); with `hello` it registers
//! on a message bus (the system bus), without it talks peer to peer (systemd's
//! `/run/systemd/private`). [`Connection::call`] sends one method call and
//! returns the body of its reply, or the peer's error name and message.
//!
//! Bounded: [`Connection::open`] and each [`Connection::call`] have one
//! deadline for the whole exchange (every read and write gets what is left
//! of it), so a peer that hangs, or keeps sending other messages, cannot
//! hold the hook past it. The reply is a METHOD_RETURN or ERROR carrying
//! our serial from the peer we called (on a bus: its unique name, as
//! `GetNameOwner` gives it, or the bus itself); any other message is
//! skipped. The socket is connected once; it keeps working after the process
//! changes its mount namespace.
//!
//! Wire format: D-Bus specification, "Message Protocol" (little-endian out;
//! either endianness in).
//!
//! Layout: wire.rs marshals and parses messages (no I/O); connection.rs is
//! the socket, authentication and the bounded exchange.

mod connection;
mod wire;

pub use connection::Connection;
pub use wire::{decode, encode_call, is_reply, Message, Method, Reader, Value, Writer};

use std::io;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DbusError {
    #[error("cannot connect to {path}: {source}")]
    Connect { path: String, source: io::Error },
    #[error("D-Bus authentication on {path} failed: {reply:?}")]
    Auth { path: String, reply: String },
    #[error("D-Bus I/O on {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("no D-Bus reply from {path} within {}s to {method}", timeout.as_secs_f64())]
    Timeout {
        path: String,
        method: String,
        timeout: Duration,
    },
    #[error("malformed D-Bus message from {path}: {what}")]
    Malformed { path: String, what: &'static str },
    #[error("{method}: {name}: {message}")]
    Remote {
        method: String,
        name: String,
        message: String,
    },
}
