//! Append-only Merkle mountain range over `(height, state_root)` leaves.
//!
//! Nodes are addressed by `(level, index)`: leaf `i` is `(0, i)` and node `(l, j)` hashes
//! `(l-1, 2j)` with `(l-1, 2j+1)`. The perfect subtrees left by the binary decomposition of
//! the leaf count are the peaks; the root hashes the leaf count with every peak, largest first.

use thiserror::Error;

/// A 32-byte blake3 digest.
pub type Hash32 = [u8; 32];

const LEAF_TAG: &[u8] = b"ipsat/history/leaf/v1";
const NODE_TAG: &[u8] = b"ipsat/history/node/v1";
const ROOT_TAG: &[u8] = b"ipsat/history/root/v1";

/// Why an accumulator operation or a proof check failed.
#[derive(Debug, Error, PartialEq, Eq)]
#[allow(missing_docs)] // Each variant's message says what it means.
pub enum HistoryError {
    #[error("leaf {index} is outside an accumulator of {leaf_count} leaves")]
    LeafOutOfRange { index: u64, leaf_count: u64 },
    #[error("history node (level {level}, index {index}) is missing from storage")]
    MissingNode { level: u8, index: u64 },
    #[error("proof has {got} sibling or peak hashes where {expected} are needed")]
    WrongShape { expected: usize, got: usize },
    #[error("proof does not lead to the expected history root")]
    RootMismatch,
}

/// A node the caller must persist to be able to build proofs later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryNode {
    /// Height above the leaves: 0 for a leaf.
    pub level: u8,
    /// Position within its level, counting from 0 on the left.
    pub index: u64,
    /// The leaf or inner-node hash stored at `(level, index)`.
    pub hash: Hash32,
}

/// The accumulator's compact state: the leaf count and the peak hashes, largest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryAccumulator {
    leaf_count: u64,
    peaks: Vec<Hash32>,
}

fn hash_leaf(height: u64, state_root: &Hash32) -> Hash32 {
    let mut h = blake3::Hasher::new();
    h.update(LEAF_TAG);
    h.update(&height.to_be_bytes());
    h.update(state_root);
    *h.finalize().as_bytes()
}

fn hash_node(left: &Hash32, right: &Hash32) -> Hash32 {
    let mut h = blake3::Hasher::new();
    h.update(NODE_TAG);
    h.update(left);
    h.update(right);
    *h.finalize().as_bytes()
}

fn hash_root(leaf_count: u64, peaks: &[Hash32]) -> Hash32 {
    let mut h = blake3::Hasher::new();
    h.update(ROOT_TAG);
    h.update(&leaf_count.to_be_bytes());
    for peak in peaks {
        h.update(peak);
    }
    *h.finalize().as_bytes()
}

/// Levels of the peaks of an accumulator with `leaf_count` leaves, largest first.
fn peak_levels(leaf_count: u64) -> impl Iterator<Item = u8> {
    (0..64u8)
        .rev()
        .filter(move |level| leaf_count & (1 << level) != 0)
}

/// Where the peaks of an accumulator with `leaf_count` leaves are, largest first: each as
/// (level, index at that level), the positions [`HistoryAccumulator::append`] stored them at.
pub fn peak_positions(leaf_count: u64) -> Vec<(u8, u64)> {
    let mut start = 0u64;
    peak_levels(leaf_count)
        .map(|level| {
            let position = (level, start >> level);
            start += 1 << level;
            position
        })
        .collect()
}

impl HistoryAccumulator {
    /// Rebuilds the accumulator from its persisted leaf count and peaks.
    pub fn from_parts(leaf_count: u64, peaks: Vec<Hash32>) -> Result<Self, HistoryError> {
        let expected = leaf_count.count_ones() as usize;
        if peaks.len() != expected {
            return Err(HistoryError::WrongShape {
                expected,
                got: peaks.len(),
            });
        }
        Ok(Self { leaf_count, peaks })
    }

    /// Number of leaves appended so far (one per block).
    pub fn leaf_count(&self) -> u64 {
        self.leaf_count
    }

