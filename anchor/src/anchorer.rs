//! The anchorer: broadcasts anchor transactions and follows them to confirmation.
//!
//! One anchor is in flight at a time. Its life:
//!
//! 1. [`Anchorer::anchor`] builds and signs the transaction, **saves it** in the state file,
//!    then broadcasts it. A crash at any point leaves either no anchor (nothing saved) or the
//!    saved signed transaction, which [`Anchorer::open`] rebroadcasts as is: the same digest
//!    is never signed into a second, conflicting spend by accident.
//! 2. [`Anchorer::bump_fee`] signs a replacement (BIP125) spending the same output, saves it,
//!    then broadcasts it. Every version is kept: whichever one is mined is the anchor.
//! 3. [`Anchorer::poll`] searches new blocks for any version, counts confirmations, notices
//!    when the holding block leaves the best chain (the anchor goes back to pending and is
//!    rebroadcast), and once `confirmations` deep records the anchor as confirmed and adds
//!    its change output to the anchorer's outputs.
//!
//! Funds come from the chain, not from a list: [`Anchorer::fund`] takes an output only if the
//! node says it is unspent (mempool included) and, for a coinbase, mature; [`Anchorer::poll`]
//! also searches every new block for payments to the anchorer's script and holds them (a
//! coinbase is left to `fund`: on regtest the miner pays the anchorer every block). Before an
//! anchor is signed, every held output is checked again and the ones the node no longer holds
//! unspent are dropped, so a stale output is never signed into a transaction. The next anchor
//! spends every output the anchorer holds, so a top-up joins the chain of change outputs and
//! anchoring never stops because change ran low.
//!
//! Refusals: when the node refuses every version of the anchor in flight,
//! [`Anchorer::poll`] first searches the blocks again (a version mined meanwhile looks
//! refused), then classifies the refusal ([`RefusalCause`]): an input the node no longer
//! holds abandons the anchor (its other inputs return to the anchorer) so that the digest is
//! signed again from what is left; a fee below the node's minimum is reported as
//! [`AnchorStatus::Refused`] until the caller signs a replacement
//! ([`Anchorer::sign_replacement`]); anything else is retried only once a new block arrived
//! and a back-off (doubling, capped) has passed. The same refused transaction is never handed
//! to the node twice in a row with nothing changed, and each refusal is logged once.
//!
//! Conflicts: if a transaction that is not one of the anchor's versions spends one of its
//! inputs (the key used elsewhere), [`Anchorer::poll`] reports [`AnchorStatus::Conflicted`]
//! while that block is shallower than `confirmations` (it may still be reorganised away); once
//! deeper, the anchor is abandoned: its other inputs, and any output of the conflicting
//! transaction that pays the anchorer, return to the anchorer's outputs, and the same digest
//! can be anchored again with [`Anchorer::anchor`].
//!
//! Reorgs deeper than `confirmations` after an anchor was recorded as confirmed are not
//! followed (its change has been spent by then); choose `confirmations` accordingly.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bitcoin::{Address, Amount, BlockHash, Network, OutPoint, Txid};
use tracing::{debug, info, warn};

use crate::digest::AnchorId;
use crate::proof::{AnchorProof, ProofError};
use crate::rpc::{RpcClient, RpcError};
use crate::state::{
    AbandonedAnchor, AnchorState, BlockRef, ConfirmedAnchor, ConflictingSpend, InFlight, Inclusion,
    StateError, TxVersion,
};
use crate::tx::{build_anchor_tx, min_replacement_fee, AnchorKey, TxError, Utxo};

mod funds;
mod refusal;

pub use funds::PAYMENT_SEARCH_BATCH;
use refusal::Refusal;
pub use refusal::{RefusalCause, MAX_RETRY_BACKOFF, MIN_RETRY_BACKOFF};

/// After a reorg, blocks this far below the point where it was noticed are searched again.
pub const REORG_RESCAN_DEPTH: u64 = 24;

