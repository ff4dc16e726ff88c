//! The blocktree proof: one self-contained file showing that a key has a value (or none) in a
//! subnet at some height, and that this state is committed, checkpoint by checkpoint, up to a
//! level-1 checkpoint in the RSK gateway's blocktree, whose root is committed in a Bitcoin
//! transaction under a stated amount of work.
//!
//! ```text
//! key/value --JMT--> state root at height h --history--> checkpoint of the subnet
//!   --parent's record r/c/<name>/<height> (JMT)--> parent's state root --history--> its checkpoint
//!   ... --> level-1 checkpoint --gateway quorum (ECDSA) + blocktree path--> blocktree root
//!   --anchor digest--> OP_RETURN in a Bitcoin transaction --merkle path--> block --headers--> work
//! ```
//!
//! What verification establishes, given the [`TrustRoots`]: the level-1 checkpoint was signed
//! for the gateway at `gateway` on chain `rsk_chain_id` by more than two thirds of the power of
//! the signing set its own previous checkpoint declared (the set the gateway checks), every
//! lower checkpoint was accepted into its parent's state (whose validators checked its
//! certificate when they accepted it), and the blocktree root holding the level-1 checkpoint is
//! committed in Bitcoin as [`ChainTrust`] states. It does not show that the anchored root was
//! the gateway's at that RSK height (RSK state cannot be proven offline), nor that the signing
//! set is the one registered on the gateway when the level-1 checkpoint is the subnet's first
//! (no previous checkpoint binds it; [`VerifiedBlocktree::signing_set_bound`] says so).
//!
//! # Encoding (format 1)
//!
//! `"IPBT" | 0x01 | borsh(BlocktreeProof)`. Borsh is canonical for these types and decoding
//! refuses trailing bytes, so one proof has one encoding; the Bitcoin part is
//! [`AnchorProof`]'s own canonical encoding.

use bitcoin::Network;
use borsh::{BorshDeserialize, BorshSerialize};
use ipsat_checkpoint::blocktree::{self, BLOCKTREE_DEPTH};
use ipsat_checkpoint::{
    is_quorum, Checkpoint, CheckpointDomain, CheckpointHash, HistoryProof, ValidatorSetHash,
};
use thiserror::Error;

use crate::anchor_digest::anchor_digest;
use crate::anchor_proof::{
    AnchorProof, ChainTrust, ProofError as AnchorProofError, VerifiedAnchor,
};
use crate::crossnet::{accepted_checkpoint_key, StoredCheckpoint};
use crate::proof::{kv_key, verify_key_proof, Hash32};
use crate::rsk::GatewaySignature;
use crate::types::SubnetId;

/// Magic bytes opening an encoded blocktree proof.
pub const BLOCKTREE_PROOF_MAGIC: &[u8; 4] = b"IPBT";
/// Encoding format version.
pub const BLOCKTREE_PROOF_FORMAT: u8 = 1;
/// Largest encoded proof accepted: far above any real one (a few KiB), far below harm.
pub const MAX_BLOCKTREE_PROOF_BYTES: usize = 1 << 20;

/// A key's value in a subnet, proven up to a Bitcoin block. Build it with `ipsat proof`;
/// check it with [`BlocktreeProof::verify`].
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BlocktreeProof {
    /// The path of the subnet holding the key, e.g. `/r33/alpha/beta`.
    pub subnet: String,
    /// The keyspace of the key.
    pub keyspace: String,
    /// The key.
    pub key: Vec<u8>,
    /// Its value, `None` for a proof of absence.
    pub value: Option<Vec<u8>>,
    /// The borsh Jellyfish Merkle proof of the key in `levels[0].state_root`.
    pub key_proof: Vec<u8>,
    /// One entry per subnet from the key's subnet up to its level-1 ancestor.
    pub levels: Vec<LevelProof>,
    /// How the level-1 checkpoint is in the gateway's blocktree.
    pub gateway: GatewayProof,
    /// How the blocktree root is in Bitcoin.
    pub anchor: AnchorCommitment,
}

