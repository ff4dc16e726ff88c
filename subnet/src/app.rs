//! The subnet state machine: genesis, the mempool's admission, the ABCI++ phases of a block,
//! and commit.
//!
//! A block's result depends only on the committed state and the block (its transactions and
//! its [`BlockContext`]). The app is shared by CometBFT's four connections without one big
//! lock: the consensus phases hold the consensus lock, CheckTx holds only the mempool's check
//! state and only after its signature has been recovered, and queries read the committed
//! store directly. The caches here (verified transactions, the check state) save work and
//! never change a result.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use ipsat_checkpoint::{BlsSecretKey, HistoryAccumulator};
use ipsat_core::system::is_system;
use ipsat_core::{
    app_hash, tx, Hash32, SubnetId, SystemTx, TxError, TxHash, VerifiedTx, VoteExtension,
};
use rayon::prelude::*;

use crate::component::{ExecError, TxContext};
use crate::components::checkpoints::{self, VoteError};
use crate::components::rsk::{self, RskInputs};
use crate::components::{self, fees, parent, registry};
use crate::context::{
    BlockContext, BlockEffects, ExtendedCommit, ProposalInputs, ValidatorAddress,
};
use crate::delta::{Changes, StateDelta, StateError};
use crate::error::AppError;
use crate::genesis::{Genesis, GenesisError};
use crate::outcome::{CommittedBlock, Event, FinalizedBlock, TxResult};
use crate::store::{BlockWrite, Committed, Store};

/// Bytes of verified transactions kept between CheckTx/ProcessProposal and FinalizeBlock: a
/// full default CometBFT mempool (5,000 transactions of up to 128 KiB would be more, but a
/// block's worth of them always fits) without letting large transactions exhaust memory.
const VERIFIED_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// What one cached transaction is charged: its encoding, the decoded copy of its message
/// (never larger than the encoding), and the map and queue entries.
fn cached_cost(tx: &VerifiedTx) -> usize {
    2 * tx.size + 128
}

/// Locks a mutex whose holder panicked anyway: every value behind these locks is replaced
/// whole or is a cache, so a panic cannot leave it half-updated.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Chain {
    committed: Committed,
    history: HistoryAccumulator,
}

struct PendingBlock {
    block_hash: Vec<u8>,
    write: BlockWrite,
    history: HistoryAccumulator,
    tx_results: Vec<TxResult>,
}

#[derive(Default)]
struct Consensus {
    chain: Option<Chain>,
    pending: Option<PendingBlock>,
}

/// Transactions whose stateless checks passed, by hash, so each signature is recovered once.
/// Bounded in bytes; when full, the oldest entries go first.
struct VerifiedCache {
    limit: usize,
    entries: Mutex<CacheEntries>,
}

#[derive(Default)]
struct CacheEntries {
    map: HashMap<TxHash, Arc<VerifiedTx>>,
    /// Insertion order; may hold hashes already taken out of `map`, skipped on eviction.
    order: VecDeque<TxHash>,
    bytes: usize,
}

impl CacheEntries {
    fn remove(&mut self, hash: &TxHash) -> Option<Arc<VerifiedTx>> {
        let tx = self.map.remove(hash)?;
        self.bytes -= cached_cost(&tx);
        Some(tx)
    }
}

