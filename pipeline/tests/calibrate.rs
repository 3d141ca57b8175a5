//! `siuo calibrate` on the shipped labeled sets and on bad labels files.

use crate::support::TestProject;

fn entry<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["classifiers"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("no `{id}` entry in {report}"))
}

#[test]
fn shipped_text_set_benign_questions_all_pass_and_harm_is_measured_per_category() {
    let project = TestProject::shipped();
    let report = project.run(&["calibrate", "--json"]).success().json();
    let lexicon = entry(&report, "lexicon");
    assert_eq!(lexicon["modality"], "text");
    assert!(lexicon["n"].as_u64() >= Some(200));
    assert!(lexicon["per_category"]["siuo-benign"]["n"].as_u64() >= Some(100));
    // Benign SIUO-style questions must pass the text check: none flagged.
    assert_eq!(lexicon["per_category"]["siuo-benign"]["flagged"], 0);
    assert_eq!(lexicon["false_positive_rate"], 0.0);
    assert!(lexicon["recall"].as_f64() > Some(0.0));
    for category in [
        "self-harm",
        "violence",
        "weapons",
        "drugs",
        "sexual",
        "hate",
        "crime",
        "poison",
    ] {
        assert!(
            lexicon["per_category"][category]["unsafe_examples"].as_u64() >= Some(10),
            "{category}"
        );
    }
    // One classifier: the combined decision is the lexicon's.
    let combined = entry(&report, "text-check");
    for field in [
        "n",
        "flagged",
        "precision",
        "recall",
        "f1",
        "false_positive_rate",
    ] {
        assert_eq!(combined[field], lexicon[field], "{field}");
    }
}

#[test]
fn shipped_image_set_has_no_false_positives() {
    let project = TestProject::shipped();
    let report = project
        .run(&[
            "calibrate",
            "--labels",
            "prompts/calibration/images.jsonl",
            "--json",
        ])
        .success()
        .json();
    for id in ["validator", "image-check"] {
        let classifier = entry(&report, id);
        assert_eq!(classifier["modality"], "image");
        assert_eq!(classifier["false_positive_rate"], 0.0, "{id}");
        assert_eq!(
            classifier["recall"],
            serde_json::Value::Null,
            "no unsafe images to recall"
        );
    }
}

#[test]
fn bad_labels_name_the_file_and_line() {
    let project = TestProject::shipped();
    project.write(
        "labels.jsonl",
        "{\"text\": \"fine\", \"label\": \"safe\"}\n{\"label\": \"unsafe\"}\n",
    );
    let ran = project.run(&["calibrate", "--labels", "labels.jsonl"]);
    assert_eq!(ran.code, Some(2));
    assert_eq!(
        ran.stderr.trim(),
        "error: labels.jsonl: line 2: needs exactly one of `text` and `image`"
    );

    project.write(
        "labels.jsonl",
        "{\"text\": \"fine\", \"label\": \"maybe\"}\n",
    );
    let ran = project.run(&["calibrate", "--labels", "labels.jsonl"]);
    assert_eq!(ran.code, Some(2));
    assert!(
        ran.stderr
            .starts_with("error: labels.jsonl:1: invalid record: unknown variant `maybe`"),
        "{}",
        ran.stderr
    );

    project.write(
        "labels.jsonl",
        "{\"image\": \"../nowhere.png\", \"label\": \"safe\"}\n",
    );
    let ran = project.run(&["calibrate", "--labels", "labels.jsonl"]);
    assert!(
        ran.stderr
            .contains("line 1: image `../nowhere.png` not found"),
        "{}",
        ran.stderr
    );
}
