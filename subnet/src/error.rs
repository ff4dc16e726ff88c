//! Failures of the node itself, as opposed to a transaction's refusal ([`ipsat_core::TxError`]).

use ipsat_checkpoint::HistoryError;
use thiserror::Error;

use crate::delta::StateError;
use crate::genesis::GenesisError;
use crate::store::StoreError;

/// A failure that must stop the node rather than let it diverge from the others.
#[allow(missing_docs)] // Each variant's message says what it means.
#[derive(Debug, Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Genesis(#[from] GenesisError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("the chain has not been initialised (InitChain has not run)")]
    NotInitialized,
    #[error("InitChain with a different genesis than the one this node committed")]
    GenesisMismatch,
    #[error("expected block {expected}, got {got}")]
    HeightMismatch { expected: u64, got: u64 },
    #[error("commit without a finalized block")]
    NothingToCommit,
    #[error("a block hash must be 32 bytes, got {0}")]
    BlockHash(usize),
    #[error("height {asked} is not committed yet (the last committed height is {latest})")]
    NotCommitted { asked: u64, latest: u64 },
}
