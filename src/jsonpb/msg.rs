//! etcd's messages in JSON: one table per message, its fields in declaration order (the order
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
}

// ---- KV ----

json_message!(ResponseHeader {
    cluster_id: U64 = "cluster_id" / "clusterId",
    member_id: U64 = "member_id" / "memberId",
    revision: I64 = "revision",
    raft_term: U64 = "raft_term" / "raftTerm",
});

json_message!(KeyValue {
    key: Bytes = "key",
    create_revision: I64 = "create_revision" / "createRevision",
    mod_revision: I64 = "mod_revision" / "modRevision",
    version: I64 = "version",
    value: Bytes = "value",
    lease: I64 = "lease",
});

json_message!(RangeRequest {
    key: Bytes = "key",
    range_end: Bytes = "range_end" / "rangeEnd",
    limit: I64 = "limit",
    revision: I64 = "revision",
    sort_order: Enum<SortOrderNames> = "sort_order" / "sortOrder",
    sort_target: Enum<SortTargetNames> = "sort_target" / "sortTarget",
    serializable: Bool = "serializable",
    keys_only: Bool = "keys_only" / "keysOnly",
    count_only: Bool = "count_only" / "countOnly",
    min_mod_revision: I64 = "min_mod_revision" / "minModRevision",
    max_mod_revision: I64 = "max_mod_revision" / "maxModRevision",
    min_create_revision: I64 = "min_create_revision" / "minCreateRevision",
    max_create_revision: I64 = "max_create_revision" / "maxCreateRevision",
});

json_message!(RangeResponse {
    header: Msg<ResponseHeader> = "header",
    kvs: Msgs<KeyValue> = "kvs",
    more: Bool = "more",
    count: I64 = "count",
});

json_message!(PutRequest {
    key: Bytes = "key",
    value: Bytes = "value",
    lease: I64 = "lease",
    prev_kv: Bool = "prev_kv" / "prevKv",
    ignore_value: Bool = "ignore_value" / "ignoreValue",
    ignore_lease: Bool = "ignore_lease" / "ignoreLease",
});

json_message!(PutResponse {
    header: Msg<ResponseHeader> = "header",
    prev_kv: Msg<KeyValue> = "prev_kv" / "prevKv",
});

json_message!(DeleteRangeRequest {
    key: Bytes = "key",
    range_end: Bytes = "range_end" / "rangeEnd",
    prev_kv: Bool = "prev_kv" / "prevKv",
});

json_message!(DeleteRangeResponse {
    header: Msg<ResponseHeader> = "header",
    deleted: I64 = "deleted",
    prev_kvs: Msgs<KeyValue> = "prev_kvs" / "prevKvs",
});

json_message!(RequestOp { request: RequestOneof = "request" });

json_message!(ResponseOp { response: ResponseOneof = "response" });

json_message!(Compare {
    result: Enum<CompareResultNames> = "result",
    target: Enum<CompareTargetNames> = "target",
    key: Bytes = "key",
    target_union: TargetUnionOneof = "target_union",
    range_end: Bytes = "range_end" / "rangeEnd",
});

json_message!(TxnRequest {
    compare: Msgs<Compare> = "compare",
    success: Msgs<RequestOp> = "success",
    failure: Msgs<RequestOp> = "failure",
});

json_message!(TxnResponse {
    header: Msg<ResponseHeader> = "header",
    succeeded: Bool = "succeeded",
    responses: Msgs<ResponseOp> = "responses",
});

json_message!(CompactionRequest { revision: I64 = "revision", physical: Bool = "physical" });

json_message!(CompactionResponse {
    header: Msg<ResponseHeader> = "header",
});

// ---- Lease ----

json_message!(LeaseGrantRequest { ttl: I64 = "TTL", id: I64 = "ID" });

json_message!(LeaseGrantResponse {
    header: Msg<ResponseHeader> = "header",
    id: I64 = "ID",
    ttl: I64 = "TTL",
    error: Str = "error",
});

json_message!(LeaseRevokeRequest { id: I64 = "ID" });

json_message!(LeaseRevokeResponse {
    header: Msg<ResponseHeader> = "header",
});

json_message!(LeaseKeepAliveRequest { id: I64 = "ID" });

json_message!(LeaseKeepAliveResponse {
    header: Msg<ResponseHeader> = "header",
    id: I64 = "ID",
    ttl: I64 = "TTL",
});