impl VerifiedCache {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            entries: Mutex::default(),
        }
    }

    fn get(&self, hash: &TxHash) -> Option<Arc<VerifiedTx>> {
        lock(&self.entries).map.get(hash).cloned()
    }

    fn take(&self, hash: &TxHash) -> Option<Arc<VerifiedTx>> {
        lock(&self.entries).remove(hash)
    }

    fn bytes(&self) -> usize {
        lock(&self.entries).bytes
    }

    fn insert_all(&self, txs: impl IntoIterator<Item = Arc<VerifiedTx>>) {
        let mut entries = lock(&self.entries);
        for tx in txs {
            if entries.map.contains_key(&tx.hash) {
                continue;
            }
            entries.bytes += cached_cost(&tx);
            entries.order.push_back(tx.hash);
            entries.map.insert(tx.hash, tx);
            while entries.bytes > self.limit {
                let Some(oldest) = entries.order.pop_front() else {
                    break;
                };
                entries.remove(&oldest);
            }
        }
        // Hashes taken by FinalizeBlock stay queued until evicted; drop them once they
        // outnumber the live entries, so the queue stays proportional to the cache.
        if entries.order.len() > 2 * entries.map.len() + 1024 {
            let CacheEntries { map, order, .. } = &mut *entries;
            order.retain(|hash| map.contains_key(hash));
        }
    }

    /// The cached verification of `raw`, or a fresh one; the lock is not held while verifying.
    fn verify(&self, raw: &[u8], subnet: &SubnetId) -> Result<Arc<VerifiedTx>, TxError> {
        match self.get(&tx::tx_hash(raw)) {
            Some(tx) => Ok(tx),
            None => tx::verify(raw, subnet).map(Arc::new),
        }
    }
}

/// A block's transaction after its stateless checks.
enum Verified {
    Signed(Arc<VerifiedTx>),
    System(Box<SystemTx>),
}

/// What happened to a transaction run against some state.
enum Delivery {
    /// Its fee or nonce could not be paid: nothing changed.
    Refused(TxError),
    /// The fee and nonce were taken, the message failed and its writes were dropped.
    Failed(TxError),
    /// Everything applied.
    Succeeded(Vec<Event>),
}

/// Runs `tx` in `state`: the fee and nonce in one fork, then the message in another, so a
/// failing message rolls back only its own writes.
fn deliver(
    state: &mut StateDelta<'_>,
    tx: &VerifiedTx,
    subnet: &SubnetId,
    height: u64,
) -> Result<Delivery, StateError> {
    let mut charged = state.fork();
    match fees::charge(&mut charged, tx) {
        Ok(()) => {}
        Err(ExecError::Tx(e)) => return Ok(Delivery::Refused(e)),
        Err(ExecError::State(e)) => return Err(e),
    }
    let charged = charged.into_changes();
    state.apply(charged);
    let context = TxContext {
        sender: tx.sender,
        hash: tx.hash,
        height,
        subnet,
    };
    let mut message = state.fork();
    let outcome = components::handler(&tx.action).execute(&mut message, &context);
    settle(state, message.into_changes(), outcome)
}

/// Keeps a fork's writes if its handler succeeded, drops them if the handler refused.
fn settle(
    state: &mut StateDelta<'_>,
    fork: Changes,
    outcome: Result<Vec<Event>, ExecError>,
) -> Result<Delivery, StateError> {
    match outcome {
        Ok(events) => {
            state.apply(fork);
            Ok(Delivery::Succeeded(events))
        }
        Err(ExecError::Tx(e)) => Ok(Delivery::Failed(e)),
        Err(ExecError::State(e)) => Err(e),
    }
}

