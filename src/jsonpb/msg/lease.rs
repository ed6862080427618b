//! The Lease service's messages.

use super::*;

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
