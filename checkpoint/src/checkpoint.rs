//! The checkpoint a subnet cuts every `checkpoint_period` blocks, in the canonical encoding the
//! RSK gateway uses (Solidity ABI of ten static fields), so a digest computed here is the one
//! the contract computes.

use sha3::{Digest, Keccak256};

/// Keccak-256 of `bytes`.
pub fn keccak256(bytes: &[u8]) -> [u8; 32] {
    Keccak256::digest(bytes).into()
}

/// Left-pads a `u64` into one ABI word.
fn word_u64(value: u64) -> [u8; 32] {
    let mut word = [0u8; 32];
    word[24..].copy_from_slice(&value.to_be_bytes());
    word
}

/// `keccak256` of a subnet's path (`"/r33/alpha"`): the `bytes32` id the gateway and every
/// checkpoint use for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubnetHash(pub [u8; 32]);

impl SubnetHash {
    /// The id of the subnet at `path`.
    pub fn of_path(path: &str) -> Self {
        Self(keccak256(path.as_bytes()))
    }
}

/// `keccak256(abi.encode(cp))`: what the next checkpoint chains to and the gateway stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct CheckpointHash(pub [u8; 32]);

/// The 32 bytes validators sign for a checkpoint (see [`CheckpointDomain`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CheckpointDigest(pub [u8; 32]);

/// `keccak256(abi.encode(address[] signers, uint256[] powers))` of a validator set, signers in
/// strictly ascending order, as the gateway computes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ValidatorSetHash(pub [u8; 32]);

impl ValidatorSetHash {
    /// The hash of `members`, which must be sorted by address with no address twice (the
    /// caller's set type guarantees it; the gateway would refuse anything else).
    pub fn of(members: &[([u8; 20], u128)]) -> Self {
        let n = members.len();
        // Head: two offsets. Tails: each array is its length followed by its elements.
        let mut out = Vec::with_capacity(32 * (4 + 2 * n));
        out.extend_from_slice(&word_u64(64));
        out.extend_from_slice(&word_u64(64 + 32 * (1 + n as u64)));
        out.extend_from_slice(&word_u64(n as u64));
        for (address, _) in members {
            let mut word = [0u8; 32];
            word[12..].copy_from_slice(address);
            out.extend_from_slice(&word);
        }
        out.extend_from_slice(&word_u64(n as u64));
        for (_, power) in members {
            let mut word = [0u8; 32];
            word[16..].copy_from_slice(&power.to_be_bytes());
            out.extend_from_slice(&word);
        }
        Self(keccak256(&out))
    }
}

/// Where a checkpoint is verified, bound into its digest so a signature for one verifier is
/// worthless at another: the gateway's chain id and address for a level-1 subnet; the tree's
/// RSK chain id and the zero address for a subnet whose parent is another subnet (the
/// checkpoint's subnet id already names that parent's path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointDomain {
    /// The RSK chain id of the tree.
    pub chain_id: u64,
    /// The gateway's address, or zero under a subnet parent.
    pub verifier: [u8; 20],
}

impl CheckpointDomain {
    /// The domain of a subnet whose parent is an ipsat subnet of the tree rooted at `chain_id`.
    pub fn subnet_parent(chain_id: u64) -> Self {
        Self {
            chain_id,
            verifier: [0; 20],
        }
    }
}

/// A subnet's commitment to its state at `height`. Field order and types are the gateway's
/// `Checkpoint` struct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// `keccak256` of the subnet's path.
    pub subnet: SubnetHash,
    /// The height whose state this commits to; a multiple of the checkpoint period.
    pub height: u64,
    /// CometBFT's hash of the block at `height`.
    pub block_hash: [u8; 32],
    /// The state root after `height`.
    pub state_root: [u8; 32],
    /// The history root after `height` (every earlier state root is provable from it).
    pub history_root: [u8; 32],
    /// Root of the bottom-up messages since the previous checkpoint (zero when none).
    pub cross_msgs_root: [u8; 32],
    /// How many messages `cross_msgs_root` covers.
    pub cross_msgs_count: u64,
    /// The validator set that signs the next checkpoint.
    pub next_validator_set_hash: ValidatorSetHash,
    /// The configuration number of that set.
    pub configuration_number: u64,
    /// The hash of the previous checkpoint; zero for the first.
    pub previous: CheckpointHash,
}

/// Bytes of [`Checkpoint::abi_encode`]: ten static words.
pub const CHECKPOINT_ABI_BYTES: usize = 320;

/// Why bytes are not a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointDecodeError {
    /// Not exactly ten words.
    #[error("a checkpoint is {CHECKPOINT_ABI_BYTES} bytes, got {0}")]
    Length(usize),
    /// A `uint64` word with high bytes set.
    #[error("checkpoint field {0} is not a canonical uint64")]
    NotU64(&'static str),
}

