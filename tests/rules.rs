//! One (or a few) integration tests per rule and default of `semantics.md`, plus the
//! bad-input rules: every refused call names what was wrong and leaves the queue as it
//! was.

use npc_sync::{
    AgentId, Change, ChangeId, Config, Confirmed, Decision, Error, Event, Priority, Queue, Request,
    RequestId, RequestKind, Seq, Target, Value,
};

// ---------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------

fn queue() -> Queue {
    Queue::new(Config::default()).unwrap()
}

fn queue_with(f: impl FnOnce(&mut Config)) -> Queue {
    let mut c = Config::default();
    f(&mut c);
    Queue::new(c).unwrap()
}

/// `agent/block.field` of every change of a request, in order.
fn fields(q: &Queue, r: &Request) -> Vec<String> {
    r.changes
        .iter()
        .map(|c| {
            format!(
                "{}/{}.{}",
                q.text(c.agent_name),
                q.text(c.block),
                q.text(c.field)
            )
        })
        .collect()
}

/// `agent/block.field=value` of every change of a request, in order.
fn values(q: &Queue, r: &Request) -> Vec<String> {
    r.changes
        .iter()
        .map(|c| {
            let v = match &c.value {
                Value::Number(n) => format!("{n}"),
                Value::Str(s) => s.clone(),
                Value::Bool(b) => format!("{b}"),
                Value::Cleared => "<cleared>".to_string(),
            };
            format!(
                "{}/{}.{}={}",
                q.text(c.agent_name),
                q.text(c.block),
                q.text(c.field),
                v
            )
        })
        .collect()
}

fn all_fields(q: &Queue, rs: &[Request]) -> Vec<String> {
    rs.iter().flat_map(|r| fields(q, r)).collect()
}

/// Polls at `from`, `from + step`, ... up to `to` (inclusive) and asserts nothing comes out.
fn assert_quiet(q: &mut Queue, from: f64, to: f64, step: f64) {
    let mut t = from;
    while t <= to + 1e-9 {
        let out = q.poll(t).unwrap();
        assert!(out.is_empty(), "unexpected output at {t}: {out:?}");
        t += step;
    }
}

/// Acks every request.
fn ack_all(q: &mut Queue, rs: &[Request]) {
    for r in rs {
        q.ack(r.id, &[]).unwrap();
    }
}

/// Sends a location to the backend and acks it, from a fresh queue's first poll at `t`.
fn sync_location(q: &mut Queue, a: AgentId, t: f64, loc: &str) {
    q.set_location(t, a, loc).unwrap();
    q.decide(a, t + 16.0).unwrap();
    let out = q.poll(t + 16.0).unwrap();
    assert_eq!(out.len(), 1, "{out:?}");
    ack_all(q, &out);
    assert_eq!(
        q.acked_value(a, "status", "location")
            .map(|(v, _)| v.clone()),
        Some(Value::str(loc))
    );
}

// ---------------------------------------------------------------------------------------
// coalescing and differential sync
// ---------------------------------------------------------------------------------------

#[test]
fn changes_to_one_field_coalesce_to_the_latest_value() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap(); // starts the routine schedule: next batch at 30 s
    q.set_location(1.0, a, "plaza").unwrap();
    q.set_location(2.0, a, "market").unwrap();
    let last = q.set_location(3.0, a, "cave").unwrap();
    assert_quiet(&mut q, 3.0, 29.5, 0.5);
    let out = q.poll(30.0).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, RequestKind::Batch);
    assert_eq!(values(&q, &out[0]), ["npc-1/status.location=cave"]);
    assert_eq!(out[0].changes[0].seq, last.seq());
    assert_eq!(q.metrics().coalesced, 2);
}

#[test]
fn setting_back_to_the_acknowledged_value_sends_nothing() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    sync_location(&mut q, a, 0.0, "plaza");
    q.set_location(20.0, a, "market").unwrap();
    q.set_location(21.0, a, "plaza").unwrap();
    assert_eq!(q.metrics().queue_depth, 0);
    assert_quiet(&mut q, 21.0, 200.0, 1.0);
    assert!(q.is_idle());
    // And the decision is fresh with nothing outstanding.
    assert_eq!(
        q.decide(a, 201.0).unwrap(),
        Decision::Fresh { staleness: 0.0 }
    );
}

#[test]
fn join_and_leave_of_a_member_the_backend_never_had_sends_nothing() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    q.join_group(0.1, a, "player_7", &[("role", Value::str("healer"))])
        .unwrap();
    q.leave_group(0.5, a, "player_7").unwrap();
    assert_eq!(q.metrics().queue_depth, 0);
    assert_quiet(&mut q, 0.5, 100.0, 0.5);
    assert!(q.is_idle());
}

#[test]
fn leave_of_a_member_the_backend_has_clears_every_field() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    q.join_group(0.0, a, "player_7", &[("role", Value::str("healer"))])
        .unwrap();
    let out = q.poll(1.0).unwrap();
    assert_eq!(
        out.len(),
        1,
        "group joins are high priority: out within 1 s"
    );
    assert_eq!(
        values(&q, &out[0]),
        [
            "npc-1/group_members.player_7.is_present=true",
            "npc-1/group_members.player_7.role=healer"
        ]
    );
    ack_all(&mut q, &out);
    q.leave_group(2.0, a, "player_7").unwrap();
    let out = q.poll(3.0).unwrap();
    assert_eq!(out.len(), 1);
    let mut v = values(&q, &out[0]);
    v.sort();
    assert_eq!(
        v,
        [
            "npc-1/group_members.player_7.is_present=<cleared>",
            "npc-1/group_members.player_7.role=<cleared>"
        ]
    );
}

// ---------------------------------------------------------------------------------------
// health, state and combat mode
// ---------------------------------------------------------------------------------------

#[test]
fn health_small_notable_and_critical_changes() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    q.set_health(0.0, a, 100.0).unwrap();
    q.decide(a, 16.0).unwrap();
    let out = q.poll(16.0).unwrap();
    ack_all(&mut q, &out);
    assert_eq!(
        q.acked_value(a, "status", "health").unwrap().0,
        &Value::Number(100.0)
    );

    // Small (under 10 points): kept for the routine batch (due at 30 s).
    q.set_health(17.0, a, 95.0).unwrap();
    assert_quiet(&mut q, 17.0, 29.9, 0.1);
    let out = q.poll(30.0).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, RequestKind::Batch);
    assert_eq!(values(&q, &out[0]), ["npc-1/status.health=95"]);
    ack_all(&mut q, &out);
    assert!(!q.in_combat(a, 30.0));

    // Notable (10 to 20 points): high priority, out within 1 s, no combat.
    q.set_health(31.0, a, 80.0).unwrap();
    assert_quiet(&mut q, 31.0, 31.9, 0.1);
    let out = q.poll(32.0).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, RequestKind::Batch);
    assert_eq!(values(&q, &out[0]), ["npc-1/status.health=80"]);
    ack_all(&mut q, &out);
    assert!(!q.in_combat(a, 32.0));

    // Critical (20 points or more): urgent at the next poll, and combat mode.
    q.set_health(33.0, a, 60.0).unwrap();
    assert!(q.in_combat(a, 33.0));
    let out = q.poll(33.0).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, RequestKind::Urgent);
    assert_eq!(values(&q, &out[0]), ["npc-1/status.health=60"]);
    // Combat mode is left 10 s after the critical change.
    assert!(q.in_combat(a, 42.9));
    assert!(!q.in_combat(a, 43.0));
}

#[test]
fn health_steps_are_measured_against_the_backends_value() {
    // Two 15-point drops in a row: the second is 30 points from what the backend has.
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    q.set_health(0.0, a, 100.0).unwrap();
    q.decide(a, 16.0).unwrap();
    let out = q.poll(16.0).unwrap();
    ack_all(&mut q, &out);
    q.set_health(17.0, a, 85.0).unwrap();
    assert!(!q.in_combat(a, 17.0));
    q.set_health(17.2, a, 70.0).unwrap();
    assert!(q.in_combat(a, 17.2));
    let out = q.poll(17.2).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, RequestKind::Urgent);
    assert_eq!(values(&q, &out[0]), ["npc-1/status.health=70"]);
}

#[test]
fn state_into_and_out_of_combat_is_critical_and_combat_ends_10s_later() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    // An ordinary state change is normal priority.
    q.set_state(0.0, a, "Patrol").unwrap();
    assert_quiet(&mut q, 0.0, 5.0, 0.5);
    assert!(!q.in_combat(a, 5.0));

    q.set_state(6.0, a, "Combat").unwrap();
    let out = q.poll(6.0).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, RequestKind::Urgent);
    assert_eq!(values(&q, &out[0]), ["npc-1/status.state=Combat"]);
    ack_all(&mut q, &out);
    // In combat as long as the state is Combat.
    assert!(q.in_combat(a, 100.0));

    q.set_state(100.0, a, "Patrol").unwrap();
    let out = q.poll(100.0).unwrap();
    assert_eq!(out.len(), 1, "leaving Combat is critical too");
    assert_eq!(out[0].kind, RequestKind::Urgent);
    assert_eq!(values(&q, &out[0]), ["npc-1/status.state=Patrol"]);
    assert!(q.in_combat(a, 109.9));
    assert!(!q.in_combat(a, 110.0));
}

// ---------------------------------------------------------------------------------------
// critical changes, debounce
// ---------------------------------------------------------------------------------------

