//! The subnet state machine: genesis, transaction checks, block execution and commit.
//!
//! It is synchronous and deterministic: a block's result depends only on the committed state
//! and the block's transactions. Caches here (verified signatures, the mempool's check state)
//! only save work; they never change a result.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use ipsat_checkpoint::{Hash32, HistoryAccumulator, HistoryError};
use ipsat_proto::v1::{self as pb, tx_body::Msg};
use rayon::prelude::*;
use thiserror::Error;

use crate::error::TxError;
use crate::genesis::{Genesis, GenesisError};
use crate::state::{
    account_key, keyspace_key, kv_key, AccountRecord, KeyspaceRecord, Params, WritePolicy,
    FEE_POOL, MAX_KEY_LIMIT, MAX_VALUE_LIMIT, MAX_WRITERS, PARAMS_KEY,
};
use crate::store::{BlockWrite, Committed, Store, StoreError};
use crate::tx::{self, TxHash, VerifiedTx};
use crate::types::{is_valid_name, Address, Amount, SubnetId};

/// Verified transactions kept between CheckTx/ProcessProposal and FinalizeBlock.
const VERIFIED_CACHE_LIMIT: usize = 200_000;

#[derive(Debug, Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Genesis(#[from] GenesisError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("the chain has not been initialised (InitChain has not run)")]
    NotInitialized,
    #[error("InitChain with a different genesis than the one this node committed")]
    GenesisMismatch,
    #[error("expected block {expected}, got {got}")]
    HeightMismatch { expected: u64, got: u64 },
    #[error("commit without a finalized block")]
    NothingToCommit,
    #[error("corrupt state record at {key}: {detail}")]
    CorruptRecord { key: String, detail: String },
}

/// The app hash commits to both roots: `blake3("ipsat/app-hash/v1" || state || history)`.
pub fn app_hash(state_root: &Hash32, history_root: &Hash32) -> Hash32 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"ipsat/app-hash/v1");
    hasher.update(state_root);
    hasher.update(history_root);
    *hasher.finalize().as_bytes()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: &'static str,
    pub attributes: Vec<(&'static str, String)>,
}

impl Event {
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxResult {
    pub hash: TxHash,
    /// 0 on success, else [`TxError::code`].
    pub code: u32,
    pub log: String,
    pub events: Vec<Event>,
}

impl TxResult {
    fn failed(hash: TxHash, error: &TxError) -> Self {
        Self {
            hash,
            code: error.code(),
            log: format!("{}: {error}", error.name()),
            events: Vec::new(),
        }
    }

    pub fn to_proto(&self) -> pb::TxResult {
        pb::TxResult {
            hash: self.hash.to_vec(),
            code: self.code,
            log: self.log.clone(),
            events: self.events.iter().map(Event::to_proto).collect(),
        }
    }
}

/// A block after FinalizeBlock: its results and app hash, not yet durable.
#[derive(Debug, Clone)]
pub struct FinalizedBlock {
    pub height: u64,
    pub app_hash: Hash32,
    pub tx_results: Vec<TxResult>,
}

/// A block after Commit, as published to streams.
#[derive(Debug, Clone)]
pub struct CommittedBlock {
    pub height: u64,
    pub block_hash: Vec<u8>,
    pub app_hash: Hash32,
    pub state_root: Hash32,
    pub history_root: Hash32,
    pub tx_results: Vec<TxResult>,
}

impl CommittedBlock {
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

type Changes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

#[derive(Debug)]
enum ExecError {
    Tx(TxError),
    Store(StoreError),
    Corrupt(AppError),
}

impl From<TxError> for ExecError {
    fn from(e: TxError) -> Self {
        ExecError::Tx(e)
    }
}

impl From<StoreError> for ExecError {
    fn from(e: StoreError) -> Self {
        ExecError::Store(e)
    }
}

impl From<ExecError> for AppError {
    fn from(e: ExecError) -> Self {
        match e {
            ExecError::Store(e) => AppError::Store(e),
            ExecError::Corrupt(e) => e,
            ExecError::Tx(e) => unreachable!("transaction errors are results, not failures: {e}"),
        }
    }
}

fn decode<T: borsh::BorshDeserialize>(key: &[u8], bytes: &[u8]) -> Result<T, ExecError> {
    borsh::from_slice(bytes).map_err(|e| {
        ExecError::Corrupt(AppError::CorruptRecord {
            key: hex::encode(key),
            detail: e.to_string(),
        })
    })
}

fn encode<T: borsh::BorshSerialize>(value: &T) -> Vec<u8> {
    borsh::to_vec(value).expect("borsh encoding into a Vec cannot fail")
}

/// Reads through `upper`, then `lower`, then the committed store; writes go to `upper`.
struct Overlay<'a> {
    store: &'a Store,
    lower: &'a Changes,
    upper: &'a mut Changes,
}

impl Overlay<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ExecError> {
        if let Some(value) = self.upper.get(key).or_else(|| self.lower.get(key)) {
            return Ok(value.clone());
        }
        Ok(self.store.get(key)?)
    }

