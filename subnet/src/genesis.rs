//! The subnet's genesis, carried in CometBFT's `genesis.json` as `app_state`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use ipsat_checkpoint::BlsPublicKey;
use ipsat_core::action::ATTO_PER_POWER;
use ipsat_core::{Address, Amount, SubnetId};
use ipsat_proto::v1 as pb;

/// Why a genesis is refused.
#[allow(missing_docs)] // Each variant's message says what it means.
#[derive(Debug, Error)]
pub enum GenesisError {
    #[error("genesis app_state is not valid JSON for an ipsat subnet: {0}")]
    Json(#[from] serde_json::Error),
    #[error("genesis allocates to {0} twice")]
    DuplicateAccount(Address),
    #[error("genesis allocations overflow 2^128 atto-RBTC")]
    SupplyOverflow,
    #[error("genesis validator {address}: {why}")]
    Validator { address: Address, why: String },
    #[error("genesis validators must be sorted by address, each once")]
    ValidatorOrder,
    #[error("genesis checkpoints: {0}")]
    Checkpoints(String),
    #[error("genesis parent {parent} is not the parent of {subnet}")]
    Parent { parent: SubnetId, subnet: SubnetId },
}

/// The ipsat part of CometBFT's genesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// The subnet's path in the blocktree.
    pub subnet_id: SubnetId,
    /// Fee parameters.
    #[serde(default)]
    pub fees: FeeParams,
    /// Initial balances.
    #[serde(default)]
    pub accounts: Vec<GenesisAccount>,
    /// The validators that sign checkpoints, sorted by address; the same set, with powers
    /// `collateral / 10^9`, as CometBFT's genesis.
    #[serde(default)]
    pub validators: Vec<GenesisValidator>,
    /// Checkpointing; absent for a subnet that cuts none.
    #[serde(default)]
    pub checkpoints: Option<CheckpointParams>,
    /// The parent subnet and the parent state this subnet was started from; absent for a
    /// subnet without an ipsat parent.
    #[serde(default)]
    pub parent: Option<ParentAnchor>,
}

/// A validator at genesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisValidator {
    /// Its account address.
    pub address: Address,
    /// Its CometBFT ed25519 key, hex.
    #[serde(with = "hex_array")]
    pub cometbft_key: [u8; 32],
    /// Its compressed BLS key, hex.
    #[serde(with = "hex_array")]
    pub bls_key: [u8; 48],
    /// Its collateral, which gives its power.
    pub collateral: Amount,
}

/// How the subnet checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointParams {
    /// Blocks between two checkpoints; at least 1.
    pub period: u64,
    /// The configuration number of the genesis validator set (as the parent registry
    /// numbered it).
    #[serde(default)]
    pub configuration_number: u64,
    /// The contract that verifies checkpoints (the RSK gateway) for a level-1 subnet; absent
    /// when the parent is a subnet.
    #[serde(default)]
    pub verifier: Option<Address>,
    /// Under the RSK gateway: validators attest RSK heights that are multiples of this.
    #[serde(default = "default_rsk_attestation_step")]
    pub rsk_attestation_step: u64,
}

/// RSK heights attested under the gateway are multiples of this by default (about five
/// minutes of RSK blocks).
pub const DEFAULT_RSK_ATTESTATION_STEP: u64 = 10;

fn default_rsk_attestation_step() -> u64 {
    DEFAULT_RSK_ATTESTATION_STEP
}

/// The parent a child was started from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParentAnchor {
    /// The parent's path.
    pub subnet_id: SubnetId,
    /// The parent's CometBFT chain id.
    pub chain_id: String,
    /// The parent height whose header this child trusts.
    pub trusted_height: u64,
    /// That header's hash, hex.
    #[serde(with = "hex_array")]
    pub trusted_hash: [u8; 32],
    /// How long a trusted parent header may be used to verify the next one; keep it below the
    /// time a parent validator needs to leave with its collateral. Default two weeks.
    #[serde(default = "default_trusting_period_secs")]
    pub trusting_period_secs: u64,
}

/// Two weeks, CometBFT's customary trusting period (two thirds of a three-week unbonding).
pub const DEFAULT_TRUSTING_PERIOD_SECS: u64 = 14 * 24 * 3600;

fn default_trusting_period_secs() -> u64 {
    DEFAULT_TRUSTING_PERIOD_SECS
}

mod hex_array {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let text = String::deserialize(d)?;
        let bytes = hex::decode(&text).map_err(D::Error::custom)?;
        bytes
            .try_into()
            .map_err(|_| D::Error::custom(format!("expected {N} bytes of hex")))
    }
}

/// The fee schedule at genesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeeParams {
    /// Charged on every transaction, in atto-RBTC.
    pub base: Amount,
    /// Charged per encoded byte, in atto-RBTC.
    pub per_byte: Amount,
}

impl Default for FeeParams {
    fn default() -> Self {
        Self {
            base: Amount::from_atto(1_000_000_000),
            per_byte: Amount::from_atto(10_000_000),
        }
    }
}

