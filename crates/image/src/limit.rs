//! A writer that takes at most a bound: a registry that sends more of a
//! blob than its manifest declared fails the pull instead of filling the
//! disk.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

pub(crate) struct Bounded<'a, W> {
    inner: &'a mut W,
    left: u64,
}

impl<'a, W> Bounded<'a, W> {
    pub(crate) fn new(inner: &'a mut W, limit: u64) -> Self {
        Self { inner, left: limit }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Bounded<'_, W> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if u64::try_from(buf.len()).unwrap_or(u64::MAX) > self.left {
            return Poll::Ready(Err(std::io::Error::other(
                "the registry sent more than the manifest declared",
            )));
        }
        let this = &mut *self;
        match Pin::new(&mut *this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.left -= u64::try_from(n).unwrap_or(0);
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn more_than_the_bound_is_refused() {
        let mut sink = Vec::new();
        let mut w = Bounded::new(&mut sink, 5);
        w.write_all(b"abc").await.unwrap();
        assert!(w.write_all(b"def").await.is_err());
        w.write_all(b"de").await.unwrap();
        assert_eq!(sink, b"abcde");
    }
}
