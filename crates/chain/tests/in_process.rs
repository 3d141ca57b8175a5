//! The chain run from code, without the binary: the shard is a value of
//! the project that runs a stage, so two shards of one stage can work side
//! by side in one process (here on two threads), and what they journaled
//! merges into the verdicts one unsharded project makes.

use std::path::{Path, PathBuf};

use siuo_chain::project::Project;
use siuo_chain::stage;
use siuo_core::error::Result;
use siuo_core::shard::Shard;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A project of the shipped prompts and starter library with the cheap
/// checks (no model files): the seeded generator, the lexicon, the image
/// validator.
fn project_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let prompts = repo().join("prompts");
    let config = format!(
        "taxonomy: {prompts}/taxonomy.yaml\ngenerate:\n  type: seeded\n  scenarios: {prompts}/scenarios.yaml\n  template: {prompts}/templates/seeded.j2\n  images:\n    type: library\n    path: {prompts}/library/starter\ncheck:\n  text:\n    - type: lexicon\n      path: {prompts}/lexicon.yaml\n  image:\n    - type: validator\n",
        prompts = prompts.display()
    );
    std::fs::write(dir.path().join("siuo.yaml"), config).expect("write the config");
    dir
}

fn load(dir: &Path, shard: Option<Shard>) -> Result<Project> {
    let mut project = Project::load(Some(&dir.join("siuo.yaml")), false)?;
    project.shard = shard;
    Ok(project)
}

fn run(project: &Project, name: &str) -> Result<stage::StageReport> {
    let spec = stage::find(name).expect("a stage of the chain");
    stage::run(project, spec)
}

fn verdicts(dir: &Path, run_id: &str) -> Vec<u8> {
    std::fs::read(dir.join(format!("raw/runs/{run_id}/check/verdicts.jsonl"))).expect("verdicts")
}

#[test]
fn two_shards_of_a_stage_run_side_by_side_in_one_process() -> Result<()> {
    // One project, unsharded: the reference.
    let single = project_dir();
    let project = load(single.path(), None)?;
    run(&project, "generate")?;
    let reference = run(&project, "check")?;
    let run_id = reference.run_id.clone();
    assert!(reference.processed > 10, "{reference:?}");

    // Another: generated unsharded, then checked by two shards at once,
    // each a project of its own on a thread of this process.
    let sharded = project_dir();
    run(&load(sharded.path(), None)?, "generate")?;
    let count = 2;
    let reports: Vec<stage::StageReport> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..count)
            .map(|index| {
                let dir = sharded.path();
                scope.spawn(move || -> Result<stage::StageReport> {
                    let project = load(dir, Some(Shard { index, count }))?;
                    run(&project, "check")
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("a shard's thread"))
            .collect::<Result<_>>()
    })?;
    let done: u64 = reports.iter().map(|r| r.processed).sum();
    assert_eq!(done, reference.processed, "the shards split the items");
    for (index, report) in reports.iter().enumerate() {
        assert!(
            report
                .summary
                .starts_with(&format!("shard {index}/{count}: ")),
            "{report:?}"
        );
        assert!(report.processed > 0, "shard {index} did no item");
    }
    assert!(
        !sharded
            .path()
            .join(format!("raw/runs/{run_id}/check/report.json"))
            .exists(),
        "a shard finished the stage"
    );
    // The unsharded project merges what the shards journaled, doing nothing again.
    let merged = run(&load(sharded.path(), None)?, "check")?;
    assert_eq!(merged.processed, reference.processed);
    assert_eq!(
        verdicts(sharded.path(), &run_id),
        verdicts(single.path(), &run_id)
    );
    let check = sharded.path().join(format!("raw/runs/{run_id}/check"));
    for entry in std::fs::read_dir(&check).expect("check folder").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("journal-") && !name.contains(".shard-") {
            let own = std::fs::read(entry.path()).expect("journal");
            assert!(own.is_empty(), "the merge redid items: {name}");
        }
    }
    Ok(())
}

/// A whole chain run in one project builds the generator once: every
/// stage's key starts from its digest, and building it reads and hashes
/// every library image.
#[test]
fn a_whole_run_builds_the_generator_once() -> Result<()> {
    let dir = project_dir();
    let project = load(dir.path(), None)?;
    let first = project.generator()?;
    for spec in stage::CHAIN {
        stage::run(&project, spec)?;
    }
    assert!(std::ptr::eq(first, project.generator()?), "built again");
    assert!(dir.path().join("curated/v1.0.0/manifest.json").is_file());
    Ok(())
}
