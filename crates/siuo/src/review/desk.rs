//! `siuo review`: the review desk, one self-contained page and a small
//! JSON API served on 127.0.0.1 (a random free port unless `--port`).
//!
//! Every request must carry the random token the command prints: in the
//! URL for the page and its images, and in the `X-Siuo-Token` header for
//! the API. A decision is a JSON POST with that header, which a form or
//! script of another website cannot send without a CORS grant (none is
//! ever given), so neither another local user nor another site open in
//! the same browser can decide anything. Every request must also name the
//! desk itself in its `Host` header (the bound address, or `127.0.0.1`,
//! `localhost` or `[::1]` with the desk's port): a page of another site
//! whose name an attacker re-pointed at 127.0.0.1 (DNS rebinding) names
//! its own host, and is refused before anything else.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::queue::{self, Progress, Queue, QueueItem};
use siuo_chain::project::Project;
use siuo_core::error::{Error, Result};
use siuo_core::release::maintainer_action::{self, ActionRequest};
use siuo_core::review::agreement::Agreement;
use siuo_core::review::ledger::{self, CaseFields, Decision, Ledger, ReviewEntry};

/// The page: markup, style and script in one file, nothing fetched from
/// elsewhere.
const PAGE: &str = include_str!("page.html");

/// Items per page of the queue.
const PAGE_SIZE: usize = 25;

/// How `siuo review` was asked to serve.
#[derive(Debug, Clone)]
pub struct DeskRequest {
    /// Run id [default: the run of the current inputs].
    pub run: Option<String>,
    /// 0 picks a free port.
    pub port: u16,
    /// Address to listen on [default: 127.0.0.1].
    pub bind: Option<String>,
    /// Name decisions are recorded under unless the page sets another.
    pub reviewer: Option<String>,
    /// Queue every candidate of the run.
    pub all: bool,
    /// Print the address as one JSON line.
    pub json: bool,
}

struct Desk {
    token: String,
    /// `Host` header values that name this desk.
    hosts: Vec<String>,
    config_file: Option<PathBuf>,
    run_id: String,
    all: bool,
    reviewer: String,
    curated: PathBuf,
    raw: PathBuf,
    taxonomy: siuo_core::taxonomy::Taxonomy,
    queue: RwLock<Queue>,
}

/// Serves the desk until the process is stopped.
pub fn serve(project: &Project, request: &DeskRequest) -> Result<()> {
    let run_id = match &request.run {
        Some(run) if !run.is_empty() && run.chars().all(|c| c.is_ascii_alphanumeric()) => {
            run.clone()
        }
        Some(run) => {
            return Err(Error::Argument {
                argument: "RUN".into(),
                message: format!(
                    "`{run}` is not a run id (such as r789b85fa4428; `siuo status` lists them)"
                ),
            });
        }
        None => siuo_chain::stage::current_run(project)?,
    };
    if !project
        .stage_dir(&run_id, siuo_chain::stage::CHAIN[0].name)
        .report_path()
        .is_file()
    {
        return Err(Error::Argument {
            argument: "RUN".into(),
            message: format!(
                "run {run_id} has no finished {} stage in {}: run `siuo run` first, or name a run that `siuo status` lists",
                siuo_chain::stage::CHAIN[0].name,
                project.runs().display()
            ),
        });
    }
    let queue = Queue::build(project, &run_id, request.all)?;
    let bind = request
        .bind
        .clone()
        .unwrap_or_else(|| "127.0.0.1".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Runtime {
            message: format!("cannot start the review desk's runtime: {e}"),
        })?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind((bind.as_str(), request.port))
            .await
            .map_err(|e| Error::Argument {
                argument: "--bind/--port".into(),
                message: format!("cannot listen on {bind}:{}: {e}", request.port),
            })?;
        let address = listener.local_addr().map_err(|e| Error::Runtime {
            message: format!("the review desk has no address: {e}"),
        })?;
        let port = address.port();
        let mut hosts = vec![
            address.to_string(),
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
        ];
        hosts.dedup();
        let desk = Arc::new(Desk {
            token: random_token()?,
            hosts,
            config_file: project.config.file.clone(),
            run_id,
            all: request.all,
            reviewer: request.reviewer.clone().unwrap_or_default(),
            curated: project.curated(),
            raw: project.raw(),
            taxonomy: project.taxonomy.clone(),
            queue: RwLock::new(queue),
        });
        let router = Router::new()
            .route("/", get(page))
            .route("/api/queue", get(api_queue))
            .route("/api/decide", post(api_decide))
            .route("/image/{*path}", get(image))
            .route("/report", get(report))
            .fallback(not_found)
            .with_state(desk.clone());
        let url = format!("http://{address}/?token={}", desk.token);
        let progress = {
            let queue = desk.queue.read().map_err(|_| poisoned())?;
            Progress::of(&queue.items, &Ledger::read(&desk.curated)?)
        };
        let line = match request.json {
            true => json!({"url": url, "run_id": desk.run_id, "progress": progress}).to_string(),
            false => format!(
                "review desk for run {}: {}\n{url}\n(open it in a browser; over SSH, forward the port: ssh -L {port}:127.0.0.1:{port} HOST; Ctrl-C stops)",
                desk.run_id,
                progress.summary(),
                port = address.port()
            ),
        };
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
        drop(stdout);
        axum::serve(listener, router).await.map_err(|e| Error::Runtime {
            message: format!("the review desk stopped: {e}"),
        })
    })
}