/// How the anchorer runs. There is no config file: the node builds this from its own.
#[derive(Clone, Debug)]
pub struct AnchorerConfig {
    /// The JSON state file (created if missing; its directory must exist).
    pub state_path: PathBuf,
    /// The Bitcoin network.
    pub network: Network,
    /// Fee rate of new anchors, sat/vB (there is no fee estimation: btcd has none).
    pub fee_rate_sat_vb: u64,
    /// Confirmations after which an anchor is final and its change is spent by the next.
    pub confirmations: u32,
}

/// Errors of the anchorer. Each says what failed; RPC errors name the call.
#[allow(missing_docs)] // Each variant's message says what it means.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error("anchorer configuration: {0}")]
    Config(String),
    /// A call to the Bitcoin node failed.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error("anchor transaction: {0}")]
    Tx(#[from] TxError),
    /// Reading or writing the state file failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// Building or checking an anchor proof failed.
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error("the anchorer has no spendable output: pay its address, or give it an output")]
    NoFunds,
    #[error("output {0} is already the anchorer's (held, or spent by the anchor in flight)")]
    AlreadyFunded(OutPoint),
    #[error("output {0} does not exist")]
    NoSuchOutput(OutPoint),
    #[error("output {0} is spent, or unknown to the Bitcoin node: not taken")]
    SpentOrUnknown(OutPoint),
    #[error(
        "output {outpoint} is a coinbase with {confirmations} of the {} confirmations it needs: \
         not taken yet",
        crate::rpc::COINBASE_MATURITY
    )]
    Immature {
        outpoint: OutPoint,
        confirmations: u64,
    },
    #[error("anchor {in_flight} is still in flight; one anchor at a time")]
    Busy { in_flight: AnchorId },
    #[error("no anchor in flight")]
    NothingInFlight,
    #[error("anchor transaction {txid} is already in block {block_hash}; it cannot be replaced")]
    AlreadyMined { txid: Txid, block_hash: BlockHash },
    #[error("new fee rate {requested} sat/vB is not above the current {current} sat/vB")]
    FeeRateNotHigher { current: u64, requested: u64 },
    #[error("replacement fee {fee} is below the BIP125 minimum {min}")]
    BumpTooSmall { fee: Amount, min: Amount },
    #[error("unknown anchor {0}")]
    UnknownAnchor(AnchorId),
    #[error("block {0} is no longer in the best chain")]
    NotInBestChain(BlockHash),
    #[error("the best chain changed while reading headers; retry")]
    ChainChanged,
    #[error("anchor {id}: not confirmed after {waited:?}")]
    Timeout { id: AnchorId, waited: Duration },
}

/// Where the in-flight (or just confirmed) anchor stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnchorStatus {
    /// Nothing in flight.
    Idle,
    /// Broadcast (or being rebroadcast), not in the best chain.
    Pending {
        /// The anchor (its digest, stable across fee bumps).
        id: AnchorId,
        /// The version last accepted by the node (or the newest, if none was).
        txid: Txid,
        /// Broadcast attempts of that version.
        broadcast_attempts: u32,
    },
    /// In a block of the best chain, not yet deep enough.
    InBlock {
        /// The anchor (its digest, stable across fee bumps).
        id: AnchorId,
        /// The version that was mined.
        txid: Txid,
        /// The best-chain block holding it.
        block_hash: BlockHash,
        /// That block's height.
        height: u64,
        /// Blocks from the holding block to the tip, inclusive (1 when it is the tip); below
        /// [`AnchorerConfig::confirmations`].
        confirmations: u64,
    },
    /// Deep enough: recorded in the state's confirmed list.
    Confirmed(ConfirmedAnchor),
    /// Another transaction spending one of the anchor's inputs is in a block of the best
    /// chain, not yet `confirmations` deep: the anchor waits, in case that block is reorganised
    /// away.
    Conflicted {
        /// The anchor.
        id: AnchorId,
        /// The conflicting transaction.
        txid: Txid,
        /// Blocks from the one holding it to the tip, inclusive.
        confirmations: u64,
    },
    /// The conflicting spend is final, or an input vanished: the anchor was given up
    /// (recorded in the state's abandoned list). Anchor the digest again to commit it.
    Abandoned(AbandonedAnchor),
    /// The node refused every version, for a reason other than a vanished input.
    Refused {
        /// The anchor.
        id: AnchorId,
        /// Its newest version, the one refused.
        txid: Txid,
        /// Why, as classified.
        cause: RefusalCause,
        /// What the node said.
        message: String,
        /// The fee rate of that version, sat/vB.
        fee_rate_sat_vb: u64,
    },
}

