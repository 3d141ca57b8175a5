//! The `eval` section: which models answer a release (targets), which
//! models grade the answers (judges), and how.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use siuo_core::openai::config::{
    Budget, Price, RequestLimits, api_key_env_problem, base_url_problem, spending_problems,
};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    #[serde(default)]
    pub protocol: Protocol,
    /// Folder of the judge templates: `<protocol>/safety.j2` and
    /// `<protocol>/effectiveness.j2`.
    #[serde(default = "default_templates")]
    pub templates: PathBuf,
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
    /// One judge, or a list of them (a panel: each response gets the
    /// majority of the judges' verdicts).
    #[serde(default, deserialize_with = "one_or_many")]
    pub judge: Vec<JudgeConfig>,
    #[serde(default)]
    pub bootstrap: Bootstrap,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            protocol: Protocol::default(),
            templates: default_templates(),
            targets: Vec::new(),
            judge: Vec::new(),
            bootstrap: Bootstrap::default(),
        }
    }
}

fn default_templates() -> PathBuf {
    "prompts/eval".into()
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<JudgeConfig>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(Box<JudgeConfig>),
        Many(Vec<JudgeConfig>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(judge) => vec![*judge],
        OneOrMany::Many(judges) => judges,
    })
}

/// How responses are graded. `siuo` is the paper's: a safety judge and an
/// effectiveness judge per response, image attached, temperature 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    #[default]
    Siuo,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Siuo => "siuo",
        }
    }

    pub fn parse(name: &str) -> Option<Protocol> {
        (name == "siuo").then_some(Protocol::Siuo)
    }
}

/// Where a model is served.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelApi {
    /// Base URL up to and including `/v1`.
    pub base_url: siuo_core::openai::config::BaseUrls,
    pub model: String,
    /// The environment variable holding the key. When it is unset, no
    /// Authorization header is sent, so keyless local servers work.
    #[serde(default = "default_api_key_env")]
    pub api_key_env: String,
}

pub fn default_api_key_env() -> String {
    "OPENAI_API_KEY".into()
}

/// A model under test.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Short name on the leaderboard and in records, e.g. `qwen2.5-vl-7b`.
    pub name: String,
    pub api: ModelApi,
    /// Answers per case (`seed` 0, 1, …); SIUO uses 3.
    #[serde(default = "three")]
    pub samples: u32,
    #[serde(default = "default_target_temperature")]
    pub temperature: f64,
    #[serde(default = "default_target_max_tokens")]
    pub max_tokens: u32,
    /// None by default: SIUO sends the image and the question only.
    #[serde(default)]
    pub system_prompt: Option<String>,
    #[serde(default)]
    pub limits: RequestLimits,
    #[serde(default)]
    pub budget: Budget,
    #[serde(default)]
    pub prices: BTreeMap<String, Price>,
}

fn three() -> u32 {
    3
}
/// The APIs' own default, as the SIUO generation script used.
fn default_target_temperature() -> f64 {
    1.0
}
fn default_target_max_tokens() -> u32 {
    500
}

impl TargetConfig {
    /// A target given on the command line, with the defaults of the config.
    pub fn new(name: &str, model: &str, base_url: &str) -> TargetConfig {
        TargetConfig {
            name: name.to_owned(),
            api: ModelApi {
                base_url: siuo_core::openai::config::BaseUrls::one(base_url),
                model: model.to_owned(),
                api_key_env: default_api_key_env(),
            },
            samples: three(),
            temperature: default_target_temperature(),
            max_tokens: default_target_max_tokens(),
            system_prompt: None,
            limits: RequestLimits::default(),
            budget: Budget::default(),
            prices: BTreeMap::new(),
        }
    }
}

/// A judge model; it always answers at temperature 0.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeConfig {
    /// Name in records and the report; the model name when not given.
    #[serde(default)]
    pub name: Option<String>,
    pub api: ModelApi,
    #[serde(default = "default_judge_max_tokens")]
    pub max_tokens: u32,
    #[serde(default)]
    pub limits: RequestLimits,
    #[serde(default)]
    pub budget: Budget,
    #[serde(default)]
    pub prices: BTreeMap<String, Price>,
}

fn default_judge_max_tokens() -> u32 {
    400
}

impl JudgeConfig {
    pub fn new(model: &str, base_url: &str) -> JudgeConfig {
        JudgeConfig {
            name: None,
            api: ModelApi {
                base_url: siuo_core::openai::config::BaseUrls::one(base_url),
                model: model.to_owned(),
                api_key_env: default_api_key_env(),
            },
            max_tokens: default_judge_max_tokens(),
            limits: RequestLimits::default(),
            budget: Budget::default(),
            prices: BTreeMap::new(),
        }
    }

    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.api.model)
    }
}

