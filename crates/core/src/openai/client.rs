//! The HTTP client behind every OpenAI-compatible backend.
//!
//! Per request: cache lookup, budget check, rate limits, then at most
//! `max_attempts` tries with a bounded number in flight. 429, 5xx, 408,
//! timeouts, connection errors and unreadable or wrongly-shaped bodies are
//! retried with exponential backoff and jitter (or after `Retry-After`);
//! other 4xx fail at once. Every answered request is cached and logged with
//! its tokens and cost.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::Semaphore;

use super::batch::{BatchTransport, Batcher};
use super::cache::{CachedResponse, ResponseCache, canonical_json};
use super::config::{BaseUrls, Budget, ImageHost, Price, RequestLimits};
use super::limiter::RateLimiter;
use super::servers::Servers;
use super::usage::{self, BudgetExhausted, Ledger, RequestRecord, Usage};
use crate::error::Error;
use crate::journal::{Journal, LineJournal};
use crate::random::SplitMix64;

/// File of the generate stage that logs every answered request.
pub const REQUEST_LOG: &str = "requests.jsonl";

/// The single-threaded runtime a backend drives its client on; `what`
/// names it in the error ("the jury's client").
pub fn runtime(what: &str) -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Runtime {
            message: format!("cannot start {what}: {e}"),
        })
}

/// Longest `Retry-After` honoured; a server asking for more is treated as down.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(600);

/// An API key that cannot be printed.
struct ApiKey(String);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

#[derive(Debug)]
pub enum ApiError {
    /// The run's budget is spent; the request was not sent.
    Budget(BudgetExhausted),
    /// The request failed for good or ran out of attempts.
    Failed {
        endpoint: String,
        attempts: u32,
        message: String,
    },
    /// The cache or the request log could not be written.
    Local(Error),
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Budget(b) => write!(f, "budget cap reached ({} spent of {})", b.spent, b.cap),
            ApiError::Failed {
                endpoint,
                attempts,
                message,
            } => match attempts {
                // Refused before any request was sent (a disallowed URL).
                0 => write!(f, "{endpoint}: {message}"),
                _ => write!(
                    f,
                    "{endpoint}: {message} (after {attempts} attempt{})",
                    if *attempts == 1 { "" } else { "s" }
                ),
            },
            ApiError::Local(error) => error.fmt(f),
        }
    }
}

/// A successful answer.
pub struct ApiResponse {
    pub body: Value,
    pub cached: bool,
}

/// Why one try failed.
struct TryFailure {
    message: String,
    retry: bool,
    retry_after: Option<Duration>,
}

/// Where and how an [`ApiClient`] sends its requests.
pub struct Endpoint<'a> {
    /// Base URL up to and including `/v1`, or several replicas'.
    pub base_url: &'a BaseUrls,
    pub api_key_env: Option<&'a str>,
    /// The config setting that names the key variable, for messages.
    pub key_purpose: &'a str,
    pub limits: &'a RequestLimits,
    pub budget: Budget,
    pub prices: &'a BTreeMap<String, Price>,
    /// The shard the client works for: its request log is its own file
    /// (see [`crate::shard`]); `None` for unsharded work.
    pub shard: Option<crate::shard::Shard>,
}

pub struct ApiClient {
    /// For API calls: follows no redirects.
    http: reqwest::Client,
    /// For image URLs: redirects only within `image_hosts`.
    images: reqwest::Client,
    /// Image URLs are fetched, and redirected to, only on these hosts and ports.
    image_hosts: Vec<ImageHost>,
    servers: Servers,
    api_key: Option<ApiKey>,
    limits: RequestLimits,
    in_flight: Semaphore,
    limiter: RateLimiter,
    cache: ResponseCache,
    ledger: Ledger,
    log: Mutex<LineJournal<RequestRecord>>,
    prices: BTreeMap<String, Price>,
    jitter: SplitMix64,
    /// In batch mode (`limits.batch`), where chat and completion requests go.
    batcher: Option<Batcher>,
}

/// An answer the client accepts, for the cache and the request log.
struct Answered<'a> {
    endpoint: &'a str,
    model: String,
    key: crate::content_hash::Digest,
    answer: Value,
    attempts: u32,
    started: Instant,
}

