//! Value across a tree on real CometBFT: a parent P of 3 validators with two children, A
//! (`beta`, 2 validators) and B (`gamma`, 1), all set up through the CLI. Through the CLI: a
//! cross-call from A into a keyspace of B carries value and a payload and is delivered, with
//! its receipt back in A; a cross-call to a keyspace B lacks is refunded with a failure
//! receipt. Then a seeded random sequence of 200 funds, transfers, releases and cross-calls,
//! with a validator of A killed and restarted in the middle. At rest, each child's supply
//! equals what P holds locked for it, and the total over the tree equals P's genesis total,
//! exactly. B's nodes follow P through three lying endpoints besides an honest one (forging
//! commits, inflating deposits, withholding them): B imports nothing false and everything true.

#![allow(clippy::unwrap_used)] // A test fails by panicking; a panic names the failed step.

use std::time::{Duration, Instant};

use ipsat_core::{Address, SubnetId};
use ipsat_proto::v1::{self as pb, tx_body::Msg};
use ipsat_tests::child::{self, ChildPorts};
use ipsat_tests::fuzz::Mutator;
use ipsat_tests::lying::{Lie, LyingParentEndpoint};
use ipsat_tests::{address_of, sign_for, transfer, wait_until, Client, Testnet};
use secp256k1::SecretKey;

const BASE: u16 = 27800;
const PERIOD: u64 = 3;
const A: &str = "beta";
const B: &str = "gamma";
const A_PORTS: ChildPorts = ChildPorts {
    base: BASE + 100,
    grpc_base: BASE + 410,
    metrics_base: BASE + 460,
};
const B_PORTS: ChildPorts = ChildPorts {
    base: BASE + 150,
    grpc_base: BASE + 420,
    metrics_base: BASE + 470,
};
const RBTC: u128 = 1_000_000_000_000_000_000;
const FEE_POOL: Address = Address([0xfe; 20]);
const OPERATIONS: usize = 200;
const SEED: u64 = 0x1b7e_5a71;

fn amount(text: &str) -> u128 {
    text.parse().unwrap()
}

/// A counter from a node's Prometheus endpoint.
async fn metric(port: u16, name: &str) -> u64 {
    ipsat_tests::metric(port, name).await.unwrap()
}

async fn total(client: &mut Client, accounts: &[Address]) -> u128 {
    let mut sum = 0;
    for who in accounts {
        sum += client.balance(*who).await.unwrap();
    }
    sum
}

async fn record(parent: &mut Client, name: &str) -> pb::Subnet {
    parent
        .query
        .get_subnet(pb::GetSubnetRequest { name: name.into() })
        .await
        .unwrap()
        .into_inner()
        .subnet
        .unwrap()
}

async fn held(child: &mut Client) -> pb::GetParentResponse {
    child
        .query
        .get_parent(pb::GetParentRequest {})
        .await
        .unwrap()
        .into_inner()
}

/// Whether child `name` is at rest: everything it minted minus everything it sent up is what
/// its parent holds locked for it, and it has imported every top-down message.
async fn at_rest(parent: &mut Client, child: &mut Client, name: &str) -> (bool, String) {
    let lock = record(parent, name).await;
    let held = held(child).await;
    let supply = amount(&held.minted) - amount(&held.released);
    let rest = amount(&lock.locked) == supply && lock.top_down_nonce == held.next_top_down_nonce;
    (
        rest,
        format!(
            "locked {} supply {supply}, top-down {}/{}",
            lock.locked, held.next_top_down_nonce, lock.top_down_nonce
        ),
    )
}

/// A signer in one subnet with its next nonce.
struct Signer {
    subnet: SubnetId,
    key: SecretKey,
    nonce: u64,
}

impl Signer {
    /// Sends `msg`; the nonce moves on only if the mempool took it.
    async fn send(&mut self, client: &mut Client, msg: Msg) -> u32 {
        let tx = sign_for(&self.subnet, &self.key, self.nonce, msg);
        let response = client.broadcast(tx, pb::BroadcastMode::Sync).await.unwrap();
        if response.code == 0 {
            self.nonce += 1;
        }
        response.code
    }
}

fn fund(child: &str, to: Address, value: u128) -> Msg {
    Msg::Fund(pb::Fund {
        subnet: child.into(),
        recipient: to.0.to_vec(),
        amount: value.to_string(),
    })
}