    fn account(&self, address: &Address) -> Result<AccountRecord, ExecError> {
        let key = account_key(address);
        match self.get(&key)? {
            Some(bytes) => decode(&key, &bytes),
            None => Ok(AccountRecord::default()),
        }
    }

    fn set_account(&mut self, address: &Address, record: AccountRecord) {
        self.upper
            .insert(account_key(address), Some(encode(&record)));
    }

    fn keyspace(&self, name: &str) -> Result<Option<KeyspaceRecord>, ExecError> {
        let key = keyspace_key(name);
        self.get(&key)?
            .map(|bytes| decode(&key, &bytes))
            .transpose()
    }
}

struct Chain {
    subnet_id: SubnetId,
    params: Params,
    committed: Committed,
    history: HistoryAccumulator,
}

struct PendingBlock {
    block_hash: Vec<u8>,
    write: BlockWrite,
    history: HistoryAccumulator,
    tx_results: Vec<TxResult>,
}

pub struct SubnetApp {
    store: Arc<Store>,
    chain: Option<Chain>,
    pending: Option<PendingBlock>,
    /// Effects of the transactions admitted to the mempool since the last commit.
    check_state: Changes,
    verified: HashMap<TxHash, VerifiedTx>,
}

impl SubnetApp {
    /// Opens the app over `store`, resuming from its last committed block if there is one.
    pub fn open(store: Arc<Store>) -> Result<Self, AppError> {
        let chain = match (store.genesis()?, store.committed()?) {
            (Some(genesis), Some(committed)) => {
                let genesis = Genesis::from_json(&genesis)?;
                let history = HistoryAccumulator::from_parts(
                    committed.history_leaf_count,
                    committed.history_peaks.clone(),
                )?;
                Some(Chain {
                    subnet_id: genesis.subnet_id.clone(),
                    params: genesis.params(),
                    committed,
                    history,
                })
            }
            _ => None,
        };
        Ok(Self {
            store,
            chain,
            pending: None,
            check_state: Changes::new(),
            verified: HashMap::new(),
        })
    }

    fn chain(&self) -> Result<&Chain, AppError> {
        self.chain.as_ref().ok_or(AppError::NotInitialized)
    }

    pub fn subnet_id(&self) -> Option<&SubnetId> {
        self.chain.as_ref().map(|c| &c.subnet_id)
    }

    /// Height and app hash of the last committed block, `None` before genesis.
    pub fn last_committed(&self) -> Option<&Committed> {
        self.chain.as_ref().map(|c| &c.committed)
    }

