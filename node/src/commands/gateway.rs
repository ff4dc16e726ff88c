//! `ipsat gateway`: level-1 subnets on the RSK gateway. Validators join there with their
//! three keys, and each builds its home from the gateway's registry at a final RSK height,
//! so every validator writes the same genesis without passing a file around.

use std::path::Path;

use alloy::primitives::{Address as EthAddress, Bytes, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use ipsat_checkpoint::{BlsPublicKey, BlsSignature};
use ipsat_core::action::ATTO_PER_POWER;
use ipsat_core::{Address, Amount, SubnetId};
use ipsat_proto::v1 as pb;
use ipsat_rootnet_bridge::{Gateway, IpsatGateway, JoinKeys};
use ipsat_subnet::genesis::{CheckpointParams, GenesisValidator, DEFAULT_RSK_ATTESTATION_STEP};
use ipsat_subnet::{FeeParams, Genesis};
use serde_json::json;

use super::subnet::{print_home_written, HomeLayoutArgs};
use super::{print, Output};
use crate::child_home::{self, ChildHome};
use crate::config::{keys_dir, GatewayLinkConfig};
use crate::gateway_link;
use crate::keys;

#[derive(Subcommand)]
pub enum GatewayCommand {
    /// Join a level-1 subnet as a validator: creates the validator's CometBFT and BLS keys in
    /// --validator-home if missing; --key (in --home) owns the seat, pays the collateral and
    /// becomes the validator's gateway signer.
    Join(JoinArgs),
    /// Write a level-1 validator's home from the gateway's registry at a final RSK height:
    /// genesis (members whose BLS proof of possession fails are left out), CometBFT and
    /// ipsat configs with a `[gateway]` section.
    Init(InitArgs),
    /// Register a level-1 subnet on the gateway, paying the gateway's registration deposit
    /// from --key (paid back once the subnet has ended).
    Register(RegisterArgs),
    /// Deposit RBTC from --key's RSK account into a level-1 subnet, minted there for TO once a
    /// quorum of its validators attested the deposit's RSK block.
    Fund(FundArgs),
}

/// Where the gateway is.
#[derive(Args)]
pub struct GatewayArgs {
    /// RSK JSON-RPC endpoint.
    #[arg(long, env = "IPSAT_RSK_RPC")]
    pub rsk: String,
    /// The gateway contract's address.
    #[arg(long, env = "IPSAT_GATEWAY")]
    pub gateway: EthAddress,
    /// The chain id RSK must report (30 mainnet, 31 testnet, 33 regtest).
    #[arg(long, default_value_t = 33)]
    pub chain_id: u64,
    /// Blocks on top before an RSK block counts as final.
    #[arg(long, default_value_t = 12)]
    pub confirmations: u64,
}

#[derive(Args)]
pub struct JoinArgs {
    /// The subnet's name under the gateway.
    pub name: String,
    /// Collateral to lock, wei (power is collateral / 10^9).
    #[arg(long)]
    pub collateral: Amount,
    /// The home the validator will run the subnet from.
    #[arg(long)]
    pub validator_home: std::path::PathBuf,
    /// The key (in --home) that joins and signs for the gateway.
    #[arg(long)]
    pub key: String,
    /// The cometbft executable (makes the consensus key).
    #[arg(long, env = "IPSAT_COMETBFT", default_value = "cometbft")]
    pub cometbft: std::path::PathBuf,
    #[command(flatten)]
    pub gateway: GatewayArgs,
}

#[derive(Args)]
pub struct InitArgs {
    /// The subnet's name under the gateway.
    pub name: String,
    /// The key (in --home) this validator joined with; copied into the validator home.
    #[arg(long)]
    pub key: String,
    /// RSK heights the validators attest are multiples of this; every validator of the
    /// subnet must pass the same value.
    #[arg(long, default_value_t = DEFAULT_RSK_ATTESTATION_STEP)]
    pub attestation_step: u64,
    #[command(flatten)]
    pub layout: HomeLayoutArgs,
    #[command(flatten)]
    pub gateway: GatewayArgs,
}

#[derive(Args)]
pub struct RegisterArgs {
    /// The subnet's name under the gateway ([a-z0-9-], at most 32).
    pub name: String,
    /// Validators needed before the subnet starts (1 to 100).
    #[arg(long)]
    pub min_validators: u64,
    /// Least collateral of a validator, wei.
    #[arg(long)]
    pub min_collateral: Amount,
    /// Subnet blocks between two checkpoints.
    #[arg(long)]
    pub checkpoint_period: u64,
    /// The key (in --home) that registers and pays the deposit.
    #[arg(long)]
    pub key: String,
    #[command(flatten)]
    pub gateway: GatewayArgs,
}

#[derive(Args)]
pub struct FundArgs {
    /// The level-1 subnet's name under the gateway.
    pub name: String,
    /// The account credited in the subnet (0x-prefixed, 20 bytes).
    pub to: Address,
    /// Amount in wei (atto-RBTC).
    pub amount: Amount,
    /// The key (in --home) whose RSK account pays.
    #[arg(long)]
    pub key: String,
    #[command(flatten)]
    pub gateway: GatewayArgs,
}

impl GatewayArgs {
    /// The `[gateway]` section these arguments describe.
    pub(crate) fn link(&self) -> GatewayLinkConfig {
        GatewayLinkConfig {
            rpc: Some(self.rsk.clone()),
            address: Some(self.gateway.to_string()),
            chain_id: self.chain_id,
            confirmations: self.confirmations,
            ..GatewayLinkConfig::default()
        }
    }
}

async fn connect(args: &GatewayArgs, sender: &keys::Key) -> Result<Gateway> {
    gateway_link::connect(&args.link(), &sender.secret).await
}

async fn subnet_hash(gateway: &Gateway, name: &str) -> Result<B256> {
    gateway
        .view(
            "computeSubnetId",
            &IpsatGateway::computeSubnetIdCall {
                name: name.to_owned(),
            },
            None,
        )
        .await
        .context("computing the subnet id")
}

pub async fn run(command: GatewayCommand, home: &Path, output: Output) -> Result<()> {
    match command {
        GatewayCommand::Join(args) => join(args, home, output).await,
        GatewayCommand::Init(args) => init(args, home, output).await,
        GatewayCommand::Register(args) => register(args, home, output).await,
        GatewayCommand::Fund(args) => fund(args, home, output).await,
    }
}

async fn register(args: RegisterArgs, home: &Path, output: Output) -> Result<()> {
    let key = keys::load(&keys_dir(home), &args.key)?;
    let gateway = connect(&args.gateway, &key).await?;
    let subnet = gateway
        .register_subnet(
            &args.name,
            args.min_validators,
            U256::from(args.min_collateral.atto()),
            args.checkpoint_period,
        )
        .await
        .with_context(|| format!("registering {} on the gateway", args.name))?;
    print(
        output,
        format!(
            "registered {} on the gateway {} (subnet id {subnet})",
            args.name, args.gateway.gateway
        ),
        json!({"subnet": args.name, "subnet_id": subnet.to_string(),
               "gateway": args.gateway.gateway.to_string()}),
    );
    Ok(())
}

async fn fund(args: FundArgs, home: &Path, output: Output) -> Result<()> {
    let key = keys::load(&keys_dir(home), &args.key)?;
    let gateway = connect(&args.gateway, &key).await?;
    let subnet = subnet_hash(&gateway, &args.name).await?;
    let receipt = gateway
        .fund(
            subnet,
            EthAddress::from(args.to.0),
            U256::from(args.amount.atto()),
        )
        .await
        .with_context(|| format!("funding {} on the gateway", args.name))?;
    let block = receipt.block_number.to::<u64>();
    print(
        output,
        format!(
            "deposited {} wei for {} into {} (RSK tx {}, block {block}); it is minted once that \
             block is final and attested by the subnet's validators",
            args.amount.atto(),
            args.to,
            args.name,
            receipt.transaction_hash
        ),
        json!({"subnet": args.name, "to": args.to.to_string(), "amount": args.amount.atto().to_string(),
               "tx": receipt.transaction_hash.to_string(), "block": block}),
    );
    Ok(())
}

async fn join(args: JoinArgs, home: &Path, output: Output) -> Result<()> {
    let key = keys::load(&keys_dir(home), &args.key)?;
    let gateway = connect(&args.gateway, &key).await?;
    let validator = child_home::ensure_keys(&args.validator_home, &args.cometbft)?;
    let subnet = subnet_hash(&gateway, &args.name).await?;
    let signer = PrivateKeySigner::from_bytes(&B256::from(key.secret.secret_bytes()))
        .context("the key is not a valid RSK signer")?;
    let receipt = gateway
        .join(
            subnet,
            &signer,
            JoinKeys {
                bls_public_key: Bytes::from(validator.bls.public_key().to_compressed().to_vec()),
                bls_pop: Bytes::from(validator.bls.proof_of_possession().to_bytes().to_vec()),
                cometbft_key: B256::from(validator.ed25519),
            },
            U256::from(args.collateral.atto()),
        )
        .await
        .context("join on the gateway")?;
    print(
        output,
        format!(
            "{} joined {} on the gateway as signer {} (RSK tx {}, block {})",
            args.validator_home.display(),
            args.name,
            key.address,
            receipt.transaction_hash,
            receipt.block_number
        ),
        json!({
            "subnet": args.name,
            "signer": key.address,
            "node_id": validator.node_id,
            "tx": receipt.transaction_hash.to_string(),
            "block": receipt.block_number.to::<u64>(),
        }),
    );
    Ok(())
}

/// A member the gateway registered, with its keys checked here.
fn genesis_validator(member: &IpsatGateway::MemberKeys) -> Result<GenesisValidator> {
    let bls = BlsPublicKey::from_compressed(&member.blsPublicKey).context("invalid BLS key")?;
    let pop = BlsSignature::from_bytes(&member.blsPop).context("invalid proof of possession")?;
    bls.verify_possession(&pop)
        .context("the proof of possession does not verify")?;
    Ok(GenesisValidator {
        address: Address(member.signer.into_array()),
        cometbft_key: member.cometbftKey.0,
        bls_key: bls.to_compressed(),
        collateral: Amount::from_atto(
            u128::try_from(member.power).context("collateral above 2^128 wei")?,
        ),
    })
}

async fn init(args: InitArgs, home: &Path, output: Output) -> Result<()> {
    let key = keys::load(&keys_dir(home), &args.key)?;
    let gateway = connect(&args.gateway, &key).await?;
    let subnet = subnet_hash(&gateway, &args.name).await?;
    let height = gateway.final_height().await?;
    let at = Some(height);
    let info = gateway
        .view(
            "getSubnet",
            &IpsatGateway::getSubnetCall { subnetId: subnet },
            at,
        )
        .await
        .with_context(|| format!("reading {} at RSK height {height}", args.name))?;
    if !info.active {
        bail!(
            "{} is not active at RSK height {height}: {} of {} validators have joined (or it ended)",
            info.path,
            info.validatorCount,
            info.minValidators
        );
    }
    if info.configurationNumber != info.confirmedConfigurationNumber {
        bail!(
            "{}'s membership changed after it started (configuration {} > confirmed {}); \
             a level-1 genesis is built from the confirmed set only",
            info.path,
            info.configurationNumber,
            info.confirmedConfigurationNumber
        );
    }
    let members = gateway
        .view(
            "memberKeys",
            &IpsatGateway::memberKeysCall { subnetId: subnet },
            at,
        )
        .await?;
    let mut validators = Vec::with_capacity(members.len());
    for member in &members {
        match genesis_validator(member) {
            Ok(validator) => validators.push(validator),
            Err(why) => eprintln!(
                "leaving out validator {} of {}: {why:#}",
                member.signer, info.path
            ),
        }
    }
    let subnet_id: SubnetId = info.path.parse().context("the gateway's subnet path")?;
    let genesis = Genesis {
        subnet_id: subnet_id.clone(),
        fees: FeeParams::default(),
        accounts: Vec::new(),
        validators,
        checkpoints: Some(CheckpointParams {
            period: info.checkpointPeriod,
            configuration_number: info.confirmedConfigurationNumber,
            verifier: Some(Address(args.gateway.gateway.into_array())),
            rsk_attestation_step: args.attestation_step,
        }),
        parent: None,
    };
    let genesis = Genesis::from_json(&serde_json::to_vec(&genesis)?)?;
    let block = gateway
        .rpc()
        .block(height)
        .await?
        .with_context(|| format!("RSK has no block {height}"))?;
    let genesis_time = tendermint::Time::from_unix_timestamp(block.timestamp as i64, 0)
        .map_err(|e| anyhow::anyhow!("the RSK block time: {e}"))?
        .to_rfc3339();
    let record = pb::Subnet {
        id: subnet_id.to_string(),
        chain_id: subnet_id.chain_id(),
        name: args.name.clone(),
        status: pb::SubnetStatus::Active as i32,
        checkpoint_period: info.checkpointPeriod,
        genesis_configuration_number: info.confirmedConfigurationNumber,
        genesis_validators: genesis
            .validators
            .iter()
            .map(|v| pb::SubnetValidator {
                address: v.address.0.to_vec(),
                cometbft_key: v.cometbft_key.to_vec(),
                bls_key: v.bls_key.to_vec(),
                collateral: v.collateral.to_string(),
                power: u64::try_from(v.collateral.atto() / ATTO_PER_POWER).unwrap_or(u64::MAX),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let layout = &args.layout;
    let validator = child_home::ensure_keys(&layout.validator_home, &layout.cometbft)?;
    let validator_keys = keys_dir(&layout.validator_home);
    if keys::load(&validator_keys, &args.key).is_err() {
        keys::store(&validator_keys, &args.key, key.secret)?;
    }
    child_home::write(
        &layout.validator_home,
        &ChildHome {
            subnet: &record,
            genesis: &genesis,
            genesis_time: &genesis_time,
            ports: &layout.ports(),
            listen: layout.listen_address,
            persistent_peers: &layout.persistent_peers,
            timeout_commit: &layout.timeout_commit,
            cometbft: &layout.cometbft,
            parent_grpc: &[],
            gossip_listen: layout.gossip_listen(),
            gateway: Some(GatewayLinkConfig {
                signer_key: Some(args.key.clone()),
                ..args.gateway.link()
            }),
        },
    )?;
    print_home_written(layout, &record, &validator, output);
    Ok(())
}

#[cfg(test)]
mod tests {
    use ipsat_checkpoint::BlsSecretKey;

    use super::*;

    fn member(key: &BlsSecretKey, pop: Vec<u8>) -> IpsatGateway::MemberKeys {
        IpsatGateway::MemberKeys {
            signer: EthAddress::repeat_byte(7),
            power: U256::from(10_000_000_000u64),
            cometbftKey: B256::repeat_byte(9),
            blsPublicKey: Bytes::from(key.public_key().to_compressed().to_vec()),
            blsPop: Bytes::from(pop),
        }
    }

    #[test]
    fn members_without_a_valid_proof_of_possession_are_left_out() {
        let key = BlsSecretKey::from_seed(&[1; 32]).unwrap();
        let other = BlsSecretKey::from_seed(&[2; 32]).unwrap();
        let honest = member(&key, key.proof_of_possession().to_bytes().to_vec());
        let validator = genesis_validator(&honest).unwrap();
        assert_eq!(validator.address, Address([7; 20]));
        assert_eq!(validator.collateral, Amount::from_atto(10_000_000_000));
        // Another key's proof, a signature of something else, garbage, and a key that is not
        // a curve point are all refused.
        let refused = [
            member(&key, other.proof_of_possession().to_bytes().to_vec()),
            member(&key, key.sign(b"not a pop").to_bytes().to_vec()),
            member(&key, vec![0xab; 96]),
            IpsatGateway::MemberKeys {
                blsPublicKey: Bytes::from(vec![0x11; 48]),
                ..honest.clone()
            },
        ];
        for bad in refused {
            assert!(genesis_validator(&bad).is_err());
        }
    }
}
