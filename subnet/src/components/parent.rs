//! The parent, child side: a light client of the parent subnet in this subnet's state, and the
//! import of the parent's top-down messages proven against it.
//!
//! No one is trusted. A proposer injects a `ParentUpdate` system transaction carrying newer
//! signed headers of the parent and proofs of the parent's top-down queue for this subnet;
//! every validator verifies each header from the one trusted before it with CometBFT's light
//! client rules (`now` is this block's time, never a clock), and each proof against the app
//! hash of the last verified header. Messages are imported strictly in nonce order, so each
//! is imported once.
//!
//! Bottom-up, `Release` burns value here and queues it for the parent; the next checkpoint
//! carries the queued releases under its `cross_msgs_root`, and the parent pays them when it
//! accepts that checkpoint.
//!
//! Keys: `t/client` -> [`ClientState`]; `t/next` -> u64, the nonce of the next top-down
//! message to import; `t/minted` -> u128, the value minted from the parent's deposits;
//! `t/released` -> u128, the value burned by releases (this subnet's supply is minted minus
//! released, and the parent's lock for it is minted minus the releases it has paid);
//! `t/rnext` -> u64, the nonce of the next release; `t/r/<nonce, 20 digits>` -> a release.
//!
//! The client starts from the parent header the genesis names by hash: the first update must
//! carry that header itself. If the last trusted header grows older than the trusting period
//! (shorter than the time a parent validator needs to leave with its collateral), a lying
//! former validator set could forge headers, so the client refuses every update from then on
//! (`ParentClientExpired`) until the subnet is re-anchored (docs/subnets.md).

use borsh::{BorshDeserialize, BorshSerialize};
use ipsat_checkpoint::cross_msgs;
use ipsat_core::action::Release;
use ipsat_core::crossnet::{
    parse_top_down_key, top_down_key, TopDownMessage, MAX_RELEASES_PER_CHECKPOINT,
};
use ipsat_core::light::{decode_validators, encode_validators, LightBlock, TrustedState};
use ipsat_core::system::ParentUpdate;
use ipsat_core::{verify_state_proof, Address, Amount, SubnetId, TxError};
use tendermint::{Hash, Time};

use crate::component::{ActionHandler, Component, ExecError, TxContext};
use crate::components::registry::Member;
use crate::components::{accounts, checkpoints, crossnet, rsk};
use crate::delta::{StateDelta, StateError, StateRead};
use crate::genesis::Genesis;
use crate::Event;

/// The parent-client component.
pub struct Parent;

const CLIENT_KEY: &[u8] = b"t/client";
const NEXT_KEY: &[u8] = b"t/next";
const MINTED_KEY: &[u8] = b"t/minted";
const RELEASED_KEY: &[u8] = b"t/released";
const NEXT_RELEASE_KEY: &[u8] = b"t/rnext";

fn release_key(nonce: u64) -> Vec<u8> {
    format!("t/r/{nonce:020}").into_bytes()
}

/// A queued release as stored (its nonce is its key's).
#[derive(BorshSerialize, BorshDeserialize)]
struct StoredRelease {
    recipient: [u8; 20],
    amount: u128,
}

/// The light client of the parent as this subnet's state holds it.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ClientState {
    /// The parent's CometBFT chain id.
    pub chain_id: String,
    /// The height of the last trusted parent header.
    pub height: u64,
    /// Its hash.
    pub hash: [u8; 32],
    /// Its time, in nanoseconds since the Unix epoch; 0 until the genesis header arrived.
    pub time_unix_nanos: i64,
    /// Its app hash: the parent's state after the height below it.
    pub app_hash: Vec<u8>,
    /// The parent validators of the next height (protobuf `ValidatorSet`); empty until the
    /// header the genesis trusts was supplied.
    pub next_validators: Vec<u8>,
    /// How long a trusted header may be used to verify the next one.
    pub trusting_period_secs: u64,
}

impl ClientState {
    fn trusted(&self) -> Result<TrustedState, TxError> {
        let corrupt = |what: &str| TxError::ParentHeader(format!("stored client: {what}"));
        Ok(TrustedState {
            chain_id: self.chain_id.parse().map_err(|_| corrupt("chain id"))?,
            height: self.height,
            time: time_of(self.time_unix_nanos).ok_or_else(|| corrupt("time"))?,
            hash: Hash::Sha256(self.hash),
            app_hash: self.app_hash.clone(),
            next_validators: decode_validators(&self.next_validators)
                .map_err(|e| corrupt(&e.to_string()))?,
        })
    }

    fn trust(&mut self, state: &TrustedState) -> Result<(), TxError> {
        self.height = state.height;
        self.hash = match state.hash {
            Hash::Sha256(bytes) => bytes,
            Hash::None => return Err(TxError::ParentHeader("header without a hash".into())),
        };
        self.time_unix_nanos = i64::try_from(state.time.unix_timestamp_nanos())
            .map_err(|_| TxError::ParentHeader("header time out of range".into()))?;
        self.app_hash = state.app_hash.clone();
        self.next_validators = encode_validators(&state.next_validators);
        Ok(())
    }

