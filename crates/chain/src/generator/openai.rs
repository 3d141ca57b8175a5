//! Generation with models behind an OpenAI-compatible API.
//!
//! Text-first: one chat request per (domain, subcategory, request number)
//! asks for cases with image prompts; each image is then made with the
//! Images API. Image-first: one vision chat request per library image asks
//! for the case that fits it. Every answer is validated against
//! [`Contract`]; an invalid one gets one repair request carrying the
//! validation error, and is then rejected with the reason recorded.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;
use serde_json::{Value, json};

use super::openai_config::{GenerationMode, ImageResponse, OpenAiConfig};
use super::structured::{Contract, Draft};
use super::{Exemplar, Feedback, Generated, GenerationContext, Generator};
use crate::image_source::{self, ImageSource};
use siuo_core::content_hash::{ContentHasher, Digest};
use siuo_core::error::{Error, Result};
use siuo_core::openai::cache::{CachedResponse, ResponseCache, canonical_json};
use siuo_core::openai::chat::{self, ChatSettings};
use siuo_core::openai::client::{Endpoint, REQUEST_LOG};
use siuo_core::openai::{ApiClient, ApiError, Usage};
use siuo_core::pixels;
use siuo_core::prompt_template::TemplateSet;
use siuo_core::record::{Candidate, ImageRef, Provenance};
use siuo_core::taxonomy::{Domain, Subcategory, Taxonomy};

const TEXT_FIRST: &str = "text_first.j2";
const IMAGE_FIRST: &str = "image_first.j2";
const BACKEND: &str = "openai";

pub struct OpenAiGenerator {
    settings: OpenAiConfig,
    taxonomy: Taxonomy,
    raw: PathBuf,
    templates: TemplateSet,
    images: Option<Box<dyn ImageSource>>,
    digest: Digest,
}

pub enum OpenAiItem {
    TextFirst {
        domain: usize,
        subcategory: usize,
        request: u32,
        /// Round of the generation loop, from 1, and what earlier rounds
        /// found (empty in round 1).
        round: u32,
        feedback: Arc<Feedback>,
    },
    ImageFirst {
        image: usize,
    },
}

/// One text-first request of a round, resolved against the taxonomy.
struct TextFirstRequest<'a> {
    domain: &'a Domain,
    subcategory: &'a Subcategory,
    request: u32,
    round: u32,
    feedback: &'a Feedback,
}

#[derive(Serialize)]
struct PromptContext<'a> {
    domain: Option<&'a Domain>,
    subcategory: Option<&'a Subcategory>,
    domains: &'a [Domain],
    count: u32,
    seed: u64,
    schema: String,
    image: Option<&'a image_source::SourceImage>,
    /// The loop's round, and the domain's hardest and easiest cases so far.
    round: u32,
    /// Whether each case also needs a benign control question.
    controls: bool,
    exemplars: &'a [Exemplar],
    counter_examples: &'a [Exemplar],
}

fn image_answer(body: &Value) -> Result<(), String> {
    let first = body.pointer("/data/0").ok_or("no data[0]")?;
    if first.get("b64_json").and_then(Value::as_str).is_some()
        || first.get("url").and_then(Value::as_str).is_some()
    {
        Ok(())
    } else {
        Err("data[0] has neither b64_json nor url".to_owned())
    }
}

fn content(body: &Value) -> String {
    chat::content(body).unwrap_or_default().to_owned()
}

impl OpenAiGenerator {
    pub fn load(
        settings: &OpenAiConfig,
        root: &Path,
        raw: &Path,
        taxonomy: &Taxonomy,
    ) -> Result<Self> {
        for domain in &settings.domains {
            if taxonomy.domain(domain).is_none() {
                return Err(Error::UnknownDomain {
                    path: "generate.domains".into(),
                    record: "config".into(),
                    domain: domain.clone(),
                    suggestion: siuo_core::suggestion::closest(
                        domain,
                        taxonomy.domains.iter().map(|d| d.id.as_str()),
                    ),
                });
            }
        }
        let templates =
            TemplateSet::load(&root.join(&settings.templates), &[TEXT_FIRST, IMAGE_FIRST])?;
        let images = match settings.mode {
            GenerationMode::ImageFirst => Some(image_source::build(&settings.images, root)?),
            GenerationMode::TextFirst => None,
        };
        // Limits, budget and prices change how a run proceeds, not what it
        // generates: raising a budget resumes the same run. The key's
        // variable name is part of the config; the key never is.
        let mut output_settings = settings.clone();
        output_settings.limits = Default::default();
        output_settings.budget = Default::default();
        output_settings.prices = Default::default();
        let mut hasher = ContentHasher::new("siuo.generator.openai.v1");
        hasher
            .str(&siuo_core::content_hash::digest_of(&output_settings).hex())
            .str(&taxonomy.digest.hex());
        templates.hash_into(&mut hasher);
        if let Some(images) = &images {
            hasher.str(&images.digest().hex());
        }
        Ok(OpenAiGenerator {
            settings: settings.clone(),
            taxonomy: taxonomy.clone(),
            raw: raw.to_owned(),
            templates,
            images,
            digest: hasher.finish(),
        })
    }

