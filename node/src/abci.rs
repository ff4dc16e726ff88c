//! The ABCI 2.0 connection between CometBFT and the subnet state machine: translation only.
//!
//! `tendermint-abci` serves each of CometBFT's four connections (consensus, mempool, query,
//! snapshot) on its own thread and calls this synchronous application. Each call is turned
//! into the app's own types ([`BlockContext`], [`ExtendedCommit`]) and back; the app decides
//! everything and does its own locking, so CheckTx and queries do not wait for a block being
//! executed. Committed blocks are published on a broadcast channel for the gRPC API.

use std::sync::Arc;

use ipsat_core::system::is_system;
use ipsat_core::CODESPACE;
use ipsat_subnet::components::checkpoints::VoteError;
use ipsat_subnet::context::{ConsensusParamUpdates, ValidatorAddress, ValidatorUpdate};
use ipsat_subnet::{
    AppError, BlockContext, CommittedBlock, Event, ExtendedCommit, ExtendedVote, SubnetApp,
    TxResult,
};
use tendermint_abci::Application;
use tendermint_proto::google::protobuf::Timestamp;
use tendermint_proto::v0_38::abci::{
    self as abci, response_process_proposal::ProposalStatus,
    response_verify_vote_extension::VerifyStatus,
};
use tendermint_proto::v0_38::crypto::{public_key, PublicKey};
use tendermint_proto::v0_38::types::{AbciParams, BlockIdFlag, BlockParams, ConsensusParams};
use tokio::sync::broadcast;

use crate::metrics::Metrics;

/// The ABCI application: the shared state machine, the committed-block feed and metrics.
#[derive(Clone)]
pub struct AbciApp {
    app: Arc<SubnetApp>,
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

fn codespace(result: &TxResult) -> String {
    if result.code == 0 {
        String::new()
    } else {
        CODESPACE.to_owned()
    }
}

fn exec_result(result: &TxResult) -> abci::ExecTxResult {
    abci::ExecTxResult {
        code: result.code,
        log: result.log.clone(),
        events: abci_events(&result.events),
        codespace: codespace(result),
        ..Default::default()
    }
}

/// A CometBFT address field; anything but 20 bytes (which CometBFT never sends) reads as zero.
fn validator_address(bytes: &[u8]) -> ValidatorAddress {
    bytes.try_into().unwrap_or_default()
}

/// Block time in nanoseconds since the epoch; a missing or out-of-range time reads as 0, the
/// same on every validator because it comes from the block.
fn unix_nanos(time: Option<&Timestamp>) -> i64 {
    time.and_then(|t| {
        t.seconds
            .checked_mul(1_000_000_000)?
            .checked_add(i64::from(t.nanos))
    })
    .unwrap_or_default()
}

fn block_context(
    height: i64,
    time: Option<&Timestamp>,
    proposer: &[u8],
    hash: &[u8],
) -> BlockContext {
    BlockContext {
        height: u64::try_from(height).unwrap_or_default(),
        time_unix_nanos: unix_nanos(time),
        proposer: validator_address(proposer),
        block_hash: hash.to_vec(),
    }
}

fn extended_commit(info: Option<&abci::ExtendedCommitInfo>) -> ExtendedCommit {
    let Some(info) = info else {
        return ExtendedCommit::default();
    };
    ExtendedCommit {
        round: info.round,
        votes: info
            .votes
            .iter()
            .map(|vote| {
                let validator = vote.validator.as_ref();
                ExtendedVote {
                    validator: validator_address(
                        validator.map(|v| v.address.as_ref()).unwrap_or_default(),
                    ),
                    power: validator
                        .and_then(|v| u64::try_from(v.power).ok())
                        .unwrap_or_default(),
                    committed: vote.block_id_flag == BlockIdFlag::Commit as i32,
                    extension: vote.vote_extension.to_vec(),
                }
            })
            .collect(),
    }
}

fn validator_update(update: &ValidatorUpdate) -> abci::ValidatorUpdate {
    abci::ValidatorUpdate {
        pub_key: Some(PublicKey {
            sum: Some(public_key::Sum::Ed25519(update.ed25519_pub_key.to_vec())),
        }),
        power: i64::try_from(update.power).unwrap_or(i64::MAX),
    }
}

/// CometBFT replaces each parameter group whole, so a group is sent only when something in it
/// changes; the app charges no gas, so `max_gas` stays unlimited (-1).
fn consensus_params(updates: &ConsensusParamUpdates) -> Option<ConsensusParams> {
    if updates.is_empty() {
        return None;
    }
    let positive = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    Some(ConsensusParams {
        block: updates.block_max_bytes.map(|max_bytes| BlockParams {
            max_bytes: positive(max_bytes),
            max_gas: -1,
        }),
        abci: updates
            .vote_extensions_enable_height
            .map(|height| AbciParams {
                vote_extensions_enable_height: positive(height),
            }),
        ..Default::default()
    })
}

impl AbciApp {
    /// Serves `app` and publishes its committed blocks on `committed`.
    pub fn new(
        app: Arc<SubnetApp>,
        committed: broadcast::Sender<Arc<CommittedBlock>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            app,
            committed,
            metrics,
        }
    }
}

