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
//!
//! Funds come from the chain: `[anchor] fund` outputs are taken only if Bitcoin holds them
//! unspent and mature (once, at the first step that reaches the node), and payments to the
//! anchorer's address are found by the anchorer itself. A refusal by the node is classified
//! by the anchorer; a fee too low is answered here with a replacement at twice the rate, up to
//! `max_fee_rate_sat_vb`. Problems are logged once per change, and the lag behind the gateway
//! is exported as Prometheus metrics ([`AnchorMetrics`]) and warned about past a threshold.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::B256;
use anyhow::{bail, Context, Result};
use ipsat_anchor::bitcoin::hashes::Hash as _;
use ipsat_anchor::bitcoin::OutPoint;
use ipsat_anchor::{
    anchor_digest, AnchorError, AnchorState, AnchorStatus, Anchorer, RefusalCause, RpcClient,
};
use ipsat_rootnet_bridge::{Gateway, IpsatGateway};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::metrics::push_metric;

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

/// RSK blocks per Bitcoin block on mainnet (about 30 s against 10 min), used to count Bitcoin
/// confirmations in RSK blocks for the default stall threshold.
pub const RSK_BLOCKS_PER_BITCOIN_BLOCK: u64 = 20;

/// The default stall threshold in RSK blocks: three anchor periods plus the confirmations.
pub fn default_stall_threshold(period_rsk_blocks: u64, confirmations: u32) -> u64 {
    3 * period_rsk_blocks + RSK_BLOCKS_PER_BITCOIN_BLOCK * u64::from(confirmations)
}

/// Below this many anchors left to pay for, the balance is reported as low.
pub const LOW_BALANCE_ANCHORS: u64 = 10;

/// The virtual size of a one-input P2WPKH anchor, for what a balance still pays for before any
/// anchor was confirmed (measured 153 vB, docs/benchmarks.md).
const ANCHOR_VSIZE: u64 = 154;

/// How far anchoring is behind the gateway, as the gateway and a Bitcoin node show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorLag {
    /// The latest final RSK height.
    pub rsk_height: u64,
    /// Whether the gateway's blocktree root at `rsk_height` differs from the last anchored one
    /// (something is waiting to be anchored).
    pub unanchored_root: bool,
    /// RSK blocks from the height whose root was last anchored to `rsk_height`; `None` before
    /// the first anchor.
    pub rsk_blocks_since_anchored_root: Option<u64>,
    /// Bitcoin blocks from the last anchor's block to the Bitcoin node's tip; `None` before the
    /// first anchor or without a Bitcoin node.
    pub bitcoin_blocks_since_anchor: Option<u64>,
}

/// The gateway at its latest final height: the blocktree root there and the latest anchor.
struct GatewayNow {
    rsk_height: u64,
    root: B256,
    latest: IpsatGateway::Anchor,
}

impl GatewayNow {
    async fn read(gateway: &Gateway) -> Result<Self> {
        let rsk_height = gateway.final_height().await?;
        Ok(Self {
            rsk_height,
            root: gateway.blocktree_root(Some(rsk_height)).await?,
            latest: latest_recorded(gateway).await?,
        })
    }
}

impl AnchorLag {
    /// Reads the gateway's latest anchor and root at the final height, and the Bitcoin tip.
    pub async fn read(gateway: &Gateway, bitcoin: Option<&RpcClient>) -> Result<Self> {
        Self::of(&GatewayNow::read(gateway).await?, bitcoin).await
    }

    async fn of(now: &GatewayNow, bitcoin: Option<&RpcClient>) -> Result<Self> {
        let latest = &now.latest;
        let recorded = latest.btcTxid != B256::ZERO;
        let bitcoin_blocks_since_anchor = match bitcoin {
            Some(rpc) if recorded => Some(
                rpc.get_block_count()
                    .await?
                    .saturating_sub(latest.btcHeight),
            ),
            _ => None,
        };
        Ok(Self {
            rsk_height: now.rsk_height,
            unanchored_root: now.root != B256::ZERO && now.root != latest.blocktreeRoot,
            rsk_blocks_since_anchored_root: recorded
                .then(|| now.rsk_height.saturating_sub(latest.rskHeight)),
            bitcoin_blocks_since_anchor,
        })
    }

    /// One line for people: how old the last anchored root is and whether a newer one waits.
    pub fn describe(&self) -> String {
        let Some(rsk) = self.rsk_blocks_since_anchored_root else {
            return "no anchor recorded on the gateway yet".to_owned();
        };
        let bitcoin = self
            .bitcoin_blocks_since_anchor
            .map_or(String::new(), |b| format!(" ({b} Bitcoin blocks)"));
        let waiting = if self.unanchored_root {
            "a newer root is waiting"
        } else {
            "nothing newer to anchor"
        };
        format!("last anchored root {rsk} RSK blocks old{bitcoin}, {waiting}")
    }

