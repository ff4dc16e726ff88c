//! `ipsat proof`: builds a blocktree proof of a key from the running tree (the key's subnet and
//! each ancestor's node, the RSK gateway, a Bitcoin node), and `ipsat proof verify` checks one
//! offline against trust roots given on the command line. The format and what a verification
//! establishes are in [`ipsat_core::blocktree`] and docs/proofs.md.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use alloy::primitives::{Address as EthAddress, B256};
use anyhow::{bail, ensure, Context, Result};
use clap::{Args, Subcommand};
use ipsat_anchor::anchorer::fetch_proof;
use ipsat_anchor::bitcoin::hashes::Hash as _;
use ipsat_anchor::bitcoin::pow::Work;
use ipsat_anchor::bitcoin::{BlockHash, Network, Txid};
use ipsat_anchor::state::BlockRef;
use ipsat_anchor::{ChainTrust, RpcClient};
use ipsat_checkpoint::blocktree;
use ipsat_checkpoint::{Checkpoint, CheckpointHash, ValidatorSetHash};
use ipsat_core::blocktree::{
    printable, AcceptedRecord, AnchorCommitment, BlocktreeProof, GatewayProof, HistoryPath,
    LevelProof, TrustRoots, VerifiedBlocktree,
};
use ipsat_core::crossnet::accepted_checkpoint_key;
use ipsat_core::proof::kv_key;
use ipsat_core::rsk::GatewaySignature;
use ipsat_core::SubnetId;
use ipsat_proto::v1 as pb;
use ipsat_rootnet_bridge::{Gateway, IpsatGateway};
use serde_json::json;

use super::gateway::GatewayArgs;
use super::{bytes_arg, print, Output};
use crate::anchor_service::AnchorLag;
use crate::client::Client;
use crate::gateway_link;

/// How many checkpoints back a search for the anchored one goes before giving up.
const MAX_CHECKPOINT_SEARCH: u64 = 10_000;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ProofArgs {
    #[command(subcommand)]
    pub command: Option<ProofCommand>,
    #[command(flatten)]
    pub build: BuildArgs,
}

#[derive(Subcommand)]
pub enum ProofCommand {
    /// Check a proof file offline against the trust roots given here, printing each step.
    Verify(VerifyArgs),
}

/// `ipsat proof <SUBNET> <KEYSPACE> <KEY> -o FILE`: --node serves SUBNET; --parent-node
/// serves each subnet above it down to level 1, nearest first.
#[derive(Args)]
pub struct BuildArgs {
    /// The key's subnet, e.g. /r33/alpha/beta.
    #[arg(required = true)]
    pub subnet: Option<SubnetId>,
    /// The keyspace.
    #[arg(required = true)]
    pub keyspace: Option<String>,
    /// The key (text, or hex with --hex).
    #[arg(required = true)]
    pub key: Option<String>,
    /// Where to write the proof.
    #[arg(short = 'o', long, required = true)]
    pub out: Option<PathBuf>,
    /// The key is hex.
    #[arg(long)]
    pub hex: bool,
    /// gRPC endpoints of the subnets above SUBNET, its parent first, down to level 1.
    #[arg(long = "parent-node")]
    pub parent_nodes: Vec<String>,
    /// Prove the key as of this height of SUBNET (default: the height of the anchored
    /// checkpoint).
    #[arg(long)]
    pub height: Option<u64>,
    /// Wait (reporting progress) until an anchor covers SUBNET's height at the start, or
    /// --height.
    #[arg(long)]
    pub wait: bool,
    /// With --wait, give up after this many seconds with an error saying what was missing.
    #[arg(long, visible_alias = "timeout", default_value_t = 900)]
    pub wait_timeout_secs: u64,
    /// Bitcoin headers in the proof, from the anchor's block up (fewer if the chain is
    /// shorter).
    #[arg(long, default_value_t = 6)]
    pub bitcoin_headers: u32,
    /// Bitcoin Core-compatible JSON-RPC (btcd or bitcoind).
    #[arg(long, env = "IPSAT_BITCOIN_RPC")]
    pub bitcoin_rpc: Option<String>,
    /// The Bitcoin RPC user.
    #[arg(long, env = "IPSAT_BITCOIN_USER", default_value = "")]
    pub bitcoin_user: String,
    /// The Bitcoin RPC password.
    #[arg(
        long,
        env = "IPSAT_BITCOIN_PASSWORD",
        default_value = "",
        hide_env_values = true
    )]
    pub bitcoin_password: String,
    #[command(flatten)]
    pub gateway: Option<GatewayArgs>,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("bitcoin_trust").required(true)))]
