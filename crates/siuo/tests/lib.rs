//! Integration tests: each builds a project in a temporary folder, runs the
//! real `siuo` binary in it, and checks exit status, messages and files.

mod bad_input;
mod browser;
mod calibrate;
mod classifiers;
mod dedupe;
mod difficulty;
mod docs;
mod eval;
mod examples;
mod generation_loop;
mod hostile_input;
mod near_dedupe;
mod openai;
mod pipeline;
mod release;
mod resume;
mod review;
mod scale;
mod support;
mod verify;
