//! Value between subnets: deposits locked here for a child (`Fund`) and the queue of top-down
//! messages each child imports with proofs against this subnet's signed state
//! ([`ipsat_core::crossnet`] defines the queue's keys and encoding); the releases a child's
//! accepted checkpoint carries, paid here from the child's lock; and cross-net calls between
//! any two subnets of the tree (`CrossCall`).
//!
//! A cross-net message travels up to the lowest common ancestor of its origin and destination
//! and down: up in the checkpoints of each subnet on the way, down in the top-down queues. Its
//! value moves with it: taken from the sender at the origin, from a child's lock where it
//! comes up, into a child's lock where it goes down, and credited at the destination. A call
//! that fails there (or cannot go on somewhere on the way) comes back as a receipt carrying
//! its value, which the origin refunds to the sender; a delivered call's receipt carries
//! nothing. Each hop happens once: top-down messages are imported in nonce order and a
//! checkpoint is accepted once.
//!
//! Keys: `x/locked/<child>` -> u128, the value locked here for the child, which backs the
//! child's whole supply; `x/tdn/<child>` -> u64, the nonce of the child's next top-down
//! message; `x/td/<child>/<nonce>` -> the message; `x/brn/<child>` -> u64, the nonce of the
//! child's next release to pay; `x/outn` -> u64, the nonce of the next message this subnet
//! originates; `x/out/<nonce>` -> [`Outgoing`], each with its status; `x/upn` -> u64, how many
//! messages went into this subnet's upward queue; `x/up/<index>` -> the message;
//! `x/seen/<from subnet>/<nonce>` -> what this subnet did with a message that reached it
//! ([`Passage`]), so a message can be followed along its path.

use borsh::{BorshDeserialize, BorshSerialize};
use ipsat_checkpoint::cross_msgs::Release;
use ipsat_core::action::{CrossCall, Fund};
use ipsat_core::crossnet::{
    next_hop, top_down_key, CrossKind, CrossMessage, Hop, Target, TopDownMessage,
};
use ipsat_core::{Address, Amount, SubnetId, TxError};

use crate::component::{ActionHandler, Component, ExecError, TxContext};
use crate::components::registry::{self, ChildStatus};
use crate::components::{accounts, keyspaces, parent};
use crate::delta::{StateDelta, StateError, StateRead};
use crate::Event;

/// The cross-net component (parent side).
pub struct Crossnet;

impl Component for Crossnet {
    fn name(&self) -> &'static str {
        "crossnet"
    }
}

fn locked_key(child: &str) -> Vec<u8> {
    format!("x/locked/{child}").into_bytes()
}

fn next_nonce_key(child: &str) -> Vec<u8> {
    format!("x/tdn/{child}").into_bytes()
}

fn next_release_key(child: &str) -> Vec<u8> {
    format!("x/brn/{child}").into_bytes()
}

/// The nonce of `child`'s next release to pay (= how many were paid).
pub fn next_release_to_pay(state: &impl StateRead, child: &str) -> Result<u64, StateError> {
    Ok(state.get(&next_release_key(child))?.unwrap_or_default())
}

/// Pays `releases`, carried by an accepted checkpoint of `child`, from the child's lock: they
/// must continue the child's nonces, and together not exceed what is locked for it (a child
/// can never take out more than was put in, whatever its validators sign).
pub fn pay_releases(
    state: &mut StateDelta<'_>,
    child: &str,
    releases: &[Release],
) -> Result<Vec<Event>, ExecError> {
    let mut next = next_release_to_pay(state, child)?;
    let mut locked = locked(state, child)?;
    let mut events = Vec::with_capacity(releases.len());
    for release in releases {
        if release.nonce != next {
            return Err(TxError::CheckpointMismatch(format!(
                "its first release has nonce {}, the next to pay is {next}",
                release.nonce
            ))
            .into());
        }
        let amount = Amount::from_atto(release.amount);
        locked = locked.checked_sub(amount).ok_or_else(|| {
            TxError::CheckpointMismatch(format!(
                "its releases exceed the {locked} locked for {child}"
            ))
        })?;
        let recipient = Address(release.recipient);
        accounts::credit(state, recipient, amount)?;
        events.push(Event {
            kind: "release_paid",
            attributes: vec![
                ("subnet", child.to_owned()),
                ("nonce", release.nonce.to_string()),
                ("recipient", recipient.to_string()),
                ("amount", amount.to_string()),
            ],
        });
        next += 1;
    }
    state.put(locked_key(child), &locked.atto());
    state.put(next_release_key(child), &next);
    Ok(events)
}

