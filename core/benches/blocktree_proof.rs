//! Offline verification of blocktree proofs of depth 1 (a key of a level-1 subnet) and depth 2
//! (a key of a level-2 subnet), as `ipsat proof verify` runs it: decode, then every hash, the
//! gateway quorum's ECDSA recoveries and the Bitcoin headers' proof of work.
//!
//! The fixtures are real proofs written by `node/tests/level_one.rs` (anvil, btcd and a tree of
//! 4 + 3 validators on CometBFT) into its `CARGO_TARGET_TMPDIR`, copied here; the gateway is
//! anvil's first deployment from its first dev account.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ipsat_core::anchor_proof::{AnchorProof, ChainTrust};
use ipsat_core::blocktree::{BlocktreeProof, TrustRoots};

const GATEWAY: &str = "5fbdb2315678afecb367f032d93f642f64180aa3";

fn fixture(depth: usize) -> (Vec<u8>, TrustRoots) {
    let path = format!(
        "{}/benches/fixtures/blocktree-proof-depth{depth}.ipbt",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let proof = BlocktreeProof::decode(&bytes).expect("a fixture decodes");
    let anchor = AnchorProof::decode(&proof.anchor.bitcoin).expect("its anchor decodes");
    let tip = anchor.headers.last().expect("headers").block_hash();
    let mut gateway = [0u8; 20];
    hex::decode_to_slice(GATEWAY, &mut gateway).expect("hex");
    let trust = TrustRoots {
        rsk_chain_id: 33,
        gateway,
        network: bitcoin::Network::Regtest,
        bitcoin: ChainTrust::Extends(tip),
    };
    proof.verify(&trust).expect("a fixture verifies");
    (bytes, trust)
}

fn verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("blocktree_proof_verify");
    group.measurement_time(Duration::from_secs(5));
    for depth in [1, 2] {
        let (bytes, trust) = fixture(depth);
        eprintln!("depth {depth}: {} bytes", bytes.len());
        group.bench_with_input(BenchmarkId::from_parameter(depth), &bytes, |b, bytes| {
            b.iter(|| {
                BlocktreeProof::decode(bytes)
                    .and_then(|p| p.verify(&trust))
                    .expect("verifies")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
