//! `ipsat testnet init`: homes, genesis and funded keys for a local network.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use ipsat_core::{Amount, SubnetId};

use super::{print, Output};
use crate::testnet;

#[derive(Subcommand)]
pub enum TestnetCommand {
    /// Generate homes for N validators (on loopback unless --hosts), a shared genesis and funded keys.
    Init(TestnetInitArgs),
    /// Set up the whole blocktree of the devnet against running RSK and Bitcoin nodes: the
    /// gateway, level-1 subnet alpha (4 validators), level-2 subnet beta (3), the anchoring
    /// service's home. Each home gets a `.ready` file once its node may start.
    Tree(super::tree::TreeArgs),
    /// Show the tree's subnets, heights, checkpoints and latest anchor, read from an explorer.
    Status(super::tree::StatusArgs),
}

#[derive(Args)]
pub struct TestnetInitArgs {
    /// Number of validators.
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Directory to create; node homes go to <dir>/node<i>, keys to <dir>/keys.
    #[arg(long)]
    pub output_dir: PathBuf,
    #[arg(long, default_value = "/r33/devnet")]
    pub subnet_id: SubnetId,
    #[arg(long, default_value = "ipsat-devnet")]
    pub chain_id: String,
    /// Funded keys to create: "faucet", then "account-1", ...
    #[arg(long, default_value_t = 1)]
    pub accounts: usize,
    /// Genesis balance of each key, in atto-RBTC (default 1,000,000 RBTC).
    #[arg(long, default_value = "1000000000000000000000000")]
    pub balance: Amount,
    /// First port for CometBFT and ABCI; node i uses base+10i+{5 metrics,6 p2p,7 rpc,8 abci}.
    #[arg(long, default_value_t = 26600)]
    pub base_port: u16,
    /// gRPC port of node 0; node i uses this + i.
    #[arg(long, default_value_t = 9090)]
    pub grpc_base_port: u16,
    /// Prometheus port of node 0's ipsat metrics; node i uses this + i.
    #[arg(long, default_value_t = 9464)]
    pub metrics_base_port: u16,
    /// CometBFT's consensus.timeout_commit.
    #[arg(long, default_value = "500ms")]
    pub timeout_commit: String,
    /// The cometbft executable.
    #[arg(long, env = "IPSAT_COMETBFT", default_value = "cometbft")]
    pub cometbft: PathBuf,
    /// Host names or IPs the validators reach each other at, one per validator in order
    /// (e.g. node0,node1,node2,node3 for containers); default: all on 127.0.0.1.
    #[arg(long, value_delimiter = ',')]
    pub hosts: Vec<String>,
    /// Address the P2P, RPC, gRPC and metrics listeners bind (0.0.0.0 in containers). ABCI
    /// always stays on 127.0.0.1: only the node's own CometBFT may reach it.
    #[arg(long, default_value = "127.0.0.1")]
    pub listen_address: IpAddr,
}

pub fn run(args: TestnetInitArgs, output: Output) -> Result<()> {
    let layout = testnet::init(&testnet::TestnetSpec {
        output: args.output_dir,
        validators: args.validators,
        subnet_id: args.subnet_id,
        chain_id: args.chain_id,
        accounts: args.accounts,
        balance: args.balance,
        base_port: args.base_port,
        grpc_base_port: args.grpc_base_port,
        metrics_base_port: args.metrics_base_port,
        timeout_commit: args.timeout_commit,
        cometbft: args.cometbft,
        hosts: args.hosts,
        listen_address: args.listen_address,
    })?;
    let mut human = format!(
        "testnet {} (subnet {}) with {} validators\n",
        layout.chain_id,
        layout.subnet_id,
        layout.nodes.len()
    );
    for node in &layout.nodes {
        human.push_str(&format!(
            "  {}  grpc {}:{}  cometbft rpc {}:{}  p2p {}  abci {}  metrics {}\n",
            node.home.display(),
            node.host,
            node.grpc,
            node.host,
            node.rpc,
            node.p2p,
            node.abci,
            node.metrics
        ));
    }
    human.push_str(&format!("funded keys in {}:\n", layout.keys_dir.display()));
    for (name, address) in &layout.accounts {
        human.push_str(&format!("  {name:<16} {address}\n"));
    }
    print(
        output,
        human.trim_end().to_owned(),
        serde_json::to_value(&layout)?,
    );
    Ok(())
}
