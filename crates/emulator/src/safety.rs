//! Emulated safety models, in their real answer formats: OpenAI moderation
//! (`/v1/moderations`), Llama Guard 3 on `/v1/completions` (text, its own
//! prompt) and Llama Guard 3 Vision on `/v1/chat/completions` (any model
//! whose name contains `guard`).
//!
//! Their judgement is a fixed rule tests can aim at: a text is unsafe when
//! it contains one of [`HAZARD_WORDS`]; an image is unsafe when most of its
//! pixels are pure red.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

/// Word → (Llama Guard code, moderation category).
pub const HAZARD_WORDS: [(&str, &str, &str); 8] = [
    ("kill", "S1", "violence"),
    ("steal", "S2", "illicit"),
    ("nude", "S12", "sexual"),
    ("dox", "S7", "harassment"),
    ("bomb", "S9", "illicit/violent"),
    ("hate", "S10", "hate"),
    ("suicide", "S11", "self-harm"),
    ("slur", "S10", "hate"),
];

const MODERATION_CATEGORIES: [&str; 13] = [
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
];

/// Hazards of a text: `(code, category)` per distinct code, in table order.
pub fn text_hazards(text: &str) -> Vec<(&'static str, &'static str)> {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let mut found: Vec<(&str, &str)> = Vec::new();
    for (word, code, category) in HAZARD_WORDS {
        if words.contains(&word) && !found.iter().any(|(c, _)| *c == code) {
            found.push((code, category));
        }
    }
    found
}

/// Whether a `data:` URL holds an image that is mostly pure red.
pub fn image_is_unsafe(data_url: &str) -> bool {
    let Some((_, encoded)) = data_url.split_once(";base64,") else {
        return false;
    };
    let Ok(bytes) = BASE64.decode(encoded) else {
        return false;
    };
    let Ok(image) = image::load_from_memory(&bytes) else {
        return false;
    };
    let rgb = image.to_rgb8();
    let red = rgb
        .pixels()
        .filter(|p| p.0[0] > 200 && p.0[1] < 50 && p.0[2] < 50)
        .count();
    red * 2 > rgb.pixels().len()
}

fn image_urls(value: &Value) -> Vec<&str> {
    let mut urls = Vec::new();
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                if let Some(url) = map.get("url").and_then(Value::as_str) {
                    urls.push(url);
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    urls
}

/// `/v1/moderations`: one result per input, scores 0.9 for hit categories.
pub fn moderation_answer(request: &Value) -> Value {
    let inputs: Vec<Value> = match &request["input"] {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    let text: String = inputs
        .iter()
        .map(|i| {
            i.get("text")
                .and_then(Value::as_str)
                .or(i.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut hit: Vec<&str> = text_hazards(&text).iter().map(|(_, c)| *c).collect();
    if image_urls(request).iter().any(|u| image_is_unsafe(u)) {
        hit.push("violence/graphic");
    }
    let scores: serde_json::Map<String, Value> = MODERATION_CATEGORIES
        .iter()
        .map(|c| {
            (
                (*c).to_owned(),
                json!(if hit.contains(c) { 0.9 } else { 0.0012 }),
            )
        })
        .collect();
    let flags: serde_json::Map<String, Value> = MODERATION_CATEGORIES
        .iter()
        .map(|c| ((*c).to_owned(), json!(hit.contains(c))))
        .collect();
    json!({
        "id": "modr-emulated",
        "model": request["model"],
        "results": [{
            "flagged": !hit.is_empty(),
            "categories": flags,
            "category_scores": scores,
        }],
    })
}

/// What Llama Guard says, and the log-probabilities of its first token.
fn assessment(unsafe_codes: &[&str]) -> (String, f64, f64) {
    if unsafe_codes.is_empty() {
        ("safe".to_owned(), (0.03f64).ln(), (0.97f64).ln())
    } else {
        (
            format!("unsafe\n{}", unsafe_codes.join(",")),
            (0.96f64).ln(),
            (0.04f64).ln(),
        )
    }
}

/// `/v1/completions`: Llama Guard's answer when the prompt is in its
/// format, else a plain emulated completion.
pub fn completion_answer(request: &Value) -> Value {
    let prompt = request["prompt"].as_str().unwrap_or_default();
    let user = prompt
        .split_once("User: ")
        .and_then(|(_, rest)| rest.split_once("\n\n<END CONVERSATION>"))
        .map(|(user, _)| user);
    let (text, logprobs) = match user {
        Some(user) => {
            let codes: Vec<&str> = text_hazards(user).iter().map(|(c, _)| *c).collect();
            let (text, unsafe_lp, safe_lp) = assessment(&codes);
            let first = text.lines().next().unwrap_or_default().to_owned();
            (
                text,
                json!({
                    "tokens": [first],
                    "token_logprobs": [unsafe_lp.max(safe_lp)],
                    "top_logprobs": [{"unsafe": unsafe_lp, "safe": safe_lp}],
                }),
            )
        }
        None => ("emulated completion".to_owned(), Value::Null),
    };
    json!({
        "id": "cmpl-emulated",
        "object": "text_completion",
        "created": 0,
        "model": request["model"],
        "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": logprobs}],
        "usage": {"prompt_tokens": prompt.len() / 4, "completion_tokens": 3, "total_tokens": prompt.len() / 4 + 3},
    })
}

/// `/v1/chat/completions` to a Llama Guard model: judges the images and
/// texts of the last user message.
pub fn guard_chat_answer(request: &Value) -> Value {
    let last_user = request["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .cloned()
        .unwrap_or_default();
    let text = super::request::message_text(&last_user["content"]).unwrap_or_default();
    let mut codes: Vec<&str> = text_hazards(&text).iter().map(|(c, _)| *c).collect();
    if image_urls(&last_user).iter().any(|u| image_is_unsafe(u)) {
        codes.insert(0, "S1");
    }
    let (text, unsafe_lp, safe_lp) = assessment(&codes);
    let first = text.lines().next().unwrap_or_default().to_owned();
    json!({
        "id": "chatcmpl-guard",
        "object": "chat.completion",
        "created": 0,
        "model": request["model"],
        "choices": [{
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": text},
            "logprobs": {"content": [{"token": first, "logprob": unsafe_lp.max(safe_lp), "top_logprobs": [
                {"token": "unsafe", "logprob": unsafe_lp},
                {"token": "safe", "logprob": safe_lp},
            ]}]},
        }],
        "usage": {"prompt_tokens": 100, "completion_tokens": 3, "total_tokens": 103},
    })
}

/// Whether a chat request is addressed to a Llama Guard model.
pub fn is_guard_model(request: &Value) -> bool {
    request["model"]
        .as_str()
        .is_some_and(|m| m.to_lowercase().contains("guard"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hazards_are_found_on_whole_words_with_distinct_codes() {
        assert_eq!(
            text_hazards("I want to KILL them, and I hate them"),
            vec![("S1", "violence"), ("S10", "hate")]
        );
        assert!(text_hazards("skilled chefs bake bread").is_empty());
    }
}
