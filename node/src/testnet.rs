//! `ipsat testnet init`: a local multi-validator subnet, on loopback by default or across
//! container hosts (`--hosts`, `--listen-address`). CometBFT generates the
//! validator keys and base configs; this module lays them out as ipsat homes, assigns ports,
//! writes the shared genesis with the ipsat `app_state`, and funds fresh account keys.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use ipsat_core::{Amount, SubnetId};
use ipsat_subnet::{FeeParams, Genesis, GenesisAccount};
use serde::Serialize;
use toml_edit::{value, DocumentMut};

use crate::cometbft::run_command;
use crate::commands::tx::{ClientConfig, CLIENT_CONFIG};
use crate::config::{
    keys_dir, AbciConfig, AnchorConfig, CheckpointsConfig, CometConfig, Config, ExplorerConfig,
    GatewayLinkConfig, GrpcConfig, MetricsConfig, P2pConfig, ParentConfig,
};
use crate::keys;

pub struct TestnetSpec {
    pub output: PathBuf,
    pub validators: usize,
    pub subnet_id: SubnetId,
    pub chain_id: String,
    pub accounts: usize,
    pub balance: Amount,
    pub base_port: u16,
    pub grpc_base_port: u16,
    pub metrics_base_port: u16,
    pub timeout_commit: String,
    pub cometbft: PathBuf,
    /// Where validator `i` is reached by its peers; empty means all on 127.0.0.1.
    pub hosts: Vec<String>,
    /// What P2P, RPC, gRPC and metrics bind.
    pub listen_address: IpAddr,
}

/// Ports of one validator; node `i` uses `base + 10 i + offset` for CometBFT and ABCI.
#[derive(Debug, Serialize)]
pub struct NodePorts {
    pub home: PathBuf,
    /// Where its peers and clients reach it.
    pub host: String,
    pub p2p: u16,
    pub rpc: u16,
    pub abci: u16,
    pub grpc: u16,
    pub metrics: u16,
    pub cometbft_metrics: u16,
}

#[derive(Debug, Serialize)]
pub struct TestnetLayout {
    pub chain_id: String,
    pub subnet_id: String,
    pub nodes: Vec<NodePorts>,
    pub accounts: Vec<(String, String)>,
    pub keys_dir: PathBuf,
}

fn ports(spec: &TestnetSpec, i: usize, host: String) -> Result<NodePorts> {
    let offset = |base: u16, step: usize, add: usize| -> Result<u16> {
        u16::try_from(usize::from(base) + step * i + add)
            .with_context(|| format!("port for node {i} exceeds 65535; lower the base port"))
    };
    Ok(NodePorts {
        home: spec.output.join(format!("node{i}")),
        host,
        cometbft_metrics: offset(spec.base_port, 10, 5)?,
        p2p: offset(spec.base_port, 10, 6)?,
        rpc: offset(spec.base_port, 10, 7)?,
        abci: offset(spec.base_port, 10, 8)?,
        grpc: offset(spec.grpc_base_port, 1, 0)?,
        metrics: offset(spec.metrics_base_port, 1, 0)?,
    })
}

