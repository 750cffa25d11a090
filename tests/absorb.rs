//! Absorption in the core (`Queue::grant_absorb`, `Queue::absorb`): which slots may have
//! their changes kept outside the core, that taking kept changes in equals making them one
//! by one, and that a broken contract is an error that changes nothing.

use npc_sync::{
    AbsorbTarget, Absorbable, Absorbed, Change, Config, Error, GrantChange, KeptValue, Priority,
    Queue, Seq, Slot, Target, Value,
};

/// A queue with one agent whose `status.x` is pending (number 1) after a first poll.
fn setup(cfg: Config) -> (Queue, Slot) {
    let mut q = Queue::new(cfg).unwrap();
    let a = q.agent("npc-1").unwrap();
    let status = q.intern("status").unwrap();
    let x = q.intern("x").unwrap();
    let slot = q.slot(a, status, x).unwrap();
    q.poll(0.0).unwrap();
    q.set_slot(0.5, slot, Value::Number(1.0), Priority::Normal, &[])
        .unwrap();
    (q, slot)
}

/// A record of `count` changes whose seqs run up to `seq` without a gap, at normal priority.
fn rec(slot: Slot, v: f64, seq: u64, count: u32, first: f64, last: f64) -> Absorbed {
    Absorbed {
        slot,
        value: KeptValue::Number(v),
        seq: Seq(seq),
        first_seq: Seq((seq + 1).saturating_sub(u64::from(count)).max(1)),
        priority: Priority::Normal,
        count,
        first_at: first,
        last_at: last,
    }
}

/// A record taken in at `now`, its one change made at `at`, that the slot's grant no longer
/// covers: refused naming the slot, and nothing of the queue changed.
fn assert_refused(q: &mut Queue, slot: Slot, now: f64, at: f64) {
    let before = (q.metrics(), q.next_seq(), q.next_poll());
    let next = q.next_seq().0;
    let e = q
        .absorb(now, next + 1, &[rec(slot, 2.0, next, 1, at, at)])
        .unwrap_err();
    assert!(
        matches!(e, Error::Absorb { slot: Some(s), .. } if s == slot.index()),
        "{e:?}"
    );
    assert_eq!((q.metrics(), q.next_seq(), q.next_poll()), before);
}

#[test]
fn a_pending_normal_number_field_is_granted_with_its_target() {
    let (mut q, slot) = setup(Config::default());
    let g = q.grant_absorb(slot).expect("granted");
    assert_eq!(g.max_priority, Priority::Normal);
    assert_eq!(g.target, AbsorbTarget::Absent);
    // its kept changes join the field's pending unit
    assert!(!g.starts_unit);
    assert_eq!(q.next_seq(), Seq(2));
}

#[test]
fn no_grant_before_the_first_poll_on_combat_fields_high_units_letta_or_a_waiting_agent() {
    // before any poll: no routine batch scheduled
    let mut q = Queue::new(Config::default()).unwrap();
    let a = q.agent("npc-1").unwrap();
    let status = q.intern("status").unwrap();
    let (x, health) = (q.intern("x").unwrap(), q.intern("health").unwrap());
    let sx = q.slot(a, status, x).unwrap();
    q.set_slot(0.0, sx, Value::Number(1.0), Priority::Normal, &[])
        .unwrap();
    assert!(q.grant_absorb(sx).is_none());
    q.poll(0.0).unwrap();
    assert!(q.grant_absorb(sx).is_some());
    // a combat field
    let sh = q.slot(a, status, health).unwrap();
    q.set_slot(0.1, sh, Value::Number(100.0), Priority::Normal, &[])
        .unwrap();
    assert!(q.grant_absorb(sh).is_none());
    // a high-priority unit
    let y = q.intern("y").unwrap();
    let sy = q.slot(a, status, y).unwrap();
    q.set_slot(0.1, sy, Value::Number(1.0), Priority::High, &[])
        .unwrap();
    assert!(q.grant_absorb(sy).is_none());
    // a decision sync requested, then chat waiting
    q.decide(a, 40.0).unwrap();
    assert!(q.grant_absorb(sx).is_none());
    let (mut q, slot) = setup(Config::default());
    let a = q.agent("npc-1").unwrap();
    q.chat(1.0, a, "p", "hi").unwrap();
    assert!(q.grant_absorb(slot).is_none());
    // Letta's API
    let cfg = Config {
        target: Target::LettaApi,
        ..Config::default()
    };
    let (mut q, slot) = setup(cfg);
    assert!(q.grant_absorb(slot).is_none());
}

