//! JSON as etcd's gRPC gateway reads and writes it (golang/protobuf `jsonpb` over Go's
//! `encoding/json`), without building value trees.
//!
//! Reading is two passes over the request body: [`validate`] checks the syntax and fails with
//! Go's exact scanner messages (`unexpected EOF`, `invalid character 'o' in literal null
//! (expecting 'u')`, ...), because Go rejects a malformed document before looking at any field;
//! then a [`Reader`] walks the now well-formed document field by field, converting values the
//! way jsonpb does (int64 from numbers or quoted numbers, bytes from strict standard base64,
//! enums by name or number, `null` as the default) with jsonpb's and Go's type-error messages.
//! Writing ([`Writer`]) follows jsonpb with `OrigName: true, EmitDefaults: false`.
//!
//! Runs on the HTTP event loops and pool threads; no state.

use std::fmt::Write as _;

/// A request body that etcd's gateway would refuse; the text is Go's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError(pub String);

pub type Result<T> = std::result::Result<T, JsonError>;

fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(JsonError(msg.into()))
}

/// Go's `quoteChar`: how the scanner names an offending byte.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => "'\\''".into(),
        b'"' => "'\"'".into(),
        b'\n' => "'\\n'".into(),
        b'\r' => "'\\r'".into(),
        b'\t' => "'\\t'".into(),
        0x20..=0x7e => format!("'{}'", c as char),
        _ => format!("'\\x{c:02x}'"),
    }
}

fn invalid(c: u8, context: &str) -> JsonError {
    JsonError(format!("invalid character {} {context}", quote_char(c)))
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

/// Checks that `input` holds exactly one JSON value (surrounded by whitespace), reporting the
/// first syntax error as Go's `encoding/json` scanner would.
pub fn validate(input: &[u8]) -> Result<()> {
    let mut v = Validator { s: input, i: 0 };
    v.space();
    v.value()?;
    v.space();
    if v.i < v.s.len() {
        return Err(invalid(v.s[v.i], "after top-level value"));
    }
    Ok(())
}

/// Splits a stream body into its successive JSON values (Go's `json.Decoder` reading one
/// message after another); a syntax error anywhere fails the stream, as it does in etcd.
pub fn documents(input: &[u8]) -> Result<Vec<&[u8]>> {
    let mut v = Validator { s: input, i: 0 };
    let mut docs = Vec::new();
    loop {
        v.space();
        if v.i >= v.s.len() {
            return Ok(docs);
        }
        let start = v.i;
        v.value()?;
        docs.push(&input[start..v.i]);
    }
}

struct Validator<'a> {
    s: &'a [u8],
    i: usize,
}