pub fn init(spec: &TestnetSpec) -> Result<TestnetLayout> {
    ensure!(
        (1..=32).contains(&spec.validators),
        "--validators must be 1..=32, got {}",
        spec.validators
    );
    ensure!(
        spec.accounts >= 1,
        "--accounts must be at least 1 (the faucet)"
    );
    let hosts = peer_hosts(&spec.hosts, spec.validators)?;
    if spec.output.exists() && std::fs::read_dir(&spec.output)?.next().is_some() {
        bail!(
            "{} exists and is not empty; choose another --output-dir or remove it",
            spec.output.display()
        );
    }
    let generated = spec.output.join(".cometbft-testnet");
    let generated_arg = generated.to_string_lossy().into_owned();
    run_command(
        &spec.cometbft,
        &[
            "testnet",
            "--v",
            &spec.validators.to_string(),
            "--o",
            &generated_arg,
            "--populate-persistent-peers=false",
        ],
    )?;

    let nodes = (0..spec.validators)
        .map(|i| ports(spec, i, hosts[i].clone()))
        .collect::<Result<Vec<_>>>()?;
    let mut peers = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let cometbft_home = node.home.join("cometbft");
        std::fs::create_dir_all(&node.home)?;
        std::fs::rename(generated.join(format!("node{i}")), &cometbft_home)
            .context("moving the generated CometBFT home")?;
        let home_arg = cometbft_home.to_string_lossy().into_owned();
        let node_id = run_command(&spec.cometbft, &["show-node-id", "--home", &home_arg])?;
        peers.push(format!("{}@{}:{}", node_id.trim(), node.host, node.p2p));
    }
    std::fs::remove_dir_all(&generated)?;

    let client = ClientConfig {
        subnet_id: spec.subnet_id.clone(),
    };
    let client_path = spec.output.join(CLIENT_CONFIG);
    if let Some(dir) = client_path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&client_path, toml::to_string(&client)?)
        .with_context(|| format!("writing {}", client_path.display()))?;
    let keys_dir = keys_dir(&spec.output);
    let mut accounts = Vec::new();
    for n in 0..spec.accounts {
        let name = if n == 0 {
            "faucet".to_owned()
        } else {
            format!("account-{n}")
        };
        let key = keys::create(&keys_dir, &name)?;
        accounts.push((name, key.address));
    }
    let app_state = Genesis {
        subnet_id: spec.subnet_id.clone(),
        fees: FeeParams::default(),
        accounts: accounts
            .iter()
            .map(|(_, address)| GenesisAccount {
                address: *address,
                balance: spec.balance,
            })
            .collect(),
        validators: Vec::new(),
        checkpoints: None,
        parent: None,
    };
    let genesis = patched_genesis(&nodes[0].home.join("cometbft"), &spec.chain_id, &app_state)?;
    let genesis = serde_json::to_string_pretty(&genesis)?;
    // The client side of the output directory verifies headers from this genesis's validators.
    std::fs::write(spec.output.join("config/genesis.json"), &genesis)
        .context("writing the client's copy of the genesis")?;

    for (i, node) in nodes.iter().enumerate() {
        let cometbft_home = node.home.join("cometbft");
        std::fs::write(cometbft_home.join("config/genesis.json"), &genesis)?;
        let other_peers: Vec<&str> = peers
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, p)| p.as_str())
            .collect();
        patch_cometbft_config(
            &cometbft_home,
            i,
            node,
            spec.listen_address,
            &other_peers.join(","),
            &spec.timeout_commit,
        )?;
        node_config(
            node,
            spec.listen_address,
            &spec.cometbft,
            CheckpointsConfig::default(),
        )
        .write(&node.home)?;
    }
    Ok(TestnetLayout {
        chain_id: spec.chain_id.clone(),
        subnet_id: spec.subnet_id.to_string(),
        nodes,
        accounts: accounts
            .into_iter()
            .map(|(name, address)| (name, address.to_string()))
            .collect(),
        keys_dir,
    })
}

/// The CometBFT genesis generated in `cometbft_home`, with our chain id and `app_state`, and
/// vote extensions on from the first block.
pub fn patched_genesis(
    cometbft_home: &Path,
    chain_id: &str,
    app_state: &Genesis,
) -> Result<serde_json::Value> {
    let path = cometbft_home.join("config/genesis.json");
    let mut genesis: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)
        .with_context(|| format!("parsing {}", path.display()))?;
    genesis["chain_id"] = chain_id.into();
    genesis["initial_height"] = "1".into();
    genesis["app_state"] = serde_json::to_value(app_state)?;
    // Vote extensions carry checkpoint signatures; they cannot be switched on later.
    genesis["consensus_params"]["abci"]["vote_extensions_enable_height"] = "1".into();
    Ok(genesis)
}