    /// Applies and commits the genesis state as height 0. Idempotent for the same genesis,
    /// because CometBFT calls InitChain again if it restarts before block 1.
    pub fn init_chain(&mut self, app_state: &[u8]) -> Result<Hash32, AppError> {
        let genesis = Genesis::from_json(app_state)?;
        if let Some(chain) = &self.chain {
            let stored = self.store.genesis()?.ok_or(AppError::NotInitialized)?;
            if Genesis::from_json(&stored)? != genesis {
                return Err(AppError::GenesisMismatch);
            }
            return Ok(chain.committed.app_hash);
        }
        let params = genesis.params();
        let mut changes = Changes::new();
        changes.insert(PARAMS_KEY.to_vec(), Some(encode(&params)));
        for account in &genesis.accounts {
            let record = AccountRecord {
                balance: account.balance.atto(),
                nonce: 0,
            };
            changes.insert(account_key(&account.address), Some(encode(&record)));
        }
        let (root, tree_update) = self.store.compute_root(&changes, 0)?;
        let mut history = HistoryAccumulator::default();
        let history_nodes = history.append(0, &root.0);
        let committed = committed_at(0, root.0, &history);
        let genesis_json = serde_json::to_vec(&genesis).map_err(GenesisError::Json)?;
        self.store.write_block(BlockWrite {
            state_changes: changes,
            tree_update,
            history_nodes,
            committed: committed.clone(),
            genesis: Some(genesis_json),
        })?;
        let app_hash = committed.app_hash;
        self.chain = Some(Chain {
            subnet_id: genesis.subnet_id,
            params,
            committed,
            history,
        });
        Ok(app_hash)
    }

    fn verified(&self, raw: &[u8], subnet: &SubnetId) -> Result<VerifiedTx, TxError> {
        match self.verified.get(&tx::tx_hash(raw)) {
            Some(tx) => Ok(tx.clone()),
            None => tx::verify(raw, subnet),
        }
    }

    fn remember(&mut self, tx: VerifiedTx) {
        if self.verified.len() >= VERIFIED_CACHE_LIMIT {
            self.verified.clear();
        }
        self.verified.insert(tx.hash, tx);
    }

    /// Mempool admission: the transaction must succeed entirely against the committed state
    /// plus the transactions already admitted. A refused transaction changes nothing.
    pub fn check_tx(&mut self, raw: &[u8]) -> Result<TxResult, AppError> {
        let chain = self.chain()?;
        let tx = match self.verified(raw, &chain.subnet_id) {
            Ok(tx) => tx,
            Err(e) => return Ok(TxResult::failed(tx::tx_hash(raw), &e)),
        };
        let mut scratch = Changes::new();
        let mut overlay = Overlay {
            store: &self.store,
            lower: &self.check_state,
            upper: &mut scratch,
        };
        let outcome =
            charge(&mut overlay, &chain.params, &tx).and_then(|()| apply_msg(&mut overlay, &tx));
        match outcome {
            Ok(events) => {
                self.check_state.extend(scratch);
                let result = TxResult {
                    hash: tx.hash,
                    code: 0,
                    log: String::new(),
                    events,
                };
                self.remember(tx);
                Ok(result)
            }
            Err(ExecError::Tx(e)) => Ok(TxResult::failed(tx.hash, &e)),
            Err(e) => Err(e.into()),
        }
    }

    /// Keeps, in order, the transactions that fit in `max_bytes` and pass stateless checks.
    pub fn prepare_proposal(&mut self, txs: Vec<Vec<u8>>, max_bytes: usize) -> Vec<Vec<u8>> {
        let Ok(chain) = self.chain() else {
            return Vec::new();
        };
        let subnet = chain.subnet_id.clone();
        let mut total = 0usize;
        let mut kept = Vec::with_capacity(txs.len());
        for raw in txs {
            if total + raw.len() > max_bytes {
                break;
            }
            if let Ok(tx) = self.verified(&raw, &subnet) {
                total += raw.len();
                self.remember(tx);
                kept.push(raw);
            }
        }
        kept
    }

    /// Accepts a proposal only if every transaction decodes and is correctly signed for this
    /// subnet: an honest proposer never includes anything else. Stateful failures (a nonce
    /// overtaken, funds spent) are results, not grounds for rejection.
    pub fn process_proposal(&mut self, txs: &[Vec<u8>]) -> bool {
        let Ok(chain) = self.chain() else {
            return false;
        };
        let subnet = chain.subnet_id.clone();
        let unverified: Vec<&Vec<u8>> = txs
            .iter()
            .filter(|raw| !self.verified.contains_key(&tx::tx_hash(raw)))
            .collect();
        let checked: Result<Vec<VerifiedTx>, TxError> = unverified
            .par_iter()
            .map(|raw| tx::verify(raw, &subnet))
            .collect();
        match checked {
            Ok(verified) => {
                verified.into_iter().for_each(|tx| self.remember(tx));
                true
            }
            Err(_) => false,
        }
    }