impl Checkpoint {
    /// `abi.encode(cp)`.
    pub fn abi_encode(&self) -> [u8; CHECKPOINT_ABI_BYTES] {
        let words = [
            self.subnet.0,
            word_u64(self.height),
            self.block_hash,
            self.state_root,
            self.history_root,
            self.cross_msgs_root,
            word_u64(self.cross_msgs_count),
            self.next_validator_set_hash.0,
            word_u64(self.configuration_number),
            self.previous.0,
        ];
        let mut out = [0u8; CHECKPOINT_ABI_BYTES];
        for (chunk, word) in out.chunks_exact_mut(32).zip(words) {
            chunk.copy_from_slice(&word);
        }
        out
    }

    /// The inverse of [`Self::abi_encode`], refusing any other encoding of the same values.
    pub fn abi_decode(bytes: &[u8]) -> Result<Self, CheckpointDecodeError> {
        if bytes.len() != CHECKPOINT_ABI_BYTES {
            return Err(CheckpointDecodeError::Length(bytes.len()));
        }
        let word = |i: usize| -> [u8; 32] {
            let mut w = [0u8; 32];
            w.copy_from_slice(&bytes[32 * i..32 * (i + 1)]);
            w
        };
        let uint = |i: usize, name: &'static str| -> Result<u64, CheckpointDecodeError> {
            let w = word(i);
            if w[..24].iter().any(|b| *b != 0) {
                return Err(CheckpointDecodeError::NotU64(name));
            }
            let mut low = [0u8; 8];
            low.copy_from_slice(&w[24..]);
            Ok(u64::from_be_bytes(low))
        };
        Ok(Self {
            subnet: SubnetHash(word(0)),
            height: uint(1, "height")?,
            block_hash: word(2),
            state_root: word(3),
            history_root: word(4),
            cross_msgs_root: word(5),
            cross_msgs_count: uint(6, "cross_msgs_count")?,
            next_validator_set_hash: ValidatorSetHash(word(7)),
            configuration_number: uint(8, "configuration_number")?,
            previous: CheckpointHash(word(9)),
        })
    }

    /// `keccak256(abi.encode(cp))`.
    pub fn hash(&self) -> CheckpointHash {
        CheckpointHash(keccak256(&self.abi_encode()))
    }

    /// `keccak256(abi.encode(keccak256("ipsat/checkpoint/v1"), chainId, verifier, cp))`, the
    /// gateway's `checkpointDigest`.
    pub fn digest(&self, domain: &CheckpointDomain) -> CheckpointDigest {
        let mut out = Vec::with_capacity(96 + CHECKPOINT_ABI_BYTES);
        out.extend_from_slice(&keccak256(b"ipsat/checkpoint/v1"));
        out.extend_from_slice(&word_u64(domain.chain_id));
        let mut verifier = [0u8; 32];
        verifier[12..].copy_from_slice(&domain.verifier);
        out.extend_from_slice(&verifier);
        out.extend_from_slice(&self.abi_encode());
        CheckpointDigest(keccak256(&out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            subnet: SubnetHash::of_path("/r33/alpha"),
            height: 20,
            block_hash: [2; 32],
            state_root: [3; 32],
            history_root: [4; 32],
            cross_msgs_root: [0; 32],
            cross_msgs_count: 0,
            next_validator_set_hash: ValidatorSetHash([7; 32]),
            configuration_number: 1,
            previous: CheckpointHash([9; 32]),
        }
    }

    #[test]
    fn abi_encoding_round_trips_and_refuses_other_encodings() {
        let cp = sample();
        let bytes = cp.abi_encode();
        assert_eq!(&bytes[32..64], &word_u64(20));
        assert_eq!(Checkpoint::abi_decode(&bytes), Ok(cp));
        let mut dirty = bytes;
        dirty[32] = 1;
        assert_eq!(
            Checkpoint::abi_decode(&dirty),
            Err(CheckpointDecodeError::NotU64("height"))
        );
        assert_eq!(
            Checkpoint::abi_decode(&bytes[..319]),
            Err(CheckpointDecodeError::Length(319))
        );
    }

    #[test]
    fn the_digest_binds_every_field_and_the_domain() {
        let cp = sample();
        let domain = CheckpointDomain::subnet_parent(33);
        let digest = cp.digest(&domain);
        let mut other = cp.clone();
        other.configuration_number = 2;
        assert_ne!(other.digest(&domain), digest);
        assert_ne!(cp.digest(&CheckpointDomain::subnet_parent(31)), digest);
        let gateway = CheckpointDomain {
            chain_id: 33,
            verifier: [1; 20],
        };
        assert_ne!(cp.digest(&gateway), digest);
    }

    #[test]
    fn the_empty_validator_set_hash_is_the_gateways() {
        // keccak256(abi.encode(new address[](0), new uint256[](0))): offsets 64 and 96, two
        // zero lengths.
        let mut encoded = Vec::new();
        encoded.extend_from_slice(&word_u64(64));
        encoded.extend_from_slice(&word_u64(96));
        encoded.extend_from_slice(&[0; 64]);
        assert_eq!(ValidatorSetHash::of(&[]).0, keccak256(&encoded));
    }
}
