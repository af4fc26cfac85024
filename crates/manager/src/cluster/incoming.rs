//! The cluster port's connections: accepted, then their TLS handshakes made
//! beside the accept loop (each within [`HANDSHAKE_TIMEOUT`]), at most
//! [`MAX_CONNECTIONS`] held at once, of which at most [`MAX_ANONYMOUS`]
//! without a client certificate, each for at most [`ANONYMOUS_LIFETIME`]. The certificate presented is the node's
//! current one, so a renewal needs no restart.

use std::future::Future;
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

/// Of those, connections without a client certificate (joiners fetching the
/// CA or presenting a token): a peer with no certificate cannot take the
/// slots members need.
const MAX_ANONYMOUS: usize = 256;
/// And how long such a connection may last: a join takes a few calls.
const ANONYMOUS_LIFETIME: Duration = Duration::from_secs(30);

/// A connection that finished its handshake; it holds a connection slot
/// (and an anonymous one if it has no certificate) until it closes.
pub(crate) struct Admitted {
    io: TlsStream<TcpStream>,
    _slot: OwnedSemaphorePermit,
    _anonymous: Option<OwnedSemaphorePermit>,
    /// Past this, reads and writes fail (anonymous connections only).
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Admitted {
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().is_some_and(|d| d.as_mut().poll(cx).is_ready())
    }
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
        if self.expired(cx) {
            return Poll::Ready(Err(std::io::ErrorKind::TimedOut.into()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Admitted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if self.expired(cx) {
            return Poll::Ready(Err(std::io::ErrorKind::TimedOut.into()));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The admitted connections of `listener`, until `stop`; the accept loop's
/// task ends then, closing the listener (await it before binding the
/// address again).
pub(super) fn incoming(
    listener: TcpListener,
    tls: Arc<TlsCell>,
    mut stop: watch::Receiver<bool>,
) -> (ReceiverStream<std::io::Result<Admitted>>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(64);
    let accepting = tokio::spawn(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config());
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let anonymous = Arc::new(Semaphore::new(MAX_ANONYMOUS));
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
                    Ok((tcp, peer)) => {
                        tracing::debug!(%peer, "cluster connection accepted");
                        tcp
                    }
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
            let anonymous = anonymous.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(io)) => {
                        let (anonymous, deadline) = if io.get_ref().1.peer_certificates().is_some() {
                            (None, None)
                        } else {
                            let Ok(permit) = anonymous.try_acquire_owned() else {
                                tracing::debug!("cluster port: too many connections without a certificate");
                                return;
                            };
                            (Some(permit), Some(Box::pin(tokio::time::sleep(ANONYMOUS_LIFETIME))))
                        };
                        let admitted = Admitted {
                            io,
                            _slot: slot,
                            _anonymous: anonymous,
                            deadline,
                        };
                        let _ = tx.send(Ok(admitted)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "cluster TLS handshake failed"),
                    Err(_) => tracing::debug!("cluster TLS handshake timed out"),
                }
            });
        }
    });
    (ReceiverStream::new(rx), accepting)
}
