//! A child subnet on real CometBFT, started from its parent's registry, checkpointing into
//! the parent: a parent of 4 validators and a child of 3, set up only through the CLI an
//! operator uses. Five consecutive child checkpoints are accepted in the parent in order,
//! each certificate verifying against the child's set in parent state, delivered over the
//! libp2p gossip plane (and, for one parent node, also pulled over gRPC); a child validator
//! killed with SIGKILL comes back and signs again; value moves down and up through the CLI (a
//! deposit in the parent is minted in the child once its validators verified the parent's
//! headers and proofs, and a release in the child is paid in the parent once the checkpoint
//! carrying it is accepted), the child's supply staying equal to the parent's lock; with the
//! network between the subnets cut, `ipsat relay` catches the parent up.

#![allow(clippy::unwrap_used)] // A test fails by panicking; a panic names the failed step.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ipsat_checkpoint::{BlsPublicKey, Certificate, CheckpointDomain, Signer};
use ipsat_core::system::certificate_from_proto;
use ipsat_proto::v1 as pb;
use ipsat_tests::child::{self, ChildPorts};
use ipsat_tests::cut::CutNetworkProxy;
use ipsat_tests::{Client, Testnet};

const BASE: u16 = 27200;
const PERIOD: u64 = 4;
const CHILD: usize = 3;

const PORTS: ChildPorts = ChildPorts {
    base: BASE + 100,
    grpc_base: BASE + 410,
    metrics_base: BASE + 460,
};

fn child_port(i: usize, offset: u16) -> u16 {
    PORTS.port(i, offset)
}

fn child_grpc(i: usize) -> u16 {
    PORTS.grpc(i)
}

fn pull_proxy_port(parent: usize) -> u16 {
    BASE + 420 + parent as u16
}

fn gossip_proxy_port(parent: usize) -> u16 {
    BASE + 430 + parent as u16
}

/// The parent node that also pulls checkpoints over gRPC; the others rely on gossip alone.
const PULLING_PARENT: usize = 3;

/// A counter from a node's Prometheus endpoint.
async fn metric(port: u16, name: &str) -> u64 {
    ipsat_tests::metric(port, name).await.unwrap()
}

fn cli(net: &Testnet, args: &[&str]) -> String {
    child::cli(net, args).unwrap()
}

fn cli_at(net: &Testnet, grpc: u16, args: &[&str]) -> String {
    child::cli_at(net, grpc, args).unwrap()
}

