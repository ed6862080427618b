//! The incremental HTTP/1.1 request parser: heads through `httparse`, bodies by
//! `Content-Length` or chunked, `Expect: 100-continue`, with bounds on every size.

use super::*;

pub(in crate::api) struct Head {
    pub(in crate::api) method: String,
    pub(in crate::api) path: String,
    pub(in crate::api) query: String,
    pub(in crate::api) version: (u8, u8),
    /// Bytes of the head, blank lines before it included.
    pub(in crate::api) len: usize,
    pub(in crate::api) content_length: usize,
    pub(in crate::api) chunked: bool,
    pub(in crate::api) close: bool,
    /// The client asked to close: Go then says `Connection: close` in its answer.
    pub(in crate::api) echo_close: bool,
    pub(in crate::api) expect_continue: bool,
    /// The `Authorization` header, which etcd's gateway passes on as the auth token.
    pub(in crate::api) authorization: Option<String>,
    /// `100 Continue` was sent for this request.
    pub(in crate::api) continued: bool,
}

pub(in crate::api) enum Parsed {
    /// More bytes are needed; first send `100 Continue` if the client waits for it.
    Incomplete { continue_wanted: bool },
    /// Malformed: answer with this and close.
    Bad { version: (u8, u8), status: u16, msg: &'static str },
    /// A whole request, `len` bytes of the input.
    Complete { head: Head, body: Vec<u8>, len: usize },
}

/// What parsing a byte stream into requests gives, for the fuzz target: each request's path
/// and body length, then how the input ended (`Ok` = waiting for more, `Err` = refused).
#[doc(hidden)]
pub fn parse_stream(mut input: &[u8]) -> (Vec<(String, usize)>, std::result::Result<(), u16>) {
    let mut requests = Vec::new();
    let mut head = None;
    loop {
        match parse(input, &mut head) {
            Parsed::Complete { head, body, len } => {
                assert!(len > 0 && len <= input.len(), "a request consumes what it parsed");
                requests.push((head.path, body.len()));
                input = &input[len..];
            }
            Parsed::Incomplete { .. } => return (requests, Ok(())),
            Parsed::Bad { status, .. } => return (requests, Err(status)),
        }
    }
}

/// Parses the request at the start of `input`; `head` keeps the parsed head between calls
/// while the body arrives.
pub(in crate::api) fn parse(input: &[u8], head: &mut Option<Head>) -> Parsed {
    if head.is_none() {
        match parse_head(input) {
            Ok(Some(parsed)) => *head = Some(parsed),
            Ok(None) => return Parsed::Incomplete { continue_wanted: false },
            Err((status, msg)) => return Parsed::Bad { version: (1, 1), status, msg },
        }
    }
    let Some(h) = head.as_mut() else { return Parsed::Incomplete { continue_wanted: false } };
    let body = match parse_body(&input[h.len..], h) {
        Ok(Some(body)) => body,
        Ok(None) => {
            let continue_wanted = h.expect_continue && !h.continued;
            h.continued = true;
            return Parsed::Incomplete { continue_wanted };
        }
        Err((status, msg)) => return Parsed::Bad { version: h.version, status, msg },
    };
    let Some(h) = head.take() else { return Parsed::Incomplete { continue_wanted: false } };
    let len = h.len + body.1;
    Parsed::Complete { head: h, body: body.0, len }
}

type BadRequest = (u16, &'static str);

/// The head at the start of `input`, `None` if it is not all there yet.
fn parse_head(input: &[u8]) -> std::result::Result<Option<Head>, BadRequest> {
    // Tolerate blank lines before the request line, as Go does.
    let skip = input.iter().take_while(|b| **b == b'\r' || **b == b'\n').count();
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(&input[skip..]) {
        Ok(httparse::Status::Complete(len)) if len <= HEAD_MAX => skip + len,
        Ok(httparse::Status::Partial) if input.len() - skip <= HEAD_MAX => return Ok(None),
        Ok(_) => return Err((431, "Request Header Fields Too Large")),
        Err(_) => return Err((400, "Bad Request")),
    };
    let version = (1, req.version.unwrap_or(1));
    let target = req.path.unwrap_or("/");
    let mut head = Head {
        method: req.method.unwrap_or("GET").to_string(),
        path: target.split('?').next().unwrap_or("/").to_string(),
        query: target.split_once('?').map_or(String::new(), |(_, q)| q.to_string()),
        version,
        len,
        content_length: 0,
        chunked: false,
        // HTTP/1.0 closes unless asked not to; HTTP/1.1 keeps alive unless asked to close.
        close: version.1 == 0,
        echo_close: false,
        expect_continue: false,
        authorization: None,
        continued: false,
    };
    for h in req.headers.iter() {
        let value = String::from_utf8_lossy(h.value);
        let value = value.trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            head.content_length = value.parse().map_err(|_| (400, "Bad Request: bad Content-Length"))?;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.eq_ignore_ascii_case("chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case("close") {
                head.close = true;
                head.echo_close = version.1 == 1;
            } else if value.eq_ignore_ascii_case("keep-alive") {
                head.close = false;
            }
        } else if h.name.eq_ignore_ascii_case("authorization") {
            // grpc-gateway forwards it as the `authorization` metadata, untrimmed and the
            // first one only.
            if head.authorization.is_none() {
                head.authorization = Some(String::from_utf8_lossy(h.value).into_owned());
            }
        } else if h.name.eq_ignore_ascii_case("expect") {
            head.expect_continue = value.eq_ignore_ascii_case("100-continue");
        }
    }
    Ok(Some(head))
}

/// The body at the start of `input` and the bytes it took, `None` if it is not all there yet.
fn parse_body(input: &[u8], head: &Head) -> std::result::Result<Option<(Vec<u8>, usize)>, BadRequest> {
    const TOO_LARGE: BadRequest = (413, "Request Entity Too Large");
    if !head.chunked {
        if head.content_length > BODY_MAX {
            return Err(TOO_LARGE);
        }
        return Ok(input.get(..head.content_length).map(|body| (body.to_vec(), head.content_length)));
    }
    // Find every chunk first; copy them out only once the whole body is here.
    let mut chunks = Vec::new();
    let mut size_total = 0;
    let mut at = 0;
    loop {
        let (taken, size) = match httparse::parse_chunk_size(&input[at..]) {
            Ok(httparse::Status::Complete((taken, size))) => (taken, size as usize),
            Ok(httparse::Status::Partial) if input.len() - at <= HEAD_MAX => return Ok(None),
            _ => return Err((400, "Bad Request: bad chunk size")),
        };
        at += taken;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                let Some(end) = input[at..].iter().position(|b| *b == b'\n') else {
                    return if input.len() - at <= HEAD_MAX { Ok(None) } else { Err((400, "Bad Request")) };
                };
                let line = &input[at..at + end];
                at += end + 1;
                if line.iter().all(|b| b.is_ascii_whitespace()) {
                    let mut body = Vec::with_capacity(size_total);
                    for (start, len) in chunks {
                        body.extend_from_slice(&input[start..start + len]);
                    }
                    return Ok(Some((body, at)));
                }
            }
        }
        size_total = size_total.saturating_add(size);
        if size_total > BODY_MAX {
            return Err(TOO_LARGE);
        }
        if input.len() < at + size {
            return Ok(None);
        }
        chunks.push((at, size));
        at += size;
        // The line break after the chunk's data.
        let Some(end) = input[at..].iter().position(|b| *b == b'\n') else { return Ok(None) };
        at += end + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses the requests in `input` the way a connection does, given it `step` bytes at a time.
    fn requests_arriving_in_steps(input: &[u8], step: usize) -> Vec<(String, Vec<u8>, bool)> {
        let (mut buffered, mut head, mut requests, mut continues) = (Vec::new(), None, Vec::new(), 0);
        for piece in input.chunks(step) {
            buffered.extend_from_slice(piece);
            loop {
                match parse(&buffered, &mut head) {
                    Parsed::Complete { head, body, len } => {
                        buffered.drain(..len);
                        requests.push((head.path, body, head.close));
                    }
                    Parsed::Incomplete { continue_wanted } => {
                        continues += usize::from(continue_wanted);
                        break;
                    }
                    Parsed::Bad { status, msg, .. } => panic!("{status} {msg}"),
                }
            }
        }
        assert!(buffered.is_empty(), "{buffered:?}");
        // `100 Continue` once, while the body is awaited; not at all if it came with the head.
        assert_eq!(continues, usize::from(step < input.len()), "step {step}");
        requests
    }

