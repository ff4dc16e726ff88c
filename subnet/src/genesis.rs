//! The subnet's genesis, carried in CometBFT's `genesis.json` as `app_state`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use ipsat_core::{Address, Amount, SubnetId};

/// Why a genesis is refused.
#[allow(missing_docs)] // Each variant's message says what it means.
#[derive(Debug, Error)]
pub enum GenesisError {
    #[error("genesis app_state is not valid JSON for an ipsat subnet: {0}")]
    Json(#[from] serde_json::Error),
    #[error("genesis allocates to {0} twice")]
    DuplicateAccount(Address),
    #[error("genesis allocations overflow 2^128 atto-RBTC")]
    SupplyOverflow,
}

/// The ipsat part of CometBFT's genesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// The subnet's path in the blocktree.
    pub subnet_id: SubnetId,
    /// Fee parameters.
    #[serde(default)]
    pub fees: FeeParams,
    /// Initial balances.
    #[serde(default)]
    pub accounts: Vec<GenesisAccount>,
}

/// The fee schedule at genesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeeParams {
    /// Charged on every transaction, in atto-RBTC.
    pub base: Amount,
    /// Charged per encoded byte, in atto-RBTC.
    pub per_byte: Amount,
}

impl Default for FeeParams {
    fn default() -> Self {
        Self {
            base: Amount::from_atto(1_000_000_000),
            per_byte: Amount::from_atto(10_000_000),
        }
    }
}

/// One allocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisAccount {
    /// The funded account.
    pub address: Address,
    /// Its balance at height 0.
    pub balance: Amount,
}

impl Genesis {
    /// Parses and checks a genesis: no account twice, a total supply below 2^128.
    pub fn from_json(bytes: &[u8]) -> Result<Self, GenesisError> {
        let genesis: Genesis = serde_json::from_slice(bytes)?;
        let mut seen = BTreeSet::new();
        let mut supply = Amount::ZERO;
        for account in &genesis.accounts {
            if !seen.insert(account.address) {
                return Err(GenesisError::DuplicateAccount(account.address));
            }
            supply = supply
                .checked_add(account.balance)
                .ok_or(GenesisError::SupplyOverflow)?;
        }
        Ok(genesis)
    }
}