/// One subnet's step: a state of the subnet, the checkpoint whose history holds it and, below
/// level 1, the parent's record of that checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct LevelProof {
    /// The height of the proven state.
    pub height: u64,
    /// The state root after that height.
    pub state_root: Hash32,
    /// That `(height, state_root)` is in the checkpoint's history root.
    pub history: HistoryPath,
    /// The checkpoint's 320-byte ABI encoding.
    pub checkpoint: Vec<u8>,
    /// Below level 1: the parent's record of the checkpoint, proven in the next level's state.
    pub accepted: Option<AcceptedRecord>,
}

/// A [`HistoryProof`] as the file carries it.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct HistoryPath {
    /// The leaf's position (its height).
    pub leaf_index: u64,
    /// Leaves in the accumulator (the checkpoint's height plus one).
    pub leaf_count: u64,
    /// Siblings from the leaf up to its peak.
    pub siblings: Vec<Hash32>,
    /// Every peak, largest first.
    pub peaks: Vec<Hash32>,
}

impl From<HistoryProof> for HistoryPath {
    fn from(p: HistoryProof) -> Self {
        Self {
            leaf_index: p.leaf_index,
            leaf_count: p.leaf_count,
            siblings: p.siblings,
            peaks: p.peaks,
        }
    }
}

impl From<&HistoryPath> for HistoryProof {
    fn from(p: &HistoryPath) -> Self {
        Self {
            leaf_index: p.leaf_index,
            leaf_count: p.leaf_count,
            siblings: p.siblings.clone(),
            peaks: p.peaks.clone(),
        }
    }
}

/// The parent's state record of a child checkpoint ([`StoredCheckpoint`], borsh) with its
/// Jellyfish Merkle proof.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct AcceptedRecord {
    /// The record's bytes, as stored.
    pub record: Vec<u8>,
    /// Its borsh Jellyfish Merkle proof.
    pub proof: Vec<u8>,
}

/// The level-1 checkpoint's quorum for the gateway and its place in the blocktree.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct GatewayProof {
    /// The subnet's previous checkpoint (ABI), which declares the set that signs this one;
    /// absent only for a subnet's first checkpoint.
    pub previous: Option<Vec<u8>>,
    /// The signing set, `(signer, power)` by ascending signer.
    pub signers: Vec<([u8; 20], u128)>,
    /// Signatures of the gateway digest, `(index in signers, r || s || v)`, ascending.
    pub signatures: Vec<(u32, [u8; 65])>,
    /// The subnet's leaf index in the blocktree (its registration order).
    pub leaf_index: u64,
    /// The [`BLOCKTREE_DEPTH`] siblings from the leaf up.
    pub siblings: Vec<Hash32>,
}

/// The RSK point whose blocktree root was anchored, and the Bitcoin inclusion proof.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct AnchorCommitment {
    /// The final RSK height the root was read at.
    pub rsk_height: u64,
    /// That block's hash.
    pub rsk_block_hash: Hash32,
    /// [`AnchorProof::encode`] of the anchor transaction.
    pub bitcoin: Vec<u8>,
}

/// What the verifier trusts, given explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustRoots {
    /// The RSK chain id of the tree.
    pub rsk_chain_id: u64,
    /// The gateway contract's address.
    pub gateway: [u8; 20],
    /// The Bitcoin network (bounds each header's target).
    pub network: Network,
    /// The work, or the known block, the Bitcoin headers must carry or reach.
    pub bitcoin: ChainTrust,
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBlocktree {
    /// The subnet holding the key.
    pub subnet: SubnetId,
    /// The height whose state holds it.
    pub height: u64,
    /// The value, `None` if the key was absent.
    pub value: Option<Vec<u8>>,
    /// The level-1 checkpoint in the anchored blocktree.
    pub level_one_checkpoint: CheckpointHash,
    /// The set that signed it for the gateway.
    pub signing_set: ValidatorSetHash,
    /// Whether the proof binds that set through the previous checkpoint (false only for a
    /// subnet's first checkpoint).
    pub signing_set_bound: bool,
    /// The anchored blocktree root.
    pub blocktree_root: Hash32,
    /// The anchor digest found in Bitcoin.
    pub anchor_digest: Hash32,
    /// The Bitcoin side.
    pub bitcoin: VerifiedAnchor,
    /// Each step proved, in order, for people.
    pub steps: Vec<String>,
}

