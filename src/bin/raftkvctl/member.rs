//! The cluster verbs: member list/add/remove/update/promote, move-leader.

use super::*;

impl Ctl {
    pub(crate) fn member_list(&self) -> Outcome {
        let resp = self.client.member_list()?;
        if self.format == Format::Json {
            self.print_json(&resp);
            return Ok(());
        }
        let rows: Vec<Vec<String>> = resp
            .members
            .iter()
            .map(|m| {
                let state = if m.name.is_empty() { "unstarted" } else { "started" };
                vec![
                    format!("{:x}", m.id),
                    state.into(),
                    m.name.clone(),
                    m.peer_urls.join(","),
                    m.client_urls.join(","),
                    m.is_learner.to_string(),
                ]
            })
            .collect();
        self.print_rows(&["ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS", "IS LEARNER"], &rows);
        Ok(())
    }

    pub(crate) fn member(&self, command: MemberCommand) -> Outcome {
        let (verb, id, header) = match command {
            MemberCommand::List => return self.member_list(),
            MemberCommand::Add { name, peer_urls, learner } => {
                let req = MemberAddRequest { peer_urls: peer_urls.clone(), is_learner: learner };
                let resp = self.client.member_add(&req)?;
                if self.format == Format::Json {
                    self.print_json(&resp);
                    return Ok(());
                }
                let id = resp.member.as_ref().map_or(0, |m| m.id);
                let cluster_id = resp.header.as_ref().map_or(0, |h| h.cluster_id);
                println!("Member {id:16x} added to cluster {cluster_id:16x}");
                // etcdctl's hints for starting the new member.
                let initial: Vec<String> = resp
                    .members
                    .iter()
                    .flat_map(|m| {
                        let member_name = if m.id == id { name.clone() } else { m.name.clone() };
                        m.peer_urls.iter().map(move |u| format!("{member_name}={u}"))
                    })
                    .collect();
                println!();
                println!("ETCD_NAME={name:?}");
                println!("ETCD_INITIAL_CLUSTER={:?}", initial.join(","));
                println!("ETCD_INITIAL_ADVERTISE_PEER_URLS={:?}", peer_urls.join(","));
                println!("ETCD_INITIAL_CLUSTER_STATE=\"existing\"");
                return Ok(());
            }
            MemberCommand::Remove { id } => {
                let id = parse_member_id(&id)?;
                ("removed from", id, self.client.member_remove(&MemberRemoveRequest { id })?.header)
            }
            MemberCommand::Update { id, peer_urls } => {
                let id = parse_member_id(&id)?;
                ("updated in", id, self.client.member_update(&MemberUpdateRequest { id, peer_urls })?.header)
            }
            MemberCommand::Promote { id } => {
                let id = parse_member_id(&id)?;
                ("promoted in", id, self.client.member_promote(&MemberPromoteRequest { id })?.header)
            }
        };
        if self.format == Format::Json {
            self.print_json(&MemberListResponse { header, members: Vec::new() });
        } else {
            println!("Member {id:16x} {verb} cluster {:16x}", header.map_or(0, |h| h.cluster_id));
        }
        Ok(())
    }

    pub(crate) fn move_leader(&self, endpoints: &[String], target: &str) -> Outcome {
        let target = parse_member_id(target)?;
        let leader = self.per_endpoint(endpoints, Client::status).into_iter().find_map(|(endpoint, status)| {
            let s = status.ok()?;
            (s.header.as_ref()?.member_id == s.leader).then_some((endpoint, s.leader))
        });
        let Some((endpoint, leader_id)) = leader else {
            return Err(CtlError::Usage(format!("no leader endpoint given at {endpoints:?}")));
        };
        let client = dial(&[endpoint], Duration::from_secs(30), self.dial_timeout, self.gateway)?;
        let resp = client.move_leader(&MoveLeaderRequest { target_id: target })?;
        if self.format == Format::Json {
            self.print_json(&resp);
        } else {
            println!("Leadership transferred from {leader_id:x} to {target:x}");
        }
        Ok(())
    }
}
