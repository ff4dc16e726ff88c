//! `ipsat anchor`: the anchoring service that commits the RSK gateway's blocktree root into
//! Bitcoin ([`crate::anchor_service`]), configured by `[anchor]` and `[gateway]` in the home's
//! `ipsat.toml`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;

use anyhow::{bail, ensure, Context, Result};
use clap::Subcommand;
use ipsat_anchor::bitcoin::secp256k1::SecretKey;
use ipsat_anchor::bitcoin::{Network, OutPoint};
use ipsat_anchor::{AnchorKey, AnchorState, Anchorer, AnchorerConfig, RpcClient, ScriptKind};
use serde::Serialize;
use serde_json::json;

use super::{print, Output};
use crate::anchor_service::{
    anchors_affordable, load_pending, low_balance_warning, AnchorLag, AnchorMetrics, AnchorService,
    PendingAnchor, ServiceSettings,
};
use crate::config::{keys_dir, Config};
use crate::gateway_link;
use crate::keys;
use crate::metrics;
use crate::supervisor::Supervisor;

#[derive(Subcommand)]
pub enum AnchorCommand {
    /// Run the anchoring service until SIGTERM or Ctrl-C.
    Start,
    /// Show the anchor in flight, the pending root, the balance, the lag behind the gateway
    /// (read from `[gateway]` and `[anchor] bitcoin_rpc`), the last confirmed anchors, and
    /// warnings: a stall past the threshold, a low balance, a source that did not answer.
    Status,
    /// Print the Bitcoin address that funds anchors: pay it, and the running service finds
    /// the payment (a coinbase paying it is listed under `[anchor] fund` instead).
    Address,
}

fn anchorer_state_path(home: &Path) -> PathBuf {
    home.join("data").join("anchorer.json")
}

fn pending_path(home: &Path) -> PathBuf {
    home.join("data").join("anchor-pending.json")
}

fn bitcoin_key(home: &Path, config: &Config) -> Result<AnchorKey> {
    let name = config
        .anchor
        .bitcoin_key
        .as_deref()
        .context("[anchor] bitcoin_key is not set")?;
    let key = keys::load(&keys_dir(home), name)?;
    let secret = SecretKey::from_slice(&key.secret.secret_bytes()).context("bitcoin key")?;
    Ok(AnchorKey::new(secret, ScriptKind::P2wpkh))
}

fn network(config: &Config) -> Result<Network> {
    config.anchor.network.parse().with_context(|| {
        format!(
            "[anchor] network {:?} is not a Bitcoin network",
            config.anchor.network
        )
    })
}

pub async fn run(command: AnchorCommand, home: &Path, output: Output) -> Result<()> {
    let config = Config::load(home)?;
    match command {
        AnchorCommand::Start => start(home, &config).await,
        AnchorCommand::Status => status(home, &config, output).await,
        AnchorCommand::Address => {
            let address = bitcoin_key(home, &config)?.address(network(&config)?);
            print(
                output,
                address.to_string(),
                json!({ "address": address.to_string() }),
            );
            Ok(())
        }
    }
}

async fn start(home: &Path, config: &Config) -> Result<()> {
    let anchor = &config.anchor;
    let Some(bitcoin_rpc) = &anchor.bitcoin_rpc else {
        bail!("[anchor] bitcoin_rpc is not set in {}", home.display());
    };
    let fund = anchor
        .fund
        .iter()
        .map(|outpoint| {
            outpoint
                .parse::<OutPoint>()
                .with_context(|| format!("[anchor] fund: {outpoint:?} is not txid:vout"))
        })
        .collect::<Result<Vec<_>>>()?;
    ensure!(
        anchor.max_fee_rate_sat_vb >= anchor.fee_rate_sat_vb,
        "[anchor] max_fee_rate_sat_vb ({}) is below fee_rate_sat_vb ({})",
        anchor.max_fee_rate_sat_vb,
        anchor.fee_rate_sat_vb
    );
    let rsk_key = keys::load(
        &keys_dir(home),
        anchor
            .rsk_key
            .as_deref()
            .context("[anchor] rsk_key is not set")?,
    )?;
    let metrics_listener = match config.metrics.listen {
        Some(listen) => Some(metrics::bind(listen).await?),
        None => None,
    };
    let gateway = gateway_link::connect_when_reachable(&config.gateway, &rsk_key.secret).await?;
    std::fs::create_dir_all(home.join("data"))?;
    let rpc = RpcClient::new(bitcoin_rpc, &anchor.bitcoin_user, &anchor.bitcoin_password)?;
    let anchorer = Anchorer::open(
        AnchorerConfig {
            state_path: anchorer_state_path(home),
            network: network(config)?,
            fee_rate_sat_vb: anchor.fee_rate_sat_vb,
            confirmations: anchor.confirmations,
        },
        bitcoin_key(home, config)?,
        rpc,
    )
    .await
    .context("opening the anchorer")?;
    tracing::info!(
        bitcoin = %anchorer.address(),
        gateway = %gateway.address(),
        period_rsk_blocks = anchor.period_rsk_blocks,
        stall_after_rsk_blocks = anchor.stall_threshold(),
        "anchoring the blocktree into Bitcoin"
    );
    let metrics = Arc::new(AnchorMetrics::default());
    let service = AnchorService::new(
        gateway,
        anchorer,
        ServiceSettings {
            chain_id: config.gateway.chain_id,
            period_rsk_blocks: anchor.period_rsk_blocks,
            pending_path: pending_path(home),
            poll_interval: Duration::from_millis(anchor.poll_interval_ms.max(50)),
            fund,
            fee_rate_sat_vb: anchor.fee_rate_sat_vb,
            max_fee_rate_sat_vb: anchor.max_fee_rate_sat_vb,
            stall_after_rsk_blocks: anchor.stall_threshold(),
        },
        metrics.clone(),
    );
    let mut supervisor = Supervisor::new();
    if let (Some(listener), Some(listen)) = (metrics_listener, config.metrics.listen) {
        supervisor.spawn("metrics", |shutdown| {
            metrics::serve_text(listener, move || metrics.render(), shutdown)
        });
        tracing::info!(%listen, "Prometheus metrics at /metrics");
    }
    supervisor.spawn("anchor", |shutdown| service.run(shutdown));
    supervisor.run().await
}

