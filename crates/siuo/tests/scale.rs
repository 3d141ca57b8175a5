//! Scale: replicas of one model behind several base URLs (one dies
//! mid-run), the Batch API (a killed run collects its batch instead of
//! paying twice; an expired batch keeps what it answered), and a run
//! sharded over concurrent processes giving the release of one process.

use std::process::Stdio;
use std::time::{Duration, Instant};

use siuo_emulator::batch::BatchBehaviour;
use siuo_emulator::{Emulator, EmulatorConfig, Latency};

use crate::support::{TestProject, assert_same_files};

fn emulator(seed: u64) -> Emulator {
    Emulator::start(EmulatorConfig {
        latency: Latency::Fixed { ms: 5.0 },
        api_key: None,
        seed,
    })
    .expect("start emulator")
}

/// Text-first generation with the given `base_url` value (a URL or a YAML
/// list), the cheap embedded checks, and `extra` config.
fn text_first(project: &TestProject, base_url: &str, generate_extra: &str, extra: &str) {
    project.write(
        "siuo.yaml",
        format!(
            "generate:
  type: openai
  mode: text-first
  api:
    base_url: {base_url}
    chat_model: emulated-chat
    image_model: emulated-image
  limits: {{max_in_flight: 4, max_attempts: 4, timeout_seconds: 5, backoff_initial_ms: 5, backoff_max_ms: 20, eject_after_failures: 2, eject_seconds: 60}}
  requests_per_subcategory: 1
  candidates_per_request: 1
{generate_extra}check:
  text:
    - type: lexicon
      path: prompts/lexicon.yaml
  image:
    - type: validator
{extra}"
        ),
    );
}

fn report(project: &TestProject, stage: &str) -> serde_json::Value {
    let path = format!("{}/{stage}/report.json", project.run_dir());
    serde_json::from_str(&project.read(&path)).expect("report")
}