    /// Whether the trusted header is older than the trusting period at `now_unix_nanos`.
    pub fn expired(&self, now_unix_nanos: i64) -> bool {
        let period = i128::from(self.trusting_period_secs) * 1_000_000_000;
        i128::from(now_unix_nanos) > i128::from(self.time_unix_nanos) + period
    }
}

fn time_of(unix_nanos: i64) -> Option<Time> {
    Time::from_unix_timestamp(
        unix_nanos.div_euclid(1_000_000_000),
        u32::try_from(unix_nanos.rem_euclid(1_000_000_000)).ok()?,
    )
    .ok()
}

/// The parent client, `None` in a subnet without a parent.
pub fn client(state: &impl StateRead) -> Result<Option<ClientState>, StateError> {
    state.get(CLIENT_KEY)
}

/// The nonce of the next top-down message this subnet will import.
pub fn next_top_down_nonce(state: &impl StateRead) -> Result<u64, StateError> {
    Ok(state.get(NEXT_KEY)?.unwrap_or_default())
}

/// The value minted here from the parent's deposits.
pub fn minted(state: &impl StateRead) -> Result<Amount, StateError> {
    Ok(Amount::from_atto(
        state.get::<u128>(MINTED_KEY)?.unwrap_or_default(),
    ))
}

/// The value burned here by releases.
pub fn released(state: &impl StateRead) -> Result<Amount, StateError> {
    Ok(Amount::from_atto(
        state.get::<u128>(RELEASED_KEY)?.unwrap_or_default(),
    ))
}

/// The nonce the next release will get (= how many were made).
pub fn next_release_nonce(state: &impl StateRead) -> Result<u64, StateError> {
    Ok(state.get(NEXT_RELEASE_KEY)?.unwrap_or_default())
}

/// Release `nonce`, if it was made.
pub fn release(
    state: &impl StateRead,
    nonce: u64,
) -> Result<Option<cross_msgs::Release>, StateError> {
    Ok(state
        .get::<StoredRelease>(&release_key(nonce))?
        .map(|stored| cross_msgs::Release {
            recipient: stored.recipient,
            amount: stored.amount,
            nonce,
        }))
}

/// Counts `amount` as gone up to the parent (a release, or a cross-net message on its way up):
/// this subnet's supply shrinks by it until the parent takes it from the lock it holds.
pub fn send_up(state: &mut StateDelta<'_>, amount: Amount) -> Result<(), ExecError> {
    let released = released(state)?
        .checked_add(amount)
        .ok_or_else(|| TxError::InvalidAmount("released value overflow".into()))?;
    state.put(RELEASED_KEY.to_vec(), &released.atto());
    Ok(())
}

/// Counts `amount` as minted from the parent's deposits (an ipsat parent's or RSK's).
pub fn count_minted(state: &mut StateDelta<'_>, amount: Amount) -> Result<(), ExecError> {
    let minted = minted(state)?
        .checked_add(amount)
        .ok_or_else(|| TxError::InvalidAmount("minted value overflow".into()))?;
    state.put(MINTED_KEY.to_vec(), &minted.atto());
    Ok(())
}

impl ActionHandler for Release {
    fn execute(&self, state: &mut StateDelta<'_>, tx: &TxContext) -> Result<Vec<Event>, ExecError> {
        if client(state)?.is_none() && rsk::last_point(state)?.is_none() {
            return Err(TxError::NoParent.into());
        }
        let nonce = next_release_nonce(state)?;
        if nonce - checkpoints::first_uncovered_release(state)? >= MAX_RELEASES_PER_CHECKPOINT {
            return Err(TxError::ReleaseQueueFull {
                max: MAX_RELEASES_PER_CHECKPOINT,
            }
            .into());
        }
        accounts::debit(state, tx.sender, self.amount)?;
        send_up(state, self.amount)?;
        state.put(
            release_key(nonce),
            &StoredRelease {
                recipient: *self.recipient.as_bytes(),
                amount: self.amount.atto(),
            },
        );
        state.put(NEXT_RELEASE_KEY.to_vec(), &(nonce + 1));
        Ok(vec![Event {
            kind: "release",
            attributes: vec![
                ("from", tx.sender.to_string()),
                ("recipient", self.recipient.to_string()),
                ("amount", self.amount.to_string()),
                ("nonce", nonce.to_string()),
            ],
        }])
    }
}

impl Component for Parent {
    fn name(&self) -> &'static str {
        "parent"
    }

    fn init_chain(&self, state: &mut StateDelta<'_>, genesis: &Genesis) -> Result<(), StateError> {
        if let Some(anchor) = &genesis.parent {
            state.put(
                CLIENT_KEY.to_vec(),
                &ClientState {
                    chain_id: anchor.chain_id.clone(),
                    height: anchor.trusted_height,
                    hash: anchor.trusted_hash,
                    time_unix_nanos: 0,
                    app_hash: Vec::new(),
                    next_validators: Vec::new(),
                    trusting_period_secs: anchor.trusting_period_secs,
                },
            );
        }
        Ok(())
    }
}

