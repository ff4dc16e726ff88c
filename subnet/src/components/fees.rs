//! Fees: the subnet's fee parameters and the charge every transaction pays before its message
//! runs.
//!
//! Keys: `p` -> [`Params`]. Fees accumulate in [`FEE_POOL`] until validator rewards exist.

use borsh::{BorshDeserialize, BorshSerialize};
use ipsat_core::{Address, Amount, TxError, VerifiedTx};

use crate::component::{Component, ExecError};
use crate::components::accounts;
use crate::delta::{StateDelta, StateError, StateRead};
use crate::genesis::Genesis;

/// The fees component.
pub struct Fees;

/// Fees accumulate here until validator rewards distribute them. No key controls it.
pub const FEE_POOL: Address = Address([0xfe; 20]);

/// Holds the subnet's [`Params`].
pub const PARAMS_KEY: &[u8] = b"p";

/// Economic parameters fixed at genesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Params {
    /// Charged on every transaction, in atto-RBTC.
    pub fee_base: u128,
    /// Charged per encoded byte, in atto-RBTC.
    pub fee_per_byte: u128,
}

impl Params {
    /// The least fee a transaction of `size` encoded bytes must offer.
    pub fn min_fee(&self, size: usize) -> Amount {
        let per_byte = self.fee_per_byte.saturating_mul(size as u128);
        Amount::from_atto(self.fee_base.saturating_add(per_byte))
    }
}

/// The fee parameters in `state`.
pub fn params(state: &impl StateRead) -> Result<Params, StateError> {
    state.get(PARAMS_KEY)?.ok_or_else(|| StateError::Corrupt {
        key: hex::encode(PARAMS_KEY),
        detail: "fee parameters missing".into(),
    })
}

/// Checks the fee against the minimum for the transaction's size, consumes the nonce and
/// moves the fee to the pool. A transaction that fails here changes nothing at all.
pub fn charge(state: &mut StateDelta<'_>, tx: &VerifiedTx) -> Result<(), ExecError> {
    let min = params(state)?.min_fee(tx.size);
    if tx.fee < min {
        return Err(TxError::FeeTooLow {
            min,
            offered: tx.fee,
        }
        .into());
    }
    accounts::use_nonce(state, tx.sender, tx.nonce)?;
    accounts::debit(state, tx.sender, tx.fee)?;
    accounts::credit(state, FEE_POOL, tx.fee)
}

impl Component for Fees {
    fn name(&self) -> &'static str {
        "fees"
    }

    fn init_chain(&self, state: &mut StateDelta<'_>, genesis: &Genesis) -> Result<(), StateError> {
        let params = Params {
            fee_base: genesis.fees.base.atto(),
            fee_per_byte: genesis.fees.per_byte.atto(),
        };
        state.put(PARAMS_KEY.to_vec(), &params);
        Ok(())
    }
}
