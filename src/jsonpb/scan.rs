//! Go's `encoding/json` scanner (Go 1.19, the compiler of the etcd 3.4.23 raftkv answers like):
//! where a JSON value ends, and the exact message of its first syntax error.
//!
//! Two entry points mirror the two ways Go reads JSON in the gateway's path:
//! - [`Decoder`] is `json.Decoder`: it reads one value after another from a body and ignores
//!   whatever follows the value it was asked for (so `{"key":"AA=="} x` serves the request);
//!   end of input inside a value is `unexpected EOF`, and a body of only whitespace is "no
//!   value" (Go's `io.EOF`, which the gateway treats as the empty request).
//! - [`check_valid`] is `json.Unmarshal`'s check that a byte string is exactly one value
//!   (jsonpb calls it on the inside of a quoted number), where end of input is
//!   `unexpected end of JSON input`.
//!
//! The scanner keeps its nesting in an explicit stack, as Go's does, so deep input costs
//! memory, not recursion, and nesting deeper than [`NESTING_MAX`] fails as Go's does. Pure
//! functions; runs on whichever thread decodes.

use super::{JsonError, Result};

/// Go's `maxNestingDepth`: objects and arrays nested deeper are a syntax error.
pub const NESTING_MAX: usize = 10_000;

/// What the scanner is inside of, per open object or array (Go's `parseState`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Nest {
    ObjectKey,
    ObjectValue,
    ArrayValue,
}

/// The scanner's state between bytes (Go's `step` functions).
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    BeginValue,
    BeginValueOrEmpty,
    BeginStringOrEmpty,
    BeginString,
    EndValue,
    /// The top-level value is complete: only whitespace may follow.
    EndTop,
    InString,
    InStringEsc,
    /// Inside `\u`, with this many hex digits read.
    InStringEscU(u8),
    Neg,
    One,
    Zero,
    Dot,
    Dot0,
    E,
    ESign,
    E0,
    /// Inside a literal: the word and how many of its bytes were read.
    Literal(&'static [u8], usize),
}

/// What one byte did (Go's `scan*` opcodes, those the callers need).
#[derive(PartialEq, Eq)]
enum Op {
    Continue,
    /// A closing bracket: the value may be complete without looking further.
    EndContainer,
    /// The top-level value ended just before this byte.
    End,
}

struct Scanner {
    state: State,
    nest: Vec<Nest>,
}

/// Go's `quoteChar`: how a syntax error names the offending byte. Go converts the byte to the
/// rune of the same number (so `0xff` is `ÿ`) and quotes it as `strconv.Quote` does.
pub fn quote_char(c: u8) -> String {
    match c {
        b'\'' => r"'\''".into(),
        b'"' => "'\"'".into(),
        _ => format!("'{}'", go_quote_rune(char::from(c))),
    }
}

/// `strconv.Quote` of one rune without the surrounding quotes.
pub fn go_quote_rune(ch: char) -> String {
    match ch {
        '\x07' => r"\a".into(),
        '\x08' => r"\b".into(),
        '\x0c' => r"\f".into(),
        '\n' => r"\n".into(),
        '\r' => r"\r".into(),
        '\t' => r"\t".into(),
        '\x0b' => r"\v".into(),
        '\\' => r"\\".into(),
        '"' => "\\\"".into(),
        c if go_is_print(c) => c.to_string(),
        c if (c as u32) < 0x80 => format!("\\x{:02x}", c as u32),
        c if (c as u32) < 0x10000 => format!("\\u{:04x}", c as u32),
        c => format!("\\U{:08x}", c as u32),
    }
}

