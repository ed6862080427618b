//! etcd's messages as its gRPC gateway writes and reads them in JSON: golang/protobuf 1.3's
//! `jsonpb` over Go 1.19's `encoding/json`, reproduced rule for rule and message for message
//! (the gateway's answers to malformed input are Go's error texts, so they are part of the API).
//!
//! - [`scan`]: Go's scanner: where a value ends, its syntax errors, the nesting bound.
//! - [`value`]: reading a scanned value as jsonpb does (field order, names, quoted numbers,
//!   enums by name or number, Go's type errors).
//! - [`mod@write`]: the [`Writer`] (jsonpb's output: proto names, int64 quoted, zero values
//!   omitted).
//! - [`msg`]: one table per etcd message naming its fields in declaration order; the table
//!   drives both directions, so a field's JSON name is written once.
//!
//! No state; runs on whichever thread encodes or decodes (the HTTP event loops and pool, the
//! client's caller).

pub mod base64;
pub mod msg;
pub mod scan;
pub mod value;
pub mod write;

pub use scan::Decoder;
pub use value::{Fields, Value};
pub use write::Writer;

/// A body etcd's gateway would refuse; the text is Go's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError(pub String);

pub type Result<T> = std::result::Result<T, JsonError>;

/// Reads `body` as every request the gateway decodes, and as a stream of them, then writes
/// what was read back and reads that again: the fuzz target's entry (`fuzz/`), also run over
/// the fuzz corpus by a unit test. Panics on any disagreement.
#[doc(hidden)]
pub fn fuzz_one(body: &[u8]) {
    fn round_trip<T: FromJson + ToJson + PartialEq + std::fmt::Debug>(body: &[u8]) {
        if let Ok(msg) = T::from_body(body) {
            let again = T::from_body(msg.to_json().as_bytes()).expect("what raftkv writes, it reads");
            assert_eq!(again, msg);
        }
    }
    use crate::pb::*;
    round_trip::<RangeRequest>(body);
    round_trip::<PutRequest>(body);
    round_trip::<DeleteRangeRequest>(body);
    round_trip::<TxnRequest>(body);
    round_trip::<CompactionRequest>(body);
    round_trip::<LeaseGrantRequest>(body);
    round_trip::<LeaseTimeToLiveRequest>(body);
    round_trip::<MemberAddRequest>(body);
    round_trip::<AlarmRequest>(body);
    round_trip::<WatchRequest>(body);
    round_trip::<TxnResponse>(body);
    round_trip::<LockRequest>(body);
    round_trip::<CampaignRequest>(body);
    round_trip::<ProclaimRequest>(body);
    round_trip::<LeaderResponse>(body);
    let mut decoder = Decoder::new(body);
    while let Ok(Some(raw)) = decoder.next_value() {
        let _ = LeaseKeepAliveRequest::from_value(Value::new(raw), 0);
    }
}

/// A message read from JSON.
pub trait FromJson: Default {
    /// Sets the fields present in `fields`, in declaration order, as jsonpb does.
    fn read_fields(&mut self, fields: &Fields, depth: usize) -> Result<()>;

    /// The message in `v` (`null` is the empty message), `depth` levels below the top.
    fn from_value(v: Value, depth: usize) -> Result<Self> {
        if depth > value::MESSAGE_DEPTH_MAX {
            return Err(JsonError(format!("json: messages nested more than {} deep", value::MESSAGE_DEPTH_MAX)));
        }
        let mut msg = Self::default();
        msg.read_fields(&v.fields()?, depth)?;
        Ok(msg)
    }

    /// A request body as the gateway reads it (`json.Decoder.Decode`): its first value, with
    /// whatever follows ignored; a body without one is the empty message.
    fn from_body(body: &[u8]) -> Result<Self> {
        match Decoder::new(body).next_value()? {
            Some(raw) => Self::from_value(Value::new(raw), 0),
            None => Ok(Self::default()),
        }
    }
}

/// A message written as JSON.
pub trait ToJson {
    fn write_fields(&self, w: &mut Writer);

    fn to_json(&self) -> String {
        self.to_json_with(Writer::default())
    }

    /// As etcdctl's `-w json` prints it (64-bit integers unquoted).
    fn to_etcdctl_json(&self) -> String {
        self.to_json_with(Writer::etcdctl())
    }

    fn to_json_with(&self, mut w: Writer) -> String {
        w.begin_object();
        self.write_fields(&mut w);
        w.end_object();
        w.finish()
    }
}

/// How one field is read and written: the field types of the message tables.
pub trait Field {
    type T;
    fn read(v: Value, depth: usize) -> Result<Self::T>;
    fn write(w: &mut Writer, name: &str, value: &Self::T);
    /// A oneof reads its members here, after every other field (jsonpb's order); the value
    /// under the oneof's own name, read by [`Field::read`], can only be `null`.
    fn read_members(_fields: &Fields, _depth: usize, _value: &mut Self::T) -> Result<()> {
        Ok(())
    }
}

/// Defines [`FromJson`] and [`ToJson`] for a message from its fields in declaration order:
/// `rust_field: FieldType = "proto_name"` or `= "proto_name" / "jsonName"`.
macro_rules! json_message {
    ($msg:ty { $($field:ident : $kind:ty = $orig:literal $(/ $camel:literal)?),* $(,)? }) => {
        impl $crate::jsonpb::FromJson for $msg {
            #[allow(unused_variables)]
            fn read_fields(&mut self, fields: &$crate::jsonpb::Fields, depth: usize) -> $crate::jsonpb::Result<()> {
                $(
                    if let Some(v) = fields.take($orig, json_message!(@camel $orig $($camel)?)) {
                        self.$field = <$kind as $crate::jsonpb::Field>::read(v, depth)?;
                    }
                )*
                $( <$kind as $crate::jsonpb::Field>::read_members(fields, depth, &mut self.$field)?; )*
                Ok(())
            }
        }

        impl $crate::jsonpb::ToJson for $msg {
            #[allow(unused_variables)]
            fn write_fields(&self, w: &mut $crate::jsonpb::Writer) {
                $( <$kind as $crate::jsonpb::Field>::write(w, $orig, &self.$field); )*
            }
        }
    };
    (@camel $orig:literal) => { $orig };
    (@camel $orig:literal $camel:literal) => { $camel };
}
pub(crate) use json_message;

#[cfg(test)]
pub(crate) mod tests {
    /// The inputs libFuzzer kept (`fuzz/corpus/`), replayed in every test run.
    pub fn corpus(target: &str) -> Vec<Vec<u8>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
        let inputs: Vec<Vec<u8>> =
            std::fs::read_dir(&dir).unwrap().map(|entry| std::fs::read(entry.unwrap().path()).unwrap()).collect();
        assert!(inputs.len() >= 10, "{} holds {} inputs", dir.display(), inputs.len());
        inputs
    }

    #[test]
    fn the_fuzz_corpus_reads_and_round_trips() {
        for input in corpus("json") {
            super::fuzz_one(&input);
        }
    }
}
