//! The gateway on a real EVM (anvil, chain id 33) through the RSK-strict filter: the client
//! never needs anything RSK refuses, and every refusal of the contract is a named error that
//! changes nothing.

#![allow(clippy::unwrap_used)] // A test fails by panicking; a panic names the failed step.

use std::time::Duration;

use alloy::primitives::{keccak256, Address, Bytes, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use ipsat_checkpoint::{CheckpointDomain, CheckpointHash, SubnetHash, ValidatorSetHash};
use ipsat_rootnet_bridge::contract::IpsatGateway::{self, Checkpoint, Release};
use ipsat_rootnet_bridge::{merkle, BridgeError, Gateway, GatewayConfig, JoinKeys};
use ipsat_tests::rsk::{Anvil, RskStrictProxy, DEV_KEY};
use serde_json::json;

const ETHER: u128 = 1_000_000_000_000_000_000;
const PERIOD: u64 = 10;
/// anvil's second default account (unlocked), which registers filler subnets.
const FILLER_ACCOUNT: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
/// What registering a subnet costs on the test gateways (paid back when the subnet ends).
const REGISTRATION_DEPOSIT: u128 = ETHER / 10;

struct Net {
    anvil: Anvil,
    proxy: RskStrictProxy,
    admin: Gateway,
}

fn config() -> GatewayConfig {
    GatewayConfig {
        confirmations: 2,
        poll_interval: Duration::from_millis(50),
        ..GatewayConfig::default()
    }
}

async fn net(port: u16, automine: bool, config: GatewayConfig) -> Net {
    let anvil = Anvil::start(port, automine).unwrap();
    let proxy = RskStrictProxy::start(&anvil.url).await.unwrap();
    let admin_key: PrivateKeySigner = DEV_KEY.parse().unwrap();
    let anchorer = admin_key.address();
    let admin = Gateway::deploy(
        &proxy.url,
        admin_key,
        config,
        anchorer,
        U256::from(REGISTRATION_DEPOSIT),
    )
    .await
    .unwrap();
    Net {
        anvil,
        proxy,
        admin,
    }
}

/// A validator whose owner account and checkpoint signer are the same funded key.
struct Validator {
    key: PrivateKeySigner,
    power: U256,
}

async fn validators(net: &Net, n: usize) -> Vec<Validator> {
    validators_named(net, n, "validator").await
}

/// `n` funded validators with keys derived from `seed`, sorted by signer address.
async fn validators_named(net: &Net, n: usize, seed: &str) -> Vec<Validator> {
    let mut set: Vec<Validator> = (0..n)
        .map(|i| Validator {
            key: PrivateKeySigner::from_bytes(&keccak256(
                [seed.as_bytes(), &(i as u64).to_be_bytes()].concat(),
            ))
            .unwrap(),
            power: U256::from(ETHER * (1 + (i as u128 % 3))),
        })
        .collect();
    set.sort_by_key(|v| v.key.address());
    for v in &set {
        net.anvil
            .raw(
                "anvil_setBalance",
                json!([v.key.address(), "0x3635c9adc5dea00000"]),
            )
            .await
            .unwrap();
    }
    set
}

async fn client(net: &Net, key: &PrivateKeySigner) -> Gateway {
    Gateway::at(&net.proxy.url, net.admin.address(), key.clone(), config())
        .await
        .unwrap()
}

/// Keys the gateway only length-checks.
fn test_join_keys() -> JoinKeys {
    JoinKeys {
        bls_public_key: Bytes::from(vec![0xb1; 48]),
        bls_pop: Bytes::from(vec![0xb2; 96]),
        cometbft_key: B256::repeat_byte(0xc1),
    }
}

async fn join_all(net: &Net, subnet: B256, set: &[Validator]) {
    for v in set {
        client(net, &v.key)
            .await
            .join(subnet, &v.key, test_join_keys(), v.power)
            .await
            .unwrap();
    }
}

async fn info(net: &Net, subnet: B256) -> IpsatGateway::SubnetInfo {
    net.admin
        .view(
            "getSubnet",
            &IpsatGateway::getSubnetCall { subnetId: subnet },
            None,
        )
        .await
        .unwrap()
}

async fn blocktree_root(net: &Net) -> B256 {
    net.admin
        .view("blocktreeRoot", &IpsatGateway::blocktreeRootCall {}, None)
        .await
        .unwrap()
}

async fn next_checkpoint(net: &Net, subnet: B256, cross_msgs_root: B256, count: u64) -> Checkpoint {
    let info = info(net, subnet).await;
    let next_hash = net
        .admin
        .view(
            "validatorSetHashAt",
            &IpsatGateway::validatorSetHashAtCall {
                subnetId: subnet,
                configurationNumber: info.configurationNumber,
            },
            None,
        )
        .await
        .unwrap();
    Checkpoint {
        subnetId: subnet,
        height: info.lastCheckpointHeight + PERIOD,
        blockHash: keccak256(b"block"),
        stateRoot: keccak256(b"state"),
        historyRoot: keccak256(b"history"),
        crossMsgsRoot: cross_msgs_root,
        crossMsgsCount: count,
        nextValidatorSetHash: next_hash,
        configurationNumber: info.configurationNumber,
        previousCheckpointHash: info.lastCheckpointHash,
    }
}

/// Signatures of `signers` (indices into the ascending set), concatenated in that order.
async fn sign(net: &Net, cp: &Checkpoint, set: &[Validator], signers: &[usize]) -> Bytes {
    let digest = net.admin.checkpoint_digest(cp).await.unwrap();
    assert_eq!(
        digest.0,
        rust_checkpoint(cp).digest(&domain(net)).0,
        "ipsat-checkpoint computes the contract's digest"
    );
    let mut out = Vec::new();
    for &i in signers {
        out.extend_from_slice(&set[i].key.sign_hash_sync(&digest).unwrap().as_bytes());
    }
    out.into()
}

fn domain(net: &Net) -> CheckpointDomain {
    CheckpointDomain {
        chain_id: 33,
        verifier: net.admin.address().into_array(),
    }
}

/// The same checkpoint as `ipsat-checkpoint` holds it, to compare hashes with the contract's.
fn rust_checkpoint(cp: &Checkpoint) -> ipsat_checkpoint::Checkpoint {
    ipsat_checkpoint::Checkpoint {
        subnet: SubnetHash(cp.subnetId.0),
        height: cp.height,
        block_hash: cp.blockHash.0,
        state_root: cp.stateRoot.0,
        history_root: cp.historyRoot.0,
        cross_msgs_root: cp.crossMsgsRoot.0,
        cross_msgs_count: cp.crossMsgsCount,
        next_validator_set_hash: ValidatorSetHash(cp.nextValidatorSetHash.0),
        configuration_number: cp.configurationNumber,
        previous: CheckpointHash(cp.previousCheckpointHash.0),
    }
}

fn set_of(set: &[Validator]) -> (Vec<Address>, Vec<U256>) {
    (
        set.iter().map(|v| v.key.address()).collect(),
        set.iter().map(|v| v.power).collect(),
    )
}

fn reverted_with(result: Result<impl std::fmt::Debug, BridgeError>, name: &str) {
    match result {
        Err(BridgeError::Reverted { reason, .. }) => {
            assert!(reason.contains(name), "expected {name}, got {reason}")
        }
        other => panic!("expected revert {name}, got {other:?}"),
    }
}

async fn lifecycle(n: usize, port: u16) {
    let net = net(port, true, config()).await;
    let root_at_start = blocktree_root(&net).await;
    let subnet = net
        .admin
        .register_subnet("alpha", n as u64, U256::from(ETHER), PERIOD)
        .await
        .unwrap();
    let other = net
        .admin
        .register_subnet("beta", 1, U256::from(ETHER), PERIOD)
        .await
        .unwrap();
    assert_eq!(
        blocktree_root(&net).await,
        root_at_start,
        "registration changed the blocktree root"
    );
    let set = validators(&net, n).await;
    join_all(&net, subnet, &set).await;
    let joined = info(&net, subnet).await;
    assert!(joined.active);
    assert_eq!(subnet.0, SubnetHash::of_path("/r33/alpha").0);
    let members: Vec<([u8; 20], u128)> = set
        .iter()
        .map(|v| (v.key.address().into_array(), v.power.to::<u128>()))
        .collect();
    let set_hash: B256 = net
        .admin
        .view(
            "validatorSetHashAt",
            &IpsatGateway::validatorSetHashAtCall {
                subnetId: subnet,
                configurationNumber: joined.configurationNumber,
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(set_hash.0, ValidatorSetHash::of(&members).0);

    // Deposits: locked in the gateway and visible to the subnet as Funded events.
    let recipient = Address::repeat_byte(0x42);
    for amount in [3 * ETHER, 2 * ETHER] {
        net.admin
            .fund(subnet, recipient, U256::from(amount))
            .await
            .unwrap();
    }
    net.anvil.mine(3).await.unwrap();
    let events = net.admin.funded_events(subnet, 0).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.nonce).collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert_eq!(events[0].amount, U256::from(3 * ETHER));
    assert_eq!(info(&net, subnet).await.locked, U256::from(5 * ETHER));
    assert_eq!(
        blocktree_root(&net).await,
        root_at_start,
        "a deposit changed the blocktree root"
    );

    // A checkpoint with two releases.
    let payee = Address::repeat_byte(0x77);
    let releases: Vec<Release> = (0..2u64)
        .map(|nonce| Release {
            recipient: payee,
            amount: U256::from(ETHER),
            nonce,
        })
        .collect();
    let leaves: Vec<B256> = releases.iter().map(merkle::release_leaf).collect();
    let cp = next_checkpoint(&net, subnet, merkle::root(&leaves), 2).await;
    let (addresses, powers) = set_of(&set);
    let everyone: Vec<usize> = (0..n).collect();

    // Refusals first: each names its error and changes nothing.
    let before = (info(&net, subnet).await, blocktree_root(&net).await);
    let outsider = PrivateKeySigner::random();
    let digest = net.admin.checkpoint_digest(&cp).await.unwrap();
    let mut forged = sign(&net, &cp, &set, &everyone[..n - 1]).await.to_vec();
    forged.extend_from_slice(&outsider.sign_hash_sync(&digest).unwrap().as_bytes());
    let forged_result = net
        .admin
        .submit_checkpoint(&cp, addresses.clone(), powers.clone(), forged.into())
        .await;
    match forged_result {
        Err(BridgeError::Reverted { reason, .. }) => assert!(
            reason.contains("SignerNotInSet") || reason.contains("SignersNotAscending"),
            "{reason}"
        ),
        other => panic!("forged signature accepted: {other:?}"),
    }
    let mut flipped = sign(&net, &cp, &set, &everyone).await.to_vec();
    flipped[10] ^= 1;
    assert!(matches!(
        net.admin
            .submit_checkpoint(&cp, addresses.clone(), powers.clone(), flipped.into())
            .await,
        Err(BridgeError::Reverted { .. })
    ));
    let duplicate = sign(&net, &cp, &set, &[0, 0, 1]).await;
    reverted_with(
        net.admin
            .submit_checkpoint(&cp, addresses.clone(), powers.clone(), duplicate)
            .await,
        "SignersNotAscending",
    );
    let below = sign(&net, &cp, &set, &everyone[..(n / 4)]).await;
    reverted_with(
        net.admin
            .submit_checkpoint(&cp, addresses.clone(), powers.clone(), below)
            .await,
        "QuorumNotReached",
    );
    let mut wrong_height = cp.clone();
    wrong_height.height += 1;
    let signatures = sign(&net, &wrong_height, &set, &everyone).await;
    reverted_with(
        net.admin
            .submit_checkpoint(&wrong_height, addresses.clone(), powers.clone(), signatures)
            .await,
        "WrongHeight",
    );
    let mut foreign = cp.clone();
    foreign.subnetId = other;
    let signatures = sign(&net, &foreign, &set, &everyone).await;
    assert!(matches!(
        net.admin
            .submit_checkpoint(&foreign, addresses.clone(), powers.clone(), signatures)
            .await,
        Err(BridgeError::Reverted { .. })
    ));
    let signatures = sign(&net, &cp, &set, &everyone).await;
    reverted_with(
        net.admin
            .transact(
                "submitCheckpoint",
                &IpsatGateway::submitCheckpointCall {
                    subnetId: other,
                    cp: cp.clone(),
                    validators: addresses.clone(),
                    powers: powers.clone(),
                    signatures: signatures.clone(),
                },
                U256::ZERO,
            )
            .await,
        "CheckpointSubnetMismatch",
    );
    assert_eq!(
        (info(&net, subnet).await, blocktree_root(&net).await),
        before,
        "a refused checkpoint changed state"
    );

    // The real one is accepted and moves the blocktree root; a replay is refused.
    net.admin
        .submit_checkpoint(&cp, addresses.clone(), powers.clone(), signatures.clone())
        .await
        .unwrap();
    let accepted_root = blocktree_root(&net).await;
    assert_ne!(accepted_root, before.1);
    assert_eq!(info(&net, subnet).await.lastCheckpointHeight, PERIOD);
    reverted_with(
        net.admin
            .submit_checkpoint(&cp, addresses.clone(), powers.clone(), signatures)
            .await,
        "WrongHeight",
    );

    // Releases pay exactly once.
    let balance = |net: &Net| {
        let url = net.anvil.url.clone();
        async move {
            let rpc = ipsat_rootnet_bridge::rpc::EthRpc::new(&url);
            let b: U256 = rpc
                .call("eth_getBalance", json!([payee, "latest"]))
                .await
                .unwrap();
            b
        }
    };
    let start = balance(&net).await;
    for (i, release) in releases.iter().enumerate() {
        net.admin
            .execute_release(subnet, PERIOD, release.clone(), merkle::proof(&leaves, i))
            .await
            .unwrap();
    }
    assert_eq!(balance(&net).await - start, U256::from(2 * ETHER));
    reverted_with(
        net.admin
            .execute_release(
                subnet,
                PERIOD,
                releases[0].clone(),
                merkle::proof(&leaves, 0),
            )
            .await,
        "ReleaseAlreadyExecuted",
    );
    let forged_release = Release {
        recipient: payee,
        amount: U256::from(4 * ETHER),
        nonce: 9,
    };
    reverted_with(
        net.admin
            .execute_release(subnet, PERIOD, forged_release, merkle::proof(&leaves, 0))
            .await,
        "InvalidMerkleProof",
    );
    assert_eq!(balance(&net).await - start, U256::from(2 * ETHER));
    assert_eq!(info(&net, subnet).await.locked, U256::from(3 * ETHER));
    assert_eq!(
        blocktree_root(&net).await,
        accepted_root,
        "a release changed the blocktree root"
    );

    // A second checkpoint chains onto the first. It carries the same releases again, and they
    // still pay only once: a release is keyed by its nonce, not by the checkpoint proving it.
    let cp2 = next_checkpoint(&net, subnet, merkle::root(&leaves), 2).await;
    assert_eq!(
        cp2.previousCheckpointHash,
        keccak256(alloy::sol_types::SolValue::abi_encode(&cp))
    );
    let signatures = sign(&net, &cp2, &set, &everyone).await;
    net.admin
        .submit_checkpoint(&cp2, addresses, powers, signatures)
        .await
        .unwrap();
    assert_ne!(blocktree_root(&net).await, accepted_root);
    reverted_with(
        net.admin
            .execute_release(
                subnet,
                2 * PERIOD,
                releases[0].clone(),
                merkle::proof(&leaves, 0),
            )
            .await,
        "ReleaseAlreadyExecuted",
    );
    assert_eq!(balance(&net).await - start, U256::from(2 * ETHER));

    assert_eq!(
        net.proxy.refusals(),
        0,
        "the client used something RSK refuses"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_lifecycle_with_4_validators() {
    lifecycle(4, 18601).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_lifecycle_with_16_validators() {
    lifecycle(16, 18602).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_transaction_is_replaced_at_forty_percent_more() {
    let fixed = 1_000_000_000u128;
    let slow = GatewayConfig {
        gas_price: Some(fixed),
        replace_after: Duration::from_millis(700),
        ..config()
    };
    // Deploy with automining, then stop mining so the next transaction gets stuck.
    let net = net(18603, true, slow).await;
    let subnet = net
        .admin
        .register_subnet("gamma", 1, U256::from(ETHER), PERIOD)
        .await
        .unwrap();
    join_all(&net, subnet, &validators_named(&net, 1, "gamma").await).await;
    net.anvil
        .raw("evm_setAutomine", json!([false]))
        .await
        .unwrap();
    let miner = async {
        tokio::time::sleep(Duration::from_millis(1_800)).await;
        net.anvil.mine(1).await.unwrap();
    };
    let (receipt, ()) = tokio::join!(
        net.admin
            .fund(subnet, Address::repeat_byte(1), U256::from(ETHER)),
        miner
    );
    let receipt = receipt.unwrap();
    let mined: serde_json::Value = net
        .anvil
        .raw(
            "eth_getTransactionByHash",
            json!([receipt.transaction_hash]),
        )
        .await
        .unwrap();
    let price = u128::from_str_radix(
        mined["gasPrice"].as_str().unwrap().trim_start_matches("0x"),
        16,
    )
    .unwrap();
    assert!(
        price * 10 >= fixed * 14,
        "mined at {price}, want at least +40% over {fixed}"
    );
    assert_eq!(
        info(&net, subnet).await.locked,
        U256::from(ETHER),
        "funded once, not twice"
    );
    assert_eq!(net.proxy.refusals(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rsk_strict_filter_refuses_what_rsk_refuses() {
    let anvil = Anvil::start(18604, true).unwrap();
    let proxy = RskStrictProxy::start(&anvil.url).await.unwrap();
    let rpc = ipsat_rootnet_bridge::rpc::EthRpc::new(&proxy.url);
    anvil.mine(5_100).await.unwrap();
    let refused: Vec<(&'static str, serde_json::Value)> = vec![
        ("eth_feeHistory", json!(["0x1", "latest", []])),
        ("eth_maxPriorityFeePerGas", json!([])),
        ("eth_getProof", json!([Address::ZERO, [], "latest"])),
        ("eth_getBlockByNumber", json!(["finalized", false])),
        ("eth_getBalance", json!([Address::ZERO, "safe"])),
        (
            "eth_getLogs",
            json!([{"fromBlock": "0x0", "toBlock": "0x1388"}]),
        ),
        ("eth_sendRawTransaction", json!(["0x02f86c"])),
    ];
    for (method, params) in refused.iter().cloned() {
        let result: Result<serde_json::Value, _> = rpc.call(method, params).await;
        assert!(result.is_err(), "{method} passed the filter");
    }
    assert_eq!(proxy.refusals(), refused.len());
    let ok: Result<serde_json::Value, _> = rpc
        .call(
            "eth_getLogs",
            json!([{"fromBlock": "0x0", "toBlock": "0x1387"}]),
        )
        .await;
    assert!(ok.is_ok(), "a 5,000-block range must pass");
}

/// Gas of `submitCheckpoint` by validator count, signed by everyone and by the smallest
/// quorum (highest power first), which is what a relayer sends. Printed for
/// docs/benchmarks.md; the quorum figure at 100 validators must stay within 500k.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_checkpoint_gas_by_validator_count() {
    let net = net(18605, true, config()).await;
    let mut report = Vec::new();
    for n in [4usize, 16, 64, 100] {
        let subnet = net
            .admin
            .register_subnet(&format!("gas-{n}"), n as u64, U256::from(ETHER), PERIOD)
            .await
            .unwrap();
        let set = validators_named(&net, n, &format!("gas-{n}")).await;
        join_all(&net, subnet, &set).await;
        let (addresses, powers) = set_of(&set);
        let total: U256 = powers.iter().copied().sum();
        let mut by_power: Vec<usize> = (0..n).collect();
        by_power.sort_by_key(|&i| std::cmp::Reverse(set[i].power));
        let mut quorum = Vec::new();
        let mut signed = U256::ZERO;
        for i in by_power {
            if signed * U256::from(3) > total * U256::from(2) {
                break;
            }
            signed += set[i].power;
            quorum.push(i);
        }
        quorum.sort_unstable();
        let everyone: Vec<usize> = (0..n).collect();
        let mut gas = Vec::new();
        // The first checkpoint also pays for creating the subnet's blocktree leaf; measure the
        // steady state after it.
        for signers in [everyone.clone(), quorum.clone(), everyone] {
            let cp = next_checkpoint(&net, subnet, B256::ZERO, 0).await;
            let signatures = sign(&net, &cp, &set, &signers).await;
            let receipt = net
                .admin
                .submit_checkpoint(&cp, addresses.clone(), powers.clone(), signatures)
                .await
                .unwrap();
            gas.push(receipt.gas_used.to::<u64>());
        }
        report.push((n, quorum.len(), gas[1], gas[2]));
    }
    eprintln!("validators | quorum signers | gas (quorum) | gas (all sign)");
    for (n, q, quorum_gas, all_gas) in &report {
        eprintln!("{n:>10} | {q:>14} | {quorum_gas:>12} | {all_gas:>14}");
    }
    let (_, _, at_100, _) = report[3];
    assert!(
        at_100 <= 500_000,
        "submitCheckpoint with a 100-validator quorum used {at_100} gas"
    );
    // A 101st validator is refused: certificates and checkpoint costs stay bounded.
    let full = net
        .admin
        .view(
            "computeSubnetId",
            &IpsatGateway::computeSubnetIdCall {
                name: "gas-100".into(),
            },
            None,
        )
        .await
        .unwrap();
    let extra = validators_named(&net, 1, "gas-extra").await;
    reverted_with(
        client(&net, &extra[0].key)
            .await
            .join(full, &extra[0].key, test_join_keys(), U256::from(ETHER))
            .await,
        "SubnetFull",
    );
    // Registration needs a positive collateral floor and at most 100 validators.
    reverted_with(
        net.admin
            .register_subnet("free", 1, U256::ZERO, PERIOD)
            .await,
        "InvalidSubnetParams",
    );
    reverted_with(
        net.admin
            .register_subnet("huge", 101, U256::from(ETHER), PERIOD)
            .await,
        "InvalidSubnetParams",
    );
}

/// Leaving releases collateral only once a checkpoint confirms the new set; deposits are read
/// in bounded spans at the confirmation depth; only the anchorer records anchors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_claim_bounded_logs_and_anchor_record() {
    let narrow = GatewayConfig {
        log_range: 7,
        confirmations: 5,
        ..config()
    };
    let net = net(18606, true, narrow).await;
    let subnet = net
        .admin
        .register_subnet("delta", 3, U256::from(ETHER), PERIOD)
        .await
        .unwrap();
    let set = validators_named(&net, 4, "delta").await;
    join_all(&net, subnet, &set).await;

    // Deposits spread over more blocks than one log span; the newest is not final yet.
    for (i, gap) in [0u64, 9, 17].into_iter().enumerate() {
        net.anvil.mine(gap).await.unwrap();
        net.admin
            .fund(
                subnet,
                Address::repeat_byte(0x10 + i as u8),
                U256::from(ETHER),
            )
            .await
            .unwrap();
    }
    assert_eq!(
        net.admin.funded_events(subnet, 0).await.unwrap().len(),
        2,
        "an unconfirmed deposit was reported"
    );
    net.anvil.mine(5).await.unwrap();
    let events = net.admin.funded_events(subnet, 0).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.nonce).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );

    // The set confirmed at activation is the first three; the fourth joined after. It leaves:
    // its collateral stays locked until a checkpoint confirms that. A second leave would take
    // the set below the minimum of 3 and is refused.
    let leaver = client(&net, &set[3].key).await;
    leaver.leave(subnet).await.unwrap();
    reverted_with(
        client(&net, &set[2].key).await.leave(subnet).await,
        "BelowMinValidators",
    );
    reverted_with(leaver.claim_collateral(subnet).await, "CollateralLocked");
    let (addresses, powers) = set_of(&set[..3]);
    let cp = next_checkpoint(&net, subnet, B256::ZERO, 0).await;
    let signatures = sign(&net, &cp, &set, &[0, 1, 2]).await;
    net.admin
        .submit_checkpoint(&cp, addresses.clone(), powers.clone(), signatures)
        .await
        .unwrap();
    let before = balance_of(&net, set[3].key.address()).await;
    leaver.claim_collateral(subnet).await.unwrap();
    let refunded =
        balance_of(&net, set[3].key.address()).await + U256::from(10u128.pow(16)) - before;
    assert!(
        refunded >= set[3].power,
        "collateral not refunded: {refunded}"
    );
    reverted_with(leaver.claim_collateral(subnet).await, "NotLeaving");
    // A set that still counts the leaver does not sign checkpoints.
    let (with_leaver, their_powers) = set_of(&set);
    let cp2 = next_checkpoint(&net, subnet, B256::ZERO, 0).await;
    let signatures = sign(&net, &cp2, &set, &[0, 1, 2, 3]).await;
    reverted_with(
        net.admin
            .submit_checkpoint(&cp2, with_leaver, their_powers, signatures)
            .await,
        "ValidatorSetMismatch",
    );
    let signatures = sign(&net, &cp2, &set, &[0, 1, 2]).await;
    net.admin
        .submit_checkpoint(&cp2, addresses, powers, signatures)
        .await
        .unwrap();

    // Anchors: only the anchorer (the deployer here) may record one.
    let root = blocktree_root(&net).await;
    reverted_with(
        leaver
            .record_anchor(root, 1, B256::repeat_byte(9), 101)
            .await,
        "NotAnchorer",
    );
    net.admin
        .record_anchor(root, 2, B256::repeat_byte(9), 101)
        .await
        .unwrap();
    let anchor = net
        .admin
        .view("latestAnchor", &IpsatGateway::latestAnchorCall {}, None)
        .await
        .unwrap();
    assert_eq!(
        (anchor.blocktreeRoot, anchor.btcHeight, anchor.rskHeight),
        (root, 101, 2)
    );
    // The RSK height read is in the past, and anchors follow RSK forward.
    let now = net.admin.rpc().block_number().await.unwrap();
    reverted_with(
        net.admin
            .record_anchor(root, now + 1, B256::repeat_byte(9), 101)
            .await,
        "InvalidAnchorRskHeight",
    );
    reverted_with(
        net.admin
            .record_anchor(root, 1, B256::repeat_byte(9), 101)
            .await,
        "InvalidAnchorRskHeight",
    );
    // Bitcoin heights never go backwards.
    reverted_with(
        net.admin
            .record_anchor(root, 2, B256::repeat_byte(8), 100)
            .await,
        "AnchorHeightDecreased",
    );
    // Only the deployer rotates the anchorer; then only the new one records.
    let rotate = |next: Address| IpsatGateway::setAnchorerCall { next };
    reverted_with(
        leaver
            .transact("setAnchorer", &rotate(leaver.sender()), U256::ZERO)
            .await,
        "NotAdmin",
    );
    net.admin
        .transact("setAnchorer", &rotate(leaver.sender()), U256::ZERO)
        .await
        .unwrap();
    reverted_with(
        net.admin
            .record_anchor(root, 2, B256::repeat_byte(9), 102)
            .await,
        "NotAnchorer",
    );
    leaver
        .record_anchor(root, 2, B256::repeat_byte(9), 102)
        .await
        .unwrap();
    assert_eq!(net.proxy.refusals(), 0);
}

async fn balance_of(net: &Net, who: Address) -> U256 {
    net.admin
        .rpc()
        .call("eth_getBalance", json!([who, "latest"]))
        .await
        .unwrap()
}

/// Submits the next checkpoint of a one-validator subnet, signed by it; returns the gas used.
async fn checkpoint_gas(net: &Net, subnet: B256, set: &[Validator]) -> u64 {
    let cp = next_checkpoint(net, subnet, B256::ZERO, 0).await;
    let signatures = sign(net, &cp, set, &[0]).await;
    let (addresses, powers) = set_of(set);
    let receipt = net
        .admin
        .submit_checkpoint(&cp, addresses, powers, signatures)
        .await
        .unwrap();
    receipt.gas_used.to::<u64>()
}

/// The blocktree root as the Rust side computes it from `blocktreeLeaves()`, which must equal
/// the contract's; every checkpointed leaf's proof folds to it.
async fn check_blocktree(net: &Net) -> B256 {
    let leaves = net
        .admin
        .view(
            "blocktreeLeaves",
            &IpsatGateway::blocktreeLeavesCall {},
            None,
        )
        .await
        .unwrap();
    let leaf_hashes: Vec<B256> = leaves
        .ids
        .iter()
        .zip(&leaves.checkpointHashes)
        .map(|(id, cp)| {
            if cp.is_zero() {
                B256::ZERO
            } else {
                merkle::blocktree_leaf(*id, *cp)
            }
        })
        .collect();
    let root = merkle::blocktree_root(&leaf_hashes);
    assert_eq!(
        root,
        blocktree_root(net).await,
        "Rust and Solidity roots differ"
    );
    for (i, leaf) in leaf_hashes.iter().enumerate().filter(|(_, l)| !l.is_zero()) {
        let path = merkle::blocktree_proof(&leaf_hashes, i);
        assert_eq!(merkle::blocktree_process_proof(*leaf, i, &path), root);
    }
    root
}

/// The gas of a checkpoint does not depend on how many subnets are registered (1, 100, 500),
/// on anvil with RSK's 6.8M block gas limit: each subnet owns a fixed blocktree leaf, so a
/// registration moves nothing and a checkpoint rehashes one path of fixed depth. Registration
/// costs the deposit, exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_gas_is_flat_in_the_number_of_subnets() {
    let fast = GatewayConfig {
        poll_interval: Duration::from_millis(5),
        ..config()
    };
    let net = net(18607, true, fast).await;
    reverted_with(
        net.admin
            .transact(
                "registerSubnet",
                &IpsatGateway::registerSubnetCall {
                    name: "free".into(),
                    minValidators: 1,
                    minCollateral: U256::from(ETHER),
                    checkpointPeriod: PERIOD,
                },
                U256::ZERO,
            )
            .await,
        "WrongRegistrationDeposit",
    );
    let mut registered = 0usize;
    let mut report = Vec::new();
    for target in [1usize, 100, 500] {
        // Fill up with subnets that never checkpoint, registered straight through anvil by its
        // second unlocked account (test set-up, much faster than a signed and awaited
        // transaction each), then register the one that will.
        while registered + 1 < target {
            let call = IpsatGateway::registerSubnetCall {
                name: format!("filler-{registered}"),
                minValidators: 1,
                minCollateral: U256::from(ETHER),
                checkpointPeriod: PERIOD,
            };
            net.anvil
                .raw(
                    "eth_sendTransaction",
                    json!([{
                        "from": FILLER_ACCOUNT,
                        "to": net.admin.address(),
                        "data": Bytes::from(alloy::sol_types::SolCall::abi_encode(&call)),
                        "value": U256::from(REGISTRATION_DEPOSIT),
                        "gas": "0x100000",
                    }]),
                )
                .await
                .unwrap();
            registered += 1;
        }
        let name = format!("measured-{target}");
        let before = balance_of(&net, net.admin.sender()).await;
        let subnet = net
            .admin
            .register_subnet(&name, 1, U256::from(ETHER), PERIOD)
            .await
            .unwrap();
        let paid = before - balance_of(&net, net.admin.sender()).await;
        assert!(
            paid >= U256::from(REGISTRATION_DEPOSIT)
                && paid < U256::from(REGISTRATION_DEPOSIT + ETHER / 100),
            "registration cost {paid}, want the deposit plus gas"
        );
        registered += 1;
        let set = validators_named(&net, 1, &name).await;
        join_all(&net, subnet, &set).await;
        let first = checkpoint_gas(&net, subnet, &set).await;
        let steady = checkpoint_gas(&net, subnet, &set).await;
        check_blocktree(&net).await;
        report.push((target, first, steady));
    }
    let count: U256 = net
        .admin
        .view("subnetCount", &IpsatGateway::subnetCountCall {}, None)
        .await
        .unwrap();
    assert_eq!(count, U256::from(500));
    eprintln!("registered subnets | first checkpoint gas | later checkpoint gas");
    for (n, first, steady) in &report {
        eprintln!("{n:>18} | {first:>20} | {steady:>20}");
    }
    let steady: Vec<u64> = report.iter().map(|r| r.2).collect();
    let (lo, hi) = (steady.iter().min().unwrap(), steady.iter().max().unwrap());
    assert!(
        hi - lo <= 2_000,
        "later checkpoints' gas varies: {steady:?}"
    );
    // A first checkpoint writes the fresh nodes of its path; others' paths only make it cheaper.
    assert!(
        report.iter().all(|r| r.1 <= report[0].1),
        "a first checkpoint got dearer with more subnets: {report:?}"
    );
    assert!(report[0].1 < ipsat_tests::rsk::RSK_BLOCK_GAS_LIMIT / 10);
}

/// Only a signer's owner can register it; a subnet ends only by a final checkpoint its set
/// signs under the kill tag (or, never active, by its creator), which settles everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_need_the_signer_and_a_kill_settles_the_subnet() {
    let net = net(18608, true, config()).await;
    let subnet = net
        .admin
        .register_subnet("omega", 2, U256::from(ETHER), PERIOD)
        .await
        .unwrap();
    let set = validators_named(&net, 3, "omega").await;

    // The join authorisation is the contract's digest, computed locally.
    let owner = set[0].key.address();
    let on_chain: B256 = net
        .admin
        .view(
            "joinDigest",
            &IpsatGateway::joinDigestCall {
                subnetId: subnet,
                owner,
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        on_chain,
        ipsat_rootnet_bridge::join_digest(33, net.admin.address(), subnet, owner)
    );
    // A front-runner replaying set[0]'s authorisation from its own account is refused, and so
    // is a signature of the wrong length or by another key.
    let front_runner = validators_named(&net, 1, "front-runner").await;
    let stolen = set[0].key.sign_hash_sync(&on_chain).unwrap().as_bytes();
    let own = front_runner[0]
        .key
        .sign_hash_sync(&ipsat_rootnet_bridge::join_digest(
            33,
            net.admin.address(),
            subnet,
            front_runner[0].key.address(),
        ))
        .unwrap()
        .as_bytes();
    for signature in [stolen.to_vec(), stolen[..64].to_vec(), own.to_vec()] {
        let call = IpsatGateway::joinCall {
            subnetId: subnet,
            request: IpsatGateway::JoinRequest {
                ecdsaSigner: owner,
                signerSignature: signature.into(),
                blsPublicKey: Bytes::from(vec![0xb1; 48]),
                blsPop: Bytes::from(vec![0xb2; 96]),
                cometbftKey: B256::repeat_byte(0xc1),
            },
        };
        reverted_with(
            client(&net, &front_runner[0].key)
                .await
                .transact("join", &call, U256::from(ETHER))
                .await,
            "InvalidSignerSignature",
        );
    }
    join_all(&net, subnet, &set).await;
    assert_eq!(info(&net, subnet).await.validatorCount, 3);

    // Deposits; one validator leaves (3 -> 2 = the minimum), a second may not.
    let alice = Address::repeat_byte(0xa1);
    let bob = Address::repeat_byte(0xb0);
    net.admin
        .fund(subnet, alice, U256::from(5 * ETHER))
        .await
        .unwrap();
    client(&net, &set[2].key).await.leave(subnet).await.unwrap();
    reverted_with(
        client(&net, &set[1].key).await.leave(subnet).await,
        "BelowMinValidators",
    );

    // The final checkpoint pays out what the subnet's accounts hold: Alice kept 3, Bob got 2.
    let releases = [
        Release {
            recipient: alice,
            amount: U256::from(3 * ETHER),
            nonce: 0,
        },
        Release {
            recipient: bob,
            amount: U256::from(2 * ETHER),
            nonce: 1,
        },
    ];
    let leaves: Vec<B256> = releases.iter().map(merkle::release_leaf).collect();
    let last = next_checkpoint(&net, subnet, merkle::root(&leaves), 2).await;
    // The confirmed set is the first two members, the membership at activation.
    let (addresses, powers) = set_of(&set[..2]);
    let kill_digest: B256 = net
        .admin
        .view(
            "killDigest",
            &IpsatGateway::killDigestCall { cp: last.clone() },
            None,
        )
        .await
        .unwrap();
    let kill_signatures: Bytes = [0usize, 1]
        .iter()
        .flat_map(|&i| set[i].key.sign_hash_sync(&kill_digest).unwrap().as_bytes())
        .collect::<Vec<u8>>()
        .into();
    // Signatures of an ordinary checkpoint do not kill, and kill signatures do not make an
    // ordinary checkpoint: the tags keep them apart.
    let checkpoint_signatures = sign(&net, &last, &set, &[0, 1]).await;
    assert!(matches!(
        net.admin
            .kill_subnet(
                &last,
                addresses.clone(),
                powers.clone(),
                checkpoint_signatures
            )
            .await,
        Err(BridgeError::Reverted { .. })
    ));
    assert!(matches!(
        net.admin
            .submit_checkpoint(
                &last,
                addresses.clone(),
                powers.clone(),
                kill_signatures.clone()
            )
            .await,
        Err(BridgeError::Reverted { .. })
    ));
    assert!(!info(&net, subnet).await.ended);
    let abandon_omega = IpsatGateway::abandonSubnetCall { subnetId: subnet };
    reverted_with(
        net.admin
            .transact("abandonSubnet", &abandon_omega, U256::ZERO)
            .await,
        "SubnetAlreadyActive",
    );
    let root_before = blocktree_root(&net).await;
    net.admin
        .kill_subnet(&last, addresses.clone(), powers.clone(), kill_signatures)
        .await
        .unwrap();
    let ended = info(&net, subnet).await;
    assert!(ended.ended);
    assert_eq!(ended.lastCheckpointHeight, PERIOD);
    assert_ne!(blocktree_root(&net).await, root_before);
    check_blocktree(&net).await;

    // Nothing more enters an ended subnet.
    reverted_with(
        net.admin.fund(subnet, alice, U256::from(ETHER)).await,
        "SubnetHasEnded",
    );
    reverted_with(
        client(&net, &set[0].key).await.leave(subnet).await,
        "SubnetHasEnded",
    );
    let next = next_checkpoint(&net, subnet, B256::ZERO, 0).await;
    let signatures = sign(&net, &next, &set, &[0, 1]).await;
    reverted_with(
        net.admin
            .submit_checkpoint(&next, addresses, powers, signatures)
            .await,
        "SubnetHasEnded",
    );

    // Depositors recover what the final checkpoint says they hold, once.
    for (i, release) in releases.iter().enumerate() {
        net.admin
            .execute_release(subnet, PERIOD, release.clone(), merkle::proof(&leaves, i))
            .await
            .unwrap();
    }
    assert_eq!(balance_of(&net, alice).await, U256::from(3 * ETHER));
    assert_eq!(balance_of(&net, bob).await, U256::from(2 * ETHER));
    assert_eq!(info(&net, subnet).await.locked, U256::ZERO);
    // Every validator, staying or leaving, gets its collateral back.
    for v in &set {
        let validator = client(&net, &v.key).await;
        validator.claim_collateral(subnet).await.unwrap();
        reverted_with(validator.claim_collateral(subnet).await, "NotValidator");
    }
    assert_eq!(info(&net, subnet).await.collateral, U256::ZERO);
    // The creator, and only it, gets the registration deposit back, once.
    reverted_with(
        client(&net, &set[0].key)
            .await
            .claim_registration_deposit(subnet)
            .await,
        "NotCreator",
    );
    net.admin.claim_registration_deposit(subnet).await.unwrap();
    reverted_with(
        net.admin.claim_registration_deposit(subnet).await,
        "NotCreator",
    );

    // A subnet that never became active takes no deposits and its creator may abandon it.
    let orphan = net
        .admin
        .register_subnet("orphan", 2, U256::from(ETHER), PERIOD)
        .await
        .unwrap();
    let lonely = validators_named(&net, 1, "orphan").await;
    join_all(&net, orphan, &lonely).await;
    reverted_with(
        net.admin.fund(orphan, alice, U256::from(ETHER)).await,
        "SubnetNotActive",
    );
    let abandon = IpsatGateway::abandonSubnetCall { subnetId: orphan };
    reverted_with(
        client(&net, &lonely[0].key)
            .await
            .transact("abandonSubnet", &abandon, U256::ZERO)
            .await,
        "NotCreator",
    );
    reverted_with(
        net.admin
            .transact("abandonSubnet", &abandon_omega, U256::ZERO)
            .await,
        "SubnetHasEnded",
    );
    net.admin
        .transact("abandonSubnet", &abandon, U256::ZERO)
        .await
        .unwrap();
    client(&net, &lonely[0].key)
        .await
        .claim_collateral(orphan)
        .await
        .unwrap();
    net.admin.claim_registration_deposit(orphan).await.unwrap();
    // Both subnets ended and settled: the gateway owes nothing and holds nothing.
    assert_eq!(balance_of(&net, net.admin.address()).await, U256::ZERO);
    assert_eq!(net.proxy.refusals(), 0);
}