    /// Executes a decided block. Its effects become durable only at [`Self::commit`].
    pub fn finalize_block(
        &mut self,
        height: u64,
        block_hash: &[u8],
        txs: &[Vec<u8>],
    ) -> Result<FinalizedBlock, AppError> {
        let chain = self.chain()?;
        let expected = chain.committed.height + 1;
        if height != expected {
            return Err(AppError::HeightMismatch {
                expected,
                got: height,
            });
        }
        let subnet = chain.subnet_id.clone();
        let params = chain.params;
        let mut history = chain.history.clone();
        let mut changes = Changes::new();
        let mut tx_results = Vec::with_capacity(txs.len());
        for raw in txs {
            let tx = match self.verified.remove(&tx::tx_hash(raw)) {
                Some(tx) => tx,
                None => match tx::verify(raw, &subnet) {
                    Ok(tx) => tx,
                    Err(e) => {
                        tx_results.push(TxResult::failed(tx::tx_hash(raw), &e));
                        continue;
                    }
                },
            };
            tx_results.push(execute(&self.store, &mut changes, &params, &tx)?);
        }
        let (root, tree_update) = self.store.compute_root(&changes, height)?;
        let history_nodes = history.append(height, &root.0);
        let committed = committed_at(height, root.0, &history);
        let finalized = FinalizedBlock {
            height,
            app_hash: committed.app_hash,
            tx_results: tx_results.clone(),
        };
        self.pending = Some(PendingBlock {
            block_hash: block_hash.to_vec(),
            write: BlockWrite {
                state_changes: changes,
                tree_update,
                history_nodes,
                committed,
                genesis: None,
            },
            history,
            tx_results,
        });
        Ok(finalized)
    }

    /// Makes the finalized block durable and resets the mempool's check state.
    pub fn commit(&mut self) -> Result<CommittedBlock, AppError> {
        let pending = self.pending.take().ok_or(AppError::NothingToCommit)?;
        let committed = pending.write.committed.clone();
        self.store.write_block(pending.write)?;
        let chain = self.chain.as_mut().ok_or(AppError::NotInitialized)?;
        chain.committed = committed.clone();
        chain.history = pending.history;
        self.check_state.clear();
        Ok(CommittedBlock {
            height: committed.height,
            block_hash: pending.block_hash,
            app_hash: committed.app_hash,
            state_root: committed.state_root,
            history_root: committed.history_root,
            tx_results: pending.tx_results,
        })
    }
}

fn committed_at(height: u64, state_root: Hash32, history: &HistoryAccumulator) -> Committed {
    let history_root = history.root();
    Committed {
        height,
        state_root,
        history_root,
        app_hash: app_hash(&state_root, &history_root),
        history_leaf_count: history.leaf_count(),
        history_peaks: history.peaks().to_vec(),
    }
}

/// Runs one verified transaction of a block. If the sender cannot pay (bad nonce, too little
/// for the fee) nothing changes. Once the fee is paid, the fee and nonce stay consumed even if
/// the message then fails, so failing transactions still cost their sender.
fn execute(
    store: &Store,
    changes: &mut Changes,
    params: &Params,
    tx: &VerifiedTx,
) -> Result<TxResult, AppError> {
    let empty = Changes::new();
    let mut overlay = Overlay {
        store,
        lower: &empty,
        upper: changes,
    };
    match charge(&mut overlay, params, tx) {
        Ok(()) => {}
        Err(ExecError::Tx(e)) => return Ok(TxResult::failed(tx.hash, &e)),
        Err(e) => return Err(e.into()),
    }
    let mut scratch = Changes::new();
    let mut overlay = Overlay {
        store,
        lower: changes,
        upper: &mut scratch,
    };
    match apply_msg(&mut overlay, tx) {
        Ok(events) => {
            changes.extend(scratch);
            Ok(TxResult {
                hash: tx.hash,
                code: 0,
                log: String::new(),
                events,
            })
        }
        Err(ExecError::Tx(e)) => Ok(TxResult::failed(tx.hash, &e)),
        Err(e) => Err(e.into()),
    }
}

