//! The Bitcoin anchor of IPsatoshi.
//!
//! This crate owns everything between "here is a 32-byte anchor digest" and "here is a
//! self-contained proof that Bitcoin holds it":
//!
//! - [`anchor_digest`]: the tagged hash of `(rsk_chain_id, rsk_height, rsk_block_hash,
//!   blocktree_root)` that is committed into Bitcoin;
//! - [`tx`]: building and signing the anchor transaction (one P2WPKH or P2TR key-path input,
//!   an `OP_RETURN <digest>` output and change), checked offline with `bitcoinconsensus`
//!   before it is ever broadcast;
//! - [`rpc`]: a small JSON-RPC client that speaks to both btcd and Bitcoin Core;
//! - [`Anchorer`]: broadcasting and tracking the anchor (confirmations, reorgs, RBF fee bumps)
//!   with a crash-safe JSON state file, so a restart never double-spends or forgets an anchor;
//!   its funds checked against the chain and found there, and the node's refusals classified
//!   and recovered from ([`RefusalCause`]);
//! - [`proof`]: the anchor inclusion proof (transaction, merkle path, headers with work on
//!   top), its canonical byte encoding and its offline verifier.
//!
//! The digest and the proof are re-exported from `ipsat-core`, which owns them so that offline
//! verifiers of blocktree proofs need no networking.
//!
//! It must not depend on RSK or alloy, on `ipsat-node`, or on any storage engine: its only
//! persistent state is its own state file. Reading the blocktree root from RSK is the caller's
//! job; this crate receives the values to hash.
//!
//! No process-level concerns live here (no CLI, no config files, no `process::exit`).

pub mod anchorer;
pub mod rpc;
pub mod state;
pub mod tx;

// The digest and the proof verifier live in `ipsat-core`, where light verifiers find them
// without this crate's networking.
pub use ipsat_core::anchor_digest as digest;
pub use ipsat_core::anchor_proof as proof;

pub use anchorer::{AnchorError, AnchorStatus, Anchorer, AnchorerConfig, RefusalCause};
pub use digest::{anchor_digest, anchor_script, AnchorId, ANCHOR_TAG};
pub use proof::{AnchorProof, ChainTrust, MerklePath, ProofError, VerifiedAnchor};
pub use rpc::{RpcClient, RpcError, UnspentOutput, COINBASE_MATURITY};
pub use state::{AnchorState, ConfirmedAnchor, StateError};
pub use tx::{AnchorKey, ScriptKind, SignedAnchorTx, TxError, Utxo};

/// Re-export of the `bitcoin` crate version this crate's API uses.
pub use bitcoin;
