//! The cluster port's connections: accepted, then their TLS handshakes made
//! beside the accept loop (each within [`HANDSHAKE_TIMEOUT`]), at most
//! [`MAX_CONNECTIONS`] held at once. The certificate presented is the node's
//! current one, so a renewal needs no restart.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use swarmkeep_transport::tls::TlsCell;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

/// A peer that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections held at once, handshaking or admitted (a manager holds one or
/// two per node of the swarm); more wait in the listen backlog.
pub(super) const MAX_CONNECTIONS: usize = 4096;

/// A connection that finished its handshake; it holds a connection slot
/// until it closes.
pub(crate) struct Admitted {
    io: TlsStream<TcpStream>,
    _slot: OwnedSemaphorePermit,
}

/// The gate and the services read the peer's certificate from what this
/// gives (tonic's `TlsConnectInfo`).
impl Connected for Admitted {
    type ConnectInfo = <TlsStream<TcpStream> as Connected>::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl AsyncRead for Admitted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Admitted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The admitted connections of `listener`, until `stop` (the listener is
/// closed then).
pub(super) fn incoming(
    listener: TcpListener,
    tls: Arc<TlsCell>,
    mut stop: watch::Receiver<bool>,
) -> ReceiverStream<std::io::Result<Admitted>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config());
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let slot = tokio::select! {
                _ = stop.changed() => return,
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => return,
                },
            };
            let tcp = tokio::select! {
                _ = stop.changed() => return,
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _)) => tcp,
                    Err(e) => {
                        tracing::warn!(error = %e, "cluster accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            // Raft round trips are small messages: no Nagle delay on them.
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(io)) => {
                        let _ = tx.send(Ok(Admitted { io, _slot: slot })).await;
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "cluster TLS handshake failed"),
                    Err(_) => tracing::debug!("cluster TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}
