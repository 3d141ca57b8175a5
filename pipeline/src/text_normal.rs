//! Text normalization shared by the lexicon check and exact dedupe, so that
//! both see "Ｋill  Myself!" and "kill myself" as the same words.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_width_case_accents_and_punctuation() {
        assert_eq!(normalize("Ｋill  MYSELF!"), "kill myself");
        assert_eq!(normalize("  Café—crème? "), "cafe creme");
        assert_eq!(normalize("self-harm"), "self harm");
        assert_eq!(words("It's fine."), vec!["it", "s", "fine"]);
    }
}