impl Application for AbciApp {
    fn info(&self, _request: abci::RequestInfo) -> abci::ResponseInfo {
        let (height, app_hash) = self
            .app
            .last_committed()
            .unwrap_or_else(|e| fatal("Info", e))
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
            .app
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
            .app
            .check_tx(&request.tx)
            .unwrap_or_else(|e| fatal("CheckTx", e));
        self.metrics.record_check_tx(result.code);
        abci::ResponseCheckTx {
            code: result.code,
            codespace: codespace(&result),
            log: result.log,
            gas_wanted: 1,
            ..Default::default()
        }
    }

    fn prepare_proposal(
        &self,
        request: abci::RequestPrepareProposal,
    ) -> abci::ResponsePrepareProposal {
        let block = block_context(
            request.height,
            request.time.as_ref(),
            &request.proposer_address,
            &[],
        );
        let last_commit = extended_commit(request.local_last_commit.as_ref());
        let max_bytes = usize::try_from(request.max_tx_bytes).unwrap_or(0);
        let txs = request.txs.into_iter().map(|tx| tx.to_vec()).collect();
        let kept = self
            .app
            .prepare_proposal(&block, &last_commit, txs, max_bytes)
            .unwrap_or_else(|e| fatal("PrepareProposal", e));
        if kept.first().is_some_and(|tx| is_system(tx)) {
            tracing::info!(
                height = request.height,
                "proposing with checkpoint certificates"
            );
        }
        abci::ResponsePrepareProposal {
            txs: kept.into_iter().map(Into::into).collect(),
        }
    }

