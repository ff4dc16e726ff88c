//! The dApp-facing gRPC API (`ipsat.v1`), with gRPC health and reflection.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ipsat_core::crossnet::{CrossKind, Target};
use ipsat_core::tx::{tx_hash, MAX_TX_BYTES};
use ipsat_core::types::is_valid_name;
use ipsat_core::{Address, Amount, SubnetId};
use ipsat_proto::v1::{
    self as pb, query_service_server::QueryService, tx_service_server::TxService,
};
use ipsat_subnet::components::crossnet::{MessageStatus, Passage};
use ipsat_subnet::{AppError, CommittedBlock, StateQuery};
use tokio::sync::broadcast;
use tokio_stream::wrappers::{errors::BroadcastStreamRecvError, BroadcastStream};
use tokio_stream::{Stream, StreamExt as _};
use tonic::{Request, Response, Status};

use crate::cometbft::{CometRpc, RpcError};

type ApiStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Longest event kind a `StreamEvents` filter may name; kinds are short words.
const MAX_EVENT_KIND_BYTES: usize = 64;

/// Longest key a query may name; keyspaces cannot allow longer ones.
const MAX_QUERY_KEY_BYTES: usize = ipsat_core::action::MAX_KEY_LIMIT as usize;
/// Longest raw state key `ProveState` accepts: a keyspace key with its prefix and name fits.
const MAX_STATE_KEY_BYTES: usize = 2 * MAX_QUERY_KEY_BYTES;

#[derive(Clone)]
pub struct Api {
    pub query: StateQuery,
    pub rpc: CometRpc,
    pub committed: broadcast::Sender<Arc<CommittedBlock>>,
    pub chain_id: String,
    pub commit_timeout: Duration,
}

fn internal(error: AppError) -> Status {
    match error {
        AppError::NotInitialized => Status::unavailable("the chain has no genesis yet"),
        AppError::NotCommitted { .. } => Status::out_of_range(error.to_string()),
        other => Status::internal(other.to_string()),
    }
}

fn rpc_status(error: RpcError) -> Status {
    match &error {
        RpcError::Unreachable { .. } => Status::unavailable(error.to_string()),
        RpcError::Rpc(message) if message.contains("already exists in cache") => {
            Status::already_exists("transaction is already in the mempool cache")
        }
        RpcError::Rpc(message) if message.contains("mempool is full") => {
            Status::resource_exhausted(error.to_string())
        }
        _ => Status::internal(error.to_string()),
    }
}

fn address(bytes: &[u8]) -> Result<Address, Status> {
    Address::from_slice(bytes).map_err(|_| {
        Status::invalid_argument(format!("address must be 20 bytes, got {}", bytes.len()))
    })
}

fn child_name(name: &str) -> Result<(), Status> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "subnet name {name:?} must match [a-z0-9-]{{1,32}}"
        )))
    }
}

fn keyspace_name(name: &str) -> Result<(), Status> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "keyspace name {name:?} must match [a-z0-9-]{{1,32}}"
        )))
    }
}

/// Most top-down message proofs one `GetTopDownMessages` call returns.
const MAX_TOP_DOWN_PROOFS: usize = 64;

/// `unix_nanos` as RFC 3339, as CometBFT writes times.
fn rfc3339(unix_nanos: i64) -> String {
    tendermint::Time::from_unix_timestamp(
        unix_nanos.div_euclid(1_000_000_000),
        unix_nanos.rem_euclid(1_000_000_000) as u32,
    )
    .map(|t| t.to_rfc3339())
    .unwrap_or_default()
}

/// Whether an event of kind `kind` passes the filter `filter`: empty (all), a kind, or a
/// prefix followed by `*`.
fn kind_matches(filter: &str, kind: &str) -> bool {
    match filter.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => filter.is_empty() || filter == kind,
    }
}

/// Runs a RocksDB read off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AppError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(internal)
}

