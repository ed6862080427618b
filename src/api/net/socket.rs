//! A client connection's socket as its event loop drives it: plain TCP, or TLS through
//! rustls's synchronous `ServerConnection`, fed what the socket has and drained of what it
//! decrypts, so the handshake and every record run on the loop's thread without blocking.
//! After the handshake the connection is chosen by its first plaintext bytes as before
//! (ALPN only steers a client that offers both versions to HTTP/1.1, see
//! [`crate::tls::CLIENT_PORT_ALPN`]).

use std::io::{self, Read, Write};

use crate::tls;

pub(super) enum Socket {
    Plain(mio::net::TcpStream),
    Tls { tcp: mio::net::TcpStream, session: Box<rustls::ServerConnection> },
}

impl Socket {
    pub(super) fn tcp(&mut self) -> &mut mio::net::TcpStream {
        match self {
            Socket::Plain(tcp) | Socket::Tls { tcp, .. } => tcp,
        }
    }

    /// The common name of the client's certificate, which rustls verified against the
    /// trusted CA during the handshake (`None` on a plain socket or without a certificate).
    pub(super) fn peer_common_name(&self) -> Option<String> {
        let Socket::Tls { session, .. } = self else { return None };
        tls::common_name(session.peer_certificates()?.first()?)
    }

    /// Whether a TLS handshake is still under way.
    pub(super) fn handshaking(&self) -> bool {
        matches!(self, Socket::Tls { session, .. } if session.is_handshaking())
    }

    /// Reads once from the socket into `scratch`, appending the plaintext to `input`; returns
    /// the socket's byte count (0: end of input), as a plain read would. A TLS record rustls
    /// refuses is an `InvalidData` error (its alert queued for [`Socket::flush`]).
    pub(super) fn read(&mut self, scratch: &mut [u8], input: &mut Vec<u8>) -> io::Result<usize> {
        let (tcp, session) = match self {
            Socket::Plain(tcp) => {
                let n = tcp.read(scratch)?;
                input.extend_from_slice(&scratch[..n]);
                return Ok(n);
            }
            Socket::Tls { tcp, session } => (tcp, session),
        };
        let n = tcp.read(scratch)?;
        let mut records = &scratch[..n];
        loop {
            // An empty slice tells rustls the socket ended.
            session.read_tls(&mut records)?;
            let state = session.process_new_packets().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            // Taken out between records: rustls refuses input while its plaintext buffer is full.
            match session.reader().read_to_end(input) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The client's socket ended without close_notify: an end of input like any other.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {}
                Err(e) => return Err(e),
            }
            // A close_notify ends the client's input as its socket's end would (what it sent
            // before is in `input`).
            if state.peer_has_closed() {
                return Ok(0);
            }
            if records.is_empty() {
                return Ok(n);
            }
        }
    }

    /// Writes what it can of `buf` (TLS: encrypts it and sends what the socket takes).
    pub(super) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (tcp, session) = match self {
            Socket::Plain(tcp) => return tcp.write(buf),
            Socket::Tls { tcp, session } => (tcp, session),
        };
        // rustls takes what fits its buffer limit (plaintext waits there for the handshake).
        let n = session.writer().write(buf)?;
        match flush_records(session, tcp) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && n > 0 => Ok(n),
            Err(e) => Err(e),
            // Nothing taken and nothing to send: the handshake holds it back. Reads move it on.
            Ok(()) if n == 0 && !buf.is_empty() => Err(io::ErrorKind::WouldBlock.into()),
            Ok(()) => Ok(n),
        }
    }

    /// Sends the TLS records still waiting (`WouldBlock` when the socket is full).
    pub(super) fn flush(&mut self) -> io::Result<()> {
        match self {
            Socket::Plain(_) => Ok(()),
            Socket::Tls { tcp, session } => flush_records(session, tcp),
        }
    }

    /// Queues TLS's close_notify for a connection we close, sending what the socket takes.
    pub(super) fn close_notify(&mut self) {
        if let Socket::Tls { tcp, session } = self {
            session.send_close_notify();
            let _ = flush_records(session, tcp);
        }
    }

    /// The socket as a blocking [`tls::Stream`], for a thread that writes a long stream.
    pub(super) fn into_blocking(self) -> io::Result<tls::Stream> {
        let to_std = |tcp: mio::net::TcpStream| std::net::TcpStream::from(std::os::fd::OwnedFd::from(tcp));
        let stream = match self {
            Socket::Plain(tcp) => tls::Stream::plain(to_std(tcp)),
            Socket::Tls { tcp, session } => tls::Stream::over(to_std(tcp), rustls::Connection::Server(*session)),
        };
        stream.tcp().set_nonblocking(false)?;
        Ok(stream)
    }
}

fn flush_records(session: &mut rustls::ServerConnection, tcp: &mut mio::net::TcpStream) -> io::Result<()> {
    while session.wants_write() {
        match session.write_tls(tcp) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
