//! Regression tests of issue 7: sixteen traces where the core broke its own spec, each
//! replayed against the public API and checked against the rule it broke.

use npc_sync::{
    AgentId, Change, Confirmed, Decision, Error, Event, Queue, Request, RequestKind, Seq, Target,
    Value,
};
use std::collections::BTreeSet;

mod common;
use common::{ack_all, agents, block_values, poll_span, queue, queue_with};

// ---------------------------------------------------------------------------------------
// JSON encoding of the batch endpoint body (README), written independently of the core.
// ---------------------------------------------------------------------------------------

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A number as JavaScript (and most JSON encoders) write it: shortest round-trip digits,
/// exponent notation outside [1e-6, 1e21).
fn json_num(n: f64) -> String {
    let a = n.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        format!("{n:e}")
    } else {
        format!("{n}")
    }
}

fn encode(q: &Queue, r: &Request) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{{\"request_id\":{},\"kind\":\"{}\",\"changes\":[",
        r.id.0,
        r.kind.as_str()
    ));
    for (i, c) in r.changes.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"agent_id\":");
        json_str(&mut out, q.text(c.agent_name));
        out.push_str(",\"block\":");
        json_str(&mut out, q.text(c.block));
        out.push_str(",\"field\":");
        json_str(&mut out, q.text(c.field));
        out.push_str(",\"value\":");
        match &c.value {
            Value::Number(n) => out.push_str(&json_num(*n)),
            Value::Str(s) => json_str(&mut out, s),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Cleared => out.push_str("null"),
        }
        out.push_str(&format!(",\"seq\":{}", c.seq.0));
        if let Some(g) = c.group {
            out.push_str(&format!(",\"group\":{}", g.0));
        }
        out.push('}');
    }
    out.push_str("]}");
    out
}

// ---------------------------------------------------------------------------------------
// the sixteen traces
// ---------------------------------------------------------------------------------------

#[test]
fn issue7_01_staleness_after_failed_resend() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.set(0.0, Change::new(a, "status", "x", Value::Number(0.0)))
        .unwrap();
    assert!(q.poll(0.0).unwrap().is_empty());
    let r1 = q.poll(30.0).unwrap();
    assert_eq!(r1.len(), 1);
    q.tool_result(30.0, a, "status", "x", Value::str("s4"), false)
        .unwrap();
    let r2 = q.poll(31.0).unwrap();
    assert_eq!(r2.len(), 1);
    q.set(31.0, Change::new(a, "status", "x", Value::Number(0.0)))
        .unwrap();
    q.fail(31.0, r1[0].id, None).unwrap();
    q.set(31.0, Change::new(a, "status", "x", Value::str("s4")))
        .unwrap();
    // The backend holds nothing for x: the change made at 0 has not reached it, 31 s ago.
    match q.decide(a, 31.0).unwrap() {
        Decision::Syncing { staleness, .. } => assert!(staleness >= 31.0, "{staleness}"),
        other => panic!("the backend has held nothing for 31 s: {other:?}"),
    }
    // Once the newest send lands, the agent is fresh again.
    q.ack(r2[0].id, &[]).unwrap();
    assert_eq!(
        q.decide(a, 31.5).unwrap(),
        Decision::Fresh { staleness: 0.0 }
    );
}

#[test]
fn issue7_02_letta_one_write_per_agent_block_in_flight() {
    let mut q = queue_with(|c| c.target = Target::LettaApi);
    let a = q.agent("npc-1").unwrap();
    q.set_location(0.0, a, "market").unwrap();
    assert!(q.poll(0.0).unwrap().is_empty());
    let r1 = q.poll(30.0).unwrap();
    assert_eq!(r1.len(), 1);
    q.set_state(30.5, a, "Combat").unwrap();
    // The status block of npc-1 is being written: no second write may start.
    let mut busy: BTreeSet<(AgentId, String)> = r1[0]
        .changes
        .iter()
        .map(|c| (c.agent, q.text(c.block).to_string()))
        .collect();
    for (t, r) in poll_span(&mut q, 30.5, 32.0) {
        for c in &r.changes {
            assert!(
                !busy.contains(&(c.agent, q.text(c.block).to_string())),
                "second write of {} in flight at {t}",
                q.text(c.block)
            );
        }
        busy.extend(
            r.changes
                .iter()
                .map(|c| (c.agent, q.text(c.block).to_string())),
        );
    }
    // Once the first write is answered, the state goes at once.
    q.ack(r1[0].id, &[]).unwrap();
    let out = q.poll(32.0).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, RequestKind::Urgent);
    assert_eq!(block_values(&q, &out[0]), ["status.state=Combat"]);
}

