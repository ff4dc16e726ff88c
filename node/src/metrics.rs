//! Prometheus metrics of the node, served as text on `metrics.listen` (`GET /metrics`).
//! CometBFT serves its own consensus metrics on its `instrumentation` port.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::supervisor::Shutdown;
use hyper::{Method, Request, Response, StatusCode};
use ipsat_p2p::Verdict;
use ipsat_subnet::CommittedBlock;
use tokio::net::TcpListener;

use crate::limits::{serve_http1, ConnectionLimits, HttpTimeouts};

#[derive(Default)]
pub struct Metrics {
    height: AtomicU64,
    txs_committed_ok: AtomicU64,
    txs_committed_failed: AtomicU64,
    check_tx_accepted: AtomicU64,
    check_tx_rejected: AtomicU64,
    checkpoint_cut_height: AtomicU64,
    checkpoint_certified_height: AtomicU64,
    checkpoint_votes_signed: AtomicU64,
    child_checkpoints_pulled: AtomicU64,
    child_checkpoints_accepted: AtomicU64,
    parent_updates_offered: AtomicU64,
    parent_endpoint_failures: AtomicU64,
    rsk_height: AtomicU64,
    rsk_read_failures: AtomicU64,
    gateway_checkpoints_submitted: AtomicU64,
    gateway_submit_failures: AtomicU64,
    gossip_published: AtomicU64,
    gossip_accepted: AtomicU64,
    gossip_ignored: AtomicU64,
    gossip_rejected: AtomicU64,
}

/// The `height` attribute of a checkpoint event.
fn event_height(event: &ipsat_subnet::Event) -> Option<u64> {
    event
        .attribute("height")
        .and_then(|value| value.parse().ok())
}

impl Metrics {
    pub fn record_block(&self, block: &CommittedBlock) {
        self.height.store(block.height, Relaxed);
        let ok = block.tx_results.iter().filter(|r| r.code == 0).count() as u64;
        self.txs_committed_ok.fetch_add(ok, Relaxed);
        self.txs_committed_failed
            .fetch_add(block.tx_results.len() as u64 - ok, Relaxed);
        if let Some(height) = block.checkpoint_cut {
            self.checkpoint_cut_height.store(height, Relaxed);
            tracing::info!(height, "checkpoint cut");
        }
        for event in block.events_of("checkpoint_certified") {
            let height = event_height(event).unwrap_or_default();
            self.checkpoint_certified_height.store(height, Relaxed);
            tracing::info!(height, at = block.height, "checkpoint certified");
        }
        for event in block.events_of("checkpoint_accepted") {
            self.child_checkpoints_accepted.fetch_add(1, Relaxed);
            tracing::info!(
                subnet = event.attribute("subnet").unwrap_or_default(),
                height = event_height(event).unwrap_or_default(),
                at = block.height,
                "child checkpoint accepted"
            );
        }
    }

    pub fn record_checkpoint_signed(&self) {
        self.checkpoint_votes_signed.fetch_add(1, Relaxed);
    }

    pub fn record_parent_update_offered(&self) {
        self.parent_updates_offered.fetch_add(1, Relaxed);
    }

    pub fn record_parent_endpoint_failure(&self) {
        self.parent_endpoint_failures.fetch_add(1, Relaxed);
    }

    pub fn record_rsk_read(&self, height: u64) {
        self.rsk_height.store(height, Relaxed);
    }

    pub fn record_rsk_read_failure(&self) {
        self.rsk_read_failures.fetch_add(1, Relaxed);
    }

    pub fn record_gateway_submission(&self) {
        self.gateway_checkpoints_submitted.fetch_add(1, Relaxed);
    }

    pub fn record_gateway_submit_failure(&self) {
        self.gateway_submit_failures.fetch_add(1, Relaxed);
    }

    pub fn record_child_checkpoint_pulled(&self) {
        self.child_checkpoints_pulled.fetch_add(1, Relaxed);
    }

    pub fn record_gossip_published(&self) {
        self.gossip_published.fetch_add(1, Relaxed);
    }

    pub fn record_gossip_received(&self, verdict: Verdict) {
        let counter = match verdict {
            Verdict::Accept => &self.gossip_accepted,
            Verdict::Ignore => &self.gossip_ignored,
            Verdict::Reject => &self.gossip_rejected,
        };
        counter.fetch_add(1, Relaxed);
    }

