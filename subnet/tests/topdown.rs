//! Top-down: a parent's deposit reaches its child only through the child's light client of
//! the parent. Headers are verified with CometBFT's light-client rules from the header the
//! child's genesis trusts; messages are imported in nonce order with JMT proofs against the
//! verified app hash. Whatever a lying proposer or endpoint changes is refused and changes
//! nothing; the honest update is accepted afterwards.

#![allow(clippy::unwrap_used)] // A test fails by panicking; a panic names the failed step.

use ipsat_core::crossnet::top_down_key;
use ipsat_core::system::ParentUpdate;
use ipsat_core::{Address, Amount, SubnetId, SystemTx, TxError};
use ipsat_proto::v1::{self as pb, tx_body::Msg};
use ipsat_subnet::components::{accounts, crossnet, parent};
use ipsat_subnet::genesis::DEFAULT_TRUSTING_PERIOD_SECS;
use ipsat_subnet::{TestTree, TreeSpec};

const CHILD: &str = "beta";

fn tree(dir: &std::path::Path) -> TestTree {
    let parent: SubnetId = "/r33/alpha".parse().unwrap();
    TestTree::new(
        dir,
        &TreeSpec {
            parent,
            child: CHILD.into(),
            parent_validators: 4,
            child_validators: 3,
            period: 5,
        },
    )
    .unwrap()
}

fn fund(tree: &mut TestTree, recipient: Address, amount: u128) {
    let tx = tree.accounts.signed(
        0,
        Msg::Fund(pb::Fund {
            subnet: CHILD.into(),
            recipient: recipient.as_bytes().to_vec(),
            amount: amount.to_string(),
        }),
    );
    assert_eq!(tree.parent.block_codes(&[tx]).unwrap(), [0], "fund");
}

fn child_balance(tree: &TestTree, who: Address) -> Amount {
    accounts::account(tree.child.validators()[0].app.store(), &who)
        .unwrap()
        .balance()
}

fn client(tree: &TestTree) -> parent::ClientState {
    parent::client(tree.child.validators()[0].app.store())
        .unwrap()
        .unwrap()
}

fn minted(tree: &TestTree) -> Amount {
    parent::minted(tree.child.validators()[0].app.store()).unwrap()
}

fn locked(tree: &TestTree) -> Amount {
    crossnet::locked(tree.parent.validators()[0].app.store(), CHILD).unwrap()
}

/// Runs a child block whose proposal carries `update` (as a lying proposer would place it)
/// and returns its result code; every honest validator still accepts the proposal.
fn child_block_with(tree: &mut TestTree, update: ParentUpdate) -> u32 {
    let tx = SystemTx::ParentUpdate(update).encode();
    let block = tree
        .child
        .block_with(&[], |proposal| proposal.push(tx.clone()))
        .unwrap();
    let result = block.tx_results.last().expect("the update is in the block");
    result.code
}

#[test]
fn a_deposit_is_minted_in_the_child_once_and_stays_backed() {
    let dir = tempfile::tempdir().unwrap();
    let mut tree = tree(dir.path());
    let alice = Address([0xa1; 20]);
    fund(&mut tree, alice, 5_000);
    fund(&mut tree, alice, 7);
    assert_eq!(locked(&tree), Amount::from_atto(5_007));
    // A header above the deposit's block commits to the state holding it.
    tree.parent.block(&[]).unwrap();

    assert!(tree.relay_parent().unwrap());
    let block = tree.child.block(&[]).unwrap();
    assert_eq!(
        block.tx_results.len(),
        1,
        "the proposer injected the update"
    );
    assert_eq!(block.tx_results[0].code, 0, "{:?}", block.tx_results[0]);
    assert_eq!(child_balance(&tree, alice), Amount::from_atto(5_007));
    assert_eq!(minted(&tree), locked(&tree));
    assert_eq!(client(&tree).height, tree.parent.height());

    // Nothing new: nothing is injected, nothing minted twice; replaying the update that was
    // just imported is refused.
    let replay = tree.parent_update().unwrap();
    assert!(replay.is_none(), "{replay:?}");
    tree.parent.block(&[]).unwrap();
    assert!(tree.relay_parent().unwrap(), "a newer header");
    tree.child.block(&[]).unwrap();
    assert_eq!(child_balance(&tree, alice), Amount::from_atto(5_007));
    assert_eq!(minted(&tree), Amount::from_atto(5_007));

    // A third deposit arrives on its own.
    fund(&mut tree, alice, 3);
    tree.parent.block(&[]).unwrap();
    tree.relay_parent().unwrap();
    tree.child.block(&[]).unwrap();
    assert_eq!(child_balance(&tree, alice), Amount::from_atto(5_010));
    assert_eq!(minted(&tree), locked(&tree));
    assert_eq!(
        parent::next_top_down_nonce(tree.child.validators()[0].app.store()).unwrap(),
        3
    );
}