#[test]
fn issue7_03_combat_mode_follows_state_set_through_atomic() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.set_state(0.0, a, "Idle").unwrap();
    let r = q.poll(0.0).unwrap();
    ack_all(&mut q, &r);
    let r = q.poll(30.0).unwrap();
    ack_all(&mut q, &r);
    assert!(!q.in_combat(a, 30.0));
    // A tool chain puts the NPC into Combat: combat mode starts, the change is critical.
    q.atomic(
        40.0,
        &[
            Change::new(a, "status", "location", Value::str("gate")),
            Change::new(a, "status", "state", Value::str("Combat")),
        ],
    )
    .unwrap();
    assert!(q.in_combat(a, 40.0));
    let out = q.poll(40.0).unwrap();
    assert_eq!(
        out.len(),
        1,
        "entering Combat is critical: at the next poll"
    );
    assert_eq!(out[0].kind, RequestKind::Urgent);
    ack_all(&mut q, &out);
    // Another tool chain sets Working: combat mode ends 10 s later.
    q.atomic(
        60.0,
        &[
            Change::new(a, "status", "location", Value::str("forge")),
            Change::new(a, "status", "state", Value::str("Working")),
        ],
    )
    .unwrap();
    let out = q.poll(60.0).unwrap();
    assert_eq!(out.len(), 1, "leaving Combat is critical too");
    assert_eq!(out[0].kind, RequestKind::Urgent);
    assert!(q.in_combat(a, 69.9));
    assert!(!q.in_combat(a, 70.1), "combat mode never ended");
    // A plain set of the state field follows the same rule.
    q.set(
        80.0,
        Change::new(a, "status", "state", Value::str("Combat")),
    )
    .unwrap();
    assert!(q.in_combat(a, 80.0));
}

#[test]
fn issue7_04_dependency_in_flight_of_removed_agent_is_released_with_a_report() {
    let mut q = queue();
    let a = q.agent("npc-a").unwrap();
    let b = q.agent("npc-b").unwrap();
    let dep = q.set_location(0.0, a, "cave").unwrap();
    let dependent = q
        .set(
            0.0,
            Change::new(b, "status", "note", Value::str("saw a")).after(dep),
        )
        .unwrap();
    assert!(q.poll(0.0).unwrap().is_empty());
    let r = q.poll(30.0).unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(
        r[0].changes.len(),
        2,
        "both in one request, dependency first"
    );
    q.drain_events();
    q.remove_agent(a).unwrap();
    q.fail(30.2, r[0].id, None).unwrap();
    let events = q.drain_events();
    assert!(
        events.contains(&Event::DependencyReleased {
            dependent,
            dependency: dep
        }),
        "the dependent now goes without its dependency: {events:?}"
    );
    // It is still delivered (released, not dropped).
    let out = poll_span(&mut q, 30.2, 40.0);
    assert!(out
        .iter()
        .any(|(_, r)| r.changes.iter().any(|c| c.agent == b)));
}

