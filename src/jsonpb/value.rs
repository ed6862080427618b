//! Reading a scanned JSON value the way golang/protobuf 1.3's `jsonpb.Unmarshaler` does (the
//! version etcd 3.4.23's gateway runs), with Go's `encoding/json` type errors.
//!
//! jsonpb reads a message level by level: `json.Unmarshal` of the object into
//! `map[string]json.RawMessage` (so a repeated key keeps its last value), then each field of
//! the Go struct in declaration order, taking its proto name or its JSON (camelCase) name, the
//! latter winning when both appear; oneof members after all other fields. Scalars follow
//! `encoding/json`, except that a number may come quoted (jsonpb strips the quotes without
//! unescaping and parses the inside as JSON) and an enum may come as its name. [`Fields`] and
//! the `read_*` functions here are those rules; the message tables in [`super::msg`] name the
//! fields.
//!
//! A [`Value`] is a view of bytes [`super::scan`] accepted, so nothing here meets a syntax
//! error except inside quoted numbers, and walking it never recurses: only nested messages
//! do, bounded by [`MESSAGE_DEPTH_MAX`].

use super::base64;
use super::scan::{self, is_space};
use super::{JsonError, Result};

/// Messages nested deeper than this are refused. prost decodes at most 100 nested messages, so
/// nothing deeper could be proposed anyway; the bound keeps the reader's recursion short.
pub const MESSAGE_DEPTH_MAX: usize = 100;

/// The kind of a JSON value, named as Go's type errors name it.
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

/// One well-formed JSON value (no surrounding whitespace).
#[derive(Clone, Copy, Debug)]
pub struct Value<'a> {
    raw: &'a [u8],
}

/// Go's `UnmarshalTypeError` text.
pub fn type_error(what: &str, go_type: &str) -> JsonError {
    JsonError(format!("json: cannot unmarshal {what} into Go value of type {go_type}"))
}

impl<'a> Value<'a> {
    /// A view of `raw`, which the scanner accepted as one value.
    pub fn new(raw: &'a [u8]) -> Value<'a> {
        Value { raw: trim(raw) }
    }

    pub fn kind(&self) -> Kind {
        match self.raw.first() {
            Some(b'{') => Kind::Object,
            Some(b'[') => Kind::Array,
            Some(b'"') => Kind::String,
            Some(b't' | b'f') => Kind::Bool,
            Some(b'n') | None => Kind::Null,
            _ => Kind::Number,
        }
    }

    pub fn is_null(&self) -> bool {
        self.kind() == Kind::Null
    }

    /// Go's type error for this value decoded into `go_type`.
    pub fn mismatch(&self, go_type: &str) -> JsonError {
        type_error(self.kind().go_name(), go_type)
    }

    /// The members of an object, in document order, or of an array's elements.
    fn members(&self) -> Members<'a> {
        Members { s: self.raw, at: 1, object: self.kind() == Kind::Object }
    }

    /// A string's bytes between its quotes, escapes untouched.
    fn quoted_inside(&self) -> &'a [u8] {
        &self.raw[1..self.raw.len() - 1]
    }

    /// A string's contents as Go's `unquote` makes them.
    fn unquoted(&self) -> String {
        unquote(self.quoted_inside())
    }

    /// The object's fields for a message (`json.Unmarshal` into a map): `null` has none.
    pub fn fields(&self) -> Result<Fields<'a>> {
        match self.kind() {
            Kind::Null => Ok(Fields { members: Vec::new() }),
            Kind::Object => {
                let mut members = Vec::new();
                let mut it = self.members();
                while let Some((key, value)) = it.next_member() {
                    members.push((key, value));
                }
                Ok(Fields { members })
            }
            _ => Err(self.mismatch("map[string]json.RawMessage")),
        }
    }

    /// A repeated field's elements (`json.Unmarshal` into `[]json.RawMessage`).
    pub fn elements(&self) -> Result<Vec<Value<'a>>> {
        match self.kind() {
            Kind::Null => Ok(Vec::new()),
            Kind::Array => {
                let mut it = self.members();
                Ok(std::iter::from_fn(|| it.next_element()).collect())
            }
            _ => Err(self.mismatch("[]json.RawMessage")),
        }
    }
}

fn trim(raw: &[u8]) -> &[u8] {
    let start = raw.iter().position(|c| !is_space(*c)).unwrap_or(raw.len());
    let end = raw.iter().rposition(|c| !is_space(*c)).map_or(start, |e| e + 1);
    &raw[start..end.max(start)]
}

