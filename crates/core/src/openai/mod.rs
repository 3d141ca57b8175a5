//! A client for OpenAI-compatible HTTP APIs (OpenAI, vLLM, Ollama,
//! llama.cpp's server, LiteLLM): bounded concurrency, rate limits, retries,
//! an on-disk response cache, token accounting and a budget cap.
//!
//! The API key is read from the environment and lives only in memory: it is
//! never written to a file, a log line, a cache entry or an error message.

pub mod batch;
pub mod cache;
pub mod chat;
pub mod client;
pub mod config;
pub mod limiter;
pub mod servers;
pub mod usage;

pub use client::{ApiClient, ApiError};
pub use usage::Usage;