impl ApiClient {
    /// A client of `endpoint` that caches under `raw` and logs every
    /// request to `log`, whose usage so far counts against the budget.
    pub fn connect(endpoint: &Endpoint<'_>, raw: &Path, log: &Path) -> Result<Self, Error> {
        // Several clients may be built in one process; only the first install counts.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let api_key = match endpoint.api_key_env {
            None => None,
            Some(name) => Some(ApiKey(std::env::var(name).map_err(|_| {
                Error::Environment {
                    variable: name.to_owned(),
                    purpose: format!("the API key named by {}", endpoint.key_purpose),
                }
            })?)),
        };
        let limits = endpoint.limits;
        let servers = Servers::new(
            endpoint.base_url.urls(),
            limits.eject_after_failures,
            limits.eject_seconds,
        );
        let image_hosts: Vec<ImageHost> = if limits.image_hosts.is_empty() {
            (servers.base_urls())
                .filter_map(|url| reqwest::Url::parse(url).ok())
                .filter_map(|url| ImageHost::of_url(&url))
                .collect()
        } else {
            // Validated with the config.
            (limits.image_hosts.iter())
                .filter_map(|entry| ImageHost::parse(entry).ok())
                .collect()
        };
        let connect_timeout = duration_of(limits.timeout_seconds.min(30.0));
        // API calls follow no redirect: a redirect could carry the key to
        // another host.
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .pool_max_idle_per_host(limits.max_in_flight as usize)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Http {
                message: e.to_string(),
            })?;
        // Image downloads carry no key; they may follow a few redirects, but
        // only to allowed hosts.
        let allowed = image_hosts.clone();
        let images = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                let to = host_and_port(attempt.url());
                if attempt.previous().len() >= 5 {
                    attempt.error("too many redirects")
                } else if !allowed.iter().any(|h| h.allows(attempt.url())) {
                    attempt.error(format!(
                        "redirect to `{to}`, which limits.image_hosts does not allow"
                    ))
                } else {
                    attempt.follow()
                }
            }))
            .build()
            .map_err(|e| Error::Http {
                message: e.to_string(),
            })?;
        // Each shard logs to a file of its own (see `crate::shard`); the
        // budget counts what every shard had spent when this one started.
        let own = crate::shard::own_file(log, endpoint.shard);
        // Only the sum is kept: a request log spans every run of a stage.
        let mut spent = Usage::default();
        let log = LineJournal::open(&own, |_, record: RequestRecord| {
            spent.add(&record.usage());
            Ok(())
        })?;
        for sibling in crate::shard::all_files(&own)
            .into_iter()
            .filter(|p| *p != own)
        {
            spent.add(&Usage::of_records(
                &Journal::<RequestRecord>::read_complete(&sibling)?,
            ));
        }
        let batcher = match &limits.batch {
            Some(batch) => Some(Batcher::open(batch, &own)?),
            None => None,
        };
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 | 1);
        Ok(ApiClient {
            http,
            images,
            image_hosts,
            servers,
            api_key,
            limits: limits.clone(),
            in_flight: Semaphore::new(limits.max_in_flight as usize),
            limiter: RateLimiter::new(limits.requests_per_minute, limits.tokens_per_minute),
            cache: ResponseCache::new(raw),
            ledger: Ledger::new(endpoint.budget, spent),
            log: Mutex::new(log),
            prices: endpoint.prices.clone(),
            jitter: SplitMix64::new(seed),
            batcher,
        })
    }

    /// The cache key of a request to `endpoint` (`chat/completions`): the
    /// request alone, not the server, so replicas share their answers.
    pub fn cache_key(&self, endpoint: &str, body: &Value) -> crate::content_hash::Digest {
        ResponseCache::key_of_canonical(endpoint, &canonical_json(body))
    }

    /// Work items to keep in flight for this client: see
    /// [`RequestLimits::items_at_once`].
    pub fn items_at_once(&self, direct: usize) -> usize {
        self.limits.items_at_once(direct)
    }

    /// The run's usage so far, this invocation and earlier ones.
    pub fn usage(&self) -> Usage {
        self.ledger.total()
    }

    pub fn cache(&self) -> &ResponseCache {
        &self.cache
    }

    /// POSTs `body` to `endpoint` and returns a JSON answer that `check`
    /// accepts, from the cache when this exact request was answered before.
    pub async fn post(
        &self,
        endpoint: &str,
        body: &Value,
        check: impl Fn(&Value) -> Result<(), String>,
    ) -> Result<ApiResponse, ApiError> {
        let path = endpoint.trim_start_matches('/');
        // One canonical form serves the cache key, the token estimate and the
        // bytes sent on every attempt; image-first bodies carry whole images.
        let canonical = canonical_json(body);
        let key = ResponseCache::key_of_canonical(path, &canonical);
        // Answers cached before keys left out the server (one base URL).
        let legacy = || {
            let url = format!("{}/{path}", self.servers.first());
            self.cache.get(&ResponseCache::legacy_key(&url, &canonical))
        };
        let model = body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if let Some(hit) = (self.cache.get(&key))
            .or_else(legacy)
            .filter(|hit| check(&hit.body).is_ok())
        {
            self.record(RequestRecord {
                key: key.short(16),
                endpoint: endpoint.to_owned(),
                model,
                cached: true,
                attempts: 0,
                prompt_tokens: hit.prompt_tokens,
                completion_tokens: hit.completion_tokens,
                cost: 0.0,
                latency_ms: 0,
            })
            .map_err(ApiError::Local)?;
            return Ok(ApiResponse {
                body: hit.body,
                cached: true,
            });
        }
        self.ledger.check().map_err(ApiError::Budget)?;
        let max_tokens = body.get("max_tokens").and_then(Value::as_u64).unwrap_or(0);
        let estimate = estimated_prompt_tokens(body) + max_tokens;
        if let Some(batcher) = self.batcher.as_ref().filter(|_| Batcher::takes(path)) {
            let started = Instant::now();
            let failed = |message: String| ApiError::Failed {
                endpoint: endpoint.to_owned(),
                attempts: 1,
                message,
            };
            let answer = batcher
                .request(self, path, &key.hex(), &model, canonical.into())
                .await
                .map_err(failed)?;
            if let Err(problem) = check(&answer) {
                // Cached when the batch was collected; not an answer to keep.
                self.cache.forget(&key).map_err(ApiError::Local)?;
                return Err(failed(format!("answer has the wrong shape: {problem}")));
            }
            let answered = Answered {
                endpoint,
                model,
                key,
                answer,
                attempts: 1,
                started,
            };
            return self.accept(answered, true).map_err(ApiError::Local);
        }
        let bytes = bytes::Bytes::from(canonical);
        self.limiter.acquire(estimate).await;

        // Requests queued for a permit all passed the check above before any
        // answer was counted; checked again as each goes out, a cap is
        // overshot by at most the requests in flight.
        let over_budget: Mutex<Option<BudgetExhausted>> = Mutex::new(None);
        // The server the last try failed on; the retry goes elsewhere.
        let failed_on: Mutex<Option<usize>> = Mutex::new(None);
        let accepted = self
            .with_retries(endpoint, |attempt| {
                let (bytes, check, over_budget, failed_on) =
                    (bytes.clone(), &check, &over_budget, &failed_on);
                async move {
                    let _permit = self.in_flight.acquire().await.map_err(|e| TryFailure {
                        message: e.to_string(),
                        retry: false,
                        retry_after: None,
                    })?;
                    if let Err(exhausted) = self.ledger.check() {
                        if let Ok(mut slot) = over_budget.lock() {
                            *slot = Some(exhausted);
                        }
                        return Err(TryFailure {
                            message: "budget cap reached".to_owned(),
                            retry: false,
                            retry_after: None,
                        });
                    }
                    // Latency of the answered attempt, not of queueing or retries.
                    let started = Instant::now();
                    let avoid = failed_on.lock().ok().and_then(|f| *f);
                    let server = self.servers.pick(avoid);
                    let url = format!("{}/{path}", server.base_url());
                    let answer = match self.try_once(&url, bytes).await {
                        Ok(answer) => answer,
                        Err(mut failure) => {
                            if failure.retry {
                                self.servers.failed(&server);
                                if let Ok(mut slot) = failed_on.lock() {
                                    *slot = Some(server.index);
                                }
                            }
                            if self.servers.base_urls().nth(1).is_some() {
                                failure.message =
                                    format!("{}: {}", server.base_url(), failure.message);
                            }
                            return Err(failure);
                        }
                    };
                    self.servers.succeeded(&server);
                    drop(server);
                    check(&answer).map_err(|problem| TryFailure {
                        message: format!("answer has the wrong shape: {problem}"),
                        retry: true,
                        retry_after: None,
                    })?;
                    Ok((answer, attempt, started))
                }
            })
            .await
            .map_err(
                |failed| match over_budget.lock().ok().and_then(|mut slot| slot.take()) {
                    Some(exhausted) => ApiError::Budget(exhausted),
                    None => failed,
                },
            )?;
        let (answer, attempts, started) = accepted;
        let answered = Answered {
            endpoint,
            model,
            key,
            answer,
            attempts,
            started,
        };
        self.accept(answered, false).map_err(ApiError::Local)
    }

    /// Tries `attempt` up to `max_attempts` times: a retryable failure waits
    /// for the server's `Retry-After`, else the backoff; any other ends at
    /// once. The one retry rule of every request this client makes.
    async fn with_retries<T, F, Fut>(&self, endpoint: &str, mut attempt: F) -> Result<T, ApiError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, TryFailure>>,
    {
        let mut last = String::new();
        for number in 1..=self.limits.max_attempts {
            let failure = match attempt(number).await {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            last = self.redact(&failure.message);
            if !failure.retry {
                return Err(ApiError::Failed {
                    endpoint: endpoint.to_owned(),
                    attempts: number,
                    message: last,
                });
            }
            if number < self.limits.max_attempts {
                tokio::time::sleep(failure.retry_after.unwrap_or_else(|| self.backoff(number)))
                    .await;
            }
        }
        Err(ApiError::Failed {
            endpoint: endpoint.to_owned(),
            attempts: self.limits.max_attempts,
            message: last,
        })
    }

    /// Caches an answer (a batched one was cached when its batch was
    /// collected) and logs it with its tokens and cost.
    fn accept(&self, answered: Answered<'_>, batched: bool) -> Result<ApiResponse, Error> {
        let Answered {
            endpoint,
            model,
            key,
            answer,
            attempts,
            started,
        } = answered;
        let (prompt_tokens, completion_tokens) = tokens_of(&answer);
        if !batched {
            self.store(&key, endpoint, &model, &answer)?;
        }
        let discount = match (batched, &self.batcher) {
            (true, Some(batcher)) => batcher.discount(),
            _ => 1.0,
        };
        self.record(RequestRecord {
            key: key.short(16),
            endpoint: endpoint.to_owned(),
            cost: discount * usage::cost(&self.prices, &model, prompt_tokens, completion_tokens),
            model,
            cached: false,
            attempts,
            prompt_tokens,
            completion_tokens,
            latency_ms: started.elapsed().as_millis() as u64,
        })?;
        Ok(ApiResponse {
            body: answer,
            cached: false,
        })
    }

    fn store(
        &self,
        key: &crate::content_hash::Digest,
        endpoint: &str,
        model: &str,
        answer: &Value,
    ) -> Result<(), Error> {
        let (prompt_tokens, completion_tokens) = tokens_of(answer);
        self.cache.put(
            key,
            &CachedResponse {
                endpoint: endpoint.to_owned(),
                model: model.to_owned(),
                body: answer.clone(),
                prompt_tokens,
                completion_tokens,
            },
        )
    }

    fn record(&self, record: RequestRecord) -> Result<(), Error> {
        self.ledger.record(&record.usage());
        let mut log = self.log.lock().map_err(|_| Error::Runtime {
            message: "request log lock poisoned".into(),
        })?;
        log.append(&record).map(drop)
    }

    async fn try_once(&self, url: &str, body: bytes::Bytes) -> Result<Value, TryFailure> {
        let request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        let body = self.try_raw(request).await?;
        serde_json::from_slice(&body).map_err(|e| TryFailure {
            message: format!("unreadable JSON body: {e}"),
            retry: true,
            retry_after: None,
        })
    }

    /// Sends one API request with the key and the timeout, and reads a
    /// successful answer's body up to `limits.max_response_bytes`.
    async fn try_raw(&self, mut request: reqwest::RequestBuilder) -> Result<Vec<u8>, TryFailure> {
        request = request.timeout(duration_of(self.limits.timeout_seconds));
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(&key.0);
        }
        let transient = |message: String| TryFailure {
            message,
            retry: true,
            retry_after: None,
        };
        let mut response = request
            .send()
            .await
            .map_err(|e| transient(self.redact(&describe(&e))))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0);
        if let Some(seconds) = retry_after
            && seconds > RETRY_AFTER_CAP.as_secs_f64()
        {
            return Err(TryFailure {
                message: format!(
                    "HTTP {status} asking to retry after {seconds} s, more than {} s: treated as down",
                    RETRY_AFTER_CAP.as_secs()
                ),
                retry: false,
                retry_after: None,
            });
        }
        let retry_after = retry_after.map(duration_of);
        if status.is_redirection() {
            return Err(TryFailure {
                message: format!(
                    "HTTP {status}: API requests follow no redirects (the key must not leave base_url's host); set base_url to the final address"
                ),
                retry: false,
                retry_after: None,
            });
        }
        let cap = self.limits.max_response_bytes;
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| transient(format!("reading the body: {}", self.redact(&describe(&e)))))?
        {
            if body.len() as u64 + chunk.len() as u64 > cap {
                return Err(transient(format!(
                    "answer is larger than limits.max_response_bytes ({cap} bytes)"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        if status.is_success() {
            return Ok(body);
        }
        let text = String::from_utf8_lossy(&body);
        let retry = status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
            || status.is_server_error();
        // Auth failures may echo part of the key; never show their bodies.
        let detail = if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            String::new()
        } else {
            let snippet: String = text.chars().take(200).collect();
            format!(": {}", self.redact(snippet.trim()))
        };
        Err(TryFailure {
            message: format!("HTTP {status}{detail}"),
            retry,
            retry_after,
        })
    }

    /// Fetches an image URL with the request timeout and the size cap. No
    /// API key is sent. Only http(s) URLs on `limits.image_hosts` (default:
    /// base_url's host) are fetched, redirects stay on those hosts, and the
    /// answer must say it is an image.
    pub async fn fetch(&self, url: &str) -> Result<Vec<u8>, ApiError> {
        const ENDPOINT: &str = "image download";
        let refused = |message: String| ApiError::Failed {
            endpoint: ENDPOINT.into(),
            attempts: 0,
            message,
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| refused(format!("not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(refused(format!(
                "`{}` URLs are not fetched",
                parsed.scheme()
            )));
        }
        if !self.image_hosts.iter().any(|h| h.allows(&parsed)) {
            return Err(refused(format!(
                "`{}` is not in limits.image_hosts ({})",
                host_and_port(&parsed),
                (self.image_hosts.iter())
                    .map(ImageHost::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let cap = self.limits.image_download_max_bytes;
        self.with_retries(ENDPOINT, |_| async {
            let failed = |message: String, retry: bool| TryFailure {
                message,
                retry,
                retry_after: None,
            };
            let mut response = self
                .images
                .get(parsed.clone())
                .timeout(duration_of(self.limits.timeout_seconds))
                .send()
                .await
                .map_err(|e| {
                    // A refused redirect is final; a network error is not.
                    let retry = !e.is_redirect();
                    failed(describe(&e), retry)
                })?;
            let status = response.status();
            if !status.is_success() {
                let retry = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
                return Err(failed(format!("HTTP {status}"), retry));
            }
            let content_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_ascii_lowercase();
            if !content_type.starts_with("image/") {
                return Err(failed(
                    format!("answer is `{content_type}`, not an image"),
                    false,
                ));
            }
            if response.content_length().is_some_and(|n| n > cap) {
                return Err(failed(format!("image is larger than {cap} bytes"), false));
            }
            let mut bytes = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| failed(describe(&e), true))?
            {
                if bytes.len() as u64 + chunk.len() as u64 > cap {
                    return Err(failed(format!("image is larger than {cap} bytes"), false));
                }
                bytes.extend_from_slice(&chunk);
            }
            // Whatever the header said, the bytes must be an image.
            crate::pixels::dimensions(&bytes).map_err(|e| {
                failed(
                    format!("answer labelled `{content_type}` is no image: {e}"),
                    false,
                )
            })?;
            Ok(bytes)
        })
        .await
    }

    /// Exponential backoff with "equal jitter": half fixed, half random, so
    /// clients that failed together do not retry together.
    fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self
            .limits
            .backoff_initial_ms
            .saturating_mul(1 << (attempt - 1).min(20));
        let capped = exponential.min(self.limits.backoff_max_ms).max(1);
        let random = self.jitter.next_u64() % (capped / 2 + 1);
        Duration::from_millis(capped / 2 + random)
    }

    fn redact(&self, text: &str) -> String {
        match &self.api_key {
            Some(key) => redact(text, &key.0),
            None => text.to_owned(),
        }
    }
}

/// Prompt and completion tokens an answer reports.
fn tokens_of(answer: &Value) -> (u64, u64) {
    let tokens = |name: &str| {
        answer
            .get("usage")
            .and_then(|u| u.get(name))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    (tokens("prompt_tokens"), tokens("completion_tokens"))
}

/// Fewest characters of a key that count as an echo of it.
const KEY_ECHO_CHARS: usize = 8;

/// `text` with every echo of `key` replaced by `[redacted]`: the whole key
/// or any run of at least [`KEY_ECHO_CHARS`] of its characters (a truncated
/// echo), compared without case (an upper-cased echo).
pub fn redact(text: &str, key: &str) -> String {
    let key: Vec<char> = key.chars().map(|c| c.to_ascii_lowercase()).collect();
    if key.is_empty() {
        return text.to_owned();
    }
    let chars: Vec<char> = text.chars().collect();
    let lower: Vec<char> = chars.iter().map(|c| c.to_ascii_lowercase()).collect();
    let shortest = KEY_ECHO_CHARS.min(key.len());
    let mut hidden = vec![false; chars.len()];
    for start in 0..lower.len() {
        for offset in 0..key.len() {
            let run = lower[start..]
                .iter()
                .zip(&key[offset..])
                .take_while(|(a, b)| a == b)
                .count();
            if run >= shortest {
                hidden[start..start + run]
                    .iter_mut()
                    .for_each(|h| *h = true);
            }
        }
    }
    let mut out = String::with_capacity(text.len());
    for (index, c) in chars.iter().enumerate() {
        if !hidden[index] {
            out.push(*c);
        } else if index == 0 || !hidden[index - 1] {
            out.push_str("[redacted]");
        }
    }
    out
}

/// A duration of `seconds`; validation bounds every configured and
/// server-sent value, and anything else saturates instead of panicking.
fn duration_of(seconds: f64) -> Duration {
    Duration::try_from_secs_f64(seconds).unwrap_or(if seconds > 0.0 {
        Duration::MAX
    } else {
        Duration::ZERO
    })
}

/// A reqwest error with its causes, which hold the useful part ("connection refused").
fn describe(error: &reqwest::Error) -> String {
    let mut message = if error.is_timeout() {
        "timed out".to_owned()
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    message
}

/// Tokens an inline image is taken to cost against `tokens_per_minute`:
/// providers bill an image by its tiles (OpenAI: 765 for a 1024² picture
/// in high detail), not by the length of its base64.
const IMAGE_TOKENS: u64 = 1000;

/// Prompt tokens of a request for the rate limit: text at about four
/// bytes a token, each `data:` URL as [`IMAGE_TOKENS`]. Counting base64 as
/// text would make one vision request look like 100 000 tokens and stall
/// every juror or generator behind a tokens-per-minute limit.
fn estimated_prompt_tokens(body: &Value) -> u64 {
    match body {
        Value::String(text) if text.starts_with("data:") => IMAGE_TOKENS,
        Value::String(text) => text.len() as u64 / 4 + 1,
        Value::Array(items) => items.iter().map(estimated_prompt_tokens).sum(),
        Value::Object(fields) => fields
            .iter()
            .map(|(name, value)| name.len() as u64 / 4 + estimated_prompt_tokens(value))
            .sum(),
        _ => 1,
    }
}

impl BatchTransport for ApiClient {
    /// The server batches go to: the first base URL (a batch lives on the
    /// server that accepted it).
    fn batch_server(&self) -> &str {
        self.servers.first()
    }

    /// Uploads a batch input file (`POST files`, multipart, purpose batch).
    async fn batch_upload(
        &self,
        server: &str,
        name: &str,
        jsonl: Vec<u8>,
    ) -> Result<Value, String> {
        let boundary = format!("siuo-batch-{:016x}", self.jitter.next_u64());
        let mut body = Vec::with_capacity(jsonl.len() + 512);
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/jsonl\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&jsonl);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let body = bytes::Bytes::from(body);
        let url = format!("{server}/files");
        let bytes = self
            .with_retries("files", |_| {
                let request = self
                    .http
                    .post(&url)
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        format!("multipart/form-data; boundary={boundary}"),
                    )
                    .body(body.clone());
                self.try_raw(request)
            })
            .await
            .map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| format!("unreadable answer to the upload: {e}"))
    }

    /// A JSON POST of the Batch API (`batches`), with retries.
    async fn batch_post(&self, server: &str, path: &str, body: &Value) -> Result<Value, String> {
        let url = format!("{server}/{path}");
        let bytes = bytes::Bytes::from(body.to_string());
        self.with_retries(path, |_| self.try_once(&url, bytes.clone()))
            .await
            .map_err(|e| e.to_string())
    }

    /// A GET of the Batch API (a batch's status, a file's content), with retries.
    async fn batch_get(&self, server: &str, path: &str) -> Result<Vec<u8>, String> {
        let url = format!("{server}/{path}");
        self.with_retries(path, |_| self.try_raw(self.http.get(&url)))
            .await
            .map_err(|e| e.to_string())
    }

    /// Caches one answer of a collected batch, under the key its
    /// `custom_id` names.
    fn store_batched(
        &self,
        key: &str,
        endpoint: &str,
        model: &str,
        answer: &Value,
    ) -> Result<(), Error> {
        match crate::content_hash::Digest::from_hex(key) {
            Some(key) => self.store(&key, endpoint, model, answer),
            // Not a key this client made: nothing waits for it.
            None => Ok(()),
        }
    }
}

/// `host:port` of a URL, for messages (the scheme's port when it names none).
fn host_and_port(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_inline_image_counts_as_its_tiles_not_its_base64() {
        let picture = format!("data:image/png;base64,{}", "A".repeat(400_000));
        let body = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": picture}},
            {"type": "text", "text": "x".repeat(400)},
        ]}]});
        let estimate = estimated_prompt_tokens(&body);
        assert!((1100..1200).contains(&estimate), "{estimate}");
    }

    use super::*;

    #[test]
    fn echoes_of_the_key_are_redacted_whole_truncated_and_upper_cased() {
        let key = "sk-live-Abcdef0123456789";
        assert_eq!(
            redact(&format!("bad key {key}!"), key),
            "bad key [redacted]!"
        );
        assert_eq!(
            redact("key SK-LIVE-ABCDEF0123456789 rejected", key),
            "key [redacted] rejected"
        );
        assert_eq!(
            redact("got ...ef012345... ok", key),
            "got ...[redacted]... ok"
        );
        // Seven characters of the key are not yet an echo.
        assert_eq!(redact("sk-live is a prefix", key), "sk-live is a prefix");
        assert_eq!(redact("nothing here", ""), "nothing here");
    }

    #[test]
    fn durations_never_panic() {
        assert_eq!(duration_of(1e20), Duration::MAX);
        assert_eq!(duration_of(f64::INFINITY), Duration::MAX);
        assert_eq!(duration_of(f64::NAN), Duration::ZERO);
        assert_eq!(duration_of(-3.0), Duration::ZERO);
        assert_eq!(duration_of(1.5), Duration::from_millis(1500));
    }
}
