//! The Maintenance service's messages.

use super::*;

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

// Written by `raftkvctl endpoint hashkv -w json` only: etcd 3.4's gateway never serves it.
json_message!(HashKvResponse {
    header: Msg<ResponseHeader> = "header",
    hash: U32 = "hash",
    compact_revision: I64 = "compact_revision",
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

json_message!(SnapshotResponse {
    header: Msg<ResponseHeader> = "header",
    remaining_bytes: U64 = "remaining_bytes" / "remainingBytes",
    blob: Bytes = "blob",
});
