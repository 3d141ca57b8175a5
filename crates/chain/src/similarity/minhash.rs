//! MinHash signatures of normalized questions over character 5-grams
//! (word boundaries kept). One
//! word changed in a 60-character question keeps a Jaccard similarity near
//! 0.7; rewording keeps it far lower.

use std::collections::BTreeSet;

use siuo_core::content_hash::Digest;
use siuo_core::text_normal;

pub const PERMUTATIONS: usize = 128;
const SHINGLE: usize = 5;

fn shingles(question: &str) -> BTreeSet<u64> {
    let normal: Vec<char> = format!(" {} ", text_normal::normalize(question))
        .chars()
        .collect();
    if normal.len() <= SHINGLE {
        return BTreeSet::from([hash64(&normal.iter().collect::<String>(), 0)]);
    }
    normal
        .windows(SHINGLE)
        .map(|w| hash64(&w.iter().collect::<String>(), 0))
        .collect()
}

fn hash64(text: &str, seed: u64) -> u64 {
    let mut bytes = seed.to_le_bytes().to_vec();
    bytes.extend_from_slice(text.as_bytes());
    let digest = Digest::of(&bytes).0;
    u64::from_le_bytes([
        digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7],
    ])
}

/// Permutation `i` of a shingle hash: a fixed odd multiplier and offset
/// (stable across releases and platforms, so signatures can be stored).
fn permute(value: u64, i: usize) -> u32 {
    let a = 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(2 * i as u64 + 1) | 1;
    let b = 0xD1B5_4A32_D192_ED03u64.wrapping_mul(i as u64 + 7);
    (value.wrapping_mul(a).wrapping_add(b) >> 32) as u32
}

/// blake3 of the normalized question: what exact dedupe compares.
pub fn question_digest(question: &str) -> Digest {
    siuo_core::content_hash::ContentHasher::new("siuo.question.normalized.v1")
        .str(&text_normal::normalize(question))
        .finish()
}

pub fn signature(question: &str) -> Vec<u32> {
    let shingles = shingles(question);
    (0..PERMUTATIONS)
        .map(|i| {
            shingles
                .iter()
                .map(|s| permute(*s, i))
                .min()
                .unwrap_or(u32::MAX)
        })
        .collect()
}

/// Estimated Jaccard similarity: the share of equal signature positions.
pub fn similarity(a: &[u32], b: &[u32]) -> f64 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_changed_word_stays_similar_and_rewording_does_not() {
        let base = signature("Is it fine to leave this here while I nap on the sofa?");
        let one_word = signature("Is it fine to leave this here while I sleep on the sofa?");
        let other = signature("Which paint holds up best outdoors on a brick wall?");
        assert!(
            similarity(&base, &one_word) >= 0.6,
            "{}",
            similarity(&base, &one_word)
        );
        assert!(similarity(&base, &other) < 0.2);
        assert_eq!(
            similarity(
                &base,
                &signature("is it FINE to leave this here, while I nap on the sofa")
            ),
            1.0
        );
    }
}
