//! etcd's message types to and from gateway JSON, field by field (see [`super::json`]).
//!
//! Field names are the proto names; jsonpb also accepts their lowerCamelCase JSON names on
//! input, so both are matched. Unknown fields are skipped; a repeated key overwrites.

use super::json::{Reader, Result, Writer};
use crate::pb::compare::TargetUnion;
use crate::pb::request_op::Request;
use crate::pb::response_op::Response;
use crate::pb::*;

const SORT_ORDER: &[&str] = &["NONE", "ASCEND", "DESCEND"];
const SORT_TARGET: &[&str] = &["KEY", "VERSION", "CREATE", "MOD", "VALUE"];
const COMPARE_RESULT: &[&str] = &["EQUAL", "GREATER", "LESS", "NOT_EQUAL"];
const COMPARE_TARGET: &[&str] = &["VERSION", "CREATE", "MOD", "VALUE", "LEASE"];

/// A request type the gateway can read from JSON.
pub trait FromJson: Default {
    fn field<'a>(&mut self, name: &str, r: &mut Reader<'a>) -> Result<()>;

    /// Reads a whole message; an empty document is the empty message.
    fn from_json(body: &[u8]) -> Result<Self> {
        let mut msg = Self::default();
        let mut r = Reader::new(body)?;
        if !r.is_empty() {
            msg.read(&mut r)?;
        }
        Ok(msg)
    }

    fn read(&mut self, r: &mut Reader) -> Result<()> {
        r.object(|name, r| self.field(name, r))
    }
}

fn message<T: FromJson>(r: &mut Reader) -> Result<T> {
    let mut msg = T::default();
    msg.read(r)?;
    Ok(msg)
}

impl FromJson for RangeRequest {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "key" => self.key = r.bytes()?,
            "range_end" | "rangeEnd" => self.range_end = r.bytes()?,
            "limit" => self.limit = r.i64()?,
            "revision" => self.revision = r.i64()?,
            "sort_order" | "sortOrder" => {
                self.sort_order = r.enumeration(SORT_ORDER, "etcdserverpb.RangeRequest_SortOrder")?
            }
            "sort_target" | "sortTarget" => {
                self.sort_target = r.enumeration(SORT_TARGET, "etcdserverpb.RangeRequest_SortTarget")?
            }
            "serializable" => self.serializable = r.bool()?,
            "keys_only" | "keysOnly" => self.keys_only = r.bool()?,
            "count_only" | "countOnly" => self.count_only = r.bool()?,
            "min_mod_revision" | "minModRevision" => self.min_mod_revision = r.i64()?,
            "max_mod_revision" | "maxModRevision" => self.max_mod_revision = r.i64()?,
            "min_create_revision" | "minCreateRevision" => self.min_create_revision = r.i64()?,
            "max_create_revision" | "maxCreateRevision" => self.max_create_revision = r.i64()?,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl FromJson for PutRequest {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "key" => self.key = r.bytes()?,
            "value" => self.value = r.bytes()?,
            "lease" => self.lease = r.i64()?,
            "prev_kv" | "prevKv" => self.prev_kv = r.bool()?,
            "ignore_value" | "ignoreValue" => self.ignore_value = r.bool()?,
            "ignore_lease" | "ignoreLease" => self.ignore_lease = r.bool()?,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl FromJson for DeleteRangeRequest {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "key" => self.key = r.bytes()?,
            "range_end" | "rangeEnd" => self.range_end = r.bytes()?,
            "prev_kv" | "prevKv" => self.prev_kv = r.bool()?,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl FromJson for Compare {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "result" => self.result = r.enumeration(COMPARE_RESULT, "etcdserverpb.Compare_CompareResult")?,
            "target" => self.target = r.enumeration(COMPARE_TARGET, "etcdserverpb.Compare_CompareTarget")?,
            "key" => self.key = r.bytes()?,
            "range_end" | "rangeEnd" => self.range_end = r.bytes()?,
            "version" => self.target_union = Some(TargetUnion::Version(r.i64()?)),
            "create_revision" | "createRevision" => self.target_union = Some(TargetUnion::CreateRevision(r.i64()?)),
            "mod_revision" | "modRevision" => self.target_union = Some(TargetUnion::ModRevision(r.i64()?)),
            "value" => self.target_union = Some(TargetUnion::Value(r.bytes()?)),
            "lease" => self.target_union = Some(TargetUnion::Lease(r.i64()?)),
            _ => r.skip(),
        }
        Ok(())
    }
}

impl FromJson for RequestOp {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "request_range" | "requestRange" => self.request = Some(Request::RequestRange(message(r)?)),
            "request_put" | "requestPut" => self.request = Some(Request::RequestPut(message(r)?)),
            "request_delete_range" | "requestDeleteRange" => {
                self.request = Some(Request::RequestDeleteRange(message(r)?))
            }
            "request_txn" | "requestTxn" => self.request = Some(Request::RequestTxn(message(r)?)),
            _ => r.skip(),
        }
        Ok(())
    }
}