#[test]
fn a_unit_waiting_out_a_retry_backoff_is_not_granted() {
    let (mut q, slot) = setup(Config {
        batch_interval_s: 1.0,
        ..Config::default()
    });
    let reqs = q.poll(1.0).unwrap();
    assert_eq!(reqs.len(), 1);
    q.fail(1.0, reqs[0].id, None).unwrap();
    assert!(q.grant_absorb(slot).is_none(), "granted during the backoff");
}

#[test]
fn kept_changes_taken_in_equal_the_changes_made_one_by_one() {
    let (mut one_by_one, slot) = setup(Config::default());
    let (mut kept, _) = setup(Config::default());
    kept.grant_absorb(slot).unwrap();
    let mut seq = 0;
    for i in 1..=9 {
        let t = 0.5 + f64::from(i) / 60.0;
        seq = one_by_one
            .set_slot(
                t,
                slot,
                Value::Number(f64::from(i) + 1.0),
                Priority::Normal,
                &[],
            )
            .unwrap()
            .seq()
            .0;
    }
    assert_eq!(seq, 10);
    kept.absorb(0.65, 11, &[rec(slot, 10.0, 10, 9, 0.5 + 1.0 / 60.0, 0.65)])
        .unwrap();
    let a = kept.agent("npc-1").unwrap();
    assert_eq!(
        kept.local_value(a, "status", "x"),
        Some(&Value::Number(10.0))
    );
    assert_eq!(kept.next_seq(), one_by_one.next_seq());
    let (m1, m2) = (one_by_one.metrics(), kept.metrics());
    assert_eq!((m1.changes_in, m1.coalesced), (m2.changes_in, m2.coalesced));
    assert_eq!((m2.changes_in, m2.coalesced), (10, 9));
    // the routine batch sends the same change in both
    let (r1, r2) = (one_by_one.poll(31.0).unwrap(), kept.poll(31.0).unwrap());
    assert_eq!(r1, r2);
    assert_eq!(r2[0].changes[0].seq, Seq(10));
    assert_eq!(r2[0].changes[0].value, Value::Number(10.0));
    // kept changes never move the next poll time
    assert_eq!(one_by_one.next_poll(), kept.next_poll());
}

#[test]
fn kept_bools_taken_in_equal_the_changes_made_one_by_one() {
    let (mut one_by_one, slot) = setup(Config::default());
    let (mut kept, _) = setup(Config::default());
    kept.grant_absorb(slot).unwrap();
    for (i, b) in [true, false, true].into_iter().enumerate() {
        let t = 0.6 + i as f64 / 60.0;
        one_by_one
            .set_slot(t, slot, Value::Bool(b), Priority::Normal, &[])
            .unwrap();
    }
    let r = Absorbed {
        value: KeptValue::Bool(true),
        ..rec(slot, 0.0, 4, 3, 0.6, 0.6 + 2.0 / 60.0)
    };
    kept.absorb(0.7, 5, &[r]).unwrap();
    let a = kept.agent("npc-1").unwrap();
    assert_eq!(kept.local_value(a, "status", "x"), Some(&Value::Bool(true)));
    assert_eq!(one_by_one.metrics(), kept.metrics());
    assert_eq!(one_by_one.next_seq(), kept.next_seq());
    assert_eq!(one_by_one.poll(31.0).unwrap(), kept.poll(31.0).unwrap());
}

