//! A panel of target models answering cases and judges grading the answers
//! with an eval protocol: the asking and the records that `siuo eval` (on a
//! release) and the `difficulty` stage (on a run's candidates) share.
//!
//! Every target answer and judge answer is journaled in the panel's records
//! folder with a key over the scope (a release, or the stage), target,
//! model, settings, case, sample and template hashes, and every HTTP answer
//! is in the response cache: asking again sends no request, and a killed
//! panel repeats none it had answered. A request that fails is not
//! journaled but listed in [`Panel::failures`]; the caller decides what an
//! incomplete panel means. A judge answer that cannot be read is recorded
//! as it is and has no verdict, never safe or unsafe.
//!
//! A verdict is read from the judge's own words only: the response it
//! grades, the case and the prompt are cut from its answer first (see
//! [`Judgement::read`]), so a target that writes a verdict into its answer
//! cannot grade itself, and a judge that echoes its prompt judges nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::config::{JudgeConfig, ModelApi, Protocol, TargetConfig};
use super::protocol::{Judgement, Verdict};
use super::score::{self, CaseOutcome, SampleOutcome};
use siuo_core::content_hash::{ContentHasher, Digest};
use siuo_core::error::Result;
use siuo_core::journal::{LineAt, LineJournal};
use siuo_core::openai::client::{ApiClient, Endpoint};
use siuo_core::openai::config::{Budget, Price, RequestLimits};
use siuo_core::openai::{ApiError, Usage, chat};
use siuo_core::prompt_template::TemplateSet;

const CHAT: &str = "chat/completions";
pub const RESPONSES: &str = "responses.jsonl";
pub const JUDGEMENTS: &str = "judgements.jsonl";

/// A case as a panel sees it: what the targets are asked and what the
/// judges grade against.
#[derive(Debug, Clone, PartialEq)]
pub struct PanelCase {
    /// The question id of a released case, or a candidate id.
    pub id: String,
    pub question: String,
    pub safety_warning: String,
    pub reference_answer: String,
    /// The published SIUO category string of the domain.
    pub category: String,
    pub domain: String,
    pub subcategory: String,
    pub image_blake3: String,
}

/// A case with its image as a `data:` URL, ready to be asked.
pub struct LoadedCase<'a> {
    pub case: &'a PanelCase,
    pub image_url: String,
}

/// One target answer, as journaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetResponse {
    pub key: String,
    /// The release (eval) or `difficulty` (the stage).
    pub scope: String,
    pub target: String,
    pub model: String,
    /// [`PanelCase::id`].
    pub case: String,
    pub sample: u32,
    /// blake3 of the request settings (model, temperature, max_tokens, system prompt).
    pub settings_blake3: String,
    /// The answer's text; empty when the target answered nothing (no response).
    pub response: String,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// One judge answer, as journaled. The verdict is read again from
/// `answer` on every run, so `verdict` is for people reading the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgeAnswer {
    pub key: String,
    pub response_key: String,
    pub judge: String,
    pub model: String,
    pub judgement: Judgement,
    pub template: String,
    pub template_blake3: String,
    pub prompt_blake3: String,
    pub case: String,
    pub target: String,
    pub sample: u32,
    pub answer: String,
    pub verdict: Option<Verdict>,
    #[serde(default)]
    pub problem: Option<String>,
}

/// A target or judge with its client.
pub struct Model<S> {
    pub settings: S,
    client: ApiClient,
    /// The ledger before this invocation: usage is reported per invocation.
    earlier: Usage,
}

impl<S> Model<S> {
    fn new(settings: S, client: ApiClient) -> Self {
        let earlier = client.usage();
        Model {
            settings,
            client,
            earlier,
        }
    }

    pub fn usage(&self) -> Usage {
        self.client.usage().since(&self.earlier)
    }
}

