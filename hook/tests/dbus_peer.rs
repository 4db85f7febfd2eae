//! The D-Bus client against a peer that does not play by the rules (issue
//! 19): a peer on a real Unix socket that never replies but keeps sending
//! signals, one that sends a signal carrying the pending call's reply serial,
//! and, on a bus, a reply with our serial from a peer we did not call. Then
//! the decoder's properties, as for the other parsers (tests/harness/
//! fuzzkit.rs): 100 000 generated and mutated messages, no panic, what
//! decodes is within the input, a call round-trips.

#![deny(unsafe_code)]

use amd_container_hook::systemd::dbus::{self, Connection, Method, Reader, Value};
use amd_ctk_e2e::fuzzkit::{self, Gen};
use proptest::prelude::*;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const SIGNAL: u8 = 4;
const METHOD_RETURN: u8 = 2;

/// A header field's value.
enum F<'a> {
    S(&'a str),
    U(u32),
    G(&'a str),
}

fn pad(b: &mut Vec<u8>, a: usize) {
    while b.len() % a != 0 {
        b.push(0);
    }
}

/// A little-endian message of type `kind` with header `fields` (code,
/// value) and a body of one string when `body` is set.
fn message(kind: u8, serial: u32, fields: &[(u8, F)], body: Option<&str>) -> Vec<u8> {
    let mut b = vec![b'l', kind, 0, 1];
    let mut payload = Vec::new();
    if let Some(s) = body {
        payload.extend_from_slice(&(s.len() as u32).to_le_bytes());
        payload.extend_from_slice(s.as_bytes());
        payload.push(0);
    }
    b.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    b.extend_from_slice(&serial.to_le_bytes());
    b.extend_from_slice(&[0; 4]); // fields length, set below
    let mut all: Vec<(u8, F)> = fields
        .iter()
        .map(|(c, f)| {
            (
                *c,
                match f {
                    F::S(s) => F::S(s),
                    F::U(u) => F::U(*u),
                    F::G(g) => F::G(g),
                },
            )
        })
        .collect();
    if body.is_some() {
        all.push((8, F::G("s")));
    }
    for (code, f) in &all {
        pad(&mut b, 8);
        b.push(*code);
        let t = match f {
            F::S(_) => b's',
            F::U(_) => b'u',
            F::G(_) => b'g',
        };
        b.extend_from_slice(&[1, t, 0]);
        match f {
            F::S(s) => {
                pad(&mut b, 4);
                b.extend_from_slice(&(s.len() as u32).to_le_bytes());
                b.extend_from_slice(s.as_bytes());
                b.push(0);
            }
            F::U(u) => {
                pad(&mut b, 4);
                b.extend_from_slice(&u.to_le_bytes());
            }
            F::G(g) => {
                b.push(g.len() as u8);
                b.extend_from_slice(g.as_bytes());
                b.push(0);
            }
        }
    }
    let fields_len = (b.len() - 16) as u32;
    b[12..16].copy_from_slice(&fields_len.to_le_bytes());
    pad(&mut b, 8);
    b.extend_from_slice(&payload);
    b
}

/// A reply to `serial` of type `kind`, from `sender` when set.
fn reply(kind: u8, serial: u32, sender: Option<&str>, body: &str) -> Vec<u8> {
    let mut fields = vec![(5, F::U(serial))];
    if let Some(s) = sender {
        fields.push((7, F::S(s)));
    }
    message(kind, 1000 + serial, &fields, Some(body))
}

fn signal_with(reply_serial: Option<u32>) -> Vec<u8> {
    let mut fields = vec![
        (1, F::S("/org/freedesktop/systemd1")),
        (2, F::S("org.freedesktop.systemd1.Manager")),
        (3, F::S("UnitNew")),
    ];
    if let Some(r) = reply_serial {
        fields.push((5, F::U(r)));
    }
    message(SIGNAL, 77, &fields, Some("x.scope"))
}

/// A peer on a fresh socket: authenticates the client, then hands each
/// method call (its serial and bytes) to `on_call`, which writes what it
/// likes. Returns the socket path.
fn peer(
    name: &str,
    on_call: impl Fn(&mut UnixStream, u32, &[u8]) + Send + 'static,
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new().prefix(name).tempdir().unwrap();
    let path = dir.path().join("bus");
    let listener = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        // AUTH ... BEGIN\r\n
        while !buf.windows(7).any(|w| w == b"BEGIN\r\n") {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let at = buf.windows(7).position(|w| w == b"BEGIN\r\n").unwrap() + 7;
        buf.drain(..at);
        if s.write_all(b"OK 0123456789abcdef\r\n").is_err() {
            return;
        }
        loop {
            while let Ok(Some((_, len))) = dbus::decode(&buf) {
                let frame: Vec<u8> = buf.drain(..len).collect();
                let serial = u32::from_le_bytes(frame[8..12].try_into().unwrap());
                on_call(&mut s, serial, &frame);
            }
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    });
    (dir, path)
}

fn get_unit() -> Method<'static> {
    Method {
        destination: Some("org.freedesktop.systemd1"),
        path: "/org/freedesktop/systemd1",
        interface: "org.freedesktop.systemd1.Manager",
        member: "GetUnit",
    }
}

