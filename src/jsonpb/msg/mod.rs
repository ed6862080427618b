//! etcd's messages in JSON, one file per etcd service: one table per message, its fields in declaration order (the order
//! of the Go structs jsonpb walks, which decides which of two bad fields is reported), each with
//! its proto name and, where it differs, its JSON name. The same table reads and writes.
//!
//! The field types ([`Bytes`], [`I64`], [`Msg`], ...) are jsonpb's rules per proto type;
//! oneofs are written out by hand below the tables.

use std::marker::PhantomData;

use super::value::{read_bool, read_bytes, read_enum, read_int, read_string};
use super::{json_message, Field, Fields, FromJson, JsonError, Result, ToJson, Value, Writer};
use crate::pb::compare::TargetUnion;
use crate::pb::request_op::Request;
use crate::pb::response_op::Response;
use crate::pb::watch_request::RequestUnion;
use crate::pb::*;

pub struct Bytes;
pub struct I64;
pub struct U64;
pub struct U32;
pub struct I32;
pub struct Bool;
pub struct Str;
pub struct Strs;
pub struct BytesList;
/// An optional nested message (a Go pointer: `null` leaves it unset).
pub struct Msg<M>(PhantomData<M>);
/// A repeated message.
pub struct Msgs<M>(PhantomData<M>);
pub struct Enum<E>(PhantomData<E>);
pub struct Enums<E>(PhantomData<E>);

/// A proto enum: its value names by number, and its Go type name for error messages.
pub trait EnumNames {
    const NAMES: &'static [&'static str];
    const GO_TYPE: &'static str;
}

impl Field for Bytes {
    type T = Vec<u8>;
    fn read(v: Value, _: usize) -> Result<Vec<u8>> {
        read_bytes(v)
    }
    fn write(w: &mut Writer, name: &str, value: &Vec<u8>) {
        w.bytes(name, value);
    }
}

impl Field for I64 {
    type T = i64;
    fn read(v: Value, _: usize) -> Result<i64> {
        read_int(v, "int64")
    }
    fn write(w: &mut Writer, name: &str, value: &i64) {
        w.i64(name, *value);
    }
}

impl Field for U64 {
    type T = u64;
    fn read(v: Value, _: usize) -> Result<u64> {
        read_int(v, "uint64")
    }
    fn write(w: &mut Writer, name: &str, value: &u64) {
        w.u64(name, *value);
    }
}

impl Field for U32 {
    type T = u32;
    fn read(v: Value, _: usize) -> Result<u32> {
        read_int(v, "uint32")
    }
    fn write(w: &mut Writer, name: &str, value: &u32) {
        w.u32(name, *value);
    }
}

impl Field for I32 {
    type T = i32;
    fn read(v: Value, _: usize) -> Result<i32> {
        read_int(v, "int32")
    }
    fn write(w: &mut Writer, name: &str, value: &i32) {
        w.i32(name, *value);
    }
}

impl Field for Bool {
    type T = bool;
    fn read(v: Value, _: usize) -> Result<bool> {
        read_bool(v)
    }
    fn write(w: &mut Writer, name: &str, value: &bool) {
        w.bool(name, *value);
    }
}

impl Field for Str {
    type T = String;
    fn read(v: Value, _: usize) -> Result<String> {
        read_string(v)
    }
    fn write(w: &mut Writer, name: &str, value: &String) {
        w.string(name, value);
    }
}

impl Field for Strs {
    type T = Vec<String>;
    fn read(v: Value, _: usize) -> Result<Vec<String>> {
        v.elements()?.into_iter().map(read_string).collect()
    }
    fn write(w: &mut Writer, name: &str, value: &Vec<String>) {
        if !value.is_empty() {
            w.begin_array(name);
            for item in value {
                w.string_item(item);
            }
            w.end_array();
        }
    }
}

impl Field for BytesList {
    type T = Vec<Vec<u8>>;
    fn read(v: Value, _: usize) -> Result<Vec<Vec<u8>>> {
        v.elements()?.into_iter().map(read_bytes).collect()
    }
    fn write(w: &mut Writer, name: &str, value: &Vec<Vec<u8>>) {
        if !value.is_empty() {
            w.begin_array(name);
            for item in value {
                w.bytes_item(item);
            }
            w.end_array();
        }
    }
}

impl<M: FromJson + ToJson> Field for Msg<M> {
    type T = Option<M>;
    fn read(v: Value, depth: usize) -> Result<Option<M>> {
        if v.is_null() {
            return Ok(None);
        }
        M::from_value(v, depth + 1).map(Some)
    }
    fn write(w: &mut Writer, name: &str, value: &Option<M>) {
        if let Some(msg) = value {
            object(w, name, msg);
        }
    }
}