#[test]
fn issue7_05_dependency_after_its_dependent_in_one_group_is_refused() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    let moved = q.set_location(0.0, a, "cave").unwrap();
    q.poll(0.0).unwrap();
    let group = [
        Change::new(a, "inventory", "result", Value::str("found")).after(moved),
        Change::new(a, "status", "location", Value::str("camp")),
    ];
    match q.atomic(1.0, &group) {
        Err(Error::BadGroup { reason }) => {
            assert!(reason.contains("change 0"), "{reason}");
            assert!(reason.contains("status.location"), "{reason}");
        }
        Ok(_) => {
            // If accepted, the delivery order must still honour the dependency.
            let out = poll_span(&mut q, 1.0, 40.0);
            let all: Vec<String> = out.iter().flat_map(|(_, r)| block_values(&q, r)).collect();
            let loc = all.iter().position(|s| s.starts_with("status.location"));
            let res = all.iter().position(|s| s.starts_with("inventory.result"));
            assert!(loc < res, "{all:?}");
        }
        Err(other) => panic!("{other:?}"),
    }
    // The queue is unchanged: the move still goes out alone.
    let out = q.poll(30.0).unwrap();
    assert_eq!(block_values(&q, &out[0]), ["status.location=cave"]);
    // The same group in dependency order is fine.
    let ids = q
        .atomic(
            31.0,
            &[
                Change::new(a, "status", "location", Value::str("camp")),
                Change::new(a, "inventory", "result", Value::str("found")).after(moved),
            ],
        )
        .unwrap();
    assert_eq!(ids.len(), 2);
}

#[test]
fn issue7_06_chat_is_not_starved_by_urgent_load() {
    let mut q = queue();
    let n = 50;
    let agents: Vec<AgentId> = (0..n)
        .map(|i| q.agent(&format!("npc-{i:02}")).unwrap())
        .collect();
    let mut health = vec![100.0; n];
    let mut inferences = vec![0u32; n];
    let mut sent = vec![0u32; n];
    let mut delivered = vec![0u32; n];
    let mut frame = 0u64;
    loop {
        let t = frame as f64 / 60.0;
        if t > 300.0 {
            break;
        }
        // Every 0.5 s every NPC takes a 30-point hit (healed back when nearly dead), the
        // NPCs spread over the half second.
        for (i, a) in agents.iter().enumerate() {
            if frame % 30 == (i as u64 * 30 / n as u64) {
                health[i] = if health[i] < 40.0 {
                    100.0
                } else {
                    health[i] - 30.0
                };
                q.set_health(t, *a, health[i]).unwrap();
            }
        }
        // Every NPC is chatted to every 10 s (staggered).
        for (i, a) in agents.iter().enumerate() {
            if frame % 600 == (i as u64 * 12) % 600 {
                q.chat(t, *a, "player", "hello").unwrap();
                sent[i] += 1;
            }
        }
        for r in q.poll(t).unwrap() {
            if r.kind == RequestKind::Inference {
                let i = r.inference_agent.unwrap().index() as usize - agents[0].index() as usize;
                inferences[i] += 1;
                delivered[i] += r.messages.len() as u32;
            }
            q.ack(r.id, &[]).unwrap();
        }
        frame += 1;
    }
    for i in 0..n {
        assert!(
            inferences[i] > 0 && delivered[i] + 2 >= sent[i],
            "npc-{i:02}: {} of {} messages answered in {} inferences",
            delivered[i],
            sent[i],
            inferences[i]
        );
    }
}

#[test]
fn issue7_07_new_critical_change_does_not_wait_for_an_old_backoff() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.set_health(0.0, a, 100.0).unwrap();
    q.poll(0.0).unwrap();
    let r = q.poll(30.0).unwrap();
    ack_all(&mut q, &r);
    q.set_health(31.0, a, 70.0).unwrap();
    let mut t = 31.0;
    let mut last_emit = 0.0;
    let mut fails = 0;
    while fails < 3 {
        let out = q.poll(t).unwrap();
        if let Some(r) = out.first() {
            assert_eq!(block_values(&q, r), ["status.health=70"]);
            last_emit = t;
            q.fail(t + 0.1, r.id, None).unwrap();
            fails += 1;
            t += 0.1;
        }
        t += 1.0 / 64.0;
    }
    // The third retry backs off 4 to 5 s. A new drop to 35 when the 1 s combat debounce
    // window of the last emission ends must go at once.
    let at = last_emit + 1.0;
    q.set_health(at, a, 35.0).unwrap();
    let out = q.poll(at).unwrap();
    assert_eq!(
        out.len(),
        1,
        "the new critical change waited for an old backoff"
    );
    assert_eq!(block_values(&q, &out[0]), ["status.health=35"]);
    q.ack(out[0].id, &[]).unwrap();
    // The critical latency counts the retries: the drop to 70 at 31 s reached the backend
    // (superseded by 35) only now.
    let m = q.metrics();
    assert!(
        m.critical_latency.max >= at - 31.0 - 1e-9,
        "critical latency left the retries out: {:?}",
        m.critical_latency
    );
}

