//! Regressions found by the property tests, each the smallest trace that broke a
//! rule of `docs/semantics.md`.

use super::*;

// regressions found by the property tests

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
    let retry = poll_until_output(&mut q, 31.0, 0.1, 70.0);
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

// regressions: dependencies riding an in-flight value, respawned agents, removal reports

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
