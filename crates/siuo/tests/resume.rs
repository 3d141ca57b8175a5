//! A run killed with SIGKILL in the middle of any stage and rerun gives a
//! release byte-identical to an uninterrupted run.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::support::TestProject;

/// `curated/` of an uninterrupted run on the shipped defaults.
fn uninterrupted() -> &'static BTreeMap<String, Vec<u8>> {
    static TREE: OnceLock<BTreeMap<String, Vec<u8>>> = OnceLock::new();
    TREE.get_or_init(|| {
        let project = TestProject::shipped();
        project.run(&["run", "--quiet"]).success();
        project.tree("curated")
    })
}

/// Lines in the stage's journal, or files in the release being built.
fn progress_of(project: &TestProject, stage: &str) -> usize {
    if stage == "export" {
        return std::fs::read_dir(project.path("curated/.staging-v1.0.0/images"))
            .map_or(0, |d| d.count());
    }
    let Ok(runs) = std::fs::read_dir(project.path("raw/runs")) else {
        return 0;
    };
    runs.flatten()
        .filter_map(|run| std::fs::read_dir(run.path().join(stage)).ok())
        .flat_map(|dir| dir.flatten())
        .filter(|f| f.file_name().to_string_lossy().starts_with("journal-"))
        .filter_map(|f| std::fs::read(f.path()).ok())
        .map(|bytes| bytes.iter().filter(|b| **b == b'\n').count())
        .sum()
}

fn kill_during(stage: &str) {
    let project = TestProject::shipped();
    project.kill_when(
        &["run", "--quiet"],
        &[("SIUO_DEBUG_ITEM_DELAY_MS", "80")],
        stage,
        || progress_of(&project, stage) >= 3,
    );

    let run_dir = project.run_dir();
    assert!(
        !project
            .path(&format!("{run_dir}/{stage}/report.json"))
            .exists(),
        "{stage} finished before the kill; the test did not interrupt it"
    );
    project.run(&["run", "--quiet"]).success();
    crate::support::assert_same_files(
        uninterrupted(),
        &project.tree("curated"),
        &format!("a kill during {stage}"),
    );
    if stage != "export" {
        // Items finished before the kill were not done again.
        let report: serde_json::Value =
            serde_json::from_str(&project.read(&format!("{run_dir}/{stage}/report.json")))
                .expect("report");
        let processed = report["processed"].as_u64().expect("processed") as usize;
        assert_eq!(
            progress_of(&project, stage),
            processed,
            "{stage} repeated finished items"
        );
    }
}

/// Tests that load the embedded model files (`.models/`, fetched by `siuo models fetch`).
mod models {
    use super::*;

    #[test]
    #[ignore = "loads the embedded models: ./justw test-models, part of ./justw test"]
    fn kill_during_check_then_rerun_gives_identical_release() {
        kill_during("check");
    }

    #[test]
    #[ignore = "loads the embedded models: ./justw test-models, part of ./justw test"]
    fn kill_during_dedupe_then_rerun_gives_identical_release() {
        kill_during("dedupe");
    }

    #[test]
    #[ignore = "loads the embedded models: ./justw test-models, part of ./justw test"]
    fn kill_during_generate_then_rerun_gives_identical_release() {
        kill_during("generate");
    }

    #[test]
    #[ignore = "loads the embedded models: ./justw test-models, part of ./justw test"]
    fn kill_during_export_then_rerun_gives_identical_release() {
        kill_during("export");
    }
}