#[test]
fn issue7_08_restarted_queue_takes_in_newer_backend_state() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.set_location(0.0, a, "gate").unwrap();
    q.poll(0.0).unwrap();
    let r = q.poll(30.0).unwrap();
    assert_eq!(r.len(), 1);
    // The backend holds seq 1000 from this server's previous run: it refused seq 1.
    q.ack(
        r[0].id,
        &[Confirmed {
            agent: a,
            block: "status".into(),
            field: "location".into(),
            value: Value::str("plaza"),
            seq: Seq(1000),
        }],
    )
    .expect("confirmed state from before a restart is merged");
    // The game's value is resent with a sequence number the backend will apply.
    let out = poll_span(&mut q, 30.0, 61.0);
    let sent: Vec<_> = out.iter().flat_map(|(_, r)| r.changes.clone()).collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].value, Value::str("gate"));
    assert!(sent[0].seq.0 > 1000, "{:?}", sent[0].seq);
    // New changes, too, are numbered past what the backend holds.
    let id = q.set_description(62.0, a, "tired").unwrap();
    assert!(id.seq().0 > 1000);
}

#[test]
fn issue7_09_ack_naming_a_removed_agent_is_taken() {
    let mut q = queue();
    let a = q.agent("npc-a").unwrap();
    let b = q.agent("npc-b").unwrap();
    q.set_location(0.0, a, "gate").unwrap();
    q.set_location(0.0, b, "gate").unwrap();
    q.poll(0.0).unwrap();
    let r = q.poll(30.0).unwrap();
    assert_eq!(r.len(), 1);
    let confirmed: Vec<Confirmed> = r[0]
        .changes
        .iter()
        .map(|c| Confirmed {
            agent: c.agent,
            block: q.text(c.block).into(),
            field: q.text(c.field).into(),
            value: c.value.clone(),
            seq: c.seq,
        })
        .collect();
    q.remove_agent(a).unwrap();
    q.ack(r[0].id, &confirmed)
        .expect("an agent removed in the meantime does not void the answer");
    assert_eq!(q.in_flight_count(), 0);
    assert_eq!(
        q.decide(b, 30.5).unwrap(),
        Decision::Fresh { staleness: 0.0 }
    );
    // An agent handle never issued is still an error, and leaves the request in flight.
    q.set_location(31.0, b, "wall").unwrap();
    q.poll(31.0).unwrap();
    let r = q.poll(60.0).unwrap();
    let bad = [Confirmed {
        agent: AgentId::from_index(99),
        block: "status".into(),
        field: "location".into(),
        value: Value::str("x"),
        seq: Seq(1),
    }];
    assert!(matches!(
        q.ack(r[0].id, &bad),
        Err(Error::UnknownAgent { index: 99 })
    ));
    assert_eq!(q.in_flight_count(), 1);
}

