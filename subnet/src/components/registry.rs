//! The registry of child subnets: their parameters and members (`SubnetCreate`, `SubnetJoin`,
//! `SubnetLeave`, `SubnetKill`), the collateral members lock, and the acceptance of each
//! child's certified checkpoints, in order.
//!
//! Keys: `r/s/<name>` -> [`ChildRecord`]; `r/names` -> every child's name, sorted;
//! `r/c/<name>/<height be>` -> an accepted checkpoint with its certificate
//! ([`AcceptedCheckpoint`]).
//!
//! Every join and leave increments the child's configuration number. A child starts when
//! `min_validators` members have joined; the members at that moment are its genesis set,
//! the first confirmed set. A later join or leave is announced to the running child as a
//! top-down membership; the child declares it in a checkpoint signed by the confirmed set, and
//! accepting that checkpoint confirms it. A leaver keeps signing until then, and its
//! collateral is paid back only then (or when the child is killed).
//!
//! More keys: `r/m/<name>/<configuration be>` -> the members (not left) as of that
//! configuration number, for each change after the child started; `r/conf/<name>` -> the
//! confirmed configuration number and set, absent while it is the genesis one.

use borsh::{BorshDeserialize, BorshSerialize};
use ipsat_checkpoint::cross_msgs::Release;
use ipsat_checkpoint::{
    BlsPublicKey, Certificate, Checkpoint, CheckpointDomain, Signer, ValidatorSetHash,
};
use ipsat_core::action::{
    SubnetCreate, SubnetJoin, SubnetKill, SubnetLeave, ATTO_PER_POWER, MAX_SUBNET_VALIDATORS,
};
use ipsat_core::crossnet::{CrossMessage, MemberInfo, TopDownMessage};
use ipsat_core::{Address, Amount, SubnetId, TxError};

use crate::component::{ActionHandler, Component, ExecError, TxContext};
use crate::components::checkpoints::StoredCheckpoint;
use crate::components::{accounts, crossnet};
use crate::delta::{StateDelta, StateError, StateRead};
use crate::Event;

/// The registry component.
pub struct Registry;

impl Component for Registry {
    fn name(&self) -> &'static str {
        "registry"
    }
}

const NAMES_KEY: &[u8] = b"r/names";

/// The state key of child `name`'s record.
pub fn child_key(name: &str) -> Vec<u8> {
    [b"r/s/".as_slice(), name.as_bytes()].concat()
}

fn membership_key(name: &str, configuration_number: u64) -> Vec<u8> {
    [
        b"r/m/".as_slice(),
        name.as_bytes(),
        b"/",
        &configuration_number.to_be_bytes(),
    ]
    .concat()
}

fn confirmed_key(name: &str) -> Vec<u8> {
    [b"r/conf/".as_slice(), name.as_bytes()].concat()
}

/// The set that signs child `name`'s next checkpoint, with its configuration number: the
/// genesis set until a checkpoint confirmed a later one.
pub fn confirmed_set(
    state: &impl StateRead,
    name: &str,
    record: &ChildRecord,
) -> Result<(u64, Vec<Member>), StateError> {
    Ok(state.get(&confirmed_key(name))?.unwrap_or_else(|| {
        (
            record.genesis_configuration_number,
            record.genesis_members.clone(),
        )
    }))
}

/// Announces the membership of a running child after a join or leave: kept by configuration
/// number for the checkpoint that will declare it, and queued top-down to the child.
fn announce(
    state: &mut StateDelta<'_>,
    name: &str,
    record: &ChildRecord,
) -> Result<(), StateError> {
    let members: Vec<Member> = record
        .members
        .iter()
        .filter(|m| m.left_at.is_none())
        .cloned()
        .collect();
    let announced = TopDownMessage::Membership {
        configuration_number: record.configuration_number,
        members: members
            .iter()
            .map(|m| MemberInfo {
                address: m.address,
                cometbft_key: m.cometbft_key,
                bls_key: m.bls_key.clone(),
                collateral: m.collateral,
            })
            .collect(),
    };
    state.put(membership_key(name, record.configuration_number), &members);
    crossnet::enqueue(state, name, &announced)?;
    Ok(())
}

