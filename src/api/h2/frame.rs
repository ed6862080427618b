//! HTTP/2 frames (RFC 9113 §4, §6): the 9-byte header, the frame types and flags a server
//! reads and writes, SETTINGS parameters and error codes. Pure functions over bytes.

/// The client's connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const HEADER_LEN: usize = 9;
/// The frame size every peer must accept, and the largest we accept.
pub const MAX_FRAME_SIZE_DEFAULT: usize = 16_384;
/// The largest frame size a peer may announce.
pub const MAX_FRAME_SIZE_LIMIT: u32 = (1 << 24) - 1;
/// Windows start here and may not pass `WINDOW_MAX`.
pub const INITIAL_WINDOW: i64 = 65_535;
pub const WINDOW_MAX: i64 = (1 << 31) - 1;

pub mod kind {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const PRIORITY: u8 = 0x2;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PUSH_PROMISE: u8 = 0x5;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
}

pub mod flag {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

pub mod setting {
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    pub const ENABLE_PUSH: u16 = 0x2;
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
}

/// Error codes (RFC 9113 §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    NoError = 0x0,
    ProtocolError = 0x1,
    InternalError = 0x2,
    FlowControlError = 0x3,
    StreamClosed = 0x5,
    FrameSizeError = 0x6,
    RefusedStream = 0x7,
    Cancel = 0x8,
    CompressionError = 0x9,
    EnhanceYourCalm = 0xb,
}

/// A frame's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub len: usize,
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
}

impl Head {
    /// The header at the start of `buf`, if all 9 bytes are there. The reserved bit of the
    /// stream id is ignored, as the RFC says.
    pub fn parse(buf: &[u8]) -> Option<Head> {
        let b = buf.get(..HEADER_LEN)?;
        Some(Head {
            len: (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        })
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// Appends a frame to `out`.
pub fn write(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len();
    debug_assert!(len <= MAX_FRAME_SIZE_LIMIT as usize);
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

pub fn settings(out: &mut Vec<u8>, values: &[(u16, u32)]) {
    let mut payload = Vec::with_capacity(values.len() * 6);
    for (id, value) in values {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&value.to_be_bytes());
    }
    write(out, kind::SETTINGS, 0, 0, &payload);
}

pub fn window_update(out: &mut Vec<u8>, stream: u32, increment: u32) {
    write(out, kind::WINDOW_UPDATE, 0, stream, &increment.to_be_bytes());
}

pub fn rst_stream(out: &mut Vec<u8>, stream: u32, reason: Reason) {
    write(out, kind::RST_STREAM, 0, stream, &(reason as u32).to_be_bytes());
}

pub fn goaway(out: &mut Vec<u8>, last_stream: u32, reason: Reason, debug: &[u8]) {
    let mut payload = Vec::with_capacity(8 + debug.len());
    payload.extend_from_slice(&last_stream.to_be_bytes());
    payload.extend_from_slice(&(reason as u32).to_be_bytes());
    payload.extend_from_slice(debug);
    write(out, kind::GOAWAY, 0, 0, &payload);
}

/// The payload of a frame without its padding (RFC 9113 §6.1): `None` if the pad length is
/// past the payload, which is a protocol error.
pub fn unpad<'a>(head: &Head, payload: &'a [u8]) -> Option<&'a [u8]> {
    if !head.has(flag::PADDED) {
        return Some(payload);
    }
    let (&pad, rest) = payload.split_first()?;
    rest.len().checked_sub(usize::from(pad)).map(|end| &rest[..end])
}

/// A u32 from the first four bytes, as windows and error codes are sent.
pub fn u32_at(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_the_reserved_bit_is_ignored() {
        let mut out = Vec::new();
        write(&mut out, kind::HEADERS, flag::END_HEADERS, 0x8000_0003, b"abc");
        let head = Head::parse(&out).unwrap();
        assert_eq!(head, Head { len: 3, kind: kind::HEADERS, flags: flag::END_HEADERS, stream: 3 });
        assert_eq!(&out[HEADER_LEN..], b"abc");
        assert_eq!(Head::parse(&out[..8]), None);
    }

    #[test]
    fn padding_is_removed_or_refused() {
        let padded = Head { len: 0, kind: kind::DATA, flags: flag::PADDED, stream: 1 };
        let plain = Head { flags: 0, ..padded };
        type Case<'a> = (&'a Head, &'a [u8], Option<&'a [u8]>);
        let cases: [Case; 5] = [
            (&plain, b"data", Some(b"data")),
            (&padded, b"\x02dataxx", Some(b"data")),
            (&padded, b"\x00", Some(b"")),
            (&padded, b"\x05abc", None),
            (&padded, b"", None),
        ];
        for (head, payload, want) in cases {
            assert_eq!(unpad(head, payload), want, "{payload:?}");
        }
    }
}
