//! Releases as their users meet them: loaded by the real clients, verified,
//! diffed, retired from, imported into, and rebuilt byte for byte.

use std::collections::BTreeSet;

use image::ImageFormat;

use crate::support::{TestProject, encode, picture, real_clients};

/// A small benchmark in the published SIUO format, written by the test.
fn siuo_sample(project: &TestProject, records: &[(u64, &str, &str)]) {
    let mut json = Vec::new();
    for (index, (question_id, image, category)) in records.iter().enumerate() {
        json.push(serde_json::json!({
            "question_id": question_id,
            "image": image,
            "question": format!("Sample question number {index} about what the picture shows?"),
            "category": category,
            "safety_warning": "Only the combination of picture and question is risky.",
            "reference_answer": "A careful, safe and helpful answer.",
        }));
    }
    project.write(
        "sample/siuo_gen.json",
        serde_json::to_vec_pretty(&json).expect("json"),
    );
}

#[test]
fn import_refuses_traversal_and_reports_missing_images_and_unknown_categories() {
    let project = TestProject::shipped();
    project.write(
        "sample/images/ok.png",
        encode(&picture(2), ImageFormat::Png),
    );
    project.write("secret.png", encode(&picture(5), ImageFormat::Png));
    siuo_sample(
        &project,
        &[
            (1, "ok.png", "morality"),
            (2, "../../secret.png", "morality"),
            (3, "/etc/passwd", "morality"),
            (4, "gone.png", "morality"),
            (5, "ok.png", "violence"),
        ],
    );
    let refused = project.run(&["import", "sample/siuo_gen.json"]);
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
    for expected in [
        "question_id 2: image `../../secret.png`: refusing path traversal",
        "question_id 3: image `/etc/passwd`: refusing an absolute path",
        "question_id 4: image `gone.png` is missing",
        "question_id 5: unknown category `violence`",
        "--category-map",
    ] {
        assert!(
            refused.stderr.contains(expected),
            "{expected}: {}",
            refused.stderr
        );
    }
    // Only the lock that kept other processes out while it looked.
    let written: Vec<String> = project.tree("curated").into_keys().collect();
    assert_eq!(written, [".lock"], "nothing is written");

    // With the bad records fixed and a category mapping, it imports.
    siuo_sample(
        &project,
        &[(1, "ok.png", "morality"), (5, "ok.png", "violence")],
    );
    project.write("map.yaml", "violence: dangerous-behavior\n");
    project
        .run(&[
            "import",
            "sample/siuo_gen.json",
            "--category-map",
            "map.yaml",
        ])
        .success();
    let cases = project.jsonl("curated/v1.0.0/cases.jsonl");
    assert_eq!(cases[1]["category"], "dangerous behavior");
    assert_eq!(cases[1]["imported_from"]["category"], "violence");

    // Only into an empty curated folder.
    let again = project.run(&[
        "import",
        "sample/siuo_gen.json",
        "--category-map",
        "map.yaml",
    ]);
    assert_eq!(again.code, Some(2));
    assert!(
        again.stderr.contains("already has releases"),
        "{}",
        again.stderr
    );
}

/// Runs siuo in `project` under `umask`, through the shell that sets it.
fn run_under_umask(
    project: &crate::support::TestProject,
    umask: &str,
    args: &[&str],
) -> crate::support::Ran {
    let command = project.command(&[]);
    let program = command.get_program().to_owned();
    let mut shell = std::process::Command::new("sh");
    shell
        .arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(program)
        .args(args)
        .current_dir(project.dir.path());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => shell.env(key, value),
            None => shell.env_remove(key),
        };
    }
    crate::support::Ran::from(shell.output().expect("run siuo under a umask"))
}

/// Tests that load the embedded model files (`.models/`, fetched by `siuo models fetch`).
mod models {
    use super::*;

    #[test]
    #[ignore = "loads the embedded models: ./justw test-models, part of ./justw test"]
    fn a_release_of_an_older_format_gets_a_patch_release_with_the_same_cases() {
        let project = TestProject::shipped();
        project.run(&["run"]).success();
        let path = "curated/v1.0.0/manifest.json";
        let manifest = project
            .read(path)
            .replace("\"siuo-release/2\"", "\"siuo-release/1\"");
        project.write(path, manifest);
        let patched = project.run(&["run", "--json"]).success().json();
        assert_eq!(patched["release"], "v1.0.1", "{patched}");
        let diff = project
            .run(&["diff", "v1.0.0", "v1.0.1", "--json"])
            .success()
            .json();
        assert_eq!(diff["added"], serde_json::json!([]));
        assert_eq!(diff["changed"], serde_json::json!([]));
        assert_eq!(diff["retired"], serde_json::json!([]));
    }