#[test]
fn critical_change_carries_the_agents_other_pending_fields() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    let b = q.agent("npc-2").unwrap();
    q.poll(0.0).unwrap();
    q.set_location(1.0, a, "plaza").unwrap();
    q.set(
        1.1,
        npc_sync::Change::new(a, "persona", "mood", Value::str("calm")).priority(Priority::Low),
    )
    .unwrap();
    q.set_location(1.2, b, "market").unwrap();
    q.set_state(1.3, a, "Combat").unwrap();
    let out = q.poll(1.3).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, RequestKind::Urgent);
    let mut v = values(&q, &out[0]);
    assert_eq!(v[0], "npc-1/status.state=Combat", "critical first");
    // Another agent's routine field may fill the request for free (by priority, then
    // change order); if not, it goes with the routine batch.
    let rode = v.contains(&"npc-2/status.location=market".to_string());
    v.retain(|f| f != "npc-2/status.location=market");
    assert_eq!(
        v,
        [
            "npc-1/status.state=Combat",
            "npc-1/status.location=plaza",
            "npc-1/persona.mood=calm"
        ],
        "the agent's other fields ride, by priority"
    );
    if !rode {
        assert_quiet(&mut q, 1.4, 29.9, 0.5);
        let out = q.poll(30.0).unwrap();
        assert_eq!(all_fields(&q, &out), ["npc-2/status.location"]);
    }
}

#[test]
fn critical_changes_of_many_agents_share_one_urgent_request() {
    let mut q = queue();
    let agents: Vec<AgentId> = (0..100)
        .map(|i| q.agent(&format!("npc-{i}")).unwrap())
        .collect();
    q.poll(0.0).unwrap();
    for (i, a) in agents.iter().enumerate() {
        q.set_state(0.5 + i as f64 * 0.001, *a, "Combat").unwrap();
    }
    let out = q.poll(0.7).unwrap();
    assert_eq!(out.len(), 1, "a combat storm of 100 NPCs is one request");
    assert_eq!(out[0].kind, RequestKind::Urgent);
    assert_eq!(out[0].changes.len(), 100);
    assert_eq!(out[0].calls, 1);
    assert_eq!(q.metrics().calls, 1);
}

#[test]
fn debounce_leading_edge_then_one_trailing_send_outside_combat() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    q.tool_result(0.0, a, "status", "alarm", Value::Number(1.0), true)
        .unwrap();
    let out = q.poll(0.0).unwrap();
    assert_eq!(out.len(), 1, "leading edge: at once");
    assert_eq!(out[0].kind, RequestKind::Urgent);
    ack_all(&mut q, &out);
    assert!(!q.in_combat(a, 0.0));

    q.tool_result(1.0, a, "status", "alarm", Value::Number(2.0), true)
        .unwrap();
    q.tool_result(2.0, a, "status", "alarm", Value::Number(3.0), true)
        .unwrap();
    q.tool_result(2.5, a, "status", "siren", Value::Bool(true), true)
        .unwrap();
    assert_quiet(&mut q, 2.5, 4.95, 0.05);
    let out = q.poll(5.0).unwrap();
    assert_eq!(out.len(), 1, "one trailing send at the window's end");
    assert_eq!(out[0].kind, RequestKind::Urgent);
    assert_eq!(
        values(&q, &out[0]),
        ["npc-1/status.alarm=3", "npc-1/status.siren=true"]
    );
    assert_eq!(q.metrics().requests_urgent, 2);
}

#[test]
fn debounce_is_1s_in_combat() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    q.set_state(10.0, a, "Combat").unwrap();
    let out = q.poll(10.0).unwrap();
    assert_eq!(out.len(), 1);
    ack_all(&mut q, &out);
    q.set_health(10.1, a, 100.0).unwrap(); // first value: no reference, normal
    q.tool_result(10.2, a, "status", "alarm", Value::Bool(true), true)
        .unwrap();
    assert_quiet(&mut q, 10.2, 10.95, 0.05);
    let out = q.poll(11.0).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, RequestKind::Urgent);
    assert_eq!(
        values(&q, &out[0]),
        ["npc-1/status.alarm=true", "npc-1/status.health=100"]
    );
}

// ---------------------------------------------------------------------------------------
// high, normal, low and the routine batch
// ---------------------------------------------------------------------------------------

#[test]
fn high_priority_goes_out_within_1s() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    q.tool_result(5.0, a, "inventory", "sword", Value::Bool(true), false)
        .unwrap();
    q.tool_result(5.5, a, "inventory", "shield", Value::Bool(true), false)
        .unwrap();
    assert_quiet(&mut q, 5.5, 5.95, 0.05);
    let out = q.poll(6.0).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, RequestKind::Batch);
    assert_eq!(
        all_fields(&q, &out),
        ["npc-1/inventory.sword", "npc-1/inventory.shield"],
        "coalesced: the second rides with the first"
    );
}

#[test]
fn normal_and_low_wait_for_the_30s_routine_batch() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    q.set_location(1.0, a, "plaza").unwrap();
    q.set(
        2.0,
        npc_sync::Change::new(a, "persona", "mood", Value::str("calm")).priority(Priority::Low),
    )
    .unwrap();
    assert_quiet(&mut q, 2.0, 29.9, 0.1);
    let out = q.poll(30.0).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(
        all_fields(&q, &out),
        ["npc-1/status.location", "npc-1/persona.mood"]
    );
    ack_all(&mut q, &out);
    // The next batch is 30 s later.
    q.set_location(31.0, a, "market").unwrap();
    assert_quiet(&mut q, 31.0, 59.9, 0.1);
    let out = q.poll(60.0).unwrap();
    assert_eq!(all_fields(&q, &out), ["npc-1/status.location"]);
}

#[test]
fn batch_orders_high_normal_low_then_change_order() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    let b = q.agent("npc-2").unwrap();
    q.poll(0.0).unwrap();
    let low = |agent, f| {
        npc_sync::Change::new(agent, "persona", f, Value::Number(1.0)).priority(Priority::Low)
    };
    q.set(1.0, low(a, "l1")).unwrap();
    q.set_location(2.0, b, "plaza").unwrap();
    q.tool_result(3.0, b, "inventory", "h1", Value::Bool(true), false)
        .unwrap();
    q.set(4.0, low(b, "l2")).unwrap();
    q.set_description(5.0, a, "tall").unwrap();
    q.tool_result(6.0, a, "inventory", "h2", Value::Bool(true), false)
        .unwrap();
    // Poll only when the routine batch is due, so everything goes in one batch.
    let out = q.poll(30.0).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(
        all_fields(&q, &out),
        [
            "npc-2/inventory.h1",
            "npc-1/inventory.h2",
            "npc-2/status.location",
            "npc-1/status.description",
            "npc-1/persona.l1",
            "npc-2/persona.l2",
        ]
    );
}

// ---------------------------------------------------------------------------------------
// atomic groups
// ---------------------------------------------------------------------------------------

#[test]
fn atomic_group_across_blocks_and_agents_travels_whole_in_order() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    let b = q.agent("npc-2").unwrap();
    q.poll(0.0).unwrap();
    q.set_location(0.5, b, "somewhere").unwrap();
    let ids = q
        .atomic(
            1.0,
            &[
                npc_sync::Change::new(a, "status", "location", Value::str("cave")),
                npc_sync::Change::new(a, "status", "state", Value::str("Exploring")),
                npc_sync::Change::new(b, "group_members", "npc-1.is_present", Value::Bool(true)),
                npc_sync::Change::new(a, "group_members", "npc-2.is_present", Value::Bool(true)),
            ],
        )
        .unwrap();
    assert_eq!(ids.len(), 4);
    assert!(ids.windows(2).all(|w| w[0].seq() < w[1].seq()));
    let out = q.poll(30.0).unwrap();
    assert_eq!(out.len(), 1);
    let f = fields(&q, &out[0]);
    assert_eq!(
        f,
        [
            "npc-2/status.location",
            "npc-1/status.location",
            "npc-1/status.state",
            "npc-2/group_members.npc-1.is_present",
            "npc-1/group_members.npc-2.is_present",
        ]
    );
    let g = out[0].changes[1].group;
    assert!(g.is_some());
    assert!(out[0].changes[1..].iter().all(|c| c.group == g));
    assert_eq!(out[0].changes[0].group, None);
}

#[test]
fn atomic_group_is_never_split_across_the_agent_block_cap() {
    let mut q = queue();
    let agents: Vec<AgentId> = (0..160)
        .map(|i| q.agent(&format!("npc-{i:03}")).unwrap())
        .collect();
    q.poll(0.0).unwrap();
    // 95 agent-blocks first, then a group of 12 agent-blocks, then 60 more.
    for a in &agents[..95] {
        q.set_location(1.0, *a, "plaza").unwrap();
    }
    let group: Vec<npc_sync::Change> = agents[95..107]
        .iter()
        .map(|a| npc_sync::Change::new(*a, "mood", "value", Value::str("alert")))
        .collect();
    let ids = q.atomic(2.0, &group).unwrap();
    for a in &agents[100..160] {
        q.set_location(3.0, *a, "market").unwrap();
    }
    let out = q.poll(30.0).unwrap();
    assert!(out.len() >= 2);
    let mut total = 0;
    let mut holders = Vec::new();
    for (i, r) in out.iter().enumerate() {
        let mut blocks: Vec<(AgentId, npc_sync::Sym)> =
            r.changes.iter().map(|c| (c.agent, c.block)).collect();
        blocks.sort();
        blocks.dedup();
        assert!(
            blocks.len() <= 100,
            "request {i} has {} blocks",
            blocks.len()
        );
        total += r.changes.len();
        let seqs: Vec<Seq> = r.changes.iter().map(|c| c.seq).collect();
        let pos: Vec<usize> = ids
            .iter()
            .filter_map(|id| seqs.iter().position(|s| *s == id.seq()))
            .collect();
        if !pos.is_empty() {
            holders.push(i);
            assert_eq!(pos.len(), ids.len(), "group split");
            assert!(
                pos.windows(2).all(|w| w[1] == w[0] + 1),
                "group not contiguous / in order: {pos:?}"
            );
        }
    }
    assert_eq!(holders.len(), 1);
    assert_eq!(total, 95 + 12 + 60);
}

