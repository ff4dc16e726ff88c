//! Test harness: a real btcd regtest node on free loopback ports in a temporary directory.
//! btcd must be installed (scripts/install-deps.sh); these tests fail, not skip, without it.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use ipsat_anchor::bitcoin::secp256k1::SecretKey;
use ipsat_anchor::bitcoin::{Network, OutPoint};
use ipsat_anchor::{AnchorKey, Anchorer, AnchorerConfig, ConfirmedAnchor, ScriptKind};
use serde_json::Value;
use tempfile::TempDir;

pub use ipsat_tests::btcd::{txs_committing, Btcd, ACTIVATION_HEIGHT};
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

/// btcd with segwit and taproot active and an anchorer whose key receives the coinbases.
pub struct Harness {
    pub node: Btcd,
    pub state_dir: TempDir,
    pub secret: SecretKey,
    pub kind: ScriptKind,
}

impl Harness {
    pub async fn new(kind: ScriptKind) -> Harness {
        Self::with_btcd_args(kind, &[]).await
    }

    /// As [`Self::new`], btcd started with `extra` options.
    pub async fn with_btcd_args(kind: ScriptKind, extra: &[&str]) -> Harness {
        init_tracing();
        let secret = SecretKey::from_slice(&[0x01; 32]).unwrap();
        let key = AnchorKey::new(secret, kind);
        let node = Btcd::start_with(&key.address(Network::Regtest), extra).await;
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

    /// Mines the confirmations of `a`'s anchor in flight and polls until it is confirmed;
    /// asserts that exactly one transaction on the chain commits its digest.
    pub async fn confirm(&self, a: &mut Anchorer) -> ConfirmedAnchor {
        self.node.mine(u64::from(CONFIRMATIONS)).await;
        let c = a
            .wait_confirmed(Duration::from_millis(50), Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(
            txs_committing(&self.node.rpc(), 1, c.id.digest()).await,
            vec![(c.height, c.txid)],
            "exactly one transaction commits the digest"
        );
        c
    }

    /// The anchorer's key.
    pub fn key(&self) -> AnchorKey {
        AnchorKey::new(self.secret, self.kind)
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
