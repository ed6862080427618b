//! The lease verbs: grant, revoke, timetolive, list, keep-alive.

use super::*;

impl Ctl {
    pub(crate) fn lease(&self, command: LeaseCommand) -> Outcome {
        let json = self.format == Format::Json;
        match command {
            LeaseCommand::Grant { ttl } => {
                let r = self
                    .client
                    .lease_grant(&LeaseGrantRequest { ttl, id: 0 })
                    .map_err(|e| CtlError::Usage(format!("failed to grant lease ({e})")))?;
                if json {
                    self.print_json(&r)
                } else {
                    println!("lease {:x} granted with TTL({}s)", r.id, r.ttl)
                }
            }
            LeaseCommand::Revoke { id } => {
                let r = self
                    .client
                    .lease_revoke(&LeaseRevokeRequest { id })
                    .map_err(|e| CtlError::Usage(format!("failed to revoke lease ({e})")))?;
                if json {
                    self.print_json(&r)
                } else {
                    println!("lease {id:x} revoked")
                }
            }
            LeaseCommand::Timetolive { id, keys } => {
                let r = self.client.lease_time_to_live(&LeaseTimeToLiveRequest { id, keys })?;
                if json {
                    self.print_json(&r)
                } else if r.ttl == -1 {
                    println!("lease {id:x} already expired")
                } else if keys {
                    let names: Vec<String> = r.keys.iter().map(|k| String::from_utf8_lossy(k).into_owned()).collect();
                    println!(
                        "lease {id:x} granted with TTL({}s), remaining({}s), attached keys([{}])",
                        r.granted_ttl,
                        r.ttl,
                        names.join(" ")
                    )
                } else {
                    println!("lease {id:x} granted with TTL({}s), remaining({}s)", r.granted_ttl, r.ttl)
                }
            }
            LeaseCommand::List => {
                let r = self.client.lease_leases()?;
                if json {
                    self.print_json(&r)
                } else {
                    println!("found {} leases", r.leases.len());
                    for l in &r.leases {
                        println!("{:x}", l.id);
                    }
                }
            }
            LeaseCommand::KeepAlive { id, once } => loop {
                let r = self.client.lease_keep_alive(&LeaseKeepAliveRequest { id })?;
                if r.ttl <= 0 {
                    println!("lease {id:x} expired or revoked.");
                    return Ok(());
                }
                println!("lease {id:x} keepalived with TTL({})", r.ttl);
                if once {
                    return Ok(());
                }
                // etcd's client renews at a third of the TTL.
                std::thread::sleep(Duration::from_secs((r.ttl as u64 / 3).max(1)));
            },
        }
        Ok(())
    }
}
