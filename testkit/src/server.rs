//! The HTTP server the tests talk to, on 127.0.0.1: Letta's block and message endpoints
//! (see the `letta` module) and, for any other POST, the project's batch endpoint reduced
//! to its rule (applies a field only when its `seq` is higher, answers with what it
//! confirmed). One thread per connection. Faults are injected per request: a status
//! (5xx), a 429 with `Retry-After`, Letta's 409, a slow answer, no answer within the
//! client's timeout, or a dropped connection. Every request is recorded.

use crate::wire::{self, Request};
use crate::{batch, letta};
use serde_json::{json, Value as Json};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::BufReader;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A block: (agent id, label).
pub type BlockKey = (String, String);

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
    /// The fault it met ([`Answer::Normal`]: none).
    pub answer: Answer,
    /// The status answered (`None`: the connection was dropped without an answer).
    pub status: Option<u16>,
}

/// What the server answers a request with (faults are consumed in order).
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// Handled normally.
    Normal,
    /// This status and nothing applied (500, 503, ...).
    Status(u16),
    /// 429 with this `Retry-After` (seconds), nothing applied.
    TooMany(u32),
    /// No answer for this long (longer than the client's timeout), then 503; nothing
    /// applied.
    Hang(Duration),
    /// Waits this long, then handles the request normally.
    Slow(Duration),
    /// Closes the connection without an answer, as a crashed or restarted server does;
    /// nothing applied.
    Drop,
    /// 409 as Letta answers when another write of the block is in progress.
    Conflict,
}

/// Everything the server holds, for assertions.
#[derive(Debug)]
pub struct State {
    /// Every request, in the order its handling ended.
    pub log: Vec<Received>,
    /// Faults for the next requests of any kind, consumed in order.
    pub faults: VecDeque<Answer>,
    /// Faults for the next Letta writes (block PATCH, message POST), consumed in order
    /// once [`State::faults`] is empty; reads and other requests pass.
    pub write_faults: VecDeque<Answer>,
    /// Batch endpoint: (agent, block, field) -> (value, seq).
    pub fields: BTreeMap<(String, String, String), (Json, f64)>,
    /// Letta: block values.
    pub blocks: BTreeMap<BlockKey, String>,
    /// Letta: block limits (a block without one has Letta's default, 5000).
    pub limits: BTreeMap<BlockKey, usize>,
    /// Letta: every value PATCHed, per block, in order.
    pub history: BTreeMap<BlockKey, Vec<String>>,
    /// Letta: messages posted, (agent, body).
    pub messages: Vec<(String, Json)>,
    /// Letta: blocks with a PATCH in progress (a second one is answered 409).
    pub writing: BTreeSet<BlockKey>,
    /// Letta: PATCHes answered 409 because another write of the block was in progress.
    pub conflicts: u64,
    /// Letta: how long each PATCH takes (Letta needs 0.15 to 0.3 s on this machine).
    pub patch_delay: Duration,
    /// Letta: whether a PATCH of a block never created creates it (Letta answers 404).
    pub create_missing_blocks: bool,
    /// Requests being handled now.
    pub concurrent: usize,
    /// The most requests handled at once.
    pub max_concurrent: usize,
}

impl State {
    fn new(create_missing_blocks: bool) -> State {
        State {
            log: Vec::new(),
            faults: VecDeque::new(),
            write_faults: VecDeque::new(),
            fields: BTreeMap::new(),
            blocks: BTreeMap::new(),
            limits: BTreeMap::new(),
            history: BTreeMap::new(),
            messages: Vec::new(),
            writing: BTreeSet::new(),
            conflicts: 0,
            patch_delay: Duration::ZERO,
            create_missing_blocks,
            concurrent: 0,
            max_concurrent: 0,
        }
    }

    /// A block's character limit.
    pub fn limit(&self, key: &BlockKey) -> usize {
        self.limits
            .get(key)
            .copied()
            .unwrap_or(letta::DEFAULT_LIMIT)
    }

    /// Whether a Letta PATCH is being handled right now.
    pub fn busy(&self) -> bool {
        !self.writing.is_empty()
    }

    /// The fault the next request meets.
    fn next_fault(&mut self, method: &str, path: &str) -> Answer {
        if let Some(a) = self.faults.pop_front() {
            return a;
        }
        if letta::is_write(method, path) {
            if let Some(a) = self.write_faults.pop_front() {
                return a;
            }
        }
        Answer::Normal
    }
}

/// A running test server.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    state: Arc<Mutex<State>>,
}

