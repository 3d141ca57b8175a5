//! BERT's uncased WordPiece tokenizer, exactly as the model's own
//! `tokenizer.json` (Hugging Face tokenizers' BertNormalizer and
//! BertPreTokenizer) that sentence-transformers loads for all-MiniLM-L6-v2:
//! special tokens typed in the text are kept whole; then clean (drop NUL,
//! U+FFFD and control, format and private-use characters; any Unicode
//! whitespace is a space), space out CJK ideographs, strip accents (NFD,
//! drop non-spacing marks), lowercase character by character, split on
//! whitespace and on punctuation (ASCII punctuation and Unicode P*), then
//! greedy longest-match word pieces from `vocab.txt`.
//!
//! It must match the training tokenizer exactly: a different split gives
//! the encoder inputs it never saw, and scores drift silently. A test
//! compares it with the reference on 604 sentences.

use std::collections::HashMap;

use unicode_general_category::{GeneralCategory, get_general_category};
use unicode_normalization::UnicodeNormalization;

/// Longer words become `[UNK]`, as in BERT.
const MAX_CHARS_PER_WORD: usize = 100;

pub struct WordPiece {
    vocab: HashMap<String, u32>,
    unk: u32,
    cls: u32,
    sep: u32,
    /// Special tokens recognised when typed in the text, as the reference does.
    specials: Vec<(String, u32)>,
}

const SPECIAL_TOKENS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

impl WordPiece {
    /// Reads `vocab.txt`: one token per line, the line number is the id.
    pub fn from_vocab(text: &str) -> Result<Self, String> {
        let vocab: HashMap<String, u32> = text
            .lines()
            .enumerate()
            .map(|(id, token)| (token.to_owned(), id as u32))
            .collect();
        let special = |name: &str| {
            vocab
                .get(name)
                .copied()
                .ok_or_else(|| format!("vocabulary has no {name} token"))
        };
        let specials = SPECIAL_TOKENS
            .iter()
            .filter_map(|t| vocab.get(*t).map(|id| ((*t).to_owned(), *id)))
            .collect();
        Ok(WordPiece {
            unk: special("[UNK]")?,
            cls: special("[CLS]")?,
            sep: special("[SEP]")?,
            specials,
            vocab,
        })
    }

    /// `[CLS] pieces… [SEP]`, at most `max_len` ids (pieces are truncated).
    pub fn encode(&self, text: &str, max_len: usize) -> Vec<u32> {
        let mut ids = vec![self.cls];
        let mut rest = text;
        loop {
            let next = self
                .specials
                .iter()
                .filter_map(|(token, id)| rest.find(token.as_str()).map(|at| (at, token, *id)))
                .min_by_key(|(at, ..)| *at);
            let (before, special) = match next {
                Some((at, token, id)) => (&rest[..at], Some((token.len() + at, id))),
                None => (rest, None),
            };
            for word in basic_tokens(before) {
                self.push_pieces(&word, &mut ids);
            }
            match special {
                Some((end, id)) => {
                    ids.push(id);
                    rest = &rest[end..];
                }
                None => break,
            }
        }
        ids.truncate(max_len.saturating_sub(1).max(1));
        ids.push(self.sep);
        ids
    }

    fn push_pieces(&self, word: &str, ids: &mut Vec<u32>) {
        let chars: Vec<char> = word.chars().collect();
        if chars.len() > MAX_CHARS_PER_WORD {
            ids.push(self.unk);
            return;
        }
        let mut pieces = Vec::new();
        let mut start = 0;
        while start < chars.len() {
            let mut end = chars.len();
            let mut found = None;
            while start < end {
                let mut piece: String = chars[start..end].iter().collect();
                if start > 0 {
                    piece.insert_str(0, "##");
                }
                if let Some(&id) = self.vocab.get(&piece) {
                    found = Some(id);
                    break;
                }
                end -= 1;
            }
            match found {
                Some(id) => {
                    pieces.push(id);
                    start = end;
                }
                // One unknown piece makes the whole word unknown.
                None => {
                    ids.push(self.unk);
                    return;
                }
            }
        }
        ids.extend(pieces);
    }
}