#[test]
fn atomic_group_bigger_than_the_caps_is_refused() {
    let mut q = queue_with(|c| c.max_agent_blocks_per_request = 3);
    let agents: Vec<AgentId> = (0..4)
        .map(|i| q.agent(&format!("npc-{i}")).unwrap())
        .collect();
    let group: Vec<npc_sync::Change> = agents
        .iter()
        .map(|a| npc_sync::Change::new(*a, "mood", "value", Value::str("alert")))
        .collect();
    match q.atomic(0.0, &group) {
        Err(Error::BadGroup { reason }) => {
            assert!(reason.contains("max_agent_blocks_per_request"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(q.metrics().changes_in, 0);
}

// ---------------------------------------------------------------------------------------
// dependencies
// ---------------------------------------------------------------------------------------

#[test]
fn dependent_waits_for_its_dependency_in_the_same_request() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    let b = q.agent("npc-2").unwrap();
    q.poll(0.0).unwrap();
    let dep = q.set_location(1.0, a, "cave").unwrap();
    // High priority would be due at 2 s, but its dependency is a routine change.
    let c = npc_sync::Change::new(b, "status", "following", Value::str("npc-1"))
        .priority(Priority::High)
        .after(dep);
    let d = q.set(1.0, c).unwrap();
    let mut seen = Vec::new();
    let mut t = 1.0;
    while t <= 30.0 {
        for r in q.poll(t).unwrap() {
            // The high-priority change takes its routine dependency along, within 1 s.
            assert!(t <= 2.0, "sent at {t}");
            seen.push(r);
        }
        t += 0.5;
    }
    let all: Vec<Seq> = seen
        .iter()
        .flat_map(|r| r.changes.iter().map(|c| c.seq))
        .collect();
    let pd = all.iter().position(|s| *s == dep.seq()).expect("dep sent");
    let pc = all
        .iter()
        .position(|s| *s == d.seq())
        .expect("dependent sent");
    assert!(pd < pc, "dependency must come first: {all:?}");
    assert_eq!(seen.len(), 1, "same request");
}

#[test]
fn dependent_on_an_in_flight_change_waits_for_its_ack() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    let dep = q.set_state(0.0, a, "Combat").unwrap();
    let out = q.poll(0.0).unwrap();
    assert_eq!(out.len(), 1);
    let c = npc_sync::Change::new(a, "inventory", "sword", Value::Bool(true))
        .priority(Priority::High)
        .after(dep);
    let d = q.set(0.1, c).unwrap();
    assert_quiet(&mut q, 0.1, 5.0, 0.1);
    q.ack(out[0].id, &[]).unwrap();
    let out = q.poll(5.1).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].changes[0].seq, d.seq());
}

#[test]
fn removed_agent_releases_dependents_with_an_event() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    let b = q.agent("npc-2").unwrap();
    q.poll(0.0).unwrap();
    let dep = q.set_location(1.0, b, "cave").unwrap();
    let c = npc_sync::Change::new(a, "status", "following", Value::str("npc-2"))
        .priority(Priority::High)
        .after(dep);
    let d = q.set(1.0, c).unwrap();
    assert_quiet(&mut q, 1.0, 1.5, 0.1);
    q.remove_agent(b).unwrap();
    let ev = q.drain_events();
    assert!(
        ev.contains(&Event::DependencyReleased {
            dependent: d,
            dependency: dep
        }),
        "{ev:?}"
    );
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::AgentRemoved { agent, name, pending_fields: 1, chat_messages: 0 }
            if *agent == b && name == "npc-2"
    )));
    let out = q.poll(2.0).unwrap();
    assert_eq!(out.len(), 1, "the dependent goes on its own: {out:?}");
    assert_eq!(all_fields(&q, &out), ["npc-1/status.following"]);
    // A new dependency on the dead change is refused.
    let c = npc_sync::Change::new(a, "status", "x", Value::Bool(true)).after(dep);
    assert_eq!(
        q.set(4.0, c),
        Err(Error::DependencyRemoved {
            seq: dep.seq().0,
            agent: "npc-2".into()
        })
    );
}

// ---------------------------------------------------------------------------------------
// decisions
// ---------------------------------------------------------------------------------------

#[test]
fn decide_fresh_then_syncing_then_fresh_after_ack() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    let b = q.agent("npc-2").unwrap();
    q.poll(0.0).unwrap();
    assert_eq!(
        q.decide(a, 0.0).unwrap(),
        Decision::Fresh { staleness: 0.0 }
    );
    q.set_location(1.0, a, "plaza").unwrap();
    q.set_location(1.0, b, "market").unwrap();
    assert_eq!(
        q.decide(a, 11.0).unwrap(),
        Decision::Fresh { staleness: 10.0 }
    );
    assert_quiet(&mut q, 11.0, 16.0, 0.5);
    assert_eq!(
        q.decide(a, 16.5).unwrap(),
        Decision::Syncing {
            staleness: 15.5,
            threshold: 15.0
        }
    );
    let out = q.poll(16.5).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, RequestKind::Urgent, "sync goes urgent");
    assert_eq!(all_fields(&q, &out)[0], "npc-1/status.location");
    // Still syncing until acknowledged.
    assert!(matches!(
        q.decide(a, 16.6).unwrap(),
        Decision::Syncing { .. }
    ));
    q.ack(out[0].id, &[]).unwrap();
    assert_eq!(
        q.decide(a, 16.7).unwrap(),
        Decision::Fresh { staleness: 0.0 }
    );
    let m = q.metrics();
    assert_eq!(m.decisions_fresh, 3);
    assert_eq!(m.decisions_synced, 1, "one sync, asked twice");
    assert_eq!(m.staleness.count, 3);
    assert_eq!(m.staleness.max, 10.0);
}

#[test]
fn decision_threshold_is_1s_in_combat() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    q.set_state(0.0, a, "Combat").unwrap();
    let out = q.poll(0.0).unwrap();
    ack_all(&mut q, &out);
    q.set_location(0.2, a, "arena").unwrap();
    assert!(matches!(q.decide(a, 1.2).unwrap(), Decision::Fresh { .. }));
    assert_eq!(
        q.decide(a, 1.5).unwrap(),
        Decision::Syncing {
            staleness: 1.3,
            threshold: 1.0
        }
    );
    let out = q.poll(1.5).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, RequestKind::Urgent);
    ack_all(&mut q, &out);
    assert!(matches!(q.decide(a, 1.6).unwrap(), Decision::Fresh { .. }));
    let m = q.metrics();
    assert_eq!(m.staleness_combat.count, 2);
    assert!(m.staleness_combat.max <= 1.0);
}

#[test]
fn decision_sync_absorbs_a_debounced_trailing_send() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    q.tool_result(0.0, a, "status", "alarm", Value::Number(1.0), true)
        .unwrap();
    let out = q.poll(0.0).unwrap();
    ack_all(&mut q, &out);
    q.tool_result(0.5, a, "status", "alarm", Value::Number(2.0), true)
        .unwrap();
    assert_quiet(&mut q, 0.5, 1.0, 0.1);
    q.set_location(1.0, a, "old").unwrap();
    // Force a sync: the location change is 16 s old at 17 s... use a big step instead.
    let d = q.decide(a, 16.5).unwrap();
    assert!(matches!(d, Decision::Syncing { .. }), "{d:?}");
    let out = q.poll(16.5).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(
        all_fields(&q, &out),
        ["npc-1/status.alarm", "npc-1/status.location"]
    );
}

// ---------------------------------------------------------------------------------------
// budget
// ---------------------------------------------------------------------------------------

/// Sums calls over every rolling 60 s window of `(time, calls)`.
fn max_window(sends: &[(f64, u32)]) -> u32 {
    let mut best = 0;
    for (i, (t, _)) in sends.iter().enumerate() {
        let s: u32 = sends[i..]
            .iter()
            .take_while(|(u, _)| *u < t + 60.0)
            .map(|(_, c)| *c)
            .sum();
        best = best.max(s);
    }
    best
}

#[test]
fn budget_never_exceeded_and_routine_keeps_the_reserve() {
    // Letta's API costs one call per agent-block, which makes the budget bite.
    let mut q = queue_with(|c| {
        c.target = Target::LettaApi;
        c.budget_burst = 400;
    });
    let agents: Vec<AgentId> = (0..500)
        .map(|i| q.agent(&format!("npc-{i:03}")).unwrap())
        .collect();
    q.poll(0.0).unwrap();
    for a in &agents {
        q.set_location(1.0, *a, "plaza").unwrap();
    }
    let out = q.poll(30.0).unwrap();
    let routine: u32 = out.iter().map(|r| r.calls).sum();
    assert_eq!(routine, 320, "routine may use 80 % of 400");
    assert!(out.iter().all(|r| r.kind == RequestKind::Batch));
    let mut sends: Vec<(f64, u32)> = vec![(30.0, routine)];
    let mut routine_sends = sends.clone();
    ack_all(&mut q, &out);
    // The reserve is there for critical changes.
    for a in &agents[..50] {
        q.set_state(31.0, *a, "Combat").unwrap();
    }
    let out = q.poll(31.0).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, RequestKind::Urgent);
    assert_eq!(out[0].calls, 50);
    sends.push((31.0, 50));
    ack_all(&mut q, &out);
    // Nothing more of the routine traffic until the window rolls.
    let mut t = 31.5;
    let mut delivered = 320;
    while t < 200.0 {
        let out = q.poll(t).unwrap();
        for r in &out {
            sends.push((t, r.calls));
            if r.kind == RequestKind::Batch {
                routine_sends.push((t, r.calls));
                delivered += r.changes.len();
            }
        }
        ack_all(&mut q, &out);
        t += 0.5;
    }
    assert_eq!(delivered, 500, "routine changes wait, never dropped");
    assert!(max_window(&sends) <= 400, "{}", max_window(&sends));
    assert!(max_window(&routine_sends) <= 320);
    assert!(q.is_idle());
}

