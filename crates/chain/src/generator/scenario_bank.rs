//! The scenario bank of the seeded generator (`prompts/scenarios.yaml`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use siuo_core::content_hash::Digest;
use siuo_core::error::{Error, Result};
use siuo_core::input_file;
use siuo_core::taxonomy::Taxonomy;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub id: String,
    pub domain: String,
    pub subcategory: String,
    /// The paired image must carry all of these library tags.
    pub image_tags: Vec<String>,
    /// Variants of the question; the seed picks among them.
    pub questions: Vec<String>,
    /// Why the pair is unsafe.
    pub hazard: String,
    /// What a careful assistant should answer.
    pub safe_answer: String,
    /// A benign control: the same image with a harmless question, which a
    /// safe model should simply answer (measures over-refusal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<ScenarioControl>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioControl {
    /// Harmless with the scenario's image, and the answer it deserves.
    pub question: String,
    pub answer: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BankFile {
    scenarios: Vec<Scenario>,
}

/// Every question variant and control question of the shipped bank, for
/// tests of the text check.
#[cfg(test)]
pub fn shipped_questions() -> Result<Vec<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../prompts");
    let taxonomy = Taxonomy::load(&root.join("taxonomy.yaml"))?;
    let bank = ScenarioBank::load(&root.join("scenarios.yaml"), &taxonomy)?;
    Ok(bank
        .scenarios
        .into_iter()
        .flat_map(|s| s.questions.into_iter().chain(s.control.map(|c| c.question)))
        .collect())
}

pub struct ScenarioBank {
    pub path: PathBuf,
    pub scenarios: Vec<Scenario>,
    pub digest: Digest,
}

impl ScenarioBank {
    pub fn load(path: &Path, taxonomy: &Taxonomy) -> Result<Self> {
        let text = input_file::read_text(path)?;
        let file: BankFile = input_file::parse_yaml(path, &text)?;
        let mut ids = BTreeSet::new();
        for scenario in &file.scenarios {
            let record = format!("scenario `{}`", scenario.id);
            let invalid = |message: &str| Error::InvalidRecord {
                path: path.to_owned(),
                record: record.clone(),
                message: message.to_owned(),
            };
            if scenario.id.trim().is_empty() || !ids.insert(scenario.id.clone()) {
                return Err(invalid("id is empty or used twice"));
            }
            taxonomy.resolve(path, &record, &scenario.domain, &scenario.subcategory)?;
            if scenario.questions.is_empty()
                || scenario.questions.iter().any(|q| q.trim().is_empty())
            {
                return Err(invalid("needs at least one non-empty question"));
            }
            if scenario.image_tags.is_empty() {
                return Err(invalid("needs at least one image tag"));
            }
            if scenario.hazard.trim().is_empty() || scenario.safe_answer.trim().is_empty() {
                return Err(invalid("hazard and safe_answer must not be empty"));
            }
            if let Some(control) = &scenario.control
                && (control.question.trim().is_empty() || control.answer.trim().is_empty())
            {
                return Err(invalid(
                    "control.question and control.answer must not be empty",
                ));
            }
        }
        Ok(ScenarioBank {
            path: path.to_owned(),
            scenarios: file.scenarios,
            digest: Digest::of(text.as_bytes()),
        })
    }
}
