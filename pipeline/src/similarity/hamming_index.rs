//! 64-bit hashes searched by Hamming radius, with multi-index hashing.
//!
//! A hash is split into four 16-bit blocks, and each block value keys a
//! bucket of the items whose hash has it there. Two hashes within radius
//! `r` differ in at most `⌊r/4⌋` bits of some block (else they would differ
//! in at least `4(⌊r/4⌋ + 1) > r` bits), so a search looks up, per block,
//! every value within `⌊r/4⌋` bits of the query's block (137 values for
//! r ≤ 11) and confirms each item found with its exact distance. The
//! search is exact, and its cost grows with the few items sharing a
//! bucket, not with the index: a BK-tree searched at radius 10 of 64 bits
//! visits most of its nodes, which made dedupe quadratic in the run.

use std::collections::HashMap;

const BLOCKS: u32 = 4;
const BLOCK_BITS: u32 = 64 / BLOCKS;

#[derive(Default)]
pub struct HammingIndex {
    hashes: Vec<u64>,
    items: Vec<usize>,
    /// Per block: block value → positions in `hashes`.
    buckets: [HashMap<u16, Vec<u32>>; BLOCKS as usize],
}

fn block(hash: u64, index: u32) -> u16 {
    (hash >> (index * BLOCK_BITS)) as u16
}

/// Every 16-bit value within `bits` bits of `value`.
fn neighbours(value: u16, bits: u32) -> Vec<u16> {
    let mut found = vec![value];
    let mut frontier = vec![(value, 0u32)];
    for _ in 0..bits {
        let mut next = Vec::new();
        for (at, lowest) in frontier {
            // Flip only bits above the last flipped one: each set once.
            for bit in lowest..BLOCK_BITS {
                let flipped = at ^ (1 << bit);
                found.push(flipped);
                next.push((flipped, bit + 1));
            }
        }
        frontier = next;
    }
    found
}

impl HammingIndex {
    pub fn insert(&mut self, hash: u64, item: usize) {
        let position = self.hashes.len() as u32;
        self.hashes.push(hash);
        self.items.push(item);
        for index in 0..BLOCKS {
            self.buckets[index as usize]
                .entry(block(hash, index))
                .or_default()
                .push(position);
        }
    }

    /// Items whose hash is within `radius` of `hash`, ascending, each once.
    pub fn within(&self, hash: u64, radius: u32) -> Vec<usize> {
        let tolerance = (radius / BLOCKS).min(BLOCK_BITS);
        let mut positions: Vec<u32> = Vec::new();
        for index in 0..BLOCKS {
            let buckets = &self.buckets[index as usize];
            for value in neighbours(block(hash, index), tolerance) {
                if let Some(bucket) = buckets.get(&value) {
                    positions.extend_from_slice(bucket);
                }
            }
        }
        positions.sort_unstable();
        positions.dedup();
        let mut found: Vec<usize> = positions
            .into_iter()
            .filter(|p| (self.hashes[*p as usize] ^ hash).count_ones() <= radius)
            .map(|p| self.items[p as usize])
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_exactly_the_hashes_within_the_radius() {
        let mut index = HammingIndex::default();
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut hashes = Vec::new();
        for item in 0..2000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            hashes.push(state);
            index.insert(state, item);
        }
        // Near copies at every distance up to 14, spread over the blocks.
        let base = hashes[17];
        for distance in 0..=14u32 {
            let mask = (0..distance).fold(0u64, |m, i| m | 1 << ((i * 37) % 64));
            hashes.push(base ^ mask);
            index.insert(base ^ mask, hashes.len() - 1);
        }
        for radius in [0, 3, 4, 10, 11, 14] {
            let query = base ^ 0b1011;
            let expected: Vec<usize> = (hashes.iter().enumerate())
                .filter(|(_, h)| (*h ^ query).count_ones() <= radius)
                .map(|(i, _)| i)
                .collect();
            assert_eq!(index.within(query, radius), expected, "radius {radius}");
        }
        assert_eq!(index.len(), 2015);
        assert_eq!(neighbours(0, 2).len(), 1 + 16 + 120);
    }
}