/// The time and the counter are checked before the records, with no record as with some;
/// a call with none that fails changes nothing.
#[test]
fn absorb_with_no_records_checks_the_time_and_the_counter() {
    let (mut q, _) = setup(Config::default());
    let before = (q.metrics(), q.next_seq(), q.next_poll());
    for (now, next, why) in [
        (0.4, 7, "backwards"),
        (f64::NAN, 7, "time"),
        (-1.0, 7, "time"),
        (0.6, 1, "behind"),
    ] {
        let e = q.absorb(now, next, &[]).unwrap_err();
        assert!(e.to_string().contains(why), "{why}: {e}");
        assert_eq!((q.metrics(), q.next_seq(), q.next_poll()), before);
    }
    // the counter at the queue's own is no error
    q.absorb(0.6, q.next_seq().0, &[]).unwrap();
    assert_eq!((q.metrics(), q.next_seq(), q.next_poll()), before);
}

#[test]
fn absorb_with_no_records_moves_the_counter_only() {
    let (mut q, _) = setup(Config::default());
    q.absorb(0.5, 7, &[]).unwrap();
    assert_eq!(q.next_seq(), Seq(7));
    let a = q.agent("npc-1").unwrap();
    let id = q
        .set(0.6, Change::new(a, "status", "y", Value::Bool(true)))
        .unwrap();
    assert_eq!(id.seq(), Seq(7));
}

#[test]
fn a_broken_contract_is_an_error_naming_the_slot_and_changes_nothing() {
    let (mut q, slot) = setup(Config::default());
    q.grant_absorb(slot).unwrap();
    let before = (q.metrics(), q.next_seq());
    let cases: Vec<(u64, Vec<Absorbed>, &str)> = vec![
        (
            5,
            vec![
                rec(slot, 2.0, 3, 1, 0.6, 0.6),
                rec(slot, 3.0, 4, 1, 0.6, 0.6),
            ],
            "twice",
        ),
        (5, vec![rec(slot, 2.0, 1, 1, 0.6, 0.6)], "seq"),
        (3, vec![rec(slot, 2.0, 3, 1, 0.6, 0.6)], "seq"),
        (1, vec![], "behind"),
        (5, vec![rec(slot, 2.0, 3, 1, 0.4, 0.6)], "grant"),
        (5, vec![rec(slot, 2.0, 3, 1, 0.6, 0.55)], "backwards"),
        (5, vec![rec(slot, 2.0, 3, 1, 0.6, 0.9)], "backwards"),
        (5, vec![rec(slot, 2.0, 3, 0, 0.6, 0.6)], "no change"),
        (5, vec![rec(slot, f64::NAN, 3, 1, 0.6, 0.6)], "finite"),
        (
            5,
            vec![rec(Slot::from_index(99), 2.0, 3, 1, 0.6, 0.6)],
            "never issued",
        ),
        (
            5,
            vec![Absorbed {
                priority: Priority::High,
                ..rec(slot, 2.0, 3, 1, 0.6, 0.6)
            }],
            "priority",
        ),
        (
            5,
            vec![Absorbed {
                first_seq: Seq(2),
                ..rec(slot, 2.0, 3, 1, 0.6, 0.6)
            }],
            "first seq",
        ),
        (
            5,
            vec![Absorbed {
                first_seq: Seq(4),
                ..rec(slot, 2.0, 4, 3, 0.6, 0.6)
            }],
            "first seq",
        ),
    ];
    for (next, recs, why) in cases {
        let e = q.absorb(0.8, next, &recs).unwrap_err();
        assert!(matches!(e, Error::Absorb { .. }), "{why}: {e:?}");
        assert!(e.to_string().contains(why), "{why}: {e}");
        assert_eq!((q.metrics(), q.next_seq()), before, "{why}: state changed");
    }
    // a value equal to what the backend will have: the ack of 1 makes 1 the target
    let reqs = q.flush(1.0).unwrap();
    q.ack(reqs[0].id, &[]).unwrap();
    q.set_slot(1.1, slot, Value::Number(2.0), Priority::Normal, &[])
        .unwrap();
    let g = q.grant_absorb(slot).unwrap();
    assert_eq!(g.target, AbsorbTarget::Number(1.0));
    let next = q.next_seq().0;
    let e = q
        .absorb(1.2, next + 1, &[rec(slot, 1.0, next, 1, 1.2, 1.2)])
        .unwrap_err();
    assert!(e.to_string().contains("equals"), "{e}");
    // a slot whose agent was removed is not absorbable any more
    let a = q.agent("npc-1").unwrap();
    q.remove_agent(a).unwrap();
    let e = q
        .absorb(1.2, next + 1, &[rec(slot, 3.0, next, 1, 1.2, 1.2)])
        .unwrap_err();
    assert!(matches!(e, Error::Absorb { slot: Some(_), .. }), "{e:?}");
}

