//! The offline default generator: renders a minijinja template over a
//! scenario bank, pairing each scenario with library images that carry all
//! its tags (image-first). The seed decides which images and question
//! variants are used; the same inputs always give the same candidates.

use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;

use super::scenario_bank::{Scenario, ScenarioBank, ScenarioControl};
use super::{Generated, GenerationContext, Generator};
use crate::generator::config::SeededConfig;
use crate::image_source::{self, ImageSource, SourceImage};
use siuo_core::content_hash::{ContentHasher, Digest};
use siuo_core::error::{Error, Result};
use siuo_core::input_file;
use siuo_core::prompt_template::template_error;
use siuo_core::record::{Candidate, Provenance};
use siuo_core::taxonomy::Taxonomy;

/// Blocks the template must define, one per candidate field.
const BLOCKS: [&str; 4] = [
    "question",
    "image_description",
    "safety_warning",
    "reference_answer",
];

pub struct SeededGenerator {
    settings: SeededConfig,
    bank: ScenarioBank,
    images: Box<dyn ImageSource>,
    template_path: PathBuf,
    template_name: String,
    template_digest: Digest,
    environment: Environment<'static>,
    digest: Digest,
}

/// One (scenario, image, question variant) to render.
pub struct SeededItem {
    scenario: usize,
    image: Option<usize>,
    variant: usize,
}

#[derive(Serialize)]
struct TemplateContext<'a> {
    scenario: &'a Scenario,
    question: &'a str,
    image: &'a SourceImage,
    domain: &'a siuo_core::taxonomy::Domain,
    subcategory: &'a siuo_core::taxonomy::Subcategory,
    seed: u64,
}

impl SeededGenerator {
    pub fn load(settings: &SeededConfig, root: &Path, taxonomy: &Taxonomy) -> Result<Self> {
        let bank = ScenarioBank::load(&root.join(&settings.scenarios), taxonomy)?;
        let images = image_source::build(&settings.images, root)?;
        let template_path = root.join(&settings.template);
        let source = input_file::read_text(&template_path)?;
        let template_name = settings.template.to_string_lossy().replace('\\', "/");
        let mut environment = Environment::new();
        environment.set_undefined_behavior(UndefinedBehavior::Strict);
        environment
            .add_template_owned(template_name.clone(), source.clone())
            .map_err(|e| template_error(&template_path, &e))?;
        for block in BLOCKS {
            if !source.contains(&format!("block {block} "))
                && !source.contains(&format!("block {block}%"))
            {
                return Err(Error::Template {
                    path: template_path,
                    line: None,
                    message: format!(
                        "missing `{{% block {block} %}}` (needs blocks {})",
                        BLOCKS.join(", ")
                    ),
                });
            }
        }
        let template_digest = Digest::of(source.as_bytes());
        let digest = ContentHasher::new("siuo.generator.seeded.v1")
            .str(&siuo_core::content_hash::digest_of(settings).hex())
            .str(&taxonomy.digest.hex())
            .str(&bank.digest.hex())
            .str(&template_name)
            .str(&template_digest.hex())
            .str(&images.digest().hex())
            .finish();
        Ok(SeededGenerator {
            settings: settings.clone(),
            bank,
            images,
            template_path,
            template_name,
            template_digest,
            environment,
            digest,
        })
    }

    pub fn template_name(&self) -> &str {
        &self.template_name
    }

    pub fn template_digest(&self) -> Digest {
        self.template_digest
    }

    /// `items` reordered by a digest of the seed, so the choice is
    /// reproducible yet independent of file order.
    fn seeded_pick<T>(
        &self,
        scenario: &Scenario,
        salt: &str,
        items: Vec<T>,
        key: impl Fn(&T) -> String,
        take: u32,
    ) -> Vec<T> {
        let mut keyed: Vec<(Digest, T)> = items
            .into_iter()
            .map(|item| {
                let digest = ContentHasher::new("siuo.seeded.pick.v1")
                    .u64(self.settings.seed)
                    .str(&scenario.id)
                    .str(salt)
                    .str(&key(&item))
                    .finish();
                (digest, item)
            })
            .collect();
        keyed.sort_by_key(|(digest, _)| *digest);
        keyed
            .into_iter()
            .take(take as usize)
            .map(|(_, item)| item)
            .collect()
    }

    fn render(&self, context: &TemplateContext<'_>) -> Result<Vec<String>> {
        let error = |e: minijinja::Error| template_error(&self.template_path, &e);
        let template = self
            .environment
            .get_template(&self.template_name)
            .map_err(error)?;
        let mut captured = template
            .render_captured(Value::from(minijinja::value::Serde(context)))
            .map_err(error)?;
        BLOCKS
            .iter()
            .map(|block| {
                captured
                    .with_state_mut(|state| state.render_block(block))
                    .map(|text| text.trim().to_owned())
                    .map_err(error)
            })
            .collect()
    }
}

impl Generator for SeededGenerator {
    type Item = SeededItem;
    type Session = ();

