//! Crashes and restarts on a real four-validator CometBFT network: a validator killed with
//! SIGKILL while transactions flow catches up to the same app hash and keeps every
//! transaction acknowledged as committed; stopping and restarting all four loses nothing.

#![allow(clippy::unwrap_used)] // A test fails by panicking; a panic names the failed step.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ipsat_core::Address;
use ipsat_proto::v1 as pb;
use ipsat_tests::{address_of, transfer, Client, Testnet};
use tokio_stream::StreamExt as _;

/// Transfers of 777 from the faucet, each to a fresh recipient, acknowledged only once
/// committed.
#[derive(Default)]
struct Load {
    nonce: u64,
    next_recipient: u32,
    acknowledged: Vec<Address>,
}

const MIN_PER_PHASE: usize = 4;

impl Load {
    /// Sends for `duration` and at least [`MIN_PER_PHASE`] transfers (commits slow down while a
    /// validator is down), rotating over `clients`; returns the recipients acknowledged now.
    async fn send_for(
        &mut self,
        net: &Testnet,
        clients: &mut [Client],
        duration: Duration,
    ) -> Vec<Address> {
        let faucet = net.key("faucet").unwrap();
        let mut acknowledged = Vec::new();
        let until = Instant::now() + duration;
        while Instant::now() < until || acknowledged.len() < MIN_PER_PHASE {
            let mut to = [0u8; 20];
            to[..4].copy_from_slice(&self.next_recipient.to_be_bytes());
            to[19] = 0xaa;
            let to = Address(to);
            self.next_recipient += 1;
            let client = &mut clients[self.nonce as usize % clients.len()];
            let tx = net.sign(&faucet, self.nonce, transfer(to, 777));
            let response = client
                .broadcast(tx, pb::BroadcastMode::Commit)
                .await
                .unwrap();
            assert_eq!(response.code, 0, "{}", response.log);
            self.nonce += 1;
            acknowledged.push(to);
        }
        self.acknowledged.extend(&acknowledged);
        acknowledged
    }
}

/// The app hashes node `i` commits from now on, collected for `duration`.
async fn app_hashes_for(net: &Testnet, i: usize, duration: Duration) -> BTreeMap<u64, Vec<u8>> {
    let mut client = net.client(i).await.unwrap();
    let mut stream = client
        .query
        .stream_blocks(pb::StreamBlocksRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut seen = BTreeMap::new();
    let until = tokio::time::Instant::now() + duration;
    while let Ok(Some(Ok(block))) = tokio::time::timeout_at(until, stream.next()).await {
        seen.insert(block.height, block.app_hash);
    }
    seen
}

async fn assert_balances(client: &mut Client, recipients: &[Address]) {
    for to in recipients {
        assert_eq!(
            client.account(*to).await.unwrap().balance,
            "777",
            "recipient {to}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_validator_recovers_and_full_restart_keeps_state() {
    let mut net = Testnet::init(env!("CARGO_BIN_EXE_ipsat").as_ref(), 4, 27100).unwrap();
    net.start_all().unwrap();
    for i in 0..4 {
        net.wait_for_height(i, 2, Duration::from_secs(60))
            .await
            .unwrap();
    }
    let mut senders = Vec::new();
    for i in 0..3 {
        senders.push(net.client(i).await.unwrap());
    }
    let mut load = Load::default();
    load.send_for(&net, &mut senders, Duration::from_secs(3))
        .await;
    net.kill9(3).unwrap();
    load.send_for(&net, &mut senders, Duration::from_secs(4))
        .await;
    net.start(3).unwrap();
    load.send_for(&net, &mut senders, Duration::from_secs(3))
        .await;
    let acknowledged = load.acknowledged.clone();
    assert!(
        acknowledged.len() >= 10,
        "only {} transfers went through",
        acknowledged.len()
    );

    let target = senders[0].status().await.unwrap().height;
    net.wait_for_height(3, target, Duration::from_secs(60))
        .await
        .unwrap();
    let (restarted, healthy) = tokio::join!(
        app_hashes_for(&net, 3, Duration::from_secs(3)),
        app_hashes_for(&net, 0, Duration::from_secs(3)),
    );
    let shared: Vec<u64> = restarted
        .keys()
        .filter(|h| healthy.contains_key(h))
        .copied()
        .collect();
    assert!(
        shared.len() >= 3,
        "restarted node shares only {} heights",
        shared.len()
    );
    for h in shared {
        assert_eq!(restarted[&h], healthy[&h], "app hash differs at height {h}");
    }
    let mut restarted_client = net.client(3).await.unwrap();
    assert_balances(&mut restarted_client, &acknowledged).await;
    let faucet = address_of(&net.key("faucet").unwrap());
    assert_eq!(
        restarted_client.account(faucet).await.unwrap().nonce,
        load.nonce
    );

    // Stop every validator cleanly, then bring the whole network back.
    let before = senders[0].status().await.unwrap();
    for i in 0..4 {
        net.stop(i).unwrap();
    }
    net.start_all().unwrap();
    for i in 0..4 {
        net.wait_for_height(i, before.height + 2, Duration::from_secs(90))
            .await
            .unwrap();
        let mut client = net.client(i).await.unwrap();
        assert_balances(&mut client, &acknowledged).await;
        assert_eq!(client.account(faucet).await.unwrap().nonce, load.nonce);
    }
    // The chain still takes transactions after the restart.
    let mut client = net.client(1).await.unwrap();
    let more = load
        .send_for(
            &net,
            std::slice::from_mut(&mut client),
            Duration::from_secs(1),
        )
        .await;
    assert_balances(&mut client, &more).await;
}