/// Who a panel is and where it keeps its records.
pub struct PanelSpec<'a> {
    /// Part of every response key: the release, or the stage.
    pub scope: String,
    /// Where the settings live, for messages (`eval`, `difficulty`).
    pub place: &'a str,
    pub protocol: Protocol,
    /// The protocol's templates folder, resolved.
    pub templates: &'a Path,
    pub targets: &'a [TargetConfig],
    pub judges: &'a [JudgeConfig],
    /// The project's raw folder (the response cache).
    pub raw: &'a Path,
    /// Journals and request logs.
    pub records: &'a Path,
    /// The shard asking (its journals and logs are its own files).
    pub shard: Option<siuo_core::shard::Shard>,
}

/// Verdicts by (judge, judgement, response key); `None` for an unreadable answer.
pub type Verdicts<'a> = BTreeMap<(&'a str, Judgement, &'a str), Option<Verdict>>;

pub struct Panel {
    pub scope: String,
    place: String,
    pub protocol: Protocol,
    pub templates: TemplateSet,
    pub targets: Vec<Model<TargetConfig>>,
    pub judges: Vec<Model<JudgeConfig>>,
    /// The journals keep no answers in memory (at 100k cases they are
    /// hundreds of MB): only where each response is, whether it said
    /// anything, and the verdicts read from the judge answers.
    responses: LineJournal<TargetResponse>,
    judgements: LineJournal<JudgeAnswer>,
    /// Response key → where it is in `responses`, and whether the target
    /// answered anything.
    response_at: HashMap<String, (LineAt, bool)>,
    /// Keys of the judge answers in `judgements`.
    judged: HashSet<String>,
    /// Response key → where the current judges' journaled answers to it
    /// are, until [`Self::ask`] reads their verdicts with the case.
    unread: HashMap<String, Vec<AnswerAt>>,
    /// Response key → the verdicts of the current judges with the current
    /// templates (what [`Self::verdicts`] lists), for the cases asked.
    verdict_of: HashMap<String, Vec<JudgedBy>>,
    /// Requests that failed in this invocation, in words.
    pub failures: Vec<String>,
}

impl Panel {
    /// Cases to ask at once: `direct`, or a whole batch's worth when a
    /// target or judge sends its requests through the Batch API.
    pub fn items_at_once(&self, direct: usize) -> usize {
        let targets = self.targets.iter().map(|m| m.client.items_at_once(direct));
        let judges = self.judges.iter().map(|m| m.client.items_at_once(direct));
        targets.chain(judges).max().unwrap_or(direct)
    }

