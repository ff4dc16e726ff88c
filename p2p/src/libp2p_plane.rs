//! [`Plane`] over libp2p: TCP with Noise and Yamux, identify, and gossipsub that holds every
//! received message until the application judges it (`validate_messages`), with message ids
//! that are the hash of the payload, so the same checkpoint published by several validators
//! travels once.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::StreamExt as _;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId, ValidationMode};
use libp2p::identity::Keypair;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, tcp, yamux, Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot};

use crate::{ask, Incoming, Plane, PublishError, Verdict, MAX_MESSAGE_BYTES};

/// How a [`Libp2pPlane`] starts.
pub struct Libp2pConfig {
    /// The node's libp2p identity.
    pub keypair: Keypair,
    /// Where it listens (e.g. `/ip4/0.0.0.0/tcp/26670`).
    pub listen: Vec<Multiaddr>,
    /// Peers it dials at start and redials whenever it is not connected to them.
    pub bootstrap: Vec<Multiaddr>,
    /// How often lost bootstrap peers are redialled.
    pub redial_interval: Duration,
}

/// Why the plane did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listen address could not be bound.
    #[error("listening on {address}: {reason}")]
    Listen {
        /// The address.
        address: Multiaddr,
        /// Why.
        reason: String,
    },
    /// The transport or behaviour could not be built.
    #[error("building the libp2p swarm: {0}")]
    Build(String),
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    gossipsub: gossipsub::Behaviour,
    identify: identify::Behaviour,
}

enum Command {
    Subscribe(String),
    Publish(String, Vec<u8>, oneshot::Sender<Result<(), PublishError>>),
    ListenAddresses(oneshot::Sender<Vec<Multiaddr>>),
    ConnectedPeers(oneshot::Sender<usize>),
}

/// A running libp2p gossip node; the task behind it stops when every handle is dropped.
#[derive(Clone)]
pub struct Libp2pPlane {
    commands: mpsc::Sender<Command>,
    peer_id: PeerId,
}

fn message_id(message: &gossipsub::Message) -> MessageId {
    MessageId::from(blake3::hash(&message.data).as_bytes().to_vec())
}

fn build_swarm(keypair: Keypair) -> Result<Swarm<Behaviour>, StartError> {
    let build = |e: &dyn std::fmt::Display| StartError::Build(e.to_string());
    let gossip_config = gossipsub::ConfigBuilder::default()
        .validation_mode(ValidationMode::Strict)
        .validate_messages()
        .message_id_fn(message_id)
        .max_transmit_size(MAX_MESSAGE_BYTES)
        .heartbeat_interval(Duration::from_millis(500))
        .build()
        .map_err(|e| build(&e))?;
    Ok(libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| build(&e))?
        .with_behaviour(|key| {
            let gossipsub = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                gossip_config,
            )?;
            let identify = identify::Behaviour::new(identify::Config::new(
                "/ipsat/1.0.0".into(),
                key.public(),
            ));
            Ok(Behaviour {
                gossipsub,
                identify,
            })
        })
        .map_err(|e| build(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build())
}

