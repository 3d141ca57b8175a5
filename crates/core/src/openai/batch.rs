//! Requests through the OpenAI Batch API (`limits.batch`).
//!
//! A client in batch mode does not send a chat or completion request: it
//! queues it here. Once no request arrived for `gather_ms` (or
//! `max_requests` are queued), one of the waiting requests leads: it
//! uploads the queue as a JSONL file (`POST files`), creates a batch
//! (`POST batches`), journals the batch id and its requests' cache keys,
//! then polls (`GET batches/{id}`) every `poll_seconds` until the batch
//! ends, downloads its output and error files, caches every answer and
//! wakes the requests waiting for them.
//!
//! The journal (`batches-of-<request log>.jsonl`, next to the request log)
//! makes a kill cheap: a restarted client finds the batches it submitted
//! and did not collect, and a request whose key is in one of them waits for
//! that batch instead of being submitted and paid for again. An expired or
//! failed batch keeps what it answered (cached like any answer); a request
//! it left unanswered goes into the next batch, up to `resubmits` times,
//! and then fails like a request out of attempts.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::config::BatchConfig;
use crate::error::{Error, Result};
use crate::journal::Journal;

/// What a batch needs of the client that sends it: the server batches go
/// to, the Files and Batches endpoints, and the response cache its answers
/// are stored in. The client implements it, so this module, which the
/// client uses, never uses the client.
pub(super) trait BatchTransport {
    /// The server batches go to: the first base URL (a batch lives on the
    /// server that accepted it).
    fn batch_server(&self) -> &str;

    /// Uploads a batch input file (`POST files`, multipart, purpose batch).
    async fn batch_upload(&self, server: &str, name: &str, jsonl: Vec<u8>)
    -> Result<Value, String>;

    /// A JSON POST of the Batch API (`batches`), with retries.
    async fn batch_post(&self, server: &str, path: &str, body: &Value) -> Result<Value, String>;

    /// A GET of the Batch API (a batch's status, a file's content), with retries.
    async fn batch_get(&self, server: &str, path: &str) -> Result<Vec<u8>, String>;

    /// Caches one answer of a collected batch, under the key its
    /// `custom_id` names.
    fn store_batched(&self, key: &str, endpoint: &str, model: &str, answer: &Value) -> Result<()>;
}

/// Endpoints the Batch API takes; others are sent directly.
const BATCHABLE: &[&str] = &["chat/completions", "completions", "embeddings"];

/// One line of the batch journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum BatchEvent {
    Submitted {
        batch: String,
        /// The server the batch lives on.
        server: String,
        endpoint: String,
        /// Cache key (hex, the `custom_id`) and model of each request.
        requests: Vec<(String, String)>,
    },
    Collected {
        batch: String,
        status: String,
    },
}

/// What a batch said about one request.
#[derive(Debug, Clone)]
enum Outcome {
    Answer(Value),
    /// Not answered (the batch expired or was cancelled): may be resubmitted.
    Unanswered(String),
    /// Answered with an error: final.
    Failed(String),
}

struct Queued {
    key: String,
    model: String,
    body: Arc<str>,
}

struct OpenBatch {
    id: String,
    server: String,
    endpoint: String,
    requests: Vec<(String, String)>,
}

#[derive(Default)]
struct State {
    /// Per endpoint, requests not yet submitted.
    queued: BTreeMap<String, Vec<Queued>>,
    open: Vec<OpenBatch>,
    outcomes: HashMap<String, Outcome>,
    /// Requests waiting per key: two identical requests share one line of
    /// a batch and both get its outcome.
    waiting: HashMap<String, usize>,
    leading: bool,
    last_arrival: Option<Instant>,
}

pub struct Batcher {
    config: BatchConfig,
    journal: Mutex<Journal<BatchEvent>>,
    state: Mutex<State>,
    wake: Notify,
}

