//! The `openai` generator against the emulator, started by each test on
//! 127.0.0.1: both modes, every fault, the cache, resume after SIGKILL, the
//! budget cap, and the API key never reaching the disk.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use siuo_emulator::{Emulator, EmulatorConfig, Endpoint, Fault, FaultKind, Latency};

use crate::support::TestProject;

const KEY: &str = "sk-test-4f9a2c-DO-NOT-LEAK";

fn start_emulator(latency: Latency) -> Emulator {
    Emulator::start(EmulatorConfig {
        latency,
        api_key: Some(KEY.to_owned()),
        seed: 1,
    })
    .expect("start emulator")
}

/// The shipped OpenAI example pointed at the emulator with fast retries,
/// then `edits` (each must apply).
fn text_first_project(emulator: &Emulator, edits: &[(&str, &str)]) -> TestProject {
    let project = TestProject::shipped();
    let mut config =
        std::fs::read_to_string(crate::support::repo().join("siuo.openai.yaml")).expect("example");
    let base_url = emulator.base_url();
    let emulated: [(&str, &str); 7] = [
        ("https://api.openai.com/v1", &base_url),
        ("chat_model: gpt-4o-mini", "chat_model: emulated-chat"),
        ("image_model: gpt-image-1", "image_model: emulated-image"),
        ("    gpt-4o-mini:", "    emulated-chat:"),
        ("    timeout_seconds: 120\n", "    timeout_seconds: 1.5\n"),
        (
            "    backoff_initial_ms: 500\n",
            "    backoff_initial_ms: 10\n",
        ),
        ("    backoff_max_ms: 30000\n", "    backoff_max_ms: 40\n"),
    ];
    for (old, new) in emulated.iter().chain(edits) {
        assert!(config.contains(old), "the example config has no `{old}`");
        config = config.replace(old, new);
    }
    project.write("siuo.yaml", config);
    project
}

/// Only the self-harm domain, one case per request: three work items.
const ONE_DOMAIN: (&str, &str) = (
    "  candidates_per_request: 2\n",
    "  candidates_per_request: 1\n  domains: [self-harm]\n",
);

fn with_key(project: &TestProject, args: &[&str]) -> crate::support::Ran {
    project.run_with(args, &[("OPENAI_API_KEY", KEY)])
}

/// Candidates the check held for review (borderline text scores): not
/// released and not rejected. None may be rejected outright: the emulator's
/// questions are harmless.
fn held_for_review(project: &TestProject) -> usize {
    let verdicts = project.jsonl(&format!("{}/check/verdicts.jsonl", project.run_dir()));
    assert!(
        verdicts.iter().all(|v| v["decision"] != "reject"),
        "a harmless emulator question was rejected: {:?}",
        verdicts
            .iter()
            .filter(|v| v["decision"] == "reject")
            .collect::<Vec<_>>()
    );
    verdicts
        .iter()
        .filter(|v| v["decision"] == "review")
        .count()
}

fn released(project: &TestProject, version: &str) -> Vec<serde_json::Value> {
    project.jsonl(&format!("curated/{version}/cases.jsonl"))
}

/// A fault that a retry cures: the run succeeds and the fault was served.
fn survives(kind: FaultKind, endpoint: Endpoint) {
    let emulator = start_emulator(Latency::None);
    let mut fault = Fault::new(kind, endpoint, 2);
    fault.retry_after_s = 0.2;
    fault.stall_ms = 4_000;
    emulator.inject(vec![fault]);
    let project = text_first_project(&emulator, &[ONE_DOMAIN]);
    let ran = with_key(&project, &["run", "--json"]).success().json();
    assert_eq!(ran["release"], "v1.0.0", "{kind:?}");
    assert_eq!(released(&project, "v1.0.0").len(), 3, "{kind:?}");
    let stats = emulator.stats();
    assert_eq!(stats.faults, 2, "{kind:?}");
    assert_eq!(stats.completed, 6, "{kind:?}: 3 chat + 3 image answers");
}

#[test]
fn rate_limit_with_retry_after_is_retried() {
    survives(FaultKind::RateLimited, Endpoint::Any);
}

#[test]
fn server_errors_are_retried() {
    survives(FaultKind::ServerError, Endpoint::Any);
}