/// The value locked here for `child`: what the child may ever have minted from this subnet.
pub fn locked(state: &impl StateRead, child: &str) -> Result<Amount, StateError> {
    Ok(Amount::from_atto(
        state.get::<u128>(&locked_key(child))?.unwrap_or_default(),
    ))
}

/// The nonce `child`'s next top-down message will get (= how many were queued).
pub fn next_top_down_nonce(state: &impl StateRead, child: &str) -> Result<u64, StateError> {
    Ok(state.get(&next_nonce_key(child))?.unwrap_or_default())
}

/// The top-down message `nonce` queued for `child`.
pub fn top_down_message(
    state: &impl StateRead,
    child: &str,
    nonce: u64,
) -> Result<Option<TopDownMessage>, StateError> {
    state.get(&top_down_key(child, nonce))
}

/// Appends `message` to `child`'s top-down queue; its nonce.
pub(crate) fn enqueue(
    state: &mut StateDelta<'_>,
    child: &str,
    message: &TopDownMessage,
) -> Result<u64, StateError> {
    let nonce = next_top_down_nonce(state, child)?;
    state.put(top_down_key(child, nonce), message);
    state.put(next_nonce_key(child), &(nonce + 1));
    Ok(nonce)
}

impl ActionHandler for Fund {
    fn execute(&self, state: &mut StateDelta<'_>, tx: &TxContext) -> Result<Vec<Event>, ExecError> {
        let record = registry::child(state, &self.subnet)?
            .ok_or_else(|| TxError::SubnetNotFound(self.subnet.clone()))?;
        if record.status != ChildStatus::Active {
            return Err(TxError::WrongSubnetStatus {
                name: self.subnet.clone(),
                status: record.status.as_str(),
                why: "only an active subnet takes deposits",
            }
            .into());
        }
        accounts::debit(state, tx.sender, self.amount)?;
        let locked = locked(state, &self.subnet)?
            .checked_add(self.amount)
            .ok_or_else(|| TxError::InvalidAmount("locked value overflow".into()))?;
        state.put(locked_key(&self.subnet), &locked.atto());
        let message = TopDownMessage::Deposit {
            recipient: *self.recipient.as_bytes(),
            amount: self.amount.atto(),
        };
        let nonce = enqueue(state, &self.subnet, &message)?;
        Ok(vec![Event {
            kind: "fund",
            attributes: vec![
                ("subnet", self.subnet.clone()),
                ("from", tx.sender.to_string()),
                ("recipient", self.recipient.to_string()),
                ("amount", self.amount.to_string()),
                ("nonce", nonce.to_string()),
            ],
        }])
    }
}

const NEXT_OUTGOING_KEY: &[u8] = b"x/outn";
const UP_COUNT_KEY: &[u8] = b"x/upn";

fn outgoing_key(nonce: u64) -> Vec<u8> {
    format!("x/out/{nonce:020}").into_bytes()
}

fn up_key(index: u64) -> Vec<u8> {
    format!("x/up/{index:020}").into_bytes()
}

fn seen_key(from_subnet: &str, nonce: u64) -> Vec<u8> {
    format!("x/seen/{from_subnet}/{nonce:020}").into_bytes()
}

/// What a subnet did with a message that reached it from another subnet.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Passage {
    /// Sent on to the parent.
    ForwardedUp,
    /// Sent on to this child.
    ForwardedDown(String),
    /// A call delivered here.
    Delivered,
    /// A call that failed here (or could not go on) with this code, its value sent back.
    Failed(u32),
    /// A receipt applied to the call it answers.
    ReceiptApplied,
    /// A receipt that could not go on, with this code; its value stayed here.
    Undeliverable(u32),
}

