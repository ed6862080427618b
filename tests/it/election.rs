//! etcd's Election service on a real member: with no leader, `Leader` answers etcd's error on
//! every protocol and observers wait; a campaign wins at once on an empty election; observers
//! on the library, the gateway (`raftkv::Client`) and gRPC (curl as a bare HTTP/2 client) see
//! the leader, its proclaims and, when it resigns, the candidate that waited; a stale leader
//! key cannot proclaim; a campaign whose client hangs up resigns.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam::channel::{self, Receiver};
use prost::Message;
use raftkv::client::grpc;
use raftkv::client::Error as ClientError;
use raftkv::error::Code;
use raftkv::pb::*;
use raftkv::service::observe::Observed;
use raftkv::service::{Method, Service};
use raftkv::wait::Cancel;
use raftkv::{Client, Error};

use super::lock::{grant, key_of, queued};
use crate::harness::http::Conn;
use crate::harness::process::Process;
use crate::harness::{eventually, Gateway};

const SOON: Duration = Duration::from_secs(10);

/// An observer's answers as (value, header revision).
type Seen = (String, i64);

fn seen(resp: &LeaderResponse) -> Seen {
    (String::from_utf8_lossy(&resp.kv.as_ref().unwrap().value).into_owned(), resp.header.unwrap().revision)
}