/// A walk over the members of a scanned object or array.
struct Members<'a> {
    s: &'a [u8],
    /// The next byte to look at.
    at: usize,
    object: bool,
}

impl<'a> Members<'a> {
    fn skip_space_and(&mut self, separators: &[u8]) {
        while self.at < self.s.len() && (is_space(self.s[self.at]) || separators.contains(&self.s[self.at])) {
            self.at += 1;
        }
    }

    fn next_raw(&mut self) -> Option<&'a [u8]> {
        self.skip_space_and(b",");
        if self.at >= self.s.len() || matches!(self.s[self.at], b'}' | b']') {
            return None;
        }
        let start = self.at;
        self.at = scan::value_end(self.s, start);
        Some(&self.s[start..self.at])
    }

    fn next_element(&mut self) -> Option<Value<'a>> {
        self.next_raw().map(Value::new)
    }

    fn next_member(&mut self) -> Option<(Key<'a>, Value<'a>)> {
        debug_assert!(self.object);
        let key = Value::new(self.next_raw()?);
        self.skip_space_and(b":");
        let value = Value::new(self.next_raw()?);
        Some((Key(key.quoted_inside()), value))
    }
}

/// An object key as written (between its quotes).
#[derive(Clone, Copy, Debug)]
struct Key<'a>(&'a [u8]);

impl Key<'_> {
    fn is(&self, name: &str) -> bool {
        if self.0.contains(&b'\\') {
            unquote(self.0) == name
        } else {
            self.0 == name.as_bytes()
        }
    }
}

/// A message's fields as jsonpb sees them: by name, the last of a repeated key winning.
pub struct Fields<'a> {
    members: Vec<(Key<'a>, Value<'a>)>,
}

impl<'a> Fields<'a> {
    fn last(&self, name: &str) -> Option<Value<'a>> {
        self.members.iter().rev().find(|(k, _)| k.is(name)).map(|(_, v)| *v)
    }

    /// The field named `orig` (its proto name) or `camel` (its JSON name, which wins).
    pub fn take(&self, orig: &str, camel: &str) -> Option<Value<'a>> {
        self.last(camel).or_else(|| self.last(orig))
    }

    pub fn has(&self, orig: &str, camel: &str) -> bool {
        self.take(orig, camel).is_some()
    }
}

/// A bytes field: standard padded base64 in a string, or (as Go allows for `[]byte`) an array
/// of numbers 0-255.
pub fn read_bytes(v: Value) -> Result<Vec<u8>> {
    match v.kind() {
        Kind::Null => Ok(Vec::new()),
        Kind::String => {
            let inside = v.quoted_inside();
            if inside.contains(&b'\\') || !inside.is_ascii() {
                base64::decode(unquote(inside).as_bytes())
            } else {
                base64::decode(inside)
            }
        }
        Kind::Array => {
            let mut out = Vec::new();
            let mut first_error = None;
            for item in v.elements()? {
                // Go keeps decoding after a type error and reports the first.
                match read_unquoted_int::<u8>(item, "uint8") {
                    Ok(b) => out.push(b),
                    Err(e) => {
                        first_error.get_or_insert(e);
                        out.push(0);
                    }
                }
            }
            first_error.map_or(Ok(out), Err)
        }
        _ => Err(v.mismatch("[]uint8")),
    }
}

/// An integer as jsonpb reads one: a number, or a string whose inside is parsed as JSON
/// (quotes dropped, escapes not interpreted, whitespace allowed).
pub fn read_int<T: Integer>(v: Value, go_type: &str) -> Result<T> {
    if v.kind() != Kind::String {
        return read_unquoted_int(v, go_type);
    }
    let inside = v.quoted_inside();
    scan::check_valid(inside)?;
    read_unquoted_int(Value::new(inside), go_type)
}

/// `json.Unmarshal` of a value into an integer: `null` leaves it zero.
fn read_unquoted_int<T: Integer>(v: Value, go_type: &str) -> Result<T> {
    match v.kind() {
        Kind::Null => Ok(T::default()),
        Kind::Number => {
            let text = std::str::from_utf8(v.raw).unwrap_or("");
            T::parse(text).ok_or_else(|| type_error(&format!("number {text}"), go_type))
        }
        _ => Err(v.mismatch(go_type)),
    }
}

/// The integer types jsonpb reads, parsed as Go's `strconv.ParseInt`/`ParseUint` with the
/// target's overflow check.
pub trait Integer: Default + Sized {
    fn parse(text: &str) -> Option<Self>;
}

