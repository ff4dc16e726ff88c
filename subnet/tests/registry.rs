//! The registry of child subnets on in-process validators over real RocksDB: creation,
//! joins with their key checks, activation, leaves and kills, every refusal with its code
//! and no change, and value conserved between balances and locked collateral throughout.

#![allow(clippy::unwrap_used)] // A test fails by panicking; a panic names the failed step.

use ipsat_checkpoint::BlsSecretKey;
use ipsat_core::tx::{address_of, sign};
use ipsat_core::{Address, Amount, SubnetId, TxError};
use ipsat_proto::v1::{self as pb, tx_body::Msg};
use ipsat_subnet::components::fees::FEE_POOL;
use ipsat_subnet::{FeeParams, Genesis, GenesisAccount, TestChain, TestKeys};
use secp256k1::{PublicKey, Secp256k1, SecretKey};

const START: u128 = 1_000_000_000_000_000_000;
const GWEI: u128 = 1_000_000_000;
const MIN: u128 = 100 * GWEI;
const ACCOUNTS: u8 = 5;

fn subnet() -> SubnetId {
    "/r33/alpha".parse().unwrap()
}

fn key(n: u8) -> SecretKey {
    SecretKey::from_slice(&[n; 32]).unwrap()
}

fn addr(n: u8) -> Address {
    address_of(&PublicKey::from_secret_key(&Secp256k1::new(), &key(n)))
}

struct Registry {
    _dir: tempfile::TempDir,
    chain: TestChain,
    nonces: [u64; 256],
}

impl Registry {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let genesis = Genesis {
            subnet_id: subnet(),
            fees: FeeParams {
                base: Amount::from_atto(1_000),
                per_byte: Amount::from_atto(10),
            },
            accounts: (1..=ACCOUNTS)
                .map(|n| GenesisAccount {
                    address: addr(n),
                    balance: Amount::from_atto(START),
                })
                .collect(),
            validators: Vec::new(),
            checkpoints: None,
            parent: None,
        };
        let chain = TestChain::new(
            dir.path(),
            "alpha",
            3,
            &serde_json::to_vec(&genesis).unwrap(),
        )
        .unwrap();
        Self {
            _dir: dir,
            chain,
            nonces: [0; 256],
        }
    }

    fn signed(&mut self, from: u8, msg: Msg) -> Vec<u8> {
        let body = pb::TxBody {
            subnet_id: subnet().to_string(),
            from: addr(from).0.to_vec(),
            nonce: self.nonces[from as usize],
            fee: "100000".into(),
            msg: Some(msg),
        };
        self.nonces[from as usize] += 1;
        sign(&key(from), &subnet(), &body)
    }

    /// Runs `msg` from `from` in its own block; its code.
    fn run(&mut self, from: u8, msg: Msg) -> u32 {
        let tx = self.signed(from, msg);
        self.chain.block_codes(&[tx]).unwrap()[0]
    }

    /// Runs `msg`, expects the refusal `code`, and checks nothing but the fee moved.
    fn refused(&mut self, from: u8, msg: Msg, error: TxError) {
        let before = self.subnets();
        let balance = self.balance(addr(from));
        assert_eq!(self.run(from, msg), error.code(), "expected {error:?}");
        assert_eq!(
            self.subnets(),
            before,
            "a refused {error:?} changed the registry"
        );
        assert_eq!(
            self.balance(addr(from)),
            balance - 100_000,
            "only the fee moved"
        );
    }

    fn balance(&self, who: Address) -> u128 {
        self.chain.validators()[0]
            .query
            .account(&who, false)
            .unwrap()
            .value
            .unwrap_or_default()
            .balance
    }

    fn subnets(&self) -> Vec<pb::Subnet> {
        self.chain.validators()[0].query.subnets().unwrap().0
    }

    fn subnet(&self, name: &str) -> pb::Subnet {
        self.chain.validators()[0]
            .query
            .subnet(name)
            .unwrap()
            .unwrap()
            .0
    }

    /// Balances, the fee pool and every collateral locked in the registry add up to the
    /// genesis supply.
    fn assert_conserved(&self) {
        let balances: u128 =
            (1..=ACCOUNTS).map(|n| self.balance(addr(n))).sum::<u128>() + self.balance(FEE_POOL);
        let locked: u128 = self
            .subnets()
            .iter()
            .flat_map(|s| s.validators.iter())
            .map(|v| v.collateral.parse::<u128>().unwrap())
            .sum();
        assert_eq!(balances + locked, START * u128::from(ACCOUNTS));
    }
}

