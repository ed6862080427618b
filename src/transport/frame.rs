//! The peer wire format: length-prefixed frames, and the hello that opens every connection.
//!
//! ```text
//! frame := length (u32 BE, of kind + payload) | kind (u8) | payload
//! hello := "RKV1" | cluster_id (u64 BE) | from (u64 BE) | to (u64 BE) | purpose (u8)
//! verdict := code (u8: 0 welcome, 1 removed, 2 refused) | reason (UTF-8)
//! ```
//! The member that accepts a stream or snapshot connection answers the hello with a verdict
//! frame, so the dialer learns why it was refused, and above all that it was removed from the
//! cluster (etcd's rafthttp answers `410 Gone` for the same reason).
//! A frame longer than [`MAX_FRAME_BYTES`] is refused before anything is allocated for it, so a
//! garbage length cannot make a member allocate gigabytes.

use std::io::{self, Read, Write};

/// Largest frame accepted: a raft append carries at most 1 MiB of entries beyond its first
/// entry, and one entry is at most `--max-request-bytes` (1.5 MiB by default).
pub const MAX_FRAME_BYTES: usize = 64 << 20;

const MAGIC: &[u8; 4] = b"RKV1";
const HELLO_BYTES: usize = 4 + 8 + 8 + 8 + 1;

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Hello = 1,
    /// A raft-rs `Message`, protobuf-encoded.
    Raft = 2,
    /// A request forwarded to the leader: request id (u64 BE) + encoded `PeerRequest`.
    Request = 3,
    /// The answer to a `Request`: request id (u64 BE) + encoded `PeerResponse`.
    Response = 4,
    /// A piece of a snapshot file.
    SnapshotChunk = 5,
    /// The end of a snapshot (the file carries its own checksum).
    SnapshotEnd = 6,
    /// The receiver's verdict on a snapshot: one byte, 1 = accepted.
    SnapshotAck = 7,
    /// A member's answer to a membership query: cluster id (u64 BE) + encoded record.
    Membership = 8,
    /// The answer to a hello: a [`Verdict`].
    Verdict = 9,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Hello,
            2 => Kind::Raft,
            3 => Kind::Request,
            4 => Kind::Response,
            5 => Kind::SnapshotChunk,
            6 => Kind::SnapshotEnd,
            7 => Kind::SnapshotAck,
            8 => Kind::Membership,
            9 => Kind::Verdict,
            _ => return None,
        })
    }
}

/// Why a connection was opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Purpose {
    /// Raft messages and forwarded requests, one way.
    Stream = 0,
    /// One snapshot, then an ack back.
    Snapshot = 1,
    /// A member that is joining asks for the cluster id and membership.
    Query = 2,
    /// One request, answered on the same connection (a HashKV, as etcd's peer HTTP calls).
    Call = 3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    pub cluster_id: u64,
    pub from: u64,
    pub to: u64,
    pub purpose: Purpose,
}

impl Hello {
    pub fn write(&self, w: &mut impl Write) -> io::Result<()> {
        let mut payload = Vec::with_capacity(HELLO_BYTES);
        payload.extend_from_slice(MAGIC);
        payload.extend_from_slice(&self.cluster_id.to_be_bytes());
        payload.extend_from_slice(&self.from.to_be_bytes());
        payload.extend_from_slice(&self.to.to_be_bytes());
        payload.push(self.purpose as u8);
        write_frame(w, Kind::Hello, &payload)
    }

    pub fn read(r: &mut impl Read) -> io::Result<Hello> {
        let (kind, payload) = read_frame(r)?;
        if kind != Kind::Hello || payload.len() != HELLO_BYTES || &payload[..4] != MAGIC {
            return Err(invalid("not a raftkv peer (bad hello)".into()));
        }
        let u64_at = |at: usize| u64::from_be_bytes(payload[at..at + 8].try_into().expect("8 bytes"));
        let purpose = match payload[28] {
            0 => Purpose::Stream,
            1 => Purpose::Snapshot,
            2 => Purpose::Query,
            3 => Purpose::Call,
            other => return Err(invalid(format!("unknown connection purpose {other}"))),
        };
        Ok(Hello { cluster_id: u64_at(4), from: u64_at(12), to: u64_at(20), purpose })
    }
}

/// The accepting member's answer to a hello.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Welcome,
    /// The sender was removed from the cluster: it must stop, as it can never rejoin.
    Removed,
    /// Not accepted now (another cluster, a misaddressed hello, a member this one does not
    /// know yet); the sender may retry later.
    Refused(String),
}

impl Verdict {
    pub fn write(&self, w: &mut impl Write) -> io::Result<()> {
        let (code, reason) = match self {
            Verdict::Welcome => (0, ""),
            Verdict::Removed => (1, ""),
            Verdict::Refused(reason) => (2, reason.as_str()),
        };
        write_frame(w, Kind::Verdict, &[&[code][..], reason.as_bytes()].concat())
    }