#[tonic::async_trait]
impl TxService for Api {
    async fn broadcast_tx(
        &self,
        request: Request<pb::BroadcastTxRequest>,
    ) -> Result<Response<pb::BroadcastTxResponse>, Status> {
        let request = request.into_inner();
        if request.tx.is_empty() {
            return Err(Status::invalid_argument("tx is empty"));
        }
        if request.tx.len() > MAX_TX_BYTES {
            return Err(Status::invalid_argument(format!(
                "tx of {} bytes exceeds {MAX_TX_BYTES}",
                request.tx.len()
            )));
        }
        let mode = pb::BroadcastMode::try_from(request.mode).map_err(|_| {
            Status::invalid_argument(format!("unknown broadcast mode {}", request.mode))
        })?;
        let hash = tx_hash(&request.tx);
        // Subscribe before broadcasting so the commit cannot slip past unseen.
        let mut blocks = self.committed.subscribe();
        let checked = self
            .rpc
            .broadcast_tx_sync(&request.tx)
            .await
            .map_err(rpc_status)?;
        let mut response = pb::BroadcastTxResponse {
            hash: hash.to_vec(),
            code: checked.code,
            log: checked.log,
            height: 0,
            events: Vec::new(),
        };
        if mode != pb::BroadcastMode::Commit || checked.code != 0 {
            return Ok(Response::new(response));
        }
        let timeout = match request.timeout_ms {
            0 => self.commit_timeout,
            ms => Duration::from_millis(u64::from(ms)).min(self.commit_timeout),
        };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let block = match tokio::time::timeout_at(deadline, blocks.recv()).await {
                Ok(Ok(block)) => block,
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                Ok(Err(broadcast::error::RecvError::Closed)) => {
                    return Err(Status::unavailable("node is shutting down"))
                }
                Err(_) => {
                    return Err(Status::deadline_exceeded(format!(
                        "transaction {} passed CheckTx but was not committed within {timeout:?}",
                        hex::encode(hash)
                    )))
                }
            };
            if let Some(result) = block.tx_results.iter().find(|r| r.hash == hash) {
                response.code = result.code;
                response.log = result.log.clone();
                response.height = block.height;
                response.events = result.events.iter().map(|e| e.to_proto()).collect();
                return Ok(Response::new(response));
            }
        }
    }
}

#[tonic::async_trait]
impl QueryService for Api {
    async fn get_status(
        &self,
        _request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        let query = self.query.clone();
        let (committed, params) = blocking(move || {
            let committed = query.latest()?.ok_or(AppError::NotInitialized)?;
            Ok((committed, query.params()?))
        })
        .await?;
        let subnet_id = self.query.subnet_id().map_err(internal)?;
        Ok(Response::new(pb::GetStatusResponse {
            subnet_id,
            chain_id: self.chain_id.clone(),
            height: committed.height,
            app_hash: committed.app_hash.to_vec(),
            state_root: committed.state_root.to_vec(),
            history_root: committed.history_root.to_vec(),
            node_version: env!("CARGO_PKG_VERSION").into(),
            fee_base: params.fee_base.to_string(),
            fee_per_byte: params.fee_per_byte.to_string(),
        }))
    }

    async fn get_account(
        &self,
        request: Request<pb::GetAccountRequest>,
    ) -> Result<Response<pb::GetAccountResponse>, Status> {
        let request = request.into_inner();
        let who = address(&request.address)?;
        let query = self.query.clone();
        let read = blocking(move || query.account(&who, request.prove)).await?;
        let record = read.value.unwrap_or_default();
        Ok(Response::new(pb::GetAccountResponse {
            account: Some(pb::Account {
                address: who.0.to_vec(),
                balance: record.balance().to_string(),
                nonce: record.nonce,
            }),
            height: read.height,
            proof: read.proof,
        }))
    }

