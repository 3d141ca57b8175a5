//! `siuo eval`: vision-language models answer a release, judges grade the
//! answers with the SIUO protocol, and the verdicts become scores.
//!
//! Every target answer and judge answer is journaled under
//! `raw/eval/<release>/` with a key over the release, target, model,
//! settings, sample and template hashes, and every HTTP answer is in the
//! response cache: a rerun sends no request, and a killed eval repeats
//! none it had answered. A request that fails is not journaled: the case
//! counts as no response (target) or unjudged (judge) in this run's
//! scores, the command exits 1, and the next run asks again. A judge
//! answer that cannot be read is recorded as it is and counts as unjudged,
//! never as safe or unsafe.

pub mod report;
pub mod results;

pub use results::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use siuo_chain::panel::asking::{JUDGEMENTS, JudgeAnswer, RESPONSES, TargetResponse};
use siuo_chain::panel::asking::{LoadedCase, Panel, PanelCase, PanelSpec, Verdicts};
use siuo_chain::panel::config::{
    EvalConfig, JudgeConfig, Protocol, TargetConfig, split_model_at_url,
};
use siuo_chain::panel::protocol::{Judgement, Verdict};
use siuo_chain::panel::score::{self, CaseOutcome};
use siuo_chain::project::Project;
use siuo_core::error::{Error, Result};
use siuo_core::release::{self, Release, ReleasedCase};

/// Cases whose images are held in memory at once.
const CHUNK: usize = 32;

/// `siuo eval` as typed: overrides of the config's `eval` section.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvalRequest {
    /// Version, or `latest` when `None`.
    pub release: Option<String>,
    /// `NAME=MODEL@BASE_URL`; replaces the config's targets.
    pub targets: Vec<String>,
    /// `MODEL@BASE_URL`; replaces the config's judges.
    pub judges: Vec<String>,
    pub protocol: Option<String>,
    pub gold: Option<PathBuf>,
    /// Folder for the HTML and Markdown leaderboards.
    pub report: Option<PathBuf>,
}

/// The settings in force: the config with the command line's overrides.
pub fn settings(project: &Project, request: &EvalRequest) -> Result<EvalConfig> {
    let mut eval = project.settings().eval.clone();
    let argument = |argument: &str, message: String| Error::Argument {
        argument: argument.to_owned(),
        message,
    };
    if !request.targets.is_empty() {
        eval.targets = request
            .targets
            .iter()
            .map(|text| {
                let parsed = text
                    .split_once('=')
                    .and_then(|(name, rest)| Some((name, split_model_at_url(rest)?)));
                match parsed {
                    Some((name, (model, url))) => Ok(TargetConfig::new(name, model, url)),
                    None => Err(argument(
                        "--target",
                        format!("`{text}` is not NAME=MODEL@BASE_URL (e.g. qwen=Qwen/Qwen2.5-VL-7B-Instruct@http://127.0.0.1:8000/v1)"),
                    )),
                }
            })
            .collect::<Result<_>>()?;
    }
    if !request.judges.is_empty() {
        let mut judges: Vec<JudgeConfig> = Vec::new();
        for text in &request.judges {
            let Some((model, url)) = split_model_at_url(text) else {
                return Err(argument(
                    "--judge",
                    format!(
                        "`{text}` is not MODEL@BASE_URL (e.g. gpt-4o@https://api.openai.com/v1)"
                    ),
                ));
            };
            let mut judge = JudgeConfig::new(model, url);
            // The same model twice (two servers) gets distinct names.
            let taken = judges.iter().filter(|j| j.api.model == model).count();
            let plain = model
                .chars()
                .map(
                    |c| match c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                        true => c,
                        false => '-',
                    },
                )
                .collect::<String>();
            judge.name = Some(match taken {
                0 => plain,
                n => format!("{plain}-{}", n + 1),
            });
            judges.push(judge);
        }
        eval.judge = judges;
    }
    if let Some(name) = &request.protocol {
        eval.protocol = Protocol::parse(name).ok_or_else(|| {
            argument(
                "--protocol",
                format!("unknown protocol `{name}`; known: siuo"),
            )
        })?;
    }
    let problems = eval.problems();
    if !problems.is_empty() {
        return Err(Error::Config {
            path: project
                .config
                .file
                .clone()
                .unwrap_or_else(|| "command line".into()),
            problems,
        });
    }
    if eval.targets.is_empty() {
        return Err(argument(
            "siuo eval",
            "no target to evaluate: add eval.targets to the config or pass --target NAME=MODEL@BASE_URL".to_owned(),
        ));
    }
    if eval.judge.is_empty() {
        return Err(argument(
            "siuo eval",
            "no judge: add eval.judge to the config or pass --judge MODEL@BASE_URL".to_owned(),
        ));
    }
    Ok(eval)
}

