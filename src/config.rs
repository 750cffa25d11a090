//! Settings, their defaults (semantics.md) and their validation as a whole.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// How the bridge turns requests into HTTP calls; the budget counts calls, so the queue
/// plans with the target's cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The project's batch endpoint: one POST per request, whatever it holds.
    BatchEndpoint,
    /// Letta's own API: one PATCH per agent-block in a request, one POST per inference.
    LettaApi,
}

/// Every setting of a queue. Start from [`Config::default`] and change what you need;
/// [`Config::validate`] (called by [`crate::Queue::new`]) checks it as a whole.
///
/// Times are seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// An agent's critical changes go out at most once per this window (outside combat).
    pub debounce_s: f64,
    /// The debounce window in combat.
    pub combat_debounce_s: f64,
    /// A decision may use acknowledged state at most this old (outside combat).
    pub freshness_s: f64,
    /// The freshness threshold in combat.
    pub combat_freshness_s: f64,
    /// Routine pending changes go out together at this period.
    pub batch_interval_s: f64,
    /// High-priority pending changes go out within this time.
    pub high_priority_delay_s: f64,
    /// A health change of at least this many points is critical.
    pub health_critical_points: f64,
    /// A health change of at least this many points (and under the critical one) is high.
    pub health_notable_points: f64,
    /// Combat mode ends this long after the last `Combat` state or critical health change.
    pub combat_exit_s: f64,
    /// HTTP calls allowed per rolling 60 s (HttpService allows 500).
    pub budget_per_minute: u32,
    /// Share of the budget routine traffic may use; the rest is kept for critical changes,
    /// decision syncs and chat.
    pub routine_share: f64,
    /// Calls that may go out back to back before the budget paces to its average rate.
    /// Keeps a burst from spending the whole minute's budget in a few seconds.
    pub budget_burst: u32,
    /// At most this many agent-block updates in one request.
    pub max_agent_blocks_per_request: u32,
    /// At most this many bytes of (estimated, upper-bound) JSON body in one request.
    pub max_request_bytes: u32,
    /// At most this many batch requests (routine batch, due high-priority changes, retries)
    /// open in one poll; the rest of a due batch goes at the next polls, one frame apart.
    /// A routine batch of many agents then costs a few frames a little each instead of
    /// one frame a lot (in Luau its building is the frame's largest cost). A flush is
    /// not held by it.
    pub batch_requests_per_poll: u32,
    /// First retry delay.
    pub retry_base_s: f64,
    /// Longest retry delay.
    pub retry_max_s: f64,
    /// Jitter added to a retry delay, as a fraction of it (0.25: up to 25 % longer).
    pub retry_jitter: f64,
    /// Seed of the jitter generator (the queue stays deterministic).
    pub seed: u64,
    /// Chat: flush this long after the last message.
    pub chat_window_s: f64,
    /// Chat: flush at most this long after the first message.
    pub chat_max_wait_s: f64,
    /// Chat: flush when this many messages wait.
    pub chat_max_messages: u32,
    /// How requests become HTTP calls.
    pub target: Target,
    /// Letta's API: a block's rendered text may hold at most this many characters
    /// (Unicode scalar values) unless `block_limits` names its label. Default 5,000: Letta
    /// 0.16.8's own default is 100,000 (`CORE_MEMORY_BLOCK_CHAR_LIMIT`) and it no longer
    /// enforces it, but a whole block must fit one PATCH under the 64 KiB request cap and
    /// the agent's context, so the queue keeps blocks far smaller.
    pub default_block_limit: u32,
    /// Letta's API: the limit of each block label that differs from
    /// `default_block_limit` (each label at most once).
    pub block_limits: Vec<(String, u32)>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            debounce_s: 5.0,
            combat_debounce_s: 1.0,
            freshness_s: 15.0,
            combat_freshness_s: 1.0,
            batch_interval_s: 30.0,
            high_priority_delay_s: 1.0,
            health_critical_points: 20.0,
            health_notable_points: 10.0,
            combat_exit_s: 10.0,
            budget_per_minute: 400,
            routine_share: 0.8,
            budget_burst: 40,
            max_agent_blocks_per_request: 100,
            max_request_bytes: 64 * 1024,
            batch_requests_per_poll: 2,
            retry_base_s: 1.0,
            retry_max_s: 30.0,
            retry_jitter: 0.25,
            seed: 0x5eed,
            chat_window_s: 0.5,
            chat_max_wait_s: 1.5,
            chat_max_messages: 16,
            target: Target::BatchEndpoint,
            default_block_limit: DEFAULT_BLOCK_LIMIT,
            block_limits: Vec::new(),
        }
    }
}