fn messages<T: FromJson>(r: &mut Reader, go_type: &str) -> Result<Vec<T>> {
    let mut items = Vec::new();
    r.array(go_type, |r| {
        items.push(message(r)?);
        Ok(())
    })?;
    Ok(items)
}

impl FromJson for TxnRequest {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "compare" => self.compare = messages(r, "[]json.RawMessage")?,
            "success" => self.success = messages(r, "[]json.RawMessage")?,
            "failure" => self.failure = messages(r, "[]json.RawMessage")?,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl FromJson for CompactionRequest {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "revision" => self.revision = r.i64()?,
            "physical" => self.physical = r.bool()?,
            _ => r.skip(),
        }
        Ok(())
    }
}

/// A request whose fields raftkv does not need (status, member list, ...): still parsed, so
/// malformed bodies get etcd's errors.
#[derive(Default)]
pub struct Ignored;

impl FromJson for Ignored {
    fn field(&mut self, _: &str, r: &mut Reader) -> Result<()> {
        r.skip();
        Ok(())
    }
}

/// A response type the gateway can write as JSON.
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

fn object(w: &mut Writer, name: &str, msg: &impl ToJson) {
    w.begin_field_object(name);
    msg.write_fields(w);
    w.end_object();
}

fn object_list<T: ToJson>(w: &mut Writer, name: &str, items: &[T]) {
    if items.is_empty() {
        return;
    }
    w.begin_array(name);
    for item in items {
        w.begin_object();
        item.write_fields(w);
        w.end_object();
    }
    w.end_array();
}

/// A repeated string field; omitted when empty, as jsonpb omits it.
fn string_list(w: &mut Writer, name: &str, items: &[String]) {
    if !items.is_empty() {
        w.begin_array(name);
        for item in items {
            w.string_item(item);
        }
        w.end_array();
    }
}

fn header(w: &mut Writer, h: &Option<ResponseHeader>) {
    if let Some(h) = h {
        object(w, "header", h);
    }
}

impl ToJson for ResponseHeader {
    fn write_fields(&self, w: &mut Writer) {
        w.u64("cluster_id", self.cluster_id);
        w.u64("member_id", self.member_id);
        w.i64("revision", self.revision);
        w.u64("raft_term", self.raft_term);
    }
}

impl ToJson for KeyValue {
    fn write_fields(&self, w: &mut Writer) {
        w.bytes("key", &self.key);
        w.i64("create_revision", self.create_revision);
        w.i64("mod_revision", self.mod_revision);
        w.i64("version", self.version);
        w.bytes("value", &self.value);
        w.i64("lease", self.lease);
    }
}

impl ToJson for RangeResponse {
    fn write_fields(&self, w: &mut Writer) {
        header(w, &self.header);
        object_list(w, "kvs", &self.kvs);
        w.bool("more", self.more);
        w.i64("count", self.count);
    }
}

impl ToJson for PutResponse {
    fn write_fields(&self, w: &mut Writer) {
        header(w, &self.header);
        if let Some(prev) = &self.prev_kv {
            object(w, "prev_kv", prev);
        }
    }
}

impl ToJson for DeleteRangeResponse {
    fn write_fields(&self, w: &mut Writer) {
        header(w, &self.header);
        w.i64("deleted", self.deleted);
        object_list(w, "prev_kvs", &self.prev_kvs);
    }
}