macro_rules! integer {
    ($($t:ty),*) => {$(
        impl Integer for $t {
            fn parse(text: &str) -> Option<$t> {
                text.parse().ok()
            }
        }
    )*};
}
integer!(i64, u64, i32, u32, u8);

pub fn read_bool(v: Value) -> Result<bool> {
    match v.kind() {
        Kind::Null => Ok(false),
        Kind::Bool => Ok(v.raw == b"true"),
        _ => Err(v.mismatch("bool")),
    }
}

pub fn read_string(v: Value) -> Result<String> {
    match v.kind() {
        Kind::Null => Ok(String::new()),
        Kind::String => Ok(v.unquoted()),
        _ => Err(v.mismatch("string")),
    }
}

/// An enum by name (the inside of the string, not unescaped) or by number, any number in
/// int32's range being accepted as jsonpb accepts it; `go_type` is the proto enum's Go name.
pub fn read_enum(v: Value, names: &[&str], go_type: &str) -> Result<i32> {
    if v.kind() != Kind::String {
        return read_unquoted_int(v, go_type);
    }
    let inside = v.quoted_inside();
    match names.iter().position(|n| n.as_bytes() == inside) {
        Some(value) => Ok(value as i32),
        None => Err(JsonError(format!("unknown value {} for enum {go_type}", scan::go_quote(inside)))),
    }
}

/// Go's `unquote` of a string's inside: escapes decoded, a lone surrogate and every byte that
/// is not UTF-8 replaced by U+FFFD.
pub fn unquote(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let plain = raw[i..].iter().position(|c| *c == b'\\').map_or(raw.len(), |p| i + p);
        push_lossy(&mut out, &raw[i..plain]);
        i = plain;
        if i >= raw.len() {
            break;
        }
        let c = raw[i + 1];
        i += 2;
        match c {
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'u' => {
                let hex = |s: &[u8]| std::str::from_utf8(s).ok().and_then(|s| u32::from_str_radix(s, 16).ok());
                let code = hex(&raw[i..i + 4]).unwrap_or(0xfffd);
                i += 4;
                if (0xd800..0xe000).contains(&code) {
                    let low =
                        (raw.get(i..i + 2) == Some(b"\\u")).then(|| raw.get(i + 2..i + 6).and_then(hex)).flatten();
                    match low {
                        Some(low) if code < 0xdc00 && (0xdc00..0xe000).contains(&low) => {
                            out.push(
                                char::from_u32(0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00))
                                    .unwrap_or('\u{fffd}'),
                            );
                            i += 6;
                        }
                        _ => out.push('\u{fffd}'),
                    }
                } else {
                    out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                }
            }
            other => out.push(char::from(other)),
        }
    }
    out
}