/// Runs a system transaction in `state`: no fee and no nonce, its certificate (or the
/// parent's signed headers) is its authority. `block_time_unix_nanos` is `None` in the
/// mempool, which does not know the next block's time; a parent update needs it.
fn deliver_system(
    state: &mut StateDelta<'_>,
    store: &Store,
    system: &SystemTx,
    subnet: &SubnetId,
    height: u64,
    block_time_unix_nanos: Option<i64>,
) -> Result<Delivery, StateError> {
    let mut fork = state.fork();
    let outcome = match system {
        SystemTx::OwnCertificate {
            height: checkpoint,
            certificate,
            gateway_signatures,
        } => checkpoints::record_own_certificate(
            &mut fork,
            store,
            *checkpoint,
            certificate,
            gateway_signatures,
            height,
        ),
        SystemTx::ChildCheckpoint {
            subnet: child,
            checkpoint,
            certificate,
            releases,
            messages,
        } => registry::accept_checkpoint(
            &mut fork,
            subnet,
            child,
            &registry::CheckpointDelivery {
                checkpoint,
                certificate,
                releases,
                messages,
            },
            height,
        ),
        SystemTx::ParentUpdate(update) => match block_time_unix_nanos {
            Some(now) => parent::apply_update(&mut fork, subnet, update, now),
            None => Err(TxError::ProposerOnly.into()),
        },
        SystemTx::RskUpdate(update) => rsk::apply_update(&mut fork, subnet, update),
    };
    let fork = fork.into_changes();
    settle(state, fork, outcome)
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

/// The state machine of one subnet over its store; see the module documentation.
pub struct SubnetApp {
    store: Arc<Store>,
    subnet_id: OnceLock<SubnetId>,
    consensus: Mutex<Consensus>,
    /// Effects of the transactions admitted to the mempool since the last commit.
    check_state: Mutex<Changes>,
    verified: VerifiedCache,
    proposal_inputs: ProposalInputs,
    /// This validator's checkpoint signing key; `None` on a node that does not validate.
    signer: Option<BlsSecretKey>,
    /// Under the RSK gateway, this validator's account key, whose address the gateway knows
    /// as its signer.
    gateway_signer: Option<secp256k1::SecretKey>,
    /// What this node's RSK follower read, under the RSK gateway.
    rsk_inputs: RskInputs,
    /// The height the next block will have, kept at Commit so the mempool's handlers know it
    /// without reading the store on every CheckTx.
    next_height: AtomicU64,
}

impl SubnetApp {
    /// Opens the app over `store`, resuming from its last committed block if there is one.
    pub fn open(store: Arc<Store>) -> Result<Self, AppError> {
        let subnet_id = OnceLock::new();
        let mut consensus = Consensus::default();
        let mut next_height = 1;
        if let (Some(genesis), Some(committed)) = (store.genesis()?, store.committed()?) {
            next_height = committed.height + 1;
            let history = HistoryAccumulator::from_parts(
                committed.history_leaf_count,
                committed.history_peaks.clone(),
            )?;
            let _ = subnet_id.set(Genesis::from_json(&genesis)?.subnet_id);
            consensus.chain = Some(Chain { committed, history });
        }
        Ok(Self {
            store,
            subnet_id,
            consensus: Mutex::new(consensus),
            check_state: Mutex::new(Changes::new()),
            verified: VerifiedCache::new(VERIFIED_CACHE_BYTES),
            proposal_inputs: ProposalInputs::default(),
            signer: None,
            gateway_signer: None,
            rsk_inputs: RskInputs::default(),
            next_height: AtomicU64::new(next_height),
        })
    }

    /// Signs checkpoints in vote extensions with `key` (a validator's node).
    pub fn with_checkpoint_signer(mut self, key: BlsSecretKey) -> Self {
        self.signer = Some(key);
        self
    }

    /// Under the RSK gateway, also signs checkpoints for the gateway with `key` (the account
    /// key the validator registered as its signer there).
    pub fn with_gateway_signer(mut self, key: secp256k1::SecretKey) -> Self {
        self.gateway_signer = Some(key);
        self
    }

    /// Where the node's RSK follower puts what it read (under the RSK gateway).
    pub fn rsk_inputs(&self) -> &RskInputs {
        &self.rsk_inputs
    }

    /// The store this app commits to, for queries.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The height the next block will have.
    fn next_height(&self) -> u64 {
        self.next_height.load(Ordering::Acquire)
    }

    /// The subnet this app runs, once genesis is known.
    pub fn subnet_id(&self) -> Option<&SubnetId> {
        self.subnet_id.get()
    }

    fn initialized_subnet(&self) -> Result<&SubnetId, AppError> {
        self.subnet_id().ok_or(AppError::NotInitialized)
    }

    /// Height and roots of the last committed block, `None` before genesis. Reads the store,
    /// so it never waits for a block being executed.
    pub fn last_committed(&self) -> Result<Option<Committed>, AppError> {
        Ok(self.store.committed()?)
    }

    /// Bytes held by the cache of verified transactions (bounded), for metrics and tests.
    pub fn verified_cache_bytes(&self) -> usize {
        self.verified.bytes()
    }

    /// Where services queue outside data for the next proposal.
    pub fn proposal_inputs(&self) -> &ProposalInputs {
        &self.proposal_inputs
    }

    /// Applies and commits the genesis state as height 0. Idempotent for the same genesis,
    /// because CometBFT calls InitChain again if it restarts before block 1.
    pub fn init_chain(&self, app_state: &[u8]) -> Result<Hash32, AppError> {
        let genesis = Genesis::from_json(app_state)?;
        let mut consensus = lock(&self.consensus);
        if let Some(chain) = &consensus.chain {
            let stored = self.store.genesis()?.ok_or(AppError::NotInitialized)?;
            if Genesis::from_json(&stored)? != genesis {
                return Err(AppError::GenesisMismatch);
            }
            return Ok(chain.committed.app_hash);
        }
        let mut state = StateDelta::new(&*self.store);
        for component in components::ALL {
            component.init_chain(&mut state, &genesis)?;
        }
        let changes = state.into_changes();
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
            cut_checkpoint: None,
        })?;
        let app_hash = committed.app_hash;
        let _ = self.subnet_id.set(genesis.subnet_id);
        consensus.chain = Some(Chain { committed, history });
        Ok(app_hash)
    }

    /// Mempool admission: the transaction must succeed entirely against the committed state
    /// plus the transactions already admitted. A refused transaction changes nothing. The
    /// signature is recovered before any lock is taken.
    pub fn check_tx(&self, raw: &[u8]) -> Result<TxResult, AppError> {
        let subnet = self.initialized_subnet()?;
        if is_system(raw) {
            return self.check_system_tx(raw, subnet);
        }
        let height = self.next_height();
        let tx = match self.verified.verify(raw, subnet) {
            Ok(tx) => tx,
            Err(e) => return Ok(TxResult::failed(tx::tx_hash(raw), &e)),
        };
        let mut check_state = lock(&self.check_state);
        let admitted = std::mem::take(&mut *check_state);
        let mut mempool = StateDelta::with_writes(&*self.store, admitted);
        let mut candidate = mempool.fork();
        let delivery = deliver(&mut candidate, &tx, subnet, height);
        let result = match delivery {
            Ok(Delivery::Succeeded(events)) => {
                let candidate = candidate.into_changes();
                mempool.apply(candidate);
                Ok(TxResult::succeeded(tx.hash, events))
            }
            Ok(Delivery::Refused(e) | Delivery::Failed(e)) => Ok(TxResult::failed(tx.hash, &e)),
            Err(e) => Err(e.into()),
        };
        *check_state = mempool.into_changes();
        drop(check_state);
        match &result {
            Ok(admitted) if admitted.code == 0 => self.verified.insert_all([tx]),
            // Refused, e.g. at the recheck after a commit that spent its nonce: CometBFT drops
            // it from the mempool, so its verification is of no further use.
            _ => {
                self.verified.take(&tx.hash);
            }
        }
        result
    }

    /// Mempool admission of a system transaction: a certificate of this subnet's own
    /// checkpoint only a proposer may include; a child's checkpoint is admitted fee-free when
    /// it would be accepted now (the next height, a valid certificate).
    fn check_system_tx(&self, raw: &[u8], subnet: &SubnetId) -> Result<TxResult, AppError> {
        let hash = tx::tx_hash(raw);
        let system = match SystemTx::decode(raw) {
            Ok(Some(
                SystemTx::OwnCertificate { .. }
                | SystemTx::ParentUpdate(_)
                | SystemTx::RskUpdate(_),
            )) => return Ok(TxResult::failed(hash, &TxError::ProposerOnly)),
            Ok(Some(system)) => system,
            Ok(None) => unreachable!("is_system checked the prefix"),
            Err(e) => return Ok(TxResult::failed(hash, &e)),
        };
        let height = self.next_height();
        let mut check_state = lock(&self.check_state);
        let admitted = std::mem::take(&mut *check_state);
        let mut mempool = StateDelta::with_writes(&*self.store, admitted);
        let delivery = deliver_system(&mut mempool, &self.store, &system, subnet, height, None);
        *check_state = mempool.into_changes();
        Ok(match delivery? {
            Delivery::Succeeded(events) => TxResult::succeeded(hash, events),
            Delivery::Refused(e) | Delivery::Failed(e) => TxResult::failed(hash, &e),
        })
    }

    /// Whether a child's checkpoint would be accepted on top of the committed state, for
    /// services that must judge one before passing it on (gossip validation).
    pub fn check_child_checkpoint(
        &self,
        system: &SystemTx,
    ) -> Result<Result<(), TxError>, AppError> {
        let subnet = self.initialized_subnet()?;
        if !matches!(system, SystemTx::ChildCheckpoint { .. }) {
            return Ok(Err(TxError::Malformed("not a child's checkpoint".into())));
        }
        let mut scratch = StateDelta::new(&*self.store);
        let height = self.next_height();
        Ok(
            match deliver_system(&mut scratch, &self.store, system, subnet, height, None)? {
                Delivery::Succeeded(_) => Ok(()),
                Delivery::Refused(e) | Delivery::Failed(e) => Err(e),
            },
        )
    }

    /// Whether a parent update would be applied on top of the committed state in a block
    /// at `now_unix_nanos`, for the service that fetches updates (to leave an endpoint that
    /// serves something false).
    pub fn check_parent_update(
        &self,
        update: &ipsat_core::system::ParentUpdate,
        now_unix_nanos: i64,
    ) -> Result<Result<(), TxError>, AppError> {
        let subnet = self.initialized_subnet()?;
        let mut scratch = StateDelta::new(&*self.store);
        let system = SystemTx::ParentUpdate(update.clone());
        let height = self.next_height();
        Ok(
            match deliver_system(
                &mut scratch,
                &self.store,
                &system,
                subnet,
                height,
                Some(now_unix_nanos),
            )? {
                Delivery::Succeeded(_) => Ok(()),
                Delivery::Refused(e) | Delivery::Failed(e) => Err(e),
            },
        )
    }

    /// Builds the proposal: the certificate of the pending checkpoint when the previous
    /// height's vote extensions (`last_commit`) reach a quorum, then outside data queued in
    /// [`ProposalInputs`], then the mempool's transactions in order, keeping those that pass
    /// stateless checks and fit in `max_bytes`.
    pub fn prepare_proposal(
        &self,
        block: &BlockContext,
        last_commit: &ExtendedCommit,
        txs: Vec<Vec<u8>>,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>, AppError> {
        let Some(subnet) = self.subnet_id() else {
            return Ok(Vec::new());
        };
        let certificate =
            checkpoints::certificate_from_votes(&*self.store, &*self.store, last_commit)?;
        let rsk_update = rsk::update_from_votes(
            &*self.store,
            subnet,
            last_commit,
            &self.rsk_inputs.observation(),
        )?;
        let injected = rsk_update
            .map(|update| update.encode())
            .into_iter()
            .chain(self.proposal_inputs.take().into_iter().map(|item| item.tx));
        let mut total = 0usize;
        let mut kept = Vec::with_capacity(txs.len() + 1);
        let mut verified = Vec::new();
        for raw in certificate.map(|c| c.encode()).into_iter() {
            total += raw.len();
            kept.push(raw);
        }
        // Children's checkpoints and parent updates are run against a scratch copy of state
        // in proposal order, so only those that will be accepted (and each once) take space
        // in the block.
        let mut scratch = StateDelta::new(&*self.store);
        let height = block.height;
        for raw in injected.chain(txs) {
            if total + raw.len() > max_bytes {
                break;
            }
            let acceptable = if is_system(&raw) {
                match SystemTx::decode(&raw) {
                    Ok(Some(
                        system @ (SystemTx::ChildCheckpoint { .. }
                        | SystemTx::ParentUpdate(_)
                        | SystemTx::RskUpdate(_)),
                    )) => matches!(
                        deliver_system(
                            &mut scratch,
                            &self.store,
                            &system,
                            subnet,
                            height,
                            Some(block.time_unix_nanos)
                        )?,
                        Delivery::Succeeded(_)
                    ),
                    // Certificates of this subnet's own checkpoints come from the votes only.
                    _ => false,
                }
            } else {
                match self.verified.verify(&raw, subnet) {
                    Ok(tx) => {
                        verified.push(tx);
                        true
                    }
                    Err(_) => false,
                }
            };
            if acceptable {
                total += raw.len();
                kept.push(raw);
            }
        }
        self.verified.insert_all(verified);
        Ok(kept)
    }

    /// Accepts a proposal only if every transaction passes its stateless checks for this
    /// subnet and a certificate of this subnet's checkpoint, if any, comes first and
    /// certifies the pending checkpoint: an honest proposer never includes anything else.
    /// Stateful failures (a nonce overtaken, funds spent, a child's checkpoint overtaken by
    /// another copy) are results, not grounds for rejection, and a proposal without a
    /// certificate is fine: the checkpoint waits.
    pub fn process_proposal(&self, _block: &BlockContext, txs: &[Vec<u8>]) -> bool {
        let Some(subnet) = self.subnet_id() else {
            return false;
        };
        let mut signed = Vec::with_capacity(txs.len());
        for (index, raw) in txs.iter().enumerate() {
            if !is_system(raw) {
                signed.push(raw);
                continue;
            }
            let valid = match SystemTx::decode(raw) {
                Ok(Some(SystemTx::OwnCertificate {
                    height,
                    certificate,
                    gateway_signatures,
                })) => {
                    index == 0
                        && checkpoints::verify_own_certificate(
                            &*self.store,
                            &*self.store,
                            height,
                            &certificate,
                            &gateway_signatures,
                        )
                        .is_ok()
                }
                Ok(Some(
                    SystemTx::ChildCheckpoint { .. }
                    | SystemTx::ParentUpdate(_)
                    | SystemTx::RskUpdate(_),
                )) => true,
                Ok(None) | Err(_) => false,
            };
            if !valid {
                return false;
            }
        }
        let unverified: Vec<&Vec<u8>> = signed
            .into_iter()
            .filter(|raw| self.verified.get(&tx::tx_hash(raw)).is_none())
            .collect();
        let checked: Result<Vec<Arc<VerifiedTx>>, TxError> = unverified
            .par_iter()
            .map(|raw| tx::verify(raw, subnet).map(Arc::new))
            .collect();
        match checked {
            Ok(verified) => {
                self.verified.insert_all(verified);
                true
            }
            Err(_) => false,
        }
    }

    /// This validator's extension of its precommit for `block`: its vote on the pending
    /// checkpoint and, under the RSK gateway, its attestation of what it read from RSK
    /// (committed state only: the block itself is not final yet), or nothing on a node
    /// without a signing key or with nothing to sign.
    pub fn extend_vote(&self, _block: &BlockContext) -> Result<Vec<u8>, AppError> {
        let (Some(key), Some(subnet)) = (&self.signer, self.subnet_id()) else {
            return Ok(Vec::new());
        };
        let extension = VoteExtension {
            checkpoint: checkpoints::sign_pending(
                &*self.store,
                &*self.store,
                key,
                self.gateway_signer.as_ref(),
            )?,
            rsk: rsk::attest(&*self.store, subnet, &self.rsk_inputs.observation(), key)?,
        };
        Ok(extension.encode())
    }

    /// Whether `validator`'s extension is acceptable: empty, or each part validly signed by
    /// it. Only malformed or invalidly signed extensions are refused (refusing more than a
    /// third of the power halts the chain).
    pub fn verify_vote_extension(
        &self,
        validator: &ValidatorAddress,
        extension: &[u8],
    ) -> Result<(), VoteError> {
        let extension =
            VoteExtension::decode(extension).map_err(|e| VoteError::Malformed(e.to_string()))?;
        if let Some(vote) = &extension.checkpoint {
            checkpoints::verify_vote(&*self.store, &*self.store, validator, vote)?;
        }
        if let (Some(attestation), Some(subnet)) = (&extension.rsk, self.subnet_id()) {
            rsk::verify_attestation(&*self.store, subnet, validator, attestation)?;
        }
        Ok(())
    }

    /// Executes a decided block. Its effects become durable only at [`Self::commit`].
    pub fn finalize_block(
        &self,
        block: &BlockContext,
        txs: &[Vec<u8>],
    ) -> Result<FinalizedBlock, AppError> {
        let subnet = self.initialized_subnet()?;
        let mut consensus = lock(&self.consensus);
        let chain = consensus.chain.as_ref().ok_or(AppError::NotInitialized)?;
        let expected = chain.committed.height + 1;
        if block.height != expected {
            return Err(AppError::HeightMismatch {
                expected,
                got: block.height,
            });
        }
        let mut history = chain.history.clone();
        // Signatures not seen at CheckTx or ProcessProposal are recovered in parallel.
        let verified: Vec<Result<Verified, TxError>> = txs
            .par_iter()
            .map(|raw| {
                if is_system(raw) {
                    return SystemTx::decode(raw)
                        .and_then(|system| system.ok_or(TxError::Malformed("system tx".into())))
                        .map(|system| Verified::System(Box::new(system)));
                }
                match self.verified.take(&tx::tx_hash(raw)) {
                    Some(tx) => Ok(Verified::Signed(tx)),
                    None => tx::verify(raw, subnet).map(|tx| Verified::Signed(Arc::new(tx))),
                }
            })
            .collect();
        let mut state = StateDelta::new(&*self.store);
        let mut effects = BlockEffects::default();
        for component in components::ALL {
            component.begin_block(&mut state, block, &mut effects)?;
        }
        let mut tx_results = Vec::with_capacity(txs.len());
        for (raw, tx) in txs.iter().zip(verified) {
            let hash = tx::tx_hash(raw);
            let delivery = match tx {
                Err(e) => Delivery::Refused(e),
                Ok(Verified::Signed(tx)) => deliver(&mut state, &tx, subnet, block.height)?,
                Ok(Verified::System(system)) => deliver_system(
                    &mut state,
                    &self.store,
                    &system,
                    subnet,
                    block.height,
                    Some(block.time_unix_nanos),
                )?,
            };
            let result = match delivery {
                Delivery::Succeeded(events) => TxResult::succeeded(hash, events),
                Delivery::Refused(e) | Delivery::Failed(e) => TxResult::failed(hash, &e),
            };
            tx_results.push(result);
        }
        for component in components::ALL {
            component.end_block(&mut state, block, &mut effects)?;
        }
        let due = checkpoints::due(&state, subnet, block.height, &*self.store)?;
        let changes = state.into_changes();
        let (root, tree_update) = self.store.compute_root(&changes, block.height)?;
        let history_nodes = history.append(block.height, &root.0);
        let committed = committed_at(block.height, root.0, &history);
        let cut_checkpoint = match due {
            Some(due) => {
                let block_hash = <[u8; 32]>::try_from(block.block_hash.as_slice())
                    .map_err(|_| AppError::BlockHash(block.block_hash.len()))?;
                Some(due.seal(block_hash, committed.state_root, committed.history_root))
            }
            None => None,
        };
        let finalized = FinalizedBlock {
            height: block.height,
            app_hash: committed.app_hash,
            tx_results: tx_results.clone(),
            effects,
        };
        consensus.pending = Some(PendingBlock {
            block_hash: block.block_hash.clone(),
            write: BlockWrite {
                state_changes: changes,
                tree_update,
                history_nodes,
                committed,
                genesis: None,
                cut_checkpoint,
            },
            history,
            tx_results,
        });
        Ok(finalized)
    }

    /// Makes the finalized block durable and restarts the mempool's check state from it.
    pub fn commit(&self) -> Result<CommittedBlock, AppError> {
        let mut consensus = lock(&self.consensus);
        let pending = consensus.pending.take().ok_or(AppError::NothingToCommit)?;
        let committed = pending.write.committed.clone();
        let checkpoint_cut = pending.write.cut_checkpoint.as_ref().map(|cp| cp.height);
        {
            // CometBFT holds its mempool lock during Commit, so this waits for no CheckTx;
            // holding it across the write means none could see the new state with the
            // previous block's check state either.
            let mut check_state = lock(&self.check_state);
            self.store.write_block(pending.write)?;
            self.next_height
                .store(committed.height + 1, Ordering::Release);
            check_state.clear();
        }
        consensus.chain = Some(Chain {
            committed: committed.clone(),
            history: pending.history,
        });
        Ok(CommittedBlock {
            height: committed.height,
            block_hash: pending.block_hash,
            app_hash: committed.app_hash,
            state_root: committed.state_root,
            history_root: committed.history_root,
            tx_results: pending.tx_results,
            checkpoint_cut,
        })
    }
}

