//! Load generator for `scripts/bench`: drives pre-signed transactions into a running
//! CometBFT network through its RPC and measures committed transactions per second and
//! commit latency. The same path serves ipsat transfers and CometBFT's kvstore baseline, so
//! the two numbers differ only by the application.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use clap::{Parser, ValueEnum};
use ipsat_core::tx::tx_hash;
use ipsat_core::{Address, SubnetId};
use ipsat_tests::{address_of, json_rpc, load_key, sign_for, transfer};
use secp256k1::SecretKey;
use serde_json::{json, Value};

/// How often a broadcast is retried while the mempool is full (at most 500 ms apart).
const MEMPOOL_FULL_RETRIES: usize = 240;

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum App {
    /// Signed ipsat transfers from many funded senders.
    Ipsat,
    /// CometBFT's built-in kvstore app: `key=value` transactions of the same size.
    Kvstore,
}

#[derive(Parser)]
struct Args {
    #[arg(long, value_enum)]
    app: App,
    /// CometBFT RPC endpoints to spread the load over.
    #[arg(long = "rpc", required = true)]
    rpcs: Vec<String>,
    /// Transactions to send.
    #[arg(long, default_value_t = 20_000)]
    txs: usize,
    /// Senders (ipsat); each sends txs/senders transfers with consecutive nonces.
    #[arg(long, default_value_t = 200)]
    senders: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// ipsat: the funded key file to fund the senders from.
    #[arg(long)]
    faucet_key: Option<std::path::PathBuf>,
    /// ipsat: the subnet id.
    #[arg(long, default_value = "/r33/devnet")]
    subnet: SubnetId,
    /// kvstore: transaction size in bytes (use the ipsat transfer size).
    #[arg(long, default_value_t = 180)]
    tx_size: usize,
}

struct Rpc {
    http: reqwest::Client,
}

impl Rpc {
    async fn call(&self, url: &str, method: &str, params: Value) -> Result<Value> {
        json_rpc(&self.http, url, method, params).await
    }

