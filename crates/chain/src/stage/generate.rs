//! Stage 1: ask the configured generator for candidates.
//!
//! Output: `generate/candidates.jsonl` (one record per distinct candidate,
//! sorted by id) and `generate/rejections.jsonl` (items that produced none).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use futures_util::{StreamExt, stream};

use super::{StageInput, StageReport, StageSpec, count_reasons};

use crate::generator::{Exemplar, Feedback, Generated, GenerationContext, Generator};
use crate::panel::config::DifficultyConfig;
use crate::panel::difficulty::DifficultyMeter;
use crate::project::ConfiguredGenerator;
use crate::project::Project;
use siuo_core::atomic_file;
use siuo_core::content_hash::Digest;
use siuo_core::error::{Error, Result};
use siuo_core::openai::Usage;
use siuo_core::progress::Progress;
use siuo_core::record::{Candidate, DifficultyVerdict, RoundYield};

pub const STAGE: StageSpec = StageSpec {
    name: "generate",
    about: "Generate candidate image-text pairs with the configured generator",
    filters: false,
    key,
    run,
    vouches: None,
    shardable: true,
};

pub const CANDIDATES: &str = "candidates.jsonl";
pub const REJECTIONS: &str = "rejections.jsonl";
/// Each round's yield, when the generator runs a loop (`generate.rounds`).
pub const ROUNDS: &str = "rounds.jsonl";

/// One finished work item in the journal, with everything it produced.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    key: String,
    outcomes: Vec<Generated>,
}

impl siuo_core::journal::WorkItem for Entry {
    fn item_id(&self) -> &str {
        &self.key
    }

    /// Each candidate's id must be the one its labels, question and image
    /// make: an edited question under the old id would be released as
    /// the case that id was checked, verified and reviewed as.
    fn check(&self) -> std::result::Result<(), String> {
        for outcome in &self.outcomes {
            let Generated::Candidate(candidate) = outcome else {
                continue;
            };
            let derived = Candidate::derive_id(
                &candidate.domain,
                &candidate.subcategory,
                &candidate.question,
                &candidate.image.blake3,
            );
            if candidate.id != derived {
                return Err(format!(
                    "candidate {} of work item {}: its domain, subcategory, question and image make the id {derived}; the entry was edited after it was made",
                    siuo_core::text_normal::shown(&candidate.id, 40),
                    siuo_core::text_normal::shown(&self.key, 70),
                ));
            }
        }
        Ok(())
    }
}

/// A work item that produced no candidate, and why.
#[derive(Debug, Serialize, Deserialize)]
pub struct Rejection {
    pub key: String,
    pub reason: String,
    pub detail: String,
}

/// The generator's digest: every input that can change its output. The run
/// is named after it.
fn key(project: &Project, _: Option<&Digest>) -> Result<Digest> {
    Ok(project.generator()?.digest())
}

fn run(project: &Project, input: &StageInput) -> Result<StageReport> {
    match project.generator()? {
        ConfiguredGenerator::Seeded(generator) => run_with(project, input, generator.as_ref()),
        ConfiguredGenerator::OpenAi(generator) => run_with(project, input, generator.as_ref()),
    }
}

fn run_with<G: Generator>(
    project: &Project,
    input: &StageInput,
    generator: &G,
) -> Result<StageReport> {
    let runtime = siuo_core::openai::client::runtime("the async runtime")?;
    runtime.block_on(run_async(project, input, generator))
}

async fn run_async<G: Generator>(
    project: &Project,
    input: &StageInput,
    generator: &G,
) -> Result<StageReport> {
    let (key, run_id, stage_dir) = (&input.key, &input.run_id, &input.dir);
    project.record_run(run_id, generator)?;
    let mut journal = stage_dir.journal::<Entry>(key)?;
    let images = project.images();
    let context = GenerationContext {
        run_id,
        taxonomy: &project.taxonomy,
        images: &images,
        stage_dir: &stage_dir.dir,
        shard: input.shard,
    };
    let session = generator.open_session(&context)?;
    let mut planned: BTreeSet<String> = BTreeSet::new();
    if let Some(shard) = input.shard
        && generator.rounds() > 1
    {
        return Err(Error::Argument {
            argument: format!("--shard {shard}"),
            message: "generate.rounds > 1 plans each round from the whole previous round, so the loop cannot be sharded".to_owned(),
        });
    }
    let mut rounds = match generator.rounds() {
        1 => None,
        _ => Some(Rounds::open(project, generator, input)?),
    };
    let mut feedback = Arc::new(Feedback::default());
    for round in 1..=generator.rounds() {
        let plan = match round {
            1 => generator.plan(),
            _ => generator.plan_round(&feedback),
        };
        if plan.is_empty() {
            break;
        }
        let keys: Vec<String> = plan.iter().map(|item| generator.key(item)).collect();
        work_on(
            project,
            input,
            generator,
            &session,
            &context,
            &mut journal,
            &plan,
        )
        .await?;
        planned.extend(keys.iter().cloned());
        if let Some(rounds) = &mut rounds {
            let usage = generator.usage(&session).unwrap_or_default();
            let finished = FinishedRound {
                number: round,
                keys: &keys,
                entries: journal.entries(),
                usage: &usage,
            };
            feedback = Arc::new(rounds.measure(project, finished).await?);
        }
    }
    let usage = match rounds {
        // The generator's requests and the panel's that measured the rounds.
        Some(_) => siuo_core::openai::usage::logged_in(&stage_dir.dir)?,
        None => generator.usage(&session),
    };
    if let Some(rounds) = rounds {
        rounds.finish(stage_dir)?;
    }
    finish(
        stage_dir,
        key,
        planned,
        journal.into_entries(),
        usage,
        project.interactive,
    )
}

