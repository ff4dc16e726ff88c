//! One module per command of the `ipsat` binary: its arguments and what it does.

pub mod anchor;
pub mod checkpoint;
pub mod gateway;
pub mod keys;
pub mod message;
pub mod node;
pub mod proof;
pub mod query;
pub mod relay;
pub mod status;
pub mod subnet;
pub mod testnet;
pub mod tree;
pub mod tx;

use anyhow::{Context, Result};
use clap::ValueEnum;

/// How commands print their results.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Readable text.
    Human,
    /// One JSON value, for scripts.
    Json,
}

/// Bytes from a command-line argument: UTF-8 text, or hex with `--hex`.
pub fn bytes_arg(text: &str, hex: bool) -> Result<Vec<u8>> {
    if hex {
        hex::decode(text.trim_start_matches("0x")).with_context(|| format!("{text:?} is not hex"))
    } else {
        Ok(text.as_bytes().to_vec())
    }
}

/// Prints `human` or `json` as `output` asks.
pub fn print(output: Output, human: String, json: serde_json::Value) {
    match output {
        Output::Human => println!("{human}"),
        Output::Json => println!("{json}"),
    }
}
