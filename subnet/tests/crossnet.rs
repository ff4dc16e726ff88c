//! Cross-net calls between two children A (`beta`) and B (`gamma`) of a parent P, in process:
//! up in A's checkpoint, down through P into B's top-down queue, delivered into a keyspace of
//! B, and a receipt back to A; a call to a missing keyspace bounces back with its value. At
//! rest, every child's supply is exactly what P holds locked for it.

#![allow(clippy::unwrap_used)] // A test fails by panicking; a panic names the failed step.

use ipsat_core::{Address, Amount, SubnetId, TxError};
use ipsat_proto::v1::{self as pb, tx_body::Msg};
use ipsat_subnet::components::crossnet::{self, MessageStatus, Passage};
use ipsat_subnet::components::{accounts, keyspaces, parent};
use ipsat_subnet::test_tree::address;
use ipsat_subnet::{StateQuery, TestTree, TreeSpec};

const A: &str = "beta";
const B: &str = "gamma";
const RBTC: u128 = 1_000_000_000_000_000_000;

fn tree(dir: &std::path::Path) -> TestTree {
    let parent: SubnetId = "/r33/alpha".parse().unwrap();
    TestTree::with_siblings(
        dir,
        &TreeSpec {
            parent,
            child: A.into(),
            parent_validators: 3,
            child_validators: 2,
            period: 3,
        },
        &[B],
    )
    .unwrap()
}

fn key(byte: u8) -> secp256k1::SecretKey {
    secp256k1::SecretKey::from_slice(&[byte; 32]).unwrap()
}

fn query<'a>(tree: &'a TestTree, name: &str) -> &'a StateQuery {
    &tree.chain(name).validators()[0].query
}

fn balance(tree: &TestTree, name: &str, who: Address) -> Amount {
    accounts::account(tree.chain(name).validators()[0].app.store(), &who)
        .unwrap()
        .balance()
}

/// Runs the tree until nothing is in flight: every child follows the parent and checkpoints
/// into it until no child has messages or releases the parent has not taken in, and no
/// top-down message waits to be imported.
fn settle(tree: &mut TestTree) {
    for _ in 0..200 {
        let mut busy = false;
        for name in [A, B] {
            tree.relay_parent_to(name).unwrap();
            tree.chain_mut(name).block(&[]).unwrap();
            if tree.deliver_from(name) > 0 {
                busy = true;
            }
        }
        tree.parent.block(&[]).unwrap();
        let in_flight = [A, B].iter().any(|name| {
            let store = tree.chain(name).validators()[0].app.store();
            let parent_store = tree.parent.validators()[0].app.store();
            let supply = parent::minted(store)
                .unwrap()
                .checked_sub(parent::released(store).unwrap())
                .unwrap();
            crossnet::locked(parent_store, name).unwrap() != supply
                || parent::next_top_down_nonce(store).unwrap()
                    != crossnet::next_top_down_nonce(parent_store, name).unwrap()
        });
        if !busy && !in_flight {
            return;
        }
    }
    panic!("the tree did not settle");
}

fn fund(tree: &mut TestTree, child: &str, recipient: Address, amount: u128) {
    let tx = tree.accounts.signed(
        0,
        Msg::Fund(pb::Fund {
            subnet: child.into(),
            recipient: recipient.as_bytes().to_vec(),
            amount: amount.to_string(),
        }),
    );
    assert_eq!(tree.parent.block_codes(&[tx]).unwrap(), [0]);
}

fn cross_call(to_subnet: &SubnetId, keyspace: &str, amount: u128) -> Msg {
    Msg::CrossCall(pb::CrossCall {
        to_subnet: to_subnet.to_string(),
        to_account: Vec::new(),
        to_keyspace: keyspace.into(),
        key: b"hello".to_vec(),
        amount: amount.to_string(),
        payload: b"from beta".to_vec(),
    })
}