json_message!(LeaseTimeToLiveRequest { id: I64 = "ID", keys: Bool = "keys" });

json_message!(LeaseTimeToLiveResponse {
    header: Msg<ResponseHeader> = "header",
    id: I64 = "ID",
    ttl: I64 = "TTL",
    granted_ttl: I64 = "grantedTTL",
    keys: BytesList = "keys",
});

json_message!(LeaseStatus { id: I64 = "ID" });

json_message!(LeaseLeasesResponse {
    header: Msg<ResponseHeader> = "header",
    leases: Msgs<LeaseStatus> = "leases",
});

// ---- Watch ----

json_message!(WatchRequest { request_union: RequestUnionOneof = "request_union" });

json_message!(WatchCreateRequest {
    key: Bytes = "key",
    range_end: Bytes = "range_end" / "rangeEnd",
    start_revision: I64 = "start_revision" / "startRevision",
    progress_notify: Bool = "progress_notify" / "progressNotify",
    filters: Enums<FilterTypeNames> = "filters",
    prev_kv: Bool = "prev_kv" / "prevKv",
    watch_id: I64 = "watch_id" / "watchId",
    fragment: Bool = "fragment",
});

json_message!(WatchCancelRequest { watch_id: I64 = "watch_id" / "watchId" });

json_message!(WatchProgressRequest {});

json_message!(Event {
    r#type: Enum<EventTypeNames> = "type",
    kv: Msg<KeyValue> = "kv",
    prev_kv: Msg<KeyValue> = "prev_kv" / "prevKv",
});

json_message!(WatchResponse {
    header: Msg<ResponseHeader> = "header",
    watch_id: I64 = "watch_id" / "watchId",
    created: Bool = "created",
    canceled: Bool = "canceled",
    compact_revision: I64 = "compact_revision" / "compactRevision",
    cancel_reason: Str = "cancel_reason" / "cancelReason",
    fragment: Bool = "fragment",
    events: Msgs<Event> = "events",
});

// ---- Cluster ----

json_message!(Member {
    id: U64 = "ID",
    name: Str = "name",
    peer_urls: Strs = "peerURLs",
    client_urls: Strs = "clientURLs",
    is_learner: Bool = "isLearner",
});

json_message!(MemberAddRequest { peer_urls: Strs = "peerURLs", is_learner: Bool = "isLearner" });

json_message!(MemberAddResponse {
    header: Msg<ResponseHeader> = "header",
    member: Msg<Member> = "member",
    members: Msgs<Member> = "members",
});

json_message!(MemberRemoveRequest { id: U64 = "ID" });

json_message!(MemberUpdateRequest { id: U64 = "ID", peer_urls: Strs = "peerURLs" });

json_message!(MemberPromoteRequest { id: U64 = "ID" });

json_message!(MemberListResponse {
    header: Msg<ResponseHeader> = "header",
    members: Msgs<Member> = "members",
});

// ---- Maintenance and auth ----

json_message!(EmptyRequest {});

json_message!(StatusResponse {
    header: Msg<ResponseHeader> = "header",
    version: Str = "version",
    db_size: I64 = "dbSize",
    leader: U64 = "leader",
    raft_index: U64 = "raftIndex",
    raft_term: U64 = "raftTerm",
    raft_applied_index: U64 = "raftAppliedIndex",
    errors: Strs = "errors",
    db_size_in_use: I64 = "dbSizeInUse",
    is_learner: Bool = "isLearner",
});

json_message!(HashResponse {
    header: Msg<ResponseHeader> = "header",
    hash: U32 = "hash",
});

json_message!(MoveLeaderRequest { target_id: U64 = "targetID" });

json_message!(MoveLeaderResponse {
    header: Msg<ResponseHeader> = "header",
});

json_message!(AlarmRequest {
    action: Enum<AlarmActionNames> = "action",
    member_id: U64 = "memberID",
    alarm: Enum<AlarmTypeNames> = "alarm",
});

json_message!(AuthenticateRequest { name: Str = "name", password: Str = "password" });

json_message!(AlarmMember {
    member_id: U64 = "memberID",
    alarm: Enum<AlarmTypeNames> = "alarm",
});

