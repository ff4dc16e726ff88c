//! Test harness: a real btcd regtest node on free loopback ports in a temporary directory.
//! btcd must be installed (scripts/install-deps.sh); these tests fail, not skip, without it.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ipsat_anchor::bitcoin::secp256k1::SecretKey;
use ipsat_anchor::bitcoin::{Address, BlockHash, Network, OutPoint, Txid};
use ipsat_anchor::{AnchorKey, Anchorer, AnchorerConfig, RpcClient, ScriptKind};
use serde_json::Value;
use tempfile::TempDir;

/// Blocks to mine before anchoring: btcd activates segwit and taproot on regtest by BIP9
/// signalling, "active" from height 432 (measured: "defined" at 101).
pub const ACTIVATION_HEIGHT: u64 = 432;
pub const FEE_RATE: u64 = 2;
pub const CONFIRMATIONS: u32 = 3;

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "ipsat_anchor=info".into()),
        )
        .with_test_writer()
        .try_init();
}

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

pub const RPC_USER: &str = "u";
pub const RPC_PASS: &str = "p";

/// A running btcd, killed (by its own pid) when dropped.
pub struct Btcd {
    child: Child,
    pub dir: TempDir,
    pub rpc_url: String,
    pub mining_address: Address,
}

impl Btcd {
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

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("btcd.stdout")).unwrap_or_default()
    }

    pub fn rpc(&self) -> RpcClient {
        RpcClient::new(&self.rpc_url, RPC_USER, RPC_PASS).unwrap()
    }

    pub async fn mine(&self, n: u64) -> Vec<BlockHash> {
        let hashes = self.rpc().generate(n, &self.mining_address).await.unwrap();
        assert_eq!(hashes.len() as u64, n);
        hashes
    }

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

/// btcd with segwit and taproot active and an anchorer whose key receives the coinbases.
pub struct Harness {
    pub node: Btcd,
    pub state_dir: TempDir,
    pub secret: SecretKey,
    pub kind: ScriptKind,
}

impl Harness {
    pub async fn new(kind: ScriptKind) -> Harness {
        init_tracing();
        let secret = SecretKey::from_slice(&[0x01; 32]).unwrap();
        let key = AnchorKey::new(secret, kind);
        let node = Btcd::start(&key.address(Network::Regtest)).await;
        node.mine(ACTIVATION_HEIGHT).await;
        let info: Value = node.rpc().call("getblockchaininfo", &[]).await.unwrap();
        for fork in ["segwit", "taproot"] {
            assert_eq!(
                info["bip9_softforks"][fork]["status"], "active",
                "{fork} not active at height {ACTIVATION_HEIGHT}: {info}"
            );
        }
        Harness {
            node,
            state_dir: tempfile::tempdir().unwrap(),
            secret,
            kind,
        }
    }

    pub fn state_path(&self) -> PathBuf {
        self.state_dir.path().join("anchor-state.json")
    }

    pub fn config(&self) -> AnchorerConfig {
        AnchorerConfig {
            state_path: self.state_path(),
            network: Network::Regtest,
            fee_rate_sat_vb: FEE_RATE,
            confirmations: CONFIRMATIONS,
        }
    }

    /// Opens (or reopens, as after a restart) the anchorer on the same state file.
    pub async fn open(&self) -> Anchorer {
        Anchorer::open(
            self.config(),
            AnchorKey::new(self.secret, self.kind),
            self.node.rpc(),
        )
        .await
        .unwrap()
    }

    /// Opens a fresh anchorer funded with the coinbase of block `height`.
    pub async fn open_funded(&self, height: u64) -> Anchorer {
        let mut a = self.open().await;
        a.fund(self.coinbase(height).await).await.unwrap();
        a
    }

    /// The coinbase output of block `height`, which pays the anchorer's key.
    pub async fn coinbase(&self, height: u64) -> OutPoint {
        let rpc = self.node.rpc();
        let block = rpc
            .get_block(&rpc.get_block_hash(height).await.unwrap())
            .await
            .unwrap();
        OutPoint::new(block.txdata[0].compute_txid(), 0)
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
