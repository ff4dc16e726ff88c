//! Child subnets on real CometBFT, set up only through the CLI an operator uses: registered
//! with `ipsat subnet create` and `join` in the parent, each validator's home written by
//! `ipsat subnet init` from the parent's registry, then started.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};

use crate::Testnet;

/// Where a child's validators listen: validator `i` uses `base + 10 i` plus 5 (CometBFT
/// metrics), 6 (P2P), 7 (RPC), 8 (ABCI) and 9 (gossip), gRPC `grpc_base + i` and metrics
/// `metrics_base + i`.
#[derive(Debug, Clone, Copy)]
pub struct ChildPorts {
    /// The first validator's base.
    pub base: u16,
    /// The first validator's gRPC port.
    pub grpc_base: u16,
    /// The first validator's metrics port.
    pub metrics_base: u16,
}

impl ChildPorts {
    /// Port `offset` (5 to 9) of validator `i`.
    pub fn port(&self, i: usize, offset: u16) -> u16 {
        self.base + 10 * i as u16 + offset
    }

    /// Validator `i`'s gRPC port.
    pub fn grpc(&self, i: usize) -> u16 {
        self.grpc_base + i as u16
    }

    /// Validator `i`'s metrics port.
    pub fn metrics(&self, i: usize) -> u16 {
        self.metrics_base + i as u16
    }

    /// The port flags of `subnet init` or `gateway init` for validator `i`, gossip on port 9
    /// if `gossip`, off otherwise.
    pub fn flags(&self, i: usize, gossip: bool) -> Vec<String> {
        [
            ("--cometbft-metrics-port", self.port(i, 5)),
            ("--p2p-port", self.port(i, 6)),
            ("--rpc-port", self.port(i, 7)),
            ("--abci-port", self.port(i, 8)),
            ("--grpc-port", self.grpc(i)),
            ("--metrics-port", self.metrics(i)),
            ("--gossip-port", if gossip { self.port(i, 9) } else { 0 }),
        ]
        .into_iter()
        .flat_map(|(flag, port)| [flag.to_owned(), port.to_string()])
        .collect()
    }
}

/// Runs the CLI against the parent's node 0 and returns its output, failing on an error.
pub fn cli(net: &Testnet, args: &[&str]) -> Result<String> {
    let (ok, stdout, stderr) = net.cli(args)?;
    ensure!(ok, "ipsat {args:?} failed:\n{stderr}\n{stdout}");
    Ok(stdout)
}

/// Runs the CLI against the node at `grpc_port` and returns its output, failing on an error.
pub fn cli_at(net: &Testnet, grpc_port: u16, args: &[&str]) -> Result<String> {
    let (ok, stdout, stderr) = net.cli_at(grpc_port, args)?;
    ensure!(ok, "ipsat {args:?} failed:\n{stderr}\n{stdout}");
    Ok(stdout)
}

/// Creates child `name` of the subnet whose node serves gRPC on `parent` (checkpoint every
/// `period` blocks, one validator per account of `joiners`, each staking 10 gwei of power),
/// and joins it from each joiner, which makes its validator home; the homes.
pub fn register(
    net: &Testnet,
    parent: u16,
    name: &str,
    period: u64,
    joiners: &[&str],
) -> Result<Vec<PathBuf>> {
    let status: serde_json::Value =
        serde_json::from_str(&cli_at(net, parent, &["status", "--output", "json"])?)?;
    let subnet = status["subnet_id"]
        .as_str()
        .context("the parent's status names no subnet")?
        .to_owned();
    cli_at(
        net,
        parent,
        &[
            "subnet",
            "create",
            name,
            "--min-validators",
            &joiners.len().to_string(),
            "--min-collateral",
            "1000000000",
            "--checkpoint-period",
            &period.to_string(),
            "--from",
            "faucet",
            "--subnet",
            &subnet,
        ],
    )?;
    let mut homes = Vec::with_capacity(joiners.len());
    for (i, joiner) in joiners.iter().enumerate() {
        let home = net.path(&format!("{name}{i}"));
        cli_at(
            net,
            parent,
            &[
                "subnet",
                "join",
                name,
                "--collateral",
                "10000000000",
                "--validator-home",
                home.to_str().context("utf-8 path")?,
                "--from",
                joiner,
                "--subnet",
                &subnet,
            ],
        )?;
        homes.push(home);
    }
    Ok(homes)
}

/// The CometBFT node id of the node at `home`.
pub fn node_id(home: &Path) -> Result<String> {
    let out = std::process::Command::new("cometbft")
        .args(["show-node-id", "--home"])
        .arg(home.join("cometbft"))
        .output()?;
    ensure!(out.status.success(), "cometbft show-node-id failed");
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// Writes the home of node `index` of child `name` with `ipsat subnet init` against the
/// parent node serving gRPC on `parent`: its ports from `ports`, `peers` (`id@host:port`),
/// 300 ms blocks, gossip on port 9 if `gossip`, following the parent at `parent_grpc` (that
/// node if empty). What the command printed.
#[allow(clippy::too_many_arguments)] // One per flag a validator's operator chooses.
pub fn init_home(
    net: &Testnet,
    parent: u16,
    name: &str,
    home: &Path,
    index: usize,
    ports: &ChildPorts,
    peers: &[String],
    gossip: bool,
    parent_grpc: &[String],
) -> Result<serde_json::Value> {
    let mut args: Vec<String> = [
        "subnet",
        "init",
        name,
        "--validator-home",
        home.to_str().context("utf-8 path")?,
        "--persistent-peers",
        &peers.join(","),
        "--timeout-commit",
        "300ms",
        "--output",
        "json",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(ports.flags(index, gossip));
    for endpoint in parent_grpc {
        args.push("--parent-grpc".into());
        args.push(endpoint.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Ok(serde_json::from_str(&cli_at(net, parent, &args)?)?)
}

/// Writes every validator home of child `name` with `ipsat subnet init` against the parent
/// node serving gRPC on `parent` (peers on loopback, 300 ms blocks, gossip on port 9 if
/// `gossip`, following the parent at `parent_grpc`, or at that node if it is empty), adopts
/// them into `net` and starts them; their indices in `net`.
pub fn start(
    net: &mut Testnet,
    parent: u16,
    name: &str,
    homes: &[PathBuf],
    ports: &ChildPorts,
    gossip: bool,
    parent_grpc: &[String],
) -> Result<Vec<usize>> {
    let ids = homes
        .iter()
        .map(|h| node_id(h))
        .collect::<Result<Vec<_>>>()?;
    for (i, home) in homes.iter().enumerate() {
        let peers: Vec<String> = (0..homes.len())
            .filter(|j| *j != i)
            .map(|j| format!("{}@127.0.0.1:{}", ids[j], ports.port(j, 6)))
            .collect();
        let written = init_home(
            net,
            parent,
            name,
            home,
            i,
            ports,
            &peers,
            gossip,
            parent_grpc,
        )?;
        ensure!(
            written["validator"] == true,
            "{name} validator {i} is not in the genesis set"
        );
    }
    let genesis = |home: &PathBuf| std::fs::read(home.join("cometbft/config/genesis.json"));
    let first = genesis(&homes[0])?;
    for home in &homes[1..] {
        ensure!(
            genesis(home)? == first,
            "the validators of {name} got different genesis files"
        );
    }
    let mut indices = Vec::with_capacity(homes.len());
    for (i, home) in homes.iter().enumerate() {
        let index = net.adopt(home.clone(), ports.grpc(i));
        net.start(index)?;
        indices.push(index);
    }
    Ok(indices)
}
