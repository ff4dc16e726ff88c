//! A level-1 node's link to the RSK gateway (`[gateway]` in `ipsat.toml`): two services.
//!
//! - [`RskFollower`] reads, at the confirmation depth, the latest RSK height on the subnet's
//!   attestation step, its block hash, and the gateway's `Funded` events for the subnet up
//!   to it, and hands them to the app, which signs the point in its vote extensions and
//!   proposes the deposits once a quorum signed the same point. Nothing it reads is trusted
//!   by anyone else: a point mints only when more than two thirds of the power read it too.
//! - [`CheckpointSubmitter`] relays each certified checkpoint to the gateway with a quorum of
//!   the gateway signatures its certificate carries, then executes its releases so RBTC
//!   reaches RSK accounts. One validator submits each checkpoint, by rotation on the
//!   checkpoint's number; the next in the rotation steps in after `submit_timeout`, the one
//!   after it after twice that, and so on, so a silent submitter delays a checkpoint but
//!   cannot stall it. Releases of recently accepted checkpoints that are still unpaid (their
//!   submitter died before paying them) are paid the same way, by the rotation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{Address as EthAddress, Bytes, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result};
use ipsat_checkpoint::{is_quorum, Checkpoint};
use ipsat_core::rsk::{chain_deposit, RskDeposit, RskPoint};
use ipsat_core::{Address, Amount};
use ipsat_rootnet_bridge::{merkle, Gateway, GatewayConfig, IpsatGateway};
use ipsat_subnet::components::rsk::{self, RskInputs, RskObservation};
use ipsat_subnet::components::{checkpoints, registry::Member};
use ipsat_subnet::SubnetApp;
use tokio::sync::watch;

use crate::config::GatewayLinkConfig;
use crate::metrics::Metrics;

/// Connects to the gateway `config` names (`rpc` and `address` must be set), sending as
/// `sender`.
pub async fn connect(config: &GatewayLinkConfig, sender: &secp256k1::SecretKey) -> Result<Gateway> {
    let sender = PrivateKeySigner::from_bytes(&B256::from(sender.secret_bytes()))
        .context("the gateway sender key")?;
    connect_as(config, sender).await
}

/// Connects to the gateway `config` names to read its views: the sender is a throwaway key
/// that never sends anything.
pub async fn connect_reader(config: &GatewayLinkConfig) -> Result<Gateway> {
    connect_as(config, PrivateKeySigner::random()).await
}

async fn connect_as(config: &GatewayLinkConfig, sender: PrivateKeySigner) -> Result<Gateway> {
    let (Some(rpc), Some(address)) = (&config.rpc, &config.address) else {
        anyhow::bail!("[gateway] rpc and address must both be set");
    };
    let address: EthAddress = address
        .parse()
        .context("[gateway] address is not a 20-byte hex address")?;
    let gateway_config = GatewayConfig {
        chain_id: config.chain_id,
        confirmations: config.confirmations,
        gas_price: config.gas_price_wei,
        ..GatewayConfig::default()
    };
    Gateway::at(rpc, address, sender, gateway_config)
        .await
        .with_context(|| format!("connecting to the RSK gateway {address} at {rpc}"))
}

/// [`connect`], retried every few seconds while RSK does not answer: a validator started
/// before its RSK node (a reboot, a devnet) waits for it instead of exiting. A config that
/// cannot work fails at once.
pub async fn connect_when_reachable(
    config: &GatewayLinkConfig,
    sender: &secp256k1::SecretKey,
) -> Result<Gateway> {
    config
        .address
        .as_deref()
        .unwrap_or_default()
        .parse::<EthAddress>()
        .context("[gateway] address is not a 20-byte hex address")?;
    let mut attempt = 0u32;
    loop {
        match connect(config, sender).await {
            Ok(gateway) => return Ok(gateway),
            Err(e) => {
                attempt += 1;
                tracing::warn!(
                    attempt,
                    error = format!("{e:#}"),
                    "RSK gateway not reachable yet; retrying"
                );
                tokio::time::sleep(Duration::from_secs(u64::from(attempt.min(5)))).await;
            }
        }
    }
}

/// Waits `interval` or until shutdown; `false` once shutting down.
async fn pause(shutdown: &mut watch::Receiver<bool>, interval: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(interval) => true,
        _ = shutdown.changed() => false,
    }
}

/// Reads RSK for the app; see the module documentation.
pub struct RskFollower {
    pub gateway: Arc<Gateway>,
    pub app: Arc<SubnetApp>,
    pub subnet: B256,
    pub inputs: RskInputs,
    pub metrics: Arc<Metrics>,
    pub poll_interval: Duration,
}

