//! Four validators on real CometBFT, separate processes on loopback: transfers and key/value
//! writes through gRPC, identical app hashes at every height, proofs checked against headers,
//! and bad input refused without changing anything.

#![allow(clippy::unwrap_used)] // A test fails by panicking; a panic names the failed step.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipsat_core::light::{self, verify_header, LightBlock, TrustRoot};
use ipsat_core::{verify_state_proof, Address};
use ipsat_proto::v1::{self as pb, tx_body::Msg};
use ipsat_tests::{address_of, transfer, Testnet, FEE};
use prost::Message as _;
use tokio_stream::StreamExt as _;

type AppHashes = Arc<Mutex<BTreeMap<u64, Vec<u8>>>>;

/// Records the app hash each node's state machine committed at each height.
async fn record_app_hashes(net: &Testnet, i: usize) -> AppHashes {
    let seen: AppHashes = Arc::default();
    let mut client = net.client(i).await.unwrap();
    let mut stream = client
        .query
        .stream_blocks(pb::StreamBlocksRequest {})
        .await
        .unwrap()
        .into_inner();
    let sink = seen.clone();
    tokio::spawn(async move {
        while let Some(Ok(block)) = stream.next().await {
            sink.lock().unwrap().insert(block.height, block.app_hash);
        }
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_agree_and_refuse_bad_input() {
    let mut net = Testnet::init(env!("CARGO_BIN_EXE_ipsat").as_ref(), 4, 27000).unwrap();
    net.start_all().unwrap();
    for i in 0..4 {
        net.wait_for_height(i, 2, Duration::from_secs(60))
            .await
            .unwrap();
    }
    let mut recorders = Vec::new();
    for i in 0..4 {
        recorders.push(record_app_hashes(&net, i).await);
    }

    let faucet = net.key("faucet").unwrap();
    let writer = net.key("account-1").unwrap();
    let recipients: Vec<Address> = (0..8u8).map(|n| Address([n + 1; 20])).collect();
    let mut clients = Vec::new();
    for i in 0..4 {
        clients.push(net.client(i).await.unwrap());
    }
    let start_balance: u128 = clients[0]
        .account(address_of(&faucet))
        .await
        .unwrap()
        .balance
        .parse()
        .unwrap();

    // Transfers through every node, each acknowledged only once committed.
    for (nonce, to) in recipients.iter().enumerate() {
        let tx = net.sign(&faucet, nonce as u64, transfer(*to, 1_000 + nonce as u128));
        let response = clients[nonce % 4]
            .broadcast(tx, pb::BroadcastMode::Commit)
            .await
            .unwrap();
        assert_eq!(response.code, 0, "{}", response.log);
        assert!(response.height > 0);
        assert_eq!(response.events[0].kind, "transfer");
    }
    // A keyspace and a write, through another node.
    let create = Msg::KeyspaceCreate(pb::KeyspaceCreate {
        name: "registry".into(),
        write_policy: pb::WritePolicy::OwnerOnly as i32,
        writers: vec![],
        max_key_bytes: 32,
        max_value_bytes: 128,
    });
    let put = Msg::KvPut(pb::KvPut {
        keyspace: "registry".into(),
        key: b"alpha".to_vec(),
        value: b"first".to_vec(),
    });
    for (nonce, msg) in [create, put].into_iter().enumerate() {
        let response = clients[2]
            .broadcast(
                net.sign(&writer, nonce as u64, msg),
                pb::BroadcastMode::Commit,
            )
            .await
            .unwrap();
        assert_eq!(response.code, 0, "{}", response.log);
    }
    let last_height = clients[2].status().await.unwrap().height;

    // Every validator sees the same balances and value.
    for (i, client) in clients.iter_mut().enumerate() {
        net.wait_for_height(i, last_height, Duration::from_secs(30))
            .await
            .unwrap();
        for (n, to) in recipients.iter().enumerate() {
            assert_eq!(
                client.account(*to).await.unwrap().balance,
                (1_000 + n).to_string()
            );
        }
        let faucet_account = client.account(address_of(&faucet)).await.unwrap();
        let spent: u128 = (0..8).map(|n| 1_000 + n + FEE).sum();
        assert_eq!(faucet_account.balance, (start_balance - spent).to_string());
        assert_eq!(faucet_account.nonce, 8);
    }

    // A proof from node 3 verifies and matches the CometBFT header's app hash.
    let response = clients[3]
        .query
        .get_key(pb::GetKeyRequest {
            keyspace: "registry".into(),
            key: b"alpha".to_vec(),
            prove: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.value.as_deref(), Some(&b"first"[..]));
    let proof = response.proof.unwrap();
    let app_hash = verify_state_proof(&proof).unwrap();
    net.wait_for_height(3, proof.height + 1, Duration::from_secs(30))
        .await
        .unwrap();
    let header = clients[3]
        .query
        .get_block(pb::GetBlockRequest {
            height: proof.height + 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(header.app_hash, app_hash.to_vec());
    let mut forged = proof.clone();
    forged.value = Some(b"second".to_vec());
    assert!(verify_state_proof(&forged).is_err());

    // Bad input: each refused with its own code; nothing changes.
    let before = clients[0].status().await.unwrap();
    let faucet_before = clients[0].account(address_of(&faucet)).await.unwrap();
    let mut other_subnet = net.sign(&faucet, 8, transfer(recipients[0], 1));
    {
        let mut tx = pb::Tx::decode(other_subnet.as_slice()).unwrap();
        let mut body = pb::TxBody::decode(tx.body.as_slice()).unwrap();
        body.subnet_id = "/r33/elsewhere".into();
        tx.body = body.encode_to_vec();
        other_subnet = tx.encode_to_vec();
    }
    let mut bad_signature =
        pb::Tx::decode(net.sign(&faucet, 8, transfer(recipients[0], 1)).as_slice()).unwrap();
    bad_signature.signature[5] ^= 0xff;
    let oversized_value = Msg::KvPut(pb::KvPut {
        keyspace: "registry".into(),
        key: b"k".to_vec(),
        value: vec![7; 129],
    });
    let oversized_key = Msg::KvPut(pb::KvPut {
        keyspace: "registry".into(),
        key: vec![7; 33],
        value: b"v".to_vec(),
    });
    let not_owner = Msg::KvPut(pb::KvPut {
        keyspace: "registry".into(),
        key: b"alpha".to_vec(),
        value: b"stolen".to_vec(),
    });
    let cases: Vec<(&str, Vec<u8>, u32)> = vec![
        ("malformed bytes", vec![0x0a, 0xff, 0x01], 1),
        ("bad signature", bad_signature.encode_to_vec(), 2),
        ("other subnet", other_subnet, 3),
        (
            "replayed nonce",
            net.sign(&faucet, 7, transfer(recipients[0], 1)),
            4,
        ),
        (
            "future nonce",
            net.sign(&faucet, 9, transfer(recipients[0], 1)),
            5,
        ),
        (
            "insufficient funds",
            net.sign(&faucet, 8, transfer(recipients[0], start_balance)),
            6,
        ),
        ("oversized key", net.sign(&writer, 2, oversized_key), 9),
        ("oversized value", net.sign(&writer, 2, oversized_value), 10),
        (
            "write without permission",
            net.sign(&faucet, 8, not_owner),
            13,
        ),
    ];
    for (what, tx, code) in cases {
        let response = clients[1]
            .broadcast(tx, pb::BroadcastMode::Commit)
            .await
            .unwrap();
        assert_eq!(response.code, code, "{what}: {}", response.log);
        assert!(!response.log.is_empty(), "{what} has no explanation");
    }
    for (what, request) in [
        (
            "empty tx",
            pb::BroadcastTxRequest {
                tx: vec![],
                mode: 1,
                timeout_ms: 0,
            },
        ),
        (
            "unknown mode",
            pb::BroadcastTxRequest {
                tx: vec![1],
                mode: 9,
                timeout_ms: 0,
            },
        ),
    ] {
        let status = clients[1].tx.broadcast_tx(request).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{what}");
    }
    let status = clients[1]
        .query
        .get_account(pb::GetAccountRequest {
            address: vec![1; 19],
            prove: false,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let status = clients[1]
        .query
        .get_key(pb::GetKeyRequest {
            keyspace: "Not A Name".into(),
            key: b"k".to_vec(),
            prove: false,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    // Blocks keep coming, but the state root and balances do not move.
    net.wait_for_height(0, before.height + 3, Duration::from_secs(30))
        .await
        .unwrap();
    let after = clients[0].status().await.unwrap();
    assert_eq!(after.state_root, before.state_root);
    assert_ne!(
        after.app_hash, before.app_hash,
        "history must still advance"
    );
    assert_eq!(
        clients[0].account(address_of(&faucet)).await.unwrap(),
        faucet_before
    );
    assert_eq!(
        clients[0]
            .query
            .get_key(pb::GetKeyRequest {
                keyspace: "registry".into(),
                key: b"alpha".to_vec(),
                prove: false
            })
            .await
            .unwrap()
            .into_inner()
            .value
            .as_deref(),
        Some(&b"first"[..])
    );

    // The CLI, as an operator uses it: keys, a transfer, proofs checked against headers.
    let (ok, out, err) = net
        .cli(&["keys", "new", "carol", "--output", "json"])
        .unwrap();
    assert!(ok, "{err}");
    let carol: serde_json::Value = serde_json::from_str(&out).unwrap();
    let carol = carol["address"].as_str().unwrap().to_owned();
    let (ok, out, err) = net
        .cli(&[
            "tx",
            "--from",
            "account-2",
            "transfer",
            &carol,
            "12345",
            "--output",
            "json",
        ])
        .unwrap();
    assert!(ok, "{out}{err}");
    let sent: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(sent["code"], 0);
    assert!(sent["height"].as_u64().unwrap() > 0);
    let (ok, out, err) = net.cli(&["query", "account", &carol, "--prove"]).unwrap();
    assert!(ok, "{err}");
    assert!(
        out.contains("balance 12345")
            && out.contains("proof verified")
            && out.contains("verified from the validator set of the genesis"),
        "{out}"
    );
    // From a header trusted by hash instead of the genesis set.
    let trusted = header_hash(&net, 2).await;
    let (ok, out, err) = net
        .cli(&[
            "query",
            "account",
            &carol,
            "--prove",
            "--trust-height",
            "2",
            "--trust-hash",
            &trusted,
        ])
        .unwrap();
    assert!(
        ok && out.contains("verified from the trusted header"),
        "{out}{err}"
    );
    let wrong = "00".repeat(32);
    let (ok, _, err) = net
        .cli(&[
            "query",
            "account",
            &carol,
            "--prove",
            "--trust-height",
            "2",
            "--trust-hash",
            &wrong,
        ])
        .unwrap();
    assert!(!ok && err.contains("not the trusted"), "{err}");
    let (ok, out, err) = net
        .cli(&["query", "key", "registry", "nothing-here", "--prove"])
        .unwrap();
    assert!(ok, "{err}");
    assert!(
        out.contains("is absent") && out.contains("proof verified"),
        "{out}"
    );
    let (ok, _, err) = net
        .cli(&["tx", "--from", "account-2", "transfer", "0x1234", "1"])
        .unwrap();
    assert!(!ok && err.contains("invalid address"), "{err}");
    // The CLI signs only for the subnet it expects and never above its fee cap.
    for (flags, refusal) in [
        (vec!["--subnet", "/r33/elsewhere"], "refusing to sign"),
        (vec!["--max-fee", "1"], "above --max-fee"),
    ] {
        let mut args = vec!["tx", "--from", "account-2"];
        args.extend(flags);
        args.extend(["transfer", carol.as_str(), "5"]);
        let (ok, _, err) = net.cli(&args).unwrap();
        assert!(!ok && err.contains(refusal), "{args:?}: {err}");
    }
    let (ok, out, _) = net.cli(&["query", "account", &carol]).unwrap();
    assert!(
        ok && out.contains("balance 12345"),
        "a refused transfer moved value: {out}"
    );
    let (ok, out, err) = net
        .cli(&["tx", "--from", "carol", "kv-put", "registry", "k", "v"])
        .unwrap();
    assert!(
        !ok,
        "a write to someone else's keyspace succeeded: {out}{err}"
    );

    // Light-client verification of real headers catches every lie about them.
    let mut client = net.client(1).await.unwrap();
    let height = client.status().await.unwrap().height;
    let light = |r: pb::GetLightBlockResponse| {
        LightBlock::decode(&r.signed_header, &r.validator_set, &r.next_validator_set).unwrap()
    };
    let block = light(
        client
            .query
            .get_light_block(pb::GetLightBlockRequest { height })
            .await
            .unwrap()
            .into_inner(),
    );
    let genesis: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(net.home(0).join("cometbft/config/genesis.json")).unwrap(),
    )
    .unwrap();
    let validators = light::genesis_validators(&genesis).unwrap();
    let chain_id = genesis["chain_id"].as_str().unwrap();
    let root = TrustRoot::ValidatorSet {
        chain_id,
        validators: &validators,
    };
    let verified = verify_header(&block, &root).unwrap();
    assert_eq!(verified.height, height);
    assert!(verified.signed_power * 3 > verified.total_power * 2);
    let mut lying_app_hash = block.clone();
    lying_app_hash.signed_header.header.app_hash =
        tendermint::AppHash::try_from(vec![7u8; 32]).unwrap();
    assert!(
        verify_header(&lying_app_hash, &root).is_err(),
        "a changed app hash verified"
    );
    let mut fewer_signatures = block.clone();
    for sig in fewer_signatures
        .signed_header
        .commit
        .signatures
        .iter_mut()
        .skip(1)
    {
        *sig = tendermint::block::CommitSig::BlockIdFlagAbsent;
    }
    assert!(
        verify_header(&fewer_signatures, &root).is_err(),
        "one signature of four verified"
    );
    let other_chain = TrustRoot::ValidatorSet {
        chain_id: "another-chain",
        validators: &validators,
    };
    assert!(verify_header(&block, &other_chain).is_err());
    let strangers = tendermint::validator::Set::without_proposer(
        validators.validators().iter().take(1).cloned().collect(),
    );
    let strange_root = TrustRoot::ValidatorSet {
        chain_id,
        validators: &strangers,
    };
    assert!(
        verify_header(&block, &strange_root).is_err(),
        "an untrusted set verified"
    );

    // gRPC health and reflection are on, so grpcurl works without the proto files.
    let channel =
        tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{}", net.grpc_port(0)))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "ipsat.v1.QueryService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        serving.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let mut reflection =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(channel);
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            ),
        ),
    };
    let mut replies = reflection
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let reply = format!("{:?}", replies.next().await.unwrap().unwrap());
    assert!(
        reply.contains("ipsat.v1.TxService") && reply.contains("ipsat.v1.QueryService"),
        "{reply}"
    );

    // All four state machines committed identical app hashes at every height they share.
    let maps: Vec<BTreeMap<u64, Vec<u8>>> = recorders
        .iter()
        .map(|r| r.lock().unwrap().clone())
        .collect();
    let common: Vec<u64> = maps[0]
        .keys()
        .copied()
        .filter(|h| maps.iter().all(|m| m.contains_key(h)))
        .collect();
    assert!(common.len() >= 10, "only {} common heights", common.len());
    for h in common {
        for m in &maps[1..] {
            assert_eq!(m[&h], maps[0][&h], "app hash differs at height {h}");
        }
    }
}

/// The hash (hex) of block `height`'s header, as node 0 reports it.
async fn header_hash(net: &Testnet, height: u64) -> String {
    let mut client = net.client(0).await.unwrap();
    let block = client
        .query
        .get_block(pb::GetBlockRequest { height })
        .await
        .unwrap()
        .into_inner();
    hex::encode(block.block_hash)
}
