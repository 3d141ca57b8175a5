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
//! about 4.5% of the index. The scan is linear in the index, with a small
//! constant, where a BK-tree searched at radius 10 of 64 bits visits most
//! of its nodes.
//!
//! Block `k` holds the bits `i` with `i % 6 == k`, not six runs of
//! neighbouring bits: a perceptual hash's neighbouring bits are
//! neighbouring DCT coefficients, which go together, so runs of them
//! made some buckets much fuller than others (22% more entries scanned
//! over the scale bench's 100k images than interleaved blocks). A bucket
//! keeps its hashes apart from their items, so the scan reads 8 bytes an
//! entry, and an item only for a hash within the radius.

/// Blocks, and the bits of block `k`: `k, k + 6, k + 12, …`.
const BLOCKS: usize = 6;
/// Bucket slots per block: enough for the widest (11 bits).
const BLOCK_VALUES: usize = 1 << 11;

#[derive(Default)]
pub struct HammingIndex {
    len: usize,
    /// Block `b`, value `v` → the hashes with `v` in block `b`, at
    /// `b * BLOCK_VALUES + v`; allocated on the first insert.
    buckets: Vec<Bucket>,
}

/// Hashes and their items, side by side.
#[derive(Clone, Default)]
struct Bucket {
    hashes: Vec<u64>,
    items: Vec<usize>,
}

/// Bits of block `k`: 11 for blocks 0–3, 10 for blocks 4 and 5.
fn width(k: usize) -> u32 {
    (64 - k as u32).div_ceil(BLOCKS as u32)
}

fn block(hash: u64, k: usize) -> usize {
    (0..width(k)).fold(0, |value, i| {
        value | (((hash >> (k as u32 + i * BLOCKS as u32)) & 1) as usize) << i
    })
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
    /// Adds `hash`; its item is the number of hashes added before it.
    pub fn push(&mut self, hash: u64) -> usize {
        if self.buckets.is_empty() {
            self.buckets = vec![Bucket::default(); BLOCKS * BLOCK_VALUES];
        }
        let item = self.len;
        for k in 0..BLOCKS {
            let bucket = &mut self.buckets[k * BLOCK_VALUES + block(hash, k)];
            bucket.hashes.push(hash);
            bucket.items.push(item);
        }
        self.len += 1;
        item
    }

    /// Items whose hash is within `radius` of `hash`, ascending, each once.
    pub fn within(&self, hash: u64, radius: u32) -> Vec<usize> {
        let mut found: Vec<usize> = Vec::new();
        if self.buckets.is_empty() {
            return found;
        }
        let tolerance = radius / BLOCKS as u32;
        let masks_of_width = [
            masks(tolerance, width(0)),
            masks(tolerance, width(BLOCKS - 1)),
        ];
        for k in 0..BLOCKS {
            let table = &self.buckets[k * BLOCK_VALUES..][..BLOCK_VALUES];
            let value = block(hash, k);
            let masks = &masks_of_width[usize::from(width(k) != width(0))];
            for mask in masks {
                let bucket = &table[value ^ mask];
                // An item is read only for a hash within the radius.
                for (other, item) in bucket.hashes.iter().zip(&bucket.items) {
                    if (other ^ hash).count_ones() <= radius {
                        found.push(*item);
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
            assert_eq!(index.push(state), item);
        }
        // Near copies at every distance up to 14, spread over the blocks.
        let base = hashes[17];
        for distance in 0..=14u32 {
            let mask = (0..distance).fold(0u64, |m, i| m | 1 << ((i * 37) % 64));
            hashes.push(base ^ mask);
            index.push(base ^ mask);
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

    #[test]
    fn blocks_cover_every_bit_once() {
        assert_eq!(
            (0..BLOCKS).map(width).collect::<Vec<_>>(),
            [11, 11, 11, 11, 10, 10]
        );
        for bit in 0..64 {
            let hash = 1u64 << bit;
            let set: Vec<usize> = (0..BLOCKS).filter(|&k| block(hash, k) != 0).collect();
            assert_eq!(set, [bit % BLOCKS], "bit {bit}");
            assert_eq!(block(hash, bit % BLOCKS), 1 << (bit / BLOCKS));
        }
    }
}