    fn domains(&self) -> Vec<(usize, &Domain)> {
        self.taxonomy
            .domains
            .iter()
            .enumerate()
            .filter(|(_, d)| {
                self.settings.domains.is_empty() || self.settings.domains.contains(&d.id)
            })
            .collect()
    }

    fn chat_body(&self, messages: &[Value], schema: &Value, seed: u64) -> Value {
        let api = &self.settings.api;
        let settings = ChatSettings {
            model: &api.chat_model,
            temperature: api.temperature,
            max_tokens: api.max_tokens,
            response_format: api.response_format,
        };
        chat::body(&settings, messages, "siuo_candidates", schema, seed)
    }

    /// Sends the chat request and, if the answer breaks the contract, one
    /// repair request. `Ok(Err(reason))` is a rejection to record.
    async fn ask(
        &self,
        client: &ApiClient,
        messages: Vec<Value>,
        contract: &Contract,
        schema: &Value,
        seed: u64,
    ) -> Result<Result<Vec<Draft>, String>, ApiError> {
        let send = async |messages: &[Value]| {
            let body = self.chat_body(messages, schema, seed);
            client
                .post("chat/completions", &body, chat::has_content)
                .await
                .map(|answer| content(&answer.body))
        };
        let first = send(&messages).await?;
        let problem = match contract.parse(&first, &self.taxonomy) {
            Ok(drafts) => return Ok(Ok(drafts)),
            Err(problem) => problem,
        };
        let mut repair = messages;
        chat::push_repair(&mut repair, &first, &problem);
        let second = send(&repair).await?;
        Ok(contract.parse(&second, &self.taxonomy).map_err(|second| {
            format!("invalid output after one repair request: {second} (first answer: {problem})")
        }))
    }

    /// Makes the image of a text-first draft and stores it.
    async fn make_image(
        &self,
        client: &ApiClient,
        context: &GenerationContext<'_>,
        prompt: &str,
    ) -> Result<ImageRef, ApiError> {
        let api = &self.settings.api;
        let model = api.image_model.clone().unwrap_or_default();
        let mut body = json!({"model": model, "prompt": prompt, "n": 1, "size": api.image_size});
        // Only ask for URLs explicitly: some image models reject the
        // parameter, and either kind of answer is handled below.
        if api.image_response == ImageResponse::Url {
            body["response_format"] = json!("url");
        }
        let answer = client
            .post("images/generations", &body, image_answer)
            .await?;
        let local = |error: Error| ApiError::Local(error);
        if let Some(encoded) = answer
            .body
            .pointer("/data/0/b64_json")
            .and_then(Value::as_str)
        {
            let bytes = BASE64
                .decode(encoded.trim())
                .map_err(|e| ApiError::Failed {
                    endpoint: "images/generations".into(),
                    attempts: 1,
                    message: format!("b64_json is not base64: {e}"),
                })?;
            return context.images.put(&bytes, "generated.png").map_err(local);
        }
        let url = answer
            .body
            .pointer("/data/0/url")
            .and_then(Value::as_str)
            .unwrap_or_default();
        // URLs expire: remember which stored image a URL gave, so a rerun needs no download.
        let key = ResponseCache::key(url, &Value::Null);
        if let Some(hit) = client.cache().get(&key)
            && let Ok(image) = serde_json::from_value::<ImageRef>(hit.body)
            && context.images.path(&image).is_file()
        {
            return Ok(image);
        }
        let bytes = client.fetch(url).await?;
        let image = context
            .images
            .put(&bytes, url.rsplit('/').next().unwrap_or("download"))
            .map_err(local)?;
        let entry = CachedResponse {
            endpoint: "image download".into(),
            model,
            body: serde_json::to_value(&image).unwrap_or_default(),
            prompt_tokens: 0,
            completion_tokens: 0,
        };
        client.cache().put(&key, &entry).map_err(local)?;
        Ok(image)
    }

