//! `ipsat`: the IPsatoshi node and its command-line client.
//!
//! The binary's edge: argument parsing, logging, human and JSON output, and `anyhow`
//! errors with context. The state machine lives in `ipsat-subnet`; this crate wires it to
//! CometBFT (ABCI), to dApps (gRPC) and to operators (CLI, config, metrics).

mod abci;
mod client;
mod cometbft;
mod config;
mod grpc;
mod keys;
mod metrics;
mod node;
mod testnet;

use std::io::IsTerminal as _;
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use ipsat_proto::v1::{self as pb, tx_body::Msg};
use ipsat_subnet::{Address, Amount, SubnetId};
use serde_json::json;

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

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Human,
    Json,
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
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a new random key (file mode 0600).
    New { name: String },
    /// List keys and their addresses.
    List,
    /// Show one key's address.
    Show { name: String },
}

#[derive(Subcommand)]
enum TestnetCommand {
    /// Generate homes for N validators (on loopback unless --hosts), a shared genesis and funded keys.
    Init(TestnetInitArgs),
}

#[derive(Args)]
struct TestnetInitArgs {
    /// Number of validators.
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Directory to create; node homes go to <dir>/node<i>, keys to <dir>/keys.
    #[arg(long)]
    output_dir: PathBuf,
    #[arg(long, default_value = "/r33/devnet")]
    subnet_id: SubnetId,
    #[arg(long, default_value = "ipsat-devnet")]
    chain_id: String,
    /// Funded keys to create: "faucet", then "account-1", ...
    #[arg(long, default_value_t = 1)]
    accounts: usize,
    /// Genesis balance of each key, in atto-RBTC (default 1,000,000 RBTC).
    #[arg(long, default_value = "1000000000000000000000000")]
    balance: Amount,
    /// First port for CometBFT and ABCI; node i uses base+10i+{5 metrics,6 p2p,7 rpc,8 abci}.
    #[arg(long, default_value_t = 26600)]
    base_port: u16,
    /// gRPC port of node 0; node i uses this + i.
    #[arg(long, default_value_t = 9090)]
    grpc_base_port: u16,
    /// Prometheus port of node 0's ipsat metrics; node i uses this + i.
    #[arg(long, default_value_t = 9464)]
    metrics_base_port: u16,
    /// CometBFT's consensus.timeout_commit.
    #[arg(long, default_value = "500ms")]
    timeout_commit: String,
    /// The cometbft executable.
    #[arg(long, env = "IPSAT_COMETBFT", default_value = "cometbft")]
    cometbft: PathBuf,
    /// Host names or IPs the validators reach each other at, one per validator in order
    /// (e.g. node0,node1,node2,node3 for containers); default: all on 127.0.0.1.
    #[arg(long, value_delimiter = ',')]
    hosts: Vec<String>,
    /// Address the P2P, RPC, gRPC and metrics listeners bind (0.0.0.0 in containers). ABCI
    /// always stays on 127.0.0.1: only the node's own CometBFT may reach it.
    #[arg(long, default_value = "127.0.0.1")]
    listen_address: IpAddr,
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Start the node: ABCI, gRPC, metrics, and its supervised CometBFT.
    Start,
}

#[derive(Args)]
struct TxArgs {
    /// Name of the signing key in <home>/keys.
    #[arg(long)]
    from: String,
    /// Fee in atto-RBTC; default is the subnet's minimum for the transaction's size.
    #[arg(long)]
    fee: Option<Amount>,
    /// Return after CheckTx instead of waiting for the commit.
    #[arg(long)]
    no_wait: bool,
    #[command(subcommand)]
    msg: TxMsg,
}

#[derive(Clone, Copy, ValueEnum)]
enum Policy {
    OwnerOnly,
    AllowList,
    Open,
}

#[derive(Subcommand)]
enum TxMsg {
    /// Send atto-RBTC to an address.
    Transfer { to: Address, amount: Amount },
    /// Create a keyspace owned by the signer.
    KeyspaceCreate {
        name: String,
        #[arg(long, value_enum, default_value_t = Policy::OwnerOnly)]
        policy: Policy,
        /// Allowed writer (repeatable) for --policy allow-list.
        #[arg(long = "writer")]
        writers: Vec<Address>,
        #[arg(long, default_value_t = 64)]
        max_key_bytes: u32,
        #[arg(long, default_value_t = 4096)]
        max_value_bytes: u32,
    },
    /// Write a key (KEY and VALUE are UTF-8 unless --hex).
    KvPut {
        keyspace: String,
        key: String,
        value: String,
        #[arg(long)]
        hex: bool,
    },
    /// Delete a key.
    KvDelete {
        keyspace: String,
        key: String,
        #[arg(long)]
        hex: bool,
    },
}