impl Libp2pPlane {
    /// Starts the node: binds its listen addresses, dials the bootstrap peers, and hands every
    /// message received on a subscribed topic to `incoming`.
    pub async fn start(
        config: Libp2pConfig,
        incoming: mpsc::Sender<Incoming>,
    ) -> Result<Self, StartError> {
        let peer_id = config.keypair.public().to_peer_id();
        let mut swarm = build_swarm(config.keypair)?;
        for address in &config.listen {
            swarm
                .listen_on(address.clone())
                .map_err(|e| StartError::Listen {
                    address: address.clone(),
                    reason: e.to_string(),
                })?;
        }
        let (commands, receiver) = mpsc::channel(64);
        let node = Node {
            swarm,
            incoming,
            bootstrap: config.bootstrap,
            connected: BTreeSet::new(),
            listening: Vec::new(),
        };
        tokio::spawn(node.run(receiver, config.redial_interval));
        Ok(Self { commands, peer_id })
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The addresses it listens on, once bound.
    pub async fn listen_addresses(&self) -> Vec<Multiaddr> {
        let (reply, answer) = oneshot::channel();
        if self
            .commands
            .send(Command::ListenAddresses(reply))
            .await
            .is_err()
        {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }

    /// How many peers it is connected to.
    pub async fn connected_peers(&self) -> usize {
        let (reply, answer) = oneshot::channel();
        if self
            .commands
            .send(Command::ConnectedPeers(reply))
            .await
            .is_err()
        {
            return 0;
        }
        answer.await.unwrap_or(0)
    }
}

impl Plane for Libp2pPlane {
    fn subscribe(&self, topic: &str) {
        // Subscriptions are made at start-up, before the queue can be full.
        if let Err(error) = self.commands.try_send(Command::Subscribe(topic.to_owned())) {
            tracing::error!(%error, topic, "gossip subscription lost");
        }
    }

    async fn publish(&self, topic: &str, data: Vec<u8>) -> Result<(), PublishError> {
        if data.len() > MAX_MESSAGE_BYTES {
            return Err(PublishError::TooLarge(data.len()));
        }
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Publish(topic.to_owned(), data, reply))
            .await
            .map_err(|_| PublishError::Stopped)?;
        answer.await.map_err(|_| PublishError::Stopped)?
    }
}

/// The task that owns the swarm.
struct Node {
    swarm: Swarm<Behaviour>,
    incoming: mpsc::Sender<Incoming>,
    bootstrap: Vec<Multiaddr>,
    /// Bootstrap addresses with an open connection.
    connected: BTreeSet<Multiaddr>,
    listening: Vec<Multiaddr>,
}

impl Node {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>, redial_interval: Duration) {
        let mut judging = FuturesUnordered::new();
        let mut redial = tokio::time::interval(redial_interval);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => return, // every handle is gone
                },
                event = self.swarm.select_next_some() => {
                    if let Some((id, source, topic, data)) = self.event(event) {
                        let incoming = self.incoming.clone();
                        judging.push(async move { (id, source, ask(&incoming, topic, data).await) });
                    }
                }
                Some((id, source, verdict)) = judging.next() => {
                    let acceptance = match verdict {
                        Verdict::Accept => MessageAcceptance::Accept,
                        Verdict::Reject => MessageAcceptance::Reject,
                        Verdict::Ignore => MessageAcceptance::Ignore,
                    };
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(&id, &source, acceptance);
                }
                _ = redial.tick() => self.redial(),
            }
        }
    }

    fn redial(&mut self) {
        for address in &self.bootstrap {
            if !self.connected.contains(address) {
                if let Err(error) = self.swarm.dial(address.clone()) {
                    tracing::debug!(%address, %error, "gossip dial failed");
                }
            }
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Subscribe(topic) => {
                if let Err(error) = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .subscribe(&IdentTopic::new(&topic))
                {
                    tracing::error!(%error, topic, "gossip subscription refused");
                }
            }
            Command::Publish(topic, data, reply) => {
                let result = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(IdentTopic::new(&topic), data)
                    .map(|_| ())
                    .map_err(|e| match e {
                        gossipsub::PublishError::NoPeersSubscribedToTopic => {
                            PublishError::NoPeers(topic.clone())
                        }
                        gossipsub::PublishError::Duplicate => PublishError::Duplicate,
                        gossipsub::PublishError::MessageTooLarge => PublishError::TooLarge(0),
                        other => PublishError::Other(other.to_string()),
                    });
                let _ = reply.send(result);
            }
            Command::ListenAddresses(reply) => {
                let _ = reply.send(self.listening.clone());
            }
            Command::ConnectedPeers(reply) => {
                let _ = reply.send(self.swarm.connected_peers().count());
            }
        }
    }

    /// Handles a swarm event; a gossip message to judge comes back.
    fn event(
        &mut self,
        event: SwarmEvent<BehaviourEvent>,
    ) -> Option<(MessageId, PeerId, String, Vec<u8>)> {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => Some((
                message_id,
                propagation_source,
                message.topic.into_string(),
                message.data,
            )),
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "gossip listening");
                self.listening.push(address);
                None
            }
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                let address = endpoint.get_remote_address().clone();
                tracing::debug!(%peer_id, %address, "gossip peer connected");
                if self.bootstrap.contains(&address) {
                    self.connected.insert(address);
                }
                None
            }
            SwarmEvent::ConnectionClosed {
                peer_id, endpoint, ..
            } => {
                let address = endpoint.get_remote_address();
                tracing::debug!(%peer_id, %address, "gossip peer disconnected");
                self.connected.remove(address);
                None
            }
            _ => None,
        }
    }
}
