//! How much reviewers agree: Cohen's kappa for every pair of reviewers on
//! the candidates both decided, and pooled over all pairs; and the
//! conflicts still open.

use std::collections::BTreeMap;

use serde::Serialize;

use super::ledger::{Decision, Ledger, Verdict};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agreement {
    pub reviewers: Vec<String>,
    /// Candidates with at least one decision.
    pub decided: usize,
    pub pairs: Vec<PairAgreement>,
    /// Cohen's kappa over every pair's shared candidates pooled into one
    /// table; `None` with no shared candidate or when chance explains all.
    pub overall_kappa: Option<f64>,
    /// Decisions compared for `overall_kappa` (a candidate counts once per pair).
    pub overall_compared: usize,
    /// Candidates whose reviewers disagree and that nobody resolved.
    pub conflicts: Vec<Conflict>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairAgreement {
    pub reviewers: [String; 2],
    /// Candidates both decided.
    pub shared: usize,
    pub agreed: usize,
    pub kappa: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conflict {
    pub candidate_id: String,
    /// Each reviewer's standing decision.
    pub decisions: BTreeMap<String, Decision>,
}

/// Cohen's kappa of paired decisions: (observed − chance) / (1 − chance).
fn kappa(pairs: &[(Decision, Decision)]) -> Option<f64> {
    let n = pairs.len() as f64;
    if pairs.is_empty() {
        return None;
    }
    let observed = pairs.iter().filter(|(a, b)| a == b).count() as f64 / n;
    let mut first: BTreeMap<Decision, f64> = BTreeMap::new();
    let mut second: BTreeMap<Decision, f64> = BTreeMap::new();
    for (a, b) in pairs {
        *first.entry(*a).or_default() += 1.0 / n;
        *second.entry(*b).or_default() += 1.0 / n;
    }
    let chance: f64 = first
        .iter()
        .map(|(k, p)| p * second.get(k).copied().unwrap_or(0.0))
        .sum();
    (chance < 1.0 - 1e-12).then(|| (observed - chance) / (1.0 - chance))
}

/// A kappa for people: two decimals, `n/a` when undefined.
pub fn kappa_text(kappa: Option<f64>) -> String {
    kappa.map_or_else(|| "n/a".to_owned(), |k| format!("{k:.2}"))
}

impl Agreement {
    /// Agreement over each reviewer's latest approve, reject or edit of
    /// each candidate (resolutions included, as their author's decision).
    pub fn of(ledger: &Ledger) -> Agreement {
        let mut latest: BTreeMap<String, BTreeMap<String, Decision>> = BTreeMap::new();
        for entry in &ledger.entries {
            if matches!(
                entry.decision,
                Decision::Approve | Decision::Reject | Decision::Edit
            ) {
                latest
                    .entry(entry.candidate_id.clone())
                    .or_default()
                    .insert(entry.reviewer.clone(), entry.decision);
            }
        }
        let mut reviewers: Vec<String> =
            latest.values().flat_map(|by| by.keys().cloned()).collect();
        reviewers.sort();
        reviewers.dedup();
        let mut pairs = Vec::new();
        let mut pooled = Vec::new();
        for (i, a) in reviewers.iter().enumerate() {
            for b in &reviewers[i + 1..] {
                let shared: Vec<(Decision, Decision)> = latest
                    .values()
                    .filter_map(|by| Some((*by.get(a)?, *by.get(b)?)))
                    .collect();
                if shared.is_empty() {
                    continue;
                }
                pooled.extend(shared.iter().copied());
                pairs.push(PairAgreement {
                    reviewers: [a.clone(), b.clone()],
                    shared: shared.len(),
                    agreed: shared.iter().filter(|(x, y)| x == y).count(),
                    kappa: kappa(&shared),
                });
            }
        }
        let standing = ledger.standing();
        let conflicts = ledger
            .verdicts()
            .into_iter()
            .filter(|(_, v)| *v == Verdict::Conflict)
            .map(|(id, _)| Conflict {
                decisions: standing.get(&id).cloned().unwrap_or_default(),
                candidate_id: id,
            })
            .collect();
        Agreement {
            reviewers,
            decided: latest.len(),
            pairs,
            overall_kappa: kappa(&pooled),
            overall_compared: pooled.len(),
            conflicts,
        }
    }

    /// One line for `siuo status` and the card.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "{} reviewer{}, overall κ {} over {} paired decisions",
            self.reviewers.len(),
            if self.reviewers.len() == 1 { "" } else { "s" },
            kappa_text(self.overall_kappa),
            self.overall_compared
        );
        for pair in &self.pairs {
            text.push_str(&format!(
                "; {} & {}: κ {} ({} of {} agree)",
                pair.reviewers[0],
                pair.reviewers[1],
                kappa_text(pair.kappa),
                pair.agreed,
                pair.shared
            ));
        }
        text.push_str(&format!(
            "; {} conflict{} open",
            self.conflicts.len(),
            if self.conflicts.len() == 1 { "" } else { "s" }
        ));
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision::{Approve, Reject};

    #[test]
    fn kappa_matches_a_worked_example() {
        // 50 items: both approve 20, both reject 15, a-approve/b-reject 5,
        // a-reject/b-approve 10. po = 0.7, pe = 0.5·0.6 + 0.5·0.4 = 0.5, κ = 0.4.
        let mut pairs = vec![(Approve, Approve); 20];
        pairs.extend(vec![(Reject, Reject); 15]);
        pairs.extend(vec![(Approve, Reject); 5]);
        pairs.extend(vec![(Reject, Approve); 10]);
        let k = kappa(&pairs).expect("defined");
        assert!((k - 0.4).abs() < 1e-9, "{k}");
        assert_eq!(kappa(&[(Approve, Approve); 3]), None, "chance explains all");
        assert_eq!(kappa(&[]), None);
        let perfect = kappa(&[(Approve, Approve), (Reject, Reject)]).expect("defined");
        assert!((perfect - 1.0).abs() < 1e-12);
    }
}