pub use ipsat_core::crossnet::accepted_checkpoint_key;

/// Where a child is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
#[borsh(use_discriminant = true)]
#[repr(u8)]
pub enum ChildStatus {
    /// Waiting for `min_validators` members.
    Pending = 1,
    /// Running with its genesis set.
    Active = 2,
    /// Retired.
    Killed = 3,
}

impl ChildStatus {
    /// A lower-case name for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ChildStatus::Pending => "pending",
            ChildStatus::Active => "active",
            ChildStatus::Killed => "killed",
        }
    }
}

/// A validator of a child as the parent holds it.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Member {
    /// Its account (and RSK signer) address.
    pub address: [u8; 20],
    /// Its CometBFT ed25519 consensus key.
    pub cometbft_key: [u8; 32],
    /// Its BLS key, uncompressed; validated and its possession proven when it joined.
    pub bls_key: Vec<u8>,
    /// Locked collateral, atto-RBTC.
    pub collateral: u128,
    /// The configuration number its join created.
    pub joined_at: u64,
    /// The configuration number its departure created, once it asked to leave.
    pub left_at: Option<u64>,
}

impl Member {
    /// Its CometBFT voting power: collateral in gwei.
    pub fn power(&self) -> u64 {
        u64::try_from(self.collateral / ATTO_PER_POWER).unwrap_or(u64::MAX)
    }

    /// Its BLS key as read back from state.
    pub fn bls(&self) -> Result<BlsPublicKey, StateError> {
        BlsPublicKey::from_trusted_uncompressed(&self.bls_key).map_err(|e| StateError::Corrupt {
            key: hex::encode(self.address),
            detail: format!("member BLS key: {e}"),
        })
    }
}

/// The signing set `members` form for a certificate, in their (address) order.
pub fn signers(members: &[Member]) -> Result<Vec<Signer>, StateError> {
    members
        .iter()
        .map(|m| {
            Ok(Signer {
                key: m.bls()?,
                power: m.power(),
            })
        })
        .collect()
}

/// The gateway-compatible hash of `members` (address, collateral).
pub fn set_hash(members: &[Member]) -> ValidatorSetHash {
    let entries: Vec<([u8; 20], u128)> =
        members.iter().map(|m| (m.address, m.collateral)).collect();
    ValidatorSetHash::of(&entries)
}

/// A child subnet as its parent holds it.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ChildRecord {
    /// Who registered it.
    pub creator: [u8; 20],
    /// Where it is in its life.
    pub status: ChildStatus,
    /// Members needed to start.
    pub min_validators: u32,
    /// Least collateral per member.
    pub min_collateral: u128,
    /// Blocks between its checkpoints.
    pub checkpoint_period: u64,
    /// Parent blocks a confirmed leaver's collateral stays locked.
    pub leave_delay: u64,
    /// Incremented by every join and leave.
    pub configuration_number: u64,
    /// Members, sorted by address, including those who asked to leave.
    pub members: Vec<Member>,
    /// The set frozen when it started, sorted by address.
    pub genesis_members: Vec<Member>,
    /// The configuration number of the genesis set.
    pub genesis_configuration_number: u64,
    /// The parent height it started at; 0 while pending.
    pub activated_at: u64,
    /// Height of the latest accepted checkpoint; 0 before the first.
    pub last_checkpoint_height: u64,
    /// Hash of the latest accepted checkpoint; zero before the first.
    pub last_checkpoint_hash: [u8; 32],
}

impl ChildRecord {
    fn member_index(&self, address: &Address) -> Option<usize> {
        self.members
            .iter()
            .position(|m| m.address == *address.as_bytes())
    }

    fn wrong_status(&self, name: &str, why: &'static str) -> ExecError {
        TxError::WrongSubnetStatus {
            name: name.to_owned(),
            status: self.status.as_str(),
            why,
        }
        .into()
    }
}

/// Child `name`'s record, if it exists.
pub fn child(state: &impl StateRead, name: &str) -> Result<Option<ChildRecord>, StateError> {
    state.get(&child_key(name))
}

/// Every child's name, sorted.
pub fn child_names(state: &impl StateRead) -> Result<Vec<String>, StateError> {
    Ok(state.get(NAMES_KEY)?.unwrap_or_default())
}