json_message!(AlarmResponse {
    header: Msg<ResponseHeader> = "header",
    alarms: Msgs<AlarmMember> = "alarms",
});

json_message!(DefragmentResponse {
    header: Msg<ResponseHeader> = "header",
});

json_message!(AuthenticateResponse {
    header: Msg<ResponseHeader> = "header",
    token: Str = "token",
});

json_message!(AuthUserListResponse {
    header: Msg<ResponseHeader> = "header",
    users: Strs = "users",
});

json_message!(AuthRoleListResponse {
    header: Msg<ResponseHeader> = "header",
    roles: Strs = "roles",
});

// ---- Oneofs ----

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

pub struct TargetUnionOneof;

impl Field for TargetUnionOneof {
    type T = Option<TargetUnion>;
    fn read(v: Value, _: usize) -> Result<Self::T> {
        oneof_field(v, "etcdserverpb.isCompare_TargetUnion")
    }
    fn read_members(fields: &Fields, depth: usize, value: &mut Self::T) -> Result<()> {
        const NAMES: &[(&str, &str)] = &[
            ("version", "version"),
            ("create_revision", "createRevision"),
            ("mod_revision", "modRevision"),
            ("value", "value"),
            ("lease", "lease"),
        ];
        let Some((name, v)) = oneof_member(fields, "target_union", NAMES)? else { return Ok(()) };
        *value = Some(match name {
            "version" => TargetUnion::Version(I64::read(v, depth)?),
            "create_revision" => TargetUnion::CreateRevision(I64::read(v, depth)?),
            "mod_revision" => TargetUnion::ModRevision(I64::read(v, depth)?),
            "value" => TargetUnion::Value(Bytes::read(v, depth)?),
            _ => TargetUnion::Lease(I64::read(v, depth)?),
        });
        Ok(())
    }
    fn write(w: &mut Writer, _: &str, value: &Self::T) {
        // A member set to zero is written anyway: its presence says which target is compared.
        match value {
            Some(TargetUnion::Version(v)) => w.i64_always("version", *v),
            Some(TargetUnion::CreateRevision(v)) => w.i64_always("create_revision", *v),
            Some(TargetUnion::ModRevision(v)) => w.i64_always("mod_revision", *v),
            Some(TargetUnion::Value(v)) => w.bytes("value", v),
            Some(TargetUnion::Lease(v)) => w.i64_always("lease", *v),
            None => {}
        }
    }
}

pub struct RequestOneof;

impl Field for RequestOneof {
    type T = Option<Request>;
    fn read(v: Value, _: usize) -> Result<Self::T> {
        oneof_field(v, "etcdserverpb.isRequestOp_Request")
    }
    fn read_members(fields: &Fields, depth: usize, value: &mut Self::T) -> Result<()> {
        const NAMES: &[(&str, &str)] = &[
            ("request_range", "requestRange"),
            ("request_put", "requestPut"),
            ("request_delete_range", "requestDeleteRange"),
            ("request_txn", "requestTxn"),
        ];
        let Some((name, v)) = oneof_member(fields, "request", NAMES)? else { return Ok(()) };
        // `null` sets the member to a nil message, which encodes as no request at all.
        *value = match name {
            "request_range" => Msg::read(v, depth)?.map(Request::RequestRange),
            "request_put" => Msg::read(v, depth)?.map(Request::RequestPut),
            "request_delete_range" => Msg::read(v, depth)?.map(Request::RequestDeleteRange),
            _ => Msg::read(v, depth)?.map(Request::RequestTxn),
        };
        Ok(())
    }
    fn write(w: &mut Writer, _: &str, value: &Self::T) {
        match value {
            Some(Request::RequestRange(r)) => object(w, "request_range", r),
            Some(Request::RequestPut(r)) => object(w, "request_put", r),
            Some(Request::RequestDeleteRange(r)) => object(w, "request_delete_range", r),
            Some(Request::RequestTxn(r)) => object(w, "request_txn", r),
            None => {}
        }
    }
}

pub struct ResponseOneof;

