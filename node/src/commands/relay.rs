//! `ipsat relay`: catches a parent up with a child's certified checkpoints when delivery
//! between their validators is cut. Anyone may run it: the checkpoints carry their own
//! certificates, so the parent needs no trust in the relayer and charges it no fee.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use ipsat_core::SystemTx;
use ipsat_proto::v1 as pb;
use serde_json::json;

use super::{print, Output};
use crate::client;

#[derive(Args)]
pub struct RelayArgs {
    /// The child's name in the parent (the parent is --node).
    pub name: String,
    /// gRPC endpoint of a node of the child.
    #[arg(long)]
    pub child: String,
    /// Keep relaying new checkpoints instead of stopping once the parent has caught up.
    #[arg(long)]
    pub follow: bool,
    /// How often to look for new checkpoints with --follow.
    #[arg(long, default_value_t = 1000)]
    pub poll_interval_ms: u64,
}

pub async fn run(args: RelayArgs, node: &str, output: Output) -> Result<()> {
    let mut parent = client::Client::connect(node).await?;
    let mut child = client::Client::connect(&args.child).await?;
    let mut relayed = Vec::new();
    loop {
        let subnet = parent
            .query
            .get_subnet(pb::GetSubnetRequest {
                name: args.name.clone(),
            })
            .await
            .with_context(|| format!("reading {:?} in the parent", args.name))?
            .into_inner()
            .subnet
            .context("the parent returned no subnet")?;
        let height = subnet.last_checkpoint_height + subnet.checkpoint_period;
        let next = child
            .certified_checkpoint(height)
            .await
            .context("reading the child's checkpoint")?;
        match next {
            Some(checkpoint) => {
                let tx = SystemTx::child_checkpoint_from_proto(&args.name, &checkpoint)
                    .context("the child served a malformed checkpoint")?;
                let response = parent
                    .tx
                    .broadcast_tx(pb::BroadcastTxRequest {
                        tx: tx.encode(),
                        mode: pb::BroadcastMode::Commit as i32,
                        timeout_ms: 0,
                    })
                    .await
                    .context("submitting the checkpoint to the parent")?
                    .into_inner();
                if response.code != 0 {
                    bail!(
                        "the parent refused checkpoint {height} (code {}): {}",
                        response.code,
                        response.log
                    );
                }
                if output == Output::Human {
                    eprintln!(
                        "checkpoint {height} of {} accepted at parent height {}",
                        subnet.id, response.height
                    );
                }
                relayed.push(height);
            }
            None if args.follow => {
                tokio::time::sleep(Duration::from_millis(args.poll_interval_ms)).await;
            }
            None => {
                print(
                    output,
                    format!(
                        "parent is caught up: {} relayed, latest accepted checkpoint {}",
                        relayed.len(),
                        subnet.last_checkpoint_height
                    ),
                    json!({
                        "relayed": relayed,
                        "last_checkpoint_height": subnet.last_checkpoint_height,
                    }),
                );
                return Ok(());
            }
        }
    }
}
