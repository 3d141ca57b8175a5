//! siuo builds and grows SIUO ("safe inputs but unsafe output") cross-modal
//! safety benchmarks as staged, resumable jobs: generate, check, dedupe,
//! export. Backends sit behind one trait per kind: [`generator::Generator`],
//! [`image_source::ImageSource`], [`text_classifier::TextClassifier`] and
//! [`image_classifier::ImageClassifier`].

pub mod arguments;
pub mod atomic_file;
pub mod band;
pub mod calibrate;
pub mod calibration_report;
pub mod calibration_store;
pub mod classifier_panel;
pub mod config;
pub mod content_hash;
pub mod error;
pub mod eval;
pub mod generator;
pub mod html;
pub mod image_classifier;
pub mod image_source;
pub mod image_store;
pub mod input_file;
pub mod journal;
pub mod jury;
pub mod model_file;
pub mod openai;
pub mod parallel;
pub mod pixels;
pub mod progress;
pub mod project;
pub mod prompt_template;
pub mod quotation;
pub mod random;
pub mod record;
pub mod release;
pub mod remote_classifier;
pub mod report;
pub mod review;
pub mod shard;
pub mod similarity;
pub mod stage;
pub mod stage_dir;
pub mod status;
pub mod subcommand;
pub mod suggestion;
pub mod taxonomy;
pub mod text_classifier;
pub mod text_normal;
pub mod timestamp;

use std::io::Write as _;

/// Runs the command line and returns the process exit code.
pub fn run_cli() -> i32 {
    let arguments = arguments::Arguments::parse();
    let flags = &arguments.flags;
    let result =
        project::Project::load(flags.config.as_deref(), !flags.quiet).and_then(|mut project| {
            project.source_date_epoch = flags.source_date_epoch.clone();
            project.shard = arguments.subcommand.shard();
            arguments.subcommand.execute(&project)
        });
    match result {
        Ok(output) => {
            let text = if flags.json {
                format!("{}\n", output.json)
            } else {
                printable_lines(&output.text)
            };
            // A reader that stops early (`| head`) is not an error.
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
            {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    eprintln!("error: cannot write to stdout: {e}");
                    1
                }
                _ => match output.failure {
                    Some(failure) => {
                        eprintln!("error: {}", printable_lines(&failure.to_string()));
                        failure.exit_code()
                    }
                    None => 0,
                },
            }
        }
        Err(error) => {
            eprintln!("error: {}", printable_lines(&error.to_string()));
            if flags.json {
                println!(
                    "{}",
                    serde_json::json!({"error": {"kind": error.kind(), "message": error.to_string()}})
                );
            }
            error.exit_code()
        }
    }
}

/// What siuo prints for people, with every control or invisible character
/// inside a line escaped (see [`text_normal::terminal`]): messages and
/// tables quote names, reasons and questions from files anyone may edit,
/// and those must never rewrite the terminal.
fn printable_lines(text: &str) -> String {
    (text.split('\n'))
        .map(text_normal::terminal)
        .collect::<Vec<_>>()
        .join("\n")
}
