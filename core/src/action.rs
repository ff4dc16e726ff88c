//! The messages a transaction may carry, after their stateless checks.
//!
//! A wire message (`ipsat.v1.TxBody.msg`) becomes an [`Action`] only if every check that needs
//! no state passes: addresses are 20 bytes, amounts are canonical decimals, names and limits
//! are in range. Those checks run once per transaction, in parallel and outside any lock, and
//! a transaction that fails them never reaches a block (ProcessProposal rejects a proposal
//! that carries one). The state machine's components then run the stateful checks and the
//! execution of each action.

use ipsat_proto::v1::{self as pb, tx_body::Msg};

use ipsat_checkpoint::{BlsPublicKey, BlsSignature};

use crate::crossnet::{Target, MAX_CROSS_PAYLOAD};
use crate::error::TxError;
use crate::types::{is_valid_name, Address, Amount, SubnetId};

/// Largest key length a keyspace creator may allow.
pub const MAX_KEY_LIMIT: u32 = 1024;
/// Largest value length a keyspace creator may allow.
pub const MAX_VALUE_LIMIT: u32 = 64 * 1024;
/// Most writers an allow-list keyspace may name.
pub const MAX_WRITERS: usize = 64;
/// Most validators a child subnet may have (its certificates' bitmaps and CometBFT's
/// validator set stay small).
pub const MAX_SUBNET_VALIDATORS: u32 = 100;
/// Atto-RBTC per unit of CometBFT voting power: a validator's power is its collateral in
/// gwei, so the whole RBTC supply stays far below CometBFT's total-power limit of 2^60.
pub const ATTO_PER_POWER: u128 = 1_000_000_000;

/// A message that passed its stateless checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Move value between two accounts of the same subnet.
    Transfer(Transfer),
    /// Create a keyspace owned by the signer.
    KeyspaceCreate(KeyspaceCreate),
    /// Write a key.
    KvPut(KvPut),
    /// Delete a key.
    KvDelete(KvDelete),
    /// Register a child subnet.
    SubnetCreate(SubnetCreate),
    /// Join a child subnet as a validator.
    SubnetJoin(SubnetJoin),
    /// Leave a child subnet.
    SubnetLeave(SubnetLeave),
    /// Retire a child subnet.
    SubnetKill(SubnetKill),
    /// Lock value for a child subnet, which mints it.
    Fund(Fund),
    /// Burn value here, paid in the parent once a checkpoint carries it there.
    Release(Release),
    /// Send value and a payload to another subnet of the tree.
    CrossCall(CrossCall),
}

impl TryFrom<Msg> for Action {
    type Error = TxError;

    fn try_from(msg: Msg) -> Result<Self, TxError> {
        Ok(match msg {
            Msg::Transfer(m) => Action::Transfer(m.try_into()?),
            Msg::KeyspaceCreate(m) => Action::KeyspaceCreate(m.try_into()?),
            Msg::KvPut(m) => Action::KvPut(m.try_into()?),
            Msg::KvDelete(m) => Action::KvDelete(m.try_into()?),
            Msg::SubnetCreate(m) => Action::SubnetCreate(m.try_into()?),
            Msg::SubnetJoin(m) => Action::SubnetJoin(m.try_into()?),
            Msg::SubnetLeave(m) => Action::SubnetLeave(SubnetLeave {
                subnet: child_name(m.subnet)?,
            }),
            Msg::SubnetKill(m) => Action::SubnetKill(SubnetKill {
                subnet: child_name(m.subnet)?,
            }),
            Msg::Fund(m) => Action::Fund(m.try_into()?),
            Msg::CrossCall(m) => Action::CrossCall(m.try_into()?),
            Msg::Release(m) => Action::Release(Release {
                recipient: address(&m.recipient, "recipient")?,
                amount: positive_amount(&m.amount, "a release")?,
            }),
        })
    }
}

fn address(bytes: &[u8], field: &str) -> Result<Address, TxError> {
    Address::from_slice(bytes).map_err(|_| TxError::Malformed(format!("{field} must be 20 bytes")))
}

/// A positive amount moved to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The recipient.
    pub to: Address,
    /// More than zero.
    pub amount: Amount,
}

