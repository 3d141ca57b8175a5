//! Stable content hashing for ids, cache keys and run fingerprints.
//!
//! Digests must never change across releases or platforms: stored ids and
//! released `candidate_id`s depend on them. Every field is length-prefixed so
//! that ("ab", "c") and ("a", "bc") differ, and callers feed fields in a fixed
//! order. Never feed a `HashMap` iteration or a `std::hash::Hash` value.

use std::fmt;

/// Incremental blake3 over length-prefixed fields.
pub struct ContentHasher(blake3::Hasher);

impl ContentHasher {
    /// `domain` separates digests of different kinds of things.
    pub fn new(domain: &str) -> Self {
        let mut hasher = ContentHasher(blake3::Hasher::new());
        hasher.field(domain.as_bytes());
        hasher
    }

    pub fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update(&(bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }

    pub fn str(&mut self, value: &str) -> &mut Self {
        self.field(value.as_bytes())
    }

    pub fn u64(&mut self, value: u64) -> &mut Self {
        self.field(&value.to_le_bytes())
    }

    pub fn finish(&self) -> Digest {
        Digest(*self.0.finalize().as_bytes())
    }
}

/// A blake3 digest; displays as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    pub fn of(bytes: &[u8]) -> Self {
        Digest(*blake3::hash(bytes).as_bytes())
    }

    pub fn hex(&self) -> String {
        self.to_string()
    }

    /// The digest `hex` shows; `None` unless it is 64 hex digits.
    pub fn from_hex(hex: &str) -> Option<Digest> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (index, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * index..2 * index + 2], 16).ok()?;
        }
        Some(Digest(bytes))
    }

    /// The first `chars` hex characters, for short ids.
    pub fn short(&self, chars: usize) -> String {
        let mut hex = self.hex();
        hex.truncate(chars);
        hex
    }
}

/// Digest of a config slice (or any typed value), for stage keys. JSON of
/// typed structs has a fixed field order, so equal values give equal digests.
pub fn digest_of<T: serde::Serialize>(value: &T) -> Digest {
    let json = serde_json::to_string(value).unwrap_or_default();
    ContentHasher::new("siuo.config").str(&json).finish()
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_length_prefixed() {
        let a = ContentHasher::new("t").str("ab").str("c").finish();
        let b = ContentHasher::new("t").str("a").str("bc").finish();
        assert_ne!(a, b);
    }

    #[test]
    fn digest_is_stable_across_releases() {
        // Pinned: changing these digests changes every stored id, cache key
        // and run name. The framing is each field's length as a u64
        // little-endian, then its bytes, the domain being the first field.
        let digest = ContentHasher::new("siuo").str("question").u64(7).finish();
        let mut framed = Vec::new();
        for field in [&b"siuo"[..], b"question", &7u64.to_le_bytes()] {
            framed.extend_from_slice(&(field.len() as u64).to_le_bytes());
            framed.extend_from_slice(field);
        }
        assert_eq!(digest, Digest::of(&framed));
        assert_eq!(digest.hex(), PINNED_SIUO_QUESTION_7);
        assert_eq!(digest.short(8), &PINNED_SIUO_QUESTION_7[..8]);
        assert_eq!(
            Digest::of(b"abc").hex(),
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
    }

    const PINNED_SIUO_QUESTION_7: &str =
        "93b96c6cdfb1ff2229ab546c285ab6527bae4bf7ecbdd9c68cac433467f99f6f";
}