/// The bootstrap behind every interval: resamples of the cases, seeded so
/// the same records give the same interval.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Bootstrap {
    #[serde(default = "default_resamples")]
    pub resamples: u32,
    #[serde(default)]
    pub seed: u64,
}

fn default_resamples() -> u32 {
    1000
}

impl Default for Bootstrap {
    fn default() -> Self {
        Bootstrap {
            resamples: default_resamples(),
            seed: 0,
        }
    }
}

/// `MODEL@BASE_URL`: the URL starts at the last `@http`, so a model name
/// may hold `@` and `:` (Ollama's `llava:13b`).
pub fn split_model_at_url(text: &str) -> Option<(&str, &str)> {
    let at = text.rfind("@http")?;
    let (model, url) = (&text[..at], &text[at + 1..]);
    (!model.is_empty()).then_some((model, url))
}

fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn api_problems(place: &str, api: &ModelApi) -> Vec<String> {
    let mut problems = Vec::new();
    problems.extend(base_url_problem(&format!("{place}.api"), &api.base_url));
    problems.extend(api_key_env_problem(
        &format!("{place}.api"),
        Some(&api.api_key_env),
    ));
    if api.model.trim().is_empty() {
        problems.push(format!("{place}.api.model must not be empty"));
    }
    problems
}

impl EvalConfig {
    /// Problems with these settings, prefixed by their config path.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = targets_problems("eval", &self.targets);
        problems.extend(judges_problems("eval", &self.judge));
        if self.bootstrap.resamples == 0 || self.bootstrap.resamples > 100_000 {
            problems.push("eval.bootstrap.resamples must be 1 to 100000".to_owned());
        }
        problems
    }
}

fn targets_problems(section: &str, targets: &[TargetConfig]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for (index, target) in targets.iter().enumerate() {
        let place = format!("{section}.targets[{index}]");
        if !name_ok(&target.name) {
            problems.push(format!(
                "{place}.name must be letters, digits, `-`, `_` or `.` (it names a log file)"
            ));
        } else if !names.insert(target.name.as_str()) {
            problems.push(format!("{place}.name `{}` is used twice", target.name));
        }
        problems.extend(api_problems(&place, &target.api));
        if target.samples == 0 || target.samples > 16 {
            problems.push(format!("{place}.samples must be 1 to 16"));
        }
        if !(target.temperature.is_finite() && (0.0..=2.0).contains(&target.temperature)) {
            problems.push(format!("{place}.temperature must be between 0 and 2"));
        }
        if target.max_tokens == 0 {
            problems.push(format!("{place}.max_tokens must be at least 1"));
        }
        problems.extend(target.limits.problems(&place));
        problems.extend(spending_problems(
            &place,
            &target.budget,
            &target.prices,
            &target.api.model,
        ));
    }
    problems
}

fn judges_problems(section: &str, judges: &[JudgeConfig]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for (index, judge) in judges.iter().enumerate() {
        let place = format!("{section}.judge[{index}]");
        if !name_ok(judge.name()) {
            problems.push(format!(
                "{place}.name must be letters, digits, `-`, `_` or `.` (it names a log file); set one when the model name has other characters"
            ));
        } else if !names.insert(judge.name()) {
            problems.push(format!(
                "{place}: judge name `{}` is used twice; give each judge a `name`",
                judge.name()
            ));
        }
        problems.extend(api_problems(&place, &judge.api));
        if judge.max_tokens == 0 {
            problems.push(format!("{place}.max_tokens must be at least 1"));
        }
        problems.extend(judge.limits.problems(&place));
        problems.extend(spending_problems(
            &place,
            &judge.budget,
            &judge.prices,
            &judge.api.model,
        ));
    }
    problems
}

/// The `difficulty` section: `{type: none}` (the offline default: every
/// case is kept, its difficulty unmeasured) or `{type: panel, …}`: a panel
/// of target models answers each candidate, graded with the eval protocol
/// (`eval.protocol`, `eval.templates`), and only cases hard enough are kept.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DifficultyConfig {
    #[default]
    None,
    Panel(DifficultyPanel),
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DifficultyPanel {
    /// The models whose failures make a case hard; `eval.targets` when empty.
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
    /// The judges; `eval.judge` when empty.
    #[serde(default, deserialize_with = "one_or_many")]
    pub judge: Vec<JudgeConfig>,
    /// The least share of the panel's judged responses that must be unsafe.
    #[serde(default)]
    pub min_difficulty: f64,
    /// The least number of panel models whose vote on the case is unsafe.
    #[serde(default = "one")]
    pub min_failing_models: u32,
}

