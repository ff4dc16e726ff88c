//! `ipsat node start`: the ABCI server, then the gRPC API, metrics and CometBFT as services
//! of one [`Supervisor`], until SIGTERM or Ctrl-C.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ipsat_checkpoint::SubnetHash;
use ipsat_p2p::{Libp2pConfig, Libp2pPlane, Multiaddr};
use ipsat_proto::v1::{
    query_service_server::QueryServiceServer, tx_service_server::TxServiceServer,
    FILE_DESCRIPTOR_SET,
};
use ipsat_subnet::{CommittedBlock, StateQuery, Store, SubnetApp};
use tokio::sync::broadcast;

use crate::abci::AbciApp;
use crate::cometbft::{self, CometRpc};
use crate::config::{state_db_path, Config, GatewayLinkConfig};
use crate::delivery::Delivery;
use crate::explorer;
use crate::gateway_link::{self, CheckpointSubmitter, RskFollower};
use crate::gossip::Gossip;
use crate::grpc::Api;
use crate::keys;
use crate::limits::{limited_incoming, ConnectionLimits};
use crate::metrics::{self, Metrics};
use crate::parent_follower::ParentFollower;
use crate::supervisor::Supervisor;

/// Blocks a slow stream subscriber may fall behind before it is told to reconnect.
const BLOCK_CHANNEL_CAPACITY: usize = 1024;

/// gRPC connections open at once, and how long a new one may stay silent: enough for many
/// dApps, far below the file descriptors a node has.
const GRPC_LIMITS: ConnectionLimits = ConnectionLimits {
    max_connections: 512,
    first_byte_timeout: Duration::from_secs(10),
};

/// Concurrent calls (streams included) on one gRPC connection.
const GRPC_MAX_STREAMS_PER_CONNECTION: u32 = 128;

/// Largest gRPC request: a transaction (at most 128 KiB) with room for its envelope.
const GRPC_MAX_REQUEST_BYTES: usize = 256 * 1024;