#[test]
fn when_the_budget_is_the_limit_urgent_goes_first() {
    let mut q = queue_with(|c| {
        c.target = Target::LettaApi;
        c.budget_per_minute = 10;
        c.budget_burst = 10;
    });
    let agents: Vec<AgentId> = (0..20)
        .map(|i| q.agent(&format!("npc-{i:02}")).unwrap())
        .collect();
    q.poll(0.0).unwrap();
    for a in &agents {
        q.set_location(1.0, *a, "plaza").unwrap();
    }
    for a in &agents[17..] {
        q.set_state(29.0, *a, "Combat").unwrap();
    }
    let out = q.poll(30.0).unwrap();
    assert_eq!(out[0].kind, RequestKind::Urgent);
    assert_eq!(out[0].calls, 3);
    let calls: u32 = out.iter().map(|r| r.calls).sum();
    assert_eq!(calls, 8, "routine stops at 80 % of 10");
    // (On Letta's API a block is written again only once its write in flight is answered.)
    ack_all(&mut q, &out);
    // More critical changes inside the same minute use the reserve.
    let out2 = {
        q.set_state(31.0, agents[0], "Combat").unwrap();
        q.set_state(31.0, agents[1], "Combat").unwrap();
        q.poll(31.0).unwrap()
    };
    assert_eq!(out2.len(), 1);
    assert_eq!(out2[0].kind, RequestKind::Urgent);
    assert_eq!(out2[0].calls, 2);
    assert_eq!(q.metrics().calls_last_minute, 10);
    // The budget is spent: the next critical change waits for a free call, then goes
    // before routine traffic.
    q.set_state(32.0, agents[2], "Combat").unwrap();
    assert_quiet(&mut q, 32.0, 89.5, 0.5);
    let out3 = q.poll(90.0).unwrap();
    assert!(!out3.is_empty());
    assert_eq!(out3[0].kind, RequestKind::Urgent);
    assert_eq!(fields(&q, &out3[0])[0], "npc-02/status.state");
}

#[test]
fn default_budget_holds_in_a_combat_storm() {
    let mut q = queue();
    let agents: Vec<AgentId> = (0..100)
        .map(|i| q.agent(&format!("npc-{i:03}")).unwrap())
        .collect();
    let mut sends = Vec::new();
    let mut t = 0.0;
    let mut hp = 100.0;
    while t < 300.0 {
        for (i, a) in agents.iter().enumerate() {
            if (t * 10.0) as usize % 7 == i % 7 {
                hp = if hp > 50.0 { 10.0 } else { 100.0 };
                q.set_health(t, *a, hp).unwrap();
                q.set_location(t, *a, &format!("x{}", (t * 10.0) as u32))
                    .unwrap();
            }
            if i % 10 == 0 {
                let _ = q.decide(*a, t).unwrap();
            }
        }
        let out = q.poll(t).unwrap();
        for r in &out {
            sends.push((t, r.calls));
        }
        ack_all(&mut q, &out);
        t += 0.1;
    }
    assert!(!sends.is_empty());
    assert!(max_window(&sends) <= 400, "{}", max_window(&sends));
}

// ---------------------------------------------------------------------------------------
// request size
// ---------------------------------------------------------------------------------------

#[test]
fn more_than_100_agent_blocks_become_several_requests() {
    let mut q = queue();
    let agents: Vec<AgentId> = (0..250)
        .map(|i| q.agent(&format!("npc-{i:03}")).unwrap())
        .collect();
    q.poll(0.0).unwrap();
    for a in &agents {
        q.set_location(1.0, *a, "plaza").unwrap();
    }
    let out = q.poll(30.0).unwrap();
    let sizes: Vec<usize> = out.iter().map(|r| r.changes.len()).collect();
    assert_eq!(sizes, [100, 100, 50]);
    assert!(out.iter().all(|r| r.calls == 1));
}

#[test]
fn bodies_over_64_kib_become_several_requests() {
    let mut q = queue();
    let agents: Vec<AgentId> = (0..10)
        .map(|i| q.agent(&format!("npc-{i}")).unwrap())
        .collect();
    q.poll(0.0).unwrap();
    let big = "x".repeat(10 * 1024);
    for a in &agents {
        q.set_description(1.0, *a, &big).unwrap();
    }
    let out = q.poll(30.0).unwrap();
    assert!(out.len() >= 2, "{} requests", out.len());
    assert!(out.iter().all(|r| r.body_bytes <= 64 * 1024));
    assert_eq!(out.iter().map(|r| r.changes.len()).sum::<usize>(), 10);
    // The estimate is an upper bound of a real JSON body.
    for r in &out {
        let real: usize = r
            .changes
            .iter()
            .map(|c| {
                format!(
                    r#"{{"agent":"{}","block":"{}","field":"{}","value":{:?},"seq":{}}},"#,
                    q.text(c.agent_name),
                    q.text(c.block),
                    q.text(c.field),
                    c.value,
                    c.seq.0
                )
                .len()
            })
            .sum();
        assert!(real <= r.body_bytes as usize);
    }
}

// ---------------------------------------------------------------------------------------
// outcomes
// ---------------------------------------------------------------------------------------

#[test]
fn ack_merges_confirmed_state_only_if_not_older() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    sync_location(&mut q, a, 0.0, "plaza");
    let s1 = q.acked_value(a, "status", "location").unwrap().1;
    let m = q.set_location(20.0, a, "market").unwrap();
    q.decide(a, 36.0).unwrap();
    let out = q.poll(36.0).unwrap();
    assert_eq!(out.len(), 1);
    // The backend reports an older value: ignored.
    q.ack(
        out[0].id,
        &[Confirmed {
            agent: a,
            block: "status".into(),
            field: "location".into(),
            value: Value::str("stale"),
            seq: s1,
        }],
    )
    .unwrap();
    assert_eq!(
        q.acked_value(a, "status", "location"),
        Some((&Value::str("market"), m.seq()))
    );
    // A report as new as ours is merged.
    q.set_description(37.0, a, "tall").unwrap();
    let d = q.set_location(37.0, a, "cave").unwrap();
    q.decide(a, 53.0).unwrap();
    let out = q.poll(53.0).unwrap();
    assert_eq!(out.len(), 1);
    q.ack(
        out[0].id,
        &[Confirmed {
            agent: a,
            block: "status".into(),
            field: "location".into(),
            value: Value::str("cave-by-backend"),
            seq: d.seq(),
        }],
    )
    .unwrap();
    assert_eq!(
        q.acked_value(a, "status", "location"),
        Some((&Value::str("cave-by-backend"), d.seq()))
    );
}

#[test]
fn failed_changes_return_to_pending_with_exponential_backoff() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    q.set_state(0.0, a, "Combat").unwrap();
    let out = q.poll(0.0).unwrap();
    assert_eq!(out[0].attempt, 1);
    q.fail(0.0, out[0].id, None).unwrap();
    // First retry after 1 s to 1.25 s.
    assert_quiet(&mut q, 0.0, 0.99, 0.01);
    let mut t = 1.0;
    let out = loop {
        let out = q.poll(t).unwrap();
        if !out.is_empty() {
            break out;
        }
        t += 0.01;
        assert!(t <= 1.26, "no retry by 1.25 s");
    };
    assert_eq!(out[0].attempt, 2);
    assert_eq!(all_fields(&q, &out), ["npc-1/status.state"]);
    let t1 = t;
    q.fail(t1, out[0].id, None).unwrap();
    // Second retry after 2 s to 2.5 s.
    assert_quiet(&mut q, t1, t1 + 1.99, 0.01);
    let mut t = t1 + 2.0;
    let out = loop {
        let out = q.poll(t).unwrap();
        if !out.is_empty() {
            break out;
        }
        t += 0.01;
        assert!(t <= t1 + 2.51, "no retry by 2.5 s");
    };
    assert_eq!(out[0].attempt, 3);
    assert_eq!(q.metrics().failures, 2);
}

#[test]
fn on_failure_a_newer_pending_value_wins() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    q.set_location(1.0, a, "market").unwrap();
    let out = q.poll(30.0).unwrap();
    assert_eq!(out.len(), 1);
    let newer = q.set_location(31.0, a, "cave").unwrap();
    q.fail(32.0, out[0].id, None).unwrap();
    let mut sent = Vec::new();
    let mut t = 32.0;
    while t < 100.0 {
        let out = q.poll(t).unwrap();
        for r in &out {
            sent.extend(values(&q, r));
            for c in &r.changes {
                assert_eq!(c.seq, newer.seq());
            }
        }
        ack_all(&mut q, &out);
        t += 0.5;
    }
    assert_eq!(sent, ["npc-1/status.location=cave"]);
    assert_eq!(
        q.acked_value(a, "status", "location"),
        Some((&Value::str("cave"), newer.seq()))
    );
}

