//! A project: the loaded config, the taxonomy, and where runs and releases
//! live. Stages get everything they read or write from here.

use std::cell::OnceCell;
use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::classifier_panel::ClassifierPanel;
use crate::config::{Config, GeneratorConfig, LoadedConfig};
use crate::generator::Generator;
use crate::generator::openai::OpenAiGenerator;
use crate::generator::seeded::SeededGenerator;
use siuo_core::atomic_file;
use siuo_core::content_hash::Digest;
use siuo_core::error::{Error, Result};
use siuo_core::image_store::ImageStore;
use siuo_core::review::Ledger;
use siuo_core::shard::Shard;
use siuo_core::stage_dir::StageDir;
use siuo_core::taxonomy::Taxonomy;

pub struct Project {
    pub config: LoadedConfig,
    pub taxonomy: Taxonomy,
    /// Show progress bars and per-item messages on stderr.
    pub interactive: bool,
    /// `--source-date-epoch` / `SOURCE_DATE_EPOCH`: the release timestamp.
    pub source_date_epoch: Option<String>,
    /// The part of the items the stages of this project work on (`--shard
    /// I/N`); `None` for all of them. A value of the project, handed to each
    /// stage in its input: two projects of one process may work on two.
    pub shard: Option<Shard>,
    /// Built on first use: loading the models takes seconds, and every
    /// stage after check needs the check stage's key.
    classifiers: OnceCell<ClassifierPanel>,
    /// Built on first use, once per process: loading it reads and hashes
    /// every library image, and every stage's key starts from its digest.
    generator: OnceCell<ConfiguredGenerator>,
    /// Read on first use, once per process: every stage of one command
    /// sees the same decisions, even while a review desk records more.
    review_ledger: OnceCell<Ledger>,
}

/// `raw/runs/<run>/run.json`: what a run was made from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    pub run_id: String,
    pub generator: String,
    pub generator_digest: String,
    pub config: String,
    pub taxonomy_blake3: String,
}

impl Project {
    pub fn load(config_file: Option<&Path>, interactive: bool) -> Result<Self> {
        let config = LoadedConfig::load(config_file)?;
        let taxonomy = Taxonomy::load(&config.path(&config.config.taxonomy))?;
        Ok(Project {
            config,
            taxonomy,
            interactive,
            source_date_epoch: None,
            shard: None,
            classifiers: OnceCell::new(),
            generator: OnceCell::new(),
            review_ledger: OnceCell::new(),
        })
    }

    /// The check stage's classifiers, built once per project (a remote
    /// classifier's request log is the project's shard's own file).
    pub fn classifiers(&self) -> Result<&ClassifierPanel> {
        if let Some(built) = self.classifiers.get() {
            return Ok(built);
        }
        let built = ClassifierPanel::build(
            &self.settings().check,
            &self.config.root,
            &self.config.path(&self.settings().models),
            &self.raw(),
            self.shard,
        )?;
        Ok(self.classifiers.get_or_init(|| built))
    }

    /// The review ledger (`curated/reviews.jsonl`) as this command found
    /// it, every line checked, and each entry's candidate checked against
    /// the run it names when that run is on this machine (the chain checks
    /// the others when it makes their run).
    pub fn review_ledger(&self) -> Result<&Ledger> {
        if let Some(read) = self.review_ledger.get() {
            return Ok(read);
        }
        let curated = self.curated();
        let read = Ledger::read(&curated)?;
        let path = siuo_core::review::ledger::ledger_path(&curated);
        for run_id in read.runs() {
            if let Some(ids) = self.candidate_ids(run_id)? {
                read.check_run(&path, run_id, &ids)?;
            }
        }
        Ok(self.review_ledger.get_or_init(|| read))
    }

    /// The ids of a run's generated candidates, read one line at a time;
    /// `None` when the run has none on this machine.
    pub fn candidate_ids(&self, run_id: &str) -> Result<Option<std::collections::HashSet<String>>> {
        #[derive(Deserialize)]
        struct IdOnly {
            id: String,
        }
        let path = self
            .stage_dir(run_id, "generate")
            .output("candidates.jsonl");
        if !path.is_file() {
            return Ok(None);
        }
        let mut ids = std::collections::HashSet::new();
        siuo_core::input_file::for_each_jsonl(&path, |candidate: IdOnly| {
            ids.insert(candidate.id);
            Ok(())
        })?;
        Ok(Some(ids))
    }

