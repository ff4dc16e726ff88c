//! The tree as one node sees it, assembled on request from the node's own gRPC API, its
//! children's nodes, the RSK gateway and a Bitcoin node: nothing here is stored, and nothing
//! read is trusted beyond being shown (proofs are what checks it).

use std::collections::BTreeMap;

use alloy::primitives::{Address as EthAddress, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result};
use ipsat_anchor::bitcoin::hashes::Hash as _;
use ipsat_anchor::bitcoin::Txid;
use ipsat_anchor::RpcClient;
use ipsat_core::action::ATTO_PER_POWER;
use ipsat_core::SubnetId;
use ipsat_proto::v1 as pb;
use ipsat_rootnet_bridge::{Gateway, GatewayConfig, IpsatGateway};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::anchor_service::AnchorLag;
use crate::client::Client;
use crate::config::{ExplorerConfig, GatewayLinkConfig};

/// Everything the page shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TreeView {
    /// Parents before their children.
    pub subnets: Vec<SubnetView>,
    pub gateway: Option<GatewayView>,
    /// The Bitcoin node's best height, if one is configured and answers.
    pub bitcoin_height: Option<u64>,
    /// Sources that did not answer, for people: the rest of the view is still shown.
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubnetView {
    pub id: String,
    pub level: usize,
    pub parent: Option<String>,
    /// The gRPC endpoint read, if this node knows one.
    pub endpoint: Option<String>,
    /// The latest committed height, `None` if no node of the subnet answered.
    pub height: Option<u64>,
    /// The validators and their power, as the parent (or the gateway) registered them.
    pub validators: Vec<ValidatorView>,
    /// Blocks between checkpoints.
    pub checkpoint_period: Option<u64>,
    /// The subnet's latest certified checkpoint.
    pub checkpoint: Option<CheckpointView>,
    /// The height of the latest checkpoint its parent (or the gateway) accepted.
    pub accepted_height: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidatorView {
    /// An account address (children) or the gateway signer (level 1).
    pub address: String,
    pub power: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointView {
    pub height: u64,
    pub hash: String,
    /// Whether the parent (or the gateway) has accepted it.
    pub accepted: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GatewayView {
    pub address: String,
    pub chain_id: u64,
    pub rsk_height: u64,
    pub blocktree_root: String,
    pub anchor: Option<AnchorView>,
    /// How far anchoring is behind the gateway (`None` if it could not be read).
    #[serde(default)]
    pub anchor_lag: Option<AnchorLag>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnchorView {
    pub blocktree_root: String,
    pub btc_txid: String,
    pub btc_height: u64,
    /// The RSK height whose root was anchored.
    pub rsk_height: u64,
    /// Whether the Bitcoin node's best chain holds the anchor's transaction at `btc_height`
    /// (`None` when no Bitcoin node answers). False after a reorganisation that dropped it, or
    /// against a node of another chain.
    pub in_best_chain: Option<bool>,
    /// Bitcoin blocks from the anchor's to the best, inclusive, when the best chain holds it.
    pub confirmations: Option<u64>,
}

/// The anchor's confirmations if the block at its height in the Bitcoin node's best chain
/// holds its transaction, `None` if it does not: a height alone would count blocks of any chain.
async fn anchor_confirmations(rpc: &RpcClient, anchor: &AnchorView) -> Result<Option<u64>> {
    let best = rpc.get_block_count().await?;
    if anchor.btc_height > best {
        return Ok(None);
    }
    let hash = rpc.get_block_hash(anchor.btc_height).await?;
    // `getblock` at verbosity 1 lists txids and counts confirmations (btcd and Bitcoin Core
    // alike; btcd refuses the older boolean form).
    let block: serde_json::Value = rpc
        .call("getblock", &[json!(hash.to_string()), json!(1)])
        .await?;
    Ok(confirmations_if_held(&block, &anchor.btc_txid))
}

/// A verbose block's confirmations if it lists `txid`.
fn confirmations_if_held(block: &serde_json::Value, txid: &str) -> Option<u64> {
    let holds = block["tx"]
        .as_array()
        .is_some_and(|txids| txids.iter().any(|t| t.as_str() == Some(txid)));
    holds.then(|| block["confirmations"].as_u64()).flatten()
}

/// Where the tree is read from.
pub struct Sources {
    /// This node's own gRPC API.
    pub own: String,
    /// gRPC endpoints of the children this node delivers checkpoints of.
    pub children: Vec<String>,
    pub gateway: GatewayLinkConfig,
    pub explorer: ExplorerConfig,
}

impl Sources {
    /// Reads the tree now. Sources that fail are listed in `errors`, never fatal.
    pub async fn read(&self) -> TreeView {
        let mut view = TreeView {
            subnets: Vec::new(),
            gateway: None,
            bitcoin_height: None,
            errors: Vec::new(),
        };
        let bitcoin = self.bitcoin();
        if let Some(rpc) = &bitcoin {
            match rpc.get_block_count().await {
                Ok(height) => view.bitcoin_height = Some(height),
                Err(e) => view.errors.push(format!("Bitcoin node: {e}")),
            }
        }
        let mut nodes = BTreeMap::new();
        for endpoint in std::iter::once(&self.own).chain(&self.children) {
            match NodeReading::read(endpoint).await {
                Ok(reading) => {
                    nodes.insert(reading.status.subnet_id.clone(), reading);
                }
                Err(e) => view.errors.push(format!("{endpoint}: {e:#}")),
            }
        }
        let gateway = match self.gateway_reading(&nodes, bitcoin.as_ref()).await {
            Ok(reading) => reading,
            Err(e) => {
                view.errors.push(format!("RSK gateway: {e:#}"));
                None
            }
        };
        // Every subnet a node serves, and every child in a registry read, shown once, parents
        // first (a path sorts after its parent's).
        let mut registered: BTreeMap<String, pb::Subnet> = BTreeMap::new();
        for reading in nodes.values() {
            for child in &reading.children {
                registered.insert(child.id.clone(), child.clone());
            }
        }
        let ids: std::collections::BTreeSet<String> =
            nodes.keys().chain(registered.keys()).cloned().collect();
        for id in ids {
            let node = nodes.get(&id);
            let path = id.parse::<SubnetId>().ok();
            let mut subnet = SubnetView {
                level: path.as_ref().map_or(0, SubnetId::level),
                parent: path
                    .as_ref()
                    .and_then(SubnetId::parent)
                    .map(|p| p.to_string()),
                id: id.clone(),
                endpoint: node.map(|n| n.endpoint.clone()),
                height: node.map(|n| n.status.height),
                validators: Vec::new(),
                checkpoint_period: node.and_then(|n| n.period),
                checkpoint: node.and_then(|n| n.checkpoint.clone()),
                accepted_height: None,
            };
            if let Some(entry) = registered.get(&id) {
                subnet.validators = entry
                    .validators
                    .iter()
                    .filter(|v| v.left_at == 0)
                    .map(|v| ValidatorView {
                        address: format!("0x{}", hex::encode(&v.address)),
                        power: v.power,
                    })
                    .collect();
                subnet.checkpoint_period = Some(entry.checkpoint_period);
                subnet.accepted_height = Some(entry.last_checkpoint_height);
            } else if let Some(level_one) = gateway.as_ref().and_then(|g| g.subnets.get(&id)) {
                subnet.validators = level_one.validators.clone();
                subnet.checkpoint_period = Some(level_one.checkpoint_period);
                subnet.accepted_height = Some(level_one.accepted_height);
            }
            if let (Some(checkpoint), Some(accepted)) =
                (subnet.checkpoint.as_mut(), subnet.accepted_height)
            {
                checkpoint.accepted = checkpoint.height <= accepted;
            }
            view.subnets.push(subnet);
        }
        if let Some(mut gateway) = gateway.map(|g| g.view) {
            if let (Some(anchor), Some(rpc), Some(_)) =
                (gateway.anchor.as_mut(), &bitcoin, view.bitcoin_height)
            {
                match anchor_confirmations(rpc, anchor).await {
                    Ok(confirmations) => {
                        anchor.in_best_chain = Some(confirmations.is_some());
                        anchor.confirmations = confirmations;
                    }
                    Err(e) => view
                        .errors
                        .push(format!("Bitcoin node, the anchor's block: {e}")),
                }
            }
            let threshold = self.explorer.anchor_stall_after_rsk_blocks;
            view.errors.extend(
                gateway
                    .anchor_lag
                    .as_ref()
                    .and_then(|lag| lag.stall_warning(threshold)),
            );
            view.gateway = Some(gateway);
        }
        view
    }

    /// The configured Bitcoin node, if any.
    pub fn bitcoin(&self) -> Option<RpcClient> {
        let url = self.explorer.bitcoin_rpc.as_deref()?;
        RpcClient::new(
            url,
            &self.explorer.bitcoin_user,
            &self.explorer.bitcoin_password,
        )
        .ok()
    }

    /// The gateway and the level-1 subnets among `nodes`, if `[gateway]` names one.
    async fn gateway_reading(
        &self,
        nodes: &BTreeMap<String, NodeReading>,
        bitcoin: Option<&RpcClient>,
    ) -> Result<Option<GatewayReading>> {
        let (Some(rpc), Some(address)) = (&self.gateway.rpc, &self.gateway.address) else {
            return Ok(None);
        };
        let address: EthAddress = address.parse().context("[gateway] address")?;
        let config = GatewayConfig {
            chain_id: self.gateway.chain_id,
            confirmations: self.gateway.confirmations,
            ..GatewayConfig::default()
        };
        // Only views are made: the signer is a throwaway that never sends anything.
        let gateway = Gateway::at(rpc, address, PrivateKeySigner::random(), config).await?;
        let rsk_height = gateway.rpc().block_number().await?;
        let root = gateway.blocktree_root(None).await?;
        let anchor = gateway
            .view("latestAnchor", &IpsatGateway::latestAnchorCall {}, None)
            .await?;
        let mut subnets = BTreeMap::new();
        for id in nodes.keys() {
            let Ok(subnet) = id.parse::<SubnetId>() else {
                continue;
            };
            if subnet.level() != 1 {
                continue;
            }
            let hash = B256::from(subnet.hash().0);
            let info = gateway
                .view(
                    "getSubnet",
                    &IpsatGateway::getSubnetCall { subnetId: hash },
                    None,
                )
                .await?;
            let set = gateway
                .view(
                    "validatorSet",
                    &IpsatGateway::validatorSetCall { subnetId: hash },
                    None,
                )
                .await?;
            let validators = set
                .signers
                .iter()
                .zip(&set.powers)
                .map(|(signer, power)| ValidatorView {
                    address: signer.to_string(),
                    // The gateway counts collateral in wei; CometBFT power is per gwei.
                    power: u64::try_from(*power / U256::from(ATTO_PER_POWER)).unwrap_or(u64::MAX),
                })
                .collect();
            subnets.insert(
                id.clone(),
                LevelOne {
                    validators,
                    checkpoint_period: info.checkpointPeriod,
                    accepted_height: info.lastCheckpointHeight,
                },
            );
        }
        let recorded = anchor.btcTxid != B256::ZERO;
        let anchor_lag = AnchorLag::read(&gateway, bitcoin).await.ok();
        Ok(Some(GatewayReading {
            view: GatewayView {
                address: address.to_string(),
                chain_id: self.gateway.chain_id,
                rsk_height,
                blocktree_root: hex::encode(root),
                anchor: recorded.then(|| AnchorView {
                    blocktree_root: hex::encode(anchor.blocktreeRoot),
                    btc_txid: Txid::from_byte_array(anchor.btcTxid.0).to_string(),
                    btc_height: anchor.btcHeight,
                    rsk_height: anchor.rskHeight,
                    in_best_chain: None,
                    confirmations: None,
                }),
                anchor_lag,
            },
            subnets,
        }))
    }
}

/// What one subnet's node says about itself and its registry.
struct NodeReading {
    endpoint: String,
    status: pb::GetStatusResponse,
    period: Option<u64>,
    checkpoint: Option<CheckpointView>,
    children: Vec<pb::Subnet>,
}

impl NodeReading {
    async fn read(endpoint: &str) -> Result<Self> {
        let mut client = Client::connect(endpoint).await?;
        let status = client
            .query
            .get_status(pb::GetStatusRequest {})
            .await
            .context("GetStatus")?
            .into_inner();
        let latest = client.checkpoint("", 0).await?;
        let children = client
            .query
            .list_subnets(pb::ListSubnetsRequest {})
            .await
            .context("ListSubnets")?
            .into_inner()
            .subnets;
        Ok(Self {
            endpoint: endpoint.to_owned(),
            status,
            period: latest.as_ref().map(|(_, period)| *period),
            checkpoint: latest
                .filter(|(cp, _)| cp.certificate.is_some())
                .map(|(cp, _)| CheckpointView {
                    height: cp.height,
                    hash: hex::encode(&cp.hash),
                    accepted: false,
                }),
            children,
        })
    }
}

struct LevelOne {
    validators: Vec<ValidatorView>,
    checkpoint_period: u64,
    accepted_height: u64,
}

struct GatewayReading {
    view: GatewayView,
    subnets: BTreeMap<String, LevelOne>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_anchor_counts_confirmations_only_in_a_block_that_lists_it() {
        let txid = "aa".repeat(32);
        let block = json!({"tx": ["bb".repeat(32), txid.clone()], "confirmations": 3});
        assert_eq!(confirmations_if_held(&block, &txid), Some(3));
        // The same height on another chain: another block, without the anchor.
        let other = json!({"tx": ["bb".repeat(32)], "confirmations": 3});
        assert_eq!(confirmations_if_held(&other, &txid), None);
        assert_eq!(
            confirmations_if_held(&json!({"confirmations": 3}), &txid),
            None
        );
    }
}
