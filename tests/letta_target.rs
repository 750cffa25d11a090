//! Letta's API as a target (issue 8 item 2): the core renders every block write, keeps
//! blocks within their limit from the change call on, takes in blocks read from Letta,
//! and the ABI gaps around it (`flush`, change handles by seq).

use npc_sync::block_text::BlockTextError;
use npc_sync::{
    AgentId, Change, Config, Error, Event, Priority, Queue, Request, RequestKind, Seq, Target,
    Value,
};

fn letta(f: impl FnOnce(&mut Config)) -> Queue {
    let mut c = Config {
        target: Target::LettaApi,
        ..Config::default()
    };
    f(&mut c);
    Queue::new(c).unwrap()
}

/// `agent/label=text` of every block write of a request, in order.
fn writes(q: &Queue, r: &Request) -> Vec<String> {
    r.blocks
        .iter()
        .map(|b| format!("{}/{}={}", q.text(b.agent_name), q.text(b.block), b.text))
        .collect()
}

fn one(mut rs: Vec<Request>) -> Request {
    assert_eq!(rs.len(), 1, "{rs:?}");
    rs.remove(0)
}

// ----- item 1: the core renders -----

#[test]
fn a_write_carries_the_blocks_whole_text_acknowledged_fields_overlaid() {
    let mut q = letta(|_| {});
    let a = q.agent("npc-1").unwrap();
    q.set_location(0.0, a, "tavern").unwrap();
    q.set_health(0.0, a, 100.0).unwrap();
    q.tool_result(0.0, a, "inventory", "torch", Value::Bool(true), false)
        .unwrap();
    let r = one(q.flush(0.0).unwrap());
    // Blocks in the order they first appear in the changes (high priority first).
    assert_eq!(
        writes(&q, &r),
        [
            "npc-1/inventory=torch: true",
            "npc-1/status=health: 100\nlocation: \"tavern\""
        ]
    );
    assert_eq!(r.calls, 2);
    q.ack(r.id, &[]).unwrap();
    // Only health changes: the write still holds the acknowledged location.
    q.set_health(1.0, a, 95.5).unwrap();
    let r = one(q.flush(1.0).unwrap());
    assert_eq!(r.changes.len(), 1);
    assert_eq!(
        writes(&q, &r),
        ["npc-1/status=health: 95.5\nlocation: \"tavern\""]
    );
    q.ack(r.id, &[]).unwrap();
    // A cleared field leaves the text.
    q.set(2.0, Change::new(a, "status", "location", Value::Cleared))
        .unwrap();
    let r = one(q.flush(2.0).unwrap());
    assert_eq!(writes(&q, &r), ["npc-1/status=health: 95.5"]);
}

#[test]
fn the_batch_endpoint_gets_no_block_texts() {
    let mut q = Queue::new(Config::default()).unwrap();
    let a = q.agent("npc-1").unwrap();
    q.set_location(0.0, a, "tavern").unwrap();
    let r = one(q.flush(0.0).unwrap());
    assert_eq!(r.changes.len(), 1);
    assert!(r.blocks.is_empty());
}

#[test]
fn a_change_over_the_blocks_limit_is_refused_naming_agent_block_and_limit() {
    let mut q = letta(|c| c.block_limits.push(("status".into(), 30)));
    let a = q.agent("npc-1").unwrap();
    q.set_location(0.0, a, "tavern").unwrap(); // `location: "tavern"`: 18
    let before = q.metrics().changes_in;
    let e = q
        .set_description(0.0, a, "a very long description")
        .unwrap_err();
    assert_eq!(
        e,
        Error::BlockText {
            agent: "npc-1".into(),
            error: BlockTextError::TooLarge {
                block: "status".into(),
                chars: 18 + 1 + 38,
                limit: 30
            }
        }
    );
    assert_eq!(
        e.to_string(),
        "agent 'npc-1': block `status` renders to 57 characters, over its limit of 30"
    );
    assert_eq!(e.kind(), "BlockText");
    // Nothing applied.
    assert_eq!(q.metrics().changes_in, before);
    assert_eq!(q.local_value(a, "status", "description"), None);
    // Other blocks have the default limit (5,000).
    q.set(
        0.0,
        Change::new(a, "persona", "bio", Value::str("a very long description")),
    )
    .unwrap();
    let e = q
        .set(
            0.0,
            Change::new(a, "persona", "bio", Value::str(&"x".repeat(5000))),
        )
        .unwrap_err();
    assert!(e.to_string().contains("over its limit of 5000"), "{e}");
}

