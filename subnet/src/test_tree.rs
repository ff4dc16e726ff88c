//! `TestTree`: a parent [`TestChain`] and one child [`TestChain`] started from the parent's
//! registry, in one process. The child's validators are created in the parent with real
//! `SubnetCreate` and `SubnetJoin` transactions, the child's genesis is built from the
//! parent's record exactly as `ipsat subnet init` builds it, and [`TestTree::deliver`] hands
//! the child's certified checkpoints to the parent's proposers the way the delivery service
//! does. Top-down, [`TestTree::parent_update`] builds what a child's proposer injects: the
//! parent's newer signed headers and proofs of its queued messages, read from the parent the
//! way a node reads them from the parent's API; nothing in it is trusted by the child.

use std::path::Path;

use ipsat_core::action::ATTO_PER_POWER;
use ipsat_core::tx::{address_of, sign};
use ipsat_core::{Address, Amount, SubnetId};
use ipsat_proto::v1 as pb;
use secp256k1::{PublicKey, Secp256k1, SecretKey};

use ipsat_core::crossnet::top_down_key;
use ipsat_core::system::ParentUpdate;
use ipsat_core::SystemTx;

use crate::components::parent;
use crate::error::AppError;
use crate::genesis::{FeeParams, Genesis, GenesisAccount, ParentAnchor};
use crate::test_chain::{TestChain, TestChainError};

/// What a test tree is made of.
#[derive(Debug, Clone)]
pub struct TreeSpec {
    /// The parent's path.
    pub parent: SubnetId,
    /// The child's name under it.
    pub child: String,
    /// Validators of the parent.
    pub parent_validators: usize,
    /// Validators of the child.
    pub child_validators: usize,
    /// The child's checkpoint period.
    pub period: u64,
}

/// A parent, its registry holding one active child (and optionally siblings), and the
/// children; see the module docs.
pub struct TestTree {
    /// The parent subnet.
    pub parent: TestChain,
    /// The child subnet.
    pub child: TestChain,
    /// The child's name in the parent.
    pub child_name: String,
    /// More children of the parent, each with its name, built like the first.
    pub siblings: Vec<(String, TestChain)>,
    /// The parent's accounts that created the child (0) and joined it (1..).
    pub accounts: ParentAccounts,
}

/// Accounts funded in the parent's genesis, which sign the parent's transactions.
pub struct ParentAccounts {
    /// The parent's path, the signatures' domain.
    pub subnet: SubnetId,
    /// Their secret keys.
    pub keys: Vec<SecretKey>,
    nonces: Vec<u64>,
}

impl ParentAccounts {
    /// A transaction of account `index`, signed with its next nonce.
    pub fn signed(&mut self, index: usize, msg: pb::tx_body::Msg) -> Vec<u8> {
        let key = self.keys[index];
        let body = pb::TxBody {
            subnet_id: self.subnet.to_string(),
            from: address(&key).as_bytes().to_vec(),
            nonce: self.nonces[index],
            fee: "100000000000000".into(),
            msg: Some(msg),
        };
        self.nonces[index] += 1;
        sign(&key, &self.subnet, &body)
    }
}

/// Each funded account's genesis balance in the parent.
pub const ACCOUNT_BALANCE: u128 = 1_000_000 * ATTO_PER_POWER * ATTO_PER_POWER;

/// The seed of the child's validator keys ([`crate::TestKeys`]).
pub const CHILD_SEED: &str = "child";

fn account_key(index: usize) -> SecretKey {
    let seed = blake3::hash(format!("tree-account-{index}").as_bytes());
    SecretKey::from_slice(seed.as_bytes()).expect("a hash is a valid key here")
}

/// The address of a secret key.
pub fn address(key: &SecretKey) -> Address {
    address_of(&PublicKey::from_secret_key(&Secp256k1::new(), key))
}

/// The seed of child `index`'s validator keys: [`CHILD_SEED`] for the first.
fn child_seed(index: usize, name: &str) -> String {
    if index == 0 {
        CHILD_SEED.to_owned()
    } else {
        format!("{CHILD_SEED}-{name}")
    }
}

