//! `ipsat checkpoint`: this subnet's certified checkpoints, or a child's accepted here.

use anyhow::{Context, Result};
use clap::Subcommand;
use ipsat_proto::v1 as pb;
use serde_json::json;

use super::{print, Output};
use crate::client;

#[derive(Subcommand)]
pub enum CheckpointCommand {
    /// The latest checkpoints, newest first.
    List {
        /// A child's name: its checkpoints accepted in this subnet instead of this subnet's own.
        #[arg(long, default_value = "")]
        child: String,
        /// How many to show.
        #[arg(long, default_value_t = 10)]
        limit: u64,
    },
    /// One checkpoint with its certificate (default: the latest).
    Show {
        /// Its height; 0 means the latest.
        #[arg(default_value_t = 0)]
        height: u64,
        /// A child's name, as for `list`.
        #[arg(long, default_value = "")]
        child: String,
    },
}

fn checkpoint_json(cp: &pb::Checkpoint) -> serde_json::Value {
    json!({
        "subnet_id": cp.subnet_id,
        "height": cp.height,
        "hash": hex::encode(&cp.hash),
        "digest": hex::encode(&cp.digest),
        "block_hash": hex::encode(&cp.block_hash),
        "state_root": hex::encode(&cp.state_root),
        "history_root": hex::encode(&cp.history_root),
        "cross_msgs_root": hex::encode(&cp.cross_msgs_root),
        "cross_msgs_count": cp.cross_msgs_count,
        "next_validator_set_hash": hex::encode(&cp.next_validator_set_hash),
        "configuration_number": cp.configuration_number,
        "previous_checkpoint_hash": hex::encode(&cp.previous_checkpoint_hash),
        "certificate": cp.certificate.as_ref().map(|c| json!({
            "signers": hex::encode(&c.signers),
            "signature": hex::encode(&c.signature),
        })),
    })
}

fn signer_count(cp: &pb::Checkpoint) -> u32 {
    cp.certificate
        .as_ref()
        .map_or(0, |c| c.signers.iter().map(|b| b.count_ones()).sum())
}

fn checkpoint_line(cp: &pb::Checkpoint) -> String {
    let certified = match &cp.certificate {
        Some(_) => format!("certified by {} signers", signer_count(cp)),
        None => "waiting for its certificate".to_owned(),
    };
    format!(
        "{} at {:>8}  hash {}  {certified}",
        cp.subnet_id,
        cp.height,
        hex::encode(&cp.hash)
    )
}

pub async fn run(command: CheckpointCommand, node: &str, output: Output) -> Result<()> {
    let mut client = client::Client::connect(node).await?;
    match command {
        CheckpointCommand::Show { height, child } => {
            let (checkpoint, _) = client
                .checkpoint(&child, height)
                .await?
                .context("no such checkpoint")?;
            let mut human = checkpoint_line(&checkpoint);
            human.push_str(&format!(
                "\n  state root {}\n  history root {}\n  block {}\n  digest {}\n  previous {}",
                hex::encode(&checkpoint.state_root),
                hex::encode(&checkpoint.history_root),
                hex::encode(&checkpoint.block_hash),
                hex::encode(&checkpoint.digest),
                hex::encode(&checkpoint.previous_checkpoint_hash),
            ));
            print(output, human, checkpoint_json(&checkpoint));
        }
        CheckpointCommand::List { child, limit } => {
            let mut listed = Vec::new();
            let mut next = client.checkpoint(&child, 0).await?;
            while let Some((checkpoint, period)) = next.take() {
                let earlier = checkpoint.height.saturating_sub(period);
                listed.push(checkpoint);
                if earlier > 0 && (listed.len() as u64) < limit {
                    next = client.checkpoint(&child, earlier).await?;
                }
            }
            let human = if listed.is_empty() {
                "no checkpoints yet".to_owned()
            } else {
                listed
                    .iter()
                    .map(checkpoint_line)
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            print(
                output,
                human,
                json!(listed.iter().map(checkpoint_json).collect::<Vec<_>>()),
            );
        }
    }
    Ok(())
}