    /// A warning if a root is waiting to be anchored and more than `threshold` RSK blocks have
    /// passed since the last anchored one.
    pub fn stall_warning(&self, threshold: u64) -> Option<String> {
        let lag = self.rsk_blocks_since_anchored_root?;
        if !self.unanchored_root || lag <= threshold {
            return None;
        }
        let bitcoin = self
            .bitcoin_blocks_since_anchor
            .map_or(String::new(), |n| format!(", {n} Bitcoin blocks"));
        Some(format!(
            "anchoring stalled: the blocktree root changed and the last anchored root is \
             {lag} RSK blocks old{bitcoin} (warning threshold {threshold} RSK blocks)"
        ))
    }
}

async fn latest_recorded(gateway: &Gateway) -> Result<IpsatGateway::Anchor> {
    Ok(gateway
        .view("latestAnchor", &IpsatGateway::latestAnchorCall {}, None)
        .await?)
}

/// Anchors the balance still pays for, at the last anchor's fee (or the configured rate for a
/// one-input anchor before the first).
pub fn anchors_affordable(state: &AnchorState, fee_rate_sat_vb: u64) -> u64 {
    let fee = state
        .confirmed
        .last()
        .map_or(fee_rate_sat_vb * ANCHOR_VSIZE, |c| c.fee_sat)
        .max(1);
    state.held_sat() / fee
}

/// A warning if the balance pays for fewer than [`LOW_BALANCE_ANCHORS`] anchors.
pub fn low_balance_warning(state: &AnchorState, fee_rate_sat_vb: u64) -> Option<String> {
    let left = anchors_affordable(state, fee_rate_sat_vb);
    (left < LOW_BALANCE_ANCHORS).then(|| {
        format!(
            "low balance: {} sat pay for {left} more anchors (fewer than {LOW_BALANCE_ANCHORS}); \
             pay the anchorer's address",
            state.held_sat()
        )
    })
}

/// The anchoring service's Prometheus metrics.
#[derive(Default)]
pub struct AnchorMetrics {
    rsk_blocks_since_anchored_root: AtomicU64,
    bitcoin_blocks_since_anchor: AtomicU64,
    unanchored_root: AtomicU64,
    stalled: AtomicU64,
    anchors_recorded: AtomicU64,
    step_failures: AtomicU64,
    held_sat: AtomicU64,
    anchors_affordable: AtomicU64,
    refusals: Mutex<Vec<(RefusalCause, u64)>>,
}

impl AnchorMetrics {
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: &AtomicU64| {
            push_metric(&mut out, name, kind, help, value.load(Relaxed))
        };
        metric(
            "ipsat_anchor_rsk_blocks_since_anchored_root",
            "gauge",
            "RSK blocks from the height whose root was last anchored to the latest final height.",
            &self.rsk_blocks_since_anchored_root,
        );
        metric(
            "ipsat_anchor_bitcoin_blocks_since_anchor",
            "gauge",
            "Bitcoin blocks from the last recorded anchor's block to the tip.",
            &self.bitcoin_blocks_since_anchor,
        );
        metric(
            "ipsat_anchor_unanchored_root",
            "gauge",
            "1 while the gateway's blocktree root differs from the last anchored one.",
            &self.unanchored_root,
        );
        metric(
            "ipsat_anchor_stalled",
            "gauge",
            "1 while a root waits and the lag exceeds the stall threshold.",
            &self.stalled,
        );
        metric(
            "ipsat_anchors_recorded_total",
            "counter",
            "Anchors this service recorded on the gateway.",
            &self.anchors_recorded,
        );
        metric(
            "ipsat_anchor_step_failures_total",
            "counter",
            "Anchoring steps that failed (RSK or Bitcoin unreachable, no funds, ...).",
            &self.step_failures,
        );
        metric(
            "ipsat_anchor_held_sat",
            "gauge",
            "Satoshis the anchorer holds, the anchor in flight's inputs included.",
            &self.held_sat,
        );
        metric(
            "ipsat_anchor_anchors_affordable",
            "gauge",
            "Anchors the balance still pays for at the last anchor's fee.",
            &self.anchors_affordable,
        );
        out.push_str(
            "# HELP ipsat_anchor_refusals_total Anchor transactions the Bitcoin node refused, by cause.\n\
             # TYPE ipsat_anchor_refusals_total counter\n",
        );
        let refusals = self.refusals.lock().map(|r| r.clone()).unwrap_or_default();
        for (cause, count) in refusals {
            out.push_str(&format!(
                "ipsat_anchor_refusals_total{{cause=\"{cause}\"}} {count}\n"
            ));
        }
        out
    }

    fn record_balance(&self, state: &AnchorState, fee_rate_sat_vb: u64) {
        self.held_sat.store(state.held_sat(), Relaxed);
        self.anchors_affordable
            .store(anchors_affordable(state, fee_rate_sat_vb), Relaxed);
    }

    fn record_refusals(&self, anchorer: &Anchorer) {
        let counts = RefusalCause::ALL
            .iter()
            .map(|cause| (*cause, anchorer.refusals().get(cause).copied().unwrap_or(0)))
            .collect();
        if let Ok(mut refusals) = self.refusals.lock() {
            *refusals = counts;
        }
    }
}