fn release(to: Address, value: u128) -> Msg {
    Msg::Release(pb::Release {
        recipient: to.0.to_vec(),
        amount: value.to_string(),
    })
}

fn call(to_subnet: &SubnetId, to: Address, value: u128) -> Msg {
    Msg::CrossCall(pb::CrossCall {
        to_subnet: to_subnet.to_string(),
        to_account: to.0.to_vec(),
        to_keyspace: String::new(),
        key: Vec::new(),
        amount: value.to_string(),
        payload: b"random".to_vec(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn value_moves_across_a_tree_and_is_conserved_exactly() {
    let bin = env!("CARGO_BIN_EXE_ipsat");
    let mut net = Testnet::init(bin.as_ref(), 3, BASE).unwrap();
    for p in 0..3 {
        let config = net.home(p).join("config/ipsat.toml");
        let mut text = std::fs::read_to_string(&config).unwrap();
        for (name, ports) in [(A, A_PORTS), (B, B_PORTS)] {
            text.push_str(&format!(
                "\n[[checkpoints.children]]\nname = \"{name}\"\ngrpc = \"http://127.0.0.1:{}\"\n",
                ports.grpc(0)
            ));
        }
        std::fs::write(&config, text).unwrap();
    }
    net.start_all().unwrap();
    net.wait_for_height(0, 2, Duration::from_secs(90))
        .await
        .unwrap();
    let mut parent = net.client(0).await.unwrap();
    let names = ["faucet", "account-1", "account-2", "account-3"];
    let keys: Vec<SecretKey> = names.iter().map(|n| net.key(n).unwrap()).collect();
    let p_accounts: Vec<Address> = keys.iter().map(address_of).chain([FEE_POOL]).collect();
    let genesis_total = total(&mut parent, &p_accounts).await;

    let p0 = net.grpc_port(0);
    let a_homes = child::register(&net, p0, A, PERIOD, &["account-1", "account-2"]).unwrap();
    let b_homes = child::register(&net, p0, B, PERIOD, &["account-3"]).unwrap();
    let honest = format!("http://127.0.0.1:{}", net.grpc_port(0));
    let forging = LyingParentEndpoint::start(BASE + 430, &honest, Lie::ForgedCommit)
        .await
        .unwrap();
    let inflating = LyingParentEndpoint::start(BASE + 431, &honest, Lie::InflatedMessages)
        .await
        .unwrap();
    let withholding = LyingParentEndpoint::start(BASE + 432, &honest, Lie::WithheldMessages)
        .await
        .unwrap();
    let b_parents = [
        forging.url.clone(),
        inflating.url.clone(),
        withholding.url.clone(),
        honest,
    ];
    let a_nodes = child::start(&mut net, p0, A, &a_homes, &A_PORTS, false, &[]).unwrap();
    let b_nodes = child::start(&mut net, p0, B, &b_homes, &B_PORTS, false, &b_parents).unwrap();
    let a_id: SubnetId = record(&mut parent, A).await.id.parse().unwrap();
    let b_id: SubnetId = record(&mut parent, B).await.id.parse().unwrap();
    let mut a = net.client(a_nodes[0]).await.unwrap();
    let mut b = net.client(b_nodes[0]).await.unwrap();

    // Alice (account-1) in A and Bob (account-2) in B, funded from the parent.
    let (alice, bob) = (address_of(&keys[1]), address_of(&keys[2]));
    for (child, who) in [(A, alice), (B, bob)] {
        child::cli(
            &net,
            &[
                "tx",
                "--from",
                "faucet",
                "fund",
                child,
                &who.to_string(),
                &(20 * RBTC).to_string(),
            ],
        )
        .unwrap();
    }
    let ninety = Duration::from_secs(90);
    a.wait_for_balance(alice, 20 * RBTC, "alice in A", ninety)
        .await
        .unwrap();
    let what = "bob in B (asking three lying parent endpoints and an honest one in turn)";
    b.wait_for_balance(bob, 20 * RBTC, what, ninety)
        .await
        .unwrap();

    // B refused what the forging liar served each time its turn came (the inflating one is
    // refused when its turn falls on a new deposit); Bob holds exactly what was sent, and the
    // tree's exact totals below show nothing false was ever imported.
    wait_until(
        "B's refusals of lying endpoints",
        Duration::from_secs(30),
        || async {
            let failures = metric(B_PORTS.metrics(0), "ipsat_parent_endpoint_failures_total").await;
            (failures >= 2, failures.to_string())
        },
    )
    .await;

    // Through the CLI: Bob opens a keyspace in B; Alice calls into it from A with 2 RBTC, and
    // into a keyspace B lacks with 3.
    let in_b = |args: &[&str]| {
        let mut all = vec!["tx", "--from", "account-2", "--subnet", b_id.as_str()];
        all.extend_from_slice(args);
        child::cli_at(&net, B_PORTS.grpc(0), &all).unwrap()
    };
    in_b(&["keyspace-create", "inbox", "--policy", "open"]);
    let bob_before = b.balance(bob).await.unwrap();
    let in_a = |args: &[&str]| {
        let mut all = vec!["tx", "--from", "account-1", "--subnet", a_id.as_str()];
        all.extend_from_slice(args);
        child::cli_at(&net, A_PORTS.grpc(0), &all).unwrap()
    };
    let started = Instant::now();
    in_a(&[
        "cross-call",
        b_id.as_str(),
        "--keyspace",
        "inbox",
        "--key",
        "hello",
        "--payload",
        "from A",
        "--amount",
        &(2 * RBTC).to_string(),
    ]);
    in_a(&[
        "cross-call",
        b_id.as_str(),
        "--keyspace",
        "missing",
        "--key",
        "hello",
        "--amount",
        &(3 * RBTC).to_string(),
    ]);
    let alice_after_calls = a.balance(alice).await.unwrap();
    let show = |nonce: u64| -> serde_json::Value {
        serde_json::from_str(
            &child::cli_at(
                &net,
                A_PORTS.grpc(0),
                &["message", "show", &nonce.to_string(), "--output", "json"],
            )
            .unwrap(),
        )
        .unwrap()
    };
    wait_until("the calls' receipts in A", Duration::from_secs(180), || {
        let (first, second) = (show(0), show(1));
        async move {
            let seen = format!("{} / {}", first["status"], second["status"]);
            (
                first["status"] != "sent" && second["status"] != "sent",
                seen,
            )
        }
    })
    .await;
    eprintln!(
        "value latency: cross-call A -> B -> receipt back in A {:.2} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(show(0)["status"], "delivered");
    // Along the path: the parent sent the call down to B, which delivered it.
    let passage = |grpc: u16| -> serde_json::Value {
        serde_json::from_str(
            &child::cli_at(
                &net,
                grpc,
                &["message", "passage", a_id.as_str(), "0", "--output", "json"],
            )
            .unwrap(),
        )
        .unwrap()
    };
    let at_parent = passage(net.grpc_port(0));
    assert_eq!(
        (at_parent["passage"].as_str(), at_parent["child"].as_str()),
        (Some("forwarded down"), Some(B))
    );
    assert_eq!(passage(B_PORTS.grpc(0))["passage"], "delivered");
    assert_eq!(show(1)["status"], "failed");
    assert_eq!(show(1)["failure_code"], 11, "keyspace_not_found");
    let written = b
        .query
        .get_key(pb::GetKeyRequest {
            keyspace: "inbox".into(),
            key: b"hello".to_vec(),
            prove: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(written.value, Some(b"from A".to_vec()));
    assert_eq!(b.balance(bob).await.unwrap(), bob_before + 2 * RBTC);
    assert_eq!(
        a.balance(alice).await.unwrap(),
        alice_after_calls + 3 * RBTC
    );

    // The seeded random sequence, a validator of A killed and restarted in the middle.
    let fixed = |byte: u8| SecretKey::from_slice(&[byte; 32]).unwrap();
    let a_keys: Vec<SecretKey> = (1..=3).map(|i| fixed(0xa0 + i)).collect();
    let b_keys: Vec<SecretKey> = (1..=2).map(|i| fixed(0xb0 + i)).collect();
    let a_accounts: Vec<Address> = a_keys
        .iter()
        .map(address_of)
        .chain([alice, FEE_POOL])
        .collect();
    let b_accounts: Vec<Address> = b_keys
        .iter()
        .map(address_of)
        .chain([bob, FEE_POOL])
        .collect();
    let mut faucet = Signer {
        subnet: net.subnet.clone(),
        key: keys[0],
        nonce: parent.account(address_of(&keys[0])).await.unwrap().nonce,
    };
    let signers = |subnet: &SubnetId, keys: &[SecretKey]| -> Vec<Signer> {
        keys.iter()
            .map(|key| Signer {
                subnet: subnet.clone(),
                key: *key,
                nonce: 0,
            })
            .collect()
    };
    let (mut in_a_signers, mut in_b_signers) = (signers(&a_id, &a_keys), signers(&b_id, &b_keys));
    for who in a_accounts.iter().take(3) {
        assert_eq!(faucet.send(&mut parent, fund(A, *who, 5 * RBTC)).await, 0);
    }
    for who in b_accounts.iter().take(2) {
        assert_eq!(faucet.send(&mut parent, fund(B, *who, 5 * RBTC)).await, 0);
    }
    // Funded in order: once the last of each child's is there, all are.
    a.wait_for_balance(
        a_accounts[2],
        5 * RBTC,
        "the last random account of A",
        ninety,
    )
    .await
    .unwrap();
    b.wait_for_balance(
        b_accounts[1],
        5 * RBTC,
        "the last random account of B",
        ninety,
    )
    .await
    .unwrap();
    let mut rng = Mutator::new(SEED);
    let mut accepted = [0usize; 7];
    let victim = a_nodes[1];
    for op in 0..OPERATIONS {
        if op == OPERATIONS / 2 {
            net.kill9(victim).unwrap();
            tokio::time::sleep(Duration::from_secs(2)).await;
            net.start(victim).unwrap();
        }
        let value = 1 + rng.below(1_000) as u128 * 1_000_000_000_000;
        let kind = rng.below(7);
        let code = match kind {
            0 => {
                let to = a_accounts[rng.below(3)];
                faucet.send(&mut parent, fund(A, to, value)).await
            }
            1 => {
                let to = b_accounts[rng.below(2)];
                faucet.send(&mut parent, fund(B, to, value)).await
            }
            2 => {
                let (from, to) = (rng.below(3), a_accounts[rng.below(3)]);
                in_a_signers[from].send(&mut a, transfer(to, value)).await
            }
            3 => {
                let (from, to) = (rng.below(3), p_accounts[1 + rng.below(3)]);
                in_a_signers[from].send(&mut a, release(to, value)).await
            }
            4 => {
                let (from, to) = (rng.below(3), b_accounts[rng.below(2)]);
                in_a_signers[from]
                    .send(&mut a, call(&b_id, to, value))
                    .await
            }
            5 => {
                let (from, to) = (rng.below(2), a_accounts[rng.below(3)]);
                in_b_signers[from]
                    .send(&mut b, call(&a_id, to, value))
                    .await
            }
            _ => {
                let (from, to) = (rng.below(2), p_accounts[1 + rng.below(3)]);
                in_b_signers[from].send(&mut b, release(to, value)).await
            }
        };
        if code == 0 {
            accepted[kind] += 1;
        }
    }
    eprintln!("accepted by kind (fund A, fund B, transfer, release A, call A->B, call B->A, release B): {accepted:?}");
    assert!(
        accepted.iter().sum::<usize>() >= OPERATIONS * 9 / 10,
        "most operations must be accepted: {accepted:?}"
    );

    // At rest, every child's supply is what the parent holds for it, and the tree holds
    // exactly what the parent's genesis did.
    wait_until("the tree at rest", Duration::from_secs(300), || {
        let (mut parent, mut a, mut b) = (parent.clone(), a.clone(), b.clone());
        async move {
            let (a_rest, a_seen) = at_rest(&mut parent, &mut a, A).await;
            let (b_rest, b_seen) = at_rest(&mut parent, &mut b, B).await;
            (a_rest && b_rest, format!("A: {a_seen}; B: {b_seen}"))
        }
    })
    .await;
    // At rest no value is on its way (a receipt of a delivered call, which carries none, may
    // still be), so the accounts now add up.
    let (a_record, b_record) = (record(&mut parent, A).await, record(&mut parent, B).await);
    let collateral: u128 = [&a_record, &b_record]
        .iter()
        .flat_map(|r| r.validators.iter())
        .map(|v| amount(&v.collateral))
        .sum();
    let (a_locked, b_locked) = (amount(&a_record.locked), amount(&b_record.locked));
    assert_eq!(
        total(&mut a, &a_accounts).await,
        a_locked,
        "A's accounts are A's supply"
    );
    assert_eq!(
        total(&mut b, &b_accounts).await,
        b_locked,
        "B's accounts are B's supply"
    );
    let p_total = total(&mut parent, &p_accounts).await;
    assert_eq!(
        p_total + collateral + a_locked + b_locked,
        genesis_total,
        "the tree holds exactly what the parent's genesis did"
    );
}
