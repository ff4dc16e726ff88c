//! `ipsat subnet`: child subnets in the registry of the subnet `--node` serves, and the
//! homes of their validators.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use ipsat_core::{Address, Amount};
use ipsat_proto::v1::{self as pb, tx_body::Msg};
use ipsat_subnet::genesis::{ParentAnchor, DEFAULT_TRUSTING_PERIOD_SECS};
use ipsat_subnet::{FeeParams, Genesis};
use serde_json::json;

use super::tx::{sign_and_send, Signing};
use super::{print, Output};
use crate::child_home::{self, ChildHome};
use crate::client;
use crate::testnet::NodePorts;

#[derive(Subcommand)]
pub enum SubnetCommand {
    /// Register a child subnet of this subnet; the signer becomes its creator.
    Create(CreateArgs),
    /// Join a child as a validator: creates the validator's CometBFT and BLS keys in
    /// --validator-home if missing, and locks --collateral from the signer's balance.
    Join(JoinArgs),
    /// Leave a child (at once while it waits for members; recorded once it runs).
    Leave(SignedArgs),
    /// Retire a child with no members left (creator only).
    Kill(SignedArgs),
    /// List this subnet's children.
    List,
    /// Show one child with its validators and latest accepted checkpoint.
    Show {
        /// The child's name.
        name: String,
    },
    /// Write a started child's validator home from this subnet's registry: genesis,
    /// CometBFT and ipsat configs (keys come from `subnet join`).
    Init(InitArgs),
}

#[derive(Args)]
pub struct CreateArgs {
    /// The child's name, [a-z0-9-]{1,32}.
    pub name: String,
    /// Members needed before the child starts.
    #[arg(long)]
    pub min_validators: u32,
    /// Least collateral per member, atto-RBTC (power is collateral / 10^9).
    #[arg(long)]
    pub min_collateral: Amount,
    /// Blocks between the child's checkpoints.
    #[arg(long, default_value_t = 10)]
    pub checkpoint_period: u64,
    /// Parent blocks a confirmed leaver's collateral is meant to stay locked; recorded in the
    /// registry but not yet enforced (the collateral comes back when the child confirms).
    #[arg(long, default_value_t = 100)]
    pub leave_delay: u64,
    #[command(flatten)]
    pub signing: Signing,
}

#[derive(Args)]
pub struct JoinArgs {
    /// The child's name.
    pub name: String,
    /// Collateral to lock, atto-RBTC.
    #[arg(long)]
    pub collateral: Amount,
    /// The home the validator will run the child from.
    #[arg(long)]
    pub validator_home: PathBuf,
    /// The cometbft executable (makes the consensus key).
    #[arg(long, env = "IPSAT_COMETBFT", default_value = "cometbft")]
    pub cometbft: PathBuf,
    #[command(flatten)]
    pub signing: Signing,
}

#[derive(Args)]
pub struct SignedArgs {
    /// The child's name.
    pub name: String,
    #[command(flatten)]
    pub signing: Signing,
}

#[derive(Args)]
pub struct InitArgs {
    /// The child's name.
    pub name: String,
    #[command(flatten)]
    pub layout: HomeLayoutArgs,
    /// gRPC endpoint of a parent node the child's node reads headers and deposits from
    /// (repeat for more; none is trusted). Default: the `--node` this command talks to.
    #[arg(long = "parent-grpc")]
    pub parent_grpc: Vec<String>,
}

/// Where a new validator home lives and what its node listens on.
#[derive(Args)]
pub struct HomeLayoutArgs {
    /// The validator home the join made the keys in.
    #[arg(long)]
    pub validator_home: PathBuf,
    /// `id@host:port` of the subnet's other validators, comma-separated.
    #[arg(long, default_value = "")]
    pub persistent_peers: String,
    /// Address the P2P, RPC, gRPC and metrics listeners bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub listen_address: IpAddr,
    /// Host the other validators reach this one at.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 26656)]
    pub p2p_port: u16,
    #[arg(long, default_value_t = 26657)]
    pub rpc_port: u16,
    #[arg(long, default_value_t = 26658)]
    pub abci_port: u16,
    #[arg(long, default_value_t = 26660)]
    pub cometbft_metrics_port: u16,
    #[arg(long, default_value_t = 9090)]
    pub grpc_port: u16,
    #[arg(long, default_value_t = 9464)]
    pub metrics_port: u16,
    /// Port of the libp2p gossip plane that carries checkpoints to the parent; 0 disables it.
    #[arg(long, default_value_t = 26670)]
    pub gossip_port: u16,
    /// CometBFT's consensus.timeout_commit.
    #[arg(long, default_value = "1s")]
    pub timeout_commit: String,
    /// The cometbft executable.
    #[arg(long, env = "IPSAT_COMETBFT", default_value = "cometbft")]
    pub cometbft: PathBuf,
}

