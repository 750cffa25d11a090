//! Rules of `docs/semantics.md`: chat.

use super::*;

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
