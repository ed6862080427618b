//! HPACK's Huffman code (RFC 7541 §5.2, Appendix B), decoded four bits at a time by a state
//! machine computed at compile time from the spec's code table, as nghttp2 does: one table
//! lookup per nibble, where a tree walk costs one branch per bit.

/// RFC 7541 Appendix B: the code of each symbol (0–255, then EOS as 256), right-aligned in
/// `u32`, and its length in bits; four symbols a row, the comment naming them.
#[rustfmt::skip]
pub(super) const CODES: [(u32, u8); 257] = [
    (0x1ff8, 13), (0x7fffd8, 23), (0xfffffe2, 28), (0xfffffe3, 28), // 0..4
    (0xfffffe4, 28), (0xfffffe5, 28), (0xfffffe6, 28), (0xfffffe7, 28), // 4..8
    (0xfffffe8, 28), (0xffffea, 24), (0x3ffffffc, 30), (0xfffffe9, 28), // 8..12
    (0xfffffea, 28), (0x3ffffffd, 30), (0xfffffeb, 28), (0xfffffec, 28), // 12..16
    (0xfffffed, 28), (0xfffffee, 28), (0xfffffef, 28), (0xffffff0, 28), // 16..20
    (0xffffff1, 28), (0xffffff2, 28), (0x3ffffffe, 30), (0xffffff3, 28), // 20..24
    (0xffffff4, 28), (0xffffff5, 28), (0xffffff6, 28), (0xffffff7, 28), // 24..28
    (0xffffff8, 28), (0xffffff9, 28), (0xffffffa, 28), (0xffffffb, 28), // 28..32
    (0x14, 6), (0x3f8, 10), (0x3f9, 10), (0xffa, 12), // 32..36
    (0x1ff9, 13), (0x15, 6), (0xf8, 8), (0x7fa, 11), // 36..40
    (0x3fa, 10), (0x3fb, 10), (0xf9, 8), (0x7fb, 11), // 40..44
    (0xfa, 8), (0x16, 6), (0x17, 6), (0x18, 6), // 44..48
    (0x0, 5), (0x1, 5), (0x2, 5), (0x19, 6), // 48..52
    (0x1a, 6), (0x1b, 6), (0x1c, 6), (0x1d, 6), // 52..56
    (0x1e, 6), (0x1f, 6), (0x5c, 7), (0xfb, 8), // 56..60
    (0x7ffc, 15), (0x20, 6), (0xffb, 12), (0x3fc, 10), // 60..64
    (0x1ffa, 13), (0x21, 6), (0x5d, 7), (0x5e, 7), // 64..68
    (0x5f, 7), (0x60, 7), (0x61, 7), (0x62, 7), // 68..72
    (0x63, 7), (0x64, 7), (0x65, 7), (0x66, 7), // 72..76
    (0x67, 7), (0x68, 7), (0x69, 7), (0x6a, 7), // 76..80
    (0x6b, 7), (0x6c, 7), (0x6d, 7), (0x6e, 7), // 80..84
    (0x6f, 7), (0x70, 7), (0x71, 7), (0x72, 7), // 84..88
    (0xfc, 8), (0x73, 7), (0xfd, 8), (0x1ffb, 13), // 88..92
    (0x7fff0, 19), (0x1ffc, 13), (0x3ffc, 14), (0x22, 6), // 92..96
    (0x7ffd, 15), (0x3, 5), (0x23, 6), (0x4, 5), // 96..100
    (0x24, 6), (0x5, 5), (0x25, 6), (0x26, 6), // 100..104
    (0x27, 6), (0x6, 5), (0x74, 7), (0x75, 7), // 104..108
    (0x28, 6), (0x29, 6), (0x2a, 6), (0x7, 5), // 108..112
    (0x2b, 6), (0x76, 7), (0x2c, 6), (0x8, 5), // 112..116
    (0x9, 5), (0x2d, 6), (0x77, 7), (0x78, 7), // 116..120
    (0x79, 7), (0x7a, 7), (0x7b, 7), (0x7ffe, 15), // 120..124
    (0x7fc, 11), (0x3ffd, 14), (0x1ffd, 13), (0xffffffc, 28), // 124..128
    (0xfffe6, 20), (0x3fffd2, 22), (0xfffe7, 20), (0xfffe8, 20), // 128..132
    (0x3fffd3, 22), (0x3fffd4, 22), (0x3fffd5, 22), (0x7fffd9, 23), // 132..136
    (0x3fffd6, 22), (0x7fffda, 23), (0x7fffdb, 23), (0x7fffdc, 23), // 136..140
    (0x7fffdd, 23), (0x7fffde, 23), (0xffffeb, 24), (0x7fffdf, 23), // 140..144
    (0xffffec, 24), (0xffffed, 24), (0x3fffd7, 22), (0x7fffe0, 23), // 144..148
    (0xffffee, 24), (0x7fffe1, 23), (0x7fffe2, 23), (0x7fffe3, 23), // 148..152
    (0x7fffe4, 23), (0x1fffdc, 21), (0x3fffd8, 22), (0x7fffe5, 23), // 152..156
    (0x3fffd9, 22), (0x7fffe6, 23), (0x7fffe7, 23), (0xffffef, 24), // 156..160
    (0x3fffda, 22), (0x1fffdd, 21), (0xfffe9, 20), (0x3fffdb, 22), // 160..164
    (0x3fffdc, 22), (0x7fffe8, 23), (0x7fffe9, 23), (0x1fffde, 21), // 164..168
    (0x7fffea, 23), (0x3fffdd, 22), (0x3fffde, 22), (0xfffff0, 24), // 168..172
    (0x1fffdf, 21), (0x3fffdf, 22), (0x7fffeb, 23), (0x7fffec, 23), // 172..176
    (0x1fffe0, 21), (0x1fffe1, 21), (0x3fffe0, 22), (0x1fffe2, 21), // 176..180
    (0x7fffed, 23), (0x3fffe1, 22), (0x7fffee, 23), (0x7fffef, 23), // 180..184
    (0xfffea, 20), (0x3fffe2, 22), (0x3fffe3, 22), (0x3fffe4, 22), // 184..188
    (0x7ffff0, 23), (0x3fffe5, 22), (0x3fffe6, 22), (0x7ffff1, 23), // 188..192
    (0x3ffffe0, 26), (0x3ffffe1, 26), (0xfffeb, 20), (0x7fff1, 19), // 192..196
    (0x3fffe7, 22), (0x7ffff2, 23), (0x3fffe8, 22), (0x1ffffec, 25), // 196..200
    (0x3ffffe2, 26), (0x3ffffe3, 26), (0x3ffffe4, 26), (0x7ffffde, 27), // 200..204
    (0x7ffffdf, 27), (0x3ffffe5, 26), (0xfffff1, 24), (0x1ffffed, 25), // 204..208
    (0x7fff2, 19), (0x1fffe3, 21), (0x3ffffe6, 26), (0x7ffffe0, 27), // 208..212
    (0x7ffffe1, 27), (0x3ffffe7, 26), (0x7ffffe2, 27), (0xfffff2, 24), // 212..216
    (0x1fffe4, 21), (0x1fffe5, 21), (0x3ffffe8, 26), (0x3ffffe9, 26), // 216..220
    (0xffffffd, 28), (0x7ffffe3, 27), (0x7ffffe4, 27), (0x7ffffe5, 27), // 220..224
    (0xfffec, 20), (0xfffff3, 24), (0xfffed, 20), (0x1fffe6, 21), // 224..228
    (0x3fffe9, 22), (0x1fffe7, 21), (0x1fffe8, 21), (0x7ffff3, 23), // 228..232
    (0x3fffea, 22), (0x3fffeb, 22), (0x1ffffee, 25), (0x1ffffef, 25), // 232..236
    (0xfffff4, 24), (0xfffff5, 24), (0x3ffffea, 26), (0x7ffff4, 23), // 236..240
    (0x3ffffeb, 26), (0x7ffffe6, 27), (0x3ffffec, 26), (0x3ffffed, 26), // 240..244
    (0x7ffffe7, 27), (0x7ffffe8, 27), (0x7ffffe9, 27), (0x7ffffea, 27), // 244..248
    (0x7ffffeb, 27), (0xffffffe, 28), (0x7ffffec, 27), (0x7ffffed, 27), // 248..252
    (0x7ffffee, 27), (0x7ffffef, 27), (0x7fffff0, 27), (0x3ffffee, 26), // 252..256
    (0x3fffffff, 30), // 256..257
];