/// Registers child `name` in the parent, joins it with validators seeded `seed` (signed by
/// the parent accounts of slot `slot`), and starts it from the parent's record.
fn start_child(
    dir: &Path,
    parent: &mut TestChain,
    accounts: &mut ParentAccounts,
    spec: &TreeSpec,
    name: &str,
    seed: &str,
    slot: usize,
) -> Result<TestChain, TestChainError> {
    let create = accounts.signed(
        0,
        pb::tx_body::Msg::SubnetCreate(pb::SubnetCreate {
            name: name.to_owned(),
            min_validators: spec.child_validators as u32,
            min_collateral: ATTO_PER_POWER.to_string(),
            checkpoint_period: spec.period,
            leave_delay: 10,
        }),
    );
    let codes = parent.block_codes(&[create])?;
    assert_eq!(codes, [0], "the creation of {name} failed");
    let joins: Vec<Vec<u8>> = (0..spec.child_validators)
        .map(|i| {
            let keys = crate::TestKeys::new(seed, i);
            accounts.signed(
                1 + slot * spec.child_validators + i,
                pb::tx_body::Msg::SubnetJoin(pb::SubnetJoin {
                    subnet: name.to_owned(),
                    collateral: (10 * ATTO_PER_POWER).to_string(),
                    cometbft_key: keys.cometbft_key.to_vec(),
                    bls_key: keys.bls.public_key().to_compressed().to_vec(),
                    bls_pop: keys.bls.proof_of_possession().to_bytes().to_vec(),
                }),
            )
        })
        .collect();
    let codes = parent.block_codes(&joins)?;
    assert!(
        codes.iter().all(|c| *c == 0),
        "joins of {name} failed: {codes:?}"
    );
    let (subnet, _) = parent.validators()[0]
        .query
        .subnet(name)
        .map_err(|source| TestChainError::App {
            validator: 0,
            source,
        })?
        .expect("the child was just created");
    let trusted = parent
        .light_block(parent.height())
        .expect("the parent signed every height");
    let anchor = ParentAnchor {
        subnet_id: spec.parent.clone(),
        chain_id: parent.chain_id().to_owned(),
        trusted_height: parent.height(),
        trusted_hash: match trusted.hash() {
            tendermint::Hash::Sha256(bytes) => bytes,
            tendermint::Hash::None => unreachable!("a signed header has a hash"),
        },
        trusting_period_secs: crate::genesis::DEFAULT_TRUSTING_PERIOD_SECS,
    };
    let genesis = Genesis::for_child(&subnet, anchor, FeeParams::default())
        .expect("the registry's record makes a valid genesis");
    let json = serde_json::to_vec(&genesis).expect("a genesis serialises");
    let home = if slot == 0 {
        dir.join("child")
    } else {
        dir.join(format!("child-{name}"))
    };
    let mut child = TestChain::new(&home, seed, spec.child_validators, &json)?;
    child.set_next_time(parent.next_time_unix_nanos());
    Ok(child)
}

impl TestTree {
    /// Builds the parent, registers and fills the child, and starts the child from the
    /// parent's record.
    pub fn new(dir: &Path, spec: &TreeSpec) -> Result<Self, TestChainError> {
        Self::with_siblings(dir, spec, &[])
    }

    /// Like [`Self::new`], with more children named `siblings`, each with its own validators.
    pub fn with_siblings(
        dir: &Path,
        spec: &TreeSpec,
        siblings: &[&str],
    ) -> Result<Self, TestChainError> {
        let children = 1 + siblings.len();
        let keys: Vec<SecretKey> = (0..=children * spec.child_validators)
            .map(account_key)
            .collect();
        let parent_genesis = Genesis {
            subnet_id: spec.parent.clone(),
            fees: FeeParams::default(),
            accounts: keys
                .iter()
                .map(|key| GenesisAccount {
                    address: address(key),
                    balance: Amount::from_atto(ACCOUNT_BALANCE),
                })
                .collect(),
            validators: Vec::new(),
            checkpoints: None,
            parent: None,
        };
        let json = serde_json::to_vec(&parent_genesis).expect("a genesis serialises");
        let mut parent =
            TestChain::new(&dir.join("parent"), "parent", spec.parent_validators, &json)?;
        let mut accounts = ParentAccounts {
            subnet: spec.parent.clone(),
            nonces: vec![0; keys.len()],
            keys,
        };
        let mut built = Vec::with_capacity(children);
        let names = std::iter::once(spec.child.as_str()).chain(siblings.iter().copied());
        for (index, name) in names.enumerate() {
            let seed = child_seed(index, name);
            let chain = start_child(dir, &mut parent, &mut accounts, spec, name, &seed, index)?;
            built.push((name.to_owned(), chain));
        }
        let mut built = built.into_iter();
        let (child_name, child) = built.next().expect("the first child was built");
        Ok(Self {
            parent,
            child,
            child_name,
            siblings: built.collect(),
            accounts,
        })
    }

    /// The child's path.
    pub fn child_id(&self) -> SubnetId {
        self.id_of(&self.child_name)
    }

    /// The path of the child `name`.
    pub fn id_of(&self, name: &str) -> SubnetId {
        self.accounts
            .subnet
            .child(name)
            .expect("the child's name was valid at creation")
    }

    /// A transaction in child `name`, signed by `key` with `nonce` and a fee of 10^14 atto.
    pub fn child_tx(
        &self,
        name: &str,
        key: &SecretKey,
        nonce: u64,
        msg: pb::tx_body::Msg,
    ) -> Vec<u8> {
        let child = self.id_of(name);
        let body = pb::TxBody {
            subnet_id: child.to_string(),
            from: address(key).as_bytes().to_vec(),
            nonce,
            fee: "100000000000000".into(),
            msg: Some(msg),
        };
        sign(key, &child, &body)
    }