/// The batch with `status.x` = 1 sent at 31 s (interval 30 s): the field has no pending
/// unit, its value is in flight. Returns the queue, the slot and the request's id.
fn sent() -> (Queue, Slot, npc_sync::RequestId) {
    let (mut q, slot) = setup(Config::default());
    let reqs = q.poll(31.0).unwrap();
    assert_eq!(reqs.len(), 1);
    (q, slot, reqs[0].id)
}

/// Makes `changes` (time, value, priority) one by one on `one` and keeps them on `kept`
/// (granted first), then takes them in at `now`; returns the seq of the last change.
fn keep_and_make(
    one: &mut Queue,
    kept: &mut Queue,
    slot: Slot,
    changes: &[(f64, f64, Priority)],
    now: f64,
) -> u64 {
    let g = kept.grant_absorb(slot).expect("granted");
    let first_seq = kept.next_seq();
    let mut seq = 0;
    for (t, v, p) in changes {
        assert!(*p <= g.max_priority);
        seq = one
            .set_slot(*t, slot, Value::Number(*v), *p, &[])
            .unwrap()
            .seq()
            .0;
    }
    let last = changes.last().unwrap();
    let r = Absorbed {
        slot,
        value: KeptValue::Number(last.1),
        seq: Seq(seq),
        first_seq,
        priority: changes.iter().map(|c| c.2).max().unwrap(),
        count: changes.len() as u32,
        first_at: changes[0].0,
        last_at: last.0,
    };
    kept.absorb(now, seq + 1, &[r]).unwrap();
    seq
}

/// Both queues alike from here on: seqs, counters, the next poll time, a decision's
/// staleness, and the requests of the polls up to two routine batches later (each acked).
fn assert_alike(one: &mut Queue, kept: &mut Queue, from: f64) {
    assert_eq!(one.next_seq(), kept.next_seq());
    assert_eq!(one.next_poll(), kept.next_poll());
    assert_eq!(one.metrics(), kept.metrics());
    let a = one.agent("npc-1").unwrap();
    assert_eq!(
        one.local_value(a, "status", "x"),
        kept.local_value(a, "status", "x")
    );
    assert_eq!(one.decide(a, from).unwrap(), kept.decide(a, from).unwrap());
    let mut sent = 0;
    for step in 0..130 {
        let t = from + f64::from(step) * 0.5;
        let (r1, r2) = (one.poll(t).unwrap(), kept.poll(t).unwrap());
        assert_eq!(r1, r2, "at {t}");
        for r in &r1 {
            sent += r.changes.len();
            one.ack(r.id, &[]).unwrap();
            kept.ack(r.id, &[]).unwrap();
        }
    }
    assert!(sent > 0, "nothing was sent to compare");
    assert_eq!(one.metrics(), kept.metrics());
}

