//! The deterministic state machine of one IPsatoshi subnet.
//!
//! Owns accounts, transfers, keyspaces and fees; transaction encoding and signature checks;
//! the authenticated state (a Jellyfish Merkle tree on RocksDB, blake3) with the history
//! accumulator, and the proofs clients verify against an app hash.
//!
//! It must stay synchronous and pure: no networking, no clocks, no configuration files, no
//! iteration over hash maps in anything that reaches the app hash. The node crate drives it
//! from ABCI; tests drive it directly.

pub mod app;
pub mod error;
pub mod genesis;
pub mod proof;
pub mod query;
pub mod state;
pub mod store;
pub mod tx;
pub mod types;

pub use app::{app_hash, AppError, CommittedBlock, Event, FinalizedBlock, SubnetApp, TxResult};
pub use error::TxError;
pub use genesis::{FeeParams, Genesis, GenesisAccount};
pub use proof::{verify_state_proof, ProofError};
pub use query::StateQuery;
pub use store::Store;
pub use types::{Address, Amount, SubnetId};
