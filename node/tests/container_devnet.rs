//! `devnet/docker-compose.yml` under real podman-compose: the whole tree, one process per
//! container (anvil, btcd and its miner, the setup, alpha's four validators, beta's three, the
//! anchoring service), services finding each other by name. Within a bounded time a beta
//! checkpoint is accepted in alpha, an alpha checkpoint on the gateway, and an anchor is
//! confirmed on btcd; alpha's validators agree on every app hash; every validator and the
//! anchoring service stop cleanly on SIGTERM; recreated containers resume the subnets, and the
//! anchoring service anchors again on the Bitcoin chain btcd starts over.

#![allow(clippy::unwrap_used)] // A test fails by panicking; a panic names the failed step.

use std::path::Path;
use std::time::Duration;

use ipsat_proto::v1 as pb;
use ipsat_tests::containers::ComposeDevnet;
use ipsat_tests::tree;
use ipsat_tests::Client;

const ALPHA_GRPC: [u16; 4] = [9090, 9091, 9092, 9093];
const SERVICES: [&str; 8] = [
    "alpha0", "alpha1", "alpha2", "alpha3", "beta0", "beta1", "beta2", "anchor",
];

async fn header_app_hash(client: &mut Client, height: u64) -> Vec<u8> {
    client
        .query
        .get_block(pb::GetBlockRequest { height })
        .await
        .unwrap()
        .into_inner()
        .app_hash
}

fn all_logs(net: &ComposeDevnet) -> String {
    ["setup", "alpha0", "beta0", "anchor", "bitcoin", "rsk"]
        .iter()
        .map(|s| net.logs(s))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_tree_anchors_stops_cleanly_and_resumes() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let net = ComposeDevnet::build(
        repo,
        env!("CARGO_BIN_EXE_ipsat").as_ref(),
        "localhost/ipsat:test",
        "127.0.0.78",
    )
    .unwrap();
    net.up().unwrap();
    let anchored =
        tree::wait_for_anchored_tree(&net.url(8080), &net.url(18334), Duration::from_secs(600))
            .await
            .unwrap_or_else(|e| panic!("{e:#}\n{}", all_logs(&net)));
    eprintln!("anchored tree: {anchored}");

    let mut clients = Vec::new();
    for port in ALPHA_GRPC {
        clients.push(net.client(port, Duration::from_secs(60)).await.unwrap());
    }
    let height = clients[0].status().await.unwrap().height;
    for client in &mut clients {
        client
            .wait_for_height(height, Duration::from_secs(60))
            .await
            .unwrap();
    }
    let reference = header_app_hash(&mut clients[0], height).await;
    assert_eq!(reference.len(), 32);
    for (i, client) in clients.iter_mut().enumerate().skip(1) {
        assert_eq!(
            header_app_hash(client, height).await,
            reference,
            "alpha{i} disagrees at height {height}"
        );
    }

    net.stop().unwrap();
    for service in SERVICES {
        assert_eq!(
            net.exit_code(service).unwrap(),
            0,
            "{service} did not stop cleanly\n{}",
            net.logs(service)
        );
    }

    net.down().unwrap();
    net.up().unwrap();
    let mut alpha = net.client(9090, Duration::from_secs(120)).await.unwrap();
    alpha
        .wait_for_height(height + 3, Duration::from_secs(180))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", all_logs(&net)));
    let mut beta = net.client(9190, Duration::from_secs(120)).await.unwrap();
    let beta_height = beta.status().await.unwrap().height;
    beta.wait_for_height(beta_height + 3, Duration::from_secs(180))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", all_logs(&net)));

    // btcd started over: until the anchoring service, funded again on the new chain, anchors
    // again, the explorer must not count the old anchor's confirmations on the new chain.
    for _ in 0..60 {
        if let Ok(view) = tree::view(&net.url(8080)).await {
            let anchor = &view["gateway"]["anchor"];
            if anchor["btc_txid"] != anchored["gateway"]["anchor"]["btc_txid"] {
                break;
            }
            assert_ne!(
                anchor["in_best_chain"], true,
                "the old anchor counted on the new Bitcoin chain: {view}"
            );
            if anchor["in_best_chain"] == false {
                eprintln!("after the resume the explorer shows the old anchor off the best chain");
                break;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let resumed =
        tree::wait_for_anchored_tree(&net.url(8080), &net.url(18334), Duration::from_secs(300))
            .await
            .unwrap_or_else(|e| panic!("{e:#}\n{}", all_logs(&net)));
    let anchor = |view: &serde_json::Value| view["gateway"]["anchor"]["btc_txid"].clone();
    assert_ne!(
        anchor(&resumed),
        anchor(&anchored),
        "no new anchor after the resume"
    );
}
