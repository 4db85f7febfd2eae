//! [`Connection`]: one connected, authenticated D-Bus socket and its
//! synchronous method calls.
//!
//! Contract: as the module's ([`super`]): authentication as the caller's
//! uid (`EXTERNAL`), one deadline for the whole of opening and for each
//! call, the reply taken only from the peer called, any other message
//! skipped.

use super::wire::{decode, encode_call, is_reply, Message, Method, Reader, Value, ERROR};
use super::DbusError;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// The bus's own name: the sender of its replies (Hello, GetNameOwner).
const BUS_NAME: &str = "org.freedesktop.DBus";

/// A connected, authenticated D-Bus socket.
pub struct Connection {
    stream: BufReader<UnixStream>,
    path: String,
    serial: u32,
    pending: Vec<u8>,
    /// The deadline of each call (and of opening).
    timeout: Duration,
    /// Is the peer a message bus (replies carry a SENDER)?
    bus: bool,
    /// Well-known name → the unique name that owns it (on a bus).
    owners: Vec<(String, String)>,
}

/// The time left until `deadline`, or the timeout error.
fn left(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

impl Connection {
    /// Connects to the socket at `path`; `hello` registers on a bus.
    pub fn open(path: &Path, hello: bool, timeout: Duration) -> Result<Connection, DbusError> {
        let name = path.display().to_string();
        let stream = UnixStream::connect(path).map_err(|source| DbusError::Connect {
            path: name.clone(),
            source,
        })?;
        let io_err = |source| DbusError::Io {
            path: name.clone(),
            source,
        };
        let deadline = Instant::now() + timeout;
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .map_err(io_err)?;
        let mut conn = Connection {
            stream: BufReader::new(stream),
            path: name.clone(),
            serial: 0,
            pending: Vec::new(),
            timeout,
            bus: false,
            owners: Vec::new(),
        };
        let uid: String = nix::unistd::geteuid()
            .as_raw()
            .to_string()
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect();
        // As sd-bus's own clients do: AUTH and BEGIN in one write, then wait
        // for OK before the first message (systemd's private socket stalled
        // on a method call that arrived right behind a separate BEGIN).
        let w = conn.stream.get_mut();
        w.write_all(format!("\0AUTH EXTERNAL {uid}\r\nBEGIN\r\n").as_bytes())
            .map_err(io_err)?;
        // The reply line, byte by byte under the deadline (at most 512
        // bytes: a peer that trickles bytes or never ends the line is cut).
        let mut line = Vec::new();
        while !line.ends_with(b"\n") && line.len() < 512 {
            let Some(rest) = left(deadline) else {
                return Err(DbusError::Timeout {
                    path: name,
                    method: "AUTH EXTERNAL".into(),
                    timeout,
                });
            };
            conn.stream
                .get_ref()
                .set_read_timeout(Some(rest))
                .map_err(io_err)?;
            let mut byte = [0u8];
            match conn.stream.read(&mut byte) {
                Ok(0) => break,
                Ok(_) => line.push(byte[0]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err(e)),
            }
        }
        let line = String::from_utf8_lossy(&line).into_owned();
        log::debug!("D-Bus {name}: {}", line.trim_end());
        if !line.starts_with("OK ") {
            return Err(DbusError::Auth {
                path: name,
                reply: line.trim_end().to_string(),
            });
        }
        if hello {
            conn.bus = true;
            conn.call(
                &Method {
                    destination: Some(BUS_NAME),
                    path: "/org/freedesktop/DBus",
                    interface: BUS_NAME,
                    member: "Hello",
                },
                &[],
            )?;
        }
        Ok(conn)
    }

    /// Who must send the reply to a call to `destination`: on a bus, the
    /// unique name owning it (asked once); peer to peer, anyone (`None`).
    fn replier(&mut self, destination: Option<&str>) -> Result<Option<String>, DbusError> {
        let Some(d) = destination.filter(|_| self.bus) else {
            return Ok(None);
        };
        if d == BUS_NAME || d.starts_with(':') {
            return Ok(Some(d.to_string()));
        }
        if let Some((_, owner)) = self.owners.iter().find(|(n, _)| n == d) {
            return Ok(Some(owner.clone()));
        }
        let m = Method {
            destination: Some(BUS_NAME),
            path: "/org/freedesktop/DBus",
            interface: BUS_NAME,
            member: "GetNameOwner",
        };
        let reply = self.exchange(&m, &[Value::Str(d.to_string())], Some(BUS_NAME))?;
        let owner = Reader::new(&reply.body, reply.le)
            .str()
            .map_err(|what| self.malformed(what))?;
        self.owners.push((d.to_string(), owner.clone()));
        Ok(Some(owner))
    }

    fn io(&self, source: io::Error) -> DbusError {
        DbusError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Calls a method and returns its reply (a `Reader` over the body is
    /// `Reader::new(&reply.body, reply.le)`).
    pub fn call(&mut self, m: &Method, args: &[Value]) -> Result<Message, DbusError> {
        let replier = self.replier(m.destination)?;
        self.exchange(m, args, replier.as_deref())
    }

    /// One call under one deadline; the reply must come from `replier`
    /// (when set).
    fn exchange(
        &mut self,
        m: &Method,
        args: &[Value],
        replier: Option<&str>,
    ) -> Result<Message, DbusError> {
        let method = format!("{}.{}", m.interface, m.member);
        let deadline = Instant::now() + self.timeout;
        self.serial += 1;
        let serial = self.serial;
        log::debug!(
            "D-Bus call {serial}: {}.{} on {}",
            m.interface,
            m.member,
            m.path
        );
        let bytes = encode_call(serial, m, args);
        // The write counts against the call's one deadline too.
        let rest = left(deadline).unwrap_or(Duration::from_millis(1));
        self.stream
            .get_ref()
            .set_write_timeout(Some(rest))
            .map_err(|e| self.io(e))?;
        self.stream
            .get_mut()
            .write_all(&bytes)
            .map_err(|e| self.io(e))?;
        loop {
            let msg = self.next_message(deadline, &method)?;
            if !is_reply(&msg, serial, replier) {
                log::debug!(
                    "D-Bus: skipping a message of type {} (reply to {:?}, from {:?})",
                    msg.kind,
                    msg.reply_serial,
                    msg.sender
                );
                continue; // a signal, a call, another reply: not ours
            }
            if msg.kind == ERROR {
                let message = Reader::new(&msg.body, msg.le).str().unwrap_or_default();
                return Err(DbusError::Remote {
                    method,
                    name: msg.error_name.unwrap_or_default(),
                    message,
                });
            }
            return Ok(msg);
        }
    }

    /// The next message, read before `deadline` (then [`DbusError::Timeout`]).
    fn next_message(&mut self, deadline: Instant, method: &str) -> Result<Message, DbusError> {
        loop {
            match decode(&self.pending) {
                Ok(Some((msg, len))) => {
                    self.pending.drain(..len);
                    return Ok(msg);
                }
                Ok(None) => {}
                Err(what) => {
                    return Err(DbusError::Malformed {
                        path: self.path.clone(),
                        what,
                    })
                }
            }
            let timeout = || DbusError::Timeout {
                path: self.path.clone(),
                method: method.to_string(),
                timeout: self.timeout,
            };
            let rest = left(deadline).ok_or_else(timeout)?;
            self.stream
                .get_ref()
                .set_read_timeout(Some(rest))
                .map_err(|e| self.io(e))?;
            let mut chunk = [0u8; 4096];
            let n = match self.stream.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(timeout())
                }
                Err(e) => return Err(self.io(e)),
            };
            if n == 0 {
                return Err(self.io(io::ErrorKind::UnexpectedEof.into()));
            }
            self.pending.extend_from_slice(&chunk[..n]);
        }
    }

    pub fn malformed(&self, what: &'static str) -> DbusError {
        DbusError::Malformed {
            path: self.path.clone(),
            what,
        }
    }
}