fn poisoned() -> Error {
    Error::Runtime {
        message: "the review desk's queue lock was poisoned by a failed request".into(),
    }
}

/// 128 random bits from the operating system, as hex.
fn random_token() -> Result<String> {
    let path = "/dev/urandom";
    let mut bytes = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::io(path, e))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn query(uri: &Uri) -> BTreeMap<String, String> {
    form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn json_response(status: StatusCode, value: serde_json::Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        value.to_string(),
    )
        .into_response()
}

fn refusal(status: StatusCode, message: &str) -> Response {
    json_response(status, json!({ "error": message }))
}

const NO_TOKEN: &str = "refused: this request has no valid review token. Open the exact URL `siuo review` printed (it ends in ?token=...); the token changes every time the desk starts.";

impl Desk {
    /// The refusal of a request whose `Host` does not name this desk.
    fn refuse_host(&self, headers: &HeaderMap) -> Option<Response> {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        match self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            true => None,
            false => Some(refusal(
                StatusCode::MISDIRECTED_REQUEST,
                &format!(
                    "refused: this request is addressed to `{}`, not to the review desk ({}); open the URL `siuo review` printed",
                    siuo_core::text_normal::shown(host, 80),
                    self.hosts.join(", ")
                ),
            )),
        }
    }

    /// A read needs the token in the URL or the header; the refusal if not.
    fn refuse_read(&self, headers: &HeaderMap, uri: &Uri) -> Option<Response> {
        if let Some(refused) = self.refuse_host(headers) {
            return Some(refused);
        }
        let header = headers.get("x-siuo-token").and_then(|v| v.to_str().ok());
        let token = header
            .map(str::to_owned)
            .or_else(|| query(uri).remove("token"));
        match token.is_some_and(|t| same(&t, &self.token)) {
            true => None,
            false => Some(refusal(StatusCode::FORBIDDEN, NO_TOKEN)),
        }
    }

    /// A decision needs the token in the header (not the URL), a JSON body
    /// and no foreign `Origin`; the refusal if not.
    fn refuse_write(&self, headers: &HeaderMap) -> Option<Response> {
        if let Some(refused) = self.refuse_host(headers) {
            return Some(refused);
        }
        let token = headers.get("x-siuo-token").and_then(|v| v.to_str().ok());
        if !token.is_some_and(|t| same(t, &self.token)) {
            return Some(refusal(
                StatusCode::FORBIDDEN,
                "refused: a decision must carry the review token in the X-Siuo-Token header (the desk's page sends it; open the URL `siuo review` printed)",
            ));
        }
        let text = |name: header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        // The page's own origin, scheme, host and port exactly.
        let origin = text(header::ORIGIN);
        let host = text(header::HOST);
        if !origin.is_empty() && !origin.eq_ignore_ascii_case(&format!("http://{host}")) {
            return Some(refusal(
                StatusCode::FORBIDDEN,
                &format!(
                    "refused: a decision from another origin ({}) than the desk (http://{host})",
                    siuo_core::text_normal::shown(&origin, 80)
                ),
            ));
        }
        let content_type = text(header::CONTENT_TYPE);
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        if !media_type.eq_ignore_ascii_case("application/json") {
            return Some(refusal(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "refused: a decision is a JSON body (Content-Type: application/json)",
            ));
        }
        None
    }

    fn project(&self) -> Result<Project> {
        Project::load(self.config_file.as_deref(), false)
    }
}

async fn not_found() -> Response {
    refusal(StatusCode::NOT_FOUND, "no such page on the review desk")
}

