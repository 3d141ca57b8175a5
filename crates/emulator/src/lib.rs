//! An OpenAI-compatible API emulator for tests and benchmarks, served on
//! 127.0.0.1 only: chat completions (vision content parts included),
//! image generations (inline base64 or a URL served here), the models list,
//! and the safety models of [`safety`] (moderation, Llama Guard 3 text on
//! `/v1/completions` and vision on chat completions),
//! deterministic answers, request counters, configurable latency (fixed or
//! log-normal, heavy-tailed like real APIs) and fault injection.
//!
//! Answers follow the JSON schema found in the request (`response_format`,
//! else a ```json block in the prompt), so they validate unless a fault says
//! otherwise. The emulator never stores what it receives.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State as AxumState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use image::{ImageFormat, Rgb, RgbImage};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub mod batch;
pub mod eval;
pub mod judge;
pub mod request;
pub mod safety;

use request::{has_image_part, message_text, user_text};
use siuo_core::content_hash::{ContentHasher, Digest};
use siuo_core::openai::cache::ResponseCache;
use siuo_core::random::SplitMix64;

/// How long each answer takes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "shape", rename_all = "kebab-case")]
pub enum Latency {
    None,
    Fixed {
        ms: f64,
    },
    /// Log-normal with this median and log-space deviation; sigma 0.99 puts
    /// p99 at about 10× the median.
    LogNormal {
        median_ms: f64,
        sigma: f64,
    },
}

impl Latency {
    /// Heavy-tailed latency with the given mean and p99 ≈ 10× the median.
    pub fn heavy_tailed_with_mean(mean_ms: f64) -> Latency {
        let sigma = 10f64.ln() / 2.326_348;
        Latency::LogNormal {
            median_ms: mean_ms / (sigma * sigma / 2.0).exp(),
            sigma,
        }
    }

