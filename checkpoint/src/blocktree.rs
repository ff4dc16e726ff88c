//! The gateway's blocktree, hashed as the contract hashes it: a positional tree of fixed depth
//! [`BLOCKTREE_DEPTH`] whose leaf `i` belongs to the `i`-th level-1 subnet registered on the
//! gateway. A subnet's leaf is `keccak256(0x00 || subnetId || checkpointHash)` of its latest
//! accepted checkpoint, zero before its first; an inner node is
//! `keccak256(0x01 || left || right)`, or zero when both children are zero. The prefixes keep
//! a leaf from ever passing for an inner node.

use crate::checkpoint::{keccak256, CheckpointHash, SubnetHash};

/// Depth of the blocktree (the gateway's `BLOCKTREE_DEPTH`): at most 2^16 level-1 subnets.
pub const BLOCKTREE_DEPTH: usize = 16;

/// The leaf of a subnet whose latest accepted checkpoint hashes to `checkpoint`.
pub fn leaf(subnet: &SubnetHash, checkpoint: &CheckpointHash) -> [u8; 32] {
    keccak256(&[&[0x00], subnet.0.as_slice(), checkpoint.0.as_slice()].concat())
}

fn node(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    if *left == [0; 32] && *right == [0; 32] {
        return [0; 32];
    }
    keccak256(&[&[0x01], left.as_slice(), right.as_slice()].concat())
}

/// The level above `level`; a missing right sibling is empty.
fn level_up(level: &[[u8; 32]]) -> Vec<[u8; 32]> {
    level
        .chunks(2)
        .map(|pair| node(&pair[0], pair.get(1).unwrap_or(&[0; 32])))
        .collect()
}

/// The root over `leaves` (leaf `i` at index `i`, zero for a subnet without a checkpoint;
/// every index from `leaves.len()` on is empty).
pub fn root(leaves: &[[u8; 32]]) -> [u8; 32] {
    let mut level = leaves.to_vec();
    for _ in 0..BLOCKTREE_DEPTH {
        level = level_up(&level);
    }
    level.first().copied().unwrap_or_default()
}

/// The [`BLOCKTREE_DEPTH`] siblings of leaf `index`, from the leaf's level up.
pub fn proof(leaves: &[[u8; 32]], mut index: usize) -> Vec<[u8; 32]> {
    let mut level = leaves.to_vec();
    let mut path = Vec::with_capacity(BLOCKTREE_DEPTH);
    for _ in 0..BLOCKTREE_DEPTH {
        path.push(level.get(index ^ 1).copied().unwrap_or_default());
        level = level_up(&level);
        index /= 2;
    }
    path
}

/// The root that `leaf` at `index` with siblings `path` implies.
pub fn process_proof(leaf: [u8; 32], mut index: u64, path: &[[u8; 32]]) -> [u8; 32] {
    path.iter().fold(leaf, |hash, sibling| {
        let parent = if index.is_multiple_of(2) {
            node(&hash, sibling)
        } else {
            node(sibling, &hash)
        };
        index /= 2;
        parent
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_verify_and_positions_are_fixed() {
        assert_eq!(root(&[]), [0; 32]);
        assert_eq!(root(&[[0; 32]; 5]), [0; 32]);
        for n in 1..=9usize {
            // Every other subnet has a checkpoint; the others are empty leaves.
            let leaves: Vec<[u8; 32]> = (0..n)
                .map(|i| {
                    if i % 2 == 0 {
                        leaf(
                            &SubnetHash(keccak256(&[i as u8])),
                            &CheckpointHash(keccak256(&[0xcc, i as u8])),
                        )
                    } else {
                        [0; 32]
                    }
                })
                .collect();
            let tree_root = root(&leaves);
            for (i, l) in leaves.iter().enumerate().filter(|(_, l)| **l != [0; 32]) {
                let path = proof(&leaves, i);
                assert_eq!(path.len(), BLOCKTREE_DEPTH);
                assert_eq!(process_proof(*l, i as u64, &path), tree_root, "n={n} i={i}");
                assert_ne!(process_proof(*l, i as u64 ^ 1, &path), tree_root);
            }
            // Registering more subnets (empty leaves) moves nothing.
            let mut more = leaves.clone();
            more.resize(n + 40, [0; 32]);
            assert_eq!(root(&more), tree_root);
        }
    }
}