/// Why a blocktree proof does not decode or verify.
#[allow(missing_docs)] // Each variant's message says what it means.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BlocktreeError {
    #[error("not a blocktree proof (bad magic bytes)")]
    BadMagic,
    #[error("unsupported blocktree proof format {0}")]
    UnsupportedFormat(u8),
    #[error("the proof is {0} bytes, at most {MAX_BLOCKTREE_PROOF_BYTES} accepted")]
    TooLarge(usize),
    #[error("the proof does not decode: {0}")]
    Decode(String),
    #[error("{0:?} is not a subnet path below RSK")]
    BadSubnet(String),
    #[error("the subnet is in the tree of RSK chain {found}, the trusted chain is {trusted}")]
    WrongChain { found: u64, trusted: u64 },
    #[error("{subnet} is {expected} levels below RSK, the proof has {got}")]
    LevelCount {
        subnet: String,
        expected: usize,
        got: usize,
    },
    #[error("the key's value is not in the state of {subnet} at height {height}: {reason}")]
    KeyProof {
        subnet: String,
        height: u64,
        reason: String,
    },
    #[error("the checkpoint of {subnet} does not decode: {reason}")]
    Checkpoint { subnet: String, reason: String },
    #[error("the checkpoint claims subnet {found}, the proof is about {subnet}")]
    WrongSubnet { subnet: String, found: String },
    #[error("height {height} of {subnet} is not in checkpoint {checkpoint}'s history: {reason}")]
    History {
        subnet: String,
        height: u64,
        checkpoint: u64,
        reason: String,
    },
    #[error("{subnet} has no parent record of its checkpoint in the proof")]
    MissingRecord { subnet: String },
    #[error("level 1 ({subnet}) carries a parent record, but its parent is the gateway")]
    UnexpectedRecord { subnet: String },
    #[error("the parent's record of {subnet}'s checkpoint is not that checkpoint: {reason}")]
    RecordMismatch { subnet: String, reason: String },
    #[error("{parent} did not accept checkpoint {height} of {subnet}: {reason}")]
    NotAccepted {
        subnet: String,
        parent: String,
        height: u64,
        reason: String,
    },
    #[error("the gateway's signing set is not sorted by signer without repeats")]
    UnsortedSigners,
    #[error("gateway signature {position}: {reason}")]
    BadGatewaySignature { position: usize, reason: String },
    #[error("gateway signatures carry {signed} of {total} power, not more than two thirds")]
    NoQuorum { signed: u128, total: u128 },
    #[error("the level-1 checkpoint chains to a previous one the proof does not carry")]
    MissingPrevious,
    #[error(
        "the level-1 checkpoint is its subnet's first; the proof must not carry a previous one"
    )]
    UnexpectedPrevious,
    #[error("the previous level-1 checkpoint does not match: {0}")]
    PreviousMismatch(String),
    #[error("the signing set {found} is not the set {declared} the previous checkpoint declared")]
    SetMismatch { found: String, declared: String },
    #[error(
        "the blocktree path has {0} siblings, the gateway's tree has {BLOCKTREE_DEPTH} levels"
    )]
    BlocktreeDepth(usize),
    #[error("blocktree leaf index {0} is outside the gateway's tree")]
    BlocktreeIndex(u64),
    #[error("the Bitcoin anchor: {0}")]
    Anchor(#[from] AnchorProofError),
}

