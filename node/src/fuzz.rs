//! The node's own outside inputs under the seeded mutation fuzzer of `ipsat_tests::fuzz`: key
//! files, `ipsat.toml`, and every gRPC request the API takes. Nothing may panic; a request the
//! API refuses gets a clear status, never an internal error. `IPSAT_FUZZ_CASES` cases per
//! target; `scripts/fuzz` runs a million.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ipsat_proto::v1::{self as pb, query_service_server::QueryService as _};
use ipsat_subnet::{TestTree, TreeSpec};
use ipsat_tests::fuzz::{cases, Mutator};
use prost::Message as _;
use tonic::{Code, Request};

use crate::cometbft::CometRpc;
use crate::config::{Config, CONFIG_FILE};
use crate::grpc::Api;
use crate::keys;

fn fuzz_file(seed: u64, path: &Path, valid: &[u8], mut load: impl FnMut(&Path)) {
    let mut mutator = Mutator::new(seed);
    let seeds = [valid.to_vec()];
    for _ in 0..cases() {
        std::fs::write(path, mutator.case(&seeds)).unwrap();
        load(path);
    }
}

#[test]
fn key_files() {
    let dir = tempfile::tempdir().unwrap();
    keys::create(dir.path(), "alice").unwrap();
    let valid = std::fs::read(dir.path().join("alice.json")).unwrap();
    fuzz_file(11, &dir.path().join("alice.json"), &valid, |_| {
        if let Ok(key) = keys::load(dir.path(), "alice") {
            // Whatever was accepted names the address its secret has.
            let public = secp256k1::PublicKey::from_secret_key(
                &secp256k1::Secp256k1::signing_only(),
                &key.secret,
            );
            assert_eq!(key.address, ipsat_core::tx::address_of(&public));
        }
    });
    let bls = dir.path().join("bls.json");
    keys::create_bls(&bls).unwrap();
    let valid = std::fs::read(&bls).unwrap();
    fuzz_file(12, &bls, &valid, |path| {
        let _ = keys::load_bls(path);
    });
    let p2p = dir.path().join("p2p.json");
    keys::create_p2p(&p2p).unwrap();
    let valid = std::fs::read(&p2p).unwrap();
    fuzz_file(13, &p2p, &valid, |path| {
        let _ = keys::load_p2p(path);
    });
}

#[test]
fn node_config() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config
        .checkpoints
        .children
        .push(crate::config::ChildEndpoint {
            name: "beta".into(),
            grpc: Some("http://127.0.0.1:1".into()),
        });
    config.p2p.bootstrap.push("/ip4/127.0.0.1/tcp/1".into());
    config.write(dir.path()).unwrap();
    let valid = std::fs::read(dir.path().join(CONFIG_FILE)).unwrap();
    fuzz_file(14, &dir.path().join(CONFIG_FILE), &valid, |_| {
        let _ = Config::load(dir.path());
    });
}

/// Statuses a refused request may get: never INTERNAL or UNKNOWN.
fn refusal(code: Code) -> bool {
    matches!(
        code,
        Code::InvalidArgument | Code::NotFound | Code::FailedPrecondition | Code::Unavailable
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_requests() {
    let dir = tempfile::tempdir().unwrap();
    let mut tree = TestTree::new(
        dir.path(),
        &TreeSpec {
            parent: "/r33/alpha".parse().unwrap(),
            child: "beta".into(),
            parent_validators: 1,
            child_validators: 1,
            period: 2,
        },
    )
    .unwrap();
    for _ in 0..4 {
        tree.child.block(&[]).unwrap();
    }
    let api = |query| Api {
        query,
        rpc: CometRpc::new("http://127.0.0.1:1"),
        committed: tokio::sync::broadcast::channel(4).0,
        chain_id: "fuzz".into(),
        commit_timeout: Duration::from_millis(10),
    };
    let parent = Arc::new(api(tree.parent.validators()[0].query.clone()));
    let child = Arc::new(api(tree.child.validators()[0].query.clone()));
    let seeds = vec![
        pb::GetAccountRequest {
            address: vec![1; 20],
            prove: true,
        }
        .encode_to_vec(),
        pb::GetKeyRequest {
            keyspace: "notes".into(),
            key: b"hello".to_vec(),
            prove: true,
        }
        .encode_to_vec(),
        pb::GetSubnetRequest {
            name: "beta".into(),
        }
        .encode_to_vec(),
        pb::GetCheckpointRequest {
            child: "beta".into(),
            height: 2,
        }
        .encode_to_vec(),
    ];
    let mut mutator = Mutator::new(15);
    for case in 0..cases() {
        let bytes = mutator.case(&seeds);
        let api = if case % 2 == 0 { &parent } else { &child };
        // Each request type gets the same bytes: whatever decodes is served or refused.
        if let Ok(request) = pb::GetAccountRequest::decode(bytes.as_slice()) {
            if let Err(status) = api.get_account(Request::new(request)).await {
                assert!(refusal(status.code()), "GetAccount: {status:?}");
            }
        }
        if let Ok(request) = pb::GetKeyRequest::decode(bytes.as_slice()) {
            if let Err(status) = api.get_key(Request::new(request)).await {
                assert!(refusal(status.code()), "GetKey: {status:?}");
            }
        }
        if let Ok(request) = pb::GetKeyspaceRequest::decode(bytes.as_slice()) {
            if let Err(status) = api.get_keyspace(Request::new(request)).await {
                assert!(refusal(status.code()), "GetKeyspace: {status:?}");
            }
        }
        if let Ok(request) = pb::GetSubnetRequest::decode(bytes.as_slice()) {
            if let Err(status) = api.get_subnet(Request::new(request)).await {
                assert!(refusal(status.code()), "GetSubnet: {status:?}");
            }
        }
        if let Ok(request) = pb::GetCheckpointRequest::decode(bytes.as_slice()) {
            if let Err(status) = api.get_checkpoint(Request::new(request)).await {
                assert!(refusal(status.code()), "GetCheckpoint: {status:?}");
            }
        }
        if let Ok(request) = pb::StreamEventsRequest::decode(bytes.as_slice()) {
            if let Err(status) = api.stream_events(Request::new(request)).await {
                assert!(refusal(status.code()), "StreamEvents: {status:?}");
            }
        }
    }
}
