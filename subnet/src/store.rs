//! Authenticated state on RocksDB.
//!
//! Column families:
//! - `state`: raw key -> latest value, for fast reads during execution;
//! - `jmt_nodes`, `jmt_values`: the Jellyfish Merkle tree, versioned by height, which gives
//!   existence and non-existence proofs at any committed height;
//! - `history`: nodes of the history accumulator;
//! - `meta`: genesis and the committed block's roots.
//!
//! A block is written with one synced `WriteBatch`, so a crash leaves either the whole block
//! or none of it; CometBFT's handshake replays what is missing.

use std::path::Path;

use borsh::{BorshDeserialize, BorshSerialize};
use ipsat_checkpoint::{Checkpoint, HistoryAccumulator, HistoryNode, HistoryProof};
use ipsat_core::proof::{key_hash, Blake3Hasher, StateProofJmt};
use ipsat_core::Hash32;
use jmt::storage::{LeafNode, Node, NodeBatch, NodeKey, TreeReader, TreeUpdateBatch};
use jmt::{JellyfishMerkleTree, KeyHash, OwnedValue, RootHash, Version};
use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};
use thiserror::Error;

use crate::components::checkpoints::CutCheckpoints;
use crate::delta::{Changes, StateError, StateRead};

const CF_STATE: &str = "state";
const CF_JMT_NODES: &str = "jmt_nodes";
const CF_JMT_VALUES: &str = "jmt_values";
const CF_HISTORY: &str = "history";
const CF_META: &str = "meta";
/// Checkpoints cut from the block they commit to, by height (outside the state tree, which
/// they commit to).
const CF_CHECKPOINTS: &str = "checkpoints";

const META_COMMITTED: &[u8] = b"committed";
const META_GENESIS: &[u8] = b"genesis";

/// A failure of RocksDB or of the records in it.
#[allow(missing_docs)] // Each variant's message says what it means.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("merkle tree: {0}")]
    Tree(String),
    #[error("corrupt record {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
}

/// What is persisted about the last committed block.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Committed {
    /// The block's height (0 is genesis).
    pub height: u64,
    /// Root of the state tree.
    pub state_root: Hash32,
    /// Root of the history accumulator.
    pub history_root: Hash32,
    /// `app_hash(state_root, history_root)`.
    pub app_hash: Hash32,
    /// Blocks in the history accumulator.
    pub history_leaf_count: u64,
    /// The accumulator's peaks, to resume appending.
    pub history_peaks: Vec<Hash32>,
}

/// Everything one block changes, written atomically by [`Store::write_block`].
pub struct BlockWrite {
    /// Latest values of the keys the block wrote (`None` deletes).
    pub state_changes: Changes,
    /// The state tree's new nodes.
    pub tree_update: TreeUpdateBatch,
    /// The history accumulator's new nodes.
    pub history_nodes: Vec<HistoryNode>,
    /// The block's roots.
    pub committed: Committed,
    /// The genesis, written once with height 0.
    pub genesis: Option<Vec<u8>>,
    /// The checkpoint this block cut, if one was due.
    pub cut_checkpoint: Option<Checkpoint>,
}

/// The subnet's RocksDB database; see the module documentation.
pub struct Store {
    db: DB,
}

fn corrupt(what: &'static str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: detail.to_string(),
    }
}

fn history_key(level: u8, index: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = level;
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
}

fn jmt_value_key(key_hash: &KeyHash, version: Version) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..32].copy_from_slice(&key_hash.0);
    key[32..].copy_from_slice(&version.to_be_bytes());
    key
}

