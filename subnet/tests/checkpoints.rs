//! Checkpoints certified by BLS vote extensions, and their acceptance in the parent, on
//! in-process chains over real RocksDB: the quorum rules, the extensions that must never
//! count, a proposer that omits or forges certificates, and every refusal of a child's
//! checkpoint with the parent's state unchanged.

#![allow(clippy::unwrap_used)] // A test fails by panicking; a panic names the failed step.

use ipsat_checkpoint::{BlsSecretKey, Certificate, Checkpoint, CheckpointDomain};
use ipsat_core::system::is_system;
use ipsat_core::{Amount, CheckpointVote, SubnetId, SystemTx, TxError, VoteExtension};
use ipsat_proto::v1::{self as pb, tx_body::Msg};
use ipsat_subnet::components::{checkpoints, registry};
use ipsat_subnet::test_chain::TestChainError;
use ipsat_subnet::{
    genesis_validators, FeeParams, Genesis, TestChain, TestKeys, TestTree, TreeSpec,
};

const PERIOD: u64 = 3;
const COLLATERAL: u128 = 10_000_000_000;

fn subnet() -> SubnetId {
    "/r33/alpha".parse().unwrap()
}

/// A subnet of `n` equal validators that checkpoints every [`PERIOD`] blocks.
fn chain(dir: &std::path::Path, n: usize) -> TestChain {
    let genesis = Genesis {
        subnet_id: subnet(),
        fees: FeeParams::default(),
        accounts: Vec::new(),
        validators: genesis_validators("alpha", n, Amount::from_atto(COLLATERAL)),
        checkpoints: Some(ipsat_subnet::genesis::CheckpointParams {
            period: PERIOD,
            configuration_number: 1,
            verifier: None,
            rsk_attestation_step: ipsat_subnet::genesis::DEFAULT_RSK_ATTESTATION_STEP,
        }),
        parent: None,
    };
    TestChain::new(dir, "alpha", n, &serde_json::to_vec(&genesis).unwrap()).unwrap()
}

fn certified_height(chain: &TestChain) -> u64 {
    let query = &chain.validators()[0].query;
    query.checkpoint_progress().unwrap().unwrap().1
}

/// Runs blocks until the checkpoint of `height` is cut and the next block's votes carry
/// signatures of it (they reach the proposer of the block after).
fn until_signed(chain: &mut TestChain, height: u64) {
    while chain.height() < height + 1 {
        chain.block(&[]).unwrap();
    }
}

fn system_txs(block: &[Vec<u8>]) -> usize {
    block.iter().filter(|tx| is_system(tx)).count()
}

#[test]
fn certificates_chain_checkpoints_on_every_validator() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = chain(dir.path(), 4);
    for _ in 0..(4 * PERIOD + 2) {
        chain.block(&[]).unwrap();
    }
    assert_eq!(certified_height(&chain), 4 * PERIOD);
    let mut previous = [0u8; 32];
    for n in 1..=4 {
        let height = n * PERIOD;
        for validator in chain.validators() {
            let stored = checkpoints::certified(validator.app.store(), height)
                .unwrap()
                .unwrap();
            let (checkpoint, certificate) = stored.decode().unwrap();
            assert_eq!(checkpoint.height, height);
            assert_eq!(
                checkpoint.previous.0, previous,
                "checkpoint {height} chains"
            );
            assert_eq!(checkpoint.subnet, subnet().hash());
            let set = registry::signers(&checkpoints::signing_set(validator.app.store()).unwrap())
                .unwrap();
            let digest = checkpoint.digest(&CheckpointDomain::subnet_parent(33));
            assert!(certificate.verify(&set, &digest.0).unwrap() >= 30);
            // The checkpoint commits to the block's roots as the validators committed them.
            let committed = validator
                .query
                .own_checkpoint(height)
                .unwrap()
                .checkpoint
                .unwrap();
            assert_eq!(committed.hash, checkpoint.hash().0.to_vec());
        }
        previous = chain.validators()[0]
            .query
            .own_checkpoint(height)
            .unwrap()
            .checkpoint
            .unwrap()
            .hash
            .try_into()
            .unwrap();
    }
}

