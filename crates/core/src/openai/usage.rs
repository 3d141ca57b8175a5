//! Token and cost accounting per request, and the budget cap.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::config::{Budget, Price};

/// Tokens and cost of some requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Requests answered, live or from the cache.
    pub requests: u64,
    pub cached_requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Cost of live requests, when the price table covers their models.
    pub cost: f64,
}

impl Usage {
    pub fn tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }

    /// Total usage of logged requests.
    pub fn of_records<'a>(records: impl IntoIterator<Item = &'a RequestRecord>) -> Usage {
        let mut total = Usage::default();
        for record in records {
            total.add(&record.usage());
        }
        total
    }

    /// What was used after `earlier` was read off the same ledger.
    pub fn since(&self, earlier: &Usage) -> Usage {
        Usage {
            requests: self.requests.saturating_sub(earlier.requests),
            cached_requests: self.cached_requests.saturating_sub(earlier.cached_requests),
            prompt_tokens: self.prompt_tokens.saturating_sub(earlier.prompt_tokens),
            completion_tokens: self
                .completion_tokens
                .saturating_sub(earlier.completion_tokens),
            cost: (self.cost - earlier.cost).max(0.0),
        }
    }

    pub fn add(&mut self, other: &Usage) {
        self.requests += other.requests;
        self.cached_requests += other.cached_requests;
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.cost += other.cost;
    }
}

/// One answered request, as logged in `generate/requests.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Cache key of the request.
    pub key: String,
    pub endpoint: String,
    pub model: String,
    pub cached: bool,
    pub attempts: u32,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost: f64,
    /// Duration of the answered attempt, from sending to the full answer.
    pub latency_ms: u64,
}

impl RequestRecord {
    /// What this request adds to a run's usage. Cached answers cost nothing.
    pub fn usage(&self) -> Usage {
        if self.cached {
            return Usage {
                requests: 1,
                cached_requests: 1,
                ..Usage::default()
            };
        }
        Usage {
            requests: 1,
            cached_requests: 0,
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            cost: self.cost,
        }
    }
}

pub fn cost(prices: &BTreeMap<String, Price>, model: &str, prompt: u64, completion: u64) -> f64 {
    prices.get(model).map_or(0.0, |p| {
        (prompt as f64 * p.prompt_per_million + completion as f64 * p.completion_per_million) / 1e6
    })
}

/// Running total of a run's usage, checked against the budget before
/// every new request.
pub struct Ledger {
    budget: Budget,
    spent: Mutex<Usage>,
}

/// The budget is spent: no new request may start.
#[derive(Debug, Clone)]
pub struct BudgetExhausted {
    pub spent: String,
    pub cap: String,
}

impl Ledger {
    pub fn new(budget: Budget, already_spent: Usage) -> Self {
        Ledger {
            budget,
            spent: Mutex::new(already_spent),
        }
    }

    pub fn total(&self) -> Usage {
        self.spent.lock().map(|u| *u).unwrap_or_default()
    }

    pub fn record(&self, usage: &Usage) {
        if let Ok(mut spent) = self.spent.lock() {
            spent.add(usage);
        }
    }

    pub fn check(&self) -> Result<(), BudgetExhausted> {
        let spent = self.total();
        if let Some(cap) = self.budget.max_tokens
            && spent.tokens() >= cap
        {
            return Err(BudgetExhausted {
                spent: format!("{} tokens", spent.tokens()),
                cap: format!("{cap} tokens"),
            });
        }
        if let Some(cap) = self.budget.max_cost
            && spent.cost >= cap
        {
            return Err(BudgetExhausted {
                spent: format!("{:.4}", spent.cost),
                cap: format!("{cap:.4}"),
            });
        }
        Ok(())
    }
}

/// Usage over every request log (`requests*.jsonl`) of a stage folder;
/// `None` when the stage logged no request.
pub fn logged_in(dir: &std::path::Path) -> crate::error::Result<Option<Usage>> {
    let is_log = |p: &std::path::Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("requests") && n.ends_with(".jsonl"))
    };
    let listed = |dir: &std::path::Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir)
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    // A stage's own logs, and those of the model panels it keeps in subfolders.
    let mut logs = Vec::new();
    for path in listed(dir) {
        if path.is_dir() {
            logs.extend(listed(&path).into_iter().filter(|p| is_log(p)));
        } else if is_log(&path) {
            logs.push(path);
        }
    }
    if logs.is_empty() {
        return Ok(None);
    }
    logs.sort();
    let mut usage = Usage::default();
    for log in logs {
        let records = crate::input_file::read_jsonl::<RequestRecord>(&log)?;
        usage.add(&Usage::of_records(&records));
    }
    Ok(Some(usage))
}