#[cfg(test)]
mod tests {
    use ipsat_core::action::Transfer;
    use ipsat_core::{Action, Address, Amount};

    use super::*;

    fn tx(n: u8, size: usize) -> Arc<VerifiedTx> {
        Arc::new(VerifiedTx {
            hash: [n; 32],
            sender: Address([n; 20]),
            nonce: 0,
            fee: Amount::ZERO,
            action: Action::Transfer(Transfer {
                to: Address([0; 20]),
                amount: Amount::from_atto(1),
            }),
            size,
        })
    }

    #[test]
    fn the_cache_is_bounded_in_bytes_and_evicts_the_oldest_first() {
        let cost = cached_cost(&tx(0, 1000));
        let cache = VerifiedCache::new(3 * cost);
        cache.insert_all((1..=3).map(|n| tx(n, 1000)));
        assert_eq!(cache.bytes(), 3 * cost);
        cache.insert_all([tx(4, 1000)]);
        assert_eq!(cache.bytes(), 3 * cost);
        assert!(cache.get(&[1; 32]).is_none(), "the oldest went first");
        assert!((2..=4).all(|n| cache.get(&[n; 32]).is_some()));

        // One large transaction pushes out as many small ones as it needs.
        cache.insert_all([tx(5, 2500)]);
        assert!(cache.bytes() <= 3 * cost);
        assert!(cache.get(&[5; 32]).is_some());
        assert!(cache.get(&[2; 32]).is_none() && cache.get(&[3; 32]).is_none());

        // Taking frees its bytes; inserting the same transaction twice charges it once.
        assert!(cache.take(&[5; 32]).is_some());
        cache.insert_all([tx(4, 1000), tx(4, 1000)]);
        assert_eq!(cache.bytes(), cost);
    }

    #[test]
    fn the_eviction_queue_stays_proportional_to_the_cache() {
        let cache = VerifiedCache::new(usize::MAX);
        for round in 0..20u8 {
            let batch: Vec<_> = (0..200u8)
                .map(|n| {
                    let mut entry = (*tx(n, 10)).clone();
                    entry.hash[0] = round;
                    entry.hash[1] = n;
                    Arc::new(entry)
                })
                .collect();
            let hashes: Vec<TxHash> = batch.iter().map(|t| t.hash).collect();
            cache.insert_all(batch);
            for hash in &hashes {
                cache.take(hash);
            }
        }
        let entries = lock(&cache.entries);
        assert!(entries.map.is_empty());
        assert!(
            entries.order.len() <= 1024 + 2 * 200,
            "{}",
            entries.order.len()
        );
    }
}