fn create(name: &str, min_validators: u32) -> Msg {
    Msg::SubnetCreate(pb::SubnetCreate {
        name: name.into(),
        min_validators,
        min_collateral: MIN.to_string(),
        checkpoint_period: 10,
        leave_delay: 5,
    })
}

fn join_with(name: &str, collateral: u128, keys: &TestKeys, pop: Vec<u8>) -> Msg {
    Msg::SubnetJoin(pb::SubnetJoin {
        subnet: name.into(),
        collateral: collateral.to_string(),
        cometbft_key: keys.cometbft_key.to_vec(),
        bls_key: keys.bls.public_key().to_compressed().to_vec(),
        bls_pop: pop,
    })
}

fn join(name: &str, collateral: u128, keys: &TestKeys) -> Msg {
    join_with(
        name,
        collateral,
        keys,
        keys.bls.proof_of_possession().to_bytes().to_vec(),
    )
}

fn validator(i: usize) -> TestKeys {
    TestKeys::new("beta", i)
}

/// A compressed point on BLS12-381's G1 curve outside the prime-order subgroup.
fn outside_subgroup() -> [u8; 48] {
    (0u8..=255)
        .map(|x| {
            let mut bytes = [0u8; 48];
            bytes[0] = 0x80;
            bytes[47] = x;
            bytes
        })
        .find(|bytes| blst::min_pk::PublicKey::uncompress(bytes).is_ok())
        .unwrap()
}

#[test]
fn a_child_starts_when_enough_members_have_joined() {
    let mut r = Registry::new();
    assert_eq!(r.run(1, create("beta", 2)), 0);
    let created = r.subnet("beta");
    assert_eq!(created.id, "/r33/alpha/beta");
    assert_eq!(created.chain_id, subnet().child("beta").unwrap().chain_id());
    assert_eq!(created.status, pb::SubnetStatus::Pending as i32);
    assert_eq!(r.run(2, join("beta", MIN, &validator(0))), 0);
    assert_eq!(r.balance(addr(2)), START - 100_000 - MIN);
    assert_eq!(r.subnet("beta").status, pb::SubnetStatus::Pending as i32);
    r.assert_conserved();
    assert_eq!(r.run(3, join("beta", 2 * MIN, &validator(1))), 0);
    let active = r.subnet("beta");
    assert_eq!(active.status, pb::SubnetStatus::Active as i32);
    assert_eq!(active.configuration_number, 2);
    assert_eq!(active.genesis_configuration_number, 2);
    assert_eq!(active.activated_at, r.chain.height());
    assert_eq!(active.genesis_validators, active.validators);
    let powers: Vec<u64> = active.validators.iter().map(|v| v.power).collect();
    let mut expected = vec![100, 200];
    if addr(3) < addr(2) {
        expected.reverse();
    }
    assert_eq!(
        powers, expected,
        "members sorted by address, power = collateral in gwei"
    );
    // Joining a running child is recorded but does not change its genesis set.
    assert_eq!(r.run(4, join("beta", MIN, &validator(2))), 0);
    let grown = r.subnet("beta");
    assert_eq!(grown.validators.len(), 3);
    assert_eq!(grown.genesis_validators, active.genesis_validators);
    assert_eq!(grown.configuration_number, 3);
    r.assert_conserved();
}

