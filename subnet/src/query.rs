//! Reads of committed state for the API, optionally with proofs. Every read is pinned to
//! one committed height, so a value and its proof always belong to the same state.

use std::sync::Arc;

use ipsat_proto::v1 as pb;
use jmt::storage::TreeReader;

use ipsat_checkpoint::cross_msgs::Release;
use ipsat_checkpoint::{Certificate, Checkpoint, CheckpointDomain};
use ipsat_core::crossnet::{top_down_key, CrossMessage};
use ipsat_core::proof::key_hash;
use ipsat_core::system::{certificate_to_proto, release_to_proto};
use ipsat_core::{app_hash, Address, Amount, Hash32, SubnetId};

use crate::components::accounts::{account_key, AccountRecord};
use crate::components::checkpoints::{self, CutCheckpoints as _};
use crate::components::fees::{Params, PARAMS_KEY};
use crate::components::keyspaces::{keyspace_key, kv_key, KeyspaceRecord};
use crate::components::registry::{self, ChildRecord, ChildStatus, Member};
use crate::components::{crossnet, parent};
use crate::delta::StateError;
use crate::error::AppError;
use crate::store::{Committed, Store, StoreError};

/// Read access to the committed state, shared by the API's handlers.
#[derive(Clone)]
pub struct StateQuery {
    store: Arc<Store>,
}