    /// The peak hashes, largest first; persist them with the leaf count for [`Self::from_parts`].
    pub fn peaks(&self) -> &[Hash32] {
        &self.peaks
    }

    /// The history root: the leaf count hashed with every peak, largest first.
    pub fn root(&self) -> Hash32 {
        hash_root(self.leaf_count, &self.peaks)
    }

    /// Appends the leaf of one block and returns every node it created, leaf first.
    pub fn append(&mut self, height: u64, state_root: &Hash32) -> Vec<HistoryNode> {
        let mut index = self.leaf_count;
        let mut hash = hash_leaf(height, state_root);
        let mut created = vec![HistoryNode {
            level: 0,
            index,
            hash,
        }];
        let mut level = 0u8;
        // Every trailing one bit of the old count is a peak the new leaf completes.
        while index & 1 == 1 {
            let left = self
                .peaks
                .pop()
                .expect("a set bit in the leaf count always has a peak");
            hash = hash_node(&left, &hash);
            index >>= 1;
            level += 1;
            created.push(HistoryNode { level, index, hash });
        }
        self.peaks.push(hash);
        self.leaf_count += 1;
        created
    }

    /// Builds the proof that leaf `index` is in this accumulator, reading stored nodes
    /// through `node(level, index)`.
    pub fn prove(
        &self,
        index: u64,
        mut node: impl FnMut(u8, u64) -> Option<Hash32>,
    ) -> Result<HistoryProof, HistoryError> {
        if index >= self.leaf_count {
            return Err(HistoryError::LeafOutOfRange {
                index,
                leaf_count: self.leaf_count,
            });
        }
        let peak_level = peak_level_of(index, self.leaf_count);
        let mut siblings = Vec::with_capacity(peak_level as usize);
        let mut position = index;
        for level in 0..peak_level {
            let sibling = position ^ 1;
            siblings.push(node(level, sibling).ok_or(HistoryError::MissingNode {
                level,
                index: sibling,
            })?);
            position >>= 1;
        }
        Ok(HistoryProof {
            leaf_index: index,
            leaf_count: self.leaf_count,
            siblings,
            peaks: self.peaks.clone(),
        })
    }
}

/// Level of the peak whose subtree holds leaf `index`.
fn peak_level_of(index: u64, leaf_count: u64) -> u8 {
    let mut first_leaf = 0u64;
    for level in peak_levels(leaf_count) {
        let size = 1u64 << level;
        if index < first_leaf + size {
            return level;
        }
        first_leaf += size;
    }
    unreachable!("callers check index < leaf_count")
}

/// Proof that a `(height, state_root)` leaf is in a history accumulator with a given root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryProof {
    /// Position of the proven leaf among all leaves, from 0.
    pub leaf_index: u64,
    /// Leaf count of the accumulator the proof was built from; fixes the proof's shape.
    pub leaf_count: u64,
    /// Sibling hashes from the leaf up to its peak.
    pub siblings: Vec<Hash32>,
    /// All peaks of the accumulator, largest first.
    pub peaks: Vec<Hash32>,
}