#[test]
fn a_field_in_flight_is_granted_and_its_kept_changes_start_the_unit_the_first_would_have() {
    let (mut q, slot, _) = sent();
    let g = q.grant_absorb(slot).expect("granted with no pending unit");
    assert_eq!(
        g,
        Absorbable {
            max_priority: Priority::Normal,
            target: AbsorbTarget::Number(1.0),
            starts_unit: true,
        }
    );
    let (mut one, _, _) = sent();
    let (mut kept, _, _) = sent();
    let changes = [
        (31.1, 2.0, Priority::Normal),
        (31.2, 3.0, Priority::Normal),
        (31.3, 4.0, Priority::Low),
    ];
    keep_and_make(&mut one, &mut kept, slot, &changes, 31.3);
    let m = kept.metrics();
    // 1 before the send, 3 kept; the first kept change started the unit, two coalesced
    assert_eq!((m.changes_in, m.coalesced, m.queue_depth), (4, 2, 1));
    assert_eq!(one.metrics(), m);
    // the unit taken in is granted on as a pending one: later kept changes join it
    let g = kept.grant_absorb(slot).unwrap();
    assert_eq!(g, one.grant_absorb(slot).unwrap());
    assert!(!g.starts_unit);
    assert_alike(&mut one, &mut kept, 31.4);
}

#[test]
fn an_acknowledged_field_with_low_then_normal_changes_is_taken_in_as_made() {
    let run = || {
        let (mut q, slot, id) = sent();
        q.ack(id, &[]).unwrap();
        (q, slot)
    };
    let (mut one, slot) = run();
    let (mut kept, _) = run();
    assert_eq!(
        kept.grant_absorb(slot).unwrap().target,
        AbsorbTarget::Number(1.0)
    );
    let changes = [
        (32.0, 5.0, Priority::Low),
        (33.0, 6.0, Priority::Normal),
        (34.0, 7.0, Priority::Low),
    ];
    keep_and_make(&mut one, &mut kept, slot, &changes, 35.0);
    assert_alike(&mut one, &mut kept, 35.0);
}

#[test]
fn a_kept_change_of_a_field_in_flight_that_equals_its_target_or_breaks_the_grant_changes_nothing() {
    let (mut q, slot, _) = sent();
    q.grant_absorb(slot).unwrap();
    let before = (q.metrics(), q.next_seq());
    let next = q.next_seq().0;
    let cases: Vec<(Absorbed, &str)> = vec![
        (rec(slot, 1.0, next, 1, 31.1, 31.1), "equals"),
        (
            Absorbed {
                priority: Priority::High,
                ..rec(slot, 2.0, next, 1, 31.1, 31.1)
            },
            "priority",
        ),
        (
            Absorbed {
                first_seq: Seq(next),
                ..rec(slot, 2.0, next + 1, 1, 31.1, 31.1)
            },
            "first seq",
        ),
        (rec(slot, 2.0, next, 1, 30.0, 31.1), "grant"),
    ];
    for (r, why) in cases {
        let e = q.absorb(31.2, next + 2, &[r]).unwrap_err();
        assert!(e.to_string().contains(why), "{why}: {e}");
        assert_eq!((q.metrics(), q.next_seq()), before, "{why}: state changed");
    }
    // a decision sync requested for the agent ends the grant: a kept change is refused
    let a = q.agent("npc-1").unwrap();
    q.decide(a, 80.0).unwrap();
    assert!(q.grant_absorb(slot).is_none());
    let e = q
        .absorb(80.0, next + 2, &[rec(slot, 2.0, next, 1, 79.0, 79.0)])
        .unwrap_err();
    assert!(e.to_string().contains("decision sync"), "{e}");
}