/// The checkpoint of child `name` accepted at `height`.
pub fn accepted_checkpoint(
    state: &impl StateRead,
    name: &str,
    height: u64,
) -> Result<Option<StoredCheckpoint>, StateError> {
    state.get(&accepted_checkpoint_key(name, height))
}

fn existing(state: &StateDelta<'_>, name: &str) -> Result<ChildRecord, ExecError> {
    child(state, name)?.ok_or_else(|| TxError::SubnetNotFound(name.to_owned()).into())
}

fn event(kind: &'static str, attributes: Vec<(&'static str, String)>) -> Event {
    Event { kind, attributes }
}

impl ActionHandler for SubnetCreate {
    fn execute(&self, state: &mut StateDelta<'_>, tx: &TxContext) -> Result<Vec<Event>, ExecError> {
        if child(state, &self.name)?.is_some() {
            return Err(TxError::SubnetExists(self.name.clone()).into());
        }
        let id = tx
            .subnet
            .child(&self.name)
            .map_err(|e| TxError::InvalidSubnetParams(e.to_string()))?;
        let record = ChildRecord {
            creator: *tx.sender.as_bytes(),
            status: ChildStatus::Pending,
            min_validators: self.min_validators,
            min_collateral: self.min_collateral.atto(),
            checkpoint_period: self.checkpoint_period,
            leave_delay: self.leave_delay,
            configuration_number: 0,
            members: Vec::new(),
            genesis_members: Vec::new(),
            genesis_configuration_number: 0,
            activated_at: 0,
            last_checkpoint_height: 0,
            last_checkpoint_hash: [0; 32],
        };
        state.put(child_key(&self.name), &record);
        let mut names = child_names(state)?;
        let at = names.binary_search(&self.name).unwrap_or_else(|at| at);
        names.insert(at, self.name.clone());
        state.put(NAMES_KEY.to_vec(), &names);
        Ok(vec![event(
            "subnet_created",
            vec![
                ("subnet", id.to_string()),
                ("chain_id", id.chain_id()),
                ("creator", tx.sender.to_string()),
            ],
        )])
    }
}

impl ActionHandler for SubnetJoin {
    fn execute(&self, state: &mut StateDelta<'_>, tx: &TxContext) -> Result<Vec<Event>, ExecError> {
        let mut record = existing(state, &self.subnet)?;
        if record.status == ChildStatus::Killed {
            return Err(record.wrong_status(&self.subnet, "it takes no members"));
        }
        if record.member_index(&tx.sender).is_some() {
            return Err(TxError::AlreadyMember(tx.sender).into());
        }
        let bls_key = self.bls_key.to_uncompressed().to_vec();
        if record
            .members
            .iter()
            .any(|m| m.cometbft_key == self.cometbft_key)
        {
            return Err(TxError::DuplicateValidatorKey("CometBFT").into());
        }
        if record.members.iter().any(|m| m.bls_key == bls_key) {
            return Err(TxError::DuplicateValidatorKey("BLS").into());
        }
        if self.collateral.atto() < record.min_collateral {
            return Err(TxError::CollateralTooLow {
                min: Amount::from_atto(record.min_collateral),
                got: self.collateral,
            }
            .into());
        }
        if record.members.len() >= MAX_SUBNET_VALIDATORS as usize {
            return Err(TxError::SubnetFull(self.subnet.clone()).into());
        }
        accounts::debit(state, tx.sender, self.collateral)?;
        record.configuration_number += 1;
        let member = Member {
            address: *tx.sender.as_bytes(),
            cometbft_key: self.cometbft_key,
            bls_key,
            collateral: self.collateral.atto(),
            joined_at: record.configuration_number,
            left_at: None,
        };
        let at = record
            .members
            .binary_search_by_key(&member.address, |m| m.address)
            .unwrap_or_else(|at| at);
        record.members.insert(at, member);
        let mut events = vec![event(
            "subnet_joined",
            vec![
                ("subnet", self.subnet.clone()),
                ("validator", tx.sender.to_string()),
                ("collateral", self.collateral.to_string()),
                (
                    "configuration_number",
                    record.configuration_number.to_string(),
                ),
            ],
        )];
        if record.status == ChildStatus::Active {
            announce(state, &self.subnet, &record)?;
        }
        if record.status == ChildStatus::Pending
            && record.members.len() >= record.min_validators as usize
        {
            record.status = ChildStatus::Active;
            record.genesis_members = record.members.clone();
            record.genesis_configuration_number = record.configuration_number;
            record.activated_at = tx.height;
            events.push(event(
                "subnet_activated",
                vec![
                    ("subnet", self.subnet.clone()),
                    ("validators", record.members.len().to_string()),
                    (
                        "configuration_number",
                        record.configuration_number.to_string(),
                    ),
                ],
            ));
        }
        state.put(child_key(&self.subnet), &record);
        Ok(events)
    }
}

