//! Stage 6: publish the run's new cases, and the maintainer actions
//! recorded since the last release (`siuo retire`, `siuo relabel`), as the
//! next release `curated/v<semver>/` (see [`crate::release_writer::publish`]).
//! Nothing to release is a clean no-op.

use std::collections::{BTreeMap, BTreeSet};

use super::{StageInput, StageReport, StageSpec};
use crate::project::Project;
use crate::release_writer::publish::{self, Draft, DraftCase, Spool};
use siuo_core::content_hash::{ContentHasher, Digest};
use siuo_core::error::Result;
use siuo_core::input_file;
use siuo_core::journal::{LineAt, LineJournal};
use siuo_core::record::{Candidate, CheckVerdict, Fingerprint};
use siuo_core::release::maintainer_action::{self, MaintainerAction};
use siuo_core::release::{self, CheckSummary, IMAGES, ReleasedCase, Vouch};
use siuo_core::text_normal;

pub const STAGE: StageSpec = StageSpec {
    name: "export",
    about: "Publish the run's new cases, and the recorded retirements and relabels, as the next release in curated/",
    filters: false,
    key,
    run,
    vouches: None,
    shardable: false,
};

/// The export of a run depends on the run, the maintainer actions and the
/// latest release (another run or an import may have released since).
/// The key is stored as it is after exporting, so a rerun with nothing new
/// finds it unchanged.
fn key(project: &Project, upstream_key: Option<&Digest>) -> Result<Digest> {
    let curated = project.curated();
    let mut hasher = ContentHasher::new("siuo.stage.export.v2");
    hasher
        .str(&upstream_key.map(Digest::hex).unwrap_or_default())
        .str(release::FORMAT)
        .str(&siuo_core::content_hash::digest_of(&project.settings().export).hex());
    for action in maintainer_action::read(&curated, &project.taxonomy)? {
        hasher.str(&serde_json::to_string(&action).unwrap_or_default());
    }
    if let Some(latest) = release::list(&curated)?.last() {
        let manifest = input_file::read_bytes(&latest.dir.join(release::MANIFEST))?;
        hasher.str(&latest.name()).field(&manifest);
    }
    Ok(hasher.finish())
}

fn run(project: &Project, input: &StageInput) -> Result<StageReport> {
    let run_id = &input.run_id;
    let curated = project.curated();
    // The upstream's kept count: what this export had to release.
    let upstream_kept = input.upstream.as_ref().map_or(0, |u| u.report.kept);
    release::verify::before_building_on(&curated, &release::list(&curated)?)?;
    // Read once: both the new cases and the draft's question ids need it.
    let released = release::released_index(&curated, &project.raw())?;
    let with_control = cases_with_a_control(project, run_id)?;
    let new_cases = unreleased_cases(project, input, &released)?;
    let actions = maintainer_action::read(&curated, &project.taxonomy)?;
    maintainer_action::check_released(&curated, &actions, released.max_question_id)?;
    let (draft, held) = draft(
        project,
        input,
        NewCases {
            cases: new_cases,
            with_control,
        },
        &actions,
        released.max_question_id,
    )?;
    let (changed, retired) = (draft.changed.len(), draft.retired.len());
    let (added, controls) = (draft.added.len() as u64, draft.added_controls.len() as u64);
    let version = publish::publish(project, draft)?;
    let kept = if version.is_some() {
        added + controls
    } else {
        0
    };
    let summary = match &version {
        None => "nothing new to release".to_owned(),
        Some(version) => format!(
            "released v{version} ({added} added, {changed} changed, {retired} retired{}) in {}",
            match controls {
                0 => String::new(),
                n => format!(", {n} controls added"),
            },
            curated.join(format!("v{version}")).display()
        ),
    };
    publish::write_changelog(&curated, &project.raw())?;
    let report = StageReport {
        stage: STAGE.name.to_owned(),
        run_id: run_id.clone(),
        key: key(project, input.upstream.as_ref().map(|u| &u.key))?.hex(),
        processed: upstream_kept,
        kept,
        rejected: upstream_kept.saturating_sub(kept),
        rejections: held.reasons(upstream_kept.saturating_sub(kept)),
        release: version.map(|v| format!("v{v}")),
        summary,
        reused: false,
        held: None,
        usage: None,
    };
    input.dir.finish(&report)?;
    Ok(report)
}

