//! Per game server token buckets.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Most game servers tracked; beyond it the idlest are forgotten (a full bucket again).
const MAX_SERVERS: usize = 100_000;

/// Token buckets keyed by game server id.
pub struct RateLimits {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimits {
    /// `rate` requests a second sustained, bursts of `burst`.
    pub fn new(rate: f64, burst: f64) -> RateLimits {
        RateLimits {
            rate,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token, or says how many whole seconds until one is free.
    pub fn take(&self, server: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if b.len() >= MAX_SERVERS && !b.contains_key(server) {
            b.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * self.rate < self.burst
            });
        }
        let (tokens, at) = b.entry(server.to_string()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}
