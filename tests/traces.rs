//! The differential traces (`tests/traces/*.jsonl`, format in `tests/traces/FORMAT.md`)
//! replayed natively. Each replay's canonical output is written to
//! `target/traces/<name>.native.out`; the Node and Luau replayers write theirs next to it
//! and `./build.sh test` compares them byte for byte. The expected outputs are not stored:
//! what is checked here by hand are the rules each trace was written to exercise, on the
//! replay's structured results (not on its text).

mod common;

use npc_sync::{
    AgentId, Change, ChangeId, Config, Confirmed, Decision, Error, Event, Metrics, Priority, Queue,
    Request, RequestId, RequestKind, Seq, Target, Value,
};
use serde_json::Value as J;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------
// replay
// ---------------------------------------------------------------------------------------

/// What one trace line gave.
#[derive(Debug)]
enum Outcome {
    /// `note`.
    Nothing,
    /// `chat`, `remove`, `config`.
    Ok,
    /// Change calls: the handles' sequence numbers.
    Seqs(Vec<ChangeId>),
    /// `poll`.
    Requests(Vec<Request>),
    /// `ack` / `fail`: the requests acted on, then the error that stopped it, if any.
    Reported(Vec<RequestId>, Option<Error>),
    /// `decide`.
    Decided(Decision),
    /// `metrics`.
    Metrics(Box<Metrics>),
    /// `read`: the number of lines that could not be read.
    Unreadable(usize),
    /// The call was refused.
    Refused(Error),
}

/// One replayed line.
#[derive(Debug)]
struct Step {
    line: usize,
    op: String,
    outcome: Outcome,
    events: Vec<Event>,
}

struct Replay {
    name: String,
    q: Option<Queue>,
    /// `as` labels of the trace.
    labels: BTreeMap<String, ChangeId>,
    /// The last value the trace passed for each (agent, block, field): the trace rule.
    last_passed: BTreeMap<(String, String, String), Value>,
    /// Requests emitted and not yet acked or failed.
    outstanding: BTreeSet<u64>,
    steps: Vec<Step>,
    out: String,
}

fn replay(path: &Path) -> Replay {
    let name = path.file_stem().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(path).unwrap();
    let mut r = Replay {
        name,
        q: None,
        labels: BTreeMap::new(),
        last_passed: BTreeMap::new(),
        outstanding: BTreeSet::new(),
        steps: Vec::new(),
        out: String::new(),
    };
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let j: J = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{}:{line_no}: not JSON: {e}", r.name));
        let op = str_of(&j, "op", &r.name, line_no).to_string();
        if line_no == 1 && op != "config" {
            panic!("{}:1: the first line must be `config`", r.name);
        }
        let outcome = r.step(&op, &j, line_no);
        let events = match &mut r.q {
            Some(q) => q.drain_events(),
            None => Vec::new(),
        };
        r.render(line_no, &op, &outcome, &events);
        let stop = op == "config" && matches!(outcome, Outcome::Refused(_));
        r.steps.push(Step {
            line: line_no,
            op,
            outcome,
            events,
        });
        if stop {
            break;
        }
    }
    r
}

fn str_of<'a>(j: &'a J, key: &str, trace: &str, line: usize) -> &'a str {
    j.get(key)
        .and_then(J::as_str)
        .unwrap_or_else(|| panic!("{trace}:{line}: `{key}` must be a string"))
}

fn num_of(j: &J, key: &str, trace: &str, line: usize) -> f64 {
    j.get(key)
        .and_then(J::as_f64)
        .unwrap_or_else(|| panic!("{trace}:{line}: `{key}` must be a number"))
}

fn value_of(j: &J, trace: &str, line: usize) -> Value {
    match j {
        J::Null => Value::Cleared,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => Value::Number(n.as_f64().unwrap()),
        J::String(s) => Value::Str(s.clone()),
        other => panic!("{trace}:{line}: {other} is not a field value"),
    }
}

fn priority_of(j: &J, trace: &str, line: usize) -> Priority {
    match j.get("priority").and_then(J::as_str) {
        None | Some("normal") => Priority::Normal,
        Some("low") => Priority::Low,
        Some("high") => Priority::High,
        Some("critical") => Priority::Critical,
        Some(p) => panic!("{trace}:{line}: unknown priority `{p}`"),
    }
}

