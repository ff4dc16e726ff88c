//! Top-down for a child's node: reads the parent's newer signed headers and the top-down
//! messages queued for this subnet from the parent's gRPC API, checks that the subnet would
//! apply them, and offers them to this node's next proposal.
//!
//! Nothing read is trusted. Every validator of this subnet verifies the headers from the one
//! its state trusts and the messages' proofs against them; the local check here only spares a
//! proposal a false update. The endpoints take turns, one per poll, so one that withholds
//! messages can delay them but never stall them; one that fails or serves anything the subnet
//! refuses is logged and counted. One honest reachable parent node is enough.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use ipsat_core::system::ParentUpdate;
use ipsat_core::SystemTx;
use ipsat_subnet::{ProposalInputs, StateQuery, SubnetApp};

use crate::client::Client;
use crate::metrics::Metrics;
use crate::supervisor::Shutdown;

/// Top-down messages carried by one update: with the headers, well inside one system
/// transaction even under a parent of 100 validators.
const MESSAGES_PER_UPDATE: u32 = 32;

/// What the service needs from the node.
pub struct ParentFollower {
    /// Parent gRPC endpoints, asked in turn.
    pub endpoints: Vec<String>,
    pub app: Arc<SubnetApp>,
    pub query: StateQuery,
    pub inputs: ProposalInputs,
    pub metrics: Arc<Metrics>,
    pub poll_interval: Duration,
}

fn now_unix_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

impl ParentFollower {
    /// Follows the parent until `shutdown`, asking each endpoint in turn.
    pub async fn run(self, mut shutdown: Shutdown) -> Result<()> {
        let mut clients: Vec<Option<Client>> = self.endpoints.iter().map(|_| None).collect();
        for turn in (0..self.endpoints.len()).cycle() {
            let endpoint = &self.endpoints[turn];
            if let Err(error) = self.poll(endpoint, &mut clients[turn]).await {
                self.metrics.record_parent_endpoint_failure();
                tracing::warn!(%endpoint, error = %format!("{error:#}"), "parent endpoint failed");
                clients[turn] = None;
            }
            tokio::select! {
                () = tokio::time::sleep(self.poll_interval) => {}
                _ = shutdown.changed() => return Ok(()),
            }
        }
        Ok(())
    }

    async fn poll(&self, endpoint: &str, client: &mut Option<Client>) -> Result<()> {
        let query = self.query.clone();
        let status = tokio::task::spawn_blocking(move || query.parent())
            .await?
            .context("reading this subnet's parent client")?;
        let Some(trusted) = status.client else {
            bail!("this subnet has no parent");
        };
        if trusted.time_unix_nanos != 0 && trusted.expired(now_unix_nanos()) {
            tracing::error!(
                trusted_height = trusted.height,
                "the parent client's trusting period has lapsed: nothing more is imported from \
                 the parent until this subnet is re-anchored (docs/subnets.md)"
            );
            return Ok(());
        }
        if client.is_none() {
            *client = Some(Client::connect(endpoint).await?);
        }
        let client = client.as_mut().ok_or_else(|| anyhow!("not connected"))?;
        let mut headers = Vec::new();
        let mut height = trusted.height;
        if trusted.next_validators.is_empty() {
            let genesis = client
                .light_block(trusted.height)
                .await?
                .context("the parent does not serve the header this subnet's genesis trusts")?;
            headers.push(genesis);
        }
        let latest = client
            .light_block_latest()
            .await
            .context("reading the parent's latest header")?;
        if latest.signed_header.header.height.value() > height {
            height = latest.signed_header.header.height.value();
            headers.push(latest);
        }
        // A header's app hash commits to the parent's state one height below it.
        let name = self
            .app
            .subnet_id()
            .ok_or_else(|| anyhow!("no genesis yet"))?
            .name()
            .to_owned();
        let messages = client
            .top_down_proofs(
                &name,
                status.next_top_down_nonce,
                height.saturating_sub(1).max(1),
                MESSAGES_PER_UPDATE,
            )
            .await
            .context("reading the parent's top-down messages")?;
        if headers.is_empty() && messages.is_empty() {
            return Ok(());
        }
        let update = ParentUpdate { headers, messages };
        let app = self.app.clone();
        let checked = update.clone();
        let verdict = tokio::task::spawn_blocking(move || {
            app.check_parent_update(&checked, now_unix_nanos())
        })
        .await??;
        if let Err(refused) = verdict {
            bail!("the endpoint served what this subnet refuses: {refused}");
        }
        let (imported_to, headers) = (
            status.next_top_down_nonce + update.messages.len() as u64,
            update.headers.len(),
        );
        self.inputs.offer(
            "parent",
            "update".into(),
            SystemTx::ParentUpdate(update).encode(),
        );
        self.metrics.record_parent_update_offered();
        tracing::debug!(
            parent_height = height,
            headers,
            imported_to,
            "parent update offered"
        );
        Ok(())
    }
}
