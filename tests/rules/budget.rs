//! Rules of `docs/semantics.md`: budget.

use super::*;

#[test]
fn budget_never_exceeded_and_routine_keeps_the_reserve() {
    // Letta's API costs one call per agent-block, which makes the budget bite.
    // The whole routine batch may go in one poll here: the budget is what holds it.
    let mut q = queue_with(|c| {
        c.target = Target::LettaApi;
        c.budget_burst = 400;
        c.batch_requests_per_poll = 100;
    });
    let agents = agents(&mut q, 500);
    q.poll(0.0).unwrap();
    locate_all(&mut q, &agents, 1.0, "plaza");
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
    let agents = agents(&mut q, 100);
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