impl TryFrom<pb::Transfer> for Transfer {
    type Error = TxError;

    fn try_from(msg: pb::Transfer) -> Result<Self, TxError> {
        Ok(Self {
            to: address(&msg.to, "to")?,
            amount: positive_amount(&msg.amount, "a transfer")?,
        })
    }
}

/// A canonical decimal amount above zero; `what` names the message in the error.
fn positive_amount(text: &str, what: &str) -> Result<Amount, TxError> {
    let amount: Amount = text
        .parse()
        .map_err(|_| TxError::InvalidAmount(format!("amount {text:?}")))?;
    if amount.is_zero() {
        return Err(TxError::InvalidAmount(format!(
            "{what} must move a positive amount"
        )));
    }
    Ok(amount)
}

/// Value and a payload for another subnet of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossCall {
    /// The destination subnet.
    pub to_subnet: SubnetId,
    /// Where it lands there.
    pub to: Target,
    /// The value carried (may be zero).
    pub amount: Amount,
    /// At most [`MAX_CROSS_PAYLOAD`] bytes.
    pub payload: Vec<u8>,
}

impl TryFrom<pb::CrossCall> for CrossCall {
    type Error = TxError;

    fn try_from(msg: pb::CrossCall) -> Result<Self, TxError> {
        let invalid = |why: String| TxError::InvalidCrossCall(why);
        let to_subnet: SubnetId = msg.to_subnet.parse().map_err(|_| {
            invalid(format!(
                "to_subnet {:?} is not a subnet path",
                msg.to_subnet
            ))
        })?;
        let to = match (msg.to_account.is_empty(), msg.to_keyspace.is_empty()) {
            (false, true) if msg.key.is_empty() => {
                Target::Account(address(&msg.to_account, "to_account")?.0)
            }
            (true, false) => {
                if !is_valid_name(&msg.to_keyspace) {
                    return Err(invalid(format!(
                        "keyspace {:?} must match [a-z0-9-]{{1,32}}",
                        msg.to_keyspace
                    )));
                }
                if msg.key.is_empty() || msg.key.len() > MAX_KEY_LIMIT as usize {
                    return Err(invalid(format!(
                        "a keyspace target needs a key of 1 to {MAX_KEY_LIMIT} bytes"
                    )));
                }
                Target::Keyspace {
                    name: msg.to_keyspace,
                    key: msg.key,
                }
            }
            _ => {
                return Err(invalid(
                    "name exactly one target: to_account, or to_keyspace with a key".into(),
                ))
            }
        };
        let amount: Amount = msg
            .amount
            .parse()
            .map_err(|_| TxError::InvalidAmount(format!("amount {:?}", msg.amount)))?;
        if msg.payload.len() > MAX_CROSS_PAYLOAD {
            return Err(invalid(format!(
                "payload of {} bytes; at most {MAX_CROSS_PAYLOAD}",
                msg.payload.len()
            )));
        }
        Ok(Self {
            to_subnet,
            to,
            amount,
            payload: msg.payload,
        })
    }
}

/// Value burned in this subnet for `recipient` in the parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// Who is paid in the parent.
    pub recipient: Address,
    /// More than zero.
    pub amount: Amount,
}

/// Value locked in this subnet for a child, minted there to `recipient`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fund {
    /// The child's name under this subnet.
    pub subnet: String,
    /// Who receives it in the child.
    pub recipient: Address,
    /// More than zero.
    pub amount: Amount,
}

impl TryFrom<pb::Fund> for Fund {
    type Error = TxError;

    fn try_from(msg: pb::Fund) -> Result<Self, TxError> {
        Ok(Self {
            subnet: child_name(msg.subnet)?,
            recipient: address(&msg.recipient, "recipient")?,
            amount: positive_amount(&msg.amount, "a fund")?,
        })
    }
}

/// Who may write to a keyspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritePolicy {
    /// Only the owner.
    OwnerOnly,
    /// The owner and the listed writers.
    AllowList,
    /// Anyone.
    Open,
}

