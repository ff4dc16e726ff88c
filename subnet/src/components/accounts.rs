//! Accounts: balances and nonces of 20-byte addresses, genesis allocations, and `Transfer`.
//!
//! Keys: `a/<address>` -> [`AccountRecord`]. An account never written reads as zero balance
//! and nonce.

use borsh::{BorshDeserialize, BorshSerialize};
use ipsat_core::action::Transfer;
use ipsat_core::{Address, Amount, TxError};

use crate::component::{ActionHandler, Component, ExecError, TxContext};
use crate::delta::{StateDelta, StateError, StateRead};
use crate::genesis::Genesis;
use crate::Event;

/// The accounts component.
pub struct Accounts;

/// The state key of `address`'s account.
pub fn account_key(address: &Address) -> Vec<u8> {
    [b"a/".as_slice(), address.as_bytes()].concat()
}

/// An account as stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct AccountRecord {
    /// In atto-RBTC.
    pub balance: u128,
    /// The nonce the account's next transaction must carry.
    pub nonce: u64,
}

impl AccountRecord {
    /// The balance as an [`Amount`].
    pub fn balance(&self) -> Amount {
        Amount::from_atto(self.balance)
    }
}

/// The account of `address`, zero if it was never written.
pub fn account(state: &impl StateRead, address: &Address) -> Result<AccountRecord, StateError> {
    Ok(state.get(&account_key(address))?.unwrap_or_default())
}

fn set_account(state: &mut StateDelta<'_>, address: &Address, record: &AccountRecord) {
    state.put(account_key(address), record);
}

/// Consumes `nonce` for `sender`, which must be exactly the account's next one.
pub fn use_nonce(state: &mut StateDelta<'_>, sender: Address, nonce: u64) -> Result<(), ExecError> {
    let mut record = account(state, &sender)?;
    if nonce != record.nonce {
        let (expected, got) = (record.nonce, nonce);
        return Err(if nonce < record.nonce {
            TxError::NonceTooLow {
                account: sender,
                expected,
                got,
            }
        } else {
            TxError::NonceTooHigh {
                account: sender,
                expected,
                got,
            }
        }
        .into());
    }
    record.nonce += 1;
    set_account(state, &sender, &record);
    Ok(())
}

/// Replaces `address`'s balance with what `change` makes of it, or refuses with its error.
fn update_balance(
    state: &mut StateDelta<'_>,
    address: Address,
    change: impl FnOnce(Amount) -> Result<Amount, TxError>,
) -> Result<(), ExecError> {
    let mut record = account(state, &address)?;
    record.balance = change(record.balance())?.atto();
    set_account(state, &address, &record);
    Ok(())
}

/// Takes `amount` from `address`, refusing to go below zero.
pub fn debit(
    state: &mut StateDelta<'_>,
    address: Address,
    amount: Amount,
) -> Result<(), ExecError> {
    update_balance(state, address, |have| {
        have.checked_sub(amount).ok_or(TxError::InsufficientFunds {
            account: address,
            have,
            need: amount,
        })
    })
}

/// Adds `amount` to `address`.
pub fn credit(
    state: &mut StateDelta<'_>,
    address: Address,
    amount: Amount,
) -> Result<(), ExecError> {
    // Genesis caps the supply below 2^128 and execution conserves it, so this cannot bind
    // for value that exists; it still refuses rather than wraps.
    update_balance(state, address, |have| {
        have.checked_add(amount)
            .ok_or_else(|| TxError::InvalidAmount("recipient balance overflow".into()))
    })
}

impl Component for Accounts {
    fn name(&self) -> &'static str {
        "accounts"
    }

    fn init_chain(&self, state: &mut StateDelta<'_>, genesis: &Genesis) -> Result<(), StateError> {
        for allocation in &genesis.accounts {
            let record = AccountRecord {
                balance: allocation.balance.atto(),
                nonce: 0,
            };
            set_account(state, &allocation.address, &record);
        }
        Ok(())
    }
}

impl ActionHandler for Transfer {
    fn execute(&self, state: &mut StateDelta<'_>, tx: &TxContext) -> Result<Vec<Event>, ExecError> {
        debit(state, tx.sender, self.amount)?;
        credit(state, self.to, self.amount)?;
        Ok(vec![Event {
            kind: "transfer",
            attributes: vec![
                ("from", tx.sender.to_string()),
                ("to", self.to.to_string()),
                ("amount", self.amount.to_string()),
            ],
        }])
    }
}
