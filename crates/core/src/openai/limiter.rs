//! Requests-per-minute and tokens-per-minute limits as token buckets.
//! A request waits until both buckets hold enough; a limit of 0 is off.

use std::sync::Mutex;
use tokio::time::{Duration, Instant};

struct Bucket {
    capacity: f64,
    available: f64,
    per_second: f64,
}

impl Bucket {
    fn per_minute(limit: u32) -> Option<Bucket> {
        (limit > 0).then(|| Bucket {
            capacity: f64::from(limit),
            available: f64::from(limit),
            per_second: f64::from(limit) / 60.0,
        })
    }

    fn refill(&mut self, elapsed: f64) {
        self.available = (self.available + elapsed * self.per_second).min(self.capacity);
    }

    /// Seconds until `amount` is available (0 when it is).
    fn wait_for(&self, amount: f64) -> f64 {
        let amount = amount.min(self.capacity);
        ((amount - self.available) / self.per_second).max(0.0)
    }
}

struct Buckets {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
    last: Instant,
}

pub struct RateLimiter {
    buckets: Mutex<Buckets>,
}

impl RateLimiter {
    pub fn new(requests_per_minute: u32, tokens_per_minute: u32) -> Self {
        RateLimiter {
            buckets: Mutex::new(Buckets {
                requests: Bucket::per_minute(requests_per_minute),
                tokens: Bucket::per_minute(tokens_per_minute),
                last: Instant::now(),
            }),
        }
    }

    /// Waits until one request of about `tokens` tokens may start, and takes it.
    pub async fn acquire(&self, tokens: u64) {
        loop {
            let wait = {
                let Ok(mut b) = self.buckets.lock() else {
                    return;
                };
                let now = Instant::now();
                let elapsed = now.duration_since(b.last).as_secs_f64();
                b.last = now;
                let tokens = tokens as f64;
                let mut wait: f64 = 0.0;
                if let Some(bucket) = b.requests.as_mut() {
                    bucket.refill(elapsed);
                    wait = wait.max(bucket.wait_for(1.0));
                }
                if let Some(bucket) = b.tokens.as_mut() {
                    bucket.refill(elapsed);
                    wait = wait.max(bucket.wait_for(tokens));
                }
                if wait == 0.0 {
                    if let Some(bucket) = b.requests.as_mut() {
                        bucket.available -= 1.0;
                    }
                    if let Some(bucket) = b.tokens.as_mut() {
                        bucket.available -= tokens.min(bucket.capacity);
                    }
                    return;
                }
                wait
            };
            tokio::time::sleep(
                Duration::try_from_secs_f64(wait).unwrap_or(Duration::from_secs(60)),
            )
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_per_minute_spaces_requests_after_the_burst() {
        let limiter = RateLimiter::new(60, 0);
        let start = tokio::time::Instant::now();
        for _ in 0..62 {
            limiter.acquire(1).await;
        }
        // 60 at once, then one per second.
        assert!(
            start.elapsed() >= Duration::from_millis(1900),
            "{:?}",
            start.elapsed()
        );
    }
}
