//! The node's refusals of the anchor in flight: classified, recovered from, and never answered
//! by sending the same transaction again with nothing changed (see [`super`]).

use std::time::{Duration, Instant};

use bitcoin::Txid;
use tracing::{debug, info, warn};

use super::{AnchorError, AnchorStatus, Anchorer};
use crate::state::TxVersion;

/// The first wait before a transaction refused for an unclassified reason is sent again; it
/// doubles with every refusal of the same transaction up to [`MAX_RETRY_BACKOFF`].
pub const MIN_RETRY_BACKOFF: Duration = Duration::from_secs(2);

/// The longest wait between two attempts at a refused transaction.
pub const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(600);

/// Why the node refused the anchor transaction, as [`Anchorer::poll`] classifies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RefusalCause {
    /// An input is spent (by an earlier anchor or anything else) or unknown to the node: the
    /// anchor is abandoned and the digest is anchored again from what is left.
    InputsGone,
    /// The fee is below what the node accepts: a replacement at a higher rate is needed.
    FeeTooLow,
    /// Anything else: retried once a new block arrived and the back-off has passed.
    Other,
}

impl RefusalCause {
    /// Every cause, for metrics.
    pub const ALL: [RefusalCause; 3] = [
        RefusalCause::InputsGone,
        RefusalCause::FeeTooLow,
        RefusalCause::Other,
    ];

    /// A stable name, for metrics labels and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalCause::InputsGone => "inputs_gone",
            RefusalCause::FeeTooLow => "fee_too_low",
            RefusalCause::Other => "other",
        }
    }

    /// The cause a refusal's message names, once the inputs were found on the chain. Nodes
    /// share no error codes for these: btcd says "fees which is under the required amount",
    /// "insufficient priority" or "rejected by the rate limiter due to low fees", Bitcoin Core
    /// "min relay fee not met" or "insufficient fee".
    pub fn of_message(message: &str) -> Self {
        let m = message.to_ascii_lowercase();
        let about_fee = m.contains("fee") || m.contains("priority");
        let too_low = [
            "insufficient",
            "under the required",
            "not met",
            "too low",
            "low fee",
        ]
        .iter()
        .any(|words| m.contains(words));
        if about_fee && too_low {
            RefusalCause::FeeTooLow
        } else {
            RefusalCause::Other
        }
    }
}

impl std::fmt::Display for RefusalCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The last refusal of the anchor's newest version, kept in memory: what the next poll does
/// depends on it, and a refusal repeated unchanged is not logged again.
#[derive(Clone, Debug)]
pub(super) struct Refusal {
    txid: Txid,
    cause: RefusalCause,
    message: String,
    /// The Bitcoin tip when it was refused.
    tip: u64,
    retry_at: Instant,
    backoff: Duration,
}

impl Anchorer {
    /// Hands the anchor in flight to the node, unless its newest version was refused and
    /// waiting is what that refusal calls for; on a refusal, recovers (module documentation).
    pub(super) async fn send(&mut self, tip: u64) -> Result<AnchorStatus, AnchorError> {
        let (id, newest) = {
            let fl = self.in_flight()?;
            let newest = fl.versions.last().ok_or(AnchorError::NothingInFlight)?;
            (fl.id, newest.clone())
        };
        if let Some(r) = self.refusal.as_ref().filter(|r| r.txid == newest.txid) {
            let wait = match r.cause {
                RefusalCause::FeeTooLow => true,
                RefusalCause::Other => r.tip == tip || Instant::now() < r.retry_at,
                RefusalCause::InputsGone => false,
            };
            if wait {
                return Ok(AnchorStatus::Refused {
                    id,
                    txid: r.txid,
                    cause: r.cause,
                    message: r.message.clone(),
                    fee_rate_sat_vb: newest.fee_rate_sat_vb,
                });
            }
        }
        match self.broadcast_versions().await? {
            Ok(txid) => {
                if self.refusal.take().is_some() {
                    info!(anchor = %id, %txid, "the node accepted the anchor transaction");
                }
                let attempts = self
                    .in_flight()?
                    .versions
                    .iter()
                    .find(|v| v.txid == txid)
                    .map_or(0, |v| v.broadcast_attempts);
                debug!(anchor = %id, %txid, attempts, "anchor pending");
                Ok(AnchorStatus::Pending {
                    id,
                    txid,
                    broadcast_attempts: attempts,
                })
            }
            Err(message) => self.refused(newest, message).await,
        }
    }

    /// Every version was refused (`message`): classify why and recover.
    async fn refused(
        &mut self,
        newest: TxVersion,
        message: String,
    ) -> Result<AnchorStatus, AnchorError> {
        // A version mined after the blocks were searched looks refused: search them again.
        let tip = self.rpc.get_block_count().await?;
        let mut fl = self.in_flight()?.clone();
        let changed = self.follow(&mut fl, tip).await?;
        if let Some(status) = self.settle(fl.clone(), tip, changed)? {
            return Ok(status);
        }
        let mut missing = Vec::new();
        for u in &fl.spends {
            if self.rpc.get_tx_out(&u.outpoint, true).await?.is_none() {
                missing.push(u.outpoint);
            }
        }
        let cause = if missing.is_empty() {
            RefusalCause::of_message(&message)
        } else {
            RefusalCause::InputsGone
        };
        *self.refusals.entry(cause).or_default() += 1;
        let previous = self
            .refusal
            .take()
            .filter(|r| r.txid == newest.txid && r.cause == cause);
        if previous.as_ref().is_some_and(|r| r.message == message) {
            debug!(anchor = %fl.id, txid = %newest.txid, %cause, "refused again");
        } else {
            warn!(anchor = %fl.id, txid = %newest.txid, %cause, %message,
                "the node refused the anchor transaction");
        }
        if cause == RefusalCause::InputsGone {
            return self.abandon_missing(fl, missing);
        }
        let backoff = previous.map_or(MIN_RETRY_BACKOFF, |r| {
            (r.backoff * 2).min(MAX_RETRY_BACKOFF)
        });
        self.refusal = Some(Refusal {
            txid: newest.txid,
            cause,
            message: message.clone(),
            tip,
            retry_at: Instant::now() + backoff,
            backoff,
        });
        Ok(AnchorStatus::Refused {
            id: fl.id,
            txid: newest.txid,
            cause,
            message,
            fee_rate_sat_vb: newest.fee_rate_sat_vb,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_about_the_fee_are_told_from_the_rest() {
        for fee in [
            // btcd v0.24
            "bitcoin rpc sendrawtransaction: the node returned error -26: rejected transaction \
             ab: transaction ab has 306 fees which is under the required amount of 765",
            "transaction ab has insufficient priority (1 <= 2)",
            "transaction ab has been rejected by the rate limiter due to low fees",
            "replacement transaction ab has an insufficient fee rate: needs more than 4",
            // Bitcoin Core
            "min relay fee not met, 153 < 765",
            "mempool min fee not met",
            "insufficient fee, rejecting replacement",
        ] {
            assert_eq!(
                RefusalCause::of_message(fee),
                RefusalCause::FeeTooLow,
                "{fee}"
            );
        }
        for other in [
            "orphan transaction ab references outputs of unknown or fully-spent transaction cd",
            "output cd:0 already spent by transaction ef in the memory pool",
            "non-final",
            "transaction ab is not standard: version 3",
        ] {
            assert_eq!(
                RefusalCause::of_message(other),
                RefusalCause::Other,
                "{other}"
            );
        }
    }
}
