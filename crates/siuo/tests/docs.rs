//! Every command the README and `docs/` print in a shell block is run by
//! a test: [`RUN_BY`] names the test for each, and that test's file must
//! hold the command's subcommand and every option it shows, as string
//! literals. A `./justw` command must be a recipe of the justfile (CI runs
//! `./justw test`). What this machine cannot run (a model server, a
//! cluster) is listed in [`OTHER_MACHINES`] and named in the output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support::repo;

/// (start of a command as the docs print it, the test that runs it).
const RUN_BY: &[(&str, &str)] = &[
    (
        "siuo verify-release",
        "verify_names_a_flipped_byte_and_a_missing_file",
    ),
    (
        "siuo report",
        "a_case_the_jury_held_is_edited_on_the_desk_and_verified_again",
    ),
    (
        "siuo review --port",
        "the_desk_listens_on_the_port_it_is_given_and_records_its_reviewer",
    ),
    (
        "siuo review rf87e13a00f3d --all",
        "the_desk_refuses_requests_without_its_token_and_a_team_is_measured",
    ),
    (
        "siuo review --all",
        "the_desk_refuses_requests_without_its_token_and_a_team_is_measured",
    ),
    (
        "siuo review",
        "a_broken_ledger_is_named_and_nothing_released_is_lost",
    ),
    (
        "siuo-emulator",
        "the_emulator_process_prints_its_address_and_answers_there",
    ),
    (
        "siuo eval latest",
        "the_html_leaderboard_renders_with_its_charts_in_chromium",
    ),
    (
        "siuo eval",
        "scripted_targets_score_exactly_what_their_scripts_say",
    ),
    (
        "siuo --config siuo.openai.yaml",
        "example_config_releases_cases_from_the_emulator_in_both_modes",
    ),
    (
        "siuo retire",
        "retire_and_relabel_make_a_major_release_that_diff_and_changelog_list",
    ),
    (
        "siuo relabel",
        "retire_and_relabel_make_a_major_release_that_diff_and_changelog_list",
    ),
    (
        "siuo run",
        "retire_and_relabel_make_a_major_release_that_diff_and_changelog_list",
    ),
    (
        "siuo diff",
        "retire_and_relabel_make_a_major_release_that_diff_and_changelog_list",
    ),
    (
        "siuo import",
        "import_keeps_ids_and_the_next_run_is_a_minor_release_of_additions_only",
    ),
    (
        "siuo vlmevalkit",
        "a_release_is_written_as_vlmevalkit_reads_it",
    ),
    (
        "inspect eval examples/siuo_inspect.py",
        "the_inspect_example_sends_each_case_as_one_turn_of_image_and_text",
    ),
    (
        "python examples/siuo_pyrit.py",
        "the_pyrit_example_sends_each_case_as_one_turn_of_image_and_text",
    ),
];

/// Programs of other machines the docs tell people to run: model servers,
/// a cluster's scheduler, an SSH tunnel. No test here can run them.
const OTHER_MACHINES: &[&str] = &["vllm", "ollama", "ssh", "kubectl", "sed", "submit.sh"];

/// Every command of a shell block in the README and `docs/`, by place.
fn documented_commands() -> Vec<(String, String)> {
    let mut files = vec![repo().join("README.md")];
    let mut pending = vec![repo().join("docs")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("docs folder").flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut commands = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a docs page");
        let name = file
            .strip_prefix(repo())
            .unwrap_or(&file)
            .display()
            .to_string();
        let mut in_shell = false;
        let mut joined = String::new();
        for (index, line) in text.lines().enumerate() {
            if let Some(fence) = line.strip_prefix("```") {
                in_shell = !in_shell && matches!(fence, "sh" | "bash" | "console" | "shell");
                continue;
            }
            if !in_shell {
                continue;
            }
            let code = strip_comment(line);
            joined.push_str(code.trim_end_matches('\\').trim());
            joined.push(' ');
            if code.trim_end().ends_with('\\') {
                continue;
            }
            let command = joined.trim().to_owned();
            joined.clear();
            if !command.is_empty() && !command.starts_with("export ") {
                commands.push((format!("{name}:{}", index + 1), command));
            }
        }
    }
    commands
}

/// The line without a `# comment` (outside quotes).
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    for (at, c) in line.char_indices() {
        match (c, quote) {
            ('"' | '\'', None) => quote = Some(c),
            (c, Some(q)) if c == q => quote = None,
            ('#', None) if at == 0 || line[..at].ends_with(' ') => return &line[..at],
            _ => {}
        }
    }
    line
}