/// What `ipsat anchor status` reports.
#[derive(Serialize)]
struct StatusReport {
    address: String,
    pending: Option<PendingAnchor>,
    in_flight: Option<InFlightReport>,
    held_sat: u64,
    anchors_affordable: u64,
    confirmed: Vec<ConfirmedReport>,
    abandoned: usize,
    /// `None` when the gateway could not be read (the reason is in `errors`).
    lag: Option<AnchorLag>,
    stall_after_rsk_blocks: u64,
    /// Stalls, low balance, and sources that did not answer.
    errors: Vec<String>,
}

#[derive(Serialize)]
struct InFlightReport {
    digest: String,
    txid: String,
    versions: usize,
    mined_at: Option<u64>,
    last_broadcast_error: Option<String>,
}

#[derive(Serialize)]
struct ConfirmedReport {
    digest: String,
    txid: String,
    height: u64,
    fee_sat: u64,
}

async fn status(home: &Path, config: &Config, output: Output) -> Result<()> {
    let anchor = &config.anchor;
    let key = bitcoin_key(home, config)?;
    let network = network(config)?;
    let state = AnchorState::load(&anchorer_state_path(home))?
        .unwrap_or_else(|| AnchorState::new(network, key.script_pubkey()));
    let pending = load_pending(&pending_path(home))?;
    let mut errors = Vec::new();
    let lag = match read_lag(config).await {
        Ok(lag) => Some(lag),
        Err(e) => {
            errors.push(format!("cannot measure the lag: {e:#}"));
            None
        }
    };
    let threshold = anchor.stall_threshold();
    errors.extend(lag.as_ref().and_then(|l| l.stall_warning(threshold)));
    errors.extend(low_balance_warning(&state, anchor.fee_rate_sat_vb));
    let report = StatusReport {
        address: key.address(network).to_string(),
        pending,
        in_flight: state.in_flight.as_ref().map(|f| InFlightReport {
            digest: f.id.to_string(),
            txid: f
                .versions
                .last()
                .map(|v| v.txid.to_string())
                .unwrap_or_default(),
            versions: f.versions.len(),
            mined_at: f.included.map(|i| i.block.height),
            last_broadcast_error: f.last_broadcast_error.clone(),
        }),
        held_sat: state.held_sat(),
        anchors_affordable: anchors_affordable(&state, anchor.fee_rate_sat_vb),
        confirmed: state
            .confirmed
            .iter()
            .map(|c| ConfirmedReport {
                digest: c.id.to_string(),
                txid: c.txid.to_string(),
                height: c.height,
                fee_sat: c.fee_sat,
            })
            .collect(),
        abandoned: state.abandoned.len(),
        lag,
        stall_after_rsk_blocks: threshold,
        errors,
    };
    print(
        output,
        human_status(&report),
        serde_json::to_value(&report)?,
    );
    Ok(())
}

/// The lag as the gateway and the Bitcoin node of this home's config show it.
async fn read_lag(config: &Config) -> Result<AnchorLag> {
    let gateway = gateway_link::connect_reader(&config.gateway).await?;
    let bitcoin = match &config.anchor.bitcoin_rpc {
        Some(url) => Some(RpcClient::with_timeout(
            url,
            &config.anchor.bitcoin_user,
            &config.anchor.bitcoin_password,
            Duration::from_secs(10),
        )?),
        None => None,
    };
    AnchorLag::read(&gateway, bitcoin.as_ref()).await
}

fn human_status(r: &StatusReport) -> String {
    let mut out = match &r.pending {
        Some(p) => format!(
            "anchoring root {} (RSK height {}), digest {}",
            p.root, p.rsk_height, p.digest
        ),
        None => "nothing being anchored".to_owned(),
    };
    if let Some(f) = &r.in_flight {
        out.push_str(&format!(
            "
in flight: {} ({} version(s)), {}",
            f.txid,
            f.versions,
            match (f.mined_at, &f.last_broadcast_error) {
                (Some(height), _) => format!("mined in block {height}"),
                (None, Some(error)) => format!("last refused: {error}"),
                (None, None) => "in the mempool".to_owned(),
            }
        ));
    }
    out.push_str(&format!(
        "
holds {} sat at {} ({} more anchors)",
        r.held_sat, r.address, r.anchors_affordable
    ));
    if let Some(lag) = &r.lag {
        out.push_str(&format!("\nlag: {}", lag.describe()));
    }
    for c in r.confirmed.iter().rev().take(5) {
        out.push_str(&format!(
            "
confirmed {} in block {} (fee {} sat)",
            c.txid, c.height, c.fee_sat
        ));
    }
    for error in &r.errors {
        out.push_str(&format!(
            "
warning: {error}"
        ));
    }
    out
}
