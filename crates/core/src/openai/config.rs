//! Settings of an OpenAI-compatible client: where it connects, how hard it
//! may push, what it may spend, and how it asks for JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResponseFormat {
    /// `response_format: {type: json_schema}` (OpenAI, vLLM, recent Ollama).
    #[default]
    JsonSchema,
    /// `response_format: {type: json_object}`.
    JsonObject,
    /// No response_format; the prompt alone asks for JSON.
    Plain,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RequestLimits {
    /// Requests in flight at once.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u32,
    /// 0 = no limit.
    #[serde(default)]
    pub requests_per_minute: u32,
    /// Estimated prompt plus completion tokens per minute; 0 = no limit.
    #[serde(default)]
    pub tokens_per_minute: u32,
    /// Whole-request timeout, response body included.
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: f64,
    /// Tries per request, the first included, on 429, 5xx, timeouts,
    /// connection errors and unreadable bodies.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt, with jitter, up to `backoff_max_ms`.
    #[serde(default = "default_backoff_initial_ms")]
    pub backoff_initial_ms: u64,
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// Largest image fetched from a returned URL.
    #[serde(default = "default_image_download_max_bytes")]
    pub image_download_max_bytes: u64,
    /// Largest API answer read; a bigger one is a failed attempt (inline
    /// base64 images make answers of a few MB).
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: u64,
    /// Hosts that returned image URLs may be fetched from; empty means
    /// only the host of `base_url`. Redirects to another host are refused.
    #[serde(default)]
    pub image_hosts: Vec<String>,
    /// With several base URLs: consecutive failed tries (connection errors,
    /// timeouts, 5xx, 429) after which a server is taken out of rotation.
    #[serde(
        default = "default_eject_after_failures",
        skip_serializing_if = "is_default_eject_after_failures"
    )]
    pub eject_after_failures: u32,
    /// How long a server taken out stays out before it is tried again.
    #[serde(
        default = "default_eject_seconds",
        skip_serializing_if = "is_default_eject_seconds"
    )]
    pub eject_seconds: f64,
    /// Send chat and completion requests through the OpenAI Batch API
    /// instead, at its discount (see [`BatchConfig`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchConfig>,
}

/// The OpenAI Batch API: requests gather into a JSONL file that is uploaded
/// and answered within `completion_window`, at a discount. Each batch's id
/// is journaled as soon as it is created, so a run killed while it waits
/// collects that batch when it starts again instead of paying twice; the
/// answers of an expired or failed batch are kept, and the requests it did
/// not answer go into the next batch.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// `24h`, the window OpenAI offers.
    #[serde(default = "default_completion_window")]
    pub completion_window: String,
    /// Seconds between status checks of a submitted batch.
    #[serde(default = "default_poll_seconds")]
    pub poll_seconds: f64,
    /// Most requests in one batch file (OpenAI allows 50 000); also how
    /// many work items a stage puts in flight at once in batch mode.
    #[serde(default = "default_batch_max_requests")]
    pub max_requests: u32,
    /// Requests gather until none arrived for this long, then go out.
    #[serde(default = "default_gather_ms")]
    pub gather_ms: u64,
    /// Price factor of batched requests (OpenAI: half price).
    #[serde(default = "default_batch_discount")]
    pub discount: f64,
    /// Times a request an expired batch left unanswered is resubmitted.
    #[serde(default = "default_resubmits")]
    pub resubmits: u32,
}

fn default_completion_window() -> String {
    "24h".into()
}
fn default_poll_seconds() -> f64 {
    60.0
}
fn default_batch_max_requests() -> u32 {
    50_000
}
fn default_gather_ms() -> u64 {
    500
}
fn default_batch_discount() -> f64 {
    0.5
}
fn default_resubmits() -> u32 {
    2
}

