//! The node's home directory and `config/ipsat.toml`, laid out like a CometBFT home:
//!
//! ```text
//! <home>/config/ipsat.toml   this file
//! <home>/cometbft/           the CometBFT home the node runs its consensus from
//! <home>/data/state.db/      RocksDB with the subnet state
//! <home>/keys/               account keys (0600)
//! <home>/logs/cometbft.log   CometBFT's output
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

pub const CONFIG_FILE: &str = "config/ipsat.toml";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub abci: AbciConfig,
    #[serde(default)]
    pub grpc: GrpcConfig,
    #[serde(default)]
    pub cometbft: CometConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub checkpoints: CheckpointsConfig,
    #[serde(default)]
    pub p2p: P2pConfig,
    #[serde(default)]
    pub parent: ParentConfig,
    #[serde(default)]
    pub gateway: GatewayLinkConfig,
    #[serde(default)]
    pub anchor: AnchorConfig,
    #[serde(default)]
    pub explorer: ExplorerConfig,
}

/// `[explorer]`: the web page showing the tree this node sees (its subnet, the children it
/// delivers checkpoints of, the gateway and the latest Bitcoin anchor). Off unless `listen`
/// is set: a validator serves nothing it was not asked to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ExplorerConfig {
    /// Where the page and its JSON are served, e.g. `127.0.0.1:8080`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// A Bitcoin Core-compatible JSON-RPC, for anchor confirmations and for checking that a
    /// proof's Bitcoin block is in its best chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bitcoin_rpc: Option<String>,
    pub bitcoin_user: String,
    pub bitcoin_password: String,
    /// The Bitcoin network proofs are checked against.
    pub network: String,
    /// RSK blocks of anchoring lag, with a blocktree root waiting, past which the page and
    /// `ipsat testnet status` report anchoring as stalled. Default 480: three periods of the
    /// anchoring service's default 120 blocks plus its 6 confirmations at 20 RSK blocks each.
    pub anchor_stall_after_rsk_blocks: u64,
}

impl Default for ExplorerConfig {
    fn default() -> Self {
        Self {
            listen: None,
            bitcoin_rpc: None,
            bitcoin_user: String::new(),
            bitcoin_password: String::new(),
            network: "regtest".into(),
            anchor_stall_after_rsk_blocks: crate::anchor_service::default_stall_threshold(
                AnchorConfig::default().period_rsk_blocks,
                AnchorConfig::default().confirmations,
            ),
        }
    }
}

/// `[anchor]`: the anchoring service (`ipsat anchor start`), which commits the gateway's
/// blocktree root into Bitcoin and records it on the gateway. It reads RSK through
/// `[gateway]` (`rpc`, `address`, `chain_id`, `confirmations`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AnchorConfig {
    /// Bitcoin Core-compatible JSON-RPC (btcd or bitcoind), e.g. `http://127.0.0.1:18334`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bitcoin_rpc: Option<String>,
    pub bitcoin_user: String,
    pub bitcoin_password: String,
    /// `bitcoin`, `testnet`, `signet` or `regtest`.
    pub network: String,
    /// Name of the key in `<home>/keys` whose P2WPKH output pays for anchors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bitcoin_key: Option<String>,
    /// Name of the key in `<home>/keys` that is the gateway's anchorer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rsk_key: Option<String>,
    /// Outputs (`txid:vout`) paying `bitcoin_key` that the anchorer may spend, offered at
    /// start: each is taken only if Bitcoin holds it unspent and (a coinbase) mature, and
    /// skipped with a warning otherwise. Optional: payments to the anchorer's address are found
    /// by the service itself (coinbases aside).
    pub fund: Vec<String>,
    /// RSK blocks between two anchors at least (one anchor per period, and only when the root
    /// changed).
    pub period_rsk_blocks: u64,
    /// Bitcoin confirmations before an anchor is recorded on the gateway.
    pub confirmations: u32,
    /// Fee rate of anchor transactions, sat/vB.
    pub fee_rate_sat_vb: u64,
    /// The highest fee rate a replacement may pay when the Bitcoin node refuses a fee as too
    /// low (each replacement doubles the rate), sat/vB.
    pub max_fee_rate_sat_vb: u64,
    /// RSK blocks of lag, with a blocktree root waiting, past which the service warns that
    /// anchoring is stalled (log, `ipsat_anchor_stalled`, `ipsat anchor status`). Default: three
    /// periods plus the confirmations at 20 RSK blocks each.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stall_after_rsk_blocks: Option<u64>,
    /// How often the service wakes up.
    pub poll_interval_ms: u64,
}