    pub fn open(spec: PanelSpec<'_>) -> Result<Panel> {
        let templates = load_templates(spec.templates, spec.protocol)?;
        let connect_to = |api: &ModelApi, spending: Spending<'_>, log: String| {
            connect(api, spending, spec.raw, &spec.records.join(log), spec.shard)
        };
        let purpose = format!("{}.targets[].api.api_key_env", spec.place);
        let mut targets = Vec::new();
        for target in spec.targets {
            let spending = Spending::of(&purpose, &target.limits, target.budget, &target.prices);
            let log = format!("requests-target-{}.jsonl", target.name);
            let client = connect_to(&target.api, spending, log)?;
            targets.push(Model::new(target.clone(), client));
        }
        let purpose = format!("{}.judge.api.api_key_env", spec.place);
        let mut judges = Vec::new();
        for judge in spec.judges {
            let spending = Spending::of(&purpose, &judge.limits, judge.budget, &judge.prices);
            let log = format!("requests-judge-{}.jsonl", judge.name());
            let client = connect_to(&judge.api, spending, log)?;
            judges.push(Model::new(judge.clone(), client));
        }
        // A shard's own files: shards never append to one journal.
        let own = |name: &str| siuo_core::shard::own_file(&spec.records.join(name), spec.shard);
        let mut response_at = HashMap::new();
        let responses = LineJournal::open(&own(RESPONSES), |at, r: TargetResponse| {
            response_at.insert(r.key, (at, !r.response.trim().is_empty()));
            Ok(())
        })?;
        let current = CurrentJudges::of(&judges, &templates, spec.protocol);
        let (mut judged, mut unread) = (HashSet::new(), HashMap::new());
        let judgements = LineJournal::open(&own(JUDGEMENTS), |at, answer: JudgeAnswer| {
            if let Some(judge) = current.judge_of(&answer) {
                let answers: &mut Vec<AnswerAt> = unread.entry(answer.response_key).or_default();
                let by = AnswerAt {
                    judge,
                    judgement: answer.judgement,
                    at,
                };
                // A later answer of the same judge and judgement replaces an earlier.
                answers.retain(|a| (a.judge, a.judgement) != (judge, by.judgement));
                answers.push(by);
            }
            judged.insert(answer.key);
            Ok(())
        })?;
        Ok(Panel {
            scope: spec.scope,
            place: spec.place.to_owned(),
            protocol: spec.protocol,
            templates,
            targets,
            judges,
            responses,
            judgements,
            response_at,
            judged,
            unread,
            verdict_of: HashMap::new(),
            failures: Vec::new(),
        })
    }

    /// The blake3 of each template of the protocol, by judgement name.
    pub fn template_digests(&self) -> BTreeMap<String, String> {
        template_digests(&self.templates, self.protocol)
    }

    fn template_blake3(&self, template: &str) -> String {
        self.templates
            .digests
            .get(template)
            .map(Digest::hex)
            .unwrap_or_default()
    }

    /// Asks every target about `cases`, then every judge about the answers;
    /// what is already journaled is not asked again, but its verdicts are
    /// read, with the cases, for [`Self::outcomes`].
    pub async fn ask(&mut self, cases: &[LoadedCase<'_>]) -> Result<()> {
        self.ask_targets(cases).await?;
        self.ask_judges(cases).await?;
        self.read_journaled_verdicts(cases)
    }

    /// The judge prompt of `judgement` about `response` to `case`.
    fn judge_prompt(
        &self,
        judgement: Judgement,
        case: &PanelCase,
        response: &str,
    ) -> Result<(String, String)> {
        self.templates.render(
            &judgement.template(self.protocol.name()),
            &JudgeContext {
                question: &case.question,
                safety_warning: &case.safety_warning,
                reference_answer: &case.reference_answer,
                response,
                category: &case.category,
                domain: &case.domain,
                subcategory: &case.subcategory,
            },
        )
    }

    /// The verdicts of the journaled answers to `cases`' responses that
    /// were not asked in this invocation, read again from their text.
    fn read_journaled_verdicts(&mut self, cases: &[LoadedCase<'_>]) -> Result<()> {
        for loaded in cases {
            let case = loaded.case;
            for target in &self.targets {
                for sample in 0..target.settings.samples {
                    let key = self.response_key(&target.settings, case, sample);
                    let Some(answers) = self.unread.remove(&key) else {
                        continue;
                    };
                    let Some(response) = self.response(&key)? else {
                        continue;
                    };
                    let mut prompts: BTreeMap<Judgement, (String, String)> = BTreeMap::new();
                    for answer_at in answers {
                        let (system, user) = match prompts.entry(answer_at.judgement) {
                            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                            std::collections::btree_map::Entry::Vacant(e) => e.insert(
                                self.judge_prompt(answer_at.judgement, case, &response.response)?,
                            ),
                        };
                        let answer = self.judgements.read(answer_at.at)?;
                        let quoted = quoted_texts(case, &response.response, system, user);
                        let by = JudgedBy {
                            judge: answer_at.judge,
                            judgement: answer_at.judgement,
                            verdict: answer.judgement.read(&answer.answer, &quoted).ok(),
                        };
                        note(&mut self.verdict_of, &key, by);
                    }
                }
            }
        }
        Ok(())
    }

    pub fn response_key(&self, target: &TargetConfig, case: &PanelCase, sample: u32) -> String {
        hex_of(
            ContentHasher::new("siuo.eval.response.v2")
                .str(&self.scope)
                .str(&target.name)
                .str(&target.settings_blake3())
                .str(&case.id)
                .str(&case.image_blake3)
                .str(&case.question)
                .u64(u64::from(sample)),
        )
    }

    async fn ask_targets(&mut self, cases: &[LoadedCase<'_>]) -> Result<()> {
        let mut asked = Vec::new();
        for (index, target) in self.targets.iter().enumerate() {
            for loaded in cases {
                for sample in 0..target.settings.samples {
                    let key = self.response_key(&target.settings, loaded.case, sample);
                    if !self.response_at.contains_key(&key) {
                        let place = format!("{}.targets[{index}].budget", self.place);
                        asked.push(ask_target(target, loaded, sample, key, &self.scope, place));
                    }
                }
            }
        }
        for answer in join_all(asked).await {
            match answer {
                Ok(response) => {
                    let at = self.responses.append(&response)?;
                    let responded = !response.response.trim().is_empty();
                    self.response_at.insert(response.key, (at, responded));
                }
                Err(failure) => self.failures.push(failure),
            }
        }
        Ok(())
    }

    async fn ask_judges(&mut self, cases: &[LoadedCase<'_>]) -> Result<()> {
        let protocol = self.protocol.name();
        let mut prompts = Vec::new();
        for loaded in cases {
            let case = loaded.case;
            for target in &self.targets {
                for sample in 0..target.settings.samples {
                    let key = self.response_key(&target.settings, case, sample);
                    if !self.responded(&key) {
                        continue;
                    }
                    let Some(response) = self.response(&key)? else {
                        continue;
                    };
                    for judgement in Judgement::ALL {
                        let template = judgement.template(protocol);
                        let (system, user) =
                            self.judge_prompt(judgement, case, &response.response)?;
                        let quoted: Vec<String> =
                            quoted_texts(case, &response.response, &system, &user)
                                .into_iter()
                                .map(str::to_owned)
                                .collect();
                        let template_blake3 = self.template_blake3(&template);
                        let prompt_blake3 = hex_of(
                            ContentHasher::new("siuo.eval.judge-prompt.v1")
                                .str(&user)
                                .str(&case.image_blake3),
                        );
                        for judge in &self.judges {
                            let key = hex_of(
                                ContentHasher::new("siuo.eval.judgement.v1")
                                    .str(judge.settings.name())
                                    .str(&judge.settings.api.model)
                                    .u64(u64::from(judge.settings.max_tokens))
                                    .str(&template_blake3)
                                    .str(&prompt_blake3)
                                    .str(&response.key),
                            );
                            if self.judged.contains(&key) {
                                continue;
                            }
                            prompts.push((
                                judge,
                                loaded,
                                user.clone(),
                                quoted.clone(),
                                JudgeAnswer {
                                    key,
                                    response_key: response.key.clone(),
                                    judge: judge.settings.name().to_owned(),
                                    model: judge.settings.api.model.clone(),
                                    judgement,
                                    template: template.clone(),
                                    template_blake3: template_blake3.clone(),
                                    prompt_blake3: prompt_blake3.clone(),
                                    case: case.id.clone(),
                                    target: response.target.clone(),
                                    sample: response.sample,
                                    answer: String::new(),
                                    verdict: None,
                                    problem: None,
                                },
                            ));
                        }
                    }
                }
            }
        }
        // Identical prompts (a target that gave two samples the same answer)
        // are asked once; each response still gets its own record.
        let place = format!("{}.judge.budget", self.place);
        // The prompt (and so what it quotes) is the same for each of them.
        let mut distinct: BTreeMap<SamePrompt, (Vec<String>, Vec<JudgeAnswer>)> = BTreeMap::new();
        let mut asked = Vec::new();
        for (judge, loaded, user, quoted, record) in prompts {
            let same = (
                judge.settings.name().to_owned(),
                record.template_blake3.clone(),
                record.prompt_blake3.clone(),
            );
            let (_, waiting) = distinct.entry(same).or_insert_with(|| (quoted, Vec::new()));
            if waiting.is_empty() {
                asked.push(ask_judge(judge, loaded, user, record.clone(), &place));
            }
            waiting.push(record);
        }
        let current = CurrentJudges::of(&self.judges, &self.templates, self.protocol);
        for answer in join_all(asked).await {
            match answer {
                Ok(answered) => {
                    let same = (
                        answered.judge.clone(),
                        answered.template_blake3.clone(),
                        answered.prompt_blake3.clone(),
                    );
                    let (quoted, waiting) = distinct.remove(&same).unwrap_or_default();
                    let quoted: Vec<&str> = quoted.iter().map(String::as_str).collect();
                    let read = answered.judgement.read(&answered.answer, &quoted);
                    for record in waiting {
                        let record = JudgeAnswer {
                            answer: answered.answer.clone(),
                            verdict: read.clone().ok(),
                            problem: read.clone().err(),
                            ..record
                        };
                        self.judgements.append(&record)?;
                        if let Some(judge) = current.judge_of(&record) {
                            let by = JudgedBy {
                                judge,
                                judgement: record.judgement,
                                verdict: record.verdict,
                            };
                            // This answer replaces any journaled one not yet read.
                            if let Some(unread) = self.unread.get_mut(&record.response_key) {
                                unread.retain(|a| (a.judge, a.judgement) != (judge, by.judgement));
                            }
                            note(&mut self.verdict_of, &record.response_key, by);
                        }
                        self.judged.insert(record.key);
                    }
                }
                Err(failure) => self.failures.push(failure),
            }
        }
        Ok(())
    }

    /// The current verdicts: judge name → judgement → response key → verdict
    /// (`None` for an answer that could not be read).
    pub fn verdicts(&self) -> Verdicts<'_> {
        let mut verdicts = Verdicts::new();
        for (key, judged) in &self.verdict_of {
            for by in judged {
                let judge = self.judges[by.judge].settings.name();
                verdicts.insert((judge, by.judgement, key.as_str()), by.verdict);
            }
        }
        verdicts
    }

    /// Whether the target answered anything to the response `key`.
    fn responded(&self, key: &str) -> bool {
        self.response_at.get(key).is_some_and(|(_, said)| *said)
    }

    /// The journaled response `key`, read from the journal.
    pub fn response(&self, key: &str) -> Result<Option<TargetResponse>> {
        match self.response_at.get(key) {
            Some((at, _)) => self.responses.read(*at).map(Some),
            None => Ok(None),
        }
    }

    /// Calls `each` with every journaled judge answer, one at a time.
    pub fn for_each_judge_answer(&self, each: impl FnMut(JudgeAnswer) -> Result<()>) -> Result<()> {
        siuo_core::journal::for_each_entry(self.judgements.path(), each)
    }

    /// The panel's verdict on one response: the majority of the judges
    /// that gave one.
    pub fn panel_verdict(&self, judgement: Judgement, response_key: &str) -> Option<bool> {
        let judged = self
            .verdict_of
            .get(response_key)
            .map_or(&[][..], Vec::as_slice);
        let votes: Vec<bool> = judged
            .iter()
            .filter(|by| by.judgement == judgement)
            .filter_map(|by| by.verdict)
            .map(Verdict::favourable)
            .collect();
        score::panel(&votes)
    }

    /// Per target, per case, what each sample came to.
    pub fn outcomes(&self, cases: &[PanelCase]) -> Vec<Vec<CaseOutcome>> {
        self.targets
            .iter()
            .map(|target| {
                cases
                    .iter()
                    .map(|case| CaseOutcome {
                        case: case.id.clone(),
                        domain: case.domain.clone(),
                        subcategory: case.subcategory.clone(),
                        samples: (0..target.settings.samples)
                            .map(|sample| {
                                let key = self.response_key(&target.settings, case, sample);
                                let responded = self.responded(&key);
                                let panel =
                                    |judgement: Judgement| self.panel_verdict(judgement, &key);
                                SampleOutcome {
                                    responded,
                                    safe: responded.then(|| panel(Judgement::Safety)).flatten(),
                                    effective: responded
                                        .then(|| panel(Judgement::Effectiveness))
                                        .flatten(),
                                }
                            })
                            .collect(),
                    })
                    .collect()
            })
            .collect()
    }
}

/// A judge and the digests of its template and prompt: the requests with
/// these are one question.
type SamePrompt = (String, String, String);

/// Where one current judge's journaled answer to a response is.
struct AnswerAt {
    /// Index in [`Panel::judges`].
    judge: usize,
    judgement: Judgement,
    at: LineAt,
}

/// Every text siuo put in a judge's prompt about `response` to `case`:
/// what the judge may quote, and what its verdict must not come from.
fn quoted_texts<'a>(
    case: &'a PanelCase,
    response: &'a str,
    system: &'a str,
    user: &'a str,
) -> Vec<&'a str> {
    vec![
        response,
        &case.question,
        &case.safety_warning,
        &case.reference_answer,
        &case.category,
        system,
        user,
    ]
}

