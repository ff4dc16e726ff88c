//! Verifying a checkpoint certificate as a parent does, at 4, 16, 64 and 100 validators:
//! reading each signer's stored (uncompressed) BLS key, summing power, and one
//! FastAggregateVerify. The baseline in the same run is one plain BLS signature check, so
//! the ratio shows how far a certificate is from the cost of a single signature.
//!   cargo bench --workspace --bench certificate

#![allow(clippy::unwrap_used)] // A benchmark fails by panicking; a panic names the failed step.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ipsat_checkpoint::{BlsPublicKey, BlsSecretKey, Certificate, Signer};

const DIGEST: [u8; 32] = [0x5a; 32];

fn keys(n: usize) -> Vec<BlsSecretKey> {
    (0..n)
        .map(|i| {
            let mut seed = [7u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_be_bytes());
            BlsSecretKey::from_seed(&seed).unwrap()
        })
        .collect()
}

fn verification(c: &mut Criterion) {
    let mut group = c.benchmark_group("certificate");
    let single = keys(1);
    let public = single[0].public_key();
    let signature = single[0].sign(&DIGEST);
    group.bench_function("baseline: one BLS signature", |b| {
        b.iter(|| public.verify(&DIGEST, &signature).unwrap())
    });
    for n in [4usize, 16, 64, 100] {
        let secrets = keys(n);
        let stored: Vec<[u8; 96]> = secrets
            .iter()
            .map(|k| k.public_key().to_uncompressed())
            .collect();
        // Every member signs: the most keys to add up, the worst case for the verifier.
        let signatures: Vec<_> = secrets
            .iter()
            .enumerate()
            .map(|(i, k)| (i, k.sign(&DIGEST)))
            .collect();
        let certificate = Certificate::aggregate(n, &signatures).unwrap();
        eprintln!(
            "certificate of {n}: {} bytes (bitmap {} + aggregate 96)",
            certificate.signers.len() + 96,
            certificate.signers.len()
        );
        group.bench_with_input(BenchmarkId::new("verify from state", n), &n, |b, _| {
            b.iter(|| {
                let set: Vec<Signer> = stored
                    .iter()
                    .map(|bytes| Signer {
                        key: BlsPublicKey::from_trusted_uncompressed(bytes).unwrap(),
                        power: 10,
                    })
                    .collect();
                certificate.verify(&set, &DIGEST).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, verification);
criterion_main!(benches);