#[test]
fn bad_creations_and_joins_are_refused_and_change_nothing() {
    let mut r = Registry::new();
    assert_eq!(r.run(1, create("beta", 3)), 0);
    r.refused(1, create("beta", 1), TxError::SubnetExists(String::new()));
    for bad in [
        pb::SubnetCreate {
            name: "gamma".into(),
            min_validators: 0,
            min_collateral: MIN.to_string(),
            checkpoint_period: 10,
            leave_delay: 1,
        },
        pb::SubnetCreate {
            name: "gamma".into(),
            min_validators: 101,
            min_collateral: MIN.to_string(),
            checkpoint_period: 10,
            leave_delay: 1,
        },
        pb::SubnetCreate {
            name: "gamma".into(),
            min_validators: 1,
            min_collateral: "1".into(),
            checkpoint_period: 10,
            leave_delay: 1,
        },
        pb::SubnetCreate {
            name: "gamma".into(),
            min_validators: 1,
            min_collateral: MIN.to_string(),
            checkpoint_period: 0,
            leave_delay: 1,
        },
    ] {
        // Stateless refusals never reach a block: CheckTx turns them away.
        let tx = r.signed(1, Msg::SubnetCreate(bad));
        assert_eq!(
            r.chain.check_tx(&tx).unwrap().code,
            TxError::InvalidSubnetParams(String::new()).code()
        );
        r.nonces[1] -= 1;
    }
    r.refused(
        2,
        join("nope", MIN, &validator(0)),
        TxError::SubnetNotFound(String::new()),
    );
    r.refused(
        2,
        join("beta", MIN - 1, &validator(0)),
        TxError::CollateralTooLow {
            min: Amount::ZERO,
            got: Amount::ZERO,
        },
    );
    r.refused(
        2,
        join("beta", START * 2, &validator(0)),
        TxError::InsufficientFunds {
            account: addr(2),
            have: Amount::ZERO,
            need: Amount::ZERO,
        },
    );
    // Key checks happen before any state is read: a bad PoP or key never reaches a block.
    let invalid_key = TxError::InvalidValidatorKey(String::new()).code();
    let someone_else = BlsSecretKey::from_seed(&[3; 32]).unwrap();
    let mut infinity = [0u8; 48];
    infinity[0] = 0xc0;
    let bad_keys: Vec<(&str, Msg)> = vec![
        (
            "a PoP of another key",
            join_with(
                "beta",
                MIN,
                &validator(0),
                someone_else.proof_of_possession().to_bytes().to_vec(),
            ),
        ),
        (
            "a signature under the wrong tag as PoP",
            join_with(
                "beta",
                MIN,
                &validator(0),
                validator(0)
                    .bls
                    .sign(&validator(0).bls.public_key().to_compressed())
                    .to_bytes()
                    .to_vec(),
            ),
        ),
        ("a key outside the subgroup", {
            let Msg::SubnetJoin(mut join) = join("beta", MIN, &validator(0)) else {
                unreachable!()
            };
            join.bls_key = outside_subgroup().to_vec();
            Msg::SubnetJoin(join)
        }),
        ("the key at infinity", {
            let Msg::SubnetJoin(mut join) = join("beta", MIN, &validator(0)) else {
                unreachable!()
            };
            join.bls_key = infinity.to_vec();
            Msg::SubnetJoin(join)
        }),
        ("a short CometBFT key", {
            let Msg::SubnetJoin(mut join) = join("beta", MIN, &validator(0)) else {
                unreachable!()
            };
            join.cometbft_key = vec![1; 31];
            Msg::SubnetJoin(join)
        }),
    ];
    for (what, msg) in bad_keys {
        let tx = r.signed(2, msg);
        let result = r.chain.check_tx(&tx).unwrap();
        assert_eq!(result.code, invalid_key, "{what}: {}", result.log);
        r.nonces[2] -= 1;
    }
    assert_eq!(r.run(2, join("beta", MIN, &validator(0))), 0);
    r.refused(
        2,
        join("beta", MIN, &validator(1)),
        TxError::AlreadyMember(addr(2)),
    );
    let mut same_cometbft = validator(1);
    same_cometbft.cometbft_key = validator(0).cometbft_key;
    r.refused(
        3,
        join("beta", MIN, &same_cometbft),
        TxError::DuplicateValidatorKey("CometBFT"),
    );
    let mut same_bls = validator(1);
    same_bls.bls = validator(0).bls;
    r.refused(
        3,
        join("beta", MIN, &same_bls),
        TxError::DuplicateValidatorKey("BLS"),
    );
    assert_eq!(r.subnet("beta").validators.len(), 1);
    r.assert_conserved();
}