#[test]
fn more_than_two_thirds_of_the_power_makes_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = chain(dir.path(), 4);
    until_signed(&mut chain, PERIOD);
    // Two of four extensions: no certificate, and the chain goes on.
    for vote in &mut chain.last_commit_mut().votes[2..] {
        vote.extension.clear();
    }
    let mut proposed = Vec::new();
    chain
        .block_with(&[], |proposal| proposed = proposal.clone())
        .unwrap();
    assert_eq!(system_txs(&proposed), 0, "two of four is not a quorum");
    assert_eq!(certified_height(&chain), 0);
    // Votes of validators who did not commit the block do not count either.
    let votes = &mut chain.last_commit_mut().votes;
    votes[2].extension.clear();
    votes[3].committed = false;
    chain
        .block_with(&[], |proposal| proposed = proposal.clone())
        .unwrap();
    assert_eq!(system_txs(&proposed), 0);
    // Three of four: certified.
    chain.block(&[]).unwrap();
    assert_eq!(certified_height(&chain), PERIOD);
}

#[test]
fn replayed_foreign_duplicated_or_misdirected_extensions_never_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = chain(dir.path(), 4);
    until_signed(&mut chain, PERIOD);
    // Validator 2's honest extension for the first checkpoint, to replay later.
    let old = chain.last_commit_mut().votes[2].extension.clone();
    chain.block(&[]).unwrap();
    assert_eq!(certified_height(&chain), PERIOD);
    until_signed(&mut chain, 2 * PERIOD);
    let honest = chain.last_commit_mut().votes.clone();
    let pending = chain.validators()[0]
        .query
        .own_checkpoint(2 * PERIOD)
        .unwrap()
        .checkpoint
        .unwrap();
    let digest: [u8; 32] = pending.digest.clone().try_into().unwrap();
    let address = |i: usize| TestKeys::new("alpha", i).cometbft_address();
    let stranger = BlsSecretKey::from_seed(&[9; 32]).unwrap();
    let extension = |signature| {
        VoteExtension {
            checkpoint: Some(CheckpointVote {
                height: 2 * PERIOD,
                signature,
                gateway_signature: None,
            }),
            rsk: None,
        }
        .encode()
    };
    let foreign = extension(stranger.sign(&digest));
    let other_digest = extension(TestKeys::new("alpha", 2).bls.sign(&[7; 32]));
    // Each case keeps two honest extensions and adds one that must not make the third.
    let cases: Vec<(&str, Vec<u8>, [u8; 20], bool)> = vec![
        ("replayed from another height", old, address(2), true),
        ("signed by a non-member", foreign.clone(), [0xee; 20], true),
        ("signed by another key", foreign, address(2), true),
        ("over another digest", other_digest, address(2), true),
        (
            "a duplicate of a counted one",
            honest[0].extension.clone(),
            address(0),
            false,
        ),
    ];
    for (what, extension, claimed, refused) in cases {
        let verifier = &chain.validators()[0].app;
        assert_eq!(
            verifier
                .verify_vote_extension(&claimed, &extension)
                .is_err(),
            refused,
            "VerifyVoteExtension on an extension {what}"
        );
        let commit = chain.last_commit_mut();
        commit.votes = honest[..2].to_vec();
        let mut forged = honest[2].clone();
        forged.validator = claimed;
        forged.extension = extension;
        commit.votes.push(forged);
        let mut proposed = Vec::new();
        chain
            .block_with(&[], |proposal| proposed = proposal.clone())
            .unwrap();
        assert_eq!(system_txs(&proposed), 0, "an extension {what} was counted");
        assert_eq!(certified_height(&chain), PERIOD);
    }
    // An empty extension is always acceptable.
    assert!(chain.validators()[1]
        .app
        .verify_vote_extension(&address(0), &[])
        .is_ok());
    // Honest votes again: certified.
    chain.block(&[]).unwrap();
    chain.block(&[]).unwrap();
    assert_eq!(certified_height(&chain), 2 * PERIOD);
}

#[test]
fn a_proposer_that_omits_certificates_delays_checkpoints_but_not_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = chain(dir.path(), 4);
    until_signed(&mut chain, PERIOD);
    for _ in 0..(2 * PERIOD) {
        let height = chain.height();
        chain
            .block_with(&[], |proposal| proposal.retain(|tx| !is_system(tx)))
            .unwrap();
        assert_eq!(chain.height(), height + 1);
    }
    assert_eq!(
        certified_height(&chain),
        0,
        "nothing certified while omitted"
    );
    // Validators kept signing the oldest uncertified checkpoint, so the next honest proposer
    // certifies it, and the later ones follow one by one.
    chain.block(&[]).unwrap();
    assert_eq!(certified_height(&chain), PERIOD);
    chain.block(&[]).unwrap();
    chain.block(&[]).unwrap();
    assert_eq!(certified_height(&chain), 2 * PERIOD);
}