/// One allocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisAccount {
    /// The funded account.
    pub address: Address,
    /// Its balance at height 0.
    pub balance: Amount,
}

impl Genesis {
    /// The genesis of the child `subnet` as its parent's registry describes it: its genesis
    /// validators and configuration number, its checkpoint period, no balances (value enters
    /// a child only from its parent), and the parent state it trusts.
    pub fn for_child(
        subnet: &pb::Subnet,
        parent: ParentAnchor,
        fees: FeeParams,
    ) -> Result<Self, GenesisError> {
        let subnet_id: SubnetId = subnet
            .id
            .parse()
            .map_err(|e: ipsat_core::ParseError| GenesisError::Checkpoints(e.to_string()))?;
        if subnet.status != pb::SubnetStatus::Active as i32 {
            return Err(GenesisError::Checkpoints(format!(
                "{subnet_id} has not started: it needs {} validators",
                subnet.min_validators
            )));
        }
        let mut validators = Vec::with_capacity(subnet.genesis_validators.len());
        for member in &subnet.genesis_validators {
            let address = Address::from_slice(&member.address)
                .map_err(|e| GenesisError::Checkpoints(e.to_string()))?;
            let why = |why: &str| GenesisError::Validator {
                address,
                why: why.to_owned(),
            };
            validators.push(GenesisValidator {
                address,
                cometbft_key: member
                    .cometbft_key
                    .as_slice()
                    .try_into()
                    .map_err(|_| why("cometbft_key is not 32 bytes"))?,
                bls_key: member
                    .bls_key
                    .as_slice()
                    .try_into()
                    .map_err(|_| why("bls_key is not 48 bytes"))?,
                collateral: member
                    .collateral
                    .parse()
                    .map_err(|_| why("collateral is not an amount"))?,
            });
        }
        let genesis = Genesis {
            subnet_id,
            fees,
            accounts: Vec::new(),
            validators,
            checkpoints: Some(CheckpointParams {
                period: subnet.checkpoint_period,
                configuration_number: subnet.genesis_configuration_number,
                verifier: None,
                rsk_attestation_step: DEFAULT_RSK_ATTESTATION_STEP,
            }),
            parent: Some(parent),
        };
        // The same checks as a genesis read from disk.
        let json = serde_json::to_vec(&genesis)?;
        Self::from_json(&json)
    }

    /// Each validator once, sorted by address, with a valid BLS key and positive power.
    fn check_validators(&self) -> Result<(), GenesisError> {
        if !self
            .validators
            .windows(2)
            .all(|w| w[0].address < w[1].address)
        {
            return Err(GenesisError::ValidatorOrder);
        }
        for validator in &self.validators {
            let why = |why: String| GenesisError::Validator {
                address: validator.address,
                why,
            };
            BlsPublicKey::from_compressed(&validator.bls_key)
                .map_err(|e| why(format!("bls_key: {e}")))?;
            if validator.collateral.atto() < ATTO_PER_POWER {
                return Err(why(format!(
                    "collateral must be at least {ATTO_PER_POWER} atto (one unit of power)"
                )));
            }
        }
        Ok(())
    }

    /// Parses and checks a genesis: no account twice, a total supply below 2^128.
    pub fn from_json(bytes: &[u8]) -> Result<Self, GenesisError> {
        let genesis: Genesis = serde_json::from_slice(bytes)?;
        let mut seen = BTreeSet::new();
        let mut supply = Amount::ZERO;
        for account in &genesis.accounts {
            if !seen.insert(account.address) {
                return Err(GenesisError::DuplicateAccount(account.address));
            }
            supply = supply
                .checked_add(account.balance)
                .ok_or(GenesisError::SupplyOverflow)?;
        }
        genesis.check_validators()?;
        if let Some(checkpoints) = &genesis.checkpoints {
            if checkpoints.period == 0 {
                return Err(GenesisError::Checkpoints(
                    "period must be at least 1".into(),
                ));
            }
            if genesis.validators.is_empty() {
                return Err(GenesisError::Checkpoints(
                    "no validators to sign them".into(),
                ));
            }
            if checkpoints.verifier.is_some() {
                if checkpoints.rsk_attestation_step == 0 {
                    return Err(GenesisError::Checkpoints(
                        "rsk_attestation_step must be at least 1".into(),
                    ));
                }
                if genesis.parent.is_some() {
                    return Err(GenesisError::Checkpoints(
                        "a subnet under the RSK gateway (verifier set) has no subnet parent".into(),
                    ));
                }
            }
        }
        if let Some(parent) = &genesis.parent {
            let subnet = &genesis.subnet_id;
            let is_child = subnet
                .as_str()
                .rsplit_once('/')
                .is_some_and(|(prefix, _)| prefix == parent.subnet_id.as_str());
            if !is_child {
                return Err(GenesisError::Parent {
                    parent: parent.subnet_id.clone(),
                    subnet: subnet.clone(),
                });
            }
        }
        Ok(genesis)
    }
}