#[test]
fn leaving_refunds_a_waiting_child_and_killing_needs_the_creator_and_no_members() {
    let mut r = Registry::new();
    assert_eq!(r.run(1, create("beta", 2)), 0);
    assert_eq!(r.run(2, join("beta", MIN, &validator(0))), 0);
    // Before the child starts, leaving pays the collateral back at once.
    assert_eq!(
        r.run(
            2,
            Msg::SubnetLeave(pb::SubnetLeave {
                subnet: "beta".into()
            })
        ),
        0
    );
    assert_eq!(r.balance(addr(2)), START - 2 * 100_000);
    assert!(r.subnet("beta").validators.is_empty());
    assert_eq!(r.subnet("beta").configuration_number, 2);
    r.refused(
        2,
        Msg::SubnetLeave(pb::SubnetLeave {
            subnet: "beta".into(),
        }),
        TxError::NotMember(addr(2)),
    );
    // Once it runs, a departure is recorded and the collateral stays locked.
    assert_eq!(r.run(2, join("beta", MIN, &validator(0))), 0);
    assert_eq!(r.run(3, join("beta", MIN, &validator(1))), 0);
    assert_eq!(r.subnet("beta").status, pb::SubnetStatus::Active as i32);
    let balance = r.balance(addr(3));
    assert_eq!(
        r.run(
            3,
            Msg::SubnetLeave(pb::SubnetLeave {
                subnet: "beta".into()
            })
        ),
        0
    );
    assert_eq!(r.balance(addr(3)), balance - 100_000);
    let left = r.subnet("beta");
    let leaver = left
        .validators
        .iter()
        .find(|v| v.address == addr(3).0.to_vec())
        .unwrap();
    assert_eq!(leaver.left_at, left.configuration_number);
    r.assert_conserved();
    r.refused(
        4,
        Msg::SubnetKill(pb::SubnetKill {
            subnet: "beta".into(),
        }),
        TxError::NotCreator { creator: addr(1) },
    );
    r.refused(
        1,
        Msg::SubnetKill(pb::SubnetKill {
            subnet: "beta".into(),
        }),
        TxError::WrongSubnetStatus {
            name: String::new(),
            status: "",
            why: "",
        },
    );
    assert_eq!(
        r.run(
            2,
            Msg::SubnetLeave(pb::SubnetLeave {
                subnet: "beta".into()
            })
        ),
        0
    );
    let (two, three) = (r.balance(addr(2)), r.balance(addr(3)));
    assert_eq!(
        r.run(
            1,
            Msg::SubnetKill(pb::SubnetKill {
                subnet: "beta".into()
            })
        ),
        0
    );
    let killed = r.subnet("beta");
    assert_eq!(killed.status, pb::SubnetStatus::Killed as i32);
    assert!(killed.validators.is_empty());
    assert_eq!(
        r.balance(addr(2)),
        two + MIN,
        "a killed child pays its leavers"
    );
    assert_eq!(r.balance(addr(3)), three + MIN);
    r.refused(
        4,
        join("beta", MIN, &validator(2)),
        TxError::WrongSubnetStatus {
            name: String::new(),
            status: "",
            why: "",
        },
    );
    r.assert_conserved();
}