    fn kind(&self) -> &'static str {
        "seeded"
    }

    fn digest(&self) -> Digest {
        self.digest
    }

    fn plan(&self) -> Vec<SeededItem> {
        let images = self.images.images();
        let mut plan = Vec::new();
        for (scenario_index, scenario) in self.bank.scenarios.iter().enumerate() {
            let matching: Vec<usize> = (0..images.len())
                .filter(|i| {
                    scenario
                        .image_tags
                        .iter()
                        .all(|tag| images[*i].tags.contains(tag))
                })
                .collect();
            let chosen_images: Vec<Option<usize>> = if matching.is_empty() {
                vec![None]
            } else {
                self.seeded_pick(
                    scenario,
                    "image",
                    matching,
                    |i| images[*i].file.clone(),
                    self.settings.images_per_scenario,
                )
                .into_iter()
                .map(Some)
                .collect()
            };
            let variants = self.seeded_pick(
                scenario,
                "question",
                (0..scenario.questions.len()).collect(),
                |v| v.to_string(),
                self.settings.variants_per_scenario,
            );
            for image in &chosen_images {
                for variant in &variants {
                    plan.push(SeededItem {
                        scenario: scenario_index,
                        image: *image,
                        variant: *variant,
                    });
                }
            }
        }
        plan
    }

    fn key(&self, item: &SeededItem) -> String {
        let scenario = &self.bank.scenarios[item.scenario].id;
        let image = item
            .image
            .map_or("-", |i| self.images.images()[i].file.as_str());
        format!("{scenario}/{image}/q{}", item.variant)
    }

    fn concurrency(&self) -> usize {
        1
    }

    fn open_session(&self, _context: &GenerationContext<'_>) -> Result<()> {
        Ok(())
    }

    fn usage(&self, _session: &()) -> Option<siuo_core::openai::Usage> {
        None
    }

    async fn generate(
        &self,
        _session: &(),
        item: &SeededItem,
        context: &GenerationContext<'_>,
    ) -> Result<Vec<Generated>> {
        let generated = self.generate_one(item, context)?;
        let scenario = &self.bank.scenarios[item.scenario];
        let control = match (&generated, &scenario.control) {
            (Generated::Candidate(case), Some(control)) => Some(control_of(case, control)),
            _ => None,
        };
        Ok(std::iter::once(generated).chain(control).collect())
    }
}

impl SeededGenerator {
    fn generate_one(
        &self,
        item: &SeededItem,
        context: &GenerationContext<'_>,
    ) -> Result<Generated> {
        let scenario = &self.bank.scenarios[item.scenario];
        let Some(image_index) = item.image else {
            return Ok(Generated::Rejected {
                reason: "generate:no-matching-image".to_owned(),
                detail: format!(
                    "scenario `{}`: no image in {} has all tags [{}]",
                    scenario.id,
                    self.images.id(),
                    scenario.image_tags.join(", ")
                ),
            });
        };
        let image = &self.images.images()[image_index];
        let record = format!("scenario `{}`", scenario.id);
        let (domain, subcategory) = context.taxonomy.resolve(
            &self.bank.path,
            &record,
            &scenario.domain,
            &scenario.subcategory,
        )?;
        let question = &scenario.questions[item.variant];
        let fields = self.render(&TemplateContext {
            scenario,
            question,
            image,
            domain,
            subcategory,
            seed: self.settings.seed,
        })?;
        if let Some(block) = BLOCKS
            .iter()
            .zip(&fields)
            .find(|(_, text)| text.is_empty())
            .map(|(b, _)| b)
        {
            return Ok(Generated::Rejected {
                reason: "generate:empty-field".to_owned(),
                detail: format!("{record}: block `{block}` rendered empty"),
            });
        }
        let [
            question,
            image_description,
            safety_warning,
            reference_answer,
        ] = <[String; 4]>::try_from(fields).map_err(|_| Error::Template {
            path: self.template_path.clone(),
            line: None,
            message: "template did not render every block".to_owned(),
        })?;
        let mut prompt = ContentHasher::new("siuo.prompt.v1");
        for field in [
            &question,
            &image_description,
            &safety_warning,
            &reference_answer,
        ] {
            prompt.str(field);
        }
        let image_ref = context.images.put(&self.images.read(image)?, &image.file)?;
        Ok(Generated::Candidate(Box::new(Candidate {
            id: Candidate::derive_id(
                &scenario.domain,
                &scenario.subcategory,
                &question,
                &image_ref.blake3,
            ),
            domain: scenario.domain.clone(),
            subcategory: scenario.subcategory.clone(),
            question,
            image: image_ref,
            image_description,
            safety_warning,
            reference_answer,
            provenance: Provenance {
                generator: self.kind().to_owned(),
                model: format!("scenario-bank:{}", self.bank.digest.short(16)),
                template: self.template_name.clone(),
                template_blake3: self.template_digest.hex(),
                prompt_blake3: prompt.finish().hex(),
                seed: self.settings.seed,
                run_id: context.run_id.to_owned(),
                image_source: self.images.id(),
                image_file: image.file.clone(),
                image_credit: image.source.clone(),
                image_license: image.license.clone(),
                origin: format!("scenario:{}", scenario.id),
            },
            control_of: None,
            revision_of: None,
        })))
    }
}

/// The benign control of a case: its image with the scenario's harmless
/// question, which carries no hazard to warn about.
fn control_of(case: &Candidate, control: &ScenarioControl) -> Generated {
    let mut prompt = ContentHasher::new("siuo.prompt.control.v1");
    prompt
        .str(&case.provenance.prompt_blake3)
        .str(&control.question)
        .str(&control.answer);
    Generated::Candidate(Box::new(Candidate {
        id: Candidate::derive_id(
            &case.domain,
            &case.subcategory,
            &control.question,
            &case.image.blake3,
        ),
        question: control.question.trim().to_owned(),
        safety_warning: String::new(),
        reference_answer: control.answer.trim().to_owned(),
        provenance: Provenance {
            prompt_blake3: prompt.finish().hex(),
            origin: format!("{}:control", case.provenance.origin),
            ..case.provenance.clone()
        },
        control_of: Some(case.id.clone()),
        ..case.clone()
    }))
}
