//! The HTTP server the tests talk to, on 127.0.0.1: the project's batch endpoint (applies a
//! field only when its `seq` is higher, answers with what it confirmed) and Letta's block
//! and message endpoints. Failures are injected per request: a status (5xx), a 429 with
//! `Retry-After`, or no answer within the client's timeout.

use serde_json::{json, Value as Json};
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the server received it.
#[derive(Clone, Debug)]
pub struct Received {
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Headers (names lower-cased).
    pub headers: BTreeMap<String, String>,
    /// Body text.
    pub body: String,
    /// What the server did with it.
    pub answer: Answer,
}

/// What the server answers the next request with (faults are consumed in order).
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// Handled normally.
    Normal,
    /// This status and nothing applied (500, 503, ...).
    Status(u16),
    /// 429 with this `Retry-After` (seconds), nothing applied.
    TooMany(u32),
    /// No answer for this long (longer than the client's timeout), nothing applied.
    Hang(Duration),
}

/// Everything the server holds, for assertions.
#[derive(Default, Debug)]
pub struct State {
    /// Every request, in arrival order.
    pub log: Vec<Received>,
    /// Faults for the next requests, consumed in order.
    pub faults: VecDeque<Answer>,
    /// Batch endpoint: (agent, block, field) -> (value, seq).
    pub fields: BTreeMap<(String, String, String), (Json, f64)>,
    /// Letta: (agent, label) -> block value.
    pub blocks: BTreeMap<(String, String), String>,
    /// Letta: messages posted, (agent, body).
    pub messages: Vec<(String, Json)>,
    /// Requests being handled now, and the most at once.
    pub concurrent: usize,
    /// The most requests handled at once.
    pub max_concurrent: usize,
}

/// A running test server.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    state: Arc<Mutex<State>>,
}

impl TestServer {
    /// Starts on a free port; runs until the process ends.
    pub fn start() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let st = Arc::clone(&state);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let st = Arc::clone(&st);
                std::thread::spawn(move || handle(conn, &st));
            }
        });
        TestServer { base, state }
    }

    /// Queues faults for the next requests.
    pub fn inject(&self, answers: &[Answer]) {
        self.state
            .lock()
            .unwrap()
            .faults
            .extend(answers.iter().cloned());
    }

    /// Reads the state.
    pub fn with<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.state.lock().unwrap())
    }

    /// Sets a Letta block's value (as if the agent had it before the game started).
    pub fn set_block(&self, agent: &str, label: &str, value: &str) {
        self.state
            .lock()
            .unwrap()
            .blocks
            .insert((agent.into(), label.into()), value.into());
    }
}

fn handle(conn: TcpStream, st: &Mutex<State>) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone stream"));
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let body = String::from_utf8_lossy(&body).to_string();
    let answer = {
        let mut s = st.lock().unwrap();
        s.concurrent += 1;
        s.max_concurrent = s.max_concurrent.max(s.concurrent);
        s.faults.pop_front().unwrap_or(Answer::Normal)
    };
    let (status, extra, out) = match &answer {
        Answer::Normal => route(st, &method, &path, &body),
        Answer::Status(code) => (*code, String::new(), json!({"error": "injected"})),
        Answer::TooMany(secs) => (
            429,
            format!("Retry-After: {secs}\r\n"),
            json!({"error": "rate limited"}),
        ),
        Answer::Hang(d) => {
            std::thread::sleep(*d);
            (503, String::new(), json!({"error": "too late"}))
        }
    };
    {
        let mut s = st.lock().unwrap();
        s.concurrent -= 1;
        s.log.push(Received {
            method,
            path,
            headers,
            body,
            answer,
        });
    }
    let text = out.to_string();
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        429 => "Too Many Requests",
        _ => "Error",
    };
    let resp = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{text}",
        text.len()
    );
    let mut conn = conn;
    let _ = conn.write_all(resp.as_bytes());
}

fn route(st: &Mutex<State>, method: &str, path: &str, body: &str) -> (u16, String, Json) {
    let parsed: Json = match serde_json::from_str(body) {
        Ok(j) => j,
        Err(_) if method == "GET" => Json::Null,
        Err(e) => {
            return (
                400,
                String::new(),
                json!({"error": format!("bad JSON: {e}")}),
            )
        }
    };
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut s = st.lock().unwrap();
    match (method, segs.as_slice()) {
        ("PATCH", ["v1", "agents", agent, "core-memory", "blocks", label]) => {
            let Some(value) = parsed.get("value").and_then(Json::as_str) else {
                return (422, String::new(), json!({"error": "value missing"}));
            };
            s.blocks
                .insert((agent.to_string(), label.to_string()), value.to_string());
            (200, String::new(), json!({"label": label, "value": value}))
        }
        ("GET", ["v1", "agents", agent, "core-memory", "blocks", label]) => {
            match s.blocks.get(&(agent.to_string(), label.to_string())) {
                Some(v) => (
                    200,
                    String::new(),
                    json!({"label": label, "value": v, "limit": 5000}),
                ),
                None => (404, String::new(), json!({"error": "no such block"})),
            }
        }
        ("POST", ["v1", "agents", agent, "messages"]) => {
            s.messages.push((agent.to_string(), parsed));
            (200, String::new(), json!({"messages": []}))
        }
        ("POST", _) => {
            // The batch endpoint: apply each field whose seq is higher than the held one.
            let mut confirmed = Vec::new();
            if let Some(changes) = parsed.get("changes").and_then(Json::as_array) {
                for c in changes {
                    let key = (
                        c["agent_id"].as_str().unwrap_or("").to_string(),
                        c["block"].as_str().unwrap_or("").to_string(),
                        c["field"].as_str().unwrap_or("").to_string(),
                    );
                    let seq = c["seq"].as_f64().unwrap_or(0.0);
                    let value = c.get("value").cloned().unwrap_or(Json::Null);
                    let held = s.fields.get(&key).map(|(_, q)| *q).unwrap_or(0.0);
                    if seq > held {
                        s.fields.insert(key, (value, seq));
                        confirmed.push(c.clone());
                    }
                }
            }
            (200, String::new(), json!({"confirmed": confirmed}))
        }
        _ => (404, String::new(), json!({"error": "no route"})),
    }
}