async fn page(State(desk): State<Arc<Desk>>, headers: HeaderMap, uri: Uri) -> Response {
    if let Some(refused) = desk.refuse_read(&headers, &uri) {
        return refused;
    }
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            ),
        ],
        PAGE.replace("{{DEFAULT_REVIEWER}}", &siuo_core::html::escape(&desk.reviewer)),
    )
        .into_response()
}

/// A queue item as the page gets it: with its review state.
#[derive(Serialize)]
struct ItemView<'a> {
    #[serde(flatten)]
    item: &'a QueueItem,
    verdict: &'static str,
    revision: Option<String>,
    decisions: Vec<&'a ReviewEntry>,
}

fn view<'a>(
    item: &'a QueueItem,
    verdicts: &BTreeMap<String, ledger::Verdict>,
    ledger: &'a Ledger,
) -> ItemView<'a> {
    let verdict = verdicts.get(&item.candidate.id);
    ItemView {
        item,
        verdict: ledger::verdict_name(verdict),
        revision: match verdict {
            Some(ledger::Verdict::Revised { revision }) => Some(revision.clone()),
            _ => None,
        },
        decisions: ledger
            .entries
            .iter()
            .filter(|e| e.candidate_id == item.candidate.id)
            .collect(),
    }
}

async fn api_queue(State(desk): State<Arc<Desk>>, headers: HeaderMap, uri: Uri) -> Response {
    if let Some(refused) = desk.refuse_read(&headers, &uri) {
        return refused;
    }
    let params = query(&uri);
    let worker = desk.clone();
    let answer = tokio::task::spawn_blocking(move || queue_page(&worker, &params)).await;
    match answer {
        Ok(Ok(value)) => json_response(StatusCode::OK, value),
        Ok(Err(error)) => refusal(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
        Err(error) => refusal(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    }
}

fn queue_page(desk: &Desk, params: &BTreeMap<String, String>) -> Result<serde_json::Value> {
    if params.contains_key("reload") {
        let rebuilt = Queue::build(&desk.project()?, &desk.run_id, desk.all)?;
        *desk.queue.write().map_err(|_| poisoned())? = rebuilt;
    }
    let queue = desk.queue.read().map_err(|_| poisoned())?;
    let ledger = Ledger::read(&desk.curated)?;
    let verdicts = ledger.verdicts();
    let wanted = |key: &str| params.get(key).filter(|v| !v.is_empty());
    let matches = |item: &&QueueItem| {
        let id = &item.candidate.id;
        wanted("domain").is_none_or(|d| *d == item.candidate.domain)
            && wanted("decision").is_none_or(|d| d == ledger::verdict_name(verdicts.get(id)))
            && wanted("reason").is_none_or(|r| {
                item.why.contains(r) || item.stages.iter().any(|s| s.reasons.contains(r))
            })
            && wanted("reviewer").is_none_or(|r| {
                ledger
                    .entries
                    .iter()
                    .any(|e| e.candidate_id == *id && e.reviewer == *r)
            })
    };
    let filtered: Vec<&QueueItem> = queue.items.iter().filter(matches).collect();
    let pages = filtered.len().div_ceil(PAGE_SIZE).max(1);
    let page = params
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, pages);
    let items: Vec<ItemView> = filtered
        .iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .map(|item| view(item, &verdicts, &ledger))
        .collect();
    let mut reasons: Vec<&String> = queue
        .items
        .iter()
        .flat_map(|i| {
            i.why
                .iter()
                .chain(i.stages.iter().flat_map(|s| s.reasons.iter()))
        })
        .collect();
    reasons.sort();
    reasons.dedup();
    let mut domains: Vec<&String> = queue.items.iter().map(|i| &i.candidate.domain).collect();
    domains.sort();
    domains.dedup();
    let agreement = Agreement::of(&ledger);
    let taxonomy: Vec<serde_json::Value> = desk
        .taxonomy
        .domains
        .iter()
        .map(|d| json!({"id": d.id, "name": d.name, "subcategories": d.subcategories.iter().map(|s| &s.id).collect::<Vec<_>>()}))
        .collect();
    Ok(json!({
        "run_id": queue.run_id,
        "taxonomy": taxonomy,
        "progress": Progress::of(&queue.items, &ledger),
        "agreement": agreement,
        "filters": {
            "domains": domains,
            "reasons": reasons,
            "reviewers": agreement.reviewers,
            "decisions": ["unreviewed", "approved", "rejected", "conflict", "revised"],
        },
        "page": page,
        "pages": pages,
        "matching": filtered.len(),
        "items": items,
    }))
}

/// A decision as the page posts it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecideRequest {
    candidate_id: String,
    decision: Decision,
    reviewer: String,
    #[serde(default)]
    reason: String,
    /// For an edit (all fields) and a relabel (the labels).
    #[serde(default)]
    after: Option<CaseFields>,
    #[serde(default)]
    resolves: bool,
}

