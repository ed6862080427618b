//! Answers written as Go's net/http writes them: handler headers sorted (CORS first), then
//! `Date`, `Content-Length` or chunked (Go's 2 KiB buffer decides), a sniffed `Content-Type`,
//! `Connection`; stream messages one chunk each.

use super::*;

const CORS: [(&str, &str); 3] = [
    ("Access-Control-Allow-Headers", "accept, content-type, authorization"),
    ("Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE"),
    ("Access-Control-Allow-Origin", "*"),
];

/// The reason phrase Go's `net/http` writes for `status`.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// RFC 1123 date in GMT, as Go's `http.TimeFormat`.
fn http_date() -> String {
    let secs = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let (h, m, s) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!("{weekday}, {day:02} {} {year} {h:02}:{m:02}:{s:02} GMT", months[(month - 1) as usize])
}

fn status_line(out: &mut Vec<u8>, version: (u8, u8), status: u16) {
    let _ = write!(out, "HTTP/1.{} {} {}\r\n", version.1, status, reason(status));
}

/// Handler headers (CORS first, then the handler's), sorted by name as Go writes them.
fn sorted_headers(headers: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
    let mut all: Vec<(&'static str, String)> = CORS.iter().map(|(k, v)| (*k, v.to_string())).collect();
    all.extend(headers);
    all.sort_by(|a, b| a.0.cmp(b.0));
    all
}

pub(in crate::api) fn write_response(
    w: &mut impl Write,
    version: (u8, u8),
    response: Response,
    close: bool,
) -> io::Result<()> {
    let mut out = Vec::with_capacity(512);
    match response {
        // A body that overflows Go's response buffer goes out before Go knows its length:
        // chunked, in one chunk.
        Response::Full { status, headers, body } if body.len() > GO_CHUNK_BUFFER => {
            let chunked = Response::Chunked { status, headers, chunks: vec![body], trailers: Vec::new() };
            return write_response(w, version, chunked, close);
        }
        Response::Full { status, headers, body } => {
            let sniffed = !headers.iter().any(|(k, _)| *k == "Content-Type") && !body.is_empty();
            status_line(&mut out, version, status);
            for (k, v) in sorted_headers(headers) {
                let _ = write!(out, "{k}: {v}\r\n");
            }
            let _ = write!(out, "Date: {}\r\n", http_date());
            // A 204 has no body and, as Go writes it, no length (RFC 9110 forbids one).
            if status != 204 {
                let _ = write!(out, "Content-Length: {}\r\n", body.len());
            }
            if sniffed {
                out.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\n");
            }
            if close {
                out.extend_from_slice(b"Connection: close\r\n");
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&body);
            w.write_all(&out)?;
        }
        Response::Stream { .. } => unreachable!("streams are written by write_stream"),
        Response::Messages { status, headers, messages } => {
            // Go's gateway flushed its headers before the handler returned, so it never
            // announces `Connection: close` on a stream, even when it closes after it.
            stream_head(&mut out, version, status, headers);
            for message in &messages {
                message_chunks(&mut out, message);
            }
            out.extend_from_slice(b"0\r\n\r\n");
            w.write_all(&out)?;
        }
        Response::Chunked { status, headers, chunks, trailers } => {
            status_line(&mut out, version, status);
            for (k, v) in sorted_headers(headers) {
                let _ = write!(out, "{k}: {v}\r\n");
            }
            let _ = write!(out, "Date: {}\r\n", http_date());
            if close {
                out.extend_from_slice(b"Connection: close\r\n");
            }
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            for chunk in chunks.iter().filter(|c| !c.is_empty()) {
                let _ = write!(out, "{:x}\r\n", chunk.len());
                out.extend_from_slice(chunk);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n");
            for (k, v) in trailers {
                let _ = write!(out, "{k}: {v}\r\n");
            }
            out.extend_from_slice(b"\r\n");
            w.write_all(&out)?;
        }
    }
    w.flush()
}

/// Writes a [`Response::Stream`] until its sender is dropped, the client goes away, or the
/// server stops.
pub(in crate::api) fn write_stream(
    w: &mut io::BufWriter<crate::tls::Stream>,
    version: (u8, u8),
    status: u16,
    headers: Vec<(&'static str, String)>,
    messages: Receiver<Vec<u8>>,
    stop_rx: &Receiver<()>,
) -> io::Result<()> {
    let mut head = Some(headers);
    let hangup_check = channel::tick(HANGUP_CHECK_INTERVAL);
    loop {
        select! {
            recv(messages) -> message => match message {
                Ok(message) => {
                    let mut out = Vec::with_capacity(message.len() + 512);
                    if let Some(headers) = head.take() {
                        stream_head(&mut out, version, status, headers);
                    }
                    message_chunks(&mut out, &message);
                    w.write_all(&out)?;
                    w.flush()?;
                }
                Err(_) => {
                    if head.is_none() {
                        w.write_all(b"0\r\n\r\n")?;
                        w.flush()?;
                    }
                    return Ok(());
                }
            },
            recv(stop_rx) -> _ => return Ok(()),
            recv(hangup_check) -> _ => {
                if w.get_mut().peer_closed() {
                    return Ok(());
                }
            }
        }
    }
}

/// The status line and headers of a streamed answer. Go's gateway streams never announce
/// `Connection: close`: their headers go out before the handler returns.
fn stream_head(out: &mut Vec<u8>, version: (u8, u8), status: u16, headers: Vec<(&'static str, String)>) {
    status_line(out, version, status);
    for (k, v) in sorted_headers(headers) {
        let _ = write!(out, "{k}: {v}\r\n");
    }
    let _ = write!(out, "Date: {}\r\nTransfer-Encoding: chunked\r\n\r\n", http_date());
}

/// Go's response buffer before chunking: a write that does not fit goes out as a chunk of its own.
const GO_CHUNK_BUFFER: usize = 2048;

/// One stream message (JSON and its newline) as the chunks Go's gateway sends it in: one chunk,
/// or, when the JSON alone fills Go's 2 KiB buffer, the JSON and then the newline.
fn message_chunks(out: &mut Vec<u8>, message: &[u8]) {
    let split = message.len() > GO_CHUNK_BUFFER && message.ends_with(b"\n");
    let parts: [&[u8]; 2] = if split { [&message[..message.len() - 1], b"\n"] } else { [message, b""] };
    for part in parts.iter().filter(|p| !p.is_empty()) {
        let _ = write!(out, "{:x}\r\n", part.len());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
}

/// A `text/plain` answer like Go's `http.Error` (used for 404, 405 and malformed requests).
pub fn plain(status: u16, msg: &str) -> Response {
    Response::Full {
        status,
        headers: vec![
            ("Content-Type", "text/plain; charset=utf-8".into()),
            ("X-Content-Type-Options", "nosniff".into()),
        ],
        body: format!("{msg}\n").into_bytes(),
    }
}

pub(in crate::api) fn write_plain(
    w: &mut impl Write,
    version: (u8, u8),
    status: u16,
    msg: &str,
    close: bool,
) -> io::Result<()> {
    write_response(w, version, plain(status, msg), close)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_look_like_gos() {
        let d = http_date();
        assert!(d.ends_with(" GMT") && d.len() == 29, "{d}");
    }
}
