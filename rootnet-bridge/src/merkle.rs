//! The gateway's two Merkle trees, computed as the contract computes them.
//!
//! - Releases: a sorted-pair keccak tree; a parent is `keccak256(min(a, b) || max(a, b))`, an
//!   odd last node is promoted, and a release's leaf is `keccak256(keccak256(abi.encode(r)))`.
//! - The blocktree: a positional tree of fixed depth [`BLOCKTREE_DEPTH`]; leaf `i` belongs to
//!   the `i`-th registered subnet, `keccak256(0x00 || subnetId || checkpointHash)` once it has a
//!   checkpoint and zero before; an inner node is `keccak256(0x01 || left || right)`, or zero
//!   when both children are zero.

use alloy::primitives::{keccak256, B256};
use alloy::sol_types::SolValue;
use ipsat_checkpoint::cross_msgs;

use crate::contract::IpsatGateway::Release;

/// The tree leaf of `release`, `keccak256(keccak256(abi.encode(release)))`, as the contract
/// computes it.
pub fn release_leaf(release: &Release) -> B256 {
    keccak256(keccak256(release.abi_encode()))
}

fn words(leaves: &[B256]) -> Vec<[u8; 32]> {
    leaves.iter().map(|leaf| leaf.0).collect()
}

/// Root of `leaves`; `B256::ZERO` for none.
pub fn root(leaves: &[B256]) -> B256 {
    B256::from(cross_msgs::root(&words(leaves)))
}

/// The sibling path of leaf `index`.
pub fn proof(leaves: &[B256], index: usize) -> Vec<B256> {
    cross_msgs::proof(&words(leaves), index)
        .into_iter()
        .map(B256::from)
        .collect()
}

/// Folds `path` onto `leaf`, as the contract's `processProof` does.
pub fn process_proof(leaf: B256, path: &[B256]) -> B256 {
    B256::from(cross_msgs::process_proof(leaf.0, &words(path)))
}

/// Depth of the gateway's blocktree (its `BLOCKTREE_DEPTH`): at most 2^16 level-1 subnets.
pub const BLOCKTREE_DEPTH: usize = 16;

/// The blocktree leaf of a subnet whose latest accepted checkpoint hashes to `checkpoint_hash`.
pub fn blocktree_leaf(subnet_id: B256, checkpoint_hash: B256) -> B256 {
    keccak256([&[0x00], subnet_id.as_slice(), checkpoint_hash.as_slice()].concat())
}

fn blocktree_node(left: B256, right: B256) -> B256 {
    if left.is_zero() && right.is_zero() {
        return B256::ZERO;
    }
    keccak256([&[0x01], left.as_slice(), right.as_slice()].concat())
}

/// The level above `level` in the blocktree; missing right siblings are empty.
fn blocktree_level_up(level: &[B256]) -> Vec<B256> {
    level
        .chunks(2)
        .map(|pair| blocktree_node(pair[0], pair.get(1).copied().unwrap_or(B256::ZERO)))
        .collect()
}

/// The blocktree root over `leaves` (leaf `i` at index `i`, zero for a subnet without a
/// checkpoint; every index from `leaves.len()` on is empty).
pub fn blocktree_root(leaves: &[B256]) -> B256 {
    let mut level = leaves.to_vec();
    for _ in 0..BLOCKTREE_DEPTH {
        level = blocktree_level_up(&level);
    }
    level.first().copied().unwrap_or(B256::ZERO)
}

/// The [`BLOCKTREE_DEPTH`] siblings of leaf `index`, from the leaf's level up.
pub fn blocktree_proof(leaves: &[B256], mut index: usize) -> Vec<B256> {
    let mut level = leaves.to_vec();
    let mut path = Vec::with_capacity(BLOCKTREE_DEPTH);
    for _ in 0..BLOCKTREE_DEPTH {
        path.push(level.get(index ^ 1).copied().unwrap_or(B256::ZERO));
        level = blocktree_level_up(&level);
        index /= 2;
    }
    path
}

/// The root that `leaf` at `index` with siblings `path` implies.
pub fn blocktree_process_proof(leaf: B256, mut index: usize, path: &[B256]) -> B256 {
    path.iter().fold(leaf, |node, sibling| {
        let parent = if index.is_multiple_of(2) {
            blocktree_node(node, *sibling)
        } else {
            blocktree_node(*sibling, node)
        };
        index /= 2;
        parent
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocktree_proofs_verify_and_positions_are_fixed() {
        assert_eq!(blocktree_root(&[]), B256::ZERO);
        assert_eq!(blocktree_root(&[B256::ZERO; 5]), B256::ZERO);
        for n in 1..=9usize {
            // Every other subnet has a checkpoint; the others are empty leaves.
            let leaves: Vec<B256> = (0..n)
                .map(|i| {
                    if i % 2 == 0 {
                        blocktree_leaf(keccak256([i as u8]), keccak256([0xcc, i as u8]))
                    } else {
                        B256::ZERO
                    }
                })
                .collect();
            let root = blocktree_root(&leaves);
            for (i, leaf) in leaves.iter().enumerate().filter(|(_, l)| !l.is_zero()) {
                let path = blocktree_proof(&leaves, i);
                assert_eq!(path.len(), BLOCKTREE_DEPTH);
                assert_eq!(
                    blocktree_process_proof(*leaf, i, &path),
                    root,
                    "n={n} i={i}"
                );
                assert_ne!(blocktree_process_proof(*leaf, i ^ 1, &path), root);
            }
            // Registering more subnets (empty leaves) moves nothing.
            let mut more = leaves.clone();
            more.resize(n + 40, B256::ZERO);
            assert_eq!(blocktree_root(&more), root);
        }
    }

    /// The subnets compute the same release leaves as the contract's encoding here.
    #[test]
    fn release_leaves_match_the_subnets() {
        let release = Release {
            recipient: alloy::primitives::Address::repeat_byte(0x42),
            amount: alloy::primitives::U256::from(123_456_789u64),
            nonce: 7,
        };
        let ours = cross_msgs::Release {
            recipient: [0x42; 20],
            amount: 123_456_789,
            nonce: 7,
        };
        assert_eq!(release_leaf(&release).0, ours.leaf());
    }

    #[test]
    fn every_leaf_proves_for_every_size() {
        for n in 1..=17usize {
            let leaves: Vec<B256> = (0..n).map(|i| keccak256([i as u8])).collect();
            let r = root(&leaves);
            for i in 0..n {
                assert_eq!(
                    process_proof(leaves[i], &proof(&leaves, i)),
                    r,
                    "n={n} i={i}"
                );
            }
        }
        assert_eq!(root(&[]), B256::ZERO);
    }
}