#[test]
fn failed_atomic_group_returns_whole() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    let b = q.agent("npc-2").unwrap();
    q.poll(0.0).unwrap();
    let g = [
        npc_sync::Change::new(a, "status", "location", Value::str("cave")),
        npc_sync::Change::new(a, "status", "state", Value::str("Exploring")),
        npc_sync::Change::new(b, "group_members", "npc-1.is_present", Value::Bool(true)),
    ];
    q.atomic(1.0, &g).unwrap();
    let out = q.poll(30.0).unwrap();
    assert_eq!(out.len(), 1);
    let first = fields(&q, &out[0]);
    // A newer value of one member arrives while the group is in flight.
    q.set_state(30.5, a, "Resting").unwrap();
    q.fail(31.0, out[0].id, None).unwrap();
    let mut t = 31.0;
    let retry = loop {
        let out = q.poll(t).unwrap();
        if !out.is_empty() {
            break out;
        }
        t += 0.05;
        assert!(t < 62.0);
    };
    assert_eq!(retry.len(), 1);
    assert_eq!(fields(&q, &retry[0]), first, "whole, in order");
    assert_eq!(
        values(&q, &retry[0])[1],
        "npc-1/status.state=Resting",
        "the newer value rides in the group"
    );
    let g0 = retry[0].changes[0].group;
    assert!(g0.is_some() && retry[0].changes.iter().all(|c| c.group == g0));
}

#[test]
fn retry_after_pauses_routine_traffic_and_chat_not_critical_changes() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    let b = q.agent("npc-2").unwrap();
    q.poll(0.0).unwrap();
    q.set_location(1.0, a, "cave").unwrap();
    let out = q.poll(30.0).unwrap();
    q.fail(30.0, out[0].id, Some(20.0)).unwrap();
    // A critical change of another agent still goes (urgent requests are paced during
    // the pause); the chat and the routine retry wait for the Retry-After.
    q.set_state(31.0, b, "Combat").unwrap();
    q.chat(31.0, b, "player", "hello").unwrap();
    let out = q.poll(31.0).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, RequestKind::Urgent);
    assert_eq!(all_fields(&q, &out), ["npc-2/status.state"]);
    q.ack(out[0].id, &[]).unwrap();
    assert_quiet(&mut q, 31.0, 49.9, 0.1);
    let out = q.poll(50.0).unwrap();
    let kinds: Vec<RequestKind> = out.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [RequestKind::Inference, RequestKind::Batch]);
    assert_eq!(all_fields(&q, &out), ["npc-1/status.location"]);
}

// ---------------------------------------------------------------------------------------
// chat
// ---------------------------------------------------------------------------------------

#[test]
fn chat_window_closes_0_5s_after_the_last_message() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    q.chat(1.0, a, "p1", "hi").unwrap();
    q.chat(1.3, a, "p2", "hello").unwrap();
    assert_quiet(&mut q, 1.3, 1.75, 0.05);
    let out = q.poll(1.8).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, RequestKind::Inference);
    assert_eq!(out[0].inference_agent, Some(a));
    let texts: Vec<&str> = out[0].messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["hi", "hello"]);
    assert_eq!(out[0].calls, 1);
}

#[test]
fn chat_waits_at_most_1_5s_after_the_first_message() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    for i in 0..4 {
        q.chat(1.0 + 0.4 * i as f64, a, "p", &format!("m{i}"))
            .unwrap();
    }
    assert_quiet(&mut q, 2.2, 2.45, 0.05);
    let out = q.poll(2.5).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].messages.len(), 4);
}

#[test]
fn chat_flushes_at_16_messages() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    for i in 0..20 {
        q.chat(1.0, a, "p", &format!("m{i}")).unwrap();
    }
    let out = q.poll(1.0).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].messages.len(), 16);
    assert_eq!(out[0].messages[0].text, "m0");
    // One inference per agent at a time: the rest waits for this one's outcome.
    assert_quiet(&mut q, 1.0, 3.0, 0.05);
    q.ack(out[0].id, &[]).unwrap();
    let out = q.poll(3.0).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].messages.len(), 4);
    assert_eq!(out[0].messages[0].text, "m16");
}

#[test]
fn chat_is_preceded_by_a_freshness_sync_if_needed() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    q.set_location(0.0, a, "plaza").unwrap();
    q.chat(20.0, a, "p", "hi").unwrap();
    let out = q.poll(20.5).unwrap();
    let kinds: Vec<RequestKind> = out.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [RequestKind::Urgent]);
    assert_eq!(all_fields(&q, &out[..1]), ["npc-1/status.location"]);
    // The inference waits for the sync's acknowledgement.
    assert_quiet(&mut q, 20.5, 20.9, 0.1);
    q.ack(out[0].id, &[]).unwrap();
    let out = q.poll(21.0).unwrap();
    let kinds: Vec<RequestKind> = out.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [RequestKind::Inference]);
}

#[test]
fn failed_inference_keeps_its_messages_in_order() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    q.chat(0.0, a, "p", "one").unwrap();
    let out = q.poll(0.5).unwrap();
    q.chat(0.6, a, "p", "two").unwrap();
    q.fail(0.6, out[0].id, None).unwrap();
    let mut t = 0.6;
    let out = loop {
        let out = q.poll(t).unwrap();
        if !out.is_empty() {
            break out;
        }
        t += 0.05;
        assert!(t < 3.0);
    };
    assert!(t >= 1.6, "backoff honoured");
    let texts: Vec<&str> = out[0].messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["one", "two"]);
    assert_eq!(out[0].attempt, 2);
}

// ---------------------------------------------------------------------------------------
// removal, targets
// ---------------------------------------------------------------------------------------

#[test]
fn agent_removal_is_reported() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    let b = q.agent("npc-2").unwrap();
    q.poll(0.0).unwrap();
    q.set_location(1.0, a, "plaza").unwrap();
    q.set_description(1.0, a, "tall").unwrap();
    q.set_location(1.0, b, "market").unwrap();
    q.chat(1.0, a, "p", "hi").unwrap();
    q.remove_agent(a).unwrap();
    assert_eq!(
        q.drain_events(),
        [Event::AgentRemoved {
            agent: a,
            name: "npc-1".into(),
            pending_fields: 2,
            chat_messages: 1
        }]
    );
    assert!(q.drain_events().is_empty());
    assert_eq!(q.metrics().agents_removed, 1);
    assert_eq!(
        q.set_location(2.0, a, "x"),
        Err(Error::AgentRemoved {
            agent: "npc-1".into()
        })
    );
    assert_eq!(
        q.remove_agent(a),
        Err(Error::AgentRemoved {
            agent: "npc-1".into()
        })
    );
    let out = q.poll(30.0).unwrap();
    assert_eq!(all_fields(&q, &out), ["npc-2/status.location"]);
    // The id can be registered again, as a new agent.
    let a2 = q.agent("npc-1").unwrap();
    assert_ne!(a2, a);
}

#[test]
fn removal_trims_a_pending_group_and_reports_it() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    let b = q.agent("npc-2").unwrap();
    q.poll(0.0).unwrap();
    q.atomic(
        1.0,
        &[
            npc_sync::Change::new(a, "status", "location", Value::str("cave")),
            npc_sync::Change::new(b, "status", "location", Value::str("cave")),
        ],
    )
    .unwrap();
    q.remove_agent(a).unwrap();
    let ev = q.drain_events();
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::GroupTrimmed { agent, .. } if *agent == a)));
    let out = q.poll(30.0).unwrap();
    assert_eq!(all_fields(&q, &out), ["npc-2/status.location"]);
}

#[test]
fn letta_api_counts_one_call_per_agent_block() {
    let mut q = queue_with(|c| c.target = Target::LettaApi);
    let agents: Vec<AgentId> = (0..3)
        .map(|i| q.agent(&format!("npc-{i}")).unwrap())
        .collect();
    q.poll(0.0).unwrap();
    for a in &agents {
        q.set_location(1.0, *a, "plaza").unwrap();
        q.set_description(1.0, *a, "tall").unwrap();
        q.set(
            1.0,
            npc_sync::Change::new(*a, "persona", "mood", Value::str("calm")),
        )
        .unwrap();
    }
    q.chat(29.0, agents[0], "p", "hi").unwrap();
    // npc-0's data is 29 s old at its chat: a freshness sync goes first.
    let out = q.poll(30.0).unwrap();
    for r in &out {
        let mut blocks: Vec<(AgentId, npc_sync::Sym)> =
            r.changes.iter().map(|c| (c.agent, c.block)).collect();
        blocks.sort();
        blocks.dedup();
        if r.kind != RequestKind::Inference {
            assert_eq!(r.calls as usize, blocks.len(), "one call per agent-block");
        }
    }
    let fields_calls: u32 = out
        .iter()
        .filter(|r| r.kind != RequestKind::Inference)
        .map(|r| r.calls)
        .sum();
    assert_eq!(fields_calls, 6, "3 agents x 2 blocks");
    // The inference goes once npc-0's sync is acknowledged.
    ack_all(&mut q, &out);
    let out = q.poll(30.1).unwrap();
    let inf: Vec<&Request> = out
        .iter()
        .filter(|r| r.kind == RequestKind::Inference)
        .collect();
    assert_eq!(inf.len(), 1);
    assert_eq!(inf[0].calls, 1);
    assert_eq!(q.metrics().calls, 7);
    assert_eq!(q.metrics().calls_last_minute, 7);
}

// ---------------------------------------------------------------------------------------
// bad input: an error that names the problem, and the queue unchanged
// ---------------------------------------------------------------------------------------

struct Scenario {
    q: Queue,
    a: AgentId,
    b: AgentId,
    removed: AgentId,
    removed_change: ChangeId,
    in_flight: RequestId,
}

/// A queue with pending, in-flight and acknowledged state, a removed agent, chat waiting.
fn scenario() -> Scenario {
    let mut q = queue();
    let a = q.agent("npc-a").unwrap();
    let b = q.agent("npc-b").unwrap();
    let removed = q.agent("npc-gone").unwrap();
    q.poll(0.0).unwrap();
    q.set_location(0.0, a, "plaza").unwrap();
    q.set_health(0.0, a, 100.0).unwrap();
    let removed_change = q.set_location(0.0, removed, "void").unwrap();
    q.set_state(1.0, b, "Combat").unwrap();
    let out = q.poll(1.0).unwrap();
    assert_eq!(out.len(), 1);
    let in_flight = out[0].id;
    q.set_location(2.0, b, "arena").unwrap();
    q.join_group(2.0, a, "player_1", &[("role", Value::str("tank"))])
        .unwrap();
    q.chat(2.0, a, "player_1", "hi").unwrap();
    q.remove_agent(removed).unwrap();
    q.drain_events();
    Scenario {
        q,
        a,
        b,
        removed,
        removed_change,
        in_flight,
    }
}

