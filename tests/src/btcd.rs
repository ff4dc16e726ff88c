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

fn spawn_btcd(dir: &std::path::Path, args: &[String]) -> Child {
    let btcd = find_btcd();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("btcd.stdout"))
        .unwrap();
    Command::new(&btcd)
        .args(args)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", btcd.display()))
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
    /// The command line it was started with, for [`Self::restart`].
    args: Vec<String>,
}

impl Btcd {
    /// Starts btcd mining to `mining_address` and waits for its RPC.
    pub async fn start(mining_address: &Address) -> Btcd {
        Self::start_with(mining_address, &[]).await
    }

    /// As [`Self::start`], with more command-line options (e.g. `--minrelaytxfee=...`).
    pub async fn start_with(mining_address: &Address, extra: &[&str]) -> Btcd {
        let dir = tempfile::tempdir().unwrap();
        let (p2p, rpc) = (free_port(), free_port());
        let d = dir.path().to_str().unwrap().to_string();
        let mut args: Vec<String> = ["-C", "/dev/null", "--regtest", "--notls", "--txindex"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend([
            "--miningaddr".into(),
            mining_address.to_string(),
            "--datadir".into(),
            d.clone(),
            "--logdir".into(),
            d,
            "--listen".into(),
            format!("127.0.0.1:{p2p}"),
            "--rpclisten".into(),
            format!("127.0.0.1:{rpc}"),
            "--rpcuser".into(),
            RPC_USER.into(),
            "--rpcpass".into(),
            RPC_PASS.into(),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = spawn_btcd(dir.path(), &args);
        let mut node = Btcd {
            child,
            dir,
            rpc_url: format!("http://127.0.0.1:{rpc}"),
            mining_address: mining_address.clone(),
            args,
        };
        node.wait_for_rpc().await;
        node
    }

    /// Stops btcd (SIGTERM) and starts it again on the same ports and directory. btcd keeps
    /// no regtest chain across a restart (measured: height 0 after it), so this is a Bitcoin
    /// node that started over under whatever used it.
    pub async fn restart(&mut self) {
        // SAFETY: kill(2) on the pid of the child this harness started.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        self.child.wait().unwrap();
        self.child = spawn_btcd(self.dir.path(), &self.args);
        self.wait_for_rpc().await;
    }

    async fn wait_for_rpc(&mut self) {
        let rpc = self.rpc();
        let deadline = Instant::now() + Duration::from_secs(60);
        while rpc.get_block_count().await.is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("btcd exited with {status}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "btcd RPC not ready after 60 s: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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