/// A setting that cannot be used, and why. Nothing of a rejected config is applied.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigError {
    /// The setting's field name in [`Config`].
    pub setting: &'static str,
    /// Why it is rejected.
    pub reason: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid setting `{}`: {}", self.setting, self.reason)
    }
}

/// HttpService's hard limit per game server.
pub const HTTP_SERVICE_LIMIT_PER_MINUTE: u32 = 500;
/// Letta's default limit of a block's value, in characters.
pub const DEFAULT_BLOCK_LIMIT: u32 = 5000;
/// Why a block limit is refused when a whole block could outgrow one request.
const BLOCK_OVER_REQUEST: &str = "a block of that many characters could take more than \
max_request_bytes in its PATCH (up to 4 bytes a character plus 12): at most \
(max_request_bytes - 12) / 4 characters, 16,381 with the default 64 KiB";
/// The smallest body that still holds one change of maximal size.
const MIN_REQUEST_BYTES: u32 = 24 * 1024;

impl Config {
    /// Checks every setting and the rules between them.
    ///
    /// ```
    /// let mut c = npc_sync::Config::default();
    /// c.freshness_s = 2.0; // below the 5 s debounce
    /// assert_eq!(c.validate().unwrap_err().setting, "freshness_s");
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        let times: [(&'static str, f64); 12] = [
            ("debounce_s", self.debounce_s),
            ("combat_debounce_s", self.combat_debounce_s),
            ("freshness_s", self.freshness_s),
            ("combat_freshness_s", self.combat_freshness_s),
            ("batch_interval_s", self.batch_interval_s),
            ("high_priority_delay_s", self.high_priority_delay_s),
            ("combat_exit_s", self.combat_exit_s),
            ("retry_base_s", self.retry_base_s),
            ("retry_max_s", self.retry_max_s),
            ("chat_window_s", self.chat_window_s),
            ("chat_max_wait_s", self.chat_max_wait_s),
            ("health_notable_points", self.health_notable_points),
        ];
        for (setting, v) in times {
            if v.is_nan() {
                return Err(err(setting, "is NaN"));
            }
            if !v.is_finite() {
                return Err(err(setting, "must be finite"));
            }
            if v < 0.0 {
                return Err(err(setting, "must not be negative"));
            }
        }
        let h = self.health_critical_points;
        if h.is_nan() || !h.is_finite() || h <= 0.0 {
            return Err(err(
                "health_critical_points",
                "must be a positive finite number",
            ));
        }
        if self.health_notable_points > h {
            return Err(err(
                "health_notable_points",
                "must not exceed health_critical_points",
            ));
        }
        if self.batch_interval_s <= 0.0 {
            return Err(err("batch_interval_s", "must be greater than 0"));
        }
        if self.retry_base_s <= 0.0 {
            return Err(err("retry_base_s", "must be greater than 0"));
        }
        if self.retry_max_s < self.retry_base_s {
            return Err(err("retry_max_s", "must not be below retry_base_s"));
        }
        if self.retry_max_s > 3600.0 {
            return Err(err("retry_max_s", "must be at most 3600 s"));
        }
        if self.retry_jitter.is_nan() || !(0.0..=1.0).contains(&self.retry_jitter) {
            return Err(err("retry_jitter", "must be between 0 and 1"));
        }
        if self.freshness_s < self.debounce_s {
            return Err(err("freshness_s", "must not be below debounce_s"));
        }
        if self.combat_freshness_s < self.combat_debounce_s {
            return Err(err(
                "combat_freshness_s",
                "must not be below combat_debounce_s",
            ));
        }
        if self.combat_debounce_s > self.debounce_s {
            return Err(err("combat_debounce_s", "must not exceed debounce_s"));
        }
        if self.combat_freshness_s > self.freshness_s {
            return Err(err("combat_freshness_s", "must not exceed freshness_s"));
        }
        if self.combat_freshness_s <= 0.0 {
            return Err(err("combat_freshness_s", "must be greater than 0"));
        }
        if self.budget_per_minute == 0 {
            return Err(err("budget_per_minute", "must be at least 1"));
        }
        if self.budget_per_minute > HTTP_SERVICE_LIMIT_PER_MINUTE {
            return Err(err(
                "budget_per_minute",
                "must not exceed HttpService's 500 requests per minute",
            ));
        }
        let share = self.routine_share;
        if share.is_nan() || share <= 0.0 || share > 1.0 {
            return Err(err(
                "routine_share",
                "must be above 0 and at most 1 (a reserve over 100 % leaves routine traffic nothing)",
            ));
        }
        if self.budget_burst == 0 {
            return Err(err("budget_burst", "must be at least 1"));
        }
        if self.budget_burst > self.budget_per_minute {
            return Err(err("budget_burst", "must not exceed budget_per_minute"));
        }
        if self.max_agent_blocks_per_request == 0 {
            return Err(err("max_agent_blocks_per_request", "must be at least 1"));
        }
        if self.batch_requests_per_poll == 0 {
            return Err(err("batch_requests_per_poll", "must be at least 1"));
        }
        if self.max_request_bytes < MIN_REQUEST_BYTES {
            return Err(err(
                "max_request_bytes",
                "must be at least 24576 so that the largest single change fits",
            ));
        }
        if self.chat_max_messages == 0 {
            return Err(err("chat_max_messages", "must be at least 1"));
        }
        if self.chat_max_messages > 256 {
            return Err(err("chat_max_messages", "must be at most 256"));
        }
        if self.chat_max_wait_s < self.chat_window_s {
            return Err(err("chat_max_wait_s", "must not be below chat_window_s"));
        }
        if self.default_block_limit == 0 {
            return Err(err("default_block_limit", "must be at least 1 character"));
        }
        if !self.fits_one_patch(self.default_block_limit) {
            return Err(err("default_block_limit", BLOCK_OVER_REQUEST));
        }
        for (i, (label, limit)) in self.block_limits.iter().enumerate() {
            if label.is_empty() || label.len() > crate::symbols::Limits::NAME_BYTES {
                return Err(err(
                    "block_limits",
                    "a block label must be 1 to 256 bytes long",
                ));
            }
            if *limit == 0 {
                return Err(err("block_limits", "a limit must be at least 1 character"));
            }
            if !self.fits_one_patch(*limit) {
                return Err(err("block_limits", BLOCK_OVER_REQUEST));
            }
            if self.block_limits[..i].iter().any(|(l, _)| l == label) {
                return Err(err("block_limits", "a block label is given twice"));
            }
        }
        Ok(())
    }

