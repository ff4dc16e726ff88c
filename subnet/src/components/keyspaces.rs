//! Keyspaces: named key/value namespaces with a write policy and size limits, and the
//! `KeyspaceCreate`, `KvPut` and `KvDelete` messages.
//!
//! Keys: `k/<name>` -> [`KeyspaceRecord`]; `v/<name>/<key>` -> the raw value. Names are
//! `[a-z0-9-]`, so the `/` after the name cannot be part of it.

use borsh::{BorshDeserialize, BorshSerialize};
use ipsat_core::action::{KeyspaceCreate, KvDelete, KvPut, WritePolicy};
use ipsat_core::{Address, TxError};
use ipsat_proto::v1 as pb;

use crate::component::{ActionHandler, Component, ExecError, TxContext};
use crate::delta::{StateDelta, StateError, StateRead};
use crate::Event;

/// The keyspaces component.
pub struct Keyspaces;

impl Component for Keyspaces {
    fn name(&self) -> &'static str {
        "keyspaces"
    }
}

/// The state key of keyspace `name`'s definition.
pub fn keyspace_key(name: &str) -> Vec<u8> {
    [b"k/".as_slice(), name.as_bytes()].concat()
}

pub use ipsat_core::proof::kv_key;

/// How a write policy is stored: one byte, fixed forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
#[borsh(use_discriminant = true)]
#[repr(u8)]
enum StoredPolicy {
    OwnerOnly = 1,
    AllowList = 2,
    Open = 3,
}

impl From<WritePolicy> for StoredPolicy {
    fn from(policy: WritePolicy) -> Self {
        match policy {
            WritePolicy::OwnerOnly => Self::OwnerOnly,
            WritePolicy::AllowList => Self::AllowList,
            WritePolicy::Open => Self::Open,
        }
    }
}

impl From<StoredPolicy> for WritePolicy {
    fn from(policy: StoredPolicy) -> Self {
        match policy {
            StoredPolicy::OwnerOnly => Self::OwnerOnly,
            StoredPolicy::AllowList => Self::AllowList,
            StoredPolicy::Open => Self::Open,
        }
    }
}

/// A keyspace's definition as stored.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct KeyspaceRecord {
    owner: [u8; 20],
    policy: StoredPolicy,
    /// Sorted and deduplicated.
    writers: Vec<[u8; 20]>,
    max_key_bytes: u32,
    max_value_bytes: u32,
}

impl KeyspaceRecord {
    /// Whether `writer` may put and delete keys.
    pub fn may_write(&self, writer: &Address) -> bool {
        match self.policy {
            StoredPolicy::Open => true,
            StoredPolicy::OwnerOnly => writer.0 == self.owner,
            StoredPolicy::AllowList => {
                writer.0 == self.owner || self.writers.binary_search(&writer.0).is_ok()
            }
        }
    }

    /// The API's view of the keyspace `name`.
    pub fn to_proto(&self, name: &str) -> pb::Keyspace {
        pb::Keyspace {
            name: name.to_owned(),
            owner: self.owner.to_vec(),
            write_policy: WritePolicy::from(self.policy).to_proto() as i32,
            writers: self.writers.iter().map(|w| w.to_vec()).collect(),
            max_key_bytes: self.max_key_bytes,
            max_value_bytes: self.max_value_bytes,
        }
    }
}

/// The keyspace `name`, if it exists.
pub fn keyspace(state: &impl StateRead, name: &str) -> Result<Option<KeyspaceRecord>, StateError> {
    state.get(&keyspace_key(name))
}

impl ActionHandler for KeyspaceCreate {
    fn execute(&self, state: &mut StateDelta<'_>, tx: &TxContext) -> Result<Vec<Event>, ExecError> {
        if keyspace(state, &self.name)?.is_some() {
            return Err(TxError::KeyspaceExists(self.name.clone()).into());
        }
        let record = KeyspaceRecord {
            owner: tx.sender.0,
            policy: self.policy.into(),
            writers: self.writers.iter().map(|w| w.0).collect(),
            max_key_bytes: self.max_key_bytes,
            max_value_bytes: self.max_value_bytes,
        };
        state.put(keyspace_key(&self.name), &record);
        Ok(vec![Event {
            kind: "keyspace_create",
            attributes: vec![
                ("name", self.name.clone()),
                ("owner", tx.sender.to_string()),
            ],
        }])
    }
}

/// The keyspace `name` if `writer` may write `key` to it.
fn writable(
    state: &impl StateRead,
    writer: Address,
    name: &str,
    key: &[u8],
) -> Result<KeyspaceRecord, ExecError> {
    let keyspace =
        keyspace(state, name)?.ok_or_else(|| TxError::KeyspaceNotFound(name.to_owned()))?;
    if !keyspace.may_write(&writer) {
        return Err(TxError::Unauthorized {
            writer,
            keyspace: name.to_owned(),
        }
        .into());
    }
    if key.len() > keyspace.max_key_bytes as usize {
        return Err(TxError::KeyTooLarge {
            max: keyspace.max_key_bytes,
            got: key.len(),
        }
        .into());
    }
    Ok(keyspace)
}

fn kv_event(kind: &'static str, keyspace: &str, key: &[u8], writer: Address) -> Event {
    Event {
        kind,
        attributes: vec![
            ("keyspace", keyspace.to_owned()),
            ("key", hex::encode(key)),
            ("writer", writer.to_string()),
        ],
    }
}

/// Sets `key` of keyspace `name` to `value` for `writer`, under the keyspace's policy and
/// limits; the keyspace's owner.
pub fn put(
    state: &mut StateDelta<'_>,
    writer: Address,
    name: &str,
    key: &[u8],
    value: &[u8],
) -> Result<(Address, Event), ExecError> {
    let keyspace = writable(state, writer, name, key)?;
    if value.len() > keyspace.max_value_bytes as usize {
        return Err(TxError::ValueTooLarge {
            max: keyspace.max_value_bytes,
            got: value.len(),
        }
        .into());
    }
    state.put_raw(kv_key(name, key), value.to_vec());
    Ok((
        Address(keyspace.owner),
        kv_event("kv_put", name, key, writer),
    ))
}

impl ActionHandler for KvPut {
    fn execute(&self, state: &mut StateDelta<'_>, tx: &TxContext) -> Result<Vec<Event>, ExecError> {
        let (_, event) = put(state, tx.sender, &self.keyspace, &self.key, &self.value)?;
        Ok(vec![event])
    }
}

impl ActionHandler for KvDelete {
    fn execute(&self, state: &mut StateDelta<'_>, tx: &TxContext) -> Result<Vec<Event>, ExecError> {
        writable(state, tx.sender, &self.keyspace, &self.key)?;
        let key = kv_key(&self.keyspace, &self.key);
        if state.get_raw(&key)?.is_none() {
            return Err(TxError::KeyNotFound(hex::encode(&self.key)).into());
        }
        state.delete(key);
        Ok(vec![kv_event(
            "kv_delete",
            &self.keyspace,
            &self.key,
            tx.sender,
        )])
    }
}