/// What this subnet did with message `nonce` of `from_subnet`, if it reached here.
pub fn passage(
    state: &impl StateRead,
    from_subnet: &str,
    nonce: u64,
) -> Result<Option<Passage>, StateError> {
    state.get(&seen_key(from_subnet, nonce))
}

fn note(state: &mut StateDelta<'_>, message: &CrossMessage, passage: &Passage) {
    state.put(seen_key(&message.from_subnet, message.nonce), passage);
}

/// Where a message this subnet originated stands.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum MessageStatus {
    /// On its way (a call waiting for its receipt, or a receipt sent).
    Sent,
    /// The call was delivered at its destination.
    Delivered,
    /// The call failed with this result code; its value was refunded.
    Failed(u32),
}

/// A message this subnet originated, with its status.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Outgoing {
    /// The message as it left.
    pub message: CrossMessage,
    /// Where it stands.
    pub status: MessageStatus,
}

/// Message `nonce` this subnet originated.
pub fn outgoing(state: &impl StateRead, nonce: u64) -> Result<Option<Outgoing>, StateError> {
    state.get(&outgoing_key(nonce))
}

/// How many messages went into this subnet's upward queue.
pub fn up_count(state: &impl StateRead) -> Result<u64, StateError> {
    Ok(state.get(UP_COUNT_KEY)?.unwrap_or_default())
}

/// Message `index` of this subnet's upward queue.
pub fn up_message(state: &impl StateRead, index: u64) -> Result<Option<CrossMessage>, StateError> {
    state.get(&up_key(index))
}

fn event(kind: &'static str, message: &CrossMessage) -> Event {
    Event {
        kind,
        attributes: vec![
            ("from_subnet", message.from_subnet.clone()),
            ("nonce", message.nonce.to_string()),
            ("to_subnet", message.to_subnet.clone()),
            ("amount", Amount::from_atto(message.amount).to_string()),
        ],
    }
}

/// Numbers and records a message this subnet originates.
fn originate(
    state: &mut StateDelta<'_>,
    build: impl FnOnce(u64) -> CrossMessage,
) -> Result<CrossMessage, StateError> {
    let nonce = state.get::<u64>(NEXT_OUTGOING_KEY)?.unwrap_or_default();
    let message = build(nonce);
    state.put(NEXT_OUTGOING_KEY.to_vec(), &(nonce + 1));
    state.put(
        outgoing_key(nonce),
        &Outgoing {
            message: message.clone(),
            status: MessageStatus::Sent,
        },
    );
    Ok(message)
}

fn destination(message: &CrossMessage) -> Result<SubnetId, TxError> {
    message
        .to_subnet
        .parse()
        .map_err(|_| TxError::Unreachable(message.to_subnet.clone()))
}

/// Sends `message`, whose value this subnet holds, one hop on from `here`: into a child's
/// lock and top-down queue, or into this subnet's upward queue (out of its supply).
fn send_on(
    state: &mut StateDelta<'_>,
    here: &SubnetId,
    message: CrossMessage,
) -> Result<Event, ExecError> {
    let amount = Amount::from_atto(message.amount);
    match next_hop(here, &destination(&message)?) {
        Hop::Here => Err(TxError::InvalidCrossCall("the destination is this subnet".into()).into()),
        Hop::Down(child) => {
            let active = registry::child(state, &child)?
                .is_some_and(|record| record.status == ChildStatus::Active);
            if !active {
                return Err(TxError::Unreachable(message.to_subnet.clone()).into());
            }
            let locked = locked(state, &child)?
                .checked_add(amount)
                .ok_or_else(|| TxError::InvalidAmount("locked value overflow".into()))?;
            state.put(locked_key(&child), &locked.atto());
            let event = event("cross_sent_down", &message);
            enqueue(state, &child, &TopDownMessage::Cross(message))?;
            Ok(event)
        }
        Hop::Up => {
            if parent::client(state)?.is_none() {
                return Err(TxError::Unreachable(message.to_subnet.clone()).into());
            }
            parent::send_up(state, amount)?;
            let index = up_count(state)?;
            let event = event("cross_sent_up", &message);
            state.put(up_key(index), &message);
            state.put(UP_COUNT_KEY.to_vec(), &(index + 1));
            Ok(event)
        }
    }
}