impl BatchConfig {
    pub fn problems(&self, place: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if !(self.poll_seconds.is_finite()
            && self.poll_seconds > 0.0
            && self.poll_seconds <= MAX_TIMEOUT_SECONDS)
        {
            problems.push(format!(
                "{place}.limits.batch.poll_seconds must be above 0 and at most {MAX_TIMEOUT_SECONDS}"
            ));
        }
        if self.max_requests == 0 || self.max_requests > 50_000 {
            problems.push(format!(
                "{place}.limits.batch.max_requests must be between 1 and 50000"
            ));
        }
        if !(self.discount.is_finite() && (0.0..=1.0).contains(&self.discount)) {
            problems.push(format!(
                "{place}.limits.batch.discount must be between 0 and 1"
            ));
        }
        if self.completion_window.trim().is_empty() {
            problems.push(format!(
                "{place}.limits.batch.completion_window must not be empty"
            ));
        }
        problems
    }
}

fn default_eject_after_failures() -> u32 {
    3
}
fn is_default_eject_after_failures(value: &u32) -> bool {
    *value == default_eject_after_failures()
}
fn default_eject_seconds() -> f64 {
    30.0
}
fn is_default_eject_seconds(value: &f64) -> bool {
    *value == default_eject_seconds()
}

/// Longest accepted `timeout_seconds`: a day. Anything longer is a typo,
/// and unbounded values (`.inf`) cannot be a timer.
pub const MAX_TIMEOUT_SECONDS: f64 = 86_400.0;

fn default_max_in_flight() -> u32 {
    8
}
fn default_timeout_seconds() -> f64 {
    120.0
}
fn default_max_attempts() -> u32 {
    5
}
fn default_backoff_initial_ms() -> u64 {
    500
}
fn default_backoff_max_ms() -> u64 {
    30_000
}
fn default_image_download_max_bytes() -> u64 {
    20 * 1024 * 1024
}
fn default_max_response_bytes() -> u64 {
    64 * 1024 * 1024
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_in_flight: default_max_in_flight(),
            requests_per_minute: 0,
            tokens_per_minute: 0,
            timeout_seconds: default_timeout_seconds(),
            max_attempts: default_max_attempts(),
            backoff_initial_ms: default_backoff_initial_ms(),
            backoff_max_ms: default_backoff_max_ms(),
            image_download_max_bytes: default_image_download_max_bytes(),
            max_response_bytes: default_max_response_bytes(),
            image_hosts: Vec::new(),
            eject_after_failures: default_eject_after_failures(),
            eject_seconds: default_eject_seconds(),
            batch: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Prompt plus completion tokens of live (uncached) requests per run.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// Cost per run, in the unit of `prices`.
    #[serde(default)]
    pub max_cost: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub prompt_per_million: f64,
    pub completion_per_million: f64,
}

impl RequestLimits {
    /// Work items a stage keeps in flight: in batch mode a whole batch's
    /// worth, so that its requests gather into one batch; else `direct`.
    pub fn items_at_once(&self, direct: usize) -> usize {
        match &self.batch {
            Some(batch) => batch.max_requests as usize,
            None => direct,
        }
    }

    /// Problems of the `limits` section under `place` (`generate`, `check.text[0]`).
    pub fn problems(&self, place: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if self.max_in_flight == 0 {
            problems.push(format!("{place}.limits.max_in_flight must be at least 1"));
        }
        if let Some(batch) = &self.batch {
            problems.extend(batch.problems(place));
        }
        if self.eject_after_failures == 0 {
            problems.push(format!(
                "{place}.limits.eject_after_failures must be at least 1"
            ));
        }
        if !(self.eject_seconds.is_finite()
            && (0.0..=MAX_TIMEOUT_SECONDS).contains(&self.eject_seconds))
        {
            problems.push(format!(
                "{place}.limits.eject_seconds must be at least 0 and at most {MAX_TIMEOUT_SECONDS}"
            ));
        }
        if self.max_attempts == 0 {
            problems.push(format!("{place}.limits.max_attempts must be at least 1"));
        }
        if !(self.timeout_seconds > 0.0 && self.timeout_seconds <= MAX_TIMEOUT_SECONDS) {
            problems.push(format!(
                "{place}.limits.timeout_seconds must be above 0 and at most {MAX_TIMEOUT_SECONDS}"
            ));
        }
        if self.max_response_bytes == 0 || self.image_download_max_bytes == 0 {
            problems.push(format!(
                "{place}.limits.max_response_bytes and image_download_max_bytes must be at least 1"
            ));
        }
        for host in &self.image_hosts {
            if let Err(problem) = ImageHost::parse(host) {
                problems.push(format!("{place}.limits.image_hosts: {problem}"));
            }
        }
        problems
    }
}

