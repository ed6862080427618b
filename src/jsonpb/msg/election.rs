//! The Election service's messages (`v3electionpb`).

use super::*;

json_message!(CampaignRequest { name: Bytes = "name", lease: I64 = "lease", value: Bytes = "value" });

json_message!(CampaignResponse {
    header: Msg<ResponseHeader> = "header",
    leader: Msg<LeaderKey> = "leader",
});

json_message!(LeaderKey { name: Bytes = "name", key: Bytes = "key", rev: I64 = "rev", lease: I64 = "lease" });

json_message!(LeaderRequest { name: Bytes = "name" });

json_message!(LeaderResponse {
    header: Msg<ResponseHeader> = "header",
    kv: Msg<KeyValue> = "kv",
});

json_message!(ResignRequest { leader: Msg<LeaderKey> = "leader" });

json_message!(ResignResponse {
    header: Msg<ResponseHeader> = "header",
});

json_message!(ProclaimRequest { leader: Msg<LeaderKey> = "leader", value: Bytes = "value" });

json_message!(ProclaimResponse {
    header: Msg<ResponseHeader> = "header",
});
