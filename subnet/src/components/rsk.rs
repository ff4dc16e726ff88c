//! The RSK parent, level-1 side: top-down value from the gateway, attested by this subnet's
//! own validators.
//!
//! A subnet cannot light-client verify RSK, so its signing set attests what each validator
//! read at the confirmation depth ([`RskPoint`]: an RSK height that is a multiple of the
//! attestation step, its block hash, and the chained digest of the gateway's `Funded` events
//! for this subnet up to it), BLS-signed in vote extensions. The first proposer that sees one
//! point signed by more than two thirds of the power injects the aggregate with the deposits
//! between the last attested point and it; every validator checks the certificate against
//! the signing set in state and the deposits against the attested digest, then mints them.
//! What each node read is local data and enters only through ExtendVote (signed) and
//! PrepareProposal (the deposits, checked against what was signed).
//!
//! Keys: `k/point` -> the last attested [`RskPoint`] (all zero at genesis); `k/step` -> the
//! attestation step. Minted value is counted with the parent component's, so this subnet's
//! supply is minted minus released whichever its parent is.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use ipsat_checkpoint::{is_quorum, BlsSecretKey, Certificate, SubnetHash};
use ipsat_core::rsk::{RskAttestation, RskDeposit, RskPoint, RskUpdate, MAX_DEPOSITS_PER_UPDATE};
use ipsat_core::types::cometbft_address;
use ipsat_core::{Amount, SubnetId, SystemTx, TxError, VoteExtension};

use crate::component::{Component, ExecError};
use crate::components::checkpoints::{self, VoteError};
use crate::components::{accounts, parent, registry};
use crate::context::{ExtendedCommit, ValidatorAddress};
use crate::delta::{StateDelta, StateError, StateRead};
use crate::genesis::Genesis;
use crate::Event;

/// The RSK-parent component.
pub struct Rsk;

const POINT_KEY: &[u8] = b"k/point";
const STEP_KEY: &[u8] = b"k/step";

/// The last attested point, `None` unless the parent is the RSK gateway.
pub fn last_point(state: &impl StateRead) -> Result<Option<RskPoint>, StateError> {
    state.get(POINT_KEY)
}

/// The attestation step, `None` unless the parent is the RSK gateway.
pub fn step(state: &impl StateRead) -> Result<Option<u64>, StateError> {
    state.get(STEP_KEY)
}

/// What this node read from RSK: its latest final point and every deposit for this subnet
/// up to it, by nonce. Filled by the node's RSK follower, read by ExtendVote and
/// PrepareProposal only.
#[derive(Debug, Clone, Default)]
pub struct RskObservation {
    /// The latest point at the confirmation depth.
    pub point: Option<RskPoint>,
    /// Deposits by nonce, at least those up to `point`.
    pub deposits: BTreeMap<u64, RskDeposit>,
}

/// Shared between the node's RSK follower and the app.
#[derive(Debug, Clone, Default)]
pub struct RskInputs(Arc<Mutex<RskObservation>>);

impl RskInputs {
    /// Replaces what was read.
    pub fn observe(&self, observation: RskObservation) {
        *self.lock() = observation;
    }