impl WritePolicy {
    /// The policy a wire value names; `None` for unknown values and `UNSPECIFIED`.
    pub fn from_proto(value: i32) -> Option<Self> {
        match pb::WritePolicy::try_from(value).ok()? {
            pb::WritePolicy::OwnerOnly => Some(Self::OwnerOnly),
            pb::WritePolicy::AllowList => Some(Self::AllowList),
            pb::WritePolicy::Open => Some(Self::Open),
            pb::WritePolicy::Unspecified => None,
        }
    }

    /// The wire value of this policy.
    pub fn to_proto(self) -> pb::WritePolicy {
        match self {
            Self::OwnerOnly => pb::WritePolicy::OwnerOnly,
            Self::AllowList => pb::WritePolicy::AllowList,
            Self::Open => pb::WritePolicy::Open,
        }
    }
}

/// A well-formed keyspace definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyspaceCreate {
    /// `[a-z0-9-]{1,32}`.
    pub name: String,
    /// Who may write.
    pub policy: WritePolicy,
    /// Sorted and deduplicated; empty unless the policy is [`WritePolicy::AllowList`].
    pub writers: Vec<Address>,
    /// `1..=MAX_KEY_LIMIT`.
    pub max_key_bytes: u32,
    /// At most [`MAX_VALUE_LIMIT`].
    pub max_value_bytes: u32,
}

impl TryFrom<pb::KeyspaceCreate> for KeyspaceCreate {
    type Error = TxError;

    fn try_from(msg: pb::KeyspaceCreate) -> Result<Self, TxError> {
        let invalid = |why: String| TxError::InvalidKeyspace(why);
        if !is_valid_name(&msg.name) {
            return Err(invalid(format!(
                "name {:?} must match [a-z0-9-]{{1,32}}",
                msg.name
            )));
        }
        let policy = WritePolicy::from_proto(msg.write_policy)
            .ok_or_else(|| invalid(format!("unknown write policy {}", msg.write_policy)))?;
        if !(1..=MAX_KEY_LIMIT).contains(&msg.max_key_bytes) {
            return Err(invalid(format!(
                "max_key_bytes must be 1..={MAX_KEY_LIMIT}, got {}",
                msg.max_key_bytes
            )));
        }
        if msg.max_value_bytes > MAX_VALUE_LIMIT {
            return Err(invalid(format!(
                "max_value_bytes must be at most {MAX_VALUE_LIMIT}, got {}",
                msg.max_value_bytes
            )));
        }
        if msg.writers.len() > MAX_WRITERS {
            return Err(invalid(format!("at most {MAX_WRITERS} writers")));
        }
        if policy != WritePolicy::AllowList && !msg.writers.is_empty() {
            return Err(invalid(
                "writers are only meaningful with ALLOW_LIST".into(),
            ));
        }
        let mut writers = msg
            .writers
            .iter()
            .map(|w| address(w, "writer"))
            .collect::<Result<Vec<_>, _>>()?;
        writers.sort_unstable();
        writers.dedup();
        Ok(Self {
            name: msg.name,
            policy,
            writers,
            max_key_bytes: msg.max_key_bytes,
            max_value_bytes: msg.max_value_bytes,
        })
    }
}

fn keyspace_and_key(keyspace: &str, key: &[u8]) -> Result<(), TxError> {
    if !is_valid_name(keyspace) {
        return Err(TxError::KeyspaceNotFound(keyspace.to_owned()));
    }
    if key.is_empty() {
        return Err(TxError::Malformed("empty key".into()));
    }
    if key.len() > MAX_KEY_LIMIT as usize {
        return Err(TxError::KeyTooLarge {
            max: MAX_KEY_LIMIT,
            got: key.len(),
        });
    }
    Ok(())
}

/// A write of a non-empty key; the keyspace's own limits are checked against state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvPut {
    /// A well-formed keyspace name.
    pub keyspace: String,
    /// Non-empty, at most [`MAX_KEY_LIMIT`] bytes.
    pub key: Vec<u8>,
    /// At most [`MAX_VALUE_LIMIT`] bytes.
    pub value: Vec<u8>,
}

impl TryFrom<pb::KvPut> for KvPut {
    type Error = TxError;

