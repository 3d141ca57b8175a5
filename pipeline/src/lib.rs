//! siuo builds and grows SIUO ("safe inputs but unsafe output") cross-modal
//! safety benchmarks as staged, resumable jobs: generate, check, dedupe,
//! export. Backends sit behind one trait per kind: [`generator::Generator`],
//! [`image_source::ImageSource`], [`text_classifier::TextClassifier`] and
//! [`image_classifier::ImageClassifier`].

pub mod arguments;
pub mod atomic_file;
pub mod config;
pub mod content_hash;
pub mod emulator;
pub mod error;
pub mod generator;
pub mod image_classifier;
pub mod image_source;
pub mod image_store;
pub mod input_file;
pub mod journal;
pub mod openai;
pub mod pixels;
pub mod progress;
pub mod project;
pub mod random;
pub mod record;
pub mod release;
pub mod stage;
pub mod status;
pub mod subcommand;
pub mod suggestion;
pub mod taxonomy;
pub mod text_classifier;
pub mod text_normal;

use clap::Parser;

/// Runs the command line and returns the process exit code.
pub fn run_cli() -> i32 {
    let arguments = arguments::Arguments::parse();
    let result = project::Project::load(arguments.config.as_deref(), !arguments.quiet)
        .and_then(|project| arguments.subcommand().execute(&project));
    match result {
        Ok(output) => {
            if arguments.json {
                println!("{}", output.json);
            } else {
                print!("{}", output.text);
            }
            0
        }
        Err(error) => {
            eprintln!("error: {error}");
            if arguments.json {
                println!(
                    "{}",
                    serde_json::json!({"error": {"kind": error.kind(), "message": error.to_string()}})
                );
            }
            error.exit_code()
        }
    }
}
