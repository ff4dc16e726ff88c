//! Validator-set changes of a running child: a join and a leave in the parent reach the child
//! top-down; the child's next checkpoint declares the new set (signed by the old one), the
//! block that cuts it hands CometBFT the power changes, the new set signs the checkpoints
//! after it, and the parent confirms the set when it accepts the declaring checkpoint. A
//! leaver's collateral is paid back only then.

#![allow(clippy::unwrap_used)] // A test fails by panicking; a panic names the failed step.

use ipsat_checkpoint::Checkpoint;
use ipsat_core::action::ATTO_PER_POWER;
use ipsat_core::{Amount, SubnetId};
use ipsat_proto::v1::{self as pb, tx_body::Msg};
use ipsat_subnet::components::{accounts, checkpoints, registry};
use ipsat_subnet::test_tree::{address, CHILD_SEED};
use ipsat_subnet::{TestKeys, TestTree, TreeSpec};

const CHILD: &str = "beta";
const PERIOD: u64 = 3;
const COLLATERAL: u128 = 10 * ATTO_PER_POWER;

fn tree(dir: &std::path::Path) -> TestTree {
    let parent: SubnetId = "/r33/alpha".parse().unwrap();
    TestTree::new(
        dir,
        &TreeSpec {
            parent,
            child: CHILD.into(),
            parent_validators: 3,
            child_validators: 3,
            period: PERIOD,
        },
    )
    .unwrap()
}

/// The configuration number and member count the parent has confirmed for the child.
fn confirmed(tree: &TestTree) -> (u64, usize) {
    let store = tree.parent.validators()[0].app.store();
    let record = registry::child(store, CHILD).unwrap().unwrap();
    let (number, members) = registry::confirmed_set(store, CHILD, &record).unwrap();
    (number, members.len())
}

fn accepted(tree: &TestTree) -> u64 {
    let store = tree.parent.validators()[0].app.store();
    registry::child(store, CHILD)
        .unwrap()
        .unwrap()
        .last_checkpoint_height
}

/// Runs the child (following the parent) and delivers its checkpoints until the parent has
/// accepted the one at `height`.
fn until_accepted(tree: &mut TestTree, height: u64) {
    for _ in 0..60 {
        if accepted(tree) >= height {
            return;
        }
        tree.relay_parent().unwrap();
        tree.child.block(&[]).unwrap();
        tree.deliver();
        tree.parent.block(&[]).unwrap();
    }
    panic!("checkpoint {height} was not accepted");
}

fn declared(tree: &TestTree, height: u64) -> Checkpoint {
    let served = tree.child.validators()[0]
        .query
        .own_checkpoint(height)
        .unwrap()
        .checkpoint
        .unwrap();
    Checkpoint::abi_decode(&served.abi).unwrap()
}

fn parent_balance(tree: &TestTree, index: usize) -> Amount {
    let who = address(&tree.accounts.keys[index]);
    accounts::account(tree.parent.validators()[0].app.store(), &who)
        .unwrap()
        .balance()
}

#[test]
fn a_join_and_a_leave_reach_the_child_and_are_confirmed_by_its_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let mut tree = tree(dir.path());
    until_accepted(&mut tree, PERIOD);
    let (genesis_number, genesis_size) = confirmed(&tree);
    assert_eq!(genesis_size, 3);

    // A fourth validator joins the running child (from the creator's account).
    let newcomer = TestKeys::new(CHILD_SEED, 3);
    let join = tree.accounts.signed(
        0,
        Msg::SubnetJoin(pb::SubnetJoin {
            subnet: CHILD.into(),
            collateral: COLLATERAL.to_string(),
            cometbft_key: newcomer.cometbft_key.to_vec(),
            bls_key: newcomer.bls.public_key().to_compressed().to_vec(),
            bls_pop: newcomer.bls.proof_of_possession().to_bytes().to_vec(),
        }),
    );
    assert_eq!(tree.parent.block_codes(&[join]).unwrap(), [0]);
    let joined_number = genesis_number + 1;

    // The child declares it in its next checkpoint, signed by the genesis set, and hands
    // CometBFT the newcomer's power in the block that cuts it.
    let first = accepted(&tree) + PERIOD;
    let mut declaring = None;
    for height in (first..).step_by(PERIOD as usize).take(10) {
        until_accepted(&mut tree, height);
        if declared(&tree, height).configuration_number == joined_number {
            declaring = Some(height);
            break;
        }
        assert_eq!(confirmed(&tree), (genesis_number, 3));
    }
    let declaring = declaring.expect("a checkpoint declared the new set");
    let updates = tree.child.validator_updates(declaring);
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0].ed25519_pub_key, newcomer.cometbft_key);
    assert_eq!(updates[0].power, 10);
    // Accepting it confirmed the set of four, which signs the checkpoints after it (three of
    // the four sign here: 30 of 40 units of power).
    assert_eq!(confirmed(&tree), (joined_number, 4));
    until_accepted(&mut tree, declaring + 2 * PERIOD);
    let store = tree.child.validators()[0].app.store();
    assert_eq!(checkpoints::signing_set(store).unwrap().len(), 4);

    // The newcomer leaves: its collateral stays locked until a checkpoint confirms it.
    let before = parent_balance(&tree, 0);
    let leave = tree.accounts.signed(
        0,
        Msg::SubnetLeave(pb::SubnetLeave {
            subnet: CHILD.into(),
        }),
    );
    assert_eq!(tree.parent.block_codes(&[leave]).unwrap(), [0]);
    let fee = before.checked_sub(parent_balance(&tree, 0)).unwrap();
    let left_number = joined_number + 1;
    let mut confirming = None;
    let first = accepted(&tree) + PERIOD;
    for height in (first..).step_by(PERIOD as usize).take(10) {
        until_accepted(&mut tree, height);
        if declared(&tree, height).configuration_number == left_number {
            confirming = Some(height);
            break;
        }
        assert_eq!(
            before.checked_sub(parent_balance(&tree, 0)).unwrap(),
            fee,
            "collateral paid back before the child confirmed the leave"
        );
    }
    let confirming = confirming.expect("a checkpoint declared the set without the leaver");
    assert_eq!(confirmed(&tree), (left_number, 3));
    assert_eq!(
        parent_balance(&tree, 0),
        before
            .checked_sub(fee)
            .unwrap()
            .checked_add(Amount::from_atto(COLLATERAL))
            .unwrap(),
        "the leaver's collateral is paid back once confirmed"
    );
    let updates = tree.child.validator_updates(confirming);
    assert_eq!(updates.len(), 1);
    assert_eq!(
        (updates[0].ed25519_pub_key, updates[0].power),
        (newcomer.cometbft_key, 0)
    );
    // The genesis three go on certifying.
    until_accepted(&mut tree, confirming + 2 * PERIOD);
}
