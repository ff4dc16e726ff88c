//! This subnet's own checkpoints: the set that signs them, the height waiting for a
//! certificate, and the certificates the proposers inject.
//!
//! Keys: `c/params` -> [`Params`]; `c/set` -> the signing set (registry [`Member`]s, sorted by
//! address); `c/next` -> the height of the oldest checkpoint without a certificate;
//! `c/cert/<height be>` -> a certified checkpoint ([`StoredCheckpoint`]); `c/last` -> the
//! height of the latest certified one; `c/parent` -> the parent anchor from genesis;
//! `c/rfrom` -> the nonce of the first release no checkpoint carries yet; `c/rel/<height be>`
//! -> the range of release nonces the checkpoint at that height carries; `c/mfrom` and
//! `c/msg/<height be>` -> the same for the cross-net messages of the upward queue;
//! `c/pending` -> the latest membership announced by the parent and not yet declared;
//! `c/declared` -> the set the latest cut checkpoint declares as the next signers, with its
//! configuration number; `c/switch/<height be>` -> the set that signs from the certification
//! of the checkpoint at that height on.
//!
//! Validator-set changes: a join or leave in the parent reaches this subnet as a top-down
//! membership. The next checkpoint declares it (`configurationNumber`, `nextValidatorSetHash`)
//! while the current set still signs that checkpoint; the block that cuts it hands CometBFT
//! the power changes (effective two heights later); once it is certified, the new set signs
//! the checkpoints after it. The parent confirms the set when it accepts that checkpoint.
//!
//! The timeline of checkpoint `C` (a multiple of the period): FinalizeBlock(C) cuts it from
//! the block's roots and the app keeps it outside the state tree ([`CutCheckpoints`]), since
//! it commits to that very tree; from ExtendVote(C+1) on, every validator signs it in its
//! vote extension; the first proposer that sees signatures of more than two thirds of the
//! power injects their aggregate; when that block is final the checkpoint is certified here
//! and validators move on to the next one. Nothing here ever rejects a block for a missing
//! certificate: without one, checkpoints wait and blocks go on.

use std::collections::BTreeMap;

use borsh::{BorshDeserialize, BorshSerialize};
use ipsat_checkpoint::cross_msgs::{self, Release};
use ipsat_checkpoint::{
    is_quorum, BlsSecretKey, BlsSignature, Certificate, Checkpoint, CheckpointDigest,
    CheckpointDomain, CheckpointHash,
};
use ipsat_core::crossnet::CrossMessage;
use ipsat_core::rsk::GatewaySignature;
use ipsat_core::types::cometbft_address;
use ipsat_core::{Address, CheckpointVote, SubnetId, SystemTx, TxError, VoteExtension};

use crate::component::{Component, ExecError};
use crate::components::registry::{self, Member};
use crate::components::{crossnet, parent};
use crate::context::{
    BlockContext, BlockEffects, ExtendedCommit, ValidatorAddress, ValidatorUpdate,
};
use crate::delta::{StateDelta, StateError, StateRead};
use crate::genesis::{Genesis, ParentAnchor};
use crate::Event;

/// The checkpoints component.
pub struct Checkpoints;

const PARAMS_KEY: &[u8] = b"c/params";
const SET_KEY: &[u8] = b"c/set";
const NEXT_KEY: &[u8] = b"c/next";
const LAST_KEY: &[u8] = b"c/last";
const PARENT_KEY: &[u8] = b"c/parent";
const FIRST_UNCOVERED_RELEASE_KEY: &[u8] = b"c/rfrom";
const FIRST_UNCOVERED_MESSAGE_KEY: &[u8] = b"c/mfrom";
const PENDING_SET_KEY: &[u8] = b"c/pending";
const DECLARED_SET_KEY: &[u8] = b"c/declared";

fn switch_key(height: u64) -> Vec<u8> {
    [b"c/switch/".as_slice(), &height.to_be_bytes()].concat()
}

/// A validator set with the registry's configuration number for it.
type NumberedSet = (u64, Vec<Member>);

/// Records membership `set`, announced by the parent, to be declared by the next checkpoint;
/// an older announcement than one already known changes nothing.
pub fn announce_membership(
    state: &mut StateDelta<'_>,
    configuration_number: u64,
    members: Vec<Member>,
) -> Result<(), StateError> {
    let known = match state.get::<NumberedSet>(PENDING_SET_KEY)? {
        Some((pending, _)) => pending,
        None => declared_set(state)?.map_or(0, |(number, _)| number),
    };
    if configuration_number > known {
        state.put(PENDING_SET_KEY.to_vec(), &(configuration_number, members));
    }
    Ok(())
}