/// The command as siuo's users type it: `cargo run … -- ARGS` is `siuo
/// ARGS` (or `siuo-emulator ARGS`), leading `NAME=value` settings and `cd
/// …&&` dropped, optional `[…]` parts left out.
fn normalized(command: &str) -> String {
    let mut command = command.to_owned();
    if let Some((_, rest)) = command.split_once("&& ") {
        command = rest.to_owned();
    }
    let mut words: Vec<&str> = command.split_whitespace().collect();
    while words
        .first()
        .is_some_and(|w| w.contains('=') && !w.starts_with('-'))
    {
        words.remove(0);
    }
    if words.first() == Some(&"cargo") && words.get(1) == Some(&"run") {
        let program = match words.iter().position(|w| *w == "-p") {
            Some(at) => words.get(at + 1).copied().unwrap_or("siuo"),
            None => "siuo",
        };
        let args = match words.iter().position(|w| *w == "--") {
            Some(at) => words[at + 1..].to_vec(),
            None => Vec::new(),
        };
        words = std::iter::once(program).chain(args).collect();
    }
    let mut kept = Vec::new();
    let mut optional = 0;
    for word in words {
        optional += word.matches('[').count();
        if optional == 0 {
            kept.push(word);
        }
        optional -= word.matches(']').count().min(optional);
    }
    kept.join(" ")
}

/// Test file → its text, for every test source of the workspace.
fn test_sources() -> BTreeMap<PathBuf, String> {
    let mut sources = BTreeMap::new();
    for krate in ["core", "chain", "siuo", "emulator"] {
        let dir = repo().join("crates").join(krate).join("tests");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("a test file");
                sources.insert(path, text);
            }
        }
    }
    sources
}

fn recipes() -> Vec<String> {
    let justfile = std::fs::read_to_string(repo().join("justfile")).expect("justfile");
    justfile
        .lines()
        .filter(|l| !l.starts_with([' ', '\t', '#']) && l.contains(':') && !l.contains(":="))
        .filter_map(|l| l.split([' ', ':']).next().map(str::to_owned))
        .filter(|name| !name.is_empty() && name != "set")
        .collect()
}

#[test]
fn every_command_in_the_docs_is_run_by_a_test() {
    let sources = test_sources();
    let recipes = recipes();
    let mut problems = Vec::new();
    let mut elsewhere = Vec::new();
    let commands = documented_commands();
    assert!(commands.len() > 20, "found {} commands", commands.len());
    for (place, command) in &commands {
        let command = normalized(command);
        let program = command.split_whitespace().next().unwrap_or_default();
        if let Some(recipe) = command.strip_prefix("./justw ") {
            let recipe = recipe.split_whitespace().next().unwrap_or_default();
            if !recipes.iter().any(|r| r == recipe) {
                problems.push(format!(
                    "{place}: `./justw {recipe}` is no recipe of the justfile"
                ));
            }
            continue;
        }
        if OTHER_MACHINES.iter().any(|p| program.ends_with(p)) {
            elsewhere.push(format!("{place}: {command}"));
            continue;
        }
        let Some((_, test)) = RUN_BY
            .iter()
            .find(|(start, _)| command == *start || command.starts_with(&format!("{start} ")))
        else {
            problems.push(format!(
                "{place}: no test runs `{command}`; add one and list it in RUN_BY"
            ));
            continue;
        };
        let Some((file, text)) = sources
            .iter()
            .find(|(_, text)| text.contains(&format!("fn {test}(")))
        else {
            problems.push(format!(
                "{place}: `{command}` names the test {test}, which does not exist"
            ));
            continue;
        };
        // The subcommand and every option must be in the test's file.
        let words: Vec<&str> = command.split_whitespace().skip(1).collect();
        let mut wanted: Vec<String> = words
            .iter()
            .filter(|w| w.starts_with("--"))
            .map(|w| w.split('=').next().unwrap_or(w).to_owned())
            .collect();
        if program == "siuo" {
            let mut rest = words.iter();
            while let Some(word) = rest.next() {
                if *word == "--config" {
                    rest.next();
                } else if !word.starts_with('-') {
                    wanted.push((*word).to_owned());
                    break;
                }
            }
        } else {
            // Another program: its name, anywhere in the file (a path, a
            // `CARGO_BIN_EXE_` variable).
            let name = Path::new(program)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            if !name.as_ref().is_some_and(|n| text.contains(n.as_str())) {
                problems.push(format!(
                    "{place}: `{command}`: the test's file never names `{program}`"
                ));
            }
        }
        for word in wanted {
            if !text.contains(&format!("\"{word}\"")) {
                problems.push(format!(
                    "{place}: `{command}`: {} (which runs it) has no `\"{word}\"`",
                    file.strip_prefix(repo()).unwrap_or(file).display()
                ));
            }
        }
    }
    for line in &elsewhere {
        println!("run on another machine, not here: {line}");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn shell_blocks_are_read_as_a_person_types_them() {
    assert_eq!(
        normalized("cargo run --quiet -p siuo-emulator -- --port 8000"),
        "siuo-emulator --port 8000"
    );
    assert_eq!(
        normalized("cargo run --quiet -- verify-release"),
        "siuo verify-release"
    );
    assert_eq!(
        normalized("siuo verify-release [VERSION]"),
        "siuo verify-release"
    );
    assert_eq!(
        normalized("siuo import a.json [--images dir] [--category-map m.yaml]"),
        "siuo import a.json"
    );
    assert_eq!(
        normalized("OPENAI_CHAT_KEY=... python examples/siuo_pyrit.py x"),
        "python examples/siuo_pyrit.py x"
    );
    assert_eq!(strip_comment("siuo run   # all six"), "siuo run   ");
    assert_eq!(
        strip_comment("siuo retire 1 --reason \"a # b\""),
        "siuo retire 1 --reason \"a # b\""
    );
}