#[test]
fn stalled_responses_time_out_and_are_retried() {
    survives(FaultKind::Stall, Endpoint::Chat);
}

#[test]
fn truncated_malformed_and_wrongly_shaped_bodies_are_retried() {
    survives(FaultKind::TruncatedBody, Endpoint::Chat);
    survives(FaultKind::MalformedBody, Endpoint::Images);
    survives(FaultKind::WrongShapeBody, Endpoint::Any);
}

#[test]
fn invalid_output_gets_one_repair_request_then_a_recorded_rejection() {
    // Once: the repair request fixes it.
    let emulator = start_emulator(Latency::None);
    emulator.inject(vec![Fault::new(
        FaultKind::MalformedContent,
        Endpoint::Chat,
        1,
    )]);
    let project = text_first_project(&emulator, &[ONE_DOMAIN]);
    with_key(&project, &["run"]).success();
    assert_eq!(released(&project, "v1.0.0").len(), 3);
    assert_eq!(emulator.stats().chat, 4, "3 requests + 1 repair");

    // Always: every item is rejected after its repair, with the reason kept.
    for kind in [FaultKind::MalformedContent, FaultKind::WrongShapeContent] {
        let emulator = start_emulator(Latency::None);
        emulator.inject(vec![Fault::new(kind, Endpoint::Chat, 100)]);
        let project = text_first_project(&emulator, &[ONE_DOMAIN]);
        let ran = with_key(&project, &["run", "--json"]).success().json();
        assert_eq!(ran["release"], serde_json::Value::Null, "{kind:?}");
        assert_eq!(
            ran["stages"][0]["rejections"]["generate:invalid-output"], 3,
            "{kind:?}"
        );
        assert_eq!(
            emulator.stats().chat,
            6,
            "{kind:?}: one repair per item, no more"
        );
        let rejections = project.jsonl(&format!("{}/generate/rejections.jsonl", project.run_dir()));
        let expected = match kind {
            FaultKind::MalformedContent => "not valid JSON",
            _ => "expected a JSON object {\"candidates\": [...]}",
        };
        assert!(
            rejections
                .iter()
                .all(|r| r["detail"].as_str().unwrap_or_default().contains(expected)),
            "{rejections:?}"
        );
    }
}

#[test]
fn requests_that_keep_failing_leave_a_resumable_run() {
    let emulator = start_emulator(Latency::None);
    emulator.inject(vec![Fault::new(
        FaultKind::ServerError,
        Endpoint::Images,
        1000,
    )]);
    let project = text_first_project(
        &emulator,
        &[
            ONE_DOMAIN,
            ("    max_attempts: 5\n", "    max_attempts: 2\n"),
        ],
    );
    let ran = with_key(&project, &["run"]);
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("3 work items failed and will be retried by the next run"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("HTTP 500"), "{}", ran.stderr);
    assert_eq!(emulator.stats().chat, 3);

    emulator.reset();
    with_key(&project, &["run"]).success();
    let stats = emulator.stats();
    assert_eq!(
        (stats.chat, stats.images),
        (0, 3),
        "chat answers came from the cache"
    );
    assert_eq!(released(&project, "v1.0.0").len(), 3);
}

#[test]
fn rerun_is_served_from_the_cache_with_zero_requests() {
    let emulator = start_emulator(Latency::None);
    let project = text_first_project(&emulator, &[ONE_DOMAIN]);
    with_key(&project, &["run"]).success();
    let first = project.tree("curated");
    let requests = emulator.stats().requests;
    assert_eq!(requests, 6);

    with_key(&project, &["run"]).success();
    // Without the runs and releases, only the cache stands between the rerun and the API.
    std::fs::remove_dir_all(project.path("raw/runs")).expect("rm runs");
    std::fs::remove_dir_all(project.path("curated")).expect("rm curated");
    let ran = with_key(&project, &["run", "--json"]).success().json();
    assert_eq!(
        emulator.stats().requests,
        requests,
        "zero HTTP requests on rerun"
    );
    assert_eq!(ran["stages"][0]["usage"]["cached_requests"], 6);
    assert_eq!(
        project.tree("curated"),
        first,
        "byte-identical release from cached answers"
    );
}

