//! `ipsat query`: read state, optionally with a verified proof.

use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use ipsat_core::{light, Address, Amount};
use ipsat_proto::v1 as pb;
use ipsat_subnet::components::accounts::{account_key, AccountRecord};
use ipsat_subnet::components::keyspaces::{keyspace_key, kv_key, KeyspaceRecord};
use serde_json::json;

use super::{bytes_arg, print, Output};
use crate::client::{self, HeaderTrust};

#[derive(Subcommand)]
pub enum QueryCommand {
    /// Balance and nonce of an address.
    Account {
        address: Address,
        /// First wait (reporting progress, at most 10 minutes) until the balance is at least
        /// this many atto-RBTC: a deposit or a release arriving from another layer.
        #[arg(long, value_name = "AMOUNT")]
        wait_for: Option<Amount>,
        #[command(flatten)]
        prove: ProveArgs,
    },
    /// A keyspace's owner, policy and limits.
    Keyspace {
        name: String,
        #[command(flatten)]
        prove: ProveArgs,
    },
    /// The value of a key (KEY is UTF-8 unless --hex).
    Key {
        keyspace: String,
        key: String,
        #[arg(long)]
        hex: bool,
        #[command(flatten)]
        prove: ProveArgs,
    },
    /// This subnet's light client of its parent and the value it holds from the parent.
    Parent,
}

#[derive(Args)]
pub struct ProveArgs {
    /// Fetch a proof, bind it to the answer shown, and verify it up to a CometBFT header that
    /// light-client verification accepts (from the genesis validator set unless
    /// --trust-height/--trust-hash name a header to start from).
    #[arg(long)]
    pub prove: bool,
    /// Height of a header you trust (with --trust-hash).
    #[arg(long, requires = "trust_hash")]
    pub trust_height: Option<u64>,
    /// Hash of that header, hex.
    #[arg(long, requires = "trust_height")]
    pub trust_hash: Option<String>,
}

impl ProveArgs {
    /// Where verification starts: the trusted header, or the genesis validator set in the home.
    fn trust(&self, home: &Path) -> Result<HeaderTrust> {
        if let (Some(height), Some(hash)) = (self.trust_height, &self.trust_hash) {
            let hash = tendermint::Hash::from_hex_upper(
                tendermint::hash::Algorithm::Sha256,
                &hash.to_uppercase(),
            )
            .map_err(|_| anyhow::anyhow!("--trust-hash {hash:?} is not a 32-byte hex hash"))?;
            return Ok(HeaderTrust::Header { height, hash });
        }
        let candidates = [
            home.join("config/genesis.json"),
            home.join("cometbft/config/genesis.json"),
        ];
        let path = candidates.iter().find(|p| p.exists()).with_context(|| {
            format!(
                "no genesis in {} to verify headers from: pass --trust-height and --trust-hash",
                home.display()
            )
        })?;
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let genesis: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let chain_id = genesis["chain_id"]
            .as_str()
            .with_context(|| format!("{} has no chain_id", path.display()))?
            .to_owned();
        Ok(HeaderTrust::ValidatorSet {
            validators: light::genesis_validators(&genesis)?,
            source: format!("the genesis of {chain_id} ({})", path.display()),
            chain_id,
        })
    }
}

/// Checks that the proof is of the key asked about, at the height reported, and verifies it
/// up to a light-client-verified header; the line to print.
async fn proof_line(
    client: &mut client::Client,
    proof: Option<&pb::StateProof>,
    binding: Binding<'_>,
    args: &ProveArgs,
    home: &Path,
) -> Result<String> {
    let Some(proof) = proof else {
        if args.prove {
            bail!("asked for a proof, the node sent none");
        }
        return Ok(String::new());
    };
    check_binding(proof, &binding)?;
    let report = client.verify_proof(proof, &args.trust(home)?).await?;
    Ok(format!(
        "\nproof verified: this value at height {} -> state root {} -> app hash {} = app hash \
         of header {} ({}) of {}, signed by validators with {} of {} voting power, verified \
         from {}",
        proof.height,
        hex::encode(&proof.state_root),
        hex::encode(&proof.app_hash),
        report.header_height,
        report.header_hash,
        report.chain_id,
        report.signed_power,
        report.total_power,
        report.root
    ))
}

/// Refuses a proof of another key, another value or another height than the answer shown.
fn check_binding(proof: &pb::StateProof, binding: &Binding<'_>) -> Result<()> {
    if proof.key != binding.key {
        bail!("the node's proof is for another key than the one asked about");
    }
    if proof.value.as_deref() != binding.value {
        bail!("the node's answer is not the value its proof proves");
    }
    if proof.height != binding.height {
        bail!(
            "the node answered for height {} with a proof for height {}",
            binding.height,
            proof.height
        );
    }
    Ok(())
}

/// What a proof must be about: the state key, the value shown (raw), and the height.
struct Binding<'a> {
    key: Vec<u8>,
    value: Option<&'a [u8]>,
    height: u64,
}

