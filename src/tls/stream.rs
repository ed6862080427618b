//! [`Stream`]: a blocking socket, plain or TLS, for threads that block on it. Handles made
//! with [`Stream::try_clone`] share one TLS session, so one thread can read while others
//! write (the HTTP/2 client's reader thread and its callers): the session's lock is held to
//! encrypt and write, or to decrypt what was read, never while a read waits for the network.
//! Lock order for callers that hold a lock of their own around writes: theirs, then the
//! session's; a reader takes only the session's.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

/// Largest socket read fed to the session at once: one TLS record and its header.
const READ_CHUNK: usize = 16 * 1024 + 512;

pub struct Stream {
    tcp: TcpStream,
    /// The session, shared by every handle; `None` for plain TCP. Protects the TLS state:
    /// records in and out, and the plaintext decrypted and not yet read.
    tls: Option<Arc<Mutex<rustls::Connection>>>,
    /// Plaintext this handle took out of the session and has not returned yet.
    stash: Vec<u8>,
    stash_at: usize,
}

impl Stream {
    pub fn plain(tcp: TcpStream) -> Stream {
        Stream { tcp, tls: None, stash: Vec::new(), stash_at: 0 }
    }

    /// Runs the handshake of `session` on `tcp`, for a client or for a peer's connection. The
    /// socket's read timeout bounds the whole handshake, not each read: a peer trickling a
    /// byte at a time must not hold the thread for ever.
    pub fn handshake(tcp: TcpStream, mut session: rustls::Connection) -> io::Result<Stream> {
        let budget = tcp.read_timeout()?;
        let deadline = budget.map(|b| Instant::now() + b);
        let mut socket = &tcp;
        while session.is_handshaking() {
            if let Some(deadline) = deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timeout"));
                }
                tcp.set_read_timeout(Some(left))?;
            }
            // One read at a time (rustls's `complete_io` would loop to the end on its own).
            flush(&mut session, &tcp)?;
            if session.wants_read() {
                if session.read_tls(&mut socket).map_err(handshake_error)? == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed during the TLS handshake",
                    ));
                }
                if let Err(e) = session.process_new_packets() {
                    // The alert rustls queued tells the peer why.
                    let _ = flush(&mut session, &tcp);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
        }
        tcp.set_read_timeout(budget)?;
        // What the handshake's last flight left to send (a client's Finished).
        flush(&mut session, &tcp)?;
        Ok(Stream::over(tcp, session))
    }

    /// A stream over a session whose handshake is done or under way (the rest happens as it
    /// is read and written).
    pub fn over(tcp: TcpStream, session: rustls::Connection) -> Stream {
        Stream { tcp, tls: Some(Arc::new(Mutex::new(session))), stash: Vec::new(), stash_at: 0 }
    }

    /// Another handle on the same socket and session (its own read stash: only one handle
    /// should read).
    pub fn try_clone(&self) -> io::Result<Stream> {
        Ok(Stream { tcp: self.tcp.try_clone()?, tls: self.tls.clone(), stash: Vec::new(), stash_at: 0 })
    }

    /// The socket, for timeouts and shutdown.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The peer's leaf certificate (DER), once a TLS handshake showed one.
    pub fn peer_certificate(&self) -> Option<Vec<u8>> {
        let session = self.tls.as_ref()?.lock();
        session.peer_certificates()?.first().map(|cert| cert.to_vec())
    }

    /// Whether the peer has closed its side or sent something unasked, looked at without
    /// blocking: for a kept-alive connection before reuse, and a stream that only writes.
    /// TLS records that carry no data (session tickets) are taken in on the way.
    pub fn peer_closed_or_spoke(&mut self) -> bool {
        if self.stash_at < self.stash.len() {
            return true;
        }
        if self.tcp.set_nonblocking(true).is_err() {
            return true;
        }
        let mut byte = [0u8; 1];
        let outcome = match self.read(&mut byte) {
            Ok(n) => {
                if n == 1 {
                    // Given back: the next read returns it first.
                    self.stash = vec![byte[0]];
                    self.stash_at = 0;
                }
                true
            }
            Err(e) => e.kind() != io::ErrorKind::WouldBlock,
        };
        let _ = self.tcp.set_nonblocking(false);
        outcome
    }

    /// Whether the peer has closed its side (or the connection failed), looked at without
    /// blocking, for a thread that only writes. What the peer sent meanwhile is read and
    /// dropped over TLS (a close_notify can only be seen behind it); plain sockets are peeked.
    pub fn peer_closed(&mut self) -> bool {
        if self.tls.is_none() {
            if self.tcp.set_nonblocking(true).is_err() {
                return true;
            }
            let closed = match self.tcp.peek(&mut [0u8; 1]) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) => e.kind() != io::ErrorKind::WouldBlock,
            };
            let _ = self.tcp.set_nonblocking(false);
            return closed;
        }
        if self.tcp.set_nonblocking(true).is_err() {
            return true;
        }
        let mut sink = [0u8; 4096];
        // Bounded: a client sending without pause is looked at again at the next check.
        let mut closed = false;
        for _ in 0..16 {
            match self.read(&mut sink) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    closed = e.kind() != io::ErrorKind::WouldBlock;
                    break;
                }
            }
        }
        let _ = self.tcp.set_nonblocking(false);
        closed
    }

    /// Sends TLS's close_notify (best effort) and shuts the socket down both ways.
    pub fn close(&self) {
        if let Some(tls) = &self.tls {
            let mut session = tls.lock();
            session.send_close_notify();
            let _ = flush(&mut session, &self.tcp);
        }
        let _ = self.tcp.shutdown(Shutdown::Both);
    }

    fn read_tls(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let tls = self.tls.clone().expect("called for TLS streams");
        let mut chunk = [0u8; READ_CHUNK];
        loop {
            if self.stash_at < self.stash.len() {
                let n = buf.len().min(self.stash.len() - self.stash_at);
                buf[..n].copy_from_slice(&self.stash[self.stash_at..self.stash_at + n]);
                self.stash_at += n;
                return Ok(n);
            }
            self.stash.clear();
            self.stash_at = 0;
            {
                let mut session = tls.lock();
                match session.reader().read_to_end(&mut self.stash) {
                    // A clean close (close_notify) with nothing left.
                    Ok(_) if self.stash.is_empty() => return Ok(0),
                    Ok(_) => continue,
                    // Data before the error is returned first; the error comes again after.
                    Err(_) if !self.stash.is_empty() => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            // Waits for the network without the lock; a timeout loses nothing (rustls keeps
            // a partial record until the rest comes).
            let n = (&self.tcp).read(&mut chunk)?;
            let mut session = tls.lock();
            let mut input = &chunk[..n];
            loop {
                session.read_tls(&mut input)?;
                let processed = session.process_new_packets();
                // Alerts and handshake answers go out even when the input was refused.
                let flushed = flush(&mut session, &self.tcp);
                processed.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                flushed?;
                // Taken out as it comes: rustls refuses input while its plaintext buffer is full.
                match session.reader().read_to_end(&mut self.stash) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if self.stash.is_empty() => return Err(e),
                    Err(_) => {}
                }
                if input.is_empty() {
                    break;
                }
            }
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.tls.is_none() {
            if self.stash_at < self.stash.len() {
                let n = buf.len().min(self.stash.len() - self.stash_at);
                buf[..n].copy_from_slice(&self.stash[self.stash_at..self.stash_at + n]);
                self.stash_at += n;
                return Ok(n);
            }
            return (&self.tcp).read(buf);
        }
        self.read_tls(buf)
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writing through a shared handle, as `&TcpStream` allows: each write is encrypted and on
/// the socket before it returns.
impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(tls) = &self.tls else { return (&self.tcp).write(buf) };
        let mut session = tls.lock();
        let mut written = 0;
        while written < buf.len() {
            // rustls takes what fits its buffer limit; the rest after the flush.
            written += session.writer().write(&buf[written..])?;
            flush(&mut session, &self.tcp)?;
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes every record the session has to send.
fn flush(session: &mut rustls::Connection, tcp: &TcpStream) -> io::Result<()> {
    let mut socket = tcp;
    while session.wants_write() {
        session.write_tls(&mut socket)?;
    }
    Ok(())
}

fn handshake_error(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timeout")
        }
        _ => e,
    }
}