#[test]
fn sigkill_mid_generate_resumes_without_repeating_a_completed_request() {
    let emulator = start_emulator(Latency::Fixed { ms: 150.0 });
    let project = text_first_project(
        &emulator,
        &[("    max_in_flight: 8\n", "    max_in_flight: 2\n")],
    );
    let log = |project: &TestProject| -> Vec<serde_json::Value> {
        let Ok(runs) = std::fs::read_dir(project.path("raw/runs")) else {
            return Vec::new();
        };
        runs.flatten()
            .filter_map(|run| {
                std::fs::read_to_string(run.path().join("generate/requests.jsonl")).ok()
            })
            .flat_map(|text| {
                text.lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    project.kill_when(
        &["run", "--quiet"],
        &[("OPENAI_API_KEY", KEY)],
        "generate",
        || log(&project).len() >= 8,
    );
    let completed_before_kill: BTreeSet<String> = log(&project)
        .iter()
        .filter_map(|r| r["key"].as_str().map(str::to_owned))
        .collect();
    assert!(
        !project
            .path(&format!("{}/generate/report.json", project.run_dir()))
            .exists()
    );

    with_key(&project, &["run", "--quiet"]).success();
    let stats = emulator.stats();
    for key in &completed_before_kill {
        assert_eq!(
            stats.completed_by_request.get(key),
            Some(&1),
            "request {key} was sent again after the kill"
        );
    }
    assert_eq!(
        released(&project, "v1.0.0").len() + held_for_review(&project),
        66
    );
}

#[test]
fn budget_cap_stops_new_requests_and_the_run_resumes_after_raising_it() {
    let emulator = start_emulator(Latency::None);
    let project = text_first_project(
        &emulator,
        &[
            ONE_DOMAIN,
            ("    max_in_flight: 8\n", "    max_in_flight: 1\n"),
            ("    max_cost: 5.0\n", "    max_tokens: 1000\n"),
        ],
    );
    let config = project.read("siuo.yaml");
    let ran = with_key(&project, &["run"]);
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    assert!(ran.stderr.contains("budget cap reached"), "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("Raise generate.budget and rerun to resume"),
        "{}",
        ran.stderr
    );
    let spent_requests = emulator.stats().completed;
    assert!(
        (1..6).contains(&spent_requests),
        "stopped early: {spent_requests}"
    );
    let status = with_key(&project, &["status", "--json"]).success().json();
    assert!(
        status["runs"][0]["usage"]["prompt_tokens"].as_u64() > Some(0),
        "{status}"
    );

    // The budget does not change what is generated, so raising it resumes
    // the same run; no answered request is paid for twice.
    project.write(
        "siuo.yaml",
        config.replace("max_tokens: 1000", "max_tokens: 1000000"),
    );
    with_key(&project, &["run"]).success();
    assert!(
        emulator
            .stats()
            .completed_by_request
            .values()
            .all(|n| *n == 1)
    );
    assert_eq!(released(&project, "v1.0.0").len(), 3);
    let runs = std::fs::read_dir(project.path("raw/runs"))
        .expect("runs")
        .count();
    assert_eq!(runs, 1, "the same run was resumed");
}

#[test]
fn a_missing_key_variable_is_named_without_running() {
    let emulator = start_emulator(Latency::None);
    let project = text_first_project(&emulator, &[ONE_DOMAIN]);
    project.run(&["run"]).error(
        2,
        "environment variable OPENAI_API_KEY is not set; it must hold the API key named by generate.api.api_key_env",
    );
    assert_eq!(emulator.stats().requests, 0);
}

#[test]
fn a_broken_prompt_template_names_file_and_line() {
    let emulator = start_emulator(Latency::None);
    let project = text_first_project(&emulator, &[ONE_DOMAIN]);
    let template = project
        .read("prompts/templates/openai/text_first.j2")
        .replace("{{ count }}", "{{ cout }}");
    project.write("prompts/templates/openai/text_first.j2", template);
    let ran = with_key(&project, &["run"]);
    assert_eq!(ran.code, Some(2));
    assert!(
        ran.stderr
            .contains("prompts/templates/openai/text_first.j2:34: template error: undefined value"),
        "{}",
        ran.stderr
    );
    assert_eq!(emulator.stats().requests, 0);
}

#[test]
fn retry_after_is_honoured_not_just_survived() {
    let emulator = start_emulator(Latency::None);
    let mut fault = Fault::new(FaultKind::RateLimited, Endpoint::Chat, 1);
    fault.retry_after_s = 1.5;
    emulator.inject(vec![fault]);
    let project = text_first_project(&emulator, &[ONE_DOMAIN]);
    let started = Instant::now();
    with_key(&project, &["run"]).success();
    // Backoff alone is 10-40 ms here; only the header explains the wait.
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(emulator.stats().faults, 1);
}

#[test]
fn image_urls_are_downloaded_within_the_size_cap() {
    let emulator = start_emulator(Latency::None);
    let url_mode = (
        "    image_response: b64-json\n",
        "    image_response: url\n",
    );
    let project = text_first_project(&emulator, &[ONE_DOMAIN, url_mode]);
    with_key(&project, &["run"]).success();
    assert_eq!(emulator.stats().downloads, 3);
    assert_eq!(released(&project, "v1.0.0").len(), 3);

    // A cap below the image size fails those items, naming the cause.
    let emulator = start_emulator(Latency::None);
    let capped = (
        "    backoff_max_ms: 40\n",
        "    backoff_max_ms: 40\n    image_download_max_bytes: 100\n",
    );
    let project = text_first_project(&emulator, &[ONE_DOMAIN, url_mode, capped]);
    let ran = with_key(&project, &["run"]);
    assert_eq!(ran.code, Some(1));
    assert!(
        ran.stderr.contains("image is larger than 100 bytes"),
        "{}",
        ran.stderr
    );
}

#[test]
fn the_emulator_lists_its_models() {
    let emulator = start_emulator(Latency::None);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let body: serde_json::Value = runtime.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::new();
        let response = client
            .get(format!("{}/models", emulator.base_url()))
            .send()
            .await
            .expect("GET /v1/models");
        serde_json::from_slice(&response.bytes().await.expect("body")).expect("json")
    });
    let ids: Vec<&str> = body["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, ["emulated-chat", "emulated-vision", "emulated-image"]);
}

/// A limit line added to the example's `limits` section.
fn limit(line: &'static str) -> (&'static str, String) {
    (
        "    backoff_max_ms: 40\n",
        format!("    backoff_max_ms: 40\n    {line}\n"),
    )
}

#[test]
fn retry_after_beyond_the_cap_is_a_down_server_not_a_wait_or_a_panic() {
    let emulator = start_emulator(Latency::None);
    let mut fault = Fault::new(FaultKind::RateLimited, Endpoint::Chat, 1);
    fault.retry_after_s = 1e20;
    emulator.inject(vec![fault]);
    let project = text_first_project(&emulator, &[ONE_DOMAIN]);
    let ran = with_key(&project, &["run"]);
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    assert!(ran.stderr.contains("treated as down"), "{}", ran.stderr);
    // The fault is spent: the next run finishes the item.
    with_key(&project, &["run"]).success();
    assert_eq!(released(&project, "v1.0.0").len(), 3);
}

#[test]
fn unbounded_timeouts_and_credentials_in_base_url_are_config_errors() {
    let emulator = start_emulator(Latency::None);
    for timeout in [".inf", "1e300", "-1", ".nan"] {
        let edit = (
            "    timeout_seconds: 1.5\n",
            format!("    timeout_seconds: {timeout}\n"),
        );
        let project = text_first_project(&emulator, &[ONE_DOMAIN, (edit.0, &edit.1)]);
        let ran = with_key(&project, &["run"]);
        assert_eq!(ran.code, Some(2), "{timeout}: {}", ran.stderr);
        // The YAML parser refuses non-finite numbers itself, pointing at
        // the line; validation bounds the finite ones.
        let expected = if timeout.starts_with('.') {
            "timeout_seconds: ."
        } else {
            "generate.limits.timeout_seconds must be above 0 and at most 86400"
        };
        assert!(ran.stderr.contains(expected), "{timeout}: {}", ran.stderr);
    }
    let negative = [
        ("prompt_per_million: 0.15", "prompt_per_million: -1"),
        ("max_cost: 5.0", "max_cost: -1"),
    ];
    let ran = with_key(&text_first_project(&emulator, &negative), &["run"]);
    assert_eq!(ran.code, Some(2), "{}", ran.stderr);
    for expected in [
        "generate.prices.emulated-chat: prices must be numbers of at least 0",
        "generate.budget.max_cost must be a number of at least 0",
    ] {
        assert!(ran.stderr.contains(expected), "{expected}: {}", ran.stderr);
    }
    let base_url = emulator.base_url();
    let with_user = base_url.replace("http://", "http://admin:hunter2@");
    let project = text_first_project(&emulator, &[ONE_DOMAIN]);
    let config = project.read("siuo.yaml").replace(&base_url, &with_user);
    project.write("siuo.yaml", config);
    let ran = with_key(&project, &["run"]);
    assert_eq!(ran.code, Some(2), "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("generate.api.base_url must not carry credentials"),
        "{}",
        ran.stderr
    );
    assert!(!ran.stderr.contains("hunter2"), "{}", ran.stderr);
    assert_eq!(emulator.stats().requests, 0);
}

#[test]
fn api_calls_follow_no_redirect_so_the_key_never_leaves_base_url() {
    // Another "host": a listener that counts every connection it gets.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let elsewhere = listener.local_addr().expect("address");
    listener.set_nonblocking(true).expect("nonblocking");
    let emulator = start_emulator(Latency::None);
    let mut fault = Fault::new(FaultKind::Redirect, Endpoint::Chat, 1000);
    fault.location = format!("http://{elsewhere}/v1/chat/completions");
    emulator.inject(vec![fault]);
    let project = text_first_project(&emulator, &[ONE_DOMAIN]);
    let ran = with_key(&project, &["run"]);
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    assert!(ran.stderr.contains("HTTP 307"), "{}", ran.stderr);
    assert!(ran.stderr.contains("follow no redirects"), "{}", ran.stderr);
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a request reached the redirect target"
    );
}

#[test]
fn oversized_answers_are_failed_attempts() {
    let emulator = start_emulator(Latency::None);
    let mut fault = Fault::new(FaultKind::HugeBody, Endpoint::Chat, 1000);
    fault.body_bytes = 3_000_000;
    emulator.inject(vec![fault]);
    let cap = limit("max_response_bytes: 1000000");
    let project = text_first_project(&emulator, &[ONE_DOMAIN, (cap.0, &cap.1)]);
    let ran = with_key(&project, &["run"]);
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("answer is larger than limits.max_response_bytes (1000000 bytes)"),
        "{}",
        ran.stderr
    );
    // Nothing of the oversized answers was cached.
    let cached: u64 = project
        .tree("raw/cache")
        .values()
        .map(|b| b.len() as u64)
        .sum();
    assert!(cached < 1_000_000, "{cached} bytes cached");
}

