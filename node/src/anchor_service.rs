//! The anchoring service (`[anchor]` in `ipsat.toml`, run by `ipsat anchor start`): commits
//! the whole blocktree into Bitcoin.
//!
//! Once at least `period_rsk_blocks` RSK blocks have passed since the last recorded anchor and
//! the gateway's `blocktreeRoot()` at the latest final RSK height has changed, it commits
//! `anchor_digest(chain id, height, block hash, root)` into one Bitcoin transaction with the
//! anchorer, waits for its confirmations, and records it on the gateway (`recordAnchor`).
//!
//! Crash safety comes from two files written before anything leaves the process: this
//! service's `anchor-pending.json` (which root, at which RSK point, the digest commits to) and
//! the anchorer's state (the signed transaction, saved before it is broadcast). After a crash
//! at any point the service resumes the same digest, which the anchorer never signs twice,
//! and records it unless the gateway's `latestAnchor()` already holds its transaction: one
//! anchor per period, recorded once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy::primitives::B256;
use anyhow::{Context, Result};
use ipsat_anchor::bitcoin::hashes::Hash as _;
use ipsat_anchor::{anchor_digest, AnchorStatus, Anchorer};
use ipsat_rootnet_bridge::{Gateway, IpsatGateway};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// The anchor being made: what its digest commits to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAnchor {
    /// The digest committed into Bitcoin, hex.
    pub digest: String,
    /// The blocktree root it commits to.
    pub root: B256,
    /// The final RSK height the root was read at.
    pub rsk_height: u64,
}

impl PendingAnchor {
    fn digest(&self) -> Result<[u8; 32]> {
        hex::decode(&self.digest)
            .ok()
            .and_then(|b| b.try_into().ok())
            .context("anchor-pending.json holds no 32-byte digest")
    }
}

/// The pending anchor saved at `path`, if any.
pub fn load_pending(path: &Path) -> Result<Option<PendingAnchor>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(
            serde_json::from_slice(&bytes)
                .with_context(|| format!("parsing {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes `pending` (or removes the file for `None`) atomically: a temporary file, fsync,
/// rename.
fn save_pending(path: &Path, pending: Option<&PendingAnchor>) -> Result<()> {
    let Some(pending) = pending else {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", path.display()))
            }
            _ => Ok(()),
        };
    };
    let tmp = path.with_extension("json.tmp");
    {
        use std::io::Write as _;
        let mut file =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        file.write_all(&serde_json::to_vec_pretty(pending)?)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

/// The service; see the module documentation.
pub struct AnchorService {
    pub gateway: Gateway,
    pub anchorer: Anchorer,
    pub chain_id: u64,
    pub period_rsk_blocks: u64,
    pub pending_path: PathBuf,
    pub poll_interval: Duration,
}

impl AnchorService {
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        loop {
            if let Err(error) = self.step().await {
                tracing::warn!(error = %format!("{error:#}"), "anchoring step failed; retrying");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.poll_interval) => {}
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }

    /// One pass: carry the pending anchor forward, or start the next one when it is due.
    async fn step(&mut self) -> Result<()> {
        match load_pending(&self.pending_path)? {
            Some(pending) => self.advance(pending).await,
            None => self.start_if_due().await,
        }
    }

    async fn start_if_due(&mut self) -> Result<()> {
        let latest = self.latest_recorded().await?;
        let height = self.gateway.final_height().await?;
        if latest.rskBlockNumber != 0 && height < latest.rskBlockNumber + self.period_rsk_blocks {
            return Ok(());
        }
        let root = self.gateway.blocktree_root(Some(height)).await?;
        if root == B256::ZERO || root == latest.blocktreeRoot {
            return Ok(());
        }
        let block = self
            .gateway
            .rpc()
            .block(height)
            .await?
            .with_context(|| format!("RSK has no block {height}"))?;
        let digest = anchor_digest(self.chain_id, height, block.hash.0, root.0);
        let pending = PendingAnchor {
            digest: hex::encode(digest),
            root,
            rsk_height: height,
        };
        save_pending(&self.pending_path, Some(&pending))?;
        tracing::info!(rsk_height = height, %root, digest = %pending.digest, "anchoring the blocktree root");
        self.advance(pending).await
    }

    /// Anchors the pending digest (a no-op if the anchorer already holds it), follows it, and
    /// once confirmed records it on the gateway unless it already is.
    async fn advance(&mut self, pending: PendingAnchor) -> Result<()> {
        let digest = pending.digest()?;
        let confirmed = |anchorer: &Anchorer| {
            anchorer
                .state()
                .confirmed
                .iter()
                .find(|c| c.id.digest() == &digest)
                .cloned()
        };
        let anchored = match confirmed(&self.anchorer) {
            Some(c) => c,
            None => {
                self.anchorer.anchor(digest).await?;
                match self.anchorer.poll().await? {
                    AnchorStatus::Confirmed(c) => c,
                    status => {
                        tracing::info!(?status, "waiting for the anchor's confirmations");
                        return Ok(());
                    }
                }
            }
        };
        let txid = B256::from(anchored.txid.to_byte_array());
        if self.latest_recorded().await?.btcTxid != txid {
            let receipt = self
                .gateway
                .record_anchor(pending.root, pending.rsk_height, txid, anchored.height)
                .await
                .context("recordAnchor")?;
            tracing::info!(btc_txid = %anchored.txid, btc_height = anchored.height, rsk_tx = %receipt.transaction_hash, "anchor recorded on the gateway");
        }
        save_pending(&self.pending_path, None)
    }

    async fn latest_recorded(&self) -> Result<IpsatGateway::Anchor> {
        Ok(self
            .gateway
            .view("latestAnchor", &IpsatGateway::latestAnchorCall {}, None)
            .await?)
    }
}
