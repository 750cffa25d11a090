//! The rolling 60 s window of the request budget (invariant 5 of `docs/semantics.md`):
//! the one place that says which calls count as "in the last minute". The budget spends
//! through it, and the simulator and the tests verify with it, so the rule cannot drift
//! between the code that keeps it and the code that checks it.

use alloc::collections::VecDeque;

/// Calls recorded over a rolling window of [`RollingWindow::SPAN_S`] seconds.
///
/// A call recorded at `t` counts at every `now` with `now - t < 60`: the window at `now`
/// is `(now - 60, now]`. The largest total over every such window equals the largest
/// number of calls in any 60 s interval, which is what the budget limits; [`peak`]
/// reports it. Times must not go backwards (the queue refuses that before it spends).
///
/// [`peak`]: RollingWindow::peak
#[derive(Clone, Debug, Default)]
pub struct RollingWindow {
    /// Calls still in the window, oldest first: (time, calls), one entry per time.
    entries: VecDeque<(f64, u32)>,
    /// Sum of `entries`' calls.
    total: u32,
    /// Largest `total` seen right after a call was recorded.
    peak: u32,
}

impl RollingWindow {
    /// The window's length: the budget is per rolling minute.
    pub const SPAN_S: f64 = 60.0;

    /// An empty window.
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops the calls that no longer count at `now`.
    fn advance(&mut self, now: f64) {
        while let Some(&(t, calls)) = self.entries.front() {
            if now - t >= Self::SPAN_S {
                self.entries.pop_front();
                self.total -= calls;
            } else {
                break;
            }
        }
    }

    /// Records `calls` made at `now`.
    pub fn record(&mut self, now: f64, calls: u32) {
        if calls == 0 {
            return;
        }
        self.advance(now);
        self.total += calls;
        match self.entries.back_mut() {
            Some((t, c)) if *t == now => *c += calls,
            _ => self.entries.push_back((now, calls)),
        }
        self.peak = self.peak.max(self.total);
    }

    /// Calls made in the window ending at `now`.
    pub fn total(&mut self, now: f64) -> u32 {
        self.advance(now);
        self.total
    }

    /// The most calls any window has held so far (at the moment of a recording).
    pub fn peak(&self) -> u32 {
        self.peak
    }

    /// The earliest time, not before `now`, at which the window holds fewer than `cap`
    /// calls: `now` itself if it already does, else when enough of the oldest calls age
    /// out.
    pub fn below_at(&mut self, now: f64, cap: u32) -> f64 {
        self.advance(now);
        if self.total < cap {
            return now;
        }
        let mut need = self.total + 1 - cap;
        let mut at = now;
        for &(t, calls) in &self.entries {
            at = t + Self::SPAN_S;
            if calls >= need {
                break;
            }
            need -= calls;
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_counts_for_60_s_then_ages_out() {
        let mut w = RollingWindow::new();
        w.record(0.0, 3);
        w.record(30.0, 2);
        assert_eq!(w.total(59.999), 5);
        assert_eq!(w.total(60.0), 2);
        assert_eq!(w.total(90.0), 0);
        assert_eq!(w.peak(), 5);
    }

    #[test]
    fn calls_at_one_time_add_up_and_the_peak_remembers_the_fullest_window() {
        let mut w = RollingWindow::new();
        w.record(1.0, 1);
        w.record(1.0, 4);
        w.record(2.0, 0);
        assert_eq!(w.total(1.0), 5);
        w.record(70.0, 2);
        assert_eq!(w.total(70.0), 2);
        assert_eq!(w.peak(), 5);
    }

    #[test]
    fn below_at_is_when_enough_old_calls_age_out() {
        let mut w = RollingWindow::new();
        w.record(0.0, 2);
        w.record(10.0, 3);
        assert_eq!(w.below_at(20.0, 6), 20.0);
        // 5 calls, cap 5: the 2 calls of 0 s leave at 60 s.
        assert_eq!(w.below_at(20.0, 5), 60.0);
        // cap 2: 4 must leave, which takes the 3 calls of 10 s too.
        assert_eq!(w.below_at(20.0, 2), 70.0);
    }
}
