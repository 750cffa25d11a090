//! The two forms of an ack merge alike: `Queue::ack` (confirmed fields named by strings,
//! the native API) and `Queue::ack_keyed` (named by symbols, the Luau facade's form) share
//! one merge rule. Two queues get the same seeded workload (changes, polls, failures,
//! agents removed, and acks whose confirmations are the common ones, what the request
//! carried, and every other kind: another value, a newer seq, a seq from an earlier run of
//! the server, fields the request did not carry, duplicates, reordered, removed agents);
//! one acks by strings, the other by symbols. Their transcripts (every result, every
//! request, the fields' local and acknowledged state, the metrics) must be identical.
//!
//! With `ACK_TRANSCRIPT_DIR` set, the string form's transcripts are written there (one file
//! per seed), to compare with another build of the core; `ACK_SEEDS` sets how many seeds
//! (40).

use npc_sync::{
    AgentId, Change, ChangeId, Config, Confirmed, ConfirmedKey, Priority, Queue, Request,
    RequestId, Seq, Value,
};
use std::fmt::Write;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const FIELDS: [(&str, &str); 4] = [
    ("status", "x"),
    ("status", "mood"),
    ("status", "location"),
    ("group_members", "ally.is_present"),
];

fn value(rng: &mut Rng, field: usize) -> Value {
    match field {
        0 => Value::Number(rng.below(4) as f64),
        1 => Value::Str(["calm", "angry", "tired"][rng.below(3) as usize].into()),
        2 => {
            if rng.below(5) == 0 {
                Value::Cleared
            } else {
                Value::Str(["gate", "market"][rng.below(2) as usize].into())
            }
        }
        _ => Value::Bool(rng.below(2) == 0),
    }
}

const PRIORITIES: [Priority; 4] = [
    Priority::Low,
    Priority::Normal,
    Priority::High,
    Priority::Critical,
];

/// How the workload acks: by strings or by symbols.
#[derive(Clone, Copy, PartialEq)]
enum Form {
    Strings,
    Syms,
}

fn ack(
    q: &mut Queue,
    form: Form,
    id: RequestId,
    confirmed: &[Confirmed],
    removed: &[AgentId],
) -> String {
    let r = match form {
        Form::Strings => q.ack(id, confirmed),
        Form::Syms => {
            // Interned as `ack` interns them: for live agents, in order (symbol numbers
            // order each agent's fields, and the transcript shows them). A removed agent's
            // confirmation is moot but for its seq: named by any name already interned.
            let mut keyed = Vec::new();
            for c in confirmed {
                let live = !removed.contains(&c.agent) && q.in_flight_kind(id).is_some();
                let (block, field) = if live {
                    (q.intern(&c.block).unwrap(), q.intern(&c.field).unwrap())
                } else {
                    let name = q.agent_sym(c.agent).unwrap();
                    (name, name)
                };
                keyed.push(ConfirmedKey {
                    agent: c.agent,
                    block,
                    field,
                    value: c.value.clone(),
                    seq: c.seq,
                });
            }
            q.ack_keyed(id, &keyed)
        }
    };
    format!("{r:?}")
}

/// The confirmations an answer to `r` could carry.
fn answer(rng: &mut Rng, q: &Queue, r: &Request, agents: &[AgentId]) -> Vec<Confirmed> {
    let mut out = Vec::new();
    let next = q_next_seq(q);
    for c in &r.changes {
        let mut conf = Confirmed {
            agent: c.agent,
            block: q.text(c.block).into(),
            field: q.text(c.field).into(),
            value: c.value.clone(),
            seq: c.seq,
        };
        match rng.below(12) {
            0 => continue,
            1 => conf.value = Value::Number(99.0),
            2 => conf.seq = Seq(c.seq.0 + 1 + rng.below(3)),
            3 => conf.seq = Seq(next + rng.below(5)),
            4 => conf.seq = Seq(c.seq.0.saturating_sub(1)),
            5 => out.push(conf.clone()),
            _ => {}
        }
        out.push(conf);
    }
    for _ in 0..rng.below(3) {
        let f = rng.below(FIELDS.len() as u64) as usize;
        out.push(Confirmed {
            agent: agents[rng.below(agents.len() as u64) as usize],
            block: FIELDS[f].0.into(),
            field: FIELDS[f].1.into(),
            value: value(rng, f),
            seq: Seq(rng.below(next + 3)),
        });
    }
    if rng.below(6) == 0 {
        out.reverse();
    }
    out
}

fn q_next_seq(q: &Queue) -> u64 {
    q.next_seq().0
}