/// Where the batch journal of a request log lives.
pub fn journal_path(request_log: &Path) -> PathBuf {
    let name = request_log
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("requests.jsonl");
    request_log.with_file_name(format!("batches-of-{name}"))
}

impl Batcher {
    /// Reads the journal of batches submitted earlier; those not collected
    /// are open again.
    pub fn open(config: &BatchConfig, request_log: &Path) -> Result<Batcher> {
        let journal: Journal<BatchEvent> = Journal::open(&journal_path(request_log))?;
        let mut open: Vec<OpenBatch> = Vec::new();
        for event in journal.entries() {
            match event {
                BatchEvent::Submitted {
                    batch,
                    server,
                    endpoint,
                    requests,
                } => open.push(OpenBatch {
                    id: batch.clone(),
                    server: server.clone(),
                    endpoint: endpoint.clone(),
                    requests: requests.clone(),
                }),
                BatchEvent::Collected { batch, .. } => open.retain(|b| b.id != *batch),
            }
        }
        Ok(Batcher {
            config: config.clone(),
            journal: Mutex::new(journal),
            state: Mutex::new(State {
                open,
                ..State::default()
            }),
            wake: Notify::new(),
        })
    }

    /// Whether requests to `endpoint` go through batches.
    pub fn takes(endpoint: &str) -> bool {
        BATCHABLE.contains(&endpoint)
    }

    pub fn discount(&self) -> f64 {
        self.config.discount
    }

