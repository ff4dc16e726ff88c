//! The sorted-pair keccak Merkle tree the gateway verifies releases with: a parent is
//! `keccak256(min(a, b) || max(a, b))`, an odd last node is promoted, and a release's leaf is
//! `keccak256(keccak256(abi.encode(release)))`.

use alloy::primitives::{keccak256, B256};
use alloy::sol_types::SolValue;

use crate::contract::IpsatGateway::Release;

/// The tree leaf of `release`, `keccak256(keccak256(abi.encode(release)))`, as the contract
/// computes it.
pub fn release_leaf(release: &Release) -> B256 {
    keccak256(keccak256(release.abi_encode()))
}

fn hash_pair(a: B256, b: B256) -> B256 {
    if a <= b {
        keccak256([a.as_slice(), b.as_slice()].concat())
    } else {
        keccak256([b.as_slice(), a.as_slice()].concat())
    }
}

/// The level above `level`: pairs hashed, an odd last node promoted.
fn next_level(level: &[B256]) -> Vec<B256> {
    level
        .chunks(2)
        .map(|pair| match pair {
            [a, b] => hash_pair(*a, *b),
            [a] => *a,
            _ => unreachable!("chunks(2) yields one or two"),
        })
        .collect()
}

/// Root of `leaves`; `B256::ZERO` for none.
pub fn root(leaves: &[B256]) -> B256 {
    if leaves.is_empty() {
        return B256::ZERO;
    }
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        level = next_level(&level);
    }
    level[0]
}

/// The sibling path of leaf `index`.
pub fn proof(leaves: &[B256], mut index: usize) -> Vec<B256> {
    let mut path = Vec::new();
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        let sibling = index ^ 1;
        if sibling < level.len() {
            path.push(level[sibling]);
        }
        level = next_level(&level);
        index /= 2;
    }
    path
}

/// Folds `path` onto `leaf`, as the contract's `processProof` does.
pub fn process_proof(leaf: B256, path: &[B256]) -> B256 {
    path.iter()
        .fold(leaf, |acc, sibling| hash_pair(acc, *sibling))
}

#[cfg(test)]
mod tests {
    use super::*;

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
