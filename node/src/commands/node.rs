//! `ipsat node`: run a validator node.

use std::path::Path;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum NodeCommand {
    /// Start the node: ABCI, gRPC, metrics, and its supervised CometBFT.
    Start,
}

/// Runs `command` for the node whose home is `home`.
pub async fn run(command: NodeCommand, home: &Path) -> Result<()> {
    match command {
        NodeCommand::Start => crate::node::start(home).await,
    }
}
