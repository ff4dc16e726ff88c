//! What moves between subnets, as every side reads it: the top-down queue a parent keeps for
//! each child, which the child imports with proofs against the parent's signed state, and the
//! cross-net messages between any two subnets of the tree, routed up to their lowest common
//! ancestor and down.
//!
//! Keys in the parent's state (each child's queue is its own key range, in nonce order):
//! `x/td/<child>/<nonce, 20 decimal digits>` -> a borsh-encoded [`TopDownMessage`];
//! `r/c/<child>/<height be>` -> the child's checkpoint accepted at that height, with its
//! certificate ([`StoredCheckpoint`], the same record a subnet keeps of its own certified
//! checkpoints), which blocktree proofs read.

use borsh::{BorshDeserialize, BorshSerialize};
use ipsat_checkpoint::checkpoint::CheckpointDecodeError;
use ipsat_checkpoint::{keccak256, BlsError, BlsSignature, Certificate, Checkpoint};

use crate::error::TxError;
use crate::rsk::GatewaySignature;

use crate::types::SubnetId;

/// Most releases one checkpoint carries, so a checkpoint with its releases always fits in one
/// system transaction (about 70 bytes each).
pub const MAX_RELEASES_PER_CHECKPOINT: u64 = 512;

/// The parent's state key of child `name`'s checkpoint at `height`, once accepted.
pub fn accepted_checkpoint_key(name: &str, height: u64) -> Vec<u8> {
    [
        b"r/c/".as_slice(),
        name.as_bytes(),
        b"/",
        &height.to_be_bytes(),
    ]
    .concat()
}

/// A checkpoint with its certificate, as a parent stores a child's and a subnet its own.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct StoredCheckpoint {
    /// The checkpoint's ABI encoding.
    pub abi: Vec<u8>,
    /// The certificate's signer bitmap.
    pub signers: Vec<u8>,
    /// The aggregate signature, compressed.
    pub signature: Vec<u8>,
    /// The height of the block that certified (or, in a parent, accepted) it.
    pub recorded_at: u64,
    /// Under the gateway: the signers' gateway signatures, by ascending signer index.
    pub gateway_signatures: Vec<(u32, Vec<u8>)>,
}

/// Why a [`StoredCheckpoint`] does not decode.
#[allow(missing_docs)] // Each variant's message says what it means.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoredCheckpointError {
    #[error("stored checkpoint: {0}")]
    Checkpoint(#[from] CheckpointDecodeError),
    #[error("stored checkpoint signature: {0}")]
    Signature(#[from] BlsError),
    #[error("stored gateway signature: {0}")]
    GatewaySignature(#[from] TxError),
}

impl StoredCheckpoint {
    /// Records `checkpoint` with `certificate` at block `height`.
    pub fn new(checkpoint: &Checkpoint, certificate: &Certificate, height: u64) -> Self {
        Self {
            abi: checkpoint.abi_encode().to_vec(),
            signers: certificate.signers.clone(),
            signature: certificate.signature.to_bytes().to_vec(),
            recorded_at: height,
            gateway_signatures: Vec::new(),
        }
    }

    /// The same, carrying the gateway signatures of its certificate.
    pub fn with_gateway_signatures(mut self, signatures: &[(u32, GatewaySignature)]) -> Self {
        self.gateway_signatures = signatures
            .iter()
            .map(|(index, signature)| (*index, signature.0.to_vec()))
            .collect();
        self
    }

    /// The gateway signatures back.
    pub fn decode_gateway_signatures(
        &self,
    ) -> Result<Vec<(u32, GatewaySignature)>, StoredCheckpointError> {
        self.gateway_signatures
            .iter()
            .map(|(index, bytes)| Ok((*index, GatewaySignature::from_bytes(bytes)?)))
            .collect()
    }

    /// The checkpoint and certificate back.
    pub fn decode(&self) -> Result<(Checkpoint, Certificate), StoredCheckpointError> {
        Ok((
            Checkpoint::abi_decode(&self.abi)?,
            Certificate {
                signers: self.signers.clone(),
                signature: BlsSignature::from_bytes(&self.signature)?,
            },
        ))
    }
}

/// A message the parent queued for a child, imported there in nonce order.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum TopDownMessage {
    /// Value locked in the parent for the child, minted in the child to `recipient`.
    Deposit {
        /// The child account credited.
        recipient: [u8; 20],
        /// In atto-RBTC.
        amount: u128,
    },
    /// A cross-net message on its way down, carrying its value.
    Cross(CrossMessage),
    /// The child's membership in the parent's registry after a join or leave: the child
    /// declares it in its next checkpoint and it signs the checkpoints after that one.
    Membership {
        /// The registry's configuration number of this membership.
        configuration_number: u64,
        /// Every member that has not left, ascending by address.
        members: Vec<MemberInfo>,
    },
}

/// A validator of a child as its parent's registry announces it.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct MemberInfo {
    /// Its account address in the parent.
    pub address: [u8; 20],
    /// Its CometBFT ed25519 consensus key.
    pub cometbft_key: [u8; 32],
    /// Its BLS key, uncompressed (checked, with its proof of possession, when it joined).
    pub bls_key: Vec<u8>,
    /// Its collateral in atto-RBTC; its voting power is that in gwei.
    pub collateral: u128,
}

/// Largest payload a cross-net call carries.
pub const MAX_CROSS_PAYLOAD: usize = 4096;

/// Where a cross-net call lands in its destination subnet.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Target {
    /// An account, credited with the value.
    Account([u8; 20]),
    /// A key of a keyspace, set to the payload; the keyspace's owner is credited with the
    /// value. The keyspace's policy applies to the caller's address.
    Keyspace {
        /// The keyspace.
        name: String,
        /// The key written.
        key: Vec<u8>,
    },
}

