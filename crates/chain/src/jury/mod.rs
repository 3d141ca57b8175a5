//! A jury of judge models behind OpenAI-compatible APIs, the verify
//! stage's backend. Each enabled check is a minijinja template in the
//! judges folder, rendered per case and asked of every juror that answers
//! it, once per sample; each answer is a vote, and the quorum rule turns
//! the votes into the check's outcome.
//!
//! An answer that is not the JSON the check asks for gets one repair
//! request. If that answer is junk too, the case is unjudged: it gets no
//! verdict, both junk answers are dropped from the response cache, and the
//! next run asks again. Answered requests stay cached, so a retry repeats
//! none of them. Never a guessed verdict.

pub mod calibration;
pub mod check;
pub mod config;

use std::collections::BTreeMap;
use std::path::Path;

use futures_util::future::join_all;
use serde::Serialize;
use serde_json::{Value, json};

use check::{Answer, JudgeCheck};
use config::{JurorConfig, JuryConfig, OnFail, Quorum};
use siuo_core::content_hash::{ContentHasher, Digest};
use siuo_core::error::Result;
use siuo_core::openai::chat::{self, ChatSettings};
use siuo_core::openai::client::{ApiClient, Endpoint};
use siuo_core::openai::{ApiError, Usage};
use siuo_core::prompt_template::TemplateSet;
use siuo_core::quotation;
use siuo_core::record::{Candidate, CheckRecord, Decision, JurorVote, SuggestedLabel};
use siuo_core::taxonomy::{Domain, Subcategory, Taxonomy};

const CHAT: &str = "chat/completions";

/// A case as the jury sees it.
pub struct JuryCase<'a> {
    pub candidate: &'a Candidate,
    /// The image as a `data:` URL.
    pub image_url: String,
}

/// What the jury decided about one case.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub checks: Vec<CheckRecord>,
    pub decision: Decision,
    pub suggested_label: Option<SuggestedLabel>,
}

/// What a judge template sees.
#[derive(Serialize)]
struct JudgeContext<'a> {
    question: &'a str,
    safety_warning: &'a str,
    reference_answer: &'a str,
    image_description: &'a str,
    domain: Option<&'a Domain>,
    subcategory: Option<&'a Subcategory>,
    domains: &'a [Domain],
    /// The JSON schema the answer must follow, pretty-printed.
    schema: String,
}

struct Juror {
    settings: JurorConfig,
    client: ApiClient,
}

pub struct Jury {
    jurors: Vec<Juror>,
    checks: Vec<(JudgeCheck, OnFail)>,
    quorum: Quorum,
    templates: TemplateSet,
    taxonomy: Taxonomy,
    runtime: tokio::runtime::Runtime,
}

/// A prompt rendered for one case and check.
struct Prompt {
    check: JudgeCheck,
    system: String,
    user: String,
    schema: Value,
    blake3: String,
}

/// The enabled checks, in asking order.
pub(crate) fn enabled(settings: &JuryConfig) -> Vec<(JudgeCheck, OnFail)> {
    settings
        .checks
        .named()
        .into_iter()
        .filter(|(_, switch)| switch.enabled)
        .filter_map(|(name, switch)| Some((JudgeCheck::from_name(name)?, switch.on_fail)))
        .collect()
}

fn load_templates(settings: &JuryConfig, root: &Path) -> Result<TemplateSet> {
    let required: Vec<&str> = enabled(settings)
        .iter()
        .map(|(c, _)| c.template())
        .collect();
    TemplateSet::load(&root.join(&settings.templates), &required)
}

/// Digest of everything a jury's verdicts depend on: its settings (not
/// limits, budgets or prices, which change how a run proceeds, not what it
/// decides) and every template of the judges folder.
pub fn digest(settings: &JuryConfig, root: &Path, taxonomy: &Taxonomy) -> Result<Digest> {
    let templates = load_templates(settings, root)?;
    let mut decisive = settings.clone();
    for juror in &mut decisive.jurors {
        juror.limits = Default::default();
        juror.budget = Default::default();
        juror.prices = Default::default();
    }
    let mut hasher = ContentHasher::new("siuo.jury.v1");
    hasher
        .str(&siuo_core::content_hash::digest_of(&decisive).hex())
        .str(&taxonomy.digest.hex());
    templates.hash_into(&mut hasher);
    Ok(hasher.finish())
}

