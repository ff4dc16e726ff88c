//! State transitions, proofs and refusals of the subnet state machine, on real RocksDB.

#![allow(clippy::unwrap_used)] // A test fails by panicking; a panic names the failed step.

use std::sync::Arc;

use ipsat_core::action::MAX_VALUE_LIMIT;
use ipsat_core::tx::{address_of, sign};
use ipsat_core::{verify_state_proof, Address, Amount, SubnetId, TxError};
use ipsat_proto::v1::{self as pb, tx_body::Msg};
use ipsat_subnet::components::fees::FEE_POOL;
use ipsat_subnet::{
    BlockContext, FeeParams, Genesis, GenesisAccount, StateQuery, Store, SubnetApp, TestChain,
};
use prost::Message as _;
use secp256k1::{PublicKey, Secp256k1, SecretKey};

const START: u128 = 1_000_000_000_000;
const FEE: u128 = 100_000;
/// Validators of every test chain here: enough that each block crosses a proposer, the
/// other validators' ProcessProposal and vote extensions, and an app-hash comparison.
const VALIDATORS: usize = 3;

/// A test chain and the directory its validators' stores live in.
struct Node {
    _dir: tempfile::TempDir,
    chain: TestChain,
}

fn subnet() -> SubnetId {
    "/r33/alpha".parse().unwrap()
}

fn key(n: u8) -> SecretKey {
    SecretKey::from_slice(&[n; 32]).unwrap()
}

fn addr(n: u8) -> Address {
    address_of(&PublicKey::from_secret_key(&Secp256k1::new(), &key(n)))
}

fn genesis() -> Vec<u8> {
    serde_json::to_vec(&Genesis {
        subnet_id: subnet(),
        fees: FeeParams {
            base: Amount::from_atto(1_000),
            per_byte: Amount::from_atto(10),
        },
        accounts: (1..=3)
            .map(|n| GenesisAccount {
                address: addr(n),
                balance: Amount::from_atto(START),
            })
            .collect(),
        validators: Vec::new(),
        checkpoints: None,
        parent: None,
    })
    .unwrap()
}

fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let chain = TestChain::new(dir.path(), "alpha", VALIDATORS, &genesis()).unwrap();
    Node { _dir: dir, chain }
}

fn body(from: u8, nonce: u64, msg: Msg) -> pb::TxBody {
    pb::TxBody {
        subnet_id: subnet().to_string(),
        from: addr(from).0.to_vec(),
        nonce,
        fee: FEE.to_string(),
        msg: Some(msg),
    }
}

fn signed(from: u8, nonce: u64, msg: Msg) -> Vec<u8> {
    sign(&key(from), &subnet(), &body(from, nonce, msg))
}

fn transfer(to: Address, amount: u128) -> Msg {
    Msg::Transfer(pb::Transfer {
        to: to.0.to_vec(),
        amount: amount.to_string(),
    })
}

fn create_keyspace(name: &str, policy: pb::WritePolicy, writers: &[Address]) -> Msg {
    Msg::KeyspaceCreate(pb::KeyspaceCreate {
        name: name.into(),
        write_policy: policy as i32,
        writers: writers.iter().map(|w| w.0.to_vec()).collect(),
        max_key_bytes: 16,
        max_value_bytes: 64,
    })
}

fn put(keyspace: &str, key: &[u8], value: &[u8]) -> Msg {
    Msg::KvPut(pb::KvPut {
        keyspace: keyspace.into(),
        key: key.to_vec(),
        value: value.to_vec(),
    })
}

impl Node {
    fn app(&self) -> &SubnetApp {
        &self.chain.validators()[0].app
    }

    fn app_hash(&self) -> [u8; 32] {
        self.chain.app_hash()
    }

