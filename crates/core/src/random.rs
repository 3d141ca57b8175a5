//! A tiny non-cryptographic random source (splitmix64) for retry jitter and
//! emulated latency: enough for spreading retries, no dependency.

use std::sync::atomic::{AtomicU64, Ordering};

pub struct SplitMix64(AtomicU64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(AtomicU64::new(seed))
    }

    pub fn next_u64(&self) -> u64 {
        let mut z = self.0.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