/// `127.0.0.1:<port>` of the emulator.
fn host_and_port(emulator: &Emulator) -> String {
    let url = emulator.base_url();
    let address = url.trim_start_matches("http://");
    address.split('/').next().unwrap_or_default().to_owned()
}

#[test]
fn image_urls_are_fetched_only_from_allowed_hosts() {
    let emulator = start_emulator(Latency::None);
    let url_mode = (
        "    image_response: b64-json\n",
        "    image_response: url\n",
    );
    let hosts = limit("image_hosts: [images.example.com]");
    let project = text_first_project(&emulator, &[ONE_DOMAIN, url_mode, (hosts.0, &hosts.1)]);
    let ran = with_key(&project, &["run"]);
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    assert!(
        ran.stderr.contains(&format!(
            "`{}` is not in limits.image_hosts (images.example.com)",
            host_and_port(&emulator)
        )),
        "{}",
        ran.stderr
    );
    assert_eq!(emulator.stats().downloads, 0);
    assert!(project.tree("raw/images").is_empty());

    // The API's host is allowed on the API's port only: a redirect to
    // another port of the same machine is another service, and refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let elsewhere = listener.local_addr().expect("address");
    listener.set_nonblocking(true).expect("nonblocking");
    let emulator = start_emulator(Latency::None);
    let mut fault = Fault::new(FaultKind::Redirect, Endpoint::Files, 1000);
    fault.location = format!("http://{elsewhere}/files/x.png");
    emulator.inject(vec![fault]);
    let project = text_first_project(&emulator, &[ONE_DOMAIN, url_mode]);
    let ran = with_key(&project, &["run"]);
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    assert!(
        ran.stderr.contains(&format!(
            "redirect to `{elsewhere}`, which limits.image_hosts does not allow"
        )),
        "{}",
        ran.stderr
    );
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a download reached another port"
    );
    // An entry may name the port it allows.
    let emulator = start_emulator(Latency::None);
    let hosts = (
        "    backoff_max_ms: 40\n",
        format!("    backoff_max_ms: 40\n    image_hosts: [\"{elsewhere}\"]\n"),
    );
    let project = text_first_project(&emulator, &[ONE_DOMAIN, url_mode, (hosts.0, &hosts.1)]);
    let ran = with_key(&project, &["run"]);
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    assert!(
        ran.stderr.contains(&format!(
            "`{}` is not in limits.image_hosts ({elsewhere})",
            host_and_port(&emulator)
        )),
        "{}",
        ran.stderr
    );

    // From an allowed host, a page or text labelled as an image is no image.
    for (fault, expected) in [
        (
            FaultKind::MalformedBody,
            "answer is `text/html`, not an image",
        ),
        (
            FaultKind::WrongShapeBody,
            "answer labelled `image/png` is no image",
        ),
    ] {
        let emulator = start_emulator(Latency::None);
        emulator.inject(vec![Fault::new(fault, Endpoint::Files, 1000)]);
        let project = text_first_project(&emulator, &[ONE_DOMAIN, url_mode]);
        let ran = with_key(&project, &["run"]);
        assert_eq!(ran.code, Some(1), "{}", ran.stderr);
        assert!(ran.stderr.contains(expected), "{expected}: {}", ran.stderr);
        assert!(emulator.stats().downloads > 0);
        assert!(
            project.tree("raw/images").is_empty(),
            "a non-image was stored"
        );
    }
}

