//! `ipsat tx`: sign a transaction with a local key and broadcast it.

use std::path::Path;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use ipsat_core::{Address, Amount};
use ipsat_proto::v1::{self as pb, tx_body::Msg};
use serde_json::json;

use super::{bytes_arg, print, Output};
use crate::{client, keys};

#[derive(Args)]
pub struct TxArgs {
    /// Name of the signing key in <home>/keys.
    #[arg(long)]
    pub from: String,
    /// Fee in atto-RBTC; default is the subnet's minimum for the transaction's size.
    #[arg(long)]
    pub fee: Option<Amount>,
    /// Return after CheckTx instead of waiting for the commit.
    #[arg(long)]
    pub no_wait: bool,
    #[command(subcommand)]
    pub msg: TxMsg,
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
}

fn policy_proto(policy: Policy) -> pb::WritePolicy {
    match policy {
        Policy::OwnerOnly => pb::WritePolicy::OwnerOnly,
        Policy::AllowList => pb::WritePolicy::AllowList,
        Policy::Open => pb::WritePolicy::Open,
    }
}

pub async fn run(args: TxArgs, keys_dir: &Path, node: &str, output: Output) -> Result<()> {
    let key = keys::load(keys_dir, &args.from)?;
    let options = args.common();
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
    };
    let mut client = client::Client::connect(node).await?;
    send_and_report(&mut client, &key, msg, &options, output).await
}

/// The signing options every transaction command shares.
pub struct SendOptions {
    /// The fee, or the subnet's minimum.
    pub fee: Option<Amount>,
    /// Return after CheckTx instead of waiting for the commit.
    pub no_wait: bool,
}

impl TxArgs {
    fn common(&self) -> SendOptions {
        SendOptions {
            fee: self.fee,
            no_wait: self.no_wait,
        }
    }
}

/// Signs and broadcasts `msg`, prints the outcome, and exits 1 if it failed.
pub async fn send_and_report(
    client: &mut client::Client,
    key: &keys::Key,
    msg: Msg,
    options: &SendOptions,
    output: Output,
) -> Result<()> {
    if !options.no_wait && output == Output::Human {
        eprintln!("broadcasting and waiting for the commit...");
    }
    let response = client.send(key, msg, options.fee, !options.no_wait).await?;
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
