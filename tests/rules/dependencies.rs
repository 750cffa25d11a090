//! Rules of `docs/semantics.md`: dependencies.

use super::*;

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