/// The Bitcoin anchorer. See the module documentation.
#[derive(Debug)]
pub struct Anchorer {
    cfg: AnchorerConfig,
    key: AnchorKey,
    rpc: RpcClient,
    state: AnchorState,
    refusal: Option<Refusal>,
    refusals: BTreeMap<RefusalCause, u64>,
}

impl Anchorer {
    /// Opens (or creates) the state file and, if an anchor is in flight and not yet mined,
    /// rebroadcasts its saved signed transaction(s) unchanged. A failed rebroadcast is logged
    /// and recorded, not fatal: [`Self::poll`] retries it.
    pub async fn open(
        cfg: AnchorerConfig,
        key: AnchorKey,
        rpc: RpcClient,
    ) -> Result<Self, AnchorError> {
        if cfg.confirmations == 0 {
            return Err(AnchorError::Config(
                "confirmations must be at least 1".into(),
            ));
        }
        if cfg.fee_rate_sat_vb == 0 {
            return Err(AnchorError::Config(
                "fee rate must be at least 1 sat/vB".into(),
            ));
        }
        let own = key.script_pubkey();
        let state = match AnchorState::load(&cfg.state_path)? {
            Some(s) => {
                if s.network != cfg.network {
                    return Err(StateError::Mismatch {
                        path: cfg.state_path.clone(),
                        reason: format!(
                            "state is for network {}, configured {}",
                            s.network, cfg.network
                        ),
                    }
                    .into());
                }
                if s.script_pubkey != own {
                    return Err(StateError::Mismatch {
                        path: cfg.state_path.clone(),
                        reason: format!(
                            "state belongs to script {}, the configured key controls {}",
                            s.script_pubkey, own
                        ),
                    }
                    .into());
                }
                s
            }
            None => {
                let s = AnchorState::new(cfg.network, own);
                s.save(&cfg.state_path)?;
                s
            }
        };
        let mut a = Anchorer {
            cfg,
            key,
            rpc,
            state,
            refusal: None,
            refusals: BTreeMap::new(),
        };
        if let Some(fl) = &a.state.in_flight {
            if fl.included.is_none() && fl.conflict.is_none() {
                info!(anchor = %fl.id, versions = fl.versions.len(),
                    "resuming: rebroadcasting the saved anchor transaction");
                let sent = match a.rpc.get_block_count().await {
                    Ok(tip) => a.send(tip).await.map(|_| ()),
                    Err(e) => Err(e.into()),
                };
                if let Err(e) = sent {
                    warn!(error = %e, "rebroadcast on open failed; poll() will retry");
                }
            }
        }
        Ok(a)
    }

    /// Refusals so far by cause, since this anchorer was opened.
    pub fn refusals(&self) -> &BTreeMap<RefusalCause, u64> {
        &self.refusals
    }

    /// The anchorer's address (funding and change).
    pub fn address(&self) -> Address {
        self.key.address(self.cfg.network)
    }

    /// The persisted state, as last saved.
    pub fn state(&self) -> &AnchorState {
        &self.state
    }

    /// The RPC client.
    pub fn rpc(&self) -> &RpcClient {
        &self.rpc
    }

    /// Fee rate for anchors built from now on, sat/vB.
    pub fn set_fee_rate(&mut self, sat_vb: u64) -> Result<(), AnchorError> {
        if sat_vb == 0 {
            return Err(AnchorError::Config(
                "fee rate must be at least 1 sat/vB".into(),
            ));
        }
        self.cfg.fee_rate_sat_vb = sat_vb;
        Ok(())
    }

    fn save(&self) -> Result<(), AnchorError> {
        self.state.save(&self.cfg.state_path)?;
        Ok(())
    }