/// `strconv.Quote`: `s` in double quotes, escaped as Go escapes it (bytes that are not UTF-8
/// as `\xNN`). The `%q` of Go's error messages.
pub fn go_quote(s: &[u8]) -> String {
    let mut out = String::from("\"");
    for chunk in s.utf8_chunks() {
        for ch in chunk.valid().chars() {
            out.push_str(&go_quote_rune(ch));
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.IsPrint`: exact for Latin-1 (above 0x7e only 0x7f-0xa0 and the soft hyphen
/// are unprintable); above it, control characters and spaces other than ' ' are not.
fn go_is_print(c: char) -> bool {
    match c as u32 {
        0x20..=0x7e | 0xa1..=0xac | 0xae..=0xff => true,
        0..=0xff => false,
        _ => !c.is_control() && !c.is_whitespace(),
    }
}

fn invalid(c: u8, context: &str) -> JsonError {
    JsonError(format!("invalid character {} {context}", quote_char(c)))
}

pub fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

impl Scanner {
    fn new() -> Scanner {
        Scanner { state: State::BeginValue, nest: Vec::new() }
    }

    fn push(&mut self, c: u8, nest: Nest, next: State) -> Result<Op> {
        self.nest.push(nest);
        if self.nest.len() > NESTING_MAX {
            return Err(invalid(c, "exceeded max depth"));
        }
        self.state = next;
        Ok(Op::Continue)
    }

    /// Steps over `c`; the error is Go's message for the first byte that cannot be there.
    fn step(&mut self, c: u8) -> Result<Op> {
        use State::*;
        match self.state {
            BeginValueOrEmpty => {
                if is_space(c) {
                    return Ok(Op::Continue);
                }
                if c == b']' {
                    return self.end_value(c);
                }
                self.begin_value(c)
            }
            BeginValue => self.begin_value(c),
            BeginStringOrEmpty => {
                if is_space(c) {
                    return Ok(Op::Continue);
                }
                if c == b'}' {
                    let last = self.nest.len() - 1;
                    self.nest[last] = Nest::ObjectValue;
                    return self.end_value(c);
                }
                self.begin_string(c)
            }
            BeginString => self.begin_string(c),
            EndValue => self.end_value(c),
            EndTop => {
                if !is_space(c) {
                    return Err(invalid(c, "after top-level value"));
                }
                Ok(Op::Continue)
            }
            InString => {
                match c {
                    b'"' => self.state = EndValue,
                    b'\\' => self.state = InStringEsc,
                    c if c < 0x20 => return Err(invalid(c, "in string literal")),
                    _ => {}
                }
                Ok(Op::Continue)
            }
            InStringEsc => {
                match c {
                    b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => self.state = InString,
                    b'u' => self.state = InStringEscU(0),
                    c => return Err(invalid(c, "in string escape code")),
                }
                Ok(Op::Continue)
            }
            InStringEscU(n) => {
                if !c.is_ascii_hexdigit() {
                    return Err(invalid(c, "in \\u hexadecimal character escape"));
                }
                self.state = if n == 3 { InString } else { InStringEscU(n + 1) };
                Ok(Op::Continue)
            }
            Neg => match c {
                b'0' => self.then(Zero),
                b'1'..=b'9' => self.then(One),
                c => Err(invalid(c, "in numeric literal")),
            },
            One => match c {
                b'0'..=b'9' => Ok(Op::Continue),
                c => self.after_zero(c),
            },
            Zero => self.after_zero(c),
            Dot => match c {
                b'0'..=b'9' => self.then(Dot0),
                c => Err(invalid(c, "after decimal point in numeric literal")),
            },
            Dot0 => match c {
                b'0'..=b'9' => Ok(Op::Continue),
                b'e' | b'E' => self.then(E),
                c => self.end_value(c),
            },
            E => match c {
                b'+' | b'-' => self.then(ESign),
                c => self.e_sign(c),
            },
            ESign => self.e_sign(c),
            E0 => match c {
                b'0'..=b'9' => Ok(Op::Continue),
                c => self.end_value(c),
            },
            Literal(word, at) => {
                if c != word[at] {
                    let word_text = std::str::from_utf8(word).unwrap_or("");
                    let expecting = quote_char(word[at]);
                    return Err(invalid(c, &format!("in literal {word_text} (expecting {expecting})")));
                }
                self.state = if at + 1 == word.len() { EndValue } else { Literal(word, at + 1) };
                Ok(Op::Continue)
            }
        }
    }

    fn then(&mut self, state: State) -> Result<Op> {
        self.state = state;
        Ok(Op::Continue)
    }

    fn begin_value(&mut self, c: u8) -> Result<Op> {
        use State::*;
        match c {
            c if is_space(c) => Ok(Op::Continue),
            b'{' => self.push(c, Nest::ObjectKey, BeginStringOrEmpty),
            b'[' => self.push(c, Nest::ArrayValue, BeginValueOrEmpty),
            b'"' => self.then(InString),
            b'-' => self.then(Neg),
            b'0' => self.then(Zero),
            b'1'..=b'9' => self.then(One),
            b't' => self.then(Literal(b"true", 1)),
            b'f' => self.then(Literal(b"false", 1)),
            b'n' => self.then(Literal(b"null", 1)),
            c => Err(invalid(c, "looking for beginning of value")),
        }
    }

    fn begin_string(&mut self, c: u8) -> Result<Op> {
        match c {
            c if is_space(c) => Ok(Op::Continue),
            b'"' => self.then(State::InString),
            c => Err(invalid(c, "looking for beginning of object key string")),
        }
    }

    fn after_zero(&mut self, c: u8) -> Result<Op> {
        match c {
            b'.' => self.then(State::Dot),
            b'e' | b'E' => self.then(State::E),
            c => self.end_value(c),
        }
    }

    fn e_sign(&mut self, c: u8) -> Result<Op> {
        match c {
            b'0'..=b'9' => self.then(State::E0),
            c => Err(invalid(c, "in exponent of numeric literal")),
        }
    }

    /// After a value inside whatever is open (or at the top).
    fn end_value(&mut self, c: u8) -> Result<Op> {
        let Some(&top) = self.nest.last() else {
            // The top-level value ended before this byte; what the byte is, is the caller's
            // business (a decoder ignores it).
            self.state = State::EndTop;
            return Ok(Op::End);
        };
        if is_space(c) {
            self.state = State::EndValue;
            return Ok(Op::Continue);
        }
        let last = self.nest.len() - 1;
        match (top, c) {
            (Nest::ObjectKey, b':') => {
                self.nest[last] = Nest::ObjectValue;
                self.then(State::BeginValue)
            }
            (Nest::ObjectKey, c) => Err(invalid(c, "after object key")),
            (Nest::ObjectValue, b',') => {
                self.nest[last] = Nest::ObjectKey;
                self.then(State::BeginString)
            }
            (Nest::ObjectValue, b'}') | (Nest::ArrayValue, b']') => {
                self.nest.pop();
                self.state = if self.nest.is_empty() { State::EndTop } else { State::EndValue };
                Ok(Op::EndContainer)
            }
            (Nest::ObjectValue, c) => Err(invalid(c, "after object key:value pair")),
            (Nest::ArrayValue, b',') => self.then(State::BeginValue),
            (Nest::ArrayValue, c) => Err(invalid(c, "after array element")),
        }
    }

    /// Whether the top-level value is complete.
    fn done(&self) -> bool {
        self.state == State::EndTop
    }
}

/// Which of Go's readers is scanning: they differ only at the end of input.
#[derive(Clone, Copy)]
enum Mode {
    /// `json.Decoder`: input ending inside a value is `io.ErrUnexpectedEOF`.
    Decode,
    /// `json.Unmarshal`: the scanner steps over one more space, whose error (`-` alone is
    /// "invalid character ' ' in numeric literal") wins over "unexpected end of JSON input".
    Unmarshal,
}

/// Scans from `at` to the end of one value: its start and end, `None` at the end of input.
fn scan_value(s: &[u8], at: usize, mode: Mode) -> Result<Option<(usize, usize)>> {
    let Some(start) = s[at..].iter().position(|c| !is_space(*c)).map(|p| at + p) else {
        return Ok(None);
    };
    let mut scanner = Scanner::new();
    let mut i = start;
    while i < s.len() {
        // The bulk of a body is string bytes: skip the plain ones without stepping.
        if scanner.state == State::InString {
            let plain = s[i..].iter().position(|c| *c == b'"' || *c == b'\\' || *c < 0x20).unwrap_or(s.len() - i);
            i += plain;
            if i == s.len() {
                break;
            }
        }
        match scanner.step(s[i])? {
            Op::Continue => {}
            Op::End => return Ok(Some((start, i))),
            Op::EndContainer if scanner.done() => return Ok(Some((start, i + 1))),
            Op::EndContainer => {}
        }
        i += 1;
    }
    // Go's `scanner.eof`: a space after the input completes a number, nothing else.
    match (scanner.step(b' '), mode) {
        (Ok(Op::End), _) => Ok(Some((start, s.len()))),
        (Err(e), Mode::Unmarshal) => Err(e),
        (_, Mode::Unmarshal) => Err(JsonError(UNEXPECTED_END.into())),
        (_, Mode::Decode) => Err(JsonError("unexpected EOF".into())),
    }
}

const UNEXPECTED_END: &str = "unexpected end of JSON input";

/// Go's `json.Decoder` over a request body: successive top-level values.
pub struct Decoder<'a> {
    input: &'a [u8],
    at: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(input: &'a [u8]) -> Decoder<'a> {
        Decoder { input, at: 0 }
    }

    /// The next value's bytes, `None` when only whitespace is left (Go's `io.EOF`).
    pub fn next_value(&mut self) -> Result<Option<&'a [u8]>> {
        match scan_value(self.input, self.at, Mode::Decode)? {
            Some((start, end)) => {
                self.at = end;
                Ok(Some(&self.input[start..end]))
            }
            None => Ok(None),
        }
    }
}

/// `json.Unmarshal`'s syntax check: `input` must be exactly one value, with only whitespace
/// around it.
pub fn check_valid(input: &[u8]) -> Result<()> {
    let Some((_, end)) = scan_value(input, 0, Mode::Unmarshal)? else {
        return Err(JsonError(UNEXPECTED_END.into()));
    };
    match input[end..].iter().find(|c| !is_space(**c)) {
        Some(c) => Err(invalid(*c, "after top-level value")),
        None => Ok(()),
    }
}

/// The end of the valid value starting at `s[at]` (after whitespace): for walking a document
/// the scanner accepted, without recursion.
pub fn value_end(s: &[u8], at: usize) -> usize {
    match scan_value(s, at, Mode::Decode) {
        Ok(Some((_, end))) => end,
        _ => s.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(input: &str) -> Result<Option<&str>> {
        Decoder::new(input.as_bytes()).next_value().map(|v| v.map(|v| std::str::from_utf8(v).unwrap()))
    }

    fn syntax(input: &str) -> String {
        first(input).unwrap_err().0
    }

    #[test]
    fn syntax_errors_are_gos() {
        assert_eq!(syntax("{\"key\":"), "unexpected EOF");
        assert_eq!(syntax("not json"), "invalid character 'o' in literal null (expecting 'u')");
        assert_eq!(syntax("abc"), "invalid character 'a' looking for beginning of value");
        assert_eq!(syntax("{\"a\" 1}"), "invalid character '1' after object key");
        assert_eq!(syntax("{\"a\":1 \"b\"}"), "invalid character '\"' after object key:value pair");
        assert_eq!(syntax("{a:1}"), "invalid character 'a' looking for beginning of object key string");
        assert_eq!(syntax("[1 2]"), "invalid character '2' after array element");
        assert_eq!(syntax("-x"), "invalid character 'x' in numeric literal");
        assert_eq!(syntax("1.x"), "invalid character 'x' after decimal point in numeric literal");
        assert_eq!(syntax("1ex"), "invalid character 'x' in exponent of numeric literal");
        assert_eq!(syntax("\"\\q\""), "invalid character 'q' in string escape code");
        assert_eq!(syntax("\"\\u12g\""), "invalid character 'g' in \\u hexadecimal character escape");
        assert_eq!(syntax("\"a\nb\""), "invalid character '\\n' in string literal");
        assert_eq!(syntax("\"\x01\""), "invalid character '\\x01' in string literal");
        assert_eq!(syntax("\\"), "invalid character '\\\\' looking for beginning of value");
        assert_eq!(syntax("'"), "invalid character '\\'' looking for beginning of value");
        // Go names a byte by the rune of its number.
        assert_eq!(first("\u{ff}").unwrap_err().0, "invalid character 'Ã' looking for beginning of value");
        assert_eq!(
            Decoder::new(b"\xff").next_value().unwrap_err().0,
            "invalid character '\u{ff}' looking for beginning of value"
        );
        assert_eq!(
            Decoder::new(b"\x80").next_value().unwrap_err().0,
            r"invalid character '\u0080' looking for beginning of value"
        );
        assert_eq!(
            Decoder::new(b"\x07").next_value().unwrap_err().0,
            r"invalid character '\a' looking for beginning of value"
        );
    }

    #[test]
    fn the_decoder_takes_one_value_and_ignores_what_follows() {
        assert_eq!(
            first(" {\"a\":[1,2.5e3,-0,\"x\\u00e9\",true,null,{}]} x"),
            Ok(Some("{\"a\":[1,2.5e3,-0,\"x\\u00e9\",true,null,{}]}"))
        );
        assert_eq!(first("{\"key\":\"AA==\"}}"), Ok(Some("{\"key\":\"AA==\"}")));
        assert_eq!(first("\"s\"x"), Ok(Some("\"s\"")));
        assert_eq!(first("12"), Ok(Some("12")));
        assert_eq!(first("12 "), Ok(Some("12")));
        assert_eq!(first(" \n "), Ok(None));
        assert_eq!(first(""), Ok(None));
        assert_eq!(syntax("tru"), "unexpected EOF");
        assert_eq!(syntax("1."), "unexpected EOF");
        let mut d = Decoder::new(b"{\"ID\":1}\n{\"ID\": 2}{}3 x");
        let values: Vec<_> = std::iter::from_fn(|| d.next_value().transpose()).take(5).collect();
        assert_eq!(values[..4], [Ok(&b"{\"ID\":1}"[..]), Ok(b"{\"ID\": 2}"), Ok(b"{}"), Ok(b"3")]);
        assert_eq!(values[4], Err(JsonError("invalid character 'x' looking for beginning of value".into())));
    }

    #[test]
    fn unmarshal_wants_exactly_one_value() {
        assert_eq!(check_valid(b" 1 "), Ok(()));
        assert_eq!(check_valid(b"").unwrap_err().0, "unexpected end of JSON input");
        assert_eq!(check_valid(b"  ").unwrap_err().0, "unexpected end of JSON input");
        assert_eq!(check_valid(b"1 2").unwrap_err().0, "invalid character '2' after top-level value");
        assert_eq!(check_valid(b"{").unwrap_err().0, "unexpected end of JSON input");
        assert_eq!(check_valid(b"-").unwrap_err().0, "invalid character ' ' in numeric literal");
        assert_eq!(syntax("-"), "unexpected EOF");
    }

    #[test]
    fn nesting_is_bounded_without_recursion() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(first(&deep(NESTING_MAX)).is_ok());
        assert_eq!(syntax(&deep(NESTING_MAX + 1)), "invalid character '[' exceeded max depth");
        assert_eq!(syntax(&deep(100_000)), "invalid character '[' exceeded max depth");
        let objects = format!("{}1{}", "{\"a\":".repeat(NESTING_MAX + 1), "}".repeat(NESTING_MAX + 1));
        assert_eq!(syntax(&objects), "invalid character '{' exceeded max depth");
        assert_eq!(value_end(b" [[1],{\"a\":\"]\"}] ,", 0), 16);
    }
}