impl HistoryProof {
    /// Checks that leaf `(height, state_root)` is in the accumulator whose root is `root`.
    pub fn verify(
        &self,
        root: &Hash32,
        height: u64,
        state_root: &Hash32,
    ) -> Result<(), HistoryError> {
        if self.leaf_index >= self.leaf_count {
            return Err(HistoryError::LeafOutOfRange {
                index: self.leaf_index,
                leaf_count: self.leaf_count,
            });
        }
        let peak_level = peak_level_of(self.leaf_index, self.leaf_count);
        if self.siblings.len() != peak_level as usize {
            return Err(HistoryError::WrongShape {
                expected: peak_level as usize,
                got: self.siblings.len(),
            });
        }
        let peak_count = self.leaf_count.count_ones() as usize;
        if self.peaks.len() != peak_count {
            return Err(HistoryError::WrongShape {
                expected: peak_count,
                got: self.peaks.len(),
            });
        }
        let mut hash = hash_leaf(height, state_root);
        let mut position = self.leaf_index;
        for sibling in &self.siblings {
            hash = if position & 1 == 0 {
                hash_node(&hash, sibling)
            } else {
                hash_node(sibling, &hash)
            };
            position >>= 1;
        }
        let peak_slot = peak_levels(self.leaf_count)
            .position(|level| level == peak_level)
            .expect("the leaf's peak level is one of the peak levels");
        if self.peaks[peak_slot] != hash || hash_root(self.leaf_count, &self.peaks) != *root {
            return Err(HistoryError::RootMismatch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn state_root(height: u64) -> Hash32 {
        *blake3::hash(&height.to_le_bytes()).as_bytes()
    }

    fn build(leaves: u64) -> (HistoryAccumulator, BTreeMap<(u8, u64), Hash32>) {
        let mut acc = HistoryAccumulator::default();
        let mut store = BTreeMap::new();
        for height in 1..=leaves {
            for n in acc.append(height, &state_root(height)) {
                store.insert((n.level, n.index), n.hash);
            }
        }
        (acc, store)
    }

    /// Every earlier size's root can be rebuilt from the nodes stored by later appends.
    #[test]
    fn past_roots_rebuild_from_stored_peaks() {
        let (_, store) = build(40);
        let mut acc = HistoryAccumulator::default();
        for height in 1..=40u64 {
            acc.append(height, &state_root(height));
            let peaks = peak_positions(acc.leaf_count())
                .into_iter()
                .map(|position| store[&position])
                .collect();
            let rebuilt = HistoryAccumulator::from_parts(acc.leaf_count(), peaks).unwrap();
            assert_eq!(rebuilt.root(), acc.root(), "after {height} leaves");
        }
    }

    #[test]
    fn every_leaf_of_every_size_proves_and_tampering_fails() {
        for leaves in 1..=33u64 {
            let (acc, store) = build(leaves);
            let root = acc.root();
            for index in 0..leaves {
                let height = index + 1;
                let proof = acc
                    .prove(index, |l, i| store.get(&(l, i)).copied())
                    .unwrap();
                proof.verify(&root, height, &state_root(height)).unwrap();
                assert_eq!(
                    proof.verify(&root, height + 1, &state_root(height)),
                    Err(HistoryError::RootMismatch)
                );
                assert!(proof
                    .verify(&root, height, &state_root(height + 1))
                    .is_err());
                for s in 0..proof.siblings.len() {
                    let mut bad = proof.clone();
                    bad.siblings[s][7] ^= 1;
                    assert!(bad.verify(&root, height, &state_root(height)).is_err());
                }
                for p in 0..proof.peaks.len() {
                    let mut bad = proof.clone();
                    bad.peaks[p][0] ^= 0x80;
                    assert!(bad.verify(&root, height, &state_root(height)).is_err());
                }
                let mut bad_root = root;
                bad_root[31] ^= 1;
                assert!(proof
                    .verify(&bad_root, height, &state_root(height))
                    .is_err());
            }
        }
    }

    #[test]
    fn root_changes_with_every_append_and_restores_from_parts() {
        let (mut acc, _) = build(5);
        let before = acc.root();
        acc.append(6, &state_root(6));
        assert_ne!(before, acc.root());
        let restored =
            HistoryAccumulator::from_parts(acc.leaf_count(), acc.peaks().to_vec()).unwrap();
        assert_eq!(restored.root(), acc.root());
        assert!(HistoryAccumulator::from_parts(6, vec![[0; 32]]).is_err());
    }

    #[test]
    fn out_of_range_and_missing_nodes_are_errors() {
        let (acc, _) = build(4);
        assert_eq!(
            acc.prove(4, |_, _| None),
            Err(HistoryError::LeafOutOfRange {
                index: 4,
                leaf_count: 4
            })
        );
        assert!(matches!(
            acc.prove(0, |_, _| None),
            Err(HistoryError::MissingNode { .. })
        ));
    }
}
