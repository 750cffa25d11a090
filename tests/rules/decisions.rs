//! Rules of `docs/semantics.md`: decisions.

use super::*;

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
    poll_one_acked(&mut q, 0.0, RequestKind::Urgent, &["npc-1/status.alarm=1"]);
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
