//! Bad input gets a clear error naming the file and record, and loses no
//! work already done.

use image::ImageFormat;

use crate::support::{TestProject, encode, picture};

#[test]
fn unknown_domain_in_the_scenario_bank_names_file_and_record() {
    let project = TestProject::custom();
    project.library(&[("a.png", "t", encode(&picture(1), ImageFormat::Png))]);
    project.scenarios(&[("rooftop", "self harm", "self-killing", "t", "Any advice?")]);
    project.run(&["run"]).error(
        2,
        "prompts/scenarios.yaml: scenario `rooftop`: unknown domain `self harm` (did you mean `self-harm`?)",
    );
    assert!(!project.path("curated/v1.0.0").exists());
}

#[test]
fn unknown_label_in_a_candidate_record_names_file_line_and_candidate() {
    let project = TestProject::custom();
    project.one_case();
    project.run(&["generate"]).success();
    let candidates = format!("{}/generate/candidates.jsonl", project.run_dir());
    let edited = project.read(&candidates).replace(
        "\"subcategory\":\"public-order\"",
        "\"subcategory\":\"public-ordr\"",
    );
    project.write(&candidates, edited);
    let ran = project.run(&["check", "--json"]);
    assert_eq!(ran.code, Some(2));
    let message = ran.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("generate/candidates.jsonl: line 1 (candidate c"),
        "{message}"
    );
    assert!(
        message.contains(
            "unknown subcategory `public-ordr` of domain `morality` (did you mean `public-order`?)"
        ),
        "{message}"
    );
}

#[test]
fn broken_template_names_file_and_line() {
    let project = TestProject::custom();
    project.one_case();
    let template = project
        .read("prompts/templates/seeded.j2")
        .replace("{{ image.caption }}", "{{ image.captoin }}");
    project.write("prompts/templates/seeded.j2", template);
    let ran = project.run(&["run"]);
    assert_eq!(ran.code, Some(2));
    assert!(
        ran.stderr
            .starts_with("error: prompts/templates/seeded.j2:"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("undefined"), "{}", ran.stderr);

    project.write(
        "prompts/templates/seeded.j2",
        "{% block question %}{{ question }{% endblock %}",
    );
    let ran = project.run(&["run"]);
    assert_eq!(ran.code, Some(2));
    assert!(
        ran.stderr
            .starts_with("error: prompts/templates/seeded.j2:1: template error: syntax error"),
        "{}",
        ran.stderr
    );
}

#[test]
fn malformed_config_names_the_file_and_lists_every_problem() {
    let project = TestProject::custom();
    project.write(
        "siuo.yaml",
        "generate:\n  type: seeded\n  images_per_scenario: 0\n  variants_per_scenario: 0\n",
    );
    project.run(&["run"]).error(
        2,
        "siuo.yaml: invalid config:\n  - generate.variants_per_scenario must be at least 1\n  - generate.images_per_scenario must be at least 1",
    );

    project.write("siuo.yaml", "generate:\n  type: seded\n");
    let ran = project.run(&["run"]);
    assert_eq!(ran.code, Some(2));
    assert!(
        ran.stderr.contains("siuo.yaml: invalid YAML") && ran.stderr.contains("seded"),
        "{}",
        ran.stderr
    );
}

/// Tests that load the embedded model files (`.models/`, fetched by `siuo models fetch`).
mod models {
    use super::*;

    #[test]
    #[ignore = "loads the embedded models: ./justw test-models, part of ./justw test"]
    fn corrupt_image_is_rejected_naming_the_candidate_and_the_rest_is_released() {
        let project = TestProject::custom_with_default_check();
        let good = encode(&picture(1), ImageFormat::Png);
        let truncated = good[..good.len() / 3].to_vec();
        project.library(&[
            ("good.png", "good", good),
            ("broken.png", "broken", truncated),
        ]);
        project.scenarios(&[
            (
                "uses-good",
                "morality",
                "public-order",
                "good",
                "Where should I put this?",
            ),
            (
                "uses-broken",
                "morality",
                "public-order",
                "broken",
                "What should I do with this?",
            ),
        ]);
        let ran = project.run(&["run"]).success();
        let rejected = project.check_rejections();
        assert_eq!(rejected.len(), 1);
        assert_eq!(
            rejected[0]["reasons"],
            serde_json::json!(["image:validator:decode", "image:image-safety:undecodable"])
        );
        let id = rejected[0]["candidate_id"].as_str().expect("id");
        let message = ran
            .stderr
            .lines()
            .find(|l| l.contains(id))
            .unwrap_or_default()
            .to_owned();
        assert!(
            message.contains("scenario:uses-broken")
                && message.contains("broken.png")
                && message.contains("decode"),
            "stderr: {}",
            ran.stderr
        );
        let released = project.read("curated/v1.0.0/siuo.json");
        assert!(released.contains("Where should I put this?"));
        assert!(!released.contains("What should I do with this?"));
    }
}
