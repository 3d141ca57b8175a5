//! Union-find with path halving; the root of a set is always its smallest
//! member, so clusters have a deterministic representative.

pub struct UnionFind {
    parent: Vec<usize>,
}

impl UnionFind {
    pub fn new(items: usize) -> Self {
        UnionFind {
            parent: (0..items).collect(),
        }
    }

    pub fn find(&mut self, mut item: usize) -> usize {
        while self.parent[item] != item {
            self.parent[item] = self.parent[self.parent[item]];
            item = self.parent[item];
        }
        item
    }

    pub fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        let (low, high) = if a < b { (a, b) } else { (b, a) };
        self.parent[high] = low;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_root_is_the_smallest_member() {
        let mut sets = super::UnionFind::new(6);
        sets.union(4, 5);
        sets.union(5, 2);
        sets.union(0, 1);
        assert_eq!(sets.find(4), 2);
        assert_eq!(sets.find(1), 0);
        assert_eq!(sets.find(3), 3);
    }
}