const EOS: u16 = 256;

/// The internal nodes of the code's tree: a complete code of 257 leaves has 256, so a state
/// (the node the bits read so far lead to) fits in a `u8`, and node 0 is the root.
const NODES: usize = 256;

/// A child of a node: another node's index, or `LEAF | symbol`.
const LEAF: u16 = 0x8000;

/// The nibble completed a symbol, in `Step::symbol`.
const EMIT: u8 = 1;
/// The bits after the last symbol are a valid end of string: at most seven, all ones (a
/// prefix of EOS), RFC 7541 §5.2.
const ACCEPT: u8 = 2;
/// The nibble completed EOS, which a string must not contain.
const FAIL: u8 = 4;

#[derive(Clone, Copy)]
struct Step {
    next: u8,
    symbol: u8,
    flags: u8,
}

/// `MACHINE[state][nibble]`: 12 KiB of static data, so nothing is built at run time.
static MACHINE: [[Step; 16]; NODES] = machine();

/// Decodes a whole Huffman-coded string; `None` if it holds EOS or its padding is too long or
/// not all ones.
pub fn decode(coded: &[u8]) -> Option<Vec<u8>> {
    // Codes are at least 5 bits long.
    let mut out = Vec::with_capacity(coded.len() * 8 / 5);
    let mut state = 0;
    let mut accept = true;
    for &byte in coded {
        for nibble in [byte >> 4, byte & 0xf] {
            let step = MACHINE[state][nibble as usize];
            if step.flags & FAIL != 0 {
                return None;
            }
            if step.flags & EMIT != 0 {
                out.push(step.symbol);
            }
            state = step.next as usize;
            accept = step.flags & ACCEPT != 0;
        }
    }
    accept.then_some(out)
}