#[test]
fn forged_or_misplaced_certificates_are_rejected_and_never_enter_the_mempool() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = chain(dir.path(), 4);
    until_signed(&mut chain, PERIOD);
    let mut honest = Vec::new();
    let last_commit = chain.last_commit_mut().clone();
    // A forged aggregate: the honest bitmap with a signature of something else.
    let result = chain.block_with(&[], |proposal| {
        honest = proposal.clone();
        let Ok(Some(SystemTx::OwnCertificate {
            height,
            certificate,
            gateway_signatures,
        })) = SystemTx::decode(&proposal[0])
        else {
            panic!("the proposal carries the certificate first");
        };
        let forged = Certificate {
            signature: TestKeys::new("alpha", 0).bls.sign(b"something else"),
            ..certificate
        };
        proposal[0] = SystemTx::OwnCertificate {
            height,
            certificate: forged,
            gateway_signatures,
        }
        .encode();
    });
    assert!(matches!(
        result,
        Err(TestChainError::ProposalRejected { .. })
    ));
    // The honest certificate anywhere but first is rejected too.
    *chain.last_commit_mut() = last_commit.clone();
    let result = chain.block_with(&[], |proposal| proposal.push(proposal[0].clone()));
    assert!(matches!(
        result,
        Err(TestChainError::ProposalRejected { .. })
    ));
    // Only a proposer may carry it: the mempool refuses it.
    let result = chain.check_tx(&honest[0]).unwrap();
    assert_eq!(result.code, TxError::ProposerOnly.code());
    // The honest proposal goes through.
    *chain.last_commit_mut() = last_commit;
    chain.block(&[]).unwrap();
    assert_eq!(certified_height(&chain), PERIOD);
}

fn tree(dir: &std::path::Path) -> TestTree {
    TestTree::new(
        dir,
        &TreeSpec {
            parent: subnet(),
            child: "beta".into(),
            parent_validators: 4,
            child_validators: 3,
            period: PERIOD,
        },
    )
    .unwrap()
}

fn child_record(tree: &TestTree) -> pb::Subnet {
    tree.parent.validators()[0]
        .query
        .subnet(&tree.child_name)
        .unwrap()
        .unwrap()
        .0
}

#[test]
fn a_childs_checkpoints_are_accepted_in_the_parent_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut tree = tree(dir.path());
    let record = child_record(&tree);
    assert_eq!(record.status, pb::SubnetStatus::Active as i32);
    assert_eq!(record.genesis_validators.len(), 3);
    for _ in 0..(5 * PERIOD + 2) {
        tree.child.block(&[]).unwrap();
    }
    assert_eq!(tree.deliver(), 5);
    tree.parent.block(&[]).unwrap();
    let record = child_record(&tree);
    assert_eq!(record.last_checkpoint_height, 5 * PERIOD);
    for n in 1..=5 {
        let accepted = tree.parent.validators()[1]
            .query
            .child_checkpoint("beta", n * PERIOD)
            .unwrap()
            .checkpoint
            .unwrap();
        let own = tree.child.validators()[2]
            .query
            .own_checkpoint(n * PERIOD)
            .unwrap()
            .checkpoint
            .unwrap();
        assert_eq!(accepted.hash, own.hash);
        assert_eq!(accepted.certificate, own.certificate);
    }
    assert_eq!(
        record.last_checkpoint_hash,
        tree.child.validators()[0]
            .query
            .own_checkpoint(5 * PERIOD)
            .unwrap()
            .checkpoint
            .unwrap()
            .hash
    );
    // The same checkpoint again is a replay: refused, nothing changes.
    let replay = tree.child.validators()[0]
        .query
        .delivery_tx(PERIOD)
        .unwrap()
        .unwrap();
    let result = tree.parent.check_tx(&replay).unwrap();
    assert_eq!(
        result.code,
        TxError::CheckpointOutOfOrder {
            expected: 0,
            got: 0
        }
        .code()
    );
}

/// The child's checkpoint at `height` and the certificate its validators gave it.
fn certified(tree: &TestTree, height: u64) -> (Checkpoint, Certificate) {
    let stored = checkpoints::certified(tree.child.validators()[0].app.store(), height)
        .unwrap()
        .unwrap();
    stored.decode().unwrap()
}

fn submit(name: &str, checkpoint: &Checkpoint, certificate: &Certificate) -> Vec<u8> {
    SystemTx::ChildCheckpoint {
        subnet: name.into(),
        checkpoint: Box::new(checkpoint.clone()),
        certificate: certificate.clone(),
        releases: Vec::new(),
        messages: Vec::new(),
    }
    .encode()
}

