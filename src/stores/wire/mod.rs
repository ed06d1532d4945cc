//! The protocol code the stores speak, over tokio TCP: [`http`] (etcd's
//! JSON gateway), [`resp`] (Redis and Sentinel), [`pg`] (PostgreSQL's simple
//! query protocol), the base64 and value encodings they share, and
//! [`ClientError`], the definite/indefinite split every client reports.
//!
//! Each protocol is a few dozen lines and needs no system library and no
//! protoc; every operation has a deadline, and every error says whether the
//! request could have reached the server ([`ClientError::Definite`]: nothing
//! was sent; [`ClientError::Indefinite`]: it may have been applied).

pub mod http;
pub mod pg;
pub mod resp;

use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;

use std::net::SocketAddr;

/// Why a request got no answer from the store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The request certainly did not reach the store (connect failed, or
    /// the connection failed before any byte of it was sent): `fail`.
    #[error("{0}")]
    Definite(String),
    /// The request may have reached the store: timeout, connection lost
    /// after sending, or a reply that makes no sense: `info`.
    #[error("{0}")]
    Indefinite(String),
}

pub(crate) fn definite(m: impl Into<String>) -> ClientError {
    ClientError::Definite(m.into())
}

pub(crate) fn indefinite(m: impl Into<String>) -> ClientError {
    ClientError::Indefinite(m.into())
}

/// Opens a TCP connection before `deadline` (a definite error otherwise).
pub async fn connect(addr: SocketAddr, deadline: Instant) -> Result<TcpStream, ClientError> {
    match tokio::time::timeout_at(deadline, crate::lab::client_socket::connect(addr)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => Err(definite(format!("connect {addr}: {e}"))),
        Err(_) => Err(definite(format!("connect {addr}: timeout"))),
    }
}

/// Writes all of `buf`: an error before the first byte left is definite.
pub(crate) async fn send(
    s: &mut BufReader<TcpStream>,
    buf: &[u8],
    deadline: Instant,
) -> Result<(), ClientError> {
    let mut written = 0;
    while written < buf.len() {
        match tokio::time::timeout_at(deadline, s.get_mut().write(&buf[written..])).await {
            Ok(Ok(n)) if n > 0 => written += n,
            Ok(_) if written == 0 => return Err(definite("connection failed before sending")),
            Ok(_) => return Err(indefinite("connection failed while sending")),
            Err(_) if written == 0 => return Err(definite("send: timeout")),
            Err(_) => return Err(indefinite("timeout while sending")),
        }
    }
    Ok(())
}

pub(crate) async fn read_line(
    s: &mut BufReader<TcpStream>,
    deadline: Instant,
) -> Result<String, ClientError> {
    let mut line = Vec::new();
    match tokio::time::timeout_at(deadline, s.read_until(b'\n', &mut line)).await {
        Ok(Ok(0)) => Err(indefinite("connection closed by the server")),
        Ok(Ok(_)) if line.ends_with(b"\n") => {
            while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                line.pop();
            }
            Ok(String::from_utf8_lossy(&line).into_owned())
        }
        Ok(Ok(_)) => Err(indefinite("connection closed mid-reply")),
        Ok(Err(e)) => Err(indefinite(format!("receive: {e}"))),
        Err(_) => Err(indefinite("timeout")),
    }
}

pub(crate) async fn read_exact(
    s: &mut BufReader<TcpStream>,
    n: usize,
    deadline: Instant,
) -> Result<Vec<u8>, ClientError> {
    let mut buf = vec![0u8; n];
    match tokio::time::timeout_at(deadline, s.read_exact(&mut buf)).await {
        Ok(Ok(_)) => Ok(buf),
        Ok(Err(e)) => Err(indefinite(format!("receive: {e}"))),
        Err(_) => Err(indefinite("timeout")),
    }
}

/// Standard base64, padding optional when decoding (etcd's keys and values).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Standard base64 with padding.
pub fn b64_encode(data: &[u8]) -> String {
    general_purpose::STANDARD.encode(data)
}

/// Decodes standard base64 (padding optional); None if malformed.
pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    BASE64.decode(s).ok()
}

/// The text stored for a workload value: its JSON.
pub fn encode(v: &Value) -> String {
    v.to_string()
}

/// A stored text back to JSON (text that is not JSON stays a string).
pub fn decode(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
}

/// The `[expected, new]` pair of a cas.
pub fn cas_pair(value: &Value) -> Option<(Value, Value)> {
    match value.as_array().map(|a| a.as_slice()) {
        Some([e, n]) => Some((e.clone(), n.clone())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for s in ["", "f", "fo", "foo", "foob", "fooba", "foobar", "k17"] {
            let e = b64_encode(s.as_bytes());
            assert_eq!(b64_decode(&e).as_deref(), Some(s.as_bytes()), "{s}");
        }
        assert_eq!(b64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(b64_encode(b"fo"), "Zm8=");
        assert_eq!(b64_decode("Z3c="), Some(b"gw".to_vec()));
        assert_eq!(b64_decode("Z3c"), Some(b"gw".to_vec()));
        assert_eq!(b64_decode("Z3c*"), None);
    }
}
