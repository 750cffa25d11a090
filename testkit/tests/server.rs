//! The stand-in's own rules, over plain HTTP/1.1 from a socket: what the gateway's and the
//! harness's tests rely on it for.

use npc_sync_testkit::server::{Answer, TestServer};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Sends one request on `conn` and reads the answer: (status, headers lower-cased, body).
fn exchange(
    conn: &mut BufReader<TcpStream>,
    method: &str,
    path: &str,
    body: &str,
    close: bool,
) -> (u16, Vec<(String, String)>, String) {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n{}\r\n{body}",
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    );
    conn.get_mut().write_all(req.as_bytes()).unwrap();
    let mut line = String::new();
    conn.read_line(&mut line).unwrap();
    let status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        conn.read_line(&mut h).unwrap();
        if h == "\r\n" {
            break;
        }
        let (k, v) = h.split_once(':').unwrap();
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .unwrap()
        .1
        .parse()
        .unwrap();
    let mut b = vec![0; len];
    conn.read_exact(&mut b).unwrap();
    (status, headers, String::from_utf8(b).unwrap())
}

fn connect(s: &TestServer) -> BufReader<TcpStream> {
    BufReader::new(TcpStream::connect(s.base.trim_start_matches("http://")).unwrap())
}

fn call(s: &TestServer, method: &str, path: &str, body: &str) -> (u16, String) {
    let (status, _, body) = exchange(&mut connect(s), method, path, body, true);
    (status, body)
}

const BLOCK: &str = "/v1/agents/a-1/core-memory/blocks/status";

#[test]
fn a_block_is_read_and_written_as_letta_does() {
    let s = TestServer::start_like_letta();
    let (status, body) = call(&s, "GET", BLOCK, "");
    assert_eq!(status, 404);
    assert!(
        body.contains("No block with label 'status' found for agent 'a-1'"),
        "{body}"
    );
    assert_eq!(call(&s, "PATCH", BLOCK, r#"{"value":"x: 1"}"#).0, 404);
    s.put_block("a-1", "status", "", 6);
    assert_eq!(call(&s, "PATCH", BLOCK, r#"{"value":"x: 1"}"#).0, 200);
    let (status, body) = call(&s, "PATCH", BLOCK, r#"{"value":"x: 1234"}"#);
    assert_eq!(
        (status, body.contains("Exceeds 6 character limit")),
        (400, true)
    );
    assert_eq!(call(&s, "PATCH", BLOCK, r#"{"nope":1}"#).0, 422);
    let (status, body) = call(&s, "GET", BLOCK, "");
    assert_eq!(status, 200);
    let got: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (got["value"].as_str(), got["limit"].as_u64()),
        (Some("x: 1"), Some(6))
    );
    s.with(|st| assert_eq!(st.history[&("a-1".into(), "status".into())], ["x: 1"]));
}

#[test]
fn the_lenient_server_creates_a_block_on_its_first_write() {
    let s = TestServer::start();
    assert_eq!(call(&s, "PATCH", BLOCK, r#"{"value":"x: 1"}"#).0, 200);
    assert_eq!(s.block("a-1", "status").as_deref(), Some("x: 1"));
}

#[test]
fn a_second_write_of_a_block_in_progress_is_answered_409() {
    let s = TestServer::start_like_letta();
    s.put_block("a-1", "status", "", 5000);
    s.set_patch_delay(Duration::from_millis(400));
    let first = {
        let base = s.base.clone();
        std::thread::spawn(move || {
            let mut c =
                BufReader::new(TcpStream::connect(base.trim_start_matches("http://")).unwrap());
            exchange(&mut c, "PATCH", BLOCK, r#"{"value":"x: 1"}"#, true).0
        })
    };
    while !s.with(|st| st.busy()) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let (status, headers, body) = exchange(
        &mut connect(&s),
        "PATCH",
        BLOCK,
        r#"{"value":"x: 2"}"#,
        true,
    );
    assert_eq!(status, 409);
    assert!(body.contains("Please retry"), "{body}");
    assert!(headers.contains(&("retry-after".into(), "1".into())));
    assert_eq!(first.join().unwrap(), 200);
    assert_eq!(s.block("a-1", "status").as_deref(), Some("x: 1"));
    assert_eq!(
        (s.with(|st| st.conflicts), s.count(409), s.count(200)),
        (1, 1, 1)
    );
}

#[test]
fn write_faults_pass_reads_and_any_request_faults_do_not() {
    let s = TestServer::start_like_letta();
    s.put_block("a-1", "status", "", 5000);
    s.inject_writes([Answer::Status(500), Answer::TooMany(3)]);
    assert_eq!(
        call(&s, "GET", BLOCK, "").0,
        200,
        "a read passes write faults"
    );
    assert_eq!(call(&s, "PATCH", BLOCK, r#"{"value":"a"}"#).0, 500);
    let (status, headers, _) = exchange(
        &mut connect(&s),
        "POST",
        "/v1/agents/a-1/messages",
        r#"{"messages":[]}"#,
        true,
    );
    assert_eq!(status, 429);
    assert!(headers.contains(&("retry-after".into(), "3".into())));
    assert_eq!(call(&s, "PATCH", BLOCK, r#"{"value":"b"}"#).0, 200);
    s.inject(&[Answer::Status(503)]);
    assert_eq!(
        call(&s, "GET", BLOCK, "").0,
        503,
        "a fault of any request hits a read"
    );
    assert_eq!(s.block("a-1", "status").as_deref(), Some("b"));
    assert_eq!((s.count(500), s.count(429), s.count(200)), (1, 1, 1));
}

#[test]
fn a_dropped_connection_gets_no_answer_and_applies_nothing() {
    let s = TestServer::start_like_letta();
    s.put_block("a-1", "status", "old", 5000);
    s.inject_writes([Answer::Drop]);
    let mut c = connect(&s);
    let req = "PATCH /v1/agents/a-1/core-memory/blocks/status HTTP/1.1\r\nContent-Length: 13\r\n\r\n{\"value\":\"x\"}";
    c.get_mut().write_all(req.as_bytes()).unwrap();
    let mut rest = String::new();
    let _ = c.read_to_string(&mut rest);
    assert_eq!(rest, "");
    assert_eq!(s.block("a-1", "status").as_deref(), Some("old"));
    s.with(|st| assert_eq!(st.log[0].status, None));
}

#[test]
fn a_kept_connection_serves_several_requests() {
    let s = TestServer::start();
    let mut c = connect(&s);
    let body = r#"{"changes":[{"agent_id":"a","block":"b","field":"f","value":1,"seq":2}]}"#;
    let (status, _, answer) = exchange(&mut c, "POST", "/batch", body, false);
    assert_eq!(status, 200);
    assert!(
        answer.contains("\"seq\":2"),
        "applied and confirmed: {answer}"
    );
    let older = r#"{"changes":[{"agent_id":"a","block":"b","field":"f","value":0,"seq":1}]}"#;
    let (status, _, answer) = exchange(&mut c, "POST", "/batch", older, false);
    assert_eq!(
        (status, answer.as_str()),
        (200, r#"{"confirmed":[]}"#),
        "an older seq is not applied"
    );
    s.with(|st| {
        assert_eq!(st.log.len(), 2);
        assert_eq!(st.fields[&("a".into(), "b".into(), "f".into())].1, 2.0);
    });
}