/// Verifies `update`'s headers in order from the trusted one (the first ever must be the
/// header the genesis trusts), then imports its top-down messages, each the next by nonce and
/// proven against the last verified header. `now_unix_nanos` is the block's time.
pub fn apply_update(
    state: &mut StateDelta<'_>,
    subnet: &SubnetId,
    update: &ParentUpdate,
    now_unix_nanos: i64,
) -> Result<Vec<Event>, ExecError> {
    let mut client = client(state)?.ok_or(TxError::NoParent)?;
    let mut events = Vec::new();
    for header in &update.headers {
        let verified = verify_header(&client, header, now_unix_nanos)?;
        client.trust(&verified)?;
        events.push(Event {
            kind: "parent_header",
            attributes: vec![
                ("height", client.height.to_string()),
                ("hash", hex::encode(client.hash)),
            ],
        });
    }
    state.put(CLIENT_KEY.to_vec(), &client);
    let mut next = next_top_down_nonce(state)?;
    for proof in &update.messages {
        let message = proven_message(&client, subnet.name(), next, proof)?;
        let amount = Amount::from_atto(match &message {
            TopDownMessage::Deposit { amount, .. } => *amount,
            TopDownMessage::Cross(cross) => cross.amount,
            TopDownMessage::Membership { .. } => 0,
        });
        count_minted(state, amount)?;
        match message {
            TopDownMessage::Deposit { recipient, .. } => {
                let recipient = Address(recipient);
                accounts::credit(state, recipient, amount)?;
                events.push(Event {
                    kind: "top_down",
                    attributes: vec![
                        ("nonce", next.to_string()),
                        ("recipient", recipient.to_string()),
                        ("amount", amount.to_string()),
                    ],
                });
            }
            TopDownMessage::Cross(cross) => events.extend(crossnet::receive(state, subnet, cross)?),
            TopDownMessage::Membership {
                configuration_number,
                members,
            } => {
                let members = members
                    .into_iter()
                    .map(|m| Member {
                        address: m.address,
                        cometbft_key: m.cometbft_key,
                        bls_key: m.bls_key,
                        collateral: m.collateral,
                        joined_at: 0,
                        left_at: None,
                    })
                    .collect();
                checkpoints::announce_membership(state, configuration_number, members)?;
                events.push(Event {
                    kind: "membership_announced",
                    attributes: vec![("configuration_number", configuration_number.to_string())],
                });
            }
        }
        next += 1;
    }
    state.put(NEXT_KEY.to_vec(), &next);
    Ok(events)
}

fn verify_header(
    client: &ClientState,
    header: &LightBlock,
    now_unix_nanos: i64,
) -> Result<TrustedState, TxError> {
    let refused = |e: ipsat_core::light::LightError| TxError::ParentHeader(e.to_string());
    if client.next_validators.is_empty() {
        // Not started: only the header the genesis trusts, which brings its validator sets.
        if header.signed_header.header.height.value() != client.height {
            return Err(TxError::ParentHeader(format!(
                "the first parent header must be the trusted one at height {}",
                client.height
            )));
        }
        return TrustedState::from_trusted(header, &Hash::Sha256(client.hash)).map_err(refused);
    }
    if client.expired(now_unix_nanos) {
        return Err(TxError::ParentClientExpired {
            trusted_height: client.height,
        });
    }
    let now = time_of(now_unix_nanos)
        .ok_or_else(|| TxError::ParentHeader("block time out of range".into()))?;
    let period = std::time::Duration::from_secs(client.trusting_period_secs);
    client
        .trusted()?
        .verify(header, period, now)
        .map_err(refused)?;
    Ok(TrustedState::of(header))
}

/// The message `proof` proves at `nonce` of `child`'s queue, against the client's app hash.
fn proven_message(
    client: &ClientState,
    child: &str,
    nonce: u64,
    proof: &ipsat_proto::v1::StateProof,
) -> Result<TopDownMessage, TxError> {
    let not_proven = |why: String| TxError::TopDownProof(why);
    if proof.key != top_down_key(child, nonce) {
        return Err(match parse_top_down_key(&proof.key) {
            Some((name, got)) if name == child => TxError::TopDownOutOfOrder {
                expected: nonce,
                got,
            },
            _ => not_proven(format!(
                "key {:?} is not in this subnet's top-down queue",
                String::from_utf8_lossy(&proof.key)
            )),
        });
    }
    let app_hash = verify_state_proof(proof).map_err(|e| not_proven(e.to_string()))?;
    if client.app_hash != app_hash {
        return Err(not_proven(format!(
            "proven against app hash {}, the trusted parent header (height {}) has {}",
            hex::encode(app_hash),
            client.height,
            hex::encode(&client.app_hash)
        )));
    }
    let value = proof
        .value
        .as_deref()
        .ok_or_else(|| not_proven(format!("message {nonce} does not exist in the parent")))?;
    borsh::from_slice(value).map_err(|e| not_proven(format!("message {nonce}: {e}")))
}