#[test]
fn issue7_10_body_bytes_is_an_upper_bound_and_the_cap_is_hard() {
    // A large group: the biggest one atomic accepts must encode within the cap.
    let mut q = queue();
    let a = q.agent("npc-agent-0001").unwrap();
    // Push sequence numbers up so they take many digits.
    for i in 0..2000 {
        q.set(0.0, Change::new(a, "warmup", "w", Value::Number(i as f64)))
            .unwrap();
    }
    let names: Vec<String> = (0..700).map(|i| format!("field_{i:04}")).collect();
    let value = Value::str(&"v".repeat(40));
    let mut n = names.len();
    let ids = loop {
        let group: Vec<Change> = names[..n]
            .iter()
            .map(|f| Change::new(a, "notes", f, value.clone()))
            .collect();
        match q.atomic(0.0, &group) {
            Ok(ids) => break ids,
            Err(Error::BadGroup { .. }) => n -= 1,
            Err(e) => panic!("{e}"),
        }
    };
    assert!(ids.len() > 300, "{}", ids.len());
    q.poll(0.0).unwrap();
    let out = q.poll(30.0).unwrap();
    for r in &out {
        let body = encode(&q, r);
        assert!(
            body.len() <= r.body_bytes as usize,
            "{} encoded, {} counted",
            body.len(),
            r.body_bytes
        );
        assert!(body.len() <= 64 * 1024, "{}", body.len());
    }
    // A value of control characters: either refused, or its request fits the cap.
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    let ctl: String = std::iter::repeat_n('\u{1}', 16 * 1024).collect();
    match q.set(0.0, Change::new(a, "status", "blob", Value::Str(ctl))) {
        Err(Error::BadString { what, .. }) => assert_eq!(what, "string value"),
        Err(e) => panic!("{e}"),
        Ok(_) => {
            q.poll(0.0).unwrap();
            for r in q.poll(30.0).unwrap() {
                let body = encode(&q, &r);
                assert!(body.len() <= r.body_bytes as usize);
                assert!(body.len() <= 64 * 1024, "{}", body.len());
            }
        }
    }
    // The largest value of control characters that is accepted fits too.
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    let mut len = 16 * 1024;
    loop {
        let ctl: String = std::iter::repeat_n('\u{1}', len).collect();
        if q.set(0.0, Change::new(a, "status", "blob", Value::Str(ctl)))
            .is_ok()
        {
            break;
        }
        len -= 64;
    }
    q.poll(0.0).unwrap();
    let out = q.poll(30.0).unwrap();
    assert_eq!(out.len(), 1);
    let body = encode(&q, &out[0]);
    assert!(body.len() <= out[0].body_bytes as usize);
    assert!(body.len() <= 64 * 1024);
}

#[test]
fn issue7_11_merged_groups_never_exceed_the_agent_block_cap() {
    let mut q = queue();
    let agents = agents(&mut q, 130);
    let shared = q.agent("hub").unwrap();
    let mut g1 = vec![Change::new(shared, "status", "round", Value::Number(1.0))];
    g1.extend(
        agents[..60]
            .iter()
            .map(|a| Change::new(*a, "status", "round", Value::Number(1.0))),
    );
    q.atomic(0.0, &g1).unwrap();
    let mut g2 = vec![Change::new(shared, "status", "round", Value::Number(2.0))];
    g2.extend(
        agents[60..120]
            .iter()
            .map(|a| Change::new(*a, "status", "round", Value::Number(2.0))),
    );
    match q.atomic(0.5, &g2) {
        Err(Error::BadGroup { reason }) => {
            assert!(reason.contains("max_agent_blocks_per_request"), "{reason}")
        }
        Ok(_) => panic!("merging would make a group of 121 agent-blocks"),
        Err(e) => panic!("{e}"),
    }
    let count_blocks = |q: &Queue, r: &Request| {
        r.changes
            .iter()
            .map(|c| (c.agent, q.text(c.block).to_string()))
            .collect::<BTreeSet<_>>()
            .len()
    };
    let out = poll_span(&mut q, 0.5, 31.0);
    assert_eq!(out.len(), 1);
    assert_eq!(count_blocks(&q, &out[0].1), 61);
    // While the first group is in flight, a second one sharing a field is pending on its
    // own. The first fails: merging the two would make 121 agent-blocks, so the merge is
    // refused and no request exceeds the cap.
    let (_, r1) = &out[0];
    q.atomic(31.0, &g2).unwrap();
    q.fail(31.1, r1.id, None).unwrap();
    let mut seen = 0;
    for (_, r) in poll_span(&mut q, 31.1, 70.0) {
        assert!(
            count_blocks(&q, &r) <= 100,
            "{} agent-blocks",
            count_blocks(&q, &r)
        );
        seen += r.changes.len();
        q.ack(r.id, &[]).unwrap();
    }
    assert!(seen >= 121, "{seen}");
    for a in &agents[..120] {
        assert!(q.acked_value(*a, "status", "round").is_some());
    }
    assert_eq!(
        q.acked_value(shared, "status", "round")
            .map(|v| v.0.clone()),
        Some(Value::Number(2.0))
    );
}

