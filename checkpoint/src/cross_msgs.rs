//! The bottom-up messages a checkpoint commits to in `cross_msgs_root`, hashed as the RSK
//! gateway hashes them, so the same releases are provable to a parent subnet and to the
//! gateway.
//!
//! A release's leaf is `keccak256(keccak256(abi.encode(address recipient, uint256 amount,
//! uint64 nonce)))`; the tree hashes sorted pairs, `keccak256(min(a, b) || max(a, b))`, promotes
//! an odd last node, and is zero when empty.

use crate::checkpoint::keccak256;

/// Value a subnet burned for `recipient` in its parent; `nonce` counts the subnet's releases
/// from 0, so each is paid once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    /// The parent account paid.
    pub recipient: [u8; 20],
    /// In atto-RBTC (wei on RSK).
    pub amount: u128,
    /// The release's number in its subnet.
    pub nonce: u64,
}

impl Release {
    /// The leaf of this release in `cross_msgs_root`.
    pub fn leaf(&self) -> [u8; 32] {
        let mut encoded = [0u8; 96];
        encoded[12..32].copy_from_slice(&self.recipient);
        encoded[48..64].copy_from_slice(&self.amount.to_be_bytes());
        encoded[88..96].copy_from_slice(&self.nonce.to_be_bytes());
        keccak256(&keccak256(&encoded))
    }
}

fn hash_pair(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    keccak256(&[low.as_slice(), high.as_slice()].concat())
}

fn level_up(level: &[[u8; 32]]) -> Vec<[u8; 32]> {
    level
        .chunks(2)
        .map(|pair| match pair {
            [a, b] => hash_pair(a, b),
            [a] => *a,
            _ => unreachable!("chunks(2) yields one or two"),
        })
        .collect()
}

/// The root over `leaves`; zero for none.
pub fn root(leaves: &[[u8; 32]]) -> [u8; 32] {
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        level = level_up(&level);
    }
    level.first().copied().unwrap_or_default()
}

/// The sibling path of leaf `index`, from the leaf up.
pub fn proof(leaves: &[[u8; 32]], mut index: usize) -> Vec<[u8; 32]> {
    let mut path = Vec::new();
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        if let Some(sibling) = level.get(index ^ 1) {
            path.push(*sibling);
        }
        level = level_up(&level);
        index /= 2;
    }
    path
}

/// The root `leaf` and its sibling `path` imply.
pub fn process_proof(leaf: [u8; 32], path: &[[u8; 32]]) -> [u8; 32] {
    path.iter()
        .fold(leaf, |node, sibling| hash_pair(&node, sibling))
}

/// `cross_msgs_root` of a checkpoint carrying `releases`, in order.
pub fn releases_root(releases: &[Release]) -> [u8; 32] {
    let leaves: Vec<[u8; 32]> = releases.iter().map(Release::leaf).collect();
    root(&leaves)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_leaf_proves_for_every_size() {
        assert_eq!(root(&[]), [0; 32]);
        for n in 1..=17u64 {
            let releases: Vec<Release> = (0..n)
                .map(|nonce| Release {
                    recipient: [nonce as u8; 20],
                    amount: u128::from(nonce) * 1_000,
                    nonce,
                })
                .collect();
            let leaves: Vec<[u8; 32]> = releases.iter().map(Release::leaf).collect();
            let r = releases_root(&releases);
            for (i, leaf) in leaves.iter().enumerate() {
                assert_eq!(process_proof(*leaf, &proof(&leaves, i)), r, "n={n} i={i}");
            }
            let mut altered = releases.clone();
            altered[0].amount += 1;
            assert_ne!(releases_root(&altered), r);
        }
    }
}