#[derive(Subcommand)]
enum QueryCommand {
    /// Balance and nonce of an address.
    Account {
        address: Address,
        /// Fetch a proof, verify it and check it against the CometBFT header.
        #[arg(long)]
        prove: bool,
    },
    /// A keyspace's owner, policy and limits.
    Keyspace {
        name: String,
        #[arg(long)]
        prove: bool,
    },
    /// The value of a key (KEY is UTF-8 unless --hex).
    Key {
        keyspace: String,
        key: String,
        #[arg(long)]
        hex: bool,
        #[arg(long)]
        prove: bool,
    },
}

fn bytes_arg(text: &str, hex: bool) -> Result<Vec<u8>> {
    if hex {
        hex::decode(text.trim_start_matches("0x")).with_context(|| format!("{text:?} is not hex"))
    } else {
        Ok(text.as_bytes().to_vec())
    }
}

fn print(output: Output, human: String, json: serde_json::Value) {
    match output {
        Output::Human => println!("{human}"),
        Output::Json => println!("{json}"),
    }
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
        Command::Keys(command) => run_keys(command, &keys_dir, cli.output),
        Command::Testnet(TestnetCommand::Init(args)) => run_testnet_init(args, cli.output),
        Command::Node(NodeCommand::Start) => node::start(&cli.home).await,
        Command::Tx(args) => run_tx(args, &keys_dir, &cli.node, cli.output).await,
        Command::Query(command) => run_query(command, &cli.node, cli.output).await,
        Command::Status => run_status(&cli.node, cli.output).await,
    }
}

fn run_keys(command: KeysCommand, dir: &std::path::Path, output: Output) -> Result<()> {
    match command {
        KeysCommand::New { name } => {
            let key = keys::create(dir, &name)?;
            print(
                output,
                format!("created key {} with address {}", key.name, key.address),
                json!({"name": key.name, "address": key.address}),
            );
        }
        KeysCommand::List => {
            let keys = keys::list(dir)?;
            let human = keys
                .iter()
                .map(|k| format!("{:<24} {}", k.name, k.address))
                .collect::<Vec<_>>()
                .join("\n");
            let json: Vec<_> = keys
                .iter()
                .map(|k| json!({"name": k.name, "address": k.address}))
                .collect();
            print(output, human, json.into());
        }
        KeysCommand::Show { name } => {
            let key = keys::load(dir, &name)?;
            print(
                output,
                key.address.to_string(),
                json!({"name": key.name, "address": key.address}),
            );
        }
    }
    Ok(())
}

