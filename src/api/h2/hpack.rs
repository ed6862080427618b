//! HPACK (RFC 7541) for a server: decoding with `loona-hpack` (it rejects every malformed
//! block in the hpack-test-case corpus once its table bound is set, see `../shared/grpc.md`)
//! under a budget on the decoded header list, which no HPACK crate enforces; encoding by hand
//! with literals that are never indexed, so our encoder keeps no table that could fall out of
//! step with the client's, whatever table size it announces.

use loona_hpack::Decoder as Hpack;

/// The dynamic table we allow the client's encoder (the RFC's default).
pub const TABLE_SIZE: usize = 4096;

/// A decoded header block: fields in order, names and values as bytes.
pub type Fields = Vec<(Vec<u8>, Vec<u8>)>;

pub enum DecodeError {
    /// The block is not valid HPACK: the connection's decoding state is lost
    /// (COMPRESSION_ERROR for the connection).
    Compression,
    /// The block decoded, but its fields exceed the header list budget (a stream error; the
    /// table stays in step).
    TooLarge,
}

pub struct Decoder {
    hpack: Hpack<'static>,
    /// Most bytes of decoded fields per block, counted as SETTINGS_MAX_HEADER_LIST_SIZE is
    /// (name + value + 32 per field).
    list_max: usize,
}

impl Decoder {
    pub fn new(list_max: usize) -> Decoder {
        let mut hpack = Hpack::new();
        hpack.set_max_allowed_table_size(TABLE_SIZE);
        Decoder { hpack, list_max }
    }

    /// Decodes one whole header block. Every block is decoded to its end even past the budget,
    /// since the fields it adds to the table are needed for the blocks after it.
    pub fn decode(&mut self, block: &[u8]) -> Result<Fields, DecodeError> {
        let mut fields = Vec::new();
        let mut size = 0usize;
        let list_max = self.list_max;
        self.hpack
            .decode_with_cb(block, |name, value| {
                size += name.len() + value.len() + 32;
                if size <= list_max {
                    fields.push((name.into_owned(), value.into_owned()));
                }
            })
            .map_err(|_| DecodeError::Compression)?;
        if size > list_max {
            return Err(DecodeError::TooLarge);
        }
        Ok(fields)
    }
}

/// Appends a header block of `fields`: `:status: 200` from the static table, everything else
/// as a literal never indexed, without Huffman coding.
pub fn encode(out: &mut Vec<u8>, fields: &[(&str, &str)]) {
    for (name, value) in fields {
        if (*name, *value) == (":status", "200") {
            out.push(0x88);
            continue;
        }
        out.push(0x10);
        string(out, name.as_bytes());
        string(out, value.as_bytes());
    }
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    integer(out, 7, 0, s.len());
    out.extend_from_slice(s);
}

/// RFC 7541 §5.1: `value` with an `n`-bit prefix, the bits above it set to `high`.
fn integer(out: &mut Vec<u8>, n: u32, high: u8, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(high | value as u8);
        return;
    }
    out.push(high | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128 + 128) as u8);
        value /= 128;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_we_encode_decodes_to_the_same_fields() {
        let long = "x".repeat(300);
        let fields = [(":status", "200"), ("content-type", "application/grpc"), ("grpc-message", long.as_str())];
        let mut block = Vec::new();
        encode(&mut block, &fields);
        let decoded = match Decoder::new(1 << 20).decode(&block) {
            Ok(decoded) => decoded,
            Err(_) => panic!("does not decode"),
        };
        let want: Fields = fields.iter().map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec())).collect();
        assert_eq!(decoded, want);
    }

    #[test]
    fn a_list_over_the_budget_is_refused_and_garbage_is_a_compression_error() {
        let mut block = Vec::new();
        encode(&mut block, &[("a", "b"), ("c", "d")]);
        // 34 bytes per field: the second passes a budget of 50.
        assert!(matches!(Decoder::new(50).decode(&block), Err(DecodeError::TooLarge)));
        assert!(Decoder::new(100).decode(&block).is_ok());
        // Index 0, an index past both tables, a size update above the bound, a truncated literal.
        for garbage in [&[0x80][..], &[0xff, 0x7f], &[0x3f, 0xe1, 0x1f], &[0x10, 0x05, b'a']] {
            assert!(matches!(Decoder::new(1 << 20).decode(garbage), Err(DecodeError::Compression)), "{garbage:?}");
        }
    }
}
