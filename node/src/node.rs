//! `ipsat node start`: the ABCI server, the gRPC API, metrics and the supervised CometBFT,
//! until SIGTERM or Ctrl-C.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ipsat_proto::v1::{
    query_service_server::QueryServiceServer, tx_service_server::TxServiceServer,
    FILE_DESCRIPTOR_SET,
};
use ipsat_subnet::{StateQuery, Store, SubnetApp};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{broadcast, watch};

use crate::abci::AbciApp;
use crate::cometbft::{self, CometRpc};
use crate::config::{state_db_path, Config};
use crate::grpc::Api;
use crate::metrics::{self, Metrics};

/// Blocks a slow stream subscriber may fall behind before it is told to reconnect.
const BLOCK_CHANNEL_CAPACITY: usize = 1024;

fn chain_id(cometbft_home: &Path) -> Result<String> {
    let path = cometbft_home.join("config").join("genesis.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let genesis: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    genesis["chain_id"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("{} has no chain_id", path.display()))
}

pub async fn start(home: &Path) -> Result<()> {
    let config = Config::load(home)?;
    let cometbft_home = config.cometbft_home(home);
    let chain_id = chain_id(&cometbft_home)?;
    let db_path = state_db_path(home);
    let store = Arc::new(
        Store::open(&db_path).with_context(|| format!("opening state at {}", db_path.display()))?,
    );
    let app = SubnetApp::open(store.clone()).context("loading the committed state")?;
    if let Some(c) = app.last_committed() {
        tracing::info!(height = c.height, app_hash = %hex::encode(c.app_hash), "resuming from committed state");
    }
    let metrics = Arc::new(Metrics::default());
    let (committed, _) = broadcast::channel(BLOCK_CHANNEL_CAPACITY);

    let abci = AbciApp::new(app, committed.clone(), metrics.clone());
    let abci_server = tendermint_abci::ServerBuilder::default()
        .bind(config.abci.listen, abci)
        .map_err(|e| anyhow::anyhow!("binding the ABCI server on {}: {e}", config.abci.listen))?;
    std::thread::Builder::new()
        .name("abci".into())
        .spawn(move || {
            if let Err(error) = abci_server.listen() {
                tracing::error!(%error, "ABCI server stopped");
            }
        })?;
    tracing::info!(listen = %config.abci.listen, "ABCI server listening");

    let api = Api {
        query: StateQuery::new(store),
        rpc: CometRpc::new(&config.cometbft.rpc),
        committed,
        chain_id,
        commit_timeout: Duration::from_millis(config.grpc.commit_timeout_ms),
    };
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<TxServiceServer<Api>>().await;
    health_reporter
        .set_serving::<QueryServiceServer<Api>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("building gRPC reflection")?;
    let grpc_listener = tokio::net::TcpListener::bind(config.grpc.listen)
        .await
        .with_context(|| format!("binding the gRPC API on {}", config.grpc.listen))?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut grpc_shutdown = shutdown_rx.clone();
    let grpc = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection)
            .add_service(TxServiceServer::new(api.clone()))
            .add_service(QueryServiceServer::new(api))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(grpc_listener),
                async move {
                    let _ = grpc_shutdown.changed().await;
                },
            ),
    );
    tracing::info!(listen = %config.grpc.listen, "gRPC API listening (health and reflection on)");

    if let Some(listen) = config.metrics.listen {
        let metrics = metrics.clone();
        tokio::spawn(async move {
            if let Err(error) = metrics::serve(listen, metrics).await {
                tracing::error!(%error, "metrics endpoint stopped");
            }
        });
        tracing::info!(%listen, "Prometheus metrics at /metrics");
    }

    let consensus = if config.cometbft.supervise {
        let log = home.join("logs").join("cometbft.log");
        Some(tokio::spawn(cometbft::supervise(
            config.cometbft.binary.clone(),
            cometbft_home,
            log,
            shutdown_rx,
        )))
    } else {
        tracing::info!("cometbft.supervise = false: expecting CometBFT to be run separately");
        None
    };

    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
    }
    let _ = shutdown_tx.send(true);
    if let Some(consensus) = consensus {
        consensus.await.context("cometbft supervisor panicked")??;
        tracing::info!("cometbft stopped");
    }
    grpc.await.context("gRPC server panicked")??;
    tracing::info!("stopped cleanly");
    Ok(())
}