/// The set the latest cut checkpoint declares (the signing set and its number before any).
pub fn declared_set(state: &impl StateRead) -> Result<Option<NumberedSet>, StateError> {
    if let Some(declared) = state.get(DECLARED_SET_KEY)? {
        return Ok(Some(declared));
    }
    match params(state)? {
        Some(params) => Ok(Some((params.configuration_number, signing_set(state)?))),
        None => Ok(None),
    }
}

/// CometBFT power changes from `old` to `new`: new or changed members with their power,
/// members gone with power 0, in address order.
fn power_changes(old: &[Member], new: &[Member]) -> Vec<ValidatorUpdate> {
    let mut updates = Vec::new();
    for member in new {
        let before = old.iter().find(|m| m.cometbft_key == member.cometbft_key);
        if before.map(Member::power) != Some(member.power()) {
            updates.push(ValidatorUpdate {
                ed25519_pub_key: member.cometbft_key,
                power: member.power(),
            });
        }
    }
    for member in old {
        if !new.iter().any(|m| m.cometbft_key == member.cometbft_key) {
            updates.push(ValidatorUpdate {
                ed25519_pub_key: member.cometbft_key,
                power: 0,
            });
        }
    }
    updates
}

fn releases_key(height: u64) -> Vec<u8> {
    [b"c/rel/".as_slice(), &height.to_be_bytes()].concat()
}

fn messages_key(height: u64) -> Vec<u8> {
    [b"c/msg/".as_slice(), &height.to_be_bytes()].concat()
}

/// What `read` finds at each number of the range stored under `range_key` (nothing if none
/// is); `what` names an item in the error if one is missing.
fn carried<T>(
    state: &impl StateRead,
    range_key: &[u8],
    what: &str,
    read: impl Fn(u64) -> Result<Option<T>, StateError>,
) -> Result<Vec<T>, StateError> {
    let Some((from, to)) = state.get::<(u64, u64)>(range_key)? else {
        return Ok(Vec::new());
    };
    (from..to)
        .map(|n| {
            read(n)?.ok_or_else(|| StateError::Corrupt {
                key: format!("{what} {n}"),
                detail: format!("a checkpoint carries a {what} that does not exist"),
            })
        })
        .collect()
}

/// Stores under `range_key` the numbers from the first one no checkpoint carries yet (kept
/// under `first_key`) up to `end`, and moves that first one to `end`.
fn cover(
    state: &mut StateDelta<'_>,
    first_key: &[u8],
    range_key: Vec<u8>,
    end: u64,
) -> Result<(), StateError> {
    let from = state.get::<u64>(first_key)?.unwrap_or_default();
    state.put(range_key, &(from, end));
    state.put(first_key.to_vec(), &end);
    Ok(())
}

/// The cross-net messages the checkpoint at `height` carries, in queue order.
pub fn checkpoint_messages(
    state: &impl StateRead,
    height: u64,
) -> Result<Vec<CrossMessage>, StateError> {
    carried(state, &messages_key(height), "upward message", |index| {
        crossnet::up_message(state, index)
    })
}

/// The nonce of the first release no checkpoint carries yet.
pub fn first_uncovered_release(state: &impl StateRead) -> Result<u64, StateError> {
    Ok(state.get(FIRST_UNCOVERED_RELEASE_KEY)?.unwrap_or_default())
}

/// The releases the checkpoint at `height` carries, in nonce order (none if it cut none).
pub fn checkpoint_releases(
    state: &impl StateRead,
    height: u64,
) -> Result<Vec<Release>, StateError> {
    carried(state, &releases_key(height), "release", |nonce| {
        parent::release(state, nonce)
    })
}

/// The state key of the certified checkpoint at `height`.
pub fn certified_key(height: u64) -> Vec<u8> {
    [b"c/cert/".as_slice(), &height.to_be_bytes()].concat()
}

/// How this subnet checkpoints, fixed at genesis.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Params {
    /// Blocks between two checkpoints.
    pub period: u64,
    /// The configuration number of the signing set.
    pub configuration_number: u64,
    /// The RSK chain id of the tree.
    pub chain_id: u64,
    /// The verifying contract, zero under a subnet parent.
    pub verifier: [u8; 20],
}

impl Params {
    /// Whether the RSK gateway verifies these checkpoints (a level-1 subnet).
    pub fn is_under_gateway(&self) -> bool {
        self.verifier != [0; 20]
    }

