//! FAKE, a lying parent endpoint: a gRPC server that answers a child's parent follower with
//! what an honest parent node serves (read from one), altered. A real parent node cannot be
//! made to lie, so this is the only way to show a child accepting nothing false from one. It
//! serves the two reads the follower makes (`GetLightBlock`, `GetTopDownMessages`) and refuses
//! everything else.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use ipsat_proto::v1::{self as pb, query_service_client::QueryServiceClient};
use pb::query_service_server::{QueryService, QueryServiceServer};
use tokio::task::JoinHandle;
use tonic::codegen::BoxStream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// What the endpoint alters.
#[derive(Debug, Clone, Copy)]
pub enum Lie {
    /// One byte of every header's commit (a signature): the header itself is unchanged, so
    /// only verifying the commit catches it.
    ForgedCommit,
    /// The highest byte of every top-down message's value (a deposit's amount, little
    /// endian): only verifying the proof catches it.
    InflatedMessages,
    /// No top-down messages at all, as if none were queued: nothing to refuse, only a delay
    /// if the child asked nobody else.
    WithheldMessages,
}

/// A running lying endpoint; stopped when dropped.
pub struct LyingParentEndpoint {
    /// Its gRPC URL.
    pub url: String,
    task: JoinHandle<()>,
}

impl Drop for LyingParentEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LyingParentEndpoint {
    /// Serves on `port`, reading from the honest node at `honest` (connected lazily).
    pub async fn start(port: u16, honest: &str, lie: Lie) -> Result<Self> {
        let channel = Channel::from_shared(honest.to_owned())
            .context("honest endpoint")?
            .connect_lazy();
        let liar = Liar {
            honest: QueryServiceClient::new(channel),
            lie,
        };
        let address: SocketAddr = ([127, 0, 0, 1], port).into();
        let listener = tokio::net::TcpListener::bind(address).await?;
        let incoming = tonic::codegen::tokio_stream::wrappers::TcpListenerStream::new(listener);
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(QueryServiceServer::new(liar))
                .serve_with_incoming(incoming)
                .await;
        });
        Ok(Self {
            url: format!("http://127.0.0.1:{port}"),
            task,
        })
    }
}

struct Liar {
    honest: QueryServiceClient<Channel>,
    lie: Lie,
}

fn refused<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented(
        "a lying test endpoint serves only what a child's parent follower reads",
    ))
}

fn flip_last(bytes: &mut [u8]) {
    if let Some(last) = bytes.last_mut() {
        *last ^= 0x01;
    }
}

#[tonic::async_trait]
impl QueryService for Liar {
    async fn get_light_block(
        &self,
        request: Request<pb::GetLightBlockRequest>,
    ) -> Result<Response<pb::GetLightBlockResponse>, Status> {
        let mut response = self
            .honest
            .clone()
            .get_light_block(request.into_inner())
            .await?
            .into_inner();
        if let Lie::ForgedCommit = self.lie {
            flip_last(&mut response.signed_header);
        }
        Ok(Response::new(response))
    }

    async fn get_top_down_messages(
        &self,
        request: Request<pb::GetTopDownMessagesRequest>,
    ) -> Result<Response<pb::GetTopDownMessagesResponse>, Status> {
        let mut response = self
            .honest
            .clone()
            .get_top_down_messages(request.into_inner())
            .await?
            .into_inner();
        match self.lie {
            Lie::InflatedMessages => {
                for proof in &mut response.proofs {
                    if let Some(value) = proof.value.as_mut() {
                        flip_last(value);
                    }
                }
            }
            Lie::WithheldMessages => response.proofs.clear(),
            Lie::ForgedCommit => {}
        }
        Ok(Response::new(response))
    }

    async fn get_status(
        &self,
        _: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        refused()
    }

    async fn get_account(
        &self,
        _: Request<pb::GetAccountRequest>,
    ) -> Result<Response<pb::GetAccountResponse>, Status> {
        refused()
    }

    async fn get_keyspace(
        &self,
        _: Request<pb::GetKeyspaceRequest>,
    ) -> Result<Response<pb::GetKeyspaceResponse>, Status> {
        refused()
    }

    async fn get_key(
        &self,
        _: Request<pb::GetKeyRequest>,
    ) -> Result<Response<pb::GetKeyResponse>, Status> {
        refused()
    }

    async fn prove_state(
        &self,
        _: Request<pb::ProveStateRequest>,
    ) -> Result<Response<pb::ProveStateResponse>, Status> {
        refused()
    }

    async fn get_block(
        &self,
        _: Request<pb::GetBlockRequest>,
    ) -> Result<Response<pb::GetBlockResponse>, Status> {
        refused()
    }

    type StreamBlocksStream = BoxStream<pb::Block>;

    async fn stream_blocks(
        &self,
        _: Request<pb::StreamBlocksRequest>,
    ) -> Result<Response<Self::StreamBlocksStream>, Status> {
        refused()
    }

    type StreamEventsStream = BoxStream<pb::TxEvent>;

    async fn stream_events(
        &self,
        _: Request<pb::StreamEventsRequest>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        refused()
    }

    async fn get_subnet(
        &self,
        _: Request<pb::GetSubnetRequest>,
    ) -> Result<Response<pb::GetSubnetResponse>, Status> {
        refused()
    }

    async fn list_subnets(
        &self,
        _: Request<pb::ListSubnetsRequest>,
    ) -> Result<Response<pb::ListSubnetsResponse>, Status> {
        refused()
    }

    async fn get_checkpoint(
        &self,
        _: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        refused()
    }

    type StreamCheckpointsStream = BoxStream<pb::Checkpoint>;

    async fn stream_checkpoints(
        &self,
        _: Request<pb::StreamCheckpointsRequest>,
    ) -> Result<Response<Self::StreamCheckpointsStream>, Status> {
        refused()
    }

    async fn get_parent(
        &self,
        _: Request<pb::GetParentRequest>,
    ) -> Result<Response<pb::GetParentResponse>, Status> {
        refused()
    }

    async fn get_message(
        &self,
        _: Request<pb::GetMessageRequest>,
    ) -> Result<Response<pb::GetMessageResponse>, Status> {
        refused()
    }

    async fn get_passage(
        &self,
        _: Request<pb::GetPassageRequest>,
    ) -> Result<Response<pb::GetPassageResponse>, Status> {
        refused()
    }
}
