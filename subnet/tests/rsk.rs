//! A level-1 subnet under the RSK gateway, in process over real RocksDB: its certificates
//! carry gateway signatures that recover to its signing set, and RBTC deposited on RSK is
//! minted only from a point a quorum attested, with the deposits that chain to its digest.

#![allow(clippy::unwrap_used)] // A test fails by panicking; a panic names the failed step.

use std::collections::BTreeMap;

use ipsat_checkpoint::CheckpointDomain;
use ipsat_core::rsk::{chain_deposit, GatewaySignature, RskDeposit, RskPoint};
use ipsat_core::{Address, Amount, SubnetId, SystemTx, TxError};
use ipsat_subnet::components::rsk::RskObservation;
use ipsat_subnet::components::{checkpoints, parent, rsk};
use ipsat_subnet::genesis::CheckpointParams;
use ipsat_subnet::test_chain::TestChainError;
use ipsat_subnet::{genesis_validators, FeeParams, Genesis, TestChain, TestKeys};

const PERIOD: u64 = 3;
const STEP: u64 = 10;
const COLLATERAL: u128 = 10_000_000_000;
const GATEWAY: [u8; 20] = [0x47; 20];

fn subnet() -> SubnetId {
    "/r33/alpha".parse().unwrap()
}

/// A level-1 subnet of `n` equal validators under the gateway at [`GATEWAY`].
fn chain(dir: &std::path::Path, n: usize) -> TestChain {
    let genesis = Genesis {
        subnet_id: subnet(),
        fees: FeeParams::default(),
        accounts: Vec::new(),
        validators: genesis_validators("alpha", n, Amount::from_atto(COLLATERAL)),
        checkpoints: Some(CheckpointParams {
            period: PERIOD,
            configuration_number: 1,
            verifier: Some(Address(GATEWAY)),
            rsk_attestation_step: STEP,
        }),
        parent: None,
    };
    TestChain::new(dir, "alpha", n, &serde_json::to_vec(&genesis).unwrap()).unwrap()
}

fn balance(chain: &TestChain, address: Address) -> Amount {
    let read = chain.validators()[0]
        .query
        .account(&address, false)
        .unwrap();
    Amount::from_atto(read.value.map(|a| a.balance).unwrap_or_default())
}

fn deposits(count: u64) -> Vec<RskDeposit> {
    (0..count)
        .map(|nonce| RskDeposit {
            recipient: Address([0xd0 + nonce as u8; 20]),
            amount: Amount::from_atto(1_000 + u128::from(nonce)),
            nonce,
        })
        .collect()
}

/// What a follower reads at RSK `height` when the gateway has emitted `deposits`.
fn observation(height: u64, deposits: &[RskDeposit]) -> RskObservation {
    let digest = deposits.iter().fold([0; 32], |d, e| chain_deposit(&d, e));
    RskObservation {
        point: Some(RskPoint {
            height,
            block_hash: [height as u8; 32],
            deposit_count: deposits.len() as u64,
            deposits_digest: digest,
        }),
        deposits: deposits
            .iter()
            .map(|d| (d.nonce, *d))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn observe(chain: &TestChain, validators: std::ops::Range<usize>, seen: &RskObservation) {
    for validator in &chain.validators()[validators] {
        validator.app.rsk_inputs().observe(seen.clone());
    }
}

fn last_point(chain: &TestChain) -> RskPoint {
    rsk::last_point(chain.validators()[0].app.store())
        .unwrap()
        .unwrap()
}

#[test]
fn level_one_certificates_carry_gateway_signatures_of_the_signing_set() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = chain(dir.path(), 4);
    while chain.validators()[0]
        .query
        .checkpoint_progress()
        .unwrap()
        .unwrap()
        .1
        < PERIOD
    {
        chain.block(&[]).unwrap();
    }
    let store = chain.validators()[0].app.store();
    let stored = checkpoints::certified(store, PERIOD).unwrap().unwrap();
    let (checkpoint, _) = stored.decode().unwrap();
    let digest = checkpoint.digest(&CheckpointDomain {
        chain_id: 33,
        verifier: GATEWAY,
    });
    let set = checkpoints::signing_set(store).unwrap();
    let signatures = stored.decode_gateway_signatures().unwrap();
    assert!(signatures.len() >= 3, "a quorum of 4 is at least 3 signers");
    for (index, signature) in &signatures {
        assert_eq!(
            signature.signer(&digest.0).unwrap(),
            Address(set[*index as usize].address)
        );
    }
}

/// Alters the gateway signatures of a certificate, given a key outside the set.
type Forgery = fn(&mut Vec<(u32, GatewaySignature)>, &secp256k1::SecretKey);

#[test]
fn forged_gateway_signatures_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = chain(dir.path(), 4);
    while chain.height() < PERIOD + 1 {
        chain.block(&[]).unwrap();
    }
    let last_commit = chain.last_commit_mut().clone();
    let outsider = TestKeys::new("outsider", 0).account_secret;
    // One signature by a key outside the set; then too few signatures for a quorum.
    let forgeries: [Forgery; 2] = [
        |signatures, outsider| signatures[0].1 = GatewaySignature::sign(outsider, &[1; 32]),
        |signatures, _| signatures.truncate(2),
    ];
    for forge in forgeries {
        *chain.last_commit_mut() = last_commit.clone();
        let result = chain.block_with(&[], |proposal| {
            let Ok(Some(SystemTx::OwnCertificate {
                height,
                certificate,
                mut gateway_signatures,
            })) = SystemTx::decode(&proposal[0])
            else {
                panic!("the proposal carries the certificate first");
            };
            forge(&mut gateway_signatures, &outsider);
            proposal[0] = SystemTx::OwnCertificate {
                height,
                certificate,
                gateway_signatures,
            }
            .encode();
        });
        assert!(matches!(
            result,
            Err(TestChainError::ProposalRejected { .. })
        ));
    }
    *chain.last_commit_mut() = last_commit;
    chain.block(&[]).unwrap();
    let store = chain.validators()[0].app.store();
    assert!(checkpoints::certified(store, PERIOD).unwrap().is_some());
}

