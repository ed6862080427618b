//! `endpoint status`, `endpoint health`, `endpoint hashkv` and `defrag`, asked of each
//! endpoint on its own; `alarm list|disarm`; and the table printer.

use super::*;

impl Ctl {
    pub(crate) fn per_endpoint<T>(
        &self,
        endpoints: &[String],
        f: impl Fn(&Client) -> Result<T, CtlError>,
    ) -> Vec<(String, Result<T, CtlError>)> {
        endpoints
            .iter()
            .flat_map(|e| e.split(','))
            .map(|e| {
                let client =
                    dial(&[e.to_string()], Duration::from_secs(5), self.dial_timeout, self.gateway).and_then(|c| f(&c));
                // Shown as given, `http://` and all, as etcdctl shows it.
                (e.to_string(), client)
            })
            .collect()
    }

    pub(crate) fn endpoint_status(&self, endpoints: &[String]) -> Outcome {
        let mut failed = None;
        let mut statuses = Vec::new();
        for (endpoint, status) in self.per_endpoint(endpoints, Client::status) {
            match status {
                Ok(s) => statuses.push((endpoint, s)),
                Err(e) => {
                    eprintln!("Failed to get the status of endpoint {endpoint} ({})", endpoint_error(&e));
                    failed = Some(e);
                }
            }
        }
        if self.format == Format::Json {
            print_endpoints_json("Status", &statuses);
            return failed.map_or(Ok(()), Err);
        }
        let rows: Vec<Vec<String>> = statuses
            .into_iter()
            .map(|(endpoint, s)| {
                let header = s.header.unwrap_or_default();
                vec![
                    endpoint,
                    format!("{:x}", header.member_id),
                    s.version.clone(),
                    human_bytes(s.db_size),
                    (s.leader == header.member_id).to_string(),
                    s.is_learner.to_string(),
                    s.raft_term.to_string(),
                    s.raft_index.to_string(),
                    s.raft_applied_index.to_string(),
                    s.errors.join(", "),
                ]
            })
            .collect();
        let header = [
            "ENDPOINT",
            "ID",
            "VERSION",
            "DB SIZE",
            "IS LEADER",
            "IS LEARNER",
            "RAFT TERM",
            "RAFT INDEX",
            "RAFT APPLIED INDEX",
            "ERRORS",
        ];
        self.print_rows(&header, &rows);
        failed.map_or(Ok(()), Err)
    }

    pub(crate) fn endpoint_health(&self, endpoints: &[String]) -> Outcome {
        let mut unhealthy = false;
        for (endpoint, took) in self.per_endpoint(endpoints, |c| {
            let start = Instant::now();
            // etcdctl's probe: a linearizable read of a key nobody writes.
            c.range(&RangeRequest::key("health"))?;
            Ok(start.elapsed())
        }) {
            match took {
                Ok(took) => println!("{endpoint} is healthy: successfully committed proposal: took = {took:?}"),
                Err(e) => {
                    unhealthy = true;
                    eprintln!("{endpoint} is unhealthy: failed to commit proposal: {e}");
                }
            }
        }
        if unhealthy {
            return Err(CtlError::Usage("unhealthy cluster".into()));
        }
        Ok(())
    }

    /// etcdctl's `endpoint hashkv`: each endpoint's HashKV at `rev` (0: now), asked over gRPC
    /// as etcdctl asks it (etcd 3.4's gateway has no path for HashKV), printed as etcdctl
    /// prints it; a failed endpoint is reported and the others still printed.
    pub(crate) fn endpoint_hashkv(&self, endpoints: &[String], rev: i64, timeout: Duration) -> Outcome {
        let mut failed = None;
        let mut hashes = Vec::new();
        for endpoint in endpoints.iter().flat_map(|e| e.split(',')) {
            let request = HashKvRequest { revision: rev };
            // Over gRPC whatever --gateway says, with the TLS flags.
            match dial(&[endpoint.to_string()], timeout, self.dial_timeout, false).and_then(|c| c.hash_kv(&request)) {
                Ok(resp) => hashes.push((endpoint.to_string(), resp)),
                Err(e) => {
                    eprintln!("Failed to get the hash of endpoint {endpoint} ({})", endpoint_error(&e));
                    failed = Some(e);
                }
            }
        }
        if self.format == Format::Json {
            print_endpoints_json("HashKV", &hashes);
        } else {
            let rows: Vec<Vec<String>> = hashes.iter().map(|(e, r)| vec![e.clone(), r.hash.to_string()]).collect();
            self.print_rows(&["ENDPOINT", "HASH"], &rows);
        }
        failed.map_or(Ok(()), Err)
    }

