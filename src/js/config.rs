//! The `SyncQueue` constructor's settings: JavaScript keys (camelCase, times in seconds)
//! mapped onto [`Config`], each checked for its type here and for its range by
//! [`Config::validate`]. One list below owns the mapping both ways.

use super::error::{JsError, JsResult};
use crate::config::{Config, Target};
use alloc::format;
use alloc::string::String;
use wasm_bindgen::{JsCast, JsValue};

macro_rules! settings {
    ($( $js:literal => $field:ident : $read:ident ),* $(,)?) => {
        /// Sets one setting from its JavaScript key; `false` when the key is not a setting.
        fn apply(cfg: &mut Config, key: &str, v: &JsValue) -> JsResult<bool> {
            match key {
                $( $js => { cfg.$field = $read(key, v)?; Ok(true) } )*
                "target" => { cfg.target = target(v)?; Ok(true) }
                "blockLimits" => { cfg.block_limits = block_limits(v)?; Ok(true) }
                _ => Ok(false),
            }
        }

        /// The JavaScript key of a [`Config`] field (for the core's validation errors).
        fn js_key(field: &'static str) -> &'static str {
            match field {
                $( stringify!($field) => $js, )*
                other => other,
            }
        }

        /// Every key, for the error on an unknown one.
        const KEYS: &str = concat!($( $js, ", ", )* "target, blockLimits");
    };
}

settings! {
    "debounce" => debounce_s: number,
    "combatDebounce" => combat_debounce_s: number,
    "freshness" => freshness_s: number,
    "combatFreshness" => combat_freshness_s: number,
    "batchInterval" => batch_interval_s: number,
    "highPriorityDelay" => high_priority_delay_s: number,
    "healthCriticalPoints" => health_critical_points: number,
    "healthNotablePoints" => health_notable_points: number,
    "combatExit" => combat_exit_s: number,
    "budgetPerMinute" => budget_per_minute: count,
    "routineShare" => routine_share: number,
    "budgetBurst" => budget_burst: count,
    "maxAgentBlocksPerRequest" => max_agent_blocks_per_request: count,
    "maxRequestBytes" => max_request_bytes: count,
    "batchRequestsPerPoll" => batch_requests_per_poll: count,
    "retryBase" => retry_base_s: number,
    "retryMax" => retry_max_s: number,
    "retryJitter" => retry_jitter: number,
    "seed" => seed: seed,
    "chatWindow" => chat_window_s: number,
    "chatMaxWait" => chat_max_wait_s: number,
    "chatMaxMessages" => chat_max_messages: count,
    "defaultBlockLimit" => default_block_limit: count,
}

/// A number setting (any number: its range is the core's to check, with the reason).
fn number(key: &str, v: &JsValue) -> JsResult<f64> {
    v.as_f64().ok_or_else(|| {
        JsError::input(
            format!("setting `{key}`"),
            format!("must be a number, got {}", type_of(v)),
        )
    })
}

/// A whole-number setting.
fn count(key: &str, v: &JsValue) -> JsResult<u32> {
    let n = number(key, v)?;
    if n.fract() != 0.0 || !(0.0..=u32::MAX as f64).contains(&n) {
        return Err(JsError::input(
            format!("setting `{key}`"),
            format!("must be a whole number from 0 to {}, got {n}", u32::MAX),
        ));
    }
    Ok(n as u32)
}

/// The jitter seed: a whole number up to 2^53, or a BigInt up to 2^64 - 1.
fn seed(key: &str, v: &JsValue) -> JsResult<u64> {
    if v.is_bigint() {
        return u64::try_from(v.clone()).map_err(|_| {
            JsError::input(
                format!("setting `{key}`"),
                "must be a BigInt from 0 to 2^64 - 1",
            )
        });
    }
    let n = number(key, v)?;
    if n.fract() != 0.0 || !(0.0..=9007199254740992.0).contains(&n) {
        return Err(JsError::input(
            format!("setting `{key}`"),
            format!("must be a whole number from 0 to 2^53 (or a BigInt), got {n}"),
        ));
    }
    Ok(n as u64)
}

/// `blockLimits`: an object of block label to limit (characters).
fn block_limits(v: &JsValue) -> JsResult<alloc::vec::Vec<(String, u32)>> {
    if !v.is_object() || js_sys::Array::is_array(v) {
        return Err(JsError::input(
            "setting `blockLimits`",
            format!(
                "must be an object of block label to limit, got {}",
                type_of(v)
            ),
        ));
    }
    let obj: &js_sys::Object = v.unchecked_ref();
    let mut out = alloc::vec::Vec::new();
    for entry in js_sys::Object::entries(obj).iter() {
        let pair: js_sys::Array = entry.unchecked_into();
        let label: String = pair.get(0).as_string().unwrap_or_default();
        let key = format!("blockLimits.{label}");
        out.push((label, count(&key, &pair.get(1))?));
    }
    Ok(out)
}

fn target(v: &JsValue) -> JsResult<Target> {
    match v.as_string().as_deref() {
        Some("batch") => Ok(Target::BatchEndpoint),
        Some("letta") => Ok(Target::LettaApi),
        _ => Err(JsError::input(
            "setting `target`",
            format!("must be \"batch\" or \"letta\", got {}", describe(v)),
        )),
    }
}

/// Reads a settings object (`undefined` or `null`: every default) and validates it as a
/// whole. Nothing of a refused config is used.
pub(crate) fn config_from_js(v: &JsValue) -> JsResult<Config> {
    let mut cfg = Config::default();
    if v.is_undefined() || v.is_null() {
        return Ok(cfg);
    }
    if !v.is_object() || js_sys::Array::is_array(v) {
        return Err(JsError::input(
            "config",
            format!("must be an object of settings, got {}", type_of(v)),
        ));
    }
    let obj: &js_sys::Object = v.unchecked_ref();
    for entry in js_sys::Object::entries(obj).iter() {
        let pair: js_sys::Array = entry.unchecked_into();
        let key: String = pair.get(0).as_string().unwrap_or_default();
        let value = pair.get(1);
        if value.is_undefined() {
            continue;
        }
        if !apply(&mut cfg, &key, &value)? {
            return Err(JsError::input(
                format!("setting `{key}`"),
                format!("is not a setting (known: {KEYS})"),
            ));
        }
    }
    cfg.validate().map_err(|e| JsError::Config {
        key: match e.setting {
            "block_limits" => "blockLimits",
            other => js_key(other),
        },
        reason: e.reason,
    })?;
    Ok(cfg)
}

/// `typeof`-like name of a value, for error messages.
pub(crate) fn type_of(v: &JsValue) -> &'static str {
    if v.is_null() {
        "null"
    } else if v.is_undefined() {
        "undefined"
    } else if v.as_bool().is_some() {
        "a boolean"
    } else if v.as_f64().is_some() {
        "a number"
    } else if v.is_string() {
        "a string"
    } else if v.is_bigint() {
        "a BigInt"
    } else if js_sys::Array::is_array(v) {
        "an array"
    } else if v.is_function() {
        "a function"
    } else {
        "an object"
    }
}

/// A value for an error message: strings quoted, anything else by its type.
fn describe(v: &JsValue) -> String {
    match v.as_string() {
        Some(s) => format!("\"{s}\""),
        None => String::from(type_of(v)),
    }
}