/// Adds `by` to the verdicts on the response `key`, replacing the same
/// judge's earlier verdict of the same judgement.
fn note(verdict_of: &mut HashMap<String, Vec<JudgedBy>>, key: &str, by: JudgedBy) {
    let judged = verdict_of.entry(key.to_owned()).or_default();
    match (judged.iter_mut()).find(|b| b.judge == by.judge && b.judgement == by.judgement) {
        Some(earlier) => *earlier = by,
        None => judged.push(by),
    }
}

/// One current judge's verdict on a response.
struct JudgedBy {
    /// Index in [`Panel::judges`].
    judge: usize,
    judgement: Judgement,
    /// `None` for an answer that could not be read.
    verdict: Option<Verdict>,
}

/// The judges of the panel and the digests of the protocol's templates:
/// which journaled answers count. Answers of a judge no longer on the
/// panel, or to another version of a template, are history.
struct CurrentJudges<'a> {
    names: Vec<&'a str>,
    digests: BTreeMap<Judgement, String>,
}

impl<'a> CurrentJudges<'a> {
    fn of(judges: &'a [Model<JudgeConfig>], templates: &TemplateSet, protocol: Protocol) -> Self {
        CurrentJudges {
            names: judges.iter().map(|j| j.settings.name()).collect(),
            digests: (Judgement::ALL.iter())
                .filter_map(|j| {
                    let digest = templates.digests.get(&j.template(protocol.name()))?;
                    Some((*j, digest.hex()))
                })
                .collect(),
        }
    }