/// The run's kept candidates that no release holds, and the ids of the
/// candidates the generator made a control for.
struct NewCases {
    cases: Vec<(Candidate, Fingerprint, Vec<CheckSummary>)>,
    with_control: BTreeSet<String>,
}

/// The next release: the latest one after the pending maintainer actions,
/// plus the run's new cases with fresh `question_id`s.
fn draft(
    project: &Project,
    input: &StageInput,
    NewCases {
        cases: new_cases,
        with_control,
    }: NewCases,
    actions: &[MaintainerAction],
    mut max_question_id: u64,
) -> Result<(Draft, Held)> {
    let releases = release::list(&project.curated())?;
    let parent = releases.last().cloned();
    // Nothing here holds the release: the parent's cases are streamed
    // through the maintainer actions into the draft's spool.
    let spool = Spool::create(&project.raw())?;
    let mut cases = spool.cases("cases.jsonl")?;
    let mut by_case = maintainer_action::CaseActions::new(&project.taxonomy, actions);
    // Candidate id → question id of every case released: controls follow them.
    let mut question_of: BTreeMap<String, u64> = BTreeMap::new();
    if let Some(parent) = &parent {
        let images = parent.dir.join(IMAGES);
        parent.for_each_case(|case| {
            let Some(case) = by_case.apply(case) else {
                return Ok(());
            };
            question_of.insert(case.candidate_id.clone(), case.question_id);
            cases.push(&DraftCase {
                image_source: images.join(&case.image),
                case,
            })
        })?;
    }
    let (changed, retired) = by_case.finish();
    let images = project.images();
    let mut verifications = vouched(project, input, &spool)?;
    let (new_controls, mut new_cases): (Vec<_>, Vec<_>) =
        new_cases.into_iter().partition(|(c, ..)| c.is_control());
    // `review.required`: a case needs a reviewer's approval (an edit
    // approves its revision); its control follows it.
    let before = new_cases.len();
    if project.settings().review.required {
        let approvals = project.review_ledger()?.approvals();
        new_cases.retain(|(c, ..)| approvals.contains_key(&c.id));
    }
    let not_approved = (before - new_cases.len()) as u64;
    // A case whose generator made a control is released with it or not at
    // all: the control split must cover every case it was configured for.
    let controls_kept: BTreeSet<&str> = (new_controls.iter())
        .filter_map(|(c, ..)| c.control_of.as_deref())
        .collect();
    let before = new_cases.len();
    new_cases
        .retain(|(c, ..)| !with_control.contains(&c.id) || controls_kept.contains(c.id.as_str()));
    let mut held = Held {
        not_approved,
        without_control: (before - new_cases.len()) as u64,
        orphan_controls: 0,
    };
    // A new case of the run, with its next question id and what the
    // stages vouched for it.
    let mut new_case = |candidate: Candidate, fingerprint, checks: Vec<CheckSummary>, id| {
        let image_source = images.path(&candidate.image);
        let vouches = verifications.take(&candidate.id)?;
        let mut case = released_case(project, id, candidate, fingerprint, checks);
        for vouch in vouches {
            vouch.apply(&mut case);
        }
        Ok::<_, siuo_core::error::Error>(DraftCase { case, image_source })
    };
    let mut added = Vec::with_capacity(new_cases.len());
    for (candidate, fingerprint, check) in new_cases {
        max_question_id += 1;
        added.push(max_question_id);
        let case = new_case(candidate, fingerprint, check, max_question_id)?;
        question_of.insert(case.case.candidate_id.clone(), max_question_id);
        cases.push(&case)?;
    }
    // Controls follow their cases: the parent's of the cases still
    // released, then the run's whose case is released now or was before.
    let released: BTreeSet<u64> = question_of.values().copied().collect();
    let mut controls = spool.cases("controls.jsonl")?;
    if let Some(parent) = &parent {
        let images = parent.dir.join(IMAGES);
        parent.for_each_control(|case| match case.control_of {
            Some(of) if released.contains(&of) => controls.push(&DraftCase {
                image_source: images.join(&case.image),
                case,
            }),
            _ => Ok(()),
        })?;
    }
    let mut added_controls = Vec::new();
    for (candidate, fingerprint, check) in new_controls {
        let of = candidate.control_of.as_deref().unwrap_or_default();
        let Some(&case_question_id) = question_of.get(of) else {
            held.orphan_controls += 1;
            continue;
        };
        max_question_id += 1;
        added_controls.push(max_question_id);
        let mut control = new_case(candidate, fingerprint, check, max_question_id)?;
        control.case.control_of = Some(case_question_id);
        controls.push(&control)?;
    }
    let draft = Draft {
        parent,
        spool,
        cases,
        controls,
        added_controls,
        added,
        changed,
        retired,
        max_question_id,
        runs: vec![input.run_id.clone()],
        rounds: rounds_of(project, &input.run_id)?,
    };
    Ok((draft, held))
}