#[test]
fn the_limit_counts_the_acknowledged_value_a_write_may_still_carry() {
    let mut q = letta(|c| c.block_limits.push(("s".into(), 40)));
    let a = q.agent("npc-1").unwrap();
    q.set(0.0, Change::new(a, "s", "a", Value::str(&"x".repeat(20))))
        .unwrap(); // `a: "xxx..."`: 25
    let r = one(q.flush(0.0).unwrap());
    q.ack(r.id, &[]).unwrap();
    // `a` shrinks locally, but a write of `b` alone would still carry the long `a`.
    q.set(1.0, Change::new(a, "s", "a", Value::str("")))
        .unwrap();
    let e = q
        .set(1.0, Change::new(a, "s", "b", Value::str(&"y".repeat(12))))
        .unwrap_err();
    assert!(matches!(
        e,
        Error::BlockText {
            error: BlockTextError::TooLarge { chars: 43, .. },
            ..
        }
    ));
    // Once the short `a` is acknowledged, `b` fits.
    let r = one(q.flush(1.0).unwrap());
    q.ack(r.id, &[]).unwrap();
    q.set(2.0, Change::new(a, "s", "b", Value::str(&"y".repeat(12))))
        .unwrap();
}

#[test]
fn an_atomic_group_over_a_limit_is_refused_whole() {
    let mut q = letta(|c| c.block_limits.push(("status".into(), 25)));
    let a = q.agent("npc-1").unwrap();
    let b = q.agent("npc-2").unwrap();
    let e = q
        .atomic(
            0.0,
            &[
                Change::new(b, "status", "location", Value::str("cave")),
                Change::new(a, "status", "location", Value::str("tavern")),
                Change::new(a, "status", "state", Value::str("Fighting")),
            ],
        )
        .unwrap_err();
    assert!(
        matches!(&e, Error::BlockText { agent, .. } if agent == "npc-1"),
        "{e}"
    );
    assert_eq!(q.local_value(b, "status", "location"), None);
    assert!(q.is_idle());
    // A field name the block format cannot hold is refused too.
    let e = q
        .set(0.0, Change::new(a, "status", "a:b", Value::Bool(true)))
        .unwrap_err();
    assert!(e.to_string().contains("field name \"a:b\""), "{e}");
}

#[test]
fn slot_changes_meet_the_limit_too() {
    let mut q = letta(|c| c.block_limits.push(("status".into(), 12)));
    let a = q.agent("npc-1").unwrap();
    let (b, f) = (q.intern("status").unwrap(), q.intern("health").unwrap());
    let s = q.slot(a, b, f).unwrap();
    q.set_slot(0.0, s, Value::Number(1.0), Priority::Normal, &[])
        .unwrap();
    q.set_slot(0.1, s, Value::Number(2.0), Priority::Normal, &[])
        .unwrap();
    // `health: 123.5` is 13 characters.
    let e = q
        .set_slot(0.2, s, Value::Number(123.5), Priority::Normal, &[])
        .unwrap_err();
    assert!(matches!(e, Error::BlockText { .. }));
    assert_eq!(
        q.local_value(a, "status", "health"),
        Some(&Value::Number(2.0))
    );
}

// ----- item 2: blocks read from Letta -----