fn config_of(j: &J, trace: &str) -> Config {
    let mut c = Config::default();
    let Some(obj) = j.get("config").and_then(J::as_object) else {
        return c;
    };
    for (k, v) in obj {
        let f = || {
            v.as_f64()
                .unwrap_or_else(|| panic!("{trace}:1: `{k}` must be a number"))
        };
        let u = || {
            v.as_u64()
                .unwrap_or_else(|| panic!("{trace}:1: `{k}` must be a whole number"))
        };
        match k.as_str() {
            "debounce_s" => c.debounce_s = f(),
            "combat_debounce_s" => c.combat_debounce_s = f(),
            "freshness_s" => c.freshness_s = f(),
            "combat_freshness_s" => c.combat_freshness_s = f(),
            "batch_interval_s" => c.batch_interval_s = f(),
            "high_priority_delay_s" => c.high_priority_delay_s = f(),
            "health_critical_points" => c.health_critical_points = f(),
            "health_notable_points" => c.health_notable_points = f(),
            "combat_exit_s" => c.combat_exit_s = f(),
            "budget_per_minute" => c.budget_per_minute = u() as u32,
            "routine_share" => c.routine_share = f(),
            "budget_burst" => c.budget_burst = u() as u32,
            "max_agent_blocks_per_request" => c.max_agent_blocks_per_request = u() as u32,
            "max_request_bytes" => c.max_request_bytes = u() as u32,
            "retry_base_s" => c.retry_base_s = f(),
            "retry_max_s" => c.retry_max_s = f(),
            "retry_jitter" => c.retry_jitter = f(),
            "seed" => c.seed = u(),
            "chat_window_s" => c.chat_window_s = f(),
            "chat_max_wait_s" => c.chat_max_wait_s = f(),
            "chat_max_messages" => c.chat_max_messages = u() as u32,
            "default_block_limit" => c.default_block_limit = u() as u32,
            "block_limits" => {
                c.block_limits = v
                    .as_array()
                    .unwrap_or_else(|| panic!("{trace}:1: `block_limits` is a list of pairs"))
                    .iter()
                    .map(|p| {
                        let label = p[0].as_str().expect("block_limits: [label, limit]");
                        let n = p[1].as_u64().expect("block_limits: [label, limit]");
                        (label.to_string(), n as u32)
                    })
                    .collect()
            }
            "target" => {
                c.target = match v.as_str() {
                    Some("batch") => Target::BatchEndpoint,
                    Some("letta") => Target::LettaApi,
                    _ => panic!("{trace}:1: `target` must be \"batch\" or \"letta\""),
                }
            }
            other => panic!("{trace}:1: unknown setting `{other}`"),
        }
    }
    c
}

impl Replay {
    fn q(&mut self) -> &mut Queue {
        self.q.as_mut().expect("config came first")
    }

    fn agent(&mut self, j: &J, line: usize) -> Result<AgentId, Error> {
        let id = str_of(j, "agent", &self.name, line).to_string();
        self.q().agent(&id)
    }

    fn label(&self, l: &str, line: usize) -> ChangeId {
        *self
            .labels
            .get(l)
            .unwrap_or_else(|| panic!("{}:{line}: unknown label `{l}`", self.name))
    }

    fn deps(&self, j: &J, line: usize) -> Vec<ChangeId> {
        match j.get("after") {
            None => Vec::new(),
            Some(J::Array(ls)) => ls
                .iter()
                .map(|l| {
                    let l = l
                        .as_str()
                        .unwrap_or_else(|| panic!("{}:{line}: labels are strings", self.name));
                    self.label(l, line)
                })
                .collect(),
            Some(_) => panic!("{}:{line}: `after` must be a list of labels", self.name),
        }
    }

    /// The trace rule of FORMAT.md: a slot is never passed the value last passed to it.
    fn pass(&mut self, agent: &str, block: &str, field: &str, v: &Value, line: usize) {
        let key = (agent.to_string(), block.to_string(), field.to_string());
        if self.last_passed.get(&key) == Some(v) {
            panic!(
                "{}:{line}: {agent}/{block}.{field} is passed the value it was last passed (a bridge may skip it)",
                self.name
            );
        }
        self.last_passed.insert(key, v.clone());
    }

    fn remember(&mut self, j: &J, id: ChangeId) {
        if let Some(l) = j.get("as").and_then(J::as_str) {
            self.labels.insert(l.to_string(), id);
        }
    }

    fn selected(&self, j: &J, line: usize) -> Vec<RequestId> {
        match j.get("request") {
            Some(J::String(s)) if s == "all" => {
                self.outstanding.iter().map(|id| RequestId(*id)).collect()
            }
            Some(J::Number(n)) if n.as_u64().is_some() => vec![RequestId(n.as_u64().unwrap())],
            _ => panic!("{}:{line}: `request` must be an id or \"all\"", self.name),
        }
    }