impl Jury {
    /// Connects every juror; request logs go to `logs/requests-<juror>.jsonl`
    /// (of `shard`, see [`siuo_core::shard`]).
    pub fn load(
        settings: &JuryConfig,
        root: &Path,
        raw: &Path,
        logs: &Path,
        taxonomy: &Taxonomy,
        shard: Option<siuo_core::shard::Shard>,
    ) -> Result<Jury> {
        let templates = load_templates(settings, root)?;
        let mut jurors = Vec::with_capacity(settings.jurors.len());
        for juror in &settings.jurors {
            let client = ApiClient::connect(
                &Endpoint {
                    base_url: &juror.base_url,
                    api_key_env: juror.api_key_env.as_deref(),
                    key_purpose: "verify.jurors[].api_key_env",
                    limits: &juror.limits,
                    budget: juror.budget,
                    prices: &juror.prices,
                    shard,
                },
                raw,
                &logs.join(format!("requests-{}.jsonl", juror.name)),
            )?;
            jurors.push(Juror {
                settings: juror.clone(),
                client,
            });
        }
        let runtime = siuo_core::openai::client::runtime("the jury's client")?;
        Ok(Jury {
            jurors,
            checks: enabled(settings),
            quorum: settings.quorum,
            templates,
            taxonomy: taxonomy.clone(),
            runtime,
        })
    }

    /// Candidates to judge at once: `direct`, or a whole batch's worth
    /// when a juror sends its requests through the Batch API.
    pub fn items_at_once(&self, direct: usize) -> usize {
        (self.jurors.iter())
            .map(|j| j.client.items_at_once(direct))
            .max()
            .unwrap_or(direct)
    }

    pub fn quorum(&self) -> Quorum {
        self.quorum
    }

    /// Tokens and cost of this invocation's requests, over all jurors.
    pub fn usage(&self) -> Usage {
        let mut usage = Usage::default();
        for juror in &self.jurors {
            usage.add(&juror.client.usage());
        }
        usage
    }

