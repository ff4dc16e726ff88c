//! The gossip plane between subnets: certified checkpoints travel from a child's validators to
//! its parent's validators as gossipsub messages, one topic per child, without a relayer.
//!
//! Owns the [`Plane`] trait (subscribe, publish) and the stream of [`Incoming`] messages, each
//! of which the application must judge ([`Verdict`]) before the plane forwards it to anyone
//! else; and two implementations: [`Libp2pPlane`] (TCP, Noise, Yamux, identify, gossipsub with
//! content-addressed message ids and validation before forwarding) and [`MemoryPlane`], the
//! same contract in memory for tests of the code that uses a plane.
//!
//! It knows nothing about checkpoints, state or CometBFT: payloads are bytes, and whoever
//! receives them decides what they are worth. It must not depend on the state machine.

mod libp2p_plane;
mod memory;

use tokio::sync::{mpsc, oneshot};

pub use libp2p::identity::Keypair;
pub use libp2p::{Multiaddr, PeerId};
pub use libp2p_plane::{Libp2pConfig, Libp2pPlane, StartError};
pub use memory::{MemoryHub, MemoryPlane};

/// Largest message the plane carries: a certified checkpoint is under 1 KiB, so this leaves
/// room without letting a peer make anyone buffer megabytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The topic a child's checkpoints travel on.
pub fn checkpoint_topic(child_path: &str) -> String {
    format!("ipsat/checkpoints/v1{child_path}")
}

/// What the application decided about a received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: forward it to the mesh.
    Accept,
    /// Invalid (a forgery, garbage): drop it and count it against the peer that sent it.
    Reject,
    /// Not useful now (old, or not yet checkable): drop it without blame.
    Ignore,
}

/// A message received on a subscribed topic. It is forwarded to other peers only after the
/// application answers through [`Incoming::judge`]; an unanswered message is never forwarded.
#[derive(Debug)]
pub struct Incoming {
    /// The topic it arrived on.
    pub topic: String,
    /// Its payload.
    pub data: Vec<u8>,
    verdict: oneshot::Sender<Verdict>,
}

impl Incoming {
    /// Answers for this message.
    pub fn judge(self, verdict: Verdict) {
        // The plane may have shut down meanwhile; then nobody is left to forward to.
        let _ = self.verdict.send(verdict);
    }
}

/// Why a message was not published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// No peer subscribes to the topic yet; try again later.
    #[error("no peer subscribes to {0} yet")]
    NoPeers(String),
    /// The same payload was already published or seen: nothing to do.
    #[error("already published")]
    Duplicate,
    /// Larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes is too large")]
    TooLarge(usize),
    /// The plane has stopped.
    #[error("the gossip plane has stopped")]
    Stopped,
    /// Anything else the transport reports.
    #[error("gossip publish failed: {0}")]
    Other(String),
}

/// A gossip network the node takes part in.
pub trait Plane: Send + Sync {
    /// Receives messages on `topic` from now on (on the [`Incoming`] channel the plane was
    /// created with).
    fn subscribe(&self, topic: &str);

    /// Sends `data` to the peers on `topic`.
    fn publish(
        &self,
        topic: &str,
        data: Vec<u8>,
    ) -> impl std::future::Future<Output = Result<(), PublishError>> + Send;
}

/// Hands `data` received on `topic` to the application and returns its verdict (Ignore if
/// the application has gone away or dropped the message unanswered).
async fn ask(incoming: &mpsc::Sender<Incoming>, topic: String, data: Vec<u8>) -> Verdict {
    let (verdict, answer) = oneshot::channel();
    let message = Incoming {
        topic,
        data,
        verdict,
    };
    if incoming.send(message).await.is_err() {
        return Verdict::Ignore;
    }
    answer.await.unwrap_or(Verdict::Ignore)
}