impl BlocktreeProof {
    /// The canonical encoding (see the module documentation).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(BLOCKTREE_PROOF_MAGIC);
        out.push(BLOCKTREE_PROOF_FORMAT);
        // Writing into a Vec cannot fail.
        borsh::to_writer(&mut out, self).expect("borsh into a Vec");
        out
    }

    /// Decodes [`Self::encode`]'s output; anything else is an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Self, BlocktreeError> {
        if bytes.len() > MAX_BLOCKTREE_PROOF_BYTES {
            return Err(BlocktreeError::TooLarge(bytes.len()));
        }
        let body = bytes
            .strip_prefix(BLOCKTREE_PROOF_MAGIC.as_slice())
            .ok_or(BlocktreeError::BadMagic)?;
        let (&format, body) = body
            .split_first()
            .ok_or(BlocktreeError::Decode("no format byte".into()))?;
        if format != BLOCKTREE_PROOF_FORMAT {
            return Err(BlocktreeError::UnsupportedFormat(format));
        }
        borsh::from_slice(body).map_err(|e| BlocktreeError::Decode(e.to_string()))
    }

    /// Checks every step offline against `trust`; see the module documentation for what a
    /// success establishes.
    pub fn verify(&self, trust: &TrustRoots) -> Result<VerifiedBlocktree, BlocktreeError> {
        let subnet: SubnetId = self
            .subnet
            .parse()
            .map_err(|_| BlocktreeError::BadSubnet(self.subnet.clone()))?;
        if subnet.level() == 0 {
            return Err(BlocktreeError::BadSubnet(self.subnet.clone()));
        }
        if subnet.root_chain_id() != trust.rsk_chain_id {
            return Err(BlocktreeError::WrongChain {
                found: subnet.root_chain_id(),
                trusted: trust.rsk_chain_id,
            });
        }
        if self.levels.len() != subnet.level() {
            return Err(BlocktreeError::LevelCount {
                subnet: self.subnet.clone(),
                expected: subnet.level(),
                got: self.levels.len(),
            });
        }
        let mut steps = Vec::new();
        let first = &self.levels[0];
        verify_key_proof(
            &self.key_proof,
            &first.state_root,
            &kv_key(&self.keyspace, &self.key),
            self.value.as_deref(),
        )
        .map_err(|e| BlocktreeError::KeyProof {
            subnet: self.subnet.clone(),
            height: first.height,
            reason: e.to_string(),
        })?;
        steps.push(match &self.value {
            Some(value) => format!(
                "{}/{} = {} ({} bytes) in {subnet} at height {}, state root {}",
                self.keyspace,
                printable(&self.key),
                printable(value),
                value.len(),
                first.height,
                hex::encode(first.state_root),
            ),
            None => format!(
                "{}/{} is absent from {subnet} at height {}, state root {}",
                self.keyspace,
                printable(&self.key),
                first.height,
                hex::encode(first.state_root),
            ),
        });

        let mut level_subnet = subnet.clone();
        let mut level_one = None;
        for (i, level) in self.levels.iter().enumerate() {
            let checkpoint = level_checkpoint(&level_subnet, level)?;
            steps.push(format!(
                "height {} of {level_subnet} is in the history of its checkpoint {} ({})",
                level.height,
                checkpoint.height,
                hex::encode(checkpoint.hash().0),
            ));
            let parent = level_subnet.parent().filter(|p| p.level() > 0);
            match (parent, &level.accepted) {
                (Some(parent), Some(accepted)) => {
                    let above = &self.levels[i + 1];
                    check_accepted(&level_subnet, &parent, &checkpoint, accepted, above)?;
                    steps.push(format!(
                        "{parent} accepted it into its state at height {}, state root {}",
                        above.height,
                        hex::encode(above.state_root),
                    ));
                    level_subnet = parent;
                }
                (Some(_), None) => {
                    return Err(BlocktreeError::MissingRecord {
                        subnet: level_subnet.to_string(),
                    })
                }
                (None, Some(_)) => {
                    return Err(BlocktreeError::UnexpectedRecord {
                        subnet: level_subnet.to_string(),
                    })
                }
                (None, None) => level_one = Some(checkpoint),
            }
        }
        let level_one = level_one.expect("the last level has no parent subnet");

        let (signing_set, signing_set_bound, signed, total) =
            self.gateway.check_quorum(&level_one, trust)?;
        steps.push(format!(
            "{level_subnet}'s checkpoint {} is signed for gateway 0x{} on chain {} by {signed} of \
             {total} power of set {}{}",
            level_one.height,
            hex::encode(trust.gateway),
            trust.rsk_chain_id,
            hex::encode(signing_set.0),
            if signing_set_bound {
                ", the set its previous checkpoint declared"
            } else {
                " (its first checkpoint: no previous one binds the set)"
            },
        ));
        let blocktree_root = self.gateway.blocktree_root(&level_subnet, &level_one)?;
        steps.push(format!(
            "it is leaf {} of blocktree root {}",
            self.gateway.leaf_index,
            hex::encode(blocktree_root),
        ));

        let digest = anchor_digest(
            trust.rsk_chain_id,
            self.anchor.rsk_height,
            self.anchor.rsk_block_hash,
            blocktree_root,
        );
        steps.push(format!(
            "RSK block {} ({}) with that root gives anchor digest {}",
            self.anchor.rsk_height,
            hex::encode(self.anchor.rsk_block_hash),
            hex::encode(digest),
        ));
        let bitcoin = AnchorProof::decode(&self.anchor.bitcoin)?.verify(
            &digest,
            &trust.bitcoin,
            trust.network,
        )?;
        steps.push(format!(
            "Bitcoin transaction {} commits it in block {}, under {} headers up to {} carrying work {}",
            bitcoin.txid,
            bitcoin.block_hash,
            bitcoin.confirmations,
            bitcoin.tip_hash,
            bitcoin.total_work,
        ));
        Ok(VerifiedBlocktree {
            subnet,
            height: first.height,
            value: self.value.clone(),
            level_one_checkpoint: level_one.hash(),
            signing_set,
            signing_set_bound,
            blocktree_root,
            anchor_digest: digest,
            bitcoin,
            steps,
        })
    }
}

