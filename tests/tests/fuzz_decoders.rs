//! Every decoder of outside bytes, fed valid inputs with random damage and random bytes
//! (`ipsat_tests::fuzz`): none panics, each answers with a specific error, and whatever is
//! accepted is exactly a canonical encoding (so no input has a second valid form). The node's
//! own inputs (key files, `ipsat.toml`, gRPC requests) are fuzzed in `node/src/fuzz.rs`.
//! `IPSAT_FUZZ_CASES` cases per target; `scripts/fuzz` runs a million.

#![allow(clippy::unwrap_used)] // A test fails by panicking; a panic names the failed step.

use ipsat_anchor::bitcoin::absolute::LockTime;
use ipsat_anchor::bitcoin::block::{Header, Version as BlockVersion};
use ipsat_anchor::bitcoin::hashes::{sha256d, Hash as _};
use ipsat_anchor::bitcoin::transaction::Version;
use ipsat_anchor::bitcoin::{
    Amount, Block, BlockHash, CompactTarget, OutPoint, ScriptBuf, Sequence, Transaction, TxIn,
    TxMerkleNode, TxOut, Txid, Witness,
};
use ipsat_anchor::{anchor_script, AnchorProof, ChainTrust};
use ipsat_checkpoint::{
    BlsSecretKey, Certificate, Checkpoint, CheckpointHash, SubnetHash, ValidatorSetHash,
};
use ipsat_core::blocktree::{BlocktreeProof, TrustRoots};
use ipsat_core::system::SystemTx;
use ipsat_core::{tx, Address, CheckpointVote, SubnetId, VoteExtension};
use ipsat_proto::v1::{self as pb, tx_body::Msg};
use ipsat_tests::fuzz::{cases, Mutator};
use ipsat_tests::{sign_for, transfer};
use secp256k1::SecretKey;

fn subnet() -> SubnetId {
    "/r33/alpha".parse().unwrap()
}

/// Runs `check` on every case of a target; the cases are reproducible from `seed`.
fn fuzz(seed: u64, seeds: &[Vec<u8>], mut check: impl FnMut(&[u8])) {
    let mut mutator = Mutator::new(seed);
    for _ in 0..cases() {
        let case = mutator.case(seeds);
        check(&case);
    }
    // The valid inputs themselves pass too.
    for seed in seeds {
        check(seed);
    }
}

fn signed_txs() -> Vec<Vec<u8>> {
    let key = SecretKey::from_slice(&[3; 32]).unwrap();
    let bls = BlsSecretKey::from_seed(&[4; 32]).unwrap();
    let messages = vec![
        transfer(Address([9; 20]), 12_345),
        Msg::KvPut(pb::KvPut {
            keyspace: "notes".into(),
            key: b"hello".to_vec(),
            value: b"world".to_vec(),
        }),
        Msg::SubnetJoin(pb::SubnetJoin {
            subnet: "beta".into(),
            collateral: "1000000000".into(),
            cometbft_key: vec![5; 32],
            bls_key: bls.public_key().to_compressed().to_vec(),
            bls_pop: bls.proof_of_possession().to_bytes().to_vec(),
        }),
    ];
    messages
        .into_iter()
        .enumerate()
        .map(|(nonce, msg)| sign_for(&subnet(), &key, nonce as u64, msg))
        .collect()
}

#[test]
fn signed_transactions() {
    let seeds = signed_txs();
    fuzz(1, &seeds, |raw| match tx::verify(raw, &subnet()) {
        // A valid signature over a damaged body would be a second valid transaction.
        Ok(_) => assert!(
            seeds.iter().any(|s| s == raw),
            "a mutated transaction verified"
        ),
        Err(e) => assert!(e.code() > 0),
    });
}

fn checkpoint() -> Checkpoint {
    Checkpoint {
        subnet: SubnetHash::of_path("/r33/alpha/beta"),
        height: 40,
        block_hash: [1; 32],
        state_root: [2; 32],
        history_root: [3; 32],
        cross_msgs_root: [0; 32],
        cross_msgs_count: 0,
        next_validator_set_hash: ValidatorSetHash([4; 32]),
        configuration_number: 3,
        previous: CheckpointHash([5; 32]),
    }
}

fn certificate() -> Certificate {
    let keys: Vec<BlsSecretKey> = (1..=3u8)
        .map(|i| BlsSecretKey::from_seed(&[i; 32]).unwrap())
        .collect();
    let signatures: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (i, k.sign(b"digest")))
        .collect();
    Certificate::aggregate(3, &signatures).unwrap()
}

