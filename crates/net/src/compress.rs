//! COMPRESS=DEFLATE (RFC 4978, IMAP's COMPRESS command): a stream wrapper that inflates what the
//! client sends and deflates what the server writes, over any byte stream (plain TCP or TLS). The
//! socket driver (`crate::driver`) wraps a connection in it when a protocol asks.
//!
//! RFC 4978 §3: raw DEFLATE (RFC 1951, no zlib header) in both directions once the tagged OK of
//! COMPRESS has been sent. Each `flush` ends with a sync flush (Z_SYNC_FLUSH), so every response
//! burst the driver writes reaches the client whole and the client never waits on bytes held in
//! the compressor (RFC 4978 §4).
//!
//! The inflater writes straight into the caller's read buffer, so one read never produces more
//! than that buffer holds: a decompression bomb costs the same as the same bytes sent plainly,
//! and the session's line and literal limits apply to the inflated bytes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Compression level (zlib's default; RFC 4978 §4 leaves the speed/ratio trade-off to the
/// server, and Dovecot's default is the same).
pub const DEFLATE_LEVEL: u32 = 6;
/// Compressed bytes read from the connection at a time.
const INPUT_CHUNK: usize = 16 * 1024;
/// Plaintext deflated per write call, and compressed bytes held before they must be sent: bounds
/// what a large response (FETCH of a big message) keeps in memory.
const WRITE_STEP: usize = 64 * 1024;
/// Spare room given to each sync-flush call (zlib asks for more than 6 bytes so that the flush
/// marker is not repeated).
const FLUSH_ROOM: usize = 512;

/// A stream whose two directions are raw DEFLATE.
pub struct Deflate<S> {
    inner: S,
    inflate: Decompress,
    deflate: Compress,
    /// Compressed input read from `inner`; `input[in_pos..in_end]` is not inflated yet.
    input: Box<[u8]>,
    in_pos: usize,
    in_end: usize,
    /// The client closed the connection or ended its DEFLATE stream: reads return end of file.
    ended: bool,
    /// Compressed output; `output[out_pos..]` is not written to `inner` yet.
    output: Vec<u8>,
    out_pos: usize,
    /// Plaintext was deflated since the last sync flush.
    unflushed: bool,
}

impl<S> Deflate<S> {
    pub fn new(inner: S) -> Deflate<S> {
        Deflate {
            inner,
            inflate: Decompress::new(false),
            deflate: Compress::new(Compression::new(DEFLATE_LEVEL), false),
            input: vec![0; INPUT_CHUNK].into_boxed_slice(),
            in_pos: 0,
            in_end: 0,
            ended: false,
            output: Vec::new(),
            out_pos: 0,
            unflushed: false,
        }
    }

    /// Deflates `data` into `output` with `flush`, until all of it is consumed and, for a sync
    /// flush, the flush is complete.
    fn deflate_into(&mut self, data: &[u8], flush: FlushCompress) -> io::Result<()> {
        let mut done = 0;
        loop {
            self.output.reserve(data.len() - done + FLUSH_ROOM);
            let (in_before, out_before) = (self.deflate.total_in(), self.deflate.total_out());
            self.deflate
                .compress_vec(&data[done..], &mut self.output, flush)
                .map_err(io::Error::other)?;
            let consumed = (self.deflate.total_in() - in_before) as usize;
            let produced = self.deflate.total_out() - out_before;
            done += consumed;
            // A sync flush is complete when it returns with output room left (zlib's rule).
            let flushed =
                flush == FlushCompress::None || self.output.len() < self.output.capacity();
            if done == data.len() && flushed {
                return Ok(());
            }
            if consumed == 0 && produced == 0 {
                return Err(io::Error::other("deflate made no progress"));
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> Deflate<S> {
    /// Writes the pending compressed bytes to `inner`.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_pos < self.output.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.output[self.out_pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_pos += n;
        }
        self.output.clear();
        self.out_pos = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Deflate<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        // Cancel-safe (the driver races reads against IDLE wake-ups): all state lives in `self`.
        loop {
            let (in_before, out_before) = (this.inflate.total_in(), this.inflate.total_out());
            let status = this
                .inflate
                .decompress(
                    &this.input[this.in_pos..this.in_end],
                    buf.initialize_unfilled(),
                    FlushDecompress::None,
                )
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let consumed = (this.inflate.total_in() - in_before) as usize;
            let produced = (this.inflate.total_out() - out_before) as usize;
            this.in_pos += consumed;
            buf.advance(produced);
            if status == Status::StreamEnd {
                // RFC 4978 has no way to end compression: a final block ends the connection.
                this.ended = true;
            }
            if produced > 0 || this.ended {
                return Poll::Ready(Ok(()));
            }
            if this.in_pos < this.in_end {
                if consumed == 0 {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "inflate made no progress",
                    )));
                }
                continue;
            }
            // Everything buffered is inflated and nothing is pending: read more.
            this.in_pos = 0;
            this.in_end = 0;
            let mut rb = ReadBuf::new(&mut this.input);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            if n == 0 {
                this.ended = true;
                return Poll::Ready(Ok(()));
            }
            this.in_end = n;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Deflate<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.output.len() - this.out_pos >= WRITE_STEP {
            ready!(this.poll_send(cx))?;
        }
        let take = data.len().min(WRITE_STEP);
        this.deflate_into(&data[..take], FlushCompress::None)?;
        if take > 0 {
            this.unflushed = true;
        }
        Poll::Ready(Ok(take))
    }

