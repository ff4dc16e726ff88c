//! What the consensus engine tells the state machine about a block, and what a block hands
//! back to it. These are the app's own types: the node's ABCI module translates CometBFT's
//! messages into them, so nothing here depends on a CometBFT crate.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::Event;

/// A 20-byte CometBFT validator address (the truncated SHA-256 of its ed25519 key).
pub type ValidatorAddress = [u8; 20];

/// Facts about the block being proposed or executed. Everything a component may use to
/// decide anything comes from here or from state, never from the local clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockContext {
    /// The block's height.
    pub height: u64,
    /// The block's time as the proposer set it, in nanoseconds since the Unix epoch.
    pub time_unix_nanos: i64,
    /// The validator that proposed the block.
    pub proposer: ValidatorAddress,
    /// The block's hash; empty in PrepareProposal, where it does not exist yet.
    pub block_hash: Vec<u8>,
}

/// One validator's vote for the previous height as the proposer saw it, with its extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtendedVote {
    /// Who voted.
    pub validator: ValidatorAddress,
    /// Its voting power in the previous block's validator set.
    pub power: u64,
    /// Whether it voted for the block (only then is its extension meaningful).
    pub committed: bool,
    /// The application data it attached in ExtendVote; verify before use.
    pub extension: Vec<u8>,
}

/// The previous height's votes, delivered to the next proposer (`local_last_commit`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtendedCommit {
    /// The consensus round the previous block was decided in.
    pub round: i32,
    /// One entry per validator of the previous block.
    pub votes: Vec<ExtendedVote>,
}

/// A change of one validator's power, returned to CometBFT at FinalizeBlock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorUpdate {
    /// The validator's ed25519 consensus key.
    pub ed25519_pub_key: [u8; 32],
    /// Its new power; 0 removes it.
    pub power: u64,
}

/// Consensus parameters a block changes; `None` leaves a parameter as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsensusParamUpdates {
    /// Largest block in bytes.
    pub block_max_bytes: Option<u64>,
    /// First height whose votes carry extensions.
    pub vote_extensions_enable_height: Option<u64>,
}

impl ConsensusParamUpdates {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// What the block-level hooks return besides state: events, validator changes and consensus
/// parameter changes, all of which CometBFT receives in the FinalizeBlock response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockEffects {
    /// Events of `begin_block` and `end_block` (transactions carry their own).
    pub events: Vec<Event>,
    /// Validator power changes, in the order components produced them.
    pub validator_updates: Vec<ValidatorUpdate>,
    /// Consensus parameter changes.
    pub consensus_param_updates: ConsensusParamUpdates,
}

/// Data from outside consensus (the parent follower, the p2p plane) waiting to be proposed.
///
/// Services put data here; only PrepareProposal reads it, and everything it proposes from
/// here is verified again by every validator in ProcessProposal, so a service that feeds it
/// wrong data can delay a block but never change what the chain accepts.
///
/// Each item has a key chosen by its service (a child and a checkpoint height, say), so a
/// service that offers the same item on every poll while this node is not the proposer
/// keeps one copy of it, not one per poll.
#[derive(Debug, Clone, Default)]
pub struct ProposalInputs {
    slots: Arc<Mutex<Slots>>,
}

/// Queued transactions by (source, key).
type Slots = BTreeMap<(&'static str, String), Vec<u8>>;

/// One item of outside data, encoded as the transaction that carries it into a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectedTx {
    /// Which service supplied it, for logs.
    pub source: &'static str,
    /// The encoded transaction to place at the front of the next proposal.
    pub tx: Vec<u8>,
}

impl ProposalInputs {
    /// Queues `tx` for the next proposal under `key`, replacing what `source` queued under
    /// the same key.
    pub fn offer(&self, source: &'static str, key: String, tx: Vec<u8>) {
        self.lock().insert((source, key), tx);
    }

    /// Takes what is queued, by source and then key.
    pub fn take(&self) -> Vec<InjectedTx> {
        std::mem::take(&mut *self.lock())
            .into_iter()
            .map(|((source, _), tx)| InjectedTx { source, tx })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        // The queue holds plain data; a panic elsewhere cannot leave it inconsistent.
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
