//! The storage-free core of IPsatoshi.
//!
//! Owns what every party to a subnet must agree on without running one: the newtypes
//! ([`SubnetId`], [`Address`], [`Amount`]), the validated messages a transaction may carry
//! ([`action`]), transaction encoding, signing and stateless verification ([`tx`]), the
//! certificate-carrying system transactions and vote extensions ([`system`]), the result
//! codes ([`TxError`]), the verification of state proofs against an app hash ([`proof`]), and
//! light-client verification of the headers that carry app hashes ([`light`]), and the
//! formats of what moves between a parent and its children ([`crossnet`]), the Bitcoin anchor
//! digest and its inclusion proof ([`anchor_digest`], [`anchor_proof`]), and the blocktree
//! proof that chains a key in any subnet up to a Bitcoin block ([`blocktree`]).
//!
//! Clients, the load generator, tests and light verifiers depend on this crate alone. It must
//! not depend on storage (RocksDB), networking, async runtimes or clocks.

pub mod action;
pub mod anchor_digest;
pub mod anchor_proof;
pub mod blocktree;
pub mod crossnet;
pub mod error;
pub mod light;
pub mod proof;
pub mod rsk;
pub mod system;
pub mod tx;
pub mod types;

pub use action::Action;
pub use error::{TxError, CODESPACE};
pub use proof::{app_hash, verify_state_proof, Hash32, ProofError};
pub use system::{CheckpointVote, SystemTx, VoteExtension};
pub use tx::{TxHash, VerifiedTx};
pub use types::{Address, Amount, ParseError, SubnetId};
