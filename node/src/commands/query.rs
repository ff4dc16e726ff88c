//! `ipsat query`: read state, optionally with a verified proof.

use anyhow::{Context, Result};
use clap::Subcommand;
use ipsat_core::Address;
use ipsat_proto::v1 as pb;
use serde_json::json;

use super::{bytes_arg, print, Output};
use crate::client;

#[derive(Subcommand)]
pub enum QueryCommand {
    /// Balance and nonce of an address.
    Account {
        address: Address,
        /// Fetch a proof, verify it and check it against the CometBFT header.
        #[arg(long)]
        prove: bool,
    },
    /// A keyspace's owner, policy and limits.
    Keyspace {
        name: String,
        #[arg(long)]
        prove: bool,
    },
    /// The value of a key (KEY is UTF-8 unless --hex).
    Key {
        keyspace: String,
        key: String,
        #[arg(long)]
        hex: bool,
        #[arg(long)]
        prove: bool,
    },
}

async fn proof_line(client: &mut client::Client, proof: Option<&pb::StateProof>) -> Result<String> {
    match proof {
        Some(proof) => {
            let header = client.check_proof(proof).await?;
            Ok(format!(
                "\nproof verified: state root {} -> app hash {} = header of block {header}",
                hex::encode(&proof.state_root),
                hex::encode(&proof.app_hash)
            ))
        }
        None => Ok(String::new()),
    }
}

pub async fn run(command: QueryCommand, node: &str, output: Output) -> Result<()> {
    let mut client = client::Client::connect(node).await?;
    match command {
        QueryCommand::Account { address, prove } => {
            let response = client
                .query
                .get_account(pb::GetAccountRequest {
                    address: address.0.to_vec(),
                    prove,
                })
                .await?
                .into_inner();
            let account = response.account.context("node returned no account")?;
            let proof = proof_line(&mut client, response.proof.as_ref()).await?;
            print(
                output,
                format!(
                    "{address}\n  balance {} atto-RBTC\n  nonce   {}\n  height  {}{proof}",
                    account.balance, account.nonce, response.height
                ),
                json!({"address": address, "balance": account.balance, "nonce": account.nonce,
                       "height": response.height, "proof_verified": response.proof.is_some()}),
            );
        }
        QueryCommand::Keyspace { name, prove } => {
            let response = client
                .query
                .get_keyspace(pb::GetKeyspaceRequest {
                    name: name.clone(),
                    prove,
                })
                .await?
                .into_inner();
            let proof = proof_line(&mut client, response.proof.as_ref()).await?;
            let Some(keyspace) = response.keyspace else {
                print(
                    output,
                    format!(
                        "keyspace {name} does not exist at height {}{proof}",
                        response.height
                    ),
                    json!({"name": name, "exists": false, "height": response.height}),
                );
                return Ok(());
            };
            let owner = Address::from_slice(&keyspace.owner)?;
            let policy = pb::WritePolicy::try_from(keyspace.write_policy)
                .map(|p| p.as_str_name())
                .unwrap_or("UNKNOWN");
            print(
                output,
                format!(
                    "keyspace {name}\n  owner  {owner}\n  policy {policy}\n  limits key {} B, value {} B\n  height {}{proof}",
                    keyspace.max_key_bytes, keyspace.max_value_bytes, response.height
                ),
                json!({"name": name, "exists": true, "owner": owner, "policy": policy,
                       "max_key_bytes": keyspace.max_key_bytes, "max_value_bytes": keyspace.max_value_bytes,
                       "height": response.height}),
            );
        }
        QueryCommand::Key {
            keyspace,
            key,
            hex,
            prove,
        } => {
            let key_bytes = bytes_arg(&key, hex)?;
            let response = client
                .query
                .get_key(pb::GetKeyRequest {
                    keyspace: keyspace.clone(),
                    key: key_bytes,
                    prove,
                })
                .await?
                .into_inner();
            let proof = proof_line(&mut client, response.proof.as_ref()).await?;
            let shown = response.value.as_ref().map(|v| {
                String::from_utf8(v.clone()).unwrap_or_else(|_| format!("0x{}", hex::encode(v)))
            });
            let human = match &shown {
                Some(v) => format!(
                    "{keyspace}/{key} = {v}  (height {}){proof}",
                    response.height
                ),
                None => format!(
                    "{keyspace}/{key} is absent (height {}){proof}",
                    response.height
                ),
            };
            print(
                output,
                human,
                json!({"keyspace": keyspace, "key": key, "value": shown,
                       "value_hex": response.value.as_ref().map(hex::encode),
                       "height": response.height, "proof_verified": response.proof.is_some()}),
            );
        }
    }
    Ok(())
}
