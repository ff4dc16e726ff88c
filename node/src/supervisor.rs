//! Starts the node's services, stops them all when the operator asks or when one of them
//! fails, and reports how each ended.
//!
//! Every service is an async task handed a shutdown signal; it must return soon after the
//! signal flips. A service that ends on its own before that is a failure of the node: the
//! supervisor stops the others and the process exits with that error, so whatever runs the
//! node (systemd, a container runtime) can restart it whole.

use std::future::Future;

use anyhow::{anyhow, Result};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// A service's view of the shutdown signal: wait with `changed()` or check `*borrow()`.
pub type Shutdown = watch::Receiver<bool>;

/// The running services of one node.
pub struct Supervisor {
    shutdown: watch::Sender<bool>,
    services: JoinSet<(&'static str, Result<()>)>,
}

impl Supervisor {
    /// A supervisor with no services yet.
    pub fn new() -> Self {
        Self {
            shutdown: watch::channel(false).0,
            services: JoinSet::new(),
        }
    }

    /// Starts the service `name`, built from its shutdown signal.
    pub fn spawn<F, S>(&mut self, name: &'static str, service: S)
    where
        S: FnOnce(Shutdown) -> F,
        F: Future<Output = Result<()>> + Send + 'static,
    {
        let running = service(self.shutdown.subscribe());
        self.services.spawn(async move { (name, running.await) });
        tracing::debug!(service = name, "started");
    }

    /// Runs until SIGTERM, Ctrl-C or the end of a service, then stops every service and
    /// waits for each. Returns the first failure, if any.
    pub async fn run(mut self) -> Result<()> {
        let mut terminate = signal(SignalKind::terminate())?;
        let mut failure = tokio::select! {
            _ = terminate.recv() => { tracing::info!("SIGTERM: shutting down"); None }
            _ = tokio::signal::ctrl_c() => { tracing::info!("interrupt: shutting down"); None }
            Some(ended) = self.services.join_next() => Some(ended_early(ended)),
        };
        let _ = self.shutdown.send(true);
        while let Some(ended) = self.services.join_next().await {
            match ended {
                Ok((name, Ok(()))) => tracing::info!(service = name, "stopped"),
                Ok((name, Err(error))) => {
                    tracing::error!(service = name, %error, "stopped with an error");
                    failure.get_or_insert(error.context(name));
                }
                Err(panic) => {
                    failure.get_or_insert(anyhow!("a service panicked: {panic}"));
                }
            }
        }
        match failure {
            None => Ok(()),
            Some(error) => Err(error),
        }
    }
}

/// A service that ended before shutdown was asked for: always a failure.
fn ended_early(ended: Result<(&'static str, Result<()>), tokio::task::JoinError>) -> anyhow::Error {
    let error = match ended {
        Ok((name, Ok(()))) => anyhow!("{name} ended unexpectedly"),
        Ok((name, Err(error))) => error.context(format!("{name} failed")),
        Err(panic) => anyhow!("a service panicked: {panic}"),
    };
    tracing::error!(error = format!("{error:#}"), "stopping the node");
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failing_service_stops_the_others_and_is_reported() {
        let mut supervisor = Supervisor::new();
        let (stopped_tx, mut stopped_rx) = tokio::sync::mpsc::unbounded_channel();
        supervisor.spawn("patient", move |mut shutdown| async move {
            let _ = shutdown.changed().await;
            let _ = stopped_tx.send("patient");
            Ok(())
        });
        supervisor.spawn("broken", |_| async { Err(anyhow!("port in use")) });
        let error = supervisor.run().await.unwrap_err();
        assert!(format!("{error:#}").contains("broken failed: port in use"));
        assert_eq!(stopped_rx.recv().await, Some("patient"));
    }
}