    /// A copy of what was read.
    pub fn observation(&self) -> RskObservation {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RskObservation> {
        // The observation is replaced whole, so a panicked writer leaves a usable value.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// This validator's attestation of what it read, when that is newer than the last attested
/// point, on a step boundary, and it is in the signing set.
pub fn attest(
    state: &impl StateRead,
    subnet: &SubnetId,
    observed: &RskObservation,
    key: &BlsSecretKey,
) -> Result<Option<RskAttestation>, StateError> {
    let (Some(last), Some(step), Some(point)) = (last_point(state)?, step(state)?, observed.point)
    else {
        return Ok(None);
    };
    if point.height <= last.height || !point.height.is_multiple_of(step) {
        return Ok(None);
    }
    let public = key.public_key().to_uncompressed();
    if !checkpoints::signing_set(state)?
        .iter()
        .any(|m| m.bls_key == public)
    {
        return Ok(None);
    }
    let message = point.signing_bytes(&SubnetHash::of_path(subnet.as_str()));
    Ok(Some(RskAttestation {
        point,
        signature: key.sign(&message),
    }))
}

/// Checks `validator`'s attestation: by a member of the signing set, validly signed. Whether
/// the point is true no validator can check here; a quorum signing it is what makes it so.
/// Returns the signer's index in the set.
pub fn verify_attestation(
    state: &impl StateRead,
    subnet: &SubnetId,
    validator: &ValidatorAddress,
    attestation: &RskAttestation,
) -> Result<usize, VoteError> {
    if step(state)?.is_none() {
        return Err(VoteError::Malformed(
            "an RSK attestation in a subnet whose parent is not RSK".into(),
        ));
    }
    let set = checkpoints::signing_set(state)?;
    let index = set
        .iter()
        .position(|m| cometbft_address(&m.cometbft_key) == *validator)
        .ok_or(VoteError::NotASigner)?;
    let message = attestation
        .point
        .signing_bytes(&SubnetHash::of_path(subnet.as_str()));
    set[index]
        .bls()?
        .verify(&message, &attestation.signature)
        .map_err(|_| VoteError::BadSignature)?;
    Ok(index)
}

/// The proposer's update from the previous height's votes: the highest point newer than the
/// last attested one that more than two thirds of the power signed (each signer once, power
/// from state, every signature checked again), with the deposits it covers from what this
/// node read. `None` when no point has a quorum or this node lacks the deposits.
pub fn update_from_votes(
    state: &impl StateRead,
    subnet: &SubnetId,
    votes: &ExtendedCommit,
    observed: &RskObservation,
) -> Result<Option<SystemTx>, StateError> {
    let Some(last) = last_point(state)? else {
        return Ok(None);
    };
    let set = checkpoints::signing_set(state)?;
    let mut by_point: BTreeMap<RskPoint, (BTreeSet<usize>, Vec<_>)> = BTreeMap::new();
    for vote in votes.votes.iter().filter(|v| v.committed) {
        let Ok(VoteExtension {
            rsk: Some(attestation),
            ..
        }) = VoteExtension::decode(&vote.extension)
        else {
            continue;
        };
        if attestation.point.height <= last.height {
            continue;
        }
        match verify_attestation(state, subnet, &vote.validator, &attestation) {
            Ok(index) => {
                let (seen, signatures) = by_point.entry(attestation.point).or_default();
                if seen.insert(index) {
                    signatures.push((index, attestation.signature));
                }
            }
            Err(VoteError::State(e)) => return Err(e),
            Err(_) => {}
        }
    }
    let total: u128 = set.iter().map(|m| u128::from(m.power())).sum();
    let attested = by_point.into_iter().rev().find(|(_, (seen, _))| {
        let signed: u128 = seen.iter().map(|i| u128::from(set[*i].power())).sum();
        is_quorum(signed, total)
    });
    let Some((point, (_, mut signatures))) = attested else {
        return Ok(None);
    };
    let wanted = last.deposit_count..point.deposit_count;
    if wanted.end < wanted.start || wanted.end - wanted.start > MAX_DEPOSITS_PER_UPDATE as u64 {
        return Ok(None);
    }
    let deposits: Vec<RskDeposit> = wanted
        .clone()
        .filter_map(|nonce| observed.deposits.get(&nonce).copied())
        .collect();
    if deposits.len() as u64 != wanted.end - wanted.start {
        return Ok(None);
    }
    signatures.sort_by_key(|(index, _)| *index);
    let Some(certificate) = Certificate::aggregate(set.len(), &signatures) else {
        return Ok(None);
    };
    let update = RskUpdate {
        point,
        certificate,
        deposits,
    };
    // What this node read must chain to what the quorum signed, or it proposes nothing.
    if update
        .check_deposits(last.deposit_count, &last.deposits_digest)
        .is_err()
    {
        return Ok(None);
    }
    Ok(Some(SystemTx::RskUpdate(update)))
}

/// Verifies `update` against state (a newer point, a quorum certificate of the signing set,
/// deposits chaining from the last attested digest to the attested one), records the point
/// and mints the deposits.
pub fn apply_update(
    state: &mut StateDelta<'_>,
    subnet: &SubnetId,
    update: &RskUpdate,
) -> Result<Vec<Event>, ExecError> {
    let (Some(last), Some(step)) = (last_point(state)?, step(state)?) else {
        return Err(TxError::NoParent.into());
    };
    let point = &update.point;
    if point.height <= last.height || !point.height.is_multiple_of(step) {
        return Err(TxError::TopDownOutOfOrder {
            expected: last.height + 1,
            got: point.height,
        }
        .into());
    }
    let set = registry::signers(&checkpoints::signing_set(state)?)?;
    update
        .certificate
        .verify(
            &set,
            &point.signing_bytes(&SubnetHash::of_path(subnet.as_str())),
        )
        .map_err(|e| TxError::InvalidCertificate(e.to_string()))?;
    update.check_deposits(last.deposit_count, &last.deposits_digest)?;
    let mut events = Vec::with_capacity(update.deposits.len() + 1);
    for deposit in &update.deposits {
        accounts::credit(state, deposit.recipient, deposit.amount)?;
        parent::count_minted(state, deposit.amount)?;
        events.push(Event {
            kind: "rsk_deposit",
            attributes: vec![
                ("nonce", deposit.nonce.to_string()),
                ("recipient", deposit.recipient.to_string()),
                ("amount", deposit.amount.to_string()),
            ],
        });
    }
    state.put(POINT_KEY.to_vec(), point);
    let minted: Amount = update
        .deposits
        .iter()
        .try_fold(Amount::ZERO, |sum, d| sum.checked_add(d.amount))
        .ok_or_else(|| TxError::InvalidAmount("deposit overflow".into()))?;
    events.push(Event {
        kind: "rsk_attested",
        attributes: vec![
            ("rsk_height", point.height.to_string()),
            ("rsk_block_hash", hex::encode(point.block_hash)),
            ("deposit_count", point.deposit_count.to_string()),
            ("minted", minted.to_string()),
            (
                "signers",
                update.certificate.signer_indices().count().to_string(),
            ),
        ],
    });
    Ok(events)
}

impl Component for Rsk {
    fn name(&self) -> &'static str {
        "rsk"
    }

    fn init_chain(&self, state: &mut StateDelta<'_>, genesis: &Genesis) -> Result<(), StateError> {
        let Some(params) = genesis
            .checkpoints
            .as_ref()
            .filter(|c| c.verifier.is_some())
        else {
            return Ok(());
        };
        state.put(STEP_KEY.to_vec(), &params.rsk_attestation_step);
        state.put(
            POINT_KEY.to_vec(),
            &RskPoint {
                height: 0,
                block_hash: [0; 32],
                deposit_count: 0,
                deposits_digest: [0; 32],
            },
        );
        Ok(())
    }
}