/// The candidates of the run that the generator made a control for (as
/// the reviewers revised them). Read before the new cases: both are the
/// run's whole candidates, and need not be held at once.
fn cases_with_a_control(project: &Project, run_id: &str) -> Result<BTreeSet<String>> {
    Ok((super::candidates(project, run_id)?.into_iter())
        .filter_map(|c| c.control_of)
        .collect())
}

/// Kept candidates of the run that this export holds back.
struct Held {
    /// Cases no reviewer approved, with `review.required`.
    not_approved: u64,
    /// Cases whose benign control did not survive the stages.
    without_control: u64,
    /// Controls whose case is not released.
    orphan_controls: u64,
}

impl Held {
    /// Rejection reasons of the `unreleased` kept candidates; the rest of
    /// them were already released.
    fn reasons(&self, unreleased: u64) -> BTreeMap<String, u64> {
        let mut reasons = BTreeMap::new();
        let held = self.not_approved + self.without_control + self.orphan_controls;
        for (reason, count) in [
            ("review:not-approved", self.not_approved),
            ("export:control-not-kept", self.without_control),
            ("export:case-not-released", self.orphan_controls),
            ("export:already-released", unreleased.saturating_sub(held)),
        ] {
            if count > 0 {
                reasons.insert(reason.to_owned(), count);
            }
        }
        reasons
    }
}

/// The run's generation loop, when it ran one.
fn rounds_of(project: &Project, run_id: &str) -> Result<Vec<siuo_core::record::RoundYield>> {
    let generate = super::generate::STAGE.name;
    let rounds = project
        .stage_dir(run_id, generate)
        .output(super::generate::ROUNDS);
    match rounds.is_file() {
        true => super::records(project, run_id, generate, super::generate::ROUNDS),
        false => Ok(Vec::new()),
    }
}

/// What the stages before this one vouch for each candidate of the run,
/// and who of the reviewers approved it, spooled: at 100k candidates the
/// jury's records alone are hundreds of MB.
fn vouched(project: &Project, input: &StageInput, spool: &Spool) -> Result<VouchSpool> {
    let mut vouched = VouchSpool {
        journal: LineJournal::open(&spool.path("vouches.jsonl"), |_, _: Vouch| Ok(()))?,
        at: BTreeMap::new(),
    };
    for vouches in input.before.iter().filter_map(|s| s.vouches) {
        vouches(project, &input.run_id, &mut |candidate, vouch| {
            vouched.push(candidate, &vouch)
        })?;
    }
    for (candidate, approved_by) in project.review_ledger()?.approvals() {
        let vouch = Vouch::Review(release::CaseReview { approved_by });
        vouched.push(candidate, &vouch)?;
    }
    Ok(vouched)
}

/// The vouches of a run's candidates, in a spool file.
struct VouchSpool {
    journal: LineJournal<Vouch>,
    /// Candidate id → its vouches' lines, in the order vouched.
    at: BTreeMap<String, Vec<LineAt>>,
}

impl VouchSpool {
    fn push(&mut self, candidate: String, vouch: &Vouch) -> Result<()> {
        let at = self.journal.append(vouch)?;
        self.at.entry(candidate).or_default().push(at);
        Ok(())
    }