#[test]
fn a_watched_call_lists_exactly_the_slots_whose_grant_it_may_change() {
    let (mut q, slot) = setup(Config::default());
    let a = q.agent("npc-1").unwrap();
    let b = q.agent("npc-2").unwrap();
    let status = q.intern("status").unwrap();
    let (x, y) = (q.intern("x").unwrap(), q.intern("y").unwrap());
    let other = q.slot(b, status, x).unwrap();
    let idle = q.slot(a, status, y).unwrap();
    q.set_slot(0.6, other, Value::Number(7.0), Priority::Normal, &[])
        .unwrap();
    // nothing due: nothing changes
    let (reqs, changed) = q.watch_grants(|q| q.poll(1.0));
    assert!(reqs.unwrap().is_empty());
    assert!(changed.is_empty(), "{changed:?}");
    // the routine batch: both fields sent, each granted with its value in flight
    let (reqs, changed) = q.watch_grants(|q| q.poll(31.0));
    let reqs = reqs.unwrap();
    let grant = |x: f64| {
        Some(Absorbable {
            max_priority: Priority::Normal,
            target: AbsorbTarget::Number(x),
            starts_unit: true,
        })
    };
    assert_eq!(
        changed,
        vec![
            GrantChange {
                slot,
                grant: grant(1.0)
            },
            GrantChange {
                slot: other,
                grant: grant(7.0)
            },
        ]
    );
    // a failing call lists nothing
    let (r, changed) = q.watch_grants(|q| q.ack(npc_sync::RequestId(99), &[]));
    assert!(r.is_err() && changed.is_empty());
    // a decision sync of npc-1 goes urgent; when it fails, the sync is requested again:
    // every slot of npc-1 is listed without a grant, npc-2's is not listed
    q.set_slot(31.5, slot, Value::Number(2.0), Priority::Normal, &[])
        .unwrap();
    q.ack(reqs[0].id, &[]).unwrap();
    q.decide(a, 80.0).unwrap();
    let urgent = q.poll(80.0).unwrap();
    assert_eq!(urgent.len(), 1);
    let (r, changed) = q.watch_grants(|q| q.fail(80.0, urgent[0].id, None));
    r.unwrap();
    let mut listed: Vec<(Slot, bool)> = changed
        .iter()
        .map(|c| (c.slot, c.grant.is_some()))
        .collect();
    listed.sort();
    assert_eq!(listed, vec![(slot, false), (idle, false)]);
}

// The unit's part of the check comes from the slot's last grant while none of the agent's
// units changed (`Units::rev`): a unit raised, merged, sent or back from a failed send
// after the grant, with no new grant, must be checked again.

#[test]
fn a_unit_raised_after_the_grant_is_checked_again() {
    // The grant saw a normal unit; a change by name (not through the slot) raises it to
    // high priority: a kept change may not be taken in any more.
    let (mut q, slot) = setup(Config::default());
    q.grant_absorb(slot).unwrap();
    let a = q.agent("npc-1").unwrap();
    q.set(
        0.55,
        Change::new(a, "status", "x", Value::Number(5.0)).priority(Priority::High),
    )
    .unwrap();
    let before = (q.metrics(), q.next_seq(), q.next_poll());
    let next = q.next_seq().0;
    let e = q
        .absorb(0.8, next + 1, &[rec(slot, 2.0, next, 1, 0.6, 0.6)])
        .unwrap_err();
    assert!(
        matches!(e, Error::Absorb { slot: Some(s), reason } if s == slot.index() && reason.contains("high or critical")),
        "{e:?}"
    );
    assert_eq!((q.metrics(), q.next_seq(), q.next_poll()), before);
    // a fresh grant is refused too
    assert!(q.grant_absorb(slot).is_none());
}

#[test]
fn a_unit_merged_into_an_atomic_group_after_the_grant_is_checked_again() {
    let (mut q, slot) = setup(Config::default());
    q.grant_absorb(slot).unwrap();
    let a = q.agent("npc-1").unwrap();
    q.atomic(
        0.55,
        &[
            Change::new(a, "status", "x", Value::Number(5.0)),
            Change::new(a, "status", "y", Value::Number(6.0)),
        ],
    )
    .unwrap();
    assert_refused(&mut q, slot, 0.8, 0.6);
    assert!(q.grant_absorb(slot).is_none());
}