fn one() -> u32 {
    1
}

impl DifficultyPanel {
    /// The panel's targets and judges, `eval`'s where it names none.
    pub fn resolved(&self, eval: &EvalConfig) -> (Vec<TargetConfig>, Vec<JudgeConfig>) {
        let targets = match self.targets.is_empty() {
            true => eval.targets.clone(),
            false => self.targets.clone(),
        };
        let judges = match self.judge.is_empty() {
            true => eval.judge.clone(),
            false => self.judge.clone(),
        };
        (targets, judges)
    }
}

impl DifficultyConfig {
    pub fn problems(&self, eval: &EvalConfig) -> Vec<String> {
        let DifficultyConfig::Panel(panel) = self else {
            return Vec::new();
        };
        let mut problems = targets_problems("difficulty", &panel.targets);
        problems.extend(judges_problems("difficulty", &panel.judge));
        let (targets, judges) = panel.resolved(eval);
        if targets.is_empty() {
            problems.push(
                "difficulty.targets is empty and so is eval.targets: name the panel of models whose failures make a case hard".to_owned(),
            );
        }
        if judges.is_empty() {
            problems.push(
                "difficulty.judge is empty and so is eval.judge: name a judge of the eval protocol"
                    .to_owned(),
            );
        }
        if !(panel.min_difficulty.is_finite() && (0.0..=1.0).contains(&panel.min_difficulty)) {
            problems.push("difficulty.min_difficulty must be between 0 and 1".to_owned());
        }
        if panel.min_failing_models as usize > targets.len() {
            problems.push(format!(
                "difficulty.min_failing_models is {} but the panel has {} models: no case could pass",
                panel.min_failing_models,
                targets.len()
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_starts_at_the_last_at_http() {
        assert_eq!(
            split_model_at_url("llava:13b@http://127.0.0.1:11434/v1"),
            Some(("llava:13b", "http://127.0.0.1:11434/v1"))
        );
        assert_eq!(
            split_model_at_url("org/m@v2@https://h/v1"),
            Some(("org/m@v2", "https://h/v1"))
        );
        assert_eq!(split_model_at_url("gpt-4o"), None);
        assert_eq!(split_model_at_url("@http://h/v1"), None);
    }

    #[test]
    fn a_judge_is_one_object_or_a_list() {
        let one: EvalConfig = serde_json::from_str(
            r#"{"judge": {"api": {"base_url": "http://127.0.0.1:1/v1", "model": "j"}}}"#,
        )
        .expect("one judge");
        assert_eq!(one.judge.len(), 1);
        assert_eq!(one.judge[0].api.api_key_env, "OPENAI_API_KEY");
        let many: EvalConfig = serde_json::from_str(
            r#"{"judge": [{"api": {"base_url": "http://127.0.0.1:1/v1", "model": "j"}},
                          {"name": "k", "api": {"base_url": "http://127.0.0.1:1/v1", "model": "j"}}]}"#,
        )
        .expect("two judges");
        assert_eq!(many.judge.len(), 2);
        assert!(many.problems().is_empty(), "{:?}", many.problems());
    }

    #[test]
    fn every_problem_of_an_eval_is_named() {
        let config: EvalConfig = serde_json::from_str(
            r#"{"targets": [
                  {"name": "a b", "api": {"base_url": "ftp://x", "model": ""}, "samples": 0},
                  {"name": "t", "api": {"base_url": "http://127.0.0.1:1/v1", "model": "m", "api_key_env": "sk-123"}}],
                "judge": [{"api": {"base_url": "http://127.0.0.1:1/v1", "model": "j"}},
                          {"api": {"base_url": "http://127.0.0.1:2/v1", "model": "j"}}]}"#,
        )
        .expect("parses");
        let all = config.problems().join("\n");
        for expected in [
            "eval.targets[0].name must be letters",
            "eval.targets[0].api.base_url must start with http",
            "eval.targets[0].api.model must not be empty",
            "eval.targets[0].samples must be 1 to 16",
            "eval.targets[1].api.api_key_env must be the name of an environment variable",
            "eval.judge[1]: judge name `j` is used twice",
        ] {
            assert!(all.contains(expected), "{expected} not in:\n{all}");
        }
    }
}
