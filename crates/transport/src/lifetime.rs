//! A cluster connection lives no longer than the certificate its peer
//! presented: the TLS handshake checks validity once, when the connection
//! opens, and kept connections (raft peers, heartbeats, the leader channel,
//! an agent's session) outlive that moment by design. Once the peer's
//! certificate expires its connection's reads and writes fail, the
//! connection closes, and a kept channel connects again — presenting and
//! checking the identities as they are then: a renewed certificate passes, an
//! expired one is refused at the new handshake.
//!
//! Both ends hold to it: the cluster port for the client certificate it
//! accepted, every client for the server certificate it checked.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::tls::CertInfo;

/// The longest a timer is set for (tokio's reach is ~2 years); a connection
/// that lasts that long is closed then and made again.
const LONGEST: Duration = Duration::from_secs(365 * 24 * 3600);

/// How long a connection whose peer presented `cert_der` may last: until
/// the certificate's `notAfter` (nothing if it cannot be read or has passed).
pub fn left_of(cert_der: &[u8]) -> Duration {
    CertInfo::from_der(cert_der)
        .and_then(|info| info.not_after.duration_since(SystemTime::now()).ok())
        .unwrap_or(Duration::ZERO)
        .min(LONGEST)
}

/// When a connection ends.
pub struct Deadline(Pin<Box<tokio::time::Sleep>>);

impl Deadline {
    pub fn after(left: Duration) -> Self {
        Self(Box::pin(tokio::time::sleep(left.min(LONGEST))))
    }

    /// Whether it has passed; if not, `cx` is woken when it does.
    pub fn passed(&mut self, cx: &mut Context<'_>) -> bool {
        self.0.as_mut().poll(cx).is_ready()
    }
}

fn ended() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "the connection outlived its deadline")
}

/// An I/O stream whose reads and writes fail once its deadline has passed
/// (a read or write waiting then is woken to fail).
pub struct Expiring<T> {
    io: T,
    deadline: Deadline,
}

impl<T> Expiring<T> {
    pub fn new(io: T, deadline: Deadline) -> Self {
        Self { io, deadline }
    }

    pub fn get_ref(&self) -> &T {
        &self.io
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Expiring<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.deadline.passed(cx) {
            return Poll::Ready(Err(ended()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Expiring<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if self.deadline.passed(cx) {
            return Poll::Ready(Err(ended()));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if self.deadline.passed(cx) {
            return Poll::Ready(Err(ended()));
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn reads_and_writes_fail_once_the_deadline_passes() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut a = Expiring::new(a, Deadline::after(Duration::from_millis(300)));
        a.write_all(b"before").await.unwrap();
        let mut buf = [0u8; 6];
        b.read_exact(&mut buf).await.unwrap();
        // A read waiting when the deadline passes is woken to fail.
        let err = tokio::time::timeout(Duration::from_secs(10), a.read(&mut buf))
            .await
            .expect("woken at the deadline")
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(a.write_all(b"after").await.is_err());
    }

    #[test]
    fn a_certificate_that_cannot_be_read_leaves_no_time() {
        assert_eq!(left_of(b"not a certificate"), Duration::ZERO);
    }
}
