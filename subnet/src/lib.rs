//! The deterministic state machine of one IPsatoshi subnet.
//!
//! Owns the components (accounts, fees, keyspaces; the registry, checkpoints, top-down and
//! cross-net messages join them), the app that runs them through the ABCI++ phases, the
//! authenticated state (a Jellyfish Merkle tree on RocksDB, blake3) with the history
//! accumulator, and [`TestChain`] to drive N validators in one process.
//!
//! It must stay synchronous and pure: no networking, no clocks, no configuration files, no
//! iteration over hash maps in anything that reaches the app hash. It must not depend on
//! CometBFT's crates: the node translates ABCI into [`context`] types. Types, transaction
//! verification and proof verification live in `ipsat-core`, which clients use without this
//! crate (and without RocksDB).

pub mod app;
pub mod component;
pub mod components;
pub mod context;
pub mod delta;
pub mod error;
pub mod genesis;
pub mod outcome;
pub mod query;
pub mod store;
pub mod test_chain;
pub mod test_tree;

pub use app::SubnetApp;
pub use context::{BlockContext, BlockEffects, ExtendedCommit, ExtendedVote, ProposalInputs};
pub use error::AppError;
pub use genesis::{FeeParams, Genesis, GenesisAccount};
pub use outcome::{CommittedBlock, Event, FinalizedBlock, TxResult};
pub use query::StateQuery;
pub use store::Store;
pub use test_chain::{genesis_validators, TestChain, TestKeys};
pub use test_tree::{TestTree, TreeSpec};
