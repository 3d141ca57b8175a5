//! Typed records that stages exchange on disk. Stages never drop a row:
//! each writes its own verdict per candidate, so every candidate's fate can
//! be traced from `raw/runs/<run>/`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::content_hash::ContentHasher;
use crate::text_normal;

/// A generated image-text pair, before any check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Candidate {
    /// Derived from domain, subcategory, normalized question and image bytes.
    pub id: String,
    pub domain: String,
    pub subcategory: String,
    /// The text shown to the model under test.
    pub question: String,
    pub image: ImageRef,
    pub image_description: String,
    /// Why the combination is unsafe.
    pub safety_warning: String,
    /// A safe, helpful response.
    pub reference_answer: String,
    pub provenance: Provenance,
    /// For a benign control: the id of the case whose inputs it reuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_of: Option<String>,
    /// For a reviewer's revision (`siuo review`): the candidate it replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_of: Option<String>,
}

impl Candidate {
    pub fn is_control(&self) -> bool {
        self.control_of.is_some()
    }

    pub fn derive_id(
        domain: &str,
        subcategory: &str,
        question: &str,
        image_blake3: &str,
    ) -> String {
        let digest = ContentHasher::new("siuo.candidate.v1")
            .str(domain)
            .str(subcategory)
            .str(&text_normal::normalize(question))
            .str(image_blake3)
            .finish();
        format!("c{}", digest.short(16))
    }
}

/// An image stored once under `raw/images/` by the blake3 of its original bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRef {
    pub blake3: String,
    /// Path relative to the raw folder, e.g. `images/<blake3>.png`.
    pub path: String,
    /// File name extension of the original (`png`, `jpg`, …).
    pub extension: String,
    pub bytes: u64,
}

/// Where a candidate came from, enough to reproduce it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// Generator backend kind (`seeded`, …).
    pub generator: String,
    /// Model behind the generator; for `seeded`, the scenario bank digest.
    pub model: String,
    pub template: String,
    pub template_blake3: String,
    /// blake3 of the rendered prompt (for `seeded`, the rendered template blocks).
    pub prompt_blake3: String,
    pub seed: u64,
    pub run_id: String,
    /// Image source id (`library:starter`), file name in it, credit and license.
    pub image_source: String,
    pub image_file: String,
    pub image_credit: String,
    pub image_license: String,
    /// Scenario or request the candidate was made from.
    pub origin: String,
}

/// One classifier's decision about one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Judgement {
    Safe,
    /// Between the review and the unsafe threshold: a person decides.
    Review,
    Unsafe,
}

/// What one classifier said about one modality of one candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierVerdict {
    pub classifier: String,
    /// Weights or rules digest, or a remote model name.
    pub version: String,
    /// sha256 of an embedded model's weights file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_sha256: Option<String>,
    /// Named scores, e.g. per harm category or per image measurement.
    pub scores: BTreeMap<String, f64>,
    /// How unsafe, from 0 to 1, for ranking (calibration's AUROC) and for
    /// the thresholds that make the judgement.
    #[serde(default)]
    pub unsafe_score: f64,
    pub judgement: Judgement,
    /// Short machine-readable reasons unless safe, e.g. `lexicon:violence`.
    pub reasons: Vec<String>,
    /// Human-readable detail (matched phrases, decode error, …).
    pub detail: String,
}

/// A stage's typed decision about one candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum Decision {
    Keep,
    Reject {
        reasons: Vec<String>,
    },
    /// Neither kept nor rejected: held back from later stages until a
    /// person decides (the check stage's review band).
    Review {
        reasons: Vec<String>,
    },
}

impl Decision {
    pub fn is_keep(&self) -> bool {
        matches!(self, Decision::Keep)
    }

    pub fn reasons(&self) -> &[String] {
        match self {
            Decision::Keep => &[],
            Decision::Reject { reasons } | Decision::Review { reasons } => reasons,
        }
    }
}

impl Judgement {
    /// A verdict's reasons: none when safe, else `classifier:category`.
    pub fn reasons(self, classifier: &str, category: &str) -> Vec<String> {
        match self {
            Judgement::Safe => Vec::new(),
            Judgement::Review | Judgement::Unsafe => vec![format!("{classifier}:{category}")],
        }
    }
}

impl ClassifierVerdict {
    pub fn is_safe(&self) -> bool {
        self.judgement == Judgement::Safe
    }
}

/// The check stage's record of one candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckVerdict {
    pub candidate_id: String,
    pub text: Vec<ClassifierVerdict>,
    pub image: Vec<ClassifierVerdict>,
    #[serde(flatten)]
    pub decision: Decision,
}

/// Fingerprints exact dedupe compares.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Fingerprint {
    /// blake3 of the normalized question.
    pub question_blake3: String,
    /// blake3 of the decoded RGBA8 pixels and dimensions.
    pub pixels_blake3: String,
}

/// Near-duplicate fingerprints (`dedupe: {type: near}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NearFingerprint {
    /// 64-bit pHashes of the image, its mirror, its centred 90% crop, its
    /// top and bottom 85%, and those two of the mirror, as hex joined by `-`.
    pub image_phashes: String,
    /// MinHash signature of the normalized question's character 5-grams.
    pub question_minhash: Vec<u32>,
}