/// One peer host per validator: `--hosts` as given, or loopback for all.
fn peer_hosts(hosts: &[String], validators: usize) -> Result<Vec<String>> {
    if hosts.is_empty() {
        return Ok(vec![Ipv4Addr::LOCALHOST.to_string(); validators]);
    }
    ensure!(
        hosts.len() == validators,
        "--hosts names {} hosts for {validators} validators; give one per validator",
        hosts.len()
    );
    for host in hosts {
        ensure!(
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')),
            "--hosts entry {host:?} is not a host name or IPv4 address"
        );
    }
    Ok(hosts.to_vec())
}

/// The ipsat config of a node with `ports`, listening on `listen` (ABCI on loopback only).
pub fn node_config(
    node: &NodePorts,
    listen: IpAddr,
    cometbft: &Path,
    checkpoints: CheckpointsConfig,
) -> Config {
    Config {
        abci: AbciConfig {
            listen: (Ipv4Addr::LOCALHOST, node.abci).into(),
        },
        grpc: GrpcConfig {
            listen: (listen, node.grpc).into(),
            ..GrpcConfig::default()
        },
        cometbft: CometConfig {
            binary: cometbft.to_owned(),
            rpc: format!("http://127.0.0.1:{}", node.rpc),
            ..CometConfig::default()
        },
        metrics: MetricsConfig {
            listen: Some((listen, node.metrics).into()),
        },
        checkpoints,
        p2p: P2pConfig::default(),
        parent: ParentConfig::default(),
        gateway: GatewayLinkConfig::default(),
        anchor: AnchorConfig::default(),
        explorer: ExplorerConfig::default(),
    }
}

/// Points a CometBFT home's `config.toml` at this node's ports, peers and timing.
pub fn patch_cometbft_config(
    cometbft_home: &Path,
    index: usize,
    node: &NodePorts,
    listen: IpAddr,
    peers: &str,
    timeout_commit: &str,
) -> Result<()> {
    let path = cometbft_home.join("config/config.toml");
    let mut doc: DocumentMut = std::fs::read_to_string(&path)?
        .parse()
        .with_context(|| format!("parsing {}", path.display()))?;
    doc["moniker"] = value(format!("node{index}"));
    doc["proxy_app"] = value(format!("tcp://127.0.0.1:{}", node.abci));
    doc["rpc"]["laddr"] = value(format!("tcp://{listen}:{}", node.rpc));
    doc["p2p"]["laddr"] = value(format!("tcp://{listen}:{}", node.p2p));
    doc["p2p"]["persistent_peers"] = value(peers);
    doc["p2p"]["addr_book_strict"] = value(false);
    doc["p2p"]["allow_duplicate_ip"] = value(true);
    doc["consensus"]["timeout_commit"] = value(timeout_commit);
    doc["mempool"]["size"] = value(50_000);
    doc["mempool"]["cache_size"] = value(100_000);
    doc["instrumentation"]["prometheus"] = value(true);
    doc["instrumentation"]["prometheus_listen_addr"] =
        value(format!("{listen}:{}", node.cometbft_metrics));
    std::fs::write(&path, doc.to_string()).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn peers_default_to_loopback() {
        assert_eq!(peer_hosts(&[], 3).unwrap(), names(&["127.0.0.1"; 3]));
    }

    #[test]
    fn peers_take_one_host_per_validator() {
        let hosts = names(&["node0", "node1.example", "10.0.0.7"]);
        assert_eq!(peer_hosts(&hosts, 3).unwrap(), hosts);
        let error = peer_hosts(&hosts, 4).unwrap_err().to_string();
        assert!(error.contains("3 hosts for 4 validators"), "{error}");
    }

    #[test]
    fn peers_refuse_what_is_not_a_host() {
        for bad in ["", "node0:26656", "a b", "id@node0", "node0,"] {
            let error = peer_hosts(&names(&[bad]), 1).unwrap_err().to_string();
            assert!(error.contains("not a host name"), "{bad:?}: {error}");
        }
    }
}
