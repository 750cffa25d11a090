//! Retry delays: exponential from `retry_base_s` to `retry_max_s`, with jitter from a
//! seeded generator so that the queue stays deterministic.

use crate::config::Config;

/// SplitMix64: tiny, seedable, and the same on every platform.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// In [0, n) (`n` > 0; the tests' random operations).
    #[cfg(test)]
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        (self.next_u64() >> 11) % n
    }
}

/// The delay before attempt `attempt + 1` (attempt 1 is the first failure), honouring a
/// server's `Retry-After` as a floor.
pub(crate) fn retry_delay(
    cfg: &Config,
    rng: &mut Rng,
    attempt: u32,
    retry_after: Option<f64>,
) -> f64 {
    let mut raw = cfg.retry_base_s;
    for _ in 1..attempt.min(32) {
        raw *= 2.0;
        if raw >= cfg.retry_max_s {
            break;
        }
    }
    let jittered = raw * (1.0 + cfg.retry_jitter * rng.unit());
    // Not `f64::clamp`: its panic message formats floats, which would pull float
    // formatting into the Luau build. Validation guarantees base <= max, so this equals it.
    let delay = jittered.max(cfg.retry_base_s).min(cfg.retry_max_s);
    match retry_after {
        Some(ra) if ra > delay => ra,
        _ => delay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_bounds() {
        let cfg = Config::default();
        let mut rng = Rng::new(1);
        let d1 = retry_delay(&cfg, &mut rng, 1, None);
        let d2 = retry_delay(&cfg, &mut rng, 2, None);
        let d3 = retry_delay(&cfg, &mut rng, 3, None);
        assert!((1.0..=1.25).contains(&d1), "{d1}");
        assert!((2.0..=2.5).contains(&d2), "{d2}");
        assert!((4.0..=5.0).contains(&d3), "{d3}");
        for a in 4..50 {
            let d = retry_delay(&cfg, &mut rng, a, None);
            assert!((1.0..=30.0).contains(&d), "{a}: {d}");
        }
        assert_eq!(retry_delay(&cfg, &mut rng, 50, None), 30.0);
    }

    #[test]
    fn retry_after_is_a_floor() {
        let cfg = Config::default();
        let mut rng = Rng::new(1);
        assert_eq!(retry_delay(&cfg, &mut rng, 1, Some(20.0)), 20.0);
        let d = retry_delay(&cfg, &mut rng, 1, Some(0.1));
        assert!(d >= 1.0);
    }

    #[test]
    fn seeded_jitter_is_deterministic() {
        let cfg = Config::default();
        let a: alloc::vec::Vec<f64> = {
            let mut r = Rng::new(42);
            (1..10)
                .map(|i| retry_delay(&cfg, &mut r, i, None))
                .collect()
        };
        let b: alloc::vec::Vec<f64> = {
            let mut r = Rng::new(42);
            (1..10)
                .map(|i| retry_delay(&cfg, &mut r, i, None))
                .collect()
        };
        assert_eq!(a, b);
    }
}