impl ToJson for ResponseOp {
    fn write_fields(&self, w: &mut Writer) {
        match &self.response {
            Some(Response::ResponseRange(r)) => object(w, "response_range", r),
            Some(Response::ResponsePut(r)) => object(w, "response_put", r),
            Some(Response::ResponseDeleteRange(r)) => object(w, "response_delete_range", r),
            Some(Response::ResponseTxn(r)) => object(w, "response_txn", r),
            None => {}
        }
    }
}

impl ToJson for TxnResponse {
    fn write_fields(&self, w: &mut Writer) {
        header(w, &self.header);
        w.bool("succeeded", self.succeeded);
        object_list(w, "responses", &self.responses);
    }
}

impl ToJson for CompactionResponse {
    fn write_fields(&self, w: &mut Writer) {
        header(w, &self.header);
    }
}

impl ToJson for StatusResponse {
    fn write_fields(&self, w: &mut Writer) {
        header(w, &self.header);
        w.string("version", &self.version);
        w.i64("dbSize", self.db_size);
        w.u64("leader", self.leader);
        w.u64("raftIndex", self.raft_index);
        w.u64("raftTerm", self.raft_term);
        w.u64("raftAppliedIndex", self.raft_applied_index);
        w.i64("dbSizeInUse", self.db_size_in_use);
        w.bool("isLearner", self.is_learner);
    }
}

impl ToJson for Member {
    fn write_fields(&self, w: &mut Writer) {
        w.u64("ID", self.id);
        w.string("name", &self.name);
        string_list(w, "peerURLs", &self.peer_urls);
        string_list(w, "clientURLs", &self.client_urls);
        w.bool("isLearner", self.is_learner);
    }
}

impl ToJson for MemberListResponse {
    fn write_fields(&self, w: &mut Writer) {
        header(w, &self.header);
        object_list(w, "members", &self.members);
    }
}

impl ToJson for MemberAddResponse {
    fn write_fields(&self, w: &mut Writer) {
        header(w, &self.header);
        if let Some(member) = &self.member {
            object(w, "member", member);
        }
        object_list(w, "members", &self.members);
    }
}

impl ToJson for MoveLeaderResponse {
    fn write_fields(&self, w: &mut Writer) {
        header(w, &self.header);
    }
}

impl ToJson for HashResponse {
    fn write_fields(&self, w: &mut Writer) {
        header(w, &self.header);
        w.u32("hash", self.hash);
    }
}