#[test]
fn system_transactions() {
    let seeds = vec![
        SystemTx::OwnCertificate {
            height: 40,
            certificate: certificate(),
            gateway_signatures: Vec::new(),
        }
        .encode(),
        SystemTx::ChildCheckpoint {
            subnet: "beta".into(),
            checkpoint: Box::new(checkpoint()),
            certificate: certificate(),
            releases: Vec::new(),
            messages: Vec::new(),
        }
        .encode(),
    ];
    fuzz(2, &seeds, |raw| match SystemTx::decode(raw) {
        Ok(Some(decoded)) => assert_eq!(decoded.encode(), raw, "a non-canonical form decoded"),
        Ok(None) => assert_ne!(raw.first(), Some(&0)),
        Err(e) => assert!(e.code() > 0),
    });
}

#[test]
fn vote_extensions_and_checkpoints() {
    let vote = VoteExtension {
        checkpoint: Some(CheckpointVote {
            height: 40,
            signature: BlsSecretKey::from_seed(&[1; 32]).unwrap().sign(b"digest"),
            gateway_signature: None,
        }),
        rsk: None,
    };
    fuzz(3, &[vote.encode()], |raw| {
        if let Ok(decoded) = VoteExtension::decode(raw) {
            assert_eq!(decoded.encode(), raw);
        }
    });
    fuzz(4, &[checkpoint().abi_encode().to_vec()], |raw| {
        if let Ok(decoded) = Checkpoint::abi_decode(raw) {
            assert_eq!(decoded.abi_encode().as_slice(), raw);
        }
    });
}

fn anchor_proof() -> Vec<u8> {
    let anchor = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(Txid::from_byte_array([7; 32]), 1),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            witness: Witness::new(),
        }],
        output: vec![
            TxOut {
                value: Amount::ZERO,
                script_pubkey: anchor_script(&[0xd1; 32]),
            },
            TxOut {
                value: Amount::from_sat(5_000),
                script_pubkey: ScriptBuf::from_bytes(vec![0x51]),
            },
        ],
    };
    let mut other = anchor.clone();
    other.output[1].value = Amount::from_sat(6_000);
    let mut block = Block {
        header: Header {
            version: BlockVersion::TWO,
            prev_blockhash: BlockHash::all_zeros(),
            merkle_root: TxMerkleNode::all_zeros(),
            time: 1_700_000_000,
            bits: CompactTarget::from_consensus(0x207f_ffff),
            nonce: 0,
        },
        txdata: vec![other, anchor.clone()],
    };
    block.header.merkle_root = block.compute_merkle_root().unwrap();
    let mut later = block.header;
    later.prev_blockhash = block.block_hash();
    AnchorProof::from_block(&block, &anchor.compute_txid(), vec![later])
        .unwrap()
        .encode()
}

#[test]
fn anchor_proofs() {
    let check = |raw: &[u8]| {
        if let Ok(decoded) = AnchorProof::decode(raw) {
            assert_eq!(decoded.encode(), raw, "a non-canonical proof decoded");
        }
    };
    fuzz(5, &[anchor_proof()], |raw| {
        check(raw);
        // Again with the checksum made right, so the damage reaches the parser behind it.
        if raw.len() >= 4 {
            let mut fixed = raw.to_vec();
            let body = fixed.len() - 4;
            let sum = sha256d::Hash::hash(&fixed[..body]);
            fixed[body..].copy_from_slice(&sum.as_byte_array()[..4]);
            check(&fixed);
        }
    });
}

/// The real depth-2 blocktree proof kept as a benchmark fixture: every mutation that still
/// decodes re-encodes to itself and is refused by the verifier unless it is the original.
#[test]
fn blocktree_proofs() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../core/benches/fixtures/blocktree-proof-depth2.ipbt"
    );
    let original = std::fs::read(path).unwrap();
    let proof = BlocktreeProof::decode(&original).unwrap();
    let tip = AnchorProof::decode(&proof.anchor.bitcoin)
        .unwrap()
        .headers
        .last()
        .unwrap()
        .block_hash();
    let mut gateway = [0u8; 20];
    hex::decode_to_slice("5fbdb2315678afecb367f032d93f642f64180aa3", &mut gateway).unwrap();
    let trust = TrustRoots {
        rsk_chain_id: 33,
        gateway,
        network: ipsat_anchor::bitcoin::Network::Regtest,
        bitcoin: ChainTrust::Extends(tip),
    };
    assert!(proof.verify(&trust).is_ok());
    fuzz(6, std::slice::from_ref(&original), |raw| {
        if let Ok(decoded) = BlocktreeProof::decode(raw) {
            assert_eq!(decoded.encode(), raw, "a non-canonical proof decoded");
            if raw != original.as_slice() {
                assert!(decoded.verify(&trust).is_err(), "a damaged proof verified");
            }
        }
    });
}