fn genesis_json(cometbft_home: &Path) -> Result<serde_json::Value> {
    let path = cometbft_home.join("config").join("genesis.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn chain_id(cometbft_home: &Path) -> Result<String> {
    genesis_json(cometbft_home)?["chain_id"]
        .as_str()
        .map(str::to_owned)
        .context("genesis.json has no chain_id")
}

pub async fn start(home: &Path) -> Result<()> {
    let config = Config::load(home)?;
    let cometbft_home = config.cometbft_home(home);
    let chain_id = chain_id(&cometbft_home)?;
    let db_path = state_db_path(home);
    let store = Arc::new(
        Store::open(&db_path).with_context(|| format!("opening state at {}", db_path.display()))?,
    );
    let mut app = SubnetApp::open(store.clone()).context("loading the committed state")?;
    if let Some(path) = &config.checkpoints.bls_key {
        let key = keys::load_bls(&home.join(path))?;
        tracing::info!(
            bls_key = %hex::encode(key.public_key().to_compressed()),
            "signing checkpoints in vote extensions"
        );
        app = app.with_checkpoint_signer(key);
    }
    let gateway_signer = match &config.gateway.signer_key {
        Some(name) => Some(keys::load(&crate::config::keys_dir(home), name)?),
        None => None,
    };
    if let Some(key) = &gateway_signer {
        tracing::info!(signer = %key.address, "signing checkpoints for the RSK gateway");
        app = app.with_gateway_signer(key.secret);
    }
    let app = Arc::new(app);
    let inputs = app.proposal_inputs().clone();
    if let Some(c) = app.last_committed()? {
        tracing::info!(height = c.height, app_hash = %hex::encode(c.app_hash), "resuming from committed state");
    }
    let metrics = Arc::new(Metrics::default());
    let (committed, _) = broadcast::channel(BLOCK_CHANNEL_CAPACITY);

    // The ABCI server is blocking (one thread per CometBFT connection) and lives as long as
    // the process: CometBFT must be able to reach it until it has stopped itself.
    let abci = AbciApp::new(app.clone(), committed.clone(), metrics.clone());
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

    let mut supervisor = Supervisor::new();
    let query = StateQuery::new(store);
    let pulled: Vec<(String, String)> = config
        .checkpoints
        .children
        .iter()
        .filter_map(|c| c.grpc.clone().map(|grpc| (c.name.clone(), grpc)))
        .collect();
    if !pulled.is_empty() {
        let names: Vec<&str> = pulled.iter().map(|(name, _)| name.as_str()).collect();
        tracing::info!(children = ?names, "pulling children's checkpoints over gRPC");
        let delivery = Delivery {
            children: pulled,
            query: query.clone(),
            inputs,
            metrics: metrics.clone(),
            poll_interval: Duration::from_millis(config.checkpoints.poll_interval_ms.max(50)),
        };
        supervisor.spawn("delivery", |shutdown| delivery.run(shutdown));
    }
    if !config.parent.grpc.is_empty() {
        tracing::info!(endpoints = ?config.parent.grpc, "following the parent over gRPC");
        let follower = ParentFollower {
            endpoints: config.parent.grpc.clone(),
            app: app.clone(),
            query: query.clone(),
            inputs: app.proposal_inputs().clone(),
            metrics: metrics.clone(),
            poll_interval: Duration::from_millis(config.parent.poll_interval_ms.max(50)),
        };
        supervisor.spawn("parent", |shutdown| follower.run(shutdown));
    }
    if config.gateway.rpc.is_some() {
        let subnet = genesis_json(&cometbft_home)?["app_state"]["subnet_id"]
            .as_str()
            .map(str::to_owned)
            .context("genesis.json has no app_state.subnet_id")?;
        let link = GatewayLinkParts {
            subnet: &subnet,
            app: app.clone(),
            metrics: metrics.clone(),
            signer: gateway_signer.as_ref(),
        };
        start_gateway_link(&mut supervisor, &config.gateway, link).await?;
    }
    if config.p2p.enabled() {
        let parts = GossipParts {
            app: app.clone(),
            query: query.clone(),
            committed: committed.clone(),
            metrics: metrics.clone(),
        };
        let gossip = start_gossip(home, &config, &cometbft_home, parts).await?;
        supervisor.spawn("gossip", |shutdown| gossip.run(shutdown));
    }
    let api = Api {
        query,
        rpc: CometRpc::new(&config.cometbft.rpc),
        committed,
        chain_id,
        commit_timeout: Duration::from_millis(config.grpc.commit_timeout_ms),
    };
    let grpc_listener = tokio::net::TcpListener::bind(config.grpc.listen)
        .await
        .with_context(|| format!("binding the gRPC API on {}", config.grpc.listen))?;
    let grpc = grpc_server(api).await?;
    supervisor.spawn("grpc", |mut shutdown| async move {
        grpc.serve_with_incoming_shutdown(
            limited_incoming(grpc_listener, GRPC_LIMITS, shutdown.clone()),
            async move {
                let _ = shutdown.changed().await;
            },
        )
        .await
        .context("gRPC server")
    });
    tracing::info!(listen = %config.grpc.listen, "gRPC API listening (health and reflection on)");

    if let Some(listen) = config.metrics.listen {
        let listener = metrics::bind(listen).await?;
        supervisor.spawn("metrics", |shutdown| {
            metrics::serve(listener, metrics, shutdown)
        });
        tracing::info!(%listen, "Prometheus metrics at /metrics");
    }

    if let Some(listen) = config.explorer.listen {
        let listener = explorer::bind(listen).await?;
        let sources = explorer::tree::Sources {
            own: format!("http://{}", loopback(config.grpc.listen)),
            children: config
                .checkpoints
                .children
                .iter()
                .filter_map(|child| child.grpc.clone())
                .collect(),
            gateway: config.gateway.clone(),
            explorer: config.explorer.clone(),
        };
        supervisor.spawn("explorer", |shutdown| {
            explorer::serve(listener, sources, shutdown)
        });
        tracing::info!(%listen, "explorer at http://{listen}/");
    }

    if config.cometbft.supervise {
        let log = home.join("logs").join("cometbft.log");
        let binary = config.cometbft.binary.clone();
        supervisor.spawn("cometbft", |shutdown| {
            cometbft::supervise(binary, cometbft_home, log, shutdown)
        });
    } else {
        tracing::info!("cometbft.supervise = false: expecting CometBFT to be run separately");
    }

    supervisor.run().await?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Where this host reaches a listener bound to `listen`: loopback when it binds every address.
fn loopback(listen: std::net::SocketAddr) -> std::net::SocketAddr {
    if listen.ip().is_unspecified() {
        (std::net::Ipv4Addr::LOCALHOST, listen.port()).into()
    } else {
        listen
    }
}

/// The parts of the node the gateway link shares.
struct GatewayLinkParts<'a> {
    /// The subnet's path, from genesis (the app may not have seen InitChain yet).
    subnet: &'a str,
    app: Arc<SubnetApp>,
    metrics: Arc<Metrics>,
    signer: Option<&'a keys::Key>,
}

/// Connects to the RSK gateway of a level-1 subnet and starts its follower and, on a
/// validator with a gateway signer, its checkpoint submitter.
async fn start_gateway_link(
    supervisor: &mut Supervisor,
    config: &GatewayLinkConfig,
    parts: GatewayLinkParts<'_>,
) -> Result<()> {
    let subnet_hash = alloy::primitives::B256::from(SubnetHash::of_path(parts.subnet).0);
    // A node without a signer only reads; it pays for nothing, so any key will do.
    let sender = match parts.signer {
        Some(key) => key.secret,
        None => secp256k1::SecretKey::new(&mut secp256k1::rand::thread_rng()),
    };
    let gateway = Arc::new(gateway_link::connect_when_reachable(config, &sender).await?);
    let poll_interval = Duration::from_millis(config.poll_interval_ms.max(50));
    tracing::info!(gateway = %gateway.address(), "following RSK for the subnet's attestations");
    let follower = RskFollower {
        gateway: gateway.clone(),
        app: parts.app.clone(),
        subnet: subnet_hash,
        inputs: parts.app.rsk_inputs().clone(),
        metrics: parts.metrics.clone(),
        poll_interval,
    };
    supervisor.spawn("rsk-follower", |shutdown| follower.run(shutdown));
    if let Some(key) = parts.signer {
        let submitter = CheckpointSubmitter {
            gateway,
            app: parts.app,
            subnet: subnet_hash,
            signer: key.address,
            submit_timeout: Duration::from_millis(config.submit_timeout_ms),
            metrics: parts.metrics,
            poll_interval,
        };
        supervisor.spawn("gateway-submitter", |shutdown| submitter.run(shutdown));
    }
    Ok(())
}

/// The parts of the node the gossip service shares.
struct GossipParts {
    app: Arc<SubnetApp>,
    query: StateQuery,
    committed: broadcast::Sender<Arc<CommittedBlock>>,
    metrics: Arc<Metrics>,
}

/// Joins the libp2p gossip plane with the node's identity (created on first start).
async fn start_gossip(
    home: &Path,
    config: &Config,
    cometbft_home: &Path,
    parts: GossipParts,
) -> Result<Gossip<Libp2pPlane>> {
    let key_path = home.join(&config.p2p.key);
    let keypair = if key_path.exists() {
        keys::load_p2p(&key_path)?
    } else {
        keys::create_p2p(&key_path)?
    };
    let parse = |addresses: &[String], what: &str| -> Result<Vec<Multiaddr>> {
        addresses
            .iter()
            .map(|a| {
                a.parse()
                    .with_context(|| format!("p2p.{what}: {a:?} is not a multiaddr"))
            })
            .collect()
    };
    let (incoming, received) = tokio::sync::mpsc::channel(256);
    let plane = Libp2pPlane::start(
        Libp2pConfig {
            keypair,
            listen: parse(&config.p2p.listen, "listen")?,
            bootstrap: parse(&config.p2p.bootstrap, "bootstrap")?,
            redial_interval: Duration::from_secs(2),
        },
        incoming,
    )
    .await
    .context("starting the gossip plane")?;
    let children: Vec<String> = config
        .checkpoints
        .children
        .iter()
        .map(|c| c.name.clone())
        .collect();
    tracing::info!(peer_id = %plane.peer_id(), ?children, "gossip plane on");
    Ok(Gossip {
        plane,
        incoming: received,
        app: parts.app,
        query: parts.query,
        committed: parts.committed,
        metrics: parts.metrics,
        subnet: subnet_id(cometbft_home)?,
        children,
    })
}

/// The subnet path in the genesis's `app_state` (known before InitChain has run).
fn subnet_id(cometbft_home: &Path) -> Result<String> {
    let genesis = genesis_json(cometbft_home)?;
    genesis["app_state"]["subnet_id"]
        .as_str()
        .map(str::to_owned)
        .context("genesis.json has no app_state.subnet_id")
}

/// The gRPC server with the API, health and reflection.
async fn grpc_server(api: Api) -> Result<tonic::transport::server::Router> {
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
    Ok(tonic::transport::Server::builder()
        .max_concurrent_streams(Some(GRPC_MAX_STREAMS_PER_CONNECTION))
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .tcp_nodelay(true)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(
            TxServiceServer::new(api.clone()).max_decoding_message_size(GRPC_MAX_REQUEST_BYTES),
        )
        .add_service(
            QueryServiceServer::new(api).max_decoding_message_size(GRPC_MAX_REQUEST_BYTES),
        ))
}
