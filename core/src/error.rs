//! Why a transaction was refused. Every variant maps to a stable ABCI code that clients
//! can match on; the codes are part of the public API and listed in the README.
//!
//! Codes are grouped by the component that raises them, so components added later never
//! renumber existing ones:
//!
//! | range | owner |
//! |---|---|
//! | 1-3, 16 | transaction envelope (decoding, signature, subnet binding, size) |
//! | 4-8 | accounts and fees |
//! | 9-15 | keyspaces |
//! | 100-199 | subnet registry |
//! | 200-299 | checkpoints |
//! | 300-399 | top-down (parent finality) |
//! | 400-499 | cross-net messages |

use thiserror::Error;

use crate::types::{Address, Amount};

/// The ABCI `codespace` of every code below, so clients can tell ipsat's codes from
/// CometBFT's own.
pub const CODESPACE: &str = "ipsat";

/// Why a transaction was refused; see [`TxError::code`].
#[allow(missing_docs)] // Each variant's message says what it means.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TxError {
    #[error("malformed transaction: {0}")]
    Malformed(String),
    #[error("invalid signature: {0}")]
    InvalidSignature(&'static str),
    #[error("transaction is for subnet {got:?}, this is {expected}")]
    WrongSubnet { expected: String, got: String },
    #[error("nonce {got} already used: account {account} expects {expected}")]
    NonceTooLow {
        account: Address,
        expected: u64,
        got: u64,
    },
    #[error("nonce {got} is in the future: account {account} expects {expected}")]
    NonceTooHigh {
        account: Address,
        expected: u64,
        got: u64,
    },
    #[error("insufficient funds: {account} has {have}, needs {need}")]
    InsufficientFunds {
        account: Address,
        have: Amount,
        need: Amount,
    },
    #[error("fee {offered} is below the minimum {min} for this transaction")]
    FeeTooLow { min: Amount, offered: Amount },
    #[error("invalid amount: {0}")]
    InvalidAmount(String),
    #[error("key of {got} bytes exceeds the keyspace limit of {max}")]
    KeyTooLarge { max: u32, got: usize },
    #[error("value of {got} bytes exceeds the keyspace limit of {max}")]
    ValueTooLarge { max: u32, got: usize },
    #[error("keyspace {0:?} does not exist")]
    KeyspaceNotFound(String),
    #[error("keyspace {0:?} already exists")]
    KeyspaceExists(String),
    #[error("{writer} may not write to keyspace {keyspace:?}")]
    Unauthorized { writer: Address, keyspace: String },
    #[error("invalid keyspace definition: {0}")]
    InvalidKeyspace(String),
    #[error("key {0} does not exist")]
    KeyNotFound(String),
    #[error("transaction of {got} bytes exceeds the limit of {max}")]
    TxTooLarge { max: usize, got: usize },
    #[error("invalid subnet parameters: {0}")]
    InvalidSubnetParams(String),
    #[error("a child subnet named {0:?} already exists")]
    SubnetExists(String),
    #[error("no child subnet named {0:?}")]
    SubnetNotFound(String),
    #[error("{0} is already a member of this subnet")]
    AlreadyMember(Address),
    #[error("{0} is not a member of this subnet")]
    NotMember(Address),
    #[error("collateral {got} is below the subnet's minimum {min}")]
    CollateralTooLow { min: Amount, got: Amount },
    #[error("invalid validator key: {0}")]
    InvalidValidatorKey(String),
    #[error("this {0} key is already registered by another member")]
    DuplicateValidatorKey(&'static str),
    #[error("subnet {name:?} is {status}: {why}")]
    WrongSubnetStatus {
        name: String,
        status: &'static str,
        why: &'static str,
    },
    #[error("only the creator {creator} may do this")]
    NotCreator { creator: Address },
    #[error("subnet {0:?} already has the maximum number of validators")]
    SubnetFull(String),
    #[error("only a block proposer may include this transaction")]
    ProposerOnly,
    #[error("checkpoint out of order: expected height {expected}, got {got}")]
    CheckpointOutOfOrder { expected: u64, got: u64 },
    #[error("checkpoint does not match: {0}")]
    CheckpointMismatch(String),
    #[error("invalid checkpoint certificate: {0}")]
    InvalidCertificate(String),
    #[error("this subnet has no parent")]
    NoParent,
    #[error("parent header refused: {0}")]
    ParentHeader(String),
    #[error(
        "the trusted parent header (height {trusted_height}) is older than the trusting period: \
         the child imports nothing from its parent until it is re-anchored"
    )]
    ParentClientExpired { trusted_height: u64 },
    #[error("top-down message out of order: expected nonce {expected}, got {got}")]
    TopDownOutOfOrder { expected: u64, got: u64 },
    #[error("top-down message not proven: {0}")]
    TopDownProof(String),
    #[error(
        "the next checkpoint already carries {max} releases: release again after the next \
         checkpoint height"
    )]
    ReleaseQueueFull { max: u64 },
    #[error("invalid cross-net call: {0}")]
    InvalidCrossCall(String),
    #[error("no route to {0}: no such subnet in this tree")]
    Unreachable(String),
}

