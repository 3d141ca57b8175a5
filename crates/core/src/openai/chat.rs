//! Chat requests that must answer with JSON: the request body with its
//! `response_format`, the one repair request, and the answer's text.
//! Generators and judges build their requests here.

use serde_json::{Value, json};

use super::config::ResponseFormat;

/// The model settings of a chat request.
pub struct ChatSettings<'a> {
    pub model: &'a str,
    pub temperature: f64,
    pub max_tokens: u32,
    pub response_format: ResponseFormat,
}

/// A chat completion body asking for JSON that follows `schema` (named
/// `schema_name` for servers that enforce it).
pub fn body(
    settings: &ChatSettings<'_>,
    messages: &[Value],
    schema_name: &str,
    schema: &Value,
    seed: u64,
) -> Value {
    let mut body = json!({
        "model": settings.model,
        "messages": messages,
        "temperature": settings.temperature,
        "max_tokens": settings.max_tokens,
        "seed": seed,
    });
    match settings.response_format {
        ResponseFormat::JsonSchema => {
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": {"name": schema_name, "strict": true, "schema": schema},
            });
        }
        ResponseFormat::JsonObject => body["response_format"] = json!({"type": "json_object"}),
        ResponseFormat::Plain => {}
    }
    body
}

/// Appends the invalid answer and what was wrong with it: the one repair
/// request a model gets.
pub fn push_repair(messages: &mut Vec<Value>, answer: &str, problem: &str) {
    messages.push(json!({"role": "assistant", "content": answer}));
    messages.push(json!({"role": "user", "content": format!(
        "Your reply did not follow the required format: {problem}. Reply again with only the corrected JSON object."
    )}));
}

/// The envelope check for [`super::ApiClient::post`]: an answer must have
/// a message text (its content is validated by the caller).
pub fn has_content(body: &Value) -> Result<(), String> {
    content(body)
        .map(|_| ())
        .ok_or_else(|| "no choices[0].message.content".to_owned())
}

/// The answer's message text.
pub fn content(body: &Value) -> Option<&str> {
    body.pointer("/choices/0/message/content")
        .and_then(Value::as_str)
}