/// FAULT INJECTION, FOR TESTS ONLY: the points named in `IPSAT_FAULT_STOP_AT` (comma-separated
/// of `signed`, `broadcast`, `mined`, `confirmed`, `recorded`, `bump-signed`) stop this process
/// with SIGSTOP the first time it reaches each, so that a test can SIGKILL it exactly there: a
/// kill from outside cannot otherwise be aimed between two steps that follow each other within
/// a millisecond. Unset (as in production), it does nothing.
pub struct FaultPoints {
    armed: Vec<String>,
}

/// The environment variable naming the points of [`FaultPoints`].
pub const FAULT_STOP_AT: &str = "IPSAT_FAULT_STOP_AT";

impl FaultPoints {
    pub fn from_env() -> Self {
        let armed = std::env::var(FAULT_STOP_AT)
            .map(|v| v.split(',').map(|p| p.trim().to_owned()).collect())
            .unwrap_or_default();
        Self { armed }
    }

    fn reach(&mut self, point: &str) {
        if let Some(i) = self.armed.iter().position(|p| p == point) {
            self.armed.remove(i);
            tracing::warn!(
                point,
                "FAULT INJECTION ({FAULT_STOP_AT}): stopping the process"
            );
            // SAFETY: raise(3) only sends a signal to this process.
            unsafe {
                libc::raise(libc::SIGSTOP);
            }
        }
    }
}

/// How the service runs, from `[anchor]` and `[gateway]`.
pub struct ServiceSettings {
    pub chain_id: u64,
    pub period_rsk_blocks: u64,
    pub pending_path: PathBuf,
    pub poll_interval: Duration,
    /// `[anchor] fund`: outputs offered at the first step that reaches the Bitcoin node.
    pub fund: Vec<OutPoint>,
    /// The configured fee rate of new anchors, sat/vB.
    pub fee_rate_sat_vb: u64,
    /// The highest rate a replacement may pay, sat/vB.
    pub max_fee_rate_sat_vb: u64,
    /// RSK blocks of lag past which a waiting root is a stall.
    pub stall_after_rsk_blocks: u64,
}

/// The service; see the module documentation.
pub struct AnchorService {
    gateway: Gateway,
    anchorer: Anchorer,
    settings: ServiceSettings,
    metrics: Arc<AnchorMetrics>,
    faults: FaultPoints,
    /// The warnings last logged, so that each is logged once when it appears and once when it
    /// clears.
    warnings: Vec<String>,
    /// The anchorer status last logged.
    last_status: Option<String>,
}

