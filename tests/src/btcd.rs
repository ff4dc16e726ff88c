//! A real btcd regtest node on free loopback ports in a temporary directory, for tests of the
//! anchorer and the anchoring service. btcd must be installed (scripts/install-deps.sh);
//! tests fail, not skip, without it.

// A harness fails the test that uses it by panicking, with the step that failed.
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ipsat_anchor::bitcoin::{Address, BlockHash, Txid};
use ipsat_anchor::RpcClient;
use tempfile::TempDir;

/// Blocks to mine before anchoring: btcd activates segwit and taproot on regtest by BIP9
/// signalling, "active" from height 432 (measured: "defined" at 101).
pub const ACTIVATION_HEIGHT: u64 = 432;

fn find_btcd() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("btcd")).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join("go/bin/btcd"));
    }
    candidates.into_iter().find(|p| p.is_file()).unwrap_or_else(|| {
        panic!("btcd not found in PATH or ~/go/bin: run scripts/install-deps.sh (these tests need a real btcd)")
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// btcd's RPC user.
pub const RPC_USER: &str = "u";
/// btcd's RPC password.
pub const RPC_PASS: &str = "p";

/// A running btcd, killed (by its own pid) when dropped.
pub struct Btcd {
    child: Child,
    /// Its data and log directory.
    pub dir: TempDir,
    /// Its JSON-RPC URL.
    pub rpc_url: String,
    /// Where mined coinbases pay.
    pub mining_address: Address,
}

impl Btcd {
    /// Starts btcd mining to `mining_address` and waits for its RPC.
    pub async fn start(mining_address: &Address) -> Btcd {
        let btcd = find_btcd();
        let dir = tempfile::tempdir().unwrap();
        let (p2p, rpc) = (free_port(), free_port());
        let d = dir.path().to_str().unwrap().to_string();
        let log = std::fs::File::create(dir.path().join("btcd.stdout")).unwrap();
        let child = Command::new(&btcd)
            .args(["-C", "/dev/null", "--regtest", "--notls", "--txindex"])
            .args(["--miningaddr", &mining_address.to_string()])
            .args(["--datadir", &d, "--logdir", &d])
            .args(["--listen", &format!("127.0.0.1:{p2p}")])
            .args(["--rpclisten", &format!("127.0.0.1:{rpc}")])
            .args(["--rpcuser", RPC_USER, "--rpcpass", RPC_PASS])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", btcd.display()));
        let mut node = Btcd {
            child,
            dir,
            rpc_url: format!("http://127.0.0.1:{rpc}"),
            mining_address: mining_address.clone(),
        };
        let rpc = node.rpc();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if rpc.get_block_count().await.is_ok() {
                break;
            }
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!("btcd exited with {status}: {}", node.log());
            }
            assert!(
                Instant::now() < deadline,
                "btcd RPC not ready after 60 s: {}",
                node.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        node
    }

    /// Starts btcd as [`Self::start`] does and mines until segwit is active; its first
    /// coinbase (see [`Self::first_coinbase`]) is then mature.
    pub async fn start_active(mining_address: &Address) -> Btcd {
        let node = Self::start(mining_address).await;
        node.mine(ACTIVATION_HEIGHT).await;
        node
    }

    /// The output of block 1's coinbase, `txid:0`, which pays the mining address.
    pub async fn first_coinbase(&self) -> String {
        let rpc = self.rpc();
        let block = rpc
            .get_block(&rpc.get_block_hash(1).await.unwrap())
            .await
            .unwrap();
        format!("{}:0", block.txdata[0].compute_txid())
    }

    /// Its output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("btcd.stdout")).unwrap_or_default()
    }

    /// A client of its RPC.
    pub fn rpc(&self) -> RpcClient {
        RpcClient::new(&self.rpc_url, RPC_USER, RPC_PASS).unwrap()
    }

    /// Mines `n` blocks.
    pub async fn mine(&self, n: u64) -> Vec<BlockHash> {
        let hashes = self.rpc().generate(n, &self.mining_address).await.unwrap();
        assert_eq!(hashes.len() as u64, n);
        hashes
    }

    /// The transactions in its mempool.
    pub async fn mempool(&self) -> Vec<Txid> {
        self.rpc().get_raw_mempool().await.unwrap()
    }
}

impl Drop for Btcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every (height, txid) of a transaction with an output `OP_RETURN <digest>` from `from` to
/// the tip of the best chain.
pub async fn txs_committing(rpc: &RpcClient, from: u64, digest: &[u8; 32]) -> Vec<(u64, Txid)> {
    let script = ipsat_anchor::anchor_script(digest);
    let tip = rpc.get_block_count().await.unwrap();
    let mut found = Vec::new();
    for h in from..=tip {
        let block = rpc
            .get_block(&rpc.get_block_hash(h).await.unwrap())
            .await
            .unwrap();
        for tx in &block.txdata {
            if tx.output.iter().any(|o| o.script_pubkey == script) {
                found.push((h, tx.compute_txid()));
            }
        }
    }
    found
}
