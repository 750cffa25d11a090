//! Which fault a request meets: seeded, and decided from the request itself, so the same
//! seed gives the same decisions for the same request sequence however the requests
//! interleave on the wire.
//!
//! A decision is a function of (seed, a hash of method + path + body, how many times that
//! exact request was seen before). A retry of an identical request is a new draw (its
//! occurrence number differs), so a retried request eventually passes.

/// What the proxy does with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forwarded, answer passed back.
    Pass,
    /// Not forwarded; answered with this 5xx status.
    ServerError(u16),
    /// Not forwarded; answered 429 with `Retry-After` of this many seconds.
    TooMany(u32),
    /// Forwarded (the backend applies it), the answer held past the sender's timeout.
    Slow,
    /// Not forwarded; the connection is closed without an answer.
    Dropped,
    /// Forwarded (the backend applies it), then the connection is closed without an
    /// answer: the sender sees a failure and the retry arrives twice.
    LostResponse,
}

impl Fault {
    /// Short name for logs and reports.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Pass => "pass",
            Fault::ServerError(_) => "5xx",
            Fault::TooMany(_) => "429",
            Fault::Slow => "slow",
            Fault::Dropped => "dropped",
            Fault::LostResponse => "lost-response",
        }
    }

    /// Whether the backend receives the request.
    pub fn forwards(self) -> bool {
        matches!(self, Fault::Pass | Fault::Slow | Fault::LostResponse)
    }
}

/// Fault rates (each a probability per request; their sum at most 1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaultRates {
    /// 500 or 503, nothing applied.
    pub server_error: f64,
    /// 429 with `Retry-After` 1 to 3 s, nothing applied.
    pub too_many: f64,
    /// Applied, answered after the sender gave up.
    pub slow: f64,
    /// Connection dropped before forwarding, nothing applied.
    pub dropped: f64,
    /// Applied, answer lost.
    pub lost_response: f64,
}

impl FaultRates {
    /// No faults.
    pub const OFF: FaultRates = FaultRates {
        server_error: 0.0,
        too_many: 0.0,
        slow: 0.0,
        dropped: 0.0,
        lost_response: 0.0,
    };

    /// Every fault at once: about one request in four fails. Slow answers are rare because
    /// each costs the sender's whole timeout in real time.
    pub const ON: FaultRates = FaultRates {
        server_error: 0.08,
        too_many: 0.04,
        slow: 0.01,
        dropped: 0.05,
        lost_response: 0.07,
    };

    /// Checks that every rate is in [0, 1] and the sum at most 1.
    pub fn validate(&self) -> Result<(), String> {
        let all = [
            ("server_error", self.server_error),
            ("too_many", self.too_many),
            ("slow", self.slow),
            ("dropped", self.dropped),
            ("lost_response", self.lost_response),
        ];
        for (name, r) in all {
            if !(0.0..=1.0).contains(&r) {
                return Err(format!("fault rate `{name}` must be in [0, 1], got {r}"));
            }
        }
        let sum: f64 = all.iter().map(|(_, r)| r).sum();
        if sum > 1.0 + 1e-12 {
            return Err(format!("fault rates add up to {sum}, above 1"));
        }
        Ok(())
    }
}

/// The seeded decision rule.
#[derive(Clone, Copy, Debug)]
pub struct FaultPlan {
    /// The seed.
    pub seed: u64,
    /// The rates.
    pub rates: FaultRates,
}

impl FaultPlan {
    /// The fault for a request with content hash `key` seen `occurrence` times before.
    pub fn decide(&self, key: u64, occurrence: u64) -> Fault {
        let mut x = mix(self.seed ^ mix(key ^ mix(occurrence.wrapping_add(0x51))));
        let u = unit(x);
        x = mix(x);
        let r = &self.rates;
        let mut edge = r.server_error;
        if u < edge {
            return Fault::ServerError(if x & 1 == 0 { 500 } else { 503 });
        }
        edge += r.too_many;
        if u < edge {
            return Fault::TooMany(1 + (x % 3) as u32);
        }
        edge += r.slow;
        if u < edge {
            return Fault::Slow;
        }
        edge += r.dropped;
        if u < edge {
            return Fault::Dropped;
        }
        edge += r.lost_response;
        if u < edge {
            return Fault::LostResponse;
        }
        Fault::Pass
    }
}

/// FNV-1a of a request's method, path and body: the key of [`FaultPlan::decide`].
pub fn request_key(method: &str, path: &str, body: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in method
        .as_bytes()
        .iter()
        .chain(b" ")
        .chain(path.as_bytes())
        .chain(b"\n")
        .chain(body)
    {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// SplitMix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_decisions_other_seed_other_decisions() {
        let a = FaultPlan {
            seed: 7,
            rates: FaultRates::ON,
        };
        let b = FaultPlan { seed: 8, ..a };
        let keys: Vec<u64> = (0..2000u64)
            .map(|i| {
                request_key(
                    "POST",
                    "/v1/batch",
                    format!("{{\"request_id\":{i}}}").as_bytes(),
                )
            })
            .collect();
        let run = |p: &FaultPlan| -> Vec<Fault> { keys.iter().map(|k| p.decide(*k, 0)).collect() };
        assert_eq!(run(&a), run(&a));
        assert_ne!(run(&a), run(&b));
    }

    #[test]
    fn rates_are_honoured_and_retries_draw_again() {
        let p = FaultPlan {
            seed: 1,
            rates: FaultRates::ON,
        };
        let n = 20_000u64;
        let mut failed = 0;
        let mut retry_differs = 0;
        for i in 0..n {
            let k = request_key(
                "PATCH",
                "/v1/agents/a/core-memory/blocks/status",
                &i.to_le_bytes(),
            );
            if p.decide(k, 0) != Fault::Pass {
                failed += 1;
            }
            if p.decide(k, 0) != p.decide(k, 1) {
                retry_differs += 1;
            }
        }
        let rate = failed as f64 / n as f64;
        assert!((0.22..0.28).contains(&rate), "fault rate {rate}");
        assert!(retry_differs > 0);
        let off = FaultPlan {
            seed: 1,
            rates: FaultRates::OFF,
        };
        assert!((0..1000).all(|i| off.decide(i, 0) == Fault::Pass));
    }

    #[test]
    fn bad_rates_are_named() {
        let r = FaultRates {
            slow: 1.5,
            ..FaultRates::OFF
        };
        assert!(r.validate().unwrap_err().contains("`slow`"));
        let r = FaultRates {
            server_error: 0.6,
            dropped: 0.6,
            ..FaultRates::OFF
        };
        assert!(r.validate().unwrap_err().contains("add up"));
    }
}
