//! Talking to CometBFT: its JSON-RPC (broadcast, headers) and, for `node start`, running it
//! as a supervised child process.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use ipsat_core::light::LightBlock;
use serde::Deserialize;
use serde_json::{json, Value};
use tendermint::block::signed_header::SignedHeader;
use tendermint::validator::{Info, Set as ValidatorSet};
use thiserror::Error;
use tokio::process::{Child, Command};
use tokio::sync::watch;

#[derive(Debug, Error)]
pub enum RpcError {
    #[error("CometBFT RPC at {url} unreachable: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("CometBFT RPC error: {0}")]
    Rpc(String),
    #[error("unexpected CometBFT RPC response: {0}")]
    Response(String),
}

#[derive(Clone)]
pub struct CometRpc {
    url: String,
    http: reqwest::Client,
}

/// CometBFT's verdict on a transaction at broadcast (its CheckTx result).
#[derive(Debug, Deserialize)]
pub struct BroadcastResult {
    pub code: u32,
    #[serde(default)]
    pub log: String,
}

/// The parts of a CometBFT block header that clients check proofs against.
#[derive(Debug)]
pub struct HeaderInfo {
    pub height: u64,
    pub block_hash: Vec<u8>,
    pub app_hash: Vec<u8>,
    pub chain_id: String,
    pub num_txs: u64,
    pub time: String,
}

fn hex_field(value: &Value, what: &str) -> Result<Vec<u8>, RpcError> {
    let text = value
        .as_str()
        .ok_or_else(|| RpcError::Response(format!("{what} missing")))?;
    hex::decode(text).map_err(|_| RpcError::Response(format!("{what} is not hex")))
}

impl CometRpc {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("a client with only a timeout always builds"),
        }
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let response: Value = self
            .http
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(|source| RpcError::Unreachable {
                url: self.url.clone(),
                source,
            })?
            .json()
            .await
            .map_err(|e| RpcError::Response(e.to_string()))?;
        if let Some(error) = response.get("error") {
            let data = error
                .get("data")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default();
            return Err(RpcError::Rpc(format!("{message}: {data}")));
        }
        response
            .get("result")
            .cloned()
            .ok_or_else(|| RpcError::Response("no result".into()))
    }

    /// Submits to the mempool and returns once CheckTx has run.
    pub async fn broadcast_tx_sync(&self, tx: &[u8]) -> Result<BroadcastResult, RpcError> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(tx);
        let result = self
            .call("broadcast_tx_sync", json!({ "tx": encoded }))
            .await?;
        serde_json::from_value(result).map_err(|e| RpcError::Response(e.to_string()))
    }

    /// The header of `height`, or of the latest block when `height` is `None`.
    pub async fn header(&self, height: Option<u64>) -> Result<HeaderInfo, RpcError> {
        let params = match height {
            Some(h) => json!({ "height": h.to_string() }),
            None => json!({}),
        };
        let result = self.call("block", params).await?;
        let header = &result["block"]["header"];
        let height = header["height"]
            .as_str()
            .and_then(|h| h.parse().ok())
            .ok_or_else(|| RpcError::Response("header height".into()))?;
        Ok(HeaderInfo {
            height,
            block_hash: hex_field(&result["block_id"]["hash"], "block hash")?,
            app_hash: hex_field(&header["app_hash"], "app hash")?,
            chain_id: header["chain_id"].as_str().unwrap_or_default().to_owned(),
            num_txs: result["block"]["data"]["txs"]
                .as_array()
                .map_or(0, |txs| txs.len() as u64),
            time: header["time"].as_str().unwrap_or_default().to_owned(),
        })
    }
}

impl CometRpc {
    /// The signed header of `height` (the latest when `None`) with the validator sets of that
    /// height and the next, every page of them.
    pub async fn light_block(&self, height: Option<u64>) -> Result<LightBlock, RpcError> {
        let params = match height {
            Some(h) => json!({ "height": h.to_string() }),
            None => json!({}),
        };
        let commit = self.call("commit", params).await?;
        let signed_header: SignedHeader =
            serde_json::from_value(commit["signed_header"].clone())
                .map_err(|e| RpcError::Response(format!("signed header: {e}")))?;
        let height = signed_header.header.height.value();
        Ok(LightBlock {
            signed_header,
            validators: self.validators(height).await?,
            next_validators: self.validators(height + 1).await?,
        })
    }

    async fn validators(&self, height: u64) -> Result<ValidatorSet, RpcError> {
        const PER_PAGE: usize = 100;
        let mut infos: Vec<Info> = Vec::new();
        for page in 1.. {
            let result = self
                .call(
                    "validators",
                    json!({"height": height.to_string(), "page": page.to_string(), "per_page": PER_PAGE.to_string()}),
                )
                .await?;
            let batch: Vec<Info> = serde_json::from_value(result["validators"].clone())
                .map_err(|e| RpcError::Response(format!("validators: {e}")))?;
            let total: usize = result["total"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| RpcError::Response("validators: total".into()))?;
            let empty = batch.is_empty();
            infos.extend(batch);
            if infos.len() >= total || empty {
                break;
            }
        }
        Ok(ValidatorSet::without_proposer(infos))
    }
}

/// Runs `cometbft start` for `home` until `shutdown` flips, restarting it with backoff if it
/// exits on its own. Its output goes to `log_path`.
pub async fn supervise(
    binary: PathBuf,
    home: PathBuf,
    log_path: PathBuf,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let mut backoff = Duration::from_millis(500);
    loop {
        let mut child = spawn(&binary, &home, &log_path)?;
        tracing::info!(pid = child.id(), log = %log_path.display(), "cometbft started");
        tokio::select! {
            status = child.wait() => {
                let status = status.context("waiting for cometbft")?;
                if *shutdown.borrow() {
                    return Ok(());
                }
                tracing::error!(%status, log = %log_path.display(), retry_in = ?backoff, "cometbft exited; restarting");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return Ok(()),
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            _ = shutdown.changed() => {
                stop(&mut child).await;
                return Ok(());
            }
        }
    }
}

fn spawn(binary: &Path, home: &Path, log_path: &Path) -> Result<Child> {
    if let Some(dir) = log_path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let mut command = Command::new(binary);
    command
        .arg("start")
        .arg("--home")
        .arg(home)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: prctl is async-signal-safe; it makes the kernel stop cometbft if this process
    // dies without cleaning up (kill -9), so no orphan keeps the ports and the data lock.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn().with_context(|| {
        format!(
            "starting {} (install it with scripts/install-deps.sh)",
            binary.display()
        )
    })
}

async fn stop(child: &mut Child) {
    if let Some(pid) = child.id() {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(pid as i32, libc::SIGTERM);
        }
    }
    if tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .is_err()
    {
        tracing::warn!("cometbft did not stop within 15 s; killing it");
        let _ = child.kill().await;
    }
}

/// Runs a one-shot cometbft command and returns its stdout.
pub fn run_command(binary: &Path, args: &[&str]) -> Result<String> {
    let output = std::process::Command::new(binary)
        .args(args)
        .output()
        .with_context(|| {
            format!(
                "running {} (install it with scripts/install-deps.sh)",
                binary.display()
            )
        })?;
    if !output.status.success() {
        bail!(
            "{} {} failed: {}",
            binary.display(),
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
