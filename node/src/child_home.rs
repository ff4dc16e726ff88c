//! The home of a child subnet's validator, built from the parent's registry: its keys
//! (CometBFT's ed25519 key made by `cometbft init`, a BLS key at `config/bls_key.json`,
//! both 0600), then, once the child has started, CometBFT's genesis (the parent's genesis
//! validators with their powers, the child's chain id, the parent block time the child
//! started at) with our genesis as `app_state`, and both configs.
//!
//! Every validator of a child builds the same `genesis.json` from the same parent record, so
//! nobody has to pass a genesis file around.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use ipsat_checkpoint::BlsSecretKey;
use ipsat_core::types::cometbft_address;
use ipsat_proto::v1 as pb;
use ipsat_subnet::Genesis;
use serde_json::json;

use crate::cometbft::run_command;
use crate::config::{CheckpointsConfig, GatewayLinkConfig};
use crate::keys;
use crate::testnet::{node_config, patch_cometbft_config, patched_genesis, NodePorts};

/// Where the BLS key lives in a validator's home.
pub const BLS_KEY_FILE: &str = "config/bls_key.json";

/// The keys a validator registers when it joins a child.
pub struct ValidatorKeys {
    /// Its CometBFT ed25519 public key.
    pub ed25519: [u8; 32],
    /// Its BLS checkpoint key.
    pub bls: BlsSecretKey,
    /// Its CometBFT node id, for peers' `persistent_peers`.
    pub node_id: String,
}

fn cometbft_home(home: &Path) -> PathBuf {
    home.join("cometbft")
}

/// Creates the validator's keys in `home` unless they exist, and returns them.
pub fn ensure_keys(home: &Path, cometbft: &Path) -> Result<ValidatorKeys> {
    let comet = cometbft_home(home);
    let key_file = comet.join("config/priv_validator_key.json");
    if !key_file.exists() {
        let comet_arg = comet.to_string_lossy().into_owned();
        run_command(cometbft, &["init", "--home", &comet_arg])?;
    }
    let text = std::fs::read_to_string(&key_file)
        .with_context(|| format!("reading {}", key_file.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", key_file.display()))?;
    let ed25519: [u8; 32] = value["pub_key"]["value"]
        .as_str()
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .and_then(|bytes| bytes.try_into().ok())
        .with_context(|| format!("{} holds no ed25519 public key", key_file.display()))?;
    let bls_path = home.join(BLS_KEY_FILE);
    let bls = if bls_path.exists() {
        keys::load_bls(&bls_path)?
    } else {
        keys::create_bls(&bls_path)?
    };
    let comet_arg = comet.to_string_lossy().into_owned();
    let node_id = run_command(cometbft, &["show-node-id", "--home", &comet_arg])?
        .trim()
        .to_owned();
    Ok(ValidatorKeys {
        ed25519,
        bls,
        node_id,
    })
}

/// What `ipsat subnet init` writes besides the keys.
pub struct ChildHome<'a> {
    /// The child as the parent's registry holds it.
    pub subnet: &'a pb::Subnet,
    /// The child's genesis, from that record.
    pub genesis: &'a Genesis,
    /// The time of the parent block the child started at (RFC 3339): the genesis time.
    pub genesis_time: &'a str,
    /// This node's ports.
    pub ports: &'a NodePorts,
    /// What the node's listeners bind.
    pub listen: IpAddr,
    /// `id@host:port` of the other validators.
    pub persistent_peers: &'a str,
    /// CometBFT's consensus.timeout_commit.
    pub timeout_commit: &'a str,
    /// The cometbft executable.
    pub cometbft: &'a Path,
    /// gRPC endpoints of parent nodes to follow.
    pub parent_grpc: &'a [String],
    /// Where the node listens for the gossip plane (none: it does not gossip).
    pub gossip_listen: Option<String>,
    /// For a level-1 subnet, the `[gateway]` section.
    pub gateway: Option<GatewayLinkConfig>,
}

/// Writes the CometBFT genesis and config and the ipsat config into `home`, whose keys
/// [`ensure_keys`] made. Refuses a home that already has state.
pub fn write(home: &Path, child: &ChildHome<'_>) -> Result<()> {
    if home.join("data").exists() {
        bail!(
            "{} already holds chain data; `subnet init` only prepares a new home",
            home.display()
        );
    }
    let comet = cometbft_home(home);
    let mut genesis = patched_genesis(&comet, &child.subnet.chain_id, child.genesis)?;
    genesis["genesis_time"] = child.genesis_time.into();
    genesis["validators"] = child
        .subnet
        .genesis_validators
        .iter()
        .map(|v| {
            let key: [u8; 32] = v
                .cometbft_key
                .as_slice()
                .try_into()
                .context("ed25519 key")?;
            Ok(json!({
                "address": hex::encode_upper(cometbft_address(&key)),
                "pub_key": {
                    "type": "tendermint/PubKeyEd25519",
                    "value": base64::engine::general_purpose::STANDARD.encode(key),
                },
                "power": v.power.to_string(),
                "name": format!("validator-{}", hex::encode(&v.address[..4])),
            }))
        })
        .collect::<Result<Vec<_>>>()?
        .into();
    let path = comet.join("config/genesis.json");
    std::fs::write(&path, serde_json::to_string_pretty(&genesis)?)
        .with_context(|| format!("writing {}", path.display()))?;
    patch_cometbft_config(
        &comet,
        0,
        child.ports,
        child.listen,
        child.persistent_peers,
        child.timeout_commit,
    )?;
    let checkpoints = CheckpointsConfig {
        bls_key: Some(BLS_KEY_FILE.into()),
        ..CheckpointsConfig::default()
    };
    let mut config = node_config(child.ports, child.listen, child.cometbft, checkpoints);
    config.p2p.listen = child.gossip_listen.iter().cloned().collect();
    config.parent.grpc = child.parent_grpc.to_vec();
    if let Some(gateway) = &child.gateway {
        config.gateway = gateway.clone();
    }
    config.write(home)
}