    /// Anchors `digest`: [`Self::sign`], then hands the transaction to the node.
    ///
    /// If the node refuses it, the anchor stays saved and in flight and [`Self::poll`] reports
    /// and recovers from the refusal; only a failure to reach the node is an error here.
    pub async fn anchor(&mut self, digest: [u8; 32]) -> Result<AnchorId, AnchorError> {
        let (id, fresh) = self.sign(digest).await?;
        if fresh {
            let tip = self.rpc.get_block_count().await?;
            self.send(tip).await?;
        }
        Ok(id)
    }

    /// Builds, signs and saves the anchor of `digest` from every held output the node still
    /// holds unspent, without broadcasting it ([`Self::poll`] does); `true` if a new
    /// transaction was made.
    ///
    /// Idempotent per digest: a digest already in flight or confirmed returns its id without
    /// building anything. A different digest while one is in flight is [`AnchorError::Busy`].
    pub async fn sign(&mut self, digest: [u8; 32]) -> Result<(AnchorId, bool), AnchorError> {
        let id = AnchorId(digest);
        if self.state.confirmed.iter().any(|c| c.id == id) {
            info!(anchor = %id, "digest already anchored and confirmed");
            return Ok((id, false));
        }
        if let Some(fl) = &self.state.in_flight {
            if fl.id == id {
                debug!(anchor = %id, "digest already in flight");
                return Ok((id, false));
            }
            return Err(AnchorError::Busy { in_flight: fl.id });
        }
        // Payments since the last poll count too: they may be all an empty anchorer has.
        let tip = self.rpc.get_block_count().await?;
        self.search_payments(tip).await?;
        let spends = self.reconcile_held().await?;
        if spends.is_empty() {
            return Err(AnchorError::NoFunds);
        }
        let signed = build_anchor_tx(&self.key, &spends, &digest, self.cfg.fee_rate_sat_vb)?;
        let tip_hash = self.rpc.get_block_hash(tip).await?;
        let version = TxVersion::new(
            &signed.tx,
            signed.fee.to_sat(),
            signed.fee_rate_sat_vb,
            signed.vsize,
        );
        info!(anchor = %id, txid = %version.txid, vsize = signed.vsize, fee_sat = version.fee_sat,
            inputs = spends.len(), "anchor transaction signed and verified; saving it");
        self.state.utxos.retain(|u| !spends.contains(u));
        self.state.in_flight = Some(InFlight {
            id,
            spends,
            versions: vec![version],
            next_scan_height: tip + 1,
            last_scanned: Some(BlockRef {
                height: tip,
                hash: tip_hash,
            }),
            included: None,
            last_broadcast_error: None,
            conflict: None,
        });
        self.save()?;
        Ok((id, true))
    }

    /// Hands the saved versions to the node, newest first, until one is accepted or already
    /// known to it: `Ok(Err(what the node said))` if it refused them all. Saves the attempt
    /// counters and the outcome.
    async fn broadcast_versions(&mut self) -> Result<Result<Txid, String>, AnchorError> {
        let n = self.in_flight()?.versions.len();
        let mut refusals = Vec::new();
        for i in (0..n).rev() {
            match self.broadcast_version(i).await? {
                Ok(txid) => return Ok(Ok(txid)),
                Err(refused) => refusals.push(refused),
            }
        }
        let refusals = refusals.join("; ");
        self.in_flight_mut()?.last_broadcast_error = Some(refusals.clone());
        self.save()?;
        Ok(Err(refusals))
    }

    /// Broadcasts version `i`: `Ok(Ok(txid))` if the node accepted it or already knows it,
    /// `Ok(Err(what the node said))` if it refused it.
    async fn broadcast_version(&mut self, i: usize) -> Result<Result<Txid, String>, AnchorError> {
        let (tx, txid) = {
            let fl = self.in_flight_mut()?;
            let v = &mut fl.versions[i];
            v.broadcast_attempts += 1;
            (v.tx()?, v.txid)
        };
        let sent = self.rpc.send_raw_transaction(&tx).await;
        let result = match sent {
            Ok(_) => {
                info!(%txid, "anchor transaction broadcast");
                Ok(txid)
            }
            Err(e @ RpcError::Node { .. }) => {
                // "Already in the mempool/chain" has no common error code across nodes, so
                // ask the node whether it knows the transaction.
                if self.rpc.get_raw_transaction(&txid).await.is_ok() {
                    debug!(%txid, "node already has the anchor transaction");
                    Ok(txid)
                } else {
                    debug!(%txid, error = %e, "node refused the anchor transaction");
                    Err(e.to_string())
                }
            }
            Err(e) => {
                self.in_flight_mut()?.last_broadcast_error = Some(e.to_string());
                self.save()?;
                return Err(e.into());
            }
        };
        if result.is_ok() {
            self.in_flight_mut()?.last_broadcast_error = None;
        }
        self.save()?;
        Ok(result)
    }

