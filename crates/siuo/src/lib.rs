//! The `siuo` command line: its arguments and subcommands, `siuo status`,
//! the release report, the review desk, `siuo eval`, calibration and the
//! release commands (import, diff, the VLMEvalKit export). The stages are
//! in `siuo-chain`, the foundation in `siuo-core`.

pub mod arguments;
pub mod calibrate;
pub mod diff;
pub mod eval;
pub mod import;
pub mod report;
pub mod review;
pub mod status;
pub mod subcommand;
pub mod vlmevalkit;

use std::io::Write as _;

/// Runs the command line and returns the process exit code.
pub fn run_cli() -> i32 {
    let arguments = arguments::Arguments::parse();
    let flags = &arguments.flags;
    let result = siuo_chain::project::Project::load(flags.config.as_deref(), !flags.quiet)
        .and_then(|mut project| {
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
/// inside a line escaped (see [`siuo_core::text_normal::terminal`]): messages and
/// tables quote names, reasons and questions from files anyone may edit,
/// and those must never rewrite the terminal.
fn printable_lines(text: &str) -> String {
    (text.split('\n'))
        .map(siuo_core::text_normal::terminal)
        .collect::<Vec<_>>()
        .join("\n")
}