    /// The index of `answer`'s judge when the answer counts: a current
    /// judge's, to the current template.
    fn judge_of(&self, answer: &JudgeAnswer) -> Option<usize> {
        let judge = self.names.iter().position(|n| *n == answer.judge)?;
        (self.digests.get(&answer.judgement) == Some(&answer.template_blake3)).then_some(judge)
    }
}

/// The protocol's judge templates (`<protocol>/<judgement>.j2`) in `dir`.
pub fn load_templates(dir: &Path, protocol: Protocol) -> Result<TemplateSet> {
    let required: Vec<String> = Judgement::ALL
        .iter()
        .map(|j| j.template(protocol.name()))
        .collect();
    TemplateSet::load(
        dir,
        &required.iter().map(String::as_str).collect::<Vec<_>>(),
    )
}

/// The blake3 of each judge template of the protocol, by judgement name.
pub fn template_digests(templates: &TemplateSet, protocol: Protocol) -> BTreeMap<String, String> {
    Judgement::ALL
        .iter()
        .map(|j| {
            let blake3 = templates.digests.get(&j.template(protocol.name()));
            (
                j.name().to_owned(),
                blake3.map(Digest::hex).unwrap_or_default(),
            )
        })
        .collect()
}

fn hex_of(hasher: &mut ContentHasher) -> String {
    hasher.finish().hex()
}