impl FromJson for LeaseGrantRequest {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "TTL" => self.ttl = r.i64()?,
            "ID" => self.id = r.i64()?,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl FromJson for LeaseRevokeRequest {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "ID" => self.id = r.i64()?,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl FromJson for LeaseKeepAliveRequest {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "ID" => self.id = r.i64()?,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl FromJson for LeaseTimeToLiveRequest {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "ID" => self.id = r.i64()?,
            "keys" => self.keys = r.bool()?,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl ToJson for LeaseGrantResponse {
    fn write_fields(&self, w: &mut Writer) {
        header(w, &self.header);
        w.i64("ID", self.id);
        w.i64("TTL", self.ttl);
        w.string("error", &self.error);
    }
}

impl ToJson for LeaseRevokeResponse {
    fn write_fields(&self, w: &mut Writer) {
        header(w, &self.header);
    }
}

impl ToJson for LeaseKeepAliveResponse {
    fn write_fields(&self, w: &mut Writer) {
        header(w, &self.header);
        w.i64("ID", self.id);
        w.i64("TTL", self.ttl);
    }
}

impl ToJson for LeaseTimeToLiveResponse {
    fn write_fields(&self, w: &mut Writer) {
        header(w, &self.header);
        w.i64("ID", self.id);
        w.i64("TTL", self.ttl);
        w.i64("grantedTTL", self.granted_ttl);
        if !self.keys.is_empty() {
            w.begin_array("keys");
            for key in &self.keys {
                w.bytes_item(key);
            }
            w.end_array();
        }
    }
}

impl ToJson for LeaseStatus {
    fn write_fields(&self, w: &mut Writer) {
        w.i64("ID", self.id);
    }
}

impl ToJson for LeaseLeasesResponse {
    fn write_fields(&self, w: &mut Writer) {
        header(w, &self.header);
        object_list(w, "leases", &self.leases);
    }
}

const FILTER_TYPE: &[&str] = &["NOPUT", "NODELETE"];
const EVENT_TYPE: &[&str] = &["PUT", "DELETE"];

impl FromJson for WatchCreateRequest {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "key" => self.key = r.bytes()?,
            "range_end" | "rangeEnd" => self.range_end = r.bytes()?,
            "start_revision" | "startRevision" => self.start_revision = r.i64()?,
            "progress_notify" | "progressNotify" => self.progress_notify = r.bool()?,
            "filters" => {
                let mut filters = Vec::new();
                r.array("[]etcdserverpb.WatchCreateRequest_FilterType", |r| {
                    filters.push(r.enumeration(FILTER_TYPE, "etcdserverpb.WatchCreateRequest_FilterType")?);
                    Ok(())
                })?;
                self.filters = filters;
            }
            "prev_kv" | "prevKv" => self.prev_kv = r.bool()?,
            "watch_id" | "watchId" => self.watch_id = r.i64()?,
            "fragment" => self.fragment = r.bool()?,
            _ => r.skip(),
        }
        Ok(())
    }
}

/// One message of a watch stream's request body (etcd's `WatchRequest` oneof).
#[derive(Default)]
pub struct WatchRequest {
    pub create: Option<WatchCreateRequest>,
    /// `cancel_request.watch_id`.
    pub cancel: Option<i64>,
    pub progress: bool,
}

/// `cancel_request`'s body.
#[derive(Default)]
struct WatchCancel(i64);

impl FromJson for WatchCancel {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "watch_id" | "watchId" => self.0 = r.i64()?,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl FromJson for WatchRequest {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "create_request" | "createRequest" => self.create = Some(message(r)?),
            "cancel_request" | "cancelRequest" => self.cancel = Some(message::<WatchCancel>(r)?.0),
            "progress_request" | "progressRequest" => {
                r.skip();
                self.progress = true;
            }
            _ => r.skip(),
        }
        Ok(())
    }
}

impl ToJson for Event {
    fn write_fields(&self, w: &mut Writer) {
        w.enumeration("type", self.r#type, EVENT_TYPE);
        if let Some(kv) = &self.kv {
            object(w, "kv", kv);
        }
        if let Some(prev) = &self.prev_kv {
            object(w, "prev_kv", prev);
        }
    }
}

impl ToJson for WatchResponse {
    fn write_fields(&self, w: &mut Writer) {
        header(w, &self.header);
        w.i64("watch_id", self.watch_id);
        w.bool("created", self.created);
        w.bool("canceled", self.canceled);
        w.i64("compact_revision", self.compact_revision);
        w.string("cancel_reason", &self.cancel_reason);
        w.bool("fragment", self.fragment);
        object_list(w, "events", &self.events);
    }
}

/// A stream message: `{"result":{...}}`, as the gateway wraps each message of a stream.
pub fn stream_result(msg: &impl ToJson) -> Vec<u8> {
    let mut w = Writer::default();
    w.begin_object();
    object(&mut w, "result", msg);
    w.end_object();
    let mut out = w.finish().into_bytes();
    out.push(b'\n');
    out
}

// ---- The client side: requests to JSON, responses from JSON ----

impl ToJson for RangeRequest {
    fn write_fields(&self, w: &mut Writer) {
        w.bytes("key", &self.key);
        w.bytes("range_end", &self.range_end);
        w.i64("limit", self.limit);
        w.i64("revision", self.revision);
        w.enumeration("sort_order", self.sort_order, SORT_ORDER);
        w.enumeration("sort_target", self.sort_target, SORT_TARGET);
        w.bool("serializable", self.serializable);
        w.bool("keys_only", self.keys_only);
        w.bool("count_only", self.count_only);
        w.i64("min_mod_revision", self.min_mod_revision);
        w.i64("max_mod_revision", self.max_mod_revision);
        w.i64("min_create_revision", self.min_create_revision);
        w.i64("max_create_revision", self.max_create_revision);
    }
}

impl ToJson for PutRequest {
    fn write_fields(&self, w: &mut Writer) {
        w.bytes("key", &self.key);
        w.bytes("value", &self.value);
        w.i64("lease", self.lease);
        w.bool("prev_kv", self.prev_kv);
        w.bool("ignore_value", self.ignore_value);
        w.bool("ignore_lease", self.ignore_lease);
    }
}

impl ToJson for DeleteRangeRequest {
    fn write_fields(&self, w: &mut Writer) {
        w.bytes("key", &self.key);
        w.bytes("range_end", &self.range_end);
        w.bool("prev_kv", self.prev_kv);
    }
}

impl ToJson for Compare {
    fn write_fields(&self, w: &mut Writer) {
        w.enumeration("result", self.result, COMPARE_RESULT);
        w.enumeration("target", self.target, COMPARE_TARGET);
        w.bytes("key", &self.key);
        // A compare against zero must still name its target value, or it would read as absent.
        match &self.target_union {
            Some(TargetUnion::Version(v)) => w.i64_always("version", *v),
            Some(TargetUnion::CreateRevision(v)) => w.i64_always("create_revision", *v),
            Some(TargetUnion::ModRevision(v)) => w.i64_always("mod_revision", *v),
            Some(TargetUnion::Value(v)) => w.bytes("value", v),
            Some(TargetUnion::Lease(v)) => w.i64_always("lease", *v),
            None => {}
        }
        w.bytes("range_end", &self.range_end);
    }
}

impl ToJson for RequestOp {
    fn write_fields(&self, w: &mut Writer) {
        match &self.request {
            Some(Request::RequestRange(r)) => object(w, "request_range", r),
            Some(Request::RequestPut(r)) => object(w, "request_put", r),
            Some(Request::RequestDeleteRange(r)) => object(w, "request_delete_range", r),
            Some(Request::RequestTxn(r)) => object(w, "request_txn", r),
            None => {}
        }
    }
}

impl ToJson for TxnRequest {
    fn write_fields(&self, w: &mut Writer) {
        object_list(w, "compare", &self.compare);
        object_list(w, "success", &self.success);
        object_list(w, "failure", &self.failure);
    }
}

impl ToJson for CompactionRequest {
    fn write_fields(&self, w: &mut Writer) {
        w.i64("revision", self.revision);
        w.bool("physical", self.physical);
    }
}

fn optional<T: FromJson>(r: &mut Reader) -> Result<Option<T>> {
    Ok(Some(message(r)?))
}

impl FromJson for ResponseHeader {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "cluster_id" => self.cluster_id = r.u64()?,
            "member_id" => self.member_id = r.u64()?,
            "revision" => self.revision = r.i64()?,
            "raft_term" => self.raft_term = r.u64()?,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl FromJson for KeyValue {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "key" => self.key = r.bytes()?,
            "create_revision" => self.create_revision = r.i64()?,
            "mod_revision" => self.mod_revision = r.i64()?,
            "version" => self.version = r.i64()?,
            "value" => self.value = r.bytes()?,
            "lease" => self.lease = r.i64()?,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl FromJson for RangeResponse {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "header" => self.header = optional(r)?,
            "kvs" => self.kvs = messages(r, "[]*mvccpb.KeyValue")?,
            "more" => self.more = r.bool()?,
            "count" => self.count = r.i64()?,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl FromJson for PutResponse {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "header" => self.header = optional(r)?,
            "prev_kv" => self.prev_kv = optional(r)?,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl FromJson for DeleteRangeResponse {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "header" => self.header = optional(r)?,
            "deleted" => self.deleted = r.i64()?,
            "prev_kvs" => self.prev_kvs = messages(r, "[]*mvccpb.KeyValue")?,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl FromJson for ResponseOp {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "response_range" => self.response = Some(Response::ResponseRange(message(r)?)),
            "response_put" => self.response = Some(Response::ResponsePut(message(r)?)),
            "response_delete_range" => self.response = Some(Response::ResponseDeleteRange(message(r)?)),
            "response_txn" => self.response = Some(Response::ResponseTxn(message(r)?)),
            _ => r.skip(),
        }
        Ok(())
    }
}

impl FromJson for TxnResponse {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "header" => self.header = optional(r)?,
            "succeeded" => self.succeeded = r.bool()?,
            "responses" => self.responses = messages(r, "[]*etcdserverpb.ResponseOp")?,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl FromJson for CompactionResponse {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "header" => self.header = optional(r)?,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl FromJson for StatusResponse {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "header" => self.header = optional(r)?,
            "version" => self.version = r.string()?,
            "dbSize" => self.db_size = r.i64()?,
            "leader" => self.leader = r.u64()?,
            "raftIndex" => self.raft_index = r.u64()?,
            "raftTerm" => self.raft_term = r.u64()?,
            "raftAppliedIndex" => self.raft_applied_index = r.u64()?,
            "dbSizeInUse" => self.db_size_in_use = r.i64()?,
            "isLearner" => self.is_learner = r.bool()?,
            _ => r.skip(),
        }
        Ok(())
    }
}

fn strings(r: &mut Reader) -> Result<Vec<String>> {
    let mut items = Vec::new();
    r.array("[]string", |r| {
        items.push(r.string()?);
        Ok(())
    })?;
    Ok(items)
}

impl FromJson for Member {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "ID" => self.id = r.u64()?,
            "name" => self.name = r.string()?,
            "peerURLs" => self.peer_urls = strings(r)?,
            "clientURLs" => self.client_urls = strings(r)?,
            "isLearner" => self.is_learner = r.bool()?,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl FromJson for MemberListResponse {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "header" => self.header = optional(r)?,
            "members" => self.members = messages(r, "[]*etcdserverpb.Member")?,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl FromJson for MemberAddResponse {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "header" => self.header = optional(r)?,
            "member" => self.member = optional(r)?,
            "members" => self.members = messages(r, "[]*etcdserverpb.Member")?,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl FromJson for MoveLeaderResponse {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "header" => self.header = optional(r)?,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl FromJson for MemberAddRequest {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "peerURLs" => self.peer_urls = strings(r)?,
            "isLearner" => self.is_learner = r.bool()?,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl FromJson for MemberRemoveRequest {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "ID" => self.id = r.u64()?,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl FromJson for MemberUpdateRequest {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "ID" => self.id = r.u64()?,
            "peerURLs" => self.peer_urls = strings(r)?,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl FromJson for MemberPromoteRequest {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "ID" => self.id = r.u64()?,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl FromJson for MoveLeaderRequest {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "targetID" | "target_id" | "targetId" => self.target_id = r.u64()?,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl ToJson for MemberAddRequest {
    fn write_fields(&self, w: &mut Writer) {
        string_list(w, "peerURLs", &self.peer_urls);
        w.bool("isLearner", self.is_learner);
    }
}

impl ToJson for MemberRemoveRequest {
    fn write_fields(&self, w: &mut Writer) {
        w.u64("ID", self.id);
    }
}

impl ToJson for MemberUpdateRequest {
    fn write_fields(&self, w: &mut Writer) {
        w.u64("ID", self.id);
        string_list(w, "peerURLs", &self.peer_urls);
    }
}

impl ToJson for MemberPromoteRequest {
    fn write_fields(&self, w: &mut Writer) {
        w.u64("ID", self.id);
    }
}

impl ToJson for MoveLeaderRequest {
    fn write_fields(&self, w: &mut Writer) {
        w.u64("targetID", self.target_id);
    }
}

impl FromJson for HashResponse {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "header" => self.header = optional(r)?,
            "hash" => self.hash = r.u64()? as u32,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl ToJson for LeaseGrantRequest {
    fn write_fields(&self, w: &mut Writer) {
        w.i64("TTL", self.ttl);
        w.i64("ID", self.id);
    }
}

impl ToJson for LeaseRevokeRequest {
    fn write_fields(&self, w: &mut Writer) {
        w.i64("ID", self.id);
    }
}

impl ToJson for LeaseKeepAliveRequest {
    fn write_fields(&self, w: &mut Writer) {
        w.i64("ID", self.id);
    }
}

impl ToJson for LeaseTimeToLiveRequest {
    fn write_fields(&self, w: &mut Writer) {
        w.i64("ID", self.id);
        w.bool("keys", self.keys);
    }
}

impl FromJson for LeaseGrantResponse {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "header" => self.header = optional(r)?,
            "ID" => self.id = r.i64()?,
            "TTL" => self.ttl = r.i64()?,
            "error" => self.error = r.string()?,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl FromJson for LeaseRevokeResponse {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "header" => self.header = optional(r)?,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl FromJson for LeaseKeepAliveResponse {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "header" => self.header = optional(r)?,
            "ID" => self.id = r.i64()?,
            "TTL" => self.ttl = r.i64()?,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl FromJson for LeaseTimeToLiveResponse {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "header" => self.header = optional(r)?,
            "ID" => self.id = r.i64()?,
            "TTL" => self.ttl = r.i64()?,
            "grantedTTL" => self.granted_ttl = r.i64()?,
            "keys" => {
                let mut keys = Vec::new();
                r.array("[][]uint8", |r| {
                    keys.push(r.bytes()?);
                    Ok(())
                })?;
                self.keys = keys;
            }
            _ => r.skip(),
        }
        Ok(())
    }
}

impl FromJson for LeaseStatus {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "ID" => self.id = r.i64()?,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl FromJson for LeaseLeasesResponse {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "header" => self.header = optional(r)?,
            "leases" => self.leases = messages(r, "[]*etcdserverpb.LeaseStatus")?,
            _ => r.skip(),
        }
        Ok(())
    }
}

/// One message of a gateway stream: `{"result": T}` (or `{"error": ...}`).
#[derive(Default)]
pub struct StreamResult<T>(pub T);

impl<T: FromJson> FromJson for StreamResult<T> {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "result" => self.0 = message(r)?,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl ToJson for WatchCreateRequest {
    fn write_fields(&self, w: &mut Writer) {
        w.bytes("key", &self.key);
        w.bytes("range_end", &self.range_end);
        w.i64("start_revision", self.start_revision);
        w.bool("progress_notify", self.progress_notify);
        if !self.filters.is_empty() {
            w.begin_array("filters");
            for f in &self.filters {
                w.string_item(FILTER_TYPE.get(*f as usize).copied().unwrap_or("NOPUT"));
            }
            w.end_array();
        }
        w.bool("prev_kv", self.prev_kv);
        w.i64("watch_id", self.watch_id);
    }
}

impl FromJson for Event {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "type" => self.r#type = r.enumeration(EVENT_TYPE, "mvccpb.Event_EventType")?,
            "kv" => self.kv = optional(r)?,
            "prev_kv" => self.prev_kv = optional(r)?,
            _ => r.skip(),
        }
        Ok(())
    }
}

impl FromJson for WatchResponse {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "header" => self.header = optional(r)?,
            "watch_id" => self.watch_id = r.i64()?,
            "created" => self.created = r.bool()?,
            "canceled" => self.canceled = r.bool()?,
            "compact_revision" => self.compact_revision = r.i64()?,
            "cancel_reason" => self.cancel_reason = r.string()?,
            "events" => self.events = messages(r, "[]*mvccpb.Event")?,
            _ => r.skip(),
        }
        Ok(())
    }
}

/// etcd's gateway error body `{"error":..,"message":..,"code":..}`.
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    pub message: String,
    pub code: u32,
}

impl FromJson for ErrorBody {
    fn field(&mut self, name: &str, r: &mut Reader) -> Result<()> {
        match name {
            "message" => self.message = r.string()?,
            "error" if self.message.is_empty() => self.message = r.string()?,
            "code" => self.code = r.u64()? as u32,
            _ => r.skip(),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_requests_like_jsonpb() {
        let r = RangeRequest::from_json(
            br#"{"key":"YS8=","rangeEnd":"YTA=","limit":"2","sort_order":"DESCEND","sort_target":3}"#,
        )
        .unwrap();
        assert_eq!(
            (r.key, r.range_end, r.limit, r.sort_order, r.sort_target),
            (b"a/".to_vec(), b"a0".to_vec(), 2, 2, 3)
        );
        let e = RangeRequest::from_json(br#"{"key":"YS8=","sort_order":"SIDEWAYS"}"#).unwrap_err();
        assert_eq!(e.0, "unknown value \"SIDEWAYS\" for enum etcdserverpb.RangeRequest_SortOrder");
        assert_eq!(PutRequest::from_json(b"").unwrap(), PutRequest::default());
        assert_eq!(PutRequest::from_json(b"null").unwrap(), PutRequest::default());
        let t = TxnRequest::from_json(
            br#"{"compare":[{"key":"Zm9v","result":"EQUAL","target":"VALUE","value":"YmFy"}],
                 "success":[{"request_put":{"key":"Zm9v","value":"eA=="}},{"request_txn":{}}]}"#,
        )
        .unwrap();
        assert_eq!(t.compare[0].target_union, Some(TargetUnion::Value(b"bar".to_vec())));
        assert!(matches!(t.success[1].request, Some(Request::RequestTxn(_))));
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
    }
}