impl AnchorService {
    pub fn new(
        gateway: Gateway,
        anchorer: Anchorer,
        settings: ServiceSettings,
        metrics: Arc<AnchorMetrics>,
    ) -> Self {
        Self {
            gateway,
            anchorer,
            settings,
            metrics,
            faults: FaultPoints::from_env(),
            warnings: Vec::new(),
            last_status: None,
        }
    }

    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        let mut last_error: Option<String> = None;
        loop {
            match self.step().await {
                Ok(()) => {
                    if let Some(error) = last_error.take() {
                        tracing::info!(was = %error, "anchoring step succeeds again");
                    }
                }
                Err(error) => {
                    self.metrics.step_failures.fetch_add(1, Relaxed);
                    let error = format!("{error:#}");
                    if last_error.as_ref() != Some(&error) {
                        tracing::warn!(%error, "anchoring step failed; retrying (logged again when it changes)");
                    }
                    last_error = Some(error);
                }
            }
            self.metrics
                .record_balance(self.anchorer.state(), self.settings.fee_rate_sat_vb);
            self.metrics.record_refusals(&self.anchorer);
            tokio::select! {
                _ = tokio::time::sleep(self.settings.poll_interval) => {}
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }

    /// One pass: take the configured funds, measure the lag, carry the pending anchor forward
    /// or start the next one when it is due.
    async fn step(&mut self) -> Result<()> {
        self.take_configured_funds().await?;
        let now = GatewayNow::read(&self.gateway).await?;
        let lag = AnchorLag::of(&now, Some(self.anchorer.rpc())).await?;
        self.observe(&lag);
        match load_pending(&self.settings.pending_path)? {
            Some(pending) => self.advance(pending).await,
            None => self.start_if_due(&now).await,
        }
    }

    /// Offers each `[anchor] fund` output once: taken if Bitcoin holds it unspent and mature,
    /// otherwise skipped with one line saying why. Retried while the node cannot be reached.
    async fn take_configured_funds(&mut self) -> Result<()> {
        while let Some(outpoint) = self.settings.fund.first().copied() {
            match self.anchorer.fund(outpoint).await {
                Ok(utxo) => {
                    tracing::info!(%outpoint, value_sat = utxo.value_sat, "[anchor] fund: taken")
                }
                Err(AnchorError::AlreadyFunded(_)) => {
                    tracing::debug!(%outpoint, "[anchor] fund: already held")
                }
                Err(e @ (AnchorError::Rpc(_) | AnchorError::State(_))) => {
                    return Err(e).context("[anchor] fund")
                }
                Err(e) => tracing::warn!(%outpoint, "[anchor] fund: {e}; skipped"),
            }
            self.settings.fund.remove(0);
        }
        Ok(())
    }

    /// Exports the lag and balance, and logs a warning when one appears or clears.
    fn observe(&mut self, lag: &AnchorLag) {
        let m = &self.metrics;
        m.rsk_blocks_since_anchored_root
            .store(lag.rsk_blocks_since_anchored_root.unwrap_or(0), Relaxed);
        m.bitcoin_blocks_since_anchor
            .store(lag.bitcoin_blocks_since_anchor.unwrap_or(0), Relaxed);
        m.unanchored_root
            .store(u64::from(lag.unanchored_root), Relaxed);
        let stall = lag.stall_warning(self.settings.stall_after_rsk_blocks);
        m.stalled.store(u64::from(stall.is_some()), Relaxed);
        let warnings: Vec<String> = stall
            .into_iter()
            .chain(low_balance_warning(
                self.anchorer.state(),
                self.settings.fee_rate_sat_vb,
            ))
            .collect();
        // Compare by kind (the text before the colon): the numbers in a warning change with
        // every block.
        let kind = |w: &String| w.split(':').next().unwrap_or_default().to_owned();
        for warning in &warnings {
            if !self.warnings.iter().any(|w| kind(w) == kind(warning)) {
                tracing::warn!("{warning}");
            }
        }
        for old in &self.warnings {
            if !warnings.iter().any(|w| kind(w) == kind(old)) {
                tracing::info!(was = %old, "warning cleared");
            }
        }
        self.warnings = warnings;
    }

    async fn start_if_due(&mut self, now: &GatewayNow) -> Result<()> {
        let (latest, height, root) = (&now.latest, now.rsk_height, now.root);
        if latest.rskBlockNumber != 0
            && height < latest.rskBlockNumber + self.settings.period_rsk_blocks
        {
            return Ok(());
        }
        if root == B256::ZERO || root == latest.blocktreeRoot {
            return Ok(());
        }
        let tip = self.anchorer.rpc().get_block_count().await?;
        if tip + 1 < latest.btcHeight {
            bail!(
                "the Bitcoin node's best chain is at height {tip}, below the last recorded \
                 anchor's block {}: an anchor now could not be recorded (a node of another \
                 chain, or one that started over?); waiting for it to pass",
                latest.btcHeight
            );
        }
        let block = self
            .gateway
            .rpc()
            .block(height)
            .await?
            .with_context(|| format!("RSK has no block {height}"))?;
        let digest = anchor_digest(self.settings.chain_id, height, block.hash.0, root.0);
        let pending = PendingAnchor {
            digest: hex::encode(digest),
            root,
            rsk_height: height,
        };
        save_pending(&self.settings.pending_path, Some(&pending))?;
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
                let (_, fresh) = self.anchorer.sign(digest).await?;
                if fresh {
                    self.faults.reach("signed");
                }
                let status = self.anchorer.poll().await?;
                self.report(&status);
                match status {
                    AnchorStatus::Confirmed(c) => {
                        self.faults.reach("confirmed");
                        c
                    }
                    AnchorStatus::Pending { .. } => {
                        self.faults.reach("broadcast");
                        return Ok(());
                    }
                    AnchorStatus::InBlock { .. } => {
                        self.faults.reach("mined");
                        return Ok(());
                    }
                    AnchorStatus::Refused {
                        cause: RefusalCause::FeeTooLow,
                        fee_rate_sat_vb,
                        ..
                    } => return self.replace_at_higher_fee(fee_rate_sat_vb).await,
                    // Refused for another reason (retried by the anchorer), conflicted (it
                    // waits), abandoned or idle (the next step signs the digest again).
                    _ => return Ok(()),
                }
            }
        };
        let txid = B256::from(anchored.txid.to_byte_array());
        let latest = latest_recorded(&self.gateway).await?;
        if latest.btcTxid != txid {
            if anchored.height < latest.btcHeight {
                tracing::warn!(btc_txid = %anchored.txid, btc_height = anchored.height,
                    recorded_height = latest.btcHeight,
                    "the anchor is in a Bitcoin block below the last recorded anchor's: the \
                     gateway would refuse it (a chain that started over?); not recorded");
                return save_pending(&self.settings.pending_path, None);
            }
            let receipt = self
                .gateway
                .record_anchor(pending.root, pending.rsk_height, txid, anchored.height)
                .await
                .context("recordAnchor")?;
            self.metrics.anchors_recorded.fetch_add(1, Relaxed);
            tracing::info!(btc_txid = %anchored.txid, btc_height = anchored.height, rsk_tx = %receipt.transaction_hash, "anchor recorded on the gateway");
            self.faults.reach("recorded");
        }
        save_pending(&self.settings.pending_path, None)
    }

    /// The node refused the anchor's fee: sign a replacement at twice the rate, at most
    /// `max_fee_rate_sat_vb`; the next poll broadcasts it.
    async fn replace_at_higher_fee(&mut self, refused_rate: u64) -> Result<()> {
        let max = self.settings.max_fee_rate_sat_vb;
        let rate = refused_rate.saturating_mul(2).min(max);
        if rate <= refused_rate {
            bail!(
                "the Bitcoin node refuses the anchor's fee at {refused_rate} sat/vB, and \
                 [anchor] max_fee_rate_sat_vb = {max} allows no more: raise it"
            );
        }
        self.anchorer.sign_replacement(rate).await?;
        // Later anchors start at the rate the node was last asked for.
        self.anchorer.set_fee_rate(rate)?;
        self.faults.reach("bump-signed");
        Ok(())
    }

    /// Logs the anchorer's status when it changed (attempt counters aside).
    fn report(&mut self, status: &AnchorStatus) {
        let summary = match status {
            AnchorStatus::Pending { id, txid, .. } => format!("pending {id} {txid}"),
            other => format!("{other:?}"),
        };
        if self.last_status.as_ref() != Some(&summary) {
            tracing::info!(status = %summary, "anchor");
            self.last_status = Some(summary);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lag(unanchored_root: bool, since: Option<u64>) -> AnchorLag {
        AnchorLag {
            rsk_height: 1_000,
            unanchored_root,
            rsk_blocks_since_anchored_root: since,
            bitcoin_blocks_since_anchor: Some(7),
        }
    }

    #[test]
    fn a_stall_needs_a_waiting_root_and_a_lag_past_the_threshold() {
        assert_eq!(lag(true, Some(40)).stall_warning(40), None);
        let warning = lag(true, Some(41)).stall_warning(40).unwrap();
        assert!(warning.starts_with("anchoring stalled:"), "{warning}");
        assert!(warning.contains("41 RSK blocks") && warning.contains("7 Bitcoin blocks"));
        // Nothing new to anchor: an old anchor is not a stall.
        assert_eq!(lag(false, Some(10_000)).stall_warning(40), None);
        // Before the first anchor there is no lag to measure.
        assert_eq!(lag(true, None).stall_warning(40), None);
    }

    #[test]
    fn the_lag_reads_as_a_sentence() {
        assert_eq!(
            lag(true, Some(41)).describe(),
            "last anchored root 41 RSK blocks old (7 Bitcoin blocks), a newer root is waiting"
        );
        assert_eq!(
            lag(false, None).describe(),
            "no anchor recorded on the gateway yet"
        );
    }

    #[test]
    fn the_default_threshold_is_three_periods_plus_the_confirmations() {
        assert_eq!(default_stall_threshold(120, 6), 360 + 120);
    }
}
