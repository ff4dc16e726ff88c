//! `ipsat keys`: account keys in `<home>/keys`.

use std::path::Path;

use anyhow::Result;
use clap::Subcommand;
use serde_json::json;

use super::{print, Output};
use crate::keys;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a new random key (file mode 0600).
    New { name: String },
    /// List keys and their addresses.
    List,
    /// Show one key's address.
    Show { name: String },
}

pub fn run(command: KeysCommand, dir: &Path, output: Output) -> Result<()> {
    match command {
        KeysCommand::New { name } => {
            let key = keys::create(dir, &name)?;
            print(
                output,
                format!("created key {} with address {}", key.name, key.address),
                json!({"name": key.name, "address": key.address}),
            );
        }
        KeysCommand::List => {
            let keys = keys::list(dir)?;
            let human = keys
                .iter()
                .map(|k| format!("{:<24} {}", k.name, k.address))
                .collect::<Vec<_>>()
                .join("\n");
            let json: Vec<_> = keys
                .iter()
                .map(|k| json!({"name": k.name, "address": k.address}))
                .collect();
            print(output, human, json.into());
        }
        KeysCommand::Show { name } => {
            let key = keys::load(dir, &name)?;
            print(
                output,
                key.address.to_string(),
                json!({"name": key.name, "address": key.address}),
            );
        }
    }
    Ok(())
}