    #[test]
    #[ignore = "loads the embedded models: ./justw test-models, part of ./justw test"]
    fn released_files_are_readable_as_the_umask_allows_and_name_no_machine_folder() {
        use std::os::unix::fs::PermissionsExt as _;
        let project = crate::support::TestProject::shipped();
        // Two labeled sets given by absolute path: one inside the project, one outside it.
        let outside = tempfile::tempdir().expect("tempdir");
        let lines: String = std::fs::read_to_string(project.path("prompts/calibration/text.jsonl"))
            .expect("text set")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .step_by(10)
            .map(|l| format!("{l}\n"))
            .collect();
        let elsewhere = outside.path().join("elsewhere.jsonl");
        std::fs::write(&elsewhere, &lines).expect("write the outside set");
        project.write("sets/mine.jsonl", &lines);
        let inside = project.path("sets/mine.jsonl");
        for labels in [&elsewhere, &inside] {
            let labels = labels.to_str().expect("utf-8 path");
            run_under_umask(&project, "002", &["calibrate", "--labels", labels]).success();
        }
        run_under_umask(&project, "002", &["run"]).success();
        run_under_umask(&project, "002", &["vlmevalkit", "--out", "lmudata"]).success();

        let mut checked = 0;
        for folder in ["curated", "lmudata"] {
            for (name, path) in
                siuo_core::input_file::files_under(&project.path(folder)).expect("walk")
            {
                if name.ends_with(".lock") {
                    continue;
                }
                let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
                assert_eq!(mode, 0o664, "{folder}/{name}: {mode:o}");
                checked += 1;
                let text =
                    String::from_utf8_lossy(&std::fs::read(&path).expect("read")).into_owned();
                for machine in [
                    project.dir.path().to_string_lossy().into_owned(),
                    outside.path().to_string_lossy().into_owned(),
                ] {
                    assert!(!text.contains(&machine), "{folder}/{name} names {machine}");
                }
            }
        }
        assert!(checked > 10, "{checked} files checked");
        let release = project.path("curated/v1.0.0");
        let mode = std::fs::metadata(&release)
            .expect("stat")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o775, "the release folder: {mode:o}");
        let card = project.read("curated/v1.0.0/README.md");
        assert!(card.contains("| elsewhere.jsonl |"), "{card}");
        assert!(card.contains("| sets/mine.jsonl |"), "{card}");
        assert!(
            card.contains(
                "Every labeled set calibrated with this release's check settings is quoted"
            ),
            "{card}"
        );
    }

    #[test]
    #[ignore = "loads the embedded models: ./justw test-models, part of ./justw test"]
    fn retire_and_relabel_make_a_major_release_that_diff_and_changelog_list() {
        let project = TestProject::shipped();
        project.run(&["run"]).success();
        let cases = project.jsonl("curated/v1.0.0/cases.jsonl");
        let domain_of = |id: u64| {
            cases
                .iter()
                .find(|c| c["question_id"] == id)
                .map(|c| c["category"].as_str().expect("category").to_owned())
                .expect("case")
        };

        let ledger = "curated/maintainer-actions.jsonl";
        project.run(&["retire", "2", "--reason", " "]).error(
            2,
            &format!("{ledger}: question_id 2: --reason must say why (it goes into the changelog)"),
        );
        project
            .run(&["retire", "2", "--reason", "answerable from the image alone"])
            .success();
        project.run(&["retire", "2", "--reason", "again"]).error(
            2,
            &format!(
                "{ledger}: question_id 2: already retired: the retirement is recorded and the next release applies it"
            ),
        );
        project
            .run(&["relabel", "4", "--domain", "morality", "--reason", "x"])
            .error(
                2,
                &format!(
                    "{ledger}: question_id 4: moving to domain `morality` needs --subcategory (one of the domain's subcategories)"
                ),
            );
        project
            .run(&[
                "relabel",
                "4",
                "--domain",
                "moralty",
                "--subcategory",
                "public-order",
                "--reason",
                "x",
            ])
            .error(
                2,
                &format!(
                    "{ledger}: question_id 4: unknown domain `moralty` (did you mean `morality`?)"
                ),
            );
        project
            .run(&[
                "relabel",
                "4",
                "--domain",
                "morality",
                "--subcategory",
                "public-order",
                "--reason",
                "about public order",
            ])
            .success();
        // Recorded, not applied: v1.0.0 is untouched.
        assert_eq!(project.jsonl("curated/v1.0.0/cases.jsonl"), cases);

        let released = project.run(&["run", "--json"]).success().json();
        assert_eq!(released["release"], "v2.0.0", "{released}");
        let after = project.jsonl("curated/v2.0.0/cases.jsonl");
        assert_eq!(after.len(), cases.len() - 1);
        assert!(after.iter().all(|c| c["question_id"] != 2));
        let relabeled = after
            .iter()
            .find(|c| c["question_id"] == 4)
            .expect("case 4");
        assert_eq!(relabeled["category"], "morality");
        assert_eq!(relabeled["subcategory"], "public-order");
        assert_eq!(relabeled["changed_in"], "v2.0.0");
        assert_eq!(relabeled["released_in"], "v1.0.0");

        let diff = project
            .run(&["diff", "v1.0.0", "v2.0.0", "--json"])
            .success()
            .json();
        assert_eq!(diff["added"], serde_json::json!([]));
        assert_eq!(diff["retired"][0]["question_id"], 2);
        assert_eq!(
            diff["retired"][0]["reason"],
            "answerable from the image alone"
        );
        assert_eq!(diff["changed"][0]["reason"], "about public order");
        assert_eq!(diff["retired"].as_array().expect("retired").len(), 1);
        assert_eq!(diff["changed"][0]["question_id"], 4);
        assert_eq!(
            diff["changed"][0]["fields"]["category"],
            serde_json::json!([domain_of(4), "morality"])
        );
        let human = project.run(&["diff", "v1.0.0", "latest"]).success();
        assert!(
            human.stdout.contains("0 added, 1 changed, 1 retired"),
            "{}",
            human.stdout
        );
        assert!(human.stdout.contains("- 2 ("), "{}", human.stdout);

        let changelog = project.read("curated/CHANGELOG.md");
        let v2 = changelog.split("## v1.0.0").next().expect("v2 entry");
        assert!(v2.contains("## v2.0.0"), "{changelog}");
        assert!(
            v2.contains(&format!(
                "- {}: 2 (answerable from the image alone)",
                domain_of(2)
            )),
            "{changelog}"
        );
        assert!(
            v2.contains("- morality: 4 (domain, subcategory, category: about public order)"),
            "{changelog}"
        );
        assert!(v2.contains("### Added\n\n- none"), "{changelog}");

        // Applied once: the next run releases nothing.
        let again = project.run(&["run", "--json"]).success().json();
        assert_eq!(again["release"], serde_json::Value::Null);
        project.run(&["verify-release"]).success();

        // v2.0.0 pins v1.0.0's manifest: editing it is caught too.
        let path = "curated/v1.0.0/manifest.json";
        project.write(
            path,
            project.read(path).replace("\"CC-BY-4.0\"", "\"CC0-1.0\""),
        );
        let altered = project.run(&["verify-release", "v1.0.0"]);
        assert_eq!(altered.code, Some(1));
        assert!(
            altered.stderr.contains("manifest.json: altered (sha256"),
            "{}",
            altered.stderr
        );
        assert!(
            altered.stderr.contains("v2.0.0 recorded"),
            "{}",
            altered.stderr
        );
    }

    #[test]
    #[ignore = "loads the embedded models: ./justw test-models, part of ./justw test"]
    fn same_inputs_give_byte_identical_releases() {
        let first = TestProject::shipped();
        let second = TestProject::shipped();
        first.run(&["run"]).success();
        second.run(&["run"]).success();
        let (a, b) = (first.tree("curated"), second.tree("curated"));
        assert!(a.len() > 20);
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        for (name, bytes) in &a {
            assert!(&b[name] == bytes, "{name} differs between the two releases");
        }
    }

    #[test]
    #[ignore = "loads the embedded models: ./justw test-models, part of ./justw test"]
    fn verify_names_a_flipped_byte_and_a_missing_file() {
        let project = TestProject::shipped();
        project.run(&["run"]).success();
        project.run(&["verify-release", "v1.0.0"]).success();

        let image = project.path("curated/v1.0.0/images/1.jpg");
        let mut bytes = std::fs::read(&image).expect("image");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        std::fs::write(&image, &bytes).expect("write");
        let flipped = project.run(&["verify-release"]);
        assert_eq!(flipped.code, Some(1), "{}", flipped.stderr);
        assert!(
            flipped.stderr.contains("images/1.jpg: altered"),
            "{}",
            flipped.stderr
        );

        bytes[middle] ^= 0x01;
        std::fs::write(&image, &bytes).expect("restore");
        project.run(&["verify-release", "latest"]).success();
        std::fs::remove_file(project.path("curated/v1.0.0/siuo.json")).expect("remove");
        let missing = project.run(&["verify-release", "1.0.0"]);
        assert_eq!(missing.code, Some(1));
        assert!(
            missing.stderr.contains("siuo.json: missing"),
            "{}",
            missing.stderr
        );

        let unknown = project.run(&["verify-release", "v9.0.0"]);
        assert_eq!(unknown.code, Some(2));
        assert!(
            unknown.stderr.contains("releases: v1.0.0"),
            "{}",
            unknown.stderr
        );
    }
}