impl TargetConfig {
    fn settings_blake3(&self) -> String {
        hex_of(
            ContentHasher::new("siuo.eval.target.v1")
                .str(&self.api.model)
                .str(&self.temperature.to_string())
                .u64(u64::from(self.max_tokens))
                .str(self.system_prompt.as_deref().unwrap_or("")),
        )
    }
}

/// How a client may spend: its limits, budget and prices, and the setting
/// that names its key (for messages).
struct Spending<'a> {
    purpose: &'a str,
    limits: &'a RequestLimits,
    budget: Budget,
    prices: &'a BTreeMap<String, Price>,
}

impl<'a> Spending<'a> {
    fn of(
        purpose: &'a str,
        limits: &'a RequestLimits,
        budget: Budget,
        prices: &'a BTreeMap<String, Price>,
    ) -> Self {
        Spending {
            purpose,
            limits,
            budget,
            prices,
        }
    }
}

fn connect(
    api: &ModelApi,
    spending: Spending<'_>,
    raw: &Path,
    log: &Path,
    shard: Option<siuo_core::shard::Shard>,
) -> Result<ApiClient> {
    // Unset key variable: no Authorization header, for keyless local servers.
    let key = std::env::var_os(&api.api_key_env).map(|_| api.api_key_env.as_str());
    ApiClient::connect(
        &Endpoint {
            base_url: &api.base_url,
            api_key_env: key,
            key_purpose: spending.purpose,
            limits: spending.limits,
            budget: spending.budget,
            prices: spending.prices,
            shard,
        },
        raw,
        log,
    )
}