/// Checks the nonce and fee, then takes the fee and bumps the nonce.
fn charge(overlay: &mut Overlay, params: &Params, tx: &VerifiedTx) -> Result<(), ExecError> {
    let min = params.min_fee(tx.size);
    if tx.fee < min {
        return Err(TxError::FeeTooLow {
            min,
            offered: tx.fee,
        }
        .into());
    }
    let mut sender = overlay.account(&tx.sender)?;
    if tx.nonce < sender.nonce {
        return Err(TxError::NonceTooLow {
            account: tx.sender,
            expected: sender.nonce,
            got: tx.nonce,
        }
        .into());
    }
    if tx.nonce > sender.nonce {
        return Err(TxError::NonceTooHigh {
            account: tx.sender,
            expected: sender.nonce,
            got: tx.nonce,
        }
        .into());
    }
    let remaining = sender
        .balance()
        .checked_sub(tx.fee)
        .ok_or(TxError::InsufficientFunds {
            account: tx.sender,
            have: sender.balance(),
            need: tx.fee,
        })?;
    sender.balance = remaining.atto();
    sender.nonce += 1;
    overlay.set_account(&tx.sender, sender);
    // Read after the sender's write, so a fee paid by the pool itself is still counted once.
    // Saturating cannot bind: genesis caps the supply below 2^128 and execution conserves it.
    let mut pool = overlay.account(&FEE_POOL)?;
    pool.balance = pool.balance.saturating_add(tx.fee.atto());
    overlay.set_account(&FEE_POOL, pool);
    Ok(())
}

fn parse_address(bytes: &[u8], field: &str) -> Result<Address, TxError> {
    Address::from_slice(bytes).map_err(|_| TxError::Malformed(format!("{field} must be 20 bytes")))
}

/// Validates the message completely, then writes its effects.
fn apply_msg(overlay: &mut Overlay, tx: &VerifiedTx) -> Result<Vec<Event>, ExecError> {
    match &tx.msg {
        Msg::Transfer(transfer) => apply_transfer(overlay, tx.sender, transfer),
        Msg::KeyspaceCreate(create) => apply_keyspace_create(overlay, tx.sender, create),
        Msg::KvPut(put) => apply_kv_put(overlay, tx.sender, put),
        Msg::KvDelete(delete) => apply_kv_delete(overlay, tx.sender, delete),
    }
}

fn apply_transfer(
    overlay: &mut Overlay,
    from: Address,
    transfer: &pb::Transfer,
) -> Result<Vec<Event>, ExecError> {
    let to = parse_address(&transfer.to, "to")?;
    let amount: Amount = transfer
        .amount
        .parse()
        .map_err(|_| TxError::InvalidAmount(format!("amount {:?}", transfer.amount)))?;
    if amount.is_zero() {
        return Err(TxError::InvalidAmount("a transfer must move a positive amount".into()).into());
    }
    let mut sender = overlay.account(&from)?;
    let remaining = sender
        .balance()
        .checked_sub(amount)
        .ok_or(TxError::InsufficientFunds {
            account: from,
            have: sender.balance(),
            need: amount,
        })?;
    if to != from {
        let mut recipient = overlay.account(&to)?;
        recipient.balance = recipient
            .balance()
            .checked_add(amount)
            .ok_or_else(|| TxError::InvalidAmount("recipient balance overflow".into()))?
            .atto();
        sender.balance = remaining.atto();
        overlay.set_account(&from, sender);
        overlay.set_account(&to, recipient);
    }
    Ok(vec![Event {
        kind: "transfer",
        attributes: vec![
            ("from", from.to_string()),
            ("to", to.to_string()),
            ("amount", amount.to_string()),
        ],
    }])
}