pub struct VerifyArgs {
    /// The proof file.
    pub file: PathBuf,
    /// The gateway contract the tree's level-1 checkpoints are signed for.
    #[arg(long, env = "IPSAT_GATEWAY")]
    pub gateway: EthAddress,
    /// The tree's RSK chain id.
    #[arg(long, default_value_t = 33)]
    pub chain_id: u64,
    /// The Bitcoin network: bitcoin, testnet, signet or regtest.
    #[arg(long, default_value = "bitcoin")]
    pub network: Network,
    /// Accept the proof if its Bitcoin headers carry at least this much work (hex, as
    /// Bitcoin Core's `chainwork`).
    #[arg(long, group = "bitcoin_trust")]
    pub min_work: Option<String>,
    /// Accept the proof if its Bitcoin headers reach this block, which you know is in the
    /// chain you follow.
    #[arg(long, group = "bitcoin_trust")]
    pub trusted_block: Option<BlockHash>,
}

pub async fn run(args: ProofArgs, node: &str, output: Output) -> Result<()> {
    match args.command {
        Some(ProofCommand::Verify(verify)) => run_verify(&verify, output),
        None => build(args.build, node, output).await,
    }
}

fn run_verify(args: &VerifyArgs, output: Output) -> Result<()> {
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let bitcoin = match (&args.min_work, args.trusted_block) {
        (Some(work), None) => ChainTrust::MinimumWork(parse_work(work)?),
        (None, Some(block)) => ChainTrust::Extends(block),
        _ => bail!("give exactly one of --min-work and --trusted-block"),
    };
    let trust = TrustRoots {
        rsk_chain_id: args.chain_id,
        gateway: args.gateway.into_array(),
        network: args.network,
        bitcoin,
    };
    let proof = BlocktreeProof::decode(&bytes)
        .with_context(|| format!("{} is not a blocktree proof", args.file.display()))?;
    let verified = proof
        .verify(&trust)
        .with_context(|| format!("{} does not verify", args.file.display()))?;
    report(output, &verified, bytes.len());
    Ok(())
}

fn parse_work(text: &str) -> Result<Work> {
    let digits = text.trim_start_matches("0x");
    ensure!(
        !digits.is_empty() && digits.len() <= 64,
        "--min-work {text:?} is not a 256-bit hex number"
    );
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(format!("{digits:0>64}"), &mut bytes)
        .with_context(|| format!("--min-work {text:?} is not hex"))?;
    Ok(Work::from_be_bytes(bytes))
}

fn report(output: Output, verified: &VerifiedBlocktree, size: usize) {
    let mut human = String::from("verified:\n");
    for (i, step) in verified.steps.iter().enumerate() {
        human.push_str(&format!("  {}. {step}\n", i + 1));
    }
    if !verified.signing_set_bound {
        human.push_str(
            "  note: the level-1 signing set is not bound by this proof (first checkpoint)\n",
        );
    }
    human.push_str(&format!("({size} bytes)"));
    print(output, human, verified_json(verified, size));
}

/// A verified proof for scripts (`--output json`) and the explorer.
pub(crate) fn verified_json(verified: &VerifiedBlocktree, size: usize) -> serde_json::Value {
    json!({
        "verified": true,
        "subnet": verified.subnet.to_string(),
        "height": verified.height,
        "value": verified.value.as_ref().map(hex::encode),
        "level_one_checkpoint": hex::encode(verified.level_one_checkpoint.0),
        "signing_set": hex::encode(verified.signing_set.0),
        "signing_set_bound": verified.signing_set_bound,
        "blocktree_root": hex::encode(verified.blocktree_root),
        "anchor_digest": hex::encode(verified.anchor_digest),
        "bitcoin_txid": verified.bitcoin.txid.to_string(),
        "bitcoin_block": verified.bitcoin.block_hash.to_string(),
        "bitcoin_tip": verified.bitcoin.tip_hash.to_string(),
        "bitcoin_headers": verified.bitcoin.confirmations,
        "bitcoin_work": format!("{:#x}", verified.bitcoin.total_work),
        "steps": verified.steps,
        "bytes": size,
    })
}