    /// Broadcasts `tx`, backing off while the node's mempool is full (as any client must once
    /// CheckTx no longer waits for block execution and senders outpace the chain).
    async fn broadcast(&self, url: &str, tx: &[u8]) -> Result<u32> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(tx);
        let mut backoff = Duration::from_millis(20);
        for _ in 0..MEMPOOL_FULL_RETRIES {
            match self
                .call(url, "broadcast_tx_sync", json!({"tx": encoded}))
                .await
            {
                Ok(result) => return Ok(result["code"].as_u64().unwrap_or(u64::MAX) as u32),
                Err(error) if error.to_string().contains("mempool is full") => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                Err(error) => return Err(error),
            }
        }
        bail!("mempool of {url} stayed full for {MEMPOOL_FULL_RETRIES} tries")
    }

    async fn height(&self, url: &str) -> Result<u64> {
        let status = self.call(url, "status", json!({})).await?;
        status["sync_info"]["latest_block_height"]
            .as_str()
            .and_then(|h| h.parse().ok())
            .context("status height")
    }

    /// Transaction hashes of block `height`, once it exists.
    async fn block_txs(&self, url: &str, height: u64) -> Result<Option<Vec<[u8; 32]>>> {
        let params = json!({"height": height.to_string()});
        let Ok(block) = self.call(url, "block", params).await else {
            return Ok(None);
        };
        let txs = block["block"]["data"]["txs"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        txs.iter()
            .map(|tx| {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(tx.as_str().unwrap_or_default())?;
                Ok(tx_hash(&raw))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// Sends every stream in order: a stream's transactions go one after another to the same
/// endpoint (so an account's nonces arrive in order), while `concurrency` workers interleave
/// the streams. Returns when each transaction was sent.
async fn send_all(
    rpc: Arc<Rpc>,
    urls: Vec<String>,
    streams: Vec<Vec<Vec<u8>>>,
    concurrency: usize,
) -> Result<HashMap<[u8; 32], Instant>> {
    let mut groups: Vec<Vec<Vec<Vec<u8>>>> = (0..concurrency).map(|_| Vec::new()).collect();
    for (i, stream) in streams.into_iter().enumerate() {
        groups[i % concurrency].push(stream);
    }
    let mut workers = Vec::new();
    for (w, group) in groups.into_iter().enumerate() {
        let rpc = rpc.clone();
        let url = urls[w % urls.len()].clone();
        workers.push(tokio::spawn(async move {
            let mut sent = HashMap::new();
            let longest = group.iter().map(Vec::len).max().unwrap_or(0);
            for position in 0..longest {
                for tx in group.iter().filter_map(|stream| stream.get(position)) {
                    let at = Instant::now();
                    let code = rpc.broadcast(&url, tx).await?;
                    if code != 0 {
                        bail!("transaction refused with code {code}");
                    }
                    sent.insert(tx_hash(tx), at);
                }
            }
            Ok::<_, anyhow::Error>(sent)
        }));
    }
    let mut sent = HashMap::new();
    for worker in workers {
        sent.extend(worker.await??);
    }
    Ok(sent)
}

/// Signs `per_sender` transfers for each fresh sender, after funding them from the faucet;
/// one stream of transactions per sender.
async fn ipsat_txs(rpc: &Rpc, args: &Args) -> Result<Vec<Vec<Vec<u8>>>> {
    let faucet_path = args
        .faucet_key
        .as_ref()
        .context("--faucet-key is required for --app ipsat")?;
    let faucet = load_key(faucet_path)?;
    let senders: Vec<SecretKey> = (0..args.senders)
        .map(|n| {
            let mut seed = [0x5au8; 32];
            seed[..8].copy_from_slice(&(n as u64 + 1).to_be_bytes());
            SecretKey::from_slice(&seed)
        })
        .collect::<Result<_, _>>()?;
    let per_sender = args.txs.div_ceil(args.senders);
    let url = &args.rpcs[0];
    let start_height = rpc.height(url).await?;
    let funding: Vec<Vec<u8>> = senders
        .iter()
        .enumerate()
        .map(|(nonce, s)| {
            sign_for(
                &args.subnet,
                &faucet,
                nonce as u64,
                transfer(address_of(s), 10u128.pow(21)),
            )
        })
        .collect();
    // Funding continues the faucet's nonce from 0: the bench runs on a fresh network.
    let hashes: Vec<[u8; 32]> = funding.iter().map(|tx| tx_hash(tx)).collect();
    for tx in &funding {
        let code = rpc.broadcast(url, tx).await?;
        if code != 0 {
            bail!("funding refused with code {code}");
        }
    }
    eprintln!("funding {} senders...", senders.len());
    let mut pending: std::collections::HashSet<[u8; 32]> = hashes.into_iter().collect();
    let mut height = start_height + 1;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !pending.is_empty() {
        if Instant::now() > deadline {
            bail!("funding did not commit");
        }
        match rpc.block_txs(url, height).await? {
            Some(txs) => {
                txs.iter().for_each(|h| {
                    pending.remove(h);
                });
                height += 1;
            }
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let recipient = Address([0x77; 20]);
    Ok(senders
        .iter()
        .map(|sender| {
            (0..per_sender)
                .map(|nonce| sign_for(&args.subnet, sender, nonce as u64, transfer(recipient, 1)))
                .collect()
        })
        .collect())
}

/// Independent transactions, one stream each.
fn kvstore_txs(args: &Args) -> Vec<Vec<Vec<u8>>> {
    (0..args.txs)
        .map(|i| {
            let mut tx = format!("bench-{i:012}=").into_bytes();
            tx.resize(args.tx_size.max(tx.len() + 1), b'x');
            vec![tx]
        })
        .collect()
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let rpc = Arc::new(Rpc {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?,
    });
    let txs = match args.app {
        App::Ipsat => ipsat_txs(&rpc, &args).await?,
        App::Kvstore => kvstore_txs(&args),
    };
    let total: usize = txs.iter().map(Vec::len).sum();
    let tx_size = txs.iter().flatten().map(Vec::len).sum::<usize>() / total.max(1);
    let url = args.rpcs[0].clone();
    let first_height = rpc.height(&url).await? + 1;
    eprintln!(
        "sending {total} transactions of ~{tx_size} bytes over {} endpoints...",
        args.rpcs.len()
    );
    let started = Instant::now();
    let mut sender = tokio::spawn(send_all(
        rpc.clone(),
        args.rpcs.clone(),
        txs,
        args.concurrency,
    ));

    let mut committed: HashMap<[u8; 32], Instant> = HashMap::with_capacity(total);
    let mut block_times = Vec::new();
    let mut height = first_height;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut sent = None;
    while committed.len() < total {
        // A refused transaction would never commit: stop at once rather than at the deadline.
        if sent.is_none() && sender.is_finished() {
            sent = Some((&mut sender).await??);
        }
        if Instant::now() > deadline {
            bail!("only {} of {total} transactions committed", committed.len());
        }
        match rpc.block_txs(&url, height).await? {
            Some(hashes) => {
                let now = Instant::now();
                block_times.push(now);
                for hash in hashes {
                    committed.entry(hash).or_insert(now);
                }
                height += 1;
            }
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let finished = committed.values().max().copied().unwrap_or(started);
    let sent = match sent {
        Some(sent) => sent,
        None => sender.await??,
    };
    let mut latencies: Vec<Duration> = sent
        .iter()
        .filter_map(|(hash, at)| {
            committed
                .get(hash)
                .map(|c| c.saturating_duration_since(*at))
        })
        .collect();
    latencies.sort();
    let elapsed = finished.duration_since(started).as_secs_f64();
    let blocks = height - first_height;
    let report = json!({
        "app": if args.app == App::Ipsat { "ipsat" } else { "kvstore" },
        "txs": total,
        "tx_bytes": tx_size,
        "seconds": elapsed,
        "tps": total as f64 / elapsed,
        "p50_ms": percentile(&latencies, 0.50).as_millis(),
        "p99_ms": percentile(&latencies, 0.99).as_millis(),
        "blocks": blocks,
        "mean_block_ms": if blocks > 1 { elapsed * 1000.0 / blocks as f64 } else { 0.0 },
    });
    println!("{report}");
    Ok(())
}
