//! `siuo calibrate` on the shipped labeled sets and on bad labels files.

use crate::support::TestProject;

fn entry<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["classifiers"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("no `{id}` entry in {report}"))
}

const HARM_CATEGORIES: [&str; 8] = [
    "self-harm",
    "violence",
    "weapons",
    "drugs",
    "sexual",
    "hate",
    "crime",
    "poison",
];

/// Tests that load the embedded model files (`.models/`, fetched by `siuo models fetch`).
mod models {
    use super::*;

    /// The shipped images are all benign: the structural check passes them
    /// all; the models pass every unedited photograph and flag at most the two
    /// red-tinted edits the README reports. Recall cannot be measured.
    #[test]
    #[ignore = "loads the embedded models: ./justw test-models, part of ./justw test"]
    fn shipped_image_set_false_positives_of_each_image_classifier() {
        let project = TestProject::shipped();
        project.write(
            "siuo.yaml",
            "check:\n  image:\n    - type: validator\n    - type: image-safety\n    - type: open-nsfw\n",
        );
        let report = project
            .run(&[
                "calibrate",
                "--labels",
                "prompts/calibration/images.jsonl",
                "--json",
            ])
            .success()
            .json();
        for id in ["validator", "image-safety", "open-nsfw", "image-check"] {
            let classifier = entry(&report, id);
            assert_eq!(classifier["modality"], "image");
            assert!(classifier["n"].as_u64() >= Some(130), "{id}");
            assert_eq!(
                classifier["per_category"]["benign-photo"]["flagged"], 0,
                "{id}"
            );
            assert!(
                classifier["flagged"].as_u64() <= Some(2),
                "{id}: {classifier}"
            );
            assert_eq!(
                classifier["recall"],
                serde_json::Value::Null,
                "no unsafe images to recall"
            );
        }
        assert_eq!(entry(&report, "validator")["flagged"], 0);
    }

    #[test]
    #[ignore = "loads the embedded models: ./justw test-models, part of ./justw test"]
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

    /// The embedded model on questions it never saw (the shipped set shares no
    /// line with its exemplar bank): explicit harm fails, benign SIUO-style
    /// questions pass. The bounds are the figures the README reports.
    #[test]
    #[ignore = "loads the embedded models: ./justw test-models, part of ./justw test"]
    fn shipped_text_set_real_model_passes_benign_and_fails_explicit_harm() {
        let project = TestProject::shipped();
        let report = project.run(&["calibrate", "--json"]).success().json();
        let minilm = entry(&report, "minilm");
        assert_eq!(minilm["modality"], "text");
        assert!(minilm["n"].as_u64() >= Some(200));
        assert!(minilm["per_category"]["siuo-benign"]["n"].as_u64() >= Some(100));
        let combined = entry(&report, "text-check");
        let recall = combined["recall"].as_f64().expect("recall");
        let false_positive_rate = combined["false_positive_rate"].as_f64().expect("fpr");
        assert!(recall >= 0.95, "explicit harm caught: {recall}");
        assert!(
            false_positive_rate <= 0.05,
            "benign flagged: {false_positive_rate}"
        );
        assert!(combined["auroc"].as_f64() >= Some(0.99), "{combined}");
        for category in HARM_CATEGORIES {
            let per = &combined["per_category"][category];
            assert!(per["unsafe_examples"].as_u64() >= Some(10), "{category}");
            assert!(per["recall"].as_f64() >= Some(0.9), "{category}: {per}");
        }
        // The combined decision (any-unsafe) flags at least what each flags.
        let lexicon = entry(&report, "lexicon");
        assert_eq!(lexicon["false_positive_rate"], 0.0);
        for classifier in [lexicon, minilm] {
            assert!(combined["flagged"].as_u64() >= classifier["flagged"].as_u64());
        }
        assert!(combined["items_per_second"].as_f64() > Some(0.0));
    }

    /// A calibration is measured once per set of inputs: a rerun shows the
    /// recorded figures, a changed labels file is measured again, and
    /// `--errors` lists what the combined decision got wrong.
    #[test]
    #[ignore = "loads the embedded models: ./justw test-models, part of ./justw test"]
    fn unchanged_calibrations_are_reused_and_errors_are_listed() {
        let project = TestProject::shipped();
        project.write(
            "labels.jsonl",
            "{\"text\": \"Is this the right bus for the museum?\", \"label\": \"safe\"}\n{\"text\": \"What time does the bakery open?\", \"label\": \"unsafe\", \"category\": \"crime\"}\n",
        );
        let first = project
            .run(&["calibrate", "--labels", "labels.jsonl", "--json"])
            .success()
            .json();
        assert_eq!(first["reused"], false);
        let again = project
            .run(&["calibrate", "--labels", "labels.jsonl", "--json"])
            .success()
            .json();
        assert_eq!(again["reused"], true);
        assert_eq!(again["classifiers"], first["classifiers"]);
        let forced = project
            .run(&["calibrate", "--labels", "labels.jsonl", "--force", "--json"])
            .success()
            .json();
        assert_eq!(forced["reused"], false);

        // The mislabeled harmless question is passed: an error of the check.
        let errors = project
            .run(&["calibrate", "--labels", "labels.jsonl", "--errors"])
            .success();
        assert!(
            errors
                .stdout
                .contains("misclassified by the combined decision (1):"),
            "{}",
            errors.stdout
        );
        assert!(
            errors
                .stdout
                .contains("\"What time does the bakery open?\""),
            "{}",
            errors.stdout
        );

        let labels = project.read("labels.jsonl");
        project.write("labels.jsonl", labels.replace("museum", "harbour"));
        let changed = project
            .run(&["calibrate", "--labels", "labels.jsonl", "--json"])
            .success()
            .json();
        assert_eq!(changed["reused"], false);
    }

    /// The check stage's policy is what calibrate measures: with the lexicon
    /// alone, the combined decision is exactly the lexicon's.
    #[test]
    #[ignore = "loads the embedded models: ./justw test-models, part of ./justw test"]
    fn with_one_classifier_the_combined_decision_is_that_classifier() {
        let project = TestProject::shipped();
        project.write(
            "siuo.yaml",
            "check:\n  text:\n    - type: lexicon\n      path: prompts/lexicon.yaml\n",
        );
        let report = project.run(&["calibrate", "--json"]).success().json();
        let lexicon = entry(&report, "lexicon");
        assert_eq!(lexicon["per_category"]["siuo-benign"]["flagged"], 0);
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
}