    pub fn read(r: &mut impl Read) -> io::Result<Verdict> {
        match read_frame(r)? {
            (Kind::Verdict, payload) => match payload.split_first() {
                Some((0, _)) => Ok(Verdict::Welcome),
                Some((1, _)) => Ok(Verdict::Removed),
                Some((2, reason)) => Ok(Verdict::Refused(String::from_utf8_lossy(reason).into_owned())),
                _ => Err(invalid("malformed verdict".into())),
            },
            (other, _) => Err(invalid(format!("answered a hello with {other:?}"))),
        }
    }
}

pub fn write_frame(w: &mut impl Write, kind: Kind, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len() + 1).map_err(|_| invalid("frame too large".into()))?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(&[kind as u8])?;
    w.write_all(payload)
}

/// The bytes a frame with `payload` takes on the wire (length, kind, payload).
pub fn size(payload: &[u8]) -> u64 {
    payload.len() as u64 + 5
}

/// Reads one frame. A clean end of stream before the frame starts is `UnexpectedEof`.
pub fn read_frame(r: &mut impl Read) -> io::Result<(Kind, Vec<u8>)> {
    let mut head = [0u8; 5];
    r.read_exact(&mut head)?;
    let len = u32::from_be_bytes(head[..4].try_into().expect("4 bytes")) as usize;
    if len == 0 || len > MAX_FRAME_BYTES {
        return Err(invalid(format!("frame length {len} outside 1..={MAX_FRAME_BYTES}")));
    }
    let kind = Kind::from_u8(head[4]).ok_or_else(|| invalid(format!("unknown frame kind {}", head[4])))?;
    let mut payload = vec![0u8; len - 1];
    r.read_exact(&mut payload)?;
    Ok((kind, payload))
}

/// Splits the leading u64 (a request id or cluster id) off a payload.
pub fn split_u64(payload: &[u8]) -> io::Result<(u64, &[u8])> {
    if payload.len() < 8 {
        return Err(invalid("payload shorter than its 8-byte prefix".into()));
    }
    let (head, rest) = payload.split_at(8);
    Ok((u64::from_be_bytes(head.try_into().expect("8 bytes")), rest))
}

pub fn with_u64(prefix: u64, body: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(8 + body.len());
    payload.extend_from_slice(&prefix.to_be_bytes());
    payload.extend_from_slice(body);
    payload
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_and_frames_round_trip() {
        for purpose in [Purpose::Stream, Purpose::Snapshot, Purpose::Query, Purpose::Call] {
            let hello = Hello { cluster_id: 7, from: 1, to: 2, purpose };
            let mut buf = Vec::new();
            hello.write(&mut buf).unwrap();
            write_frame(&mut buf, Kind::Raft, b"abc").unwrap();
            let mut r = &buf[..];
            assert_eq!(Hello::read(&mut r).unwrap(), hello);
            assert_eq!(read_frame(&mut r).unwrap(), (Kind::Raft, b"abc".to_vec()));
            assert_eq!(read_frame(&mut r).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        }
        let mut unknown = Vec::new();
        Hello { cluster_id: 7, from: 1, to: 2, purpose: Purpose::Call }.write(&mut unknown).unwrap();
        *unknown.last_mut().unwrap() = 9;
        assert!(Hello::read(&mut &unknown[..]).unwrap_err().to_string().contains("unknown connection purpose 9"));
    }

    #[test]
    fn verdicts_round_trip_and_garbage_is_an_error() {
        for verdict in [Verdict::Welcome, Verdict::Removed, Verdict::Refused("cluster 2 is not 1".into())] {
            let mut buf = Vec::new();
            verdict.write(&mut buf).unwrap();
            assert_eq!(Verdict::read(&mut &buf[..]).unwrap(), verdict);
        }
        for bad in [&[][..], &[3], &[0xff, b'x']] {
            let mut buf = Vec::new();
            write_frame(&mut buf, Kind::Verdict, bad).unwrap();
            assert!(Verdict::read(&mut &buf[..]).is_err(), "{bad:?}");
        }
        let mut buf = Vec::new();
        write_frame(&mut buf, Kind::Raft, &[0]).unwrap();
        assert!(Verdict::read(&mut &buf[..]).unwrap_err().to_string().contains("Raft"));
    }

    #[test]
    fn garbage_is_refused_without_allocating() {
        let huge = [0xff, 0xff, 0xff, 0xff, 2];
        assert_eq!(read_frame(&mut &huge[..]).unwrap_err().kind(), io::ErrorKind::InvalidData);
        let unknown_kind = [0, 0, 0, 1, 99];
        assert!(read_frame(&mut &unknown_kind[..]).unwrap_err().to_string().contains("kind 99"));
        let http = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(Hello::read(&mut &http[..]).is_err());
        let mut not_hello = Vec::new();
        write_frame(&mut not_hello, Kind::Raft, &[0; 29]).unwrap();
        assert!(Hello::read(&mut &not_hello[..]).is_err());
    }
}