/// The checkpoint of `level`, after checking it is `subnet`'s and that the proven state is in
/// its history.
fn level_checkpoint(subnet: &SubnetId, level: &LevelProof) -> Result<Checkpoint, BlocktreeError> {
    let checkpoint =
        Checkpoint::abi_decode(&level.checkpoint).map_err(|e| BlocktreeError::Checkpoint {
            subnet: subnet.to_string(),
            reason: e.to_string(),
        })?;
    if checkpoint.subnet != subnet.hash() {
        return Err(BlocktreeError::WrongSubnet {
            subnet: subnet.to_string(),
            found: hex::encode(checkpoint.subnet.0),
        });
    }
    HistoryProof::from(&level.history)
        .verify(&checkpoint.history_root, level.height, &level.state_root)
        .map_err(|e| BlocktreeError::History {
            subnet: subnet.to_string(),
            height: level.height,
            checkpoint: checkpoint.height,
            reason: e.to_string(),
        })?;
    Ok(checkpoint)
}

/// Checks that `parent`'s state at `above` holds its record of `checkpoint` of `subnet`.
fn check_accepted(
    subnet: &SubnetId,
    parent: &SubnetId,
    checkpoint: &Checkpoint,
    accepted: &AcceptedRecord,
    above: &LevelProof,
) -> Result<(), BlocktreeError> {
    let mismatch = |reason: String| BlocktreeError::RecordMismatch {
        subnet: subnet.to_string(),
        reason,
    };
    let record: StoredCheckpoint =
        borsh::from_slice(&accepted.record).map_err(|e| mismatch(e.to_string()))?;
    if record.abi != checkpoint.abi_encode() {
        return Err(mismatch("another checkpoint".into()));
    }
    verify_key_proof(
        &accepted.proof,
        &above.state_root,
        &accepted_checkpoint_key(subnet.name(), checkpoint.height),
        Some(&accepted.record),
    )
    .map_err(|e| BlocktreeError::NotAccepted {
        subnet: subnet.to_string(),
        parent: parent.to_string(),
        height: checkpoint.height,
        reason: e.to_string(),
    })
}