#[test]
fn bad_child_checkpoints_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut tree = tree(dir.path());
    // A second child, to send beta's checkpoint under its name.
    let create = tree.accounts.signed(
        0,
        Msg::SubnetCreate(pb::SubnetCreate {
            name: "gamma".into(),
            min_validators: 1,
            min_collateral: "1000000000".into(),
            checkpoint_period: PERIOD,
            leave_delay: 1,
        }),
    );
    let join_key = TestKeys::new("gamma", 0);
    let join = tree.accounts.signed(
        1,
        Msg::SubnetJoin(pb::SubnetJoin {
            subnet: "gamma".into(),
            collateral: "1000000000".into(),
            cometbft_key: join_key.cometbft_key.to_vec(),
            bls_key: join_key.bls.public_key().to_compressed().to_vec(),
            bls_pop: join_key.bls.proof_of_possession().to_bytes().to_vec(),
        }),
    );
    assert_eq!(tree.parent.block_codes(&[create, join]).unwrap(), [0, 0]);
    for _ in 0..(2 * PERIOD + 2) {
        tree.child.block(&[]).unwrap();
    }
    let (first, certificate) = certified(&tree, PERIOD);
    let (second, second_certificate) = certified(&tree, 2 * PERIOD);
    let keys: Vec<BlsSecretKey> = (0..3).map(|i| TestKeys::new("child", i).bls).collect();
    let digest = first.digest(&CheckpointDomain::subnet_parent(33));
    let members = tree.parent.validators()[0]
        .query
        .subnet("beta")
        .unwrap()
        .unwrap()
        .0
        .genesis_validators;
    let index_of = |key: &BlsSecretKey| {
        members
            .iter()
            .position(|m| m.bls_key == key.public_key().to_compressed().to_vec())
            .unwrap()
    };
    let one_signer =
        Certificate::aggregate(3, &[(index_of(&keys[0]), keys[0].sign(&digest.0))]).unwrap();
    let two_claimed_one_signed = Certificate {
        signers: vec![0b011],
        signature: keys[0].sign(&digest.0),
    };
    let short_bitmap = Certificate {
        signers: Vec::new(),
        ..certificate.clone()
    };
    let mut other_child = first.clone();
    other_child.subnet = subnet().child("gamma").unwrap().hash();
    let cases: Vec<(&str, Vec<u8>, u32)> = vec![
        (
            "below quorum",
            submit("beta", &first, &one_signer),
            TxError::InvalidCertificate(String::new()).code(),
        ),
        (
            "a forged aggregate",
            submit("beta", &first, &two_claimed_one_signed),
            TxError::InvalidCertificate(String::new()).code(),
        ),
        (
            "a wrong bitmap",
            submit("beta", &first, &short_bitmap),
            TxError::InvalidCertificate(String::new()).code(),
        ),
        (
            "another child's checkpoint",
            submit("gamma", &first, &certificate),
            TxError::CheckpointMismatch(String::new()).code(),
        ),
        (
            "a checkpoint relabelled for another child",
            submit("beta", &other_child, &certificate),
            TxError::CheckpointMismatch(String::new()).code(),
        ),
        (
            "a skipped height",
            submit("beta", &second, &second_certificate),
            TxError::CheckpointOutOfOrder {
                expected: 0,
                got: 0,
            }
            .code(),
        ),
    ];
    for (what, tx, code) in cases {
        let before = child_record(&tree);
        let root_before = tree.parent.validators()[0]
            .query
            .latest()
            .unwrap()
            .unwrap()
            .state_root;
        assert_eq!(
            tree.parent.check_tx(&tx).unwrap().code,
            code,
            "{what} at CheckTx"
        );
        // A proposer that includes it anyway: the block goes on, the result is the refusal.
        let block = tree.parent.block_with(&[], |p| p.push(tx.clone())).unwrap();
        assert_eq!(block.tx_results[0].code, code, "{what} in a block");
        assert_eq!(child_record(&tree), before, "{what} changed the record");
        let root_after = tree.parent.validators()[0]
            .query
            .latest()
            .unwrap()
            .unwrap()
            .state_root;
        assert_eq!(root_after, root_before, "{what} changed the state");
    }
    // The real ones, in order, through the mempool path (fee-free, no signer).
    assert_eq!(
        tree.parent
            .check_tx(&submit("beta", &first, &certificate))
            .unwrap()
            .code,
        0
    );
    let block = tree
        .parent
        .block(&[
            submit("beta", &first, &certificate),
            submit("beta", &second, &second_certificate),
        ])
        .unwrap();
    assert!(
        block.tx_results.iter().all(|r| r.code == 0),
        "{:?}",
        block.tx_results
    );
    assert_eq!(child_record(&tree).last_checkpoint_height, 2 * PERIOD);
}