    fn in_flight(&self) -> Result<&InFlight, AnchorError> {
        self.state
            .in_flight
            .as_ref()
            .ok_or(AnchorError::NothingInFlight)
    }

    fn in_flight_mut(&mut self) -> Result<&mut InFlight, AnchorError> {
        self.state
            .in_flight
            .as_mut()
            .ok_or(AnchorError::NothingInFlight)
    }

    /// Replaces the unconfirmed anchor transaction by one paying `new_fee_rate_sat_vb`
    /// (BIP125: same inputs, higher fee) and broadcasts it. Returns the replacement's txid;
    /// if the node refuses it, [`Self::poll`] reports and recovers as for any refusal.
    pub async fn bump_fee(&mut self, new_fee_rate_sat_vb: u64) -> Result<Txid, AnchorError> {
        let txid = self.sign_replacement(new_fee_rate_sat_vb).await?;
        let newest = self.in_flight()?.versions.len() - 1;
        if let Err(refused) = self.broadcast_version(newest).await? {
            info!(%txid, %refused, "the node refused the replacement; poll() recovers");
        }
        Ok(txid)
    }

    /// Signs and saves a replacement of the unconfirmed anchor transaction paying
    /// `new_fee_rate_sat_vb`, without broadcasting it ([`Self::poll`] does, newest version
    /// first). Every version is kept, so whichever the network mines is recognised.
    pub async fn sign_replacement(
        &mut self,
        new_fee_rate_sat_vb: u64,
    ) -> Result<Txid, AnchorError> {
        let fl = self.in_flight()?.clone();
        if let Some(inc) = fl.included {
            return Err(AnchorError::AlreadyMined {
                txid: inc.txid,
                block_hash: inc.block.hash,
            });
        }
        let current = fl
            .versions
            .iter()
            .map(|v| v.fee_rate_sat_vb)
            .max()
            .unwrap_or(0);
        if new_fee_rate_sat_vb <= current {
            return Err(AnchorError::FeeRateNotHigher {
                current,
                requested: new_fee_rate_sat_vb,
            });
        }
        let signed = build_anchor_tx(&self.key, &fl.spends, &fl.id.0, new_fee_rate_sat_vb)?;
        let max_fee = fl.versions.iter().map(|v| v.fee_sat).max().unwrap_or(0);
        let min = min_replacement_fee(Amount::from_sat(max_fee), signed.vsize);
        if signed.fee < min {
            return Err(AnchorError::BumpTooSmall {
                fee: signed.fee,
                min,
            });
        }
        let version = TxVersion::new(
            &signed.tx,
            signed.fee.to_sat(),
            new_fee_rate_sat_vb,
            signed.vsize,
        );
        let txid = version.txid;
        info!(anchor = %fl.id, %txid, fee_sat = version.fee_sat, rate = new_fee_rate_sat_vb,
            "replacement signed and verified; saving it");
        self.in_flight_mut()?.versions.push(version);
        self.save()?;
        Ok(txid)
    }

    /// Follows the in-flight anchor: searches new blocks for it, checks the block holding it
    /// is still in the best chain (if not it is pending again and rebroadcast), records it as
    /// confirmed once `confirmations` deep. Rebroadcasts while pending, and recovers from a
    /// refusal (module documentation). A conflicting spend of its input is followed the same
    /// way and, once final, abandons the anchor. Also searches new blocks for payments to the
    /// anchorer, with or without an anchor in flight.
    pub async fn poll(&mut self) -> Result<AnchorStatus, AnchorError> {
        let tip = self.rpc.get_block_count().await?;
        self.search_payments(tip).await?;
        let Some(mut fl) = self.state.in_flight.clone() else {
            return Ok(AnchorStatus::Idle);
        };
        let changed = self.follow(&mut fl, tip).await?;
        match self.settle(fl, tip, changed)? {
            Some(status) => Ok(status),
            None => self.send(tip).await,
        }
    }

