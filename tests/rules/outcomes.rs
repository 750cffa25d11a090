//! Rules of `docs/semantics.md`: outcomes.

use super::*;

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
        &[confirmed(a, "status", "location", Value::str("stale"), s1)],
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
    let by_backend = Value::str("cave-by-backend");
    q.ack(
        out[0].id,
        &[confirmed(a, "status", "location", by_backend, d.seq())],
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
    let retry = poll_until_output(&mut q, 31.0, 0.05, 62.0);
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