    fn sample(&self, random: &mut impl FnMut() -> f64) -> Duration {
        let ms = match *self {
            Latency::None => 0.0,
            Latency::Fixed { ms } => ms,
            Latency::LogNormal { median_ms, sigma } => {
                // Box-Muller: one standard normal from two uniforms.
                let (u1, u2) = (random().max(f64::MIN_POSITIVE), random());
                let normal = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                median_ms * (sigma * normal).exp()
            }
        };
        Duration::from_secs_f64(ms.max(0.0) / 1000.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// 429 with `Retry-After`.
    RateLimited,
    /// 500.
    ServerError,
    /// Answers only after `stall_ms`, past any sane client timeout.
    Stall,
    /// 200 with the JSON body cut in half.
    TruncatedBody,
    /// 200 with a body that is not JSON.
    MalformedBody,
    /// 200 with valid JSON of the wrong shape (no `choices` / `data`).
    WrongShapeBody,
    /// A well-formed answer whose content is not what was asked for: not
    /// JSON (chat), not `safe`/`unsafe` (Llama Guard), no scores (moderation).
    MalformedContent,
    /// A well-formed answer whose content is JSON of the wrong shape.
    WrongShapeContent,
    /// 307 to the fault's `location`.
    Redirect,
    /// 200 with a JSON body padded to `body_bytes` bytes.
    HugeBody,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Endpoint {
    Chat,
    Images,
    /// `/v1/completions` (Llama Guard text).
    Completions,
    Moderations,
    /// Image downloads (`/files/…`): `MalformedBody` answers an HTML page,
    /// `WrongShapeBody` text labelled `image/png`.
    Files,
    Any,
}

/// Injects `kind` into the next `times` requests to `endpoint`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    pub kind: FaultKind,
    pub endpoint: Endpoint,
    pub times: u32,
    #[serde(default = "one_second")]
    pub retry_after_s: f64,
    #[serde(default = "one_minute")]
    pub stall_ms: u64,
    /// Where a `Redirect` sends the client.
    #[serde(default)]
    pub location: String,
    /// Size of a `HugeBody` answer.
    #[serde(default)]
    pub body_bytes: u64,
}

fn one_second() -> f64 {
    1.0
}
fn one_minute() -> u64 {
    60_000
}

impl Fault {
    pub fn new(kind: FaultKind, endpoint: Endpoint, times: u32) -> Self {
        Fault {
            kind,
            endpoint,
            times,
            retry_after_s: one_second(),
            stall_ms: one_minute(),
            location: String::new(),
            body_bytes: 0,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Every request received, faults and rejections included.
    pub requests: u64,
    pub chat: u64,
    pub vision: u64,
    pub images: u64,
    pub completions: u64,
    pub moderations: u64,
    pub downloads: u64,
    pub unauthorized: u64,
    pub faults: u64,
    /// Normal answers sent.
    pub completed: u64,
    pub max_in_flight: u64,
    /// Answers sent per distinct request, by the client's cache key
    /// (`RequestRecord::key`); > 1 means a completed request was repeated.
    pub completed_by_request: BTreeMap<String, u32>,
    /// Seconds from the first request received to the last answer sent.
    pub busy_seconds: f64,
    /// Seconds spent answering, summed over requests: divided by
    /// `busy_seconds` it is the mean number in flight, divided by the
    /// requests the mean latency served.
    pub request_seconds: f64,
    /// Seconds from the first request received to the last one received,
    /// and the answers sent by then: the span in which a client still had
    /// work to start, so a pipeline that keeps C requests in flight reaches
    /// C/L here, whatever the final slowest answers take.
    pub seconds_to_last_request: f64,
    pub completed_by_last_request: u64,
    /// Requests in each batch created, in order (see [`batch`]).
    pub batches: Vec<u64>,
    /// Status requests of batches.
    pub batch_polls: u64,
}

#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    pub latency: Latency,
    /// When set, requests must carry `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    pub seed: u64,
}

struct Shared {
    config: EmulatorConfig,
    address: SocketAddr,
    faults: Mutex<Vec<Fault>>,
    judge_rules: Mutex<Vec<judge::JudgeRule>>,
    stats: Mutex<Stats>,
    in_flight: AtomicU64,
    random: SplitMix64,
    first_request: Mutex<Option<Instant>>,
    last_request: Mutex<Option<Instant>>,
    last_answer: Mutex<Option<Instant>>,
    batches: Mutex<batch::Batches>,
}

type State = Arc<Shared>;

/// A running emulator; stops when dropped.
pub struct Emulator {
    pub address: SocketAddr,
    shared: State,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Emulator {
    /// Serves on 127.0.0.1 at a free port, on a thread of its own.
    pub fn start(config: EmulatorConfig) -> std::io::Result<Emulator> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config, address));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = Arc::clone(&shared);
        let thread = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let _ = axum::serve(listener, router(serving))
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        Ok(Emulator {
            address,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:<port>/v1`
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.address)
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    pub fn inject(&self, faults: Vec<Fault>) {
        if let Ok(mut queue) = self.shared.faults.lock() {
            queue.extend(faults);
        }
    }

    pub fn reset(&self) {
        self.shared.reset();
    }

    /// How batches submitted from now on, and those still in progress, behave.
    pub fn set_batch_behaviour(&self, behaviour: batch::BatchBehaviour) {
        if let Ok(mut batches) = self.shared.batches.lock() {
            batches.behaviour = behaviour;
        }
    }

    /// Replaces the emulated judges' rules (see [`judge`]); `reset` keeps them.
    pub fn set_judge_rules(&self, rules: Vec<judge::JudgeRule>) {
        if let Ok(mut current) = self.shared.judge_rules.lock() {
            *current = rules;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves until the process ends; for the `siuo-emulator` binary.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: EmulatorConfig,
) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    axum::serve(
        listener.tap_io(disable_nagle),
        router(Arc::new(Shared::new(config, address))),
    )
    .await
}

/// Real API servers answer without Nagle's algorithm; with it, a response
/// written in two parts waits for the client's delayed ACK (about 40 ms).
fn disable_nagle(stream: &mut tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
}

fn router(state: State) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/images/generations", post(images))
        .route("/v1/completions", post(completions))
        .route("/v1/moderations", post(moderations))
        .route("/v1/models", get(models))
        .route("/v1/files", post(upload))
        .route("/v1/files/{id}/content", get(file_content))
        .route("/v1/batches", post(create_batch))
        .route("/v1/batches/{id}", get(batch_status))
        .route("/files/{name}", get(file))
        .route("/_emulator/stats", get(stats))
        .route("/_emulator/faults", post(faults))
        .route("/_emulator/reset", post(reset))
        .with_state(state)
}

impl Shared {
    fn new(config: EmulatorConfig, address: SocketAddr) -> Self {
        let seed = config.seed;
        Shared {
            config,
            address,
            faults: Mutex::new(Vec::new()),
            judge_rules: Mutex::new(Vec::new()),
            stats: Mutex::new(Stats::default()),
            in_flight: AtomicU64::new(0),
            random: SplitMix64::new(seed ^ 0x5EED),
            first_request: Mutex::new(None),
            last_request: Mutex::new(None),
            last_answer: Mutex::new(None),
            batches: Mutex::new(batch::Batches::default()),
        }
    }

    fn stats(&self) -> Stats {
        let mut stats = self.stats.lock().map(|s| s.clone()).unwrap_or_default();
        if let (Ok(first), Ok(last)) = (self.first_request.lock(), self.last_answer.lock())
            && let (Some(first), Some(last)) = (*first, *last)
        {
            stats.busy_seconds = last.saturating_duration_since(first).as_secs_f64();
        }
        if let (Ok(first), Ok(last)) = (self.first_request.lock(), self.last_request.lock())
            && let (Some(first), Some(last)) = (*first, *last)
        {
            stats.seconds_to_last_request = last.saturating_duration_since(first).as_secs_f64();
        }
        stats
    }

    fn reset(&self) {
        if let Ok(mut stats) = self.stats.lock() {
            *stats = Stats::default();
        }
        if let Ok(mut faults) = self.faults.lock() {
            faults.clear();
        }
        for instant in [&self.first_request, &self.last_request, &self.last_answer] {
            if let Ok(mut value) = instant.lock() {
                *value = None;
            }
        }
    }

    fn count(&self, update: impl FnOnce(&mut Stats)) {
        if let Ok(mut stats) = self.stats.lock() {
            update(&mut stats);
        }
    }

    fn uniform(&self) -> f64 {
        self.random.next_f64()
    }

    fn next_fault(&self, endpoint: Endpoint) -> Option<Fault> {
        let mut queue = self.faults.lock().ok()?;
        let position = queue
            .iter()
            .position(|f| f.times > 0 && (f.endpoint == endpoint || f.endpoint == Endpoint::Any))?;
        let fault = queue[position].clone();
        queue[position].times -= 1;
        if queue[position].times == 0 {
            queue.remove(position);
        }
        Some(fault)
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(key) = &self.config.api_key else {
            return true;
        };
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {key}"))
    }
}

/// Tracks in-flight requests and timing for the length of one request.
struct InFlight<'a>(&'a Shared, Instant);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> Self {
        if let Ok(mut first) = shared.first_request.lock() {
            first.get_or_insert_with(Instant::now);
        }
        if let Ok(mut last) = shared.last_request.lock() {
            *last = Some(Instant::now());
        }
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.count(|s| {
            s.requests += 1;
            s.max_in_flight = s.max_in_flight.max(now);
            s.completed_by_last_request = s.completed;
        });
        InFlight(shared, Instant::now())
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let elapsed = self.1.elapsed().as_secs_f64();
        self.0.count(|s| s.request_seconds += elapsed);
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error_response(status: StatusCode, message: &str) -> Response {
    json_response(
        status,
        &json!({"error": {"message": message, "type": "emulated"}}),
    )
}

/// What a request gets: a fault, or the normal answer from `answer`.
async fn respond(
    shared: &Shared,
    headers: &HeaderMap,
    body: &Bytes,
    endpoint: Endpoint,
    answer: impl FnOnce(&Value) -> Value,
) -> Response {
    let path = match endpoint {
        Endpoint::Images => "images/generations",
        Endpoint::Completions => "completions",
        Endpoint::Moderations => "moderations",
        Endpoint::Chat | Endpoint::Any | Endpoint::Files => "chat/completions",
    };
    let _in_flight = InFlight::enter(shared);
    if !shared.authorized(headers) {
        shared.count(|s| s.unauthorized += 1);
        // Like real servers, never echo the presented key.
        return error_response(StatusCode::UNAUTHORIZED, "invalid API key");
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return error_response(StatusCode::BAD_REQUEST, "request body is not JSON");
    };
    let latency = shared.config.latency.sample(&mut || shared.uniform());
    let fault = shared.next_fault(endpoint);
    if fault.is_some() {
        shared.count(|s| s.faults += 1);
    }
    if let Some(Fault {
        kind: FaultKind::Stall,
        stall_ms,
        ..
    }) = fault
    {
        tokio::time::sleep(Duration::from_millis(stall_ms)).await;
        return error_response(StatusCode::GATEWAY_TIMEOUT, "stalled");
    }
    tokio::time::sleep(latency).await;
    let mut answer = answer(&request);
    if let Some(fault) = &fault {
        match fault.kind {
            FaultKind::Redirect => {
                return (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(header::LOCATION, fault.location.clone())],
                    "",
                )
                    .into_response();
            }
            FaultKind::HugeBody => {
                let mut text = answer.to_string();
                text.truncate(text.len().saturating_sub(1));
                let padding = (fault.body_bytes as usize).saturating_sub(text.len() + 16);
                text.push_str(&format!(",\"pad\":\"{}\"}}", " ".repeat(padding)));
                return (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    text,
                )
                    .into_response();
            }
            _ => {}
        }
    }
    match fault.map(|f| (f.kind, f.retry_after_s)) {
        Some((FaultKind::RateLimited, retry_after)) => {
            let mut response = error_response(StatusCode::TOO_MANY_REQUESTS, "rate limit reached");
            if let Ok(value) = format!("{retry_after}").parse() {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return response;
        }
        Some((FaultKind::ServerError, _)) => {
            return error_response(StatusCode::INTERNAL_SERVER_ERROR, "emulated failure");
        }
        Some((FaultKind::TruncatedBody, _)) => {
            let text = answer.to_string();
            let cut: String = text.chars().take(text.chars().count() / 2).collect();
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                cut,
            )
                .into_response();
        }
        Some((FaultKind::MalformedBody, _)) => {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                "{\"id\": \"x\", \"choices\": [ oops",
            )
                .into_response();
        }
        Some((FaultKind::WrongShapeBody, _)) => {
            return json_response(
                StatusCode::OK,
                &json!({"id": "emulated", "object": "unexpected", "created": 0}),
            );
        }
        Some((FaultKind::MalformedContent, _)) => match endpoint {
            Endpoint::Completions => {
                answer["choices"][0]["text"] = json!("I cannot assess this conversation.");
            }
            Endpoint::Moderations => answer["results"][0]["category_scores"] = json!("n/a"),
            _ => {
                answer["choices"][0]["message"]["content"] =
                    json!("Sure! Here are the cases: {candidates: [ {question: ");
            }
        },
        Some((FaultKind::WrongShapeContent, _)) => match endpoint {
            Endpoint::Completions => answer["choices"][0]["text"] = json!("unsafe\nS99"),
            Endpoint::Moderations => answer["results"] = json!([]),
            _ => {
                answer["choices"][0]["message"]["content"] =
                    json!("{\"items\": [{\"q\": \"what?\"}]}");
            }
        },
        Some((FaultKind::Stall | FaultKind::Redirect | FaultKind::HugeBody, _)) | None => {}
    }
    let request_hash = ResponseCache::key(path, &request).short(16);
    shared.count(|s| {
        s.completed += 1;
        *s.completed_by_request.entry(request_hash).or_insert(0) += 1;
    });
    if let Ok(mut last) = shared.last_answer.lock() {
        *last = Some(Instant::now());
    }
    json_response(StatusCode::OK, &answer)
}

/// What a chat request gets, faults aside.
enum ChatReply {
    /// A scripted judge or target is down: 503.
    Down,
    Answer(Value),
}

/// The answer to a chat request: a scripted eval answer, an emulated
/// judge's verdict, Llama Guard's, or a generated case.
fn chat_reply(shared: &Shared, request: &Value) -> ChatReply {
    match eval::answer(request) {
        Some(eval::EvalAnswer::Down) => return ChatReply::Down,
        Some(eval::EvalAnswer::Text(text)) => {
            return ChatReply::Answer(content_answer(request, &text));
        }
        _ => {}
    }
    let judged = requested_schema(request)
        .and_then(|schema| judge::check_of(&schema))
        .map(|check| {
            let user = user_text(request);
            let rules = shared
                .judge_rules
                .lock()
                .map(|r| r.clone())
                .unwrap_or_default();
            judge::judge(check, &user, &rules)
        });
    ChatReply::Answer(match judged {
        Some(judge::Judgement::Down) => return ChatReply::Down,
        Some(judge::Judgement::Answer(answer)) => content_answer(request, &answer.to_string()),
        Some(judge::Judgement::Echo(text)) => content_answer(request, &text),
        Some(judge::Judgement::Junk) => {
            content_answer(request, "I think this case looks fine to me!")
        }
        None if safety::is_guard_model(request) => safety::guard_chat_answer(request),
        None => chat_answer(request),
    })
}

async fn chat(AxumState(shared): AxumState<State>, headers: HeaderMap, body: Bytes) -> Response {
    let request = serde_json::from_slice::<Value>(&body).unwrap_or_default();
    let vision = has_image_part(&request);
    shared.count(|s| {
        s.chat += 1;
        s.vision += u64::from(vision);
    });
    match chat_reply(&shared, &request) {
        ChatReply::Down if shared.authorized(&headers) => {
            let _in_flight = InFlight::enter(&shared);
            shared.count(|s| s.faults += 1);
            error_response(StatusCode::SERVICE_UNAVAILABLE, "emulated judge is down")
        }
        // Unauthorized: `respond` refuses it before any answer.
        ChatReply::Down => respond(&shared, &headers, &body, Endpoint::Chat, chat_answer).await,
        ChatReply::Answer(answer) => {
            respond(&shared, &headers, &body, Endpoint::Chat, |_| answer).await
        }
    }
}

async fn completions(
    AxumState(shared): AxumState<State>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.count(|s| s.completions += 1);
    respond(
        &shared,
        &headers,
        &body,
        Endpoint::Completions,
        safety::completion_answer,
    )
    .await
}

async fn moderations(
    AxumState(shared): AxumState<State>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.count(|s| s.moderations += 1);
    respond(
        &shared,
        &headers,
        &body,
        Endpoint::Moderations,
        safety::moderation_answer,
    )
    .await
}

async fn images(AxumState(shared): AxumState<State>, headers: HeaderMap, body: Bytes) -> Response {
    shared.count(|s| s.images += 1);
    let address = shared.address;
    respond(&shared, &headers, &body, Endpoint::Images, |request| {
        image_answer(request, address)
    })
    .await
}

/// The start of every Batch API request: counted in flight; `None`
/// without the key.
fn batch_request<'a>(shared: &'a Shared, headers: &HeaderMap) -> Option<InFlight<'a>> {
    let in_flight = InFlight::enter(shared);
    shared.authorized(headers).then_some(in_flight)
}

async fn upload(AxumState(shared): AxumState<State>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(_in_flight) = batch_request(&shared, &headers) else {
        return error_response(StatusCode::UNAUTHORIZED, "invalid API key");
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(file) = batch::uploaded_file(content_type, &body) else {
        return error_response(StatusCode::BAD_REQUEST, "no multipart `file` part");
    };
    let Ok(mut batches) = shared.batches.lock() else {
        return error_response(StatusCode::INTERNAL_SERVER_ERROR, "poisoned");
    };
    let id = batches.new_id("file");
    let size = file.len();
    batches.files.insert(id.clone(), file);
    json_response(
        StatusCode::OK,
        &json!({"id": id, "object": "file", "bytes": size, "purpose": "batch"}),
    )
}

async fn create_batch(
    AxumState(shared): AxumState<State>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(_in_flight) = batch_request(&shared, &headers) else {
        return error_response(StatusCode::UNAUTHORIZED, "invalid API key");
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error_response(StatusCode::BAD_REQUEST, "request body is not JSON");
    };
    let (Some(input), Some(endpoint)) = (
        request["input_file_id"].as_str(),
        request["endpoint"].as_str(),
    ) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "input_file_id and endpoint are required",
        );
    };
    let Ok(mut batches) = shared.batches.lock() else {
        return error_response(StatusCode::INTERNAL_SERVER_ERROR, "poisoned");
    };
    let Some(file) = batches.files.get(input) else {
        return error_response(StatusCode::NOT_FOUND, "no such file");
    };
    let lines = String::from_utf8_lossy(file)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();
    let id = batches.new_id("batch");
    let window = request["completion_window"].as_str().unwrap_or("24h");
    let object = batch::batch_object(&id, input, endpoint, window, lines);
    batches.batches.insert(id, object.clone());
    shared.count(|s| s.batches.push(lines as u64));
    json_response(StatusCode::OK, &object)
}

async fn batch_status(
    AxumState(shared): AxumState<State>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let Some(_in_flight) = batch_request(&shared, &headers) else {
        return error_response(StatusCode::UNAUTHORIZED, "invalid API key");
    };
    shared.count(|s| s.batch_polls += 1);
    let Ok(mut batches) = shared.batches.lock() else {
        return error_response(StatusCode::INTERNAL_SERVER_ERROR, "poisoned");
    };
    let Some(object) = batches.batches.get(&id).cloned() else {
        return error_response(StatusCode::NOT_FOUND, "no such batch");
    };
    if object["status"] != "in_progress" || batches.behaviour.hold {
        return json_response(StatusCode::OK, &object);
    }
    let input = object["input_file_id"].as_str().unwrap_or_default();
    let lines = batches
        .files
        .get(input)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .unwrap_or_default();
    let expire_after = batches.behaviour.expire_after;
    let (mut output, mut errors, mut completed) = (String::new(), String::new(), 0);
    for (index, line) in lines.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let Ok(line) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let custom_id = line["custom_id"].as_str().unwrap_or_default();
        if expire_after.is_some_and(|after| index >= after) {
            errors.push_str(&batch::error_line(
                custom_id,
                "batch_expired",
                "This request could not be executed before the completion window expired.",
            ));
            errors.push('\n');
            continue;
        }
        let request = &line["body"];
        let url = line["url"].as_str().unwrap_or_default();
        let path = url.trim_start_matches("/v1/");
        let answer = match path {
            "completions" => Some(safety::completion_answer(request)),
            _ => match chat_reply(&shared, request) {
                ChatReply::Answer(answer) => Some(answer),
                ChatReply::Down => None,
            },
        };
        match answer {
            Some(answer) => {
                let key = ResponseCache::key(path, request).short(16);
                shared.count(|s| {
                    s.completed += 1;
                    *s.completed_by_request.entry(key).or_insert(0) += 1;
                });
                output.push_str(&batch::output_line(custom_id, answer));
                output.push('\n');
                completed += 1;
            }
            None => {
                errors.push_str(&batch::error_line(
                    custom_id,
                    "server_error",
                    "emulated judge is down",
                ));
                errors.push('\n');
            }
        }
    }
    let total = object["request_counts"]["total"].as_u64().unwrap_or(0);
    let mut object = object;
    object["status"] = json!(
        if expire_after.is_some_and(|after| after < total as usize) {
            "expired"
        } else {
            "completed"
        }
    );
    object["request_counts"] =
        json!({"total": total, "completed": completed, "failed": total - completed});
    if !output.is_empty() {
        let file = batches.new_id("file");
        batches.files.insert(file.clone(), output.into_bytes());
        object["output_file_id"] = json!(file);
    }
    if !errors.is_empty() {
        let file = batches.new_id("file");
        batches.files.insert(file.clone(), errors.into_bytes());
        object["error_file_id"] = json!(file);
    }
    batches.batches.insert(id, object.clone());
    json_response(StatusCode::OK, &object)
}

async fn file_content(
    AxumState(shared): AxumState<State>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let Some(_in_flight) = batch_request(&shared, &headers) else {
        return error_response(StatusCode::UNAUTHORIZED, "invalid API key");
    };
    let content = shared
        .batches
        .lock()
        .ok()
        .and_then(|b| b.files.get(&id).cloned());
    match content {
        Some(bytes) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/jsonl")],
            bytes,
        )
            .into_response(),
        None => error_response(StatusCode::NOT_FOUND, "no such file"),
    }
}

async fn models() -> Response {
    json_response(
        StatusCode::OK,
        &json!({"object": "list", "data": [
            {"id": "emulated-chat", "object": "model", "owned_by": "siuo-emulator"},
            {"id": "emulated-vision", "object": "model", "owned_by": "siuo-emulator"},
            {"id": "emulated-image", "object": "model", "owned_by": "siuo-emulator"},
        ]}),
    )
}

async fn file(AxumState(shared): AxumState<State>, UrlPath(name): UrlPath<String>) -> Response {
    shared.count(|s| s.downloads += 1);
    let fault = shared.next_fault(Endpoint::Files);
    if let Some(Fault {
        kind: FaultKind::Redirect,
        location,
        ..
    }) = &fault
    {
        shared.count(|s| s.faults += 1);
        return (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, location.clone())],
            "",
        )
            .into_response();
    }
    match fault.map(|f| f.kind) {
        Some(FaultKind::MalformedBody) => {
            shared.count(|s| s.faults += 1);
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/html")],
                "<html><body>Not the image you asked for</body></html>",
            )
                .into_response();
        }
        Some(FaultKind::WrongShapeBody) => {
            shared.count(|s| s.faults += 1);
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "image/png")],
                "this text only claims to be a picture",
            )
                .into_response();
        }
        _ => {}
    }
    let seed = name.trim_end_matches(".png");
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "image/png")],
        picture_png(seed),
    )
        .into_response()
}

async fn stats(AxumState(shared): AxumState<State>) -> Response {
    json_response(
        StatusCode::OK,
        &serde_json::to_value(shared.stats()).unwrap_or_default(),
    )
}

async fn faults(AxumState(shared): AxumState<State>, body: Bytes) -> Response {
    match serde_json::from_slice::<Vec<Fault>>(&body) {
        Ok(faults) => {
            if let Ok(mut queue) = shared.faults.lock() {
                queue.extend(faults);
            }
            json_response(StatusCode::OK, &json!({"ok": true}))
        }
        Err(e) => error_response(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

async fn reset(AxumState(shared): AxumState<State>) -> Response {
    shared.reset();
    json_response(StatusCode::OK, &json!({"ok": true}))
}

/// The schema the answer must follow: `response_format`, else the first
/// ```json block of the messages.
fn requested_schema(request: &Value) -> Option<Value> {
    if let Some(schema) = request.pointer("/response_format/json_schema/schema") {
        return Some(schema.clone());
    }
    let messages = request["messages"].as_array()?;
    messages.iter().find_map(|message| {
        let text = message_text(&message["content"])?;
        let start = text.find("```json")? + "```json".len();
        let end = text[start..].find("```")? + start;
        serde_json::from_str(&text[start..end]).ok()
    })
}

/// A chat completion whose message is `content`.
fn content_answer(request: &Value, content: &str) -> Value {
    let tag = ContentHasher::new("siuo.emulator.chat")
        .str(&request.to_string())
        .finish()
        .short(8);
    json!({
        "id": format!("chatcmpl-{tag}"),
        "object": "chat.completion",
        "created": 0,
        "model": request["model"],
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        "usage": {
            "prompt_tokens": request.to_string().len() / 4,
            "completion_tokens": content.len() / 4,
            "total_tokens": request.to_string().len() / 4 + content.len() / 4,
        },
    })
}

fn chat_answer(request: &Value) -> Value {
    let digest = ContentHasher::new("siuo.emulator.chat")
        .str(&request.to_string())
        .finish();
    let tag = digest.short(8);
    let items =
        requested_schema(request).and_then(|s| s.pointer("/properties/candidates").cloned());
    let count = items
        .as_ref()
        .and_then(|i| i["maxItems"].as_u64())
        .unwrap_or(1)
        .max(1);
    let properties = items
        .as_ref()
        .and_then(|i| i.pointer("/items/properties").cloned())
        .unwrap_or_default();
    let labels: Vec<String> = properties["label"]["enum"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let candidates: Vec<Value> = (0..count)
        .map(|index| {
            let mut case = serde_json::Map::new();
            if !labels.is_empty() {
                let pick =
                    (digest.0[(index as usize) % 32] as usize + index as usize) % labels.len();
                case.insert("label".into(), json!(labels[pick]));
            }
            let text = |field: &str| match field {
                "question" => {
                    let question = emulated_question(&digest.0, index as usize, &tag);
                    match learner_gives_it_away(request, &digest.0, index as usize) {
                        true => format!("{question} Plainly, you can see why I ask."),
                        false => question,
                    }
                }
                "image_prompt" => format!(
                    "A photograph for emulated case {tag}-{index}, showing an everyday scene."
                ),
                "image_description" => {
                    format!("An everyday scene for emulated case {tag}-{index}.")
                }
                "safety_warning" => format!(
                    "Emulated warning {tag}-{index}: the image reveals a hazard the question hides."
                ),
                "reference_answer" => format!(
                    "Emulated reference answer {tag}-{index}: a careful, safe and helpful reply."
                ),
                other => format!("emulated {other} {tag}-{index}"),
            };
            if let Some(fields) = properties.as_object() {
                for field in fields.keys().filter(|f| *f != "label") {
                    case.insert(field.clone(), json!(text(field)));
                }
            }
            Value::Object(case)
        })
        .collect();
    content_answer(request, &json!({"candidates": candidates}).to_string())
}

/// The scripted generator of the generation-loop tests (model
/// `loop-learner`): it gives the hazard away ("plainly") in three of four
/// questions, and in one of four once its prompt shows cases that were hard
/// for the panel, as a model that learns from exemplars would. Other
/// models never give it away.
pub const LEARNER: &str = "loop-learner";
pub const GIVEAWAY: &str = "plainly";
/// The text-first prompt's heading over hard exemplars.
const EXEMPLARS_HEADING: &str = "were hard for the models under test";

fn learner_gives_it_away(request: &Value, digest: &[u8; 32], index: usize) -> bool {
    if request["model"] != LEARNER {
        return false;
    }
    let coin = digest[(index * 7 + 5) % 32] % 4;
    match user_text(request).contains(EXEMPLARS_HEADING) {
        true => coin == 0,
        false => coin != 0,
    }
}

/// A question that differs in wording per request and item, so near
/// dedupe sees distinct cases, as it would from a real model.
fn emulated_question(digest: &[u8; 32], index: usize, tag: &str) -> String {
    const OPENERS: [&str; 8] = [
        "Is it alright if I",
        "Would it be fine to",
        "Can my kids and I",
        "Should I",
        "How soon can we",
        "What is the best way to",
        "Do you think I could",
        "Any tips to",
    ];
    const ACTIONS: [&str; 8] = [
        "leave the groceries",
        "paint the fence",
        "set up a picnic",
        "park the bike",
        "store the old paint cans",
        "plant tomatoes",
        "hang the laundry",
        "fly a kite",
    ];
    const PLACES: [&str; 8] = [
        "right here",
        "next to this",
        "on top of that",
        "under these",
        "by the edge over there",
        "inside this one",
        "behind the shed",
        "near those",
    ];
    const TIMES: [&str; 8] = [
        "this afternoon",
        "tonight",
        "before the guests arrive",
        "every weekend",
        "while it rains",
        "after lunch",
        "during the holidays",
        "first thing tomorrow",
    ];
    let pick = |list: &[&'static str; 8], byte: usize| {
        list[usize::from(digest[(byte + index * 4) % 32]) % 8]
    };
    format!(
        "{} {} {} {}? (case {tag}-{index})",
        pick(&OPENERS, 0),
        pick(&ACTIONS, 1),
        pick(&PLACES, 2),
        pick(&TIMES, 3)
    )
}

fn image_answer(request: &Value, address: SocketAddr) -> Value {
    let seed = ContentHasher::new("siuo.emulator.image")
        .str(&request["prompt"].to_string())
        .finish()
        .short(16);
    let item = if request["response_format"] == "url" {
        json!({"url": format!("http://{address}/files/{seed}.png")})
    } else {
        json!({"b64_json": BASE64.encode(picture_png(&seed))})
    };
    json!({"created": 0, "data": [item]})
}

/// A 128×96 PNG that passes the image validator: a textured background
/// and blocks placed by the seed, so different seeds are different pictures
/// to a perceptual hash too.
fn picture_png(seed: &str) -> Vec<u8> {
    let digest = Digest::of(seed.as_bytes()).0;
    let byte = |i: usize| u32::from(digest[i % 32]);
    let mut image = RgbImage::from_fn(128, 96, |x, y| {
        Rgb([
            ((x * 2 + byte(0)) % 256) as u8,
            ((y * 3 + byte(1)) % 256) as u8,
            (((x ^ y) + byte(2)) % 256) as u8,
        ])
    });
    for block in 0..6 {
        let (x0, y0) = (byte(3 + block * 4) % 96, byte(4 + block * 4) % 64);
        let (w, h) = (16 + byte(5 + block * 4) % 32, 16 + byte(6 + block * 4) % 32);
        // Blues and greens only: skin-like tones make image-safety
        // models see what is not there.
        let colour = Rgb([
            0,
            byte(8 + block * 3) as u8,
            128 + byte(9 + block * 3) as u8 / 2,
        ]);
        for y in y0..(y0 + h).min(96) {
            for x in x0..(x0 + w).min(128) {
                image.put_pixel(x, y, colour);
            }
        }
    }
    let mut bytes = Cursor::new(Vec::new());
    let _ = image.write_to(&mut bytes, ImageFormat::Png);
    bytes.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heavy_tail_has_p99_about_ten_times_the_median() {
        let latency = Latency::heavy_tailed_with_mean(200.0);
        let config = EmulatorConfig {
            latency,
            api_key: None,
            seed: 7,
        };
        let shared = Shared::new(config, SocketAddr::from(([127, 0, 0, 1], 0)));
        let mut samples: Vec<f64> = (0..50_000)
            .map(|_| latency.sample(&mut || shared.uniform()).as_secs_f64())
            .collect();
        samples.sort_by(f64::total_cmp);
        let median = samples[samples.len() / 2];
        let p99 = samples[samples.len() * 99 / 100];
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        assert!(
            (7.0..14.0).contains(&(p99 / median)),
            "p99/median = {}",
            p99 / median
        );
        assert!((0.17..0.23).contains(&mean), "mean = {mean}");
    }

    #[test]
    fn answers_follow_the_schema_in_the_request() {
        let schema = json!({"properties": {"candidates": {"maxItems": 2, "items": {"properties": {
            "label": {"enum": ["a/b"]}, "question": {}, "safety_warning": {}
        }}}}});
        let request = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_schema", "json_schema": {"schema": schema}}});
        let answer = chat_answer(&request);
        let content: Value = serde_json::from_str(
            answer["choices"][0]["message"]["content"]
                .as_str()
                .unwrap_or(""),
        )
        .unwrap_or_default();
        assert_eq!(content["candidates"].as_array().map(Vec::len), Some(2));
        assert_eq!(content["candidates"][0]["label"], "a/b");
        assert_eq!(chat_answer(&request), answer, "deterministic");
    }
}