    fn try_from(msg: pb::KvPut) -> Result<Self, TxError> {
        keyspace_and_key(&msg.keyspace, &msg.key)?;
        if msg.value.len() > MAX_VALUE_LIMIT as usize {
            return Err(TxError::ValueTooLarge {
                max: MAX_VALUE_LIMIT,
                got: msg.value.len(),
            });
        }
        Ok(Self {
            keyspace: msg.keyspace,
            key: msg.key,
            value: msg.value,
        })
    }
}

/// A delete of a non-empty key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvDelete {
    /// A well-formed keyspace name.
    pub keyspace: String,
    /// Non-empty, at most [`MAX_KEY_LIMIT`] bytes.
    pub key: Vec<u8>,
}

impl TryFrom<pb::KvDelete> for KvDelete {
    type Error = TxError;

    fn try_from(msg: pb::KvDelete) -> Result<Self, TxError> {
        keyspace_and_key(&msg.keyspace, &msg.key)?;
        Ok(Self {
            keyspace: msg.keyspace,
            key: msg.key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(policy: pb::WritePolicy, writers: Vec<Vec<u8>>) -> pb::KeyspaceCreate {
        pb::KeyspaceCreate {
            name: "notes".into(),
            write_policy: policy as i32,
            writers,
            max_key_bytes: 64,
            max_value_bytes: 4096,
        }
    }

    #[test]
    fn transfers_need_an_address_and_a_positive_canonical_amount() {
        let ok = pb::Transfer {
            to: vec![1; 20],
            amount: "7".into(),
        };
        assert_eq!(
            Transfer::try_from(ok.clone()).map(|t| t.amount),
            Ok(Amount::from_atto(7))
        );
        for (to, amount, code) in [
            (vec![1; 19], "7", 1),
            (vec![1; 20], "0", 8),
            (vec![1; 20], "07", 8),
            (vec![1; 20], "-1", 8),
        ] {
            let msg = pb::Transfer {
                to,
                amount: amount.into(),
            };
            assert_eq!(Transfer::try_from(msg).map_err(|e| e.code()), Err(code));
        }
    }

    #[test]
    fn keyspace_definitions_are_checked_and_writers_normalised() {
        let listed = create(
            pb::WritePolicy::AllowList,
            vec![vec![2; 20], vec![1; 20], vec![2; 20]],
        );
        let action = KeyspaceCreate::try_from(listed).map(|k| k.writers);
        assert_eq!(action, Ok(vec![Address([1; 20]), Address([2; 20])]));

        let mut bad = vec![
            create(pb::WritePolicy::Unspecified, vec![]),
            create(pb::WritePolicy::Open, vec![vec![1; 20]]),
            create(pb::WritePolicy::AllowList, vec![vec![1; 21]]),
            create(
                pb::WritePolicy::AllowList,
                vec![vec![1; 20]; MAX_WRITERS + 1],
            ),
        ];
        let mut named = create(pb::WritePolicy::Open, vec![]);
        named.name = "Notes".into();
        bad.push(named);
        let mut no_keys = create(pb::WritePolicy::Open, vec![]);
        no_keys.max_key_bytes = 0;
        bad.push(no_keys);
        let mut huge = create(pb::WritePolicy::Open, vec![]);
        huge.max_value_bytes = MAX_VALUE_LIMIT + 1;
        bad.push(huge);
        for msg in bad {
            assert!(KeyspaceCreate::try_from(msg.clone()).is_err(), "{msg:?}");
        }
    }

    #[test]
    fn writes_need_a_key_within_the_protocol_limits() {
        let put = |key: Vec<u8>, value: Vec<u8>| {
            KvPut::try_from(pb::KvPut {
                keyspace: "notes".into(),
                key,
                value,
            })
            .map_err(|e| e.code())
        };
        assert!(put(b"k".to_vec(), b"v".to_vec()).is_ok());
        assert_eq!(put(Vec::new(), b"v".to_vec()), Err(1));
        assert_eq!(put(vec![0; MAX_KEY_LIMIT as usize + 1], Vec::new()), Err(9));
        assert_eq!(
            put(b"k".to_vec(), vec![0; MAX_VALUE_LIMIT as usize + 1]),
            Err(10)
        );
    }
}

fn child_name(name: String) -> Result<String, TxError> {
    if is_valid_name(&name) {
        Ok(name)
    } else {
        Err(TxError::SubnetNotFound(name))
    }
}

fn invalid_params(why: String) -> TxError {
    TxError::InvalidSubnetParams(why)
}

/// A child subnet's definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetCreate {
    /// `[a-z0-9-]{1,32}`.
    pub name: String,
    /// `1..=MAX_SUBNET_VALIDATORS`.
    pub min_validators: u32,
    /// At least [`ATTO_PER_POWER`], so every member has power.
    pub min_collateral: Amount,
    /// At least 1.
    pub checkpoint_period: u64,
    /// Parent blocks a leaver's collateral stays locked after confirmation.
    pub leave_delay: u64,
}

impl TryFrom<pb::SubnetCreate> for SubnetCreate {
    type Error = TxError;

    fn try_from(msg: pb::SubnetCreate) -> Result<Self, TxError> {
        if !is_valid_name(&msg.name) {
            return Err(invalid_params(format!(
                "name {:?} must match [a-z0-9-]{{1,32}}",
                msg.name
            )));
        }
        if !(1..=MAX_SUBNET_VALIDATORS).contains(&msg.min_validators) {
            return Err(invalid_params(format!(
                "min_validators must be 1..={MAX_SUBNET_VALIDATORS}, got {}",
                msg.min_validators
            )));
        }
        let min_collateral: Amount = msg.min_collateral.parse().map_err(|_| {
            TxError::InvalidAmount(format!("min_collateral {:?}", msg.min_collateral))
        })?;
        if min_collateral.atto() < ATTO_PER_POWER {
            return Err(invalid_params(format!(
                "min_collateral must be at least {ATTO_PER_POWER} atto (one unit of power)"
            )));
        }
        if msg.checkpoint_period == 0 {
            return Err(invalid_params(
                "checkpoint_period must be at least 1".into(),
            ));
        }
        Ok(Self {
            name: msg.name,
            min_validators: msg.min_validators,
            min_collateral,
            checkpoint_period: msg.checkpoint_period,
            leave_delay: msg.leave_delay,
        })
    }
}

/// A validator's request to join, with keys whose stateless checks passed: the BLS key is in
/// the prime-order subgroup and its proof of possession verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetJoin {
    /// The child's name.
    pub subnet: String,
    /// Locked from the signer's balance; positive.
    pub collateral: Amount,
    /// The CometBFT ed25519 consensus key.
    pub cometbft_key: [u8; 32],
    /// The validated BLS key.
    pub bls_key: BlsPublicKey,
}

impl TryFrom<pb::SubnetJoin> for SubnetJoin {
    type Error = TxError;

