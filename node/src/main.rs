//! `ipsat`: the IPsatoshi node and its command-line client.
//!
//! The binary's edge: argument parsing, logging, human and JSON output, and `anyhow`
//! errors with context. The state machine lives in `ipsat-subnet`; this crate wires it to
//! CometBFT (ABCI), to dApps (gRPC) and to operators (CLI, config, metrics).

mod abci;
mod anchor_service;
mod child_home;
mod client;
mod cometbft;
mod commands;
mod config;
mod delivery;
mod explorer;
#[cfg(test)]
mod fuzz;
mod gateway_link;
mod gossip;
mod grpc;
mod keys;
mod limits;
mod metrics;
mod node;
mod parent_follower;
mod supervisor;
mod testnet;

use std::io::IsTerminal as _;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use commands::anchor::AnchorCommand;
use commands::checkpoint::CheckpointCommand;
use commands::gateway::GatewayCommand;
use commands::keys::KeysCommand;
use commands::message::MessageCommand;
use commands::node::NodeCommand;
use commands::proof::ProofArgs;
use commands::query::QueryCommand;
use commands::relay::RelayArgs;
use commands::subnet::SubnetCommand;
use commands::testnet::TestnetCommand;
use commands::tx::TxArgs;
use commands::Output;

#[derive(Parser)]
#[command(
    name = "ipsat",
    version,
    about = "IPsatoshi node and client for a blocktree of BFT subnets"
)]
struct Cli {
    /// Home directory: config, state, keys (CometBFT-style layout).
    #[arg(long, global = true, env = "IPSAT_HOME", default_value_os_t = default_home())]
    home: PathBuf,
    /// gRPC endpoint of the node that client commands talk to.
    #[arg(
        long,
        global = true,
        env = "IPSAT_NODE",
        default_value = "http://127.0.0.1:9090"
    )]
    node: String,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Output::Human)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

fn default_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".ipsat")
}

#[derive(Subcommand)]
enum Command {
    /// Manage account keys in <home>/keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Create local multi-validator networks.
    #[command(subcommand)]
    Testnet(TestnetCommand),
    /// Run a validator node.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Sign and broadcast transactions (waits for commit unless --no-wait).
    Tx(TxArgs),
    /// Read state, optionally with a verified proof.
    #[command(subcommand)]
    Query(QueryCommand),
    /// Show the node's subnet, height and roots.
    Status,
    /// Child subnets: create, join, leave, kill, list, show, and init a validator's home.
    #[command(subcommand)]
    Subnet(SubnetCommand),
    /// The anchoring service: commits the gateway's blocktree root into Bitcoin.
    #[command(subcommand)]
    Anchor(AnchorCommand),
    /// Level-1 subnets on the RSK gateway: join, and init a validator's home.
    #[command(subcommand)]
    Gateway(GatewayCommand),
    /// This subnet's checkpoints, or a child's accepted here.
    #[command(subcommand)]
    Checkpoint(CheckpointCommand),
    /// Submit a child's certified checkpoints to its parent (--node) until it has caught up.
    Relay(RelayArgs),
    /// Cross-net messages this subnet originated, with their status.
    #[command(subcommand)]
    Message(MessageCommand),
    /// Prove a key of any subnet up to a Bitcoin block (`ipsat proof <SUBNET> <KEYSPACE> <KEY>
    /// -o FILE`), or check such a proof offline (`ipsat proof verify FILE`).
    Proof(ProofArgs),
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, not in log files and container logs.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let keys_dir = config::keys_dir(&cli.home);
    match cli.command {
        Command::Keys(command) => commands::keys::run(command, &keys_dir, cli.output),
        Command::Testnet(TestnetCommand::Init(args)) => commands::testnet::run(args, cli.output),
        Command::Testnet(TestnetCommand::Tree(args)) => commands::tree::run(args, cli.output).await,
        Command::Testnet(TestnetCommand::Status(args)) => {
            commands::tree::status(args, cli.output).await
        }
        Command::Node(command) => commands::node::run(command, &cli.home).await,
        Command::Tx(args) => commands::tx::run(args, &cli.home, &cli.node, cli.output).await,
        Command::Query(command) => {
            commands::query::run(command, &cli.home, &cli.node, cli.output).await
        }
        Command::Status => commands::status::run(&cli.node, cli.output).await,
        Command::Subnet(command) => {
            commands::subnet::run(command, &cli.home, &cli.node, cli.output).await
        }
        Command::Checkpoint(command) => {
            commands::checkpoint::run(command, &cli.node, cli.output).await
        }
        Command::Anchor(command) => commands::anchor::run(command, &cli.home, cli.output).await,
        Command::Gateway(command) => commands::gateway::run(command, &cli.home, cli.output).await,
        Command::Relay(args) => commands::relay::run(args, &cli.node, cli.output).await,
        Command::Message(command) => commands::message::run(command, &cli.node, cli.output).await,
        Command::Proof(args) => commands::proof::run(args, &cli.node, cli.output).await,
    }
}