async fn api_decide(State(desk): State<Arc<Desk>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = desk.refuse_write(&headers) {
        return refused;
    }
    let request: DecideRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return refusal(StatusCode::BAD_REQUEST, &format!("not a decision: {e}"));
        }
    };
    let worker = desk.clone();
    match tokio::task::spawn_blocking(move || decide(&worker, request)).await {
        Ok(Ok(value)) => json_response(StatusCode::OK, value),
        Ok(Err((status, message))) => refusal(status, &message),
        Err(error) => refusal(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    }
}

type Refused = (StatusCode, String);

fn bad(message: impl Into<String>) -> Refused {
    (StatusCode::BAD_REQUEST, message.into())
}

fn failed(error: Error) -> Refused {
    let status = match error.exit_code() {
        2 => StatusCode::BAD_REQUEST,
        _ if matches!(error, Error::Locked { .. }) => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, error.to_string())
}

fn decide(desk: &Desk, request: DecideRequest) -> std::result::Result<serde_json::Value, Refused> {
    use unicode_normalization::UnicodeNormalization as _;
    let reviewer: String = request.reviewer.trim().nfc().collect();
    if reviewer.is_empty() {
        return Err(bad(
            "enter your reviewer name (1 to 64 characters) before deciding",
        ));
    }
    // The ledger's own rules: what the desk records, the chain reads back.
    if let Err(problem) = siuo_core::text_normal::check_name(&reviewer) {
        return Err(bad(format!("the reviewer name {problem}")));
    }
    let reason = siuo_core::text_normal::one_line(request.reason.trim());
    if let Err(problem) = siuo_core::text_normal::check_reason(&reason) {
        return Err(bad(format!("the reason {problem}")));
    }
    let mut item = {
        let queue = desk.queue.read().map_err(|_| failed(poisoned()))?;
        queue
            .items
            .iter()
            .find(|i| i.candidate.id == request.candidate_id)
            .cloned()
            .ok_or_else(|| {
                (
                    StatusCode::NOT_FOUND,
                    format!("candidate {} is not on this desk", request.candidate_id),
                )
            })?
    };
    // A `siuo run` may have released it since the desk started.
    item.released = queue::released_as(&desk.curated)
        .map_err(failed)?
        .remove(&item.candidate.id);
    let candidate = &item.candidate;
    let mut entry = ReviewEntry {
        reviewer,
        recorded: siuo_core::release::timestamp(None).map_err(failed)?,
        candidate_id: candidate.id.clone(),
        run_id: desk.run_id.clone(),
        decision: request.decision,
        reason: reason.clone(),
        before: None,
        after: None,
        revision: None,
        question_id: None,
        resolves: request.resolves,
        line: 0,
    };
    let released = item.released.as_ref();
    let in_release = |what: &str| {
        released.map(|r| {
            (
                StatusCode::CONFLICT,
                format!(
                    "candidate {} is released as question {} in {}: {what}",
                    candidate.id, r.question_id, r.version
                ),
            )
        })
    };
    match request.decision {
        Decision::Approve => {}
        Decision::Reject => {
            if let Some(refused) = in_release("retire it instead of rejecting it") {
                return Err(refused);
            }
            if reason.is_empty() {
                return Err(bad("a rejection needs a reason"));
            }
        }
        Decision::Edit => {
            if let Some(refused) = in_release("retire or relabel it; a released case is not edited")
            {
                return Err(refused);
            }
            let after = request
                .after
                .ok_or_else(|| bad("an edit needs the edited fields (`after`)"))?;
            let after = CaseFields {
                question: after.question.trim().to_owned(),
                safety_warning: after.safety_warning.trim().to_owned(),
                reference_answer: after.reference_answer.trim().to_owned(),
                domain: after.domain.trim().to_owned(),
                subcategory: after.subcategory.trim().to_owned(),
            };
            if after.question.is_empty() {
                return Err(bad("the edited question is empty"));
            }
            for (field, text) in [
                ("question", &after.question),
                ("safety warning", &after.safety_warning),
                ("reference answer", &after.reference_answer),
            ] {
                if let Err(problem) = siuo_core::text_normal::check_text(text) {
                    return Err(bad(format!("the edited {field} {problem}")));
                }
            }
            desk.taxonomy
                .resolve(
                    &ledger::ledger_path(&desk.curated),
                    &format!("the edit of candidate {}", candidate.id),
                    &after.domain,
                    &after.subcategory,
                )
                .map_err(failed)?;
            let before = CaseFields::of(candidate);
            if before == after {
                return Err(bad("nothing was changed: approve the case instead"));
            }
            entry.revision = Some(ledger::revision_id(&candidate.id, &after));
            entry.before = Some(before);
            entry.after = Some(after);
        }
        Decision::Retire | Decision::Relabel => {
            let Some(released) = released else {
                return Err(bad(format!(
                    "candidate {} is not released: approve or reject it",
                    candidate.id
                )));
            };
            if reason.is_empty() {
                return Err(bad(format!("a {} needs a reason", request.decision.name())));
            }
            let project = desk.project().map_err(failed)?;
            let _lock = project.lock().map_err(failed)?;
            let question_id = released.question_id;
            let labels = request.after.as_ref();
            let action = match request.decision {
                Decision::Retire => ActionRequest::Retire {
                    question_id,
                    reason: &reason,
                },
                _ => ActionRequest::Relabel {
                    question_id,
                    domain: labels.map(|a| a.domain.as_str()),
                    subcategory: labels.map(|a| a.subcategory.as_str()),
                    reason: &reason,
                },
            };
            maintainer_action::record_checked(
                &desk.curated,
                &project.taxonomy,
                action,
                entry.recorded.clone(),
            )
            .map_err(failed)?;
            entry.question_id = Some(question_id);
            entry.after = request.after;
        }
    }
    Ledger::append(&desk.curated, &entry).map_err(failed)?;
    let ledger = Ledger::read(&desk.curated).map_err(failed)?;
    let queue = desk.queue.read().map_err(|_| failed(poisoned()))?;
    let verdicts = ledger.verdicts();
    Ok(json!({
        "recorded": entry,
        "item": view(&item, &verdicts, &ledger),
        "progress": Progress::of(&queue.items, &ledger),
        "agreement": Agreement::of(&ledger),
    }))
}

