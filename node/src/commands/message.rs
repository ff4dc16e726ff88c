//! `ipsat message`: the cross-net messages this subnet originated, with their status.

use anyhow::Result;
use clap::Subcommand;
use ipsat_core::{Address, SubnetId};
use ipsat_proto::v1 as pb;
use serde_json::json;

use super::{print, Output};
use crate::client;

#[derive(Subcommand)]
pub enum MessageCommand {
    /// A call (or a receipt) this subnet originated, by its nonce, and where it stands: sent
    /// and waiting for its receipt, delivered, or failed with the code the destination gave
    /// (its value refunded).
    Show { nonce: u64 },
    /// What this subnet (--node) did with message NONCE of FROM_SUBNET on its way: forwarded
    /// up or down, delivered, failed, or a receipt applied. Ask each subnet on the path.
    Passage { from_subnet: SubnetId, nonce: u64 },
}

pub async fn run(command: MessageCommand, node: &str, output: Output) -> Result<()> {
    let mut client = client::Client::connect(node).await?;
    match command {
        MessageCommand::Passage { from_subnet, nonce } => {
            let p = client
                .query
                .get_passage(pb::GetPassageRequest {
                    from_subnet: from_subnet.to_string(),
                    nonce,
                })
                .await?
                .into_inner();
            let human = if !p.found {
                format!(
                    "message {nonce} of {from_subnet} has not reached this subnet (height {})",
                    p.height
                )
            } else {
                match p.passage.as_str() {
                    "forwarded down" => {
                        format!("forwarded down to {} (height {})", p.child, p.height)
                    }
                    "failed" | "undeliverable" => {
                        format!("{} with code {} (height {})", p.passage, p.code, p.height)
                    }
                    other => format!("{other} (height {})", p.height),
                }
            };
            print(
                output,
                human,
                json!({
                    "found": p.found,
                    "passage": p.passage,
                    "child": p.child,
                    "code": p.code,
                    "height": p.height,
                }),
            );
        }
        MessageCommand::Show { nonce } => {
            let m = client
                .query
                .get_message(pb::GetMessageRequest { nonce })
                .await?
                .into_inner();
            if !m.found {
                anyhow::bail!(
                    "this subnet originated no message {nonce} (height {})",
                    m.height
                );
            }
            let target = if m.to_keyspace.is_empty() {
                Address::from_slice(&m.to_account)
                    .map(|a| a.to_string())
                    .unwrap_or_default()
            } else {
                format!("keyspace {} key {}", m.to_keyspace, hex::encode(&m.key))
            };
            let status = match m.status.as_str() {
                "failed" => format!("failed (code {}), value refunded", m.failure_code),
                other => other.to_owned(),
            };
            let what = if m.kind == "receipt" {
                format!("receipt of call {} (code {})", m.call_nonce, m.code)
            } else {
                format!("call with {} bytes of payload", m.payload.len())
            };
            let human = format!(
                "message {} from {} to {} {target}: {what}, {} atto\nstatus: {status} (height {})",
                m.nonce, m.from_subnet, m.to_subnet, m.amount, m.height
            );
            print(
                output,
                human,
                json!({
                    "nonce": m.nonce,
                    "from_subnet": m.from_subnet,
                    "from": hex::encode(&m.from),
                    "to_subnet": m.to_subnet,
                    "to_account": hex::encode(&m.to_account),
                    "to_keyspace": m.to_keyspace,
                    "key": hex::encode(&m.key),
                    "amount": m.amount,
                    "kind": m.kind,
                    "payload": hex::encode(&m.payload),
                    "call_nonce": m.call_nonce,
                    "code": m.code,
                    "status": m.status,
                    "failure_code": m.failure_code,
                    "height": m.height,
                }),
            );
        }
    }
    Ok(())
}
