//! 64-bit hashes searched by Hamming radius, with multi-index hashing.
//!
//! A hash is split into six blocks (four of 11 bits, two of 10), and each
//! block value keys a bucket of the hashes that have it there. Two hashes
//! within radius `r` differ in at most `⌊r/6⌋` bits of some block (else
//! they would differ in at least `6(⌊r/6⌋ + 1) > r` bits), so a search
//! looks in, per block, the bucket of every value within `⌊r/6⌋` bits of
//! the query's block (12 buckets for r ≤ 11) and confirms each hash found
//! with its exact distance. The search is exact.
//!
//! Why six blocks: the cost of a search is the buckets it visits (each a
//! cache miss) plus the entries it scans (contiguous, one XOR and popcount
//! each). Four 16-bit blocks visit 4 × 137 buckets per search, which at
//! 100k hashes was most of dedupe's time; six blocks visit 72 and scan
//! about 6 × 12 / 2048 (3.5%) of the index. The scan is linear in the
//! index, with a small constant, where a BK-tree searched at radius 10 of
//! 64 bits visits most of its nodes.

/// (shift, width) of each block.
const BLOCKS: [(u32, u32); 6] = [(0, 11), (11, 11), (22, 11), (33, 11), (44, 10), (54, 10)];
/// Bucket slots per block: enough for the widest.
const BLOCK_VALUES: usize = 1 << 11;

#[derive(Default)]
pub struct HammingIndex {
    len: usize,
    /// Block `b`, value `v` → (hash, item) of every hash with `v` in block
    /// `b`, at `b * BLOCK_VALUES + v`; allocated on the first insert. The
    /// hash is kept in the bucket so a search confirms its distance
    /// without another lookup.
    buckets: Vec<Vec<(u64, usize)>>,
}

fn block(hash: u64, (shift, width): (u32, u32)) -> usize {
    ((hash >> shift) & ((1 << width) - 1)) as usize
}

/// Every mask of `width` bits with at most `bits` set: XORed with a block
/// value, the values within `bits` bits of it.
fn masks(bits: u32, width: u32) -> Vec<usize> {
    let mut found = vec![0usize];
    let mut frontier = vec![(0usize, 0u32)];
    for _ in 0..bits.min(width) {
        let mut next = Vec::new();
        for (at, lowest) in frontier {
            // Set only bits above the last one set: each mask once.
            for bit in lowest..width {
                let mask = at | (1 << bit);
                found.push(mask);
                next.push((mask, bit + 1));
            }
        }
        frontier = next;
    }
    found
}

impl HammingIndex {
    pub fn insert(&mut self, hash: u64, item: usize) {
        if self.buckets.is_empty() {
            self.buckets = vec![Vec::new(); BLOCKS.len() * BLOCK_VALUES];
        }
        for (index, spec) in BLOCKS.iter().enumerate() {
            self.buckets[index * BLOCK_VALUES + block(hash, *spec)].push((hash, item));
        }
        self.len += 1;
    }

    /// Items whose hash is within `radius` of `hash`, ascending, each once.
    pub fn within(&self, hash: u64, radius: u32) -> Vec<usize> {
        let mut found: Vec<usize> = Vec::new();
        if self.buckets.is_empty() {
            return found;
        }
        let tolerance = radius / BLOCKS.len() as u32;
        for (index, spec) in BLOCKS.iter().enumerate() {
            let table = &self.buckets[index * BLOCK_VALUES..][..BLOCK_VALUES];
            let value = block(hash, *spec);
            for mask in masks(tolerance, spec.1) {
                for &(other, item) in &table[value ^ mask] {
                    if (other ^ hash).count_ones() <= radius {
                        found.push(item);
                    }
                }
            }
        }
        // A hash within the radius may share several blocks' buckets.
        found.sort_unstable();
        found.dedup();
        found
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
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
        for radius in [0, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14] {
            let query = base ^ 0b1011;
            let expected: Vec<usize> = (hashes.iter().enumerate())
                .filter(|(_, h)| (*h ^ query).count_ones() <= radius)
                .map(|(i, _)| i)
                .collect();
            assert_eq!(index.within(query, radius), expected, "radius {radius}");
        }
        assert_eq!(index.len(), 2015);
        assert_eq!(masks(2, 16).len(), 1 + 16 + 120);
        assert_eq!(masks(1, 11).len(), 12);
    }
}