    /// The vouches of `candidate`, read back once.
    fn take(&mut self, candidate: &str) -> Result<Vec<Vouch>> {
        let lines = self.at.remove(candidate).unwrap_or_default();
        lines.into_iter().map(|at| self.journal.read(at)).collect()
    }
}

/// Kept candidates of the run that no release holds yet, in release order:
/// taxonomy order of domain and subcategory, then candidate id.
fn unreleased_cases(
    project: &Project,
    input: &StageInput,
    released: &release::ReleasedIndex,
) -> Result<Vec<(Candidate, Fingerprint, Vec<CheckSummary>)>> {
    let run_id = &input.run_id;
    // Each verdict is cut down to what a release records as it is read:
    // at scale the full records (near fingerprints, classifier scores) of
    // a run would be most of export's memory.
    #[derive(serde::Deserialize)]
    struct Deduped {
        candidate_id: String,
        fingerprint: Option<Fingerprint>,
        #[serde(flatten)]
        decision: siuo_core::record::Decision,
    }
    let mut kept: BTreeMap<String, Fingerprint> = BTreeMap::new();
    super::for_each_record(project, run_id, "dedupe", super::VERDICTS, |v: Deduped| {
        if let (true, Some(fingerprint)) = (v.decision.is_keep(), v.fingerprint) {
            kept.insert(v.candidate_id, fingerprint);
        }
        Ok(())
    })?;
    let mut checks: BTreeMap<String, Vec<CheckSummary>> = BTreeMap::new();
    super::for_each_record(
        project,
        run_id,
        "check",
        super::VERDICTS,
        |v: CheckVerdict| {
            if kept.contains_key(&v.candidate_id) {
                checks.insert(v.candidate_id.clone(), check_summaries(&v));
            }
            Ok(())
        },
    )?;
    // Another run may have released the same cases since this run's dedupe.
    let released = released.fingerprints();
    let mut cases: Vec<(Candidate, Fingerprint, Vec<CheckSummary>)> = input
        .survivors(project)?
        .into_iter()
        .filter_map(|candidate| {
            let fingerprint = kept.get(&candidate.id)?.clone();
            let check = checks.remove(&candidate.id)?;
            (!released.contains_key(&fingerprint)).then_some((candidate, fingerprint, check))
        })
        .collect();
    cases.sort_by(|(a, ..), (b, ..)| {
        let order = |c: &Candidate| project.taxonomy.order(&c.domain, &c.subcategory);
        order(a).cmp(&order(b)).then_with(|| a.id.cmp(&b.id))
    });
    Ok(cases)
}

/// The classifiers that passed a candidate, as its release records them.
fn check_summaries(check: &CheckVerdict) -> Vec<CheckSummary> {
    let summary = |modality: &str, verdicts: &[siuo_core::record::ClassifierVerdict]| {
        verdicts
            .iter()
            .map(|v| CheckSummary {
                modality: modality.to_owned(),
                classifier: v.classifier.clone(),
                version: v.version.clone(),
                weights_sha256: v.weights_sha256.clone(),
            })
            .collect::<Vec<_>>()
    };
    let mut checks = summary("text", &check.text);
    checks.extend(summary("image", &check.image));
    checks
}

fn released_case(
    project: &Project,
    question_id: u64,
    candidate: Candidate,
    fingerprint: Fingerprint,
    checks: Vec<CheckSummary>,
) -> ReleasedCase {
    let category = project.taxonomy.category(&candidate.domain);
    ReleasedCase {
        question_id,
        image: format!("{question_id}.{}", candidate.image.extension),
        image_blake3: candidate.image.blake3,
        candidate_id: candidate.id,
        domain: candidate.domain,
        category,
        subcategory: candidate.subcategory,
        // Model output may carry terminal escapes or control bytes; a
        // release holds printable text only.
        question: text_normal::printable(&candidate.question),
        image_description: text_normal::printable(&candidate.image_description),
        safety_warning: text_normal::printable(&candidate.safety_warning),
        reference_answer: text_normal::printable(&candidate.reference_answer),
        fingerprint,
        // Set by publishing, once the version is known.
        released_in: String::new(),
        changed_in: None,
        provenance: Some(candidate.provenance),
        imported_from: None,
        checks,
        verification: None,
        difficulty: None,
        control_of: None,
        review: None,
    }
}
