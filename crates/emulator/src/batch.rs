//! The OpenAI Batch API, emulated: `POST /v1/files` (multipart, purpose
//! batch), `POST /v1/batches`, `GET /v1/batches/{id}` and
//! `GET /v1/files/{id}/content`. A batch is answered when it is first
//! looked at after creation, line by line with the emulator's usual
//! answers, unless [`BatchBehaviour`] holds it in progress or lets it
//! expire part-way, as real batches do after their window.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How submitted batches behave.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchBehaviour {
    /// Keep every batch `in_progress` (a client killed while it waits).
    pub hold: bool,
    /// Expire each batch after answering this many of its requests; the
    /// rest get `batch_expired` lines in the error file.
    pub expire_after: Option<usize>,
}

#[derive(Default)]
pub struct Batches {
    pub files: BTreeMap<String, Vec<u8>>,
    pub batches: BTreeMap<String, Value>,
    pub behaviour: BatchBehaviour,
    next_id: u64,
}

impl Batches {
    pub fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-emulated-{}", self.next_id)
    }
}

/// The `file` part of a multipart upload.
pub fn uploaded_file(content_type: &str, body: &[u8]) -> Option<Vec<u8>> {
    let boundary = content_type.split("boundary=").nth(1)?.trim_matches('"');
    let delimiter = format!("--{boundary}");
    let text = body;
    let mut start = 0;
    while let Some(at) = find(&text[start..], delimiter.as_bytes()) {
        let part_start = start + at + delimiter.len();
        let Some(next) = find(&text[part_start..], delimiter.as_bytes()) else {
            break;
        };
        let part = &text[part_start..part_start + next];
        if let Some(headers_end) = find(part, b"\r\n\r\n") {
            let headers = String::from_utf8_lossy(&part[..headers_end]);
            if headers.contains("name=\"file\"") {
                let content = &part[headers_end + 4..];
                let content = content.strip_suffix(b"\r\n").unwrap_or(content);
                return Some(content.to_vec());
            }
        }
        start = part_start + next;
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A batch object as the API shows it.
pub fn batch_object(
    id: &str,
    input_file_id: &str,
    endpoint: &str,
    window: &str,
    total: usize,
) -> Value {
    json!({
        "id": id,
        "object": "batch",
        "endpoint": endpoint,
        "input_file_id": input_file_id,
        "completion_window": window,
        "status": "in_progress",
        "output_file_id": null,
        "error_file_id": null,
        "request_counts": {"total": total, "completed": 0, "failed": 0},
    })
}

/// One line of an output file.
pub fn output_line(custom_id: &str, body: Value) -> String {
    json!({
        "id": format!("batch_req_{custom_id}"),
        "custom_id": custom_id,
        "response": {"status_code": 200, "request_id": format!("req_{custom_id}"), "body": body},
        "error": null,
    })
    .to_string()
}

/// One line of an error file.
pub fn error_line(custom_id: &str, code: &str, message: &str) -> String {
    json!({
        "id": format!("batch_req_{custom_id}"),
        "custom_id": custom_id,
        "response": null,
        "error": {"code": code, "message": message},
    })
    .to_string()
}