    fn provenance(
        &self,
        context: &GenerationContext<'_>,
        template: &str,
        prompt_blake3: &str,
        seed: u64,
    ) -> Provenance {
        Provenance {
            generator: BACKEND.to_owned(),
            model: self.settings.api.chat_model.clone(),
            template: format!(
                "{}/{template}",
                self.settings.templates.to_string_lossy().replace('\\', "/")
            ),
            template_blake3: self
                .templates
                .digests
                .get(template)
                .map(Digest::hex)
                .unwrap_or_default(),
            prompt_blake3: prompt_blake3.to_owned(),
            seed,
            run_id: context.run_id.to_owned(),
            image_source: String::new(),
            image_file: String::new(),
            image_credit: String::new(),
            image_license: String::new(),
            origin: String::new(),
        }
    }

    async fn text_first(
        &self,
        client: &ApiClient,
        context: &GenerationContext<'_>,
        asked: TextFirstRequest<'_>,
    ) -> Result<Vec<Generated>> {
        let TextFirstRequest {
            domain,
            subcategory,
            request,
            round,
            feedback,
        } = asked;
        let contract = Contract::TextFirst {
            domain: domain.id.clone(),
            subcategory: subcategory.id.clone(),
            count: self.settings.candidates_per_request,
            controls: self.settings.controls,
        };
        let template = format!("domains/{}.j2", domain.id);
        let template = if self.templates.digests.contains_key(&template) {
            template
        } else {
            TEXT_FIRST.to_owned()
        };
        // Each round's requests get seeds of their own.
        let per_round = u64::from(self.settings.requests_per_subcategory);
        let seed = self.settings.seed + u64::from(round - 1) * per_round + u64::from(request);
        let nothing = Vec::new();
        let exemplars = feedback.hardest.get(&domain.id).unwrap_or(&nothing);
        let counter_examples = feedback.easiest.get(&domain.id).unwrap_or(&nothing);
        // Built once: it goes into the prompt and into every request body.
        let schema = contract.schema(&self.taxonomy);
        let (system, user) = self.templates.render(
            &template,
            &PromptContext {
                domain: Some(domain),
                subcategory: Some(subcategory),
                domains: &self.taxonomy.domains,
                count: self.settings.candidates_per_request,
                seed,
                schema: serde_json::to_string_pretty(&schema).unwrap_or_default(),
                image: None,
                controls: self.settings.controls,
                round,
                exemplars,
                counter_examples,
            },
        )?;
        let messages = vec![
            json!({"role": "system", "content": system}),
            json!({"role": "user", "content": user}),
        ];
        let prompt_blake3 =
            Digest::of(canonical_json(&Value::Array(messages.clone())).as_bytes()).hex();
        let origin = match round {
            1 => format!("text-first:{}/{}#{request}", domain.id, subcategory.id),
            _ => format!(
                "text-first:{}/{}#{request}@round{round}",
                domain.id, subcategory.id
            ),
        };
        let drafts = match self
            .ask(client, messages, &contract, &schema, seed)
            .await
            .map_err(|e| self.api_error(context, &origin, e))?
        {
            Ok(drafts) => drafts,
            Err(reason) => return Ok(vec![rejected(&origin, reason)]),
        };
        let image_model = self.settings.api.image_model.clone().unwrap_or_default();
        let mut outcomes = Vec::new();
        for (index, draft) in drafts.into_iter().enumerate() {
            let image_prompt = draft.image_prompt.clone().unwrap_or_default();
            let image = self
                .make_image(client, context, &image_prompt)
                .await
                .map_err(|e| self.api_error(context, &origin, e))?;
            let mut provenance = self.provenance(context, &template, &prompt_blake3, seed);
            provenance.image_source = format!("openai-images:{image_model}");
            provenance.image_file = format!("{}.{}", image.blake3, image.extension);
            provenance.image_credit =
                format!("generated by {image_model} from the prompt: {image_prompt}");
            provenance.image_license = self.settings.generated_image_license.clone();
            provenance.origin = format!("{origin}[{index}]");
            outcomes.extend(candidate(draft, image, provenance));
        }
        Ok(outcomes)
    }

