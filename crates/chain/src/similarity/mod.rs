//! Near-duplicate primitives of the dedupe stage: perceptual image hashes
//! (and their mirror), MinHash signatures of normalized questions, and the
//! sub-quadratic index that searches image hashes (multi-index hashing for
//! Hamming distance), plus union-find for duplicate clusters.
//!
//! Every structure here is iterative: an index of a million hashes must not
//! overflow the stack (imagededup's BK-tree did at 180k images, its issue #103).

pub mod case_index;
pub mod config;
pub mod hamming_index;
pub mod image_hash;
pub mod minhash;
pub mod union_find;