impl AnchorConfig {
    /// [`Self::stall_after_rsk_blocks`], or its default.
    pub fn stall_threshold(&self) -> u64 {
        self.stall_after_rsk_blocks.unwrap_or_else(|| {
            crate::anchor_service::default_stall_threshold(
                self.period_rsk_blocks,
                self.confirmations,
            )
        })
    }
}

impl Default for AnchorConfig {
    fn default() -> Self {
        Self {
            bitcoin_rpc: None,
            bitcoin_user: String::new(),
            bitcoin_password: String::new(),
            network: "regtest".into(),
            bitcoin_key: None,
            rsk_key: None,
            fund: Vec::new(),
            period_rsk_blocks: 120,
            confirmations: 6,
            fee_rate_sat_vb: 2,
            max_fee_rate_sat_vb: 100,
            stall_after_rsk_blocks: None,
            poll_interval_ms: 2_000,
        }
    }
}

/// `[gateway]`: the RSK gateway a level-1 subnet lives under. Off unless `rpc` is set. The
/// node then reads RSK for the subnet's attestations, signs checkpoints for the gateway with
/// `signer_key`, and takes its turn submitting them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayLinkConfig {
    /// RSK JSON-RPC, e.g. `http://127.0.0.1:4444`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpc: Option<String>,
    /// The gateway contract's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The chain id RSK must report (30 mainnet, 31 testnet, 33 regtest).
    pub chain_id: u64,
    /// Blocks on top before an RSK block counts as final (RSK has no finality tag).
    pub confirmations: u64,
    /// Name of the key in `<home>/keys` that is this validator's gateway signer (as it joined
    /// on the gateway) and pays for its submissions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer_key: Option<String>,
    /// Fixed gas price in wei; absent asks RSK (`eth_gasPrice`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gas_price_wei: Option<u128>,
    /// How long the next validator in the rotation waits for the previous one to submit.
    pub submit_timeout_ms: u64,
    /// How often RSK and the gateway are polled.
    pub poll_interval_ms: u64,
}

impl Default for GatewayLinkConfig {
    fn default() -> Self {
        Self {
            rpc: None,
            address: None,
            chain_id: 33,
            confirmations: 12,
            signer_key: None,
            gas_price_wei: None,
            submit_timeout_ms: 20_000,
            poll_interval_ms: 1_000,
        }
    }
}

/// `[parent]`: where a child's node reads its parent (headers, top-down messages). Nothing
/// read is trusted: the subnet verifies every header and proof itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ParentConfig {
    /// gRPC endpoints of parent nodes, e.g. `http://127.0.0.1:9090`, asked in turn, one per
    /// poll, so no single one can stall or fool the subnet.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grpc: Vec<String>,
    /// How often the parent is polled.
    pub poll_interval_ms: u64,
}

impl Default for ParentConfig {
    fn default() -> Self {
        Self {
            grpc: Vec::new(),
            poll_interval_ms: 1_000,
        }
    }
}

/// `[p2p]`: the libp2p gossip plane that carries certified checkpoints from children to
/// parents. Off unless `listen` or `bootstrap` names an address.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct P2pConfig {
    /// Multiaddrs to listen on, e.g. `/ip4/0.0.0.0/tcp/26670`.
    pub listen: Vec<String>,
    /// Multiaddrs of peers to dial, and redial while disconnected.
    pub bootstrap: Vec<String>,
    /// The node's libp2p identity (relative to the home); created on first start.
    pub key: PathBuf,
}

impl Default for P2pConfig {
    fn default() -> Self {
        Self {
            listen: Vec::new(),
            bootstrap: Vec::new(),
            key: "config/p2p_key.json".into(),
        }
    }
}

impl P2pConfig {
    /// Whether the node takes part in the gossip plane.
    pub fn enabled(&self) -> bool {
        !self.listen.is_empty() || !self.bootstrap.is_empty()
    }
}

/// `[checkpoints]`: signing this subnet's checkpoints and delivering children's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointsConfig {
    /// The BLS key file (relative to the home) this validator signs checkpoints with; absent
    /// on a node that does not sign.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bls_key: Option<PathBuf>,
    /// Children whose certified checkpoints this node pulls and proposes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildEndpoint>,
    /// How often the children are polled.
    pub poll_interval_ms: u64,
}

impl Default for CheckpointsConfig {
    fn default() -> Self {
        Self {
            bls_key: None,
            children: Vec::new(),
            poll_interval_ms: 1_000,
        }
    }
}

/// A child subnet whose checkpoints this node delivers: heard on the gossip plane (when
/// `[p2p]` is on) and, if `grpc` names one of the child's nodes, pulled from it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChildEndpoint {
    /// The child's name under this subnet.
    pub name: String,
    /// e.g. `http://127.0.0.1:9190`; absent to rely on gossip alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AbciConfig {
    /// Where the ABCI server listens; must equal `proxy_app` in CometBFT's config.toml.
    pub listen: SocketAddr,
}