impl Store {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let families = [
            CF_STATE,
            CF_JMT_NODES,
            CF_JMT_VALUES,
            CF_HISTORY,
            CF_META,
            CF_CHECKPOINTS,
        ]
        .into_iter()
        .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        Ok(Self {
            db: DB::open_cf_descriptors(&options, path, families)?,
        })
    }

    fn cf(&self, name: &'static str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("every column family is created at open")
    }

    /// The latest committed value of `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(CF_STATE), key)?)
    }

    /// The last committed block's roots, `None` before genesis.
    pub fn committed(&self) -> Result<Option<Committed>, StoreError> {
        self.db
            .get_cf(self.cf(CF_META), META_COMMITTED)?
            .map(|bytes| Committed::try_from_slice(&bytes).map_err(|e| corrupt("committed", e)))
            .transpose()
    }

    /// The genesis this database was initialised with, as JSON.
    pub fn genesis(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(CF_META), META_GENESIS)?)
    }

    /// A node of the history accumulator.
    pub fn history_node(&self, level: u8, index: u64) -> Result<Option<Hash32>, StoreError> {
        self.db
            .get_cf(self.cf(CF_HISTORY), history_key(level, index))?
            .map(|bytes| {
                Hash32::try_from(bytes.as_slice()).map_err(|_| corrupt("history node", "length"))
            })
            .transpose()
    }

    /// Computes the state root of `version` after applying `changes` to the previous version,
    /// without writing anything.
    pub fn compute_root(
        &self,
        changes: &Changes,
        version: Version,
    ) -> Result<(RootHash, TreeUpdateBatch), StoreError> {
        JellyfishMerkleTree::<_, Blake3Hasher>::new(self)
            .put_value_set(
                changes.iter().map(|(k, v)| (key_hash(k), v.clone())),
                version,
            )
            .map_err(|e| StoreError::Tree(e.to_string()))
    }

    /// The state root of `version`.
    pub fn state_root(&self, version: Version) -> Result<Hash32, StoreError> {
        JellyfishMerkleTree::<_, Blake3Hasher>::new(self)
            .get_root_hash(version)
            .map(|root| root.0)
            .map_err(|e| StoreError::Tree(e.to_string()))
    }

    /// The history accumulator after block `height` (one leaf per block from genesis), rebuilt
    /// from the stored peaks.
    fn history_at(&self, height: u64) -> Result<HistoryAccumulator, StoreError> {
        let leaf_count = height + 1;
        let peaks = ipsat_checkpoint::peak_positions(leaf_count)
            .into_iter()
            .map(|(level, index)| {
                self.history_node(level, index)?
                    .ok_or_else(|| corrupt("history node", "missing"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        HistoryAccumulator::from_parts(leaf_count, peaks)
            .map_err(|_| corrupt("history peaks", "shape"))
    }

    /// The history root after block `height`.
    pub fn history_root(&self, height: u64) -> Result<Hash32, StoreError> {
        Ok(self.history_at(height)?.root())
    }

    /// The proof that `(height, state root)` is in the history accumulator as of block `at`.
    pub fn history_proof(&self, height: u64, at: u64) -> Result<HistoryProof, StoreError> {
        let history = self.history_at(at)?;
        let mut read_error = None;
        let proof = history.prove(height, |level, index| {
            match self.history_node(level, index) {
                Ok(node) => node,
                Err(e) => {
                    read_error.get_or_insert(e);
                    None
                }
            }
        });
        if let Some(e) = read_error {
            return Err(e);
        }
        proof.map_err(|e| corrupt("history proof", e))
    }

    /// The value of `key` at `version` with a proof against that version's state root.
    pub fn get_with_proof(
        &self,
        key: &[u8],
        version: Version,
    ) -> Result<(Option<Vec<u8>>, StateProofJmt), StoreError> {
        JellyfishMerkleTree::<_, Blake3Hasher>::new(self)
            .get_with_proof(key_hash(key), version)
            .map_err(|e| StoreError::Tree(e.to_string()))
    }

    /// Writes one block atomically and durably.
    pub fn write_block(&self, block: BlockWrite) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for (key, value) in &block.state_changes {
            match value {
                Some(value) => batch.put_cf(self.cf(CF_STATE), key, value),
                None => batch.delete_cf(self.cf(CF_STATE), key),
            }
        }
        let nodes: &NodeBatch = &block.tree_update.node_batch;
        for (node_key, node) in nodes.nodes() {
            let key = borsh::to_vec(node_key).map_err(|e| corrupt("jmt node key", e))?;
            let value = borsh::to_vec(node).map_err(|e| corrupt("jmt node", e))?;
            batch.put_cf(self.cf(CF_JMT_NODES), key, value);
        }
        for ((version, key_hash), value) in nodes.values() {
            let encoded = match value {
                Some(value) => [&[1u8][..], value].concat(),
                None => vec![0u8],
            };
            batch.put_cf(
                self.cf(CF_JMT_VALUES),
                jmt_value_key(key_hash, *version),
                encoded,
            );
        }
        for node in &block.history_nodes {
            batch.put_cf(
                self.cf(CF_HISTORY),
                history_key(node.level, node.index),
                node.hash,
            );
        }
        if let Some(checkpoint) = &block.cut_checkpoint {
            batch.put_cf(
                self.cf(CF_CHECKPOINTS),
                checkpoint.height.to_be_bytes(),
                checkpoint.abi_encode(),
            );
        }
        if let Some(genesis) = &block.genesis {
            batch.put_cf(self.cf(CF_META), META_GENESIS, genesis);
        }
        let committed = borsh::to_vec(&block.committed).map_err(|e| corrupt("committed", e))?;
        batch.put_cf(self.cf(CF_META), META_COMMITTED, committed);
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db.write_opt(batch, &options)?;
        Ok(())
    }
}

impl CutCheckpoints for Store {
    fn cut_checkpoint(&self, height: u64) -> Result<Option<Checkpoint>, StateError> {
        let Some(bytes) = self
            .db
            .get_cf(self.cf(CF_CHECKPOINTS), height.to_be_bytes())
            .map_err(StoreError::from)?
        else {
            return Ok(None);
        };
        Checkpoint::abi_decode(&bytes)
            .map(Some)
            .map_err(|e| corrupt("cut checkpoint", e).into())
    }
}

impl StateRead for Store {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(key)
    }
}

impl TreeReader for Store {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        let key = borsh::to_vec(node_key)?;
        match self.db.get_cf(self.cf(CF_JMT_NODES), key)? {
            Some(bytes) => Ok(Some(Node::try_from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        let mut iter = self.db.raw_iterator_cf(self.cf(CF_JMT_VALUES));
        iter.seek_for_prev(jmt_value_key(&key_hash, max_version));
        if !iter.valid() {
            iter.status()?;
            return Ok(None);
        }
        match (iter.key(), iter.value()) {
            (Some(key), Some(value)) if key.starts_with(&key_hash.0) => match value.split_first() {
                Some((1, value)) => Ok(Some(value.to_vec())),
                Some((0, [])) => Ok(None),
                _ => anyhow::bail!("corrupt jmt value record"),
            },
            _ => Ok(None),
        }
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        // Only state-sync restore needs this; this store never restores a tree.
        Ok(None)
    }
}