impl Validator<'_> {
    fn space(&mut self) {
        while self.i < self.s.len() && is_space(self.s[self.i]) {
            self.i += 1;
        }
    }

    fn next(&mut self) -> Result<u8> {
        let c = *self.s.get(self.i).ok_or_else(|| JsonError("unexpected EOF".into()))?;
        self.i += 1;
        Ok(c)
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn value(&mut self) -> Result<()> {
        match self.next()? {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => self.string(),
            b'-' => match self.next()? {
                c @ b'0'..=b'9' => self.number(c),
                c => Err(invalid(c, "in numeric literal")),
            },
            c @ b'0'..=b'9' => self.number(c),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            c => Err(invalid(c, "looking for beginning of value")),
        }
    }

    fn literal(&mut self, word: &str) -> Result<()> {
        for expected in word.bytes().skip(1) {
            let c = self.next()?;
            if c != expected {
                return Err(JsonError(format!(
                    "invalid character {} in literal {word} (expecting {})",
                    quote_char(c),
                    quote_char(expected)
                )));
            }
        }
        Ok(())
    }

    fn number(&mut self, first: u8) -> Result<()> {
        let digits = |v: &mut Self| {
            while matches!(v.peek(), Some(b'0'..=b'9')) {
                v.i += 1;
            }
        };
        if first != b'0' {
            digits(self);
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            match self.next()? {
                b'0'..=b'9' => digits(self),
                c => return Err(invalid(c, "after decimal point in numeric literal")),
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            let mut c = self.next()?;
            if c == b'+' || c == b'-' {
                c = self.next()?;
            }
            match c {
                b'0'..=b'9' => digits(self),
                c => return Err(invalid(c, "in exponent of numeric literal")),
            }
        }
        Ok(())
    }

    fn string(&mut self) -> Result<()> {
        loop {
            match self.next()? {
                b'"' => return Ok(()),
                b'\\' => match self.next()? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' => {
                        for _ in 0..4 {
                            let c = self.next()?;
                            if !c.is_ascii_hexdigit() {
                                return Err(invalid(c, "in \\u hexadecimal character escape"));
                            }
                        }
                    }
                    c => return Err(invalid(c, "in string escape code")),
                },
                c if c < 0x20 => return Err(invalid(c, "in string literal")),
                _ => {}
            }
        }
    }

    fn object(&mut self) -> Result<()> {
        self.space();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.space();
            match self.next()? {
                b'"' => self.string()?,
                c => return Err(invalid(c, "looking for beginning of object key string")),
            }
            self.space();
            match self.next()? {
                b':' => {}
                c => return Err(invalid(c, "after object key")),
            }
            self.space();
            self.value()?;
            self.space();
            match self.next()? {
                b',' => {}
                b'}' => return Ok(()),
                c => return Err(invalid(c, "after object key:value pair")),
            }
        }
    }

    fn array(&mut self) -> Result<()> {
        self.space();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.space();
            self.value()?;
            self.space();
            match self.next()? {
                b',' => {}
                b']' => return Ok(()),
                c => return Err(invalid(c, "after array element")),
            }
        }
    }
}

/// The kind of a JSON value, named as Go's type errors name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Object,
    Array,
    String,
    Number,
    Bool,
    Null,
}

impl Kind {
    fn go_name(self) -> &'static str {
        match self {
            Kind::Object => "object",
            Kind::Array => "array",
            Kind::String => "string",
            Kind::Number => "number",
            Kind::Bool => "bool",
            Kind::Null => "null",
        }
    }
}

