//! D-Bus messages as bytes, both ways, without I/O: the values a call
//! sends ([`Value`], [`Writer`]), a method call ([`encode_call`]), a received
//! message ([`decode`], [`Message`]) and its body ([`Reader`]).
//!
//! Contract: D-Bus specification, "Message Protocol": little-endian out,
//! either endianness in; decoding never panics on any bytes (a malformed
//! message is an `Err` naming what is wrong, a partial one `Ok(None)`).

/// A value to send.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Bool(bool),
    U32(u32),
    /// `a(ss)`
    PairArray(Vec<(String, String)>),
    /// `a(sv)`: name → value, in order
    PropArray(Vec<(String, Value)>),
}

impl Value {
    fn signature(&self) -> &'static str {
        match self {
            Value::Str(_) => "s",
            Value::Bool(_) => "b",
            Value::U32(_) => "u",
            Value::PairArray(_) => "a(ss)",
            Value::PropArray(_) => "a(sv)",
        }
    }
}

/// Little-endian marshalling into a buffer whose offset 0 is 8-aligned in
/// the message (the header and the body both start so).
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    fn pad(&mut self, align: usize) {
        while self.buf.len() % align != 0 {
            self.buf.push(0);
        }
    }
    fn u32(&mut self, v: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }
    fn sig(&mut self, s: &str) {
        self.buf.push(s.len() as u8);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }
    /// An array of 8-aligned elements (structs, dict entries).
    fn array8(&mut self, items: usize, mut each: impl FnMut(&mut Writer, usize)) {
        self.u32(0);
        let len_at = self.buf.len() - 4;
        self.pad(8);
        let start = self.buf.len();
        for i in 0..items {
            self.pad(8);
            each(self, i);
        }
        let len = (self.buf.len() - start) as u32;
        self.buf[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
    }
    pub fn value(&mut self, v: &Value) {
        match v {
            Value::Str(s) => self.str(s),
            Value::Bool(b) => self.u32(u32::from(*b)),
            Value::U32(u) => self.u32(*u),
            Value::PairArray(pairs) => self.array8(pairs.len(), |w, i| {
                w.str(&pairs[i].0);
                w.str(&pairs[i].1);
            }),
            Value::PropArray(props) => self.array8(props.len(), |w, i| {
                w.str(&props[i].0);
                w.sig(props[i].1.signature());
                w.value(&props[i].1);
            }),
        }
    }
}

/// Unmarshalling of a reply body (or header fields).
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    le: bool,
}

pub(super) type Parse<T> = Result<T, &'static str>;

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], le: bool) -> Reader<'a> {
        Reader { buf, pos: 0, le }
    }
    fn align(&mut self, a: usize) -> Parse<()> {
        let p = self.pos.div_ceil(a) * a;
        if p > self.buf.len() {
            return Err("padding past the end");
        }
        self.pos = p;
        Ok(())
    }
    fn take(&mut self, n: usize) -> Parse<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or("length overflow")?;
        let s = self.buf.get(self.pos..end).ok_or("value past the end")?;
        self.pos = end;
        Ok(s)
    }
    pub fn u8(&mut self) -> Parse<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Parse<u32> {
        self.align(4)?;
        let b: [u8; 4] = self.take(4)?.try_into().map_err(|_| "short u32")?;
        Ok(if self.le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }
    pub fn str(&mut self) -> Parse<String> {
        let n = self.u32()? as usize;
        let s = self.take(n)?;
        self.take(1)?;
        String::from_utf8(s.to_vec()).map_err(|_| "string not UTF-8")
    }
    pub fn sig(&mut self) -> Parse<String> {
        let n = self.u8()? as usize;
        let s = self.take(n)?;
        self.take(1)?;
        String::from_utf8(s.to_vec()).map_err(|_| "signature not UTF-8")
    }
    /// A variant whose content must have signature `want`; returns a reader
    /// positioned at the content.
    pub fn variant(&mut self, want: &str) -> Parse<()> {
        let sig = self.sig()?;
        if sig != want {
            return Err("variant of an unexpected type");
        }
        Ok(())
    }
    /// `a(ss)`
    pub fn pair_array(&mut self) -> Parse<Vec<(String, String)>> {
        let len = self.u32()? as usize;
        self.align(8)?;
        let end = self.pos.checked_add(len).ok_or("length overflow")?;
        if end > self.buf.len() {
            return Err("array past the end");
        }
        let mut out = Vec::new();
        while self.pos < end {
            self.align(8)?;
            let a = self.str()?;
            let b = self.str()?;
            out.push((a, b));
        }
        Ok(out)
    }
    /// Skips one value of a basic or variant header-field type.
    fn skip_basic(&mut self, sig: &str) -> Parse<()> {
        match sig {
            "s" | "o" => self.str().map(drop),
            "g" => self.sig().map(drop),
            "u" | "i" | "b" => self.u32().map(drop),
            "y" => self.u8().map(drop),
            _ => Err("unsupported header field type"),
        }
    }
}

