//! The request budget: HTTP calls per rolling 60 s, a reserve kept for critical changes,
//! decision syncs and chat, and pacing so that a burst cannot spend a minute's budget in
//! a few seconds (which would stall critical traffic for the rest of the minute).

use crate::config::Config;
use crate::window::RollingWindow;

const WINDOW_S: f64 = RollingWindow::SPAN_S;

/// Which share of the budget a request may draw on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pool {
    /// Routine batches: at most `routine_share` of the budget.
    Routine,
    /// Urgent requests and inference: the whole budget.
    Reserved,
}

pub(crate) struct Budget {
    limit: u32,
    routine_limit: u32,
    /// Calls emitted in the last 60 s.
    window: RollingWindow,
    /// Pacing tokens left after the last spend: they refill at `(limit - burst) / 60` per
    /// second up to `burst`, so that a full burst plus a minute of refill never exceeds
    /// the limit: the rolling window then never stalls traffic for long.
    tokens: f64,
    burst: f64,
    /// When the last spend happened. The tokens at any time are computed from it, so
    /// looking at the budget never changes it: how often the queue is polled does not
    /// move a single token (not even by rounding).
    spent_at: Option<f64>,
}

impl Budget {
    fn rate(&self) -> f64 {
        let r = (self.limit as f64 - self.burst) / WINDOW_S;
        // A burst equal to the whole budget leaves the window alone to pace.
        if r > 0.0 {
            r
        } else {
            self.limit as f64 / WINDOW_S
        }
    }

    pub(crate) fn new(cfg: &Config) -> Self {
        Budget {
            limit: cfg.budget_per_minute,
            routine_limit: cfg.routine_calls(),
            window: RollingWindow::new(),
            tokens: cfg.budget_burst as f64,
            burst: cfg.budget_burst as f64,
            spent_at: None,
        }
    }

    /// Pacing tokens at `now`.
    fn tokens_at(&self, now: f64) -> f64 {
        match self.spent_at {
            Some(last) => (self.tokens + (now - last) * self.rate()).min(self.burst),
            None => self.tokens,
        }
    }

    /// Calls that may be spent now from `pool`.
    pub(crate) fn available(&mut self, now: f64, pool: Pool) -> u32 {
        let by_window = self.window_available(now, pool);
        // Pacing is a whole number of tokens; a fraction is not a call.
        let by_pace = self.tokens_at(now) as u32;
        by_window.min(by_pace)
    }

    /// Calls the rolling window alone still allows from `pool`, pacing aside.
    pub(crate) fn window_available(&mut self, now: f64, pool: Pool) -> u32 {
        self.cap(pool).saturating_sub(self.window.total(now))
    }

    fn cap(&self, pool: Pool) -> u32 {
        match pool {
            Pool::Routine => self.routine_limit,
            Pool::Reserved => self.limit,
        }
    }

    /// Whether the pacing bucket is full (nothing spent for a while).
    pub(crate) fn burst_full(&mut self, now: f64) -> bool {
        self.tokens_at(now) >= self.burst
    }

    pub(crate) fn spend(&mut self, now: f64, calls: u32) {
        if calls == 0 {
            return;
        }
        self.window.record(now, calls);
        self.tokens = self.tokens_at(now) - calls as f64;
        self.spent_at = Some(now);
    }

    /// Calls spent in the last 60 s.
    pub(crate) fn used(&mut self, now: f64) -> u32 {
        self.window.total(now)
    }

    /// The earliest time at which at least one call is available from `pool`, if not now.
    pub(crate) fn next_free(&mut self, now: f64, pool: Pool) -> f64 {
        // The window frees calls as its oldest entries age out.
        let mut at = self.window.below_at(now, self.cap(pool));
        let tokens = self.tokens_at(now);
        if tokens < 1.0 {
            let rate = self.rate();
            let pace_at = now + (1.0 - tokens) / rate;
            if pace_at > at {
                at = pace_at;
            }
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routine_keeps_the_reserve_and_the_window_rolls() {
        let cfg = Config {
            budget_burst: 400,
            ..Config::default()
        };
        let mut b = Budget::new(&cfg);
        assert_eq!(b.available(0.0, Pool::Routine), 320);
        b.spend(0.0, 320);
        assert_eq!(b.available(0.0, Pool::Routine), 0);
        assert_eq!(b.available(0.0, Pool::Reserved), 80);
        b.spend(1.0, 80);
        assert_eq!(b.available(1.0, Pool::Reserved), 0);
        assert_eq!(b.next_free(1.0, Pool::Reserved), 60.0);
        // The first 320 age out at 60 s, but pacing refills slowly.
        assert_eq!(b.used(60.0), 80);
        assert!(b.available(60.0, Pool::Routine) > 0);
    }

    #[test]
    fn pacing_spreads_a_burst() {
        let cfg = Config::default(); // burst 40, 400/min
        let mut b = Budget::new(&cfg);
        assert_eq!(b.available(0.0, Pool::Reserved), 40);
        b.spend(0.0, 40);
        assert_eq!(b.available(0.0, Pool::Reserved), 0);
        let at = b.next_free(0.0, Pool::Reserved);
        // (400 - 40) / 60 = 6 calls a second.
        assert!((at - 1.0 / 6.0).abs() < 1e-9, "{at}");
        assert_eq!(b.available(at, Pool::Reserved), 1);
    }
}