    async fn get_keyspace(
        &self,
        request: Request<pb::GetKeyspaceRequest>,
    ) -> Result<Response<pb::GetKeyspaceResponse>, Status> {
        let request = request.into_inner();
        keyspace_name(&request.name)?;
        let query = self.query.clone();
        let name = request.name.clone();
        let read = blocking(move || query.keyspace(&name, request.prove)).await?;
        if read.value.is_none() && read.proof.is_none() {
            return Err(Status::not_found(format!(
                "keyspace {:?} does not exist",
                request.name
            )));
        }
        Ok(Response::new(pb::GetKeyspaceResponse {
            keyspace: read.value.map(|k| k.to_proto(&request.name)),
            height: read.height,
            proof: read.proof,
        }))
    }

    async fn get_key(
        &self,
        request: Request<pb::GetKeyRequest>,
    ) -> Result<Response<pb::GetKeyResponse>, Status> {
        let request = request.into_inner();
        keyspace_name(&request.keyspace)?;
        if request.key.is_empty() || request.key.len() > MAX_QUERY_KEY_BYTES {
            return Err(Status::invalid_argument(format!(
                "key must be 1..={MAX_QUERY_KEY_BYTES} bytes, got {}",
                request.key.len()
            )));
        }
        let query = self.query.clone();
        let read =
            blocking(move || query.kv(&request.keyspace, &request.key, request.prove)).await?;
        Ok(Response::new(pb::GetKeyResponse {
            value: read.value,
            height: read.height,
            proof: read.proof,
        }))
    }

    async fn prove_state(
        &self,
        request: Request<pb::ProveStateRequest>,
    ) -> Result<Response<pb::ProveStateResponse>, Status> {
        let request = request.into_inner();
        if request.key.is_empty() || request.key.len() > MAX_STATE_KEY_BYTES {
            return Err(Status::invalid_argument(format!(
                "a state key must be 1..={MAX_STATE_KEY_BYTES} bytes, got {}",
                request.key.len()
            )));
        }
        let history_height = match request.history_height {
            0 => request.height,
            h if h < request.height => {
                return Err(Status::invalid_argument(format!(
                "history_height {h} is below height {}: a history root holds only earlier states",
                request.height
            )))
            }
            h => h,
        };
        let query = self.query.clone();
        let (proof, history) =
            blocking(move || query.prove_in_history(&request.key, request.height, history_height))
                .await?;
        Ok(Response::new(pb::ProveStateResponse {
            proof: Some(proof),
            history: Some(history),
            history_height,
        }))
    }

    async fn get_block(
        &self,
        request: Request<pb::GetBlockRequest>,
    ) -> Result<Response<pb::GetBlockResponse>, Status> {
        let height = match request.into_inner().height {
            0 => None,
            h => Some(h),
        };
        let header = self.rpc.header(height).await.map_err(|e| match e {
            RpcError::Rpc(message) => Status::not_found(message),
            other => rpc_status(other),
        })?;
        Ok(Response::new(pb::GetBlockResponse {
            height: header.height,
            block_hash: header.block_hash,
            app_hash: header.app_hash,
            chain_id: header.chain_id,
            num_txs: header.num_txs,
            time: header.time,
        }))
    }

    async fn get_light_block(
        &self,
        request: Request<pb::GetLightBlockRequest>,
    ) -> Result<Response<pb::GetLightBlockResponse>, Status> {
        let height = match request.into_inner().height {
            0 => None,
            h => Some(h),
        };
        let block = self.rpc.light_block(height).await.map_err(|e| match e {
            RpcError::Rpc(message) => Status::not_found(message),
            other => rpc_status(other),
        })?;
        let (signed_header, validator_set, next_validator_set) = block.encode();
        Ok(Response::new(pb::GetLightBlockResponse {
            height: block.signed_header.header.height.value(),
            signed_header,
            validator_set,
            next_validator_set,
        }))
    }

    type StreamBlocksStream = ApiStream<pb::Block>;

