//! Offline verification of a [`pb::StateProof`]: key/value (or absence) -> state root ->
//! app hash. Comparing the app hash with a committed CometBFT header is the caller's step,
//! because only the caller knows which header it trusts.

use ipsat_proto::v1 as pb;
use jmt::proof::SparseMerkleProof;
use jmt::{KeyHash, RootHash, SimpleHasher};
use thiserror::Error;

/// The state key of `key` in keyspace `keyspace`, which proofs of a key-value pair name.
pub fn kv_key(keyspace: &str, key: &[u8]) -> Vec<u8> {
    [b"v/".as_slice(), keyspace.as_bytes(), b"/", key].concat()
}

/// A 32-byte digest: a root, an app hash or a block hash.
pub type Hash32 = [u8; 32];

/// The app hash commits to both roots: `blake3("ipsat/app-hash/v1" || state || history)`.
pub fn app_hash(state_root: &Hash32, history_root: &Hash32) -> Hash32 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"ipsat/app-hash/v1");
    hasher.update(state_root);
    hasher.update(history_root);
    *hasher.finalize().as_bytes()
}

/// blake3 as the Jellyfish Merkle tree's hash function.
#[derive(Default)]
pub struct Blake3Hasher(blake3::Hasher);

impl SimpleHasher for Blake3Hasher {
    fn new() -> Self {
        Self(blake3::Hasher::new())
    }
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    fn finalize(self) -> [u8; 32] {
        *self.0.finalize().as_bytes()
    }
}

/// A Jellyfish Merkle proof of the subnet state (borsh-encoded in [`pb::StateProof`]).
pub type StateProofJmt = SparseMerkleProof<Blake3Hasher>;

/// The key hash the state tree indexes `key` under.
pub fn key_hash(key: &[u8]) -> KeyHash {
    KeyHash::with::<Blake3Hasher>(key)
}

/// Why a state proof does not verify.
#[allow(missing_docs)] // Each variant's message says what it means.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProofError {
    #[error("{0} is not 32 bytes")]
    BadHashLength(&'static str),
    #[error("the merkle proof does not decode: {0}")]
    Decode(String),
    #[error("the merkle proof does not verify against the state root: {0}")]
    Merkle(String),
    #[error("the app hash does not commit to the state and history roots")]
    AppHash,
}

fn hash32(bytes: &[u8], what: &'static str) -> Result<[u8; 32], ProofError> {
    bytes
        .try_into()
        .map_err(|_| ProofError::BadHashLength(what))
}

/// Checks that `key` has `value` (or nothing) in the state whose root is `state_root`, by the
/// borsh-encoded Jellyfish Merkle proof `jmt_proof`.
pub fn verify_key_proof(
    jmt_proof: &[u8],
    state_root: &Hash32,
    key: &[u8],
    value: Option<&[u8]>,
) -> Result<(), ProofError> {
    let merkle: StateProofJmt =
        borsh::from_slice(jmt_proof).map_err(|e| ProofError::Decode(e.to_string()))?;
    merkle
        .verify(RootHash(*state_root), key_hash(key), value)
        .map_err(|e| ProofError::Merkle(e.to_string()))
}

/// Checks that `proof.key` has `proof.value` (or nothing) in the state committed by
/// `proof.app_hash`, and returns that app hash.
pub fn verify_state_proof(proof: &pb::StateProof) -> Result<[u8; 32], ProofError> {
    let state_root = hash32(&proof.state_root, "state root")?;
    let history_root = hash32(&proof.history_root, "history root")?;
    let claimed_app_hash = hash32(&proof.app_hash, "app hash")?;
    verify_key_proof(
        &proof.jmt_proof,
        &state_root,
        &proof.key,
        proof.value.as_deref(),
    )?;
    if app_hash(&state_root, &history_root) != claimed_app_hash {
        return Err(ProofError::AppHash);
    }
    Ok(claimed_app_hash)
}
