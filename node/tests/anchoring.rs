//! The anchoring service on btcd regtest and anvil (chain id 33, behind the RSK-strict filter):
//! `ipsat anchor start` commits the gateway's blocktree root into one Bitcoin transaction and
//! records it on the gateway. Killed with SIGKILL after broadcasting and before recording,
//! then restarted, it resumes the same anchor: exactly one Bitcoin transaction commits the
//! digest, the gateway records it once, and with the root unchanged no second anchor follows.
//! Killed at each step of its work in turn while the root keeps changing, and with btcd
//! starting over under it, it anchors a newer root after every restart, records each anchor
//! once, spends no output twice and loses no satoshi.

#![allow(clippy::unwrap_used)] // A test fails by panicking; a panic names the failed step.

use std::time::Duration;

use alloy::primitives::{Address as EthAddress, Bytes, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync as _;
use alloy::sol_types::SolEvent as _;
use ipsat_anchor::bitcoin::hashes::Hash as _;
use ipsat_anchor::bitcoin::secp256k1::SecretKey;
use ipsat_anchor::bitcoin::{Amount, Network, OutPoint, TxOut, Txid};
use ipsat_anchor::tx::{build_payment_tx, Utxo};
use ipsat_anchor::{anchor_script, AnchorKey, AnchorState, ScriptKind};
use ipsat_checkpoint::{SubnetHash, ValidatorSetHash};
use ipsat_rootnet_bridge::{Gateway, GatewayConfig, IpsatGateway, JoinKeys};
use ipsat_tests::anchoring::{AnchorHome, AnchorSettings};
use ipsat_tests::btcd::{txs_committing, Btcd, ACTIVATION_HEIGHT};
use ipsat_tests::rsk::{Anvil, RskStrictProxy, DEV_KEY};
use ipsat_tests::wait_until;

const RBTC: u128 = 1_000_000_000_000_000_000;
const CONFIRMATIONS: u64 = 3;

/// anvil as RSK (chain id 33, a block a second) behind the RSK-strict filter, and a gateway
/// whose anchorer is the anchoring service's key, funded.
struct Rsk {
    /// Held only to keep anvil running: dropping it stops anvil.
    _anvil: Anvil,
    proxy: RskStrictProxy,
    gateway: Gateway,
    admin: PrivateKeySigner,
}

/// An anchoring service's home in `dir` and RSK on `port` with its gateway.
async fn service_and_rsk(dir: &std::path::Path, port: u16) -> (AnchorHome, Rsk) {
    let home = AnchorHome::create(env!("CARGO_BIN_EXE_ipsat").as_ref(), dir.join("anchor"));
    let rsk = Rsk::start(port, &home).await;
    (home, rsk)
}

impl Rsk {
    async fn start(port: u16, service: &AnchorHome) -> Self {
        let anvil = Anvil::start(port, true).unwrap();
        anvil.mine_every_second().await.unwrap();
        anvil
            .set_balance(&service.rsk_address, 10 * RBTC)
            .await
            .unwrap();
        let proxy = RskStrictProxy::start(&anvil.url).await.unwrap();
        let admin: PrivateKeySigner = DEV_KEY.parse().unwrap();
        let anchorer: EthAddress = service.rsk_address.parse().unwrap();
        let gateway = Gateway::deploy(
            &proxy.url,
            admin.clone(),
            GatewayConfig {
                confirmations: 2,
                ..GatewayConfig::default()
            },
            anchorer,
            U256::from(RBTC),
        )
        .await
        .unwrap();
        Self {
            _anvil: anvil,
            proxy,
            gateway,
            admin,
        }
    }
}

/// A one-validator subnet with one accepted checkpoint: the blocktree root is not zero.
async fn checkpointed_subnet(gateway: &Gateway, validator: &PrivateKeySigner) -> B256 {
    let subnet = gateway
        .register_subnet("alpha", 1, U256::from(1u64), 5)
        .await
        .unwrap();
    gateway
        .join(
            subnet,
            validator,
            JoinKeys {
                bls_public_key: Bytes::from(vec![0xb1; 48]),
                bls_pop: Bytes::from(vec![0xb2; 96]),
                cometbft_key: B256::repeat_byte(0xc1),
            },
            U256::from(RBTC),
        )
        .await
        .unwrap();
    next_checkpoint(gateway, validator, subnet).await;
    assert_eq!(subnet, B256::from(SubnetHash::of_path("/r33/alpha").0));
    subnet
}

/// Submits the subnet's next checkpoint, signed by its one validator: the blocktree root
/// changes. Returns the RSK block that holds it.
async fn next_checkpoint(gateway: &Gateway, validator: &PrivateKeySigner, subnet: B256) -> u64 {
    let info = gateway
        .view(
            "getSubnet",
            &IpsatGateway::getSubnetCall { subnetId: subnet },
            None,
        )
        .await
        .unwrap();
    let power = U256::from(RBTC);
    let set = ValidatorSetHash::of(&[(validator.address().into_array(), RBTC)]);
    let height = info.lastCheckpointHeight + 5;
    let checkpoint = IpsatGateway::Checkpoint {
        subnetId: subnet,
        height,
        blockHash: B256::from(U256::from(height)),
        stateRoot: B256::repeat_byte(2),
        historyRoot: B256::repeat_byte(3),
        crossMsgsRoot: B256::ZERO,
        crossMsgsCount: 0,
        nextValidatorSetHash: B256::from(set.0),
        configurationNumber: 1,
        previousCheckpointHash: info.lastCheckpointHash,
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
    gateway.rpc().block_number().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_anchoring_service_anchors_once_and_records_once_across_a_crash() {
    // RSK: the gateway, whose anchorer is the service's key, and a checkpointed subnet.
    let dir = tempfile::tempdir().unwrap();
    let (service_home, rsk) = service_and_rsk(dir.path(), 28950).await;
    let Rsk {
        proxy,
        gateway,
        admin,
        ..
    } = &rsk;
    checkpointed_subnet(gateway, admin).await;

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
    assert_eq!(anchors_recorded(gateway).await.len(), 1, "recorded once");
    assert_eq!(proxy.refusals(), 0, "the RSK-strict filter refused a call");
}

/// Every `AnchorRecorded` event of the gateway so far.
async fn anchors_recorded(gateway: &Gateway) -> Vec<IpsatGateway::AnchorRecorded> {
    let logs = gateway
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
    logs.iter()
        .map(|log| {
            IpsatGateway::AnchorRecorded::decode_raw_log(log.topics.iter().copied(), &log.data)
                .unwrap()
        })
        .collect()
}

/// Kill points of the anchoring service, in the order it reaches them for one anchor (every
/// anchor's fee is refused once here, so each makes a replacement).
const KILL_POINTS: [&str; 6] = [
    "signed",
    "bump-signed",
    "broadcast",
    "mined",
    "confirmed",
    "recorded",
];

/// Confirmations in the kill test, and the Bitcoin blocks a restart may take to anchor a newer
/// root: the digest it resumes, then the newer one, each `KILL_CONFIRMATIONS` deep, plus the
/// blocks the test mines while the service has not yet looked.
const KILL_CONFIRMATIONS: u64 = 2;
const BLOCKS_TO_ANCHOR_AFTER_A_RESTART: u64 = 4 * (KILL_CONFIRMATIONS + 1);

/// The anchoring service's state file, as it last saved it.
fn anchorer_state(home: &AnchorHome) -> AnchorState {
    AnchorState::load(&home.home.join("data/anchorer.json"))
        .unwrap()
        .unwrap()
}

async fn latest_anchor(gateway: &Gateway) -> IpsatGateway::Anchor {
    gateway
        .view("latestAnchor", &IpsatGateway::latestAnchorCall {}, None)
        .await
        .unwrap()
}

/// Mines a Bitcoin block whenever there is something to mine for (a transaction in the
/// mempool, or an anchor mined but not yet confirmed) until `done` holds, within `timeout`.
/// Returns how many blocks it mined.
async fn drive<F, Fut>(
    btcd: &Btcd,
    home: &AnchorHome,
    what: &str,
    timeout: Duration,
    mut done: F,
) -> u64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + timeout;
    let mut mined = 0;
    while !done().await {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} after {timeout:?}; mined {mined} blocks; state {:?}\n{}",
            AnchorState::load(&home.home.join("data/anchorer.json")),
            home.log()
        );
        let confirming = AnchorState::load(&home.home.join("data/anchorer.json"))
            .ok()
            .flatten()
            .and_then(|s| s.in_flight)
            .is_some_and(|f| f.included.is_some());
        if confirming || !btcd.mempool().await.is_empty() {
            btcd.mine(1).await;
            mined += 1;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    mined
}

/// What must hold after every restart: each anchor recorded on the gateway once and held in
/// the anchorer's state, each digest committed by exactly one Bitcoin transaction, no output
/// spent twice, and the satoshis held plus the fees paid equal to those given.
async fn assert_anchoring_invariants(
    btcd: &Btcd,
    gateway: &Gateway,
    home: &AnchorHome,
    given_sat: u64,
) {
    let state = anchorer_state(home);
    let rpc = btcd.rpc();
    // Every OP_RETURN commitment on the chain, once.
    let mut commitments: std::collections::BTreeMap<Vec<u8>, Vec<(u64, Txid)>> = Default::default();
    for height in ACTIVATION_HEIGHT..=rpc.get_block_count().await.unwrap() {
        let block = rpc
            .get_block(&rpc.get_block_hash(height).await.unwrap())
            .await
            .unwrap();
        for tx in &block.txdata {
            for output in tx.output.iter().filter(|o| o.script_pubkey.is_op_return()) {
                commitments
                    .entry(output.script_pubkey.to_bytes())
                    .or_default()
                    .push((height, tx.compute_txid()));
            }
        }
    }
    let fees: u64 = state.confirmed.iter().map(|c| c.fee_sat).sum();
    assert_eq!(
        state.held_sat() + fees,
        given_sat,
        "funds held plus fees paid: {state:?}"
    );
    let mut spent = std::collections::BTreeSet::new();
    for c in &state.confirmed {
        let tx = rpc.get_raw_transaction(&c.txid).await.unwrap();
        for input in &tx.input {
            assert!(
                spent.insert(input.previous_output),
                "{} spent twice",
                input.previous_output
            );
        }
        assert_eq!(
            commitments.get(&anchor_script(c.id.digest()).to_bytes()),
            Some(&vec![(c.height, c.txid)]),
            "one transaction commits {}",
            c.id
        );
    }
    let mut txids = std::collections::BTreeSet::new();
    for event in anchors_recorded(gateway).await {
        assert!(
            txids.insert(event.btcTxid),
            "{} recorded twice",
            event.btcTxid
        );
        assert!(
            state
                .confirmed
                .iter()
                .any(|c| B256::from(c.txid.to_byte_array()) == event.btcTxid),
            "recorded {} is not an anchor of the service",
            event.btcTxid
        );
    }
}

/// Pays `amount_sat` to the service's address from the coinbase of block `height` (which pays
/// `miner`), mines it, and returns the payment's `txid:vout`.
async fn pay_from_coinbase(
    btcd: &Btcd,
    miner: &AnchorKey,
    height: u64,
    home: &AnchorHome,
    amount_sat: u64,
) -> String {
    let rpc = btcd.rpc();
    let block = rpc
        .get_block(&rpc.get_block_hash(height).await.unwrap())
        .await
        .unwrap();
    let coinbase = &block.txdata[0];
    let utxo = Utxo {
        outpoint: OutPoint::new(coinbase.compute_txid(), 0),
        value_sat: coinbase.output[0].value.to_sat(),
        script_pubkey: miner.script_pubkey(),
    };
    let payment = TxOut {
        value: Amount::from_sat(amount_sat),
        script_pubkey: home.bitcoin_address.script_pubkey(),
    };
    let paid = build_payment_tx(miner, &[utxo], payment, 10).unwrap();
    let txid = rpc.send_raw_transaction(&paid.tx).await.unwrap();
    btcd.mine(1).await;
    format!("{txid}:0")
}

fn stopped(child: &std::process::Child) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", child.id()))
        .ok()
        .and_then(|stat| {
            stat.rsplit(')')
                .next()
                .map(|rest| rest.trim().starts_with('T'))
        })
        .unwrap_or(false)
}

fn signal(child: &mut std::process::Child, sig: libc::c_int) {
    // SAFETY: kill(2) on the process group this test created.
    unsafe {
        libc::kill(-(child.id() as i32), sig);
    }
    child.wait().unwrap();
}

/// The anchoring service is SIGKILLed at each step of its work in turn while the blocktree
/// root keeps changing, and restarted each time with the same command and config (whose
/// `fund` output was spent by the first anchor); then btcd starts over under it. After every
/// restart a newer root is anchored within a bounded number of Bitcoin blocks and the
/// invariants of [`assert_anchoring_invariants`] hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_every_step_it_keeps_anchoring_a_changing_root() {
    let dir = tempfile::tempdir().unwrap();
    let (home, rsk) = service_and_rsk(dir.path(), 28970).await;
    let Rsk {
        proxy,
        gateway,
        admin,
        ..
    } = &rsk;
    let subnet = checkpointed_subnet(gateway, admin).await;

    // Bitcoin: btcd mines to a miner's key and relays nothing under 5 sat/vB, so every anchor
    // the service signs at 2 sat/vB is refused once and replaced. The miner pays the service.
    let miner = AnchorKey::new(
        SecretKey::from_slice(&[0x07; 32]).unwrap(),
        ScriptKind::P2wpkh,
    );
    let mut btcd = Btcd::start_with(
        &miner.address(Network::Regtest),
        &["--minrelaytxfee=0.00005", "--limitfreerelay=0"],
    )
    .await;
    btcd.mine(ACTIVATION_HEIGHT).await;
    let given_sat = 100_000_000;
    let fund = pay_from_coinbase(&btcd, &miner, 1, &home, given_sat).await;
    home.configure_with(
        &btcd,
        &AnchorSettings {
            rsk: &proxy.url,
            gateway: &gateway.address().to_string(),
            fund: &fund,
            period_rsk_blocks: 2,
            confirmations: KILL_CONFIRMATIONS,
        },
        "max_fee_rate_sat_vb = 50\nstall_after_rsk_blocks = 30",
    );

    let mut last = latest_anchor(gateway).await;
    for (i, point) in KILL_POINTS.iter().enumerate() {
        next_checkpoint(gateway, admin, subnet).await;
        let mut service = home.start_stopping_at(Some(point));
        drive(
            &btcd,
            &home,
            &format!("stopped at {point}"),
            Duration::from_secs(120),
            || async { stopped(&service) },
        )
        .await;
        signal(&mut service, libc::SIGKILL);
        eprintln!("killed at {point}");

        // The root changes while it is down; the same command starts it again.
        let changed_at = next_checkpoint(gateway, admin, subnet).await;
        let mut service = home.start();
        let mined = drive(
            &btcd,
            &home,
            &format!("a newer root anchored after the kill at {point}"),
            Duration::from_secs(180),
            || async { latest_anchor(gateway).await.rskHeight >= changed_at },
        )
        .await;
        let latest = latest_anchor(gateway).await;
        eprintln!("after the kill at {point}: a newer root anchored within {mined} Bitcoin blocks");
        assert!(
            mined <= BLOCKS_TO_ANCHOR_AFTER_A_RESTART,
            "{mined} blocks to anchor after the kill at {point}"
        );
        assert!(latest.rskHeight > last.rskHeight && latest.btcTxid != last.btcTxid);
        assert_eq!(
            latest.blocktreeRoot,
            gateway
                .blocktree_root(Some(latest.rskHeight))
                .await
                .unwrap(),
            "the recorded root is the gateway's at the height it names"
        );
        last = latest;
        if i == 0 {
            let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", home.metrics_port))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            for expected in [
                "ipsat_anchors_recorded_total ",
                "ipsat_anchor_refusals_total{cause=\"fee_too_low\"} ",
                "ipsat_anchor_rsk_blocks_since_anchored_root ",
                "ipsat_anchor_stalled 0",
            ] {
                assert!(metrics.contains(expected), "no {expected} in:\n{metrics}");
            }
            let held = metrics
                .lines()
                .find_map(|l| l.strip_prefix("ipsat_anchor_held_sat "))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap();
            assert!(held > 0 && held < given_sat, "{metrics}");
        }
        signal(&mut service, libc::SIGTERM);
        assert_anchoring_invariants(&btcd, gateway, &home, given_sat).await;
    }
    // Every restart offered the configured output again, long spent: skipped, never taken.
    let skipped = home
        .log()
        .matches(&format!("[anchor] fund: output {fund} is spent"))
        .count();
    assert!(
        skipped >= KILL_POINTS.len(),
        "{skipped} skipped offers of {fund}:\n{}",
        home.log()
    );
    let status: serde_json::Value =
        serde_json::from_str(&home.ipsat(&["anchor", "status", "--output", "json"])).unwrap();
    assert_eq!(status["errors"], serde_json::json!([]), "{status}");
    assert!(
        status["lag"]["rsk_blocks_since_anchored_root"].is_u64(),
        "{status}"
    );

    // btcd starts over under the running service: its funds and its anchor in flight are
    // gone. Mined past the last anchor and paid again, it anchors a newer root.
    let mut service = home.start();
    next_checkpoint(gateway, admin, subnet).await;
    btcd.restart().await;
    assert_eq!(btcd.rpc().get_block_count().await.unwrap(), 0);
    btcd.mine(ACTIVATION_HEIGHT.max(last.btcHeight + 1)).await;
    pay_from_coinbase(&btcd, &miner, 1, &home, given_sat).await;
    let changed_at = next_checkpoint(gateway, admin, subnet).await;
    drive(
        &btcd,
        &home,
        "a newer root anchored after btcd started over",
        Duration::from_secs(180),
        || async { latest_anchor(gateway).await.rskHeight >= changed_at },
    )
    .await;
    signal(&mut service, libc::SIGTERM);
    let state = anchorer_state(&home);
    let log = home.log();
    assert!(
        log.contains("a held output is spent or unknown to the node: dropped")
            || log.contains("inputs of the anchor are spent or unknown"),
        "the old chain's funds were not reconciled away:\n{log}"
    );
    assert!(
        state.held_sat() > 0 && state.held_sat() < given_sat,
        "{state:?}"
    );
    assert_eq!(proxy.refusals(), 0, "the RSK-strict filter refused a call");
}
