//! The Watch service's messages.

use super::*;

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
