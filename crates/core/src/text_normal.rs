//! Text normalization shared by the lexicon check and exact dedupe, so that
//! both see "Ｋill  Myself!" and "kill myself" as the same words; what the
//! text classifiers are shown ([`visible`]), and what a release may hold
//! ([`printable`]).

use unicode_general_category::{GeneralCategory, get_general_category};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Bidirectional controls: they make text display in another order than
/// it is stored (U+202E turns "flesym" into "myself" on screen), so what a
/// classifier reads is not what a model or a reader sees.
pub fn has_bidi_controls(text: &str) -> bool {
    text.chars()
        .any(|c| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
}

/// The text as a reader sees it, for the text classifiers: format
/// characters (zero-width spaces and joiners, soft hyphens, BOM, bidi
/// controls) and control characters other than tab and newline removed,
/// ANSI escape sequences removed, and every non-ASCII character whose
/// UTS #39 skeleton is ASCII folded to it (Cyrillic "о" in "bоmb" becomes
/// "o"). ASCII is left alone: skeletons would turn "m" into "rn".
pub fn visible(text: &str) -> String {
    let kept: String = printable(text)
        .chars()
        .filter(|c| get_general_category(*c) != GeneralCategory::Format)
        .collect();
    let mut out = String::with_capacity(kept.len());
    let mut word = String::new();
    for c in kept.chars() {
        if c.is_whitespace() {
            out.push_str(&fold_look_alikes(&word));
            word.clear();
            out.push(c);
        } else {
            word.push(c);
        }
    }
    out.push_str(&fold_look_alikes(&word));
    out
}

/// A word that mixes ASCII letters with other characters gets those
/// characters' ASCII skeletons; a word in one script stays as it is, so
/// real Cyrillic or Greek text is not turned into Latin.
fn fold_look_alikes(word: &str) -> String {
    if !word.chars().any(|c| c.is_ascii_alphabetic()) || word.is_ascii() {
        return word.to_owned();
    }
    word.chars()
        .map(|c| {
            if c.is_ascii() {
                return c.to_string();
            }
            let skeleton: String = unicode_security::skeleton(&c.to_string()).collect();
            if skeleton.is_ascii() && skeleton.chars().all(|s| s.is_ascii_alphanumeric()) {
                skeleton
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// [`printable`] text on one line: every run of whitespace, newlines
/// included, becomes one space.
pub fn one_line(text: &str) -> String {
    printable(text)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `text` without ANSI escape sequences and without control characters
/// other than tab and newline (NUL, BEL, ESC, DEL, C1): what a released
/// field may hold.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1B}' {
            // CSI: ESC [ parameters… final byte in @..~; other escapes: ESC + one.
            if chars.peek() == Some(&'[') {
                chars.next();
                for next in chars.by_ref() {
                    if ('@'..='~').contains(&next) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
            continue;
        }
        if c.is_control() && !matches!(c, '\t' | '\n') {
            continue;
        }
        out.push(c);
    }
    out
}

/// NFKC, case-folded, accents removed, every run of non-alphanumeric
/// characters turned into one space, trimmed.
pub fn normalize(text: &str) -> String {
    let folded: String = text.nfkc().collect::<String>().to_lowercase();
    let mut out = String::with_capacity(folded.len());
    let mut pending_space = false;
    for c in folded.nfd().filter(|c| !is_combining_mark(*c)) {
        if c.is_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push(c);
        } else {
            pending_space = true;
        }
    }
    out.nfc().collect()
}

/// The words of `normalize(text)`.
pub fn words(text: &str) -> Vec<String> {
    normalize(text)
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `text` safe to print on a terminal: every control, bidirectional or
/// other invisible format character, and the Unicode line separators,
/// written as an escape (`\u{202e}`), so text from a file can never
/// rewrite the terminal it is shown on or look like another text.
pub fn terminal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let hidden = c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}')
            || get_general_category(c) == GeneralCategory::Format;
        match hidden {
            true => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            false => out.push(c),
        }
    }
    out
}

/// At most `max` characters of `text`, made safe by [`terminal`], for a
/// message.
pub fn shown(text: &str, max: usize) -> String {
    let head: String = text.chars().take(max).collect();
    let mut out = terminal(&head);
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

/// Longest reviewer name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest reason a person may give for a decision, in characters.
pub const MAX_REASON_CHARS: usize = 2000;

/// Why `name` cannot name a person in a record siuo prints and releases
/// (a reviewer): 1 to [`MAX_NAME_CHARS`] characters, no space at either
/// end, in Unicode NFC, and no control, bidirectional or other invisible
/// format character (zero-width spaces and joiners), any of which would
/// let a name look like another one or rewrite a terminal.
pub fn check_name(name: &str) -> Result<(), String> {
    let count = name.chars().count();
    if name.trim().is_empty() {
        return Err("is empty".to_owned());
    }
    if count > MAX_NAME_CHARS {
        return Err(format!(
            "is {count} characters long (at most {MAX_NAME_CHARS})"
        ));
    }
    if name.trim() != name {
        return Err("starts or ends with a space".to_owned());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| c.is_control() || get_general_category(*c) == GeneralCategory::Format)
    {
        return Err(format!(
            "holds the invisible or control character U+{:04X}",
            u32::from(bad)
        ));
    }
    if name.nfc().collect::<String>() != name {
        return Err("is not in Unicode NFC (normalize it, as the desk does)".to_owned());
    }
    Ok(())
}

/// Why `reason` cannot be a decision's reason: at most
/// [`MAX_REASON_CHARS`] characters on one line, with no control or
/// bidirectional character (it is printed, and written into the changelog's
/// list items, where a newline would start a heading).
pub fn check_reason(reason: &str) -> Result<(), String> {
    let count = reason.chars().count();
    if count > MAX_REASON_CHARS {
        return Err(format!(
            "is {count} characters long (at most {MAX_REASON_CHARS})"
        ));
    }
    if let Some(bad) = reason.chars().find(|c| c.is_control()) {
        return Err(format!(
            "holds the control character U+{:04X} (a reason is one line of text)",
            u32::from(bad)
        ));
    }
    if has_bidi_controls(reason) {
        return Err("holds a bidirectional control character".to_owned());
    }
    Ok(())
}

/// Why a field a person wrote (a question, a warning) cannot be shown and
/// released as it is: control characters other than tab and newline, ANSI
/// escapes or bidirectional controls.
pub fn check_text(text: &str) -> Result<(), String> {
    if printable(text) != text {
        return Err("holds control characters or terminal escapes".to_owned());
    }
    if has_bidi_controls(text) {
        return Err("holds a bidirectional control character".to_owned());
    }
    Ok(())
}

/// Models often wrap JSON in a Markdown code fence.
pub fn strip_code_fence(content: &str) -> &str {
    let trimmed = content.trim();
    let Some(rest) = trimmed.strip_prefix("```") else {
        return trimmed;
    };
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    rest.strip_suffix("```").unwrap_or(rest).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_text_drops_invisible_characters_and_folds_look_alikes() {
        assert_eq!(visible("k\u{200B}ill my\u{00AD}self"), "kill myself");
        assert_eq!(visible("b\u{043E}mb"), "bomb");
        assert_eq!(
            visible("how to make \u{0440}\u{043E}is\u{043E}n"),
            "how to make poison"
        );
        assert_eq!(visible("z\u{200D}w\u{2060}j\u{FEFF}"), "zwj");
        // Real non-Latin text and ASCII are kept as they are.
        assert_eq!(visible("Это кот?"), "Это кот?");
        assert_eq!(visible("modern 中文"), "modern 中文");
        assert_eq!(visible("\u{1b}[31mred\u{1b}[0m\u{7}"), "red");
    }

    #[test]
    fn names_and_reasons_are_checked_as_the_desk_checks_them() {
        assert_eq!(
            terminal("ana\u{1b}[2J\n\u{202e}x"),
            "ana\\u{1b}[2J\\u{a}\\u{202e}x"
        );
        assert_eq!(shown("don't \"quote\"", 3), "don…");
        assert!(check_name("Ana Lima").is_ok());
        assert!(check_name("José").is_ok());
        for bad in [
            "",
            "  ",
            " ana",
            "ana\n",
            "an\u{1b}[31ma",
            "a\u{200B}na",
            "ana\u{202E}",
            "Jose\u{301}",
            &"x".repeat(65),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_reason("too easy: the text says it").is_ok());
        assert!(check_reason("two\nlines").is_err());
        assert!(check_reason("\u{2066}hidden").is_err());
        let long = check_reason(&"r".repeat(2001)).expect_err("too long");
        assert!(long.contains("at most 2000"), "{long}");
        assert!(check_text("a question?\nwith two lines").is_ok());
        assert!(check_text("\u{1b}[2Jclear").is_err());
    }

    #[test]
    fn bidi_controls_are_detected() {
        assert!(has_bidi_controls("\u{202E}flesym llik"));
        assert!(has_bidi_controls("a\u{2067}b"));
        assert!(!has_bidi_controls("plain text, «quoted»"));
    }

    #[test]
    fn printable_keeps_text_and_drops_controls_and_escapes() {
        assert_eq!(
            printable("What\u{0} is\u{7} \u{1b}[1;31mthis\u{1b}[0m?\nSecond\tline"),
            "What is this?\nSecond\tline"
        );
        assert_eq!(printable("café ☕"), "café ☕");
    }

    #[test]
    fn folds_width_case_accents_and_punctuation() {
        assert_eq!(normalize("Ｋill  MYSELF!"), "kill myself");
        assert_eq!(normalize("  Café—crème? "), "cafe creme");
        assert_eq!(normalize("self-harm"), "self harm");
        assert_eq!(words("It's fine."), vec!["it", "s", "fine"]);
    }
}