    /// The domain checkpoint digests are bound to.
    pub fn domain(&self) -> CheckpointDomain {
        CheckpointDomain {
            chain_id: self.chain_id,
            verifier: self.verifier,
        }
    }
}

pub use ipsat_core::crossnet::StoredCheckpoint;

/// Checkpoints cut but kept outside the state tree, by height (the store implements it).
pub trait CutCheckpoints {
    /// The checkpoint cut at `height`, if one was.
    fn cut_checkpoint(&self, height: u64) -> Result<Option<Checkpoint>, StateError>;
}

/// The checkpoint parameters, `None` if this subnet cuts none.
pub fn params(state: &impl StateRead) -> Result<Option<Params>, StateError> {
    state.get(PARAMS_KEY)
}

/// The signing set, sorted by address.
pub fn signing_set(state: &impl StateRead) -> Result<Vec<Member>, StateError> {
    Ok(state.get(SET_KEY)?.unwrap_or_default())
}

/// The height of the oldest checkpoint still waiting for a certificate.
pub fn next_height(state: &impl StateRead) -> Result<Option<u64>, StateError> {
    state.get(NEXT_KEY)
}

/// The height of the latest certified checkpoint, 0 before the first.
pub fn last_certified(state: &impl StateRead) -> Result<u64, StateError> {
    Ok(state.get(LAST_KEY)?.unwrap_or(0))
}

/// The certified checkpoint at `height`.
pub fn certified(
    state: &impl StateRead,
    height: u64,
) -> Result<Option<StoredCheckpoint>, StateError> {
    state.get(&certified_key(height))
}

/// The parent anchor from genesis.
pub fn parent(state: &impl StateRead) -> Result<Option<ParentAnchor>, StateError> {
    let raw: Option<Vec<u8>> = state.get(PARENT_KEY)?;
    raw.map(|bytes| {
        serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
            key: "c/parent".into(),
            detail: e.to_string(),
        })
    })
    .transpose()
}

impl Component for Checkpoints {
    fn name(&self) -> &'static str {
        "checkpoints"
    }

    fn init_chain(&self, state: &mut StateDelta<'_>, genesis: &Genesis) -> Result<(), StateError> {
        if let Some(anchor) = &genesis.parent {
            let json = serde_json::to_vec(anchor).map_err(|e| StateError::Corrupt {
                key: "c/parent".into(),
                detail: e.to_string(),
            })?;
            state.put(PARENT_KEY.to_vec(), &json);
        }
        let Some(checkpoints) = &genesis.checkpoints else {
            return Ok(());
        };
        let mut set = Vec::with_capacity(genesis.validators.len());
        for validator in &genesis.validators {
            let key = ipsat_checkpoint::BlsPublicKey::from_compressed(&validator.bls_key).map_err(
                |e| StateError::Corrupt {
                    key: "genesis validator".into(),
                    detail: e.to_string(),
                },
            )?;
            set.push(Member {
                address: *validator.address.as_bytes(),
                cometbft_key: validator.cometbft_key,
                bls_key: key.to_uncompressed().to_vec(),
                collateral: validator.collateral.atto(),
                joined_at: checkpoints.configuration_number,
                left_at: None,
            });
        }
        let params = Params {
            period: checkpoints.period,
            configuration_number: checkpoints.configuration_number,
            chain_id: genesis.subnet_id.root_chain_id(),
            verifier: checkpoints
                .verifier
                .map(|a| *a.as_bytes())
                .unwrap_or([0; 20]),
        };
        state.put(PARAMS_KEY.to_vec(), &params);
        state.put(SET_KEY.to_vec(), &set);
        state.put(NEXT_KEY.to_vec(), &checkpoints.period);
        Ok(())
    }

    /// At a checkpoint height, hands every release and upward message made since the last one
    /// to this checkpoint, and lets it declare a membership the parent announced.
    fn end_block(
        &self,
        state: &mut StateDelta<'_>,
        block: &BlockContext,
        effects: &mut BlockEffects,
    ) -> Result<(), StateError> {
        let Some(params) = params(state)? else {
            return Ok(());
        };
        if block.height == 0 || !block.height.is_multiple_of(params.period) {
            return Ok(());
        }
        let releases_end = parent::next_release_nonce(state)?;
        cover(
            state,
            FIRST_UNCOVERED_RELEASE_KEY,
            releases_key(block.height),
            releases_end,
        )?;
        let messages_end = crossnet::up_count(state)?;
        cover(
            state,
            FIRST_UNCOVERED_MESSAGE_KEY,
            messages_key(block.height),
            messages_end,
        )?;
        if let Some((number, members)) = state.get::<NumberedSet>(PENDING_SET_KEY)? {
            let (_, old) = declared_set(state)?.unwrap_or_default();
            effects
                .validator_updates
                .extend(power_changes(&old, &members));
            effects.events.push(Event {
                kind: "validator_set_declared",
                attributes: vec![
                    ("checkpoint", block.height.to_string()),
                    ("configuration_number", number.to_string()),
                    ("validators", members.len().to_string()),
                ],
            });
            let declared = (number, members);
            state.put(switch_key(block.height), &declared);
            state.put(DECLARED_SET_KEY.to_vec(), &declared);
            state.delete(PENDING_SET_KEY.to_vec());
        }
        Ok(())
    }
}