    pub fn record_check_tx(&self, code: u32) {
        if code == 0 {
            self.check_tx_accepted.fetch_add(1, Relaxed);
        } else {
            self.check_tx_rejected.fetch_add(1, Relaxed);
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut gauge = |name: &str, kind: &str, help: &str, value: u64| {
            push_metric(&mut out, name, kind, help, value)
        };
        gauge(
            "ipsat_block_height",
            "gauge",
            "Height of the last committed block.",
            self.height.load(Relaxed),
        );
        gauge(
            "ipsat_txs_committed_ok_total",
            "counter",
            "Committed transactions that succeeded.",
            self.txs_committed_ok.load(Relaxed),
        );
        gauge(
            "ipsat_txs_committed_failed_total",
            "counter",
            "Committed transactions that failed (fee charged).",
            self.txs_committed_failed.load(Relaxed),
        );
        gauge(
            "ipsat_check_tx_accepted_total",
            "counter",
            "Transactions admitted to the mempool.",
            self.check_tx_accepted.load(Relaxed),
        );
        gauge(
            "ipsat_check_tx_rejected_total",
            "counter",
            "Transactions refused at CheckTx.",
            self.check_tx_rejected.load(Relaxed),
        );
        gauge(
            "ipsat_checkpoint_cut_height",
            "gauge",
            "Height of the latest checkpoint this subnet cut.",
            self.checkpoint_cut_height.load(Relaxed),
        );
        gauge(
            "ipsat_checkpoint_certified_height",
            "gauge",
            "Height of the latest checkpoint of this subnet certified in its own state.",
            self.checkpoint_certified_height.load(Relaxed),
        );
        gauge(
            "ipsat_checkpoint_votes_signed_total",
            "counter",
            "Vote extensions in which this validator signed a checkpoint.",
            self.checkpoint_votes_signed.load(Relaxed),
        );
        gauge(
            "ipsat_child_checkpoints_pulled_total",
            "counter",
            "Certified checkpoints of children this node pulled over gRPC for its proposals.",
            self.child_checkpoints_pulled.load(Relaxed),
        );
        gauge(
            "ipsat_parent_updates_offered_total",
            "counter",
            "Parent headers and top-down messages this node offered to its proposals.",
            self.parent_updates_offered.load(Relaxed),
        );
        gauge(
            "ipsat_parent_endpoint_failures_total",
            "counter",
            "Parent endpoints that failed or served what this subnet refuses.",
            self.parent_endpoint_failures.load(Relaxed),
        );
        gauge(
            "ipsat_rsk_height",
            "gauge",
            "The latest RSK height on the attestation step this node read at the confirmation depth.",
            self.rsk_height.load(Relaxed),
        );
        gauge(
            "ipsat_rsk_read_failures_total",
            "counter",
            "Failed reads of RSK by the RSK follower.",
            self.rsk_read_failures.load(Relaxed),
        );
        gauge(
            "ipsat_gateway_checkpoints_submitted_total",
            "counter",
            "Checkpoints this validator submitted to the RSK gateway and saw accepted.",
            self.gateway_checkpoints_submitted.load(Relaxed),
        );
        gauge(
            "ipsat_gateway_submit_failures_total",
            "counter",
            "Failed submissions to the RSK gateway (another validator's success included).",
            self.gateway_submit_failures.load(Relaxed),
        );
        gauge(
            "ipsat_gossip_checkpoints_published_total",
            "counter",
            "This subnet's certified checkpoints published on the gossip plane.",
            self.gossip_published.load(Relaxed),
        );
        gauge(
            "ipsat_gossip_checkpoints_accepted_total",
            "counter",
            "Children's checkpoints heard on the gossip plane, valid now (forwarded, proposed).",
            self.gossip_accepted.load(Relaxed),
        );
        gauge(
            "ipsat_gossip_checkpoints_ignored_total",
            "counter",
            "Children's checkpoints heard on the gossip plane, old or not checkable yet.",
            self.gossip_ignored.load(Relaxed),
        );
        gauge(
            "ipsat_gossip_checkpoints_rejected_total",
            "counter",
            "Messages on children's topics that were forged or malformed.",
            self.gossip_rejected.load(Relaxed),
        );
        gauge(
            "ipsat_child_checkpoints_accepted_total",
            "counter",
            "Checkpoints of children accepted in this subnet's state.",
            self.child_checkpoints_accepted.load(Relaxed),
        );
        out
    }
}

/// Binds the metrics endpoint, so a port in use fails the node's start.
pub async fn bind(listen: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the metrics endpoint on {listen}"))
}

/// Scrapers connected at once, and how long a new connection may stay silent.
const LIMITS: ConnectionLimits = ConnectionLimits {
    max_connections: 16,
    first_byte_timeout: Duration::from_secs(5),
};

/// How long reading a request's headers may take.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one connection may stay open, requests included.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

fn respond(
    render: &dyn Fn() -> String,
    request: &Request<hyper::body::Incoming>,
) -> Response<String> {
    let found = request.method() == Method::GET && request.uri().path() == "/metrics";
    let mut response = if found {
        Response::new(render())
    } else {
        Response::new(String::new())
    };
    if found {
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
        );
    } else {
        *response.status_mut() = StatusCode::NOT_FOUND;
    }
    response
}

/// Serves the node's `GET /metrics` until `shutdown` flips (see [`serve_text`]).
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, shutdown: Shutdown) -> Result<()> {
    serve_text(listener, move || metrics.render(), shutdown).await
}

/// Serves `GET /metrics` with the Prometheus text `render` makes at each request, over
/// HTTP/1.1 (hyper) until `shutdown` flips, within the connection limits of
/// [`crate::limits`], with header and connection timeouts. The anchoring service uses it too.
pub async fn serve_text<R>(listener: TcpListener, render: R, shutdown: Shutdown) -> Result<()>
where
    R: Fn() -> String + Send + Sync + 'static,
{
    let timeouts = HttpTimeouts {
        header: HEADER_TIMEOUT,
        connection: CONNECTION_TIMEOUT,
    };
    let render = Arc::new(render);
    serve_http1(listener, LIMITS, timeouts, shutdown, move |request| {
        let response = respond(render.as_ref(), &request);
        async move { response }
    })
    .await
}

/// Appends one metric in the Prometheus text format: its help, its type and its value.
pub fn push_metric(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    out.push_str(&format!(
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
    ));
}
