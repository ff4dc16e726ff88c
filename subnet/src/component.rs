//! The shape every domain of the state machine takes.
//!
//! A component owns its state keys, their accessors, the handlers of its messages and its
//! errors. It may hook the chain's start and each block's start and end; the app runs every
//! component's hooks in one fixed order ([`crate::components::ALL`]). A message's handler is an
//! [`ActionHandler`] on the validated message type, so a new message touches its component and
//! one line of the dispatch, not the app.

use ipsat_core::{Address, SubnetId, TxError, TxHash};

use crate::context::{BlockContext, BlockEffects};
use crate::delta::{StateDelta, StateError};
use crate::genesis::Genesis;
use crate::Event;

/// Why a handler did not complete: the transaction's fault (a result code for its sender), or
/// the node's (storage or corrupt state, which must stop the node rather than fork it).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The transaction is refused with this code.
    #[error(transparent)]
    Tx(#[from] TxError),
    /// The node could not read or decode its own state.
    #[error(transparent)]
    State(#[from] StateError),
}

impl From<crate::store::StoreError> for ExecError {
    fn from(e: crate::store::StoreError) -> Self {
        ExecError::State(e.into())
    }
}

/// What a handler knows about the transaction it runs for.
#[derive(Debug, Clone, Copy)]
pub struct TxContext<'a> {
    /// The verified signer.
    pub sender: Address,
    /// The transaction's hash.
    pub hash: TxHash,
    /// The height of the block it runs in (the next block, in the mempool).
    pub height: u64,
    /// The subnet it runs in.
    pub subnet: &'a SubnetId,
}

/// Stateful checks and execution of one validated message. A handler runs in its own fork of
/// the state: when it returns an error, whatever it wrote is discarded.
pub trait ActionHandler {
    /// Checks the message against `state` and applies it, returning its events.
    fn execute(&self, state: &mut StateDelta<'_>, tx: &TxContext) -> Result<Vec<Event>, ExecError>;
}

/// Block-level hooks of a domain; each defaults to doing nothing.
pub trait Component: Sync {
    /// A name for logs.
    fn name(&self) -> &'static str;

    /// Writes the component's genesis state.
    fn init_chain(
        &self,
        _state: &mut StateDelta<'_>,
        _genesis: &Genesis,
    ) -> Result<(), StateError> {
        Ok(())
    }

    /// Runs before the block's transactions.
    fn begin_block(
        &self,
        _state: &mut StateDelta<'_>,
        _block: &BlockContext,
        _effects: &mut BlockEffects,
    ) -> Result<(), StateError> {
        Ok(())
    }

    /// Runs after the block's transactions.
    fn end_block(
        &self,
        _state: &mut StateDelta<'_>,
        _block: &BlockContext,
        _effects: &mut BlockEffects,
    ) -> Result<(), StateError> {
        Ok(())
    }
}