    /// Runs one height through the whole ABCI++ flow and returns each transaction's code.
    fn block(&mut self, txs: &[Vec<u8>]) -> Vec<u32> {
        self.chain.block_codes(txs).unwrap()
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

    fn nonce(&self, who: Address) -> u64 {
        self.chain.validators()[0]
            .query
            .account(&who, false)
            .unwrap()
            .value
            .unwrap_or_default()
            .nonce
    }

    fn check_code(&mut self, raw: &[u8]) -> u32 {
        self.chain.check_tx(raw).unwrap().code
    }

    fn query(&self) -> &StateQuery {
        &self.chain.validators()[0].query
    }
}

#[test]
fn transfer_moves_value_charges_fee_and_bumps_nonce() {
    let mut n = node();
    assert_eq!(n.block(&[signed(1, 0, transfer(addr(9), 5_000))]), vec![0]);
    assert_eq!(n.balance(addr(1)), START - 5_000 - FEE);
    assert_eq!(n.balance(addr(9)), 5_000);
    assert_eq!(n.balance(FEE_POOL), FEE);
    assert_eq!(n.nonce(addr(1)), 1);
    let supply: u128 = [addr(1), addr(2), addr(3), addr(9), FEE_POOL]
        .iter()
        .map(|a| n.balance(*a))
        .sum();
    assert_eq!(supply, 3 * START);
}

#[test]
fn same_blocks_give_same_app_hashes_and_every_block_changes_it() {
    let blocks = [
        vec![
            signed(1, 0, transfer(addr(2), 7)),
            signed(2, 0, transfer(addr(3), 9)),
        ],
        vec![],
        vec![
            signed(3, 0, create_keyspace("notes", pb::WritePolicy::Open, &[])),
            signed(1, 1, put("notes", b"k", b"v")),
        ],
    ];
    let (mut a, mut b) = (node(), node());
    assert_eq!(a.app_hash(), b.app_hash());
    let mut seen = vec![a.app_hash()];
    for txs in &blocks {
        a.block(txs);
        b.block(txs);
        assert_eq!(a.app_hash(), b.app_hash());
        assert!(!seen.contains(&a.app_hash()));
        seen.push(a.app_hash());
    }
}

#[test]
fn keyspaces_enforce_policies_and_limits() {
    let mut n = node();
    let codes = n.block(&[
        signed(
            1,
            0,
            create_keyspace("owned", pb::WritePolicy::OwnerOnly, &[]),
        ),
        signed(
            1,
            1,
            create_keyspace("listed", pb::WritePolicy::AllowList, &[addr(2)]),
        ),
        signed(1, 2, create_keyspace("open", pb::WritePolicy::Open, &[])),
    ]);
    assert_eq!(codes, vec![0, 0, 0]);
    assert_eq!(n.check_code(&signed(1, 3, put("owned", b"a", b"1"))), 0);
    assert_eq!(n.check_code(&signed(2, 0, put("listed", b"a", b"2"))), 0);
    assert_eq!(n.check_code(&signed(3, 0, put("open", b"a", b"3"))), 0);
    let unauthorized = TxError::Unauthorized {
        writer: addr(2),
        keyspace: String::new(),
    }
    .code();
    assert_eq!(
        n.check_code(&signed(2, 1, put("owned", b"a", b"x"))),
        unauthorized
    );
    assert_eq!(
        n.check_code(&signed(3, 1, put("listed", b"a", b"x"))),
        unauthorized
    );
    let too_long_key = [b'k'; 17];
    assert_eq!(
        n.check_code(&signed(3, 1, put("open", &too_long_key, b"x"))),
        TxError::KeyTooLarge { max: 0, got: 0 }.code()
    );
    assert_eq!(
        n.check_code(&signed(3, 1, put("open", b"k", &[0; 65]))),
        TxError::ValueTooLarge { max: 0, got: 0 }.code()
    );
    assert_eq!(
        n.check_code(&signed(3, 1, put("nowhere", b"k", b"v"))),
        TxError::KeyspaceNotFound(String::new()).code()
    );
    assert_eq!(
        n.check_code(&signed(
            3,
            1,
            create_keyspace("open", pb::WritePolicy::Open, &[])
        )),
        TxError::KeyspaceExists(String::new()).code()
    );
    let mut huge = create_keyspace("huge", pb::WritePolicy::Open, &[]);
    if let Msg::KeyspaceCreate(c) = &mut huge {
        c.max_value_bytes = MAX_VALUE_LIMIT + 1;
    }
    assert_eq!(
        n.check_code(&signed(3, 1, huge)),
        TxError::InvalidKeyspace(String::new()).code()
    );

    let codes = n.block(&[
        signed(1, 3, put("owned", b"a", b"1")),
        signed(2, 0, put("listed", b"a", b"2")),
        signed(
            3,
            0,
            Msg::KvDelete(pb::KvDelete {
                keyspace: "listed".into(),
                key: b"a".to_vec(),
            }),
        ),
    ]);
    // The third writer is not on the list: its fee is taken, its write is not.
    assert_eq!(codes, vec![0, 0, unauthorized]);
    assert_eq!(
        n.query().kv("listed", b"a", false).unwrap().value,
        Some(b"2".to_vec())
    );
    assert_eq!(n.nonce(addr(3)), 1);
    assert_eq!(n.balance(addr(3)), START - FEE);
    let codes = n.block(&[signed(
        1,
        4,
        Msg::KvDelete(pb::KvDelete {
            keyspace: "owned".into(),
            key: b"a".to_vec(),
        }),
    )]);
    assert_eq!(codes, vec![0]);
    assert_eq!(n.query().kv("owned", b"a", false).unwrap().value, None);
}

#[test]
fn bad_transactions_are_refused_with_specific_codes_and_change_nothing() {
    let mut n = node();
    n.block(&[signed(1, 0, transfer(addr(2), 1))]);
    let committed = n.app().last_committed().unwrap().unwrap();
    let before = (
        committed.app_hash,
        n.balance(addr(1)),
        n.nonce(addr(1)),
        committed.state_root,
    );

    let other: SubnetId = "/r33/beta".parse().unwrap();
    let mut foreign = body(1, 1, transfer(addr(2), 1));
    foreign.subnet_id = other.to_string();
    let mut bad_sig = pb::Tx::decode(signed(1, 1, transfer(addr(2), 1)).as_slice()).unwrap();
    bad_sig.signature[10] ^= 1;
    let mut cheap = body(1, 1, transfer(addr(2), 1));
    cheap.fee = "1".into();
    let mut bad_amount = body(1, 1, transfer(addr(2), 1));
    bad_amount.fee = "-5".into();
    let cases: Vec<(Vec<u8>, u32)> = vec![
        (
            b"\x0a\xff\xff".to_vec(),
            TxError::Malformed(String::new()).code(),
        ),
        (
            bad_sig.encode_to_vec(),
            TxError::InvalidSignature("").code(),
        ),
        (sign(&key(1), &other, &foreign), 3),
        (signed(1, 0, transfer(addr(2), 1)), 4),
        (signed(1, 5, transfer(addr(2), 1)), 5),
        (signed(1, 1, transfer(addr(2), START * 10)), 6),
        (sign(&key(1), &subnet(), &cheap), 7),
        (sign(&key(1), &subnet(), &bad_amount), 8),
        (signed(1, 1, transfer(addr(2), 0)), 8),
        (signed(7, 0, transfer(addr(2), 1)), 6),
    ];
    for (raw, code) in &cases {
        let result = n.chain.check_tx(raw).unwrap();
        assert_eq!(result.code, *code, "{}", result.log);
        assert!(!result.log.is_empty());
    }
    // The stateless failures make a proposal invalid.
    let next = BlockContext {
        height: 3,
        time_unix_nanos: 0,
        proposer: [1; 20],
        block_hash: Vec::new(),
    };
    assert!(!n.app().process_proposal(&next, &[cases[1].0.clone()]));
    // A block of stateful failures executes but leaves the state root as an empty block does;
    // only the history accumulator moves.
    // Replay, future nonce, fee too low, unfunded sender: refused before the fee is taken.
    let stateful: Vec<Vec<u8>> = [3, 4, 6, 9].iter().map(|&i| cases[i].0.clone()).collect();
    let mut twin = node();
    twin.block(&[signed(1, 0, transfer(addr(2), 1))]);
    let codes = n.block(&stateful);
    twin.block(&[]);
    assert!(codes.iter().all(|code| *code != 0));
    assert_eq!(n.app_hash(), twin.app_hash());
    assert_eq!(
        n.app().last_committed().unwrap().unwrap().state_root,
        before.3
    );
    assert_eq!((n.balance(addr(1)), n.nonce(addr(1))), (before.1, before.2));
}

#[test]
fn check_state_tracks_admitted_transactions_until_commit() {
    let mut n = node();
    assert_eq!(n.check_code(&signed(1, 0, transfer(addr(2), 1))), 0);
    assert_eq!(n.check_code(&signed(1, 1, transfer(addr(2), 1))), 0);
    // A replay of an admitted transaction is refused before it is even committed.
    assert_eq!(n.check_code(&signed(1, 1, transfer(addr(2), 1))), 4);
    n.block(&[signed(1, 0, transfer(addr(2), 1))]);
    // After commit the check state restarts from the committed nonce (1).
    assert_eq!(n.check_code(&signed(1, 1, transfer(addr(2), 1))), 0);
}

#[test]
fn proofs_verify_and_any_tampering_fails() {
    let mut n = node();
    n.block(&[
        signed(1, 0, create_keyspace("docs", pb::WritePolicy::Open, &[])),
        signed(1, 1, put("docs", b"hello", b"world")),
    ]);
    let present = n.query().kv("docs", b"hello", true).unwrap().proof.unwrap();
    let absent = n
        .query()
        .kv("docs", b"missing", true)
        .unwrap()
        .proof
        .unwrap();
    let account = n.query().account(&addr(1), true).unwrap().proof.unwrap();
    assert_eq!(present.value.as_deref(), Some(&b"world"[..]));
    assert_eq!(absent.value, None);
    for proof in [&present, &absent, &account] {
        assert_eq!(
            verify_state_proof(proof).unwrap().to_vec(),
            n.app_hash().to_vec()
        );
        let fields: [fn(&mut pb::StateProof) -> &mut Vec<u8>; 5] = [
            |p| &mut p.jmt_proof,
            |p| &mut p.state_root,
            |p| &mut p.history_root,
            |p| &mut p.app_hash,
            |p| &mut p.key,
        ];
        // An absence proof also proves absence of any other key under the same empty branch,
        // so for those the key is not tampered with here; relabelling it is checked below.
        let tamperable = if proof.value.is_some() { 5 } else { 4 };
        for (f, field) in fields.into_iter().enumerate().take(tamperable) {
            for i in 0..field(&mut proof.clone()).len() {
                let mut bad = proof.clone();
                field(&mut bad)[i] ^= 0x01;
                assert!(
                    verify_state_proof(&bad).is_err(),
                    "byte {i} of field {f}, value {:?}",
                    proof.value
                );
            }
        }
        let mut bad = proof.clone();
        bad.value = match &proof.value {
            Some(v) => Some([v.as_slice(), b"!"].concat()),
            None => Some(b"forged".to_vec()),
        };
        assert!(verify_state_proof(&bad).is_err());
        if proof.value.is_some() {
            let mut bad = proof.clone();
            bad.value = None;
            assert!(
                verify_state_proof(&bad).is_err(),
                "existence passed off as absence"
            );
        }
    }
    let mut relabelled = absent.clone();
    relabelled.key = present.key.clone();
    assert!(
        verify_state_proof(&relabelled).is_err(),
        "absence proof reused for a present key"
    );
}

#[test]
fn committed_state_survives_reopen_and_uncommitted_block_does_not() {
    let mut n = node();
    n.block(&[signed(1, 0, transfer(addr(2), 42))]);
    let committed = n.app().last_committed().unwrap().unwrap();
    // Finalized but never committed: as after a crash between FinalizeBlock and Commit.
    let block = BlockContext {
        height: 2,
        time_unix_nanos: 0,
        proposer: [1; 20],
        block_hash: b"h2".to_vec(),
    };
    n.app()
        .finalize_block(&block, &[signed(1, 1, transfer(addr(2), 1))])
        .unwrap();
    let Node { _dir, chain } = n;
    drop(chain);
    let store = Arc::new(Store::open(&_dir.path().join("validator0")).unwrap());
    let reopened = SubnetApp::open(store.clone()).unwrap();
    assert_eq!(reopened.last_committed().unwrap(), Some(committed.clone()));
    assert_eq!(
        StateQuery::new(store)
            .account(&addr(2), false)
            .unwrap()
            .value
            .unwrap()
            .balance,
        START + 42
    );
    // Genesis again (CometBFT's handshake may repeat it) changes nothing; another is refused.
    reopened.init_chain(&genesis()).unwrap();
    assert_eq!(reopened.last_committed().unwrap(), Some(committed));
    let other = String::from_utf8(genesis())
        .unwrap()
        .replace("/r33/alpha", "/r33/gamma");
    assert!(reopened.init_chain(other.as_bytes()).is_err());
}

#[test]
fn outside_data_queued_for_a_proposal_goes_first_and_garbage_is_dropped() {
    let mut n = node();
    let proposer = &n.chain.validators()[(n.chain.height() as usize + 1) % VALIDATORS];
    let inputs = proposer.app.proposal_inputs();
    inputs.offer("test", "a".into(), b"\xffnot a transaction".to_vec());
    inputs.offer("test", "b".into(), signed(2, 0, transfer(addr(3), 10)));
    // The same key again replaces what was offered under it.
    inputs.offer("test", "b".into(), signed(2, 0, transfer(addr(3), 11)));
    let block = n
        .chain
        .block(&[signed(1, 0, transfer(addr(3), 7))])
        .unwrap();
    let codes: Vec<u32> = block.tx_results.iter().map(|r| r.code).collect();
    assert_eq!(codes, vec![0, 0]);
    assert_eq!(
        block.tx_results[0].events[0].attributes[0],
        ("from", addr(2).to_string())
    );
    assert_eq!(n.balance(addr(3)), START + 18);
    // Taken once: nothing is left queued for a later proposal.
    assert!(n
        .chain
        .validators()
        .iter()
        .all(|v| v.app.proposal_inputs().take().is_empty()));
}

#[test]
fn a_transaction_dropped_at_recheck_leaves_the_verified_cache() {
    let mut n = node();
    let first = signed(1, 0, transfer(addr(2), 1));
    let second = signed(1, 1, transfer(addr(2), 1));
    assert_eq!(n.check_code(&first), 0);
    assert_eq!(n.check_code(&second), 0);
    let admitted = n.app().verified_cache_bytes();
    // Another transaction spends nonce 0 first, as a competing client's would.
    n.block(&[signed(1, 0, transfer(addr(3), 1))]);
    assert_eq!(n.app().verified_cache_bytes(), admitted);
    // CometBFT's recheck after the commit: the first is refused and dropped, the second stays.
    assert_eq!(n.check_code(&first), 4);
    assert_eq!(n.check_code(&second), 0);
    let kept = n.app().verified_cache_bytes();
    assert!(kept > 0 && kept < admitted, "{kept} of {admitted}");
}