impl HomeLayoutArgs {
    /// The node's ports.
    pub fn ports(&self) -> NodePorts {
        NodePorts {
            home: self.validator_home.clone(),
            host: self.host.clone(),
            p2p: self.p2p_port,
            rpc: self.rpc_port,
            abci: self.abci_port,
            grpc: self.grpc_port,
            metrics: self.metrics_port,
            cometbft_metrics: self.cometbft_metrics_port,
        }
    }

    /// The gossip listen multiaddr, none when the port is 0.
    pub fn gossip_listen(&self) -> Option<String> {
        (self.gossip_port != 0).then(|| {
            let family = if self.listen_address.is_ipv4() {
                "ip4"
            } else {
                "ip6"
            };
            format!("/{family}/{}/tcp/{}", self.listen_address, self.gossip_port)
        })
    }
}

fn status_name(status: i32) -> &'static str {
    match pb::SubnetStatus::try_from(status) {
        Ok(pb::SubnetStatus::Pending) => "pending",
        Ok(pb::SubnetStatus::Active) => "active",
        Ok(pb::SubnetStatus::Killed) => "killed",
        _ => "unknown",
    }
}

fn validator_json(v: &pb::SubnetValidator) -> serde_json::Value {
    json!({
        "address": Address::from_slice(&v.address).map(|a| a.to_string()).unwrap_or_default(),
        "cometbft_key": hex::encode(&v.cometbft_key),
        "bls_key": hex::encode(&v.bls_key),
        "collateral": v.collateral,
        "power": v.power,
        "joined_at": v.joined_at,
        "left_at": v.left_at,
    })
}

fn subnet_json(s: &pb::Subnet) -> serde_json::Value {
    json!({
        "id": s.id,
        "chain_id": s.chain_id,
        "name": s.name,
        "creator": Address::from_slice(&s.creator).map(|a| a.to_string()).unwrap_or_default(),
        "status": status_name(s.status),
        "min_validators": s.min_validators,
        "min_collateral": s.min_collateral,
        "checkpoint_period": s.checkpoint_period,
        "leave_delay": s.leave_delay,
        "configuration_number": s.configuration_number,
        "validators": s.validators.iter().map(validator_json).collect::<Vec<_>>(),
        "genesis_validators": s.genesis_validators.iter().map(validator_json).collect::<Vec<_>>(),
        "genesis_configuration_number": s.genesis_configuration_number,
        "activated_at": s.activated_at,
        "last_checkpoint_height": s.last_checkpoint_height,
        "last_checkpoint_hash": hex::encode(&s.last_checkpoint_hash),
        "locked": s.locked,
        "top_down_nonce": s.top_down_nonce,
        "releases_paid": s.releases_paid,
        "confirmed_configuration_number": s.confirmed_configuration_number,
    })
}

fn subnet_line(s: &pb::Subnet) -> String {
    format!(
        "{:<24} {:<8} validators {:>3}/{:<3} config {:<4} checkpoint {:>8}  chain {}",
        s.id,
        status_name(s.status),
        s.validators.iter().filter(|v| v.left_at == 0).count(),
        s.min_validators,
        s.configuration_number,
        s.last_checkpoint_height,
        s.chain_id
    )
}

fn subnet_human(s: &pb::Subnet) -> String {
    let mut out = subnet_line(s);
    out.push_str(&format!(
        "\n  period {} blocks, leave delay {}, started at parent height {}",
        s.checkpoint_period, s.leave_delay, s.activated_at
    ));
    out.push_str(&format!(
        "\n  locked {} ({} deposits queued, {} releases paid)",
        s.locked, s.top_down_nonce, s.releases_paid
    ));
    if !s.last_checkpoint_hash.is_empty() {
        out.push_str(&format!(
            "\n  latest checkpoint {} hash {}",
            s.last_checkpoint_height,
            hex::encode(&s.last_checkpoint_hash)
        ));
    }
    for v in &s.validators {
        let address = Address::from_slice(&v.address)
            .map(|a| a.to_string())
            .unwrap_or_default();
        let left = if v.left_at == 0 {
            String::new()
        } else {
            format!(" (left at config {})", v.left_at)
        };
        out.push_str(&format!(
            "\n  validator {address} power {} collateral {}{left}",
            v.power, v.collateral
        ));
    }
    out
}

async fn fetch(client: &mut client::Client, name: &str) -> Result<pb::Subnet> {
    client
        .query
        .get_subnet(pb::GetSubnetRequest {
            name: name.to_owned(),
        })
        .await
        .with_context(|| format!("reading child {name:?}"))?
        .into_inner()
        .subnet
        .context("the node returned no subnet")
}