/// A cursor over a document that [`validate`] accepted. Its methods therefore never meet a
/// syntax error; they report only type errors.
pub struct Reader<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    /// Validates `input`, then positions a reader at its top-level value. A body of nothing
    /// but whitespace is accepted (Go's decoder reports `io.EOF`, which the gateway ignores)
    /// and reads as empty.
    pub fn new(input: &'a [u8]) -> Result<Reader<'a>> {
        if !input.iter().all(|c| is_space(*c)) {
            validate(input)?;
        }
        let mut r = Reader { s: input, i: 0 };
        r.space();
        Ok(r)
    }

    /// A reader over an empty document, which reads as an empty object.
    pub fn is_empty(&self) -> bool {
        self.i >= self.s.len()
    }

    fn space(&mut self) {
        while self.i < self.s.len() && is_space(self.s[self.i]) {
            self.i += 1;
        }
    }

    pub fn kind(&self) -> Kind {
        match self.s.get(self.i) {
            Some(b'{') => Kind::Object,
            Some(b'[') => Kind::Array,
            Some(b'"') => Kind::String,
            Some(b't' | b'f') => Kind::Bool,
            Some(b'n') | None => Kind::Null,
            _ => Kind::Number,
        }
    }

    /// Reads an object (a message), calling `field` with each key; `field` must consume the
    /// value (or call [`Reader::skip`]). `null` reads as an empty object.
    pub fn object(&mut self, mut field: impl FnMut(&str, &mut Reader<'a>) -> Result<()>) -> Result<()> {
        self.container(Kind::Object, "map[string]json.RawMessage", b'}', |r| {
            let key = unescape(r.raw_string());
            r.space();
            r.i += 1; // ':'
            r.space();
            field(&key, r)
        })
    }

    /// Reads an array, calling `item` for each element. `null` reads as empty; `go_type` names
    /// the target in the error for a non-array.
    pub fn array(&mut self, go_type: &str, item: impl FnMut(&mut Reader<'a>) -> Result<()>) -> Result<()> {
        self.container(Kind::Array, go_type, b']', item)
    }

    /// The walk shared by objects and arrays: `member` reads one member at a time.
    fn container(
        &mut self,
        kind: Kind,
        go_type: &str,
        close: u8,
        mut member: impl FnMut(&mut Reader<'a>) -> Result<()>,
    ) -> Result<()> {
        match self.kind() {
            Kind::Null => {
                self.skip();
                return Ok(());
            }
            k if k == kind => {}
            other => {
                self.skip();
                return err(format!("json: cannot unmarshal {} into Go value of type {go_type}", other.go_name()));
            }
        }
        self.i += 1;
        loop {
            self.space();
            match self.s[self.i] {
                c if c == close => {
                    self.i += 1;
                    return Ok(());
                }
                b',' => self.i += 1,
                _ => {
                    member(self)?;
                    self.space();
                }
            }
        }
    }

    /// Skips one value.
    pub fn skip(&mut self) {
        self.space();
        match self.s.get(self.i) {
            Some(b'"') => {
                self.raw_string();
            }
            Some(b'{' | b'[') => {
                let mut depth = 0usize;
                while self.i < self.s.len() {
                    match self.s[self.i] {
                        b'"' => {
                            self.raw_string();
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return;
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
            }
            _ => {
                while self.i < self.s.len()
                    && !matches!(self.s[self.i], b',' | b'}' | b']')
                    && !is_space(self.s[self.i])
                {
                    self.i += 1;
                }
            }
        }
    }

    /// The raw text of a string token without its quotes (escapes untouched).
    fn raw_string(&mut self) -> &'a [u8] {
        let start = self.i + 1;
        let mut i = start;
        while self.s[i] != b'"' {
            i += if self.s[i] == b'\\' { 2 } else { 1 };
        }
        self.i = i + 1;
        &self.s[start..i]
    }

    /// The raw text of a scalar token (number or literal).
    fn raw_scalar(&mut self) -> &'a [u8] {
        let start = self.i;
        self.skip();
        &self.s[start..self.i]
    }

    fn null(&mut self) -> bool {
        if self.kind() == Kind::Null {
            self.skip();
            return true;
        }
        false
    }

    pub fn bool(&mut self) -> Result<bool> {
        match self.kind() {
            Kind::Null => {
                self.skip();
                Ok(false)
            }
            Kind::Bool => Ok(self.raw_scalar() == b"true"),
            other => {
                self.skip();
                err(format!("json: cannot unmarshal {} into Go value of type bool", other.go_name()))
            }
        }
    }

    /// An int64 the way jsonpb reads it: a number, or a string holding one.
    pub fn i64(&mut self) -> Result<i64> {
        self.integer("int64", |t| t.parse::<i64>().ok())
    }

    pub fn u64(&mut self) -> Result<u64> {
        self.integer("uint64", |t| t.parse::<u64>().ok())
    }

    pub fn i32(&mut self) -> Result<i32> {
        self.integer("int32", |t| t.parse::<i32>().ok())
    }

    fn integer<T: Default>(&mut self, go_type: &str, parse: impl Fn(&str) -> Option<T>) -> Result<T> {
        if self.null() {
            return Ok(T::default());
        }
        // jsonpb unquotes a string and parses what is inside as a JSON value.
        let text = match self.kind() {
            Kind::String => {
                let inner = unescape(self.raw_string());
                validate(inner.as_bytes())?;
                inner
            }
            Kind::Number => String::from_utf8_lossy(self.raw_scalar()).into_owned(),
            other => {
                self.skip();
                return err(format!("json: cannot unmarshal {} into Go value of type {go_type}", other.go_name()));
            }
        };
        let kind = Reader { s: text.as_bytes(), i: 0 }.kind();
        if kind != Kind::Number {
            return err(format!("json: cannot unmarshal {} into Go value of type {go_type}", kind.go_name()));
        }
        parse(&text)
            .ok_or_else(|| JsonError(format!("json: cannot unmarshal number {text} into Go value of type {go_type}")))
    }

    pub fn string(&mut self) -> Result<String> {
        match self.kind() {
            Kind::Null => {
                self.skip();
                Ok(String::new())
            }
            Kind::String => Ok(unescape(self.raw_string())),
            other => {
                self.skip();
                err(format!("json: cannot unmarshal {} into Go value of type string", other.go_name()))
            }
        }
    }

    /// Bytes: a string of strict, padded, standard base64 (newlines ignored), as Go decodes it.
    pub fn bytes(&mut self) -> Result<Vec<u8>> {
        match self.kind() {
            Kind::Null => {
                self.skip();
                Ok(Vec::new())
            }
            Kind::String => {
                let raw = self.raw_string();
                if raw.contains(&b'\\') {
                    base64_decode(unescape(raw).as_bytes())
                } else {
                    base64_decode(raw)
                }
            }
            other => {
                self.skip();
                err(format!("json: cannot unmarshal {} into Go value of type []uint8", other.go_name()))
            }
        }
    }

    /// An enum by name or number; `names` lists the names by value, `go_name` is the proto type.
    pub fn enumeration(&mut self, names: &[&str], go_name: &str) -> Result<i32> {
        if self.kind() == Kind::String {
            let name = unescape(self.raw_string());
            return match names.iter().position(|n| *n == name) {
                Some(value) => Ok(value as i32),
                None => err(format!("unknown value {name:?} for enum {go_name}")),
            };
        }
        self.i32()
    }
}

/// Decodes a JSON string's escapes (input is known valid).
fn unescape(raw: &[u8]) -> String {
    if !raw.contains(&b'\\') {
        return String::from_utf8_lossy(raw).into_owned();
    }
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'\\' {
            out.push(raw[i]);
            i += 1;
            continue;
        }
        let c = raw[i + 1];
        i += 2;
        match c {
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'u' => {
                let hex = |s: &[u8]| u32::from_str_radix(std::str::from_utf8(s).unwrap_or("0"), 16).unwrap_or(0);
                let mut code = hex(&raw[i..i + 4]);
                i += 4;
                if (0xd800..0xdc00).contains(&code) && raw.get(i..i + 2) == Some(b"\\u") {
                    let low = hex(&raw[i + 2..i + 6]);
                    if (0xdc00..0xe000).contains(&low) {
                        code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
                        i += 6;
                    }
                }
                let ch = char::from_u32(code).unwrap_or('\u{fffd}');
                out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
            }
            other => out.push(other),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_value(c: u8) -> Option<u32> {
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
pub fn base64_decode(src: &[u8]) -> Result<Vec<u8>> {
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
            if let Some(v) = b64_value(c) {
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

/// Writes JSON the way jsonpb does with `OrigName` and without defaults: the caller skips
/// zero values; 64-bit integers are quoted; bytes are padded standard base64.
pub struct Writer {
    buf: String,
    /// Per open object/array: whether it has an element yet (for commas).
    open: Vec<bool>,
    /// jsonpb quotes 64-bit integers; etcdctl's `-w json` (Go's encoding/json) does not.
    quote_int64: bool,
}

impl Default for Writer {
    fn default() -> Self {
        Writer { buf: String::with_capacity(256), open: Vec::new(), quote_int64: true }
    }
}

impl Writer {
    /// A writer for etcdctl's `-w json` output: 64-bit integers as bare numbers.
    pub fn etcdctl() -> Writer {
        Writer { quote_int64: false, ..Writer::default() }
    }

    fn int(&mut self, v: impl std::fmt::Display) {
        if self.quote_int64 {
            let _ = write!(self.buf, "\"{v}\"");
        } else {
            let _ = write!(self.buf, "{v}");
        }
    }

    pub fn finish(self) -> String {
        self.buf
    }

    fn comma(&mut self) {
        if let Some(has) = self.open.last_mut() {
            if *has {
                self.buf.push(',');
            }
            *has = true;
        }
    }

    fn key(&mut self, name: &str) {
        self.comma();
        self.buf.push('"');
        self.buf.push_str(name);
        self.buf.push_str("\":");
    }

    pub fn begin_object(&mut self) {
        self.comma();
        self.buf.push('{');
        self.open.push(false);
    }

    pub fn begin_field_object(&mut self, name: &str) {
        self.key(name);
        self.buf.push('{');
        self.open.push(false);
    }

    pub fn end_object(&mut self) {
        self.open.pop();
        self.buf.push('}');
    }

    pub fn begin_array(&mut self, name: &str) {
        self.key(name);
        self.buf.push('[');
        self.open.push(false);
    }

    pub fn end_array(&mut self) {
        self.open.pop();
        self.buf.push(']');
    }

    /// A 64-bit integer field, quoted, omitted when zero.
    pub fn i64(&mut self, name: &str, v: i64) {
        if v != 0 {
            self.key(name);
            self.int(v);
        }
    }

    /// A 64-bit integer written even when zero (a oneof member, where presence is meaning).
    pub fn i64_always(&mut self, name: &str, v: i64) {
        self.key(name);
        self.int(v);
    }

    pub fn u64(&mut self, name: &str, v: u64) {
        if v != 0 {
            self.key(name);
            self.int(v);
        }
    }

    /// A 32-bit integer field: a bare number, omitted when zero.
    pub fn u32(&mut self, name: &str, v: u32) {
        if v != 0 {
            self.key(name);
            let _ = write!(self.buf, "{v}");
        }
    }

    pub fn bool(&mut self, name: &str, v: bool) {
        if v {
            self.key(name);
            self.buf.push_str("true");
        }
    }

    pub fn bytes(&mut self, name: &str, v: &[u8]) {
        if !v.is_empty() {
            self.key(name);
            self.buf.push('"');
            base64_encode(&mut self.buf, v);
            self.buf.push('"');
        }
    }

    pub fn string(&mut self, name: &str, v: &str) {
        if !v.is_empty() {
            self.key(name);
            self.quoted(v);
        }
    }

    /// An element of a bytes array.
    pub fn bytes_item(&mut self, v: &[u8]) {
        self.comma();
        self.buf.push('"');
        base64_encode(&mut self.buf, v);
        self.buf.push('"');
    }

    /// An element of a string array.
    pub fn string_item(&mut self, v: &str) {
        self.comma();
        self.quoted(v);
    }

    /// An enum field by name, omitted at its zero value.
    pub fn enumeration(&mut self, name: &str, value: i32, names: &[&str]) {
        if value != 0 {
            self.key(name);
            match names.get(value as usize) {
                Some(n) => {
                    self.buf.push('"');
                    self.buf.push_str(n);
                    self.buf.push('"');
                }
                None => {
                    let _ = write!(self.buf, "{value}");
                }
            }
        }
    }

    fn quoted(&mut self, v: &str) {
        self.buf.push('"');
        for c in v.chars() {
            match c {
                '"' => self.buf.push_str("\\\""),
                '\\' => self.buf.push_str("\\\\"),
                '\n' => self.buf.push_str("\\n"),
                '\r' => self.buf.push_str("\\r"),
                '\t' => self.buf.push_str("\\t"),
                // Go's encoder escapes HTML-significant characters too.
                '<' | '>' | '&' => {
                    let _ = write!(self.buf, "\\u{:04x}", c as u32);
                }
                c if (c as u32) < 0x20 => {
                    let _ = write!(self.buf, "\\u{:04x}", c as u32);
                }
                c => self.buf.push(c),
            }
        }
        self.buf.push('"');
    }
}

fn base64_encode(out: &mut String, data: &[u8]) {
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        out.push(B64[(n >> 18) as usize & 63] as char);
        out.push(B64[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 { B64[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if chunk.len() > 2 { B64[n as usize & 63] as char } else { '=' });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syntax(input: &str) -> String {
        validate(input.as_bytes()).unwrap_err().0
    }

    #[test]
    fn syntax_errors_are_gos() {
        assert_eq!(syntax("{\"key\":"), "unexpected EOF");
        assert_eq!(syntax("not json"), "invalid character 'o' in literal null (expecting 'u')");
        assert_eq!(syntax("abc"), "invalid character 'a' looking for beginning of value");
        assert_eq!(syntax("{\"a\" 1}"), "invalid character '1' after object key");
        assert_eq!(syntax("{\"a\":1 \"b\"}"), "invalid character '\"' after object key:value pair");
        assert_eq!(syntax("{} x"), "invalid character 'x' after top-level value");
        assert_eq!(syntax("{a:1}"), "invalid character 'a' looking for beginning of object key string");
        assert!(validate(b" {\"a\":[1,2.5e3,-0,\"x\\u00e9\",true,null,{}]} ").is_ok());
    }

    #[test]
    fn stream_bodies_split_into_documents() {
        let docs = documents(b"{\"ID\":1}\n{\"ID\": 2} {}").unwrap();
        assert_eq!(docs, vec![&b"{\"ID\":1}"[..], b"{\"ID\": 2}", b"{}"]);
        assert_eq!(documents(b"{\"ID\":").unwrap_err().0, "unexpected EOF");
        assert!(documents(b"  ").unwrap().is_empty());
    }

    #[test]
    fn base64_errors_are_gos() {
        let e = |s: &str| base64_decode(s.as_bytes()).unwrap_err().0;
        assert_eq!(e("!!!"), "illegal base64 data at input byte 0");
        assert_eq!(e("YmFy="), "illegal base64 data at input byte 4");
        assert_eq!(e("Zm8"), "illegal base64 data at input byte 0");
        assert_eq!(e("-_-_"), "illegal base64 data at input byte 0");
        assert_eq!(base64_decode(b"Zm9v\n").unwrap(), b"foo");
        assert_eq!(base64_decode(b"Zm8=").unwrap(), b"fo");
        assert_eq!(base64_decode(b"Zg==").unwrap(), b"f");
        assert_eq!(base64_decode(b"").unwrap(), b"");
        for len in 0..10 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37) as u8).collect();
            let mut s = String::new();
            base64_encode(&mut s, &data);
            assert_eq!(base64_decode(s.as_bytes()).unwrap(), data);
        }
    }

    #[test]
    fn integers_follow_jsonpb() {
        let read = |s: &str| Reader::new(s.as_bytes()).unwrap().i64();
        assert_eq!(read("\"2\""), Ok(2));
        assert_eq!(read("2"), Ok(2));
        assert_eq!(read("\"-5\""), Ok(-5));
        assert_eq!(read("null"), Ok(0));
        assert_eq!(read("\"abc\"").unwrap_err().0, "invalid character 'a' looking for beginning of value");
        assert_eq!(read("1.5").unwrap_err().0, "json: cannot unmarshal number 1.5 into Go value of type int64");
        assert_eq!(
            read("\"9223372036854775808\"").unwrap_err().0,
            "json: cannot unmarshal number 9223372036854775808 into Go value of type int64"
        );
        let big = Reader::new(b"18446744073709551615").unwrap().u64();
        assert_eq!(big, Ok(u64::MAX), "ids above 2^53 are exact");
        assert_eq!(
            Reader::new(b"\"true\"").unwrap().bool().unwrap_err().0,
            "json: cannot unmarshal string into Go value of type bool"
        );
    }

    #[test]
    fn objects_take_the_last_duplicate_and_skip_unknown_fields() {
        let mut r = Reader::new(br#"{"key":"Zm9v","x":{"y":[1,"}"]},"key":"enp6"}"#).unwrap();
        let mut key = Vec::new();
        r.object(|name, r| {
            match name {
                "key" => key = r.bytes()?,
                _ => r.skip(),
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(key, b"zzz");
        let mut r = Reader::new(b"[]").unwrap();
        assert_eq!(
            r.object(|_, _| Ok(())).unwrap_err().0,
            "json: cannot unmarshal array into Go value of type map[string]json.RawMessage"
        );
    }

    #[test]
    fn writer_omits_defaults_and_quotes_int64() {
        let mut w = Writer::default();
        w.begin_object();
        w.begin_field_object("header");
        w.u64("cluster_id", 7);
        w.i64("revision", 0);
        w.end_object();
        w.bytes("key", b"foo");
        w.bool("more", false);
        w.u32("hash", 5);
        w.enumeration("type", 1, &["PUT", "DELETE"]);
        w.end_object();
        assert_eq!(w.finish(), r#"{"header":{"cluster_id":"7"},"key":"Zm9v","hash":5,"type":"DELETE"}"#);
    }
}