/// An entry of `limits.image_hosts`: a host, and the port image URLs may
/// use on it. Without a port, only the scheme's own (80 for http, 443 for
/// https): another port of the same machine is another service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageHost {
    /// Lowercase; an IPv6 address without its brackets.
    pub host: String,
    pub port: Option<u16>,
}

impl ImageHost {
    /// `cdn.example.com`, `cdn.example.com:8443`, `127.0.0.1:8000` or
    /// `[::1]:8000`.
    pub fn parse(entry: &str) -> std::result::Result<ImageHost, String> {
        let bad = || {
            format!(
                "`{entry}` must be a host name with an optional port, such as cdn.example.com or 127.0.0.1:8000"
            )
        };
        if entry.is_empty() || entry.contains(['/', '@', ' ', '?', '#']) {
            return Err(bad());
        }
        let (host, port) = match entry.strip_prefix('[') {
            Some(rest) => {
                let (host, after) = rest.split_once(']').ok_or_else(bad)?;
                match after {
                    "" => (host, None),
                    _ => (host, Some(after.strip_prefix(':').ok_or_else(bad)?)),
                }
            }
            None => match entry.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (entry, None),
            },
        };
        if host.is_empty() || (host.contains(':') && !entry.starts_with('[')) {
            return Err(bad());
        }
        let port = match port {
            Some(port) => Some(
                port.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(bad)?,
            ),
            None => None,
        };
        Ok(ImageHost {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// The host and port of a base URL: its images are fetched from there.
    pub fn of_url(url: &reqwest::Url) -> Option<ImageHost> {
        // An IPv6 host comes in brackets.
        let host = (url.host_str()?)
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        Some(ImageHost {
            host,
            port: url.port_or_known_default(),
        })
    }

    /// Whether `url` is on this host and port.
    pub fn allows(&self, url: &reqwest::Url) -> bool {
        let Some(on) = ImageHost::of_url(url) else {
            return false;
        };
        let port_ok = match self.port {
            Some(port) => on.port == Some(port),
            // `port()` is `None` for the scheme's own port.
            None => url.port().is_none(),
        };
        on.host == self.host && port_ok
    }
}

impl std::fmt::Display for ImageHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = match self.host.contains(':') {
            true => format!("[{}]", self.host),
            false => self.host.clone(),
        };
        match self.port {
            Some(port) => write!(f, "{host}:{port}"),
            None => write!(f, "{host}"),
        }
    }
}

/// A base URL must be http(s) with a host, and carry no credentials: a
/// `user:password@` part would silently replace the key from the environment
/// and sit in the config file.
pub fn base_url_problem(place: &str, base_urls: &BaseUrls) -> Option<String> {
    if base_urls.0.is_empty() {
        return Some(format!("{place}.base_url lists no URL"));
    }
    base_urls.0.iter().enumerate().find_map(|(index, url)| {
        let place = match base_urls.0.len() {
            1 => place.to_owned(),
            _ => format!("{place}.base_url[{index}]"),
        };
        one_base_url_problem(url).map(|problem| match base_urls.0.len() {
            1 => format!("{place}.base_url {problem}"),
            _ => format!("{place} {problem}"),
        })
    })
}

/// The base URLs of one model: a single server, or replicas serving the
/// same model. `base_url: http://a/v1` or `base_url: [http://a/v1,
/// http://b/v1]`; requests go to the replica with the fewest outstanding
/// ones, a failing one is taken out for a while (`limits.eject_*`), and
/// the response cache never depends on which replica answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrls(pub Vec<String>);

impl BaseUrls {
    pub fn one(url: &str) -> BaseUrls {
        BaseUrls(vec![url.to_owned()])
    }

    pub fn urls(&self) -> &[String] {
        &self.0
    }
}

impl std::fmt::Display for BaseUrls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join(", "))
    }
}

