//! Checkpoint-side commitments of IPsatoshi: pure data, hashing and signatures.
//!
//! Owns the **checkpoint** (the ten fields the RSK gateway defines, Solidity ABI encoded, so
//! its digest is the contract's), the **BLS12-381 keys, signatures and quorum certificates**
//! that certify it, and the **history accumulator**: a Merkle mountain range over every
//! block's `(height, state_root)`, whose root a subnet commits to in its app hash and in its
//! checkpoints, so any past state is provable from any later commitment. It also owns the
//! tree of bottom-up releases a checkpoint commits to ([`cross_msgs`]), and the gateway's
//! [`blocktree`] of level-1 checkpoints, so proofs through it verify without RSK.
//!
//! This crate has no storage, no networking and no clock, and must not depend on the state
//! machine or the node: callers persist what it returns and hand it back.

pub mod blocktree;
pub mod bls;
pub mod certificate;
pub mod checkpoint;
pub mod cross_msgs;
mod history;

pub use bls::{BlsError, BlsPublicKey, BlsSecretKey, BlsSignature};
pub use certificate::{is_quorum, Certificate, CertificateError, Signer};
pub use checkpoint::{
    keccak256, Checkpoint, CheckpointDigest, CheckpointDomain, CheckpointHash, SubnetHash,
    ValidatorSetHash,
};
pub use history::{
    peak_positions, Hash32, HistoryAccumulator, HistoryError, HistoryNode, HistoryProof,
};
