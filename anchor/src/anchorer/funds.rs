//! The anchorer's funds, taken from the chain: outputs offered with [`Anchorer::fund`], payments
//! found in new blocks, and every held output checked again before it is signed.

use bitcoin::OutPoint;
use tracing::{debug, info, warn};

use super::{AnchorError, Anchorer, REORG_RESCAN_DEPTH};
use crate::rpc::RpcError;
use crate::state::BlockRef;
use crate::tx::{TxError, Utxo};

/// Blocks searched for payments in one [`Anchorer::poll`], so that a long way behind is caught
/// up over several polls instead of holding one for minutes.
pub const PAYMENT_SEARCH_BATCH: u64 = 200;

impl Anchorer {
    /// Gives the anchorer `outpoint` (an output paying to [`Self::address`]) to spend, at any
    /// time: the next anchor spends it together with everything else the anchorer holds. The
    /// node must hold it unspent (`gettxout`, mempool included), and a coinbase must be mature:
    /// a spent, unknown or immature output is refused and nothing changes.
    pub async fn fund(&mut self, outpoint: OutPoint) -> Result<Utxo, AnchorError> {
        if self.state.knows_output(&outpoint) {
            return Err(AnchorError::AlreadyFunded(outpoint));
        }
        let out = self
            .rpc
            .get_tx_out(&outpoint, true)
            .await?
            .ok_or(AnchorError::SpentOrUnknown(outpoint))?;
        let own = self.key.script_pubkey();
        if out.script_pubkey != own {
            return Err(TxError::NotOurScript {
                outpoint,
                found: out.script_pubkey,
                expected: own,
            }
            .into());
        }
        if !out.is_mature() {
            return Err(AnchorError::Immature {
                outpoint,
                confirmations: out.confirmations,
            });
        }
        let utxo = Utxo {
            outpoint,
            value_sat: out.value_sat,
            script_pubkey: own,
        };
        self.hold(utxo.clone());
        self.save()?;
        info!(%outpoint, value_sat = utxo.value_sat, held_sat = self.state.held_sat(), "anchorer funded");
        Ok(utxo)
    }

    /// Adds `utxo` to the outputs held, unless it is already the anchorer's.
    pub(super) fn hold(&mut self, utxo: Utxo) {
        if !self.state.knows_output(&utxo.outpoint) {
            self.state.utxos.push(utxo);
        }
    }

    /// Searches the blocks after the last one searched, up to `tip` (at most
    /// [`PAYMENT_SEARCH_BATCH`] of them), for outputs paying the anchorer's script in
    /// transactions that are not its own and not coinbases, and holds those the node still
    /// holds unspent. The first call only remembers the tip: payments made before the state
    /// existed are given with [`Self::fund`].
    pub(super) async fn search_payments(&mut self, tip: u64) -> Result<(), AnchorError> {
        let mut searched = match self.state.payments_searched {
            Some(block) if self.in_best_chain(&block, tip).await? => block,
            Some(block) => {
                // A block the node does not know at all is of a chain it no longer has (a
                // regtest node that started over): search all of the one it has.
                let known = match self.rpc.get_block_header(&block.hash).await {
                    Ok(_) => true,
                    Err(RpcError::Node { .. }) => false,
                    Err(e) => return Err(e.into()),
                };
                let height = if known {
                    block.height.saturating_sub(REORG_RESCAN_DEPTH).min(tip)
                } else {
                    0
                };
                warn!(
                    height = block.height,
                    known,
                    "the last block searched for payments left the best chain; searching again from {height}"
                );
                BlockRef {
                    height,
                    hash: self.rpc.get_block_hash(height).await?,
                }
            }
            None => {
                let hash = self.rpc.get_block_hash(tip).await?;
                self.state.payments_searched = Some(BlockRef { height: tip, hash });
                return self.save();
            }
        };
        let own = self.key.script_pubkey();
        let last = tip.min(searched.height + PAYMENT_SEARCH_BATCH);
        let before = self.state.payments_searched;
        for height in searched.height + 1..=last {
            let hash = self.rpc.get_block_hash(height).await?;
            let block = self.rpc.get_block(&hash).await?;
            for tx in block.txdata.iter().skip(1) {
                let txid = tx.compute_txid();
                if self.state.is_own_tx(&txid) {
                    continue;
                }
                for (vout, output) in tx.output.iter().enumerate() {
                    let outpoint = OutPoint::new(txid, vout as u32);
                    if output.script_pubkey != own || self.state.knows_output(&outpoint) {
                        continue;
                    }
                    match self.rpc.get_tx_out(&outpoint, true).await? {
                        Some(out) if out.script_pubkey == own => {
                            info!(%outpoint, value_sat = out.value_sat, height,
                                "payment to the anchorer found: held");
                            self.hold(Utxo {
                                outpoint,
                                value_sat: out.value_sat,
                                script_pubkey: own.clone(),
                            });
                        }
                        _ => debug!(%outpoint, "payment to the anchorer already spent"),
                    }
                }
            }
            searched = BlockRef { height, hash };
        }
        if before != Some(searched) {
            self.state.payments_searched = Some(searched);
            self.save()?;
        }
        Ok(())
    }

    /// Checks every held output against the node and returns those spendable now. Outputs the
    /// node no longer holds unspent, or describes differently, are dropped and saved as such:
    /// they can never be spent. Immature coinbases stay held for a later anchor.
    pub(super) async fn reconcile_held(&mut self) -> Result<Vec<Utxo>, AnchorError> {
        let mut spendable = Vec::new();
        let mut later = Vec::new();
        let mut dropped = false;
        for utxo in self.state.utxos.clone() {
            match self.rpc.get_tx_out(&utxo.outpoint, true).await? {
                Some(out)
                    if out.script_pubkey == utxo.script_pubkey
                        && out.value_sat == utxo.value_sat =>
                {
                    if out.is_mature() {
                        spendable.push(utxo);
                    } else {
                        later.push(utxo);
                    }
                }
                found => {
                    warn!(outpoint = %utxo.outpoint, value_sat = utxo.value_sat,
                        node_has = ?found, "a held output is spent or unknown to the node: dropped");
                    dropped = true;
                }
            }
        }
        if dropped {
            self.state.utxos = spendable.iter().chain(&later).cloned().collect();
            self.save()?;
        }
        Ok(spendable)
    }
}