impl RskFollower {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        let mut deposits: BTreeMap<u64, RskDeposit> = BTreeMap::new();
        let mut scanned_to = 0u64;
        loop {
            match self.poll(&mut deposits, &mut scanned_to).await {
                Ok(Some(point)) => tracing::debug!(
                    rsk_height = point.height,
                    deposits = point.deposit_count,
                    "read RSK at the confirmation depth"
                ),
                Ok(None) => {}
                Err(error) => {
                    self.metrics.record_rsk_read_failure();
                    tracing::warn!(error = %format!("{error:#}"), "reading RSK failed; retrying");
                }
            }
            if !pause(&mut shutdown, self.poll_interval).await {
                return Ok(());
            }
        }
    }

    /// Reads up to the newest final height on the step and publishes the point.
    async fn poll(
        &self,
        deposits: &mut BTreeMap<u64, RskDeposit>,
        scanned_to: &mut u64,
    ) -> Result<Option<RskPoint>> {
        let Some(step) = rsk::step(self.app.store())? else {
            return Ok(None);
        };
        let height = self.gateway.final_height().await? / step * step;
        if height == 0 || height <= *scanned_to {
            return Ok(None);
        }
        let block_hash = self
            .gateway
            .rpc()
            .block(height)
            .await
            .context("eth_getBlockByNumber")?
            .with_context(|| format!("RSK has no block {height}"))?
            .hash;
        for event in self
            .gateway
            .funded_events_between(self.subnet, *scanned_to + 1, height)
            .await?
        {
            let amount = u128::try_from(event.amount).context("a deposit above 2^128 wei")?;
            deposits.insert(
                event.nonce,
                RskDeposit {
                    recipient: Address(event.recipient.into_array()),
                    amount: Amount::from_atto(amount),
                    nonce: event.nonce,
                },
            );
        }
        *scanned_to = height;
        let count = deposits.len() as u64;
        anyhow::ensure!(
            deposits.keys().copied().eq(0..count),
            "the gateway's deposit nonces for this subnet are not 0..{count}"
        );
        let point = RskPoint {
            height,
            block_hash: block_hash.0,
            deposit_count: count,
            deposits_digest: deposits.values().fold([0; 32], |d, e| chain_deposit(&d, e)),
        };
        self.inputs.observe(RskObservation {
            point: Some(point),
            deposits: deposits.clone(),
        });
        self.metrics.record_rsk_read(height);
        Ok(Some(point))
    }
}

/// Relays certified checkpoints to the gateway; see the module documentation.
pub struct CheckpointSubmitter {
    pub gateway: Arc<Gateway>,
    pub app: Arc<SubnetApp>,
    pub subnet: B256,
    /// This validator's gateway signer (and the account paying for submissions).
    pub signer: Address,
    pub submit_timeout: Duration,
    pub metrics: Arc<Metrics>,
    pub poll_interval: Duration,
}

/// Accepted checkpoints, counted back from the latest, whose releases a submitter checks are
/// paid.
const RELEASE_LOOKBACK: u64 = 16;

/// What a submitter waits on: when each checkpoint was first seen certified here and not yet
/// on the gateway, and when each accepted one was first seen with unpaid releases.
#[derive(Default)]
struct Waiting {
    certified: BTreeMap<u64, Instant>,
    unpaid: BTreeMap<u64, Instant>,
}