const METHOD_CALL: u8 = 1;
pub(super) const METHOD_RETURN: u8 = 2;
pub(super) const ERROR: u8 = 3;
const NO_AUTO_START: u8 = 0x2;
const MAX_MESSAGE: usize = 1 << 24;

/// One method call's destination and name.
pub struct Method<'a> {
    pub destination: Option<&'a str>,
    pub path: &'a str,
    pub interface: &'a str,
    pub member: &'a str,
}

/// Serializes a method call (little-endian).
pub fn encode_call(serial: u32, m: &Method, args: &[Value]) -> Vec<u8> {
    let mut body = Writer::default();
    let mut signature = String::new();
    for a in args {
        signature.push_str(a.signature());
        body.value(a);
    }
    let mut h = Writer::default();
    h.buf
        .extend_from_slice(&[b'l', METHOD_CALL, NO_AUTO_START, 1]);
    h.u32(body.buf.len() as u32);
    h.u32(serial);
    let mut fields: Vec<(u8, &str, &str)> =
        vec![(1, "o", m.path), (2, "s", m.interface), (3, "s", m.member)];
    if let Some(d) = m.destination {
        fields.push((6, "s", d));
    }
    if !signature.is_empty() {
        fields.push((8, "g", &signature));
    }
    h.array8(fields.len(), |w, i| {
        let (code, sig, val) = fields[i];
        w.buf.push(code);
        w.sig(sig);
        if sig == "g" {
            w.sig(val);
        } else {
            w.str(val);
        }
    });
    h.pad(8);
    h.buf.extend_from_slice(&body.buf);
    h.buf
}

/// A received message: its type, reply serial, sender, error name and body.
#[derive(Debug)]
pub struct Message {
    pub kind: u8,
    pub reply_serial: Option<u32>,
    /// The SENDER header field (set by a bus; absent peer to peer).
    pub sender: Option<String>,
    pub error_name: Option<String>,
    pub body: Vec<u8>,
    pub le: bool,
}

/// Parses one message from the start of `buf`; returns it and its length,
/// or `Ok(None)` when `buf` holds only part of it.
pub fn decode(buf: &[u8]) -> Parse<Option<(Message, usize)>> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let le = match buf[0] {
        b'l' => true,
        b'B' => false,
        _ => return Err("bad endianness byte"),
    };
    let mut r = Reader::new(buf, le);
    r.pos = 4;
    let body_len = r.u32()? as usize;
    let _serial = r.u32()?;
    let fields_len = r.u32()? as usize;
    let header_end = (16 + fields_len).div_ceil(8) * 8;
    let total = header_end.checked_add(body_len).ok_or("length overflow")?;
    if total > MAX_MESSAGE {
        return Err("message too large");
    }
    if buf.len() < total {
        return Ok(None);
    }
    let mut msg = Message {
        kind: buf[1],
        reply_serial: None,
        sender: None,
        error_name: None,
        body: buf[header_end..total].to_vec(),
        le,
    };
    let mut f = Reader::new(&buf[..16 + fields_len], le);
    f.pos = 16;
    while f.pos < 16 + fields_len {
        f.align(8)?;
        let code = f.u8()?;
        let sig = f.sig()?;
        match (code, sig.as_str()) {
            (5, "u") => msg.reply_serial = Some(f.u32()?),
            (4, "s") => msg.error_name = Some(f.str()?),
            (7, "s") => msg.sender = Some(f.str()?),
            _ => f.skip_basic(&sig)?,
        }
    }
    Ok(Some((msg, total)))
}

