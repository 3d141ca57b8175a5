//! Classifiers behind HTTP APIs: OpenAI moderation (`openai-moderation`,
//! text and image) and Llama Guard 3 on an OpenAI-compatible server such as
//! vLLM (`llama-guard` for text, `llama-guard-vision` for images).
//!
//! They share the generators' HTTP client: response cache, retries with
//! backoff on 429/5xx/timeouts/garbled bodies, rate limits, and a key read
//! from the environment only. A backend that stays down is an error that
//! leaves the items unjudged, never a guessed verdict.

pub mod config;
pub mod llama_guard;
pub mod moderation;

use std::collections::BTreeMap;
use std::path::Path;

use futures_util::future::join_all;
use serde_json::Value;

use config::RemoteClassifierConfig;
use siuo_core::band::Band;
use siuo_core::error::{Error, Result};
use siuo_core::openai::client::{ApiClient, Endpoint};
use siuo_core::openai::config::Budget;

/// Folder under `raw/` where remote classifiers log their requests.
const REQUEST_LOGS: &str = "requests";

/// An HTTP API that judges inputs, with its own small async runtime: the
/// classifier traits are synchronous, and a batch's requests run concurrently
/// up to `limits.max_in_flight`.
pub struct RemoteBackend {
    id: &'static str,
    client: ApiClient,
    runtime: tokio::runtime::Runtime,
    pub model: String,
    pub band: Band,
}

impl RemoteBackend {
    /// A client whose request log is `raw/requests/<id>.jsonl`, of `shard`
    /// (see [`siuo_core::shard`]).
    pub fn new(
        id: &'static str,
        settings: &RemoteClassifierConfig,
        raw: &Path,
        shard: Option<siuo_core::shard::Shard>,
    ) -> Result<Self> {
        let client = ApiClient::connect(
            &Endpoint {
                base_url: &settings.base_url,
                api_key_env: settings.api_key_env.as_deref(),
                key_purpose: "check.*.api_key_env",
                limits: &settings.limits,
                budget: Budget::default(),
                prices: &BTreeMap::new(),
                shard,
            },
            raw,
            &raw.join(REQUEST_LOGS).join(format!("{id}.jsonl")),
        )?;
        let runtime = siuo_core::openai::client::runtime(&format!("the {id} client"))?;
        Ok(RemoteBackend {
            id,
            client,
            runtime,
            model: settings.model.clone(),
            band: settings.band(),
        })
    }

    /// POSTs every body to `endpoint` and returns what `parse` made of each
    /// answer, in order. `parse` also decides which answers are well-formed:
    /// one it refuses is retried like a garbled body.
    pub fn post_all<T>(
        &self,
        endpoint: &str,
        bodies: &[Value],
        parse: fn(&Value) -> Result<T, String>,
    ) -> Result<Vec<T>> {
        let answers = self.runtime.block_on(join_all(bodies.iter().map(|body| {
            self.client
                .post(endpoint, body, move |answer| parse(answer).map(|_| ()))
        })));
        answers
            .into_iter()
            .enumerate()
            .map(|(index, answer)| {
                let failed = |message: String| Error::Backend {
                    stage: "check",
                    backend: self.id.to_owned(),
                    record: format!("input {} of the batch", index + 1),
                    message,
                };
                let answer = answer.map_err(|e| failed(e.to_string()))?;
                parse(&answer.body)
                    .map_err(|problem| failed(format!("unreadable answer: {problem}")))
            })
            .collect()
    }
}