#[test]
fn a_unit_back_from_a_failed_send_is_checked_again() {
    // Granted, then the unit is sent and fails: it is back (same field, a retry backoff,
    // another unit). A record kept across that (the facade broke the contract) is refused.
    let (mut q, slot) = setup(Config {
        batch_interval_s: 1.0,
        ..Config::default()
    });
    q.grant_absorb(slot).unwrap();
    let reqs = q.poll(1.0).unwrap();
    assert_eq!(reqs.len(), 1);
    q.fail(1.0, reqs[0].id, None).unwrap();
    assert_refused(&mut q, slot, 1.1, 1.05);
}

#[test]
fn a_unit_sent_after_the_grant_and_a_new_one_started_is_taken_in_as_made() {
    // The grant saw the unit sent by the routine batch; a change through the slot started
    // another one (the grant's unit is gone): the record is checked against the new unit
    // and taken in exactly as its changes made one by one.
    let run = |keep: bool| {
        let (mut q, slot) = setup(Config::default());
        if keep {
            q.grant_absorb(slot).unwrap();
        }
        let reqs = q.poll(31.0).unwrap();
        assert_eq!(reqs.len(), 1);
        q.set_slot(31.1, slot, Value::Number(3.0), Priority::Normal, &[])
            .unwrap();
        (q, slot)
    };
    let (mut one, slot) = run(false);
    let (mut kept, _) = run(true);
    let changes = [(31.2, 4.0, Priority::Normal), (31.3, 5.0, Priority::Low)];
    let mut seq = 0;
    for (t, v, p) in changes {
        seq = one
            .set_slot(t, slot, Value::Number(v), p, &[])
            .unwrap()
            .seq()
            .0;
    }
    let r = Absorbed {
        priority: Priority::Normal,
        ..rec(slot, 5.0, seq, 2, 31.2, 31.3)
    };
    kept.absorb(31.3, seq + 1, &[r]).unwrap();
    assert_alike(&mut one, &mut kept, 31.4);
}

#[test]
fn a_repeated_slot_is_named_by_the_smallest_repeat() {
    let mut q = Queue::new(Config::default()).unwrap();
    let status = q.intern("status").unwrap();
    let x = q.intern("x").unwrap();
    q.poll(0.0).unwrap();
    let mut slots = Vec::new();
    for i in 0..40 {
        let a = q.agent(&format!("npc-{i}")).unwrap();
        let s = q.slot(a, status, x).unwrap();
        q.set_slot(0.5, s, Value::Number(1.0), Priority::Normal, &[])
            .unwrap();
        q.grant_absorb(s).unwrap();
        slots.push(s);
    }
    let next = q.next_seq().0;
    let r = |s: Slot, k: u64| rec(s, 2.0, next + k, 1, 0.6, 0.6);
    // slots 35 and 3 both twice (35 first in the records), slot 33 once: 3 is named
    let recs = [
        r(slots[35], 0),
        r(slots[33], 1),
        r(slots[35], 2),
        r(slots[3], 3),
        r(slots[3], 4),
    ];
    let e = q.absorb(0.8, next + 5, &recs).unwrap_err();
    assert!(
        matches!(e, Error::Absorb { slot: Some(s), reason } if s == slots[3].index() && reason.contains("twice")),
        "{e:?}"
    );
    // a slot never issued, twice, is a repeat too; once, it was never issued
    let unknown = Slot::from_index(1000);
    let e = q
        .absorb(
            0.8,
            next + 3,
            &[r(unknown, 0), r(slots[1], 1), r(unknown, 2)],
        )
        .unwrap_err();
    assert!(
        matches!(e, Error::Absorb { slot: Some(1000), reason } if reason.contains("twice")),
        "{e:?}"
    );
    let e = q
        .absorb(0.8, next + 2, &[r(slots[1], 0), r(unknown, 1)])
        .unwrap_err();
    assert!(
        matches!(e, Error::Absorb { slot: Some(1000), reason } if reason.contains("never issued")),
        "{e:?}"
    );
    // all distinct: taken in
    q.absorb(0.8, next + 2, &[r(slots[1], 0), r(slots[2], 1)])
        .unwrap();
    assert_eq!(q.metrics().changes_in, 42);
}
