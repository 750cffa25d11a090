//! A fixed-size histogram of durations: bounded memory in a long-running game server,
//! exact maximum, percentiles to 10 ms.

use alloc::vec;
use alloc::vec::Vec;

const BUCKET_S: f64 = 0.01;
const BUCKETS: usize = 6000; // 60 s; longer durations share the last bucket

#[derive(Clone, Debug)]
pub(crate) struct Histogram {
    counts: Vec<u32>,
    n: u64,
    max: f64,
}

impl Histogram {
    pub(crate) fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            n: 0,
            max: 0.0,
        }
    }

    pub(crate) fn record(&mut self, v: f64) {
        let v = if v > 0.0 { v } else { 0.0 };
        // Bucket i holds (i-1)*10ms < v <= i*10ms, so a percentile read as the bucket's upper
        // edge never under-reports.
        // Durations past the last bucket share it. Clamp before the cast: a huge duration
        // saturates the cast to usize::MAX, and the `+ 1` below would then overflow (a
        // panic in debug builds, bucket 0 in release: an under-report).
        let scaled = v / BUCKET_S;
        let i = if scaled >= (BUCKETS - 1) as f64 {
            BUCKETS - 1
        } else {
            let mut i = scaled as usize;
            if (i as f64) * BUCKET_S < v {
                i += 1;
            }
            i.min(BUCKETS - 1)
        };
        self.counts[i] = self.counts[i].saturating_add(1);
        self.n += 1;
        if v > self.max {
            self.max = v;
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.n
    }

    pub(crate) fn max(&self) -> f64 {
        self.max
    }

    /// The smallest bucket edge at or above which `p` of the samples lie (capped at max).
    pub(crate) fn percentile(&self, p: f64) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        let rank = ((self.n as f64) * p) as u64;
        let rank = rank.clamp(1, self.n);
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c as u64;
            if seen >= rank {
                let edge = i as f64 * BUCKET_S;
                return if edge < self.max { edge } else { self.max };
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_max() {
        let mut h = Histogram::new();
        for i in 1..=100 {
            h.record(i as f64 * 0.01);
        }
        assert_eq!(h.count(), 100);
        assert!((h.percentile(0.5) - 0.5).abs() < 1e-9);
        assert!((h.percentile(0.99) - 0.99).abs() < 1e-9);
        assert_eq!(h.max(), 1.0);
        h.record(1000.0);
        assert_eq!(h.max(), 1000.0);
    }
}
