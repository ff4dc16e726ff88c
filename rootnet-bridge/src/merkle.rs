//! The gateway's two Merkle trees, computed as the contract computes them.
//!
//! - Releases: a sorted-pair keccak tree; a parent is `keccak256(min(a, b) || max(a, b))`, an
//!   odd last node is promoted, and a release's leaf is `keccak256(keccak256(abi.encode(r)))`.
//! - The blocktree: [`ipsat_checkpoint::blocktree`], here over alloy's types.

use alloy::primitives::{keccak256, B256};
use alloy::sol_types::SolValue;
use ipsat_checkpoint::{blocktree, cross_msgs, CheckpointHash, SubnetHash};

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

pub use ipsat_checkpoint::blocktree::BLOCKTREE_DEPTH;

/// The blocktree leaf of a subnet whose latest accepted checkpoint hashes to `checkpoint_hash`.
pub fn blocktree_leaf(subnet_id: B256, checkpoint_hash: B256) -> B256 {
    B256::from(blocktree::leaf(
        &SubnetHash(subnet_id.0),
        &CheckpointHash(checkpoint_hash.0),
    ))
}

/// The blocktree root over `leaves` (see [`blocktree::root`]).
pub fn blocktree_root(leaves: &[B256]) -> B256 {
    B256::from(blocktree::root(&words(leaves)))
}

/// The [`BLOCKTREE_DEPTH`] siblings of leaf `index`, from the leaf's level up.
pub fn blocktree_proof(leaves: &[B256], index: usize) -> Vec<B256> {
    blocktree::proof(&words(leaves), index)
        .into_iter()
        .map(B256::from)
        .collect()
}

/// The root that `leaf` at `index` with siblings `path` implies.
pub fn blocktree_process_proof(leaf: B256, index: usize, path: &[B256]) -> B256 {
    B256::from(blocktree::process_proof(leaf.0, index as u64, &words(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

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
