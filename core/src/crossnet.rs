//! What moves between a subnet and its children, as both sides read it: the top-down queue a
//! parent keeps for each child, which the child imports with proofs against the parent's
//! signed state.
//!
//! Keys in the parent's state (each child's queue is its own key range, in nonce order):
//! `x/td/<child>/<nonce, 20 decimal digits>` -> a borsh-encoded [`TopDownMessage`].

use borsh::{BorshDeserialize, BorshSerialize};

/// Most releases one checkpoint carries, so a checkpoint with its releases always fits in one
/// system transaction (about 70 bytes each).
pub const MAX_RELEASES_PER_CHECKPOINT: u64 = 512;

/// A message the parent queued for a child, imported there in nonce order.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum TopDownMessage {
    /// Value locked in the parent for the child, minted in the child to `recipient`.
    Deposit {
        /// The child account credited.
        recipient: [u8; 20],
        /// In atto-RBTC.
        amount: u128,
    },
}

/// The parent's state key of top-down message `nonce` for the child `child`.
pub fn top_down_key(child: &str, nonce: u64) -> Vec<u8> {
    format!("x/td/{child}/{nonce:020}").into_bytes()
}

/// The child and nonce of a top-down key, if `key` is one.
pub fn parse_top_down_key(key: &[u8]) -> Option<(&str, u64)> {
    let rest = std::str::from_utf8(key).ok()?.strip_prefix("x/td/")?;
    let (child, nonce) = rest.rsplit_once('/')?;
    if nonce.len() != 20 || !nonce.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((child, nonce.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sort_by_nonce() {
        let key = top_down_key("alpha", 42);
        assert_eq!(key, b"x/td/alpha/00000000000000000042");
        assert_eq!(parse_top_down_key(&key), Some(("alpha", 42)));
        assert!(top_down_key("alpha", 9) < top_down_key("alpha", 10));
        for bad in [
            &b"x/td/alpha/42"[..],
            b"x/td/alpha/0000000000000000004x",
            b"a/td/alpha/00000000000000000042",
            b"x/td/00000000000000000042",
        ] {
            assert_eq!(parse_top_down_key(bad), None, "{bad:?}");
        }
    }
}