impl ActionHandler for CrossCall {
    fn execute(&self, state: &mut StateDelta<'_>, tx: &TxContext) -> Result<Vec<Event>, ExecError> {
        if self.to_subnet == *tx.subnet {
            return Err(TxError::InvalidCrossCall("the destination is this subnet".into()).into());
        }
        accounts::debit(state, tx.sender, self.amount)?;
        let message = originate(state, |nonce| CrossMessage {
            from_subnet: tx.subnet.to_string(),
            from: *tx.sender.as_bytes(),
            nonce,
            to_subnet: self.to_subnet.to_string(),
            to: self.to.clone(),
            amount: self.amount.atto(),
            kind: CrossKind::Call {
                payload: self.payload.clone(),
            },
        })?;
        Ok(vec![send_on(state, tx.subnet, message)?])
    }
}

/// Takes in `message`, which arrived here from the parent or a child with its value already
/// counted into this subnet: delivers it if it is for this subnet, else sends it on. A call
/// that cannot go on bounces back as a failed receipt; nothing here refuses the block or the
/// checkpoint that carried it.
pub fn receive(
    state: &mut StateDelta<'_>,
    here: &SubnetId,
    message: CrossMessage,
) -> Result<Vec<Event>, ExecError> {
    let arrived = destination(&message).map(|to| next_hop(here, &to) == Hop::Here);
    if arrived == Ok(true) {
        return deliver(state, here, message);
    }
    let mut fork = state.fork();
    let hop = destination(&message).map(|to| next_hop(here, &to));
    match send_on(&mut fork, here, message.clone()) {
        Ok(event) => {
            let fork = fork.into_changes();
            state.apply(fork);
            let passage = match hop {
                Ok(Hop::Down(child)) => Passage::ForwardedDown(child),
                _ => Passage::ForwardedUp,
            };
            note(state, &message, &passage);
            Ok(vec![event])
        }
        Err(ExecError::Tx(e)) => bounce(state, here, &message, e.code()),
        Err(e) => Err(e),
    }
}

/// Runs `message` at its destination, this subnet.
fn deliver(
    state: &mut StateDelta<'_>,
    here: &SubnetId,
    message: CrossMessage,
) -> Result<Vec<Event>, ExecError> {
    match &message.kind {
        CrossKind::Call { payload } => {
            let mut fork = state.fork();
            match execute_call(&mut fork, &message, payload) {
                Ok(mut events) => {
                    let fork = fork.into_changes();
                    state.apply(fork);
                    note(state, &message, &Passage::Delivered);
                    events.extend(reply(state, here, &message, 0, 0)?);
                    Ok(events)
                }
                Err(ExecError::Tx(e)) => bounce(state, here, &message, e.code()),
                Err(e) => Err(e),
            }
        }
        CrossKind::Receipt { call_nonce, code } => {
            let Some(mut record) = outgoing(state, *call_nonce)? else {
                return Err(StateError::Corrupt {
                    key: format!("outgoing {call_nonce}"),
                    detail: "a receipt for a call this subnet never sent".into(),
                }
                .into());
            };
            record.status = match code {
                0 => MessageStatus::Delivered,
                code => MessageStatus::Failed(*code),
            };
            state.put(outgoing_key(*call_nonce), &record);
            note(state, &message, &Passage::ReceiptApplied);
            if message.amount > 0 {
                let Target::Account(sender) = message.to else {
                    return Err(
                        TxError::InvalidCrossCall("a receipt goes to an account".into()).into(),
                    );
                };
                accounts::credit(state, Address(sender), Amount::from_atto(message.amount))?;
            }
            Ok(vec![Event {
                kind: "cross_receipt",
                attributes: vec![
                    ("call_nonce", call_nonce.to_string()),
                    ("code", code.to_string()),
                    ("refunded", Amount::from_atto(message.amount).to_string()),
                ],
            }])
        }
    }
}