    async fn image_first(
        &self,
        client: &ApiClient,
        context: &GenerationContext<'_>,
        index: usize,
    ) -> Result<Vec<Generated>> {
        let Some(source) = &self.images else {
            return Ok(Vec::new());
        };
        let image = &source.images()[index];
        let bytes = source.read(image)?;
        let stored = context.images.put(&bytes, &image.file)?;
        let origin = format!("image-first:{}", image.file);
        let seed = self.settings.seed;
        let contract = Contract::ImageFirst {
            controls: self.settings.controls,
        };
        let schema = contract.schema(&self.taxonomy);
        let (system, user) = self.templates.render(
            IMAGE_FIRST,
            &PromptContext {
                domain: None,
                subcategory: None,
                domains: &self.taxonomy.domains,
                count: 1,
                seed,
                schema: serde_json::to_string_pretty(&schema).unwrap_or_default(),
                image: Some(image),
                controls: self.settings.controls,
                round: 1,
                exemplars: &[],
                counter_examples: &[],
            },
        )?;
        let data_url = pixels::data_url(&bytes);
        let messages = vec![
            json!({"role": "system", "content": system}),
            json!({"role": "user", "content": [
                {"type": "text", "text": user},
                {"type": "image_url", "image_url": {"url": data_url}},
            ]}),
        ];
        // The image is identified by its digest: hashing the data URL adds nothing.
        let prompt_blake3 = ContentHasher::new("siuo.prompt.image-first.v1")
            .str(&system)
            .str(&user)
            .str(&stored.blake3)
            .finish()
            .hex();
        let drafts = match self
            .ask(client, messages, &contract, &schema, seed)
            .await
            .map_err(|e| self.api_error(context, &origin, e))?
        {
            Ok(drafts) => drafts,
            Err(reason) => return Ok(vec![rejected(&origin, reason)]),
        };
        Ok(drafts
            .into_iter()
            .flat_map(|draft| {
                let mut provenance = self.provenance(context, IMAGE_FIRST, &prompt_blake3, seed);
                provenance.image_source = source.id();
                provenance.image_file = image.file.clone();
                provenance.image_credit = image.source.clone();
                provenance.image_license = image.license.clone();
                provenance.origin = origin.clone();
                candidate(draft, stored.clone(), provenance)
            })
            .collect())
    }

    fn api_error(&self, context: &GenerationContext<'_>, origin: &str, error: ApiError) -> Error {
        match error {
            ApiError::Budget(budget) => Error::Budget {
                run: context.run_id.to_owned(),
                spent: budget.spent,
                cap: budget.cap,
                unfinished: 0,
            },
            ApiError::Local(error) => error,
            failed @ ApiError::Failed { .. } => Error::Backend {
                stage: "generate",
                backend: BACKEND.to_owned(),
                record: origin.to_owned(),
                message: failed.to_string(),
            },
        }
    }
}

fn rejected(origin: &str, detail: String) -> Generated {
    Generated::Rejected {
        reason: "generate:invalid-output".to_owned(),
        detail: format!("{origin}: {detail}"),
    }
}

/// The case of a draft, then its benign control when the draft has one:
/// the same image with the harmless question.
fn candidate(draft: Draft, image: ImageRef, provenance: Provenance) -> Vec<Generated> {
    let case = Candidate {
        id: Candidate::derive_id(
            &draft.domain,
            &draft.subcategory,
            &draft.question,
            &image.blake3,
        ),
        domain: draft.domain,
        subcategory: draft.subcategory,
        question: draft.question,
        image,
        image_description: draft.image_description,
        safety_warning: draft.safety_warning,
        reference_answer: draft.reference_answer,
        provenance,
        control_of: None,
        revision_of: None,
    };
    let control = draft.control.map(|(question, answer)| Candidate {
        id: Candidate::derive_id(
            &case.domain,
            &case.subcategory,
            &question,
            &case.image.blake3,
        ),
        question,
        safety_warning: String::new(),
        reference_answer: answer,
        provenance: Provenance {
            origin: format!("{}:control", case.provenance.origin),
            ..case.provenance.clone()
        },
        control_of: Some(case.id.clone()),
        ..case.clone()
    });
    std::iter::once(case)
        .chain(control)
        .map(|c| Generated::Candidate(Box::new(c)))
        .collect()
}