impl<M: FromJson + ToJson> Field for Msgs<M> {
    type T = Vec<M>;
    fn read(v: Value, depth: usize) -> Result<Vec<M>> {
        v.elements()?
            .into_iter()
            .map(|item| {
                // jsonpb leaves a nil pointer in the list, which etcd's gateway then cannot
                // encode (it drops the connection); refuse it instead.
                if item.is_null() {
                    return Err(JsonError("json: a list of messages holds a null".into()));
                }
                M::from_value(item, depth + 1)
            })
            .collect()
    }
    fn write(w: &mut Writer, name: &str, value: &Vec<M>) {
        if !value.is_empty() {
            w.begin_array(name);
            for item in value {
                w.begin_object();
                item.write_fields(w);
                w.end_object();
            }
            w.end_array();
        }
    }
}

impl<E: EnumNames> Field for Enum<E> {
    type T = i32;
    fn read(v: Value, _: usize) -> Result<i32> {
        read_enum(v, E::NAMES, E::GO_TYPE)
    }
    fn write(w: &mut Writer, name: &str, value: &i32) {
        w.enumeration(name, *value, E::NAMES);
    }
}

impl<E: EnumNames> Field for Enums<E> {
    type T = Vec<i32>;
    fn read(v: Value, _: usize) -> Result<Vec<i32>> {
        v.elements()?.into_iter().map(|item| read_enum(item, E::NAMES, E::GO_TYPE)).collect()
    }
    fn write(w: &mut Writer, name: &str, value: &Vec<i32>) {
        if !value.is_empty() {
            w.begin_array(name);
            for item in value {
                w.enum_item(*item, E::NAMES);
            }
            w.end_array();
        }
    }
}

macro_rules! enum_names {
    ($($name:ident = $go:literal [$($value:literal),*];)*) => {$(
        pub struct $name;
        impl EnumNames for $name {
            const NAMES: &'static [&'static str] = &[$($value),*];
            const GO_TYPE: &'static str = $go;
        }
    )*};
}

enum_names! {
    SortOrderNames = "etcdserverpb.RangeRequest_SortOrder" ["NONE", "ASCEND", "DESCEND"];
    SortTargetNames = "etcdserverpb.RangeRequest_SortTarget" ["KEY", "VERSION", "CREATE", "MOD", "VALUE"];
    CompareResultNames = "etcdserverpb.Compare_CompareResult" ["EQUAL", "GREATER", "LESS", "NOT_EQUAL"];
    CompareTargetNames = "etcdserverpb.Compare_CompareTarget" ["VERSION", "CREATE", "MOD", "VALUE", "LEASE"];
    FilterTypeNames = "etcdserverpb.WatchCreateRequest_FilterType" ["NOPUT", "NODELETE"];
    EventTypeNames = "mvccpb.Event_EventType" ["PUT", "DELETE"];
    AlarmActionNames = "etcdserverpb.AlarmRequest_AlarmAction" ["GET", "ACTIVATE", "DEACTIVATE"];
    AlarmTypeNames = "etcdserverpb.AlarmType" ["NONE", "NOSPACE", "CORRUPT"];
    PermissionTypeNames = "authpb.Permission_Type" ["READ", "WRITE", "READWRITE"];
}

/// The member of a oneof present in `fields`, if one is. jsonpb sets them in Go map order, so
/// with two present etcd's answer is decided at random; raftkv refuses such a message.
fn oneof_member<'a>(
    fields: &Fields<'a>,
    oneof: &str,
    names: &[(&'static str, &'static str)],
) -> Result<Option<(&'static str, Value<'a>)>> {
    let mut present = names.iter().filter_map(|(orig, camel)| fields.take(orig, camel).map(|v| (*orig, v)));
    let first = present.next();
    if present.next().is_some() {
        return Err(JsonError(format!("json: more than one field of oneof {oneof} is set")));
    }
    Ok(first)
}

fn object(w: &mut Writer, name: &str, msg: &impl ToJson) {
    w.begin_field_object(name);
    msg.write_fields(w);
    w.end_object();
}

/// The Go interface field that holds a oneof is itself a struct field jsonpb fills from the
/// oneof's name; only `null` decodes into it.
fn oneof_field<T>(v: Value, go_type: &str) -> Result<Option<T>> {
    if v.is_null() {
        return Ok(None);
    }
    Err(v.mismatch(go_type))
}

