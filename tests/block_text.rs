//! Property tests of the Letta block text format: any fields render, and parse back to
//! exactly the same fields, in name order.

use npc_sync::{block_text, Value};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<f64>()
            .prop_filter("finite", |n| n.is_finite())
            .prop_map(Value::Number),
        (-1_000_000i64..1_000_000).prop_map(|n| Value::Number(n as f64)),
        any::<bool>().prop_map(Value::Bool),
        any::<String>().prop_map(Value::Str),
        "[ -~]{0,20}".prop_map(Value::Str),
        Just(Value::Cleared),
    ]
}

fn name() -> impl Strategy<Value = String> {
    any::<String>().prop_filter("a valid field name", |n| {
        block_text::check_field_name(n).is_ok()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trip(fields in prop::collection::btree_map(
        prop_oneof![name(), "[a-z_.0-9]{1,12}"], value(), 0..12)) {
        let text = block_text::render(
            "status",
            fields.iter().map(|(k, v)| (k.as_str(), v)),
            usize::MAX,
        ).unwrap();
        let parsed = block_text::parse(&text);
        prop_assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let expected: Vec<(String, Value)> = fields
            .into_iter()
            .filter(|(_, v)| *v != Value::Cleared)
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect();
        // Numbers compare by bits so -0 and 0 are told apart.
        prop_assert_eq!(parsed.fields.len(), expected.len());
        for ((pn, pv), (en, ev)) in parsed.fields.iter().zip(&expected) {
            prop_assert_eq!(pn, en);
            match (pv, ev) {
                (Value::Number(a), Value::Number(b)) => prop_assert_eq!(a.to_bits(), b.to_bits()),
                _ => prop_assert_eq!(pv, ev),
            }
        }
    }

    #[test]
    fn render_is_independent_of_input_order(fields in prop::collection::btree_map(
        "[a-zA-Z_.]{1,8}", value(), 0..10)) {
        let forward: Vec<(&str, &Value)> = fields.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let mut backward = forward.clone();
        backward.reverse();
        prop_assert_eq!(
            block_text::render("b", forward, usize::MAX).unwrap(),
            block_text::render("b", backward, usize::MAX).unwrap()
        );
    }

    #[test]
    fn parse_never_panics_and_reports_every_unread_line(text in any::<String>()) {
        let parsed = block_text::parse(&text);
        let lines = text.split('\n').filter(|l| !l.trim().is_empty()).count();
        prop_assert_eq!(parsed.fields.len() + parsed.errors.len(), lines);
    }
}
