//! The ABCI 2.0 connection between CometBFT and the subnet state machine.
//!
//! `tendermint-abci` serves each of CometBFT's four connections on its own thread and calls
//! this synchronous application, which fits a state machine that is synchronous by design.
//! All four share one [`SubnetApp`] behind a mutex; committed blocks are published on a
//! broadcast channel for the gRPC API.

use std::sync::{Arc, Mutex, MutexGuard};

use ipsat_subnet::{AppError, CommittedBlock, Event, SubnetApp, TxResult};
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci::{
    self as abci, response_process_proposal::ProposalStatus,
    response_verify_vote_extension::VerifyStatus,
};
use tokio::sync::broadcast;

use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AbciApp {
    app: Arc<Mutex<SubnetApp>>,
    committed: broadcast::Sender<Arc<CommittedBlock>>,
    metrics: Arc<Metrics>,
}

/// A failure of the node itself (storage, a corrupt record, a height CometBFT should never
/// send): continuing could fork this node from the others, so it stops, and CometBFT's
/// handshake replays from the last durable block when the operator restarts it.
fn fatal(context: &str, error: AppError) -> ! {
    tracing::error!(%error, "{context} failed; stopping the node to protect its state");
    std::process::exit(70)
}

fn abci_events(events: &[Event]) -> Vec<abci::Event> {
    events
        .iter()
        .map(|event| abci::Event {
            r#type: event.kind.to_owned(),
            attributes: event
                .attributes
                .iter()
                .map(|(key, value)| abci::EventAttribute {
                    key: (*key).to_owned(),
                    value: value.clone(),
                    index: true,
                })
                .collect(),
        })
        .collect()
}

fn exec_result(result: &TxResult) -> abci::ExecTxResult {
    abci::ExecTxResult {
        code: result.code,
        log: result.log.clone(),
        events: abci_events(&result.events),
        ..Default::default()
    }
}

impl AbciApp {
    pub fn new(
        app: SubnetApp,
        committed: broadcast::Sender<Arc<CommittedBlock>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            app: Arc::new(Mutex::new(app)),
            committed,
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, SubnetApp> {
        // A panic while holding the lock means the state machine's invariants are unknown.
        self.app
            .lock()
            .expect("subnet app mutex poisoned by a panic")
    }
}

impl Application for AbciApp {
    fn info(&self, _request: abci::RequestInfo) -> abci::ResponseInfo {
        let app = self.lock();
        let (height, app_hash) = app
            .last_committed()
            .map(|c| (c.height as i64, c.app_hash.to_vec()))
            .unwrap_or_default();
        abci::ResponseInfo {
            data: "ipsat".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            app_version: 1,
            last_block_height: height,
            last_block_app_hash: app_hash.into(),
        }
    }

    fn init_chain(&self, request: abci::RequestInitChain) -> abci::ResponseInitChain {
        let app_hash = self
            .lock()
            .init_chain(&request.app_state_bytes)
            .unwrap_or_else(|e| fatal("InitChain", e));
        tracing::info!(chain_id = %request.chain_id, app_hash = %hex::encode(app_hash), "genesis committed");
        abci::ResponseInitChain {
            app_hash: app_hash.to_vec().into(),
            ..Default::default()
        }
    }

    fn check_tx(&self, request: abci::RequestCheckTx) -> abci::ResponseCheckTx {
        let result = self
            .lock()
            .check_tx(&request.tx)
            .unwrap_or_else(|e| fatal("CheckTx", e));
        self.metrics.record_check_tx(result.code);
        abci::ResponseCheckTx {
            code: result.code,
            log: result.log,
            gas_wanted: 1,
            ..Default::default()
        }
    }

    fn prepare_proposal(
        &self,
        request: abci::RequestPrepareProposal,
    ) -> abci::ResponsePrepareProposal {
        let max_bytes = usize::try_from(request.max_tx_bytes).unwrap_or(0);
        let txs = request.txs.into_iter().map(|tx| tx.to_vec()).collect();
        let kept = self.lock().prepare_proposal(txs, max_bytes);
        abci::ResponsePrepareProposal {
            txs: kept.into_iter().map(Into::into).collect(),
        }
    }

    fn process_proposal(
        &self,
        request: abci::RequestProcessProposal,
    ) -> abci::ResponseProcessProposal {
        let txs: Vec<Vec<u8>> = request.txs.iter().map(|tx| tx.to_vec()).collect();
        let accept = self.lock().process_proposal(&txs);
        if !accept {
            tracing::warn!(
                height = request.height,
                "rejecting a proposal with invalid transactions"
            );
        }
        abci::ResponseProcessProposal {
            status: if accept {
                ProposalStatus::Accept
            } else {
                ProposalStatus::Reject
            } as i32,
        }
    }

    /// No extension yet: checkpoint signatures will travel here once subnets have children.
    fn extend_vote(&self, _request: abci::RequestExtendVote) -> abci::ResponseExtendVote {
        abci::ResponseExtendVote::default()
    }

    fn verify_vote_extension(
        &self,
        request: abci::RequestVerifyVoteExtension,
    ) -> abci::ResponseVerifyVoteExtension {
        let status = if request.vote_extension.is_empty() {
            VerifyStatus::Accept
        } else {
            VerifyStatus::Reject
        };
        abci::ResponseVerifyVoteExtension {
            status: status as i32,
        }
    }

    fn finalize_block(&self, request: abci::RequestFinalizeBlock) -> abci::ResponseFinalizeBlock {
        let txs: Vec<Vec<u8>> = request.txs.iter().map(|tx| tx.to_vec()).collect();
        let height = u64::try_from(request.height).unwrap_or_default();
        let finalized = self
            .lock()
            .finalize_block(height, &request.hash, &txs)
            .unwrap_or_else(|e| fatal("FinalizeBlock", e));
        abci::ResponseFinalizeBlock {
            tx_results: finalized.tx_results.iter().map(exec_result).collect(),
            app_hash: finalized.app_hash.to_vec().into(),
            ..Default::default()
        }
    }

    fn commit(&self) -> abci::ResponseCommit {
        let block = self.lock().commit().unwrap_or_else(|e| fatal("Commit", e));
        self.metrics.record_block(&block);
        tracing::debug!(
            height = block.height,
            txs = block.tx_results.len(),
            "committed"
        );
        // Nobody listening is fine: the channel only feeds gRPC streams and waiters.
        let _ = self.committed.send(Arc::new(block));
        abci::ResponseCommit { retain_height: 0 }
    }

    /// The gRPC API is the query interface; ABCI Query answers `/status` for tooling that
    /// only speaks CometBFT RPC (`abci_query`).
    fn query(&self, request: abci::RequestQuery) -> abci::ResponseQuery {
        let app = self.lock();
        match (request.path.as_str(), app.last_committed()) {
            ("/status", Some(committed)) => abci::ResponseQuery {
                code: 0,
                value: committed.app_hash.to_vec().into(),
                height: committed.height as i64,
                log: "value is the last committed app hash".into(),
                ..Default::default()
            },
            (path, _) => abci::ResponseQuery {
                code: 1,
                log: format!(
                    "unknown query path {path:?}: use the gRPC API (ipsat.v1.QueryService)"
                ),
                ..Default::default()
            },
        }
    }
}