/// Lands a call: credits the target account, or writes the payload into the target keyspace
/// (under its policy, as the caller) and credits its owner.
fn execute_call(
    state: &mut StateDelta<'_>,
    message: &CrossMessage,
    payload: &[u8],
) -> Result<Vec<Event>, ExecError> {
    let amount = Amount::from_atto(message.amount);
    let mut events = vec![event("cross_delivered", message)];
    match &message.to {
        Target::Account(address) => accounts::credit(state, Address(*address), amount)?,
        Target::Keyspace { name, key } => {
            let (owner, written) =
                keyspaces::put(state, Address(message.from), name, key, payload)?;
            accounts::credit(state, owner, amount)?;
            events.push(written);
        }
    }
    Ok(events)
}

/// Answers call `call` from `here` with a receipt of `code`, carrying `refund`.
fn reply(
    state: &mut StateDelta<'_>,
    here: &SubnetId,
    call: &CrossMessage,
    code: u32,
    refund: u128,
) -> Result<Vec<Event>, ExecError> {
    let receipt = originate(state, |nonce| CrossMessage {
        from_subnet: here.to_string(),
        from: [0; 20],
        nonce,
        to_subnet: call.from_subnet.clone(),
        to: Target::Account(call.from),
        amount: refund,
        kind: CrossKind::Receipt {
            call_nonce: call.nonce,
            code,
        },
    })?;
    let mut fork = state.fork();
    match send_on(&mut fork, here, receipt.clone()) {
        Ok(event) => {
            let fork = fork.into_changes();
            state.apply(fork);
            Ok(vec![event])
        }
        // Only a receipt whose origin is gone ends here: its value stays in this subnet,
        // said in the block's events.
        Err(ExecError::Tx(e)) => Ok(vec![undeliverable(&receipt, e.code())]),
        Err(e) => Err(e),
    }
}

fn undeliverable(message: &CrossMessage, code: u32) -> Event {
    Event {
        kind: "cross_undeliverable",
        attributes: vec![
            ("from_subnet", message.from_subnet.clone()),
            ("nonce", message.nonce.to_string()),
            ("to_subnet", message.to_subnet.clone()),
            ("amount", Amount::from_atto(message.amount).to_string()),
            ("code", code.to_string()),
        ],
    }
}

/// A call that failed here (`code`) goes back with its value; a receipt that cannot go on
/// is kept, said in the events.
fn bounce(
    state: &mut StateDelta<'_>,
    here: &SubnetId,
    message: &CrossMessage,
    code: u32,
) -> Result<Vec<Event>, ExecError> {
    match message.kind {
        CrossKind::Call { .. } => {
            note(state, message, &Passage::Failed(code));
            let mut events = vec![Event {
                kind: "cross_failed",
                attributes: vec![
                    ("from_subnet", message.from_subnet.clone()),
                    ("nonce", message.nonce.to_string()),
                    ("code", code.to_string()),
                ],
            }];
            events.extend(reply(state, here, message, code, message.amount)?);
            Ok(events)
        }
        CrossKind::Receipt { .. } => {
            note(state, message, &Passage::Undeliverable(code));
            Ok(vec![undeliverable(message, code)])
        }
    }
}

/// Takes in the cross-net messages carried by child `child`'s accepted checkpoint: each must
/// come from the child's subtree, and together they may not take more out of the child's lock
/// than is in it.
pub fn receive_from_child(
    state: &mut StateDelta<'_>,
    here: &SubnetId,
    child: &str,
    messages: &[CrossMessage],
) -> Result<Vec<Event>, ExecError> {
    let child_id = here
        .child(child)
        .map_err(|e| TxError::SubnetNotFound(e.to_string()))?;
    let mut events = Vec::new();
    for message in messages {
        let origin: Option<SubnetId> = message.from_subnet.parse().ok();
        if !origin.is_some_and(|o| matches!(next_hop(&child_id, &o), Hop::Here | Hop::Down(_))) {
            return Err(TxError::CheckpointMismatch(format!(
                "it carries a message from {}, outside {child_id}",
                message.from_subnet
            ))
            .into());
        }
        let amount = Amount::from_atto(message.amount);
        let left = locked(state, child)?.checked_sub(amount).ok_or_else(|| {
            TxError::CheckpointMismatch(format!(
                "its messages carry more than is locked for {child}"
            ))
        })?;
        state.put(locked_key(child), &left.atto());
        events.extend(receive(state, here, message.clone())?);
    }
    Ok(events)
}