/// The code's tree: `[child for bit 0, child for bit 1]` per node. A malformed code table
/// fails the build here (const evaluation panics).
const fn tree() -> [[u16; 2]; NODES] {
    // 0 means "no child yet": the root is nobody's child.
    let mut children = [[0u16; 2]; NODES];
    let mut nodes = 1;
    let mut symbol = 0;
    while symbol < CODES.len() {
        let (code, len) = CODES[symbol];
        let mut node = 0;
        let mut bit = len - 1;
        while bit > 0 {
            let b = ((code >> bit) & 1) as usize;
            if children[node][b] == 0 {
                assert!(nodes < NODES, "more internal nodes than a complete code has");
                children[node][b] = nodes as u16;
                nodes += 1;
            }
            assert!(children[node][b] & LEAF == 0, "a code extends another");
            node = children[node][b] as usize;
            bit -= 1;
        }
        let b = (code & 1) as usize;
        assert!(children[node][b] == 0, "a code is a prefix of another");
        children[node][b] = LEAF | symbol as u16;
        symbol += 1;
    }
    assert!(nodes == NODES, "the code is not complete");
    children
}

const fn machine() -> [[Step; 16]; NODES] {
    let children = tree();
    // The nodes up to seven 1-bits below the root, where a string may end.
    let mut accepting = [false; NODES];
    let mut node = 0;
    let mut ones = 0;
    while ones <= 7 {
        accepting[node] = true;
        node = children[node][1] as usize;
        ones += 1;
    }
    let mut machine = [[Step { next: 0, symbol: 0, flags: 0 }; 16]; NODES];
    let mut state = 0;
    while state < NODES {
        let mut nibble = 0;
        while nibble < 16 {
            let mut step = Step { next: 0, symbol: 0, flags: 0 };
            let mut node = state;
            let mut bit = 4;
            while bit > 0 {
                bit -= 1;
                let child = children[node][(nibble >> bit) & 1];
                if child & LEAF == 0 {
                    node = child as usize;
                } else if child & !LEAF == EOS {
                    step.flags |= FAIL;
                    node = 0;
                } else {
                    // Codes of 5 bits or more: a nibble ends at most one.
                    assert!(step.flags & EMIT == 0, "two symbols in a nibble");
                    step.flags |= EMIT;
                    step.symbol = (child & !LEAF) as u8;
                    node = 0;
                }
            }
            step.next = node as u8;
            if accepting[node] {
                step.flags |= ACCEPT;
            }
            machine[state][nibble] = step;
            nibble += 1;
        }
        state += 1;
    }
    machine
}

#[cfg(test)]
mod tests {
    use super::super::tests::hex;
    use super::*;

    /// HPACK's code is canonical: each length's codes follow on from the shorter ones, in
    /// symbol order. Deriving the codes from the lengths alone checks the table's transcription.
    #[test]
    fn the_code_table_is_the_canonical_code_of_its_lengths() {
        let mut order: Vec<usize> = (0..CODES.len()).collect();
        order.sort_by_key(|&symbol| (CODES[symbol].1, symbol));
        let (mut code, mut len) = (0u32, CODES[order[0]].1);
        for (i, &symbol) in order.iter().enumerate() {
            if i > 0 {
                code = (code + 1) << (CODES[symbol].1 - len);
                len = CODES[symbol].1;
            }
            assert_eq!(CODES[symbol], (code, len), "symbol {symbol}");
        }
    }

    #[test]
    fn the_rfc_examples_decode() {
        // RFC 7541 C.4.1 and C.6.1.
        assert_eq!(decode(&hex("f1e3c2e5f23a6ba0ab90f4ff")).unwrap(), b"www.example.com");
        assert_eq!(decode(&hex("6402")).unwrap(), b"302");
        assert_eq!(decode(&hex("aec3771a4b")).unwrap(), b"private");
        assert_eq!(decode(&[]).unwrap(), b"");
    }

    #[test]
    fn eos_and_bad_padding_are_refused() {
        // "0" is 00000: three 1-bits of padding end it, eight are too many.
        assert_eq!(decode(&[0b0000_0111]).unwrap(), b"0");
        assert!(decode(&[0b0000_0111, 0xff]).is_none(), "8 bits of padding");
        assert!(decode(&[0xff]).is_none(), "a whole byte of padding");
        assert!(decode(&[0b0000_0101]).is_none(), "padding not all ones");
        assert!(decode(&[0b0000_0110]).is_none(), "padding ending in zero");
        // EOS (30 ones) then two bits of padding, and EOS after a symbol.
        assert!(decode(&[0xff, 0xff, 0xff, 0xff]).is_none(), "EOS");
        assert!(decode(&[0b0000_0111, 0xff, 0xff, 0xff, 0xfc]).is_none(), "EOS after a symbol");
    }
}
