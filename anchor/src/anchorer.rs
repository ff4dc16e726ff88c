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
//! Funds: [`Anchorer::fund`] adds an output at any time, also while an anchor is in flight; the
//! next anchor spends every output the anchorer holds, so a top-up joins the chain of change
//! outputs and anchoring never stops because change ran low.
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
    #[error("the anchorer has no spendable output: fund it first")]
    NoFunds,
    #[error("output {0} is already the anchorer's (held, or spent by the anchor in flight)")]
    AlreadyFunded(OutPoint),
    #[error("funding output {0} does not exist")]
    NoSuchOutput(OutPoint),
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
    #[error("anchor {id} is saved but the node refused it: {errors} (poll() retries)")]
    Broadcast { id: AnchorId, errors: String },
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
    /// The conflicting spend is final: the anchor was given up (recorded in the state's
    /// abandoned list). Anchor the digest again to commit it.
    Abandoned(AbandonedAnchor),
}

/// The Bitcoin anchorer. See the module documentation.
#[derive(Debug)]
pub struct Anchorer {
    cfg: AnchorerConfig,
    key: AnchorKey,
    rpc: RpcClient,
    state: AnchorState,
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
        };
        if let Some(fl) = &a.state.in_flight {
            if fl.included.is_none() && fl.conflict.is_none() {
                info!(anchor = %fl.id, versions = fl.versions.len(),
                    "resuming: rebroadcasting the saved anchor transaction");
                if let Err(e) = a.broadcast_versions().await {
                    warn!(error = %e, "rebroadcast on open failed; poll() will retry");
                }
            }
        }
        Ok(a)
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

    /// Gives the anchorer `outpoint` (an output paying to [`Self::address`]) to spend, at any
    /// time: the next anchor spends it together with everything else the anchorer holds.
    /// Looks the output up with `getrawtransaction`, so the node needs a transaction index
    /// unless the funding transaction is still in its mempool.
    pub async fn fund(&mut self, outpoint: OutPoint) -> Result<Utxo, AnchorError> {
        let in_flight = self.state.in_flight.iter().flat_map(|fl| &fl.spends);
        if self
            .state
            .utxos
            .iter()
            .chain(in_flight)
            .any(|u| u.outpoint == outpoint)
        {
            return Err(AnchorError::AlreadyFunded(outpoint));
        }
        let tx = self.rpc.get_raw_transaction(&outpoint.txid).await?;
        let out = tx
            .output
            .get(outpoint.vout as usize)
            .ok_or(AnchorError::NoSuchOutput(outpoint))?;
        let own = self.key.script_pubkey();
        if out.script_pubkey != own {
            return Err(TxError::NotOurScript {
                outpoint,
                found: out.script_pubkey.clone(),
                expected: own,
            }
            .into());
        }
        let utxo = Utxo {
            outpoint,
            value_sat: out.value.to_sat(),
            script_pubkey: own,
        };
        self.state.utxos.push(utxo.clone());
        self.save()?;
        let held: u64 = self.state.utxos.iter().map(|u| u.value_sat).sum();
        info!(%outpoint, value_sat = utxo.value_sat, held_sat = held, "anchorer funded");
        Ok(utxo)
    }

    /// Anchors `digest`: builds and signs the transaction, saves it, broadcasts it.
    ///
    /// Idempotent per digest: a digest already in flight or confirmed returns its id without
    /// building anything. A different digest while one is in flight is [`AnchorError::Busy`].
    /// If the broadcast fails the anchor stays saved and in flight ([`AnchorError::Broadcast`]
    /// or an RPC error is returned) and [`Self::poll`] rebroadcasts it.
    pub async fn anchor(&mut self, digest: [u8; 32]) -> Result<AnchorId, AnchorError> {
        let (id, fresh) = self.prepare_anchor(digest).await?;
        if fresh {
            self.broadcast_versions().await?;
        }
        Ok(id)
    }

    /// FAKE CRASH, FOR TESTS ONLY: does what [`Self::anchor`] does up to and including saving
    /// the signed transaction, then stops before broadcasting and drops the anchorer, as if
    /// the process had been killed between those two lines (which a test cannot otherwise
    /// do). Reopen the state file with [`Self::open`] to continue.
    pub async fn anchor_crash_before_broadcast_for_tests(
        mut self,
        digest: [u8; 32],
    ) -> Result<AnchorId, AnchorError> {
        let (id, _) = self.prepare_anchor(digest).await?;
        warn!(anchor = %id, "FAKE CRASH (test hook): stopping before the broadcast");
        Ok(id)
    }

    /// Steps of `anchor` up to the durable save; `true` if a new transaction was made.
    async fn prepare_anchor(&mut self, digest: [u8; 32]) -> Result<(AnchorId, bool), AnchorError> {
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
        if self.state.utxos.is_empty() {
            return Err(AnchorError::NoFunds);
        }
        let spends = self.state.utxos.clone();
        let signed = build_anchor_tx(&self.key, &spends, &digest, self.cfg.fee_rate_sat_vb)?;
        let tip = self.rpc.get_block_count().await?;
        let tip_hash = self.rpc.get_block_hash(tip).await?;
        let version = TxVersion::new(
            &signed.tx,
            signed.fee.to_sat(),
            signed.fee_rate_sat_vb,
            signed.vsize,
        );
        info!(anchor = %id, txid = %version.txid, vsize = signed.vsize, fee_sat = version.fee_sat,
            inputs = spends.len(), "anchor transaction signed and verified; saving it");
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
        self.state.utxos.clear();
        self.save()?;
        Ok((id, true))
    }

    /// Hands the saved versions to the node, newest first, until one is accepted or already
    /// known to it. Saves the attempt counters and the outcome.
    async fn broadcast_versions(&mut self) -> Result<Txid, AnchorError> {
        let n = match &self.state.in_flight {
            Some(fl) => fl.versions.len(),
            None => return Err(AnchorError::NothingInFlight),
        };
        let mut errors = Vec::new();
        for i in (0..n).rev() {
            match self.broadcast_version(i).await {
                Ok(txid) => return Ok(txid),
                Err(AnchorError::Rpc(e @ RpcError::Node { .. })) => errors.push(e.to_string()),
                Err(e) => {
                    self.record_broadcast_error(e.to_string())?;
                    return Err(e);
                }
            }
        }
        let errors = errors.join("; ");
        self.record_broadcast_error(errors.clone())?;
        let id = self.in_flight()?.id;
        Err(AnchorError::Broadcast { id, errors })
    }

    /// Broadcasts version `i`; `Ok` if the node accepted it or already knows it.
    async fn broadcast_version(&mut self, i: usize) -> Result<Txid, AnchorError> {
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
                    warn!(%txid, error = %e, "node refused the anchor transaction");
                    Err(e.into())
                }
            }
            Err(e) => Err(e.into()),
        };
        if result.is_ok() {
            self.in_flight_mut()?.last_broadcast_error = None;
        }
        self.save()?;
        result
    }

    fn record_broadcast_error(&mut self, error: String) -> Result<(), AnchorError> {
        self.in_flight_mut()?.last_broadcast_error = Some(error);
        self.save()
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
    /// (BIP125: same input, higher fee). The replacement is saved before it is broadcast and
    /// every version is kept, so whichever the network mines is recognised. Returns the
    /// replacement's txid.
    pub async fn bump_fee(&mut self, new_fee_rate_sat_vb: u64) -> Result<Txid, AnchorError> {
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
        let fl = self.in_flight_mut()?;
        fl.versions.push(version);
        let i = fl.versions.len() - 1;
        self.save()?;
        match self.broadcast_version(i).await {
            Ok(t) => Ok(t),
            Err(e) => {
                self.record_broadcast_error(e.to_string())?;
                Err(e)
            }
        }
    }

    /// Follows the in-flight anchor: searches new blocks for it, checks the block holding it
    /// is still in the best chain (if not it is pending again and rebroadcast), records it as
    /// confirmed once `confirmations` deep. Rebroadcasts while pending. A conflicting spend of
    /// its input is followed the same way and, once final, abandons the anchor (see the module
    /// documentation).
    pub async fn poll(&mut self) -> Result<AnchorStatus, AnchorError> {
        let Some(mut fl) = self.state.in_flight.clone() else {
            return Ok(AnchorStatus::Idle);
        };
        let tip = self.rpc.get_block_count().await?;
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

        if fl.included.is_none() && fl.conflict.is_none() {
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
        }

        if let Some(conflict) = fl.conflict.clone() {
            let confirmations = tip + 1 - conflict.block.height;
            if confirmations >= u64::from(self.cfg.confirmations) {
                return self.abandon(fl, conflict);
            }
            let id = fl.id;
            self.state.in_flight = Some(fl);
            self.save()?;
            return Ok(AnchorStatus::Conflicted {
                id,
                txid: conflict.txid,
                confirmations,
            });
        }

        match fl.included {
            Some(inc) => {
                let confirmations = tip + 1 - inc.block.height;
                if confirmations >= u64::from(self.cfg.confirmations) {
                    return self.finalize(fl, inc, confirmations);
                }
                debug!(anchor = %fl.id, txid = %inc.txid, height = inc.block.height,
                    "anchor has {confirmations}/{} confirmations", self.cfg.confirmations);
                let id = fl.id;
                self.state.in_flight = Some(fl);
                if changed {
                    self.save()?;
                }
                Ok(AnchorStatus::InBlock {
                    id,
                    txid: inc.txid,
                    block_hash: inc.block.hash,
                    height: inc.block.height,
                    confirmations,
                })
            }
            None => {
                let id = fl.id;
                self.state.in_flight = Some(fl);
                if changed {
                    self.save()?;
                }
                let txid = self.broadcast_versions().await?;
                let attempts = self
                    .in_flight()?
                    .versions
                    .iter()
                    .find(|v| v.txid == txid)
                    .map_or(0, |v| v.broadcast_attempts);
                debug!(anchor = %id, %txid, attempts, "anchor pending");
                Ok(AnchorStatus::Pending {
                    id,
                    txid,
                    broadcast_attempts: attempts,
                })
            }
        }
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
        let untouched = fl
            .spends
            .into_iter()
            .filter(|u| !conflict.spent.contains(&u.outpoint));
        self.state.utxos.extend(untouched);
        self.state.utxos.extend(conflict.returned);
        let abandoned = AbandonedAnchor {
            id: fl.id,
            conflicting_txid: conflict.txid,
            block: conflict.block,
        };
        let held: u64 = self.state.utxos.iter().map(|u| u.value_sat).sum();
        warn!(anchor = %fl.id, conflicting = %conflict.txid, held_sat = held,
            "the conflicting spend is final: anchor abandoned; anchor the digest again");
        self.state.abandoned.push(abandoned.clone());
        self.state.in_flight = None;
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
        self.state.utxos.push(change);
        self.state.in_flight = None;
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