fn apply_keyspace_create(
    overlay: &mut Overlay,
    owner: Address,
    create: &pb::KeyspaceCreate,
) -> Result<Vec<Event>, ExecError> {
    let invalid = |why: String| ExecError::Tx(TxError::InvalidKeyspace(why));
    if !is_valid_name(&create.name) {
        return Err(invalid(format!(
            "name {:?} must match [a-z0-9-]{{1,32}}",
            create.name
        )));
    }
    let policy = WritePolicy::from_proto(create.write_policy)
        .ok_or_else(|| invalid(format!("unknown write policy {}", create.write_policy)))?;
    if !(1..=MAX_KEY_LIMIT).contains(&create.max_key_bytes) {
        return Err(invalid(format!(
            "max_key_bytes must be 1..={MAX_KEY_LIMIT}, got {}",
            create.max_key_bytes
        )));
    }
    if create.max_value_bytes > MAX_VALUE_LIMIT {
        return Err(invalid(format!(
            "max_value_bytes must be at most {MAX_VALUE_LIMIT}, got {}",
            create.max_value_bytes
        )));
    }
    if create.writers.len() > MAX_WRITERS {
        return Err(invalid(format!("at most {MAX_WRITERS} writers")));
    }
    if policy != WritePolicy::AllowList && !create.writers.is_empty() {
        return Err(invalid(
            "writers are only meaningful with ALLOW_LIST".into(),
        ));
    }
    let mut writers = create
        .writers
        .iter()
        .map(|w| parse_address(w, "writer").map(|a| a.0))
        .collect::<Result<Vec<_>, _>>()?;
    writers.sort_unstable();
    writers.dedup();
    if overlay.keyspace(&create.name)?.is_some() {
        return Err(TxError::KeyspaceExists(create.name.clone()).into());
    }
    let record = KeyspaceRecord {
        owner: owner.0,
        policy,
        writers,
        max_key_bytes: create.max_key_bytes,
        max_value_bytes: create.max_value_bytes,
    };
    overlay
        .upper
        .insert(keyspace_key(&create.name), Some(encode(&record)));
    Ok(vec![Event {
        kind: "keyspace_create",
        attributes: vec![("name", create.name.clone()), ("owner", owner.to_string())],
    }])
}

/// The keyspace `name`, if `writer` may write to it.
fn writable_keyspace(
    overlay: &Overlay,
    writer: Address,
    name: &str,
) -> Result<KeyspaceRecord, ExecError> {
    let keyspace = overlay
        .keyspace(name)?
        .ok_or_else(|| TxError::KeyspaceNotFound(name.to_owned()))?;
    if !keyspace.may_write(&writer) {
        return Err(TxError::Unauthorized {
            writer,
            keyspace: name.to_owned(),
        }
        .into());
    }
    Ok(keyspace)
}

fn check_key(keyspace: &KeyspaceRecord, key: &[u8]) -> Result<(), TxError> {
    if key.is_empty() {
        return Err(TxError::Malformed("empty key".into()));
    }
    if key.len() > keyspace.max_key_bytes as usize {
        return Err(TxError::KeyTooLarge {
            max: keyspace.max_key_bytes,
            got: key.len(),
        });
    }
    Ok(())
}

fn apply_kv_put(
    overlay: &mut Overlay,
    writer: Address,
    put: &pb::KvPut,
) -> Result<Vec<Event>, ExecError> {
    let keyspace = writable_keyspace(overlay, writer, &put.keyspace)?;
    check_key(&keyspace, &put.key)?;
    if put.value.len() > keyspace.max_value_bytes as usize {
        return Err(TxError::ValueTooLarge {
            max: keyspace.max_value_bytes,
            got: put.value.len(),
        }
        .into());
    }
    overlay
        .upper
        .insert(kv_key(&put.keyspace, &put.key), Some(put.value.clone()));
    Ok(vec![Event {
        kind: "kv_put",
        attributes: vec![
            ("keyspace", put.keyspace.clone()),
            ("key", hex::encode(&put.key)),
            ("writer", writer.to_string()),
        ],
    }])
}

fn apply_kv_delete(
    overlay: &mut Overlay,
    writer: Address,
    delete: &pb::KvDelete,
) -> Result<Vec<Event>, ExecError> {
    let keyspace = writable_keyspace(overlay, writer, &delete.keyspace)?;
    check_key(&keyspace, &delete.key)?;
    let key = kv_key(&delete.keyspace, &delete.key);
    if overlay.get(&key)?.is_none() {
        return Err(TxError::KeyNotFound(hex::encode(&delete.key)).into());
    }
    overlay.upper.insert(key, None);
    Ok(vec![Event {
        kind: "kv_delete",
        attributes: vec![
            ("keyspace", delete.keyspace.clone()),
            ("key", hex::encode(&delete.key)),
            ("writer", writer.to_string()),
        ],
    }])
}
