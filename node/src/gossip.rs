//! The node on the gossip plane ([`ipsat_p2p`]): a subnet that checkpoints publishes each
//! certified checkpoint on its topic; a parent subscribes to the topic of every child it
//! delivers for, judges each message against its own committed state before the plane may
//! forward it, and offers the good ones to its next proposal.
//!
//! Gossip is not durable: a checkpoint is published again while no peer takes it, and the
//! pull path ([`crate::delivery`]) and `ipsat relay` cover what gossip misses.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use ipsat_core::{SystemTx, TxError};
use ipsat_p2p::{checkpoint_topic, Incoming, Plane, PublishError, Verdict};
use ipsat_subnet::{CommittedBlock, StateQuery, SubnetApp};
use tokio::sync::{broadcast, mpsc};

use crate::metrics::Metrics;
use crate::supervisor::Shutdown;

/// How often checkpoints no peer took yet are published again.
const REPUBLISH_INTERVAL: Duration = Duration::from_secs(2);

/// Certified checkpoints kept for publishing; older ones are left to the pull path.
const MAX_UNPUBLISHED: usize = 16;

/// How many periods past the next expected height a gossiped checkpoint may be offered to a
/// proposal, which checks it in order after the ones before it.
const MAX_PERIODS_AHEAD: u64 = 8;

/// What a parent makes of a message heard on `child`'s topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judgement {
    /// What the plane does with it.
    pub verdict: Verdict,
    /// Whether to offer it to the next proposal: accepted ones, and ones a little ahead of
    /// the parent that cannot be checked until those before them are accepted.
    pub offer: bool,
}

/// Judges a message heard on `child`'s topic against committed state.
pub fn judge(app: &SubnetApp, query: &StateQuery, child: &str, data: &[u8]) -> Result<Judgement> {
    let reject = Judgement {
        verdict: Verdict::Reject,
        offer: false,
    };
    let tx = match SystemTx::decode(data) {
        Ok(Some(tx)) => tx,
        _ => return Ok(reject),
    };
    match &tx {
        SystemTx::ChildCheckpoint { subnet, .. } if subnet == child => {}
        _ => return Ok(reject), // not a delivery for this topic's child
    }
    Ok(match app.check_child_checkpoint(&tx)? {
        Ok(()) => Judgement {
            verdict: Verdict::Accept,
            offer: true,
        },
        Err(TxError::CheckpointOutOfOrder { expected, got }) => {
            let period = query
                .subnet(child)?
                .map_or(0, |(record, _)| record.checkpoint_period);
            let ahead = got > expected
                && period > 0
                && got.is_multiple_of(period)
                && got <= expected + MAX_PERIODS_AHEAD * period;
            // Already accepted, or not checkable yet: no blame, not forwarded.
            Judgement {
                verdict: Verdict::Ignore,
                offer: ahead,
            }
        }
        Err(_) => reject,
    })
}

/// Everything the gossip service needs from the node.
pub struct Gossip<P> {
    pub plane: P,
    pub incoming: mpsc::Receiver<Incoming>,
    pub app: Arc<SubnetApp>,
    pub query: StateQuery,
    pub committed: broadcast::Sender<Arc<CommittedBlock>>,
    pub metrics: Arc<Metrics>,
    /// This subnet's path, whose checkpoints it publishes.
    pub subnet: String,
    /// Children whose topics it follows.
    pub children: Vec<String>,
}