#[test]
fn issue7_12_leave_group_clears_only_that_member() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.join_group(0.0, a, "guard", &[("rank", Value::Number(1.0))])
        .unwrap();
    q.join_group(0.0, a, "guard.2", &[("rank", Value::Number(2.0))])
        .unwrap();
    let out = poll_span(&mut q, 0.0, 2.0);
    for (_, r) in &out {
        q.ack(r.id, &[]).unwrap();
    }
    q.leave_group(3.0, a, "guard").unwrap();
    assert_eq!(
        q.local_value(a, "group_members", "guard.2.is_present"),
        Some(&Value::Bool(true))
    );
    assert_eq!(
        q.local_value(a, "group_members", "guard.2.rank"),
        Some(&Value::Number(2.0))
    );
    assert_eq!(
        q.local_value(a, "group_members", "guard.rank"),
        Some(&Value::Cleared)
    );
    // A member field name with a dot would make member names ambiguous: refused.
    match q.join_group(4.0, a, "scout", &[("a.b", Value::Bool(true))]) {
        Err(Error::BadString { what, .. }) => assert_eq!(what, "group member field"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn issue7_13_departed_members_and_removed_agents_free_their_memory() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.set_location(0.0, a, "gate").unwrap();
    let mut t = 0.0;
    for r in q.poll(t).unwrap() {
        q.ack(r.id, &[]).unwrap();
    }
    let base = q.tracked_fields();
    // Members come and go for a long time.
    for i in 0..200 {
        let m = format!("player_{i}");
        q.join_group(t, a, &m, &[("hp", Value::Number(100.0))])
            .unwrap();
        for (_, r) in poll_span(&mut q, t, t + 1.5) {
            q.ack(r.id, &[]).unwrap();
        }
        t += 1.5;
        q.leave_group(t, a, &m).unwrap();
        for (_, r) in poll_span(&mut q, t, t + 1.5) {
            q.ack(r.id, &[]).unwrap();
        }
        t += 1.5;
    }
    assert!(q.is_idle());
    assert_eq!(q.tracked_fields(), base, "departed members are still held");
    // Agents come and go: a removed agent whose blocks the backend no longer holds
    // anything of leaves nothing behind; `forget_agent` drops the rest.
    for i in 0..100 {
        let b = q.agent(&format!("visitor-{i}")).unwrap();
        q.set_location(t, b, "gate").unwrap();
        q.set(t, Change::new(b, "status", "mood", Value::str("calm")))
            .unwrap();
        for (_, r) in poll_span(&mut q, t, t + 31.0) {
            q.ack(r.id, &[]).unwrap();
        }
        t += 31.0;
        q.set(t, Change::new(b, "status", "mood", Value::Cleared))
            .unwrap();
        for (_, r) in poll_span(&mut q, t, t + 31.0) {
            q.ack(r.id, &[]).unwrap();
        }
        t += 31.0;
        q.remove_agent(b).unwrap();
    }
    // Each visitor's backend still holds its location: kept for a respawn, one record.
    assert_eq!(q.tracked_fields(), base + 100);
    for i in 0..100 {
        q.forget_agent(&format!("visitor-{i}")).unwrap();
    }
    assert_eq!(q.tracked_fields(), base);
}

#[test]
fn issue7_14_retry_after_holds_routine_traffic_not_critical_changes() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    let b = q.agent("npc-2").unwrap();
    q.set_health(0.0, a, 100.0).unwrap();
    q.set_location(0.0, b, "gate").unwrap();
    q.poll(0.0).unwrap();
    let r = q.poll(30.0).unwrap();
    assert_eq!(r.len(), 1);
    // 429 with Retry-After 20 s.
    q.fail(30.2, r[0].id, Some(20.0)).unwrap();
    // A critical drop during the pause goes out, at the paced rate (next poll here).
    q.set_health(31.0, a, 60.0).unwrap();
    let out = q.poll(31.0).unwrap();
    assert_eq!(out.len(), 1, "critical change held by a Retry-After pause");
    assert_eq!(out[0].kind, RequestKind::Urgent);
    assert!(block_values(&q, &out[0]).contains(&"status.health=60".to_string()));
    q.ack(out[0].id, &[]).unwrap();
    // Critical changes of two NPCs during the pause: at most one urgent request a second
    // (each NPC's own debounce alone would let one through every half second). Routine
    // traffic (npc-2's location, a heal) waits for the pause to end.
    let c = q.agent("npc-3").unwrap();
    q.set_health(31.0, c, 2000.0).unwrap();
    q.set_health(31.0, a, 2000.0).unwrap();
    let mut urgent_times = Vec::new();
    let mut health = [2000.0, 2000.0];
    let mut t: f64 = 32.0;
    while t < 50.1 {
        let frame = ((t - 32.0) * 4.0).round() as usize;
        let (who, i) = if frame.is_multiple_of(2) {
            (a, 0)
        } else {
            (c, 1)
        };
        health[i] -= 30.0;
        q.set_health(t, who, health[i]).unwrap();
        for r in q.poll(t).unwrap() {
            assert_eq!(
                r.kind,
                RequestKind::Urgent,
                "routine traffic during the pause at {t}"
            );
            assert!(r.changes.iter().all(|c| c.agent != b), "{t}");
            urgent_times.push(t);
            q.ack(r.id, &[]).unwrap();
        }
        t += 0.25;
    }
    assert!(urgent_times.len() >= 10, "{urgent_times:?}");
    for w in urgent_times.windows(2) {
        assert!(w[1] - w[0] >= 1.0 - 1e-9, "{urgent_times:?}");
    }
    // After the pause, the routine traffic goes (here riding along an urgent request).
    let after = poll_span(&mut q, 50.25, 52.0);
    assert!(after
        .iter()
        .any(|(_, r)| r.changes.iter().any(|c| c.agent == b)));
}