/// Why a proof cannot be built yet: `--wait` waits these out, anything else is an error.
struct NotYet(String);

enum Attempt {
    Built(Box<BlocktreeProof>),
    NotYet(NotYet),
}

struct Sources {
    subnet: SubnetId,
    /// The nodes from the key's subnet (first) up to level 1 (last), with their subnets.
    levels: Vec<(SubnetId, Client)>,
    gateway: Gateway,
    bitcoin: RpcClient,
    keyspace: String,
    key: Vec<u8>,
    headers: u32,
}

async fn build(args: BuildArgs, node: &str, output: Output) -> Result<()> {
    let (Some(subnet), Some(keyspace), Some(key), Some(out)) =
        (args.subnet, args.keyspace, args.key, args.out)
    else {
        bail!("usage: ipsat proof <SUBNET> <KEYSPACE> <KEY> -o FILE (or ipsat proof verify FILE)");
    };
    let gateway_args = args
        .gateway
        .context("--rsk and --gateway name the RSK gateway the proof goes through")?;
    let bitcoin_rpc = args
        .bitcoin_rpc
        .context("--bitcoin-rpc names the Bitcoin node the anchor is read from")?;
    ensure!(
        subnet.level() >= 1,
        "{subnet} is the root of the tree, not a subnet"
    );
    ensure!(
        args.parent_nodes.len() == subnet.level() - 1,
        "{subnet} has {} subnets above it down to level 1: give one --parent-node for each, \
         its parent first (got {})",
        subnet.level() - 1,
        args.parent_nodes.len()
    );
    let mut levels = Vec::new();
    let mut level_subnet = subnet.clone();
    for endpoint in std::iter::once(node).chain(args.parent_nodes.iter().map(String::as_str)) {
        let mut client = Client::connect(endpoint).await?;
        let status = client
            .query
            .get_status(pb::GetStatusRequest {})
            .await
            .with_context(|| format!("reading the status of {endpoint}"))?
            .into_inner();
        ensure!(
            status.subnet_id == level_subnet.as_str(),
            "{endpoint} serves {}, not {level_subnet}",
            status.subnet_id
        );
        let parent = level_subnet.parent();
        levels.push((level_subnet, client));
        level_subnet = match parent {
            Some(parent) => parent,
            None => break,
        };
    }
    // Only reads: the sender key never signs anything.
    let reader = secp256k1::SecretKey::new(&mut secp256k1::rand::thread_rng());
    let gateway = gateway_link::connect(&gateway_args.link(), &reader).await?;
    let sources = Sources {
        subnet: subnet.clone(),
        levels,
        gateway,
        bitcoin: RpcClient::new(&bitcoin_rpc, &args.bitcoin_user, &args.bitcoin_password)?,
        keyspace,
        key: bytes_arg(&key, args.hex)?,
        headers: args.bitcoin_headers,
    };
    let start_height = match args.height {
        Some(height) => height,
        None if args.wait => latest_height(&sources.levels[0].1).await?,
        None => 0,
    };
    let started = Instant::now();
    let proof = loop {
        match sources.attempt(args.height, start_height).await? {
            Attempt::Built(proof) => break proof,
            Attempt::NotYet(NotYet(why)) if args.wait => {
                let lag = match AnchorLag::read(&sources.gateway, Some(&sources.bitcoin)).await {
                    Ok(lag) => lag.describe(),
                    Err(e) => format!("anchor lag unknown: {e:#}"),
                };
                ensure!(
                    started.elapsed() < Duration::from_secs(args.wait_timeout_secs),
                    "gave up after {} s (--timeout): {why}; {lag}",
                    args.wait_timeout_secs
                );
                eprintln!(
                    "waiting ({:.0} s): {why}; {lag}",
                    started.elapsed().as_secs_f64()
                );
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            Attempt::NotYet(NotYet(why)) => bail!("{why} (--wait waits for it)"),
        }
    };
    let bytes = proof.encode();
    // A proof that does not verify against its own headers is a bug here, not a file to keep.
    let anchor = ipsat_anchor::AnchorProof::decode(&proof.anchor.bitcoin)?;
    let tip = anchor
        .headers
        .last()
        .context("the anchor proof has no headers")?
        .block_hash();
    let verified = proof
        .verify(&TrustRoots {
            rsk_chain_id: gateway_args.chain_id,
            gateway: gateway_args.gateway.into_array(),
            // The loosest proof-of-work limit: this checks the proof's consistency, not work.
            network: Network::Regtest,
            bitcoin: ChainTrust::Extends(tip),
        })
        .context("the proof just built does not verify")?;
    std::fs::write(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
    print(
        output,
        format!(
            "wrote {} ({} bytes): {}/{} in {subnet} at height {}, anchored in Bitcoin block {}",
            out.display(),
            bytes.len(),
            proof.keyspace,
            printable(&proof.key),
            verified.height,
            verified.bitcoin.block_hash,
        ),
        json!({
            "file": out.display().to_string(),
            "bytes": bytes.len(),
            "subnet": subnet.to_string(),
            "height": verified.height,
            "value": verified.value.as_ref().map(hex::encode),
            "bitcoin_block": verified.bitcoin.block_hash.to_string(),
            "bitcoin_tip": tip.to_string(),
            "bitcoin_txid": verified.bitcoin.txid.to_string(),
        }),
    );
    Ok(())
}

async fn latest_height(client: &Client) -> Result<u64> {
    Ok(client
        .query
        .clone()
        .get_status(pb::GetStatusRequest {})
        .await?
        .into_inner()
        .height)
}

/// A checkpoint as a node serves it, decoded.
fn decode_checkpoint(checkpoint: &pb::Checkpoint) -> Result<Checkpoint> {
    Checkpoint::abi_decode(&checkpoint.abi).context("the node served a malformed checkpoint")
}

fn hash32(bytes: &[u8], what: &str) -> Result<[u8; 32]> {
    bytes
        .try_into()
        .with_context(|| format!("the node served a {what} of {} bytes", bytes.len()))
}

impl Sources {
    async fn attempt(&self, height: Option<u64>, wanted: u64) -> Result<Attempt> {
        let not_yet = |why: String| Ok(Attempt::NotYet(NotYet(why)));
        let anchor = self
            .gateway
            .view("latestAnchor", &IpsatGateway::latestAnchorCall {}, None)
            .await?;
        if anchor.btcTxid == B256::ZERO {
            return not_yet("no anchor is recorded on the gateway yet".into());
        }
        let leaves = self
            .gateway
            .view(
                "blocktreeLeaves",
                &IpsatGateway::blocktreeLeavesCall {},
                Some(anchor.rskHeight),
            )
            .await
            .with_context(|| format!("reading the blocktree at RSK height {}", anchor.rskHeight))?;
        let (level_one, client) = self.levels.last().context("no levels")?;
        let index = leaves
            .ids
            .iter()
            .position(|id| id.0 == level_one.hash().0)
            .with_context(|| format!("{level_one} is not registered on the gateway"))?;
        let hashes: Vec<[u8; 32]> = leaves
            .ids
            .iter()
            .zip(&leaves.checkpointHashes)
            .map(|(id, cp)| {
                if cp.is_zero() {
                    [0; 32]
                } else {
                    blocktree::leaf(&ipsat_checkpoint::SubnetHash(id.0), &CheckpointHash(cp.0))
                }
            })
            .collect();
        ensure!(
            blocktree::root(&hashes) == anchor.blocktreeRoot.0,
            "the gateway's blocktree at RSK height {} does not have the anchored root",
            anchor.rskHeight
        );
        let anchored = CheckpointHash(
            leaves
                .checkpointHashes
                .get(index)
                .context("the gateway served fewer checkpoint hashes than subnets")?
                .0,
        );
        if anchored == CheckpointHash::default() {
            return not_yet(format!("no checkpoint of {level_one} is anchored yet"));
        }

        // Level 1: the anchored checkpoint, its predecessor and its gateway quorum.
        let (top, gateway_signatures) = find_own_checkpoint(client, &anchored).await?;
        let period = own_period(client).await?;
        let previous = if top.previous == CheckpointHash::default() {
            None
        } else {
            let previous = own_checkpoint(client, top.height.saturating_sub(period)).await?;
            let decoded = decode_checkpoint(&previous)?;
            ensure!(
                decoded.hash() == top.previous,
                "{level_one}'s checkpoint before {} is not the one it chains to",
                top.height
            );
            Some(decoded)
        };
        let set = self
            .gateway
            .view(
                "validatorSet",
                &IpsatGateway::validatorSetCall {
                    subnetId: B256::from(level_one.hash().0),
                },
                Some(anchor.rskHeight),
            )
            .await?;
        let signers: Vec<([u8; 20], u128)> = set
            .signers
            .iter()
            .zip(&set.powers)
            .map(|(s, p)| Ok((s.into_array(), u128::try_from(*p)?)))
            .collect::<Result<_>>()?;
        if let Some(previous) = &previous {
            ensure!(
                ValidatorSetHash::of(&signers) == previous.next_validator_set_hash,
                "the gateway's validator set of {level_one} at RSK height {} is not the one its \
                 checkpoint {} declared (a set change is in flight); try after the next anchor",
                anchor.rskHeight,
                previous.height
            );
        }
        let gateway = GatewayProof {
            previous: previous.map(|p| p.abi_encode().to_vec()),
            signers,
            signatures: gateway_signatures,
            leaf_index: index as u64,
            siblings: blocktree::proof(&hashes, index),
        };

        // Down the tree: each child's latest checkpoint its parent had accepted by the
        // parent's checkpoint, proven in the parent's state at that checkpoint's height.
        let mut levels_down = Vec::new();
        let mut above = top.clone();
        for pair in self.levels.windows(2).rev() {
            let [(child, _), (parent, parent_client)] = pair else {
                unreachable!("windows(2)")
            };
            let Some((checkpoint, state, history)) =
                accepted_by(parent_client, child.name(), above.height).await?
            else {
                return not_yet(format!(
                    "{parent} had accepted no checkpoint of {child} by its anchored checkpoint {}",
                    above.height
                ));
            };
            levels_down.push((
                LevelProof {
                    height: above.height,
                    state_root: hash32(&state.state_root, "state root")?,
                    history,
                    checkpoint: above.abi_encode().to_vec(),
                    accepted: None,
                },
                AcceptedRecord {
                    record: state.value.unwrap_or_default(),
                    proof: state.jmt_proof,
                },
            ));
            above = checkpoint;
        }

        // The key, in the state of its subnet at the height asked (or the checkpoint's).
        let leaf_checkpoint = above;
        let key_height = height.unwrap_or(leaf_checkpoint.height);
        if leaf_checkpoint.height < key_height.max(wanted) {
            return not_yet(format!(
                "the latest anchor covers {} up to height {}, height {} is asked",
                self.subnet,
                leaf_checkpoint.height,
                key_height.max(wanted)
            ));
        }
        let (key_state, key_history) = prove_state(
            &self.levels[0].1,
            kv_key(&self.keyspace, &self.key),
            key_height,
            leaf_checkpoint.height,
        )
        .await?;
        let mut levels = vec![LevelProof {
            height: key_height,
            state_root: hash32(&key_state.state_root, "state root")?,
            history: key_history,
            checkpoint: leaf_checkpoint.abi_encode().to_vec(),
            accepted: None,
        }];
        // `levels_down` runs from level 1 downwards; each record belongs to the level below.
        for (level, record) in levels_down.into_iter().rev() {
            if let Some(below) = levels.last_mut() {
                below.accepted = Some(record);
            }
            levels.push(level);
        }

        let rsk_block = self
            .gateway
            .rpc()
            .block(anchor.rskHeight)
            .await?
            .with_context(|| format!("RSK has no block {}", anchor.rskHeight))?;
        let btc_block = BlockRef {
            height: anchor.btcHeight,
            hash: self.bitcoin.get_block_hash(anchor.btcHeight).await?,
        };
        let txid = Txid::from_byte_array(anchor.btcTxid.0);
        let bitcoin = fetch_proof(&self.bitcoin, &txid, &btc_block, Some(self.headers))
            .await
            .with_context(|| format!("reading the anchor transaction {txid} from Bitcoin"))?;
        Ok(Attempt::Built(Box::new(BlocktreeProof {
            subnet: self.subnet.to_string(),
            keyspace: self.keyspace.clone(),
            key: self.key.clone(),
            value: key_state.value,
            key_proof: key_state.jmt_proof,
            levels,
            gateway,
            anchor: AnchorCommitment {
                rsk_height: anchor.rskHeight,
                rsk_block_hash: rsk_block.hash.0,
                bitcoin: bitcoin.encode(),
            },
        })))
    }
}

async fn own_checkpoint(client: &Client, height: u64) -> Result<pb::Checkpoint> {
    client
        .query
        .clone()
        .get_checkpoint(pb::GetCheckpointRequest {
            child: String::new(),
            height,
        })
        .await
        .with_context(|| format!("reading checkpoint {height}"))?
        .into_inner()
        .checkpoint
        .with_context(|| format!("no checkpoint at height {height}"))
}

async fn own_period(client: &Client) -> Result<u64> {
    let period = client
        .query
        .clone()
        .get_checkpoint(pb::GetCheckpointRequest::default())
        .await?
        .into_inner()
        .period;
    ensure!(period > 0, "the node's subnet cuts no checkpoints");
    Ok(period)
}

/// The node's own certified checkpoint hashing to `wanted`, searched from the latest down,
/// with its gateway signatures.
async fn find_own_checkpoint(
    client: &Client,
    wanted: &CheckpointHash,
) -> Result<(Checkpoint, Vec<(u32, [u8; 65])>)> {
    let period = own_period(client).await?;
    let mut height = own_checkpoint(client, 0).await?.height;
    for _ in 0..MAX_CHECKPOINT_SEARCH {
        let served = own_checkpoint(client, height).await?;
        let checkpoint = decode_checkpoint(&served)?;
        if checkpoint.hash() == *wanted {
            let signatures = served
                .gateway_signatures
                .iter()
                .map(|s| {
                    let signature = GatewaySignature::from_bytes(&s.signature)
                        .context("the node served a malformed gateway signature")?;
                    Ok((s.signer, signature.0))
                })
                .collect::<Result<_>>()?;
            return Ok((checkpoint, signatures));
        }
        if height < period {
            break;
        }
        height -= period;
    }
    bail!(
        "the node has no certified checkpoint hashing to {}",
        hex::encode(wanted.0)
    )
}

/// Child `name`'s latest checkpoint its parent (`client`) had accepted by the parent's height
/// `by`, with the proof of the parent's record of it in the parent's state at `by`.
async fn accepted_by(
    client: &Client,
    name: &str,
    by: u64,
) -> Result<Option<(Checkpoint, pb::StateProof, HistoryPath)>> {
    let ask = |height: u64| {
        let mut query = client.query.clone();
        let child = name.to_owned();
        async move {
            match query
                .get_checkpoint(pb::GetCheckpointRequest { child, height })
                .await
            {
                Ok(response) => Ok(Some(response.into_inner())),
                Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
                Err(status) => Err(status).context("reading the child's checkpoints"),
            }
        }
    };
    let Some(latest) = ask(0).await? else {
        return Ok(None);
    };
    let period = latest.period;
    let mut served = latest.checkpoint;
    for _ in 0..MAX_CHECKPOINT_SEARCH {
        let Some(checkpoint) = served else {
            return Ok(None);
        };
        if checkpoint.recorded_at <= by {
            let decoded = decode_checkpoint(&checkpoint)?;
            let key = accepted_checkpoint_key(name, decoded.height);
            let (state, history) = prove_state(client, key, by, by).await?;
            ensure!(
                state.value.is_some(),
                "the parent holds no record of {name}'s checkpoint {}",
                decoded.height
            );
            return Ok(Some((decoded, state, history)));
        }
        if period == 0 || checkpoint.height < period {
            return Ok(None);
        }
        served = ask(checkpoint.height - period)
            .await?
            .and_then(|r| r.checkpoint);
    }
    Ok(None)
}

/// `key` at `height` with its proof, and `height`'s place in the history as of
/// `history_height`.
async fn prove_state(
    client: &Client,
    key: Vec<u8>,
    height: u64,
    history_height: u64,
) -> Result<(pb::StateProof, HistoryPath)> {
    let response = client
        .query
        .clone()
        .prove_state(pb::ProveStateRequest {
            key,
            height,
            history_height,
        })
        .await
        .with_context(|| format!("proving state at height {height}"))?
        .into_inner();
    let state = response.proof.context("the node served no state proof")?;
    let history = response
        .history
        .context("the node served no history proof")?;
    let hashes = |list: &[Vec<u8>]| -> Result<Vec<[u8; 32]>> {
        list.iter().map(|h| hash32(h, "history hash")).collect()
    };
    Ok((
        state,
        HistoryPath {
            leaf_index: history.leaf_index,
            leaf_count: history.leaf_count,
            siblings: hashes(&history.siblings)?,
            peaks: hashes(&history.peaks)?,
        },
    ))
}