#[test]
fn nothing_false_is_imported_and_the_honest_update_still_is() {
    let dir = tempfile::tempdir().unwrap();
    let mut tree = tree(dir.path());
    let alice = Address([0xa1; 20]);
    fund(&mut tree, alice, 5_000);
    fund(&mut tree, alice, 1);
    tree.parent.block(&[]).unwrap();
    // Child blocks, whose signed headers stand in for another chain's, above the trusted
    // parent height.
    while tree.child.height() <= client(&tree).height {
        tree.child.block(&[]).unwrap();
    }
    let foreign = tree.child.light_block(tree.child.height()).unwrap().clone();
    let honest = tree.parent_update().unwrap().unwrap();
    assert_eq!(honest.headers.len(), 2, "the trusted header and the latest");
    assert_eq!(honest.messages.len(), 2);
    let before = (client(&tree), child_balance(&tree, alice));

    let code = |e: TxError| e.code();
    let parent_header = code(TxError::ParentHeader(String::new()));
    let mut cases: Vec<(&str, ParentUpdate, u32)> = Vec::new();

    let mut forged = honest.clone();
    forged.headers[1].signed_header.header.app_hash =
        tendermint::AppHash::try_from(vec![7u8; 32]).unwrap();
    cases.push(("an altered app hash", forged, parent_header));

    let mut forged = honest.clone();
    if let tendermint::block::CommitSig::BlockIdFlagCommit { signature, .. } =
        &mut forged.headers[1].signed_header.commit.signatures[0]
    {
        let mut bytes = signature.as_ref().unwrap().as_bytes().to_vec();
        bytes[0] ^= 1;
        *signature = tendermint::Signature::new(bytes).unwrap();
    }
    for sig in forged.headers[1].signed_header.commit.signatures[1..].iter_mut() {
        *sig = tendermint::block::CommitSig::BlockIdFlagAbsent;
    }
    cases.push(("a commit with one flipped signature", forged, parent_header));

    let mut forged = honest.clone();
    forged.headers[0].next_validators = tree.child.light_block(1).unwrap().validators.clone();
    cases.push((
        "other next validators for the trusted header",
        forged,
        parent_header,
    ));

    let mut forged = honest.clone();
    forged.headers.remove(0);
    cases.push(("no trusted header first", forged, parent_header));

    let mut forged = honest.clone();
    forged.headers[1] = foreign;
    cases.push(("a header of another chain", forged, parent_header));

    let mut forged = honest.clone();
    let mut value = forged.messages[0].value.clone().unwrap();
    *value.last_mut().unwrap() ^= 1;
    forged.messages[0].value = Some(value);
    cases.push((
        "an altered deposit",
        forged,
        code(TxError::TopDownProof(String::new())),
    ));

    let mut forged = honest.clone();
    forged.messages.remove(0);
    cases.push((
        "a skipped nonce",
        forged,
        code(TxError::TopDownOutOfOrder {
            expected: 0,
            got: 1,
        }),
    ));

    let mut forged = honest.clone();
    forged.messages[0].key = top_down_key("gamma", 0);
    cases.push((
        "another child's queue",
        forged,
        code(TxError::TopDownProof(String::new())),
    ));

    let mut forged = honest.clone();
    let stale = tree.parent.validators()[0]
        .query
        .prove_at(&top_down_key(CHILD, 0), 1)
        .unwrap();
    forged.messages[0] = stale;
    cases.push((
        "a proof against another height's state",
        forged,
        code(TxError::TopDownProof(String::new())),
    ));

    for (what, update, expected) in cases {
        assert_eq!(child_block_with(&mut tree, update), expected, "{what}");
        assert_eq!(
            (client(&tree), child_balance(&tree, alice)),
            before,
            "{what} changed state"
        );
    }
    // The honest proposer never includes a refused update: its proposal has none of them.
    assert_eq!(minted(&tree), Amount::ZERO);

    // The honest update still goes through.
    assert_eq!(child_block_with(&mut tree, honest.clone()), 0);
    assert_eq!(child_balance(&tree, alice), Amount::from_atto(5_001));
    assert_eq!(minted(&tree), locked(&tree));
    // And cannot be replayed.
    assert_ne!(child_block_with(&mut tree, honest), 0);
    assert_eq!(minted(&tree), Amount::from_atto(5_001));
}

#[test]
fn a_lapsed_trusting_period_stops_imports_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let mut tree = tree(dir.path());
    tree.relay_parent().unwrap();
    tree.child.block(&[]).unwrap();
    let started = client(&tree);
    assert!(!started.next_validators.is_empty(), "the client started");

    fund(&mut tree, Address([0xa1; 20]), 9);
    tree.parent.block(&[]).unwrap();
    let update = tree.parent_update().unwrap().unwrap();
    let lapse = (DEFAULT_TRUSTING_PERIOD_SECS as i64 + 1) * 1_000_000_000;
    let later = tree.child.next_time_unix_nanos() + lapse;
    tree.child.set_next_time(later);
    assert_eq!(
        child_block_with(&mut tree, update),
        TxError::ParentClientExpired { trusted_height: 0 }.code()
    );
    assert_eq!(client(&tree), started);
    assert_eq!(minted(&tree), Amount::ZERO);
    // The honest proposer does not include it either.
    tree.relay_parent().unwrap();
    let block = tree.child.block(&[]).unwrap();
    assert!(block.tx_results.is_empty());
    assert_eq!(client(&tree), started);
}