async fn subnet(parent: &mut Client) -> pb::Subnet {
    parent
        .query
        .get_subnet(pb::GetSubnetRequest {
            name: "beta".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .subnet
        .unwrap()
}

async fn checkpoint(client: &mut Client, child: &str, height: u64) -> Option<pb::Checkpoint> {
    client
        .query
        .get_checkpoint(pb::GetCheckpointRequest {
            child: child.into(),
            height,
        })
        .await
        .ok()
        .and_then(|r| r.into_inner().checkpoint)
}

/// Waits until the parent has accepted the child's checkpoint at `height`, printing progress.
async fn wait_accepted(net: &Testnet, parent: &mut Client, height: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut last = u64::MAX;
    loop {
        let accepted = subnet(parent).await.last_checkpoint_height;
        if accepted != last {
            eprintln!("parent has accepted child checkpoints up to {accepted}");
            last = accepted;
        }
        if accepted >= height {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "checkpoint {height} not accepted within {timeout:?}\n{}\n{}",
            net.logs(0),
            net.logs(4)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The child's latest certified checkpoint height, as child node `i` serves it.
async fn certified(net: &Testnet, i: usize) -> u64 {
    let mut client = net.client(4 + i).await.unwrap();
    checkpoint(&mut client, "", 0)
        .await
        .map_or(0, |cp| cp.height)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_checkpoints_into_its_parent_through_a_crash_and_a_cut() {
    let bin = env!("CARGO_BIN_EXE_ipsat");
    let mut net = Testnet::init(bin.as_ref(), 4, BASE).unwrap();

    // Every parent validator hears the child's checkpoints on the gossip plane from one child
    // node, and one of them also pulls them over gRPC, all through proxies the test can cut.
    let mut proxies = Vec::new();
    for p in 0..4 {
        let to = |port: u16| -> SocketAddr { ([127, 0, 0, 1], port).into() };
        let gossip = to(child_port(p % CHILD, 9));
        proxies.push(
            CutNetworkProxy::start(to(gossip_proxy_port(p)), gossip)
                .await
                .unwrap(),
        );
        let config = net.home(p).join("config/ipsat.toml");
        let mut text = std::fs::read_to_string(&config).unwrap().replacen(
            "bootstrap = []",
            &format!(
                "bootstrap = [\"/ip4/127.0.0.1/tcp/{}\"]",
                gossip_proxy_port(p)
            ),
            1,
        );
        text.push_str("\n[[checkpoints.children]]\nname = \"beta\"\n");
        if p == PULLING_PARENT {
            let grpc = to(child_grpc(p % CHILD));
            proxies.push(
                CutNetworkProxy::start(to(pull_proxy_port(p)), grpc)
                    .await
                    .unwrap(),
            );
            text.push_str(&format!(
                "grpc = \"http://127.0.0.1:{}\"\n",
                pull_proxy_port(p)
            ));
        }
        std::fs::write(&config, text).unwrap();
    }
    net.start_all().unwrap();
    net.wait_for_height(0, 2, Duration::from_secs(90))
        .await
        .unwrap();

    // The registry, through the CLI.
    let joiners = ["account-1", "account-2", "account-3"];
    let homes = child::register(&net, net.grpc_port(0), "beta", PERIOD, &joiners).unwrap();
    let listed: serde_json::Value =
        serde_json::from_str(&cli(&net, &["subnet", "list", "--output", "json"])).unwrap();
    assert_eq!(listed["subnets"][0]["status"], "active");
    assert_eq!(
        listed["subnets"][0]["genesis_validators"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Each validator writes its home from the registry; all three get the same genesis.
    let parent = net.grpc_port(0);
    child::start(&mut net, parent, "beta", &homes, &PORTS, true, &[]).unwrap();

    // Five consecutive checkpoints accepted in the parent, each certified by the child's
    // genesis set held in parent state.
    let mut parent = net.client(0).await.unwrap();
    wait_accepted(&net, &mut parent, 5 * PERIOD, Duration::from_secs(240)).await;
    let record = subnet(&mut parent).await;
    let set: Vec<Signer> = record
        .genesis_validators
        .iter()
        .map(|v| Signer {
            key: BlsPublicKey::from_compressed(&v.bls_key).unwrap(),
            power: v.power,
        })
        .collect();
    let domain = CheckpointDomain::subnet_parent(33);
    let mut child = net.client(4).await.unwrap();
    let mut previous = vec![0u8; 32];
    for n in 1..=5 {
        let accepted = checkpoint(&mut parent, "beta", n * PERIOD).await.unwrap();
        let own = checkpoint(&mut child, "", n * PERIOD).await.unwrap();
        assert_eq!(accepted.hash, own.hash, "checkpoint {}", n * PERIOD);
        assert_eq!(accepted.previous_checkpoint_hash, previous);
        let parsed = ipsat_checkpoint::Checkpoint::abi_decode(&accepted.abi).unwrap();
        assert_eq!(parsed.digest(&domain).0.to_vec(), accepted.digest);
        let certificate: Certificate =
            certificate_from_proto(accepted.certificate.clone()).unwrap();
        let signed = certificate.verify(&set, &accepted.digest).unwrap();
        assert!(
            signed * 3 > 2 * 30,
            "certificate of {} signed by {signed}",
            n * PERIOD
        );
        previous = accepted.hash.clone();
        // Latency, for docs/benchmarks.md (scripts/bench-checkpoints): reported, not asserted.
        let child_time = child.block_time(n * PERIOD).await.unwrap();
        let parent_time = parent.block_time(accepted.recorded_at).await.unwrap();
        eprintln!(
            "checkpoint latency: height {} certified {} child blocks later, accepted at parent \
             height {}, {:.2} s after the child's block",
            n * PERIOD,
            own.recorded_at - n * PERIOD,
            accepted.recorded_at,
            (parent_time - child_time) as f64 / 1e9
        );
    }

    // Gossip carried them to the nodes that do not pull; the pulling node pulled too.
    let metrics_port = |p: usize| BASE + 450 + p as u16;
    assert!(metric(metrics_port(0), "ipsat_gossip_checkpoints_accepted_total").await > 0);
    assert_eq!(
        metric(metrics_port(0), "ipsat_child_checkpoints_pulled_total").await,
        0
    );
    assert!(
        metric(
            metrics_port(PULLING_PARENT),
            "ipsat_child_checkpoints_pulled_total"
        )
        .await
            > 0
    );
    assert!(metric(BASE + 460, "ipsat_gossip_checkpoints_published_total").await > 0);

    // SIGKILL one child validator: with one of three down the child cannot commit, so
    // checkpoints pause; after the restart they go on and it signs again.
    let victim_key = std::fs::read_to_string(homes[2].join("config/bls_key.json")).unwrap();
    let victim_key: serde_json::Value = serde_json::from_str(&victim_key).unwrap();
    let victim = record
        .genesis_validators
        .iter()
        .position(|v| hex::encode(&v.bls_key) == victim_key["public_key"].as_str().unwrap())
        .unwrap();
    net.kill9(6).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    net.start(6).unwrap();
    let resumed = subnet(&mut parent).await.last_checkpoint_height + 3 * PERIOD;
    wait_accepted(&net, &mut parent, resumed, Duration::from_secs(240)).await;
    let latest = checkpoint(&mut parent, "beta", resumed).await.unwrap();
    let signers = certificate_from_proto(latest.certificate).unwrap();
    let mut signed_again = signers.signer_indices().any(|i| i == victim);
    let mut height = resumed;
    while !signed_again {
        height += PERIOD;
        wait_accepted(&net, &mut parent, height, Duration::from_secs(120)).await;
        let cp = checkpoint(&mut parent, "beta", height).await.unwrap();
        signed_again = certificate_from_proto(cp.certificate)
            .unwrap()
            .signer_indices()
            .any(|i| i == victim);
        assert!(
            height < resumed + 10 * PERIOD,
            "the restarted validator never signed again"
        );
    }

    // Value down and up, through the CLI. A deposit in the parent is minted in the child once
    // the child's validators have verified the parent's header and the deposit's proof.
    const RBTC: u128 = 1_000_000_000_000_000_000;
    let alice = ipsat_tests::address_of(&net.key("account-1").unwrap());
    let (carol, bob) = (
        ipsat_core::Address([0xc0; 20]),
        ipsat_core::Address([0xb0; 20]),
    );
    let started = Instant::now();
    cli(
        &net,
        &[
            "tx",
            "--from",
            "faucet",
            "fund",
            "beta",
            &alice.to_string(),
            &(5 * RBTC).to_string(),
        ],
    );
    let mut child_client = net.client(4).await.unwrap();
    let minute = Duration::from_secs(60);
    child_client
        .wait_for_balance(alice, 5 * RBTC, "alice in the child", minute)
        .await
        .unwrap();
    eprintln!(
        "value latency: fund in the parent -> spendable in the child {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let child_id = record.id.clone();
    let child_tx = |args: &[&str]| {
        let mut all = vec!["tx", "--from", "account-1", "--subnet", &child_id];
        all.extend_from_slice(args);
        cli_at(&net, child_grpc(0), &all)
    };
    child_tx(&["transfer", &carol.to_string(), &RBTC.to_string()]);
    let started = Instant::now();
    child_tx(&["release", &bob.to_string(), &(2 * RBTC).to_string()]);
    let mut parent_client = net.client(1).await.unwrap();
    parent_client
        .wait_for_balance(bob, 2 * RBTC, "bob in the parent", 2 * minute)
        .await
        .unwrap();
    eprintln!(
        "value latency: release in the child -> paid in the parent {:.2} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        child_client.account(carol).await.unwrap().balance,
        RBTC.to_string()
    );
    // The child's supply (minted minus released) is exactly what the parent holds for it.
    let lock = subnet(&mut parent).await;
    assert_eq!(lock.locked, (3 * RBTC).to_string());
    assert_eq!((lock.top_down_nonce, lock.releases_paid), (1, 1));
    let held: serde_json::Value = serde_json::from_str(&cli_at(
        &net,
        child_grpc(1),
        &["query", "parent", "--output", "json"],
    ))
    .unwrap();
    assert_eq!(held["minted"], (5 * RBTC).to_string());
    assert_eq!(held["released"], (2 * RBTC).to_string());
    assert_eq!(held["expired"], false);
    assert!(held["trusted_height"].as_u64().unwrap() > record.activated_at);
    for p in 0..4 {
        assert!(
            metric(
                BASE + 460 + (p % CHILD) as u16,
                "ipsat_parent_updates_offered_total"
            )
            .await
                > 0
        );
    }

    // A validator joins the running child: it becomes one of the child's CometBFT validators
    // once a checkpoint declared it, and signs the child's certificates; when it leaves, its
    // collateral comes back only once a checkpoint confirmed the departure.
    let newcomer_home = net.path("beta3");
    let joined: serde_json::Value = serde_json::from_str(&cli(
        &net,
        &[
            "subnet",
            "join",
            "beta",
            "--collateral",
            "10000000000",
            "--validator-home",
            newcomer_home.to_str().unwrap(),
            "--from",
            "faucet",
            "--output",
            "json",
        ],
    ))
    .unwrap();
    let joined_number = subnet(&mut parent).await.configuration_number;
    let peers: Vec<String> = homes
        .iter()
        .enumerate()
        .map(|(j, h)| {
            format!(
                "{}@127.0.0.1:{}",
                child::node_id(h).unwrap(),
                child_port(j, 6)
            )
        })
        .collect();
    let written = child::init_home(
        &net,
        net.grpc_port(0),
        "beta",
        &newcomer_home,
        CHILD,
        &PORTS,
        &peers,
        false,
        &[],
    )
    .unwrap();
    assert_eq!(
        written["validator"], false,
        "not in the child's genesis set"
    );
    let newcomer = net.adopt(newcomer_home.clone(), child_grpc(CHILD));
    net.start(newcomer).unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    while subnet(&mut parent).await.confirmed_configuration_number < joined_number {
        assert!(
            Instant::now() < deadline,
            "the join was not confirmed: {joined}\n{}",
            net.logs(newcomer)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let confirmed_at = subnet(&mut parent).await.last_checkpoint_height;
    eprintln!("the join was confirmed by checkpoint {confirmed_at}");
    // CometBFT applies the power change two heights after the declaring checkpoint; the
    // newcomer sees it once it has caught up to there.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status: serde_json::Value =
            reqwest::get(format!("http://127.0.0.1:{}/status", child_port(CHILD, 7)))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        if status["result"]["validator_info"]["voting_power"] == "10" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the newcomer is not a CometBFT validator of the child: {status}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let newcomer_bls: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(newcomer_home.join("config/bls_key.json")).unwrap(),
    )
    .unwrap();
    let record = subnet(&mut parent).await;
    let index = record
        .validators
        .iter()
        .position(|v| hex::encode(&v.bls_key) == newcomer_bls["public_key"].as_str().unwrap())
        .unwrap();
    let mut height = confirmed_at + PERIOD;
    loop {
        wait_accepted(&net, &mut parent, height, Duration::from_secs(120)).await;
        let cp = checkpoint(&mut parent, "beta", height).await.unwrap();
        if certificate_from_proto(cp.certificate)
            .unwrap()
            .signer_indices()
            .any(|i| i == index)
        {
            eprintln!("the newcomer signed the certificate of checkpoint {height}");
            break;
        }
        assert!(
            height < confirmed_at + 10 * PERIOD,
            "the newcomer never signed a certificate\n{}",
            net.logs(newcomer)
        );
        height += PERIOD;
    }
    let faucet = ipsat_tests::address_of(&net.key("faucet").unwrap());
    cli(&net, &["subnet", "leave", "beta", "--from", "faucet"]);
    let after_leave = parent.balance(faucet).await.unwrap();
    let left_number = subnet(&mut parent).await.configuration_number;
    let deadline = Instant::now() + Duration::from_secs(180);
    while subnet(&mut parent).await.confirmed_configuration_number < left_number {
        assert_eq!(
            parent.balance(faucet).await.unwrap(),
            after_leave,
            "collateral paid back before the child confirmed the leave"
        );
        assert!(Instant::now() < deadline, "the leave was not confirmed");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        parent.balance(faucet).await.unwrap(),
        after_leave + 10_000_000_000,
        "the leaver's collateral is paid back once the child confirmed"
    );

    // Cut the network between the subnets: the parent stops accepting while the child goes
    // on certifying; a relay run by anyone catches the parent up.
    for proxy in &proxies {
        proxy.cut();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stuck = subnet(&mut parent).await.last_checkpoint_height;
    let deadline = Instant::now() + Duration::from_secs(120);
    while certified(&net, 0).await < stuck + 2 * PERIOD {
        assert!(Instant::now() < deadline, "the child stopped certifying");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        subnet(&mut parent).await.last_checkpoint_height,
        stuck,
        "checkpoints crossed a cut network"
    );
    let target = certified(&net, 0).await;
    let child_endpoint = format!("http://127.0.0.1:{}", child_grpc(0));
    let relayed: serde_json::Value = serde_json::from_str(&cli(
        &net,
        &[
            "relay",
            "beta",
            "--child",
            &child_endpoint,
            "--output",
            "json",
        ],
    ))
    .unwrap();
    assert!(relayed["relayed"].as_array().unwrap().len() >= 2);
    assert!(subnet(&mut parent).await.last_checkpoint_height >= target);
    let listed: serde_json::Value = serde_json::from_str(&cli(
        &net,
        &[
            "checkpoint",
            "list",
            "--child",
            "beta",
            "--limit",
            "3",
            "--output",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 3);
}
