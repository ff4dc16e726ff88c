//! The anchoring service on btcd regtest and anvil (chain id 33, behind the RSK-strict filter):
//! `ipsat anchor start` commits the gateway's blocktree root into one Bitcoin transaction and
//! records it on the gateway. Killed with SIGKILL after broadcasting and before recording,
//! then restarted, it resumes the same anchor: exactly one Bitcoin transaction commits the
//! digest, the gateway records it once, and with the root unchanged no second anchor follows.

#![allow(clippy::unwrap_used)] // A test fails by panicking; a panic names the failed step.

use std::time::Duration;

use alloy::primitives::{Address as EthAddress, Bytes, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync as _;
use alloy::sol_types::SolEvent as _;
use ipsat_anchor::bitcoin::hashes::Hash as _;
use ipsat_checkpoint::{SubnetHash, ValidatorSetHash};
use ipsat_rootnet_bridge::{Gateway, GatewayConfig, IpsatGateway, JoinKeys};
use ipsat_tests::anchoring::{AnchorHome, AnchorSettings};
use ipsat_tests::btcd::{txs_committing, Btcd};
use ipsat_tests::rsk::{Anvil, RskStrictProxy, DEV_KEY};
use ipsat_tests::wait_until;

const RBTC: u128 = 1_000_000_000_000_000_000;
const CONFIRMATIONS: u64 = 3;

/// A one-validator subnet with one accepted checkpoint: the blocktree root is not zero.
async fn checkpointed_subnet(gateway: &Gateway, validator: &PrivateKeySigner) -> B256 {
    let subnet = gateway
        .register_subnet("alpha", 1, U256::from(1u64), 5)
        .await
        .unwrap();
    let power = U256::from(RBTC);
    gateway
        .join(
            subnet,
            validator,
            JoinKeys {
                bls_public_key: Bytes::from(vec![0xb1; 48]),
                bls_pop: Bytes::from(vec![0xb2; 96]),
                cometbft_key: B256::repeat_byte(0xc1),
            },
            power,
        )
        .await
        .unwrap();
    let set = ValidatorSetHash::of(&[(validator.address().into_array(), RBTC)]);
    let checkpoint = IpsatGateway::Checkpoint {
        subnetId: subnet,
        height: 5,
        blockHash: B256::repeat_byte(1),
        stateRoot: B256::repeat_byte(2),
        historyRoot: B256::repeat_byte(3),
        crossMsgsRoot: B256::ZERO,
        crossMsgsCount: 0,
        nextValidatorSetHash: B256::from(set.0),
        configurationNumber: 1,
        previousCheckpointHash: B256::ZERO,
    };
    let digest = gateway.checkpoint_digest(&checkpoint).await.unwrap();
    let signature = validator.sign_hash_sync(&digest).unwrap().as_bytes();
    gateway
        .submit_checkpoint(
            &checkpoint,
            vec![validator.address()],
            vec![power],
            Bytes::from(signature.to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(subnet, B256::from(SubnetHash::of_path("/r33/alpha").0));
    subnet
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_anchoring_service_anchors_once_and_records_once_across_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let service_home = AnchorHome::create(
        env!("CARGO_BIN_EXE_ipsat").as_ref(),
        dir.path().join("anchor"),
    );

    // RSK: the gateway, whose anchorer is the service's key, and a checkpointed subnet.
    let anvil = Anvil::start(28950, true).unwrap();
    anvil.mine_every_second().await.unwrap();
    anvil
        .set_balance(&service_home.rsk_address, 10 * RBTC)
        .await
        .unwrap();
    let proxy = RskStrictProxy::start(&anvil.url).await.unwrap();
    let config = GatewayConfig {
        confirmations: 2,
        ..GatewayConfig::default()
    };
    let admin: PrivateKeySigner = DEV_KEY.parse().unwrap();
    let anchorer: EthAddress = service_home.rsk_address.parse().unwrap();
    let gateway = Gateway::deploy(
        &proxy.url,
        admin.clone(),
        config,
        anchorer,
        U256::from(RBTC),
    )
    .await
    .unwrap();
    checkpointed_subnet(&gateway, &admin).await;

    // Bitcoin: btcd mining to the service's address, segwit active, a mature coinbase to spend.
    let btcd = Btcd::start_active(&service_home.bitcoin_address).await;
    let rpc = btcd.rpc();
    let coinbase = btcd.first_coinbase().await;
    service_home.configure(
        &btcd,
        &AnchorSettings {
            rsk: &proxy.url,
            gateway: &gateway.address().to_string(),
            fund: &coinbase,
            period_rsk_blocks: 5,
            confirmations: CONFIRMATIONS,
        },
    );

    // The service broadcasts the anchor; it is killed before the anchor can be recorded.
    let tip = rpc.get_block_count().await.unwrap();
    let mut service = service_home.start();
    wait_until("the anchor broadcast", Duration::from_secs(60), || async {
        let mempool = btcd.mempool().await;
        (
            !mempool.is_empty(),
            format!("{} in the mempool", mempool.len()),
        )
    })
    .await;
    // SAFETY: kill(2) on the process group this test created.
    unsafe {
        libc::kill(-(service.id() as i32), libc::SIGKILL);
    }
    service.wait().unwrap();
    let root = gateway.blocktree_root(None).await.unwrap();
    let latest = gateway
        .view("latestAnchor", &IpsatGateway::latestAnchorCall {}, None)
        .await
        .unwrap();
    assert_eq!(
        latest.btcTxid,
        B256::ZERO,
        "nothing recorded before the crash"
    );

    // Mined and confirmed while the service is down; restarted, it records the same anchor.
    btcd.mine(CONFIRMATIONS).await;
    let mut service = service_home.start();
    wait_until("the anchor recorded", Duration::from_secs(60), || async {
        let latest = gateway
            .view("latestAnchor", &IpsatGateway::latestAnchorCall {}, None)
            .await
            .unwrap();
        (
            latest.btcTxid != B256::ZERO,
            format!("latest anchor {}", latest.btcTxid),
        )
    })
    .await;
    // With the root unchanged, nothing more is anchored however long it runs.
    tokio::time::sleep(Duration::from_secs(8)).await;
    btcd.mine(1).await;
    // SAFETY: as above.
    unsafe {
        libc::kill(-(service.id() as i32), libc::SIGKILL);
    }
    service.wait().unwrap();

    let latest = gateway
        .view("latestAnchor", &IpsatGateway::latestAnchorCall {}, None)
        .await
        .unwrap();
    assert_eq!(latest.blocktreeRoot, root);
    let status: serde_json::Value =
        serde_json::from_str(&service_home.ipsat(&["anchor", "status", "--output", "json"]))
            .unwrap();
    let confirmed = status["confirmed"].as_array().unwrap();
    assert_eq!(confirmed.len(), 1, "one anchor: {status}");
    assert!(
        status["pending"].is_null(),
        "nothing left pending: {status}"
    );
    let digest: [u8; 32] = hex::decode(confirmed[0]["digest"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let committing = txs_committing(&rpc, tip + 1, &digest).await;
    assert_eq!(committing.len(), 1, "exactly one transaction commits it");
    assert_eq!(latest.btcTxid, B256::from(committing[0].1.to_byte_array()));
    let recorded = gateway
        .rpc()
        .logs(
            gateway.address(),
            IpsatGateway::AnchorRecorded::SIGNATURE_HASH,
            None,
            0,
            gateway.rpc().block_number().await.unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(recorded.len(), 1, "recorded once");
    assert_eq!(proxy.refusals(), 0, "the RSK-strict filter refused a call");
}