impl Field for ResponseOneof {
    type T = Option<Response>;
    fn read(v: Value, _: usize) -> Result<Self::T> {
        oneof_field(v, "etcdserverpb.isResponseOp_Response")
    }
    fn read_members(fields: &Fields, depth: usize, value: &mut Self::T) -> Result<()> {
        const NAMES: &[(&str, &str)] = &[
            ("response_range", "responseRange"),
            ("response_put", "responsePut"),
            ("response_delete_range", "responseDeleteRange"),
            ("response_txn", "responseTxn"),
        ];
        let Some((name, v)) = oneof_member(fields, "response", NAMES)? else { return Ok(()) };
        *value = match name {
            "response_range" => Msg::read(v, depth)?.map(Response::ResponseRange),
            "response_put" => Msg::read(v, depth)?.map(Response::ResponsePut),
            "response_delete_range" => Msg::read(v, depth)?.map(Response::ResponseDeleteRange),
            _ => Msg::read(v, depth)?.map(Response::ResponseTxn),
        };
        Ok(())
    }
    fn write(w: &mut Writer, _: &str, value: &Self::T) {
        match value {
            Some(Response::ResponseRange(r)) => object(w, "response_range", r),
            Some(Response::ResponsePut(r)) => object(w, "response_put", r),
            Some(Response::ResponseDeleteRange(r)) => object(w, "response_delete_range", r),
            Some(Response::ResponseTxn(r)) => object(w, "response_txn", r),
            None => {}
        }
    }
}

pub struct RequestUnionOneof;

impl Field for RequestUnionOneof {
    type T = Option<RequestUnion>;
    fn read(v: Value, _: usize) -> Result<Self::T> {
        oneof_field(v, "etcdserverpb.isWatchRequest_RequestUnion")
    }
    fn read_members(fields: &Fields, depth: usize, value: &mut Self::T) -> Result<()> {
        const NAMES: &[(&str, &str)] = &[
            ("create_request", "createRequest"),
            ("cancel_request", "cancelRequest"),
            ("progress_request", "progressRequest"),
        ];
        let Some((name, v)) = oneof_member(fields, "request_union", NAMES)? else { return Ok(()) };
        // etcd's watch server skips a member set to a nil message.
        *value = match name {
            "create_request" => Msg::read(v, depth)?.map(RequestUnion::CreateRequest),
            "cancel_request" => Msg::read(v, depth)?.map(RequestUnion::CancelRequest),
            _ => Msg::read(v, depth)?.map(RequestUnion::ProgressRequest),
        };
        Ok(())
    }
    fn write(w: &mut Writer, _: &str, value: &Self::T) {
        match value {
            Some(RequestUnion::CreateRequest(r)) => object(w, "create_request", r),
            Some(RequestUnion::CancelRequest(r)) => object(w, "cancel_request", r),
            Some(RequestUnion::ProgressRequest(r)) => object(w, "progress_request", r),
            None => {}
        }
    }
}

// ---- The gateway's own envelopes ----

/// One message of a gateway stream: `{"result": T}`.
#[derive(Default)]
pub struct StreamResult<T>(pub T);

impl<T: FromJson> FromJson for StreamResult<T> {
    fn read_fields(&mut self, fields: &Fields, depth: usize) -> Result<()> {
        if let Some(v) = fields.take("result", "result") {
            self.0 = T::from_value(v, depth + 1)?;
        }
        Ok(())
    }
}

/// The bytes of one stream message: `{"result":{...}}` and a newline, as the gateway sends it.
pub fn stream_result(msg: &impl ToJson) -> Vec<u8> {
    let mut w = Writer::default();
    w.begin_object();
    object(&mut w, "result", msg);
    w.end_object();
    let mut out = w.finish().into_bytes();
    out.push(b'\n');
    out
}

/// etcd's gateway error body `{"error":..,"message":..,"code":..}`.
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    pub message: String,
    pub code: i32,
}

impl ErrorBody {
    pub fn to_body(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.begin_object();
        w.string("error", &self.message);
        w.string("message", &self.message);
        w.i32("code", self.code);
        w.end_object();
        w.finish().into_bytes()
    }
}

impl FromJson for ErrorBody {
    fn read_fields(&mut self, fields: &Fields, depth: usize) -> Result<()> {
        if let Some(v) = fields.take("error", "error") {
            self.message = Str::read(v, depth)?;
        }
        if let Some(v) = fields.take("message", "message") {
            self.message = Str::read(v, depth)?;
        }
        if let Some(v) = fields.take("code", "code") {
            self.code = I32::read(v, depth)?;
        }
        Ok(())
    }
}

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