/// Appends `bytes`, replacing each byte of an invalid sequence by U+FFFD as Go's decoder does
/// (one per byte, where Rust's lossy conversion would merge a truncated sequence into one).
fn push_lossy(out: &mut String, bytes: &[u8]) {
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for _ in chunk.invalid() {
            out.push('\u{fffd}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(s: &str) -> Value<'_> {
        Value::new(s.as_bytes())
    }

    #[test]
    fn integers_follow_jsonpb() {
        let read = |s: &str| read_int::<i64>(value(s), "int64");
        assert_eq!(read("\"2\""), Ok(2));
        assert_eq!(read("2"), Ok(2));
        assert_eq!(read("\" 1 \""), Ok(1));
        assert_eq!(read("\"-5\""), Ok(-5));
        assert_eq!(read("-0"), Ok(0));
        assert_eq!(read("null"), Ok(0));
        assert_eq!(read("\"null\""), Ok(0));
        assert_eq!(read("\"abc\"").unwrap_err().0, "invalid character 'a' looking for beginning of value");
        assert_eq!(read("\"\"").unwrap_err().0, "unexpected end of JSON input");
        assert_eq!(read("\"1 2\"").unwrap_err().0, "invalid character '2' after top-level value");
        assert_eq!(read(r#""\u0031""#).unwrap_err().0, r"invalid character '\\' looking for beginning of value");
        assert_eq!(read("\"true\"").unwrap_err().0, "json: cannot unmarshal bool into Go value of type int64");
        assert_eq!(read("[1]").unwrap_err().0, "json: cannot unmarshal array into Go value of type int64");
        assert_eq!(read("1.5").unwrap_err().0, "json: cannot unmarshal number 1.5 into Go value of type int64");
        assert_eq!(read("1e2").unwrap_err().0, "json: cannot unmarshal number 1e2 into Go value of type int64");
        assert_eq!(
            read("\"9223372036854775808\"").unwrap_err().0,
            "json: cannot unmarshal number 9223372036854775808 into Go value of type int64"
        );
        assert_eq!(read_int::<u64>(value("18446744073709551615"), "uint64"), Ok(u64::MAX), "exact above 2^53");
        assert_eq!(
            read_bool(value("\"true\"")).unwrap_err().0,
            "json: cannot unmarshal string into Go value of type bool"
        );
    }

    #[test]
    fn enums_by_name_or_any_int32() {
        const NAMES: &[&str] = &["NONE", "ASCEND", "DESCEND"];
        let read = |s: &str| read_enum(value(s), NAMES, "etcdserverpb.RangeRequest_SortOrder");
        assert_eq!(read("\"DESCEND\""), Ok(2));
        assert_eq!(read("-1"), Ok(-1));
        assert_eq!(read("99"), Ok(99));
        assert_eq!(read("\"1\"").unwrap_err().0, "unknown value \"1\" for enum etcdserverpb.RangeRequest_SortOrder");
        assert_eq!(
            read(r#""\u0041SCEND""#).unwrap_err().0,
            r#"unknown value "\\u0041SCEND" for enum etcdserverpb.RangeRequest_SortOrder"#
        );
        assert_eq!(
            read("3000000000").unwrap_err().0,
            "json: cannot unmarshal number 3000000000 into Go value of type etcdserverpb.RangeRequest_SortOrder"
        );
        assert_eq!(
            read("true").unwrap_err().0,
            "json: cannot unmarshal bool into Go value of type etcdserverpb.RangeRequest_SortOrder"
        );
    }

    #[test]
    fn bytes_from_base64_or_an_array_of_numbers() {
        assert_eq!(read_bytes(value("\"Zm9v\"")), Ok(b"foo".to_vec()));
        assert_eq!(read_bytes(value(r#""Zm\u0039v""#)), Ok(b"foo".to_vec()));
        assert_eq!(read_bytes(value("[102, 111, 111]")), Ok(b"foo".to_vec()));
        assert_eq!(read_bytes(value("[]")), Ok(Vec::new()));
        assert_eq!(
            read_bytes(value("[1,\"a\",256]")).unwrap_err().0,
            "json: cannot unmarshal string into Go value of type uint8"
        );
        assert_eq!(
            read_bytes(value("[256]")).unwrap_err().0,
            "json: cannot unmarshal number 256 into Go value of type uint8"
        );
        assert_eq!(
            read_bytes(value("5")).unwrap_err().0,
            "json: cannot unmarshal number into Go value of type []uint8"
        );
    }

    #[test]
    fn fields_take_the_last_duplicate_and_prefer_the_json_name() {
        let v = value(
            r#"{"key":"Zm9v","x":{"y":[1,"}"]},"key":"enp6","range_end":"YQ==","rangeEnd":"Yg==","k\u0065y2":1}"#,
        );
        let f = v.fields().unwrap();
        assert_eq!(read_bytes(f.take("key", "key").unwrap()), Ok(b"zzz".to_vec()));
        assert_eq!(read_bytes(f.take("range_end", "rangeEnd").unwrap()), Ok(b"b".to_vec()));
        assert!(f.has("key2", "key2"));
        assert!(!f.has("y", "y"), "only top-level keys");
        assert_eq!(
            value("[]").fields().err().unwrap().0,
            "json: cannot unmarshal array into Go value of type map[string]json.RawMessage"
        );
        assert_eq!(
            value("{}").elements().err().unwrap().0,
            "json: cannot unmarshal object into Go value of type []json.RawMessage"
        );
        assert_eq!(value(" [ 1 , [2], {\"a\":3} ] ").elements().unwrap().len(), 3);
    }

    #[test]
    fn unquote_replaces_what_is_not_utf8_as_go_does() {
        assert_eq!(unquote(br"a\nb\u00e9\ud83d\ude00"), "a\nbé😀");
        assert_eq!(unquote(br"\ud83d\u0041"), "\u{fffd}A");
        assert_eq!(unquote(br"\ude00"), "\u{fffd}");
        assert_eq!(unquote(b"\xe2\x82x\xff"), "\u{fffd}\u{fffd}x\u{fffd}");
    }
}
