//! The replicas behind one model's base URLs, and which one a try goes to.
//!
//! A try goes to the server with the fewest requests outstanding, ties
//! taken in turn, so replicas share the load whatever their speed. A
//! server whose tries fail `eject_after_failures` times in a row
//! (connection errors, timeouts, 5xx, 429) is taken out of rotation for
//! `eject_seconds`; its work moves to the others. When every server is
//! out, the one due back soonest is tried, so a run never stalls on the
//! bookkeeping.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub struct Servers {
    servers: Vec<Server>,
    eject_after_failures: u32,
    eject_for: Duration,
    /// Where the next tie is broken, so equal servers take turns.
    turn: AtomicUsize,
}

struct Server {
    base_url: String,
    outstanding: AtomicU32,
    /// Failed tries since its last success.
    failures: AtomicU32,
    /// Tries answered, for `siuo` messages and tests.
    answered: AtomicU64,
    out_until: Mutex<Option<Instant>>,
}

/// The server a try was sent to; report how it went with
/// [`Servers::succeeded`] or [`Servers::failed`].
pub struct Pick<'a> {
    servers: &'a Servers,
    pub index: usize,
}

impl Pick<'_> {
    pub fn base_url(&self) -> &str {
        &self.servers.servers[self.index].base_url
    }
}

impl Drop for Pick<'_> {
    fn drop(&mut self) {
        self.servers.servers[self.index]
            .outstanding
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Servers {
    pub fn new(base_urls: &[String], eject_after_failures: u32, eject_seconds: f64) -> Servers {
        Servers {
            servers: base_urls
                .iter()
                .map(|url| Server {
                    base_url: url.trim_end_matches('/').to_owned(),
                    outstanding: AtomicU32::new(0),
                    failures: AtomicU32::new(0),
                    answered: AtomicU64::new(0),
                    out_until: Mutex::new(None),
                })
                .collect(),
            eject_after_failures: eject_after_failures.max(1),
            eject_for: Duration::try_from_secs_f64(eject_seconds).unwrap_or(Duration::ZERO),
            turn: AtomicUsize::new(0),
        }
    }

    pub fn base_urls(&self) -> impl Iterator<Item = &str> {
        self.servers.iter().map(|s| s.base_url.as_str())
    }

    /// The first server; the one messages name when no try was made.
    pub fn first(&self) -> &str {
        self.servers.first().map_or("", |s| s.base_url.as_str())
    }

    /// The server for the next try: in rotation, not `avoid` (the one the
    /// last try failed on) when another is in rotation, fewest outstanding.
    pub fn pick(&self, avoid: Option<usize>) -> Pick<'_> {
        let now = Instant::now();
        let back_at = |server: &Server| -> Option<Instant> {
            server
                .out_until
                .lock()
                .ok()
                .and_then(|until| *until)
                .filter(|until| *until > now)
        };
        let in_rotation: Vec<usize> = (0..self.servers.len())
            .filter(|i| back_at(&self.servers[*i]).is_none())
            .collect();
        let mut choices: Vec<usize> = match in_rotation.len() > 1 {
            true => in_rotation
                .iter()
                .copied()
                .filter(|i| Some(*i) != avoid)
                .collect(),
            false => in_rotation,
        };
        if choices.is_empty() {
            // All out: the one due back first.
            let soonest = (0..self.servers.len())
                .min_by_key(|i| back_at(&self.servers[*i]))
                .unwrap_or(0);
            choices.push(soonest);
        }
        let start = self.turn.fetch_add(1, Ordering::Relaxed);
        let count = choices.len();
        let index = (0..count)
            .map(|offset| choices[(start + offset) % count])
            .min_by_key(|i| self.servers[*i].outstanding.load(Ordering::Relaxed))
            .unwrap_or(0);
        self.servers[index]
            .outstanding
            .fetch_add(1, Ordering::Relaxed);
        Pick {
            servers: self,
            index,
        }
    }

    pub fn succeeded(&self, pick: &Pick<'_>) {
        let server = &self.servers[pick.index];
        server.failures.store(0, Ordering::Relaxed);
        server.answered.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failed try; returns true when it took the server out.
    pub fn failed(&self, pick: &Pick<'_>) -> bool {
        if self.servers.len() < 2 {
            return false;
        }
        let server = &self.servers[pick.index];
        let failures = server.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < self.eject_after_failures {
            return false;
        }
        server.failures.store(0, Ordering::Relaxed);
        if let Ok(mut until) = server.out_until.lock() {
            *until = Some(Instant::now() + self.eject_for);
        }
        true
    }

    /// Tries each server answered, in config order.
    pub fn answered(&self) -> Vec<u64> {
        self.servers
            .iter()
            .map(|s| s.answered.load(Ordering::Relaxed))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers() -> Servers {
        Servers::new(
            &["http://a/v1".to_owned(), "http://b/v1/".to_owned()],
            2,
            60.0,
        )
    }

    #[test]
    fn tries_go_to_the_server_with_fewest_outstanding() {
        let servers = servers();
        let first = servers.pick(None);
        let second = servers.pick(None);
        assert_ne!(first.index, second.index);
        let third = servers.pick(None);
        drop(first);
        // The server of `first` now has none outstanding, the other two.
        let fourth = servers.pick(None);
        assert_ne!(fourth.index, third.index);
        assert_eq!(second.base_url().len(), "http://a/v1".len());
    }

    #[test]
    fn a_failing_server_is_taken_out_and_its_work_moves() {
        let servers = servers();
        let pick = loop {
            let pick = servers.pick(None);
            if pick.index == 1 {
                break pick;
            }
        };
        assert!(!servers.failed(&pick));
        assert!(servers.failed(&pick));
        drop(pick);
        for _ in 0..10 {
            assert_eq!(servers.pick(None).index, 0);
        }
        // Avoiding the only server in rotation still gives it.
        assert_eq!(servers.pick(Some(0)).index, 0);
        let healthy = servers.pick(None);
        servers.succeeded(&healthy);
        assert_eq!(servers.answered(), vec![1, 0]);
    }

    #[test]
    fn a_retry_avoids_the_server_that_just_failed() {
        let servers = servers();
        for _ in 0..10 {
            assert_eq!(servers.pick(Some(1)).index, 0);
            assert_eq!(servers.pick(Some(0)).index, 1);
        }
    }
}