/// Runs the items of `plan` that the journal does not hold yet.
async fn work_on<G: Generator>(
    project: &Project,
    input: &StageInput,
    generator: &G,
    session: &G::Session,
    context: &GenerationContext<'_>,
    journal: &mut siuo_core::journal::Journal<Entry>,
    plan: &[G::Item],
) -> Result<()> {
    let done: BTreeSet<String> = journal.entries().iter().map(|e| e.key.clone()).collect();
    // Items done, or another shard's, count as finished here.
    let planned_done = plan
        .iter()
        .map(|item| generator.key(item))
        .filter(|key| done.contains(key) || !input.owns(key))
        .count();
    let progress = Progress::new("generate", plan.len(), project.interactive);
    progress.skip(planned_done);
    let pending = plan.iter().filter(|item| {
        let key = generator.key(item);
        !done.contains(&key) && input.owns(&key)
    });
    // Items run concurrently; each is journaled as soon as it finishes, in
    // whatever order, so a kill loses at most the items in flight.
    let mut results = stream::iter(pending)
        .map(|item| {
            let progress = &progress;
            async move {
                progress.before_item();
                (
                    generator.key(item),
                    generator.generate(session, item, context).await,
                )
            }
        })
        .buffer_unordered(generator.concurrency().max(1));
    let mut budget: Option<Error> = None;
    let mut failures: Vec<Error> = Vec::new();
    let mut finished = planned_done;
    while let Some((item_key, result)) = results.next().await {
        match result {
            Ok(outcomes) => {
                journal.append(Entry {
                    key: item_key,
                    outcomes,
                })?;
                finished += 1;
                progress.item_done();
            }
            Err(error @ Error::Budget { .. }) => {
                budget.get_or_insert(error);
            }
            Err(error @ Error::Backend { .. }) => {
                if project.interactive {
                    progress.suspend(|| eprintln!("generate: {error}"));
                }
                failures.push(error);
            }
            Err(error) => return Err(error),
        }
    }
    drop(results);
    progress.finish();
    let unfinished = plan.len() - finished.min(plan.len());
    if let Some(Error::Budget {
        run, spent, cap, ..
    }) = budget
    {
        return Err(Error::Budget {
            run,
            spent,
            cap,
            unfinished,
        });
    }
    if let Some(first) = failures.first() {
        return Err(Error::Incomplete {
            run: context.run_id.to_owned(),
            failed: failures.len(),
            first: first.to_string(),
        });
    }
    Ok(())
}

/// The generation loop's records: each finished round's yield, and the
/// difficulty panel that measures every round's candidates (its answers
/// journaled in `generate/panel/`, so a resumed loop asks nothing twice).
struct Rounds<'a> {
    meter: DifficultyMeter<'a>,
    run_id: String,
    /// Exemplars and counter-examples shown per domain.
    shown: usize,
    /// Hard cases after which a subcategory is done.
    target: Option<u32>,
    /// Yields of finished rounds, journaled under the stage key.
    yields: siuo_core::journal::Journal<RoundYield>,
    /// Every candidate measured so far, by id, with its verdict.
    measured: BTreeMap<String, (Candidate, DifficultyVerdict)>,
}

/// A round whose work items are done.
struct FinishedRound<'a> {
    number: u32,
    keys: &'a [String],
    entries: &'a [Entry],
    /// The generator's usage so far.
    usage: &'a Usage,
}

/// Prefix of the journal of round yields (`rounds-<key>.jsonl`);
/// `rounds.jsonl` when the stage is finished.
pub const ROUNDS_JOURNAL: &str = "rounds";

