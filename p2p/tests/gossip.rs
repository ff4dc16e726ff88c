//! The gossip plane on real libp2p over loopback TCP, and its in-memory twin: messages reach
//! subscribers, a message is forwarded only after its receiver accepted it, and the same
//! payload travels once.

#![allow(clippy::unwrap_used)] // A test fails by panicking; a panic names the failed step.

use std::time::Duration;

use ipsat_p2p::{
    Incoming, Keypair, Libp2pConfig, Libp2pPlane, MemoryHub, Multiaddr, Plane, PublishError,
    Verdict,
};
use tokio::sync::mpsc;

const TOPIC: &str = "ipsat/checkpoints/v1/r33/alpha/beta";

async fn node(bootstrap: Vec<Multiaddr>) -> (Libp2pPlane, mpsc::Receiver<Incoming>) {
    let (sender, receiver) = mpsc::channel(16);
    let plane = Libp2pPlane::start(
        Libp2pConfig {
            keypair: Keypair::generate_ed25519(),
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
            bootstrap,
            redial_interval: Duration::from_millis(500),
        },
        sender,
    )
    .await
    .unwrap();
    plane.subscribe(TOPIC);
    (plane, receiver)
}

async fn address(plane: &Libp2pPlane) -> Multiaddr {
    for _ in 0..100 {
        if let Some(address) = plane.listen_addresses().await.first() {
            return address.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the node never listened");
}

/// Publishes until a peer subscribes (gossipsub refuses while it knows none).
async fn publish(plane: &Libp2pPlane, data: &[u8]) {
    for _ in 0..200 {
        match plane.publish(TOPIC, data.to_vec()).await {
            Ok(()) => return,
            Err(PublishError::NoPeers(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(other) => panic!("publish: {other}"),
        }
    }
    panic!("no peer ever subscribed");
}

async fn next(receiver: &mut mpsc::Receiver<Incoming>, within: Duration) -> Option<Incoming> {
    tokio::time::timeout(within, receiver.recv())
        .await
        .ok()
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_forwarded_only_after_they_are_accepted() {
    // A line: A <- B <- C (each dials the previous one), so C hears A only through B.
    let (a, _a_in) = node(Vec::new()).await;
    let (b, mut b_in) = node(vec![address(&a).await]).await;
    let (_c, mut c_in) = node(vec![address(&b).await]).await;
    for _ in 0..100 {
        if b.connected_peers().await == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(b.connected_peers().await, 2);
    // Let the gossip meshes form (heartbeats every 500 ms).
    tokio::time::sleep(Duration::from_secs(2)).await;

    publish(&a, b"forged").await;
    let at_b = next(&mut b_in, Duration::from_secs(10)).await.unwrap();
    assert_eq!(at_b.data, b"forged");
    assert_eq!(at_b.topic, TOPIC);
    at_b.judge(Verdict::Reject);
    assert!(
        next(&mut c_in, Duration::from_secs(3)).await.is_none(),
        "a rejected message was forwarded"
    );

    publish(&a, b"certified").await;
    let at_b = next(&mut b_in, Duration::from_secs(10)).await.unwrap();
    assert_eq!(at_b.data, b"certified");
    at_b.judge(Verdict::Accept);
    let at_c = next(&mut c_in, Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        at_c.data, b"certified",
        "an accepted message was not forwarded"
    );
    at_c.judge(Verdict::Accept);

    // Content-addressed ids: the same payload again is a duplicate, from anyone.
    assert_eq!(
        a.publish(TOPIC, b"certified".to_vec()).await,
        Err(PublishError::Duplicate)
    );
    assert_eq!(
        b.publish(TOPIC, b"certified".to_vec()).await,
        Err(PublishError::Duplicate)
    );
    assert!(next(&mut c_in, Duration::from_secs(2)).await.is_none());
}

#[tokio::test]
async fn the_memory_plane_delivers_each_payload_once_to_subscribers() {
    let hub = MemoryHub::new();
    let (a_out, _a_in) = mpsc::channel(4);
    let (b_out, mut b_in) = mpsc::channel(4);
    let (c_out, mut c_in) = mpsc::channel(4);
    let a = hub.join(a_out);
    let b = hub.join(b_out);
    let _c = hub.join(c_out);
    assert_eq!(
        a.publish(TOPIC, b"x".to_vec()).await,
        Err(PublishError::NoPeers(TOPIC.into()))
    );
    b.subscribe(TOPIC);
    a.publish(TOPIC, b"x".to_vec()).await.unwrap();
    let received = next(&mut b_in, Duration::from_secs(1)).await.unwrap();
    assert_eq!(received.data, b"x");
    received.judge(Verdict::Accept);
    assert_eq!(
        a.publish(TOPIC, b"x".to_vec()).await,
        Err(PublishError::Duplicate)
    );
    assert!(
        next(&mut c_in, Duration::from_millis(200)).await.is_none(),
        "c never subscribed"
    );
    assert_eq!(
        a.publish(TOPIC, vec![0; ipsat_p2p::MAX_MESSAGE_BYTES + 1])
            .await,
        Err(PublishError::TooLarge(ipsat_p2p::MAX_MESSAGE_BYTES + 1))
    );
}
