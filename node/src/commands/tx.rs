//! `ipsat tx`: sign a transaction with a local key and broadcast it.

use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use ipsat_core::{Address, Amount, SubnetId};
use ipsat_proto::v1::{self as pb, tx_body::Msg};
use serde_json::json;

use serde::{Deserialize, Serialize};

use super::{bytes_arg, print, Output};
use crate::config::keys_dir;
use crate::{client, keys};

#[derive(Args)]
pub struct TxArgs {
    #[command(flatten)]
    pub signing: Signing,
    #[command(subcommand)]
    pub msg: TxMsg,
}

/// How every signing command signs: the key, the fee and its cap, and the subnet the signer
/// expects, so a node cannot make the CLI sign for another subnet or at any fee it names.
#[derive(Args)]
pub struct Signing {
    /// Name of the signing key in <home>/keys.
    #[arg(long)]
    pub from: String,
    /// Fee in atto-RBTC; default is the subnet's minimum for the transaction's size.
    #[arg(long)]
    pub fee: Option<Amount>,
    /// The most this command may pay as fee, whatever the node says the minimum is.
    #[arg(long, env = "IPSAT_MAX_FEE", default_value = "1000000000000000")]
    pub max_fee: Amount,
    /// The subnet to sign for; the node must serve it. Default: `subnet_id` in
    /// <home>/config/client.toml, else the subnet of <home>'s genesis.
    #[arg(long, env = "IPSAT_SUBNET")]
    pub subnet: Option<SubnetId>,
    /// Return after CheckTx instead of waiting for the commit.
    #[arg(long)]
    pub no_wait: bool,
}

/// The client settings `ipsat testnet init` writes next to the keys it creates.
pub const CLIENT_CONFIG: &str = "config/client.toml";

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// The subnet this home's keys sign for.
    pub subnet_id: SubnetId,
}

impl Signing {
    /// The subnet to sign for: `--subnet`, else the home's client config, else its genesis.
    pub fn expected_subnet(&self, home: &Path) -> Result<SubnetId> {
        if let Some(subnet) = &self.subnet {
            return Ok(subnet.clone());
        }
        let client = home.join(CLIENT_CONFIG);
        if client.exists() {
            let text = std::fs::read_to_string(&client)
                .with_context(|| format!("reading {}", client.display()))?;
            let config: ClientConfig =
                toml::from_str(&text).with_context(|| format!("invalid {}", client.display()))?;
            return Ok(config.subnet_id);
        }
        let genesis = home.join("cometbft/config/genesis.json");
        if genesis.exists() {
            let text = std::fs::read_to_string(&genesis)
                .with_context(|| format!("reading {}", genesis.display()))?;
            let value: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", genesis.display()))?;
            if let Some(subnet) = value["app_state"]["subnet_id"].as_str() {
                return subnet
                    .parse()
                    .with_context(|| format!("{} names an invalid subnet", genesis.display()));
            }
        }
        bail!(
            "which subnet to sign for? pass --subnet (or IPSAT_SUBNET); {} has neither {CLIENT_CONFIG} nor a genesis",
            home.display()
        )
    }