fn contains(frame: &[u8], what: &str) -> bool {
    frame.windows(what.len()).any(|w| w == what.as_bytes())
}

/// A peer that never answers but sends an unrelated signal every 100 ms (for
/// 20 s at most): the call fails once its one deadline (1 s) has passed,
/// however often the peer speaks.
#[test]
fn a_chatty_peer_cannot_hold_a_call_past_its_deadline() {
    let (_dir, path) = peer("dbus-chatty", |s, _, _| {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if s.write_all(&signal_with(None)).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let mut conn = Connection::open(&path, false, Duration::from_secs(1)).unwrap();
    let start = Instant::now();
    let err = conn
        .call(&get_unit(), &[Value::Str("x.scope".into())])
        .unwrap_err();
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "held for {took:?} by a peer sending signals: {err}"
    );
    assert!(err.to_string().contains("no D-Bus reply"), "{err}");
    // Control: the same peer answering is answered.
    let (_dir, path) = peer("dbus-answers", |s, serial, _| {
        let _ = s.write_all(&reply(METHOD_RETURN, serial, None, "/unit/x"));
    });
    let mut conn = Connection::open(&path, false, Duration::from_secs(1)).unwrap();
    let r = conn
        .call(&get_unit(), &[Value::Str("x.scope".into())])
        .unwrap();
    assert_eq!(Reader::new(&r.body, r.le).str().unwrap(), "/unit/x");
}

/// A signal carrying the pending call's serial as its REPLY_SERIAL is not
/// the reply: the real reply behind it is.
#[test]
fn a_signal_with_our_serial_is_not_the_reply() {
    let (_dir, path) = peer("dbus-signal", |s, serial, _| {
        let _ = s.write_all(&signal_with(Some(serial)));
        let _ = s.write_all(&reply(METHOD_RETURN, serial, None, "/unit/real"));
    });
    let mut conn = Connection::open(&path, false, Duration::from_secs(5)).unwrap();
    let r = conn
        .call(&get_unit(), &[Value::Str("x.scope".into())])
        .unwrap();
    assert_eq!(Reader::new(&r.body, r.le).str().unwrap(), "/unit/real");
}

/// On a bus, a METHOD_RETURN with our serial from another peer than the one
/// we called is skipped; the reply of the name's owner is taken.
#[test]
fn on_a_bus_the_reply_comes_from_the_peer_we_called() {
    let (_dir, path) = peer("dbus-bus", |s, serial, frame| {
        let bus = Some("org.freedesktop.DBus");
        let out = if contains(frame, "Hello") {
            reply(METHOD_RETURN, serial, bus, ":1.50")
        } else if contains(frame, "GetNameOwner") {
            reply(METHOD_RETURN, serial, bus, ":1.1")
        } else {
            let mut both = reply(METHOD_RETURN, serial, Some(":1.66"), "/from/impostor");
            both.extend(reply(METHOD_RETURN, serial, Some(":1.1"), "/from/systemd"));
            both
        };
        let _ = s.write_all(&out);
    });
    let mut conn = Connection::open(&path, true, Duration::from_secs(5)).unwrap();
    let r = conn
        .call(&get_unit(), &[Value::Str("x.scope".into())])
        .unwrap();
    assert_eq!(Reader::new(&r.body, r.le).str().unwrap(), "/from/systemd");
}

// ---------------------------------------------------------------------------
// The decoder's properties.

const NAMES: &[&str] = &[
    "org.freedesktop.systemd1",
    "org.freedesktop.DBus",
    ":1.1",
    "/org/freedesktop/systemd1",
    "GetUnit",
    "",
    "x",
    "\u{0}",
];

/// A message of any type with plausible header fields and a string body,
/// or a method call as the client encodes it.
fn any_message(g: &mut Gen) -> Vec<u8> {
    if g.one_in(3) {
        let m = Method {
            destination: Some(NAMES[g.below(NAMES.len())]),
            path: NAMES[g.below(NAMES.len())],
            interface: NAMES[g.below(NAMES.len())],
            member: NAMES[g.below(NAMES.len())],
        };
        let args = [
            Value::Str(g.string(NAMES)),
            Value::Bool(g.one_in(2)),
            Value::U32(g.next_u64() as u32),
            Value::PairArray(vec![(g.string(NAMES), g.string(NAMES))]),
        ];
        let n = g.below(args.len() + 1);
        return dbus::encode_call(g.next_u64() as u32, &m, &args[..n]);
    }
    let mut fields = Vec::new();
    let names: Vec<String> = (0..4).map(|_| g.string(NAMES)).collect();
    for name in &names {
        let code = (g.below(10)) as u8;
        fields.push(match g.below(3) {
            0 => (code, F::S(name)),
            1 => (code, F::U(g.next_u64() as u32)),
            _ => (code, F::G("s")),
        });
    }
    let body = g.string(NAMES);
    message(
        g.below(6) as u8,
        g.next_u64() as u32,
        &fields,
        (!g.one_in(4)).then_some(body.as_str()),
    )
}

proptest! {
    #![proptest_config(fuzzkit::config())]

    #[test]
    fn decoder_never_panics_and_stays_within_its_input(seed in any::<u64>()) {
        let mut g = Gen::new(seed);
        let mut bytes = match g.below(8) {
            0 => g.bytes(96),
            1..=3 => any_message(&mut g),
            _ => {
                let mut b = any_message(&mut g);
                g.mutate(&mut b);
                b
            }
        };
        if g.one_in(4) {
            bytes.extend(any_message(&mut g));
        }
        if let Ok(Some((msg, len))) = dbus::decode(&bytes) {
            prop_assert!(len <= bytes.len() && msg.body.len() <= len);
            let _ = dbus::is_reply(&msg, g.next_u64() as u32, Some(":1.1"));
            let mut r = Reader::new(&msg.body, msg.le);
            let _ = r.str();
            let _ = r.u32();
            let _ = r.pair_array();
            // Every prefix of a whole message is "need more", never another.
            let cut = g.below(len);
            prop_assert!(matches!(dbus::decode(&bytes[..cut]), Ok(None) | Err(_)));
        }
    }

    #[test]
    fn a_call_round_trips(seed in any::<u64>()) {
        let mut g = Gen::new(seed);
        let text = g.string(NAMES);
        let m = Method {
            destination: Some("org.freedesktop.systemd1"),
            path: "/org/freedesktop/systemd1",
            interface: "org.freedesktop.systemd1.Manager",
            member: "GetUnit",
        };
        let bytes = dbus::encode_call(7, &m, &[Value::Str(text.clone())]);
        let (msg, len) = dbus::decode(&bytes).unwrap().unwrap();
        prop_assert_eq!(len, bytes.len());
        prop_assert_eq!(Reader::new(&msg.body, msg.le).str().unwrap(), text);
        prop_assert!(!dbus::is_reply(&msg, 7, None), "a call is not a reply");
    }
}
