//! The whole devnet tree (`scripts/devnet up`, or its compose file) as tests see it: through
//! the explorer's JSON, the Bitcoin node's RPC, and headless Chromium (Debian's `chromium`,
//! installed by scripts/install-deps.sh).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use ipsat_anchor::bitcoin::Txid;
use ipsat_anchor::RpcClient;
use serde_json::Value;

/// The tree the explorer at `explorer` (e.g. `http://127.0.0.1:8080`) shows now.
pub async fn view(explorer: &str) -> Result<Value> {
    let url = format!("{explorer}/api/tree");
    reqwest::get(&url)
        .await
        .and_then(|r| r.error_for_status())
        .with_context(|| format!("GET {url}"))?
        .json()
        .await
        .with_context(|| format!("{url} is not JSON"))
}

/// The explorer's entry for `subnet`.
pub fn subnet<'a>(view: &'a Value, subnet: &str) -> Option<&'a Value> {
    view["subnets"]
        .as_array()?
        .iter()
        .find(|s| s["id"] == subnet)
}

/// Waits until, in the explorer at `explorer`, a checkpoint of `/r33/alpha/beta` is accepted
/// in alpha, one of `/r33/alpha` on the gateway, and an anchor is recorded whose transaction
/// the Bitcoin node at `bitcoin_rpc` (user and password `ipsat`) holds with at least two
/// confirmations; the view then. Reports progress every 30 s.
pub async fn wait_for_anchored_tree(
    explorer: &str,
    bitcoin_rpc: &str,
    timeout: Duration,
) -> Result<Value> {
    let bitcoin = RpcClient::new(bitcoin_rpc, "ipsat", "ipsat")?;
    let started = Instant::now();
    let mut reported = started;
    loop {
        let state = match view(explorer).await {
            Ok(view) => {
                let accepted = |id: &str| {
                    subnet(&view, id)
                        .and_then(|s| s["accepted_height"].as_u64())
                        .unwrap_or(0)
                };
                let anchor = &view["gateway"]["anchor"];
                let confirmations = match anchor["btc_txid"].as_str() {
                    Some(txid) => tx_confirmations(&bitcoin, txid).await.unwrap_or(0),
                    None => 0,
                };
                if accepted("/r33/alpha/beta") > 0
                    && accepted("/r33/alpha") > 0
                    && confirmations >= 2
                {
                    ensure!(
                        anchor["in_best_chain"] == true
                            && anchor["confirmations"].as_u64() >= Some(confirmations),
                        "the Bitcoin node confirms anchor {} {confirmations} times, the explorer shows {anchor}",
                        anchor["btc_txid"]
                    );
                    return Ok(view);
                }
                format!(
                    "beta accepted in alpha up to {}, alpha on the gateway up to {}, anchor {} with {confirmations} confirmations",
                    accepted("/r33/alpha/beta"),
                    accepted("/r33/alpha"),
                    anchor["btc_txid"]
                )
            }
            Err(e) => format!("{e:#}"),
        };
        if started.elapsed() > timeout {
            bail!("the tree did not anchor within {timeout:?}: {state}");
        }
        if reported.elapsed() > Duration::from_secs(30) {
            eprintln!(
                "waiting for the tree ({} s): {state}",
                started.elapsed().as_secs()
            );
            reported = Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Confirmations of `txid` on the Bitcoin node (0 if unconfirmed).
async fn tx_confirmations(bitcoin: &RpcClient, txid: &str) -> Result<u64> {
    let txid: Txid = txid.parse()?;
    let tx: Value = bitcoin
        .call(
            "getrawtransaction",
            &[serde_json::json!(txid.to_string()), serde_json::json!(1)],
        )
        .await?;
    Ok(tx["confirmations"].as_u64().unwrap_or(0))
}

fn chromium(args: &[&str], url: &str) -> Result<Command> {
    let mut command = Command::new("chromium");
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            // Lets the page's scripts fetch and render before the DOM is read.
            "--virtual-time-budget=5000",
        ])
        .args(args)
        .arg(url);
    Ok(command)
}

/// The page at `url` as headless Chromium rendered it, scripts run.
pub fn rendered_dom(url: &str) -> Result<String> {
    let out = chromium(&["--dump-dom"], url)?
        .output()
        .context("running chromium (install it with scripts/install-deps.sh)")?;
    ensure!(
        out.status.success(),
        "chromium --dump-dom failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Saves a screenshot of the page at `url` to `path`.
pub fn screenshot(url: &str, path: &Path) -> Result<()> {
    let target = format!("--screenshot={}", path.display());
    let out = chromium(&["--window-size=1280,1400", &target], url)?
        .output()
        .context("running chromium")?;
    ensure!(
        out.status.success() && path.exists(),
        "chromium --screenshot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The heights the rendered explorer shows, by subnet, in page order.
pub fn shown_heights(dom: &str) -> Vec<(String, u64)> {
    let mut shown = Vec::new();
    for part in dom.split("data-subnet=\"").skip(1) {
        let id = part.split('"').next().unwrap_or_default().to_owned();
        let height = part
            .split("class=\"height\">")
            .nth(1)
            .and_then(|rest| rest.split('<').next())
            .and_then(|h| h.parse().ok());
        if let Some(height) = height {
            shown.push((id, height));
        }
    }
    shown
}