/// Everything observable from here on, as text: metrics, events, and what a fixed script
/// of polls, acks, decisions and changes produces.
fn observe(mut s: Scenario) -> String {
    let q = &mut s.q;
    let mut log = format!("{:?}\n{:?}\n", q.metrics(), q.drain_events());
    log += &format!(
        "{:?} {:?}\n",
        q.local_value(s.a, "status", "location"),
        q.acked_value(s.b, "status", "state")
    );
    let mut t = 2.0;
    let mut acked_first = false;
    while t < 100.0 {
        let out = q.poll(t).unwrap();
        for r in &out {
            log += &format!("{t}: {r:?}\n");
            q.ack(r.id, &[]).unwrap();
        }
        if !acked_first && t >= 3.0 {
            q.ack(s.in_flight, &[]).unwrap();
            acked_first = true;
        }
        if ((t * 4.0) as u32).is_multiple_of(20) {
            log += &format!("{:?} {:?}\n", q.decide(s.a, t), q.decide(s.b, t));
        }
        t += 0.25;
    }
    log += &format!("{:?}\n{:?}\n", q.metrics(), q.drain_events());
    log
}

fn assert_refused_unchanged(
    what: &str,
    bad: impl FnOnce(&mut Scenario) -> Result<(), Error>,
    check: impl FnOnce(&Error) -> bool,
) {
    let mut s = scenario();
    let before_metrics = s.q.metrics();
    let e = bad(&mut s).expect_err(what);
    assert!(check(&e), "{what}: unexpected error {e:?}");
    assert!(!e.to_string().is_empty());
    assert_eq!(s.q.metrics(), before_metrics, "{what}: metrics changed");
    assert_eq!(observe(s), observe(scenario()), "{what}: queue changed");
}

#[test]
fn bad_numbers_are_refused() {
    for h in [f64::NAN, -1.0, f64::INFINITY] {
        assert_refused_unchanged(
            "bad health",
            |s| s.q.set_health(3.0, s.a, h).map(|_| ()),
            |e| matches!(e, Error::BadNumber { agent, field, .. } if agent == "npc-a" && field == "status.health"),
        );
    }
    assert_refused_unchanged(
        "NaN value",
        |s| {
            s.q.set(
                3.0,
                npc_sync::Change::new(s.b, "persona", "mood", Value::Number(f64::NAN)),
            )
            .map(|_| ())
        },
        |e| matches!(e, Error::BadNumber { field, .. } if field == "persona.mood"),
    );
    assert_refused_unchanged(
        "NaN in a joined member's field",
        |s| {
            s.q.join_group(3.0, s.b, "player_9", &[("hp", Value::Number(f64::NAN))])
                .map(|_| ())
        },
        |e| matches!(e, Error::BadNumber { field, .. } if field.contains("player_9.hp")),
    );
    assert_refused_unchanged(
        "NaN in an ack's confirmed state",
        |s| {
            s.q.ack(
                s.in_flight,
                &[Confirmed {
                    agent: s.b,
                    block: "status".into(),
                    field: "state".into(),
                    value: Value::Number(f64::NAN),
                    seq: Seq(1),
                }],
            )
        },
        |e| matches!(e, Error::BadNumber { .. }),
    );
}

#[test]
fn bad_times_are_refused() {
    for t in [f64::NAN, -1.0, f64::INFINITY] {
        assert_refused_unchanged(
            "bad time in set",
            |s| s.q.set_location(t, s.a, "x").map(|_| ()),
            |e| matches!(e, Error::BadTime { what: "now", .. }),
        );
        assert_refused_unchanged(
            "bad time in poll",
            |s| s.q.poll(t).map(|_| ()),
            |e| matches!(e, Error::BadTime { .. }),
        );
        assert_refused_unchanged(
            "bad time in decide",
            |s| s.q.decide(s.a, t).map(|_| ()),
            |e| matches!(e, Error::BadTime { .. }),
        );
        assert_refused_unchanged(
            "bad time in fail",
            |s| s.q.fail(t, s.in_flight, None),
            |e| matches!(e, Error::BadTime { .. }),
        );
        assert_refused_unchanged(
            "bad time in chat",
            |s| s.q.chat(t, s.a, "p", "hi"),
            |e| matches!(e, Error::BadTime { .. }),
        );
    }
    for ra in [f64::NAN, -1.0, f64::INFINITY] {
        assert_refused_unchanged(
            "bad retry-after",
            |s| s.q.fail(3.0, s.in_flight, Some(ra)),
            |e| matches!(e, Error::BadRetryAfter { .. }),
        );
    }
}

#[test]
fn time_going_backwards_is_refused() {
    let backwards = |e: &Error| matches!(e, Error::TimeWentBackwards { now, latest } if *now == 1.5 && *latest == 2.0);
    assert_refused_unchanged(
        "set",
        |s| s.q.set_location(1.5, s.a, "x").map(|_| ()),
        backwards,
    );
    assert_refused_unchanged(
        "health",
        |s| s.q.set_health(1.5, s.a, 50.0).map(|_| ()),
        backwards,
    );
    assert_refused_unchanged(
        "state",
        |s| s.q.set_state(1.5, s.a, "Combat").map(|_| ()),
        backwards,
    );
    assert_refused_unchanged("poll", |s| s.q.poll(1.5).map(|_| ()), backwards);
    assert_refused_unchanged("decide", |s| s.q.decide(s.a, 1.5).map(|_| ()), backwards);
    assert_refused_unchanged("fail", |s| s.q.fail(1.5, s.in_flight, None), backwards);
    assert_refused_unchanged("chat", |s| s.q.chat(1.5, s.a, "p", "x"), backwards);
    assert_refused_unchanged(
        "leave",
        |s| s.q.leave_group(1.5, s.a, "player_1").map(|_| ()),
        backwards,
    );
    assert_refused_unchanged(
        "atomic",
        |s| {
            s.q.atomic(
                1.5,
                &[npc_sync::Change::new(s.a, "b", "f", Value::Bool(true))],
            )
            .map(|_| ())
        },
        backwards,
    );
}

#[test]
fn unknown_handles_are_refused() {
    let mut other = queue();
    let mut foreign = other.agent("x").unwrap();
    for i in 0..9 {
        foreign = other.agent(&format!("x{i}")).unwrap();
    }
    let mut foreign_change = None;
    for i in 0..50 {
        foreign_change = Some(other.set_location(0.0, foreign, &format!("l{i}")).unwrap());
    }
    let foreign_change = foreign_change.unwrap();
    let unknown_agent = |e: &Error| matches!(e, Error::UnknownAgent { index: 9 });
    assert_refused_unchanged(
        "set",
        |s| s.q.set_location(3.0, foreign, "x").map(|_| ()),
        unknown_agent,
    );
    assert_refused_unchanged(
        "health",
        |s| s.q.set_health(3.0, foreign, 5.0).map(|_| ()),
        unknown_agent,
    );
    assert_refused_unchanged(
        "decide",
        |s| s.q.decide(foreign, 3.0).map(|_| ()),
        unknown_agent,
    );
    assert_refused_unchanged("chat", |s| s.q.chat(3.0, foreign, "p", "x"), unknown_agent);
    assert_refused_unchanged("remove", |s| s.q.remove_agent(foreign), unknown_agent);
    assert_refused_unchanged(
        "join",
        |s| s.q.join_group(3.0, foreign, "m", &[]).map(|_| ()),
        unknown_agent,
    );
    assert_refused_unchanged(
        "unknown dependency",
        |s| {
            s.q.set(
                3.0,
                npc_sync::Change::new(s.a, "status", "x", Value::Bool(true)).after(foreign_change),
            )
            .map(|_| ())
        },
        |e| matches!(e, Error::UnknownChange { seq } if *seq == foreign_change.seq().0),
    );
    assert_refused_unchanged(
        "dependency on a removed agent's change",
        |s| {
            let c = npc_sync::Change::new(s.a, "status", "x", Value::Bool(true))
                .after(s.removed_change);
            s.q.set(3.0, c).map(|_| ())
        },
        |e| matches!(e, Error::DependencyRemoved { .. }),
    );
    assert_refused_unchanged(
        "removed agent",
        |s| s.q.set_location(3.0, s.removed, "x").map(|_| ()),
        |e| matches!(e, Error::AgentRemoved { agent } if agent == "npc-gone"),
    );
    assert_refused_unchanged(
        "decide on a removed agent",
        |s| s.q.decide(s.removed, 3.0).map(|_| ()),
        |e| matches!(e, Error::AgentRemoved { agent } if agent == "npc-gone"),
    );
    assert_refused_unchanged(
        "ack confirming the field of an agent handle never issued",
        |s| {
            s.q.ack(
                s.in_flight,
                &[Confirmed {
                    agent: AgentId::from_index(999),
                    block: "status".into(),
                    field: "location".into(),
                    value: Value::str("void"),
                    seq: Seq(1),
                }],
            )
        },
        |e| matches!(e, Error::UnknownAgent { index: 999 }),
    );
}