impl CheckpointSubmitter {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        let mut waiting = Waiting::default();
        loop {
            if let Err(error) = self.poll(&mut waiting).await {
                self.metrics.record_gateway_submit_failure();
                tracing::warn!(error = %format!("{error:#}"), "submitting to the gateway failed; retrying");
            }
            if !pause(&mut shutdown, self.poll_interval).await {
                return Ok(());
            }
        }
    }

    async fn poll(&self, waiting: &mut Waiting) -> Result<()> {
        let store = self.app.store();
        let Some(params) = checkpoints::params(store)? else {
            return Ok(());
        };
        let members = checkpoints::signing_set(store)?;
        let Some(me) = members
            .iter()
            .position(|m| Address(m.address) == self.signer)
        else {
            return Ok(());
        };
        let info = self
            .gateway
            .view(
                "getSubnet",
                &IpsatGateway::getSubnetCall {
                    subnetId: self.subnet,
                },
                None,
            )
            .await?;
        let last = info.lastCheckpointHeight;
        let oldest = last.saturating_sub(RELEASE_LOOKBACK * params.period);
        waiting.unpaid.retain(|height, _| *height > oldest);
        for height in (oldest + 1..=last).filter(|h| h.is_multiple_of(params.period)) {
            let unpaid = self.unpaid_releases(height).await?;
            if !unpaid.is_empty() {
                let first_seen = *waiting.unpaid.entry(height).or_insert_with(Instant::now);
                let rank = rotation_rank(height / params.period, me, members.len());
                if first_seen.elapsed() >= self.submit_timeout * rank {
                    self.execute_releases(height, &unpaid).await?;
                }
            }
        }
        let next = last + params.period;
        waiting.certified.retain(|height, _| *height >= next);
        let Some(stored) = checkpoints::certified(store, next)? else {
            return Ok(());
        };
        let first_seen = *waiting.certified.entry(next).or_insert_with(Instant::now);
        let rank = rotation_rank(next / params.period, me, members.len());
        if first_seen.elapsed() < self.submit_timeout * rank {
            return Ok(());
        }
        let (checkpoint, _) = stored.decode()?;
        let signatures = stored.decode_gateway_signatures()?;
        let chosen = quorum_signatures(&members, &signatures);
        tracing::info!(
            height = next,
            rank,
            signers = chosen.len() / 65,
            "submitting the checkpoint to the gateway"
        );
        let receipt = self
            .gateway
            .submit_checkpoint(
                &gateway_checkpoint(&checkpoint),
                members
                    .iter()
                    .map(|m| EthAddress::from(m.address))
                    .collect(),
                members.iter().map(|m| U256::from(m.collateral)).collect(),
                Bytes::from(chosen),
            )
            .await?;
        tracing::info!(
            height = next,
            gas = %receipt.gas_used,
            "checkpoint accepted by the gateway"
        );
        self.metrics.record_gateway_submission();
        let unpaid = self.unpaid_releases(next).await?;
        self.execute_releases(next, &unpaid).await
    }

    /// The nonces of the releases of the accepted checkpoint at `height` that the gateway has
    /// not paid yet.
    async fn unpaid_releases(&self, height: u64) -> Result<Vec<u64>> {
        let mut unpaid = Vec::new();
        for release in checkpoints::checkpoint_releases(self.app.store(), height)? {
            let paid = self
                .gateway
                .view(
                    "isReleaseExecuted",
                    &IpsatGateway::isReleaseExecutedCall {
                        subnetId: self.subnet,
                        nonce: release.nonce,
                    },
                    None,
                )
                .await?;
            if !paid {
                unpaid.push(release.nonce);
            }
        }
        Ok(unpaid)
    }

    /// Pays on RSK the releases `unpaid` (by nonce) of the checkpoint at `height`.
    async fn execute_releases(&self, height: u64, unpaid: &[u64]) -> Result<()> {
        let releases = checkpoints::checkpoint_releases(self.app.store(), height)?;
        let leaves: Vec<B256> = releases.iter().map(|r| B256::from(r.leaf())).collect();
        for (index, release) in releases
            .iter()
            .enumerate()
            .filter(|(_, r)| unpaid.contains(&r.nonce))
        {
            let proof = merkle::proof(&leaves, index);
            self.gateway
                .execute_release(
                    self.subnet,
                    height,
                    IpsatGateway::Release {
                        recipient: EthAddress::from(release.recipient),
                        amount: U256::from(release.amount),
                        nonce: release.nonce,
                    },
                    proof,
                )
                .await
                .with_context(|| format!("executing release {}", release.nonce))?;
            tracing::info!(
                nonce = release.nonce,
                amount = release.amount,
                "release paid on RSK"
            );
        }
        Ok(())
    }
}

/// How many steps after the designated submitter of checkpoint number `number` validator
/// `me` of `members` comes in the rotation (0: it is the designated one).
pub fn rotation_rank(number: u64, me: usize, members: usize) -> u32 {
    let members = members.max(1) as u64;
    let designated = number % members;
    ((me as u64 + members - designated) % members) as u32
}

/// The fewest gateway signatures, highest power first, that reach a quorum, concatenated in
/// ascending signer order as the gateway requires (the set is sorted by address, so index
/// order is address order).
fn quorum_signatures(
    members: &[Member],
    signatures: &[(u32, ipsat_core::rsk::GatewaySignature)],
) -> Vec<u8> {
    let total: u128 = members.iter().map(|m| u128::from(m.power())).sum();
    let mut by_power: Vec<&(u32, _)> = signatures.iter().collect();
    by_power.sort_by_key(|(index, _)| {
        std::cmp::Reverse(members.get(*index as usize).map_or(0, |m| m.power()))
    });
    let mut signed = 0u128;
    let mut chosen: Vec<&(u32, _)> = Vec::new();
    for signature in by_power {
        if is_quorum(signed, total) {
            break;
        }
        signed += members
            .get(signature.0 as usize)
            .map_or(0, |m| u128::from(m.power()));
        chosen.push(signature);
    }
    chosen.sort_by_key(|(index, _)| *index);
    chosen.iter().flat_map(|(_, s)| s.0).collect()
}

/// The gateway's form of a checkpoint.
pub fn gateway_checkpoint(checkpoint: &Checkpoint) -> IpsatGateway::Checkpoint {
    IpsatGateway::Checkpoint {
        subnetId: B256::from(checkpoint.subnet.0),
        height: checkpoint.height,
        blockHash: B256::from(checkpoint.block_hash),
        stateRoot: B256::from(checkpoint.state_root),
        historyRoot: B256::from(checkpoint.history_root),
        crossMsgsRoot: B256::from(checkpoint.cross_msgs_root),
        crossMsgsCount: checkpoint.cross_msgs_count,
        nextValidatorSetHash: B256::from(checkpoint.next_validator_set_hash.0),
        configurationNumber: checkpoint.configuration_number,
        previousCheckpointHash: B256::from(checkpoint.previous.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_validator_has_its_own_place_in_the_rotation() {
        for number in 0..7 {
            let mut ranks: Vec<u32> = (0..4).map(|me| rotation_rank(number, me, 4)).collect();
            assert_eq!(ranks.iter().filter(|r| **r == 0).count(), 1);
            ranks.sort();
            assert_eq!(ranks, vec![0, 1, 2, 3]);
        }
        assert_eq!(rotation_rank(5, 1, 4), 0);
    }
}
