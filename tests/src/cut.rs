//! `CutNetworkProxy`: a TCP forwarder a test can cut and restore, standing in for a network
//! partition between two processes on one machine (the one fault the harness cannot produce
//! with real parts). While cut, it closes every open connection and refuses new ones.

use std::net::SocketAddr;

use anyhow::Result;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A forwarder from a local port to `target`; see the module documentation.
pub struct CutNetworkProxy {
    /// Where clients connect instead of `target`.
    pub addr: SocketAddr,
    cut: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl CutNetworkProxy {
    /// Listens on `listen` and forwards every connection to `target`.
    pub async fn start(listen: SocketAddr, target: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (cut, watching) = watch::channel(false);
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if *watching.borrow() {
                    continue; // dropped: the network is cut
                }
                let mut cut = watching.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut inbound, mut outbound) = (inbound, outbound);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Ok(Self { addr, cut, task })
    }

    /// Cuts the network: open connections close, new ones are refused.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Restores the network.
    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for CutNetworkProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
