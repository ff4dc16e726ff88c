//! [`Plane`] in memory, for tests of the code that uses a plane: every member of a
//! [`MemoryHub`] is a neighbour of every other, so a published message reaches each member
//! subscribed to its topic once and there is nothing left to forward. Each payload is
//! delivered to a member at most once, as gossipsub's content-addressed ids guarantee.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use crate::{ask, Incoming, Plane, PublishError, MAX_MESSAGE_BYTES};

struct Member {
    topics: BTreeSet<String>,
    seen: BTreeSet<[u8; 32]>,
    incoming: mpsc::Sender<Incoming>,
}

/// Connects [`MemoryPlane`]s.
#[derive(Clone, Default)]
pub struct MemoryHub {
    members: Arc<Mutex<Vec<Member>>>,
}

/// One member of a [`MemoryHub`].
pub struct MemoryPlane {
    hub: MemoryHub,
    index: usize,
}

impl MemoryHub {
    /// A hub with no members.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Member>> {
        // Plain data: a panic elsewhere cannot leave it half-written.
        self.members
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new member whose received messages go to `incoming`.
    pub fn join(&self, incoming: mpsc::Sender<Incoming>) -> MemoryPlane {
        let mut members = self.lock();
        members.push(Member {
            topics: BTreeSet::new(),
            seen: BTreeSet::new(),
            incoming,
        });
        MemoryPlane {
            hub: self.clone(),
            index: members.len() - 1,
        }
    }
}

impl Plane for MemoryPlane {
    fn subscribe(&self, topic: &str) {
        self.hub.lock()[self.index].topics.insert(topic.to_owned());
    }

    async fn publish(&self, topic: &str, data: Vec<u8>) -> Result<(), PublishError> {
        if data.len() > MAX_MESSAGE_BYTES {
            return Err(PublishError::TooLarge(data.len()));
        }
        let id = *blake3::hash(&data).as_bytes();
        let recipients: Vec<mpsc::Sender<Incoming>> = {
            let mut members = self.hub.lock();
            let mut subscribers = members
                .iter_mut()
                .enumerate()
                .filter(|(i, m)| *i != self.index && m.topics.contains(topic))
                .peekable();
            if subscribers.peek().is_none() {
                return Err(PublishError::NoPeers(topic.to_owned()));
            }
            subscribers
                .filter_map(|(_, m)| m.seen.insert(id).then(|| m.incoming.clone()))
                .collect()
        };
        if recipients.is_empty() {
            return Err(PublishError::Duplicate);
        }
        for incoming in recipients {
            let topic = topic.to_owned();
            let data = data.clone();
            // Each recipient judges on its own; nobody waits for another's verdict.
            tokio::spawn(async move { ask(&incoming, topic, data).await });
        }
        Ok(())
    }
}
