//! The RSK end of the blocktree: the `IpsatGateway` contract (Solidity source, committed
//! artifact, typed bindings) and the client that deploys and drives it over RSK JSON-RPC.
//!
//! The client speaks only what RSK serves: legacy (type 0) transactions with an explicit gas
//! price and chain id, its own nonce tracking, replacement of a stuck transaction at +40% gas
//! price, numeric block ranges for logs (bounded, at a confirmation depth), and no
//! `eth_feeHistory`, `eth_maxPriorityFeePerGas`, `eth_getProof` or `finalized`/`safe` tags.
//!
//! It must not depend on the node, the subnet state machine or Bitcoin: it moves checkpoints,
//! deposits and releases, it does not produce them.

pub mod contract;
pub mod gateway;
pub mod merkle;
pub mod rpc;

pub use contract::IpsatGateway;
pub use gateway::{join_digest, BridgeError, FundedEvent, Gateway, GatewayConfig, JoinKeys};
