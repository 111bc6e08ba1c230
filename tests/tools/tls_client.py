"""A TLS client on Python's ssl module (OpenSSL), for ringway's end-to-end tests.

The Rust tests drive it; it never decides anything, it reports what happened as JSON lines on
stdout.

  tls_client.py hello [options]
      Prints the ClientHello this client would send, in hex, one line. It is made in memory
      (MemoryBIO): no socket is opened.

  tls_client.py resume --connect HOST:PORT [--pause SECONDS] [options]
      Makes two connections, the second resuming the first's session (--pause seconds
      later), each sending `GET / HTTP/1.1` with `Connection: close` and reading the answer
      to its end; prints
        {"ok": true, "version": ..., "reused": [false, true], "status": ["HTTP/1.1 200 OK", ...]}
      A connection the server ends instead has reused and version null and the status
      "failed: REASON".

  tls_client.py close-with-junk --connect HOST:PORT [--junk N] [options]
      Does a TLS handshake over a memory BIO, then writes, in one TCP write, the client's
      last handshake flight, a close_notify and N bytes (default 5000) that are not TLS at
      all. Waits for the server to close the socket (--timeout) and prints
        {"ok": true, "sent": BYTES, "closed": true or false}

  tls_client.py records --connect HOST:PORT --path PATH [options]
      Does a TLS handshake over a memory BIO, sends `GET PATH HTTP/1.1` with
      `Connection: close`, and reads the raw TCP stream to its end, decrypting it too; prints
        {"ok": true, "status": "HTTP/1.1 200 OK", "body": BYTES,
         "records": [LENGTH, ...]}
      with the length of each application-data record the server sent (after the
      handshake: the ciphertext, which for TLS 1.3 is the plaintext, its content type byte
      and the 16-byte AEAD tag).

  tls_client.py upload --connect HOST:PORT --size N --piece P --count C [options]
      On one connection, C times: `POST /echo` with an N-byte body (byte i = i % 251) sent
      as ssl writes of P bytes each (one TLS record per write), then reads the answer. Prints
        {"ok": true, "answers": ["<status line> <body>", ...]}
      or {"ok": false, "error": "...", "answers": [what came before]} when the session ends.

  tls_client.py bridge --connect HOST:PORT [options]
      Does a TLS handshake with HOST:PORT, then prints one line:
        {"ok": true, "version": "TLSv1.3", "cipher": ..., "alpn": ... or null,
         "cert": "<the server's certificate, DER, hex>", "port": P}
      or, when the handshake fails, {"ok": false, "error": "...", "reason": "..."} and exits 0.
      Then it accepts one plain TCP connection on 127.0.0.1:P and relays between it and the
      TLS session: each chunk read from the plain side goes to the session as one ssl write
      (one TLS record up to 16 KiB), and what the session reads goes back. It prints
        {"event": "write", "size": N}     for each ssl write, before it is made,
        {"event": "raw", "size": N}       for each raw write (below), once it is made,
        {"event": "tls_closed", "error": "..." or null, "reason": ...}
                                          when the server ends the session (null: a clean end,
                                          close_notify; a TCP close without it is an error)
      One command is read on stdin, a line each:
        raw HEX    write these bytes straight on the TCP socket under the session, bypassing
                   ssl (a forged or corrupt record)
      It exits when either side closes, or after --lifetime seconds whatever happens.

Options:
  --cafile PEM           verify the server's chain with this CA (else no verification)
  --server-name NAME     send this SNI and, with --cafile, check the certificate is for it
                         (omitted: no SNI and no name check)
  --no-check-hostname    send the SNI but do not check the name (the chain still is)
  --tls-min, --tls-max   1.0, 1.1, 1.2 or 1.3
  --ciphers STRING       OpenSSL cipher string for TLS 1.2 and below
  --alpn LIST            comma-separated ALPN protocols to offer
  --timeout SECONDS      connect, handshake and write timeout (default 10)
  --lifetime SECONDS     the bridge's whole life (default 60)
"""

import argparse
import json
import os
import select
import socket
import ssl
import sys
import time

VERSIONS = {
    "1.0": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}


def emit(obj):
    print(json.dumps(obj), flush=True)


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "mode", choices=["hello", "resume", "close-with-junk", "records", "upload", "bridge"])
    parser.add_argument("--connect")
    parser.add_argument("--cafile")
    parser.add_argument("--server-name")
    parser.add_argument("--no-check-hostname", action="store_true")
    parser.add_argument("--tls-min", choices=sorted(VERSIONS))
    parser.add_argument("--tls-max", choices=sorted(VERSIONS))
    parser.add_argument("--ciphers")
    parser.add_argument("--alpn")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--lifetime", type=float, default=60.0)
    parser.add_argument("--junk", type=int, default=5000)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--piece", type=int, default=10_000)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--path", default="/")
    parser.add_argument("--pause", type=float, default=0.0)
    return parser.parse_args()