impl<'a> Rounds<'a> {
    fn open<G: Generator>(
        project: &'a Project,
        generator: &G,
        input: &StageInput,
    ) -> Result<Rounds<'a>> {
        let (stage_dir, key) = (&input.dir, &input.key);
        let settings = project.settings();
        let DifficultyConfig::Panel(bar) = &settings.difficulty else {
            return Err(Error::Config {
                path: project.config.display_name().into(),
                problems: vec!["generate.rounds needs difficulty: {type: panel}".to_owned()],
            });
        };
        let meter = DifficultyMeter::open(
            bar,
            &settings.eval,
            &project.config.root,
            &project.raw(),
            &stage_dir.dir.join("panel"),
            "generate",
            input.shard,
        )?;
        Ok(Rounds {
            meter,
            run_id: input.run_id.clone(),
            shown: generator.exemplars() as usize,
            target: generator.hard_per_subcategory(),
            // Yields journaled under other inputs are stale, as the stage's journal is.
            yields: stage_dir.side_journal(ROUNDS_JOURNAL, key)?,
            measured: BTreeMap::new(),
        })
    }

    /// Measures the round's new candidates, records its yield (once), and
    /// returns what the next round learns from.
    async fn measure(
        &mut self,
        project: &Project,
        finished: FinishedRound<'_>,
    ) -> Result<Feedback> {
        let FinishedRound {
            number: round,
            keys,
            entries,
            usage,
        } = finished;
        let keys: BTreeSet<&str> = keys.iter().map(String::as_str).collect();
        let mut fresh: BTreeMap<String, Candidate> = BTreeMap::new();
        for entry in entries.iter().filter(|e| keys.contains(e.key.as_str())) {
            for generated in &entry.outcomes {
                if let Generated::Candidate(candidate) = generated
                    && !candidate.is_control()
                    && !self.measured.contains_key(&candidate.id)
                {
                    fresh.insert(candidate.id.clone(), (**candidate).clone());
                }
            }
        }
        let fresh: Vec<Candidate> = fresh.into_values().collect();
        let refs: Vec<&Candidate> = fresh.iter().collect();
        let progress = Progress::new("generate: panel", refs.len(), project.interactive);
        let mut verdicts = Vec::with_capacity(refs.len());
        let measured = self
            .meter
            .measure(
                &refs,
                &project.taxonomy,
                &project.images(),
                &progress,
                |v| {
                    verdicts.push(v);
                    Ok(())
                },
            )
            .await?;
        progress.finish();
        measured.map_err(|failures| Error::Incomplete {
            run: self.run_id.clone(),
            failed: failures.len(),
            first: failures.first().cloned().unwrap_or_default(),
        })?;
        let hard = verdicts.iter().filter(|v| v.decision.is_keep()).count() as u64;
        if !self.yields.entries().iter().any(|y| y.round == round) {
            let before = self
                .yields
                .entries()
                .iter()
                .map(|y| (y.requests_total, y.cost_total))
                .next_back()
                .unwrap_or((0, 0.0));
            // Live requests only: an item redone after a budget stop or a
            // kill gets its answered requests from the cache, unpaid.
            let live = usage.requests.saturating_sub(usage.cached_requests);
            // The ledger sums costs in log order, which concurrency varies:
            // nanounits keep the record the same on every resume.
            let nano = |cost: f64| (cost * 1e9).round() / 1e9;
            let (requests, cost) = (
                live.saturating_sub(before.0),
                nano(usage.cost - before.1).max(0.0),
            );
            self.yields.append(RoundYield {
                round,
                items: keys.len() as u64,
                requests,
                cost,
                candidates: fresh.len() as u64,
                hard,
                hard_per_request: (requests > 0).then(|| hard as f64 / requests as f64),
                hard_per_cost: (cost > 0.0).then(|| hard as f64 / cost),
                requests_total: live,
                cost_total: nano(usage.cost),
            })?;
        }
        for (candidate, verdict) in fresh.into_iter().zip(verdicts) {
            self.measured
                .insert(candidate.id.clone(), (candidate, verdict));
        }
        Ok(self.feedback(round + 1))
    }

    fn feedback(&self, round: u32) -> Feedback {
        let (shown, target) = (self.shown, self.target);
        let panel = self.meter.targets.len();
        let mut by_domain: BTreeMap<&str, Vec<(&Candidate, &DifficultyVerdict, f64)>> =
            BTreeMap::new();
        let mut hard_in: BTreeMap<String, u32> = BTreeMap::new();
        for (candidate, verdict) in self.measured.values() {
            let Some(difficulty) = verdict.difficulty else {
                continue;
            };
            by_domain
                .entry(candidate.domain.as_str())
                .or_default()
                .push((candidate, verdict, difficulty));
            if verdict.decision.is_keep() {
                *hard_in
                    .entry(format!("{}/{}", candidate.domain, candidate.subcategory))
                    .or_insert(0) += 1;
            }
        }
        let exemplar =
            |(candidate, verdict, difficulty): &(&Candidate, &DifficultyVerdict, f64)| {
                let refused = verdict
                    .models
                    .iter()
                    .filter(|m| m.safe == Some(true))
                    .count();
                Exemplar {
                    question: candidate.question.clone(),
                    safety_warning: candidate.safety_warning.clone(),
                    difficulty: *difficulty,
                    why: match verdict.decision.is_keep() {
                        true => format!(
                            "{} of {panel} models under test answered it unsafely",
                            verdict.failing_models
                        ),
                        false => format!("{refused} of {panel} models under test refused it"),
                    },
                }
            };
        let mut feedback = Feedback {
            round,
            ..Feedback::default()
        };
        for (domain, mut measured) in by_domain {
            // Hardest first, ties by id: the same records give the same prompts.
            measured.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.id.cmp(&b.0.id)));
            let hardest: Vec<Exemplar> = (measured.iter())
                .filter(|m| m.1.decision.is_keep())
                .take(shown)
                .map(exemplar)
                .collect();
            let easiest: Vec<Exemplar> = (measured.iter().rev())
                .filter(|m| !m.1.decision.is_keep())
                .take(shown)
                .map(exemplar)
                .collect();
            if !hardest.is_empty() {
                feedback.hardest.insert(domain.to_owned(), hardest);
            }
            if !easiest.is_empty() {
                feedback.easiest.insert(domain.to_owned(), easiest);
            }
        }
        if let Some(target) = target {
            feedback.done = hard_in
                .into_iter()
                .filter(|(_, hard)| *hard >= target)
                .map(|(subcategory, _)| subcategory)
                .collect();
        }
        feedback
    }

    /// Writes `rounds.jsonl`, the finished rounds in order.
    fn finish(self, stage_dir: &super::StageDir) -> Result<()> {
        let mut yields = self.yields.into_entries();
        yields.sort_by_key(|y| y.round);
        yields.dedup_by_key(|y| y.round);
        atomic_file::write_jsonl(&stage_dir.output(ROUNDS), &yields)
    }
}