pub async fn run(command: SubnetCommand, home: &Path, node: &str, output: Output) -> Result<()> {
    let mut client = client::Client::connect(node).await?;
    match command {
        SubnetCommand::Create(args) => {
            let msg = Msg::SubnetCreate(pb::SubnetCreate {
                name: args.name,
                min_validators: args.min_validators,
                min_collateral: args.min_collateral.to_string(),
                checkpoint_period: args.checkpoint_period,
                leave_delay: args.leave_delay,
            });
            sign_and_send(&args.signing, home, node, msg, output).await?;
        }
        SubnetCommand::Join(args) => {
            let keys = child_home::ensure_keys(&args.validator_home, &args.cometbft)?;
            if output == Output::Human {
                eprintln!(
                    "validator keys in {}: node id {}, BLS key {}",
                    args.validator_home.display(),
                    keys.node_id,
                    hex::encode(keys.bls.public_key().to_compressed())
                );
            }
            let msg = Msg::SubnetJoin(pb::SubnetJoin {
                subnet: args.name,
                collateral: args.collateral.to_string(),
                cometbft_key: keys.ed25519.to_vec(),
                bls_key: keys.bls.public_key().to_compressed().to_vec(),
                bls_pop: keys.bls.proof_of_possession().to_bytes().to_vec(),
            });
            sign_and_send(&args.signing, home, node, msg, output).await?;
        }
        SubnetCommand::Leave(args) => {
            let msg = Msg::SubnetLeave(pb::SubnetLeave { subnet: args.name });
            sign_and_send(&args.signing, home, node, msg, output).await?;
        }
        SubnetCommand::Kill(args) => {
            let msg = Msg::SubnetKill(pb::SubnetKill { subnet: args.name });
            sign_and_send(&args.signing, home, node, msg, output).await?;
        }
        SubnetCommand::List => {
            let list = client
                .query
                .list_subnets(pb::ListSubnetsRequest {})
                .await?
                .into_inner();
            let human = if list.subnets.is_empty() {
                format!("no child subnets at height {}", list.height)
            } else {
                list.subnets
                    .iter()
                    .map(subnet_line)
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            print(
                output,
                human,
                json!({
                    "height": list.height,
                    "subnets": list.subnets.iter().map(subnet_json).collect::<Vec<_>>(),
                }),
            );
        }
        SubnetCommand::Show { name } => {
            let subnet = fetch(&mut client, &name).await?;
            print(output, subnet_human(&subnet), subnet_json(&subnet));
        }
        SubnetCommand::Init(mut args) => {
            if args.parent_grpc.is_empty() {
                args.parent_grpc.push(node.to_owned());
            }
            init(&mut client, args, output).await?
        }
    }
    Ok(())
}

async fn init(client: &mut client::Client, args: InitArgs, output: Output) -> Result<()> {
    let subnet = fetch(client, &args.name).await?;
    if subnet.status != pb::SubnetStatus::Active as i32 {
        bail!(
            "{} has not started: {} of {} validators have joined",
            subnet.id,
            subnet.validators.len(),
            subnet.min_validators
        );
    }
    let status = client
        .query
        .get_status(pb::GetStatusRequest {})
        .await?
        .into_inner();
    let started = client
        .query
        .get_block(pb::GetBlockRequest {
            height: subnet.activated_at,
        })
        .await
        .with_context(|| format!("reading the parent block {}", subnet.activated_at))?
        .into_inner();
    let anchor = ParentAnchor {
        subnet_id: status.subnet_id.parse()?,
        chain_id: status.chain_id,
        trusted_height: started.height,
        trusted_hash: started
            .block_hash
            .as_slice()
            .try_into()
            .context("the parent block hash is not 32 bytes")?,
        trusting_period_secs: DEFAULT_TRUSTING_PERIOD_SECS,
    };
    let genesis = Genesis::for_child(&subnet, anchor, FeeParams::default())?;
    let layout = &args.layout;
    let keys = child_home::ensure_keys(&layout.validator_home, &layout.cometbft)?;
    let ports = layout.ports();
    child_home::write(
        &layout.validator_home,
        &ChildHome {
            subnet: &subnet,
            genesis: &genesis,
            genesis_time: &started.time,
            ports: &ports,
            listen: layout.listen_address,
            persistent_peers: &layout.persistent_peers,
            timeout_commit: &layout.timeout_commit,
            cometbft: &layout.cometbft,
            parent_grpc: &args.parent_grpc,
            gossip_listen: layout.gossip_listen(),
            gateway: None,
        },
    )?;
    print_home_written(layout, &subnet, &keys, output);
    Ok(())
}

/// Reports the home `layout` now holds for `subnet`.
pub fn print_home_written(
    layout: &HomeLayoutArgs,
    subnet: &pb::Subnet,
    keys: &child_home::ValidatorKeys,
    output: Output,
) {
    let is_validator = subnet
        .genesis_validators
        .iter()
        .any(|v| v.cometbft_key == keys.ed25519);
    let role = if is_validator {
        "a genesis validator"
    } else {
        "not a genesis validator (it will follow the chain without signing)"
    };
    print(
        output,
        format!(
            "wrote {} for {} (chain {}), {role}\nnode id {}; start it with `ipsat node start --home {}`",
            layout.validator_home.display(),
            subnet.id,
            subnet.chain_id,
            keys.node_id,
            layout.validator_home.display()
        ),
        json!({
            "home": layout.validator_home,
            "subnet_id": subnet.id,
            "chain_id": subnet.chain_id,
            "node_id": keys.node_id,
            "validator": is_validator,
            "p2p": format!("{}@{}:{}", keys.node_id, layout.host, layout.p2p_port),
        }),
    );
}
