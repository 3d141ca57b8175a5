//! The chain itself: [`CHAIN`] lists the stages in order, each reading the
//! finished output of the row before it, and [`run`] is the only code that
//! knows the order. It computes every stage's key, checks that the
//! upstream finished with its key, and hands the stage its input.

use super::spec::{StageInput, StageSpec, Upstream};
use super::{check, dedupe, difficulty, export, generate, verify};
use crate::project::Project;
use siuo_core::content_hash::{ContentHasher, Digest};
use siuo_core::error::{Error, Result};
use siuo_core::stage_dir::StageReport;

/// The stages in the order `siuo run` runs them.
pub const CHAIN: &[StageSpec] = &[
    generate::STAGE,
    check::STAGE,
    dedupe::STAGE,
    verify::STAGE,
    difficulty::STAGE,
    export::STAGE,
];

/// The stage named `name`.
pub fn find(name: &str) -> Option<&'static StageSpec> {
    CHAIN.iter().find(|s| s.name == name)
}

/// Names of every stage, in chain order.
pub fn names() -> impl Iterator<Item = &'static str> {
    CHAIN.iter().map(|s| s.name)
}

/// Where a stage sits in the chain; a name not in [`CHAIN`] is past its end.
pub fn position(name: &str) -> usize {
    CHAIN
        .iter()
        .position(|s| s.name == name)
        .unwrap_or(CHAIN.len())
}

/// The run id of the current inputs and the keys of the chain up to and
/// including `name`, in chain order: each stage's own key, and the key its
/// successor's key is computed from. The review ledger applies from the
/// first stage on, so its digest enters there: a decision re-keys every
/// stage after the first, none of them by an edit of its own.
fn keys_up_to(project: &Project, name: &str) -> Result<(String, Vec<ChainKey>)> {
    let review = review_digest(project)?;
    let mut keys: Vec<ChainKey> = Vec::new();
    for spec in CHAIN.iter().take(position(name) + 1) {
        let upstream = keys.last().map(|k| k.handed);
        let own = (spec.key)(project, upstream.as_ref())?;
        let handed = match keys.is_empty() {
            true => ContentHasher::new("siuo.stage.reviewed.v1")
                .str(&own.hex())
                .str(&review.hex())
                .finish(),
            false => own,
        };
        keys.push(ChainKey { own, handed });
    }
    let run_id = keys
        .first()
        .map(|k| Project::run_id(&k.own))
        .unwrap_or_default();
    Ok((run_id, keys))
}

/// The run of the current inputs.
pub fn current_run(project: &Project) -> Result<String> {
    keys_up_to(project, CHAIN[0].name).map(|(run_id, _)| run_id)
}

#[derive(Clone, Copy)]
struct ChainKey {
    /// The stage is done when its report has this key.
    own: Digest,
    /// What the next stage's key is computed from.
    handed: Digest,
}

/// What the chain's output depends on in the review ledger and config.
fn review_digest(project: &Project) -> Result<Digest> {
    Ok(ContentHasher::new("siuo.review.v1")
        .str(&project.review_ledger()?.digest().hex())
        .u64(u64::from(project.settings().review.required))
        .finish())
}

/// Runs one stage of the chain on the run of the current inputs, on the
/// items of the project's shard (all of them for `None`): an error if its upstream has
/// not finished with its current key, the stored report if the stage
/// already finished with its own.
pub fn run(project: &Project, spec: &StageSpec) -> Result<StageReport> {
    let shard = project.shard;
    let (run_id, keys) = keys_up_to(project, spec.name)?;
    let at = position(spec.name);
    let key = keys[at].own;
    let upstream = match at
        .checked_sub(1)
        .map(|before| (&CHAIN[before], keys[before]))
    {
        None => None,
        Some((needs, keys)) => {
            let needs = needs.name;
            let report = project
                .stage_dir(&run_id, needs)
                .finished(&keys.own)?
                .ok_or_else(|| Error::StageNotReady {
                    stage: spec.name,
                    needs,
                    run: run_id.clone(),
                })?;
            Some(Upstream {
                name: needs,
                key: keys.handed,
                report,
            })
        }
    };
    let dir = project.stage_dir(&run_id, spec.name).of_shard(shard);
    if let Some(report) = dir.finished(&key)? {
        return Ok(report);
    }
    (spec.run)(
        project,
        &StageInput {
            run_id,
            key,
            upstream,
            dir,
            shard,
            before: &CHAIN[..at],
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn stage_names_are_unique() {
        let mut seen = BTreeSet::new();
        for (index, spec) in CHAIN.iter().enumerate() {
            assert!(seen.insert(spec.name), "{} twice", spec.name);
            assert_eq!(position(spec.name), index);
        }
    }
}