    fn try_from(msg: pb::SubnetJoin) -> Result<Self, TxError> {
        let subnet = child_name(msg.subnet)?;
        let collateral: Amount = msg
            .collateral
            .parse()
            .map_err(|_| TxError::InvalidAmount(format!("collateral {:?}", msg.collateral)))?;
        let cometbft_key: [u8; 32] = msg.cometbft_key.as_slice().try_into().map_err(|_| {
            TxError::InvalidValidatorKey("cometbft_key must be a 32-byte ed25519 key".into())
        })?;
        if cometbft_key == [0; 32] {
            return Err(TxError::InvalidValidatorKey(
                "cometbft_key is all zeros".into(),
            ));
        }
        let bls_key = BlsPublicKey::from_compressed(&msg.bls_key)
            .map_err(|e| TxError::InvalidValidatorKey(format!("bls_key: {e}")))?;
        let pop = BlsSignature::from_bytes(&msg.bls_pop)
            .map_err(|e| TxError::InvalidValidatorKey(format!("bls_pop: {e}")))?;
        bls_key.verify_possession(&pop).map_err(|_| {
            TxError::InvalidValidatorKey("bls_pop does not prove possession of bls_key".into())
        })?;
        Ok(Self {
            subnet,
            collateral,
            cometbft_key,
            bls_key,
        })
    }
}

/// A member's departure from a child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetLeave {
    /// The child's name.
    pub subnet: String,
}

/// The retirement of a child with no members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetKill {
    /// The child's name.
    pub subnet: String,
}