/// What a cross-net message is.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum CrossKind {
    /// A call, with its payload.
    Call {
        /// Written at a keyspace target; carried (and shown in events) for an account.
        payload: Vec<u8>,
    },
    /// The outcome of call `call_nonce` of the subnet the receipt goes to: code 0 delivered,
    /// otherwise the result code of the failure, with the call's value refunded.
    Receipt {
        /// The call's nonce in its origin subnet.
        call_nonce: u64,
        /// 0, or why the call failed.
        code: u32,
    },
}

/// A message between two subnets of the tree. `(from_subnet, nonce)` names it: each subnet
/// numbers the messages it originates (calls, and receipts of calls it received) from 0.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct CrossMessage {
    /// The subnet it comes from.
    pub from_subnet: String,
    /// The account that sent it there (zero for a receipt).
    pub from: [u8; 20],
    /// Its number in `from_subnet`.
    pub nonce: u64,
    /// The subnet it goes to.
    pub to_subnet: String,
    /// Where it lands there.
    pub to: Target,
    /// The value it carries, in atto-RBTC.
    pub amount: u128,
    /// A call or a receipt.
    pub kind: CrossKind,
}

/// Domain tag of cross-message leaves in a checkpoint's `cross_msgs_root`, so they can never
/// be taken for a release leaf (whose preimage is 96 bytes, this one's 64).
const CROSS_LEAF_TAG: &[u8] = b"ipsat/cross-msg/v1";

impl CrossMessage {
    /// Its canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("encoding into memory cannot fail")
    }

    /// Decodes the canonical encoding (and only it).
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let message: Self = borsh::from_slice(bytes).map_err(|e| e.to_string())?;
        if message.encode() != bytes {
            return Err("cross-net message is not canonically encoded".into());
        }
        Ok(message)
    }

    /// Its leaf in a checkpoint's `cross_msgs_root`:
    /// `keccak256(keccak256(keccak256(tag) || keccak256(encoding)))`.
    pub fn leaf(&self) -> [u8; 32] {
        let inner = [keccak256(CROSS_LEAF_TAG), keccak256(&self.encode())].concat();
        keccak256(&keccak256(&inner))
    }
}

/// The next step of a message at `here` bound for `destination`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hop {
    /// It has arrived.
    Here,
    /// Down to this child of `here`.
    Down(String),
    /// Up to `here`'s parent: the destination is not below `here`.
    Up,
}

/// Where a message at `here` bound for `destination` goes next.
pub fn next_hop(here: &SubnetId, destination: &SubnetId) -> Hop {
    if here == destination {
        return Hop::Here;
    }
    let prefix = format!("{}/", here.as_str());
    match destination.as_str().strip_prefix(&prefix) {
        Some(rest) => Hop::Down(rest.split('/').next().unwrap_or_default().to_owned()),
        None => Hop::Up,
    }
}

/// The parent's state key of top-down message `nonce` for the child `child`.
pub fn top_down_key(child: &str, nonce: u64) -> Vec<u8> {
    format!("x/td/{child}/{nonce:020}").into_bytes()
}

/// The child and nonce of a top-down key, if `key` is one.
pub fn parse_top_down_key(key: &[u8]) -> Option<(&str, u64)> {
    let rest = std::str::from_utf8(key).ok()?.strip_prefix("x/td/")?;
    let (child, nonce) = rest.rsplit_once('/')?;
    if nonce.len() != 20 || !nonce.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((child, nonce.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_route_up_to_the_common_ancestor_and_down() {
        let id = |path: &str| -> SubnetId { path.parse().unwrap() };
        let (root, a, b, ab) = (
            id("/r33/p"),
            id("/r33/p/a"),
            id("/r33/p/b"),
            id("/r33/p/a/x"),
        );
        assert_eq!(next_hop(&a, &b), Hop::Up);
        assert_eq!(next_hop(&root, &b), Hop::Down("b".into()));
        assert_eq!(next_hop(&root, &ab), Hop::Down("a".into()));
        assert_eq!(next_hop(&a, &ab), Hop::Down("x".into()));
        assert_eq!(next_hop(&b, &b), Hop::Here);
        assert_eq!(next_hop(&ab, &root), Hop::Up);
        // A name that only starts like a child is not one.
        assert_eq!(next_hop(&a, &id("/r33/p/ab")), Hop::Up);
    }

    #[test]
    fn cross_messages_decode_only_canonically_and_hash_apart() {
        let message = CrossMessage {
            from_subnet: "/r33/p/a".into(),
            from: [1; 20],
            nonce: 3,
            to_subnet: "/r33/p/b".into(),
            to: Target::Keyspace {
                name: "notes".into(),
                key: b"k".to_vec(),
            },
            amount: 5,
            kind: CrossKind::Call {
                payload: b"hello".to_vec(),
            },
        };
        let bytes = message.encode();
        assert_eq!(CrossMessage::decode(&bytes), Ok(message.clone()));
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(CrossMessage::decode(&padded).is_err());
        let mut other = message.clone();
        other.amount += 1;
        assert_ne!(other.leaf(), message.leaf());
    }

    #[test]
    fn keys_round_trip_and_sort_by_nonce() {
        let key = top_down_key("alpha", 42);
        assert_eq!(key, b"x/td/alpha/00000000000000000042");
        assert_eq!(parse_top_down_key(&key), Some(("alpha", 42)));
        assert!(top_down_key("alpha", 9) < top_down_key("alpha", 10));
        for bad in [
            &b"x/td/alpha/42"[..],
            b"x/td/alpha/0000000000000000004x",
            b"a/td/alpha/00000000000000000042",
            b"x/td/00000000000000000042",
        ] {
            assert_eq!(parse_top_down_key(bad), None, "{bad:?}");
        }
    }
}
