//! What executing transactions and blocks produces: events, per-transaction results, and the
//! finalized and committed blocks the node reports to CometBFT and publishes to streams.

use ipsat_core::{Hash32, TxError, TxHash};
use ipsat_proto::v1 as pb;

use crate::context::BlockEffects;

/// Something a transaction or a block hook did, as ABCI events report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event's type, e.g. `transfer`.
    pub kind: &'static str,
    /// Key/value pairs, in a fixed order.
    pub attributes: Vec<(&'static str, String)>,
}

impl Event {
    /// The value of attribute `key`, if the event has one.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, value)| value.as_str())
    }

    /// The API's form of this event.
    pub fn to_proto(&self) -> pb::Event {
        pb::Event {
            kind: self.kind.to_owned(),
            attributes: self
                .attributes
                .iter()
                .map(|(key, value)| pb::EventAttribute {
                    key: (*key).to_owned(),
                    value: value.clone(),
                })
                .collect(),
        }
    }
}

/// The result of one transaction, in CheckTx or in a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxResult {
    /// SHA-256 of the raw transaction.
    pub hash: TxHash,
    /// 0 on success, else [`TxError::code`].
    pub code: u32,
    /// Empty on success, else `name: message`.
    pub log: String,
    /// The events of a successful transaction.
    pub events: Vec<Event>,
}

impl TxResult {
    pub(crate) fn succeeded(hash: TxHash, events: Vec<Event>) -> Self {
        Self {
            hash,
            code: 0,
            log: String::new(),
            events,
        }
    }

    pub(crate) fn failed(hash: TxHash, error: &TxError) -> Self {
        Self {
            hash,
            code: error.code(),
            log: format!("{}: {error}", error.name()),
            events: Vec::new(),
        }
    }

    /// The API's form of this result.
    pub fn to_proto(&self) -> pb::TxResult {
        pb::TxResult {
            hash: self.hash.to_vec(),
            code: self.code,
            log: self.log.clone(),
            events: self.events.iter().map(Event::to_proto).collect(),
        }
    }
}

/// A block after FinalizeBlock: its results, effects and app hash, not yet durable.
#[derive(Debug, Clone)]
pub struct FinalizedBlock {
    /// The block's height.
    pub height: u64,
    /// The app hash after the block.
    pub app_hash: Hash32,
    /// One result per transaction, in block order.
    pub tx_results: Vec<TxResult>,
    /// Events, validator updates and consensus parameter changes of the block hooks.
    pub effects: BlockEffects,
}

/// A block after Commit, as published to streams.
#[derive(Debug, Clone)]
pub struct CommittedBlock {
    /// The block's height.
    pub height: u64,
    /// CometBFT's hash of the block.
    pub block_hash: Vec<u8>,
    /// The app hash after the block.
    pub app_hash: Hash32,
    /// Root of the state tree after the block.
    pub state_root: Hash32,
    /// Root of the history accumulator after the block.
    pub history_root: Hash32,
    /// One result per transaction, in block order.
    pub tx_results: Vec<TxResult>,
    /// The height of the checkpoint this block cut, if one was due.
    pub checkpoint_cut: Option<u64>,
}

impl CommittedBlock {
    /// The events of its transactions of `kind`, in block order.
    pub fn events_of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Event> + 'a {
        self.tx_results
            .iter()
            .filter(|r| r.code == 0)
            .flat_map(|r| r.events.iter())
            .filter(move |e| e.kind == kind)
    }

    /// The API's form of this block.
    pub fn to_proto(&self) -> pb::Block {
        pb::Block {
            height: self.height,
            block_hash: self.block_hash.clone(),
            app_hash: self.app_hash.to_vec(),
            state_root: self.state_root.to_vec(),
            history_root: self.history_root.to_vec(),
            txs: self.tx_results.iter().map(TxResult::to_proto).collect(),
        }
    }
}
