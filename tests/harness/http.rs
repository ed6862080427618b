//! A raw HTTP/1.1 client that reports exactly what came back (status, headers as sent,
//! framing, body, trailers, whether the server closed), so tests can check etcd's wire format
//! byte for byte. No HTTP library: one would normalize exactly what is under test.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// What a server answered.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub status: u16,
    /// As sent, in arrival order.
    pub headers: Vec<(String, String)>,
    pub chunked: bool,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
    /// The server said `Connection: close`, or closed instead of answering.
    pub closed: bool,
}

impl Reply {
    /// An answer that never came: the connection dropped first.
    pub fn dropped() -> Reply {
        Reply { status: 0, headers: Vec::new(), chunked: false, body: Vec::new(), trailers: Vec::new(), closed: true }
    }

    /// A header's value; names compare case-insensitively, as HTTP's do.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One client connection.
pub struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn open(addr: impl ToSocketAddrs, read_timeout: Duration) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(read_timeout))?;
        Ok(Conn { reader: BufReader::new(stream) })
    }

    /// [`Conn::open`] with a bound on connecting too (a server that stopped accepting leaves
    /// connects waiting once its backlog is full).
    pub fn open_within(addr: SocketAddr, timeout: Duration) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        Ok(Conn { reader: BufReader::new(stream) })
    }

    pub fn write(&mut self, raw: &[u8]) -> io::Result<()> {
        self.reader.get_mut().write_all(raw)
    }

    /// Writes a request with a `Content-Length` body and the extra `headers` (each `Name: value`).
    pub fn request(&mut self, method: &str, target: &str, headers: &[&str], body: &[u8]) -> io::Result<()> {
        let mut head = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for header in headers {
            head.push_str(header);
            head.push_str("\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        self.write(&[head.as_bytes(), body].concat())
    }

    /// One line, without its line end; an error at the end of the stream.
    pub fn line(&mut self) -> io::Result<String> {
        let mut s = String::new();
        match self.reader.read_line(&mut s)? {
            0 => Err(io::ErrorKind::UnexpectedEof.into()),
            _ => Ok(s.trim_end_matches(['\r', '\n']).to_string()),
        }
    }

    /// The status line and headers of the next answer.
    pub fn read_head(&mut self) -> io::Result<Reply> {
        let status_line = self.line()?;
        let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad(&status_line))?;
        let mut reply = Reply { status, closed: false, ..Reply::dropped() };
        loop {
            let h = self.line()?;
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').ok_or_else(|| bad(&h))?;
            reply.headers.push((k.to_string(), v.trim().to_string()));
        }
        reply.chunked = reply.header("transfer-encoding") == Some("chunked");
        reply.closed = reply.header("connection") == Some("close");
        Ok(reply)
    }

    /// The next chunk of a chunked body; `None` after the last one, whose trailers go to `reply`.
    pub fn read_chunk(&mut self, reply: &mut Reply) -> io::Result<Option<Vec<u8>>> {
        let size_line = self.line()?;
        let size = size_line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| bad(&size_line))?;
        if size == 0 {
            loop {
                let t = self.line()?;
                if t.is_empty() {
                    return Ok(None);
                }
                let (k, v) = t.split_once(':').ok_or_else(|| bad(&t))?;
                reply.trailers.push((k.to_string(), v.trim().to_string()));
            }
        }
        let mut chunk = vec![0; size];
        self.reader.read_exact(&mut chunk)?;
        self.line()?;
        Ok(Some(chunk))
    }

    /// The next whole answer.
    pub fn read_reply(&mut self) -> io::Result<Reply> {
        let mut reply = self.read_head()?;
        self.read_body(&mut reply)?;
        Ok(reply)
    }

    /// The body (and any trailers) of the answer whose head is `reply`.
    pub fn read_body(&mut self, reply: &mut Reply) -> io::Result<()> {
        if reply.chunked {
            while let Some(chunk) = self.read_chunk(reply)? {
                reply.body.extend_from_slice(&chunk);
            }
        } else if let Some(len) = reply.header("content-length") {
            let len: usize = len.parse().map_err(|_| bad(len))?;
            reply.body.resize(len, 0);
            self.reader.read_exact(&mut reply.body)?;
        }
        Ok(())
    }

    /// Everything until the server closes the connection.
    pub fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest)?;
        Ok(rest)
    }
}

/// `raw` on a fresh connection, and its answer.
pub fn send(addr: SocketAddr, raw: &[u8]) -> Reply {
    let mut conn = Conn::open(addr, Duration::from_secs(10)).expect("connect");
    conn.write(raw).expect("write the request");
    conn.read_reply().expect("read the answer")
}

/// A POST on a fresh connection (`Connection: close`), and its answer.
pub fn post(addr: SocketAddr, path: &str, body: &str) -> Reply {
    let mut conn = Conn::open(addr, Duration::from_secs(10)).expect("connect");
    conn.request("POST", path, &["Connection: close"], body.as_bytes()).expect("write the request");
    conn.read_reply().expect("read the answer")
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("malformed HTTP: {what:?}"))
}