/// BertNormalizer (clean text, CJK, strip accents, lowercase) then
/// BertPreTokenizer (whitespace, punctuation).
fn basic_tokens(text: &str) -> Vec<String> {
    let mut cleaned = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c == '\0' || c == '\u{FFFD}' || is_control(c) {
            continue;
        }
        if is_whitespace(c) {
            cleaned.push(' ');
        } else if is_cjk(c as u32) {
            cleaned.push(' ');
            cleaned.push(c);
            cleaned.push(' ');
        } else {
            cleaned.push(c);
        }
    }
    // Per character, as the reference: a capital final sigma becomes σ.
    let folded: String = cleaned
        .nfd()
        .filter(|c| get_general_category(*c) != GeneralCategory::NonspacingMark)
        .flat_map(char::to_lowercase)
        .collect();
    let mut tokens = Vec::new();
    for word in folded.split(is_whitespace).filter(|w| !w.is_empty()) {
        let mut current = String::new();
        for c in word.chars() {
            if is_punctuation(c) {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
                tokens.push(c.to_string());
            } else {
                current.push(c);
            }
        }
        if !current.is_empty() {
            tokens.push(current);
        }
    }
    tokens
}

fn is_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r') || c.is_whitespace()
}

/// Control, format and private-use characters (tab, newline and carriage
/// return are whitespace instead).
fn is_control(c: char) -> bool {
    !matches!(c, '\t' | '\n' | '\r')
        && matches!(
            get_general_category(c),
            GeneralCategory::Control | GeneralCategory::Format | GeneralCategory::PrivateUse
        )
}

/// ASCII punctuation (BERT counts `$+<=>^`|~` too) and Unicode P*.
fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(
            get_general_category(c),
            GeneralCategory::ConnectorPunctuation
                | GeneralCategory::DashPunctuation
                | GeneralCategory::OpenPunctuation
                | GeneralCategory::ClosePunctuation
                | GeneralCategory::InitialPunctuation
                | GeneralCategory::FinalPunctuation
                | GeneralCategory::OtherPunctuation
        )
}

fn is_cjk(code: u32) -> bool {
    (0x4E00..=0x9FFF).contains(&code)
        || (0x3400..=0x4DBF).contains(&code)
        || (0x20000..=0x2A6DF).contains(&code)
        || (0x2A700..=0x2B73F).contains(&code)
        || (0x2B740..=0x2B81F).contains(&code)
        || (0x2B820..=0x2CEAF).contains(&code)
        || (0xF900..=0xFAFF).contains(&code)
        || (0x2F800..=0x2FA1F).contains(&code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer() -> WordPiece {
        let vocab = [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "hello", "world", "!",
            "cafe", ",", "中",
        ]
        .join("\n");
        WordPiece::from_vocab(&vocab).expect("test vocabulary has the special tokens")
    }

    #[test]
    fn splits_words_into_longest_pieces_and_wraps_them() {
        assert_eq!(
            tokenizer().encode("Unaffable HELLO, world!", 64),
            vec![2, 4, 5, 6, 7, 11, 8, 9, 3]
        );
    }

    #[test]
    fn strips_accents_and_marks_unknown_words() {
        assert_eq!(tokenizer().encode("Café xyz 中", 64), vec![2, 10, 1, 12, 3]);
    }

    #[test]
    fn truncates_to_the_maximum_length_keeping_sep() {
        assert_eq!(tokenizer().encode("hello world hello", 3), vec![2, 7, 3]);
    }

    /// Tests that load the embedded model files (`./justw test-models`).
    mod models {
        use super::*;

        /// The reference tokenizer's ids for 604 sentences (edge cases of every
        /// rule), made by `tests/fixtures/make_wordpiece_reference.py`.
        #[test]
        #[ignore = "loads the embedded models: ./justw test-models, part of ./justw test"]
        fn matches_the_reference_tokenizer_on_every_fixture_sentence() -> Result<(), String> {
            let models = siuo_core::model_file::checkout_models_dir();
            let vocab = siuo_core::model_file::MINILM_VOCAB
                .load(&models)
                .map_err(|e| e.to_string())?;
            let wordpiece = WordPiece::from_vocab(&String::from_utf8_lossy(&vocab))?;
            let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/wordpiece-reference.json");
            let text = std::fs::read_to_string(&fixture).map_err(|e| e.to_string())?;
            let reference: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| e.to_string())?;
            let sentences = reference["sentences"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert!(sentences.len() > 500, "{} sentences", sentences.len());
            let mismatches: Vec<String> = sentences
                .iter()
                .filter_map(|s| {
                    let text = s["text"].as_str()?;
                    let expected: Vec<u32> = serde_json::from_value(s["ids"].clone()).ok()?;
                    let actual = wordpiece.encode(text, 512);
                    (actual != expected).then(|| format!("{text:?}: {actual:?} != {expected:?}"))
                })
                .collect();
            assert!(
                mismatches.is_empty(),
                "{} differ:\n{}",
                mismatches.len(),
                mismatches.join("\n")
            );
            Ok(())
        }
    }
}
