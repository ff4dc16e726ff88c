//! The CLI's side of the gRPC API: connecting, building and signing transactions with the
//! right nonce and fee, and checking proofs against CometBFT headers.

use std::time::Duration;

use anyhow::{bail, Context, Result};
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

    /// Verifies `proof` offline, then checks its app hash against the CometBFT header of the
    /// next block (which is where a block's app hash is committed), waiting for that block.
    pub async fn check_proof(&mut self, proof: &pb::StateProof) -> Result<u64> {
        let app_hash = verify_state_proof(proof).context("proof does not verify")?;
        let header_height = proof.height + 1;
        for _ in 0..50 {
            match self
                .query
                .get_block(pb::GetBlockRequest {
                    height: header_height,
                })
                .await
            {
                Ok(header) => {
                    let header = header.into_inner();
                    if header.app_hash != app_hash {
                        bail!(
                            "proof commits to app hash {} but header {header_height} has {}",
                            hex::encode(app_hash),
                            hex::encode(&header.app_hash)
                        );
                    }
                    return Ok(header_height);
                }
                Err(status) if status.code() == tonic::Code::NotFound => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(status) => return Err(status.into()),
            }
        }
        bail!("block {header_height} did not appear; cannot check the proof against a header")
    }
}