#[test]
fn rsk_deposits_are_minted_once_from_a_quorum_attested_point() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = chain(dir.path(), 4);
    chain.block(&[]).unwrap();
    let first = deposits(2);

    // Two of four validators saw the deposits: no quorum, nothing minted.
    observe(&chain, 0..2, &observation(20, &first));
    for _ in 0..3 {
        chain.block(&[]).unwrap();
    }
    assert_eq!(last_point(&chain).height, 0);
    assert_eq!(balance(&chain, first[0].recipient), Amount::ZERO);

    // A height off the attestation step is never signed.
    observe(&chain, 0..4, &observation(25, &first));
    for _ in 0..3 {
        chain.block(&[]).unwrap();
    }
    assert_eq!(last_point(&chain).height, 0);

    // All saw it: minted once, however many blocks follow.
    observe(&chain, 0..4, &observation(20, &first));
    for _ in 0..4 {
        chain.block(&[]).unwrap();
    }
    assert_eq!(last_point(&chain), observation(20, &first).point.unwrap());
    for deposit in &first {
        assert_eq!(balance(&chain, deposit.recipient), deposit.amount);
    }
    let store = chain.validators()[0].app.store();
    assert_eq!(parent::minted(store).unwrap(), Amount::from_atto(2_001));

    // A proposer that inflates a deposit under the quorum's certificate changes nothing.
    let more = deposits(3);
    observe(&chain, 0..4, &observation(30, &more));
    chain.block(&[]).unwrap();
    let result = chain.block_with(&[], |proposal| {
        let position = proposal
            .iter()
            .position(|tx| matches!(SystemTx::decode(tx), Ok(Some(SystemTx::RskUpdate(_)))))
            .expect("the proposer injects the attested update");
        let Ok(Some(SystemTx::RskUpdate(mut update))) = SystemTx::decode(&proposal[position])
        else {
            unreachable!()
        };
        update.deposits[0].amount = Amount::from_atto(1_000_000);
        proposal[position] = SystemTx::RskUpdate(update).encode();
    });
    let committed = result.unwrap();
    assert!(committed
        .tx_results
        .iter()
        .any(|r| r.code == TxError::TopDownProof(String::new()).code()));
    assert_eq!(last_point(&chain).height, 20);
    assert_eq!(balance(&chain, more[2].recipient), Amount::ZERO);

    // The honest update lands on a later height.
    for _ in 0..3 {
        chain.block(&[]).unwrap();
    }
    assert_eq!(last_point(&chain).height, 30);
    assert_eq!(balance(&chain, more[2].recipient), more[2].amount);
    assert_eq!(
        parent::minted(chain.validators()[0].app.store()).unwrap(),
        Amount::from_atto(3_003)
    );
}
