//! A WebSocket client for the tests, as small as RFC 6455 allows: the handshake through a
//! proxy, masked frames out, unmasked frames in (at most 64 KiB each).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A WebSocket frame from the client: FIN, `opcode`, masked as RFC 6455 requires.
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x80 | opcode];
    match u16::try_from(payload.len()) {
        Ok(short) if short < 126 => frame.push(0x80 | short as u8),
        Ok(medium) => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&medium.to_be_bytes());
        }
        Err(_) => panic!("frames of at most 64 KiB"),
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Reads one unmasked server frame: (opcode, payload).
pub fn server_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).expect("frame head");
    assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
    let len = match head[1] & 0x7f {
        126 => {
            let mut n = [0u8; 2];
            stream.read_exact(&mut n).expect("length");
            usize::from(u16::from_be_bytes(n))
        }
        n => usize::from(n),
    };
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).expect("payload");
    (head[0] & 0x0f, payload)
}

/// A WebSocket opened through the proxy at `addr` to `path`: the 101 checked, frames next;
/// with the 101's head, in lower case.
pub fn websocket_to(addr: SocketAddr, path: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    // The handshake of RFC 6455 §1.3, with its example key and accept value.
    let handshake = format!(
        "GET {path} HTTP/1.1\r\nHost: app.example\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(handshake.as_bytes()).expect("handshake");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("101 head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    assert!(head.contains("upgrade: websocket"), "{head}");
    assert!(head.contains("\r\nconnection: upgrade\r\n"), "{head}");
    (stream, head)
}

/// Checks an answer from [`upgrade_with_body`] to a server that switched before it read the
/// body: a 502 with nothing of the new protocol (`new protocol`, the scripted servers' first
/// bytes after their 101); `log` is shown when it is not.
pub fn assert_switch_refused(answer: &str, log: &str) {
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}\n{log}");
    assert!(!answer.contains("new protocol"), "{answer}");
}

/// Sends `POST /feed` asking to switch to WebSocket with a body of `body` bytes to the
/// proxy at `addr`, and returns the answer's head (and whatever came with it) as text: for
/// a server that switches before it read the body.
pub fn upgrade_with_body(addr: SocketAddr, body: usize) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let head = format!(
        "POST /feed HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Content-Length: {body}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("head");
    stream.write_all(&vec![b'b'; body]).expect("body");
    let mut answer = Vec::new();
    let mut piece = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut piece) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&piece[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}