/// `curl --http2-prior-knowledge` calling `Election/Observe`: each message as it comes.
fn grpc_observer(endpoint: &str, name: &str) -> (Process, Receiver<Seen>) {
    let message = LeaderRequest { name: name.as_bytes().to_vec() }.encode_to_vec();
    let mut body = vec![0];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(&message);
    let path = std::env::temp_dir().join(format!("raftkv-observe-{}-{name}", std::process::id()));
    std::fs::write(&path, body).unwrap();
    let mut curl = Process::spawn(
        Command::new("curl")
            .args(["-s", "-N", "--http2-prior-knowledge", "-H", "content-type: application/grpc", "-H", "te: trailers"])
            .arg("--data-binary")
            .arg(format!("@{}", path.display()))
            .arg(format!("http://{endpoint}/v3electionpb.Election/Observe"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let mut out = curl.child.stdout.take().unwrap();
    let (tx, rx) = channel::unbounded();
    std::thread::Builder::new()
        .name("raftkv-test-grpc-observe".into())
        .spawn(move || {
            let mut prefix = [0u8; 5];
            while out.read_exact(&mut prefix).is_ok() {
                let mut message = vec![0; u32::from_be_bytes(prefix[1..].try_into().unwrap()) as usize];
                if out.read_exact(&mut message).is_err() {
                    return;
                }
                let _ = tx.send(seen(&LeaderResponse::decode(&message[..]).unwrap()));
            }
        })
        .unwrap();
    (curl, rx)
}

fn leader_key(resp: &CampaignResponse) -> LeaderKey {
    resp.leader.clone().unwrap()
}

fn campaign(name: &str, lease: i64, value: &str) -> CampaignRequest {
    CampaignRequest { name: name.as_bytes().to_vec(), lease, value: value.as_bytes().to_vec() }
}

#[test]
fn observers_see_the_leader_its_proclaims_and_the_candidate_that_follows() {
    let gw = Gateway::start();
    let (node, endpoint) = (gw.node.clone(), gw.addr().to_string());
    let service = Service::new(node.clone());
    let client = Client::new(std::slice::from_ref(&endpoint), Duration::from_secs(5)).unwrap();
    let leader = LeaderRequest { name: b"vote".to_vec() };

    // Nobody campaigns: etcd's error on every protocol.
    assert!(matches!(service.leader(leader.clone()), Err(Error::ElectionNoLeader)));
    match client.leader(&leader) {
        Err(ClientError::Server { code, message }) => {
            assert_eq!((code, message.as_str()), (Code::Unknown, "election: no leader"))
        }
        other => panic!("{other:?}"),
    }
    match grpc::call::<_, LeaderResponse>(&endpoint, Method::Leader, &leader, SOON) {
        Err(ClientError::Server { code, message }) => {
            assert_eq!((code, message.as_str()), (Code::Unknown, "election: no leader"))
        }
        other => panic!("{other:?}"),
    }

    // Observers on each protocol, before there is a leader.
    let (library_tx, library) = channel::unbounded();
    let _observer = service
        .observe(
            leader.clone(),
            Box::new(move |observed| {
                if let Observed::Leaders(leaders) = observed {
                    leaders.iter().for_each(|l| library_tx.send(seen(l)).unwrap());
                }
                Ok(())
            }),
        )
        .unwrap();
    let (gateway_tx, gateway) = channel::unbounded();
    {
        let (client, leader) = (client.clone(), leader.clone());
        std::thread::Builder::new()
            .name("raftkv-test-gateway-observe".into())
            .spawn(move || client.observe(&leader, |resp| gateway_tx.send(seen(&resp)).is_ok()))
            .unwrap();
    }
    let (_curl, grpc_seen) = grpc_observer(&endpoint, "vote");
    assert!(eventually(SOON, || node.watcher_count() == 3), "{} watchers", node.watcher_count());

    // The first candidate wins at once; its proclaim is seen.
    let (a, b) = (grant(&node, 60), grant(&node, 60));
    let won = service.campaign(campaign("vote", a, "a1"), &Cancel::never()).unwrap();
    let a_key = leader_key(&won);
    assert_eq!((String::from_utf8_lossy(&a_key.key).into_owned(), a_key.lease), (key_of("vote", a), a));
    assert_eq!(a_key.rev, won.header.unwrap().revision, "elected by its own put");
    let proclaimed = client.proclaim(&ProclaimRequest { leader: Some(a_key.clone()), value: b"a2".to_vec() }).unwrap();

    // The second waits over gRPC until the first resigns.
    let (b_tx, b_won) = channel::bounded(1);
    {
        let endpoint = endpoint.clone();
        std::thread::Builder::new()
            .name("raftkv-test-campaign".into())
            .spawn(move || {
                let req = campaign("vote", b, "b1");
                let _ = b_tx.send(grpc::call::<_, CampaignResponse>(&endpoint, Method::Campaign, &req, SOON * 6));
            })
            .unwrap();
    }
    assert!(eventually(SOON, || queued(&node, "vote").len() == 2));
    assert!(b_won.recv_timeout(Duration::from_millis(300)).is_err(), "the first leads");
    let resigned = service.resign(ResignRequest { leader: Some(a_key.clone()) }).unwrap();
    let b_key = leader_key(&b_won.recv_timeout(SOON).unwrap().unwrap());
    assert_eq!(String::from_utf8_lossy(&b_key.key), key_of("vote", b));

    let want = vec![
        ("a1".to_string(), a_key.rev),
        ("a2".to_string(), proclaimed.header.unwrap().revision),
        ("b1".to_string(), resigned.header.unwrap().revision),
    ];
    for (protocol, observer) in [("library", &library), ("gateway", &gateway), ("grpc", &grpc_seen)] {
        let got: Vec<Seen> = (0..3).filter_map(|_| observer.recv_timeout(SOON).ok()).collect();
        assert_eq!(got, want, "{protocol} observer");
    }
    assert_eq!(seen(&client.leader(&leader).unwrap()).0, "b1");

    // The first's key no longer leads: it cannot proclaim; resigning it changes nothing.
    let stale = service.proclaim(ProclaimRequest { leader: Some(a_key.clone()), value: b"a3".to_vec() });
    assert!(matches!(stale, Err(Error::ElectionNotLeader)), "{stale:?}");
    service.resign(ResignRequest { leader: Some(a_key) }).unwrap();
    assert_eq!(seen(&service.leader(leader.clone()).unwrap()).0, "b1");

    // The last leader's lease ends: no leader, and the observers hear nothing more.
    node.lease_revoke(LeaseRevokeRequest { id: b }).unwrap();
    assert!(matches!(service.leader(leader), Err(Error::ElectionNoLeader)));
    for observer in [&library, &gateway, &grpc_seen] {
        assert!(observer.recv_timeout(Duration::from_millis(300)).is_err());
    }
}

#[test]
fn a_campaign_given_up_resigns_and_one_campaigning_again_keeps_its_place() {
    let gw = Gateway::start();
    let node = gw.node.clone();
    let service = Service::new(node.clone());
    let (a, c) = (grant(&node, 60), grant(&node, 60));
    let won = service.campaign(campaign("seat", a, "a1"), &Cancel::never()).unwrap();

    // A gateway campaign whose client hangs up resigns.
    let mut conn = Conn::open(gw.addr(), SOON).unwrap();
    let body = format!(r#"{{"name":"c2VhdA==","lease":"{c}","value":"YzE="}}"#);
    conn.request("POST", "/v3/election/campaign", &[], body.as_bytes()).unwrap();
    assert!(eventually(SOON, || queued(&node, "seat").len() == 2));
    drop(conn);
    assert!(eventually(SOON, || queued(&node, "seat") == [key_of("seat", a)]), "{:?}", queued(&node, "seat"));

    // The leader campaigning again with a new value stays leader, with the value proclaimed;
    // etcd answers with the header of the campaign's first read, not of the proclaim.
    let again = service.campaign(campaign("seat", a, "a2"), &Cancel::never()).unwrap();
    assert_eq!(leader_key(&again), leader_key(&won));
    let now = service.leader(LeaderRequest { name: b"seat".to_vec() }).unwrap();
    assert_eq!(seen(&now), ("a2".to_string(), again.header.unwrap().revision + 1));

    // An observer whose client left before its first answer is not started.
    let offered = Arc::new(Mutex::new(0));
    let count = offered.clone();
    let gone = service.observe(
        LeaderRequest { name: b"seat".to_vec() },
        Box::new(move |_| {
            *count.lock().unwrap() += 1;
            Err(raftkv::watch::SinkError::Closed)
        }),
    );
    assert!(matches!(gone, Err(Error::Canceled)));
    assert_eq!((*offered.lock().unwrap(), node.watcher_count()), (1, 0));
}