    /// Brings `fl` up to `tip`: notices reorgs under what it knows, and searches new blocks
    /// for one of its versions or a conflicting spend. `true` if anything changed.
    async fn follow(&self, fl: &mut InFlight, tip: u64) -> Result<bool, AnchorError> {
        let mut changed = false;
        if let Some(inc) = fl.included {
            if !self.in_best_chain(&inc.block, tip).await? {
                warn!(anchor = %fl.id, txid = %inc.txid, block = %inc.block.hash,
                    height = inc.block.height,
                    "the block holding the anchor left the best chain: anchor is pending again");
                fl.included = None;
                fl.next_scan_height = inc.block.height.saturating_sub(REORG_RESCAN_DEPTH);
                fl.last_scanned = None;
                changed = true;
            }
        }

        if let Some(conflict) = &fl.conflict {
            if !self.in_best_chain(&conflict.block, tip).await? {
                warn!(anchor = %fl.id, txid = %conflict.txid, block = %conflict.block.hash,
                    "the block holding the conflicting spend left the best chain: searching again");
                fl.next_scan_height = conflict.block.height.saturating_sub(REORG_RESCAN_DEPTH);
                fl.last_scanned = None;
                fl.conflict = None;
                changed = true;
            }
        }

        if fl.included.is_some() || fl.conflict.is_some() {
            return Ok(changed);
        }
        if let Some(ls) = fl.last_scanned {
            if !self.in_best_chain(&ls, tip).await? {
                debug!(
                    height = ls.height,
                    "reorg below the searched range; searching again"
                );
                fl.next_scan_height = fl
                    .next_scan_height
                    .min(ls.height.saturating_sub(REORG_RESCAN_DEPTH));
                fl.last_scanned = None;
                changed = true;
            }
        }
        while fl.next_scan_height <= tip {
            let height = fl.next_scan_height;
            let hash = self.rpc.get_block_hash(height).await?;
            let block = self.rpc.get_block(&hash).await?;
            for tx in &block.txdata {
                let txid = tx.compute_txid();
                if fl.versions.iter().any(|v| v.txid == txid) {
                    info!(anchor = %fl.id, %txid, block = %hash, height, "anchor mined");
                    fl.included = Some(Inclusion {
                        txid,
                        block: BlockRef { height, hash },
                    });
                    break;
                }
                let spent: Vec<OutPoint> = tx
                    .input
                    .iter()
                    .map(|i| i.previous_output)
                    .filter(|o| fl.spends.iter().any(|u| u.outpoint == *o))
                    .collect();
                if !spent.is_empty() {
                    warn!(anchor = %fl.id, %txid, block = %hash, height,
                        "another transaction spent the anchor's input");
                    fl.conflict = Some(ConflictingSpend {
                        txid,
                        block: BlockRef { height, hash },
                        spent,
                        returned: self.own_outputs(tx),
                    });
                    break;
                }
            }
            fl.last_scanned = Some(BlockRef { height, hash });
            fl.next_scan_height = height + 1;
            changed = true;
            if fl.included.is_some() || fl.conflict.is_some() {
                break;
            }
        }
        Ok(changed)
    }

