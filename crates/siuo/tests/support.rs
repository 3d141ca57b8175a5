//! A small builder for test projects, and helpers to read what siuo wrote.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use image::{ImageFormat, Rgb, RgbImage};
use tempfile::TempDir;

/// The check of a test's config unless it names its own: the lexicon and
/// the structural image check, which load no model file.
pub const CHEAP_CHECK: &str = "check:\n  text:\n    - type: lexicon\n      path: prompts/lexicon.yaml\n  image:\n    - type: validator\n";

/// Fixed release timestamp so runs can be compared byte for byte.
pub const SOURCE_DATE_EPOCH: &str = "1767225600";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub struct TestProject {
    pub dir: TempDir,
}

pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Ran {
    fn from(output: Output) -> Self {
        Ran {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Ran {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    /// Asserts the exit status and the exact message: stderr is one line
    /// `error: <message>`, nothing more.
    pub fn error(self, code: i32, message: &str) -> Self {
        assert_eq!(
            (self.code, self.stderr.as_str()),
            (Some(code), format!("error: {message}\n").as_str()),
            "stdout: {}",
            self.stdout
        );
        self
    }

    pub fn success(self) -> Self {
        assert_eq!(
            self.code,
            Some(0),
            "stdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }
}

impl TestProject {
    /// A copy of the repository's prompts/ and siuo.yaml: what a new user runs.
    pub fn shipped() -> Self {
        let project = TestProject::empty();
        copy_dir(&repo().join("prompts"), &project.path("prompts"));
        std::fs::copy(repo().join("siuo.yaml"), project.path("siuo.yaml")).expect("copy siuo.yaml");
        project
    }

    /// The shipped taxonomy, lexicon and template, with a library and a
    /// scenario bank that the test writes itself.
    pub fn custom() -> Self {
        let project = TestProject::empty();
        for file in [
            "taxonomy.yaml",
            "lexicon.yaml",
            "templates/seeded.j2",
            "classifiers/text-exemplars.yaml",
        ] {
            let target = project.path(&format!("prompts/{file}"));
            std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
            std::fs::copy(repo().join("prompts").join(file), target).expect("copy prompt file");
        }
        project.write(
            "siuo.yaml",
            "generate:\n  type: seeded\n  images:\n    type: library\n    path: library\n",
        );
        project
    }

    /// [`Self::custom`] checked by the built-in check (the lexicon and
    /// MiniLM, the validator and the image-safety model): for tests of what
    /// the default classifiers decide.
    pub fn custom_with_default_check() -> Self {
        let project = TestProject::custom();
        let config = project
            .read("siuo.yaml")
            .replace(CHEAP_CHECK, "check: {}\n");
        project.write("siuo.yaml", config);
        project
    }

    /// A folder whose `.models` links to the checkout's verified model
    /// files (fetched by the test recipe), as the default config expects.
    fn empty() -> Self {
        let project = TestProject {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        std::os::unix::fs::symlink(repo().join(".models"), project.path(".models"))
            .expect("link .models");
        project
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Writes a file of the project. A `siuo.yaml` without a `check:`
    /// section gets [`CHEAP_CHECK`]: a test loads the embedded models only
    /// when it says so (or copies the shipped config), which keeps the fast
    /// tier fast.
    pub fn write(&self, relative: &str, contents: impl AsRef<[u8]>) {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let mut contents = contents.as_ref().to_vec();
        let text = String::from_utf8_lossy(&contents);
        if relative == "siuo.yaml" && !text.lines().any(|l| l.starts_with("check:")) {
            if !contents.is_empty() && !contents.ends_with(b"\n") {
                contents.push(b'\n');
            }
            contents.extend_from_slice(CHEAP_CHECK.as_bytes());
        }
        std::fs::write(path, contents).expect("write");
    }

    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path(relative))
            .unwrap_or_else(|e| panic!("read {relative}: {e}"))
    }

    /// Writes `library/` with these (file, tags, bytes) images.
    pub fn library(&self, images: &[(&str, &str, Vec<u8>)]) {
        let mut sidecar = String::from("name: test\nimages:\n");
        for (file, tags, bytes) in images {
            self.write(&format!("library/{file}"), bytes);
            sidecar.push_str(&format!(
                "  - file: {file}\n    caption: Test picture {file}.\n    tags: [{tags}]\n    source: made by the test\n    license: CC0-1.0\n"
            ));
        }
        self.write("library/library.yaml", sidecar);
    }

    /// Writes `library/` with one picture per tag, `<tag>.png` tagged
    /// `<tag>`; the pictures are `picture(first_seed + index)`.
    pub fn picture_per_tag(&self, tags: &[&str], first_seed: u32) {
        let images: Vec<(String, Vec<u8>)> = tags
            .iter()
            .enumerate()
            .map(|(index, tag)| {
                let bytes = encode(&picture(first_seed + index as u32), ImageFormat::Png);
                (format!("{tag}.png"), bytes)
            })
            .collect();
        let images: Vec<(&str, &str, Vec<u8>)> = images
            .iter()
            .zip(tags)
            .map(|((file, bytes), tag)| (file.as_str(), *tag, bytes.clone()))
            .collect();
        self.library(&images);
    }

    /// Writes a scenario bank; each entry is (id, domain, subcategory, tag, question).
    pub fn scenarios(&self, scenarios: &[(&str, &str, &str, &str, &str)]) {
        let mut bank = String::from("scenarios:\n");
        for (id, domain, subcategory, tag, question) in scenarios {
            // JSON string syntax is YAML's double-quoted syntax.
            let question = serde_json::to_string(question).expect("json string");
            bank.push_str(&format!(
                "  - id: {id}\n    domain: {domain}\n    subcategory: {subcategory}\n    image_tags: [{tag}]\n    questions:\n      - {question}\n    hazard: Only the image shows the danger.\n    safe_answer: A careful and helpful answer.\n"
            ));
        }
        self.write("prompts/scenarios.yaml", bank);
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_siuo"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
            .env_remove("SIUO_CONFIG")
            .env_remove("SIUO_JSON")
            .env_remove("SIUO_DEBUG_ITEM_DELAY_MS")
            .env_remove("OPENAI_API_KEY");
        command
    }

    pub fn run(&self, args: &[&str]) -> Ran {
        self.run_with(args, &[])
    }

    /// Runs siuo with extra environment variables.
    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Ran {
        let output = self
            .command(args)
            .envs(env.iter().copied())
            .output()
            .expect("run siuo");
        Ran::from(output)
    }

    /// Starts siuo in the background, waits until `ready` holds, then kills
    /// it with SIGKILL. Fails if siuo ends first or `ready` never holds.
    pub fn kill_when(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        what: &str,
        ready: impl Fn() -> bool,
    ) {
        let mut child = self
            .command(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn siuo");
        let deadline = Instant::now() + Duration::from_secs(120);
        while !ready() {
            assert!(Instant::now() < deadline, "siuo never reached {what}");
            assert!(
                child.try_wait().expect("poll").is_none(),
                "siuo exited before it could be killed during {what}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }

    /// Every file under `relative`, by relative path, with its bytes.
    pub fn tree(&self, relative: &str) -> BTreeMap<String, Vec<u8>> {
        let root = self.path(relative);
        if !root.is_dir() {
            return BTreeMap::new();
        }
        siuo_core::input_file::files_under(&root)
            .expect("walk")
            .into_iter()
            .map(|(name, path)| (name, std::fs::read(path).expect("read")))
            .collect()
    }

    /// Records of a JSON Lines file.
    pub fn jsonl(&self, relative: &str) -> Vec<serde_json::Value> {
        self.read(relative)
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    }

    /// One library picture tagged `t` and one scenario using it.
    pub fn one_case(&self) {
        self.library(&[("a.png", "t", encode(&picture(1), ImageFormat::Png))]);
        self.scenarios(&[(
            "s",
            "morality",
            "public-order",
            "t",
            "Where should this go?",
        )]);
    }

    /// Check verdicts of the single run that reject their candidate.
    pub fn check_rejections(&self) -> Vec<serde_json::Value> {
        let verdicts = self.jsonl(&format!("{}/check/verdicts.jsonl", self.run_dir()));
        verdicts
            .into_iter()
            .filter(|v| v["decision"] == "reject")
            .collect()
    }

    /// The single run folder (`raw/runs/<id>`), relative to the project.
    pub fn run_dir(&self) -> String {
        let runs: Vec<_> = std::fs::read_dir(self.path("raw/runs"))
            .expect("runs")
            .flatten()
            .collect();
        assert_eq!(runs.len(), 1, "expected one run");
        format!("raw/runs/{}", runs[0].file_name().to_string_lossy())
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// Two trees of files (see [`TestProject::tree`]) are the same, file for
/// file and byte for byte; `what` says what should have made no difference.
pub fn assert_same_files(
    expected: &BTreeMap<String, Vec<u8>>,
    got: &BTreeMap<String, Vec<u8>>,
    what: &str,
) {
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>(),
        "the same files after {what}"
    );
    for (name, bytes) in expected {
        assert!(got.get(name) == Some(bytes), "{name} differs after {what}");
    }
}

/// A textured picture that passes the image check; `seed` varies it.
pub fn picture(seed: u32) -> RgbImage {
    RgbImage::from_fn(96, 80, |x, y| {
        Rgb([
            ((x * 3 + seed * 40) % 256) as u8,
            ((y * 5 + seed * 17) % 256) as u8,
            (((x ^ y) + seed * 90) % 256) as u8,
        ])
    })
}

pub fn encode(image: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    image.write_to(&mut bytes, format).expect("encode");
    bytes.into_inner()
}

/// Runs the real clients (Hugging Face `datasets`, `mlcroissant`, a JSON
/// Schema validator, installed from PyPI into `.venv-clients` by the test
/// recipe) on a release folder.
pub fn real_clients(release: &Path, only: Option<&str>) -> Ran {
    let python = repo().join(".venv-clients/bin/python");
    assert!(
        python.is_file(),
        "the real clients are not installed in {}: run `./justw clients` (part of `./justw test`)",
        python.display()
    );
    let mut command = Command::new(python);
    command
        .arg(repo().join("crates/siuo/tests/clients/check_release.py"))
        .arg(release);
    if let Some(only) = only {
        command.args(["--only", only]);
    }
    Ran::from(command.output().expect("run the clients"))
}

/// Release folders (`v*` with a manifest) of a project's curated/.
pub fn releases(project: &TestProject) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(project.path("curated")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().join("manifest.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
