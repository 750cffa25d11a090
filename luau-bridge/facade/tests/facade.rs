//! The facade's calls and records (luau-bridge/ABI.md), natively: codes, messages, record
//! layouts, staging (dependencies, atomic groups, joins, confirmed fields).

use npc_sync_luau::{
    Facade, CHANGE_RECORD, CONFIRM_RECORD, EVENT_RECORD, GRANT_RECORD, MESSAGE_RECORD,
    REQUEST_RECORD, SCRATCH_CAP,
};

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn f64_at(b: &[u8], at: usize) -> f64 {
    f64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn error(f: &Facade) -> String {
    String::from_utf8(f.error().to_vec()).unwrap()
}

fn put(f: &mut Facade, s: &str) -> i32 {
    f.scratch()[..s.len()].copy_from_slice(s.as_bytes());
    s.len() as i32
}

fn intern(f: &mut Facade, s: &str) -> i32 {
    let n = put(f, s);
    let sym = f.intern(n);
    assert!(sym >= 0, "intern {s}: {}", error(f));
    sym
}

fn sym_text(f: &mut Facade, sym: u32) -> String {
    let n = f.sym_text(sym as i32);
    assert!(n >= 0);
    String::from_utf8(f.scratch()[..n as usize].to_vec()).unwrap()
}

fn ready() -> Facade {
    let mut f = Facade::new();
    assert_eq!(f.init(), 0);
    f
}

fn agent(f: &mut Facade, id: &str) -> i32 {
    let s = intern(f, id);
    f.agent_handle(s)
}

fn slot(f: &mut Facade, a: i32, block: &str, field: &str) -> i32 {
    let (b, x) = (intern(f, block), intern(f, field));
    let s = f.slot(a, b, x);
    assert!(s >= 0, "{}", error(f));
    s
}

/// One confirmed-field record (ABI.md "Per frame"): agent, block sym, field sym, value kind,
/// text length, x (number, bool, sym, or a text's offset in the scratch), seq.
struct Confirm(i32, i32, i32, u32, u32, f64, f64);

/// Writes confirmed-field record `i` into the scratch area.
fn write_confirm(f: &mut Facade, i: usize, c: Confirm) {
    let r = &mut f.scratch()[i * CONFIRM_RECORD..(i + 1) * CONFIRM_RECORD];
    r[0..4].copy_from_slice(&c.0.to_le_bytes());
    r[4..8].copy_from_slice(&c.1.to_le_bytes());
    r[8..12].copy_from_slice(&c.2.to_le_bytes());
    r[12..16].copy_from_slice(&c.3.to_le_bytes());
    r[16..20].copy_from_slice(&c.4.to_le_bytes());
    r[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
    r[24..32].copy_from_slice(&c.5.to_le_bytes());
    r[32..40].copy_from_slice(&c.6.to_le_bytes());
}

/// The outcome the last `confirm_records` wrote into record `i`.
fn confirm_status(f: &mut Facade, i: usize) -> u32 {
    u32_at(f.scratch(), i * CONFIRM_RECORD + 20)
}

/// One decoded change record: seq, group, agent, block, field, value as text.
fn changes(f: &mut Facade) -> Vec<(f64, f64, u32, String, String, String)> {
    let (_, c, _) = f.poll_records();
    let c = c.to_vec();
    let (base, text) = f.poll_text();
    let text = text.to_vec();
    let mut out = vec![];
    for r in c.chunks(CHANGE_RECORD) {
        let value = match u32_at(r, 32) {
            0 => "null".to_string(),
            1 => format!("{}", f64_at(r, 40)),
            2 => format!("{}", f64_at(r, 40) != 0.0),
            3 => {
                let at = f64_at(r, 40) as u32 - base;
                let len = u32_at(r, 36);
                String::from_utf8(text[at as usize..(at + len) as usize].to_vec()).unwrap()
            }
            k => panic!("value kind {k}"),
        };
        out.push((
            f64_at(r, 0),
            f64_at(r, 8),
            u32_at(r, 16),
            sym_text(f, u32_at(r, 24)),
            sym_text(f, u32_at(r, 28)),
            value,
        ));
    }
    out
}

#[test]
fn setup_is_validated() {
    let mut f = Facade::new();
    assert_eq!(f.intern(0), -15, "nothing works before init");
    assert!(error(&f).contains("nsq_init"));
    assert_eq!(f.config(99, 1.0), -14);
    assert!(error(&f).contains("unknown setting key"), "{}", error(&f));
    assert_eq!(f.config(9, 1.5), -14);
    assert_eq!(
        error(&f),
        "invalid setting `budget_per_minute`: must be a whole number in range"
    );
    assert_eq!(f.config(21, 2.0), -14);
    assert!(error(&f).contains("target"));
    assert_eq!(f.config(2, 2.0), 0); // freshness_s below the debounce: invalid as a whole
    assert_eq!(f.init(), -1);
    assert!(
        error(&f).starts_with("invalid setting `freshness_s`"),
        "{}",
        error(&f)
    );
    assert_eq!(f.config(2, 15.0), 0);
    assert_eq!(f.init(), 0);
    assert_eq!(f.init(), -15, "init twice");
    assert_eq!(f.config(2, 15.0), -15, "settings are fixed after init");
}

#[test]
fn changes_come_out_as_records() {
    let mut f = ready();
    let a = agent(&mut f, "npc-1");
    let again = agent(&mut f, "npc-1");
    assert_eq!(a, again, "one agent per id");
    let x = slot(&mut f, a, "status", "x");
    let loc = slot(&mut f, a, "status", "location");
    let desc = slot(&mut f, a, "status", "description");
    let torch = slot(&mut f, a, "status", "torch");
    assert_eq!(slot(&mut f, a, "status", "x"), x, "one slot per field");
    let gate = intern(&mut f, "gate");
    let s1 = f.set(1.0, x, 1, 0, 62.5, 1);
    assert_eq!(s1, 1.0);
    assert_eq!(f.set(1.0, loc, 4, 0, gate as f64, 1), 2.0);
    let n = put(&mut f, "a long walk");
    assert_eq!(f.set(1.0, desc, 3, n, 0.0, 1), 3.0);
    assert_eq!(f.set(1.0, torch, 2, 0, 1.0, 3), 4.0);
    // Critical: the torch goes out at the next poll, with the agent's other fields.
    let n = f.poll(1.0);
    assert_eq!(n, 1);
    let (reqs, _, _) = f.poll_records();
    assert_eq!(reqs.len(), REQUEST_RECORD);
    assert_eq!(f64_at(reqs, 0), 1.0, "request id");
    assert_eq!(u32_at(reqs, 8), 1, "urgent");
    assert_eq!((u32_at(reqs, 12), u32_at(reqs, 16)), (0, 4));
    assert_eq!(i32_at(reqs, 28), -1, "not inference");
    assert_eq!(u32_at(reqs, 32), 1, "one call");
    assert!(u32_at(reqs, 36) > 0, "body bytes");
    assert_eq!(u32_at(reqs, 40), 1, "first attempt");
    let header = f.header().to_vec();
    assert_eq!(u32_at(&header, 0), 1);
    assert_eq!(u32_at(&header, 8), 4);
    let got = changes(&mut f);
    let fields: Vec<(&str, &str)> = got.iter().map(|c| (c.4.as_str(), c.5.as_str())).collect();
    assert_eq!(
        fields,
        [
            ("torch", "true"),
            ("x", "62.5"),
            ("location", "gate"),
            ("description", "a long walk")
        ]
    );
    assert!(got
        .iter()
        .all(|c| c.2 == a as u32 && c.3 == "status" && c.1 == 0.0));
    assert_eq!(f.ack(1.0), 0);
    assert_eq!(f.ack(1.0), -10, "acked twice");
    assert_eq!(
        error(&f),
        "request #1 is not in flight (never emitted, or already reported)"
    );
}

#[test]
fn bad_calls_have_codes_and_messages() {
    let mut f = ready();
    let a = agent(&mut f, "npc-1");
    let x = slot(&mut f, a, "status", "x");
    assert_eq!(f.set(1.0, 77, 1, 0, 1.0, 1), -13.0);
    assert_eq!(error(&f), "slot handle #77 was not issued by this queue");
    assert_eq!(f.set(1.0, x, 1, 0, f64::NAN, 1), -4.0);
    assert_eq!(
        error(&f),
        "agent 'npc-1', field `status.x`: number must be finite, got NaN"
    );
    assert_eq!(f.set(1.0, x, 9, 0, 1.0, 1), -14.0);
    assert!(error(&f).starts_with("value kind must be"));
    assert_eq!(f.set(1.0, x, 1, 0, 1.0, 7), -14.0);
    assert!(error(&f).starts_with("priority must be"));
    assert_eq!(f.set(2.0, x, 1, 0, 1.0, 1), 1.0);
    assert_eq!(f.set(1.0, x, 1, 0, 2.0, 1), -3.0);
    assert_eq!(
        error(&f),
        "`now` went backwards: 1 is before 2, a time already seen"
    );
    assert_eq!(
        f.set(2.0, x, 3, 1 << 20, 0.0, 1),
        -14.0,
        "text beyond the scratch"
    );
    f.scratch()[0] = 0xff;
    assert_eq!(f.set(2.0, x, 3, 1, 0.0, 1), -14.0);
    assert!(error(&f).contains("UTF-8"));
    assert_eq!(f.set_health(2.0, a, -5.0), -4.0);
    assert_eq!(
        f.agent_handle(12345),
        -13,
        "an agent id must be an issued sym"
    );
    assert_eq!(f.decide(2.0, 40), -6);
    assert_eq!(error(&f), "agent handle #40 was not issued by this queue");
    assert_eq!(f.fail_request(2.0, 5.0, 1, f64::INFINITY), -12);
    // Nothing of the failed calls was applied: one change so far.
    assert_eq!(f.metrics(), 0);
    let m = f.metrics_record().to_vec();
    assert_eq!(f64_at(&m, 5 * 8), 1.0, "changes_in");
}

#[test]
fn atomic_groups_and_dependencies() {
    let mut f = ready();
    let a = agent(&mut f, "npc-1");
    let loc = slot(&mut f, a, "status", "location");
    let state = slot(&mut f, a, "status", "state");
    let tool = slot(&mut f, a, "tools", "result");
    let (cave, walking) = (intern(&mut f, "cave"), intern(&mut f, "Walking"));
    assert_eq!(f.atomic_begin(), 0);
    assert_eq!(f.atomic_begin(), -16, "one group at a time");
    assert_eq!(f.set(1.0, loc, 4, 0, cave as f64, 1), 0.0, "staged");
    assert_eq!(f.set(1.0, state, 4, 0, walking as f64, 1), 0.0);
    assert_eq!(f.set_health(1.0, a, 50.0), -16.0, "only nsq_set stages");
    let first = f.atomic_commit(1.0);
    assert_eq!(first, 1.0);
    assert_eq!(f.atomic_commit(1.0), -16.0, "nothing open");
    // The tool result waits for the group's location change.
    assert_eq!(f.after(first, loc), 0);
    assert_eq!(f.set(1.0, tool, 1, 0, 7.0, 2), 3.0);
    // A seq never issued is refused at once, naming it.
    assert_eq!(f.after(99.0, loc), -8);
    assert_eq!(error(&f), "change #99 was never issued by this queue");
    assert_eq!(f.after(0.5, loc), -14, "not a whole number");
    let n = f.poll(2.5);
    assert!(n >= 1, "{n}");
    let got = changes(&mut f);
    let group: Vec<_> = got
        .iter()
        .filter(|c| c.1 > 0.0)
        .map(|c| c.4.clone())
        .collect();
    assert_eq!(group, ["location", "state"], "whole, in order");
    let pos = |name: &str| got.iter().position(|c| c.4 == name).unwrap();
    assert!(pos("location") < pos("result"));
}

#[test]
fn groups_members_chat_and_events() {
    let mut f = ready();
    let a = agent(&mut f, "npc-1");
    let member = intern(&mut f, "ally");
    let hp = intern(&mut f, "health");
    assert_eq!(f.join_field(hp, 1, 0, 80.0), 0);
    assert_eq!(f.join(1.0, a, member), 1.0);
    assert_eq!(f.poll(2.5), 1);
    let got = changes(&mut f);
    let names: Vec<_> = got
        .iter()
        .map(|c| (c.3.clone(), c.4.clone(), c.5.clone()))
        .collect();
    assert_eq!(
        names,
        [
            (
                "group_members".into(),
                "ally.is_present".into(),
                "true".into()
            ),
            ("group_members".into(), "ally.health".into(), "80".into())
        ]
    );
    assert_eq!(f.ack(1.0), 0);
    assert!(f.leave(3.0, a, member) > 0.0);
    // Chat: sender then text at the scratch start.
    let s = put(&mut f, "player-9hello there");
    assert_eq!(s, 19);
    assert_eq!(f.chat(3.0, a, 8, 11), 0);
    assert_eq!(f.poll(5.0), 2, "the leave (high) and the inference");
    let (reqs, _, msgs) = f.poll_records();
    let (reqs, msgs) = (reqs.to_vec(), msgs.to_vec());
    let inference = reqs
        .chunks(REQUEST_RECORD)
        .find(|r| u32_at(r, 8) == 2)
        .unwrap();
    assert_eq!(i32_at(inference, 28), a);
    assert_eq!(sym_text(&mut f, i32_at(inference, 44) as u32), "npc-1");
    assert_eq!(u32_at(inference, 24), 1);
    let m = &msgs[u32_at(inference, 20) as usize * MESSAGE_RECORD..];
    let (base, text) = f.poll_text();
    let at = |addr: u32, len: u32| {
        String::from_utf8(text[(addr - base) as usize..(addr - base + len) as usize].to_vec())
            .unwrap()
    };
    assert_eq!(at(u32_at(m, 0), u32_at(m, 4)), "player-9");
    assert_eq!(at(u32_at(m, 8), u32_at(m, 12)), "hello there");
    assert_eq!(f64_at(m, 16), 3.0);
    // Removing the agent reports what it had waiting.
    assert_eq!(f.chat(5.0, a, 8, 11), 0);
    assert_eq!(f.remove_agent(a), 0);
    assert_eq!(f.remove_agent(a), -7);
    assert_eq!(f.drain_events(), 1);
    let ev = f.event_records().to_vec();
    assert_eq!(ev.len(), EVENT_RECORD);
    assert_eq!((u32_at(&ev, 0), u32_at(&ev, 4)), (1, a as u32));
    assert_eq!(f64_at(&ev, 16), 1.0, "one chat message dropped");
    assert_eq!(sym_text(&mut f, u32_at(&ev, 24)), "npc-1");
}

#[test]
fn outcomes_decisions_and_metrics() {
    let mut f = ready();
    let a = agent(&mut f, "npc-1");
    let x = slot(&mut f, a, "status", "x");
    assert_eq!(f.set(0.0, x, 1, 0, 1.0, 2), 1.0);
    assert_eq!(f.poll(1.0), 1);
    // A 429: paused for Retry-After, then the change goes again.
    assert_eq!(f.fail_request(1.0, 1.0, 1, 3.0), 0);
    assert_eq!(f.poll(2.0), 0);
    assert_eq!(f.poll(4.5), 1);
    let (reqs, _, _) = f.poll_records();
    assert_eq!(u32_at(reqs, 40), 2, "second attempt");
    let id = f64_at(reqs, 0);
    // The backend confirms the field's value (merged by the ack).
    let status = intern(&mut f, "status");
    let xs = intern(&mut f, "x");
    write_confirm(&mut f, 0, Confirm(a, status, xs, 1, 0, 1.0, 1.5));
    write_confirm(&mut f, 1, Confirm(a, status, xs, 1, 0, 1.0, 1.0));
    assert_eq!(
        f.confirm_records(2),
        1,
        "the first is refused, the second staged"
    );
    assert_eq!(confirm_status(&mut f, 0), 14, "seq not whole");
    assert_eq!(confirm_status(&mut f, 1), 0);
    assert!(error(&f).contains("seq"), "{}", error(&f));
    assert_eq!(f.ack(id), 0);
    assert_eq!(f.is_fresh(4.5, a), 1);
    assert_eq!(f.decide(30.0, a), 0);
    assert_eq!(f64_at(f.header(), 32), 0.0, "nothing undelivered");
    assert_eq!(f.in_flight(), 0);
    assert_eq!(f.is_idle(), 1);
    assert_eq!(f.in_combat(30.0, a), 0);
    assert_eq!(f.metrics(), 0);
    let m = f.metrics_record().to_vec();
    assert_eq!(m.len(), 27 * 8);
    let v = |i: usize| f64_at(&m, i * 8);
    // batch, urgent, failures, decisions fresh
    assert_eq!((v(0), v(1), v(10), v(11)), (2.0, 0.0, 1.0, 1.0));
}

/// The block write records of the last poll: (agent, agent sym, block sym, text).
fn block_writes(f: &mut Facade) -> Vec<(u32, u32, u32, String)> {
    let b = f.poll_blocks().to_vec();
    let (base, text) = f.poll_text();
    let text = text.to_vec();
    b.chunks(npc_sync_luau::BLOCK_RECORD)
        .map(|r| {
            let at = (u32_at(r, 12) - base) as usize;
            let len = u32_at(r, 16) as usize;
            let s = String::from_utf8(text[at..at + len].to_vec()).unwrap();
            (u32_at(r, 0), u32_at(r, 4), u32_at(r, 8), s)
        })
        .collect()
}

fn letta() -> Facade {
    let mut f = Facade::new();
    assert_eq!(f.config(21, 1.0), 0);
    let n = put(&mut f, "persona");
    assert_eq!(f.config_block_limit(n, 20.0), 0);
    assert_eq!(f.config(22, 0.5), -14, "a limit is a whole number");
    assert_eq!(f.init(), 0);
    assert_eq!(
        f.config_block_limit(n, 30.0),
        -15,
        "settings are fixed after init"
    );
    f
}

#[test]
fn letta_writes_carry_the_rendered_block() {
    let mut f = letta();
    let a = agent(&mut f, "npc-1");
    let loc = slot(&mut f, a, "status", "location");
    let hp = slot(&mut f, a, "status", "health");
    let status = intern(&mut f, "status");
    let tavern = intern(&mut f, "tavern");
    assert_eq!(f.set(0.0, loc, 4, 0, tavern as f64, 1), 1.0);
    assert_eq!(f.set(0.0, hp, 1, 0, 62.5, 1), 2.0);
    // Nothing due yet; a flush sends it all.
    assert_eq!(f.poll(0.1), 0);
    assert_eq!(f.flush(0.1), 1);
    let (reqs, _, _) = f.poll_records();
    let reqs = reqs.to_vec();
    assert_eq!(reqs.len(), REQUEST_RECORD);
    assert_eq!((u32_at(&reqs, 48), u32_at(&reqs, 52)), (0, 1), "one block");
    let w = block_writes(&mut f);
    assert_eq!(w.len(), 1);
    assert_eq!((w[0].0, w[0].2), (a as u32, status as u32));
    assert_eq!(sym_text(&mut f, w[0].1), "npc-1");
    assert_eq!(w[0].3, "health: 62.5\nlocation: \"tavern\"");
    // The persona block's limit (20) refuses a long value: agent, block and limit named.
    let mood = slot(&mut f, a, "persona", "mood");
    let n = put(&mut f, "a mood far too long to fit");
    assert_eq!(f.set(0.2, mood, 3, n, 0.0, 1), -17.0);
    assert_eq!(
        error(&f),
        "agent 'npc-1': block `persona` renders to 34 characters, over its limit of 20"
    );
}

#[test]
fn blocks_read_from_letta_are_staged_then_loaded() {
    let mut f = letta();
    let a = agent(&mut f, "npc-1");
    let status = intern(&mut f, "status");
    let loc = slot(&mut f, a, "status", "location");
    assert_eq!(f.await_block(a, status), 0);
    assert_eq!(f.take_read_call(0.0), 1, "the budget has room for the read");
    assert_eq!(f.take_read_call(-1.0), -2, "a bad time is refused");
    let plaza = intern(&mut f, "plaza");
    assert_eq!(f.set(0.0, loc, 4, 0, plaza as f64, 1), 1.0);
    assert_eq!(f.flush(0.0), 0, "the write waits for the read");
    // A text staged in two pieces (a block may be longer than the scratch area).
    let n = put(&mut f, "location: \"pla");
    assert_eq!(f.stage_text(n), 0);
    let n = put(&mut f, "za\"\nmood: \"calm\"\nfree text");
    assert_eq!(f.stage_text(n), 0);
    assert_eq!(f.load_block(0.5, a, status), 1, "one unreadable line");
    assert_eq!(f.drain_events(), 1);
    let ev = f.event_records().to_vec();
    assert_eq!(u32_at(&ev, 0), 4);
    assert_eq!((f64_at(&ev, 8), f64_at(&ev, 16)), (1.0, 3.0));
    assert_eq!(sym_text(&mut f, u32_at(&ev, 28)), "status");
    // Letta holds the game's location already: nothing to send.
    assert_eq!(f.flush(0.5), 0);
    assert_eq!(f.is_idle(), 1);
    // Bad UTF-8 is refused and the staged text dropped.
    f.scratch()[0] = 0xff;
    assert_eq!(f.stage_text(1), 0);
    assert_eq!(f.load_block(0.6, a, status), -14);
    assert!(error(&f).contains("UTF-8"), "{}", error(&f));
    assert_eq!(f.stage_text(-1), -14);
}

#[test]
fn fail_tells_no_retry_after_from_a_negative_one() {
    let mut f = ready();
    let a = agent(&mut f, "npc-1");
    let x = slot(&mut f, a, "status", "x");
    assert_eq!(f.set(0.0, x, 1, 0, 1.0, 2), 1.0);
    assert_eq!(f.poll(1.0), 1);
    assert_eq!(f.fail_request(1.0, 1.0, 1, -2.0), -12);
    assert_eq!(
        error(&f),
        "`retry_after` must be a finite number of seconds of 0 or more, got -2"
    );
    assert_eq!(f.fail_request(1.0, 1.0, 2, 0.0), -14);
    assert_eq!(f.fail_request(1.0, 1.0, 0, -2.0), 0, "none given");
}

#[test]
fn confirmed_records() {
    let mut f = ready();
    let a = agent(&mut f, "npc-1");
    let mood = slot(&mut f, a, "status", "mood");
    let x = slot(&mut f, a, "status", "x");
    let (status, mood_sym, x_sym) = (
        intern(&mut f, "status"),
        intern(&mut f, "mood"),
        intern(&mut f, "x"),
    );
    // A count that does not fit the scratch area stages nothing.
    let most = (SCRATCH_CAP / CONFIRM_RECORD) as i32;
    assert_eq!(f.confirm_records(-1), -14);
    assert_eq!(f.confirm_records(most + 1), -14);
    assert!(error(&f).contains("nsq_confirm_records"), "{}", error(&f));
    put(&mut f, "calm");
    assert_eq!(f.set(0.0, mood, 3, 4, 0.0, 1), 1.0);
    assert_eq!(f.set(0.0, x, 1, 0, 5.0, 1), 2.0);
    assert_eq!(f.poll(0.0), 0, "the first poll schedules the batch");
    assert_eq!(f.poll(30.0), 1);
    let id = f64_at(f.poll_records().0, 0);
    // The backend holds a newer text for `mood` (seq 7, written after the records) and
    // confirms `x` as sent; records with a bad kind, a text outside the scratch area or a
    // sym value never issued are refused, each with its code written into it.
    let text = "furious since the gate fell".repeat(4);
    let text_at = 8 * CONFIRM_RECORD;
    f.scratch()[text_at..text_at + text.len()].copy_from_slice(text.as_bytes());
    let len = text.len() as u32;
    write_confirm(
        &mut f,
        0,
        Confirm(a, status, mood_sym, 3, len, text_at as f64, 7.0),
    );
    write_confirm(&mut f, 1, Confirm(a, status, x_sym, 9, 0, 5.0, 2.0));
    write_confirm(
        &mut f,
        2,
        Confirm(a, status, x_sym, 3, 8, SCRATCH_CAP as f64, 2.0),
    );
    write_confirm(&mut f, 3, Confirm(a, status, mood_sym, 4, 0, 9999.0, 2.0));
    assert_eq!(f.confirm_records(4), 3);
    let codes: Vec<u32> = (0..4).map(|i| confirm_status(&mut f, i)).collect();
    assert_eq!(codes, [0, 14, 14, 13]);
    assert!(
        error(&f).contains("value kind"),
        "the first refused one's message: {}",
        error(&f)
    );
    // Staging adds up across calls until the ack.
    write_confirm(&mut f, 0, Confirm(a, status, x_sym, 1, 0, 5.0, 2.0));
    assert_eq!(f.confirm_records(1), 0);
    assert_eq!(f.ack(id), 0);
    // The confirmed text is `mood`'s value now: setting it again sends nothing, while
    // another value is sent.
    let n = put(&mut f, &text);
    assert!(f.set(31.0, mood, 3, n, 0.0, 1) > 0.0);
    assert_eq!(
        f.flush(31.0),
        0,
        "the local value equals the confirmed text"
    );
    let n = put(&mut f, "calm");
    assert!(f.set(31.0, mood, 3, n, 0.0, 1) > 0.0);
    assert_eq!(f.flush(31.0), 1);
    // A NaN and names' handles are the core's to refuse, at the ack: nothing changes, and
    // the failing ack cleared what was staged, so the request is acknowledged by the next.
    let id = f64_at(f.poll_records().0, 0);
    write_confirm(&mut f, 0, Confirm(a, status, x_sym, 1, 0, f64::NAN, 2.0));
    assert_eq!(f.confirm_records(1), 0);
    assert_eq!(f.ack(id), -4);
    assert!(error(&f).contains("status.x"), "{}", error(&f));
    write_confirm(&mut f, 0, Confirm(a, 9999, x_sym, 1, 0, 5.0, 2.0));
    write_confirm(&mut f, 1, Confirm(77, status, x_sym, 1, 0, 5.0, 2.0));
    assert_eq!(f.confirm_records(2), 0);
    assert_eq!(f.ack(id), -13);
    assert!(error(&f).contains("9999"), "{}", error(&f));
    write_confirm(&mut f, 0, Confirm(77, status, x_sym, 1, 0, 5.0, 2.0));
    assert_eq!(f.confirm_records(1), 0);
    assert_eq!(f.ack(id), -6, "agent 77 was never issued");
    assert_eq!(f.in_flight(), 1);
    assert_eq!(f.ack(id), 0);
    assert_eq!(f.in_flight(), 0);
}

/// One kept-change record (ABI.md "Absorption") at index `i` of the scratch area: one change
/// of `slot` to number `x` (kind 1) or bool (kind 2), seq `seq`, made at `at`, normal priority.
fn write_kept(f: &mut Facade, i: usize, slot: i32, kind: u32, x: f64, seq: f64, at: f64) {
    let b = &mut f.scratch()[i * 56..(i + 1) * 56];
    b[0..4].copy_from_slice(&(slot as u32).to_le_bytes());
    b[4..8].copy_from_slice(&kind.to_le_bytes());
    b[8..16].copy_from_slice(&x.to_le_bytes());
    b[16..24].copy_from_slice(&seq.to_le_bytes());
    b[24..32].copy_from_slice(&at.to_le_bytes());
    b[32..40].copy_from_slice(&at.to_le_bytes());
    b[40..44].copy_from_slice(&1u32.to_le_bytes());
    b[44..48].copy_from_slice(&1u32.to_le_bytes());
    b[48..56].copy_from_slice(&seq.to_le_bytes());
}

/// `nsq_absorb` with no record (its own short path) checks and says the same as with
/// records; records are parsed afresh on every call (the facade keeps its list).
#[test]
fn absorb_with_and_without_records() {
    let mut f = Facade::new();
    assert_eq!(f.absorb(0, 1.0, 0.0), -15, "{}", error(&f));
    assert!(error(&f).contains("nsq_init"), "{}", error(&f));
    assert_eq!(f.init(), 0);
    assert_eq!(f.poll(0.0), 0);
    let a = agent(&mut f, "npc-1");
    let (x, y) = (
        slot(&mut f, a, "status", "x"),
        slot(&mut f, a, "status", "y"),
    );
    assert_eq!(f.set(0.5, x, 1, 0, 1.0, 1), 1.0);
    assert_ne!(u32_at(f.header(), 64), 0, "x granted");
    assert_eq!(f.set(0.5, y, 2, 0, 1.0, 1), 2.0);
    assert_ne!(u32_at(f.header(), 64), 0, "y granted");
    for (next, now, code, says) in [
        (0.0, 0.6, -14, "next seq must be a whole number"),
        (3.5, 0.6, -14, "next seq must be a whole number"),
        (f64::NAN, 0.6, -14, "next seq must be a whole number"),
        (3.0, 0.4, -3, "went backwards"),
        (2.0, 0.6, -19, "behind"),
    ] {
        assert_eq!(f.absorb(0, next, now), code, "{next} {now}: {}", error(&f));
        assert!(error(&f).contains(says), "{next} {now}: {}", error(&f));
        assert_eq!(f.next_seq(), 3.0, "nothing moved");
    }
    assert_eq!(f.absorb(0, 5.0, 0.6), 0);
    assert_eq!(f.next_seq(), 5.0);
    // two records, then one: the second call sees only its own
    write_kept(&mut f, 0, x, 1, 2.0, 5.0, 0.6);
    write_kept(&mut f, 1, y, 2, 0.0, 6.0, 0.6);
    assert_eq!(f.absorb(2, 7.0, 0.6), 0, "{}", error(&f));
    write_kept(&mut f, 0, x, 1, 3.0, 7.0, 0.7);
    assert_eq!(f.absorb(1, 8.0, 0.7), 0, "{}", error(&f));
    write_kept(&mut f, 0, x, 3, 3.0, 8.0, 0.7);
    assert_eq!(f.absorb(1, 9.0, 0.7), -14);
    assert!(error(&f).contains("value kind"), "{}", error(&f));
    assert_eq!(f.metrics(), 0);
    let m = f.metrics_record().to_vec();
    assert_eq!(f64_at(&m, 5 * 8), 5.0, "changes_in: two set, three kept");
    assert_eq!(f.next_seq(), 8.0);
    // the routine batch carries the kept values
    let n = f.poll(31.0);
    assert_eq!(n, 1, "{}", error(&f));
    let mut got: Vec<_> = changes(&mut f)
        .into_iter()
        .map(|c| (c.4, c.0, c.5))
        .collect();
    got.sort_by(|p, q| p.0.cmp(&q.0));
    assert_eq!(
        got,
        vec![
            ("x".to_string(), 7.0, "3".to_string()),
            ("y".to_string(), 6.0, "false".to_string())
        ]
    );
}

/// The grant records of the last watched call (poll, flush, ack, failure, atomic commit):
/// (slot, grant code, target kind, target number).
fn grant_records(f: &Facade) -> Vec<(u32, u32, u32, f64)> {
    let bytes = f.grant_records();
    assert_eq!(bytes.len(), u32_at(f.header(), 80) as usize * GRANT_RECORD);
    bytes
        .chunks(GRANT_RECORD)
        .map(|r| (u32_at(r, 0), u32_at(r, 8), u32_at(r, 12), f64_at(r, 16)))
        .collect()
}

#[test]
fn grants_say_whether_the_kept_changes_start_a_unit() {
    let mut f = ready();
    let a = agent(&mut f, "npc-1");
    let x = slot(&mut f, a, "status", "x");
    let grant = |f: &Facade| (u32_at(f.header(), 64), u32_at(f.header(), 68));
    // no poll yet: no routine batch scheduled, no grant
    assert_eq!(f.set(0.0, x, 1, 0, 1.0, 1), 1.0);
    assert_eq!(grant(&f), (0, 0));
    assert_eq!(f.poll(0.5), 0);
    // pending at normal priority: 1 + normal's code, the target absent; kept changes join
    // the field's unit (no 4 added)
    assert_eq!(f.set(0.6, x, 1, 0, 2.0, 1), 2.0);
    assert_eq!(grant(&f), (2, 0));
    // the routine batch sends it: the field has no pending unit, its kept changes would
    // start one (4 added), the target is the value in flight
    assert_eq!(f.poll(31.0), 1);
    assert_eq!(grant_records(&f), vec![(x as u32, 2 + 4, 1, 2.0)]);
    let (reqs, _, _) = f.poll_records();
    let id = f64_at(reqs, 0);
    // a low change starts a unit of low priority: later changes join it at most at low
    assert_eq!(f.set(31.5, x, 1, 0, 3.0, 0), 3.0);
    assert_eq!(grant(&f), (1, 1));
    // the ack leaves that unit (the local value is newer than the acknowledged one)
    assert_eq!(f.ack(id), 0);
    assert_eq!(grant_records(&f), vec![(x as u32, 1, 1, 2.0)]);
}