#[test]
fn a_block_read_from_letta_is_acknowledged_state_and_writes_wait_for_it() {
    let mut q = letta(|_| {});
    let a = q.agent("npc-1").unwrap();
    q.await_block(a, "status").unwrap();
    q.set_location(0.0, a, "tavern").unwrap();
    q.set_health(0.0, a, 80.0).unwrap();
    // The write waits for the read.
    assert!(q.flush(0.0).unwrap().is_empty());
    let bad = q
        .load_block(
            0.5,
            a,
            "status",
            "health: 100\nlocation: \"tavern\"\nmood: \"calm\"",
        )
        .unwrap();
    assert_eq!(bad, 0);
    assert_eq!(
        q.acked_value(a, "status", "mood"),
        Some((&Value::str("calm"), Seq(0)))
    );
    // The location equals what Letta holds: not sent; the health differs: sent, and the
    // write keeps Letta's `mood`.
    let r = one(q.flush(0.5).unwrap());
    assert_eq!(r.changes.len(), 1);
    assert_eq!(q.text(r.changes[0].field), "health");
    assert_eq!(
        writes(&q, &r),
        ["npc-1/status=health: 80\nlocation: \"tavern\"\nmood: \"calm\""]
    );
    // A read while that write is in flight is refused, naming agent and block.
    let e = q.load_block(0.6, a, "status", "").unwrap_err();
    assert_eq!(
        e,
        Error::BlockBusy {
            agent: "npc-1".into(),
            block: "status".into()
        }
    );
}

#[test]
fn a_field_letta_does_not_hold_is_sent_and_one_it_holds_is_not_resent() {
    let mut q = letta(|_| {});
    let a = q.agent("npc-1").unwrap();
    // A restarted server: Letta holds what an earlier run wrote.
    q.await_block(a, "status").unwrap();
    q.load_block(0.0, a, "status", "location: \"plaza\"")
        .unwrap();
    // Setting the value Letta holds sends nothing.
    q.set_location(0.0, a, "plaza").unwrap();
    assert!(q.flush(0.0).unwrap().is_empty());
    assert!(q.is_idle());
    // A 404 is the empty text: everything set is sent.
    q.await_block(a, "group_members").unwrap();
    q.join_group(0.0, a, "p1", &[]).unwrap();
    q.load_block(0.1, a, "group_members", "").unwrap();
    let r = one(q.flush(0.1).unwrap());
    assert_eq!(writes(&q, &r), ["npc-1/group_members=p1.is_present: true"]);
}

#[test]
fn fields_the_read_text_lacks_are_absent_and_unreadable_lines_are_an_event() {
    let mut q = letta(|_| {});
    let a = q.agent("npc-1").unwrap();
    q.set_location(0.0, a, "tavern").unwrap();
    let r = one(q.flush(0.0).unwrap());
    q.ack(r.id, &[]).unwrap();
    assert!(q.is_idle());
    // Someone edited the block by hand: the location line is gone, free text was added.
    let n = q
        .load_block(
            1.0,
            a,
            "status",
            "I am very hungry today.\nhealth: 90\nstate: Idle",
        )
        .unwrap();
    assert_eq!(n, 2);
    let ev = q.drain_events();
    let [Event::BlockUnreadable {
        agent,
        block,
        lines,
    }] = ev.as_slice()
    else {
        panic!("{ev:?}")
    };
    assert_eq!((*agent, block.as_str()), (a, "status"));
    let at: Vec<usize> = lines.iter().map(|l| l.line).collect();
    assert_eq!(at, [1, 3]);
    // The game's location is not what Letta holds any more: it goes again, and the write
    // replaces the whole text (the unreadable lines with it).
    let r = one(q.flush(1.0).unwrap());
    assert_eq!(
        writes(&q, &r),
        ["npc-1/status=health: 90\nlocation: \"tavern\""]
    );
}