    /// etcdctl's `defrag`: each endpoint in turn, its storage rewritten.
    pub(crate) fn defrag(&self, endpoints: &[String]) -> Outcome {
        let mut failed = false;
        for (endpoint, outcome) in self.per_endpoint(endpoints, Client::defragment) {
            match outcome {
                Ok(_) => println!("Finished defragmenting etcd member[{endpoint}]"),
                Err(e) => {
                    failed = true;
                    eprintln!("Failed to defragment etcd member[{endpoint}] ({e})");
                }
            }
        }
        if failed {
            return Err(CtlError::Usage("defragment failed".into()));
        }
        Ok(())
    }

    /// etcdctl's `alarm list` and `alarm disarm` (which lists, then clears each one listed), in
    /// Go's text form of an alarm.
    pub(crate) fn alarm(&self, command: AlarmCommand) -> Outcome {
        let request =
            |action: AlarmAction, member_id: u64, alarm: i32| AlarmRequest { action: action as i32, member_id, alarm };
        let mut alarms = self.client.alarm(&request(AlarmAction::Get, 0, AlarmType::None as i32))?.alarms;
        if matches!(command, AlarmCommand::Disarm) {
            let mut cleared = Vec::new();
            for a in alarms {
                cleared.extend(self.client.alarm(&request(AlarmAction::Deactivate, a.member_id, a.alarm))?.alarms);
            }
            alarms = cleared;
        }
        if self.format == Format::Json {
            self.print_json(&AlarmResponse { header: None, alarms });
            return Ok(());
        }
        for a in alarms {
            println!("{}", raftkv::alarm::text(&a));
        }
        Ok(())
    }

    pub(crate) fn print_rows(&self, header: &[&str], rows: &[Vec<String>]) {
        if self.format != Format::Table {
            for row in rows {
                println!("{}", row.join(", "));
            }
            return;
        }
        let widths: Vec<usize> = (0..header.len())
            .map(|i| rows.iter().map(|r| r[i].len()).chain([header[i].len()]).max().unwrap_or(0))
            .collect();
        let line = || println!("+{}+", widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("+"));
        // tablewriter as etcdctl sets it up: headers centred, cells aligned right.
        let row = |cells: Vec<&str>, centred: bool| {
            let cells: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| if centred { format!(" {c:^w$} ") } else { format!(" {c:>w$} ") })
                .collect();
            println!("|{}|", cells.join("|"));
        };
        line();
        row(header.to_vec(), true);
        line();
        for r in rows {
            row(r.iter().map(String::as_str).collect(), false);
        }
        line();
    }
}

/// etcdctl's `-w json` of a verb asked of each endpoint: Go's `encoding/json` of a list of
/// `{"Endpoint": ..., "<name>": response}`.
fn print_endpoints_json(name: &str, answers: &[(String, impl ToJson)]) {
    let items: Vec<String> = answers
        .iter()
        .map(|(endpoint, resp)| {
            let mut w = raftkv::jsonpb::Writer::etcdctl();
            w.begin_object();
            w.string("Endpoint", endpoint);
            w.begin_field_object(name);
            resp.write_fields(&mut w);
            w.end_object();
            w.end_object();
            w.finish()
        })
        .collect();
    println!("[{}]", items.join(","));
}

/// What etcdctl says about an endpoint that failed: the server's message, or (grpc-go dials
/// until the command's deadline) `context deadline exceeded`, here with the reason after it.
fn endpoint_error(e: &CtlError) -> String {
    match e {
        CtlError::Unreachable { reason, .. } => format!("context deadline exceeded: {reason}"),
        other => other.to_string(),
    }
}

/// go-humanize's `Bytes` (SI units), as etcdctl prints sizes: one decimal below 10 of a unit.
pub(crate) fn human_bytes(n: i64) -> String {
    let n = n.max(0) as f64;
    if n < 10.0 {
        return format!("{n} B");
    }
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let e = ((n.ln() / 1000f64.ln()).floor() as usize).min(units.len() - 1);
    let v = (n / 1000f64.powi(e as i32) * 10.0 + 0.5).floor() / 10.0;
    if v < 10.0 {
        format!("{v:.1} {}", units[e])
    } else {
        format!("{v:.0} {}", units[e])
    }
}