/// Is `msg` the reply to our call `serial`: a METHOD_RETURN or ERROR with
/// that reply serial, from `replier` when one is required?
pub fn is_reply(msg: &Message, serial: u32, replier: Option<&str>) -> bool {
    matches!(msg.kind, METHOD_RETURN | ERROR)
        && msg.reply_serial == Some(serial)
        && replier.is_none_or(|r| msg.sender.as_deref() == Some(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_round_trips_through_the_decoder() {
        let m = Method {
            destination: Some("org.freedesktop.systemd1"),
            path: "/org/freedesktop/systemd1",
            interface: "org.freedesktop.systemd1.Manager",
            member: "SetUnitProperties",
        };
        let args = [
            Value::Str("crun-x.scope".into()),
            Value::Bool(true),
            Value::PropArray(vec![(
                "DeviceAllow".into(),
                Value::PairArray(vec![("/dev/char/226:128".into(), "rwm".into())]),
            )]),
        ];
        let bytes = encode_call(7, &m, &args);
        assert_eq!(&bytes[..4], &[b'l', 1, 2, 1]);
        let (msg, len) = decode(&bytes).unwrap().unwrap();
        assert_eq!(len, bytes.len());
        assert_eq!(msg.kind, METHOD_CALL);
        // The body: s, b, a(sv) with a variant a(ss).
        let mut r = Reader::new(&msg.body, true);
        assert_eq!(r.str().unwrap(), "crun-x.scope");
        assert_eq!(r.u32().unwrap(), 1);
        let _props_len = r.u32().unwrap();
        r.align(8).unwrap();
        assert_eq!(r.str().unwrap(), "DeviceAllow");
        r.variant("a(ss)").unwrap();
        assert_eq!(
            r.pair_array().unwrap(),
            vec![("/dev/char/226:128".to_string(), "rwm".to_string())]
        );
        assert_eq!(r.pos, msg.body.len());
    }

    #[test]
    fn header_layout_matches_the_specification() {
        // A call without arguments: no SIGNATURE field, empty body.
        let m = Method {
            destination: None,
            path: "/a",
            interface: "b.c",
            member: "D",
        };
        let bytes = encode_call(1, &m, &[]);
        // fixed part: endian, type, flags, version, body length 0, serial 1
        assert_eq!(&bytes[..12], &[b'l', 1, 2, 1, 0, 0, 0, 0, 1, 0, 0, 0]);
        // fields: (1, o "/a") pad (2, s "b.c") pad (3, s "D")
        let fields_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap());
        assert_eq!(fields_len as usize, 8 + 8 + 8 + 4 + 8 + 6);
        assert_eq!(bytes.len() % 8, 0);
        assert_eq!(&bytes[16..20], &[1, 1, b'o', 0]);
    }

    #[test]
    fn partial_and_big_endian_messages() {
        let m = Method {
            destination: None,
            path: "/a",
            interface: "b.c",
            member: "D",
        };
        let bytes = encode_call(1, &m, &[Value::U32(5)]);
        assert!(decode(&bytes[..bytes.len() - 1]).unwrap().is_none());
        assert!(decode(&bytes[..10]).unwrap().is_none());
        // A big-endian error reply: ERROR_NAME and REPLY_SERIAL, body "s".
        let mut be = vec![b'B', ERROR, 0, 1];
        let body = [0u8, 0, 0, 2, b'n', b'o', 0];
        be.extend_from_slice(&(body.len() as u32).to_be_bytes());
        be.extend_from_slice(&9u32.to_be_bytes());
        let mut fields = Vec::new();
        fields.extend_from_slice(&[4, 1, b's', 0]);
        fields.extend_from_slice(&3u32.to_be_bytes());
        fields.extend_from_slice(b"x.Y\0");
        fields.extend_from_slice(&[0; 4]); // each field starts 8-aligned
        fields.extend_from_slice(&[5, 1, b'u', 0]);
        fields.extend_from_slice(&9u32.to_be_bytes());
        be.extend_from_slice(&(fields.len() as u32).to_be_bytes());
        be.extend_from_slice(&fields);
        while be.len() % 8 != 0 {
            be.push(0);
        }
        be.extend_from_slice(&body);
        let (msg, _) = decode(&be).unwrap().unwrap();
        assert_eq!(msg.kind, ERROR);
        assert_eq!(msg.reply_serial, Some(9));
        assert_eq!(msg.error_name.as_deref(), Some("x.Y"));
        assert_eq!(Reader::new(&msg.body, false).str().unwrap(), "no");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(&[b'x'; 16]).is_err());
        let mut huge = vec![b'l', 2, 0, 1];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&[0; 8]);
        assert!(decode(&huge).is_err());
    }
}