impl GatewayProof {
    /// Checks the signatures of `checkpoint`'s gateway digest against the signing set, and the
    /// set against the previous checkpoint; returns the set's hash, whether it is bound, and
    /// the signed and total power.
    fn check_quorum(
        &self,
        checkpoint: &Checkpoint,
        trust: &TrustRoots,
    ) -> Result<(ValidatorSetHash, bool, u128, u128), BlocktreeError> {
        if !self.signers.windows(2).all(|w| w[0].0 < w[1].0) {
            return Err(BlocktreeError::UnsortedSigners);
        }
        let set = ValidatorSetHash::of(&self.signers);
        let bound = match (
            &self.previous,
            checkpoint.previous == CheckpointHash::default(),
        ) {
            (None, true) => false,
            (Some(_), true) => return Err(BlocktreeError::UnexpectedPrevious),
            (None, false) => return Err(BlocktreeError::MissingPrevious),
            (Some(abi), false) => {
                let previous = Checkpoint::abi_decode(abi)
                    .map_err(|e| BlocktreeError::PreviousMismatch(e.to_string()))?;
                if previous.hash() != checkpoint.previous {
                    return Err(BlocktreeError::PreviousMismatch(
                        "its hash is not the one the checkpoint chains to".into(),
                    ));
                }
                if previous.next_validator_set_hash != set {
                    return Err(BlocktreeError::SetMismatch {
                        found: hex::encode(set.0),
                        declared: hex::encode(previous.next_validator_set_hash.0),
                    });
                }
                true
            }
        };
        let digest = checkpoint.digest(&CheckpointDomain {
            chain_id: trust.rsk_chain_id,
            verifier: trust.gateway,
        });
        let mut signed = 0u128;
        let mut last = None;
        for (position, (index, bytes)) in self.signatures.iter().enumerate() {
            let bad = |reason: String| BlocktreeError::BadGatewaySignature { position, reason };
            if last.is_some_and(|l| *index <= l) {
                return Err(bad("signer indices are not strictly ascending".into()));
            }
            last = Some(*index);
            let (signer, power) = self
                .signers
                .get(*index as usize)
                .ok_or_else(|| bad(format!("signer {index} is not in the set")))?;
            let recovered = GatewaySignature::from_bytes(bytes)
                .and_then(|s| s.signer(&digest.0))
                .map_err(|e| bad(e.to_string()))?;
            if recovered.0 != *signer {
                return Err(bad(format!(
                    "made by {recovered}, not by signer {index} (0x{})",
                    hex::encode(signer)
                )));
            }
            signed = signed.saturating_add(*power);
        }
        let total = self
            .signers
            .iter()
            .fold(0u128, |sum, (_, power)| sum.saturating_add(*power));
        if !is_quorum(signed, total) {
            return Err(BlocktreeError::NoQuorum { signed, total });
        }
        Ok((set, bound, signed, total))
    }

    /// The blocktree root that `checkpoint` of level-1 `subnet` at this leaf implies.
    fn blocktree_root(
        &self,
        subnet: &SubnetId,
        checkpoint: &Checkpoint,
    ) -> Result<Hash32, BlocktreeError> {
        if self.siblings.len() != BLOCKTREE_DEPTH {
            return Err(BlocktreeError::BlocktreeDepth(self.siblings.len()));
        }
        if self.leaf_index >> BLOCKTREE_DEPTH != 0 {
            return Err(BlocktreeError::BlocktreeIndex(self.leaf_index));
        }
        let leaf = blocktree::leaf(&subnet.hash(), &checkpoint.hash());
        Ok(blocktree::process_proof(
            leaf,
            self.leaf_index,
            &self.siblings,
        ))
    }
}

/// `bytes` as text when it is printable ASCII, else as `0x` hex.
pub fn printable(bytes: &[u8]) -> String {
    if !bytes.is_empty() && bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        String::from_utf8_lossy(bytes).into_owned()
    } else {
        format!("0x{}", hex::encode(bytes))
    }
}