impl TestServer {
    /// Starts on a free port; runs until the process ends. A PATCH of a Letta block never
    /// created creates it (so a test need not create every block it writes).
    pub fn start() -> TestServer {
        TestServer::serve(true)
    }

    /// Like [`TestServer::start`], but a PATCH of a block never created is answered 404,
    /// as Letta does.
    pub fn start_like_letta() -> TestServer {
        TestServer::serve(false)
    }

    fn serve(create_missing_blocks: bool) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::new(create_missing_blocks)));
        let st = Arc::clone(&state);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let st = Arc::clone(&st);
                std::thread::spawn(move || serve_connection(conn, &st));
            }
        });
        TestServer { base, state }
    }

    /// Queues faults for the next requests of any kind.
    pub fn inject(&self, answers: &[Answer]) {
        self.state
            .lock()
            .unwrap()
            .faults
            .extend(answers.iter().cloned());
    }

    /// Queues faults for the next Letta writes (block PATCH, message POST).
    pub fn inject_writes(&self, answers: impl IntoIterator<Item = Answer>) {
        self.state.lock().unwrap().write_faults.extend(answers);
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        let mut s = self.state.lock().unwrap();
        s.faults.clear();
        s.write_faults.clear();
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

    /// Creates (or replaces) a Letta block with its character limit.
    pub fn put_block(&self, agent: &str, label: &str, value: &str, limit: usize) {
        let mut s = self.state.lock().unwrap();
        let key: BlockKey = (agent.into(), label.into());
        s.blocks.insert(key.clone(), value.into());
        s.limits.insert(key, limit);
    }

    /// A Letta block's value.
    pub fn block(&self, agent: &str, label: &str) -> Option<String> {
        self.with(|s| s.blocks.get(&(agent.into(), label.into())).cloned())
    }

    /// Sets how long each Letta PATCH takes.
    pub fn set_patch_delay(&self, d: Duration) {
        self.state.lock().unwrap().patch_delay = d;
    }

    /// How many Letta writes (block PATCH, message POST) were answered with this status.
    pub fn count(&self, status: u16) -> u64 {
        self.with(|s| {
            s.log
                .iter()
                .filter(|r| r.status == Some(status) && letta::is_write(&r.method, &r.path))
                .count() as u64
        })
    }
}

/// Serves one connection: requests one after the other until the client closes it, asks
/// for `Connection: close`, or a fault drops it.
fn serve_connection(conn: TcpStream, st: &Mutex<State>) {
    let _ = conn.set_nodelay(true);
    let Ok(read_half) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut conn = conn;
    while let Some(req) = wire::read_request(&mut reader) {
        let close = req.closes();
        match handle(st, req) {
            Some(answer) => {
                if !wire::write_answer(&mut conn, &answer, close) {
                    return;
                }
            }
            None => {
                let _ = conn.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

/// Handles one request; `None`: drop the connection without an answer.
fn handle(st: &Mutex<State>, req: Request) -> Option<wire::Answer> {
    let fault = {
        let mut s = st.lock().unwrap();
        s.concurrent += 1;
        s.max_concurrent = s.max_concurrent.max(s.concurrent);
        s.next_fault(&req.method, &req.path)
    };
    let answer = match &fault {
        Answer::Normal => Some(route(st, &req)),
        Answer::Slow(d) => {
            std::thread::sleep(*d);
            Some(route(st, &req))
        }
        Answer::Status(code) => Some(wire::Answer::json(
            *code,
            json!({"detail": format!("injected fault: status {code}")}),
        )),
        Answer::TooMany(secs) => Some(
            wire::Answer::json(429, json!({"detail": "Rate limit exceeded"}))
                .retry_after(u64::from(*secs)),
        ),
        Answer::Hang(d) => {
            std::thread::sleep(*d);
            Some(wire::Answer::json(503, json!({"detail": "too late"})))
        }
        Answer::Conflict => Some(letta::locked()),
        Answer::Drop => None,
    };
    let mut s = st.lock().unwrap();
    s.concurrent -= 1;
    s.log.push(Received {
        method: req.method,
        path: req.path,
        headers: req.headers,
        body: req.body,
        answer: fault,
        status: answer.as_ref().map(|a| a.status),
    });
    answer
}

fn route(st: &Mutex<State>, req: &Request) -> wire::Answer {
    if let Some(a) = letta::route(st, &req.method, &req.path, &req.body) {
        return a;
    }
    if req.method == "POST" {
        return batch::apply(&mut st.lock().unwrap(), &req.body);
    }
    wire::Answer::json(404, json!({"detail": "Not Found"}))
}
