//! Reads of committed state for the API, optionally with proofs. Every read is pinned to
//! one committed height, so a value and its proof always belong to the same state.

use std::sync::Arc;

use ipsat_proto::v1 as pb;
use jmt::storage::TreeReader;

use ipsat_core::proof::key_hash;
use ipsat_core::Address;

use crate::components::accounts::{account_key, AccountRecord};
use crate::components::fees::{Params, PARAMS_KEY};
use crate::components::keyspaces::{keyspace_key, kv_key, KeyspaceRecord};
use crate::delta::StateError;
use crate::error::AppError;
use crate::store::{Committed, Store, StoreError};

/// Read access to the committed state, shared by the API's handlers.
#[derive(Clone)]
pub struct StateQuery {
    store: Arc<Store>,
}

/// A value read at a height, with its proof when one was asked for.
pub struct Read<T> {
    /// The value, `None` if absent.
    pub value: Option<T>,
    /// The committed height it was read at.
    pub height: u64,
    /// Its proof against that height's app hash, when asked for.
    pub proof: Option<pb::StateProof>,
}

impl StateQuery {
    /// Queries over `store`.
    pub fn new(store: Arc<Store>) -> Self {
        Self { store }
    }

    /// The last committed block's roots, `None` before genesis.
    pub fn latest(&self) -> Result<Option<Committed>, AppError> {
        Ok(self.store.committed()?)
    }

    fn read_raw(&self, key: &[u8], prove: bool) -> Result<Read<Vec<u8>>, AppError> {
        let committed = self.store.committed()?.ok_or(AppError::NotInitialized)?;
        let height = committed.height;
        if !prove {
            let value = self
                .store
                .get_value_option(height, key_hash(key))
                .map_err(|e| StoreError::Tree(e.to_string()))?;
            return Ok(Read {
                value,
                height,
                proof: None,
            });
        }
        let (value, proof) = self.store.get_with_proof(key, height)?;
        let jmt_proof = borsh::to_vec(&proof).map_err(|e| StoreError::Tree(e.to_string()))?;
        Ok(Read {
            value: value.clone(),
            height,
            proof: Some(pb::StateProof {
                height,
                key: key.to_vec(),
                value,
                jmt_proof,
                state_root: committed.state_root.to_vec(),
                history_root: committed.history_root.to_vec(),
                app_hash: committed.app_hash.to_vec(),
            }),
        })
    }

    fn read_record<T: borsh::BorshDeserialize>(
        &self,
        key: &[u8],
        prove: bool,
    ) -> Result<Read<T>, AppError> {
        let raw = self.read_raw(key, prove)?;
        let value = raw
            .value
            .map(|bytes| {
                borsh::from_slice(&bytes).map_err(|e| {
                    AppError::State(StateError::Corrupt {
                        key: hex::encode(key),
                        detail: e.to_string(),
                    })
                })
            })
            .transpose()?;
        Ok(Read {
            value,
            height: raw.height,
            proof: raw.proof,
        })
    }

    /// The subnet this state belongs to.
    pub fn subnet_id(&self) -> Result<String, AppError> {
        let genesis = self.store.genesis()?.ok_or(AppError::NotInitialized)?;
        Ok(crate::genesis::Genesis::from_json(&genesis)?
            .subnet_id
            .to_string())
    }

    /// The subnet's fee parameters.
    pub fn params(&self) -> Result<Params, AppError> {
        self.read_record(PARAMS_KEY, false)?
            .value
            .ok_or(AppError::NotInitialized)
    }

    /// An account; one never touched reads as zero balance and nonce (its proof is of absence).
    pub fn account(&self, address: &Address, prove: bool) -> Result<Read<AccountRecord>, AppError> {
        self.read_record(&account_key(address), prove)
    }

    /// A keyspace's definition.
    pub fn keyspace(&self, name: &str, prove: bool) -> Result<Read<KeyspaceRecord>, AppError> {
        self.read_record(&keyspace_key(name), prove)
    }

    /// The value of `key` in `keyspace`.
    pub fn kv(&self, keyspace: &str, key: &[u8], prove: bool) -> Result<Read<Vec<u8>>, AppError> {
        self.read_raw(&kv_key(keyspace, key), prove)
    }
}