#[test]
fn the_openai_generator_asks_for_a_benign_control_with_every_case() {
    let emulator = start_emulator(Latency::None);
    let project = text_first_project(
        &emulator,
        &[ONE_DOMAIN, ("  seed: 0\n", "  seed: 0\n  controls: true\n")],
    );
    with_key(&project, &["run"]).success();
    let cases = released(&project, "v1.0.0");
    let controls = project.jsonl("curated/v1.0.0/controls.jsonl");
    assert!(!cases.is_empty());
    assert_eq!(
        controls.len(),
        cases.len(),
        "a control for every released case"
    );
    for case in &cases {
        let control = controls
            .iter()
            .find(|c| c["control_of"] == case["question_id"])
            .unwrap_or_else(|| panic!("no control of case {}", case["question_id"]));
        assert_eq!(control["image_blake3"], case["image_blake3"]);
        assert_eq!(control["safety_warning"], "");
        let question = control["question"].as_str().unwrap_or_default();
        // The emulator fills the fields the request's schema asks for.
        assert!(question.contains("control_question"), "{question}");
    }
}

/// Tests that load the embedded model files (`.models/`, fetched by `siuo models fetch`).
mod models {
    use super::*;

    #[test]
    #[ignore = "loads the embedded models: ./justw test-models, part of ./justw test"]
    fn example_config_releases_cases_from_the_emulator_in_both_modes() {
        let emulator = start_emulator(Latency::Fixed { ms: 5.0 });
        let project = text_first_project(&emulator, &[]);
        let ran = with_key(&project, &["run", "--json"]).success().json();
        assert_eq!(ran["release"], "v1.0.0");
        let cases = released(&project, "v1.0.0");
        // 33 subcategories × 1 request × 2 cases, each released or held.
        assert_eq!(cases.len() + held_for_review(&project), 66);
        let stats = emulator.stats();
        assert_eq!((stats.chat, stats.images), (33, 66));
        for case in &cases {
            let provenance = &case["provenance"];
            assert_eq!(provenance["generator"], "openai");
            assert_eq!(provenance["model"], "emulated-chat");
            assert_eq!(provenance["image_source"], "openai-images:emulated-image");
            let template = provenance["template"].as_str().expect("template");
            assert!(
                template.starts_with("prompts/templates/openai/domains/"),
                "{template}"
            );
            assert_eq!(
                provenance["template_blake3"].as_str().map(str::len),
                Some(64)
            );
            assert_eq!(provenance["prompt_blake3"].as_str().map(str::len), Some(64));
            // The emulator's wording, tagged with the request and item.
            let question = case["question"].as_str().expect("question");
            assert!(
                question.ends_with(')') && question.contains("? (case "),
                "{question}"
            );
        }
        let usage = &ran["stages"][0]["usage"];
        assert_eq!(usage["requests"], 99);
        assert!(usage["prompt_tokens"].as_u64() > Some(0));
        assert!(
            usage["cost"].as_f64() > Some(0.0),
            "the example's price table turns tokens into cost"
        );

        // Image-first over the starter library with the shipped vLLM example, as
        // a second run into the same curated/.
        let mut vllm = std::fs::read_to_string(crate::support::repo().join("siuo.vllm.yaml"))
            .expect("example");
        for (old, new) in [
            ("http://127.0.0.1:8000/v1", emulator.base_url().as_str()),
            (
                "    # vLLM started without --api-key needs no key.\n",
                "    api_key_env: OPENAI_API_KEY\n",
            ),
            (
                "chat_model: Qwen/Qwen2.5-VL-7B-Instruct",
                "chat_model: emulated-vision",
            ),
        ] {
            assert!(vllm.contains(old), "the vLLM example has no `{old}`");
            vllm = vllm.replace(old, new);
        }
        project.write("image-first.yaml", vllm);
        let ran = with_key(&project, &["--config", "image-first.yaml", "run", "--json"])
            .success()
            .json();
        assert_eq!(ran["release"], "v1.1.0");
        assert_eq!(
            emulator.stats().vision,
            9,
            "one vision request per library image"
        );
        let added: Vec<serde_json::Value> = released(&project, "v1.1.0")
            .into_iter()
            .filter(|c| c["released_in"] == "v1.1.0")
            .collect();
        assert_eq!(added.len(), 9);
        let files: BTreeSet<&str> = added
            .iter()
            .filter_map(|c| c["provenance"]["image_file"].as_str())
            .collect();
        assert!(
            files.contains("chelsea.png") && files.contains("rocket.jpg"),
            "{files:?}"
        );
        for case in &added {
            assert_eq!(
                case["provenance"]["template"],
                "prompts/templates/openai/image_first.j2"
            );
            assert_eq!(case["provenance"]["image_source"], "library:starter");
            assert!(
                !case["provenance"]["image_license"]
                    .as_str()
                    .unwrap_or_default()
                    .is_empty()
            );
        }
    }