#[test]
fn unknown_request_ids_are_refused() {
    let unknown = |e: &Error| matches!(e, Error::UnknownRequest { request } if request.0 == 999);
    assert_refused_unchanged("ack", |s| s.q.ack(RequestId(999), &[]), unknown);
    assert_refused_unchanged("fail", |s| s.q.fail(3.0, RequestId(999), None), unknown);
    // A request already reported is no longer known.
    let mut s = scenario();
    s.q.ack(s.in_flight, &[]).unwrap();
    assert_eq!(
        s.q.ack(s.in_flight, &[]),
        Err(Error::UnknownRequest {
            request: s.in_flight
        })
    );
    assert_eq!(
        s.q.fail(3.0, s.in_flight, None),
        Err(Error::UnknownRequest {
            request: s.in_flight
        })
    );
}

#[test]
fn bad_atomic_groups_are_refused() {
    assert_refused_unchanged(
        "group naming a removed agent",
        |s| {
            s.q.atomic(
                3.0,
                &[
                    npc_sync::Change::new(s.a, "status", "location", Value::str("cave")),
                    npc_sync::Change::new(s.removed, "status", "location", Value::str("cave")),
                ],
            )
            .map(|_| ())
        },
        |e| matches!(e, Error::BadGroup { reason } if reason.contains("npc-gone") && reason.contains("removed")),
    );
    assert_refused_unchanged(
        "empty group",
        |s| s.q.atomic(3.0, &[]).map(|_| ()),
        |e| matches!(e, Error::BadGroup { .. }),
    );
    assert_refused_unchanged(
        "a field twice",
        |s| {
            s.q.atomic(
                3.0,
                &[
                    npc_sync::Change::new(s.a, "status", "location", Value::str("cave")),
                    npc_sync::Change::new(s.a, "status", "location", Value::str("hill")),
                ],
            )
            .map(|_| ())
        },
        |e| matches!(e, Error::BadGroup { reason } if reason.contains("status.location")),
    );
    assert_refused_unchanged(
        "group over the size cap",
        |s| {
            let big = "y".repeat(16 * 1024);
            let fields: Vec<String> = (0..5).map(|i| format!("f{i}")).collect();
            let changes: Vec<npc_sync::Change> = fields
                .iter()
                .map(|f| npc_sync::Change::new(s.a, "notes", f, Value::str(&big)))
                .collect();
            s.q.atomic(3.0, &changes).map(|_| ())
        },
        |e| matches!(e, Error::BadGroup { reason } if reason.contains("max_request_bytes")),
    );
}

#[test]
fn over_long_and_empty_strings_are_refused() {
    let long_name = "n".repeat(257);
    let long_value = "v".repeat(16 * 1024 + 1);
    let long_chat = "c".repeat(2 * 1024 + 1);
    assert_refused_unchanged(
        "agent id",
        |s| s.q.agent(&long_name).map(|_| ()),
        |e| {
            matches!(
                e,
                Error::BadString {
                    what: "agent id",
                    len: 257,
                    ..
                }
            )
        },
    );
    assert_refused_unchanged(
        "empty agent id",
        |s| s.q.agent("").map(|_| ()),
        |e| {
            matches!(
                e,
                Error::BadString {
                    what: "agent id",
                    len: 0,
                    ..
                }
            )
        },
    );
    assert_refused_unchanged(
        "block label",
        |s| {
            s.q.set(
                3.0,
                npc_sync::Change::new(s.a, &long_name, "f", Value::Bool(true)),
            )
            .map(|_| ())
        },
        |e| {
            matches!(
                e,
                Error::BadString {
                    what: "block label",
                    ..
                }
            )
        },
    );
    assert_refused_unchanged(
        "field name",
        |s| {
            s.q.set(3.0, npc_sync::Change::new(s.a, "b", "", Value::Bool(true)))
                .map(|_| ())
        },
        |e| {
            matches!(
                e,
                Error::BadString {
                    what: "field name",
                    ..
                }
            )
        },
    );
    assert_refused_unchanged(
        "string value",
        |s| s.q.set_location(3.0, s.a, &long_value).map(|_| ()),
        |e| {
            matches!(
                e,
                Error::BadString {
                    what: "string value",
                    ..
                }
            )
        },
    );
    assert_refused_unchanged(
        "chat text",
        |s| s.q.chat(3.0, s.a, "p", &long_chat),
        |e| {
            matches!(
                e,
                Error::BadString {
                    what: "chat text",
                    ..
                }
            )
        },
    );
    assert_refused_unchanged(
        "chat sender",
        |s| s.q.chat(3.0, s.a, &long_name, "x"),
        |e| {
            matches!(
                e,
                Error::BadString {
                    what: "chat sender",
                    ..
                }
            )
        },
    );
    assert_refused_unchanged(
        "group member",
        |s| s.q.leave_group(3.0, s.a, &long_name).map(|_| ()),
        |e| {
            matches!(
                e,
                Error::BadString {
                    what: "group member",
                    ..
                }
            )
        },
    );
    assert_refused_unchanged(
        "joined member's field",
        |s| {
            s.q.join_group(3.0, s.b, "m", &[(long_name.as_str(), Value::Bool(true))])
                .map(|_| ())
        },
        |e| matches!(e, Error::BadString { .. }),
    );
}

#[test]
fn bad_config_is_refused_with_the_setting_named() {
    type Case = (&'static str, Box<dyn Fn(&mut Config)>);
    let cases: Vec<Case> = vec![
        ("debounce_s", Box::new(|c| c.debounce_s = -1.0)),
        ("freshness_s", Box::new(|c| c.freshness_s = f64::NAN)),
        ("freshness_s", Box::new(|c| c.freshness_s = 4.0)),
        ("batch_interval_s", Box::new(|c| c.batch_interval_s = 0.0)),
        ("budget_per_minute", Box::new(|c| c.budget_per_minute = 600)),
        ("routine_share", Box::new(|c| c.routine_share = 1.2)),
        ("routine_share", Box::new(|c| c.routine_share = -0.1)),
        (
            "max_request_bytes",
            Box::new(|c| c.max_request_bytes = 1024),
        ),
        (
            "max_agent_blocks_per_request",
            Box::new(|c| c.max_agent_blocks_per_request = 0),
        ),
        ("chat_max_messages", Box::new(|c| c.chat_max_messages = 0)),
        ("retry_max_s", Box::new(|c| c.retry_max_s = 0.1)),
        (
            "combat_exit_s",
            Box::new(|c| c.combat_exit_s = f64::INFINITY),
        ),
        ("chat_window_s", Box::new(|c| c.chat_window_s = -0.5)),
        (
            "health_critical_points",
            Box::new(|c| c.health_critical_points = f64::NAN),
        ),
    ];
    for (setting, f) in cases {
        let mut c = Config::default();
        f(&mut c);
        match Queue::new(c) {
            Err(Error::Config(e)) => {
                assert_eq!(e.setting, setting);
                assert!(e.to_string().contains(setting));
            }
            Err(e) => panic!("{setting}: {e:?}"),
            Ok(_) => panic!("{setting}: accepted"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// regressions found by the property tests
// ---------------------------------------------------------------------------------------

#[test]
fn a_dependency_cycle_made_by_coalescing_is_broken_and_reported() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    let low =
        |f, v: f64| npc_sync::Change::new(a, "status", f, Value::Number(v)).priority(Priority::Low);
    let l1 = q.set(0.0, low("location", 1.0)).unwrap();
    let p = q.set(0.0, low("place", 2.0).after(l1)).unwrap();
    // The group supersedes location@1 and waits for `place`, which waits for location@1.
    let ids = q.atomic(0.0, &[low("location", 3.0).after(p)]).unwrap();
    let out = q.poll(30.0).unwrap();
    assert_eq!(
        all_fields(&q, &out),
        ["npc-1/status.place", "npc-1/status.location"],
        "nothing may be stuck forever"
    );
    assert_eq!(out[0].changes[1].seq, ids[0].seq());
    assert_eq!(
        q.drain_events(),
        [Event::DependencyReleased {
            dependent: p,
            dependency: l1
        }]
    );
}

#[test]
fn a_change_joining_a_group_its_dependency_waits_for_does_not_block_forever() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    let b = q.agent("npc-2").unwrap();
    q.poll(0.0).unwrap();
    let g = q
        .atomic(
            0.0,
            &[
                npc_sync::Change::new(a, "status", "location", Value::str("cave")),
                npc_sync::Change::new(a, "persona", "y", Value::Number(1.0)),
            ],
        )
        .unwrap();
    let x = q
        .set(
            0.0,
            npc_sync::Change::new(b, "persona", "x", Value::Number(0.0)).after(g[0]),
        )
        .unwrap();
    // persona.y joins the group; the group now waits for x, which waits for the group.
    q.set(
        0.0,
        npc_sync::Change::new(a, "persona", "y", Value::Number(2.0)).after(x),
    )
    .unwrap();
    let mut sent = Vec::new();
    let mut t = 30.0;
    while t < 100.0 {
        let out = q.poll(t).unwrap();
        sent.extend(all_fields(&q, &out));
        ack_all(&mut q, &out);
        t += 1.0;
    }
    sent.sort();
    assert_eq!(
        sent,
        [
            "npc-1/persona.y",
            "npc-1/status.location",
            "npc-2/persona.x"
        ]
    );
    assert!(q.is_idle());
    assert!(q
        .drain_events()
        .iter()
        .any(|e| matches!(e, Event::DependencyReleased { .. })));
}

#[test]
fn merged_groups_keep_the_newer_groups_order() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    let c = |f, v: f64| npc_sync::Change::new(a, "status", f, Value::Number(v));
    q.atomic(0.0, &[c("l", 1.0), c("x", 1.0), c("p", 1.0)])
        .unwrap();
    q.atomic(1.0, &[c("p", 2.0), c("y", 2.0), c("l", 2.0)])
        .unwrap();
    let out = q.poll(30.0).unwrap();
    let f = all_fields(&q, &out);
    let pos = |name: &str| f.iter().position(|x| x.ends_with(name)).unwrap();
    // The new group's order holds whole; the earlier group's only unsuperseded change
    // (x) goes with it.
    assert!(pos(".p") < pos(".y") && pos(".y") < pos(".l"), "{f:?}");
    assert_eq!(f.len(), 4);
}

#[test]
fn a_failed_group_merging_with_a_newer_group_keeps_the_newer_order() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    let c = |f, v: f64| npc_sync::Change::new(a, "status", f, Value::Number(v));
    q.atomic(0.0, &[c("l", 1.0), c("p", 1.0)]).unwrap();
    let out = q.poll(30.0).unwrap();
    assert_eq!(out.len(), 1);
    q.atomic(30.5, &[c("p", 2.0), c("l", 2.0)]).unwrap();
    q.fail(31.0, out[0].id, None).unwrap();
    let mut t = 31.0;
    let retry = loop {
        let out = q.poll(t).unwrap();
        if !out.is_empty() {
            break out;
        }
        t += 0.1;
        assert!(t < 70.0);
    };
    assert_eq!(
        values(&q, &retry[0]),
        ["npc-1/status.p=2", "npc-1/status.l=2"]
    );
}

#[test]
fn letta_groups_larger_than_the_pacing_burst_still_go() {
    let mut q = queue_with(|c| {
        c.target = Target::LettaApi;
        c.budget_per_minute = 30;
        c.budget_burst = 6;
    });
    let agents: Vec<AgentId> = (0..8)
        .map(|i| q.agent(&format!("npc-{i}")).unwrap())
        .collect();
    q.poll(0.0).unwrap();
    let group: Vec<npc_sync::Change> = agents
        .iter()
        .map(|a| npc_sync::Change::new(*a, "mood", "v", Value::Bool(true)))
        .collect();
    q.atomic(0.0, &group).unwrap();
    let out = q.poll(30.0).unwrap();
    assert_eq!(out.len(), 1, "8 agent-blocks with a burst of 6");
    assert_eq!(out[0].calls, 8);
    // A group that routine traffic could never afford is refused up front.
    let many: Vec<AgentId> = (0..30)
        .map(|i| q.agent(&format!("m-{i}")).unwrap())
        .collect();
    let group: Vec<npc_sync::Change> = many
        .iter()
        .map(|a| npc_sync::Change::new(*a, "mood", "v", Value::Bool(true)))
        .collect();
    match q.atomic(31.0, &group) {
        Err(Error::BadGroup { reason }) => assert!(reason.contains("budget_per_minute")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn huge_latencies_are_recorded_without_overflow() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.set_state(0.0, a, "Combat").unwrap();
    let out = q.poll(1e18).unwrap();
    assert_eq!(out.len(), 1);
    q.ack(out[0].id, &[]).unwrap();
    let m = q.metrics();
    assert_eq!(m.critical_latency.count, 1);
    assert_eq!(m.critical_latency.max, 1e18);
    assert!(m.critical_latency.p50 > 0.0);
}

#[test]
fn leaving_combat_does_not_stretch_an_open_1s_debounce_window() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    q.set_state(0.0, a, "Combat").unwrap();
    q.set_state(0.0, a, "Idle").unwrap(); // combat mode until 10 s
    let out = q.poll(0.0).unwrap();
    ack_all(&mut q, &out);
    q.tool_result(9.5, a, "inventory", "x", Value::Number(1.0), true)
        .unwrap();
    let out = q.poll(9.5).unwrap();
    assert_eq!(out.len(), 1, "leading edge");
    ack_all(&mut q, &out);
    q.tool_result(9.8, a, "inventory", "x", Value::Number(2.0), true)
        .unwrap();
    // Combat mode ends at 10 s; the 1 s window opened at 9.5 s still ends at 10.5 s.
    assert_quiet(&mut q, 9.8, 10.45, 0.05);
    assert!(!q.in_combat(a, 10.5));
    let out = q.poll(10.5).unwrap();
    assert_eq!(values(&q, &out[0]), ["npc-1/inventory.x=2"]);
}

#[test]
fn a_decision_sync_takes_the_dependencies_of_its_changes_along() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    let b = q.agent("npc-2").unwrap();
    q.poll(0.0).unwrap();
    let dep = q.set_location(0.0, b, "gate").unwrap();
    q.set(
        0.0,
        npc_sync::Change::new(a, "status", "following", Value::str("npc-2")).after(dep),
    )
    .unwrap();
    assert!(matches!(
        q.decide(a, 16.0).unwrap(),
        Decision::Syncing { .. }
    ));
    let out = q.poll(16.0).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, RequestKind::Urgent);
    assert_eq!(
        all_fields(&q, &out),
        ["npc-2/status.location", "npc-1/status.following"]
    );
}

