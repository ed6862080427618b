//! The KV service's messages (and the key-value pair and header every answer carries), with
//! the oneofs of txns and compares.

use super::*;

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
        let Some(value) = value else { return };
        // Go's encoding/json (etcdctl's `-w json`) writes the oneof as its Go wrapper:
        // `"Response":{"ResponseRange":{...}}`; jsonpb writes the member by its proto name.
        let etcdctl = w.is_etcdctl();
        if etcdctl {
            w.begin_field_object("Response");
        }
        let name = |proto: &'static str, go: &'static str| if etcdctl { go } else { proto };
        match value {
            Response::ResponseRange(r) => object(w, name("response_range", "ResponseRange"), r),
            Response::ResponsePut(r) => object(w, name("response_put", "ResponsePut"), r),
            Response::ResponseDeleteRange(r) => object(w, name("response_delete_range", "ResponseDeleteRange"), r),
            Response::ResponseTxn(r) => object(w, name("response_txn", "ResponseTxn"), r),
        }
        if etcdctl {
            w.end_object();
        }
    }
}