    fn options(&self, home: &Path) -> Result<SendOptions> {
        Ok(SendOptions {
            fee: self.fee,
            max_fee: self.max_fee,
            subnet: self.expected_subnet(home)?,
            no_wait: self.no_wait,
        })
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Policy {
    OwnerOnly,
    AllowList,
    Open,
}

#[derive(Subcommand)]
pub enum TxMsg {
    /// Send atto-RBTC to an address.
    Transfer { to: Address, amount: Amount },
    /// Create a keyspace owned by the signer.
    KeyspaceCreate {
        name: String,
        #[arg(long, value_enum, default_value_t = Policy::OwnerOnly)]
        policy: Policy,
        /// Allowed writer (repeatable) for --policy allow-list.
        #[arg(long = "writer")]
        writers: Vec<Address>,
        #[arg(long, default_value_t = 64)]
        max_key_bytes: u32,
        #[arg(long, default_value_t = 4096)]
        max_value_bytes: u32,
    },
    /// Write a key (KEY and VALUE are UTF-8 unless --hex).
    KvPut {
        keyspace: String,
        key: String,
        value: String,
        #[arg(long)]
        hex: bool,
    },
    /// Delete a key.
    KvDelete {
        keyspace: String,
        key: String,
        #[arg(long)]
        hex: bool,
    },
    /// Lock atto-RBTC here for the active child SUBNET (its name under this subnet), minted
    /// there to RECIPIENT once the child has verified the deposit against this subnet.
    Fund {
        subnet: String,
        recipient: Address,
        amount: Amount,
    },
    /// Burn atto-RBTC here, paid to RECIPIENT in the parent once the parent has accepted the
    /// checkpoint that carries the release.
    Release { recipient: Address, amount: Amount },
    /// Send atto-RBTC and a payload to another subnet TO_SUBNET of the tree (e.g.
    /// /r33/alpha/gamma): to an account (--account), or a key of a keyspace (--keyspace and
    /// --key: the payload is written there and the keyspace's owner is credited). A receipt
    /// comes back; if the call fails there, the value is refunded (`ipsat message show`).
    CrossCall {
        to_subnet: SubnetId,
        #[arg(long, conflicts_with_all = ["keyspace", "key"])]
        account: Option<Address>,
        #[arg(long, requires = "key")]
        keyspace: Option<String>,
        #[arg(long)]
        key: Option<String>,
        #[arg(long, default_value = "0")]
        amount: Amount,
        #[arg(long, default_value = "")]
        payload: String,
        /// KEY and PAYLOAD are hex, not UTF-8.
        #[arg(long)]
        hex: bool,
    },
}

fn policy_proto(policy: Policy) -> pb::WritePolicy {
    match policy {
        Policy::OwnerOnly => pb::WritePolicy::OwnerOnly,
        Policy::AllowList => pb::WritePolicy::AllowList,
        Policy::Open => pb::WritePolicy::Open,
    }
}

pub async fn run(args: TxArgs, home: &Path, node: &str, output: Output) -> Result<()> {
    let key = keys::load(&keys_dir(home), &args.signing.from)?;
    let options = args.signing.options(home)?;
    let msg = match args.msg {
        TxMsg::Transfer { to, amount } => Msg::Transfer(pb::Transfer {
            to: to.0.to_vec(),
            amount: amount.to_string(),
        }),
        TxMsg::KeyspaceCreate {
            name,
            policy,
            writers,
            max_key_bytes,
            max_value_bytes,
        } => Msg::KeyspaceCreate(pb::KeyspaceCreate {
            name,
            write_policy: policy_proto(policy) as i32,
            writers: writers.iter().map(|w| w.0.to_vec()).collect(),
            max_key_bytes,
            max_value_bytes,
        }),
        TxMsg::KvPut {
            keyspace,
            key,
            value,
            hex,
        } => Msg::KvPut(pb::KvPut {
            keyspace,
            key: bytes_arg(&key, hex)?,
            value: bytes_arg(&value, hex)?,
        }),
        TxMsg::KvDelete { keyspace, key, hex } => Msg::KvDelete(pb::KvDelete {
            keyspace,
            key: bytes_arg(&key, hex)?,
        }),
        TxMsg::Fund {
            subnet,
            recipient,
            amount,
        } => Msg::Fund(pb::Fund {
            subnet,
            recipient: recipient.0.to_vec(),
            amount: amount.to_string(),
        }),
        TxMsg::Release { recipient, amount } => Msg::Release(pb::Release {
            recipient: recipient.0.to_vec(),
            amount: amount.to_string(),
        }),
        TxMsg::CrossCall {
            to_subnet,
            account,
            keyspace,
            key,
            amount,
            payload,
            hex,
        } => Msg::CrossCall(pb::CrossCall {
            to_subnet: to_subnet.to_string(),
            to_account: account.map(|a| a.0.to_vec()).unwrap_or_default(),
            to_keyspace: keyspace.unwrap_or_default(),
            key: key
                .map(|k| bytes_arg(&k, hex))
                .transpose()?
                .unwrap_or_default(),
            amount: amount.to_string(),
            payload: bytes_arg(&payload, hex)?,
        }),
    };
    let mut client = client::Client::connect(node).await?;
    send_and_report(&mut client, &key, msg, &options, output).await
}

/// What [`send_and_report`] needs to sign safely.
pub struct SendOptions {
    /// The fee, or the subnet's minimum.
    pub fee: Option<Amount>,
    /// The most it may pay.
    pub max_fee: Amount,
    /// The subnet the node must serve.
    pub subnet: SubnetId,
    /// Return after CheckTx instead of waiting for the commit.
    pub no_wait: bool,
}

/// Signs `msg` from the key `signing` names, for the subnet it expects, and reports.
pub async fn sign_and_send(
    signing: &Signing,
    home: &Path,
    node: &str,
    msg: Msg,
    output: Output,
) -> Result<()> {
    let key = keys::load(&keys_dir(home), &signing.from)?;
    let options = signing.options(home)?;
    let mut client = client::Client::connect(node).await?;
    send_and_report(&mut client, &key, msg, &options, output).await
}

/// Signs and broadcasts `msg`, prints the outcome, and exits 1 if it failed.
pub async fn send_and_report(
    client: &mut client::Client,
    key: &keys::Key,
    msg: Msg,
    options: &SendOptions,
    output: Output,
) -> Result<()> {
    if output == Output::Human {
        let waiting = if options.no_wait {
            ""
        } else {
            " and waiting for the commit"
        };
        eprintln!(
            "signing as {} for {}; broadcasting{waiting}...",
            key.address, options.subnet
        );
    }
    let response = client.send(key, msg, options).await?;
    let hash = hex::encode(&response.hash);
    let verdict = if response.code == 0 { "ok" } else { "FAILED" };
    let human = match (options.no_wait, response.code) {
        (true, 0) => format!("accepted into the mempool: tx {hash}"),
        (false, 0) => format!("committed at height {}: tx {hash}", response.height),
        (_, code) => format!("{verdict} (code {code}): {}\ntx {hash}", response.log),
    };
    print(
        output,
        human,
        json!({"hash": hash, "code": response.code, "log": response.log, "height": response.height}),
    );
    if response.code != 0 {
        std::process::exit(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signing(subnet: Option<&str>) -> Signing {
        Signing {
            from: "alice".into(),
            fee: None,
            max_fee: Amount::from_atto(1),
            subnet: subnet.map(|s| s.parse().unwrap()),
            no_wait: false,
        }
    }

    #[test]
    fn the_expected_subnet_comes_from_the_flag_the_client_config_or_the_genesis() {
        let home = tempfile::tempdir().unwrap();
        let error = signing(None).expected_subnet(home.path()).unwrap_err();
        assert!(error.to_string().contains("--subnet"), "{error}");
        let genesis = home.path().join("cometbft/config/genesis.json");
        std::fs::create_dir_all(genesis.parent().unwrap()).unwrap();
        std::fs::write(
            &genesis,
            r#"{"app_state": {"subnet_id": "/r33/from-genesis"}}"#,
        )
        .unwrap();
        let expected = |s: &Signing| s.expected_subnet(home.path()).unwrap().to_string();
        assert_eq!(expected(&signing(None)), "/r33/from-genesis");
        std::fs::create_dir_all(home.path().join("config")).unwrap();
        std::fs::write(
            home.path().join(CLIENT_CONFIG),
            "subnet_id = \"/r33/from-client\"\n",
        )
        .unwrap();
        assert_eq!(expected(&signing(None)), "/r33/from-client");
        assert_eq!(expected(&signing(Some("/r33/flag"))), "/r33/flag");
        std::fs::write(home.path().join(CLIENT_CONFIG), "subnet_id = \"nope\"\n").unwrap();
        assert!(signing(None).expected_subnet(home.path()).is_err());
    }
}
