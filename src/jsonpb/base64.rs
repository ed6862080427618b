//! Standard padded base64 as Go's `encoding/base64.StdEncoding` writes and strictly reads it
//! (`\r` and `\n` skipped; anything else out of place is `illegal base64 data at input byte
//! N`, at Go's N), which is how etcd's gateway carries keys and values.

use super::{JsonError, Result};

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn value(c: u8) -> Option<u32> {
    match c {
        b'A'..=b'Z' => Some((c - b'A') as u32),
        b'a'..=b'z' => Some((c - b'a' + 26) as u32),
        b'0'..=b'9' => Some((c - b'0' + 52) as u32),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Go's `base64.StdEncoding.Decode`, including where it reports `illegal base64 data`.
pub fn decode(src: &[u8]) -> Result<Vec<u8>> {
    let corrupt = |at: usize| JsonError(format!("illegal base64 data at input byte {at}"));
    let skip_newlines = |si: &mut usize| {
        while *si < src.len() && (src[*si] == b'\n' || src[*si] == b'\r') {
            *si += 1;
        }
    };
    let mut out = Vec::with_capacity(src.len() / 4 * 3);
    let mut si = 0;
    loop {
        let mut quantum = [0u32; 4];
        let mut len = 4;
        let mut j = 0;
        while j < 4 {
            if si == src.len() {
                if j == 0 {
                    return Ok(out);
                }
                return Err(corrupt(si - j));
            }
            let c = src[si];
            si += 1;
            if let Some(v) = value(c) {
                quantum[j] = v;
                j += 1;
                continue;
            }
            if c == b'\n' || c == b'\r' {
                continue;
            }
            if c != b'=' {
                return Err(corrupt(si - 1));
            }
            match j {
                0 | 1 => return Err(corrupt(si - 1)),
                2 => {
                    skip_newlines(&mut si);
                    if si == src.len() {
                        return Err(corrupt(src.len()));
                    }
                    if src[si] != b'=' {
                        return Err(corrupt(si - 1));
                    }
                    si += 1;
                }
                _ => {}
            }
            skip_newlines(&mut si);
            if si < src.len() {
                return Err(corrupt(si));
            }
            len = j;
            break;
        }
        let val = quantum[0] << 18 | quantum[1] << 12 | quantum[2] << 6 | quantum[3];
        let bytes = [(val >> 16) as u8, (val >> 8) as u8, val as u8];
        out.extend_from_slice(&bytes[..len - 1]);
        if len < 4 {
            return Ok(out);
        }
    }
}

/// Appends `data` in standard padded base64.
pub fn encode(out: &mut String, data: &[u8]) {
    out.reserve(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        out.push(ALPHABET[(n >> 18) as usize & 63] as char);
        out.push(ALPHABET[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 { ALPHABET[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if chunk.len() > 2 { ALPHABET[n as usize & 63] as char } else { '=' });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_gos() {
        let e = |s: &str| decode(s.as_bytes()).unwrap_err().0;
        assert_eq!(e("!!!"), "illegal base64 data at input byte 0");
        assert_eq!(e("YmFy="), "illegal base64 data at input byte 4");
        assert_eq!(e("Zm8"), "illegal base64 data at input byte 0");
        assert_eq!(e("-_-_"), "illegal base64 data at input byte 0");
        assert_eq!(decode(b"Zm9v\n").unwrap(), b"foo");
        assert_eq!(decode(b"Zm8=").unwrap(), b"fo");
        assert_eq!(decode(b"Zg==").unwrap(), b"f");
        assert_eq!(decode(b"").unwrap(), b"");
    }

    #[test]
    fn round_trips() {
        for len in 0..10 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37) as u8).collect();
            let mut s = String::new();
            encode(&mut s, &data);
            assert_eq!(decode(s.as_bytes()).unwrap(), data);
        }
    }
}