/// What a duplicate duplicates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "in", rename_all = "kebab-case")]
pub enum DuplicateOf {
    Run { candidate_id: String },
    Release { version: String, question_id: u64 },
}

/// The dedupe stage's record of one candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DedupeVerdict {
    pub candidate_id: String,
    pub fingerprint: Option<Fingerprint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub near: Option<NearFingerprint>,
    pub duplicate_of: Option<DuplicateOf>,
    #[serde(flatten)]
    pub decision: Decision,
}

/// A per-candidate verdict of a stage.
pub trait CandidateVerdict {
    fn candidate_id(&self) -> &str;
    fn decision(&self) -> &Decision;
}

impl CandidateVerdict for CheckVerdict {
    fn candidate_id(&self) -> &str {
        &self.candidate_id
    }
    fn decision(&self) -> &Decision {
        &self.decision
    }
}

impl CandidateVerdict for DedupeVerdict {
    fn candidate_id(&self) -> &str {
        &self.candidate_id
    }
    fn decision(&self) -> &Decision {
        &self.decision
    }
}

/// One vote: one sample of one juror on one check of one candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JurorVote {
    pub juror: String,
    pub model: String,
    /// Sample number, also the request's `seed`.
    pub sample: u32,
    /// blake3 of the rendered prompt: system and user text, and the image's blake3.
    pub prompt_blake3: String,
    /// The juror's answer as it came.
    pub raw_answer: String,
    /// The answer to the one repair request, when the first was not valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repaired_answer: Option<String>,
    /// The valid answer's JSON object.
    pub parsed: serde_json::Value,
    /// `pass` (vouches for the case on this check) or `fail`.
    pub vote: String,
}

/// A check's votes and outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRecord {
    /// `joint-risk`, `leakage`, `image-fidelity` or `reference-answer`.
    pub check: String,
    pub template: String,
    pub template_blake3: String,
    /// `pass` or `fail` when that side reached the quorum, else `split`.
    pub outcome: String,
    pub votes: Vec<JurorVote>,
}

/// The label a jury suggests when it disagrees with the case's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuggestedLabel {
    pub domain: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subcategory: Option<String>,
}

/// The verify stage's record of one candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyVerdict {
    pub candidate_id: String,
    /// `jury`, or `none` when verification is off (`verify: {type: none}`).
    pub method: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub quorum: String,
    pub checks: Vec<CheckRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested_label: Option<SuggestedLabel>,
    #[serde(flatten)]
    pub decision: Decision,
}

impl CandidateVerdict for VerifyVerdict {
    fn candidate_id(&self) -> &str {
        &self.candidate_id
    }
    fn decision(&self) -> &Decision {
        &self.decision
    }
}

/// One panel model's answers to one candidate, as the difficulty stage graded them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PanelModelResult {
    pub target: String,
    pub model: String,
    pub samples: u32,
    /// Samples with a safety verdict.
    pub judged: u32,
    pub unsafe_responses: u32,
    /// Samples the model answered with no text.
    pub no_response: u32,
    /// The model's vote on the case (the majority of its judged samples,
    /// a tie unsafe); `None` when no sample was judged.
    pub safe: Option<bool>,
    pub effective: Option<bool>,
}

/// The difficulty stage's record of one candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DifficultyVerdict {
    pub candidate_id: String,
    /// `panel`, or `none` when the stage is off (`difficulty: {type: none}`).
    pub method: String,
    /// The share of the panel's judged responses that were unsafe.
    pub difficulty: Option<f64>,
    /// Twice the standard deviation of the judged models' unsafe shares.
    pub discrimination: Option<f64>,
    pub failing_models: u32,
    pub models: Vec<PanelModelResult>,
    #[serde(flatten)]
    pub decision: Decision,
}

impl DifficultyVerdict {
    /// Kept without asking the panel: the stage is off (`none`), or the
    /// candidate is a benign control (`control`).
    pub fn unmeasured(candidate_id: &str, method: &str) -> DifficultyVerdict {
        DifficultyVerdict {
            candidate_id: candidate_id.to_owned(),
            method: method.to_owned(),
            difficulty: None,
            discrimination: None,
            failing_models: 0,
            models: Vec::new(),
            decision: Decision::Keep,
        }
    }
}

impl CandidateVerdict for DifficultyVerdict {
    fn candidate_id(&self) -> &str {
        &self.candidate_id
    }
    fn decision(&self) -> &Decision {
        &self.decision
    }
}

/// What one round of the generation loop (`generate.rounds`) yielded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoundYield {
    pub round: u32,
    /// Work items (generator requests before repairs and images).
    pub items: u64,
    /// Live generator requests of the round (repairs and images included;
    /// answers a redone item got from the cache are not counted), and
    /// their cost when prices are configured.
    pub requests: u64,
    pub cost: f64,
    /// Candidates first made in this round (controls not counted).
    pub candidates: u64,
    /// Of those, at or above the difficulty bar.
    pub hard: u64,
    pub hard_per_request: Option<f64>,
    pub hard_per_cost: Option<f64>,
    /// The generator's requests and cost up to the end of this round.
    pub requests_total: u64,
    pub cost_total: f64,
}
