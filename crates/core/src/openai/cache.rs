//! On-disk cache of API responses, keyed by the blake3 of the canonical
//! request: endpoint path (`chat/completions`, not the server, so replicas
//! of a model share answers) and the JSON body with object keys sorted
//! (model, messages, parameters, seed). Headers, and so the API key, are not part of
//! the key or the entry. A rerun of the same request reads the answer here
//! and makes no HTTP request.
//!
//! Entries live in `raw/cache/openai-v1/`; a change of entry format bumps the
//! suffix instead of migrating old entries.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::atomic_file;
use crate::content_hash::{ContentHasher, Digest};
use crate::error::Result;

pub const BUCKET: &str = "openai-v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedResponse {
    pub endpoint: String,
    pub model: String,
    pub body: Value,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

pub struct ResponseCache {
    dir: PathBuf,
}

impl ResponseCache {
    pub fn new(raw: &Path) -> Self {
        ResponseCache {
            dir: raw.join("cache").join(BUCKET),
        }
    }

    pub fn key(url: &str, body: &Value) -> Digest {
        Self::key_of_canonical(url, &canonical_json(body))
    }

    /// [`Self::key`] for a body already in [`canonical_json`] form.
    /// `endpoint` is the path below the base URL (`chat/completions`), not
    /// the server: replicas of a model share answers.
    pub fn key_of_canonical(endpoint: &str, canonical_body: &str) -> Digest {
        ContentHasher::new("siuo.openai.request.v2")
            .str(endpoint.trim_start_matches('/'))
            .str(canonical_body)
            .finish()
    }

    /// The key answers were cached under before v2, with the whole URL of
    /// the one server; still read, so no answer is paid for twice.
    pub fn legacy_key(url: &str, canonical_body: &str) -> Digest {
        ContentHasher::new("siuo.openai.request.v1")
            .str(url)
            .str(canonical_body)
            .finish()
    }

    fn path(&self, key: &Digest) -> PathBuf {
        let hex = key.hex();
        self.dir.join(&hex[..2]).join(format!("{hex}.json"))
    }

    /// A stored answer; an unreadable entry counts as absent and is replaced.
    pub fn get(&self, key: &Digest) -> Option<CachedResponse> {
        let bytes = std::fs::read(self.path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Drops a stored answer, so that the request is sent again next time:
    /// for answers that were well-formed HTTP but useless (a judge's junk).
    pub fn forget(&self, key: &Digest) -> Result<()> {
        let path = self.path(key);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(crate::error::Error::io(&path, e))
            }
            _ => Ok(()),
        }
    }

    pub fn put(&self, key: &Digest, response: &CachedResponse) -> Result<()> {
        let path = self.path(key);
        let bytes = serde_json::to_vec(response).map_err(|e| crate::error::Error::Json {
            path: path.clone(),
            line: 0,
            source: e,
        })?;
        atomic_file::write_unsynced(&path, &bytes)
    }
}

/// JSON with object keys sorted at every level, whatever map type serde_json
/// was built with.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (index, key) in keys.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                if let Some(item) = map.get(key) {
                    write_canonical(item, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_ignores_object_key_order_but_not_values() {
        let a = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "seed": 1});
        let b = json!({"seed": 1, "messages": [{"content": "hi", "role": "user"}], "model": "m"});
        let c = json!({"seed": 2, "messages": [{"content": "hi", "role": "user"}], "model": "m"});
        let url = "chat/completions";
        assert_eq!(ResponseCache::key(url, &a), ResponseCache::key(url, &b));
        assert_ne!(ResponseCache::key(url, &a), ResponseCache::key(url, &c));
        // The server is no part of the key: replicas share answers.
        assert_eq!(
            ResponseCache::key("/chat/completions", &a),
            ResponseCache::key("chat/completions", &a)
        );
    }
}