#[test]
fn a_call_reaches_a_sibling_keyspace_and_a_failed_one_is_refunded() {
    let dir = tempfile::tempdir().unwrap();
    let mut tree = tree(dir.path());
    let (alice_key, owner_key) = (key(0xa1), key(0x0b));
    let (alice, owner) = (address(&alice_key), address(&owner_key));
    fund(&mut tree, A, alice, 10 * RBTC);
    fund(&mut tree, B, owner, RBTC);
    settle(&mut tree);
    assert_eq!(balance(&tree, A, alice), Amount::from_atto(10 * RBTC));

    // B's owner opens a keyspace anyone may write.
    let create = tree.child_tx(
        B,
        &owner_key,
        0,
        Msg::KeyspaceCreate(pb::KeyspaceCreate {
            name: "inbox".into(),
            write_policy: pb::WritePolicy::Open as i32,
            writers: Vec::new(),
            max_key_bytes: 64,
            max_value_bytes: 1024,
        }),
    );
    assert_eq!(tree.chain_mut(B).block_codes(&[create]).unwrap(), [0]);
    let owner_before = balance(&tree, B, owner);

    // A call from A into B's keyspace, carrying 2 RBTC, and one to a keyspace B lacks,
    // carrying 3 RBTC.
    let b_id = tree.id_of(B);
    let good = tree.child_tx(A, &alice_key, 0, cross_call(&b_id, "inbox", 2 * RBTC));
    let bad = tree.child_tx(A, &alice_key, 1, cross_call(&b_id, "missing", 3 * RBTC));
    let block = tree.chain_mut(A).block(&[good, bad]).unwrap();
    assert!(
        block.tx_results.iter().all(|r| r.code == 0),
        "{:?}",
        block.tx_results
    );
    let alice_after_send = balance(&tree, A, alice);
    settle(&mut tree);

    // Delivered: the payload is in B's keyspace and its owner has the value.
    let written = query(&tree, B).kv("inbox", b"hello", false).unwrap();
    assert_eq!(written.value.as_deref(), Some(&b"from beta"[..]));
    assert_eq!(
        balance(&tree, B, owner),
        owner_before
            .checked_add(Amount::from_atto(2 * RBTC))
            .unwrap()
    );
    // Both receipts are back in A: the first delivered, the second failed with B's code and
    // its value refunded to Alice.
    let store = tree.chain(A).validators()[0].app.store();
    assert_eq!(
        crossnet::outgoing(store, 0).unwrap().unwrap().status,
        MessageStatus::Delivered
    );
    assert_eq!(
        crossnet::outgoing(store, 1).unwrap().unwrap().status,
        MessageStatus::Failed(TxError::KeyspaceNotFound(String::new()).code())
    );
    assert_eq!(
        balance(&tree, A, alice),
        alice_after_send
            .checked_add(Amount::from_atto(3 * RBTC))
            .unwrap()
    );
    assert_eq!(
        keyspaces::keyspace(tree.chain(B).validators()[0].app.store(), "missing").unwrap(),
        None
    );
    // Each subnet on the path says what it did with each message.
    let a_path = tree.id_of(A).to_string();
    let b_path = b_id.to_string();
    let passage = |chain: &ipsat_subnet::TestChain, from: &str, nonce: u64| {
        crossnet::passage(chain.validators()[0].app.store(), from, nonce)
            .unwrap()
            .unwrap()
    };
    assert_eq!(
        passage(&tree.parent, &a_path, 0),
        Passage::ForwardedDown(B.into())
    );
    assert_eq!(passage(tree.chain(B), &a_path, 0), Passage::Delivered);
    assert_eq!(
        passage(tree.chain(B), &a_path, 1),
        Passage::Failed(TxError::KeyspaceNotFound(String::new()).code())
    );
    // B's receipts (its messages 0 and 1) went back down through the parent to A.
    for receipt in 0..2 {
        assert_eq!(
            passage(&tree.parent, &b_path, receipt),
            Passage::ForwardedDown(A.into())
        );
        assert_eq!(
            passage(tree.chain(A), &b_path, receipt),
            Passage::ReceiptApplied
        );
    }

    // At rest, each child's supply is what the parent holds for it: A minted 10 and sent 2
    // away for good; B minted 1 plus the 2 it received.
    let parent_store = tree.parent.validators()[0].app.store();
    assert_eq!(
        crossnet::locked(parent_store, A).unwrap(),
        Amount::from_atto(8 * RBTC)
    );
    assert_eq!(
        crossnet::locked(parent_store, B).unwrap(),
        Amount::from_atto(3 * RBTC)
    );
}

#[test]
fn calls_with_no_route_or_to_itself_are_refused_and_cost_only_the_fee() {
    let dir = tempfile::tempdir().unwrap();
    let mut tree = tree(dir.path());
    let alice_key = key(0xa1);
    let alice = address(&alice_key);
    fund(&mut tree, A, alice, RBTC);
    settle(&mut tree);
    let own = tree.id_of(A);
    let itself = tree.child_tx(A, &alice_key, 0, cross_call(&own, "inbox", 1));
    // From the root of this tree, no subnet /r99/... is reachable: the call comes back.
    let elsewhere: SubnetId = "/r99/nowhere".parse().unwrap();
    let lost = tree.child_tx(A, &alice_key, 1, cross_call(&elsewhere, "inbox", 5));
    let codes = tree.chain_mut(A).block_codes(&[itself, lost]).unwrap();
    assert_eq!(
        codes,
        [TxError::InvalidCrossCall(String::new()).code(), 0],
        "a call to itself is refused; a call out of the tree goes up to bounce"
    );
    let before = balance(&tree, A, alice);
    settle(&mut tree);
    let store = tree.chain(A).validators()[0].app.store();
    assert_eq!(
        crossnet::outgoing(store, 0).unwrap().unwrap().status,
        MessageStatus::Failed(TxError::Unreachable(String::new()).code())
    );
    assert_eq!(
        balance(&tree, A, alice),
        before.checked_add(Amount::from_atto(5)).unwrap()
    );
}