impl<P: Plane> Gossip<P> {
    /// Runs until `shutdown`: publishes this subnet's certified checkpoints and judges the
    /// children's.
    pub async fn run(mut self, mut shutdown: Shutdown) -> Result<()> {
        let own_topic = checkpoint_topic(&self.subnet);
        let mut topics = BTreeMap::new();
        for child in &self.children {
            let topic = checkpoint_topic(&format!("{}/{child}", self.subnet));
            self.plane.subscribe(&topic);
            topics.insert(topic, child.clone());
        }
        let mut blocks = self.committed.subscribe();
        let mut unpublished: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let mut republish = tokio::time::interval(REPUBLISH_INTERVAL);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return Ok(()),
                block = blocks.recv() => match block {
                    Ok(block) => self.certified(&block, &mut unpublished)?,
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                Some(message) = self.incoming.recv() => self.received(&topics, message)?,
                _ = republish.tick() => {}
            }
            self.publish(&own_topic, &mut unpublished).await;
        }
    }

    /// Queues the checkpoints `block` certified in this subnet's state.
    fn certified(
        &self,
        block: &CommittedBlock,
        unpublished: &mut BTreeMap<u64, Vec<u8>>,
    ) -> Result<()> {
        for event in block.events_of("checkpoint_certified") {
            let height = event
                .attribute("height")
                .and_then(|value| value.parse::<u64>().ok());
            if let Some(height) = height {
                if let Some(tx) = self.query.delivery_tx(height)? {
                    unpublished.insert(height, tx);
                }
            }
        }
        while unpublished.len() > MAX_UNPUBLISHED {
            unpublished.pop_first();
        }
        Ok(())
    }

    async fn publish(&self, topic: &str, unpublished: &mut BTreeMap<u64, Vec<u8>>) {
        let heights: Vec<u64> = unpublished.keys().copied().collect();
        for height in heights {
            let Some(tx) = unpublished.get(&height).cloned() else {
                continue;
            };
            match self.plane.publish(topic, tx).await {
                Ok(()) | Err(PublishError::Duplicate) => {
                    unpublished.remove(&height);
                    self.metrics.record_gossip_published();
                    tracing::info!(height, "checkpoint published on the gossip plane");
                }
                Err(PublishError::NoPeers(_)) => return, // nobody listens yet: later
                Err(error) => {
                    tracing::warn!(height, %error, "publishing a checkpoint");
                    return;
                }
            }
        }
    }

    fn received(&self, topics: &BTreeMap<String, String>, message: Incoming) -> Result<()> {
        let Some(child) = topics.get(&message.topic) else {
            message.judge(Verdict::Ignore);
            return Ok(());
        };
        let judgement = judge(&self.app, &self.query, child, &message.data)?;
        self.metrics.record_gossip_received(judgement.verdict);
        if judgement.offer {
            if let Ok(Some(SystemTx::ChildCheckpoint { checkpoint, .. })) =
                SystemTx::decode(&message.data)
            {
                let key = format!("{child}/{:020}", checkpoint.height);
                self.app
                    .proposal_inputs()
                    .offer("gossip", key, message.data.clone());
            }
        }
        if judgement.verdict == Verdict::Reject {
            tracing::warn!(
                child,
                "rejected a forged or malformed checkpoint from the gossip plane"
            );
        }
        message.judge(judgement.verdict);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use ipsat_checkpoint::BlsSecretKey;
    use ipsat_p2p::MemoryHub;
    use ipsat_subnet::{TestTree, TreeSpec};

    use super::*;

    const PERIOD: u64 = 3;

    fn tree(dir: &std::path::Path) -> TestTree {
        TestTree::new(
            dir,
            &TreeSpec {
                parent: "/r33/alpha".parse().unwrap(),
                child: "beta".into(),
                parent_validators: 3,
                child_validators: 3,
                period: PERIOD,
            },
        )
        .unwrap()
    }

    fn child_tx(tree: &TestTree, height: u64) -> Vec<u8> {
        tree.child.validators()[0]
            .query
            .delivery_tx(height)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn checkpoints_heard_on_the_plane_are_judged_against_parent_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut tree = tree(dir.path());
        for _ in 0..(3 * PERIOD + 2) {
            tree.child.block(&[]).unwrap();
        }
        let parent = &tree.parent.validators()[0];
        let judge_now =
            |data: &[u8], child: &str| judge(&parent.app, &parent.query, child, data).unwrap();
        let (first, second) = (child_tx(&tree, PERIOD), child_tx(&tree, 2 * PERIOD));
        let accept = Judgement {
            verdict: Verdict::Accept,
            offer: true,
        };
        assert_eq!(judge_now(&first, "beta"), accept);
        // Ahead of the parent: not forwarded, but offered for a proposal after the first.
        let ahead = Judgement {
            verdict: Verdict::Ignore,
            offer: true,
        };
        assert_eq!(judge_now(&second, "beta"), ahead);
        let reject = Judgement {
            verdict: Verdict::Reject,
            offer: false,
        };
        assert_eq!(judge_now(b"garbage", "beta"), reject);
        assert_eq!(
            judge_now(&first, "gamma"),
            reject,
            "heard on another child's topic"
        );
        let Ok(Some(SystemTx::ChildCheckpoint {
            subnet,
            checkpoint,
            mut certificate,
            releases,
            messages,
        })) = SystemTx::decode(&first)
        else {
            panic!("a delivery decodes");
        };
        certificate.signature = BlsSecretKey::from_seed(&[4; 32]).unwrap().sign(b"forged");
        let forged = SystemTx::ChildCheckpoint {
            subnet,
            checkpoint,
            certificate,
            releases,
            messages,
        }
        .encode();
        assert_eq!(judge_now(&forged, "beta"), reject);

        // Once accepted, the same checkpoint is old news: ignored, not offered again.
        assert_eq!(tree.deliver(), 3);
        tree.parent.block(&[]).unwrap();
        let parent = &tree.parent.validators()[0];
        let old = judge(&parent.app, &parent.query, "beta", &first).unwrap();
        assert_eq!(
            old,
            Judgement {
                verdict: Verdict::Ignore,
                offer: false
            }
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_checkpoint_published_by_the_child_is_accepted_by_the_parent() {
        let dir = tempfile::tempdir().unwrap();
        let mut tree = tree(dir.path());
        let hub = MemoryHub::new();
        let gossip = |app: &Arc<SubnetApp>, query: &StateQuery, subnet: &str, children| {
            let (incoming, received) = mpsc::channel(16);
            let (committed, _) = broadcast::channel(16);
            let node = Gossip {
                plane: hub.join(incoming),
                incoming: received,
                app: app.clone(),
                query: query.clone(),
                committed: committed.clone(),
                metrics: Arc::new(Metrics::default()),
                subnet: subnet.to_owned(),
                children,
            };
            (node, committed)
        };
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let parents: Vec<_> = tree
            .parent
            .validators()
            .iter()
            .map(|v| gossip(&v.app, &v.query, "/r33/alpha", vec!["beta".to_owned()]).0)
            .collect();
        for parent in parents {
            tokio::spawn(parent.run(shutdown.clone()));
        }
        let child = &tree.child.validators()[0];
        let (publisher, blocks) = gossip(&child.app, &child.query, "/r33/alpha/beta", Vec::new());
        tokio::spawn(publisher.run(shutdown.clone()));
        // The child's committed blocks reach its gossip service as the node's feed would.
        for _ in 0..(PERIOD + 2) {
            let block = tree.child.block(&[]).unwrap();
            let _ = blocks.send(Arc::new(block));
        }
        let record = |tree: &TestTree| {
            tree.parent.validators()[0]
                .query
                .subnet("beta")
                .unwrap()
                .unwrap()
                .0
                .last_checkpoint_height
        };
        for _ in 0..50 {
            if record(&tree) == PERIOD {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            tree.parent.block(&[]).unwrap();
        }
        assert_eq!(
            record(&tree),
            PERIOD,
            "the published checkpoint never reached the parent"
        );
        let _ = stop.send(true);
    }
}