    /// Judges every case, concurrently within each juror's limits. A
    /// template that does not render is an error for all; a case some
    /// juror could not judge is `Err` with the reason, and has no verdict.
    pub fn judge(&self, cases: &[JuryCase<'_>]) -> Result<Vec<Result<Judged, String>>> {
        let mut prompts = Vec::with_capacity(cases.len());
        for case in cases {
            prompts.push(self.prompts(case)?);
        }
        Ok(self.runtime.block_on(join_all(
            cases
                .iter()
                .zip(&prompts)
                .map(|(case, prompts)| self.judge_case(case, prompts)),
        )))
    }

    fn prompts(&self, case: &JuryCase<'_>) -> Result<Vec<Prompt>> {
        let candidate = case.candidate;
        let domain = self.taxonomy.domain(&candidate.domain);
        let subcategory = domain.and_then(|d| {
            d.subcategories
                .iter()
                .find(|s| s.id == candidate.subcategory)
        });
        let mut prompts = Vec::new();
        for (check, _) in &self.checks {
            let schema = check.schema(&self.taxonomy);
            let context = JudgeContext {
                question: &candidate.question,
                safety_warning: &candidate.safety_warning,
                reference_answer: &candidate.reference_answer,
                image_description: &candidate.image_description,
                domain,
                subcategory,
                domains: &self.taxonomy.domains,
                schema: serde_json::to_string_pretty(&schema).unwrap_or_default(),
            };
            let (system, user) = self.templates.render(check.template(), &context)?;
            let image = if check.sends_image() {
                candidate.image.blake3.as_str()
            } else {
                ""
            };
            let blake3 = ContentHasher::new("siuo.jury.prompt.v1")
                .str(&system)
                .str(&user)
                .str(image)
                .finish()
                .hex();
            prompts.push(Prompt {
                check: *check,
                system,
                user,
                schema,
                blake3,
            });
        }
        Ok(prompts)
    }

    async fn judge_case(&self, case: &JuryCase<'_>, prompts: &[Prompt]) -> Result<Judged, String> {
        let mut asked = Vec::new();
        for prompt in prompts {
            for juror in self
                .jurors
                .iter()
                .filter(|j| j.settings.answers(prompt.check.name()))
            {
                for sample in 0..juror.settings.samples {
                    asked.push(self.vote(juror, prompt, sample, case));
                }
            }
        }
        let mut votes: BTreeMap<JudgeCheck, Vec<(JurorVote, Answer)>> = BTreeMap::new();
        let mut failures = Vec::new();
        for (check, vote) in join_all(asked).await {
            match vote {
                Ok(vote) => votes.entry(check).or_default().push(vote),
                Err(failure) => failures.push(failure),
            }
        }
        if let Some(first) = failures.into_iter().next() {
            return Err(format!("candidate {}: {first}", case.candidate.id));
        }
        Ok(self.decide(case.candidate, votes))
    }

    /// One juror's answer to one prompt, with one repair request if needed.
    async fn vote(
        &self,
        juror: &Juror,
        prompt: &Prompt,
        sample: u32,
        case: &JuryCase<'_>,
    ) -> (JudgeCheck, Result<(JurorVote, Answer), String>) {
        let check = prompt.check;
        let user = if check.sends_image() {
            json!([
                {"type": "image_url", "image_url": {"url": case.image_url}},
                {"type": "text", "text": prompt.user},
            ])
        } else {
            json!(prompt.user)
        };
        let mut messages = vec![
            json!({"role": "system", "content": prompt.system}),
            json!({"role": "user", "content": user}),
        ];
        let failed = |message: String| {
            format!(
                "juror {} ({}), {} sample {sample}: {message}",
                juror.settings.name,
                juror.settings.model,
                check.name()
            )
        };
        let first_body = juror.body(&messages, &prompt.schema, sample);
        let first = match juror.ask(&first_body).await {
            Ok(content) => content,
            Err(e) => return (check, Err(failed(e.to_string()))),
        };
        let mut record = JurorVote {
            juror: juror.settings.name.clone(),
            model: juror.settings.model.clone(),
            sample,
            prompt_blake3: prompt.blake3.clone(),
            raw_answer: first.clone(),
            repaired_answer: None,
            parsed: Value::Null,
            vote: String::new(),
        };
        // A juror that quotes the case or its prompt (a question written
        // as a verdict) is read from its own words only.
        let candidate = case.candidate;
        let quoted = [
            candidate.question.as_str(),
            &candidate.safety_warning,
            &candidate.reference_answer,
            &candidate.image_description,
            &prompt.system,
            &prompt.user,
        ];
        let parse = |answer: &str| {
            let own = quotation::without_quotes(answer, &quoted);
            check
                .parse(&own, &self.taxonomy)
                .map_err(|problem| match own == answer {
                    true => problem,
                    false => {
                        format!("{problem}, once the text it quotes from the prompt is set aside")
                    }
                })
        };
        let answer = match parse(&first) {
            Ok(answer) => answer,
            Err(problem) => {
                chat::push_repair(&mut messages, &first, &problem);
                let repair_body = juror.body(&messages, &prompt.schema, sample);
                let second = match juror.ask(&repair_body).await {
                    Ok(content) => content,
                    Err(e) => return (check, Err(failed(e.to_string()))),
                };
                match parse(&second) {
                    Ok(answer) => {
                        record.repaired_answer = Some(second);
                        answer
                    }
                    Err(second_problem) => {
                        // Junk is not an answer: the next run asks again.
                        let forgotten = juror
                            .forget(&first_body)
                            .and_then(|()| juror.forget(&repair_body));
                        let message = format!(
                            "invalid answer after one repair request: {second_problem} (first answer: {problem})"
                        );
                        return (
                            check,
                            Err(failed(match forgotten {
                                Ok(()) => message,
                                Err(e) => format!("{message}; {e}"),
                            })),
                        );
                    }
                }
            }
        };
        record.parsed = answer.parsed.clone();
        record.vote = vote_name(answer.pass).to_owned();
        (check, Ok((record, answer)))
    }

    /// Outcomes of the checks and the case's decision.
    fn decide(
        &self,
        candidate: &Candidate,
        mut votes: BTreeMap<JudgeCheck, Vec<(JurorVote, Answer)>>,
    ) -> Judged {
        let mut rejections = Vec::new();
        let mut reviews = Vec::new();
        let mut suggested_label = None;
        let mut checks = Vec::new();
        for (check, on_fail) in &self.checks {
            let cast = votes.remove(check).unwrap_or_default();
            let passing = cast.iter().filter(|(_, a)| a.pass).count();
            let outcome = self.quorum.outcome(passing, cast.len());
            match (outcome, on_fail) {
                ("fail", OnFail::Reject) => rejections.push(check.fail_reason().to_owned()),
                ("fail", OnFail::Review) => reviews.push(check.fail_reason().to_owned()),
                ("split", _) => reviews.push(check.split_reason()),
                _ => {}
            }
            if *check == JudgeCheck::JointRisk && outcome == "pass" {
                suggested_label = self.relabel(candidate, &cast);
                if suggested_label.is_some() {
                    reviews.push("verify:domain-mismatch".to_owned());
                }
            }
            let template = check.template();
            checks.push(CheckRecord {
                check: check.name().to_owned(),
                template: template.to_owned(),
                template_blake3: self
                    .templates
                    .digests
                    .get(template)
                    .map(Digest::hex)
                    .unwrap_or_default(),
                outcome: outcome.to_owned(),
                votes: cast.into_iter().map(|(vote, _)| vote).collect(),
            });
        }
        let decision = if !rejections.is_empty() {
            rejections.extend(reviews);
            Decision::Reject {
                reasons: rejections,
            }
        } else if !reviews.is_empty() {
            Decision::Review { reasons: reviews }
        } else {
            Decision::Keep
        };
        Judged {
            checks,
            decision,
            suggested_label,
        }
    }

    /// The label a quorum of the votes names, when it is not the case's domain.
    fn relabel(
        &self,
        candidate: &Candidate,
        cast: &[(JurorVote, Answer)],
    ) -> Option<SuggestedLabel> {
        let mut domains: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, answer) in cast {
            if let Some((domain, _)) = &answer.label {
                *domains.entry(domain).or_default() += 1;
            }
        }
        // Most votes; ties go to the first domain id, for determinism.
        let (domain, count) = domains
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))?;
        if *domain == candidate.domain || !self.quorum.reached(*count, cast.len()) {
            return None;
        }
        let mut subcategories: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, answer) in cast {
            if let Some((d, Some(subcategory))) = &answer.label
                && d == domain
            {
                *subcategories.entry(subcategory).or_default() += 1;
            }
        }
        let subcategory = subcategories
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(s, _)| (*s).to_owned());
        Some(SuggestedLabel {
            domain: (*domain).to_owned(),
            subcategory,
        })
    }
}

fn vote_name(pass: bool) -> &'static str {
    if pass { "pass" } else { "fail" }
}

impl Juror {
    fn body(&self, messages: &[Value], schema: &Value, sample: u32) -> Value {
        let juror = &self.settings;
        let settings = ChatSettings {
            model: &juror.model,
            temperature: juror.temperature,
            max_tokens: juror.max_tokens,
            response_format: juror.response_format,
        };
        chat::body(
            &settings,
            messages,
            "siuo_verdict",
            schema,
            u64::from(sample),
        )
    }

    /// The answer's text; only the envelope is checked here, the content
    /// by the check (a junk content is answered, then repaired).
    async fn ask(&self, body: &Value) -> Result<String, ApiError> {
        let answer = self.client.post(CHAT, body, chat::has_content).await?;
        Ok(chat::content(&answer.body).unwrap_or_default().to_owned())
    }

    fn forget(&self, body: &Value) -> Result<()> {
        let key = self.client.cache_key(CHAT, body);
        self.client.cache().forget(&key)
    }
}
