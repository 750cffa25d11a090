//! Rules of `docs/semantics.md`: critical changes, debounce.

use super::*;

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
    // Leading edge: at once.
    poll_one_acked(&mut q, 0.0, RequestKind::Urgent, &["npc-1/status.alarm=1"]);
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