    /// Stores `fl` and, if it is in a block or conflicted, says where it stands (finalizing or
    /// abandoning it when deep enough); `None` if it is still pending.
    fn settle(
        &mut self,
        fl: InFlight,
        tip: u64,
        changed: bool,
    ) -> Result<Option<AnchorStatus>, AnchorError> {
        if let Some(conflict) = fl.conflict.clone() {
            let confirmations = tip + 1 - conflict.block.height;
            if confirmations >= u64::from(self.cfg.confirmations) {
                return self.abandon(fl, conflict).map(Some);
            }
            let id = fl.id;
            self.state.in_flight = Some(fl);
            self.save()?;
            return Ok(Some(AnchorStatus::Conflicted {
                id,
                txid: conflict.txid,
                confirmations,
            }));
        }
        let included = fl.included;
        let id = fl.id;
        if let Some(inc) = included {
            let confirmations = tip + 1 - inc.block.height;
            if confirmations >= u64::from(self.cfg.confirmations) {
                return self.finalize(fl, inc, confirmations).map(Some);
            }
            debug!(anchor = %id, txid = %inc.txid, height = inc.block.height,
                "anchor has {confirmations}/{} confirmations", self.cfg.confirmations);
        }
        self.state.in_flight = Some(fl);
        if changed {
            self.save()?;
        }
        Ok(included.map(|inc| AnchorStatus::InBlock {
            id,
            txid: inc.txid,
            block_hash: inc.block.hash,
            height: inc.block.height,
            confirmations: tip + 1 - inc.block.height,
        }))
    }

    /// The outputs of `tx` that pay to the anchorer's own script.
    fn own_outputs(&self, tx: &bitcoin::Transaction) -> Vec<Utxo> {
        let own = self.key.script_pubkey();
        let txid = tx.compute_txid();
        tx.output
            .iter()
            .enumerate()
            .filter(|(_, o)| o.script_pubkey == own)
            .map(|(vout, o)| Utxo {
                outpoint: OutPoint::new(txid, vout as u32),
                value_sat: o.value.to_sat(),
                script_pubkey: own.clone(),
            })
            .collect()
    }

    /// Gives up the anchor in flight, whose input a final transaction spent: what that
    /// transaction did not spend, and what it paid back to the anchorer, is the anchorer's.
    fn abandon(
        &mut self,
        fl: InFlight,
        conflict: ConflictingSpend,
    ) -> Result<AnchorStatus, AnchorError> {
        self.state.in_flight = None;
        let untouched = fl
            .spends
            .into_iter()
            .filter(|u| !conflict.spent.contains(&u.outpoint));
        for utxo in untouched.chain(conflict.returned) {
            self.hold(utxo);
        }
        let abandoned = AbandonedAnchor {
            id: fl.id,
            conflicting_txid: Some(conflict.txid),
            block: Some(conflict.block),
            missing_inputs: Vec::new(),
        };
        warn!(anchor = %fl.id, conflicting = %conflict.txid, held_sat = self.state.held_sat(),
            "the conflicting spend is final: anchor abandoned; anchor the digest again");
        self.state.abandoned.push(abandoned.clone());
        self.save()?;
        Ok(AnchorStatus::Abandoned(abandoned))
    }

    /// Gives up the anchor in flight, some of whose inputs the node no longer holds unspent
    /// (spent before it was signed, or gone with a chain the node dropped): its other inputs
    /// are the anchorer's again.
    fn abandon_missing(
        &mut self,
        fl: InFlight,
        missing: Vec<OutPoint>,
    ) -> Result<AnchorStatus, AnchorError> {
        self.state.in_flight = None;
        for utxo in fl
            .spends
            .into_iter()
            .filter(|u| !missing.contains(&u.outpoint))
        {
            self.hold(utxo);
        }
        warn!(anchor = %fl.id, missing = ?missing, held_sat = self.state.held_sat(),
            "inputs of the anchor are spent or unknown to the node: anchor abandoned; \
             anchor the digest again");
        let abandoned = AbandonedAnchor {
            id: fl.id,
            conflicting_txid: None,
            block: None,
            missing_inputs: missing,
        };
        self.state.abandoned.push(abandoned.clone());
        self.save()?;
        Ok(AnchorStatus::Abandoned(abandoned))
    }

    async fn in_best_chain(&self, b: &BlockRef, tip: u64) -> Result<bool, AnchorError> {
        Ok(b.height <= tip && self.rpc.get_block_hash(b.height).await? == b.hash)
    }