    /// The answer to one request, through a batch: one already submitted
    /// for this key, else the next one.
    pub(super) async fn request(
        &self,
        api: &impl BatchTransport,
        endpoint: &str,
        key: &str,
        model: &str,
        body: Arc<str>,
    ) -> std::result::Result<Value, String> {
        let mut resubmits = 0;
        *self.lock().waiting.entry(key.to_owned()).or_insert(0) += 1;
        self.enqueue(endpoint, key, model, &body);
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.take_outcome(key) {
                Some(Outcome::Answer(answer)) => return Ok(answer),
                Some(Outcome::Failed(message)) => return Err(message),
                Some(Outcome::Unanswered(message)) => {
                    if resubmits >= self.config.resubmits {
                        return Err(format!(
                            "{message}; resubmitted {resubmits} time{} (limits.batch.resubmits)",
                            if resubmits == 1 { "" } else { "s" }
                        ));
                    }
                    resubmits += 1;
                    // Waiting again, for the next batch's outcome.
                    *self.lock().waiting.entry(key.to_owned()).or_insert(0) += 1;
                    self.enqueue(endpoint, key, model, &body);
                    continue;
                }
                None => {}
            }
            if self.try_lead() {
                let _leading = Leading(self);
                let led = self.lead(api).await;
                if let Err(error) = led {
                    return Err(error.to_string());
                }
                continue;
            }
            notified.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a request unless a submitted batch holds it.
    fn enqueue(&self, endpoint: &str, key: &str, model: &str, body: &Arc<str>) {
        let mut state = self.lock();
        let submitted = state
            .open
            .iter()
            .any(|b| b.requests.iter().any(|(k, _)| k == key));
        let queued = state
            .queued
            .get(endpoint)
            .is_some_and(|q| q.iter().any(|r| r.key == key));
        if submitted || queued || state.outcomes.contains_key(key) {
            return;
        }
        state
            .queued
            .entry(endpoint.to_owned())
            .or_default()
            .push(Queued {
                key: key.to_owned(),
                model: model.to_owned(),
                body: Arc::clone(body),
            });
        state.last_arrival = Some(Instant::now());
    }

    /// A key's outcome for one of its waiters; the last one takes it away.
    fn take_outcome(&self, key: &str) -> Option<Outcome> {
        let mut state = self.lock();
        let waiting = state.waiting.get(key).copied().unwrap_or(0);
        let outcome = match waiting > 1 {
            true => state.outcomes.get(key).cloned(),
            false => state.outcomes.remove(key),
        }?;
        match waiting > 1 {
            true => {
                state.waiting.insert(key.to_owned(), waiting - 1);
            }
            false => {
                state.waiting.remove(key);
            }
        }
        Some(outcome)
    }

    fn try_lead(&self) -> bool {
        let mut state = self.lock();
        let work = !state.queued.is_empty() || !state.open.is_empty();
        if state.leading || !work {
            return false;
        }
        state.leading = true;
        true
    }

    /// Submits what is queued and collects every open batch, until
    /// nothing is left.
    async fn lead(&self, api: &impl BatchTransport) -> Result<()> {
        loop {
            self.gather().await;
            let batches: Vec<(String, Vec<Queued>)> = {
                let mut state = self.lock();
                let max = self.config.max_requests as usize;
                let mut taken = Vec::new();
                for (endpoint, queue) in state.queued.iter_mut() {
                    while !queue.is_empty() {
                        let rest = queue.split_off(queue.len().min(max));
                        taken.push((endpoint.clone(), std::mem::replace(queue, rest)));
                    }
                }
                state.queued.retain(|_, q| !q.is_empty());
                taken
            };
            for (endpoint, requests) in batches {
                self.submit(api, &endpoint, requests).await?;
            }
            let open: Vec<(String, String)> = {
                let state = self.lock();
                state
                    .open
                    .iter()
                    .map(|b| (b.id.clone(), b.server.clone()))
                    .collect()
            };
            if open.is_empty() {
                return Ok(());
            }
            let mut collected_any = false;
            for (id, server) in open {
                collected_any |= self.poll(api, &id, &server).await?;
            }
            let queued = !self.lock().queued.is_empty();
            if !collected_any && !queued {
                tokio::time::sleep(Duration::from_secs_f64(self.config.poll_seconds)).await;
            }
        }
    }

    /// Waits until no request arrived for `gather_ms`, or a batch is full.
    async fn gather(&self) {
        let quiet = Duration::from_millis(self.config.gather_ms);
        loop {
            let (count, last) = {
                let state = self.lock();
                let count: usize = state.queued.values().map(Vec::len).sum();
                (count, state.last_arrival)
            };
            let since = last.map_or(quiet, |t| t.elapsed());
            if count == 0 || count >= self.config.max_requests as usize || since >= quiet {
                return;
            }
            tokio::time::sleep(quiet - since).await;
        }
    }

    async fn submit(
        &self,
        api: &impl BatchTransport,
        endpoint: &str,
        requests: Vec<Queued>,
    ) -> Result<()> {
        let server = api.batch_server().to_owned();
        let mut jsonl = Vec::new();
        for request in &requests {
            // The canonical body goes in as it is: the key is its hash.
            jsonl.extend_from_slice(
                format!(
                    "{{\"custom_id\":{},\"method\":\"POST\",\"url\":{},\"body\":{}}}\n",
                    json!(request.key),
                    json!(format!("/v1/{endpoint}")),
                    request.body
                )
                .as_bytes(),
            );
        }
        let created = async {
            let file = api.batch_upload(&server, "siuo-batch.jsonl", jsonl).await?;
            let file_id = text_field(&file, "id").ok_or("the file upload answered no id")?;
            let batch = api
                .batch_post(
                    &server,
                    "batches",
                    &json!({
                        "input_file_id": file_id,
                        "endpoint": format!("/v1/{endpoint}"),
                        "completion_window": self.config.completion_window,
                    }),
                )
                .await?;
            text_field(&batch, "id").ok_or_else(|| "the batch was created without an id".to_owned())
        }
        .await;
        let batch_id = match created {
            Ok(id) => id,
            Err(message) => {
                // Nothing was submitted: the requests fail now, and are
                // asked again by the next run.
                let message = format!(
                    "submitting a batch of {} requests: {message}",
                    requests.len()
                );
                self.settle(
                    requests
                        .iter()
                        .map(|r| (r.key.clone(), Outcome::Failed(message.clone()))),
                );
                return Ok(());
            }
        };
        let listed: Vec<(String, String)> = requests
            .iter()
            .map(|r| (r.key.clone(), r.model.clone()))
            .collect();
        self.record(BatchEvent::Submitted {
            batch: batch_id.clone(),
            server: server.clone(),
            endpoint: endpoint.to_owned(),
            requests: listed.clone(),
        })?;
        self.lock().open.push(OpenBatch {
            id: batch_id,
            server,
            endpoint: endpoint.to_owned(),
            requests: listed,
        });
        Ok(())
    }

    /// Checks one open batch; when it has ended, collects it. True when it did.
    async fn poll(&self, api: &impl BatchTransport, id: &str, server: &str) -> Result<bool> {
        let status = match api.batch_get(server, &format!("batches/{id}")).await {
            Ok(bytes) => serde_json::from_slice::<Value>(&bytes)
                .map_err(|e| format!("unreadable batch status: {e}")),
            Err(message) => Err(message),
        };
        let status = match status {
            Ok(status) => status,
            Err(message) if message.contains("HTTP 404") => {
                // The server no longer knows it: its requests go again.
                self.close(
                    id,
                    "unknown",
                    &BTreeMap::new(),
                    &format!("batch {id} is unknown to {server}: {message}"),
                )?;
                return Ok(true);
            }
            // Down for now; the next poll tries again.
            Err(_) => return Ok(false),
        };
        let state = text_field(&status, "status").unwrap_or_default();
        if !matches!(
            state.as_str(),
            "completed" | "expired" | "failed" | "cancelled"
        ) {
            return Ok(false);
        }
        let mut outcomes: BTreeMap<String, Outcome> = BTreeMap::new();
        let (endpoint, models) = {
            let state = self.lock();
            let batch = state.open.iter().find(|b| b.id == id);
            (
                batch.map(|b| b.endpoint.clone()).unwrap_or_default(),
                batch
                    .map(|b| {
                        b.requests
                            .iter()
                            .cloned()
                            .collect::<HashMap<String, String>>()
                    })
                    .unwrap_or_default(),
            )
        };
        for field in ["output_file_id", "error_file_id"] {
            let Some(file) = text_field(&status, field) else {
                continue;
            };
            let bytes = match api
                .batch_get(server, &format!("files/{file}/content"))
                .await
            {
                Ok(bytes) => bytes,
                // The answers are still on the server: leave the batch open.
                Err(_) => return Ok(false),
            };
            for line in String::from_utf8_lossy(&bytes)
                .lines()
                .filter(|l| !l.trim().is_empty())
            {
                let Ok(line) = serde_json::from_str::<Value>(line) else {
                    continue;
                };
                let Some(key) = text_field(&line, "custom_id") else {
                    continue;
                };
                let outcome = line_outcome(&line);
                if let Outcome::Answer(answer) = &outcome {
                    let model = models.get(&key).map_or("", String::as_str);
                    api.store_batched(&key, &endpoint, model, answer)?;
                }
                outcomes.insert(key, outcome);
            }
        }
        let reason = match state.as_str() {
            "failed" => format!(
                "batch {id} failed: {}",
                status["errors"]["data"][0]["message"]
                    .as_str()
                    .unwrap_or("no reason given")
            ),
            other => format!("batch {id} ended {other} before answering"),
        };
        self.close(id, &state, &outcomes, &reason)?;
        Ok(true)
    }

    /// Ends an open batch: its outcomes, and `unanswered` for its other
    /// requests (failed for good when the batch itself failed).
    fn close(
        &self,
        id: &str,
        status: &str,
        outcomes: &BTreeMap<String, Outcome>,
        unanswered: &str,
    ) -> Result<()> {
        self.record(BatchEvent::Collected {
            batch: id.to_owned(),
            status: status.to_owned(),
        })?;
        let requests = {
            let mut state = self.lock();
            let position = state.open.iter().position(|b| b.id == id);
            position
                .map(|p| state.open.remove(p).requests)
                .unwrap_or_default()
        };
        let settled = requests.into_iter().map(|(key, _)| {
            let outcome = outcomes.get(&key).cloned().unwrap_or_else(|| match status {
                "failed" => Outcome::Failed(unanswered.to_owned()),
                _ => Outcome::Unanswered(unanswered.to_owned()),
            });
            (key, outcome)
        });
        self.settle(settled);
        Ok(())
    }

    fn settle(&self, outcomes: impl IntoIterator<Item = (String, Outcome)>) {
        self.lock().outcomes.extend(outcomes);
        self.wake.notify_waiters();
    }

    fn record(&self, event: BatchEvent) -> Result<()> {
        let mut journal = self.journal.lock().map_err(|_| Error::Runtime {
            message: "batch journal lock poisoned".into(),
        })?;
        journal.append(event)
    }
}

/// Clears the leader's mark when it is done, or dropped mid-batch (its
/// request was cancelled), and lets another waiter lead.
struct Leading<'a>(&'a Batcher);

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        self.0.lock().leading = false;
        self.0.wake.notify_waiters();
    }
}