    fn step(&mut self, op: &str, j: &J, line: usize) -> Outcome {
        let name = self.name.clone();
        let now = || num_of(j, "now", &name, line);
        let result: Result<Outcome, Error> = (|| {
            Ok(match op {
                "config" => {
                    self.q = Some(Queue::new(config_of(j, &name))?);
                    Outcome::Ok
                }
                "note" => Outcome::Nothing,
                "set" => {
                    let a = self.agent(j, line)?;
                    let block = str_of(j, "block", &name, line);
                    let field = str_of(j, "field", &name, line);
                    let value = value_of(j.get("value").unwrap_or(&J::Null), &name, line);
                    self.pass(str_of(j, "agent", &name, line), block, field, &value, line);
                    let mut c =
                        Change::new(a, block, field, value).priority(priority_of(j, &name, line));
                    c.depends_on = self.deps(j, line);
                    let id = self.q().set(now(), c)?;
                    self.remember(j, id);
                    Outcome::Seqs(vec![id])
                }
                "location" | "state" | "health" => {
                    let a = self.agent(j, line)?;
                    let agent = str_of(j, "agent", &name, line).to_string();
                    let value = value_of(j.get("value").unwrap_or(&J::Null), &name, line);
                    self.pass(&agent, "status", op, &value, line);
                    let t = now();
                    let id = match (op, &value) {
                        ("location", Value::Str(s)) => self.q().set_location(t, a, s)?,
                        ("state", Value::Str(s)) => self.q().set_state(t, a, s)?,
                        ("health", Value::Number(h)) => self.q().set_health(t, a, *h)?,
                        _ => panic!("{name}:{line}: wrong value type for `{op}`"),
                    };
                    self.remember(j, id);
                    Outcome::Seqs(vec![id])
                }
                "join" => {
                    let a = self.agent(j, line)?;
                    let member = str_of(j, "member", &name, line);
                    let fields: Vec<(String, Value)> = j
                        .get("fields")
                        .and_then(J::as_array)
                        .unwrap_or_else(|| panic!("{name}:{line}: `fields` must be a list"))
                        .iter()
                        .map(|p| match p.as_array().map(Vec::as_slice) {
                            Some([J::String(f), v]) => (f.clone(), value_of(v, &name, line)),
                            _ => panic!("{name}:{line}: `fields` holds [field, value] pairs"),
                        })
                        .collect();
                    let borrowed: Vec<(&str, Value)> = fields
                        .iter()
                        .map(|(f, v)| (f.as_str(), v.clone()))
                        .collect();
                    let id = self.q().join_group(now(), a, member, &borrowed)?;
                    self.remember(j, id);
                    Outcome::Seqs(vec![id])
                }
                "leave" => {
                    let a = self.agent(j, line)?;
                    let member = str_of(j, "member", &name, line);
                    let id = self.q().leave_group(now(), a, member)?;
                    self.remember(j, id);
                    Outcome::Seqs(vec![id])
                }
                "tool" => {
                    let a = self.agent(j, line)?;
                    let block = str_of(j, "block", &name, line);
                    let field = str_of(j, "field", &name, line);
                    let value = value_of(j.get("value").unwrap_or(&J::Null), &name, line);
                    self.pass(str_of(j, "agent", &name, line), block, field, &value, line);
                    let critical = j
                        .get("critical")
                        .and_then(J::as_bool)
                        .unwrap_or_else(|| panic!("{name}:{line}: `critical` must be a bool"));
                    let id = self
                        .q()
                        .tool_result(now(), a, block, field, value, critical)?;
                    self.remember(j, id);
                    Outcome::Seqs(vec![id])
                }
                "atomic" => {
                    let entries = j
                        .get("changes")
                        .and_then(J::as_array)
                        .unwrap_or_else(|| panic!("{name}:{line}: `changes` must be a list"));
                    let mut changes = Vec::new();
                    for e in entries {
                        let a = self.agent(e, line)?;
                        let block = str_of(e, "block", &name, line);
                        let field = str_of(e, "field", &name, line);
                        let value = value_of(e.get("value").unwrap_or(&J::Null), &name, line);
                        self.pass(str_of(e, "agent", &name, line), block, field, &value, line);
                        let mut c = Change::new(a, block, field, value)
                            .priority(priority_of(e, &name, line));
                        c.depends_on = self.deps(e, line);
                        changes.push(c);
                    }
                    let ids = self.q().atomic(now(), &changes)?;
                    for (e, id) in entries.iter().zip(&ids) {
                        self.remember(e, *id);
                    }
                    Outcome::Seqs(ids)
                }
                "poll" | "flush" => {
                    let rs = if op == "poll" {
                        self.q().poll(now())?
                    } else {
                        self.q().flush(now())?
                    };
                    self.outstanding.extend(rs.iter().map(|r| r.id.0));
                    Outcome::Requests(rs)
                }
                "await" => {
                    let a = self.agent(j, line)?;
                    let block = str_of(j, "block", &name, line);
                    self.q().await_block(a, block)?;
                    Outcome::Ok
                }
                "read" => {
                    let a = self.agent(j, line)?;
                    let block = str_of(j, "block", &name, line);
                    let text = str_of(j, "text", &name, line);
                    Outcome::Unreadable(self.q().load_block(now(), a, block, text)?)
                }
                "ack" | "fail" => {
                    let ids = self.selected(j, line);
                    let mut done = Vec::new();
                    for id in ids {
                        let res = if op == "ack" {
                            let confirmed = self.confirmed(j, line);
                            match confirmed {
                                Ok(c) => self.q().ack(id, &c),
                                Err(e) => Err(e),
                            }
                        } else {
                            let ra = match j.get("retry_after") {
                                None | Some(J::Null) => None,
                                Some(v) => Some(v.as_f64().unwrap_or_else(|| {
                                    panic!("{name}:{line}: `retry_after` must be a number or null")
                                })),
                            };
                            self.q().fail(now(), id, ra)
                        };
                        match res {
                            Ok(()) => {
                                self.outstanding.remove(&id.0);
                                done.push(id);
                            }
                            Err(e) => return Ok(Outcome::Reported(done, Some(e))),
                        }
                    }
                    Outcome::Reported(done, None)
                }
                "decide" => {
                    let a = self.agent(j, line)?;
                    Outcome::Decided(self.q().decide(a, now())?)
                }
                "chat" => {
                    let a = self.agent(j, line)?;
                    let sender = str_of(j, "sender", &name, line);
                    let text = str_of(j, "text", &name, line);
                    self.q().chat(now(), a, sender, text)?;
                    Outcome::Ok
                }
                "remove" => {
                    let a = self.agent(j, line)?;
                    self.q().remove_agent(a)?;
                    Outcome::Ok
                }
                "metrics" => Outcome::Metrics(Box::new(self.q().metrics())),
                other => panic!("{name}:{line}: unknown op `{other}`"),
            })
        })();
        result.unwrap_or_else(Outcome::Refused)
    }