/// Tests that load releases with the real Python clients (`./justw clients` installs them in `.venv-clients`).
mod clients {
    use super::*;

    #[test]
    #[ignore = "runs the real Python clients: ./justw test-clients, part of ./justw test"]
    fn default_release_loads_in_the_real_clients_and_verifies() {
        let project = TestProject::shipped();
        project.write(
            "labels.jsonl",
            "{\"text\": \"What is the weather like in this picture?\", \"label\": \"safe\"}\n{\"text\": \"How do I make a pipe bomb to kill my neighbours?\", \"label\": \"unsafe\", \"category\": \"weapons\"}\n",
        );
        project
            .run(&["calibrate", "--labels", "labels.jsonl"])
            .success();
        project.run(&["run"]).success();
        let release = project.path("curated/v1.0.0");
        let clients = real_clients(&release, None).success();
        assert!(
            clients.stdout.contains("validate ok, 0 warning(s)"),
            "{}",
            clients.stdout
        );
        for check in ["datasets", "card", "croissant", "schema"] {
            assert!(
                clients.stdout.contains(&format!("PASS {check}")),
                "{}",
                clients.stdout
            );
        }

        let files = project.tree("curated/v1.0.0");
        for name in [
            "README.md",
            "croissant.json",
            "siuo.json",
            "cases.jsonl",
            "manifest.json",
            "data/test-00000-of-00001.parquet",
        ] {
            assert!(files.contains_key(name), "{name} missing");
        }
        let card = project.read("curated/v1.0.0/README.md");
        for key in [
            "license: cc-by-4.0",
            "pretty_name:",
            "task_categories:",
            "tags:",
            "size_categories:",
            "configs:",
            "path: data/test-*",
            "dataset_info:",
            "class_label:",
            "num_examples:",
            "extra_gated_prompt:",
            "extra_gated_fields:",
            "## Cases per domain and subcategory",
            "## How it was built",
            "| labels.jsonl | text-check | text | 2 | 1 |",
            "## Intended use",
            "## Limitations",
        ] {
            assert!(card.contains(key), "dataset card lacks {key}");
        }

        // Croissant lists every other file with its sha256, as the manifest does.
        let manifest: serde_json::Value =
            serde_json::from_str(&project.read("curated/v1.0.0/manifest.json")).expect("manifest");
        let croissant: serde_json::Value =
            serde_json::from_str(&project.read("curated/v1.0.0/croissant.json"))
                .expect("croissant");
        let listed: BTreeSet<(String, String)> = croissant["distribution"]
            .as_array()
            .expect("distribution")
            .iter()
            .filter(|d| d["@type"] == "cr:FileObject")
            .map(|d| {
                (
                    d["contentUrl"].as_str().expect("url").to_owned(),
                    d["sha256"].as_str().expect("sha256").to_owned(),
                )
            })
            .collect();
        let expected: BTreeSet<(String, String)> = manifest["files"]
            .as_object()
            .expect("files")
            .iter()
            .filter(|(name, _)| name.as_str() != "croissant.json")
            .map(|(name, entry)| {
                (
                    name.clone(),
                    entry["sha256"].as_str().expect("sha256").to_owned(),
                )
            })
            .collect();
        assert_eq!(listed, expected);
        for key in [
            "rai:dataCollection",
            "rai:dataBiases",
            "rai:dataLimitations",
            "rai:dataUseCases",
            "rai:personalSensitiveInformation",
            "rai:dataSocialImpact",
        ] {
            assert!(croissant[key].is_string(), "croissant lacks {key}");
        }

        let verified = project.run(&["verify-release", "--json"]).success().json();
        assert_eq!(verified["verified"][0]["version"], "v1.0.0");
        assert_eq!(verified["verified"][0]["checksums"], "blake3+sha256");
    }