#[test]
fn issue7_15_inference_waits_for_its_freshness_sync_ack() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.set_location(0.0, a, "gate").unwrap();
    q.poll(0.0).unwrap();
    // At 20 s the location is 20 s old, not yet sent: the NPC's memory is stale.
    q.chat(20.0, a, "player", "where are you?").unwrap();
    let out = q.poll(20.5).unwrap();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].kind, RequestKind::Urgent);
    // The sync fails: the NPC must not answer on stale memory.
    q.fail(20.6, out[0].id, None).unwrap();
    let mut inference_at = None;
    let mut synced_at = None;
    for frame in 1237..1800 {
        let t = frame as f64 / 60.0;
        for r in q.poll(t).unwrap() {
            match r.kind {
                RequestKind::Inference => {
                    assert!(
                        synced_at.is_some(),
                        "inference at {t} before its sync landed"
                    );
                    inference_at.get_or_insert(t);
                }
                _ => {
                    assert!(block_values(&q, &r).contains(&"status.location=gate".to_string()));
                    synced_at.get_or_insert(t);
                }
            }
            q.ack(r.id, &[]).unwrap();
        }
    }
    assert!(inference_at.is_some(), "the chat was never answered");
}

#[test]
fn issue7_16_a_heal_is_not_a_combat_health_drop() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.set_health(0.0, a, 50.0).unwrap();
    q.poll(0.0).unwrap();
    let r = q.poll(30.0).unwrap();
    ack_all(&mut q, &r);
    q.set_health(40.0, a, 75.0).unwrap();
    assert!(!q.in_combat(a, 40.0), "a heal entered combat mode");
    let out = poll_span(&mut q, 40.0, 41.0);
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].1.kind,
        RequestKind::Batch,
        "a heal is high, not critical"
    );
    assert!(out[0].0 >= 41.0 - 1e-9);
    q.ack(out[0].1.id, &[]).unwrap();
    // A drop of the same size is critical and enters combat.
    q.set_health(50.0, a, 50.0).unwrap();
    assert!(q.in_combat(a, 50.0));
    let out = q.poll(50.0).unwrap();
    assert_eq!(out[0].kind, RequestKind::Urgent);
}