def context(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if args.cafile:
        ctx.load_verify_locations(args.cafile)
        ctx.check_hostname = args.server_name is not None and not args.no_check_hostname
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if args.ciphers:
        ctx.set_ciphers(args.ciphers)
    if args.tls_min:
        ctx.minimum_version = VERSIONS[args.tls_min]
    if args.tls_max:
        ctx.maximum_version = VERSIONS[args.tls_max]
    if args.alpn:
        ctx.set_alpn_protocols(args.alpn.split(","))
    if args.cert:
        ctx.load_cert_chain(args.cert, args.key)
    return ctx


def failure(err):
    reason = getattr(err, "reason", None) or type(err).__name__
    return {"error": str(err), "reason": reason}


def hello(args):
    ctx = context(args)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    session = ctx.wrap_bio(incoming, outgoing, server_hostname=args.server_name)
    try:
        session.do_handshake()
    except ssl.SSLWantReadError:
        pass
    print(outgoing.read().hex(), flush=True)


def handshake_in_memory(args):
    """A TLS handshake over memory BIOs on a socket to --connect: (session, incoming,
    outgoing, socket), the client's last flight still in outgoing; None (reported) if the
    server closed first."""
    host, port = args.connect.rsplit(":", 1)
    ctx = context(args)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    session = ctx.wrap_bio(incoming, outgoing, server_hostname=args.server_name)
    raw = socket.create_connection((host, int(port)), timeout=args.timeout)
    while True:
        try:
            session.do_handshake()
            return session, incoming, outgoing, raw
        except ssl.SSLWantReadError:
            if outgoing.pending:
                raw.sendall(outgoing.read())
            data = raw.recv(65536)
            if not data:
                emit({"ok": False, "error": "closed during the handshake"})
                return None
            incoming.write(data)


def close_with_junk(args):
    done = handshake_in_memory(args)
    if done is None:
        return
    session, _, outgoing, raw = done
    try:
        session.unwrap()
    except ssl.SSLWantReadError:
        pass
    flight = outgoing.read() + b"\x17" * args.junk
    raw.sendall(flight)
    # The server ends the connection with a FIN or, as bytes stay unread, a reset.
    try:
        while raw.recv(65536):
            pass
        closed = True
    except ConnectionResetError:
        closed = True
    except socket.timeout:
        closed = False
    emit({"ok": True, "sent": len(flight), "closed": closed})


def records(args):
    done = handshake_in_memory(args)
    if done is None:
        return
    session, incoming, outgoing, raw = done
    host = args.server_name or args.connect.rsplit(":", 1)[0]
    request = "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n".format(
        args.path, host)
    # The client's Finished goes with the request: whatever the server sends after it
    # (tickets, the answer) starts on a record boundary of what is read from here.
    session.write(request.encode())
    raw.sendall(outgoing.read())
    stream, plain = b"", b""
    while True:
        data = raw.recv(65536)
        if not data:
            break
        stream += data
        incoming.write(data)
        while True:
            try:
                chunk = session.read(65536)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                break
            if not chunk:
                break
            plain += chunk
    # Record headers: type (23: application data), version, length. Under TLS 1.3 the
    # server's session tickets come as (small) application-data records too.
    lengths, at = [], 0
    while at + 5 <= len(stream):
        kind, length = stream[at], int.from_bytes(stream[at + 3:at + 5], "big")
        if kind == 23:
            lengths.append(length)
        at += 5 + length
    head, _, body = plain.partition(b"\r\n\r\n")
    emit({"ok": True, "status": head.split(b"\r\n")[0].decode("latin-1"),
          "body": len(body), "records": lengths})


def read_answer(tls):
    """One HTTP/1.1 answer with a Content-Length: (status line, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = tls.recv(65536)
        if not more:
            raise ConnectionError("closed before an answer")
        data += more
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(body) < length:
        more = tls.recv(65536)
        if not more:
            raise ConnectionError("closed in the answer's body")
        body += more
    return lines[0], body[:length]


def upload(args):
    host, port = args.connect.rsplit(":", 1)
    ctx = context(args)
    raw = socket.create_connection((host, int(port)), timeout=args.timeout)
    answers = []
    body = bytes(i % 251 for i in range(args.size))
    with ctx.wrap_socket(raw, server_hostname=args.server_name) as tls:
        name = args.server_name or host
        try:
            for _ in range(args.count):
                tls.sendall(b"POST /echo HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n"
                            % (name.encode(), len(body)))
                for at in range(0, len(body), args.piece):
                    tls.sendall(body[at:at + args.piece])
                status, answer = read_answer(tls)
                answers.append(status + " " + answer.decode("latin-1"))
        except (OSError, ConnectionError) as err:
            emit({"ok": False, "error": str(err), "answers": answers})
            return
    emit({"ok": True, "answers": answers})


def resume(args):
    host, port = args.connect.rsplit(":", 1)
    ctx = context(args)
    session, reused, status, versions = None, [], [], []
    for attempt in range(2):
        if attempt:
            time.sleep(args.pause)
        raw = socket.create_connection((host, int(port)), timeout=args.timeout)
        try:
            with ctx.wrap_socket(raw, server_hostname=args.server_name, session=session,
                                 suppress_ragged_eofs=False) as tls:
                name = args.server_name or host
                tls.sendall(b"GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                            % name.encode())
                answer = b""
                while True:
                    data = tls.recv(65536)
                    if not data:
                        break
                    answer += data
                # A TLS 1.3 ticket arrives after the handshake: the reads above took it in.
                session = tls.session
                reused.append(tls.session_reused)
                versions.append(tls.version())
                status.append(answer.split(b"\r\n", 1)[0].decode("latin-1"))
        except (ssl.SSLError, OSError) as err:
            # The server ended the connection: what the client saw instead of an answer.
            reused.append(None)
            versions.append(None)
            status.append("failed: " + failure(err)["reason"])
    emit({"ok": True, "version": versions, "reused": reused, "status": status})


def bridge(args):
    deadline = time.monotonic() + args.lifetime
    host, port = args.connect.rsplit(":", 1)
    ctx = context(args)
    raw = socket.create_connection((host, int(port)), timeout=args.timeout)
    try:
        # A TCP close without close_notify is reported, not taken for a clean end.
        tls = ctx.wrap_socket(raw, server_hostname=args.server_name, suppress_ragged_eofs=False)
    except (ssl.SSLError, OSError) as err:
        emit(dict(ok=False, **failure(err)))
        return
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    emit({
        "ok": True,
        "version": tls.version(),
        "cipher": tls.cipher()[0],
        "alpn": tls.selected_alpn_protocol(),
        "cert": tls.getpeercert(binary_form=True).hex(),
        "port": listener.getsockname()[1],
    })
    listener.settimeout(max(0.1, deadline - time.monotonic()))
    try:
        plain, _ = listener.accept()
    except OSError:
        return
    listener.close()
    plain.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    relay(tls, plain, args, deadline)
    plain.close()
    tls.close()


def relay(tls, plain, args, deadline):
    stdin_open = True
    pending_stdin = b""
    while time.monotonic() < deadline:
        watch = [plain, tls] + ([sys.stdin] if stdin_open else [])
        # Bytes ssl already decrypted do not wake select: take them first.
        ready = [tls] if tls.pending() else select.select(watch, [], [], 0.2)[0]
        if plain in ready:
            data = plain.recv(65536)
            if not data:
                return
            emit({"event": "write", "size": len(data)})
            tls.settimeout(args.timeout)
            tls.sendall(data)
        if tls in ready:
            # A short timeout: what woke select may be a record ssl handles itself (a session
            # ticket) with no application data behind it.
            tls.settimeout(0.05)
            try:
                data = tls.recv(65536)
            except (TimeoutError, ssl.SSLWantReadError):
                continue
            except (ssl.SSLError, OSError) as err:
                emit(dict(event="tls_closed", **failure(err)))
                return
            if not data:
                emit({"event": "tls_closed", "error": None, "reason": None})
                return
            plain.sendall(data)
        if sys.stdin in ready:
            chunk = os.read(sys.stdin.fileno(), 65536)
            if not chunk:
                stdin_open = False
                continue
            pending_stdin += chunk
            while b"\n" in pending_stdin:
                line, pending_stdin = pending_stdin.split(b"\n", 1)
                command, _, argument = line.decode().strip().partition(" ")
                if command == "raw":
                    data = bytes.fromhex(argument)
                    os.write(tls.fileno(), data)
                    emit({"event": "raw", "size": len(data)})


def main():
    args = parse_args()
    if args.mode != "hello" and not args.connect:
        sys.exit(args.mode + " needs --connect HOST:PORT")
    if args.mode == "hello":
        hello(args)
    elif args.mode == "resume":
        resume(args)
    elif args.mode == "close-with-junk":
        close_with_junk(args)
    elif args.mode == "records":
        records(args)
    elif args.mode == "upload":
        upload(args)
    else:
        bridge(args)


if __name__ == "__main__":
    main()
