//! anvil as the stand-in for RSK regtest (chain id 33), and the RSK-strict filter in front of
//! it: a JSON-RPC proxy that refuses exactly what RSK refuses, so a client that works through
//! it provably needs none of it. It counts every refusal so tests can assert there were none.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::json_rpc;

/// anvil's first dev account (funded with 10,000 ETH at start), as a hex secret key.
pub const DEV_KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

/// RSK's `eth_getLogs` span limit.
pub const MAX_LOG_RANGE: u64 = 5_000;

/// The block gas limit of RSK mainnet and testnet; anvil runs with it.
pub const RSK_BLOCK_GAS_LIMIT: u64 = 6_800_000;

/// A running anvil (chain id 33) standing in for RSK regtest; killed when dropped.
pub struct Anvil {
    child: Child,
    /// anvil's JSON-RPC URL.
    pub url: String,
}

impl Anvil {
    /// Starts anvil with chain id 33 on `port`; `automine: false` leaves transactions pending
    /// until [`Anvil::mine`].
    pub fn start(port: u16, automine: bool) -> Result<Self> {
        let mut command = Command::new("anvil");
        command
            .args([
                "--chain-id",
                "33",
                "--port",
                &port.to_string(),
                "--host",
                "127.0.0.1",
            ])
            .args(["--accounts", "20", "--balance", "1000000", "--silent"])
            // Whatever the gateway needs must fit in one RSK block; and RSK has no EIP-1559
            // base fee, so none rises with full blocks here either.
            .args(["--gas-limit", &RSK_BLOCK_GAS_LIMIT.to_string()])
            .args(["--base-fee", "0"])
            // Recent states in memory only: anvil otherwise writes every block's state under
            // ~/.foundry/anvil/tmp and never removes it (gigabytes per test run). Reads at the
            // confirmation depth stay far inside this window.
            .args(["--prune-history", "256"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if !automine {
            command.arg("--no-mining");
        }
        let child = command
            .spawn()
            .context("starting anvil (install it with scripts/install-deps.sh)")?;
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("anvil did not listen on {port}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Self { child, url })
    }

    /// Calls anvil directly, bypassing the filter (test control: mining, balances).
    pub async fn raw(&self, method: &str, params: Value) -> Result<Value> {
        json_rpc(&reqwest::Client::new(), &self.url, method, params).await
    }

    /// Also mines a block every second, as a live chain does, besides those its transactions
    /// make.
    pub async fn mine_every_second(&self) -> Result<()> {
        self.raw("evm_setIntervalMining", json!([1])).await?;
        Ok(())
    }

    /// Gives `address` (hex) a balance of `wei`.
    pub async fn set_balance(&self, address: &str, wei: u128) -> Result<()> {
        self.raw("anvil_setBalance", json!([address, format!("{wei:#x}")]))
            .await?;
        Ok(())
    }

    /// Mines `blocks` blocks (`anvil_mine`).
    pub async fn mine(&self, blocks: u64) -> Result<()> {
        self.raw("anvil_mine", json!([format!("{blocks:#x}")]))
            .await?;
        Ok(())
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why the filter refused a request, or `None` to forward it.
fn rsk_refusal(request: &Value, head: u64) -> Option<String> {
    let method = request["method"].as_str().unwrap_or_default();
    match method {
        "eth_feeHistory" | "eth_maxPriorityFeePerGas" | "eth_getProof" | "eth_blobBaseFee" => {
            return Some(format!(
                "the method {method} does not exist/is not available"
            ));
        }
        _ => {}
    }
    fn has_tag(value: &Value) -> bool {
        match value {
            Value::String(s) => s == "finalized" || s == "safe",
            Value::Array(items) => items.iter().any(has_tag),
            Value::Object(map) => map.values().any(has_tag),
            _ => false,
        }
    }
    if has_tag(&request["params"]) {
        return Some("unknown block tag (RSK has no finalized/safe)".into());
    }
    if method == "eth_sendRawTransaction" {
        let raw = request["params"][0].as_str().unwrap_or_default();
        let first = u8::from_str_radix(raw.trim_start_matches("0x").get(..2).unwrap_or("00"), 16)
            .unwrap_or(0);
        if first < 0xc0 {
            return Some(format!("typed transaction (type {first}) not supported"));
        }
    }
    if method == "eth_sendTransaction" {
        let tx = &request["params"][0];
        if tx.get("type").is_some() || tx.get("maxFeePerGas").is_some() {
            return Some("typed transaction not supported".into());
        }
    }
    if method == "eth_getLogs" {
        let filter = &request["params"][0];
        let block = |key: &str| -> u64 {
            match filter.get(key).and_then(Value::as_str) {
                Some("latest") | None => head,
                Some("earliest") => 0,
                Some(n) => u64::from_str_radix(n.trim_start_matches("0x"), 16).unwrap_or(u64::MAX),
            }
        };
        let (from, to) = (block("fromBlock"), block("toBlock"));
        if to.saturating_sub(from) >= MAX_LOG_RANGE {
            return Some(format!(
                "block range {from}..{to} exceeds {MAX_LOG_RANGE} blocks"
            ));
        }
    }
    None
}

/// The RSK-strict JSON-RPC filter in front of an upstream node.
pub struct RskStrictProxy {
    /// The filter's JSON-RPC URL, to use in place of the upstream's.
    pub url: String,
    refusals: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl RskStrictProxy {
    /// Starts the filter on a free loopback port in front of the JSON-RPC node at `upstream`;
    /// it runs until dropped.
    pub async fn start(upstream: &str) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let refusals = Arc::new(AtomicUsize::new(0));
        let upstream = upstream.to_owned();
        let counter = refusals.clone();
        let task = tokio::spawn(async move {
            let http = reqwest::Client::new();
            while let Ok((socket, _)) = listener.accept().await {
                let (http, upstream, counter) = (http.clone(), upstream.clone(), counter.clone());
                tokio::spawn(async move {
                    let _ = serve(socket, &http, &upstream, &counter).await;
                });
            }
        });
        Ok(Self {
            url: format!("http://{addr}"),
            refusals,
            task,
        })
    }

    /// Requests refused so far.
    pub fn refusals(&self) -> usize {
        self.refusals.load(Ordering::SeqCst)
    }
}

impl Drop for RskStrictProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn head(http: &reqwest::Client, upstream: &str) -> Result<u64> {
    let n = json_rpc(http, upstream, "eth_blockNumber", json!([])).await?;
    let n = n.as_str().unwrap_or("0x0");
    Ok(u64::from_str_radix(n.trim_start_matches("0x"), 16)?)
}

/// Serves HTTP/1.1 JSON-RPC requests on one connection until the client closes it.
async fn serve(
    socket: TcpStream,
    http: &reqwest::Client,
    upstream: &str,
    refusals: &AtomicUsize,
) -> Result<()> {
    let mut reader = BufReader::new(socket);
    loop {
        let mut content_length = 0usize;
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        loop {
            line.clear();
            reader.read_line(&mut line).await?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    content_length = value.trim().parse()?;
                }
            }
        }
        let mut body = vec![0u8; content_length];
        reader.read_exact(&mut body).await?;
        let request: Value = serde_json::from_slice(&body)?;
        // Only a log filter with a `latest` bound needs the chain head.
        let head = if request["method"] == "eth_getLogs" {
            head(http, upstream).await?
        } else {
            0
        };
        let response = match rsk_refusal(&request, head) {
            Some(reason) => {
                refusals.fetch_add(1, Ordering::SeqCst);
                json!({"jsonrpc": "2.0", "id": request["id"], "error": {"code": -32601, "message": reason}})
            }
            None => {
                http.post(upstream)
                    .json(&request)
                    .send()
                    .await?
                    .json()
                    .await?
            }
        };
        let body = serde_json::to_vec(&response)?;
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let socket = reader.get_mut();
        socket.write_all(head.as_bytes()).await?;
        socket.write_all(&body).await?;
    }
}