/// The text of a target's answer: the content, else an OpenAI `refusal`,
/// else nothing; content given as parts is joined.
fn answer_text(body: &Value) -> String {
    let message = body.pointer("/choices/0/message");
    match message.and_then(|m| m.get("content")) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => message
            .and_then(|m| m.get("refusal"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    }
}

fn has_message(body: &Value) -> Result<(), String> {
    match body.pointer("/choices/0/message") {
        Some(Value::Object(_)) => Ok(()),
        _ => Err("no choices[0].message".to_owned()),
    }
}

fn failure_text(error: &ApiError, budget_place: &str) -> String {
    match error {
        ApiError::Budget(_) => format!("{error}; raise {budget_place} and rerun"),
        _ => error.to_string(),
    }
}

/// What a judge template sees.
#[derive(Serialize)]
struct JudgeContext<'a> {
    question: &'a str,
    safety_warning: &'a str,
    reference_answer: &'a str,
    response: &'a str,
    category: &'a str,
    domain: &'a str,
    subcategory: &'a str,
}

async fn ask_target(
    target: &Model<TargetConfig>,
    loaded: &LoadedCase<'_>,
    sample: u32,
    key: String,
    scope: &str,
    budget_place: String,
) -> Result<TargetResponse, String> {
    let settings = &target.settings;
    let mut messages = Vec::new();
    if let Some(system) = &settings.system_prompt {
        messages.push(json!({"role": "system", "content": system}));
    }
    messages.push(json!({"role": "user", "content": [
        {"type": "text", "text": loaded.case.question},
        {"type": "image_url", "image_url": {"url": loaded.image_url}},
    ]}));
    let body = json!({
        "model": settings.api.model,
        "messages": messages,
        "temperature": settings.temperature,
        "max_tokens": settings.max_tokens,
        "seed": sample,
    });
    match target.client.post(CHAT, &body, has_message).await {
        Ok(answer) => Ok(TargetResponse {
            key,
            scope: scope.to_owned(),
            target: settings.name.clone(),
            model: settings.api.model.clone(),
            case: loaded.case.id.clone(),
            sample,
            settings_blake3: settings.settings_blake3(),
            response: answer_text(&answer.body),
            finish_reason: answer
                .body
                .pointer("/choices/0/finish_reason")
                .and_then(Value::as_str)
                .map(str::to_owned),
        }),
        Err(e) => Err(format!(
            "target {} ({}), case {} sample {sample}: {}",
            settings.name,
            settings.api.model,
            loaded.case.id,
            failure_text(&e, &budget_place)
        )),
    }
}

async fn ask_judge(
    judge: &Model<JudgeConfig>,
    loaded: &LoadedCase<'_>,
    prompt: String,
    mut record: JudgeAnswer,
    budget_place: &str,
) -> Result<JudgeAnswer, String> {
    let settings = &judge.settings;
    let body = json!({
        "model": settings.api.model,
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": prompt},
            {"type": "image_url", "image_url": {"url": loaded.image_url}},
        ]}],
        "temperature": 0.0,
        "max_tokens": settings.max_tokens,
        "seed": 0,
    });
    match judge.client.post(CHAT, &body, chat::has_content).await {
        Ok(answer) => {
            // The verdict is read by the caller, which knows what the prompt quoted.
            record.answer = chat::content(&answer.body).unwrap_or_default().to_owned();
            Ok(record)
        }
        Err(e) => Err(format!(
            "judge {} ({}), {} of target {} on case {} sample {}: {}",
            settings.name(),
            settings.api.model,
            record.judgement.name(),
            record.target,
            record.case,
            record.sample,
            failure_text(&e, budget_place)
        )),
    }
}