fn transcript(seed: u64, form: Form) -> String {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut q = Queue::new(Config::default()).unwrap();
    let mut t = String::new();
    let agents: Vec<AgentId> = (0..6)
        .map(|i| q.agent(&format!("npc-{i}")).unwrap())
        .collect();
    let mut in_flight: Vec<Request> = Vec::new();
    let mut removed: Vec<AgentId> = Vec::new();
    let mut last: Option<ChangeId> = None;
    let mut now = 0.0;
    for step in 0..400 {
        now += 0.25 * rng.below(8) as f64;
        match rng.below(20) {
            0..=6 => {
                let a = agents[rng.below(agents.len() as u64) as usize];
                let f = rng.below(FIELDS.len() as u64) as usize;
                let v = value(&mut rng, f);
                let p = PRIORITIES[rng.below(4) as usize];
                let mut c = Change::new(a, FIELDS[f].0, FIELDS[f].1, v).priority(p);
                if let (Some(d), 0) = (last, rng.below(4)) {
                    c = c.after(d);
                }
                let r = q.set(now, c);
                writeln!(t, "{step} set {r:?}").unwrap();
                last = r.ok().or(last);
            }
            7 => {
                // An atomic group over two agents' fields (groups sharing a field merge).
                let picks: Vec<(AgentId, usize, Value)> = (0..2 + rng.below(2))
                    .map(|_| {
                        let f = rng.below(FIELDS.len() as u64) as usize;
                        let a = agents[rng.below(2) as usize];
                        (a, f, value(&mut rng, f))
                    })
                    .collect();
                let changes: Vec<Change> = picks
                    .iter()
                    .map(|(a, f, v)| Change::new(*a, FIELDS[*f].0, FIELDS[*f].1, v.clone()))
                    .collect();
                let r = q.atomic(now, &changes);
                writeln!(t, "{step} atomic {r:?}").unwrap();
            }
            8..=11 => {
                let r = q.poll(now);
                writeln!(t, "{step} poll {r:?}").unwrap();
                in_flight.extend(r.unwrap_or_default());
            }
            12..=16 if !in_flight.is_empty() => {
                let r = in_flight.remove(rng.below(in_flight.len() as u64) as usize);
                let confirmed = answer(&mut rng, &q, &r, &agents);
                let res = ack(&mut q, form, r.id, &confirmed, &removed);
                writeln!(t, "{step} ack {:?} {confirmed:?}: {res}", r.id).unwrap();
            }
            17 | 18 if !in_flight.is_empty() => {
                let r = in_flight.remove(rng.below(in_flight.len() as u64) as usize);
                let res = q.fail(now, r.id, None);
                writeln!(t, "{step} fail {:?}: {res:?}", r.id).unwrap();
            }
            19 if rng.below(8) == 0 => {
                let a = agents[rng.below(agents.len() as u64) as usize];
                writeln!(t, "{step} remove {:?}", q.remove_agent(a)).unwrap();
                removed.push(a);
            }
            _ => {}
        }
        for a in &agents {
            for (b, f) in FIELDS {
                let l = q.local_value(*a, b, f);
                let k = q.acked_value(*a, b, f);
                if l.is_some() || k.is_some() {
                    writeln!(t, "  {a:?} {b}.{f}: {l:?} / {k:?}").unwrap();
                }
            }
        }
        writeln!(t, "  next seq {}", q_next_seq(&q)).unwrap();
    }
    writeln!(t, "{:?}", q.metrics()).unwrap();
    t
}

#[test]
fn ack_by_symbols_merges_as_ack_by_strings() {
    let dir = std::env::var_os("ACK_TRANSCRIPT_DIR");
    let seeds: u64 = std::env::var("ACK_SEEDS").map_or(40, |s| s.parse().expect("ACK_SEEDS"));
    for seed in 1..=seeds {
        let strings = transcript(seed, Form::Strings);
        let syms = transcript(seed, Form::Syms);
        assert!(strings.contains(" ack "), "seed {seed}: the workload acks");
        if strings != syms {
            let line = strings
                .lines()
                .zip(syms.lines())
                .find(|(a, b)| a != b)
                .map(|(a, b)| format!("strings: {a}\nsymbols: {b}"))
                .unwrap_or_default();
            panic!("seed {seed}: the two acks differ first at\n{line}");
        }
        if let Some(d) = &dir {
            std::fs::write(std::path::Path::new(d).join(format!("{seed}.txt")), strings).unwrap();
        }
    }
}

#[test]
fn ack_by_symbols_checks_its_symbols() {
    let mut q = Queue::new(Config::default()).unwrap();
    let a = q.agent("npc-1").unwrap();
    q.set(0.0, Change::new(a, "status", "x", Value::Number(1.0)))
        .unwrap();
    q.poll(0.0).unwrap();
    let r = q.poll(30.0).unwrap();
    let (status, empty) = (q.intern("status").unwrap(), q.intern("").unwrap());
    let c = |field, value| ConfirmedKey {
        agent: a,
        block: status,
        field,
        value,
        seq: Seq(1),
    };
    let unknown = npc_sync::Sym(999);
    let e = q.ack_keyed(r[0].id, &[c(unknown, Value::Number(1.0))]);
    assert!(format!("{}", e.unwrap_err()).contains("999"));
    let e = q.ack_keyed(r[0].id, &[c(empty, Value::Number(1.0))]);
    assert!(format!("{}", e.unwrap_err()).contains("field name"));
    let x = q.intern("x").unwrap();
    let e = q.ack_keyed(r[0].id, &[c(x, Value::Number(f64::NAN))]);
    assert!(format!("{}", e.unwrap_err()).contains("status.x"));
    assert_eq!(q.in_flight_count(), 1, "refused acks change nothing");
    q.ack_keyed(r[0].id, &[c(x, Value::Number(1.0))]).unwrap();
    assert_eq!(q.in_flight_count(), 0);
}
