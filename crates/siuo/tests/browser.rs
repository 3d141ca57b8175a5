//! A real headless Chromium, driven over WebDriver (Debian's `chromium`
//! and `chromium-driver`, installed by `./justw test`). The client is a
//! few W3C WebDriver calls over the HTTP client siuo already has.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
    session: String,
    base: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn executable(variable: &str, candidates: &[&str]) -> PathBuf {
    if let Some(path) = std::env::var_os(variable) {
        return PathBuf::from(path);
    }
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{} not found (tried {candidates:?}; set {variable}): install Debian's chromium and chromium-driver, as `./justw test` does",
                candidates[0]
            )
        })
}

impl Browser {
    pub fn start() -> Browser {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let driver_path = executable(
            "SIUO_CHROMEDRIVER",
            &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
        );
        let chromium = executable(
            "SIUO_CHROMIUM",
            &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", driver_path.display()));
        let profile = tempfile::tempdir().expect("profile dir");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let mut browser = Browser {
            runtime,
            http,
            session: String::new(),
            base,
            driver,
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while browser.call("GET", "/status", None).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // The flags a closed network needs: no background connections.
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1600",
            &format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let session = browser
            .call(
                "POST",
                "/session",
                Some(json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {"binary": chromium, "args": args},
                }}})),
            )
            .unwrap_or_else(|e| panic!("cannot start Chromium: {e}"));
        browser.session = session["sessionId"]
            .as_str()
            .expect("session id")
            .to_owned();
        browser
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self
                .http
                .post(&url)
                .header("content-type", "application/json")
                .body(body.unwrap_or_else(|| json!({})).to_string()),
        };
        self.runtime.block_on(async {
            let response = request
                .timeout(Duration::from_secs(60))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            let text = response.text().await.map_err(|e| e.to_string())?;
            let value: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
            match status.is_success() {
                true => Ok(value["value"].clone()),
                false => Err(format!("{method} {path}: {status}: {}", value["value"])),
            }
        })
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.call(method, &path, body)
            .unwrap_or_else(|e| panic!("WebDriver: {e}"))
    }

    pub fn goto(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn open_file(&self, path: &Path) {
        self.goto(&format!("file://{}", path.display()));
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns its value.
    pub fn execute(&self, script: &str, args: Value) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// Element references of every match of a CSS selector.
    pub fn find_all(&self, css: &str) -> Vec<Value> {
        self.session_call(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )
        .as_array()
        .cloned()
        .unwrap_or_default()
    }

    pub fn find(&self, css: &str) -> Value {
        let found = self.find_all(css);
        found
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no element matches `{css}`"))
    }

    fn element_id(element: &Value) -> String {
        element[ELEMENT].as_str().expect("element id").to_owned()
    }

    pub fn click(&self, element: &Value) {
        self.session_call(
            "POST",
            &format!("/element/{}/click", Self::element_id(element)),
            None,
        );
    }

    /// Types `text` into an input or textarea.
    pub fn type_into(&self, element: &Value, text: &str) {
        self.session_call(
            "POST",
            &format!("/element/{}/value", Self::element_id(element)),
            Some(json!({ "text": text })),
        );
    }

    pub fn clear(&self, element: &Value) {
        self.session_call(
            "POST",
            &format!("/element/{}/clear", Self::element_id(element)),
            None,
        );
    }

    /// Waits up to 30 s for `done`; panics naming `what` when it never holds.
    pub fn wait_for(&self, what: &str, done: impl Fn(&Browser) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done(self) {
            assert!(Instant::now() < deadline, "the page never showed {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn text(&self, element: &Value) -> String {
        self.session_call(
            "GET",
            &format!("/element/{}/text", Self::element_id(element)),
            None,
        )
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    pub fn title(&self) -> String {
        self.session_call("GET", "/title", None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Saves a PNG of the viewport as `target/screenshots/<name>.png` and
    /// prints where.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine as _;
        let encoded = self.session_call("GET", "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap_or_default())
            .expect("screenshot is base64");
        let dir = crate::support::repo().join("target/screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes).expect("write screenshot");
        eprintln!("screenshot: {}", path.display());
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