#[test]
fn load_block_refuses_bad_input_and_changes_nothing() {
    let mut q = letta(|_| {});
    let a = q.agent("npc-1").unwrap();
    q.set_location(5.0, a, "x").unwrap();
    assert!(matches!(
        q.load_block(1.0, a, "status", "a: 1"),
        Err(Error::TimeWentBackwards { .. })
    ));
    assert!(matches!(
        q.load_block(5.0, a, "", "a: 1"),
        Err(Error::BadString { .. })
    ));
    assert!(matches!(
        q.load_block(5.0, AgentId::from_index(9), "status", "a: 1"),
        Err(Error::UnknownAgent { index: 9 })
    ));
    assert_eq!(q.acked_value(a, "status", "a"), None);
}

// ----- item 3: flush -----

#[test]
fn flush_sends_everything_pending_whatever_its_schedule() {
    let mut q = Queue::new(Config::default()).unwrap();
    let a = q.agent("npc-1").unwrap();
    q.set_location(0.0, a, "tavern").unwrap();
    q.chat(0.0, a, "player_1", "hello").unwrap();
    assert!(
        q.poll(0.1).unwrap().is_empty(),
        "routine and chat not due yet"
    );
    let rs = q.flush(0.1).unwrap();
    let kinds: Vec<RequestKind> = rs.iter().map(|r| r.kind).collect();
    // The location is fresh enough for the agent to answer: no sync ahead of the chat.
    assert_eq!(kinds, [RequestKind::Inference, RequestKind::Batch]);
    // Retries without their backoff, critical changes without their debounce.
    q.ack(rs[0].id, &[]).unwrap();
    q.fail(0.2, rs[1].id, None).unwrap();
    q.set_health(0.2, a, 100.0).unwrap();
    assert!(q.poll(0.2).unwrap().is_empty(), "retry backing off");
    let r = one(q.flush(0.2).unwrap());
    assert_eq!(
        r.changes.len(),
        2,
        "the failed location and the health: {r:?}"
    );
    q.ack(r.id, &[]).unwrap();
    q.set_health(0.3, a, 50.0).unwrap(); // critical: opens the debounce window
    let r = one(q.poll(0.3).unwrap());
    q.ack(r.id, &[]).unwrap();
    q.set_health(0.4, a, 10.0).unwrap(); // critical, inside the window
    assert!(q.poll(0.4).unwrap().is_empty());
    let r = one(q.flush(0.4).unwrap());
    assert_eq!(r.kind, RequestKind::Urgent);
    q.ack(r.id, &[]).unwrap();
    assert!(q.is_idle());
    // The next poll keeps the ordinary schedule.
    q.set_location(0.5, a, "cave").unwrap();
    assert!(q.poll(0.6).unwrap().is_empty());
}

#[test]
fn flush_keeps_the_budget() {
    let mut q = letta(|c| {
        c.budget_per_minute = 4;
        c.budget_burst = 4;
    });
    for i in 0..6 {
        let a = q.agent(&format!("npc-{i}")).unwrap();
        q.set_location(0.0, a, "x").unwrap();
    }
    let rs = q.flush(0.0).unwrap();
    let calls: u32 = rs.iter().map(|r| r.calls).sum();
    assert!(calls <= 4, "{calls}");
    assert!(!q.is_idle());
}

// ----- item 4: change handles by seq -----

#[test]
fn a_change_handle_names_a_change_that_was_made() {
    let mut q = Queue::new(Config::default()).unwrap();
    let a = q.agent("npc-1").unwrap();
    let (b, f) = (q.intern("status").unwrap(), q.intern("location").unwrap());
    let s = q.slot(a, b, f).unwrap();
    assert_eq!(
        q.change_handle(Seq(1), s),
        Err(Error::UnknownChange { seq: 1 })
    );
    let id = q
        .set_slot(0.0, s, Value::str("x"), Priority::Normal, &[])
        .unwrap();
    assert_eq!(q.change_handle(id.seq(), s), Ok(id));
    assert_eq!(
        q.change_handle(Seq(0), s),
        Err(Error::UnknownChange { seq: 0 })
    );
    assert_eq!(
        q.change_handle(Seq(99), s),
        Err(Error::UnknownChange { seq: 99 })
    );
    // Newer than the field's latest change: not one of its changes.
    let other = q.set_health(0.0, a, 50.0).unwrap();
    assert_eq!(
        q.change_handle(other.seq(), s),
        Err(Error::UnknownChange { seq: other.seq().0 })
    );
}

