//! The explorer: one plain HTML page (no build step, no external assets) and the JSON it
//! polls, served by the node on `[explorer] listen`.
//!
//! - `GET /` the page;
//! - `GET /api/tree` the tree this node sees ([`tree::TreeView`]);
//! - `POST /api/verify` a blocktree proof file as the body: its verification against the
//!   gateway of `[gateway]` and, when `[explorer] bitcoin_rpc` is set, that Bitcoin node's
//!   best chain.
//!
//! It shares the connection limits of the node's other listeners, so an open page costs the
//! node two small requests every two seconds and a crowd of clients cannot exhaust it.

pub mod tree;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use http_body_util::{BodyExt as _, Limited};
use hyper::{header, Method, Request, Response, StatusCode};
use ipsat_anchor::bitcoin::{Network, Work};
use ipsat_core::anchor_proof::ChainTrust;
use ipsat_core::blocktree::{BlocktreeProof, TrustRoots};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::commands::proof::verified_json;
use crate::limits::{serve_http1, ConnectionLimits, HttpTimeouts};
use crate::supervisor::Shutdown;
use tree::Sources;

const PAGE: &str = include_str!("page.html");

/// Browsers connected at once, and how long a new connection may stay silent.
const LIMITS: ConnectionLimits = ConnectionLimits {
    max_connections: 64,
    first_byte_timeout: Duration::from_secs(5),
};

/// How long reading a request's headers may take, and a whole connection may stay open.
const TIMEOUTS: HttpTimeouts = HttpTimeouts {
    header: Duration::from_secs(5),
    connection: Duration::from_secs(60),
};

/// The largest proof file accepted: real ones are a few KiB (docs/proofs.md).
const MAX_PROOF_BYTES: usize = 256 * 1024;

/// Binds the explorer, so a port in use fails the node's start.
pub async fn bind(listen: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the explorer on {listen}"))
}

/// Serves the explorer until `shutdown` flips.
pub async fn serve(listener: TcpListener, sources: Sources, shutdown: Shutdown) -> Result<()> {
    let sources = Arc::new(sources);
    serve_http1(listener, LIMITS, TIMEOUTS, shutdown, move |request| {
        let sources = sources.clone();
        async move { respond(&sources, request).await }
    })
    .await
}

async fn respond(sources: &Sources, request: Request<hyper::body::Incoming>) -> Response<String> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/") => reply(StatusCode::OK, "text/html; charset=utf-8", PAGE.into()),
        (&Method::GET, "/api/tree") => json_reply(
            StatusCode::OK,
            serde_json::to_value(sources.read().await).unwrap_or_default(),
        ),
        (&Method::POST, "/api/verify") => {
            let body = match Limited::new(request.into_body(), MAX_PROOF_BYTES)
                .collect()
                .await
            {
                Ok(body) => body.to_bytes(),
                Err(e) => {
                    return json_reply(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        json!({"verified": false, "error": format!("reading the proof: {e}")}),
                    )
                }
            };
            let (status, verdict) = verify(sources, &body).await;
            json_reply(status, verdict)
        }
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

/// Checks a proof file against this node's gateway and, if configured, its Bitcoin node.
async fn verify(sources: &Sources, bytes: &[u8]) -> (StatusCode, Value) {
    let refused = |error: String| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"verified": false, "error": error}),
        )
    };
    let Some(gateway) = sources.gateway.address.as_deref() else {
        return refused("this node has no [gateway] to check proofs against".into());
    };
    let Ok(gateway) = gateway.parse::<alloy::primitives::Address>() else {
        return refused("[gateway] address is not an address".into());
    };
    let Ok(network) = sources.explorer.network.parse::<Network>() else {
        return refused("[explorer] network is not a Bitcoin network".into());
    };
    let proof = match BlocktreeProof::decode(bytes) {
        Ok(proof) => proof,
        Err(e) => return refused(e.to_string()),
    };
    // The work is judged below by asking the Bitcoin node where the anchor's block is; the
    // proof itself must still chain its headers and meet each one's target.
    let trust = TrustRoots {
        rsk_chain_id: sources.gateway.chain_id,
        gateway: gateway.into_array(),
        network,
        bitcoin: ChainTrust::MinimumWork(Work::from_be_bytes([0; 32])),
    };
    let verified = match proof.verify(&trust) {
        Ok(verified) => verified,
        Err(e) => return refused(format!("does not verify: {e}")),
    };
    let mut verdict = verified_json(&verified, bytes.len());
    let block = verified.bitcoin.block_hash.to_string();
    verdict["bitcoin_check"] = match sources.bitcoin() {
        None => json!("no Bitcoin node configured: the anchor's block was not looked up"),
        Some(rpc) => match rpc
            .call::<Value>("getblockheader", &[json!(block), json!(true)])
            .await
        {
            Ok(header) if header["confirmations"].as_i64().unwrap_or(-1) > 0 => json!(format!(
                "block {block} is in the Bitcoin node's best chain at height {} with {} confirmations",
                header["height"], header["confirmations"]
            )),
            Ok(_) => {
                return refused(format!(
                    "block {block} is not in the Bitcoin node's best chain"
                ))
            }
            Err(e) => return refused(format!("the Bitcoin node does not know block {block}: {e}")),
        },
    };
    (StatusCode::OK, verdict)
}

fn json_reply(status: StatusCode, value: Value) -> Response<String> {
    reply(status, "application/json", value.to_string())
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<String> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}
