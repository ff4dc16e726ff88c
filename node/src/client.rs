//! The CLI's side of the gRPC API: connecting, building and signing transactions with the
//! right nonce and fee, and checking proofs against CometBFT headers.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use ipsat_core::light::{verify_header, LightBlock, TrustRoot};
use ipsat_core::{tx, verify_state_proof, Amount, SubnetId};
use ipsat_proto::v1::{
    self as pb, query_service_client::QueryServiceClient, tx_body::Msg,
    tx_service_client::TxServiceClient,
};
use tonic::transport::Channel;

use crate::commands::tx::SendOptions;
use crate::keys::Key;

pub struct Client {
    pub query: QueryServiceClient<Channel>,
    pub tx: TxServiceClient<Channel>,
}

impl Client {
    pub async fn connect(endpoint: &str) -> Result<Self> {
        let channel = Channel::from_shared(endpoint.to_owned())
            .with_context(|| format!("invalid node endpoint {endpoint:?}"))?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .with_context(|| format!("connecting to the node's gRPC API at {endpoint}"))?;
        Ok(Self {
            query: QueryServiceClient::new(channel.clone()),
            tx: TxServiceClient::new(channel),
        })
    }

    /// Signs `msg` from `key` with its current nonce and the minimum fee (or `options.fee`),
    /// and broadcasts it. Refuses, before signing, a node that serves another subnet than
    /// `options.subnet` and a fee above `options.max_fee`.
    pub async fn send(
        &mut self,
        key: &Key,
        msg: Msg,
        options: &SendOptions,
    ) -> Result<pb::BroadcastTxResponse> {
        let status = self
            .query
            .get_status(pb::GetStatusRequest {})
            .await?
            .into_inner();
        let subnet: SubnetId = status.subnet_id.parse()?;
        if subnet != options.subnet {
            bail!(
                "the node serves {subnet}, not {}: refusing to sign for it (pass --subnet to sign for another subnet)",
                options.subnet
            );
        }
        let (fee, wait) = (options.fee, !options.no_wait);
        let account = self
            .query
            .get_account(pb::GetAccountRequest {
                address: key.address.0.to_vec(),
                prove: false,
            })
            .await?
            .into_inner()
            .account
            .context("node returned no account")?;
        let fee_base: Amount = status.fee_base.parse()?;
        let fee_per_byte: Amount = status.fee_per_byte.parse()?;
        let mut body = pb::TxBody {
            subnet_id: subnet.to_string(),
            from: key.address.0.to_vec(),
            nonce: account.nonce,
            fee: fee.unwrap_or(fee_base).to_string(),
            msg: Some(msg),
        };
        if fee.is_none() {
            // The fee's own digits change the size; 40 bytes covers any u128 amount.
            let size = tx::sign(&key.secret, &subnet, &body).len() + 40;
            let per_byte = fee_per_byte
                .atto()
                .checked_mul(size as u128)
                .context("fee overflow")?;
            body.fee = Amount::from_atto(fee_base.atto().saturating_add(per_byte)).to_string();
        }
        let fee: Amount = body.fee.parse()?;
        if fee > options.max_fee {
            bail!(
                "the fee would be {fee} atto-RBTC, above --max-fee {}: refusing to sign",
                options.max_fee
            );
        }
        let raw = tx::sign(&key.secret, &subnet, &body);
        let mode = if wait {
            pb::BroadcastMode::Commit
        } else {
            pb::BroadcastMode::Sync
        };
        Ok(self
            .tx
            .broadcast_tx(pb::BroadcastTxRequest {
                tx: raw,
                mode: mode as i32,
                timeout_ms: 0,
            })
            .await?
            .into_inner())
    }

    /// The checkpoint at `height` (0: the latest) of this subnet, or with `child` set, of that
    /// child as accepted here, with the period of the subnet asked about; `None` if absent.
    pub async fn checkpoint(
        &mut self,
        child: &str,
        height: u64,
    ) -> Result<Option<(pb::Checkpoint, u64)>> {
        match self
            .query
            .get_checkpoint(pb::GetCheckpointRequest {
                child: child.to_owned(),
                height,
            })
            .await
        {
            Ok(response) => {
                let response = response.into_inner();
                Ok(response.checkpoint.map(|cp| (cp, response.period)))
            }
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(status).context("GetCheckpoint"),
        }
    }

    /// This subnet's checkpoint at `height` once it is certified, `None` before.
    pub async fn certified_checkpoint(&mut self, height: u64) -> Result<Option<pb::Checkpoint>> {
        Ok(self
            .checkpoint("", height)
            .await?
            .map(|(cp, _)| cp)
            .filter(|cp| cp.certificate.is_some()))
    }