mod auth;
mod cluster;
mod election;
mod envelope;
mod kv;
mod lease;
mod lock;
mod maintenance;
mod watch;

pub use envelope::{stream_result, ErrorBody, StreamError, StreamErrorDetail, StreamResult};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_requests_like_jsonpb() {
        let r = RangeRequest::from_body(
            br#"{"key":"YS8=","rangeEnd":"YTA=","limit":"2","sort_order":"DESCEND","sort_target":3} x"#,
        )
        .unwrap();
        assert_eq!(
            (r.key, r.range_end, r.limit, r.sort_order, r.sort_target),
            (b"a/".to_vec(), b"a0".to_vec(), 2, 2, 3)
        );
        let e = RangeRequest::from_body(br#"{"key":"YS8=","sort_order":"SIDEWAYS"}"#).unwrap_err();
        assert_eq!(e.0, "unknown value \"SIDEWAYS\" for enum etcdserverpb.RangeRequest_SortOrder");
        assert_eq!(PutRequest::from_body(b"").unwrap(), PutRequest::default());
        assert_eq!(PutRequest::from_body(b"null").unwrap(), PutRequest::default());
        let t = TxnRequest::from_body(
            br#"{"compare":[{"key":"Zm9v","result":"EQUAL","target":"VALUE","value":"YmFy"}],
                 "success":[{"request_put":{"key":"Zm9v","value":"eA=="}},{"request_txn":{}},{"request_range":null}]}"#,
        )
        .unwrap();
        assert_eq!(t.compare[0].target_union, Some(TargetUnion::Value(b"bar".to_vec())));
        assert!(matches!(t.success[1].request, Some(Request::RequestTxn(_))));
        assert_eq!(t.success[2].request, None, "a null member is no request");
    }

    #[test]
    fn fields_are_checked_in_declaration_order() {
        // `key` comes first in RangeRequest, so its error wins whatever the document order.
        let e = RangeRequest::from_body(br#"{"limit":"x","key":"!"}"#).unwrap_err();
        assert_eq!(e.0, "illegal base64 data at input byte 0");
        // A oneof member is read after every other field.
        let e = Compare::from_body(br#"{"version":"x","range_end":"!"}"#).unwrap_err();
        assert_eq!(e.0, "illegal base64 data at input byte 0");
        let e = Compare::from_body(br#"{"target_union":{}}"#).unwrap_err();
        assert_eq!(e.0, "json: cannot unmarshal object into Go value of type etcdserverpb.isCompare_TargetUnion");
        let e = Compare::from_body(br#"{"version":"1","value":"YQ=="}"#).unwrap_err();
        assert_eq!(e.0, "json: more than one field of oneof target_union is set");
    }

    #[test]
    fn nesting_is_bounded() {
        let mut body = String::new();
        for _ in 0..60 {
            body.push_str(r#"{"success":[{"request_txn":"#);
        }
        body.push_str("{}");
        for _ in 0..60 {
            body.push_str("}]}");
        }
        let e = TxnRequest::from_body(body.as_bytes()).unwrap_err();
        assert_eq!(e.0, "json: messages nested more than 100 deep");
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let e = RangeRequest::from_body(deep.as_bytes()).unwrap_err();
        assert_eq!(e.0, "invalid character '[' exceeded max depth");
    }

    #[test]
    fn writes_responses_like_jsonpb() {
        let resp = RangeResponse {
            header: Some(ResponseHeader { cluster_id: 1, member_id: 2, revision: 5, raft_term: 2 }),
            kvs: vec![KeyValue {
                key: b"empty".to_vec(),
                create_revision: 5,
                mod_revision: 5,
                version: 1,
                ..Default::default()
            }],
            more: false,
            count: 1,
        };
        assert_eq!(
            resp.to_json(),
            r#"{"header":{"cluster_id":"1","member_id":"2","revision":"5","raft_term":"2"},"kvs":[{"key":"ZW1wdHk=","create_revision":"5","mod_revision":"5","version":"1"}],"count":"1"}"#
        );
        let nested = TxnResponse {
            header: None,
            succeeded: false,
            responses: vec![ResponseOp {
                response: Some(Response::ResponseTxn(TxnResponse {
                    header: Some(ResponseHeader::default()),
                    ..Default::default()
                })),
            }],
        };
        assert_eq!(nested.to_json(), r#"{"responses":[{"response_txn":{"header":{}}}]}"#);
        let back = TxnResponse::from_body(nested.to_json().as_bytes()).unwrap();
        assert_eq!(back, nested);
    }
}