impl ActionHandler for SubnetLeave {
    fn execute(&self, state: &mut StateDelta<'_>, tx: &TxContext) -> Result<Vec<Event>, ExecError> {
        let mut record = existing(state, &self.subnet)?;
        let index = record
            .member_index(&tx.sender)
            .filter(|i| record.members[*i].left_at.is_none())
            .ok_or(TxError::NotMember(tx.sender))?;
        record.configuration_number += 1;
        let refunded = match record.status {
            ChildStatus::Pending => {
                let member = record.members.remove(index);
                let collateral = Amount::from_atto(member.collateral);
                accounts::credit(state, tx.sender, collateral)?;
                collateral
            }
            ChildStatus::Active | ChildStatus::Killed => {
                record.members[index].left_at = Some(record.configuration_number);
                Amount::ZERO
            }
        };
        if record.status == ChildStatus::Active {
            announce(state, &self.subnet, &record)?;
        }
        let configuration = record.configuration_number.to_string();
        state.put(child_key(&self.subnet), &record);
        Ok(vec![event(
            "subnet_left",
            vec![
                ("subnet", self.subnet.clone()),
                ("validator", tx.sender.to_string()),
                ("refunded", refunded.to_string()),
                ("configuration_number", configuration),
            ],
        )])
    }
}

impl ActionHandler for SubnetKill {
    fn execute(&self, state: &mut StateDelta<'_>, tx: &TxContext) -> Result<Vec<Event>, ExecError> {
        let mut record = existing(state, &self.subnet)?;
        if record.creator != *tx.sender.as_bytes() {
            return Err(TxError::NotCreator {
                creator: Address(record.creator),
            }
            .into());
        }
        if record.status == ChildStatus::Killed {
            return Err(record.wrong_status(&self.subnet, "it is already retired"));
        }
        if record.members.iter().any(|m| m.left_at.is_none()) {
            return Err(record.wrong_status(&self.subnet, "members must leave first"));
        }
        // Nobody will confirm the departures of a retired child: its leavers are paid now.
        for member in std::mem::take(&mut record.members) {
            accounts::credit(
                state,
                Address(member.address),
                Amount::from_atto(member.collateral),
            )?;
        }
        record.status = ChildStatus::Killed;
        state.put(child_key(&self.subnet), &record);
        Ok(vec![event(
            "subnet_killed",
            vec![("subnet", self.subnet.clone())],
        )])
    }
}

/// Pays back the collateral of every member that left at or before configuration
/// `confirmed`, now that the child confirmed its departure, and forgets it.
fn release_confirmed_leavers(
    state: &mut StateDelta<'_>,
    name: &str,
    record: &mut ChildRecord,
    confirmed: u64,
) -> Result<Vec<Event>, ExecError> {
    let mut events = Vec::new();
    let (gone, staying): (Vec<Member>, Vec<Member>) = std::mem::take(&mut record.members)
        .into_iter()
        .partition(|m| m.left_at.is_some_and(|left| left <= confirmed));
    record.members = staying;
    for member in gone {
        let collateral = Amount::from_atto(member.collateral);
        accounts::credit(state, Address(member.address), collateral)?;
        events.push(event(
            "collateral_released",
            vec![
                ("subnet", name.to_owned()),
                ("validator", Address(member.address).to_string()),
                ("collateral", collateral.to_string()),
            ],
        ));
    }
    Ok(events)
}

