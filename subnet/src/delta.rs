//! Nested, discardable writes over the committed state.
//!
//! A [`StateDelta`] reads through its own writes to whatever it was forked from (the committed
//! [`Store`](crate::Store), or another delta) and writes only to itself. A handler works in a
//! fork of the block's delta: if it fails, the fork is dropped and only its own writes vanish;
//! if it succeeds, [`StateDelta::apply`] folds its writes into the parent. Writes are kept in a
//! `BTreeMap`, so the order they reach the Merkle tree is the keys' order, never the order of
//! execution or of a hash map.

use std::collections::BTreeMap;

use borsh::{BorshDeserialize, BorshSerialize};

use crate::store::StoreError;

/// Writes of a block or a transaction: `None` deletes the key.
pub type Changes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Failures of the node itself while reading or writing state, never a transaction's fault.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A record in state does not decode: the state is corrupt.
    #[error("corrupt state record at {key}: {detail}")]
    Corrupt {
        /// Hex of the key.
        key: String,
        /// What failed to decode.
        detail: String,
    },
}

impl From<ipsat_core::crossnet::StoredCheckpointError> for StateError {
    fn from(e: ipsat_core::crossnet::StoredCheckpointError) -> Self {
        StateError::Corrupt {
            key: "stored checkpoint".into(),
            detail: e.to_string(),
        }
    }
}

/// Something state can be read from: the committed store or a delta over it.
pub trait StateRead {
    /// The value of `key`, `None` if absent or deleted.
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// The borsh record at `key`.
    fn get<T: BorshDeserialize>(&self, key: &[u8]) -> Result<Option<T>, StateError>
    where
        Self: Sized,
    {
        self.get_raw(key)?
            .map(|bytes| {
                borsh::from_slice(&bytes).map_err(|e| StateError::Corrupt {
                    key: hex::encode(key),
                    detail: e.to_string(),
                })
            })
            .transpose()
    }
}

/// Writes layered over a readable state; see the module documentation.
pub struct StateDelta<'a> {
    base: &'a dyn StateRead,
    writes: Changes,
}

impl<'a> StateDelta<'a> {
    /// An empty delta over `base`.
    pub fn new(base: &'a dyn StateRead) -> Self {
        Self {
            base,
            writes: Changes::new(),
        }
    }

    /// A delta over `base` that starts with `writes` (e.g. the mempool's admitted effects).
    pub fn with_writes(base: &'a dyn StateRead, writes: Changes) -> Self {
        Self { base, writes }
    }

    /// A child delta whose writes stay apart until [`Self::apply`].
    pub fn fork(&self) -> StateDelta<'_> {
        StateDelta::new(self)
    }

    /// Folds a finished child's writes into this delta.
    pub fn apply(&mut self, child: Changes) {
        self.writes.extend(child);
    }

    /// This delta's own writes, in key order.
    pub fn into_changes(self) -> Changes {
        self.writes
    }

    /// Writes `value` at `key` as a borsh record.
    pub fn put<T: BorshSerialize>(&mut self, key: Vec<u8>, value: &T) {
        let bytes = borsh::to_vec(value).expect("borsh encoding into a Vec cannot fail");
        self.writes.insert(key, Some(bytes));
    }

    /// Writes raw bytes at `key`.
    pub fn put_raw(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    /// Deletes `key`.
    pub fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }
}

impl StateRead for StateDelta<'_> {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.writes.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.base.get_raw(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory base, so the nesting rules are tested without RocksDB.
    struct MapState(Changes);

    impl StateRead for MapState {
        fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(self.0.get(key).cloned().flatten())
        }
    }

    #[test]
    fn a_dropped_fork_loses_only_its_own_writes() {
        let base = MapState(Changes::from([(b"a".to_vec(), Some(b"0".to_vec()))]));
        let mut block = StateDelta::new(&base);
        block.put_raw(b"b".to_vec(), b"1".to_vec());

        let mut failed = block.fork();
        failed.put_raw(b"a".to_vec(), b"x".to_vec());
        failed.delete(b"b".to_vec());
        assert_eq!(failed.get_raw(b"a").unwrap(), Some(b"x".to_vec()));
        assert_eq!(failed.get_raw(b"b").unwrap(), None);
        drop(failed);

        assert_eq!(block.get_raw(b"a").unwrap(), Some(b"0".to_vec()));
        assert_eq!(block.get_raw(b"b").unwrap(), Some(b"1".to_vec()));

        let mut ok = block.fork();
        ok.delete(b"a".to_vec());
        let mut inner = ok.fork();
        inner.put_raw(b"c".to_vec(), b"2".to_vec());
        let inner = inner.into_changes();
        ok.apply(inner);
        let ok = ok.into_changes();
        block.apply(ok);
        assert_eq!(block.get_raw(b"a").unwrap(), None);
        assert_eq!(block.get_raw(b"c").unwrap(), Some(b"2".to_vec()));
        let keys: Vec<_> = block.into_changes().into_keys().collect();
        assert_eq!(keys, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn an_undecodable_record_is_corruption_not_absence() {
        let base = MapState(Changes::from([(b"n".to_vec(), Some(vec![1, 2, 3]))]));
        assert!(matches!(
            base.get::<u64>(b"n"),
            Err(StateError::Corrupt { .. })
        ));
        assert_eq!(base.get::<u64>(b"missing").unwrap(), None);
    }
}