/// What [`StateQuery::parent`] reads.
#[derive(Debug, Clone)]
pub struct ParentStatus {
    /// The light client, `None` in a subnet without a parent.
    pub client: Option<parent::ClientState>,
    /// Value minted from the parent's deposits.
    pub minted: Amount,
    /// Value burned by releases.
    pub released: Amount,
    /// The next top-down nonce to import.
    pub next_top_down_nonce: u64,
    /// The next release's nonce.
    pub next_release_nonce: u64,
    /// The committed height read.
    pub height: u64,
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
        let proof = self.proof(key, height, committed.state_root, committed.history_root)?;
        Ok(Read {
            value: proof.value.clone(),
            height,
            proof: Some(proof),
        })
    }

    /// `key` as of the committed `height` (every height is kept), with its proof against that
    /// height's app hash: what a child needs to import a parent's message against the app hash
    /// of the parent's header at `height + 1`.
    pub fn prove_at(&self, key: &[u8], height: u64) -> Result<pb::StateProof, AppError> {
        let latest = self.store.committed()?.ok_or(AppError::NotInitialized)?;
        if height > latest.height {
            return Err(AppError::NotCommitted {
                asked: height,
                latest: latest.height,
            });
        }
        let state_root = self.store.state_root(height)?;
        let history_root = self.store.history_root(height)?;
        self.proof(key, height, state_root, history_root)
    }

    /// `key` as of the committed `height` with its proof, and the proof that this height's
    /// state root is in the history root after `history_height`; the caller makes sure that
    /// `history_height` is at least `height`.
    pub fn prove_in_history(
        &self,
        key: &[u8],
        height: u64,
        history_height: u64,
    ) -> Result<(pb::StateProof, pb::HistoryProof), AppError> {
        let latest = self.height()?;
        if history_height > latest {
            return Err(AppError::NotCommitted {
                asked: history_height,
                latest,
            });
        }
        let proof = self.prove_at(key, height)?;
        let history = self.store.history_proof(height, history_height)?;
        Ok((
            proof,
            pb::HistoryProof {
                leaf_index: history.leaf_index,
                leaf_count: history.leaf_count,
                siblings: history.siblings.iter().map(|h| h.to_vec()).collect(),
                peaks: history.peaks.iter().map(|h| h.to_vec()).collect(),
            },
        ))
    }

    fn proof(
        &self,
        key: &[u8],
        height: u64,
        state_root: Hash32,
        history_root: Hash32,
    ) -> Result<pb::StateProof, AppError> {
        let (value, proof) = self.store.get_with_proof(key, height)?;
        let jmt_proof = borsh::to_vec(&proof).map_err(|e| StoreError::Tree(e.to_string()))?;
        Ok(pb::StateProof {
            height,
            key: key.to_vec(),
            value,
            jmt_proof,
            state_root: state_root.to_vec(),
            history_root: history_root.to_vec(),
            app_hash: app_hash(&state_root, &history_root).to_vec(),
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
        Ok(self.own_id()?.to_string())
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

fn member_to_proto(member: &Member) -> pb::SubnetValidator {
    pb::SubnetValidator {
        address: member.address.to_vec(),
        cometbft_key: member.cometbft_key.to_vec(),
        bls_key: member
            .bls()
            .map(|key| key.to_compressed().to_vec())
            .unwrap_or_default(),
        collateral: Amount::from_atto(member.collateral).to_string(),
        power: member.power(),
        joined_at: member.joined_at,
        left_at: member.left_at.unwrap_or(0),
    }
}

/// The API's form of child `id`'s record.
pub fn subnet_to_proto(id: &SubnetId, name: &str, record: &ChildRecord) -> pb::Subnet {
    let status = match record.status {
        ChildStatus::Pending => pb::SubnetStatus::Pending,
        ChildStatus::Active => pb::SubnetStatus::Active,
        ChildStatus::Killed => pb::SubnetStatus::Killed,
    };
    pb::Subnet {
        id: id.to_string(),
        chain_id: id.chain_id(),
        name: name.to_owned(),
        creator: record.creator.to_vec(),
        status: status as i32,
        min_validators: record.min_validators,
        min_collateral: Amount::from_atto(record.min_collateral).to_string(),
        checkpoint_period: record.checkpoint_period,
        leave_delay: record.leave_delay,
        configuration_number: record.configuration_number,
        validators: record.members.iter().map(member_to_proto).collect(),
        genesis_validators: record.genesis_members.iter().map(member_to_proto).collect(),
        genesis_configuration_number: record.genesis_configuration_number,
        last_checkpoint_height: record.last_checkpoint_height,
        last_checkpoint_hash: if record.last_checkpoint_height == 0 {
            Vec::new()
        } else {
            record.last_checkpoint_hash.to_vec()
        },
        activated_at: record.activated_at,
        ..Default::default()
    }
}

/// The API's form of a checkpoint of `subnet`, with its certificate and the height that
/// recorded it once it has one, and the releases and messages it carries when they are known
/// here (a subnet's own checkpoints).
pub fn checkpoint_to_proto(
    subnet: &SubnetId,
    checkpoint: &Checkpoint,
    certified: Option<(&Certificate, u64)>,
    domain: &CheckpointDomain,
    (releases, messages): &(Vec<Release>, Vec<CrossMessage>),
) -> pb::Checkpoint {
    pb::Checkpoint {
        subnet_id: subnet.to_string(),
        height: checkpoint.height,
        block_hash: checkpoint.block_hash.to_vec(),
        state_root: checkpoint.state_root.to_vec(),
        history_root: checkpoint.history_root.to_vec(),
        cross_msgs_root: checkpoint.cross_msgs_root.to_vec(),
        cross_msgs_count: checkpoint.cross_msgs_count,
        next_validator_set_hash: checkpoint.next_validator_set_hash.0.to_vec(),
        configuration_number: checkpoint.configuration_number,
        previous_checkpoint_hash: checkpoint.previous.0.to_vec(),
        hash: checkpoint.hash().0.to_vec(),
        digest: checkpoint.digest(domain).0.to_vec(),
        certificate: certified.map(|(certificate, _)| certificate_to_proto(certificate)),
        abi: checkpoint.abi_encode().to_vec(),
        recorded_at: certified.map_or(0, |(_, at)| at),
        releases: releases.iter().map(release_to_proto).collect(),
        messages: messages.iter().map(CrossMessage::encode).collect(),
        gateway_signatures: Vec::new(),
    }
}

impl StateQuery {
    fn own_id(&self) -> Result<SubnetId, AppError> {
        let genesis = self.store.genesis()?.ok_or(AppError::NotInitialized)?;
        Ok(crate::genesis::Genesis::from_json(&genesis)?.subnet_id)
    }

    /// The committed height reads are pinned to.
    fn height(&self) -> Result<u64, AppError> {
        Ok(self.latest()?.ok_or(AppError::NotInitialized)?.height)
    }

    /// Child `name` of this subnet, `None` if there is none.
    pub fn subnet(&self, name: &str) -> Result<Option<(pb::Subnet, u64)>, AppError> {
        let height = self.height()?;
        Ok(self.child_of(&self.own_id()?, name)?.map(|s| (s, height)))
    }

    /// Every child of this subnet, by name.
    pub fn subnets(&self) -> Result<(Vec<pb::Subnet>, u64), AppError> {
        let height = self.height()?;
        let id = self.own_id()?;
        let mut out = Vec::new();
        for name in registry::child_names(&*self.store)? {
            out.extend(self.child_of(&id, &name)?);
        }
        Ok((out, height))
    }

    fn child_of(&self, id: &SubnetId, name: &str) -> Result<Option<pb::Subnet>, AppError> {
        let Some(record) = registry::child(&*self.store, name)? else {
            return Ok(None);
        };
        let child = id.child(name).map_err(|e| StateError::Corrupt {
            key: name.to_owned(),
            detail: e.to_string(),
        })?;
        let store = &*self.store;
        let (confirmed, _) = registry::confirmed_set(store, name, &record)?;
        Ok(Some(pb::Subnet {
            confirmed_configuration_number: confirmed,
            locked: crossnet::locked(store, name)?.to_string(),
            top_down_nonce: crossnet::next_top_down_nonce(store, name)?,
            releases_paid: crossnet::next_release_to_pay(store, name)?,
            ..subnet_to_proto(&child, name, &record)
        }))
    }

    /// Proofs of the top-down messages queued for child `name` from nonce `from`, at most
    /// `limit`, as of the committed `height` (0: the latest); the height used.
    pub fn top_down_proofs(
        &self,
        name: &str,
        from: u64,
        height: u64,
        limit: usize,
    ) -> Result<(u64, Vec<pb::StateProof>), AppError> {
        let height = match height {
            0 => self.height()?,
            h => h,
        };
        let mut proofs = Vec::new();
        for nonce in from..from.saturating_add(limit as u64) {
            let proof = self.prove_at(&top_down_key(name, nonce), height)?;
            if proof.value.is_none() {
                break;
            }
            proofs.push(proof);
        }
        Ok((height, proofs))
    }

    /// The cross-net message this subnet originated with `nonce`, and the committed height.
    pub fn outgoing(&self, nonce: u64) -> Result<(Option<crossnet::Outgoing>, u64), AppError> {
        let height = self.height()?;
        Ok((crossnet::outgoing(&*self.store, nonce)?, height))
    }

    /// What this subnet did with message `nonce` of `from_subnet`, and the committed height.
    pub fn passage(
        &self,
        from_subnet: &str,
        nonce: u64,
    ) -> Result<(Option<crossnet::Passage>, u64), AppError> {
        let height = self.height()?;
        Ok((crossnet::passage(&*self.store, from_subnet, nonce)?, height))
    }

    /// This subnet's light client of its parent and what it holds from the parent: the
    /// client (`None` without a parent), minted, released, the next top-down nonce and the
    /// next release nonce, at the latest committed height.
    pub fn parent(&self) -> Result<ParentStatus, AppError> {
        let store = &*self.store;
        Ok(ParentStatus {
            client: parent::client(store)?,
            minted: parent::minted(store)?,
            released: parent::released(store)?,
            next_top_down_nonce: parent::next_top_down_nonce(store)?,
            next_release_nonce: parent::next_release_nonce(store)?,
            height: self.height()?,
        })
    }

    /// This subnet's checkpoint period and latest certified height, `None` if it cuts none.
    pub fn checkpoint_progress(&self) -> Result<Option<(u64, u64)>, AppError> {
        let store = &*self.store;
        let Some(params) = checkpoints::params(store)? else {
            return Ok(None);
        };
        Ok(Some((params.period, checkpoints::last_certified(store)?)))
    }

    /// This subnet's checkpoint at `height` (0: the latest certified one), absent if there
    /// is none; one cut but not yet certified comes without its certificate.
    pub fn own_checkpoint(&self, height: u64) -> Result<pb::GetCheckpointResponse, AppError> {
        let store = &*self.store;
        let Some(params) = checkpoints::params(store)? else {
            return Ok(pb::GetCheckpointResponse::default());
        };
        let mut response = pb::GetCheckpointResponse {
            checkpoint: None,
            pending_height: checkpoints::next_height(store)?.unwrap_or(0),
            period: params.period,
        };
        let height = match height {
            0 => checkpoints::last_certified(store)?,
            h => h,
        };
        let id = self.own_id()?;
        let domain = params.domain();
        let carried = (
            checkpoints::checkpoint_releases(store, height)?,
            checkpoints::checkpoint_messages(store, height)?,
        );
        if let Some(stored) = checkpoints::certified(store, height)? {
            let (checkpoint, certificate) = stored.decode().map_err(StateError::from)?;
            response.checkpoint = Some(pb::Checkpoint {
                gateway_signatures: stored
                    .gateway_signatures
                    .iter()
                    .map(|(signer, signature)| pb::GatewaySignature {
                        signer: *signer,
                        signature: signature.clone(),
                    })
                    .collect(),
                ..checkpoint_to_proto(
                    &id,
                    &checkpoint,
                    Some((&certificate, stored.recorded_at)),
                    &domain,
                    &carried,
                )
            });
        } else if let Some(cut) = store.cut_checkpoint(height)? {
            response.checkpoint = Some(checkpoint_to_proto(&id, &cut, None, &domain, &carried));
        }
        Ok(response)
    }

    /// The checkpoint of child `name` accepted at `height` (0: the latest accepted one),
    /// absent if there is none.
    pub fn child_checkpoint(
        &self,
        name: &str,
        height: u64,
    ) -> Result<pb::GetCheckpointResponse, AppError> {
        let store = &*self.store;
        let Some(record) = registry::child(store, name)? else {
            return Ok(pb::GetCheckpointResponse::default());
        };
        let mut response = pb::GetCheckpointResponse {
            checkpoint: None,
            pending_height: 0,
            period: record.checkpoint_period,
        };
        let height = match height {
            0 => record.last_checkpoint_height,
            h => h,
        };
        let Some(stored) = registry::accepted_checkpoint(store, name, height)? else {
            return Ok(response);
        };
        let (checkpoint, certificate) = stored.decode().map_err(StateError::from)?;
        let id = self.own_id()?;
        let child = id.child(name).map_err(|e| StateError::Corrupt {
            key: name.to_owned(),
            detail: e.to_string(),
        })?;
        let domain = CheckpointDomain::subnet_parent(id.root_chain_id());
        // The parent pays a child's releases but keeps only their effects, not the list.
        response.checkpoint = Some(checkpoint_to_proto(
            &child,
            &checkpoint,
            Some((&certificate, stored.recorded_at)),
            &domain,
            &(Vec::new(), Vec::new()),
        ));
        Ok(response)
    }

    /// This subnet's certified checkpoint at `height` as the system transaction that
    /// delivers it to the parent, `None` until it is certified.
    pub fn delivery_tx(&self, height: u64) -> Result<Option<Vec<u8>>, AppError> {
        let Some(stored) = checkpoints::certified(&*self.store, height)? else {
            return Ok(None);
        };
        let (checkpoint, certificate) = stored.decode().map_err(StateError::from)?;
        let id = self.own_id()?;
        Ok(Some(
            ipsat_core::SystemTx::ChildCheckpoint {
                subnet: id.name().to_owned(),
                checkpoint: Box::new(checkpoint),
                certificate,
                releases: checkpoints::checkpoint_releases(&*self.store, height)?,
                messages: checkpoints::checkpoint_messages(&*self.store, height)?,
            }
            .encode(),
        ))
    }
}
