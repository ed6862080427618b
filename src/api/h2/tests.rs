//! The connection state machine driven with frames in memory: streaming calls (data handed
//! on as it comes, answers queued behind the client's credit, either side ending them).

use std::time::{Duration, Instant};

use super::frame::{self, flag, kind, Head, Reason, HEADER_LEN};
use super::{hpack, Connection, Event, Part, SendError, Settings, STREAM_QUEUE_MAX};

const STREAM: u32 = 1;
const PING_MIN: Duration = Duration::from_secs(5);

fn streams(path: &str) -> bool {
    path == "/stream"
}

/// A connection past the client's SETTINGS, with what it wrote so far thrown away.
fn connection(settings: &[(u16, u32)]) -> Connection {
    connection_with(Settings { streams, ping_min_time: PING_MIN, ..Settings::default() }, settings)
}

fn connection_with(config: Settings, settings: &[(u16, u32)]) -> Connection {
    let mut conn = Connection::new(config);
    let mut input = Vec::new();
    frame::settings(&mut input, settings);
    receive(&mut conn, input);
    conn.take_output();
    conn
}

fn receive(conn: &mut Connection, mut input: Vec<u8>) -> Vec<Event> {
    let mut events = Vec::new();
    conn.receive(&mut input, &mut events);
    assert!(input.is_empty(), "every frame is whole");
    events
}

fn headers(path: &str, end_stream: bool) -> Vec<u8> {
    let mut block = Vec::new();
    hpack::encode(
        &mut block,
        &[(":method", "POST"), (":scheme", "http"), (":path", path), ("content-type", "application/grpc")],
    );
    let mut out = Vec::new();
    let end = if end_stream { flag::END_STREAM } else { 0 };
    frame::write(&mut out, kind::HEADERS, flag::END_HEADERS | end, STREAM, &block);
    out
}

fn data(payload: &[u8], end_stream: bool) -> Vec<u8> {
    let mut out = Vec::new();
    frame::write(&mut out, kind::DATA, if end_stream { flag::END_STREAM } else { 0 }, STREAM, payload);
    out
}

/// The frames of `bytes`: (kind, flags, stream, payload).
fn frames(bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(head) = Head::parse(&bytes[at..]) {
        let Head { len, kind, flags, stream } = head;
        out.push((kind, flags, stream, bytes[at + HEADER_LEN..at + HEADER_LEN + len].to_vec()));
        at += HEADER_LEN + len;
    }
    assert_eq!(at, bytes.len());
    out
}

fn kinds(bytes: &[u8]) -> Vec<(u8, u8)> {
    frames(bytes).into_iter().map(|(kind, flags, _, _)| (kind, flags)).collect()
}

#[test]
fn a_streaming_call_gets_its_data_frame_by_frame_and_answers_part_by_part() {
    let mut conn = connection(&[]);
    let events = receive(&mut conn, headers("/stream", false));
    let [Event::Open(req, outbox)] = &events[..] else { panic!("one open event") };
    assert_eq!((req.stream, req.path.as_str(), req.body.len()), (STREAM, "/stream", 0));
    for chunk in [&b"ab"[..], b"cd"] {
        let events = receive(&mut conn, data(chunk, false));
        assert!(matches!(&events[..], [Event::Data { stream: STREAM, data, end: false }] if data == chunk));
    }

    // Headers wait for the first message; messages go out as DATA without END_STREAM.
    conn.send(STREAM, Part::Headers(vec![(":status", "200".into())]));
    assert!(conn.take_output().is_empty());
    outbox.reserve(3).unwrap();
    conn.send(STREAM, Part::Message(b"one".to_vec()));
    assert_eq!(kinds(&conn.take_output()), [(kind::HEADERS, flag::END_HEADERS), (kind::DATA, 0)]);
    outbox.reserve(3).unwrap();
    conn.send(STREAM, Part::Message(b"two".to_vec()));
    conn.send(STREAM, Part::Trailers(vec![("grpc-status", "0".into())]));
    let out = frames(&conn.take_output());
    assert_eq!(out[0].3, b"two");
    assert_eq!((out[1].0, out[1].1), (kind::HEADERS, flag::END_HEADERS | flag::END_STREAM));
    assert_eq!(conn.take_closed(), [STREAM]);
    assert!(outbox.is_closed() && conn.idle());
    assert_eq!(outbox.reserve(1), Err(SendError::Closed));
}

#[test]
fn a_status_without_messages_is_one_headers_frame_and_the_client_ending_its_side_is_data() {
    let mut conn = connection(&[]);
    let events = receive(&mut conn, headers("/stream", true));
    assert!(matches!(&events[..], [Event::Open(..), Event::Data { end: true, .. }]));
    conn.send(STREAM, Part::Headers(vec![(":status", "200".into())]));
    conn.send(STREAM, Part::Trailers(vec![("grpc-status", "14".into())]));
    assert_eq!(kinds(&conn.take_output()), [(kind::HEADERS, flag::END_HEADERS | flag::END_STREAM)]);
    assert_eq!(conn.take_closed(), [STREAM]);
}

#[test]
fn a_client_reset_ends_the_stream_and_later_parts_are_dropped() {
    let mut conn = connection(&[]);
    let events = receive(&mut conn, headers("/stream", false));
    let [Event::Open(_, outbox)] = &events[..] else { panic!("one open event") };
    let mut rst = Vec::new();
    frame::rst_stream(&mut rst, STREAM, Reason::Cancel);
    receive(&mut conn, rst);
    assert_eq!(conn.take_closed(), [STREAM]);
    assert!(outbox.is_closed());
    conn.send(STREAM, Part::Message(b"late".to_vec()));
    assert!(conn.take_output().is_empty());
    // DATA after the reset is on a closed stream.
    receive(&mut conn, data(b"x", false));
    assert_eq!(kinds(&conn.take_output()), [(kind::RST_STREAM, 0)]);
}