    /// Proofs of the top-down messages queued for child `child` from nonce `from`, as of the
    /// committed `height`; they are checked by whoever imports them, not here.
    pub async fn top_down_proofs(
        &mut self,
        child: &str,
        from: u64,
        height: u64,
        limit: u32,
    ) -> Result<Vec<pb::StateProof>> {
        Ok(self
            .query
            .get_top_down_messages(pb::GetTopDownMessagesRequest {
                subnet: child.to_owned(),
                from_nonce: from,
                height,
                limit,
            })
            .await?
            .into_inner()
            .proofs)
    }

    /// The light block at `height`, `None` while the node does not have it yet.
    pub async fn light_block(&mut self, height: u64) -> Result<Option<LightBlock>> {
        let block = self.fetch_light_block(height).await?;
        if let Some(block) = &block {
            if block.signed_header.header.height.value() != height {
                bail!("asked for the light block at {height}, the node sent another height");
            }
        }
        Ok(block)
    }

    /// The light block of the node's latest committed height.
    pub async fn light_block_latest(&mut self) -> Result<LightBlock> {
        self.fetch_light_block(0)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the node has no light block yet"))
    }

    async fn fetch_light_block(&mut self, height: u64) -> Result<Option<LightBlock>> {
        match self
            .query
            .get_light_block(pb::GetLightBlockRequest { height })
            .await
        {
            Ok(response) => {
                let r = response.into_inner();
                let block =
                    LightBlock::decode(&r.signed_header, &r.validator_set, &r.next_validator_set)?;
                Ok(Some(block))
            }
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(status.into()),
        }
    }

    /// Verifies `proof` offline, then verifies the CometBFT header of the next block (where a
    /// block's app hash is committed) with light-client verification from `trust`, and checks
    /// that header's app hash is the one the proof commits to.
    pub async fn verify_proof(
        &mut self,
        proof: &pb::StateProof,
        trust: &HeaderTrust,
    ) -> Result<ProofReport> {
        let app_hash = verify_state_proof(proof).context("proof does not verify")?;
        let header_height = proof.height + 1;
        let mut target = None;
        for _ in 0..50 {
            target = self.light_block(header_height).await?;
            if target.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let target = target.with_context(|| {
            format!("block {header_height} did not appear; cannot check the proof against a header")
        })?;
        let (verified, root) = match trust {
            HeaderTrust::ValidatorSet {
                chain_id,
                validators,
                source,
            } => {
                let root = TrustRoot::ValidatorSet {
                    chain_id,
                    validators,
                };
                let verified = verify_header(&target, &root)?;
                (verified, format!("the validator set of {source}"))
            }
            HeaderTrust::Header { height, hash } => {
                let trusted = self
                    .light_block(*height)
                    .await?
                    .with_context(|| format!("the node has no block {height} to trust"))?;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .context("the clock is before 1970")?;
                let root = TrustRoot::Header {
                    hash: *hash,
                    block: &trusted,
                    trusting_period: TRUSTING_PERIOD,
                    now: tendermint::Time::from_unix_timestamp(
                        i64::try_from(now.as_secs()).context("time")?,
                        now.subsec_nanos(),
                    )
                    .map_err(|e| anyhow::anyhow!("the clock: {e}"))?,
                };
                let verified = verify_header(&target, &root)?;
                (
                    verified,
                    format!("the trusted header {hash} at height {height}"),
                )
            }
        };
        if verified.app_hash != app_hash {
            bail!(
                "the proof commits to app hash {} but the verified header {header_height} has {}: the node lied",
                hex::encode(app_hash),
                hex::encode(&verified.app_hash)
            );
        }
        Ok(ProofReport {
            header_height,
            header_hash: target.hash().to_string(),
            signed_power: verified.signed_power,
            total_power: verified.total_power,
            chain_id: verified.chain_id,
            root,
        })
    }
}

/// How long a header trusted by hash stays a valid starting point: CometBFT's default
/// unbonding period is 21 days, and a light client must trust for less.
const TRUSTING_PERIOD: Duration = Duration::from_secs(14 * 24 * 3600);

/// Where light-client verification of a proof's header starts.
pub enum HeaderTrust {
    /// A validator set, e.g. the genesis set in a genesis file.
    ValidatorSet {
        chain_id: String,
        validators: tendermint::validator::Set,
        /// Where it came from, for the report.
        source: String,
    },
    /// A header trusted by its hash.
    Header { height: u64, hash: tendermint::Hash },
}

/// What [`Client::verify_proof`] established.
pub struct ProofReport {
    pub header_height: u64,
    pub header_hash: String,
    pub signed_power: u64,
    pub total_power: u64,
    pub chain_id: String,
    /// What the header was verified from.
    pub root: String,
}
