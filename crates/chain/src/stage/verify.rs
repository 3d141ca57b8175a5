//! Stage 4: prove each case's unsafe output. A jury of judge models checks
//! that the pair is unsafe together, that the question alone does not give
//! the hazard away, that the image shows what the safety warning relies on,
//! and that the reference answer is safe and helpful (see [`crate::jury`]).
//! With `verify: {type: none}`, the offline default, every candidate is
//! kept as not cross-verified, and the release says so.
//!
//! Output: `verify/verdicts.jsonl`, one per candidate dedupe kept, with
//! every vote; `verify/requests-<juror>.jsonl`, every request. A candidate
//! some juror could not judge gets no verdict: the stage stays unfinished
//! and the next run asks again, repeating no answered request.

use std::collections::BTreeSet;

use super::{StageInput, StageReport, StageSpec, VERDICTS};
use crate::jury::config::VerifyConfig;
use crate::jury::{self, Jury, JuryCase};
use crate::project::Project;
use siuo_core::content_hash::{ContentHasher, Digest};
use siuo_core::error::{Error, Result};
use siuo_core::pixels;
use siuo_core::progress::Progress;
use siuo_core::record::{Decision, VerifyVerdict};
use siuo_core::release::{CaseVerification, CheckVerification, ReleasedVote, Vouch};

pub const STAGE: StageSpec = StageSpec {
    name: "verify",
    about: "Prove with a jury of judge models that each pair is unsafe together, that the question does not give the hazard away, and that the image shows it",
    filters: true,
    key,
    run,
    vouches: Some(vouches),
    shardable: true,
};

/// Cases judged at once: enough to keep every juror's in-flight slots
/// busy, few enough that a crash loses little work.
const BATCH: usize = 16;

fn key(project: &Project, upstream: Option<&Digest>) -> Result<Digest> {
    let mut hasher = ContentHasher::new("siuo.stage.verify.v1");
    hasher.str(&upstream.map(Digest::hex).unwrap_or_default());
    match &project.settings().verify {
        VerifyConfig::None => hasher.str("none"),
        VerifyConfig::Jury(settings) => hasher
            .str("jury")
            .str(&jury::digest(settings, &project.config.root, &project.taxonomy)?.hex()),
    };
    Ok(hasher.finish())
}

fn run(project: &Project, input: &StageInput) -> Result<StageReport> {
    let candidates = input.survivors(project)?;
    let ids: BTreeSet<&str> = candidates.iter().map(|c| c.id.as_str()).collect();
    let VerifyConfig::Jury(settings) = &project.settings().verify else {
        let verdicts = candidates
            .iter()
            .map(|c| VerifyVerdict {
                candidate_id: c.id.clone(),
                method: "none".to_owned(),
                quorum: String::new(),
                checks: Vec::new(),
                suggested_label: None,
                decision: Decision::Keep,
            })
            .collect();
        return super::finish_with_verdicts(&input.dir, &input.key, verdicts, &ids, |_, n| {
            format!("{n} candidates kept, not cross-verified (verify: {{type: none}})")
        });
    };
    let jury = Jury::load(
        settings,
        &project.config.root,
        &project.raw(),
        &input.dir.dir,
        &project.taxonomy,
        input.shard,
    )?;
    let mut journal = input.dir.verdict_journal::<VerifyVerdict>(&input.key)?;
    let progress = Progress::new(STAGE.name, candidates.len(), project.interactive);
    let pending = super::pending(
        &candidates,
        |id| journal.is_done(id),
        input.shard,
        &progress,
    );
    let images = project.images();
    let mut unjudged = 0;
    let mut first_failure = None;
    for batch in pending.chunks(jury.items_at_once(BATCH)) {
        let mut cases = Vec::with_capacity(batch.len());
        for candidate in batch {
            cases.push(JuryCase {
                candidate,
                image_url: pixels::data_url(&images.read(&candidate.image)?),
            });
        }
        for (candidate, judged) in batch.iter().zip(jury.judge(&cases)?) {
            progress.before_item();
            match judged {
                Ok(mut judged) => {
                    if candidate.is_control() {
                        judged.decision = control_decision(&judged.checks);
                    }
                    if project.interactive && !judged.decision.is_keep() {
                        let reasons = judged.decision.reasons().join(", ");
                        progress.suspend(|| {
                            eprintln!("verify: candidate {} not kept: {reasons}", candidate.id);
                        });
                    }
                    journal.append(VerifyVerdict {
                        candidate_id: candidate.id.clone(),
                        method: "jury".to_owned(),
                        quorum: jury.quorum().name().to_owned(),
                        checks: judged.checks,
                        suggested_label: judged.suggested_label,
                        decision: judged.decision,
                    })?;
                }
                Err(failure) => {
                    unjudged += 1;
                    first_failure.get_or_insert(failure);
                }
            }
            progress.item_done();
        }
    }
    progress.finish();
    if let Some(first) = first_failure {
        return Err(Error::Incomplete {
            run: input.run_id.clone(),
            failed: unjudged,
            first,
        });
    }
    let mut report =
        super::finish_journaled(&input.dir, &input.key, &journal, &ids, |kept, processed| {
            format!("the jury vouched for {kept} of {processed} candidates")
        })?;
    // Every invocation's requests, not only this one's.
    report.usage = siuo_core::openai::usage::logged_in(&input.dir.dir)?.or(Some(jury.usage()));
    input.dir.finish(&report)?;
    Ok(report)
}

/// A benign control is vouched for when the jury finds the pair not
/// unsafe together: its joint-risk check fails (the other checks ask about
/// a hazard a control does not have, and do not decide).
fn control_decision(checks: &[siuo_core::record::CheckRecord]) -> Decision {
    let joint_risk = checks
        .iter()
        .find(|c| c.check == crate::jury::check::JudgeCheck::JointRisk.name());
    match joint_risk.map(|c| c.outcome.as_str()) {
        Some("fail") => Decision::Keep,
        _ => Decision::Reject {
            reasons: vec![CONTROL_NOT_BENIGN.to_owned()],
        },
    }
}

/// The reason a control the jury did not find benign is not released.
pub const CONTROL_NOT_BENIGN: &str = "verify:control-not-benign";

/// The release's record of every kept candidate: method, quorum, and per
/// check its template, outcome and votes (raw answers stay in the run).
fn vouches(
    project: &Project,
    run_id: &str,
    each: &mut dyn FnMut(String, Vouch) -> Result<()>,
) -> Result<()> {
    super::for_each_record(project, run_id, STAGE.name, VERDICTS, |v: VerifyVerdict| {
        if !v.decision.is_keep() {
            return Ok(());
        }
        let checks = v
            .checks
            .into_iter()
            .map(|check| CheckVerification {
                check: check.check,
                template: check.template,
                template_blake3: check.template_blake3,
                outcome: check.outcome,
                votes: check
                    .votes
                    .into_iter()
                    .map(|vote| ReleasedVote {
                        juror: vote.juror,
                        model: vote.model,
                        vote: vote.vote,
                    })
                    .collect(),
            })
            .collect();
        let verification = CaseVerification {
            method: v.method,
            quorum: v.quorum,
            checks,
        };
        each(v.candidate_id, Vouch::Verification(verification))
    })
}
