//! Accepting connections without letting clients exhaust the node: every listening service
//! (gRPC, metrics) takes connections through [`limited_incoming`], which holds at most a fixed
//! number open, closes a connection that sends nothing within a deadline, and backs off when
//! `accept` fails (out of file descriptors, say) instead of spinning.
//!
//! While the limit is reached the node stops accepting: further clients wait in the kernel's
//! backlog, and file descriptors stay bounded whatever clients do.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::supervisor::Shutdown;

/// How a service limits its connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// How long a new connection may stay silent before it is closed.
    pub first_byte_timeout: Duration,
}

/// How long `accept` waits after it failed before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// An accepted connection; it frees its place under the limit when dropped.
pub struct LimitedStream {
    inner: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl Connected for LimitedStream {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.inner.connect_info()
    }
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The connections `listener` accepts under `limits`, each handed over once it has sent its
/// first bytes, until `shutdown`.
pub fn limited_incoming(
    listener: TcpListener,
    limits: ConnectionLimits,
    mut shutdown: Shutdown,
) -> ReceiverStream<io::Result<LimitedStream>> {
    let (ready, incoming) = mpsc::channel(limits.max_connections.max(1));
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    tokio::spawn(async move {
        loop {
            let permit = tokio::select! {
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
                _ = shutdown.changed() => return,
            };
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = shutdown.changed() => return,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed; backing off");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let ready = ready.clone();
            tokio::spawn(async move {
                let mut probe = [0u8; 1];
                match tokio::time::timeout(limits.first_byte_timeout, stream.peek(&mut probe)).await
                {
                    Ok(Ok(n)) if n > 0 => {
                        let stream = LimitedStream {
                            inner: stream,
                            _permit: permit,
                        };
                        let _ = ready.send(Ok(stream)).await;
                    }
                    // Silent past the deadline, closed, or broken: dropped with its permit.
                    _ => {}
                }
            });
        }
    });
    ReceiverStream::new(incoming)
}

/// How long an HTTP/1 server lets a client take.
#[derive(Debug, Clone, Copy)]
pub struct HttpTimeouts {
    /// Reading one request's headers.
    pub header: Duration,
    /// One connection, requests included.
    pub connection: Duration,
}

/// Serves HTTP/1.1 (hyper) on `listener` within `limits` and `timeouts` until `shutdown`
/// flips, answering each request with `handle`.
pub async fn serve_http1<H, F>(
    listener: TcpListener,
    limits: ConnectionLimits,
    timeouts: HttpTimeouts,
    mut shutdown: Shutdown,
    handle: H,
) -> anyhow::Result<()>
where
    H: Fn(hyper::Request<hyper::body::Incoming>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = hyper::Response<String>> + Send + 'static,
{
    use tokio_stream::StreamExt as _;
    let mut incoming = limited_incoming(listener, limits, shutdown.clone());
    loop {
        let accepted = tokio::select! {
            accepted = incoming.next() => accepted,
            _ = shutdown.changed() => return Ok(()),
        };
        let Some(Ok(stream)) = accepted else {
            return Ok(()); // the accept loop ended with the shutdown
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let response = handle(request);
                async move { Ok::<_, std::convert::Infallible>(response.await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(timeouts.header)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(timeouts.connection, connection).await;
        });
    }
}
