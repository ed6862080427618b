//! HPACK (RFC 7541) for a server (and `raftkvctl`'s one-request client, `super::client`): a
//! decoder of our own under a budget on the decoded header list, which no HPACK crate
//! enforces; encoding by hand with literals that are never indexed, so our encoder keeps no
//! table that could fall out of step with the peer's, whatever table size it announces.
//!
//! Why not `loona-hpack`, which decodes the whole hpack-test-case corpus and rejects what it
//! must (`../shared/grpc.md`): under h2load (unary Put, 16 connections × 64 streams) half the
//! event loops' CPU went to it, because it builds its Huffman table (nested `HashMap`s of 257
//! codes) for every Huffman-coded string and then decodes bit by bit through hash lookups, and
//! real clients send a Huffman-coded literal in every request (grpc-go's `grpc-timeout`). On
//! such a request block it took 24 µs and this decoder 0.8 µs (`tests::timing_a_grpc_go_request`,
//! release build). `huffman` decodes a nibble per lookup in a table computed at compile time.
//! `loona-hpack` stays as the oracle of a differential test, and `tests` replays the corpus.
//!
//! Whatever the input, decoding never panics, and what it allocates is bounded by the block
//! and the budget: a string's length is checked against what remains of the block before
//! anything is allocated, and fields past the budget are dropped, not kept.

mod huffman;
mod table;

use table::{entry_size, Table};

/// The dynamic table we allow the client's encoder (the RFC's default, which we never change).
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
    table: Table,
    /// Most bytes of decoded fields per block, counted as SETTINGS_MAX_HEADER_LIST_SIZE is
    /// (name + value + 32 per field).
    list_max: usize,
}

impl Decoder {
    pub fn new(list_max: usize) -> Decoder {
        Decoder { table: Table::new(TABLE_SIZE), list_max }
    }

    /// Decodes one whole header block. Every block is decoded to its end even past the budget,
    /// since the fields it adds to the table are needed for the blocks after it.
    pub fn decode(&mut self, block: &[u8]) -> Result<Fields, DecodeError> {
        let mut input = Input(block);
        let mut fields = Vec::new();
        let mut list_size = 0usize;
        let mut at_start = true;
        while let Some(first) = input.next() {
            let (name, value) = match first {
                0x80.. => {
                    let (name, value) = self.table.get(input.integer(first, 7)?).ok_or(DecodeError::Compression)?;
                    (name.to_vec(), value.to_vec())
                }
                0x40.. => {
                    let (name, value) = self.literal(&mut input, first, 6)?;
                    self.table.insert(name.clone(), value.clone());
                    (name, value)
                }
                0x20.. => {
                    // RFC 7541 §4.2: only at the start of a block, and within what we allow.
                    let size = input.integer(first, 5)?;
                    if !at_start || size > TABLE_SIZE {
                        return Err(DecodeError::Compression);
                    }
                    self.table.resize(size);
                    continue;
                }
                // Without indexing (0000) and never indexed (0001) differ only to intermediaries.
                _ => self.literal(&mut input, first, 4)?,
            };
            at_start = false;
            list_size = list_size.saturating_add(entry_size(&name, &value));
            if list_size <= self.list_max {
                fields.push((name, value));
            }
        }
        if list_size > self.list_max {
            return Err(DecodeError::TooLarge);
        }
        Ok(fields)
    }

    /// A literal field (RFC 7541 §6.2): its name indexed (`prefix`-bit index) or literal, then
    /// its value.
    fn literal(&self, input: &mut Input, first: u8, prefix: u32) -> Result<(Vec<u8>, Vec<u8>), DecodeError> {
        let name = match input.integer(first, prefix)? {
            0 => input.string()?,
            index => self.table.get(index).ok_or(DecodeError::Compression)?.0.to_vec(),
        };
        Ok((name, input.string()?))
    }
}

/// What remains of a block.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn next(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    /// RFC 7541 §5.1: an integer in the low `prefix` bits of `first` and the bytes after it.
    /// Four continuation bytes (28 bits, as loona-hpack allows) are far more than any valid
    /// value needs (a string within a block, an index or a table size), and cannot overflow.
    fn integer(&mut self, first: u8, prefix: u32) -> Result<usize, DecodeError> {
        let max = (1u8 << prefix) - 1;
        let mut value = (first & max) as usize;
        if value < max as usize {
            return Ok(value);
        }
        for shift in [0, 7, 14, 21] {
            let byte = self.next().ok_or(DecodeError::Compression)?;
            value += ((byte & 0x7f) as usize) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::Compression)
    }

    /// RFC 7541 §5.2: a string literal, raw or Huffman-coded.
    fn string(&mut self) -> Result<Vec<u8>, DecodeError> {
        let first = self.next().ok_or(DecodeError::Compression)?;
        let len = self.integer(first, 7)?;
        if len > self.0.len() {
            return Err(DecodeError::Compression);
        }
        let (string, rest) = self.0.split_at(len);
        self.0 = rest;
        if first & 0x80 == 0 {
            return Ok(string.to_vec());
        }
        huffman::decode(string).ok_or(DecodeError::Compression)
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
mod tests;