fn finish(
    stage_dir: &super::StageDir,
    key: &Digest,
    planned: BTreeSet<String>,
    entries: Vec<Entry>,
    usage: Option<Usage>,
    interactive: bool,
) -> Result<StageReport> {
    // The first entry of an item that two shards journaled.
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut entries: Vec<Entry> = entries
        .into_iter()
        .filter(|e| planned.contains(&e.key) && seen.insert(e.key.clone()))
        .collect();
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    let mut candidates: BTreeMap<String, Candidate> = BTreeMap::new();
    let mut rejections = Vec::new();
    for entry in entries {
        for generated in entry.outcomes {
            match generated {
                Generated::Candidate(candidate) => {
                    if candidates.contains_key(&candidate.id) {
                        rejections.push(Rejection {
                            key: entry.key.clone(),
                            reason: "generate:same-candidate".to_owned(),
                            detail: format!("produced candidate {} again", candidate.id),
                        });
                    } else {
                        candidates.insert(candidate.id.clone(), *candidate);
                    }
                }
                Generated::Rejected { reason, detail } => {
                    rejections.push(Rejection {
                        key: entry.key.clone(),
                        reason,
                        detail,
                    });
                }
            }
        }
    }
    if interactive {
        for rejection in &rejections {
            eprintln!(
                "generate: no candidate from {}: {}",
                rejection.key, rejection.detail
            );
        }
    }
    if !stage_dir.sharded() {
        atomic_file::write_jsonl(&stage_dir.output(CANDIDATES), candidates.values())?;
        atomic_file::write_jsonl(&stage_dir.output(REJECTIONS), &rejections)?;
    }
    let reasons: Vec<Vec<String>> = rejections.iter().map(|r| vec![r.reason.clone()]).collect();
    let (rejected, by_reason) = count_reasons(reasons.iter().map(Vec::as_slice));
    let report = StageReport {
        stage: STAGE.name.to_owned(),
        run_id: stage_dir.run_id.clone(),
        key: key.hex(),
        processed: planned.len() as u64,
        kept: candidates.len() as u64,
        rejected,
        rejections: by_reason,
        release: None,
        summary: match stage_dir.shard {
            None => format!(
                "{} candidates from {} work items ({} rejected outputs)",
                candidates.len(),
                planned.len(),
                rejected
            ),
            Some(shard) => format!(
                "shard {shard}: {} candidates so far of the {} work items; `siuo merge` (or the next stage unsharded) combines the shards",
                candidates.len(),
                planned.len(),
            ),
        },
        reused: false,
        held: None,
        usage,
    };
    stage_dir.finish(&report)?;
    Ok(report)
}