#[test]
fn inference_waits_while_the_freshness_sync_cannot_go() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    let b = q.agent("npc-2").unwrap();
    q.poll(0.0).unwrap();
    let dep = q.set_state(0.0, b, "Combat").unwrap();
    let first = q.poll(0.0).unwrap();
    assert_eq!(first.len(), 1);
    // a's change depends on b's, which is in flight and stays unacknowledged for a while.
    q.set(
        0.0,
        npc_sync::Change::new(a, "status", "following", Value::str("npc-2")).after(dep),
    )
    .unwrap();
    q.chat(15.5, a, "player", "hello").unwrap();
    // At 16 s the data is 16 s old: a sync is needed but cannot go, so no inference yet.
    let mut t = 15.5;
    while t < 20.0 {
        let out = q.poll(t).unwrap();
        assert!(
            out.iter().all(|r| r.kind != RequestKind::Inference),
            "inference on stale data at {t}: {out:?}"
        );
        t += 0.25;
    }
    q.ack(first[0].id, &[]).unwrap();
    let out = q.poll(20.0).unwrap();
    let kinds: Vec<RequestKind> = out.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [RequestKind::Urgent]);
    assert_eq!(all_fields(&q, &out[..1]), ["npc-1/status.following"]);
    q.ack(out[0].id, &[]).unwrap();
    let out = q.poll(20.1).unwrap();
    let kinds: Vec<RequestKind> = out.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [RequestKind::Inference]);
}

// ---------------------------------------------------------------------------------------
// regressions: dependencies riding an in-flight value, respawned agents, removal reports
// ---------------------------------------------------------------------------------------

#[test]
fn a_dependency_on_a_value_already_in_flight_survives_its_failure() {
    let mut q = queue();
    let a = q.agent("a").unwrap();
    let b = q.agent("b").unwrap();
    // b's location waits for nothing; a's torch depends on it and is already in flight.
    q.set(
        0.0,
        Change::new(a, "status", "torch", Value::Bool(true)).priority(Priority::High),
    )
    .unwrap();
    let sent = q.poll(1.0).unwrap();
    assert_eq!(all_fields(&q, &sent), ["a/status.torch"]);
    let dep = q.set_location(1.0, b, "gate").unwrap();
    // The same value again, now depending on b's location: nothing new to send...
    q.set(
        1.0,
        Change::new(a, "status", "torch", Value::Bool(true))
            .priority(Priority::High)
            .after(dep),
    )
    .unwrap();
    // ...until the first send fails: the retry must wait for b's location.
    q.fail(1.1, sent[0].id, None).unwrap();
    let mut seen = Vec::new();
    let mut t = 1.1;
    while t < 40.0 {
        for r in q.poll(t).unwrap() {
            seen.push(fields(&q, &r));
            q.ack(r.id, &[]).unwrap();
        }
        t += 0.1;
    }
    let flat: Vec<String> = seen.concat();
    let torch = flat
        .iter()
        .position(|f| f == "a/status.torch")
        .expect("torch resent");
    let gate = flat
        .iter()
        .position(|f| f == "b/status.location")
        .expect("location sent");
    assert!(gate < torch, "dependency order broken: {seen:?}");
}

#[test]
fn a_respawned_agent_remembers_what_the_backend_holds() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.join_group(0.0, a, "player_1", &[]).unwrap();
    let sent = q.poll(1.0).unwrap();
    ack_all(&mut q, &sent);
    q.remove_agent(a).unwrap();
    let again = q.agent("npc-1").unwrap();
    assert_ne!(a, again);
    // The backend still lists player_1: leaving must be sent, not skipped as a no-op.
    q.leave_group(2.0, again, "player_1").unwrap();
    let out = q.poll(3.0).unwrap();
    assert_eq!(
        out.iter().flat_map(|r| values(&q, r)).collect::<Vec<_>>(),
        ["npc-1/group_members.player_1.is_present=<cleared>"]
    );
}

#[test]
fn removal_reports_only_dependencies_not_yet_delivered() {
    let mut q = queue();
    let a = q.agent("a").unwrap();
    let b = q.agent("b").unwrap();
    assert!(q.poll(0.0).unwrap().is_empty());
    let delivered = q.set_location(0.0, a, "gate").unwrap();
    let sent = q.poll(30.0).unwrap();
    assert_eq!(all_fields(&q, &sent), ["a/status.location"]);
    ack_all(&mut q, &sent);
    let waiting = q.set_location(31.0, a, "tower").unwrap();
    q.set(
        31.0,
        Change::new(b, "status", "x", Value::Number(1.0)).after(delivered),
    )
    .unwrap();
    q.set(
        31.0,
        Change::new(b, "status", "y", Value::Number(2.0)).after(waiting),
    )
    .unwrap();
    q.drain_events();
    q.remove_agent(a).unwrap();
    let released: Vec<ChangeId> = q
        .drain_events()
        .into_iter()
        .filter_map(|e| match e {
            Event::DependencyReleased { dependency, .. } => Some(dependency),
            _ => None,
        })
        .collect();
    assert_eq!(released, [waiting]);
}
