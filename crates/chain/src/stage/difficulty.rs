//! Stage 5: keep the cases models fail. A panel of target models answers
//! each candidate verify kept, judges grade the answers with the eval
//! protocol (`eval.protocol`, `eval.templates`; see [`crate::panel::asking`]),
//! and a candidate is kept when enough of the panel's answers are unsafe:
//! its difficulty (the share of judged responses that are unsafe) is at
//! least `min_difficulty` and at least `min_failing_models` models vote
//! unsafe on it. An easy candidate is kept in the run with the reason
//! `difficulty:too-easy`, so a later export with a lower bar can release
//! it without asking again. With `difficulty: {type: none}`, the offline
//! default, every candidate is kept with its difficulty unmeasured.
//!
//! Output: `difficulty/verdicts.jsonl`, one per candidate, with each panel
//! model's result; `difficulty/responses.jsonl` and `judgements.jsonl`,
//! every answer; `difficulty/requests-*.jsonl`, every request. A request
//! that fails leaves the stage unfinished; the next run asks only what is
//! missing.

use std::collections::BTreeSet;

use super::{StageInput, StageReport, StageSpec, VERDICTS};
use crate::panel::config::DifficultyConfig;
use crate::panel::difficulty::{DifficultyMeter, panel_ref, template_digests};
use crate::project::Project;
use siuo_core::content_hash::{ContentHasher, Digest};
use siuo_core::error::{Error, Result};
use siuo_core::progress::Progress;
use siuo_core::record::{Candidate, DifficultyVerdict};
use siuo_core::release::{CaseDifficulty, Vouch};

pub const STAGE: StageSpec = StageSpec {
    name: "difficulty",
    about: "Keep the cases a panel of target models fails: each candidate is answered by the panel and graded with the eval protocol",
    filters: true,
    key,
    run,
    vouches: Some(vouches),
    shardable: true,
};

/// Part of every response key of the stage's panel.
const SCOPE: &str = "difficulty";

fn key(project: &Project, upstream: Option<&Digest>) -> Result<Digest> {
    let mut hasher = ContentHasher::new("siuo.stage.difficulty.v1");
    hasher.str(&upstream.map(Digest::hex).unwrap_or_default());
    let settings = project.settings();
    let DifficultyConfig::Panel(panel) = &settings.difficulty else {
        hasher.str("none");
        return Ok(hasher.finish());
    };
    let (targets, judges) = panel.resolved(&settings.eval);
    hasher
        .str("panel")
        .str(
            &panel_ref(
                &targets,
                &judges,
                &template_digests(&settings.eval, &project.config.root)?,
                &settings.eval,
            )
            .key(),
        )
        .str(&panel.min_difficulty.to_string())
        .u64(u64::from(panel.min_failing_models));
    for target in &targets {
        hasher
            .u64(u64::from(target.samples))
            .str(&target.temperature.to_string())
            .u64(u64::from(target.max_tokens))
            .str(target.system_prompt.as_deref().unwrap_or(""));
    }
    for judge in &judges {
        hasher.u64(u64::from(judge.max_tokens));
    }
    Ok(hasher.finish())
}

fn run(project: &Project, input: &StageInput) -> Result<StageReport> {
    let candidates = input.survivors(project)?;
    let ids: BTreeSet<&str> = candidates.iter().map(|c| c.id.as_str()).collect();
    let settings = project.settings();
    let DifficultyConfig::Panel(thresholds) = &settings.difficulty else {
        let verdicts = (candidates.iter())
            .map(|c| DifficultyVerdict::unmeasured(&c.id, "none"))
            .collect();
        return super::finish_with_verdicts(&input.dir, &input.key, verdicts, &ids, |_, n| {
            format!("{n} candidates kept, difficulty not measured (difficulty: {{type: none}})")
        });
    };
    // Controls are benign by design: nothing for the panel to fail.
    let (controls, candidates): (Vec<&Candidate>, Vec<&Candidate>) =
        candidates.iter().partition(|c| c.is_control());
    let mut meter = DifficultyMeter::open(
        thresholds,
        &settings.eval,
        &project.config.root,
        &project.raw(),
        &input.dir.dir,
        SCOPE,
        input.shard,
    )?;
    // Measured verdicts are journaled, so shards (see `siuo_core::shard`) can
    // split the panel's work and a merge asks nothing again.
    let mut journal = input.dir.verdict_journal::<DifficultyVerdict>(&input.key)?;
    let todo: Vec<&Candidate> = (candidates.iter().copied())
        .filter(|c| !journal.is_done(&c.id) && input.owns(&c.id))
        .collect();
    let progress = Progress::new(STAGE.name, candidates.len(), project.interactive);
    progress.skip(candidates.len() - todo.len());
    let runtime = siuo_core::openai::client::runtime("the difficulty panel's client")?;
    let images = project.images();
    let measured = runtime.block_on(meter.measure(
        &todo,
        &project.taxonomy,
        &images,
        &progress,
        |verdict| journal.append(verdict),
    ))?;
    progress.finish();
    measured.map_err(|failures| Error::Incomplete {
        run: input.run_id.clone(),
        failed: failures.len(),
        first: failures.first().cloned().unwrap_or_default(),
    })?;
    for control in controls {
        if !journal.is_done(&control.id) && input.owns(&control.id) {
            journal.append(DifficultyVerdict::unmeasured(&control.id, "control"))?;
        }
    }
    let mut report =
        super::finish_journaled(&input.dir, &input.key, &journal, &ids, |kept, processed| {
            format!(
                "{kept} of {processed} candidates are hard enough for the panel ({} models)",
                meter.targets.len()
            )
        })?;
    report.usage = siuo_core::openai::usage::logged_in(&input.dir.dir)?;
    input.dir.finish(&report)?;
    Ok(report)
}

/// The release's record of every kept candidate the panel measured: its
/// difficulty, and the panel it was measured on.
fn vouches(
    project: &Project,
    run_id: &str,
    each: &mut dyn FnMut(String, Vouch) -> Result<()>,
) -> Result<()> {
    let settings = project.settings();
    let DifficultyConfig::Panel(panel) = &settings.difficulty else {
        return Ok(());
    };
    let (targets, judges) = panel.resolved(&settings.eval);
    let reference = panel_ref(
        &targets,
        &judges,
        &template_digests(&settings.eval, &project.config.root)?,
        &settings.eval,
    );
    super::for_each_record(
        project,
        run_id,
        STAGE.name,
        VERDICTS,
        |v: DifficultyVerdict| {
            let (true, Some(difficulty)) = (v.decision.is_keep(), v.difficulty) else {
                return Ok(());
            };
            let difficulty = CaseDifficulty {
                difficulty,
                discrimination: v.discrimination.unwrap_or(0.0),
                failing_models: v.failing_models,
                panel: reference.clone(),
            };
            each(v.candidate_id, Vouch::Difficulty(difficulty))
        },
    )
}