    pub fn settings(&self) -> &Config {
        &self.config.config
    }

    pub fn raw(&self) -> PathBuf {
        self.config.path(&self.settings().raw)
    }

    pub fn curated(&self) -> PathBuf {
        self.config.path(&self.settings().curated)
    }

    pub fn runs(&self) -> PathBuf {
        self.raw().join("runs")
    }

    pub fn images(&self) -> ImageStore {
        ImageStore::new(&self.raw())
    }

    /// The configured generator, built from its inputs once per process.
    pub fn generator(&self) -> Result<&ConfiguredGenerator> {
        if let Some(built) = self.generator.get() {
            return Ok(built);
        }
        let built = self.build_generator()?;
        Ok(self.generator.get_or_init(|| built))
    }

    fn build_generator(&self) -> Result<ConfiguredGenerator> {
        Ok(match &self.settings().generate {
            GeneratorConfig::Seeded(settings) => ConfiguredGenerator::Seeded(Box::new(
                SeededGenerator::load(settings, &self.config.root, &self.taxonomy)?,
            )),
            GeneratorConfig::Openai(settings) => ConfiguredGenerator::OpenAi(Box::new(
                OpenAiGenerator::load(settings, &self.config.root, &self.raw(), &self.taxonomy)?,
            )),
        })
    }

    /// Runs are named by what they are made from: the same inputs are the
    /// same run, so rerunning finds its finished stages.
    pub fn run_id(generator_digest: &Digest) -> String {
        format!("r{}", generator_digest.short(12))
    }

    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        self.runs().join(run_id)
    }

    pub fn stage_dir(&self, run_id: &str, stage: &'static str) -> StageDir {
        StageDir::new(&self.run_dir(run_id), run_id, stage)
    }

    pub fn record_run<G: Generator>(&self, run_id: &str, generator: &G) -> Result<()> {
        let path = self.run_dir(run_id).join("run.json");
        if path.is_file() {
            return Ok(());
        }
        atomic_file::write_json(
            &path,
            &RunInfo {
                run_id: run_id.to_owned(),
                generator: generator.kind().to_owned(),
                generator_digest: generator.digest().hex(),
                config: self.config.display_name(),
                taxonomy_blake3: self.taxonomy.digest.hex(),
            },
        )
    }

    /// Holds `raw/.lock` and `curated/.lock` so two processes never work on
    /// the same runs or the same releases at once (two projects with
    /// different `raw:` folders may share one `curated/`). Released when the
    /// guard drops.
    pub fn lock(&self) -> Result<ProjectLock> {
        Ok(ProjectLock {
            _files: vec![
                lock_file(&self.raw(), false)?,
                lock_file(&self.curated(), false)?,
            ],
        })
    }

    /// The lock shards of a stage hold (`--shard I/N`): any number of them
    /// at once, but never beside a command that holds [`Self::lock`].
    pub fn lock_shared(&self) -> Result<ProjectLock> {
        Ok(ProjectLock {
            _files: vec![
                lock_file(&self.raw(), true)?,
                lock_file(&self.curated(), true)?,
            ],
        })
    }
}

/// The generator the config picks.
pub enum ConfiguredGenerator {
    // Boxed: the two differ in size, and only one is ever built per command.
    Seeded(Box<SeededGenerator>),
    OpenAi(Box<OpenAiGenerator>),
}

impl ConfiguredGenerator {
    pub fn digest(&self) -> Digest {
        match self {
            ConfiguredGenerator::Seeded(g) => g.digest(),
            ConfiguredGenerator::OpenAi(g) => g.digest(),
        }
    }
}

pub struct ProjectLock {
    _files: Vec<File>,
}

fn lock_file(dir: &Path, shared: bool) -> Result<File> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join(".lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    let locked = match shared {
        true => file.try_lock_shared(),
        false => file.try_lock(),
    };
    match locked {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked { path }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(path, e)),
    }
}
