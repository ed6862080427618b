//! `endpoint status`, `endpoint health` and `defrag`, asked of each endpoint on its own; `alarm
//! list|disarm`; and the table printer.

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
                let client = Client::new(&[e.to_string()], Duration::from_secs(5)).and_then(|c| f(&c));
                (e.trim_start_matches("http://").to_string(), client)
            })
            .collect()
    }

    pub(crate) fn endpoint_status(&self, endpoints: &[String]) -> Outcome {
        let mut failed = None;
        let mut rows = Vec::new();
        for (endpoint, status) in self.per_endpoint(endpoints, Client::status) {
            match status {
                Ok(s) => {
                    if self.format == Format::Json {
                        println!("{}", s.to_etcdctl_json());
                        continue;
                    }
                    let header = s.header.unwrap_or_default();
                    rows.push(vec![
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
                    ]);
                }
                Err(e) => {
                    eprintln!("Failed to get the status of endpoint {endpoint} (context deadline exceeded): {e}");
                    failed = Some(e);
                }
            }
        }
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
        self.print_rows_aligned(header, rows, Align::Center);
    }

    /// As [`Ctl::print_rows`], with the table's cells aligned as `align` says (headers are
    /// always centered, as Go's tablewriter centers them).
    pub(crate) fn print_rows_aligned(&self, header: &[&str], rows: &[Vec<String>], align: Align) {
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
        let row = |cells: Vec<&str>, align: Align| {
            let cells: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| match align {
                    Align::Center => format!(" {c:^w$} "),
                    Align::Right => format!(" {c:>w$} "),
                })
                .collect();
            println!("|{}|", cells.join("|"));
        };
        line();
        row(header.to_vec(), Align::Center);
        line();
        for r in rows {
            row(r.iter().map(String::as_str).collect(), align);
        }
        line();
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Align {
    Center,
    Right,
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
