//! Value between this subnet and its children, parent side: deposits locked here for a child
//! (`Fund`) and the queue of top-down messages each child imports with proofs against this
//! subnet's signed state ([`ipsat_core::crossnet`] defines the queue's keys and encoding).
//!
//! Bottom-up, the releases a child's accepted checkpoint carries are paid here from the
//! child's lock, each once, in nonce order.
//!
//! Keys: `x/locked/<child>` -> u128, the value locked here for the child, which backs the
//! child's whole supply; `x/tdn/<child>` -> u64, the nonce of the child's next top-down
//! message; `x/td/<child>/<nonce>` -> the message; `x/brn/<child>` -> u64, the nonce of the
//! child's next release to pay.

use ipsat_checkpoint::cross_msgs::Release;
use ipsat_core::action::Fund;
use ipsat_core::crossnet::{top_down_key, TopDownMessage};
use ipsat_core::{Address, Amount, TxError};

use crate::component::{ActionHandler, Component, ExecError, TxContext};
use crate::components::accounts;
use crate::components::registry::{self, ChildStatus};
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
fn enqueue(
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