#[test]
fn messages_wait_for_credit_and_a_reader_that_never_reads_fills_the_outbox() {
    // The client allows 4 bytes per stream and returns none.
    let mut conn = connection(&[(frame::setting::INITIAL_WINDOW_SIZE, 4)]);
    let events = receive(&mut conn, headers("/stream", false));
    let [Event::Open(_, outbox)] = &events[..] else { panic!("one open event") };
    conn.send(STREAM, Part::Headers(vec![(":status", "200".into())]));
    let message = vec![7u8; STREAM_QUEUE_MAX / 2];
    outbox.reserve(message.len()).unwrap();
    conn.send(STREAM, Part::Message(message.clone()));
    let out = frames(&conn.take_output());
    assert_eq!(out.iter().map(|f| f.3.len()).collect::<Vec<_>>()[1..], [4]);
    outbox.reserve(message.len()).unwrap();
    conn.send(STREAM, Part::Message(message.clone()));
    assert_eq!(outbox.reserve(message.len()), Err(SendError::Full));

    // Credit lets the queue drain and makes room again.
    let mut update = Vec::new();
    frame::window_update(&mut update, STREAM, message.len() as u32 * 2);
    frame::window_update(&mut update, 0, message.len() as u32 * 2);
    receive(&mut conn, update);
    let sent: usize = frames(&conn.take_output()).iter().map(|f| f.3.len()).sum();
    assert_eq!(sent, message.len() * 2 - 4);
    assert_eq!(outbox.reserve(message.len()), Ok(()));
}

#[test]
fn dropping_the_connection_closes_its_streams_outboxes() {
    let mut conn = connection(&[]);
    let events = receive(&mut conn, headers("/stream", false));
    let [Event::Open(_, outbox)] = &events[..] else { panic!("one open event") };
    let outbox = outbox.clone();
    drop(events);
    drop(conn);
    assert!(outbox.is_closed());
}

#[test]
fn unary_paths_still_gather_their_body() {
    let mut conn = connection(&[]);
    assert!(receive(&mut conn, headers("/unary", false)).is_empty());
    let events = receive(&mut conn, data(b"body", true));
    assert!(matches!(&events[..], [Event::Request(req)] if req.body == b"body"));
}

fn ping() -> Vec<u8> {
    let mut out = Vec::new();
    frame::write(&mut out, kind::PING, 0, 0, &[0; 8]);
    out
}

#[test]
fn pings_closer_than_the_policy_allows_end_the_connection_with_too_many_pings() {
    let mut conn = connection(&[]);
    receive(&mut conn, headers("/stream", false));
    // The first ping is free, the next two are strikes; the third strike ends the connection.
    for _ in 0..3 {
        receive(&mut conn, ping());
        assert!(!conn.failed());
    }
    receive(&mut conn, ping());
    assert!(conn.failed());
    let out = frames(&conn.take_output());
    let (kind, _, _, payload) = out.last().unwrap();
    assert_eq!(*kind, kind::GOAWAY);
    assert_eq!(frame::u32_at(&payload[4..]), Reason::EnhanceYourCalm as u32);
    assert_eq!(&payload[8..], b"too_many_pings");
}

#[test]
fn pings_after_data_sent_are_no_strikes() {
    let mut conn = connection(&[]);
    let events = receive(&mut conn, headers("/stream", false));
    let [Event::Open(_, outbox)] = &events[..] else { panic!("one open event") };
    conn.send(STREAM, Part::Headers(vec![(":status", "200".into())]));
    for _ in 0..10 {
        outbox.reserve(1).unwrap();
        conn.send(STREAM, Part::Message(b"m".to_vec()));
        receive(&mut conn, ping());
    }
    assert!(!conn.failed());
}

#[test]
fn a_client_that_reads_nothing_for_the_keepalive_time_is_pinged_and_closed_after_the_timeout() {
    let (time, timeout) = (Duration::from_secs(60), Duration::from_secs(20));
    let config = Settings { keepalive_time: time, keepalive_timeout: timeout, ..Settings::default() };
    let mut conn = connection_with(config, &[]);
    let start = Instant::now();
    assert!(conn.keepalive(start + time - Duration::from_secs(1)));
    assert!(!conn.has_output(), "no ping before the keepalive time");
    let sent = start + time + Duration::from_millis(1);
    assert!(conn.keepalive(sent));
    assert_eq!(kinds(&conn.take_output()), vec![(kind::PING, 0)]);
    assert!(conn.keepalive(sent + timeout - Duration::from_secs(1)), "alive until the timeout");
    assert!(!conn.has_output(), "one ping outstanding at a time");
    assert!(!conn.keepalive(sent + timeout), "nothing read within the timeout: dead");
}

#[test]
fn any_frame_read_after_the_keepalive_ping_keeps_the_connection() {
    let config =
        Settings { keepalive_time: Duration::ZERO, keepalive_timeout: Duration::from_secs(20), ..Settings::default() };
    let mut conn = connection_with(config, &[]);
    assert!(conn.keepalive(Instant::now()));
    assert_eq!(kinds(&conn.take_output()), vec![(kind::PING, 0)]);
    let mut ack = Vec::new();
    frame::write(&mut ack, kind::PING, flag::ACK, 0, &[0; 8]);
    receive(&mut conn, ack);
    assert!(conn.keepalive(Instant::now() + Duration::from_secs(30)), "the ack was read: alive");
    assert_eq!(kinds(&conn.take_output()), vec![(kind::PING, 0)], "and pinged again after the time");
    assert!(!conn.keepalive(Instant::now() + Duration::from_secs(60)), "the second went unanswered");
}
