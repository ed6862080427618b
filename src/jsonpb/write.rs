//! Writing JSON the way etcd's gateway does: golang/protobuf's `jsonpb.Marshaler` with
//! `OrigName: true, EmitDefaults: false` over Go's `encoding/json` string escaping. Fields are
//! written in declaration order by the message tables ([`super::msg`]), which skip nothing:
//! the writer itself omits zero values.

use std::fmt::Write as _;

use super::base64;

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

    /// Whether this writes etcdctl's `-w json` (Go's encoding/json) rather than jsonpb.
    pub fn is_etcdctl(&self) -> bool {
        !self.quote_int64
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
            base64::encode(&mut self.buf, v);
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
        base64::encode(&mut self.buf, v);
        self.buf.push('"');
    }

    /// An element of a string array.
    pub fn string_item(&mut self, v: &str) {
        self.comma();
        self.quoted(v);
    }

    /// A 32-bit signed integer field: a bare number, omitted when zero.
    pub fn i32(&mut self, name: &str, v: i32) {
        if v != 0 {
            self.key(name);
            let _ = write!(self.buf, "{v}");
        }
    }

    /// An element of an enum array: its name, or its number if it has none.
    pub fn enum_item(&mut self, value: i32, names: &[&str]) {
        self.comma();
        self.enum_value(value, names);
    }

    /// An enum field by name, omitted at its zero value.
    pub fn enumeration(&mut self, name: &str, value: i32, names: &[&str]) {
        if value != 0 {
            self.key(name);
            self.enum_value(value, names);
        }
    }

    /// jsonpb writes a value without a name as a bare number (quoted, it would read as a name);
    /// etcdctl's `-w json` (Go's encoding/json of the Go struct) writes every one as its number.
    fn enum_value(&mut self, value: i32, names: &[&str]) {
        let name = if self.is_etcdctl() { None } else { usize::try_from(value).ok().and_then(|i| names.get(i)) };
        match name {
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

    fn quoted(&mut self, v: &str) {
        push_quoted(&mut self.buf, v);
    }
}

/// Appends `v` to `buf` as a JSON string, escaped as Go's `encoding/json` escapes it.
pub fn push_quoted(buf: &mut String, v: &str) {
    buf.push('"');
    for c in v.chars() {
        match c {
            '"' => buf.push_str("\\\""),
            '\\' => buf.push_str("\\\\"),
            '\n' => buf.push_str("\\n"),
            '\r' => buf.push_str("\\r"),
            '\t' => buf.push_str("\\t"),
            // Go's encoder escapes HTML-significant characters, and the two line
            // separators JavaScript does not allow in strings.
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(buf, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(buf, "\\u{:04x}", c as u32);
            }
            c => buf.push(c),
        }
    }
    buf.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn omits_defaults_and_quotes_int64() {
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
        w.string("name", "a<b>\u{2028}\"\n\u{1}");
        w.end_object();
        assert_eq!(
            w.finish(),
            r#"{"header":{"cluster_id":"7"},"key":"Zm9v","hash":5,"type":"DELETE","name":"a\u003cb\u003e\u2028\"\n\u0001"}"#
        );
    }
}
