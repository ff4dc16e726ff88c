//! Light-client verification of a parent header, as every child validator runs it on each
//! parent update: adjacent (the next height, signed by the trusted next validators) and
//! skipping (a later height, trusted through more than a third of the trusted set), for
//! parents of 4, 16 and 100 validators.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ipsat_core::light::{BlockToSign, ChainSigner, TrustedState};

const GENESIS_NANOS: i64 = 1_700_000_000_000_000_000;
const SECOND: i64 = 1_000_000_000;

fn headers(
    validators: usize,
) -> (
    TrustedState,
    Vec<(&'static str, ipsat_core::light::LightBlock)>,
) {
    let secrets: Vec<[u8; 32]> = (0..validators)
        .map(|i| *blake3::hash(&(i as u64).to_be_bytes()).as_bytes())
        .collect();
    let signer = ChainSigner::new("bench-parent", secrets, 10).expect("valid keys");
    let sign = |height: u64, previous| {
        signer
            .sign(
                BlockToSign {
                    height,
                    time_unix_nanos: GENESIS_NANOS + height as i64 * SECOND,
                    app_hash: &[7; 32],
                    seed: &height.to_be_bytes(),
                    proposer: height as usize % validators,
                },
                previous,
            )
            .expect("a well-formed header")
    };
    let trusted = sign(1, None);
    let adjacent = sign(2, Some(&trusted));
    let skipping = sign(1_000, None);
    (
        TrustedState::of(&trusted),
        vec![("adjacent", adjacent), ("skipping", skipping)],
    )
}

fn verification(c: &mut Criterion) {
    let mut group = c.benchmark_group("parent_header_verification");
    let now =
        tendermint::Time::from_unix_timestamp(GENESIS_NANOS / SECOND + 2_000, 0).expect("in range");
    let period = Duration::from_secs(14 * 24 * 3600);
    for validators in [4usize, 16, 100] {
        let (trusted, targets) = headers(validators);
        for (kind, target) in targets {
            trusted
                .verify(&target, period, now)
                .expect("the benchmark's header verifies");
            group.bench_with_input(BenchmarkId::new(kind, validators), &target, |b, target| {
                b.iter(|| trusted.verify(target, period, now).expect("verifies"))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, verification);
criterion_main!(benches);
