//! Delivery of children's certified checkpoints to this subnet, without a relayer: every
//! node of the parent polls each configured child's gRPC API for the checkpoints after the
//! last one its own state accepted, and offers them to its next proposal. The proposal
//! keeps only those that pass against state, and every parent validator verifies them again
//! against the child's set held in parent state, so a lying child endpoint can delay
//! checkpoints but never get one accepted.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ipsat_core::SystemTx;
use ipsat_proto::v1 as pb;
use ipsat_subnet::{ProposalInputs, StateQuery};

use crate::client::Client;
use crate::metrics::Metrics;
use crate::supervisor::Shutdown;

/// Checkpoints offered per child per poll: enough to catch up quickly after a pause.
const MAX_AHEAD: u64 = 8;

/// What the service needs from the node.
pub struct Delivery {
    /// The children to pull from, each with an endpoint.
    pub children: Vec<(String, String)>,
    pub query: StateQuery,
    pub inputs: ProposalInputs,
    pub metrics: Arc<Metrics>,
    pub poll_interval: Duration,
}

impl Delivery {
    /// Polls every child until `shutdown`; a child that cannot be reached is retried on the
    /// next poll and never stops the node.
    pub async fn run(self, mut shutdown: Shutdown) -> Result<()> {
        let mut clients: Vec<Option<Client>> = self.children.iter().map(|_| None).collect();
        loop {
            for ((name, endpoint), client) in self.children.iter().zip(clients.iter_mut()) {
                if let Err(error) = self.poll(name, endpoint, client).await {
                    tracing::warn!(child = %name, %endpoint, error = %format!("{error:#}"), "checkpoint delivery");
                    *client = None;
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.poll_interval) => {}
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }

    async fn poll(&self, child: &str, endpoint: &str, client: &mut Option<Client>) -> Result<()> {
        let query = self.query.clone();
        let name = child.to_owned();
        let record = tokio::task::spawn_blocking(move || query.subnet(&name))
            .await?
            .context("reading the child's record")?;
        let Some((record, _)) = record else {
            return Ok(()); // not registered (yet) in this subnet's state
        };
        if record.status != pb::SubnetStatus::Active as i32 {
            return Ok(());
        }
        if client.is_none() {
            *client = Some(Client::connect(endpoint).await?);
        }
        let Some(client) = client.as_mut() else {
            return Ok(());
        };
        for ahead in 1..=MAX_AHEAD {
            let height = record.last_checkpoint_height + ahead * record.checkpoint_period;
            let Some(checkpoint) = client.certified_checkpoint(height).await? else {
                break; // not certified yet
            };
            let tx = SystemTx::child_checkpoint_from_proto(child, &checkpoint)
                .context("the child served a malformed checkpoint")?;
            self.inputs
                .offer("delivery", format!("{child}/{height:020}"), tx.encode());
            self.metrics.record_child_checkpoint_pulled();
            tracing::debug!(child, height, "checkpoint offered for the next proposal");
        }
        Ok(())
    }
}
