//! The one frame reader of the wire protocols: read a header, learn the frame's length, read the
//! rest. Every length a peer sends is checked here against the protocol's cap before anything
//! more is read or allocated, and a connection reads at most `MAX_READ` bytes in all, so a
//! hostile server (a 4 GiB length, an endless stream) costs a probe little memory and no time.

use super::{receive, Io};
use crate::probe::report::Failure;
use bytes::BytesMut;
use std::time::Duration;

/// The most a probe reads from one connection, whatever the protocol.
pub const MAX_READ: usize = 8 << 20;

/// How one protocol frames its messages.
pub struct Framing {
    /// The product the peer claims to be, for the mismatch message.
    pub product: &'static str,
    /// Bytes needed before the frame's length is known.
    pub header: usize,
    /// The whole frame's length (header included) from its first `header` bytes; None when the
    /// header is not this protocol's.
    pub length: fn(&[u8]) -> Option<usize>,
    /// The largest frame accepted.
    pub cap: usize,
}

/// A connection's read side: what arrived and is not yet consumed, and what was read in all.
#[derive(Default)]
pub struct FrameReader {
    buf: BytesMut,
    total: usize,
}

impl FrameReader {
    /// The next whole frame (header included), each exchange bounded by `limit`.
    pub async fn next<S: Io + ?Sized>(
        &mut self,
        stream: &mut S,
        framing: &Framing,
        limit: Duration,
    ) -> Result<BytesMut, Failure> {
        loop {
            if self.buf.len() >= framing.header {
                let len = (framing.length)(&self.buf[..framing.header])
                    .filter(|len| *len >= framing.header)
                    .ok_or_else(|| Failure::mismatch(framing.product))?;
                if len > framing.cap {
                    return Err(Failure::mismatch_because(
                        framing.product,
                        format!("a message of {len} bytes, over the {} allowed", framing.cap),
                    ));
                }
                if self.buf.len() >= len {
                    return Ok(self.buf.split_to(len));
                }
            }
            self.fill(stream, limit, framing.product).await?;
        }
    }

    /// Reads what arrives next, within the connection's byte budget.
    async fn fill<S: Io + ?Sized>(
        &mut self,
        stream: &mut S,
        limit: Duration,
        product: &'static str,
    ) -> Result<(), Failure> {
        if self.total >= MAX_READ {
            return Err(Failure::mismatch_because(
                product,
                format!("more than {} bytes without an answer", MAX_READ),
            ));
        }
        let before = self.buf.len();
        receive(stream, &mut self.buf, limit).await?;
        self.total += self.buf.len() - before;
        Ok(())
    }

    /// Bytes read from the connection so far.
    pub fn total(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::report::ProbeCode;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Poll};
    use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

    /// Counts every byte read through it: Linux over-commits, so memory use would prove nothing.
    pub struct Counting<S> {
        pub inner: S,
        pub read: Arc<AtomicUsize>,
    }

    impl<S: AsyncRead + Unpin> AsyncRead for Counting<S> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let before = buf.filled().len();
            let r = Pin::new(&mut self.inner).poll_read(cx, buf);
            self.read
                .fetch_add(buf.filled().len() - before, Ordering::Relaxed);
            r
        }
    }

    impl<S: AsyncWrite + Unpin> AsyncWrite for Counting<S> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Pin::new(&mut self.inner).poll_write(cx, buf)
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }
        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    const BIG_ENDIAN_U32: Framing = Framing {
        product: "a test protocol",
        header: 4,
        length: |h| Some(u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize + 4),
        cap: 1024,
    };

    /// A peer that sends `head`, then `fill` bytes forever (until the reader hangs up).
    async fn peer(head: &'static [u8]) -> (Counting<tokio::io::DuplexStream>, Arc<AtomicUsize>) {
        let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let _ = theirs.write_all(head).await;
            let junk = vec![0x41u8; 16 * 1024];
            while theirs.write_all(&junk).await.is_ok() {}
        });
        let read = Arc::new(AtomicUsize::new(0));
        (
            Counting {
                inner: ours,
                read: read.clone(),
            },
            read,
        )
    }

    #[tokio::test]
    async fn a_huge_length_is_refused_before_its_body_is_read() {
        let (mut stream, read) = peer(&[0xff, 0xff, 0xff, 0xff]).await;
        let mut reader = FrameReader::default();
        let e = reader
            .next(&mut stream, &BIG_ENDIAN_U32, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(e.code, ProbeCode::ProtocolMismatch);
        assert!(e.message.contains("4294967299 bytes"), "{}", e.message);
        // One read at most: the length was judged as soon as the header arrived.
        assert!(read.load(Ordering::Relaxed) <= 64 * 1024, "{read:?}");
    }

    #[tokio::test]
    async fn a_connection_reads_at_most_its_budget() {
        // Endless frames that are each within the cap: the budget ends it.
        const TINY: Framing = Framing {
            product: "a test protocol",
            header: 1,
            length: |_| Some(4096),
            cap: 4096,
        };
        let (mut stream, read) = peer(b"").await;
        let mut reader = FrameReader::default();
        let failure = loop {
            match reader
                .next(&mut stream, &TINY, Duration::from_secs(5))
                .await
            {
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        assert_eq!(failure.code, ProbeCode::ProtocolMismatch);
        let read = read.load(Ordering::Relaxed);
        assert!((MAX_READ..MAX_READ + 128 * 1024).contains(&read), "{read}");
        assert_eq!(reader.total(), read);
    }

    #[tokio::test]
    async fn whole_frames_come_out_one_at_a_time() {
        let (mut stream, _) = peer(b"\0\0\0\x02hi\0\0\0\x01!").await;
        let mut reader = FrameReader::default();
        let limit = Duration::from_secs(5);
        assert_eq!(
            &reader
                .next(&mut stream, &BIG_ENDIAN_U32, limit)
                .await
                .unwrap()[..],
            b"\0\0\0\x02hi"
        );
        assert_eq!(
            &reader
                .next(&mut stream, &BIG_ENDIAN_U32, limit)
                .await
                .unwrap()[..],
            b"\0\0\0\x01!"
        );
    }
}
