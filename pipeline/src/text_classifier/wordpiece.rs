//! BERT's uncased WordPiece tokenizer, as the `BertTokenizer` that
//! all-MiniLM-L6-v2 was trained with: clean, split CJK characters, lowercase,
//! strip accents, split on whitespace and punctuation, then greedy
//! longest-match word pieces from `vocab.txt`.
//!
//! It must match the training tokenizer exactly: a different split gives
//! the encoder inputs it never saw, and scores drift silently.

use std::collections::HashMap;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Longer words become `[UNK]`, as in BERT.
const MAX_CHARS_PER_WORD: usize = 100;

pub struct WordPiece {
    vocab: HashMap<String, u32>,
    unk: u32,
    cls: u32,
    sep: u32,
}

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
        Ok(WordPiece {
            unk: special("[UNK]")?,
            cls: special("[CLS]")?,
            sep: special("[SEP]")?,
            vocab,
        })
    }

    /// `[CLS] pieces… [SEP]`, at most `max_len` ids (pieces are truncated).
    pub fn encode(&self, text: &str, max_len: usize) -> Vec<u32> {
        let mut ids = vec![self.cls];
        for word in basic_tokens(text) {
            self.push_pieces(&word, &mut ids);
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

/// BERT's BasicTokenizer with `do_lower_case` and accent stripping.
fn basic_tokens(text: &str) -> Vec<String> {
    let mut spaced = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        let code = c as u32;
        if code == 0 || code == 0xFFFD || is_control(c) {
            continue;
        }
        if is_whitespace(c) {
            spaced.push(' ');
        } else if is_cjk(code) {
            spaced.push(' ');
            spaced.push(c);
            spaced.push(' ');
        } else {
            spaced.push(c);
        }
    }
    let mut tokens = Vec::new();
    for word in spaced.split(' ').filter(|w| !w.is_empty()) {
        let folded: String = word
            .to_lowercase()
            .nfd()
            .filter(|c| !is_combining_mark(*c))
            .collect();
        let mut current = String::new();
        for c in folded.chars() {
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

fn is_control(c: char) -> bool {
    !matches!(c, '\t' | '\n' | '\r') && c.is_control()
}

/// ASCII non-alphanumerics count as punctuation (BERT's rule), plus the
/// Unicode punctuation blocks a question realistically contains.
fn is_punctuation(c: char) -> bool {
    let code = c as u32;
    (33..=47).contains(&code)
        || (58..=64).contains(&code)
        || (91..=96).contains(&code)
        || (123..=126).contains(&code)
        || matches!(code, 0xA1 | 0xA7 | 0xAB | 0xB6 | 0xB7 | 0xBB | 0xBF)
        || (0x2010..=0x2027).contains(&code)
        || (0x2030..=0x205E).contains(&code)
        || (0x3001..=0x3003).contains(&code)
        || (0x3008..=0x3011).contains(&code)
        || (0xFF01..=0xFF0F).contains(&code)
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
}
