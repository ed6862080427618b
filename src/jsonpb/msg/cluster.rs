//! The Cluster service's messages.

use super::*;

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