impl Default for AbciConfig {
    fn default() -> Self {
        Self {
            listen: ([127, 0, 0, 1], 26658).into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcConfig {
    /// Where the gRPC API (ipsat.v1, health, reflection) listens.
    pub listen: SocketAddr,
    /// How long a BROADCAST_MODE_COMMIT call waits at most, in milliseconds.
    pub commit_timeout_ms: u64,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            listen: ([127, 0, 0, 1], 9090).into(),
            commit_timeout_ms: 30_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CometConfig {
    /// The `cometbft` executable; a bare name is looked up on PATH.
    pub binary: PathBuf,
    /// CometBFT home, relative to the node home unless absolute.
    pub home: PathBuf,
    /// CometBFT's RPC address (its `rpc.laddr`), used to broadcast and read headers.
    pub rpc: String,
    /// Whether `node start` launches and supervises CometBFT, or it runs separately.
    pub supervise: bool,
}

impl Default for CometConfig {
    fn default() -> Self {
        Self {
            binary: "cometbft".into(),
            home: "cometbft".into(),
            rpc: "http://127.0.0.1:26657".into(),
            supervise: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Prometheus text endpoint (`/metrics`); empty disables it.
    pub listen: Option<SocketAddr>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: Some(([127, 0, 0, 1], 9464).into()),
        }
    }
}

impl Config {
    pub fn load(home: &Path) -> Result<Self> {
        let path = home.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {} (run `ipsat testnet init` or `ipsat init`)",
                path.display()
            )
        })?;
        toml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))
    }

    pub fn write(&self, home: &Path) -> Result<()> {
        let path = home.join(CONFIG_FILE);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let text = format!(
            "# ipsat node configuration. Every key is optional; the values shown are in force.\n{}",
            toml::to_string_pretty(self)?
        );
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    }

    pub fn cometbft_home(&self, home: &Path) -> PathBuf {
        home.join(&self.cometbft.home)
    }
}

pub fn state_db_path(home: &Path) -> PathBuf {
    home.join("data").join("state.db")
}

pub fn keys_dir(home: &Path) -> PathBuf {
    home.join("keys")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::default();
        config.write(dir.path()).unwrap();
        assert_eq!(Config::load(dir.path()).unwrap(), config);
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "[grpc]\nlisten = \"127.0.0.1:1\"\nbogus = 1\n",
        )
        .unwrap();
        let err = format!("{:#}", Config::load(dir.path()).unwrap_err());
        assert!(err.contains("bogus"), "{err}");
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "[abci]\nlisten = \"not an address\"\n",
        )
        .unwrap();
        assert!(Config::load(dir.path()).is_err());
    }

    #[test]
    fn every_key_of_every_table_is_optional() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        let defaults = Config::default();
        for (text, expected) in [
            ("[abci]\n", defaults.clone()),
            ("[grpc]\nlisten = \"127.0.0.1:1\"\n", {
                let mut c = defaults.clone();
                c.grpc.listen = ([127, 0, 0, 1], 1).into();
                c
            }),
            ("[grpc]\ncommit_timeout_ms = 5\n", {
                let mut c = defaults.clone();
                c.grpc.commit_timeout_ms = 5;
                c
            }),
            ("[cometbft]\nsupervise = false\n", {
                let mut c = defaults.clone();
                c.cometbft.supervise = false;
                c
            }),
            ("[cometbft]\nrpc = \"http://127.0.0.1:1\"\n", {
                let mut c = defaults.clone();
                c.cometbft.rpc = "http://127.0.0.1:1".into();
                c
            }),
            ("[checkpoints]\n", defaults.clone()),
            ("[p2p]\n", defaults.clone()),
            ("[p2p]\nbootstrap = [\"/ip4/127.0.0.1/tcp/1\"]\n", {
                let mut c = defaults.clone();
                c.p2p.bootstrap = vec!["/ip4/127.0.0.1/tcp/1".into()];
                c
            }),
            ("[checkpoints]\nbls_key = \"config/bls_key.json\"\n", {
                let mut c = defaults.clone();
                c.checkpoints.bls_key = Some("config/bls_key.json".into());
                c
            }),
            (
                "[[checkpoints.children]]\nname = \"beta\"\ngrpc = \"http://127.0.0.1:1\"\n",
                {
                    let mut c = defaults.clone();
                    c.checkpoints.children.push(ChildEndpoint {
                        name: "beta".into(),
                        grpc: Some("http://127.0.0.1:1".into()),
                    });
                    c
                },
            ),
        ] {
            std::fs::write(dir.path().join(CONFIG_FILE), text).unwrap();
            assert_eq!(Config::load(dir.path()).unwrap(), expected, "{text}");
        }
    }
}