fn run_testnet_init(args: TestnetInitArgs, output: Output) -> Result<()> {
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

fn policy_proto(policy: Policy) -> pb::WritePolicy {
    match policy {
        Policy::OwnerOnly => pb::WritePolicy::OwnerOnly,
        Policy::AllowList => pb::WritePolicy::AllowList,
        Policy::Open => pb::WritePolicy::Open,
    }
}

async fn run_tx(
    args: TxArgs,
    keys_dir: &std::path::Path,
    node: &str,
    output: Output,
) -> Result<()> {
    let key = keys::load(keys_dir, &args.from)?;
    let msg = match args.msg {
        TxMsg::Transfer { to, amount } => Msg::Transfer(pb::Transfer {
            to: to.0.to_vec(),
            amount: amount.to_string(),
        }),
        TxMsg::KeyspaceCreate {
            name,
            policy,
            writers,
            max_key_bytes,
            max_value_bytes,
        } => Msg::KeyspaceCreate(pb::KeyspaceCreate {
            name,
            write_policy: policy_proto(policy) as i32,
            writers: writers.iter().map(|w| w.0.to_vec()).collect(),
            max_key_bytes,
            max_value_bytes,
        }),
        TxMsg::KvPut {
            keyspace,
            key,
            value,
            hex,
        } => Msg::KvPut(pb::KvPut {
            keyspace,
            key: bytes_arg(&key, hex)?,
            value: bytes_arg(&value, hex)?,
        }),
        TxMsg::KvDelete { keyspace, key, hex } => Msg::KvDelete(pb::KvDelete {
            keyspace,
            key: bytes_arg(&key, hex)?,
        }),
    };
    let mut client = client::Client::connect(node).await?;
    if !args.no_wait && output == Output::Human {
        eprintln!("broadcasting and waiting for the commit...");
    }
    let response = client.send(&key, msg, args.fee, !args.no_wait).await?;
    let hash = hex::encode(&response.hash);
    let verdict = if response.code == 0 { "ok" } else { "FAILED" };
    let human = match (args.no_wait, response.code) {
        (true, 0) => format!("accepted into the mempool: tx {hash}"),
        (false, 0) => format!("committed at height {}: tx {hash}", response.height),
        (_, code) => format!("{verdict} (code {code}): {}\ntx {hash}", response.log),
    };
    print(
        output,
        human,
        json!({"hash": hash, "code": response.code, "log": response.log, "height": response.height}),
    );
    if response.code != 0 {
        std::process::exit(1);
    }
    Ok(())
}

async fn proof_line(client: &mut client::Client, proof: Option<&pb::StateProof>) -> Result<String> {
    match proof {
        Some(proof) => {
            let header = client.check_proof(proof).await?;
            Ok(format!(
                "\nproof verified: state root {} -> app hash {} = header of block {header}",
                hex::encode(&proof.state_root),
                hex::encode(&proof.app_hash)
            ))
        }
        None => Ok(String::new()),
    }
}

async fn run_query(command: QueryCommand, node: &str, output: Output) -> Result<()> {
    let mut client = client::Client::connect(node).await?;
    match command {
        QueryCommand::Account { address, prove } => {
            let response = client
                .query
                .get_account(pb::GetAccountRequest {
                    address: address.0.to_vec(),
                    prove,
                })
                .await?
                .into_inner();
            let account = response.account.context("node returned no account")?;
            let proof = proof_line(&mut client, response.proof.as_ref()).await?;
            print(
                output,
                format!(
                    "{address}\n  balance {} atto-RBTC\n  nonce   {}\n  height  {}{proof}",
                    account.balance, account.nonce, response.height
                ),
                json!({"address": address, "balance": account.balance, "nonce": account.nonce,
                       "height": response.height, "proof_verified": response.proof.is_some()}),
            );
        }
        QueryCommand::Keyspace { name, prove } => {
            let response = client
                .query
                .get_keyspace(pb::GetKeyspaceRequest {
                    name: name.clone(),
                    prove,
                })
                .await?
                .into_inner();
            let proof = proof_line(&mut client, response.proof.as_ref()).await?;
            let Some(keyspace) = response.keyspace else {
                print(
                    output,
                    format!(
                        "keyspace {name} does not exist at height {}{proof}",
                        response.height
                    ),
                    json!({"name": name, "exists": false, "height": response.height}),
                );
                return Ok(());
            };
            let owner = Address::from_slice(&keyspace.owner)?;
            let policy = pb::WritePolicy::try_from(keyspace.write_policy)
                .map(|p| p.as_str_name())
                .unwrap_or("UNKNOWN");
            print(
                output,
                format!(
                    "keyspace {name}\n  owner  {owner}\n  policy {policy}\n  limits key {} B, value {} B\n  height {}{proof}",
                    keyspace.max_key_bytes, keyspace.max_value_bytes, response.height
                ),
                json!({"name": name, "exists": true, "owner": owner, "policy": policy,
                       "max_key_bytes": keyspace.max_key_bytes, "max_value_bytes": keyspace.max_value_bytes,
                       "height": response.height}),
            );
        }
        QueryCommand::Key {
            keyspace,
            key,
            hex,
            prove,
        } => {
            let key_bytes = bytes_arg(&key, hex)?;
            let response = client
                .query
                .get_key(pb::GetKeyRequest {
                    keyspace: keyspace.clone(),
                    key: key_bytes,
                    prove,
                })
                .await?
                .into_inner();
            let proof = proof_line(&mut client, response.proof.as_ref()).await?;
            let shown = response.value.as_ref().map(|v| {
                String::from_utf8(v.clone()).unwrap_or_else(|_| format!("0x{}", hex::encode(v)))
            });
            let human = match &shown {
                Some(v) => format!(
                    "{keyspace}/{key} = {v}  (height {}){proof}",
                    response.height
                ),
                None => format!(
                    "{keyspace}/{key} is absent (height {}){proof}",
                    response.height
                ),
            };
            print(
                output,
                human,
                json!({"keyspace": keyspace, "key": key, "value": shown,
                       "value_hex": response.value.as_ref().map(hex::encode),
                       "height": response.height, "proof_verified": response.proof.is_some()}),
            );
        }
    }
    Ok(())
}

async fn run_status(node: &str, output: Output) -> Result<()> {
    let mut client = client::Client::connect(node).await?;
    let status = client
        .query
        .get_status(pb::GetStatusRequest {})
        .await?
        .into_inner();
    print(
        output,
        format!(
            "subnet   {}\nchain    {}\nheight   {}\napp hash {}\nstate    {}\nhistory  {}\nfees     {} + {}/byte atto-RBTC\nversion  {}",
            status.subnet_id,
            status.chain_id,
            status.height,
            hex::encode(&status.app_hash),
            hex::encode(&status.state_root),
            hex::encode(&status.history_root),
            status.fee_base,
            status.fee_per_byte,
            status.node_version
        ),
        json!({"subnet_id": status.subnet_id, "chain_id": status.chain_id, "height": status.height,
               "app_hash": hex::encode(&status.app_hash), "state_root": hex::encode(&status.state_root),
               "history_root": hex::encode(&status.history_root), "fee_base": status.fee_base,
               "fee_per_byte": status.fee_per_byte, "node_version": status.node_version}),
    );
    Ok(())
}