#[test]
fn replicas_share_the_work_and_a_dying_one_hands_its_work_to_the_other() {
    let a = emulator(1);
    let b = emulator(2);
    let project = TestProject::shipped();
    text_first(
        &project,
        &format!("[{}, {}]", a.base_url(), b.base_url()),
        "",
        "",
    );
    let mut child = project
        .command(&["generate", "--quiet"])
        .env("SIUO_DEBUG_ITEM_DELAY_MS", "40")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn siuo");
    let deadline = Instant::now() + Duration::from_secs(120);
    while b.stats().completed < 8 {
        assert!(Instant::now() < deadline, "replica b never got work");
        assert!(
            child.try_wait().expect("poll").is_none(),
            "siuo ended first"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let served_by_a_before = a.stats().completed;
    // Replica b dies: it stops listening, mid-run.
    let b_served = b.stats().completed;
    drop(b);
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let generated = report(&project, "generate");
    let items = generated["processed"].as_u64().expect("processed");
    // Text-first: a chat and an image request per work item, all answered.
    assert_eq!(generated["kept"].as_u64(), Some(items), "{generated}");
    let a_served = a.stats().completed;
    assert!(a_served > served_by_a_before, "a took over no work");
    assert!(b_served >= 8 && b_served < 2 * items, "b served {b_served}");
    assert!(
        a_served + b_served >= 2 * items,
        "a {a_served} + b {b_served} < {}",
        2 * items
    );
    assert!(
        served_by_a_before >= 4,
        "a had served {served_by_a_before} when b died: the load was not shared"
    );

    // The cache does not know which replica answered: a new server in
    // their place is asked nothing (the new config makes a new run).
    let c = emulator(3);
    text_first(&project, &c.base_url(), "", "");
    project.run(&["generate", "--quiet"]).success();
    assert_eq!(c.stats().requests, 0, "{:?}", c.stats());
}

/// The verify project of `verify.rs`, its jurors sending through batches.
fn batched_jury(emulator: &Emulator) -> TestProject {
    emulator.set_judge_rules(crate::verify::rules());
    let project = crate::verify::project(emulator, "");
    let config = project.read("siuo.yaml");
    assert!(config.contains("limits: {max_in_flight: 2, "));
    project.write(
        "siuo.yaml",
        config.replace(
            "limits: {max_in_flight: 2, ",
            "limits: {batch: {poll_seconds: 0.05, gather_ms: 20}, max_in_flight: 2, ",
        ),
    );
    project
}

#[test]
fn a_killed_run_collects_the_batch_it_submitted_instead_of_paying_twice() {
    let emulator = emulator(4);
    let project = batched_jury(&emulator);
    for stage in ["generate", "check", "dedupe"] {
        project.run(&[stage, "--quiet"]).success();
    }
    emulator.set_batch_behaviour(BatchBehaviour {
        hold: true,
        expire_after: None,
    });
    let verify_dir = project.path(&format!("{}/verify", project.run_dir()));
    let submitted = |juror: &str| {
        std::fs::read_to_string(verify_dir.join(format!("batches-of-requests-{juror}.jsonl")))
            .is_ok_and(|journal| journal.contains("\"submitted\""))
    };
    project.kill_when(
        &["verify", "--quiet"],
        &[],
        "both batches submitted",
        || submitted("alpha") && submitted("beta"),
    );
    let batches = emulator.stats().batches;
    assert_eq!(batches.len(), 2, "one batch per juror: {batches:?}");
    assert!(!verify_dir.join("report.json").exists());

    emulator.set_batch_behaviour(BatchBehaviour::default());
    let ran = project.run(&["verify", "--quiet", "--json"]).success();
    let stats = emulator.stats();
    assert_eq!(stats.batches, batches, "the rerun submitted a batch again");
    assert!(
        stats.completed_by_request.values().all(|n| *n == 1),
        "a request was answered twice: {:?}",
        stats.completed_by_request
    );
    let verified = ran.json();
    assert_eq!(verified["processed"].as_u64(), Some(6), "{verified}");
    // Half price, from the prices of neither juror (none set): cost 0, but
    // every request logged as answered once.
    let journal = std::fs::read_to_string(verify_dir.join("batches-of-requests-alpha.jsonl"))
        .expect("journal");
    assert!(journal.contains("\"collected\""), "{journal}");

    // The same jury asked directly gives the same verdicts.
    let direct_emulator = emulator_with_rules(5);
    let direct = crate::verify::project(&direct_emulator, "");
    for stage in ["generate", "check", "dedupe", "verify"] {
        direct.run(&[stage, "--quiet"]).success();
    }
    assert!(direct_emulator.stats().batches.is_empty());
    let verdicts = |p: &TestProject| p.read(&format!("{}/verify/verdicts.jsonl", p.run_dir()));
    assert_eq!(verdicts(&project), verdicts(&direct));
}

fn emulator_with_rules(seed: u64) -> Emulator {
    let emulator = emulator(seed);
    emulator.set_judge_rules(crate::verify::rules());
    emulator
}

#[test]
fn an_expired_batch_keeps_what_it_answered_and_the_rest_goes_again() {
    let emulator = emulator(6);
    emulator.set_batch_behaviour(BatchBehaviour {
        hold: false,
        expire_after: Some(2),
    });
    let project = TestProject::shipped();
    let url = emulator.base_url();
    let generate = "  domains: [self-harm]\n";
    let batched = |resubmits: u32| {
        text_first(&project, &url, generate, "");
        let config = project.read("siuo.yaml").replace(
            "limits: {max_in_flight: 4,",
            &format!(
                "limits: {{batch: {{poll_seconds: 0.05, gather_ms: 50, resubmits: {resubmits}}}, max_in_flight: 4,"
            ),
        );
        project.write("siuo.yaml", config);
    };
    batched(0);
    let ran = project.run(&["generate", "--quiet"]);
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    for part in ["left it unanswered (batch_expired)", "resubmitted 0 times"] {
        assert!(ran.stderr.contains(part), "{}", ran.stderr);
    }
    let stats = emulator.stats();
    assert_eq!(stats.batches.len(), 1, "{:?}", stats.batches);
    let items = stats.batches[0];
    assert!(
        items > 2,
        "the self-harm domain has more than 2 subcategories"
    );
    let generate_dir = project.path(&format!("{}/generate", project.run_dir()));
    let journal_lines: usize = std::fs::read_dir(&generate_dir)
        .expect("generate dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("journal-"))
        .map(|e| {
            std::fs::read_to_string(e.path())
                .expect("journal")
                .lines()
                .count()
        })
        .sum();
    assert_eq!(journal_lines, 2, "the two answered items are kept");

    // The rerun pays only for what the batch left unanswered; with
    // resubmits allowed, a run that meets expiries finishes by itself.
    batched(5);
    let ran = project.run(&["generate", "--quiet", "--json"]).success();
    let mut expected = vec![items];
    let mut left = items - 2;
    while left > 0 {
        expected.push(left);
        left = left.saturating_sub(2);
    }
    let stats = emulator.stats();
    assert_eq!(stats.batches, expected);
    assert!(
        stats.completed_by_request.values().all(|n| *n == 1),
        "{:?}",
        stats.completed_by_request
    );
    assert_eq!(
        ran.json()["kept"].as_u64(),
        Some(items),
        "every item has its candidate"
    );
}

/// Every stage of `project`, with each per-item stage split over `shards`
/// processes running at once.
fn run_sharded(project: &TestProject, shards: u32) {
    for stage in [
        "generate",
        "check",
        "dedupe",
        "verify",
        "difficulty",
        "export",
    ] {
        let shardable = !matches!(stage, "dedupe" | "export");
        if !shardable {
            project.run(&[stage, "--quiet"]).success();
            continue;
        }
        let children: Vec<_> = (0..shards)
            .map(|index| {
                project
                    .command(&[stage, "--quiet", "--shard", &format!("{index}/{shards}")])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn shard")
            })
            .collect();
        for child in children {
            let output = child.wait_with_output().expect("shard");
            assert!(
                output.status.success(),
                "{stage} shard: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        assert!(
            !project
                .path(&format!("{}/{stage}/report.json", project.run_dir()))
                .exists(),
            "a shard finished {stage} on its own"
        );
        project.run(&["merge", stage, "--quiet"]).success();
    }
}

#[test]
fn shards_in_concurrent_processes_give_the_release_of_one_process() {
    let emulator = emulator_with_rules(7);
    let extra = |project: &TestProject| {
        for entry in std::fs::read_dir(crate::support::repo().join("prompts/eval/siuo"))
            .expect("eval templates")
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            project.write(
                &format!("prompts/eval/siuo/{name}"),
                std::fs::read(entry.path()).expect("template"),
            );
        }
        let config = project.read("siuo.yaml");
        project.write(
            "siuo.yaml",
            format!(
                "{config}difficulty:\n  type: panel\n  targets:\n    - name: t\n      api: {{base_url: \"{url}\", model: emulated-target}}\n  judge:\n    api: {{base_url: \"{url}\", model: siuo-judge}}\n  min_difficulty: 0.0\n  min_failing_models: 0\n",
                url = emulator.base_url()
            ),
        );
    };
    let single = crate::verify::project(&emulator, "");
    extra(&single);
    single.run(&["run", "--quiet"]).success();

    let sharded = crate::verify::project(&emulator, "");
    extra(&sharded);
    // Dedupe compares candidates with each other: it takes no shard.
    let refused = sharded.run(&["dedupe", "--quiet", "--shard", "0/2"]);
    assert_eq!(refused.code, Some(2));
    assert!(
        refused.stderr.contains("unexpected argument '--shard'"),
        "{}",
        refused.stderr
    );
    run_sharded(&sharded, 3);
    let released = single.tree("curated");
    assert!(released.keys().any(|name| name.ends_with("cases.jsonl")));
    assert_same_files(
        &released,
        &sharded.tree("curated"),
        "sharding every stage over 3 processes",
    );
    // Each shard journaled its part apart.
    let verify_dir = sharded.path(&format!("{}/verify", sharded.run_dir()));
    let shard_journals = std::fs::read_dir(verify_dir)
        .expect("verify dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".shard-"))
        .count();
    assert!(shard_journals >= 3, "{shard_journals} shard files");
}
