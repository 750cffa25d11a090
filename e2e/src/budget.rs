//! The budget check over what the proxy recorded: the most HTTP calls in any window of
//! `window_s` seconds. One function on purpose: the core's budget type (`src/budget.rs`)
//! offers no public window check today; when it does, this is the one place to use it.

/// The most of `times` (seconds, ascending) that fall in any half-open window
/// `[t, t + window_s)`.
pub fn max_in_window(times: &[f64], window_s: f64) -> usize {
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..times.len() {
        while times[hi] - times[lo] >= window_s {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::max_in_window;

    #[test]
    fn counts_the_densest_window() {
        assert_eq!(max_in_window(&[], 60.0), 0);
        assert_eq!(max_in_window(&[0.0, 59.9, 60.0, 61.0], 60.0), 3);
        assert_eq!(max_in_window(&[0.0, 60.0, 120.0], 60.0), 1);
        let dense: Vec<f64> = (0..500).map(|i| i as f64 * 0.1).collect();
        assert_eq!(max_in_window(&dense, 60.0), 500);
    }
}