    #[test]
    fn requests_split_anywhere_parse_the_same() {
        let input = b"\r\nPOST /a?x=1 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\
            POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n\
            3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nTrailer: t\r\n\r\n\
            GET /c HTTP/1.0\r\n\r\n";
        let expected = vec![
            ("/a".to_string(), b"hello".to_vec(), false),
            ("/b".to_string(), b"abcde".to_vec(), false),
            ("/c".to_string(), Vec::new(), true),
        ];
        for step in [1, 2, 3, 7, 16, input.len()] {
            assert_eq!(requests_arriving_in_steps(input, step), expected, "step {step}");
        }
    }

    #[test]
    fn malformed_or_oversize_requests_are_refused() {
        let refused = |input: &[u8]| match parse(input, &mut None) {
            Parsed::Bad { status, .. } => status,
            _ => 0,
        };
        assert_eq!(refused(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n"), 400);
        assert_eq!(refused(b"\x01\x02 / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(refused(format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", BODY_MAX + 1).as_bytes()), 413);
        assert_eq!(refused(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), 400);
        let mut huge = b"GET / HTTP/1.1\r\nX: ".to_vec();
        huge.resize(HEAD_MAX + 10, b'a');
        assert_eq!(refused(&huge), 431);
    }

    #[test]
    fn the_fuzz_corpus_parses() {
        let parsed: usize = crate::jsonpb::tests::corpus("http1").iter().map(|input| parse_stream(input).0.len()).sum();
        assert!(parsed > 0, "some corpus input is a whole request");
    }
}