    fn finalize(
        &mut self,
        fl: InFlight,
        inc: Inclusion,
        confirmations: u64,
    ) -> Result<AnchorStatus, AnchorError> {
        let version = fl
            .versions
            .iter()
            .find(|v| v.txid == inc.txid)
            .ok_or(AnchorError::UnknownAnchor(fl.id))?;
        let tx = version.tx()?;
        let own = self.key.script_pubkey();
        let vout = tx
            .output
            .iter()
            .position(|o| o.script_pubkey == own)
            .ok_or(AnchorError::NoSuchOutput(OutPoint::new(inc.txid, 1)))?;
        let change = Utxo {
            outpoint: OutPoint::new(inc.txid, vout as u32),
            value_sat: tx.output[vout].value.to_sat(),
            script_pubkey: own,
        };
        let confirmed = ConfirmedAnchor {
            id: fl.id,
            txid: inc.txid,
            block_hash: inc.block.hash,
            height: inc.block.height,
            fee_sat: version.fee_sat,
            confirmations,
        };
        info!(anchor = %fl.id, txid = %inc.txid, block = %inc.block.hash,
            height = inc.block.height, confirmations, next_utxo = %change.outpoint,
            "anchor confirmed");
        self.state.confirmed.push(confirmed.clone());
        self.state.in_flight = None;
        self.hold(change);
        self.save()?;
        Ok(AnchorStatus::Confirmed(confirmed))
    }

    /// Polls every `interval` until the in-flight anchor is confirmed, logging progress.
    pub async fn wait_confirmed(
        &mut self,
        interval: Duration,
        timeout: Duration,
    ) -> Result<ConfirmedAnchor, AnchorError> {
        let start = Instant::now();
        let id = self.in_flight()?.id;
        let mut last = None;
        loop {
            let status = self.poll().await?;
            match &status {
                AnchorStatus::Confirmed(c) => return Ok(c.clone()),
                AnchorStatus::Idle | AnchorStatus::Abandoned(_) => {
                    return Err(AnchorError::NothingInFlight)
                }
                s => {
                    if last.as_ref() != Some(s) {
                        info!(anchor = %id, status = ?s, elapsed = ?start.elapsed(),
                            "waiting for {} confirmations", self.cfg.confirmations);
                    }
                }
            }
            last = Some(status);
            if start.elapsed() >= timeout {
                return Err(AnchorError::Timeout {
                    id,
                    waited: start.elapsed(),
                });
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// The inclusion proof of a confirmed (or mined) anchor, with headers from its block up
    /// to the tip, or at most `max_headers` of them.
    pub async fn proof(
        &self,
        id: &AnchorId,
        max_headers: Option<u32>,
    ) -> Result<AnchorProof, AnchorError> {
        let (txid, block) = if let Some(c) = self.state.confirmed.iter().find(|c| c.id == *id) {
            (
                c.txid,
                BlockRef {
                    height: c.height,
                    hash: c.block_hash,
                },
            )
        } else {
            match &self.state.in_flight {
                Some(InFlight {
                    id: fid,
                    included: Some(inc),
                    ..
                }) if fid == id => (inc.txid, inc.block),
                _ => return Err(AnchorError::UnknownAnchor(*id)),
            }
        };
        fetch_proof(&self.rpc, &txid, &block, max_headers).await
    }
}

/// Builds the proof of `txid` in the block `block` from a node: the block (for the merkle
/// path) and the headers above it up to the tip, or `max_headers` headers in all.
pub async fn fetch_proof(
    rpc: &RpcClient,
    txid: &Txid,
    block: &BlockRef,
    max_headers: Option<u32>,
) -> Result<AnchorProof, AnchorError> {
    let tip = rpc.get_block_count().await?;
    if block.height > tip || rpc.get_block_hash(block.height).await? != block.hash {
        return Err(AnchorError::NotInBestChain(block.hash));
    }
    let full = rpc.get_block(&block.hash).await?;
    let mut last = tip;
    if let Some(n) = max_headers {
        last = last.min(block.height + u64::from(n.max(1)) - 1);
    }
    let mut later = Vec::new();
    let mut prev = block.hash;
    for h in block.height + 1..=last {
        let hash = rpc.get_block_hash(h).await?;
        let header = rpc.get_block_header(&hash).await?;
        if header.prev_blockhash != prev {
            return Err(AnchorError::ChainChanged);
        }
        later.push(header);
        prev = hash;
    }
    Ok(AnchorProof::from_block(&full, txid, later)?)
}