    /// Whether a whole block of `limit` characters fits one PATCH under
    /// `max_request_bytes` (Letta's API writes a block in one call, whatever its size).
    fn fits_one_patch(&self, limit: u32) -> bool {
        crate::block_text::patch_bytes_bound(limit) <= u64::from(self.max_request_bytes)
    }

    /// The limit in characters of a block's rendered text (Letta's API).
    pub fn block_limit(&self, label: &str) -> u32 {
        self.block_limits
            .iter()
            .find(|(l, _)| l == label)
            .map_or(self.default_block_limit, |(_, n)| *n)
    }

    /// Calls routine traffic may use per rolling minute.
    pub(crate) fn routine_calls(&self) -> u32 {
        let share = (self.budget_per_minute as f64) * self.routine_share;
        // Truncation toward zero keeps the reserve at least what was asked for.
        let calls = share as u32;
        calls.max(1)
    }
}

fn err(setting: &'static str, reason: &'static str) -> ConfigError {
    ConfigError { setting, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_design_table() {
        let c = Config::default();
        assert_eq!(c.debounce_s, 5.0);
        assert_eq!(c.combat_debounce_s, 1.0);
        assert_eq!(c.freshness_s, 15.0);
        assert_eq!(c.combat_freshness_s, 1.0);
        assert_eq!(c.batch_interval_s, 30.0);
        assert_eq!(c.high_priority_delay_s, 1.0);
        assert_eq!(c.health_critical_points, 20.0);
        assert_eq!(c.health_notable_points, 10.0);
        assert_eq!(c.combat_exit_s, 10.0);
        assert_eq!(c.budget_per_minute, 400);
        assert_eq!(c.routine_share, 0.8);
        assert_eq!(c.routine_calls(), 320);
        assert_eq!(c.max_agent_blocks_per_request, 100);
        assert_eq!(c.max_request_bytes, 65536);
        assert_eq!((c.retry_base_s, c.retry_max_s), (1.0, 30.0));
        assert_eq!(
            (c.chat_window_s, c.chat_max_wait_s, c.chat_max_messages),
            (0.5, 1.5, 16)
        );
        assert_eq!(c.default_block_limit, 5000);
        assert!(c.validate().is_ok());
        let mut c = Config::default();
        c.block_limits.push(("persona".into(), 200));
        assert_eq!(
            (c.block_limit("persona"), c.block_limit("status")),
            (200, 5000)
        );
    }

    #[test]
    fn the_largest_block_that_fits_one_patch_is_accepted() {
        let mut c = Config {
            default_block_limit: 16_381,
            block_limits: alloc::vec![("persona".into(), 16_381)],
            ..Config::default()
        };
        assert!(c.validate().is_ok());
        c.max_request_bytes = 24 * 1024;
        c.default_block_limit = 6_141;
        c.block_limits.clear();
        assert!(c.validate().is_ok());
    }

    fn rejects(f: impl FnOnce(&mut Config), setting: &str) {
        let mut c = Config::default();
        f(&mut c);
        let e = c.validate().expect_err(setting);
        assert_eq!(e.setting, setting, "{e}");
    }

    #[test]
    fn bad_settings_are_named() {
        rejects(|c| c.debounce_s = -1.0, "debounce_s");
        rejects(|c| c.combat_debounce_s = f64::NAN, "combat_debounce_s");
        rejects(|c| c.batch_interval_s = f64::INFINITY, "batch_interval_s");
        rejects(|c| c.batch_interval_s = 0.0, "batch_interval_s");
        rejects(|c| c.budget_per_minute = 501, "budget_per_minute");
        rejects(|c| c.budget_per_minute = 0, "budget_per_minute");
        rejects(|c| c.routine_share = 1.5, "routine_share");
        rejects(|c| c.routine_share = f64::NAN, "routine_share");
        rejects(|c| c.freshness_s = 4.0, "freshness_s");
        rejects(|c| c.combat_freshness_s = 0.5, "combat_freshness_s");
        rejects(|c| c.retry_max_s = 0.5, "retry_max_s");
        rejects(|c| c.retry_jitter = 2.0, "retry_jitter");
        rejects(|c| c.health_notable_points = 30.0, "health_notable_points");
        rejects(|c| c.health_critical_points = 0.0, "health_critical_points");
        rejects(|c| c.max_request_bytes = 100, "max_request_bytes");
        rejects(
            |c| c.max_agent_blocks_per_request = 0,
            "max_agent_blocks_per_request",
        );
        rejects(|c| c.chat_max_messages = 0, "chat_max_messages");
        rejects(|c| c.chat_max_wait_s = 0.1, "chat_max_wait_s");
        rejects(|c| c.budget_burst = 0, "budget_burst");
        rejects(|c| c.batch_requests_per_poll = 0, "batch_requests_per_poll");
        rejects(|c| c.default_block_limit = 0, "default_block_limit");
        rejects(|c| c.default_block_limit = 16_382, "default_block_limit");
        rejects(
            |c| {
                c.max_request_bytes = 24 * 1024;
                c.default_block_limit = 6_142;
            },
            "default_block_limit",
        );
        rejects(
            |c| c.block_limits = alloc::vec![("persona".into(), 60_000)],
            "block_limits",
        );
        rejects(
            |c| c.block_limits = alloc::vec![("status".into(), 0)],
            "block_limits",
        );
        rejects(
            |c| c.block_limits = alloc::vec![("".into(), 10)],
            "block_limits",
        );
        rejects(
            |c| c.block_limits = alloc::vec![("a".into(), 10), ("a".into(), 20)],
            "block_limits",
        );
    }
}
