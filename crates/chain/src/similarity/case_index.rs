//! The kept cases a candidate is compared with: every released case (oldest
//! release first, then by question id) and every case kept earlier in the
//! run (by candidate id). Images are searched in a multi-index hash (see
//! [`super::hamming_index`]); the questions of the cases with a near image
//! are then compared with the exact MinHash similarity.

use super::hamming_index::HammingIndex;
use super::image_hash::{self, ImageHashes};
use super::minhash;
use crate::similarity::config::NearDedupeConfig;
use siuo_core::record::{DuplicateOf, NearFingerprint};

/// The near-duplicate fingerprint of a case: its image's hashes and its
/// question's MinHash signature.
pub fn near_fingerprint(hashes: &ImageHashes, question: &str) -> NearFingerprint {
    NearFingerprint {
        image_phashes: image_hash::to_hex(hashes),
        question_minhash: minhash::signature(question),
    }
}

/// A kept case as the index sees it.
pub struct IndexedCase {
    pub reference: DuplicateOf,
    pub image: ImageHashes,
    pub question: Vec<u32>,
}

impl IndexedCase {
    pub fn new(reference: DuplicateOf, near: &NearFingerprint) -> Option<Self> {
        Some(IndexedCase {
            reference,
            image: image_hash::from_hex(&near.image_phashes)?,
            question: near.question_minhash.clone(),
        })
    }
}

/// What a candidate is, against the kept cases.
#[derive(Debug, Clone, PartialEq)]
pub enum NearMatch {
    /// Not a duplicate; keep it.
    New,
    /// Question and image both near one kept case: the earliest such case.
    Duplicate(DuplicateOf),
    /// Its image is near the images of `max_image_uses` kept cases already;
    /// `first` is the earliest of them.
    ImageReuse { first: DuplicateOf },
}

pub struct CaseIndex {
    settings: NearDedupeConfig,
    cases: Vec<IndexedCase>,
    /// One index per region a candidate's hash is compared with.
    full: HammingIndex,
    centre: HammingIndex,
    top: HammingIndex,
    bottom: HammingIndex,
}

impl CaseIndex {
    pub fn new(settings: NearDedupeConfig) -> Self {
        CaseIndex {
            settings,
            cases: Vec::new(),
            full: HammingIndex::default(),
            centre: HammingIndex::default(),
            top: HammingIndex::default(),
            bottom: HammingIndex::default(),
        }
    }

    /// Adds a kept case; cases must come in precedence order.
    pub fn insert(&mut self, case: IndexedCase) {
        // The four indexes and `cases` grow together: an item is a case's
        // position in `cases`.
        self.full.push(case.image.full);
        self.centre.push(case.image.centre);
        self.top.push(case.image.top);
        self.bottom.push(case.image.bottom);
        self.cases.push(case);
    }

    /// Adds a case kept in this run, if its fingerprint can be read.
    pub fn insert_run_case(&mut self, candidate_id: &str, near: &NearFingerprint) {
        let reference = DuplicateOf::Run {
            candidate_id: candidate_id.to_owned(),
        };
        if let Some(case) = IndexedCase::new(reference, near) {
            self.insert(case);
        }
    }

    /// Kept cases whose image is near `image` (its mirror included), ascending.
    pub fn near_images(&self, image: &ImageHashes) -> Vec<usize> {
        let radius = self.settings.image_max_distance;
        // Each of `image_hash::pairs`, searched in the tree of the case's
        // region (a candidate's mirror against a case's image is the same
        // distance as the candidate against the case's mirror).
        let mut found = self.full.within(image.full, radius);
        found.extend(self.full.within(image.mirror, radius));
        found.extend(self.centre.within(image.full, radius));
        found.extend(self.full.within(image.centre, radius));
        found.extend(self.top.within(image.top, radius));
        found.extend(self.top.within(image.top_mirror, radius));
        found.extend(self.bottom.within(image.bottom, radius));
        found.extend(self.bottom.within(image.bottom_mirror, radius));
        found.sort_unstable();
        found.dedup();
        found.retain(|&i| image_hash::distance(image, &self.cases[i].image) <= radius);
        found
    }

    pub fn classify(&self, image: &ImageHashes, question: &[u32]) -> NearMatch {
        let images = self.near_images(image);
        // Only the few cases with a near image can be duplicates: their
        // questions are compared exactly.
        let duplicate = images.iter().find(|i| {
            minhash::similarity(question, &self.cases[**i].question)
                >= self.settings.question_min_similarity
        });
        if let Some(&i) = duplicate {
            return NearMatch::Duplicate(self.cases[i].reference.clone());
        }
        match images.first() {
            Some(&first) if images.len() >= self.settings.max_image_uses as usize => {
                NearMatch::ImageReuse {
                    first: self.cases[first].reference.clone(),
                }
            }
            _ => NearMatch::New,
        }
    }
}