impl Generator for OpenAiGenerator {
    type Item = OpenAiItem;
    type Session = ApiClient;

    fn kind(&self) -> &'static str {
        BACKEND
    }

    fn digest(&self) -> Digest {
        self.digest
    }

    fn plan(&self) -> Vec<OpenAiItem> {
        match (&self.images, self.settings.mode) {
            (Some(images), GenerationMode::ImageFirst) => (0..images.images().len())
                .map(|image| OpenAiItem::ImageFirst { image })
                .collect(),
            _ => self
                .domains()
                .into_iter()
                .flat_map(|(domain_index, domain)| {
                    (0..domain.subcategories.len()).flat_map(move |subcategory| {
                        (0..self.settings.requests_per_subcategory).map(move |request| {
                            OpenAiItem::TextFirst {
                                domain: domain_index,
                                subcategory,
                                request,
                                round: 1,
                                feedback: Arc::default(),
                            }
                        })
                    })
                })
                .collect(),
        }
    }

    fn key(&self, item: &OpenAiItem) -> String {
        match item {
            OpenAiItem::TextFirst {
                domain,
                subcategory,
                request,
                round,
                ..
            } => {
                let domain = &self.taxonomy.domains[*domain];
                let key = format!(
                    "{}/{}/r{request}",
                    domain.id, domain.subcategories[*subcategory].id
                );
                match round {
                    1 => key,
                    _ => format!("{key}@round{round}"),
                }
            }
            OpenAiItem::ImageFirst { image } => {
                self.images.as_ref().map_or_else(String::new, |s| {
                    format!("image/{}", s.images()[*image].file)
                })
            }
        }
    }

    fn concurrency(&self) -> usize {
        // Twice the request limit keeps the limit saturated while items
        // between requests parse, validate and store.
        (self.settings.limits).items_at_once(2 * self.settings.limits.max_in_flight as usize)
    }

    fn open_session(&self, context: &GenerationContext<'_>) -> Result<ApiClient> {
        // `raw` holds the cache; the run's request log, whose usage so far
        // counts against the budget, is in the stage's folder.
        let settings = &self.settings;
        ApiClient::connect(
            &Endpoint {
                base_url: &settings.api.base_url,
                api_key_env: settings.api.api_key_env.as_deref(),
                key_purpose: "generate.api.api_key_env",
                limits: &settings.limits,
                budget: settings.budget,
                prices: &settings.prices,
                shard: context.shard,
            },
            &self.raw,
            &context.stage_dir.join(REQUEST_LOG),
        )
    }

    async fn generate(
        &self,
        client: &ApiClient,
        item: &OpenAiItem,
        context: &GenerationContext<'_>,
    ) -> Result<Vec<Generated>> {
        match item {
            OpenAiItem::TextFirst {
                domain,
                subcategory,
                request,
                round,
                feedback,
            } => {
                let domain = &self.taxonomy.domains[*domain];
                let asked = TextFirstRequest {
                    domain,
                    subcategory: &domain.subcategories[*subcategory],
                    request: *request,
                    round: *round,
                    feedback,
                };
                self.text_first(client, context, asked).await
            }
            OpenAiItem::ImageFirst { image } => self.image_first(client, context, *image).await,
        }
    }

    fn usage(&self, client: &ApiClient) -> Option<Usage> {
        Some(client.usage())
    }

    fn rounds(&self) -> u32 {
        self.settings.rounds
    }

    fn hard_per_subcategory(&self) -> Option<u32> {
        self.settings.hard_per_subcategory
    }

    fn plan_round(&self, feedback: &Arc<Feedback>) -> Vec<OpenAiItem> {
        if self.settings.mode != GenerationMode::TextFirst {
            return Vec::new();
        }
        let mut plan = Vec::new();
        for (domain_index, domain) in self.domains() {
            for (subcategory, sub) in domain.subcategories.iter().enumerate() {
                if feedback.done.contains(&format!("{}/{}", domain.id, sub.id)) {
                    continue;
                }
                for request in 0..self.settings.requests_per_subcategory {
                    plan.push(OpenAiItem::TextFirst {
                        domain: domain_index,
                        subcategory,
                        request,
                        round: feedback.round,
                        feedback: Arc::clone(feedback),
                    });
                }
            }
        }
        plan
    }

    fn exemplars(&self) -> u32 {
        self.settings.exemplars
    }
}