    async fn stream_blocks(
        &self,
        _request: Request<pb::StreamBlocksRequest>,
    ) -> Result<Response<Self::StreamBlocksStream>, Status> {
        let stream = BroadcastStream::new(self.committed.subscribe()).map(|item| match item {
            Ok(block) => Ok(block.to_proto()),
            Err(BroadcastStreamRecvError::Lagged(n)) => Err(Status::resource_exhausted(format!(
                "stream fell {n} blocks behind; reconnect"
            ))),
        });
        Ok(Response::new(Box::pin(stream)))
    }

    type StreamEventsStream = ApiStream<pb::TxEvent>;

    async fn stream_events(
        &self,
        request: Request<pb::StreamEventsRequest>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        let kind = request.into_inner().kind;
        if kind.len() > MAX_EVENT_KIND_BYTES {
            return Err(Status::invalid_argument(format!(
                "event kind filter of {} bytes; at most {MAX_EVENT_KIND_BYTES}",
                kind.len()
            )));
        }
        let mut blocks = self.committed.subscribe();
        let (events, stream) = tokio::sync::mpsc::channel(256);
        tokio::spawn(async move {
            loop {
                // Wait for the client's departure as well as for blocks: a filter that never
                // matches would otherwise keep this task and its subscription forever.
                let received = tokio::select! {
                    received = blocks.recv() => received,
                    () = events.closed() => return,
                };
                let block = match received {
                    Ok(block) => block,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let lagged = format!("stream fell {n} blocks behind; reconnect");
                        let _ = events.send(Err(Status::resource_exhausted(lagged))).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                for tx in &block.tx_results {
                    for event in tx.events.iter().filter(|e| kind_matches(&kind, e.kind)) {
                        let item = pb::TxEvent {
                            height: block.height,
                            tx_hash: tx.hash.to_vec(),
                            event: Some(event.to_proto()),
                        };
                        if events.send(Ok(item)).await.is_err() {
                            return; // the client went away
                        }
                    }
                }
            }
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(stream);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_subnet(
        &self,
        request: Request<pb::GetSubnetRequest>,
    ) -> Result<Response<pb::GetSubnetResponse>, Status> {
        let name = request.into_inner().name;
        child_name(&name)?;
        let query = self.query.clone();
        let lookup = name.clone();
        match blocking(move || query.subnet(&lookup)).await? {
            Some((subnet, height)) => Ok(Response::new(pb::GetSubnetResponse {
                subnet: Some(subnet),
                height,
            })),
            None => Err(Status::not_found(format!("no child subnet named {name:?}"))),
        }
    }

    async fn get_top_down_messages(
        &self,
        request: Request<pb::GetTopDownMessagesRequest>,
    ) -> Result<Response<pb::GetTopDownMessagesResponse>, Status> {
        let request = request.into_inner();
        child_name(&request.subnet)?;
        let limit = match request.limit {
            0 => MAX_TOP_DOWN_PROOFS,
            n => (n as usize).min(MAX_TOP_DOWN_PROOFS),
        };
        let query = self.query.clone();
        let (height, proofs) = blocking(move || {
            query.top_down_proofs(&request.subnet, request.from_nonce, request.height, limit)
        })
        .await?;
        Ok(Response::new(pb::GetTopDownMessagesResponse {
            height,
            proofs,
        }))
    }

    async fn get_message(
        &self,
        request: Request<pb::GetMessageRequest>,
    ) -> Result<Response<pb::GetMessageResponse>, Status> {
        let nonce = request.into_inner().nonce;
        let query = self.query.clone();
        let (record, height) = blocking(move || query.outgoing(nonce)).await?;
        let Some(record) = record else {
            return Ok(Response::new(pb::GetMessageResponse {
                height,
                ..Default::default()
            }));
        };
        let message = record.message;
        let mut response = pb::GetMessageResponse {
            found: true,
            from_subnet: message.from_subnet,
            from: message.from.to_vec(),
            nonce: message.nonce,
            to_subnet: message.to_subnet,
            amount: Amount::from_atto(message.amount).to_string(),
            height,
            ..Default::default()
        };
        match message.to {
            Target::Account(address) => response.to_account = address.to_vec(),
            Target::Keyspace { name, key } => {
                response.to_keyspace = name;
                response.key = key;
            }
        }
        match message.kind {
            CrossKind::Call { payload } => {
                response.kind = "call".into();
                response.payload = payload;
            }
            CrossKind::Receipt { call_nonce, code } => {
                response.kind = "receipt".into();
                response.call_nonce = call_nonce;
                response.code = code;
            }
        }
        (response.status, response.failure_code) = match record.status {
            MessageStatus::Sent => ("sent".into(), 0),
            MessageStatus::Delivered => ("delivered".into(), 0),
            MessageStatus::Failed(code) => ("failed".into(), code),
        };
        Ok(Response::new(response))
    }

    async fn get_passage(
        &self,
        request: Request<pb::GetPassageRequest>,
    ) -> Result<Response<pb::GetPassageResponse>, Status> {
        let request = request.into_inner();
        let from: SubnetId = request
            .from_subnet
            .parse()
            .map_err(|_| Status::invalid_argument("from_subnet is not a subnet path"))?;
        let query = self.query.clone();
        let (passage, height) =
            blocking(move || query.passage(from.as_str(), request.nonce)).await?;
        let mut response = pb::GetPassageResponse {
            height,
            ..Default::default()
        };
        if let Some(passage) = passage {
            response.found = true;
            (response.passage, response.child, response.code) = match passage {
                Passage::ForwardedUp => ("forwarded up".into(), String::new(), 0),
                Passage::ForwardedDown(child) => ("forwarded down".into(), child, 0),
                Passage::Delivered => ("delivered".into(), String::new(), 0),
                Passage::Failed(code) => ("failed".into(), String::new(), code),
                Passage::ReceiptApplied => ("receipt applied".into(), String::new(), 0),
                Passage::Undeliverable(code) => ("undeliverable".into(), String::new(), code),
            };
        }
        Ok(Response::new(response))
    }

    async fn get_parent(
        &self,
        _request: Request<pb::GetParentRequest>,
    ) -> Result<Response<pb::GetParentResponse>, Status> {
        let query = self.query.clone();
        let status = blocking(move || query.parent()).await?;
        let mut response = pb::GetParentResponse {
            minted: status.minted.to_string(),
            released: status.released.to_string(),
            next_top_down_nonce: status.next_top_down_nonce,
            next_release_nonce: status.next_release_nonce,
            height: status.height,
            ..Default::default()
        };
        if let Some(client) = status.client {
            // Whether the client has lapsed is judged by this node's clock, for display only:
            // the state machine judges it by each block's time.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
            response.has_parent = true;
            response.parent_chain_id = client.chain_id.clone();
            response.trusted_height = client.height;
            response.trusted_hash = client.hash.to_vec();
            response.trusted_time = if client.time_unix_nanos == 0 {
                String::new()
            } else {
                rfc3339(client.time_unix_nanos)
            };
            response.expired = client.time_unix_nanos != 0 && client.expired(now);
            response.trusting_period_secs = client.trusting_period_secs;
        }
        Ok(Response::new(response))
    }

    async fn list_subnets(
        &self,
        _request: Request<pb::ListSubnetsRequest>,
    ) -> Result<Response<pb::ListSubnetsResponse>, Status> {
        let query = self.query.clone();
        let (subnets, height) = blocking(move || query.subnets()).await?;
        Ok(Response::new(pb::ListSubnetsResponse { subnets, height }))
    }

    async fn get_checkpoint(
        &self,
        request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        let request = request.into_inner();
        let query = self.query.clone();
        let child = request.child.clone();
        if !child.is_empty() {
            child_name(&child)?;
        }
        let response = blocking(move || match child.as_str() {
            "" => query.own_checkpoint(request.height),
            name => query.child_checkpoint(name, request.height),
        })
        .await?;
        if response.checkpoint.is_some() {
            return Ok(Response::new(response));
        }
        let whose = match request.child.as_str() {
            "" => "this subnet".to_owned(),
            name => format!("child {name:?}"),
        };
        Err(Status::not_found(match request.height {
            0 => format!("{whose} has no checkpoint yet"),
            h => format!("{whose} has no checkpoint at height {h}"),
        }))
    }

    type StreamCheckpointsStream = ApiStream<pb::Checkpoint>;

    async fn stream_checkpoints(
        &self,
        request: Request<pb::StreamCheckpointsRequest>,
    ) -> Result<Response<Self::StreamCheckpointsStream>, Status> {
        let from = request.into_inner().from_height;
        // Subscribe before reading so a checkpoint certified meanwhile is not missed.
        let mut blocks = self.committed.subscribe();
        let query = self.query.clone();
        let progress = query.clone();
        let Some((period, last)) = blocking(move || progress.checkpoint_progress()).await? else {
            return Err(Status::failed_precondition(
                "this subnet cuts no checkpoints",
            ));
        };
        let mut next = match from {
            0 => last + period,
            h => h.div_ceil(period) * period,
        };
        let (sender, stream) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                loop {
                    let reader = query.clone();
                    let height = next;
                    let checkpoint = match blocking(move || reader.own_checkpoint(height)).await {
                        Ok(pb::GetCheckpointResponse {
                            checkpoint: Some(cp),
                            ..
                        }) if cp.certificate.is_some() => cp,
                        Ok(_) => break,
                        Err(status) => {
                            let _ = sender.send(Err(status)).await;
                            return;
                        }
                    };
                    if sender.send(Ok(checkpoint)).await.is_err() {
                        return;
                    }
                    next += period;
                }
                let received = tokio::select! {
                    received = blocks.recv() => received,
                    () = sender.closed() => return,
                };
                match received {
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(stream),
        )))
    }
}

#[cfg(test)]
mod tests {
    use ipsat_subnet::Store;

    use super::*;

    #[test]
    fn event_kind_filters_match_whole_kinds_or_prefixes() {
        assert!(kind_matches("", "transfer"));
        assert!(kind_matches("transfer", "transfer"));
        assert!(!kind_matches("transfer", "transfers"));
        assert!(kind_matches("cross_*", "cross_receipt"));
        assert!(!kind_matches("cross_*", "fund"));
        assert!(kind_matches("*", "fund"));
    }

    fn api(dir: &std::path::Path) -> Api {
        api_over(StateQuery::new(Arc::new(Store::open(dir).unwrap())))
    }

    fn api_over(query: StateQuery) -> Api {
        Api {
            query,
            rpc: CometRpc::new("http://127.0.0.1:1"),
            committed: broadcast::channel(16).0,
            chain_id: "test".into(),
            commit_timeout: Duration::from_secs(1),
        }
    }

    fn empty_block(height: u64) -> Arc<CommittedBlock> {
        Arc::new(CommittedBlock {
            height,
            block_hash: Vec::new(),
            app_hash: [0; 32],
            state_root: [0; 32],
            history_root: [0; 32],
            tx_results: Vec::new(),
            checkpoint_cut: None,
        })
    }

    #[tokio::test]
    async fn an_event_stream_whose_filter_never_matches_ends_when_the_client_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let api = api(dir.path());
        let request = pb::StreamEventsRequest {
            kind: "never-emitted".into(),
        };
        let stream = api.stream_events(Request::new(request)).await.unwrap();
        assert_eq!(api.committed.receiver_count(), 1);
        drop(stream);
        for height in 1..=100 {
            let _ = api.committed.send(empty_block(height));
            if api.committed.receiver_count() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the stream's task and subscription outlived the client");
    }

    #[tokio::test]
    async fn an_oversized_event_filter_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let api = api(dir.path());
        let request = pb::StreamEventsRequest {
            kind: "k".repeat(MAX_EVENT_KIND_BYTES + 1),
        };
        let status = api
            .stream_events(Request::new(request))
            .await
            .err()
            .unwrap();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(api.committed.receiver_count(), 0);
    }

    const PERIOD: u64 = 2;

    fn tree(dir: &std::path::Path) -> ipsat_subnet::TestTree {
        ipsat_subnet::TestTree::new(
            dir,
            &ipsat_subnet::TreeSpec {
                parent: "/r33/alpha".parse().unwrap(),
                child: "beta".into(),
                parent_validators: 1,
                child_validators: 3,
                period: PERIOD,
            },
        )
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn subnets_and_checkpoints_are_served_and_bad_requests_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut tree = tree(dir.path());
        let parent = api_over(tree.parent.validators()[0].query.clone());
        let child = api_over(tree.child.validators()[0].query.clone());
        let name = |name: &str| pb::GetSubnetRequest { name: name.into() };
        let listed = parent
            .list_subnets(Request::new(pb::ListSubnetsRequest {}))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.subnets.len(), 1);
        let beta = parent.get_subnet(Request::new(name("beta"))).await.unwrap();
        assert_eq!(beta.into_inner().subnet.unwrap(), listed.subnets[0]);
        let code = |status: Status| status.code();
        let missing = parent.get_subnet(Request::new(name("nope"))).await;
        assert_eq!(
            missing.map(|_| ()).map_err(code),
            Err(tonic::Code::NotFound)
        );
        let bad = parent.get_subnet(Request::new(name("Not A Name"))).await;
        assert_eq!(
            bad.map(|_| ()).map_err(code),
            Err(tonic::Code::InvalidArgument)
        );
        let checkpoint = |child: &str, height| pb::GetCheckpointRequest {
            child: child.into(),
            height,
        };
        let bad = parent
            .get_checkpoint(Request::new(checkpoint("../x", 0)))
            .await;
        assert_eq!(
            bad.map(|_| ()).map_err(code),
            Err(tonic::Code::InvalidArgument)
        );
        let none_yet = child.get_checkpoint(Request::new(checkpoint("", 0))).await;
        assert_eq!(
            none_yet.map(|_| ()).map_err(code),
            Err(tonic::Code::NotFound)
        );
        let refused = parent
            .stream_checkpoints(Request::new(pb::StreamCheckpointsRequest {
                from_height: 0,
            }))
            .await;
        assert_eq!(
            refused.map(|_| ()).map_err(code),
            Err(tonic::Code::FailedPrecondition),
            "the parent cuts no checkpoints"
        );

        // Two certified before the stream opens, one after: all three arrive, in order.
        for _ in 0..(2 * PERIOD + 2) {
            tree.child.block(&[]).unwrap();
        }
        let latest = child
            .get_checkpoint(Request::new(checkpoint("", 0)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(latest.checkpoint.unwrap().height, 2 * PERIOD);
        assert_eq!(latest.period, PERIOD);
        let odd = child
            .get_checkpoint(Request::new(checkpoint("", 2 * PERIOD + 1)))
            .await;
        assert_eq!(odd.map(|_| ()).map_err(code), Err(tonic::Code::NotFound));
        let mut stream = child
            .stream_checkpoints(Request::new(pb::StreamCheckpointsRequest {
                from_height: PERIOD,
            }))
            .await
            .unwrap()
            .into_inner();
        let mut heights = Vec::new();
        for _ in 0..2 {
            heights.push(stream.next().await.unwrap().unwrap().height);
        }
        for _ in 0..PERIOD {
            let block = tree.child.block(&[]).unwrap();
            let _ = child.committed.send(Arc::new(block));
        }
        let third = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        heights.push(third.height);
        assert_eq!(heights, [PERIOD, 2 * PERIOD, 3 * PERIOD]);
        assert!(third.certificate.is_some());
        drop(stream);
        for _ in 0..50 {
            let _ = child.committed.send(empty_block(0));
            if child.committed.receiver_count() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the checkpoint stream outlived its client");
    }
}