impl Serialize for BaseUrls {
    /// One URL as a string, as configs always wrote it: digests of configs
    /// with one server stay what they were.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => serializer.serialize_str(one),
            many => many.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for BaseUrls {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "a URL or a list of URLs")]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(deserializer)? {
            OneOrMany::One(url) => BaseUrls(vec![url]),
            OneOrMany::Many(urls) => BaseUrls(urls),
        })
    }
}

fn one_base_url_problem(base_url: &str) -> Option<String> {
    let problem = match reqwest::Url::parse(base_url) {
        Err(e) => format!("is not a URL ({e})"),
        Ok(url) if !matches!(url.scheme(), "http" | "https") => {
            "must start with http:// or https://".to_owned()
        }
        Ok(url) if url.host_str().is_none_or(str::is_empty) => "has no host".to_owned(),
        Ok(url) if !url.username().is_empty() || url.password().is_some() => {
            "must not carry credentials; name the key's environment variable in api_key_env"
                .to_owned()
        }
        Ok(url) if url.query().is_some() || url.fragment().is_some() => {
            "must not have a query or fragment".to_owned()
        }
        Ok(_) => return None,
    };
    // Never echo the URL: it may hold the credentials being refused.
    Some(problem)
}

/// Problems of `<place>.budget` and `<place>.prices`: a cost cap must be a
/// number of at least 0 and have a price for `model`; prices must be too.
pub fn spending_problems(
    place: &str,
    budget: &Budget,
    prices: &BTreeMap<String, Price>,
    model: &str,
) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(cap) = budget.max_cost {
        if !(cap.is_finite() && cap >= 0.0) {
            problems.push(format!(
                "{place}.budget.max_cost must be a number of at least 0"
            ));
        } else if !prices.contains_key(model) {
            problems.push(format!(
                "{place}.budget.max_cost needs a price for `{model}` in {place}.prices"
            ));
        }
    }
    for (name, price) in prices {
        let fine = |p: f64| p.is_finite() && p >= 0.0;
        if !(fine(price.prompt_per_million) && fine(price.completion_per_million)) {
            problems.push(format!(
                "{place}.prices.{name}: prices must be numbers of at least 0"
            ));
        }
    }
    problems
}

/// `api_key_env` names a variable; a pasted key would end up in the file.
pub fn api_key_env_problem(place: &str, name: Option<&str>) -> Option<String> {
    name.filter(|n| n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .map(|_| {
            format!("{place}.api_key_env must be the name of an environment variable, not a key")
        })
}

#[cfg(test)]
mod tests {
    use super::ImageHost;

    fn url(text: &str) -> reqwest::Url {
        reqwest::Url::parse(text).expect("url")
    }

    #[test]
    fn an_image_host_allows_its_port_only() {
        let api = ImageHost::of_url(&url("http://127.0.0.1:8000/v1")).expect("host");
        assert!(api.allows(&url("http://127.0.0.1:8000/files/a.png")));
        assert!(
            !api.allows(&url("http://127.0.0.1:6379/")),
            "another service"
        );
        let bare = ImageHost::parse("CDN.example.com").expect("bare");
        assert!(bare.allows(&url("https://cdn.example.com/a.png")));
        assert!(bare.allows(&url("http://cdn.example.com/a.png")));
        assert!(!bare.allows(&url("https://cdn.example.com:8443/a.png")));
        assert!(!bare.allows(&url("https://cdn.example.com.evil.net/a.png")));
        let port = ImageHost::parse("cdn.example.com:8443").expect("port");
        assert!(port.allows(&url("https://cdn.example.com:8443/a.png")));
        assert!(!port.allows(&url("https://cdn.example.com/a.png")));
        let v6 = ImageHost::parse("[::1]:9000").expect("v6");
        assert!(v6.allows(&url("http://[::1]:9000/a.png")));
        assert_eq!(v6.to_string(), "[::1]:9000");
        for bad in [
            "", "a/b", "user@h", "h:", "h:0", "h:99999", "::1", "[::1", "h:80x",
        ] {
            assert!(ImageHost::parse(bad).is_err(), "{bad:?}");
        }
    }
}