    fn confirmed(&mut self, j: &J, line: usize) -> Result<Vec<Confirmed>, Error> {
        let mut out = Vec::new();
        if let Some(list) = j.get("confirmed").and_then(J::as_array) {
            for c in list {
                let agent = self.agent(c, line)?;
                out.push(Confirmed {
                    agent,
                    block: str_of(c, "block", &self.name, line).to_string(),
                    field: str_of(c, "field", &self.name, line).to_string(),
                    value: value_of(c.get("value").unwrap_or(&J::Null), &self.name, line),
                    seq: Seq(c.get("seq").and_then(J::as_u64).unwrap_or_else(|| {
                        panic!("{}:{line}: `seq` must be a whole number", self.name)
                    })),
                });
            }
        }
        Ok(out)
    }

    // ----- canonical output (FORMAT.md "Output") -----

    fn render(&mut self, line: usize, op: &str, outcome: &Outcome, events: &[Event]) {
        let mut o = String::new();
        writeln!(o, "#{line} {op}").unwrap();
        match outcome {
            Outcome::Nothing => {}
            Outcome::Ok => o.push_str("ok\n"),
            Outcome::Seqs(ids) => {
                let seqs: Vec<String> = ids.iter().map(|i| i.seq().0.to_string()).collect();
                writeln!(o, "ok seq={}", seqs.join(",")).unwrap();
            }
            Outcome::Requests(rs) => {
                writeln!(o, "requests n={}", rs.len()).unwrap();
                let q = self.q.as_ref().unwrap();
                for r in rs {
                    let agent = match r.inference_agent {
                        Some(a) => string(q.agent_name(a).unwrap()),
                        None => "-".to_string(),
                    };
                    writeln!(
                        o,
                        "request id={} kind={} agent={agent} changes={} messages={}",
                        r.id.0,
                        r.kind.as_str(),
                        r.changes.len(),
                        r.messages.len()
                    )
                    .unwrap();
                    for c in &r.changes {
                        writeln!(
                            o,
                            "change agent={} block={} field={} value={} seq={} group={}",
                            string(q.text(c.agent_name)),
                            string(q.text(c.block)),
                            string(q.text(c.field)),
                            value(&c.value),
                            c.seq.0,
                            c.group.map_or("-".to_string(), |g| g.0.to_string())
                        )
                        .unwrap();
                    }
                    for m in &r.messages {
                        writeln!(
                            o,
                            "message sender={} text={}",
                            string(&m.sender),
                            string(&m.text)
                        )
                        .unwrap();
                    }
                    for b in &r.blocks {
                        writeln!(
                            o,
                            "block agent={} label={} value={}",
                            string(q.text(b.agent_name)),
                            string(q.text(b.block)),
                            string(&b.text)
                        )
                        .unwrap();
                    }
                }
            }
            Outcome::Reported(ids, err) => {
                for id in ids {
                    writeln!(o, "{op} id={}", id.0).unwrap();
                }
                if let Some(e) = err {
                    writeln!(o, "error {}", e.kind()).unwrap();
                }
            }
            Outcome::Decided(Decision::Fresh { staleness }) => {
                writeln!(o, "fresh staleness={}", num(*staleness)).unwrap()
            }
            Outcome::Decided(Decision::Syncing {
                staleness,
                threshold,
            }) => writeln!(
                o,
                "syncing staleness={} threshold={}",
                num(*staleness),
                num(*threshold)
            )
            .unwrap(),
            Outcome::Metrics(m) => {
                let s = |l: &npc_sync::LatencySummary| {
                    format!("{}/{}/{}/{}", l.count, num(l.p50), num(l.p99), num(l.max))
                };
                writeln!(
                    o,
                    "metrics requests_batch={} requests_urgent={} requests_inference={} calls={} calls_last_minute={} changes_in={} changes_sent={} coalesced={} queue_depth={} in_flight={} failures={} decisions_fresh={} decisions_synced={} staleness={} staleness_combat={} critical_latency={} chat_messages={} agents_removed={}",
                    m.requests_batch, m.requests_urgent, m.requests_inference, m.calls,
                    m.calls_last_minute, m.changes_in, m.changes_sent, m.coalesced,
                    m.queue_depth, m.in_flight, m.failures, m.decisions_fresh,
                    m.decisions_synced, s(&m.staleness), s(&m.staleness_combat),
                    s(&m.critical_latency), m.chat_messages, m.agents_removed
                )
                .unwrap();
            }
            Outcome::Unreadable(n) => writeln!(o, "ok unreadable={n}").unwrap(),
            Outcome::Refused(e) => writeln!(o, "error {}", e.kind()).unwrap(),
        }
        let q = self.q.as_ref();
        for e in events {
            let name = |a: AgentId| string(q.and_then(|q| q.agent_name(a)).unwrap_or("?"));
            match e {
                Event::AgentRemoved {
                    name: n,
                    pending_fields,
                    chat_messages,
                    ..
                } => writeln!(
                    o,
                    "event agent_removed agent={} pending_fields={pending_fields} chat_messages={chat_messages}",
                    string(n)
                )
                .unwrap(),
                Event::DependencyReleased {
                    dependent,
                    dependency,
                } => writeln!(
                    o,
                    "event dependency_released dependent={} dependency={}",
                    dependent.seq().0,
                    dependency.seq().0
                )
                .unwrap(),
                Event::GroupTrimmed { group, agent } => {
                    writeln!(o, "event group_trimmed group={} agent={}", group.0, name(*agent))
                        .unwrap()
                }
                Event::BlockUnreadable {
                    agent,
                    block,
                    lines,
                } => {
                    writeln!(
                        o,
                        "event block_unreadable agent={} block={} lines={} first={}",
                        name(*agent),
                        string(block),
                        lines.len(),
                        lines.first().map_or(0, |l| l.line)
                    )
                    .unwrap()
                }
            }
        }
        self.out.push_str(&o);
    }
}