    /// Sync flush, then everything compressed goes out: the end of a response burst.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.unflushed {
            this.deflate_into(&[], FlushCompress::Sync)?;
            this.unflushed = false;
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The connection as the driver uses it: as accepted, or compressed after COMPRESS.
pub enum MaybeDeflate<S> {
    Plain(S),
    Deflate(Box<Deflate<S>>),
}

impl<S> MaybeDeflate<S> {
    /// Starts compression (after the tagged OK of COMPRESS was written); a no-op if active.
    pub fn start_deflate(self) -> MaybeDeflate<S> {
        match self {
            MaybeDeflate::Plain(s) => MaybeDeflate::Deflate(Box::new(Deflate::new(s))),
            d => d,
        }
    }

    pub fn is_deflate(&self) -> bool {
        matches!(self, MaybeDeflate::Deflate(_))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for MaybeDeflate<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeDeflate::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeDeflate::Deflate(d) => Pin::new(d.as_mut()).poll_read(cx, buf),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for MaybeDeflate<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeDeflate::Plain(s) => Pin::new(s).poll_write(cx, data),
            MaybeDeflate::Deflate(d) => Pin::new(d.as_mut()).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeDeflate::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeDeflate::Deflate(d) => Pin::new(d.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeDeflate::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeDeflate::Deflate(d) => Pin::new(d.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    fn raw_deflate(data: &[u8]) -> Vec<u8> {
        let mut c = Compress::new(Compression::default(), false);
        let mut out = Vec::with_capacity(data.len() + 1024);
        c.compress_vec(data, &mut out, FlushCompress::Sync)
            .expect("deflate");
        out
    }

    /// Inflates all of `data` (a test reading what the server sent).
    fn raw_inflate(d: &mut Decompress, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut done = 0;
        loop {
            out.reserve(64 * 1024);
            let before = d.total_in();
            d.decompress_vec(&data[done..], &mut out, FlushDecompress::None)
                .expect("inflate");
            done += (d.total_in() - before) as usize;
            if done == data.len() && out.len() < out.capacity() {
                return out;
            }
        }
    }

    /// A sync flush per burst: each burst can be inflated on its own, without waiting for more.
    #[tokio::test]
    async fn each_flush_is_a_complete_sync_flush() {
        let (server, mut client) = duplex(1 << 20);
        let mut z = Deflate::new(server);
        let mut inflate = Decompress::new(false);
        for burst in [&b"* OK first\r\n"[..], b"a1 OK second\r\n"] {
            z.write_all(burst).await.expect("write");
            z.flush().await.expect("flush");
            let mut buf = vec![0u8; 4096];
            let n = client.read(&mut buf).await.expect("read");
            assert!(buf[..n].ends_with(&[0, 0, 0xff, 0xff]), "sync flush marker");
            assert_eq!(raw_inflate(&mut inflate, &buf[..n]), burst);
        }
    }

    /// A bomb (a few KiB inflating to 64 MiB) never yields more than the read buffer per read.
    #[tokio::test]
    async fn inflated_output_is_bounded_by_the_read_buffer() {
        let bomb = raw_deflate(&vec![b'a'; 16 << 20]);
        assert!(bomb.len() < 32 * 1024, "{}", bomb.len());
        let (server, mut client) = duplex(1 << 20);
        let writer = tokio::spawn(async move {
            let _ = client.write_all(&bomb).await;
            client
        });
        let mut z = Deflate::new(server);
        let mut buf = [0u8; 1024];
        let mut total = 0usize;
        for _ in 0..100 {
            let n = z.read(&mut buf).await.expect("read");
            assert!(n > 0 && n <= buf.len());
            total += n;
        }
        assert_eq!(total, 100 * 1024);
        // Nothing was inflated beyond what the reader took.
        assert_eq!(z.inflate.total_out(), total as u64);
        drop(z);
        let _ = writer.await;
    }

    #[tokio::test]
    async fn corrupt_input_is_an_error_and_eof_is_eof() {
        let (server, mut client) = duplex(4096);
        // 0xff: BTYPE 11, reserved (RFC 1951 §3.2.3).
        client.write_all(&[0xff, 0xff, 0xff]).await.expect("write");
        let mut z = Deflate::new(server);
        let mut buf = [0u8; 64];
        let e = z.read(&mut buf).await.expect_err("corrupt");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);

        let (server, client) = duplex(4096);
        drop(client);
        let mut z = Deflate::new(server);
        assert_eq!(z.read(&mut buf).await.expect("eof"), 0);
    }

    /// Large writes of incompressible data are taken in steps (the socket pushing back) and come
    /// out whole after the flush.
    #[tokio::test]
    async fn large_write_round_trip() {
        let mut x = 0x2545_f491_u32;
        let data: Vec<u8> = (0..3_000_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let (server, mut client) = duplex(64 * 1024);
        let expected = data.clone();
        let reader = tokio::spawn(async move {
            let mut inflate = Decompress::new(false);
            let mut got = Vec::new();
            let mut buf = vec![0u8; 32 * 1024];
            while got.len() < expected.len() {
                let n = client.read(&mut buf).await.expect("read");
                assert!(n > 0, "stream ended early");
                got.extend_from_slice(&raw_inflate(&mut inflate, &buf[..n]));
            }
            assert_eq!(got, expected);
        });
        let mut z = MaybeDeflate::Plain(server).start_deflate();
        assert!(z.is_deflate());
        z.write_all(&data).await.expect("write");
        z.flush().await.expect("flush");
        reader.await.expect("reader");
    }
}