const RBTC: u128 = 1_000_000_000_000_000_000;
/// A transaction in the child signed by `key` with `nonce`.
fn child_tx(tree: &TestTree, key: &secp256k1::SecretKey, nonce: u64, msg: Msg) -> Vec<u8> {
    tree.child_tx(CHILD, key, nonce, msg)
}

fn parent_balance(tree: &TestTree, who: Address) -> Amount {
    accounts::account(tree.parent.validators()[0].app.store(), &who)
        .unwrap()
        .balance()
}

/// Runs child blocks (relaying the parent each time) until its checkpoint at `height` is
/// certified, then delivers it and runs a parent block.
fn checkpoint_to_parent(tree: &mut TestTree, height: u64) {
    while ipsat_subnet::components::checkpoints::last_certified(
        tree.child.validators()[0].app.store(),
    )
    .unwrap()
        < height
    {
        tree.relay_parent().unwrap();
        tree.child.block(&[]).unwrap();
    }
    assert!(tree.deliver() > 0);
    tree.parent.block(&[]).unwrap();
}

/// Value goes down and comes back up: a deposit minted in the child, a transfer there, a
/// release burned in the child and paid in the parent when the checkpoint carrying it is
/// accepted; every step keeps the child's supply equal to what the parent holds for it.
#[test]
fn a_release_is_burned_in_the_child_and_paid_in_the_parent() {
    let dir = tempfile::tempdir().unwrap();
    let mut tree = tree(dir.path());
    let alice_key = secp256k1::SecretKey::from_slice(&[0xa1; 32]).unwrap();
    let alice = ipsat_subnet::test_tree::address(&alice_key);
    let carol = Address([0xc0; 20]);
    let bob = Address([0xb0; 20]);
    fund(&mut tree, alice, 5 * RBTC);
    tree.parent.block(&[]).unwrap();
    tree.relay_parent().unwrap();
    tree.child.block(&[]).unwrap();
    assert_eq!(child_balance(&tree, alice), Amount::from_atto(5 * RBTC));

    let transfer = child_tx(
        &tree,
        &alice_key,
        0,
        Msg::Transfer(pb::Transfer {
            to: carol.as_bytes().to_vec(),
            amount: RBTC.to_string(),
        }),
    );
    let release = child_tx(
        &tree,
        &alice_key,
        1,
        Msg::Release(pb::Release {
            recipient: bob.as_bytes().to_vec(),
            amount: (2 * RBTC).to_string(),
        }),
    );
    let block = tree.child.block(&[transfer, release]).unwrap();
    assert!(
        block.tx_results.iter().all(|r| r.code == 0),
        "{:?}",
        block.tx_results
    );
    let store = tree.child.validators()[0].app.store();
    assert_eq!(
        parent::released(store).unwrap(),
        Amount::from_atto(2 * RBTC)
    );
    assert_eq!(child_balance(&tree, carol), Amount::from_atto(RBTC));
    // Not paid before the checkpoint carrying it is accepted.
    assert_eq!(parent_balance(&tree, bob), Amount::ZERO);
    assert_eq!(locked(&tree), Amount::from_atto(5 * RBTC));

    let next_checkpoint = {
        let period = 5;
        (tree.child.height() / period + 1) * period
    };
    checkpoint_to_parent(&mut tree, next_checkpoint);
    let served = tree.child.validators()[0]
        .query
        .own_checkpoint(next_checkpoint)
        .unwrap()
        .checkpoint
        .unwrap();
    assert_eq!(
        served.cross_msgs_count, 1,
        "the checkpoint carries the release"
    );
    assert_eq!(served.releases[0].recipient, bob.as_bytes().to_vec());
    assert_eq!(parent_balance(&tree, bob), Amount::from_atto(2 * RBTC));
    assert_eq!(locked(&tree), Amount::from_atto(3 * RBTC));
    assert_eq!(
        crossnet::next_release_to_pay(tree.parent.validators()[0].app.store(), CHILD).unwrap(),
        1
    );
    // The child's supply (minted minus released) is what the parent still holds for it.
    let store = tree.child.validators()[0].app.store();
    let supply = parent::minted(store)
        .unwrap()
        .checked_sub(parent::released(store).unwrap())
        .unwrap();
    assert_eq!(supply, locked(&tree));

    // A later checkpoint carries nothing new and pays nothing twice.
    checkpoint_to_parent(&mut tree, next_checkpoint + 5);
    assert_eq!(parent_balance(&tree, bob), Amount::from_atto(2 * RBTC));
    assert_eq!(locked(&tree), Amount::from_atto(3 * RBTC));
}

/// A subnet without a parent has nothing to release to.
#[test]
fn a_root_subnet_refuses_releases() {
    let dir = tempfile::tempdir().unwrap();
    let mut tree = tree(dir.path());
    let release = tree.accounts.signed(
        1,
        Msg::Release(pb::Release {
            recipient: vec![1; 20],
            amount: "1".into(),
        }),
    );
    assert_eq!(
        tree.parent.block_codes(&[release]).unwrap(),
        [TxError::NoParent.code()]
    );
}