/// A child's certified checkpoint with what it carries, as its delivery brings it.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointDelivery<'a> {
    /// The checkpoint.
    pub checkpoint: &'a Checkpoint,
    /// Its certificate.
    pub certificate: &'a Certificate,
    /// The releases under its `cross_msgs_root`.
    pub releases: &'a [Release],
    /// The cross-net messages under it.
    pub messages: &'a [CrossMessage],
}

/// Accepts the next checkpoint of child `name`: it must be the child's, at the next height,
/// chained to the last accepted one, name the child's set and configuration, and carry a
/// certificate of more than two thirds of that set's power, all judged from parent state.
/// Then pays the releases it carries and takes in its cross-net messages (both already
/// checked against its `cross_msgs_root`).
pub fn accept_checkpoint(
    state: &mut StateDelta<'_>,
    parent: &SubnetId,
    name: &str,
    delivery: &CheckpointDelivery<'_>,
    height: u64,
) -> Result<Vec<Event>, ExecError> {
    let CheckpointDelivery {
        checkpoint,
        certificate,
        releases,
        messages,
    } = *delivery;
    let mut record = existing(state, name)?;
    if record.status != ChildStatus::Active {
        return Err(record.wrong_status(name, "it has no checkpoints to accept"));
    }
    let mismatch = |why: &str| ExecError::from(TxError::CheckpointMismatch(why.to_owned()));
    let child_id = parent
        .child(name)
        .map_err(|e| TxError::SubnetNotFound(e.to_string()))?;
    if checkpoint.subnet != child_id.hash() {
        return Err(mismatch("it is another subnet's checkpoint"));
    }
    let expected = record.last_checkpoint_height + record.checkpoint_period;
    if checkpoint.height != expected {
        return Err(TxError::CheckpointOutOfOrder {
            expected,
            got: checkpoint.height,
        }
        .into());
    }
    if checkpoint.previous.0 != record.last_checkpoint_hash {
        return Err(mismatch(
            "it does not chain to the last accepted checkpoint",
        ));
    }
    // It declares the set that signs the next one: the confirmed set, or a later membership
    // the registry recorded.
    let (confirmed_number, confirmed) = confirmed_set(state, name, &record)?;
    let declared_number = checkpoint.configuration_number;
    if declared_number < confirmed_number || declared_number > record.configuration_number {
        return Err(mismatch(
            "its configuration number is not one of the child's",
        ));
    }
    let declared = if declared_number == confirmed_number {
        confirmed.clone()
    } else {
        state
            .get::<Vec<Member>>(&membership_key(name, declared_number))?
            .ok_or_else(|| mismatch("its configuration number is not one of the child's"))?
    };
    if checkpoint.next_validator_set_hash != set_hash(&declared) {
        return Err(mismatch("its validator set is not the child's"));
    }
    let domain = CheckpointDomain::subnet_parent(parent.root_chain_id());
    let digest = checkpoint.digest(&domain);
    certificate
        .verify(&signers(&confirmed)?, &digest.0)
        .map_err(|e| TxError::InvalidCertificate(e.to_string()))?;
    let mut events = Vec::new();
    if declared_number > confirmed_number {
        state.put(confirmed_key(name), &(declared_number, declared));
        events.extend(release_confirmed_leavers(
            state,
            name,
            &mut record,
            declared_number,
        )?);
        events.push(event(
            "validator_set_confirmed",
            vec![
                ("subnet", child_id.to_string()),
                ("configuration_number", declared_number.to_string()),
            ],
        ));
    }
    let hash = checkpoint.hash();
    record.last_checkpoint_height = checkpoint.height;
    record.last_checkpoint_hash = hash.0;
    state.put(child_key(name), &record);
    state.put(
        accepted_checkpoint_key(name, checkpoint.height),
        &StoredCheckpoint::new(checkpoint, certificate, height),
    );
    events.push(event(
        "checkpoint_accepted",
        vec![
            ("subnet", child_id.to_string()),
            ("height", checkpoint.height.to_string()),
            ("hash", hex::encode(hash.0)),
        ],
    ));
    events.extend(crossnet::pay_releases(state, name, releases)?);
    events.extend(crossnet::receive_from_child(state, parent, name, messages)?);
    Ok(events)
}