fn text_field(value: &Value, name: &str) -> Option<String> {
    value.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// A line of an output or error file.
fn line_outcome(line: &Value) -> Outcome {
    let response = &line["response"];
    let code = response["status_code"].as_u64().unwrap_or(0);
    if code == 200 && response["body"].is_object() {
        return Outcome::Answer(response["body"].clone());
    }
    let error = match line["error"].is_object() {
        true => &line["error"],
        false => &response["body"]["error"],
    };
    let message = error["message"].as_str().unwrap_or("no message");
    let code_name = error["code"].as_str().unwrap_or_default();
    // Expiry, rate limits and server errors are not the request's fault.
    if code_name == "batch_expired" || code == 429 || code >= 500 {
        let why = match code_name {
            "" => format!("HTTP {code}"),
            name => name.to_owned(),
        };
        Outcome::Unanswered(format!("the batch left it unanswered ({why}): {message}"))
    } else {
        Outcome::Failed(format!("batch answered HTTP {code}: {message}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_and_error_lines_are_read() {
        let ok =
            json!({"custom_id": "k", "response": {"status_code": 200, "body": {"choices": []}}});
        assert!(matches!(line_outcome(&ok), Outcome::Answer(_)));
        let expired = json!({"custom_id": "k", "response": null, "error": {"code": "batch_expired", "message": "expired"}});
        assert!(matches!(line_outcome(&expired), Outcome::Unanswered(_)));
        let bad = json!({"custom_id": "k", "response": {"status_code": 400, "body": {"error": {"message": "bad model"}}}});
        match line_outcome(&bad) {
            Outcome::Failed(message) => assert!(message.contains("bad model"), "{message}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn two_waiters_of_one_key_both_get_its_outcome() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let config: BatchConfig = serde_json::from_str("{}").map_err(|e| Error::Json {
            path: "config".into(),
            line: 0,
            source: e,
        })?;
        let batcher = Batcher::open(&config, &dir.path().join("requests.jsonl"))?;
        {
            let mut state = batcher.lock();
            state.waiting.insert("k".into(), 2);
            (state.outcomes).insert("k".into(), Outcome::Answer(json!({"choices": []})));
        }
        assert!(matches!(
            batcher.take_outcome("k"),
            Some(Outcome::Answer(_))
        ));
        assert!(matches!(
            batcher.take_outcome("k"),
            Some(Outcome::Answer(_))
        ));
        assert!(batcher.take_outcome("k").is_none());
        assert!(batcher.lock().waiting.is_empty());
        Ok(())
    }

    #[test]
    fn the_journal_sits_beside_the_request_log_but_is_not_one() {
        let path = journal_path(Path::new("/r/verify/requests-alpha.jsonl"));
        assert_eq!(path, Path::new("/r/verify/batches-of-requests-alpha.jsonl"));
    }
}