pub async fn run(command: QueryCommand, home: &Path, node: &str, output: Output) -> Result<()> {
    let mut client = client::Client::connect(node).await?;
    match command {
        QueryCommand::Parent => {
            let p = client
                .query
                .get_parent(pb::GetParentRequest {})
                .await?
                .into_inner();
            let human = if !p.has_parent {
                format!("no parent (height {})", p.height)
            } else {
                format!(
                    "parent {}: trusted header {} ({}){}\n\
                     minted {} released {}\n\
                     next top-down nonce {}, next release nonce {} (height {})",
                    p.parent_chain_id,
                    p.trusted_height,
                    if p.trusted_time.is_empty() {
                        "genesis header not imported yet".to_owned()
                    } else {
                        p.trusted_time.clone()
                    },
                    if p.expired {
                        "\nEXPIRED: the trusting period lapsed; re-anchor (docs/subnets.md)"
                    } else {
                        ""
                    },
                    p.minted,
                    p.released,
                    p.next_top_down_nonce,
                    p.next_release_nonce,
                    p.height
                )
            };
            print(
                output,
                human,
                json!({
                    "has_parent": p.has_parent,
                    "parent_chain_id": p.parent_chain_id,
                    "trusted_height": p.trusted_height,
                    "trusted_hash": hex::encode(&p.trusted_hash),
                    "trusted_time": p.trusted_time,
                    "expired": p.expired,
                    "trusting_period_secs": p.trusting_period_secs,
                    "minted": p.minted,
                    "released": p.released,
                    "next_top_down_nonce": p.next_top_down_nonce,
                    "next_release_nonce": p.next_release_nonce,
                    "height": p.height,
                }),
            );
        }
        QueryCommand::Account {
            address,
            wait_for,
            prove,
        } => {
            if let Some(wanted) = wait_for {
                wait_for_balance(&mut client, &address, wanted).await?;
            }
            let response = client
                .query
                .get_account(pb::GetAccountRequest {
                    address: address.0.to_vec(),
                    prove: prove.prove,
                })
                .await?
                .into_inner();
            let account = response.account.context("node returned no account")?;
            // The proof proves a stored record (or its absence); what is shown must be it.
            let proved = response.proof.as_ref().map(|p| -> Result<AccountRecord> {
                Ok(match &p.value {
                    Some(bytes) => borsh::from_slice(bytes).context("proved account record")?,
                    None => AccountRecord::default(),
                })
            });
            if let Some(record) = proved.transpose()? {
                if record.balance().to_string() != account.balance || record.nonce != account.nonce
                {
                    bail!("the node's answer is not the account its proof proves");
                }
            }
            let binding = Binding {
                key: account_key(&address),
                value: response.proof.as_ref().and_then(|p| p.value.as_deref()),
                height: response.height,
            };
            let proof =
                proof_line(&mut client, response.proof.as_ref(), binding, &prove, home).await?;
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
                    prove: prove.prove,
                })
                .await?
                .into_inner();
            let proved = response
                .proof
                .as_ref()
                .map(|p| -> Result<Option<pb::Keyspace>> {
                    p.value
                        .as_ref()
                        .map(|bytes| -> Result<pb::Keyspace> {
                            let record: KeyspaceRecord =
                                borsh::from_slice(bytes).context("proved keyspace record")?;
                            Ok(record.to_proto(&name))
                        })
                        .transpose()
                })
                .transpose()?;
            if let Some(proved) = proved {
                if proved != response.keyspace {
                    bail!("the node's answer is not the keyspace its proof proves");
                }
            }
            let binding = Binding {
                key: keyspace_key(&name),
                value: response.proof.as_ref().and_then(|p| p.value.as_deref()),
                height: response.height,
            };
            let proof =
                proof_line(&mut client, response.proof.as_ref(), binding, &prove, home).await?;
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
                    key: key_bytes.clone(),
                    prove: prove.prove,
                })
                .await?
                .into_inner();
            let binding = Binding {
                key: kv_key(&keyspace, &key_bytes),
                value: response.value.as_deref(),
                height: response.height,
            };
            let proof =
                proof_line(&mut client, response.proof.as_ref(), binding, &prove, home).await?;
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

/// Polls `address`'s balance until it reaches `wanted`, reporting on stderr every 10 s.
async fn wait_for_balance(
    client: &mut client::Client,
    address: &Address,
    wanted: Amount,
) -> Result<()> {
    let started = std::time::Instant::now();
    let mut reported = started;
    loop {
        let balance: u128 = client
            .query
            .get_account(pb::GetAccountRequest {
                address: address.0.to_vec(),
                prove: false,
            })
            .await?
            .into_inner()
            .account
            .map_or(Ok(0), |a| a.balance.parse())
            .context("the node's balance is not a number")?;
        if balance >= wanted.atto() {
            return Ok(());
        }
        if started.elapsed() > std::time::Duration::from_secs(600) {
            bail!("{address} holds {balance} atto-RBTC after 10 minutes, not {wanted}");
        }
        if reported.elapsed() > std::time::Duration::from_secs(10) {
            eprintln!(
                "waiting for {address} to hold {wanted} atto-RBTC: {balance} so far ({} s)",
                started.elapsed().as_secs()
            );
            reported = std::time::Instant::now();
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_of_another_key_value_or_height_is_refused() {
        let proof = pb::StateProof {
            height: 7,
            key: b"v/notes/hello".to_vec(),
            value: Some(b"world".to_vec()),
            ..Default::default()
        };
        let honest = Binding {
            key: kv_key("notes", b"hello"),
            value: Some(b"world"),
            height: 7,
        };
        assert!(check_binding(&proof, &honest).is_ok());
        let other_key = Binding {
            key: kv_key("notes", b"other"),
            ..honest
        };
        assert!(check_binding(&proof, &other_key).is_err());
        let other_value = Binding {
            key: kv_key("notes", b"hello"),
            value: Some(b"lie"),
            height: 7,
        };
        assert!(check_binding(&proof, &other_value).is_err());
        let absent = Binding {
            key: kv_key("notes", b"hello"),
            value: None,
            height: 7,
        };
        assert!(check_binding(&proof, &absent).is_err());
        let other_height = Binding {
            key: kv_key("notes", b"hello"),
            value: Some(b"world"),
            height: 8,
        };
        assert!(check_binding(&proof, &other_height).is_err());
    }
}
