//! `devnet/docker-compose.yml` under real podman: four validators in their own containers find
//! each other by name, agree on every block, accept a transfer through a published gRPC port,
//! stop cleanly on SIGTERM, and resume from their state when the containers are recreated.

#![allow(clippy::unwrap_used)] // A test fails by panicking; a panic names the failed step.

use std::path::Path;
use std::time::Duration;

use ipsat_core::Address;
use ipsat_proto::v1::{self as pb};
use ipsat_tests::containers::ComposeDevnet;
use ipsat_tests::{address_of, sign_for, transfer, Client};

const VALIDATORS: u16 = 4;

async fn connect_all(net: &ComposeDevnet) -> Vec<Client> {
    let mut clients = Vec::new();
    for i in 0..VALIDATORS {
        clients.push(net.client(i, Duration::from_secs(90)).await.unwrap());
    }
    clients
}

/// Waits until every validator has committed `height`.
async fn wait_all(net: &ComposeDevnet, clients: &mut [Client], height: u64) {
    for (i, client) in clients.iter_mut().enumerate() {
        if let Err(e) = client
            .wait_for_height(height, Duration::from_secs(90))
            .await
        {
            panic!("node{i}: {e}\n{}", net.logs(&format!("node{i}")));
        }
    }
}

async fn header_app_hash(client: &mut Client, height: u64) -> Vec<u8> {
    client
        .query
        .get_block(pb::GetBlockRequest { height })
        .await
        .unwrap()
        .into_inner()
        .app_hash
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_devnet_runs_and_resumes_four_validators() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let net = ComposeDevnet::build(
        repo,
        env!("CARGO_BIN_EXE_ipsat").as_ref(),
        "localhost/ipsat:test",
        "127.0.0.78",
    )
    .unwrap();
    net.up().unwrap();
    let mut clients = connect_all(&net).await;
    wait_all(&net, &mut clients, 3).await;
    let reference = header_app_hash(&mut clients[0], 3).await;
    assert_eq!(reference.len(), 32);
    for (i, client) in clients.iter_mut().enumerate().skip(1) {
        assert_eq!(
            header_app_hash(client, 3).await,
            reference,
            "node{i} disagrees at height 3"
        );
    }

    let faucet = net.key("faucet").unwrap();
    let subnet = clients[0]
        .status()
        .await
        .unwrap()
        .subnet_id
        .parse()
        .unwrap();
    let recipient = Address([0x42; 20]);
    let amount = 7_000_000_000_000_000_000u128;
    let tx = sign_for(&subnet, &faucet, 0, transfer(recipient, amount));
    let result = clients[0]
        .broadcast(tx, pb::BroadcastMode::Commit)
        .await
        .unwrap();
    assert_eq!(result.code, 0, "transfer refused: {}", result.log);
    wait_all(&net, &mut clients, result.height).await;
    for client in &mut clients {
        assert_eq!(
            client.account(recipient).await.unwrap().balance,
            amount.to_string()
        );
    }
    let faucet_balance = clients[3]
        .account(address_of(&faucet))
        .await
        .unwrap()
        .balance;

    net.stop().unwrap();
    for i in 0..VALIDATORS {
        let service = format!("node{i}");
        assert_eq!(
            net.exit_code(&service).unwrap(),
            0,
            "{service} did not stop cleanly\n{}",
            net.logs(&service)
        );
    }

    net.down().unwrap();
    net.up().unwrap();
    let mut clients = connect_all(&net).await;
    wait_all(&net, &mut clients, result.height + 2).await;
    for client in &mut clients {
        assert_eq!(
            client.account(recipient).await.unwrap().balance,
            amount.to_string()
        );
        assert_eq!(
            client.account(address_of(&faucet)).await.unwrap().balance,
            faucet_balance
        );
    }
}
