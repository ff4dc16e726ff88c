//! `ipsat status`: the node's subnet, height and roots.

use anyhow::Result;
use ipsat_proto::v1 as pb;
use serde_json::json;

use super::{print, Output};
use crate::client;

/// Prints the status of the node at `node`.
pub async fn run(node: &str, output: Output) -> Result<()> {
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