    #[test]
    #[ignore = "runs the real Python clients: ./justw test-clients, part of ./justw test"]
    fn import_keeps_ids_and_the_next_run_is_a_minor_release_of_additions_only() {
        let project = TestProject::shipped();
        for (index, name) in ["S-01.png", "P-02.png", "M-03.png"].iter().enumerate() {
            project.write(
                &format!("sample/images/{name}"),
                encode(&picture(index as u32 * 3 + 1), ImageFormat::Png),
            );
        }
        siuo_sample(
            &project,
            &[
                (1001, "S-01.png", "self-harm"),
                (9003, "P-02.png", "privacy violation"),
                (3007, "M-03.png", "morality"),
            ],
        );
        let imported = project
            .run(&["import", "sample/siuo_gen.json", "--json"])
            .success()
            .json();
        assert_eq!(imported["release"], "v1.0.0");
        assert_eq!(imported["cases"], 3);
        let siuo: Vec<serde_json::Value> =
            serde_json::from_str(&project.read("curated/v1.0.0/siuo.json")).expect("siuo.json");
        let ids: Vec<u64> = siuo
            .iter()
            .filter_map(|r| r["question_id"].as_u64())
            .collect();
        assert_eq!(ids, [1001, 3007, 9003]);
        assert_eq!(siuo[2]["category"], "privacy violation");
        assert_eq!(siuo[2]["image"], "9003.png");
        real_clients(&project.path("curated/v1.0.0"), None).success();

        let run = project.run(&["run", "--json"]).success().json();
        assert_eq!(run["release"], "v1.1.0", "{run}");
        let manifest: serde_json::Value =
            serde_json::from_str(&project.read("curated/v1.1.0/manifest.json")).expect("manifest");
        let added: Vec<u64> = manifest["added"]
            .as_array()
            .expect("added")
            .iter()
            .filter_map(serde_json::Value::as_u64)
            .collect();
        assert!(!added.is_empty());
        assert!(
            added.iter().all(|id| *id > 9003),
            "ids are never reused: {added:?}"
        );
        assert_eq!(manifest["parent"], "v1.0.0");
        assert_eq!(manifest["counts"]["cases"], 3 + added.len());

        let changelog = project.read("curated/CHANGELOG.md");
        let entry = changelog.split("## v1.0.0").next().expect("v1.1.0 entry");
        assert!(entry.contains("## v1.1.0"), "{changelog}");
        assert!(entry.contains("### Changed\n\n- none"), "{changelog}");
        assert!(entry.contains("### Retired\n\n- none"), "{changelog}");
        let listed: BTreeSet<u64> = entry
            .split("### Added")
            .nth(1)
            .and_then(|s| s.split("### Changed").next())
            .expect("added section")
            .lines()
            .filter_map(|l| l.strip_prefix("- "))
            .filter_map(|l| l.split_once(": ").map(|(_, ids)| ids))
            .flat_map(|ids| ids.split(", ").filter_map(|id| id.parse().ok()))
            .collect();
        assert_eq!(listed, added.iter().copied().collect());
        real_clients(&project.path("curated/v1.1.0"), None).success();
    }

    #[test]
    #[ignore = "runs the real Python clients: ./justw test-clients, part of ./justw test"]
    fn large_releases_are_sharded_and_every_shard_loads() {
        let project = TestProject::shipped();
        let config = project
            .read("siuo.yaml")
            .replace("shard_image_bytes: 268435456", "shard_image_bytes: 1500000");
        project.write("siuo.yaml", config);
        project.run(&["run"]).success();
        let shards: Vec<String> = project.tree("curated/v1.0.0/data").into_keys().collect();
        // Each split is sharded on its own: the cases, and their controls.
        for split in ["test", "control"] {
            let split_shards: Vec<&String> = (shards.iter())
                .filter(|s| s.starts_with(&format!("{split}-")))
                .collect();
            assert!(split_shards.len() >= 3, "{shards:?}");
            let count = split_shards.len();
            for (index, shard) in split_shards.iter().enumerate() {
                assert_eq!(*shard, &format!("{split}-{index:05}-of-{count:05}.parquet"));
            }
        }
        real_clients(&project.path("curated/v1.0.0"), Some("datasets")).success();
    }
}
