//! The subnet's genesis, carried in CometBFT's `genesis.json` as `app_state`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::state::Params;
use crate::types::{Address, Amount, SubnetId};

#[derive(Debug, Error)]
pub enum GenesisError {
    #[error("genesis app_state is not valid JSON for an ipsat subnet: {0}")]
    Json(#[from] serde_json::Error),
    #[error("genesis allocates to {0} twice")]
    DuplicateAccount(Address),
    #[error("genesis allocations overflow 2^128 atto-RBTC")]
    SupplyOverflow,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    pub subnet_id: SubnetId,
    #[serde(default)]
    pub fees: FeeParams,
    #[serde(default)]
    pub accounts: Vec<GenesisAccount>,
}

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisAccount {
    pub address: Address,
    pub balance: Amount,
}

impl Genesis {
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

    pub fn params(&self) -> Params {
        Params {
            fee_base: self.fees.base.atto(),
            fee_per_byte: self.fees.per_byte.atto(),
        }
    }
}