impl TxError {
    /// The ABCI response code; 0 is success.
    pub fn code(&self) -> u32 {
        match self {
            TxError::Malformed(_) => 1,
            TxError::InvalidSignature(_) => 2,
            TxError::WrongSubnet { .. } => 3,
            TxError::NonceTooLow { .. } => 4,
            TxError::NonceTooHigh { .. } => 5,
            TxError::InsufficientFunds { .. } => 6,
            TxError::FeeTooLow { .. } => 7,
            TxError::InvalidAmount(_) => 8,
            TxError::KeyTooLarge { .. } => 9,
            TxError::ValueTooLarge { .. } => 10,
            TxError::KeyspaceNotFound(_) => 11,
            TxError::KeyspaceExists(_) => 12,
            TxError::Unauthorized { .. } => 13,
            TxError::InvalidKeyspace(_) => 14,
            TxError::KeyNotFound(_) => 15,
            TxError::TxTooLarge { .. } => 16,
            TxError::InvalidSubnetParams(_) => 100,
            TxError::SubnetExists(_) => 101,
            TxError::SubnetNotFound(_) => 102,
            TxError::AlreadyMember(_) => 103,
            TxError::NotMember(_) => 104,
            TxError::CollateralTooLow { .. } => 105,
            TxError::InvalidValidatorKey(_) => 106,
            TxError::DuplicateValidatorKey(_) => 107,
            TxError::WrongSubnetStatus { .. } => 108,
            TxError::NotCreator { .. } => 109,
            TxError::SubnetFull(_) => 110,
            TxError::ProposerOnly => 200,
            TxError::CheckpointOutOfOrder { .. } => 201,
            TxError::CheckpointMismatch(_) => 202,
            TxError::InvalidCertificate(_) => 203,
            TxError::NoParent => 300,
            TxError::ParentHeader(_) => 301,
            TxError::ParentClientExpired { .. } => 302,
            TxError::TopDownOutOfOrder { .. } => 303,
            TxError::TopDownProof(_) => 304,
            TxError::ReleaseQueueFull { .. } => 400,
            TxError::InvalidCrossCall(_) => 401,
            TxError::Unreachable(_) => 402,
        }
    }

    /// Short machine-readable name, the prefix of the ABCI log line.
    pub fn name(&self) -> &'static str {
        match self {
            TxError::Malformed(_) => "malformed",
            TxError::InvalidSignature(_) => "invalid_signature",
            TxError::WrongSubnet { .. } => "wrong_subnet",
            TxError::NonceTooLow { .. } => "nonce_too_low",
            TxError::NonceTooHigh { .. } => "nonce_too_high",
            TxError::InsufficientFunds { .. } => "insufficient_funds",
            TxError::FeeTooLow { .. } => "fee_too_low",
            TxError::InvalidAmount(_) => "invalid_amount",
            TxError::KeyTooLarge { .. } => "key_too_large",
            TxError::ValueTooLarge { .. } => "value_too_large",
            TxError::KeyspaceNotFound(_) => "keyspace_not_found",
            TxError::KeyspaceExists(_) => "keyspace_exists",
            TxError::Unauthorized { .. } => "unauthorized",
            TxError::InvalidKeyspace(_) => "invalid_keyspace",
            TxError::KeyNotFound(_) => "key_not_found",
            TxError::TxTooLarge { .. } => "tx_too_large",
            TxError::InvalidSubnetParams(_) => "invalid_subnet_params",
            TxError::SubnetExists(_) => "subnet_exists",
            TxError::SubnetNotFound(_) => "subnet_not_found",
            TxError::AlreadyMember(_) => "already_member",
            TxError::NotMember(_) => "not_member",
            TxError::CollateralTooLow { .. } => "collateral_too_low",
            TxError::InvalidValidatorKey(_) => "invalid_validator_key",
            TxError::DuplicateValidatorKey(_) => "duplicate_validator_key",
            TxError::WrongSubnetStatus { .. } => "wrong_subnet_status",
            TxError::NotCreator { .. } => "not_creator",
            TxError::SubnetFull(_) => "subnet_full",
            TxError::ProposerOnly => "proposer_only",
            TxError::CheckpointOutOfOrder { .. } => "checkpoint_out_of_order",
            TxError::CheckpointMismatch(_) => "checkpoint_mismatch",
            TxError::InvalidCertificate(_) => "invalid_certificate",
            TxError::NoParent => "no_parent",
            TxError::ParentHeader(_) => "parent_header",
            TxError::ParentClientExpired { .. } => "parent_client_expired",
            TxError::TopDownOutOfOrder { .. } => "top_down_out_of_order",
            TxError::TopDownProof(_) => "top_down_proof",
            TxError::ReleaseQueueFull { .. } => "release_queue_full",
            TxError::InvalidCrossCall(_) => "invalid_cross_call",
            TxError::Unreachable(_) => "unreachable",
        }
    }
}