async fn image(
    State(desk): State<Arc<Desk>>,
    headers: HeaderMap,
    uri: Uri,
    UrlPath(path): UrlPath<String>,
) -> Response {
    if let Some(refused) = desk.refuse_read(&headers, &uri) {
        return refused;
    }
    // Only `images/<blake3>.<ext>` of the run's image store.
    let Some((stem, extension)) = path.strip_prefix("images/").and_then(|p| p.split_once('.'))
    else {
        return not_found().await;
    };
    let content_type = match extension {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        _ => return not_found().await,
    };
    if stem.len() != 64 || !stem.bytes().all(|b| b.is_ascii_hexdigit()) {
        return not_found().await;
    }
    // A link in the store may point anywhere: only files really in it are served.
    let store = desk.raw.join("images");
    let inside = match (
        tokio::fs::canonicalize(desk.raw.join(&path)).await,
        tokio::fs::canonicalize(&store).await,
    ) {
        (Ok(file), Ok(store)) => file.starts_with(&store).then_some(file),
        _ => None,
    };
    let Some(file) = inside else {
        return not_found().await;
    };
    match tokio::fs::read(file).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "private, max-age=86400, immutable"),
            ],
            bytes,
        )
            .into_response(),
        Err(_) => not_found().await,
    }
}

async fn report(State(desk): State<Arc<Desk>>, headers: HeaderMap, uri: Uri) -> Response {
    if let Some(refused) = desk.refuse_read(&headers, &uri) {
        return refused;
    }
    let worker = desk.clone();
    let rendered = tokio::task::spawn_blocking(move || -> Result<Option<String>> {
        let project = worker.project()?;
        let Some(latest) = siuo_core::release::list(&project.curated())?.pop() else {
            return Ok(None);
        };
        crate::report::render(&project, &latest, &crate::report::ReportOptions::default()).map(Some)
    })
    .await;
    match rendered {
        Ok(Ok(Some(html))) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
                (header::REFERRER_POLICY, "no-referrer"),
            ],
            html,
        )
            .into_response(),
        Ok(Ok(None)) => refusal(
            StatusCode::NOT_FOUND,
            "there is no release yet: `siuo run` makes one",
        ),
        Ok(Err(error)) => refusal(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
        Err(error) => refusal(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    }
}