#[test]
fn a_read_field_the_queue_cannot_hold_is_an_unreadable_line_in_line_order() {
    let mut q = letta(|_| {});
    let a = q.agent("npc-1").unwrap();
    let long_name = "n".repeat(300); // names hold at most 256 bytes
    let text = format!("free text\n{long_name}: 1\nok: true\n: 2");
    assert_eq!(q.load_block(0.0, a, "status", &text).unwrap(), 3);
    let ev = q.drain_events();
    let [Event::BlockUnreadable { lines, .. }] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    let at: Vec<usize> = lines.iter().map(|l| l.line).collect();
    assert_eq!(at, [1, 2, 4]);
    assert_eq!(
        q.acked_value(a, "status", "ok"),
        Some((&Value::Bool(true), Seq(0)))
    );
}

#[test]
fn block_reads_are_counted_in_the_budget_and_never_exceed_it() {
    let mut q = letta(|c| {
        c.budget_per_minute = 10;
        c.budget_burst = 10;
        c.routine_share = 0.5;
    });
    let taken = (0..10).filter(|_| q.take_read_call(0.0).unwrap()).count();
    assert_eq!(taken, 5, "the routine share of 10 calls");
    assert_eq!(q.metrics().calls, 5);
    // The routine writes wait for room too; the budget frees as the minute rolls.
    let a = q.agent("npc-1").unwrap();
    q.set_location(0.0, a, "x").unwrap();
    assert!(q.flush(0.0).unwrap().is_empty());
    assert!(q.take_read_call(61.0).unwrap());
    assert!(matches!(q.take_read_call(-1.0), Err(Error::BadTime { .. })));
}

/// Found by the end-to-end runs under faults (e2e, Letta target): a write whose answer was
/// lost may still have landed, so a later write of the same block that does not carry
/// that field must not render the older acknowledged value (or leave the field out) over
/// it: Letta's field would move back.
#[test]
fn a_write_never_moves_a_field_back_behind_a_failed_write_that_may_have_landed() {
    let mut q = letta(|_| {});
    let a = q.agent("npc-1").unwrap();
    q.set_location(0.0, a, "tavern").unwrap();
    let r = one(q.flush(0.0).unwrap());
    q.ack(r.id, &[]).unwrap();
    // The next write of `status` carries location=market; its answer is lost.
    q.set_location(1.0, a, "market").unwrap();
    q.set(1.0, Change::new(a, "status", "mood", Value::str("calm")))
        .unwrap();
    let r = one(q.flush(1.0).unwrap());
    assert_eq!(
        writes(&q, &r),
        ["npc-1/status=location: \"market\"\nmood: \"calm\""]
    );
    q.fail(1.5, r.id, None).unwrap();
    // Whatever goes next for `status` (here a critical health drop, while the failed
    // fields wait out their backoff or ride along), Letta must never be told
    // location=tavern again, nor lose mood.
    q.set_health(2.0, a, 100.0).unwrap();
    q.set_health(2.1, a, 50.0).unwrap();
    let mut t = 2.1;
    let mut seen = 0;
    while t < 120.0 {
        for r in q.poll(t).unwrap() {
            for w in writes(&q, &r) {
                seen += 1;
                assert!(!w.contains("tavern"), "moved back: {w}");
                assert!(w.contains("mood: \"calm\""), "mood left out: {w}");
            }
            q.ack(r.id, &[]).unwrap();
        }
        t += 0.25;
    }
    assert!(seen > 0);
    assert!(q.is_idle());
}