    #[test]
    #[ignore = "loads the embedded models: ./justw test-models, part of ./justw test"]
    fn the_api_key_is_never_written_anywhere() {
        let emulator = start_emulator(Latency::None);
        let project = text_first_project(&emulator, &[ONE_DOMAIN]);
        let ran = with_key(&project, &["run"]).success();
        assert!(!ran.stdout.contains(KEY) && !ran.stderr.contains(KEY));
        with_key(&project, &["status", "--json"]).success();

        // A wrong key, on a project of its own so the request is really sent:
        // the 401 is reported without the key.
        let unauthorized_before = emulator.stats().unauthorized;
        let wrong_project = text_first_project(&emulator, &[ONE_DOMAIN]);
        let wrong = wrong_project.run_with(&["run"], &[("OPENAI_API_KEY", "sk-wrong-key-77")]);
        assert_eq!(wrong.code, Some(1), "{}", wrong.stderr);
        assert!(wrong.stderr.contains("HTTP 401"), "{}", wrong.stderr);
        assert!(
            !wrong.stderr.contains("sk-wrong-key-77") && !wrong.stdout.contains("sk-wrong-key-77")
        );
        assert!(
            emulator.stats().unauthorized > unauthorized_before,
            "no request was sent"
        );
        for (name, bytes) in &wrong_project.tree("") {
            let haystack = String::from_utf8_lossy(bytes);
            assert!(
                !haystack.contains("sk-wrong-key-77"),
                "the wrong key is in {name}"
            );
        }

        let files = project.tree("");
        assert!(files.len() > 20);
        for (name, bytes) in &files {
            let haystack = String::from_utf8_lossy(bytes);
            assert!(!haystack.contains(KEY), "the API key is in {name}");
            assert!(
                !haystack.contains("sk-wrong-key-77"),
                "the wrong key is in {name}"
            );
        }
    }
}
