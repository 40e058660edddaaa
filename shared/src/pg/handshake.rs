//! Connection failures told as libpq tells them. tokio-postgres reports a server that
//! answers the opening of the protocol with something else (an HTTP server, a proxy, the
//! wrong port) as "bytes remaining on stream" or "server does not support TLS", and a server
//! that wants a password none was given for as "password missing". This module owns the
//! plain-words version: a second look at the server (one SSLRequest, its one-byte answer)
//! decides whether it speaks PostgreSQL at all.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The SSLRequest message: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// `message` (tokio-postgres's description of a failed connect to `host:port`) in libpq's
/// words where they differ, with what to do.
pub async fn explain(message: String, host: Option<&str>, port: u16) -> String {
    if message.contains("password missing") {
        return "the server asks for a password and none was given (libpq: no password \
                supplied); give it in the URL, PGPASSWORD, the password file (~/.pgpass or \
                PGPASSFILE, mode 0600) or a service (PGSERVICE)"
            .into();
    }
    let protocol_doubt = message.contains("bytes remaining on stream")
        || message.contains("server does not support TLS")
        || message.contains("unexpected message from server")
        || message.contains("Connection reset by peer");
    let Some(host) = host.filter(|_| protocol_doubt) else {
        return message;
    };
    match first_answer(host, port).await {
        Some(Answer::Byte(b'S' | b'N')) | None => message,
        Some(Answer::Byte(b)) => format!(
            "received invalid response to SSL negotiation: {:?} (libpq's words): the server \
             at {host}:{port} does not speak the PostgreSQL protocol; check the host and port",
            char::from(b)
        ),
        Some(Answer::Closed) => format!(
            "the server at {host}:{port} closed the connection without a PostgreSQL answer \
             (libpq: server closed the connection unexpectedly); check the host and port"
        ),
    }
}

enum Answer {
    Byte(u8),
    Closed,
}

/// The first byte a server answers an SSLRequest with; `None` when it cannot be asked.
async fn first_answer(host: &str, port: u16) -> Option<Answer> {
    let ask = async {
        let mut s = tokio::net::TcpStream::connect((host, port)).await.ok()?;
        s.write_all(&SSL_REQUEST).await.ok()?;
        let mut b = [0u8; 1];
        Some(match s.read(&mut b).await {
            Ok(1) => Answer::Byte(b[0]),
            _ => Answer::Closed,
        })
    };
    tokio::time::timeout(Duration::from_secs(5), ask)
        .await
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A local server that answers whatever it is sent with an HTTP error; its port.
    async fn http_server() -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = l.accept().await {
                let mut buf = [0u8; 8];
                let _ = c.read(&mut buf).await;
                let _ = c.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        port
    }

    #[tokio::test]
    async fn a_server_that_answers_http_is_named_as_not_postgres() {
        let port = http_server().await;
        let m = explain(
            "error communicating with the server: bytes remaining on stream".into(),
            Some("127.0.0.1"),
            port,
        )
        .await;
        assert!(
            m.contains("invalid response to SSL negotiation: 'H'"),
            "{m}"
        );
        assert!(m.contains(&format!("127.0.0.1:{port}")), "{m}");
    }

    #[tokio::test]
    async fn a_failure_that_casts_no_doubt_on_the_protocol_stays_as_it_was() {
        // Even at a server that does not speak PostgreSQL: the message is not the handshake's.
        let port = http_server().await;
        let refused = "error connecting to server: Connection refused".to_string();
        assert_eq!(
            explain(refused.clone(), Some("127.0.0.1"), port).await,
            refused
        );
    }

    #[tokio::test]
    async fn a_missing_password_points_at_where_libpq_would_find_one() {
        let m = explain("invalid configuration: password missing".into(), None, 1).await;
        assert!(m.contains("PGPASSFILE") && m.contains("PGPASSWORD"), "{m}");
    }
}