    fn process_proposal(
        &self,
        request: abci::RequestProcessProposal,
    ) -> abci::ResponseProcessProposal {
        let block = block_context(
            request.height,
            request.time.as_ref(),
            &request.proposer_address,
            &request.hash,
        );
        let txs: Vec<Vec<u8>> = request.txs.iter().map(|tx| tx.to_vec()).collect();
        let accept = self.app.process_proposal(&block, &txs);
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

    fn extend_vote(&self, request: abci::RequestExtendVote) -> abci::ResponseExtendVote {
        let block = block_context(
            request.height,
            request.time.as_ref(),
            &request.proposer_address,
            &request.hash,
        );
        let extension = self
            .app
            .extend_vote(&block)
            .unwrap_or_else(|e| fatal("ExtendVote", e));
        if !extension.is_empty() {
            self.metrics.record_checkpoint_signed();
        }
        abci::ResponseExtendVote {
            vote_extension: extension.into(),
        }
    }

    fn verify_vote_extension(
        &self,
        request: abci::RequestVerifyVoteExtension,
    ) -> abci::ResponseVerifyVoteExtension {
        let validator = validator_address(&request.validator_address);
        let status = match self
            .app
            .verify_vote_extension(&validator, &request.vote_extension)
        {
            Ok(()) => VerifyStatus::Accept,
            Err(VoteError::State(e)) => fatal("VerifyVoteExtension", e.into()),
            Err(error) => {
                tracing::warn!(
                    height = request.height,
                    validator = %hex::encode(validator),
                    %error,
                    "refusing a vote extension"
                );
                VerifyStatus::Reject
            }
        };
        abci::ResponseVerifyVoteExtension {
            status: status as i32,
        }
    }

    fn finalize_block(&self, request: abci::RequestFinalizeBlock) -> abci::ResponseFinalizeBlock {
        let block = block_context(
            request.height,
            request.time.as_ref(),
            &request.proposer_address,
            &request.hash,
        );
        let txs: Vec<Vec<u8>> = request.txs.iter().map(|tx| tx.to_vec()).collect();
        let finalized = self
            .app
            .finalize_block(&block, &txs)
            .unwrap_or_else(|e| fatal("FinalizeBlock", e));
        abci::ResponseFinalizeBlock {
            events: abci_events(&finalized.effects.events),
            tx_results: finalized.tx_results.iter().map(exec_result).collect(),
            validator_updates: finalized
                .effects
                .validator_updates
                .iter()
                .map(validator_update)
                .collect(),
            consensus_param_updates: consensus_params(&finalized.effects.consensus_param_updates),
            app_hash: finalized.app_hash.to_vec().into(),
        }
    }

    fn commit(&self) -> abci::ResponseCommit {
        let block = self.app.commit().unwrap_or_else(|e| fatal("Commit", e));
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
        let committed = self
            .app
            .last_committed()
            .unwrap_or_else(|e| fatal("Query", e));
        match (request.path.as_str(), committed) {
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
                codespace: CODESPACE.to_owned(),
                ..Default::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_times_and_heights_come_from_the_request_and_never_panic() {
        let time = Timestamp {
            seconds: 1_700_000_000,
            nanos: 5,
        };
        assert_eq!(unix_nanos(Some(&time)), 1_700_000_000_000_000_005);
        let overflow = Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert_eq!(unix_nanos(Some(&overflow)), 0);
        assert_eq!(unix_nanos(None), 0);
        let block = block_context(-1, None, &[7; 19], b"h");
        assert_eq!((block.height, block.proposer), (0, [0; 20]));
    }

    #[test]
    fn extended_votes_keep_who_voted_with_what_power_and_extension() {
        let info = abci::ExtendedCommitInfo {
            round: 2,
            votes: vec![
                abci::ExtendedVoteInfo {
                    validator: Some(abci::Validator {
                        address: vec![1; 20].into(),
                        power: 10,
                    }),
                    vote_extension: vec![9, 9].into(),
                    extension_signature: Default::default(),
                    block_id_flag: BlockIdFlag::Commit as i32,
                },
                abci::ExtendedVoteInfo {
                    validator: Some(abci::Validator {
                        address: vec![2; 20].into(),
                        power: -3,
                    }),
                    vote_extension: Default::default(),
                    extension_signature: Default::default(),
                    block_id_flag: BlockIdFlag::Absent as i32,
                },
            ],
        };
        let commit = extended_commit(Some(&info));
        assert_eq!(commit.round, 2);
        assert_eq!(
            commit.votes,
            vec![
                ExtendedVote {
                    validator: [1; 20],
                    power: 10,
                    committed: true,
                    extension: vec![9, 9],
                },
                ExtendedVote {
                    validator: [2; 20],
                    power: 0,
                    committed: false,
                    extension: Vec::new(),
                },
            ]
        );
    }

    #[test]
    fn parameter_groups_are_sent_only_when_they_change() {
        assert_eq!(consensus_params(&ConsensusParamUpdates::default()), None);
        let params = consensus_params(&ConsensusParamUpdates {
            block_max_bytes: Some(1 << 20),
            vote_extensions_enable_height: None,
        })
        .unwrap();
        assert_eq!(
            params.block,
            Some(BlockParams {
                max_bytes: 1 << 20,
                max_gas: -1
            })
        );
        assert_eq!(params.abci, None);
        assert_eq!(params.validator, None);
    }
}
