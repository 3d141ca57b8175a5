//! Near-duplicate primitives of the dedupe stage: perceptual image hashes
//! (and their mirror), MinHash signatures of normalized questions, and the
//! sub-quadratic indexes that search them (a BK-tree for Hamming distance,
//! LSH banding for MinHash), plus union-find for duplicate clusters.
//!
//! Every structure here is iterative: a BK-tree of a million hashes must not
//! overflow the stack (imagededup's issue #103 did at 180k images).

pub mod bk_tree;
pub mod case_index;
pub mod config;
pub mod image_hash;
pub mod minhash;
pub mod union_find;