/// A release's case as a panel asks it.
pub fn panel_case(case: &ReleasedCase) -> PanelCase {
    PanelCase {
        id: case.question_id.to_string(),
        question: case.question.clone(),
        safety_warning: case.safety_warning.clone(),
        reference_answer: case.reference_answer.clone(),
        category: case.category.clone(),
        domain: case.domain.clone(),
        subcategory: case.subcategory.clone(),
        image_blake3: case.image_blake3.clone(),
    }
}

/// The evaluation of one release.
struct Evaluation<'a> {
    release: &'a Release,
    eval: &'a EvalConfig,
    panel: Panel,
}

/// What the records say once the asking is over, read off them once.
struct Graded<'a> {
    verdicts: Verdicts<'a>,
    /// Per target, per case.
    outcomes: Vec<Vec<CaseOutcome>>,
    /// Per target, per control; empty when the release has none.
    controls: Vec<Vec<CaseOutcome>>,
}

pub fn run(project: &Project, request: &EvalRequest) -> Result<EvalReport> {
    let eval = settings(project, request)?;
    let curated = project.curated();
    let release = release::find(&curated, request.release.as_deref().unwrap_or("latest"))?;
    let cases = release.cases()?;
    let gold = match &request.gold {
        Some(path) => Some(read_gold(path, &eval, &cases)?),
        None => None,
    };
    let raw = project.raw();
    let records = records_dir(&raw, &release.name());
    let panel = Panel::open(PanelSpec {
        scope: release.name(),
        place: "eval",
        protocol: eval.protocol,
        templates: &project.config.path(&eval.templates),
        targets: &eval.targets,
        judges: &eval.judge,
        raw: &raw,
        records: &records,
        shard: None,
    })?;
    let mut evaluation = Evaluation {
        release: &release,
        eval: &eval,
        panel,
    };
    let controls = release.controls()?;
    let panel_cases: Vec<PanelCase> = cases.iter().map(panel_case).collect();
    let panel_controls: Vec<PanelCase> = controls.iter().map(panel_case).collect();
    let runtime = siuo_core::openai::client::runtime("the eval's client")?;
    let total = cases.len() + controls.len();
    let progress = siuo_core::progress::Progress::new("eval", total, project.interactive);
    let at_once = evaluation.panel.items_at_once(CHUNK);
    let chunks = (cases.chunks(at_once).zip(panel_cases.chunks(at_once)))
        .chain(controls.chunks(at_once).zip(panel_controls.chunks(at_once)));
    for (chunk, asked) in chunks {
        let loaded = chunk
            .iter()
            .zip(asked)
            .map(|(case, asked)| {
                let path = release.dir.join(release::IMAGES).join(&case.image);
                Ok(LoadedCase {
                    case: asked,
                    image_url: siuo_core::pixels::data_url(&siuo_core::input_file::read_bytes(
                        &path,
                    )?),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        progress.before_item();
        runtime.block_on(evaluation.panel.ask(&loaded))?;
        progress.skip(chunk.len());
    }
    progress.finish();
    let graded = evaluation.graded(&panel_cases, &panel_controls);
    let report = evaluation.report(&graded, gold, &records, request.report.clone());
    siuo_core::atomic_file::write_json(&records.join(RESULTS), &report)?;
    if let Some(dir) = &request.report {
        let domain_names = |id: &str| {
            project
                .taxonomy
                .domain(id)
                .map_or_else(|| id.to_owned(), |d| d.name.clone())
        };
        report::write(
            dir,
            &report,
            &release,
            &cases,
            &evaluation.details(&cases, &graded)?,
            &domain_names,
        )?;
    }
    Ok(report)
}

/// The error a finished but incomplete eval ends with, after its results are written.
pub fn incomplete(report: &EvalReport) -> Option<Error> {
    (!report.complete).then(|| Error::Incomplete {
        run: format!("eval of {}", report.release),
        failed: report.failures.len(),
        first: format!(
            "{} (the partial scores are in {})",
            report.failures.first().cloned().unwrap_or_default(),
            report.records.join(RESULTS).display()
        ),
    })
}

impl Evaluation<'_> {
    fn graded(&self, cases: &[PanelCase], controls: &[PanelCase]) -> Graded<'_> {
        let verdicts = self.panel.verdicts();
        let outcomes = self.panel.outcomes(cases);
        let controls = match controls.is_empty() {
            true => Vec::new(),
            false => self.panel.outcomes(controls),
        };
        Graded {
            verdicts,
            outcomes,
            controls,
        }
    }

    fn agreement(&self, verdicts: &Verdicts<'_>) -> Vec<JudgePair> {
        let mut pairs = Vec::new();
        let judges = &self.panel.judges;
        for (i, first) in judges.iter().enumerate() {
            for second in &judges[i + 1..] {
                let (a, b) = (first.settings.name(), second.settings.name());
                let paired = |judgement: Judgement| {
                    let labels: Vec<(Verdict, Verdict)> = verdicts
                        .iter()
                        .filter(|((judge, j, _), _)| *judge == a && *j == judgement)
                        .filter_map(|((_, _, key), verdict)| {
                            Some(((*verdict)?, verdicts.get(&(b, judgement, key)).copied()??))
                        })
                        .collect();
                    score::cohen_kappa(
                        &labels
                            .iter()
                            .map(|(x, y)| (rank(*x), rank(*y)))
                            .collect::<Vec<_>>(),
                    )
                };
                pairs.push(JudgePair {
                    judges: [a.to_owned(), b.to_owned()],
                    safety: paired(Judgement::Safety),
                    effectiveness: paired(Judgement::Effectiveness),
                });
            }
        }
        pairs
    }

    fn report(
        &self,
        graded: &Graded<'_>,
        gold: Option<Gold>,
        records: &Path,
        report_dir: Option<PathBuf>,
    ) -> EvalReport {
        let bootstrap = self.eval.bootstrap;
        let targets = self
            .panel
            .targets
            .iter()
            .zip(&graded.outcomes)
            .enumerate()
            .map(|(index, (target, outcomes))| {
                let t = &target.settings;
                TargetScores {
                    name: t.name.clone(),
                    model: t.api.model.clone(),
                    base_url: t.api.base_url.to_string(),
                    samples: t.samples,
                    temperature: t.temperature,
                    max_tokens: t.max_tokens,
                    system_prompt: t.system_prompt.clone(),
                    scores: score::breakdown(
                        outcomes,
                        bootstrap.resamples,
                        bootstrap.seed,
                        &t.name,
                    ),
                    controls: graded.controls.get(index).map(|c| ControlScores::of(c)),
                    usage: target.usage(),
                }
            })
            .collect();
        let protocol = self.eval.protocol.name();
        EvalReport {
            release: self.release.name(),
            protocol: protocol.to_owned(),
            judges: self
                .panel
                .judges
                .iter()
                .map(|j| JudgeInfo {
                    name: j.settings.name().to_owned(),
                    model: j.settings.api.model.clone(),
                    base_url: j.settings.api.base_url.to_string(),
                    temperature: 0.0,
                    max_tokens: j.settings.max_tokens,
                    usage: j.usage(),
                })
                .collect(),
            templates: (self.panel.template_digests().into_iter())
                .map(|(name, blake3)| {
                    let template = self.eval.templates.join(format!("{protocol}/{name}.j2"));
                    let template = template.display().to_string();
                    (name, TemplateRef { template, blake3 })
                })
                .collect(),
            vote_rule: VOTE_RULE.to_owned(),
            bootstrap,
            targets,
            judge_agreement: self.agreement(&graded.verdicts),
            gold: gold.map(|g| self.gold_report(g, &graded.verdicts)),
            complete: self.panel.failures.is_empty(),
            failures: self.panel.failures.clone(),
            records: records.to_owned(),
            report: report_dir,
        }
    }

    fn gold_report(&self, gold: Gold, verdicts: &Verdicts<'_>) -> GoldReport {
        let keyed: Vec<(String, bool)> = gold
            .labels
            .iter()
            .filter_map(|label| {
                let target = self
                    .panel
                    .targets
                    .iter()
                    .find(|t| t.settings.name == label.target)?;
                Some((
                    self.panel.response_key(
                        &target.settings,
                        &panel_case(label.case),
                        label.sample,
                    ),
                    label.safe,
                ))
            })
            .collect();
        let mut judges: Vec<String> = self
            .panel
            .judges
            .iter()
            .map(|j| j.settings.name().to_owned())
            .collect();
        judges.push("panel".to_owned());
        let accuracy = judges
            .iter()
            .map(|judge| {
                let mut result = GoldAccuracy {
                    judge: judge.clone(),
                    judged: 0,
                    unjudged: 0,
                    correct: 0,
                    accuracy: None,
                };
                for (key, safe) in &keyed {
                    let verdict = if judge == "panel" {
                        self.panel.panel_verdict(Judgement::Safety, key)
                    } else {
                        verdicts
                            .get(&(judge.as_str(), Judgement::Safety, key.as_str()))
                            .copied()
                            .flatten()
                            .map(Verdict::favourable)
                    };
                    match verdict {
                        Some(v) => {
                            result.judged += 1;
                            result.correct += usize::from(v == *safe);
                        }
                        None => result.unjudged += 1,
                    }
                }
                result.accuracy =
                    (result.judged > 0).then(|| result.correct as f64 / result.judged as f64);
                result
            })
            .collect();
        GoldReport {
            file: gold.file,
            labels: gold.labels.len(),
            judges: accuracy,
        }
    }

    /// Everything the drill-down shows, per case and target.
    fn details(
        &self,
        cases: &[ReleasedCase],
        graded: &Graded<'_>,
    ) -> Result<Vec<report::CaseDetail>> {
        let mut answers: BTreeMap<String, Vec<JudgeAnswer>> = BTreeMap::new();
        self.panel.for_each_judge_answer(|answer| {
            if graded.verdicts.contains_key(&(
                answer.judge.as_str(),
                answer.judgement,
                answer.response_key.as_str(),
            )) {
                let list = answers.entry(answer.response_key.clone()).or_default();
                list.push(answer);
            }
            Ok(())
        })?;
        let mut details = Vec::with_capacity(cases.len());
        for (index, case) in cases.iter().enumerate() {
            let asked = panel_case(case);
            let mut targets = Vec::new();
            for (target, outcomes) in self.panel.targets.iter().zip(&graded.outcomes) {
                let mut samples = Vec::new();
                for sample in 0..target.settings.samples {
                    let key = self.panel.response_key(&target.settings, &asked, sample);
                    let judges = (answers.get(key.as_str()).into_iter().flatten())
                        .map(|a| report::JudgeDetail {
                            judge: a.judge.clone(),
                            judgement: a.judgement,
                            verdict: (graded.verdicts)
                                .get(&(a.judge.as_str(), a.judgement, a.response_key.as_str()))
                                .copied()
                                .flatten(),
                            answer: a.answer.clone(),
                        })
                        .collect();
                    samples.push(report::SampleDetail {
                        sample,
                        response: self.panel.response(&key)?.map(|r| r.response),
                        judges,
                    });
                }
                targets.push(report::TargetDetail {
                    target: target.settings.name.clone(),
                    vote: outcomes[index].vote(),
                    samples,
                });
            }
            details.push(report::CaseDetail {
                question_id: case.question_id,
                targets,
            });
        }
        Ok(details)
    }
}

/// A label's rank, so verdicts can be counted in ordered maps.
fn rank(verdict: Verdict) -> u8 {
    match verdict {
        Verdict::Safe | Verdict::VeryEffective => 0,
        Verdict::Unsafe | Verdict::PartiallyEffective => 1,
        Verdict::Ineffective => 2,
    }
}

/// Human safety labels of responses.
struct Gold<'a> {
    file: PathBuf,
    labels: Vec<GoldLabel<'a>>,
}

struct GoldLabel<'a> {
    case: &'a ReleasedCase,
    target: String,
    sample: u32,
    safe: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GoldLine {
    question_id: u64,
    target: String,
    sample: u32,
    label: String,
}

fn read_gold<'a>(path: &Path, eval: &EvalConfig, cases: &'a [ReleasedCase]) -> Result<Gold<'a>> {
    let lines: Vec<GoldLine> = siuo_core::input_file::read_jsonl(path)?;
    let mut labels = Vec::with_capacity(lines.len());
    for (index, line) in lines.into_iter().enumerate() {
        let invalid = |message: String| Error::InvalidRecord {
            path: path.to_owned(),
            record: format!("line {}", index + 1),
            message,
        };
        let safe = match line.label.as_str() {
            "safe" => true,
            "unsafe" => false,
            other => {
                return Err(invalid(format!(
                    "label `{other}` is not `safe` or `unsafe`"
                )));
            }
        };
        let Some(target) = eval.targets.iter().find(|t| t.name == line.target) else {
            return Err(invalid(format!(
                "target `{}` is not evaluated (targets: {})",
                line.target,
                eval.targets
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        if line.sample >= target.samples {
            return Err(invalid(format!(
                "sample {} of target `{}`, which answers {} samples (0 to {})",
                line.sample,
                target.name,
                target.samples,
                target.samples - 1
            )));
        }
        let Some(case) = cases.iter().find(|c| c.question_id == line.question_id) else {
            return Err(invalid(format!(
                "question_id {} is not in the release",
                line.question_id
            )));
        };
        labels.push(GoldLabel {
            case,
            target: line.target,
            sample: line.sample,
            safe,
        });
    }
    Ok(Gold {
        file: path.to_owned(),
        labels,
    })
}
