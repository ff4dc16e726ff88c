//! The tree under the RSK gateway on real CometBFT and anvil (chain id 33, every call through
//! the RSK-strict filter), set up only through the CLI: four validators join a level-1 subnet
//! on the gateway with `ipsat gateway join`, each writes the same genesis from the gateway's
//! registry with `ipsat gateway init`, and they run; a level-2 subnet of three runs under it.
//! RBTC funded on RSK is minted in level 1 once a quorum attested the RSK point that covers it,
//! continues down to level 2 and comes back up; level-1 checkpoints reach the gateway with
//! quorums of the signatures their certificates carry, submitted by the rotation; a release
//! is paid to an RSK account; the gateway's lock equals level 1's supply and level 1's lock
//! for level 2 equals level 2's supply, exactly; the filter refused nothing.

#![allow(clippy::unwrap_used)] // A test fails by panicking; a panic names the failed step.

use std::time::{Duration, Instant};

use alloy::primitives::{Address as EthAddress, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolEvent as _;
use ipsat_anchor::bitcoin::Network;
use ipsat_checkpoint::Checkpoint;
use ipsat_checkpoint::{keccak256, SubnetHash};
use ipsat_core::anchor_proof::{AnchorProof, ChainTrust};
use ipsat_core::blocktree::{BlocktreeProof, TrustRoots};
use ipsat_core::crossnet::StoredCheckpoint;
use ipsat_core::Address;
use ipsat_rootnet_bridge::{merkle, Gateway, GatewayConfig, IpsatGateway};
use ipsat_tests::anchoring::{AnchorHome, AnchorSettings};
use ipsat_tests::btcd::Btcd;
use ipsat_tests::child::{self, ChildPorts};
use ipsat_tests::rsk::{Anvil, RskStrictProxy, DEV_KEY};
use ipsat_tests::{wait_until, Testnet};
use serde_json::json;

const BASE: u16 = 28400;
const PERIOD: u64 = 4;
const VALIDATORS: usize = 4;
const GWEI: u128 = 1_000_000_000;
const RBTC: u128 = 1_000_000_000_000_000_000;
const PORTS: ChildPorts = ChildPorts {
    base: BASE + 100,
    grpc_base: BASE + 410,
    metrics_base: BASE + 460,
};
/// The level-2 subnet `beta` under `alpha`.
const BETA_PORTS: ChildPorts = ChildPorts {
    base: BASE + 200,
    grpc_base: BASE + 420,
    metrics_base: BASE + 470,
};
const BETA_VALIDATORS: [&str; 3] = ["account-1", "account-2", "account-3"];

fn cli(net: &Testnet, args: &[&str]) -> String {
    child::cli(net, args).unwrap()
}

async fn rsk_balance(anvil: &Anvil, who: EthAddress) -> u128 {
    let value = anvil
        .raw("eth_getBalance", json!([who.to_string(), "latest"]))
        .await
        .unwrap();
    u128::from_str_radix(value.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_level_one_subnet_lives_under_the_gateway() {
    let bin = env!("CARGO_BIN_EXE_ipsat");
    // The testnet is only a home for the CLI's keys; its own subnet never starts.
    let mut net = Testnet::init(bin.as_ref(), 1, BASE).unwrap();
    let anvil = Anvil::start(BASE + 900, true).unwrap();
    anvil.mine_every_second().await.unwrap();
    let proxy = RskStrictProxy::start(&anvil.url).await.unwrap();
    let config = GatewayConfig {
        confirmations: 2,
        ..GatewayConfig::default()
    };
    let admin: PrivateKeySigner = DEV_KEY.parse().unwrap();
    // The anchoring service started at the end holds the gateway's anchorer key.
    let service_home = AnchorHome::create(bin.as_ref(), net.path("anchor"));
    anvil
        .set_balance(&service_home.rsk_address, 10 * RBTC)
        .await
        .unwrap();
    let gateway = Gateway::deploy(
        &proxy.url,
        admin.clone(),
        config.clone(),
        service_home.rsk_address.parse().unwrap(),
        U256::from(RBTC),
    )
    .await
    .unwrap();
    let subnet = gateway
        .register_subnet("alpha", VALIDATORS as u64, U256::from(GWEI), PERIOD)
        .await
        .unwrap();
    let address = gateway.address().to_string();
    let rsk_args = |args: &mut Vec<String>| {
        args.extend(
            [
                "--rsk",
                &proxy.url,
                "--gateway",
                &address,
                "--confirmations",
                "2",
            ]
            .map(str::to_owned),
        )
    };

    // Four validators join on RSK with fresh keys, paying their collateral themselves.
    let homes: Vec<_> = (0..VALIDATORS)
        .map(|i| net.path(&format!("alpha{i}")))
        .collect();
    for (i, home) in homes.iter().enumerate() {
        let key = format!("validator-{i}");
        let made: serde_json::Value =
            serde_json::from_str(&cli(&net, &["keys", "new", &key, "--output", "json"])).unwrap();
        anvil
            .set_balance(made["address"].as_str().unwrap(), 10 * RBTC)
            .await
            .unwrap();
        let mut args: Vec<String> = [
            "gateway",
            "join",
            "alpha",
            "--collateral",
            &(10 * GWEI).to_string(),
            "--validator-home",
            home.to_str().unwrap(),
            "--key",
            &key,
        ]
        .map(str::to_owned)
        .to_vec();
        rsk_args(&mut args);
        cli(&net, &args.iter().map(String::as_str).collect::<Vec<_>>());
    }

    // Each writes its home from the registry at a final height; all get the same genesis.
    anvil.mine(3).await.unwrap();
    let ids: Vec<String> = homes.iter().map(|h| child::node_id(h).unwrap()).collect();
    for (i, home) in homes.iter().enumerate() {
        let peers: Vec<String> = (0..VALIDATORS)
            .filter(|j| *j != i)
            .map(|j| format!("{}@127.0.0.1:{}", ids[j], PORTS.port(j, 6)))
            .collect();
        let mut args: Vec<String> = [
            "gateway",
            "init",
            "alpha",
            "--key",
            &format!("validator-{i}"),
            "--attestation-step",
            "2",
            "--validator-home",
            home.to_str().unwrap(),
            "--persistent-peers",
            &peers.join(","),
            "--timeout-commit",
            "300ms",
            "--output",
            "json",
        ]
        .map(str::to_owned)
        .to_vec();
        args.extend(PORTS.flags(i, false));
        rsk_args(&mut args);
        let written: serde_json::Value = serde_json::from_str(&cli(
            &net,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        ))
        .unwrap();
        assert_eq!(written["validator"], true, "validator {i}: {written}");
    }
    let genesis = |i: usize| std::fs::read(homes[i].join("cometbft/config/genesis.json")).unwrap();
    for i in 1..VALIDATORS {
        assert_eq!(genesis(i), genesis(0), "validator {i}'s genesis differs");
    }
    // Alpha's nodes pull the checkpoints of beta, the level-2 subnet started below.
    for home in &homes {
        let config = home.join("config/ipsat.toml");
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str(&format!(
            "\n[[checkpoints.children]]\nname = \"beta\"\ngrpc = \"http://127.0.0.1:{}\"\n",
            BETA_PORTS.grpc(0)
        ));
        std::fs::write(&config, text).unwrap();
    }
    let nodes: Vec<usize> = (0..VALIDATORS)
        .map(|i| net.adopt(homes[i].clone(), PORTS.grpc(i)))
        .collect();
    for node in &nodes {
        net.start(*node).unwrap();
    }
    let mut client = net.client(nodes[0]).await.unwrap();
    client
        .wait_for_height(3, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs(nodes[0])));

    // RBTC funded on RSK is minted in the subnet.
    let user = net.key("account-1").unwrap();
    let user_address = ipsat_tests::address_of(&user);
    let funded = 3 * RBTC;
    let started = Instant::now();
    gateway
        .fund(subnet, EthAddress::from(user_address.0), U256::from(funded))
        .await
        .unwrap();
    // Beta's other validators need RBTC in alpha for their collateral and fees, and the
    // faucet, which creates beta, for its fee.
    let stake = RBTC / 10;
    let also_funded = ["account-2", "account-3", "faucet"];
    for name in &also_funded {
        let who = ipsat_tests::address_of(&net.key(name).unwrap());
        gateway
            .fund(subnet, EthAddress::from(who.0), U256::from(stake))
            .await
            .unwrap();
    }
    client
        .wait_for_balance(
            user_address,
            funded,
            "the user in alpha",
            Duration::from_secs(120),
        )
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs(nodes[0])));
    eprintln!(
        "value latency: fund on RSK -> spendable in the level-1 subnet {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Level 2: beta, three validators under alpha, set up through the CLI against alpha.
    for name in &also_funded {
        let who = ipsat_tests::address_of(&net.key(name).unwrap());
        client
            .wait_for_balance(who, stake, name, Duration::from_secs(120))
            .await
            .unwrap();
    }
    let alpha = PORTS.grpc(0);
    let beta_homes = child::register(&net, alpha, "beta", PERIOD, &BETA_VALIDATORS).unwrap();
    let beta_nodes = child::start(
        &mut net,
        alpha,
        "beta",
        &beta_homes,
        &BETA_PORTS,
        false,
        &[],
    )
    .unwrap();
    let mut beta = net.client(beta_nodes[0]).await.unwrap();

    // RBTC from RSK continues down to beta, and comes back up to alpha.
    let in_beta = RBTC;
    let alpha_tx = |args: &[&str]| {
        let mut all = vec!["tx", "--from", "account-1", "--subnet", "/r33/alpha"];
        all.extend_from_slice(args);
        child::cli_at(&net, alpha, &all).unwrap()
    };
    let user_text = user_address.to_string();
    alpha_tx(&["fund", "beta", &user_text, &in_beta.to_string()]);
    beta.wait_for_balance(
        user_address,
        in_beta,
        "the user in beta",
        Duration::from_secs(120),
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs(beta_nodes[0])));
    let before = client.balance(user_address).await.unwrap();
    let back = RBTC / 2;
    child::cli_at(
        &net,
        BETA_PORTS.grpc(0),
        &[
            "tx",
            "--from",
            "account-1",
            "--subnet",
            "/r33/alpha/beta",
            "release",
            &user_text,
            &back.to_string(),
        ],
    )
    .unwrap();
    client
        .wait_for_balance(
            user_address,
            before + back,
            "the user back in alpha",
            Duration::from_secs(120),
        )
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs(nodes[0])));

    // Checkpoints reach the gateway; the blocktree commits to the latest one.
    let view_subnet = || async {
        gateway
            .view(
                "getSubnet",
                &IpsatGateway::getSubnetCall { subnetId: subnet },
                None,
            )
            .await
            .unwrap()
    };
    wait_until(
        "checkpoints accepted by the gateway",
        Duration::from_secs(180),
        || async {
            let info = view_subnet().await;
            (
                info.lastCheckpointHeight >= 3 * PERIOD,
                format!("last accepted height {}", info.lastCheckpointHeight),
            )
        },
    )
    .await;
    // Both read at one RSK block: checkpoints keep arriving.
    let block = gateway.rpc().block_number().await.unwrap();
    let info = gateway
        .view(
            "getSubnet",
            &IpsatGateway::getSubnetCall { subnetId: subnet },
            Some(block),
        )
        .await
        .unwrap();
    let root = gateway.blocktree_root(Some(block)).await.unwrap();
    let leaf = merkle::blocktree_leaf(subnet, info.lastCheckpointHash);
    let leaves = vec![leaf];
    assert_eq!(
        root,
        merkle::blocktree_root(&leaves),
        "the only subnet's leaf"
    );
    assert_eq!(subnet, B256::from(SubnetHash::of_path("/r33/alpha").0));

    // What each accepted checkpoint cost on the gateway, with this set of 4 equal validators.
    let head = gateway.rpc().block_number().await.unwrap();
    let accepted = gateway
        .rpc()
        .logs(
            gateway.address(),
            IpsatGateway::CheckpointAccepted::SIGNATURE_HASH,
            Some(subnet),
            0,
            head,
        )
        .await
        .unwrap();
    let mut gas = Vec::new();
    for log in &accepted {
        let receipt = gateway
            .rpc()
            .receipt(log.transaction_hash.unwrap())
            .await
            .unwrap()
            .unwrap();
        gas.push(receipt.gas_used.to::<u64>());
    }
    eprintln!("gas per level-1 checkpoint (4 validators, 3 signatures): {gas:?}");
    // The first writes the subnet's empty blocktree path; later ones rewrite it.
    assert!(gas.len() >= 3 && gas[0] < 600_000, "{gas:?}");
    assert!(gas[1..].iter().all(|g| *g < 250_000), "{gas:?}");

    // A release in the subnet pays an RSK account once its checkpoint is accepted.
    let rsk_recipient = EthAddress::from_slice(&keccak256(b"rsk recipient")[12..]);
    let released = RBTC;
    let started = Instant::now();
    child::cli_at(
        &net,
        PORTS.grpc(0),
        &[
            "tx",
            "--from",
            "account-1",
            "--subnet",
            "/r33/alpha",
            "release",
            &Address(rsk_recipient.into_array()).to_string(),
            &released.to_string(),
        ],
    )
    .unwrap();
    wait_until(
        "the release paid on RSK",
        Duration::from_secs(180),
        || async {
            let balance = rsk_balance(&anvil, rsk_recipient).await;
            (balance == released, format!("recipient holds {balance}"))
        },
    )
    .await;
    eprintln!(
        "value latency: release in the level-1 subnet -> paid on RSK {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Everything reconciles exactly: the gateway locks what alpha has minted and not released,
    // and alpha locks for beta what beta has minted and not released.
    let info = view_subnet().await;
    let parent_view = |client: &mut ipsat_tests::Client| {
        let mut client = client.clone();
        async move {
            let held = client
                .query
                .get_parent(ipsat_proto::v1::GetParentRequest {})
                .await
                .unwrap()
                .into_inner();
            held.minted.parse::<u128>().unwrap() - held.released.parse::<u128>().unwrap()
        }
    };
    let alpha_supply = parent_view(&mut client).await;
    assert_eq!(info.locked, U256::from(alpha_supply));
    assert_eq!(
        alpha_supply,
        funded + 3 * stake - released,
        "alpha's supply is what RSK sent minus what went back"
    );
    let beta_record = client
        .query
        .get_subnet(ipsat_proto::v1::GetSubnetRequest {
            name: "beta".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .subnet
        .unwrap();
    let beta_supply = parent_view(&mut beta).await;
    assert_eq!(beta_record.locked, beta_supply.to_string());
    assert_eq!(beta_supply, in_beta - back);
    assert_eq!(proxy.refusals(), 0, "the RSK-strict filter refused a call");
    let mut submitters = 0;
    for i in 0..VALIDATORS {
        let submitted = ipsat_tests::metric(
            PORTS.metrics(i),
            "ipsat_gateway_checkpoints_submitted_total",
        )
        .await
        .unwrap();
        eprintln!("validator {i} submitted {submitted} checkpoints");
        submitters += usize::from(submitted > 0);
    }
    assert!(submitters >= 2, "the rotation spreads submissions");

    // The anchoring service commits the blocktree into btcd, which mines every two seconds.
    let btcd = Btcd::start_active(&service_home.bitcoin_address).await;
    let bitcoin = btcd.rpc();
    let coinbase = btcd.first_coinbase().await;
    service_home.configure(
        &btcd,
        &AnchorSettings {
            rsk: &proxy.url,
            gateway: &address,
            fund: &coinbase,
            period_rsk_blocks: 5,
            confirmations: 1,
        },
    );
    let mut service = service_home.start();
    // Bitcoin blocks every two seconds, as a regtest miner would.
    let miner = {
        let (rpc, to) = (btcd.rpc(), btcd.mining_address.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                rpc.generate(1, &to).await.unwrap();
            }
        })
    };
    // A key written in beta (level 2) and one in alpha (level 1) are proven to a Bitcoin block
    // once the service has anchored a blocktree root that covers them: beta's at the height of
    // its write, through the history root of a later checkpoint.
    let write = |grpc: u16, subnet: &str| {
        for args in [
            &["keyspace-create", "notes"][..],
            &["kv-put", "notes", "greeting", "hello from the blocktree"][..],
        ] {
            let mut all = vec!["tx", "--from", "account-1", "--subnet", subnet];
            all.extend_from_slice(args);
            child::cli_at(&net, grpc, &all).unwrap();
        }
    };
    write(BETA_PORTS.grpc(0), "/r33/alpha/beta");
    let written = Instant::now();
    let btc_at_write = bitcoin.get_block_count().await.unwrap();
    let heights_at_write = (
        beta.status().await.unwrap().height,
        client.status().await.unwrap().height,
        gateway.rpc().block_number().await.unwrap(),
    );
    write(PORTS.grpc(0), "/r33/alpha");
    let proofs = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let beta_file = proofs.join("blocktree-proof-depth2.ipbt");
    let alpha_file = proofs.join("blocktree-proof-depth1.ipbt");
    let proof_args = |file: &std::path::Path, subnet: &str, parents: &[String]| {
        let mut args: Vec<String> = [
            "proof",
            subnet,
            "notes",
            "greeting",
            "-o",
            file.to_str().unwrap(),
            "--wait",
            "--bitcoin-headers",
            "4",
            "--bitcoin-rpc",
            &btcd.rpc_url,
            "--bitcoin-user",
            ipsat_tests::btcd::RPC_USER,
            "--bitcoin-password",
            ipsat_tests::btcd::RPC_PASS,
            "--output",
            "json",
        ]
        .map(str::to_owned)
        .to_vec();
        for parent in parents {
            args.extend(["--parent-node".to_owned(), parent.clone()]);
        }
        rsk_args(&mut args);
        args
    };
    let mut args = proof_args(
        &beta_file,
        "/r33/alpha/beta",
        &[format!("http://127.0.0.1:{}", PORTS.grpc(0))],
    );
    args.extend(["--height".to_owned(), heights_at_write.0.to_string()]);
    let built = child::cli_at(
        &net,
        BETA_PORTS.grpc(0),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", service_home.log()));
    let first_anchor = written.elapsed();
    let built: serde_json::Value = serde_json::from_str(&built).unwrap();
    let args = proof_args(&alpha_file, "/r33/alpha", &[]);
    child::cli_at(
        &net,
        PORTS.grpc(0),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .unwrap();
    miner.abort();
    // SAFETY: kill(2) on the process group this test created.
    unsafe {
        libc::kill(-(service.id() as i32), libc::SIGKILL);
    }
    service.wait().unwrap();

    // Verified offline against the gateway and a Bitcoin block the verifier knows.
    let tip = built["bitcoin_tip"].as_str().unwrap().to_owned();
    let verify = |file: &std::path::Path, trust: &[&str]| {
        let mut args = vec![
            "proof",
            "verify",
            file.to_str().unwrap(),
            "--gateway",
            &address,
            "--chain-id",
            "33",
            "--network",
            "regtest",
            "--output",
            "json",
        ];
        args.extend_from_slice(trust);
        child::cli(&net, &args)
    };
    let verified: serde_json::Value =
        serde_json::from_str(&verify(&beta_file, &["--trusted-block", &tip]).unwrap()).unwrap();
    assert_eq!(verified["subnet"], "/r33/alpha/beta");
    assert_eq!(verified["height"], heights_at_write.0);
    assert_eq!(
        verified["value"],
        hex::encode("hello from the blocktree"),
        "{verified}"
    );
    assert_eq!(verified["signing_set_bound"], true, "{verified}");
    let steps = verified["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 8, "{verified}");
    eprintln!(
        "blocktree proof, depth 2:\n{}",
        serde_json::to_string_pretty(steps).unwrap()
    );
    let alpha_tip = {
        let proof = BlocktreeProof::decode(&std::fs::read(&alpha_file).unwrap()).unwrap();
        let anchor = AnchorProof::decode(&proof.anchor.bitcoin).unwrap();
        anchor.headers.last().unwrap().block_hash().to_string()
    };
    let verified_alpha: serde_json::Value =
        serde_json::from_str(&verify(&alpha_file, &["--trusted-block", &alpha_tip]).unwrap())
            .unwrap();
    assert_eq!(verified_alpha["subnet"], "/r33/alpha");

    // Too little work on top: the headers carry less than the verifier requires.
    let work = verified["bitcoin_work"].as_str().unwrap();
    let more = format!(
        "{:#x}",
        u128::from_str_radix(work.trim_start_matches("0x"), 16).unwrap() + 1
    );
    let refused = verify(&beta_file, &["--min-work", &more]).unwrap_err();
    assert!(format!("{refused:#}").contains("carry work"), "{refused:#}");
    assert!(verify(&beta_file, &["--min-work", work]).is_ok());
    // Another gateway, another chain, a block the proof does not reach: refused.
    let elsewhere = EthAddress::repeat_byte(0x77).to_string();
    assert!(child::cli(
        &net,
        &[
            "proof",
            "verify",
            beta_file.to_str().unwrap(),
            "--gateway",
            &elsewhere,
            "--network",
            "regtest",
            "--trusted-block",
            &tip
        ]
    )
    .is_err());
    assert!(verify(&beta_file, &["--trusted-block", &"00".repeat(32)]).is_err());

    // Flipping any single byte of the file makes verification fail.
    let bytes = std::fs::read(&beta_file).unwrap();
    let trust = TrustRoots {
        rsk_chain_id: 33,
        gateway: gateway.address().into_array(),
        network: Network::Regtest,
        bitcoin: ChainTrust::Extends(tip.parse().unwrap()),
    };
    assert!(BlocktreeProof::decode(&bytes)
        .unwrap()
        .verify(&trust)
        .is_ok());
    for i in 0..bytes.len() {
        let mut tampered = bytes.clone();
        tampered[i] ^= 0x01;
        let outcome = BlocktreeProof::decode(&tampered).and_then(|p| p.verify(&trust));
        assert!(
            outcome.is_err(),
            "flipping byte {i} of {} verified",
            bytes.len()
        );
    }

    // How long a write takes to reach Bitcoin, in blocks of each layer.
    let proof = BlocktreeProof::decode(&bytes).unwrap();
    let beta_checkpoint = Checkpoint::abi_decode(&proof.levels[0].checkpoint).unwrap();
    let record: StoredCheckpoint =
        borsh::from_slice(&proof.levels[0].accepted.as_ref().unwrap().record).unwrap();
    let alpha_checkpoint = Checkpoint::abi_decode(&proof.levels[1].checkpoint).unwrap();
    let anchored_in = AnchorProof::decode(&proof.anchor.bitcoin).unwrap().headers[0].block_hash();
    let mut btc_height = btc_at_write;
    while bitcoin.get_block_hash(btc_height).await.unwrap() != anchored_in {
        btc_height += 1;
    }
    eprintln!(
        "write in beta -> first Bitcoin anchor covering it: {:.0} s; beta {} -> checkpoint {} \
         ({} blocks), accepted at alpha {} -> alpha checkpoint {} ({} alpha blocks since the \
         write), anchored at RSK {} ({} RSK blocks since the write), Bitcoin block {} ({} blocks \
         since the write); proof {} bytes (depth 1: {} bytes)",
        first_anchor.as_secs_f64(),
        heights_at_write.0,
        beta_checkpoint.height,
        beta_checkpoint.height - heights_at_write.0,
        record.recorded_at,
        alpha_checkpoint.height,
        alpha_checkpoint.height - heights_at_write.1,
        proof.anchor.rsk_height,
        proof.anchor.rsk_height - heights_at_write.2,
        btc_height,
        btc_height - btc_at_write,
        bytes.len(),
        std::fs::metadata(&alpha_file).unwrap().len(),
    );
    assert_eq!(proxy.refusals(), 0, "the RSK-strict filter refused a call");
}
