//! `ipsat anchor`: the anchoring service that commits the RSK gateway's blocktree root into
//! Bitcoin ([`crate::anchor_service`]), configured by `[anchor]` and `[gateway]` in the home's
//! `ipsat.toml`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use ipsat_anchor::bitcoin::secp256k1::SecretKey;
use ipsat_anchor::bitcoin::{Network, OutPoint};
use ipsat_anchor::{
    AnchorError, AnchorKey, AnchorState, Anchorer, AnchorerConfig, RpcClient, ScriptKind,
};
use serde_json::json;

use super::{print, Output};
use crate::anchor_service::{load_pending, AnchorService};
use crate::config::{keys_dir, Config};
use crate::gateway_link;
use crate::keys;
use crate::supervisor::Supervisor;

#[derive(Subcommand)]
pub enum AnchorCommand {
    /// Run the anchoring service until SIGTERM or Ctrl-C.
    Start,
    /// Show the anchor in flight, the pending root and the last confirmed anchors.
    Status,
    /// Print the Bitcoin address that funds anchors (send to it, then list the output under
    /// `[anchor] fund`).
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
        AnchorCommand::Status => status(home, output),
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
    let rsk_key = keys::load(
        &keys_dir(home),
        anchor
            .rsk_key
            .as_deref()
            .context("[anchor] rsk_key is not set")?,
    )?;
    let gateway = gateway_link::connect_when_reachable(&config.gateway, &rsk_key.secret).await?;
    std::fs::create_dir_all(home.join("data"))?;
    let rpc = RpcClient::new(bitcoin_rpc, &anchor.bitcoin_user, &anchor.bitcoin_password)?;
    let mut anchorer = Anchorer::open(
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
    for outpoint in &anchor.fund {
        let outpoint: OutPoint = outpoint
            .parse()
            .with_context(|| format!("[anchor] fund: {outpoint:?} is not txid:vout"))?;
        match anchorer.fund(outpoint).await {
            Ok(_) | Err(AnchorError::AlreadyFunded(_)) => {}
            Err(e) => return Err(e).with_context(|| format!("funding with {outpoint}")),
        }
    }
    tracing::info!(
        bitcoin = %anchorer.address(),
        gateway = %gateway.address(),
        period_rsk_blocks = anchor.period_rsk_blocks,
        "anchoring the blocktree into Bitcoin"
    );
    let service = AnchorService {
        gateway,
        anchorer,
        chain_id: config.gateway.chain_id,
        period_rsk_blocks: anchor.period_rsk_blocks,
        pending_path: pending_path(home),
        poll_interval: Duration::from_millis(anchor.poll_interval_ms.max(50)),
    };
    let mut supervisor = Supervisor::new();
    supervisor.spawn("anchor", |shutdown| service.run(shutdown));
    supervisor.run().await
}

fn status(home: &Path, output: Output) -> Result<()> {
    let state = AnchorState::load(&anchorer_state_path(home))?;
    let pending = load_pending(&pending_path(home))?;
    let confirmed = state
        .as_ref()
        .map(|s| s.confirmed.clone())
        .unwrap_or_default();
    let in_flight = state
        .as_ref()
        .and_then(|s| s.in_flight.as_ref())
        .map(|f| f.id.to_string());
    let mut human = match &pending {
        Some(p) => format!(
            "anchoring root {} (RSK height {}), digest {}",
            p.root, p.rsk_height, p.digest
        ),
        None => "nothing being anchored".to_owned(),
    };
    for c in confirmed.iter().rev().take(5) {
        human.push_str(&format!(
            "\nconfirmed {} in block {} ({} confirmations when recorded)",
            c.txid, c.height, c.confirmations
        ));
    }
    print(
        output,
        human,
        json!({
            "pending": pending,
            "in_flight": in_flight,
            "confirmed": confirmed.iter().map(|c| json!({
                "digest": c.id.to_string(),
                "txid": c.txid.to_string(),
                "height": c.height,
            })).collect::<Vec<_>>(),
        }),
    );
    Ok(())
}