/// FORMAT.md's number rule.
fn num(x: f64) -> String {
    if x.is_finite()
        && x.fract() == 0.0
        && x.abs() <= 9007199254740992.0
        && !(x == 0.0 && x.is_sign_negative())
    {
        format!("{}", x as i64)
    } else {
        format!("0x{:016x}", x.to_bits())
    }
}

/// FORMAT.md's string rule.
fn string(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for ch in s.chars() {
        match ch {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                write!(o, "\\u00{:02x}", c as u32).unwrap()
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn value(v: &Value) -> String {
    match v {
        Value::Number(n) => num(*n),
        Value::Str(s) => string(s),
        Value::Bool(b) => b.to_string(),
        Value::Cleared => "null".to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// running every trace
// ---------------------------------------------------------------------------------------

fn traces_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/traces")
}

fn out_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/traces")
}

fn trace_paths() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(traces_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    v.sort();
    v
}

fn run(name: &str) -> Replay {
    replay(&traces_dir().join(format!("{name}.jsonl")))
}

#[test]
fn every_trace_replays_and_its_output_is_written() {
    let paths = trace_paths();
    assert!(paths.len() >= 6, "the trace set is missing: {paths:?}");
    std::fs::create_dir_all(out_dir()).unwrap();
    for p in paths {
        let r = replay(&p);
        // Determinism within one runtime: a second replay gives the same bytes.
        assert_eq!(r.out, replay(&p).out, "{}: two replays differ", r.name);
        std::fs::write(out_dir().join(format!("{}.native.out", r.name)), &r.out).unwrap();
    }
}

#[test]
fn number_and_string_rules() {
    assert_eq!(num(0.0), "0");
    assert_eq!(num(70.0), "70");
    assert_eq!(num(-3.0), "-3");
    assert_eq!(num(0.5), "0x3fe0000000000000");
    assert_eq!(num(-0.0), "0x8000000000000000");
    assert_eq!(num(9007199254740992.0), "9007199254740992");
    assert_eq!(num(18014398509481984.0), "0x4350000000000000");
    assert_eq!(string("a\"b\\c\n\u{7f}é"), "\"a\\\"b\\\\c\\u000a\\u007fé\"");
}

// ---------------------------------------------------------------------------------------
// hand-checked rules, on the structured results
// ---------------------------------------------------------------------------------------

impl Replay {
    fn step_at(&self, line: usize) -> &Step {
        self.steps.iter().find(|s| s.line == line).unwrap()
    }

    fn requests_at(&self, line: usize) -> &[Request] {
        match &self.step_at(line).outcome {
            Outcome::Requests(r) => r,
            other => panic!("{}:{line}: expected requests, got {other:?}", self.name),
        }
    }

    fn all_requests(&self) -> impl Iterator<Item = &Request> {
        self.steps.iter().flat_map(|s| match &s.outcome {
            Outcome::Requests(r) => r.as_slice(),
            _ => &[],
        })
    }

    /// `agent/block.field=value` of every change of `r`, as the other tests write it.
    fn text(&self, r: &Request) -> Vec<String> {
        common::values(self.q.as_ref().unwrap(), r)
    }

    fn seq_of(&self, label: &str) -> u64 {
        self.labels[label].seq().0
    }

    fn error_at(&self, line: usize) -> &'static str {
        match &self.step_at(line).outcome {
            Outcome::Refused(e) | Outcome::Reported(_, Some(e)) => e.kind(),
            other => panic!("{}:{line}: expected an error, got {other:?}", self.name),
        }
    }
}

/// Rules every trace must keep whatever the core's exact choices: no request is emitted
/// twice with one id, and per field the sequence numbers sent never fall below one
/// already acknowledged.
#[test]
fn every_trace_keeps_ids_unique_and_never_sends_below_an_acked_seq() {
    for p in trace_paths() {
        let r = replay(&p);
        let mut ids = BTreeSet::new();
        for req in r.all_requests() {
            assert!(ids.insert(req.id), "{}: id {:?} twice", r.name, req.id);
        }
        // Acked seq per (agent, block, field), in replay order.
        let mut acked: BTreeMap<(u32, u32, u32), u64> = BTreeMap::new();
        let mut sent: BTreeMap<RequestId, &Request> = BTreeMap::new();
        for s in &r.steps {
            match &s.outcome {
                Outcome::Requests(rs) => {
                    for req in rs {
                        for c in &req.changes {
                            let k = (c.agent.index(), c.block.0, c.field.0);
                            let floor = acked.get(&k).copied().unwrap_or(0);
                            assert!(
                                c.seq.0 > floor,
                                "{}:{}: seq {} sent after {floor} was acked",
                                r.name,
                                s.line,
                                c.seq.0
                            );
                        }
                        sent.insert(req.id, req);
                    }
                }
                Outcome::Reported(ids, _) if s.op == "ack" => {
                    for id in ids {
                        for c in &sent[id].changes {
                            let k = (c.agent.index(), c.block.0, c.field.0);
                            let e = acked.entry(k).or_insert(0);
                            *e = (*e).max(c.seq.0);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

#[test]
fn basics_trace() {
    let r = run("basics");
    // Normal changes wait for the routine batch: nothing before 30 s after the first poll.
    assert!(r.requests_at(8).is_empty());
    assert!(r.requests_at(10).is_empty());
    let batch = r.requests_at(11);
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].kind, RequestKind::Batch);
    let fields = r.text(&batch[0]);
    // Coalesced: the location went plaza then market; only market is sent.
    assert!(fields.contains(&"npc-1/status.location=market".to_string()));
    assert!(!fields.iter().any(|f| f.contains("plaza")), "{fields:?}");
    assert_eq!(fields.len(), 4, "{fields:?}");
    // Back to the acknowledged location: nothing to send for it in the next batch.
    let second = r.requests_at(19);
    assert_eq!(second.len(), 1);
    let fields = r.text(&second[0]);
    assert!(!fields.iter().any(|f| f.contains("location")), "{fields:?}");
    assert!(
        fields.contains(&"npc-2/status.mood=<cleared>".to_string()),
        "{fields:?}"
    );
    assert!(matches!(
        r.step_at(21).outcome,
        Outcome::Decided(Decision::Fresh { .. })
    ));
    assert_eq!(r.error_at(22), "TimeWentBackwards");
    assert_eq!(r.error_at(23), "BadString");
    assert_eq!(r.error_at(24), "BadNumber");
    assert_eq!(r.error_at(25), "UnknownRequest");
    assert_eq!(r.error_at(26), "UnknownRequest");
    assert_eq!(r.error_at(27), "BadString");
}

#[test]
fn combat_trace() {
    let r = run("combat");
    // A 30-point drop is critical: out at once in an urgent request.
    let urgent = r.requests_at(10);
    assert_eq!(urgent[0].kind, RequestKind::Urgent);
    let fields = r.text(&urgent[0]);
    assert_eq!(fields[0], "npc-1/status.health=70");
    // In combat, the second critical change waits for the 1 s debounce window.
    assert!(r.requests_at(13).is_empty());
    let trailing = r.requests_at(15);
    assert_eq!(trailing.len(), 1);
    assert!(r
        .text(&trailing[0])
        .contains(&"npc-1/status.health=40".to_string()));
    // A decision in combat on data older than 1 s needs a sync first.
    assert!(matches!(
        r.step_at(19).outcome,
        Outcome::Decided(Decision::Syncing { threshold, .. }) if threshold == 1.0
    ));
    let sync = r.requests_at(20);
    assert_eq!(sync.len(), 1);
    assert_eq!(sync[0].kind, RequestKind::Urgent);
    // Failed without Retry-After: backoff of at least 1 s, then the same values again.
    assert!(r.requests_at(22).is_empty());
    let retry = r.requests_at(23);
    assert_eq!(retry.len(), 1);
    assert_eq!(r.text(&retry[0]), r.text(&sync[0]));
    assert!(matches!(
        r.step_at(25).outcome,
        Outcome::Decided(Decision::Fresh { .. })
    ));
    // Long after combat the threshold is the normal 15 s again.
    assert!(matches!(
        r.step_at(30).outcome,
        Outcome::Decided(Decision::Syncing { threshold, .. }) if threshold == 15.0
    ));
}

#[test]
fn atomic_and_dependencies_trace() {
    let r = run("atomic_deps");
    // The group travels whole, in order, in one request, and the change that depends on
    // its last member comes after it.
    let mut found = false;
    for req in r.all_requests() {
        let t = r.text(req);
        if let Some(i) = t.iter().position(|f| f == "npc-1/status.location=tower") {
            found = true;
            assert_eq!(
                &t[i..i + 4],
                &[
                    "npc-1/status.location=tower",
                    "npc-1/status.state=Guarding",
                    "npc-1/group_members.npc-2.is_present=true",
                    "npc-2/group_members.npc-1.is_present=true",
                ],
                "{t:?}"
            );
            let group = req.changes[i].group;
            assert!(group.is_some());
            assert!(req.changes[i..i + 4].iter().all(|c| c.group == group));
            let alert = t.iter().position(|f| f.starts_with("npc-1/status.alert"));
            assert!(alert.is_none_or(|a| a > i + 3), "{t:?}");
        }
    }
    assert!(found, "the atomic group was never sent");
    // A dependent is never sent before its dependency: torch after tool.
    let tool = r.seq_of("tool");
    let torch = r.seq_of("torch");
    let mut tool_seen = false;
    for req in r.all_requests() {
        for c in &req.changes {
            if c.seq.0 == tool {
                tool_seen = true;
            }
            if c.seq.0 == torch {
                assert!(tool_seen, "torch sent before the tool result");
            }
        }
    }
    // Removing npc-3 reports what it dropped and releases the dependent.
    let removal = r.steps.iter().find(|s| s.op == "remove").unwrap();
    assert!(removal.events.iter().any(|e| matches!(
        e,
        Event::DependencyReleased { dependency, .. } if dependency.seq().0 == r.seq_of("dock")
    )));
    assert!(removal.events.iter().any(|e| matches!(
        e,
        Event::AgentRemoved {
            pending_fields: 2,
            ..
        }
    )));
    assert!(removal
        .events
        .iter()
        .any(|e| matches!(e, Event::GroupTrimmed { .. })));
    let errors: Vec<&str> = r
        .steps
        .iter()
        .filter_map(|s| match &s.outcome {
            Outcome::Refused(e) => Some(e.kind()),
            _ => None,
        })
        .collect();
    assert_eq!(errors, ["DependencyRemoved", "BadGroup", "BadGroup"]);
}

#[test]
fn retries_trace() {
    let r = run("retries");
    // After a 429 with Retry-After 2 s nothing goes out before it passes, and then the
    // newest value (not the failed one) is sent.
    assert!(r.requests_at(9).is_empty());
    let after = r.requests_at(11);
    assert_eq!(after.len(), 1);
    let t = r.text(&after[0]);
    assert!(t.contains(&"npc-1/status.quest=done".to_string()), "{t:?}");
    assert!(!t.iter().any(|f| f.contains("started")), "{t:?}");
    // A confirmed field merged at ack is acknowledged state: setting the same value later
    // sends nothing.
    let last = r.steps.iter().rev().find(|s| s.op == "poll").unwrap();
    let Outcome::Requests(rs) = &last.outcome else {
        unreachable!()
    };
    assert!(rs
        .iter()
        .all(|req| !r.text(req).iter().any(|f| f.contains("mood"))));
    let errors: Vec<&str> = r
        .steps
        .iter()
        .filter_map(|s| match &s.outcome {
            Outcome::Refused(e) | Outcome::Reported(_, Some(e)) => Some(e.kind()),
            _ => None,
        })
        .collect();
    assert_eq!(errors, ["UnknownRequest", "BadRetryAfter"]);
}

#[test]
fn chat_trace() {
    let r = run("chat");
    let inference: Vec<&Request> = r
        .all_requests()
        .filter(|q| q.kind == RequestKind::Inference)
        .collect();
    assert!(inference.len() >= 3, "{}", inference.len());
    // One inference request for two messages, in order.
    let first = inference[0];
    let texts: Vec<&str> = first.messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["hello", "hi there"]);
    // The count cap flushes at 3 messages without waiting for the window.
    assert!(inference.iter().any(|q| q.messages.len() == 3));
    // A stale agent's sync goes out ahead of its inference request.
    let (urgent_pos, inf_pos) = {
        let all: Vec<&Request> = r.all_requests().collect();
        let u = all
            .iter()
            .position(|q| {
                q.kind == RequestKind::Urgent && r.text(q).iter().any(|f| f.starts_with("npc-2/"))
            })
            .expect("a sync for npc-2");
        let i = all
            .iter()
            .position(|q| {
                q.kind == RequestKind::Inference
                    && r.q.as_ref().unwrap().agent_name(q.inference_agent.unwrap()) == Some("npc-2")
            })
            .expect("inference for npc-2");
        (u, i)
    };
    assert!(urgent_pos < inf_pos);
    let removal = r.steps.iter().find(|s| s.op == "remove").unwrap();
    assert!(removal.events.iter().any(|e| matches!(
        e,
        Event::AgentRemoved {
            chat_messages: 1,
            ..
        }
    )));
}

#[test]
fn letta_trace() {
    let r = run("letta");
    // On Letta's API every agent-block in a request is one call.
    for req in r.all_requests() {
        if req.kind == RequestKind::Inference {
            assert_eq!(req.calls, 1);
            continue;
        }
        let blocks: BTreeSet<(u32, u32)> = req
            .changes
            .iter()
            .map(|c| (c.agent.index(), c.block.0))
            .collect();
        assert_eq!(req.calls as usize, blocks.len(), "request {:?}", req.id);
    }
    assert!(r.all_requests().any(|q| q.kind == RequestKind::Urgent));
    assert!(r.all_requests().any(|q| q.kind == RequestKind::Batch));
}

#[test]
fn groups_trace() {
    let r = run("groups");
    // A member who joined and left before anything was sent leaves nothing to send.
    assert!(r.requests_at(5).is_empty());
    // Leaving clears every field of that member.
    let all: Vec<String> = r.all_requests().flat_map(|q| r.text(q)).collect();
    assert!(
        all.contains(&"npc-1/group_members.player_7.role=<cleared>".to_string()),
        "{all:?}"
    );
    assert!(all.contains(&"npc-1/group_members.player_7.is_present=<cleared>".to_string()));
    assert!(!all.iter().any(|f| f.contains("player_9")), "{all:?}");
}

#[test]
fn mixed_trace_loses_nothing() {
    let r = run("mixed");
    let q = r.q.as_ref().unwrap();
    // The trace ends with a long wait and an ack of everything: the queue drained, and
    // every field the trace set holds, acknowledged, its latest local value.
    assert!(q.is_idle());
    let mut checked = 0;
    for (agent, block, field) in r.last_passed.keys() {
        let Some(a) = (0..64)
            .map(AgentId::from_index)
            // `is_fresh` refuses a removed agent: only live ones are checked.
            .find(|a| q.agent_name(*a) == Some(agent.as_str()) && q.is_fresh(*a, 0.0).is_ok())
        else {
            continue; // removed
        };
        let local = q.local_value(a, block, field).cloned();
        let acked = q.acked_value(a, block, field).map(|(v, _)| v.clone());
        match (local, acked) {
            (Some(Value::Cleared), None) => {}
            (l, k) => assert_eq!(l, k, "{agent}/{block}.{field}"),
        }
        checked += 1;
    }
    assert!(checked > 30, "{checked}");
}

#[test]
fn letta_blocks_trace() {
    let r = run("letta_blocks");
    let out = &r.out;
    // Nothing of npc-1 is written before its blocks are read.
    assert!(out.contains("#8 flush\nrequests n=0\n"), "{out}");
    // The read's unreadable line is an event; the location differs from Letta's and is
    // written with Letta's other fields, the free text dropped.
    assert!(
        out.contains(
            "ok unreadable=1\nevent block_unreadable agent=\"npc-1\" block=\"status\" lines=1 first=4\n"
        ),
        "{out}"
    );
    assert!(out.contains(r#"block agent="npc-1" label="status" value="health: 100\u000alocation: \"tavern\"\u000anote: \"a \\\"quoted\\\" word, é\"""#), "{out}");
    // The persona limit refuses the long mood and the atomic group whole.
    assert!(out.contains("#16 set\nerror BlockText\n"), "{out}");
    assert!(out.contains("#18 atomic\nerror BlockText\n"), "{out}");
    assert!(out.contains(r"ratio: 0.1\u000aspeed: -2.5"), "{out}");
    // A read while the block's write is in flight is refused.
    assert!(out.contains("#28 read\nerror BlockBusy\n"), "{out}");
}
