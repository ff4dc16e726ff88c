//! Checkpoint-side commitments of IPsatoshi that are pure data and hashing.
//!
//! Owns the **history accumulator**: a Merkle mountain range over every block's
//! `(height, state_root)`, whose root a subnet commits to in its app hash (and later in its
//! checkpoints), so any past state is provable from any later commitment with a logarithmic
//! proof. Checkpoint types, quorum certificates and blocktree proofs will live here too.
//!
//! This crate has no storage and no networking: callers persist the nodes that
//! [`HistoryAccumulator::append`] returns and hand them back to build proofs.

mod history;

pub use history::{Hash32, HistoryAccumulator, HistoryError, HistoryNode, HistoryProof};