    /// The child `name` (the first child or a sibling).
    pub fn chain(&self, name: &str) -> &TestChain {
        if name == self.child_name {
            return &self.child;
        }
        self.siblings
            .iter()
            .find(|(sibling, _)| sibling == name)
            .map(|(_, chain)| chain)
            .unwrap_or_else(|| panic!("no child {name}"))
    }

    /// The child `name`, to run its blocks.
    pub fn chain_mut(&mut self, name: &str) -> &mut TestChain {
        if name == self.child_name {
            return &mut self.child;
        }
        self.siblings
            .iter_mut()
            .find(|(sibling, _)| sibling == name)
            .map(|(_, chain)| chain)
            .unwrap_or_else(|| panic!("no child {name}"))
    }

    /// What the first child's proposer injects now; see [`Self::parent_update_for`].
    pub fn parent_update(&self) -> Result<Option<ParentUpdate>, AppError> {
        self.parent_update_for(&self.child_name)
    }

    /// What child `name`'s proposer injects now: the parent's header the genesis trusts if
    /// the child has not started its client yet, the parent's latest signed header if it is
    /// newer than the trusted one, and proofs of every top-down message for the child the
    /// child has not imported, as of the state that header's app hash commits to. `None` if
    /// there is nothing new.
    pub fn parent_update_for(&self, name: &str) -> Result<Option<ParentUpdate>, AppError> {
        let child_store = self.chain(name).validators()[0].app.store();
        let client = parent::client(child_store)?.ok_or(AppError::NotInitialized)?;
        let light_block = |height: u64| {
            self.parent
                .light_block(height)
                .cloned()
                .ok_or(AppError::NotCommitted {
                    asked: height,
                    latest: self.parent.height(),
                })
        };
        let mut headers = Vec::new();
        if client.next_validators.is_empty() {
            headers.push(light_block(client.height)?);
        }
        let latest = self.parent.height();
        let mut trusted = client.height;
        if latest > trusted {
            headers.push(light_block(latest)?);
            trusted = latest;
        }
        // A header's app hash commits to the state one height below it.
        let proven_height = trusted - 1;
        let query = &self.parent.validators()[0].query;
        let mut messages = Vec::new();
        for nonce in parent::next_top_down_nonce(child_store)?.. {
            let proof = query.prove_at(&top_down_key(name, nonce), proven_height)?;
            if proof.value.is_none() {
                break;
            }
            messages.push(proof);
        }
        if headers.is_empty() && messages.is_empty() {
            return Ok(None);
        }
        Ok(Some(ParentUpdate { headers, messages }))
    }

    /// Relays the parent to the first child; see [`Self::relay_parent_to`].
    pub fn relay_parent(&mut self) -> Result<bool, AppError> {
        let name = self.child_name.clone();
        self.relay_parent_to(&name)
    }

    /// Offers [`Self::parent_update_for`] to every validator of child `name` for its next
    /// proposal and keeps the child's clock level with the parent's; whether there was
    /// anything to offer.
    pub fn relay_parent_to(&mut self, name: &str) -> Result<bool, AppError> {
        let now = self.parent.next_time_unix_nanos();
        self.chain_mut(name).set_next_time(now);
        let Some(update) = self.parent_update_for(name)? else {
            return Ok(false);
        };
        let tx = SystemTx::ParentUpdate(update).encode();
        for validator in self.chain(name).validators() {
            validator
                .app
                .proposal_inputs()
                .offer("test-tree", "parent-update".into(), tx.clone());
        }
        Ok(true)
    }

    /// Delivers the first child's checkpoints; see [`Self::deliver_from`].
    pub fn deliver(&self) -> usize {
        self.deliver_from(&self.child_name)
    }

    /// Queues, on every parent validator, child `name`'s certified checkpoints the parent has
    /// not accepted yet, in order; how many.
    pub fn deliver_from(&self, name: &str) -> usize {
        let child = &self.chain(name).validators()[0].query;
        let accepted = self.parent.validators()[0]
            .query
            .subnet(name)
            .ok()
            .flatten()
            .map(|(s, _)| (s.last_checkpoint_height, s.checkpoint_period))
            .unwrap_or_default();
        let (mut height, period) = (accepted.0 + accepted.1, accepted.1);
        let mut delivered = 0;
        while let Ok(Some(tx)) = child.delivery_tx(height) {
            for validator in self.parent.validators() {
                validator.app.proposal_inputs().offer(
                    "test-tree",
                    format!("{name}/{height:020}"),
                    tx.clone(),
                );
            }
            delivered += 1;
            height += period;
        }
        delivered
    }
}
