//! A BK-tree over 64-bit hashes under Hamming distance, with iterative
//! insert and search (no recursion, so depth is no stack risk). Search for
//! radius r visits only children whose edge distance is within r of the
//! query's distance to their parent.

use std::collections::BTreeMap;

struct Node {
    hash: u64,
    /// Items that have exactly this hash.
    items: Vec<usize>,
    children: BTreeMap<u32, usize>,
}

#[derive(Default)]
pub struct BkTree {
    nodes: Vec<Node>,
}

impl BkTree {
    pub fn insert(&mut self, hash: u64, item: usize) {
        if self.nodes.is_empty() {
            self.nodes.push(Node {
                hash,
                items: vec![item],
                children: BTreeMap::new(),
            });
            return;
        }
        let mut at = 0;
        loop {
            let distance = (self.nodes[at].hash ^ hash).count_ones();
            if distance == 0 {
                self.nodes[at].items.push(item);
                return;
            }
            match self.nodes[at].children.get(&distance) {
                Some(&child) => at = child,
                None => {
                    let new = self.nodes.len();
                    self.nodes.push(Node {
                        hash,
                        items: vec![item],
                        children: BTreeMap::new(),
                    });
                    self.nodes[at].children.insert(distance, new);
                    return;
                }
            }
        }
    }

    /// Items whose hash is within `radius` of `hash`.
    pub fn within(&self, hash: u64, radius: u32) -> Vec<usize> {
        let mut found = Vec::new();
        let mut stack = if self.nodes.is_empty() {
            vec![]
        } else {
            vec![0]
        };
        while let Some(at) = stack.pop() {
            let node = &self.nodes[at];
            let distance = (node.hash ^ hash).count_ones();
            if distance <= radius {
                found.extend_from_slice(&node.items);
            }
            let low = distance.saturating_sub(radius);
            let high = distance + radius;
            stack.extend(node.children.range(low..=high).map(|(_, child)| *child));
        }
        found
    }

    pub fn len(&self) -> usize {
        self.nodes.iter().map(|n| n.items.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_exactly_the_hashes_within_the_radius() {
        let mut tree = BkTree::default();
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut hashes = Vec::new();
        for item in 0..2000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            hashes.push(state);
            tree.insert(state, item);
        }
        // Deep, degenerate chains must not overflow anything.
        for item in 0..64 {
            tree.insert(u64::MAX >> item, 2000 + item as usize);
        }
        let query = hashes[17] ^ 0b1011;
        let mut found = tree.within(query, 4);
        found.sort_unstable();
        let expected: Vec<usize> = hashes
            .iter()
            .enumerate()
            .filter(|(_, h)| (*h ^ query).count_ones() <= 4)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(found, expected);
        assert_eq!(tree.len(), 2064);
    }
}
