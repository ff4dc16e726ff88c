//! The state machine's own cost per transaction, without CometBFT: signature recovery, mempool
//! admission, and executing plus durably committing a block of transfers on RocksDB.
//!   cargo bench --workspace --bench state_machine

#![allow(clippy::unwrap_used)] // A test fails by panicking; a panic names the failed step.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ipsat_core::tx::{address_of, sign, verify};
use ipsat_core::{Address, Amount, SubnetId};
use ipsat_proto::v1::{self as pb, tx_body::Msg};
use ipsat_subnet::{BlockContext, FeeParams, Genesis, GenesisAccount, Store, SubnetApp};
use secp256k1::{PublicKey, Secp256k1, SecretKey};

const SENDERS: usize = 1_000;
const FEE: u128 = 100_000_000_000;

fn subnet() -> SubnetId {
    "/r33/bench".parse().expect("valid subnet id")
}

fn sender_key(n: usize) -> SecretKey {
    let mut seed = [0x11u8; 32];
    seed[..8].copy_from_slice(&(n as u64 + 1).to_be_bytes());
    SecretKey::from_slice(&seed).expect("valid secret key")
}

fn address(key: &SecretKey) -> Address {
    address_of(&PublicKey::from_secret_key(&Secp256k1::new(), key))
}

/// A signed 146-byte transfer, the size `scripts/bench` sends.
fn transfer(key: &SecretKey, nonce: u64) -> Vec<u8> {
    let body = pb::TxBody {
        subnet_id: subnet().to_string(),
        from: address(key).0.to_vec(),
        nonce,
        fee: FEE.to_string(),
        msg: Some(Msg::Transfer(pb::Transfer {
            to: vec![0x77; 20],
            amount: "1".into(),
        })),
    };
    sign(key, &subnet(), &body)
}

/// A fresh node on RocksDB in a temporary directory, every sender funded.
fn node(keys: &[SecretKey]) -> (tempfile::TempDir, SubnetApp) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = Arc::new(Store::open(dir.path()).expect("open store"));
    let app = SubnetApp::open(store).expect("open app");
    let genesis = Genesis {
        subnet_id: subnet(),
        fees: FeeParams::default(),
        accounts: keys
            .iter()
            .map(|key| GenesisAccount {
                address: address(key),
                balance: Amount::from_atto(10u128.pow(30)),
            })
            .collect(),
        validators: Vec::new(),
        checkpoints: None,
        parent: None,
    };
    app.init_chain(&serde_json::to_vec(&genesis).expect("genesis json"))
        .expect("init chain");
    (dir, app)
}

fn signature_recovery(c: &mut Criterion) {
    let tx = transfer(&sender_key(0), 0);
    c.bench_function("verify one transfer (decode + secp256k1 recovery)", |b| {
        b.iter(|| verify(&tx, &subnet()).expect("valid transaction"))
    });
}

fn mempool_admission(c: &mut Criterion) {
    let key = sender_key(0);
    let (_dir, app) = node(std::slice::from_ref(&key));
    let mut nonce = 0;
    c.bench_function("check_tx one new transfer", |b| {
        b.iter_custom(|iters| {
            let txs: Vec<Vec<u8>> = (nonce..nonce + iters).map(|n| transfer(&key, n)).collect();
            nonce += iters;
            let started = Instant::now();
            for tx in &txs {
                let result = app.check_tx(tx).expect("check_tx");
                assert_eq!(result.code, 0, "{}", result.log);
            }
            started.elapsed()
        })
    });
}

fn block_execution(c: &mut Criterion) {
    let keys: Vec<SecretKey> = (0..SENDERS).map(sender_key).collect();
    let (_dir, app) = node(&keys);
    let mut height = 0u64;
    let mut group = c.benchmark_group("block");
    group.sample_size(10);
    group.throughput(Throughput::Elements(SENDERS as u64));
    group.bench_function("finalize + commit 1,000 verified transfers", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let txs: Vec<Vec<u8>> = keys.iter().map(|k| transfer(k, height)).collect();
                height += 1;
                // Signatures are checked first, as ProcessProposal does before FinalizeBlock.
                let context = BlockContext {
                    height,
                    time_unix_nanos: 0,
                    proposer: [1; 20],
                    block_hash: vec![0; 32],
                };
                assert!(app.process_proposal(&context, &txs));
                let started = Instant::now();
                let block = app.finalize_block(&context, &txs).expect("finalize");
                app.commit().expect("commit");
                timed += started.elapsed();
                assert!(block.tx_results.iter().all(|r| r.code == 0));
            }
            timed
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    signature_recovery,
    mempool_admission,
    block_execution
);
criterion_main!(benches);