/// A checkpoint due at a block, waiting for the block's hash and roots.
#[derive(Debug)]
pub struct DueCheckpoint(Checkpoint);

impl DueCheckpoint {
    /// The checkpoint, once the block's roots are known.
    pub fn seal(
        self,
        block_hash: [u8; 32],
        state_root: [u8; 32],
        history_root: [u8; 32],
    ) -> Checkpoint {
        Checkpoint {
            block_hash,
            state_root,
            history_root,
            ..self.0
        }
    }
}

/// The checkpoint block `height` must cut, if one is due: everything but the block's own
/// roots, which the app fills in once they are computed ([`DueCheckpoint::seal`]).
pub fn due(
    state: &impl StateRead,
    subnet: &SubnetId,
    height: u64,
    cuts: &impl CutCheckpoints,
) -> Result<Option<DueCheckpoint>, StateError> {
    let Some(params) = params(state)? else {
        return Ok(None);
    };
    if height == 0 || !height.is_multiple_of(params.period) {
        return Ok(None);
    }
    let previous = match height.checked_sub(params.period).filter(|h| *h > 0) {
        Some(earlier) => cuts
            .cut_checkpoint(earlier)?
            .map(|cp| cp.hash())
            .ok_or_else(|| StateError::Corrupt {
                key: format!("checkpoint {earlier}"),
                detail: "the previous checkpoint was never cut".into(),
            })?,
        None => CheckpointHash::default(),
    };
    let declared = declared_set(state)?.unwrap_or_default();
    let leaves: Vec<[u8; 32]> = checkpoint_releases(state, height)?
        .iter()
        .map(Release::leaf)
        .chain(
            checkpoint_messages(state, height)?
                .iter()
                .map(CrossMessage::leaf),
        )
        .collect();
    Ok(Some(DueCheckpoint(Checkpoint {
        subnet: subnet.hash(),
        height,
        block_hash: [0; 32],
        state_root: [0; 32],
        history_root: [0; 32],
        cross_msgs_root: cross_msgs::root(&leaves),
        cross_msgs_count: leaves.len() as u64,
        next_validator_set_hash: registry::set_hash(&declared.1),
        configuration_number: declared.0,
        previous,
    })))
}

/// The checkpoint validators sign now and its digest: the oldest one without a certificate,
/// once it has been cut.
pub fn pending(
    state: &impl StateRead,
    cuts: &impl CutCheckpoints,
) -> Result<Option<(Checkpoint, CheckpointDigest)>, StateError> {
    let (Some(params), Some(next)) = (params(state)?, next_height(state)?) else {
        return Ok(None);
    };
    Ok(cuts.cut_checkpoint(next)?.map(|cp| {
        let digest = cp.digest(&params.domain());
        (cp, digest)
    }))
}

/// This validator's vote on the pending checkpoint, or nothing when none is pending or it is
/// not in the signing set. Under the RSK gateway, `gateway_key` (its account key, the signer
/// the gateway knows) adds its gateway signature of the same digest.
pub fn sign_pending(
    state: &impl StateRead,
    cuts: &impl CutCheckpoints,
    key: &BlsSecretKey,
    gateway_key: Option<&secp256k1::SecretKey>,
) -> Result<Option<CheckpointVote>, StateError> {
    let Some((checkpoint, digest)) = pending(state, cuts)? else {
        return Ok(None);
    };
    let public = key.public_key().to_uncompressed();
    if !signing_set(state)?.iter().any(|m| m.bls_key == public) {
        return Ok(None);
    }
    let under_gateway = params(state)?.is_some_and(|p| p.is_under_gateway());
    Ok(Some(CheckpointVote {
        height: checkpoint.height,
        signature: key.sign(&digest.0),
        gateway_signature: gateway_key
            .filter(|_| under_gateway)
            .map(|k| GatewaySignature::sign(k, &digest.0)),
    }))
}

