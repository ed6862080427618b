//! The Lock service's messages (`v3lockpb`).

use super::*;

json_message!(LockRequest { name: Bytes = "name", lease: I64 = "lease" });

json_message!(LockResponse {
    header: Msg<ResponseHeader> = "header",
    key: Bytes = "key",
});

json_message!(UnlockRequest { key: Bytes = "key" });

json_message!(UnlockResponse {
    header: Msg<ResponseHeader> = "header",
});