/// Why a vote extension is refused.
#[derive(Debug, thiserror::Error)]
pub enum VoteError {
    /// The bytes are not a vote.
    #[error("malformed vote extension: {0}")]
    Malformed(String),
    /// No checkpoint is pending, or another one is.
    #[error("the extension signs checkpoint {got}, the pending one is {pending:?}")]
    WrongHeight {
        /// The height the vote names.
        got: u64,
        /// The pending height, if any.
        pending: Option<u64>,
    },
    /// The validator is not in the signing set.
    #[error("the validator is not in the checkpoint signing set")]
    NotASigner,
    /// The signature does not verify under the validator's key.
    #[error("the checkpoint signature does not verify")]
    BadSignature,
    /// The node's own state could not be read.
    #[error(transparent)]
    State(#[from] StateError),
}

/// A vote that verified: the signer's index in the signing set and its signatures.
#[derive(Debug, Clone)]
pub struct VerifiedVote {
    /// Index in the signing set.
    pub index: usize,
    /// Its BLS signature of the checkpoint digest.
    pub signature: BlsSignature,
    /// Its gateway signature of the same digest, if it gave one.
    pub gateway_signature: Option<GatewaySignature>,
}

/// Checks `validator`'s vote: a valid signature, by that validator's registered key, of the
/// pending checkpoint, and a gateway signature only under the gateway, recovering to the
/// validator's account.
pub fn verify_vote(
    state: &impl StateRead,
    cuts: &impl CutCheckpoints,
    validator: &ValidatorAddress,
    vote: &CheckpointVote,
) -> Result<VerifiedVote, VoteError> {
    let pending = pending(state, cuts)?;
    let Some((_, digest)) = pending.filter(|(cp, _)| cp.height == vote.height) else {
        return Err(VoteError::WrongHeight {
            got: vote.height,
            pending: next_height(state)?,
        });
    };
    let set = signing_set(state)?;
    let index = set
        .iter()
        .position(|m| cometbft_address(&m.cometbft_key) == *validator)
        .ok_or(VoteError::NotASigner)?;
    set[index]
        .bls()?
        .verify(&digest.0, &vote.signature)
        .map_err(|_| VoteError::BadSignature)?;
    if let Some(gateway_signature) = &vote.gateway_signature {
        if !params(state)?.is_some_and(|p| p.is_under_gateway()) {
            return Err(VoteError::Malformed(
                "a gateway signature in a subnet whose parent is not the gateway".into(),
            ));
        }
        if gateway_signature.signer(&digest.0).ok() != Some(Address(set[index].address)) {
            return Err(VoteError::BadSignature);
        }
    }
    Ok(VerifiedVote {
        index,
        signature: vote.signature.clone(),
        gateway_signature: vote.gateway_signature,
    })
}

/// The proposer's certificate for the pending checkpoint from the previous height's votes:
/// every vote is verified again (late precommits reach the proposer unverified), each signer
/// counts once, power comes from state, and nothing is returned below quorum. Under the
/// gateway only votes with a gateway signature count, so a certified checkpoint always
/// carries a quorum the gateway accepts.
pub fn certificate_from_votes(
    state: &impl StateRead,
    cuts: &impl CutCheckpoints,
    votes: &ExtendedCommit,
) -> Result<Option<SystemTx>, StateError> {
    let (Some((checkpoint, _)), Some(params)) = (pending(state, cuts)?, params(state)?) else {
        return Ok(None);
    };
    let set = signing_set(state)?;
    let mut verified: BTreeMap<usize, VerifiedVote> = BTreeMap::new();
    for vote in votes.votes.iter().filter(|v| v.committed) {
        let Ok(VoteExtension {
            checkpoint: Some(checkpoint_vote),
            ..
        }) = VoteExtension::decode(&vote.extension)
        else {
            continue;
        };
        match verify_vote(state, cuts, &vote.validator, &checkpoint_vote) {
            Ok(v) if !params.is_under_gateway() || v.gateway_signature.is_some() => {
                verified.entry(v.index).or_insert(v);
            }
            Err(VoteError::State(e)) => return Err(e),
            _ => {}
        }
    }
    let signed: u128 = verified.keys().map(|i| u128::from(set[*i].power())).sum();
    let total: u128 = set.iter().map(|m| u128::from(m.power())).sum();
    if !is_quorum(signed, total) {
        return Ok(None);
    }
    let signatures: Vec<(usize, BlsSignature)> = verified
        .values()
        .map(|v| (v.index, v.signature.clone()))
        .collect();
    let gateway_signatures = verified
        .values()
        .filter_map(|v| Some((u32::try_from(v.index).ok()?, v.gateway_signature?)))
        .collect();
    Ok(
        Certificate::aggregate(set.len(), &signatures).map(|certificate| {
            SystemTx::OwnCertificate {
                height: checkpoint.height,
                certificate,
                gateway_signatures,
            }
        }),
    )
}

/// Checks a proposer's certificate of the pending checkpoint at `height` against state and,
/// under the gateway, that its gateway signatures are by the signers they name and reach a
/// quorum; elsewhere there must be none.
pub fn verify_own_certificate(
    state: &impl StateRead,
    cuts: &impl CutCheckpoints,
    height: u64,
    certificate: &Certificate,
    gateway_signatures: &[(u32, GatewaySignature)],
) -> Result<Checkpoint, ExecError> {
    let pending = pending(state, cuts)?;
    let Some((checkpoint, digest)) = pending.filter(|(cp, _)| cp.height == height) else {
        return Err(TxError::CheckpointOutOfOrder {
            expected: next_height(state)?.unwrap_or(0),
            got: height,
        }
        .into());
    };
    let members = signing_set(state)?;
    let set = registry::signers(&members)?;
    certificate
        .verify(&set, &digest.0)
        .map_err(|e| TxError::InvalidCertificate(e.to_string()))?;
    let under_gateway = params(state)?.is_some_and(|p| p.is_under_gateway());
    if !under_gateway {
        if gateway_signatures.is_empty() {
            return Ok(checkpoint);
        }
        return Err(TxError::InvalidCertificate(
            "gateway signatures in a subnet whose parent is not the gateway".into(),
        )
        .into());
    }
    let mut signed: u128 = 0;
    for (index, signature) in gateway_signatures {
        let member = usize::try_from(*index)
            .ok()
            .and_then(|i| members.get(i))
            .ok_or_else(|| TxError::InvalidCertificate(format!("no signer {index}")))?;
        if signature.signer(&digest.0).ok() != Some(Address(member.address)) {
            return Err(TxError::InvalidCertificate(format!(
                "gateway signature {index} is not by its signer"
            ))
            .into());
        }
        signed += u128::from(member.power());
    }
    let total: u128 = members.iter().map(|m| u128::from(m.power())).sum();
    if !is_quorum(signed, total) {
        return Err(TxError::InvalidCertificate(
            "gateway signatures below two thirds of the power".into(),
        )
        .into());
    }
    Ok(checkpoint)
}

/// Records the certificate of the pending checkpoint, verified again against `state`, and
/// moves signing on to the next checkpoint.
pub fn record_own_certificate(
    state: &mut StateDelta<'_>,
    cuts: &impl CutCheckpoints,
    height: u64,
    certificate: &Certificate,
    gateway_signatures: &[(u32, GatewaySignature)],
    block_height: u64,
) -> Result<Vec<Event>, ExecError> {
    let checkpoint = verify_own_certificate(state, cuts, height, certificate, gateway_signatures)?;
    let Some(params) = params(state)? else {
        return Err(TxError::CheckpointMismatch("this subnet cuts no checkpoints".into()).into());
    };
    state.put(
        certified_key(height),
        &StoredCheckpoint::new(&checkpoint, certificate, block_height)
            .with_gateway_signatures(gateway_signatures),
    );
    state.put(LAST_KEY.to_vec(), &height);
    state.put(NEXT_KEY.to_vec(), &(height + params.period));
    // The set this checkpoint declared signs from now on.
    if let Some((number, members)) = state.get::<NumberedSet>(&switch_key(height))? {
        state.put(SET_KEY.to_vec(), &members);
        state.put(
            PARAMS_KEY.to_vec(),
            &Params {
                configuration_number: number,
                ..params.clone()
            },
        );
        state.delete(switch_key(height));
    }
    Ok(vec![Event {
        kind: "checkpoint_certified",
        attributes: vec![
            ("height", height.to_string()),
            ("hash", hex::encode(checkpoint.hash().0)),
            ("signers", certificate.signer_indices().count().to_string()),
        ],
    }])
}
