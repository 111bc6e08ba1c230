"""A hostile HTTP/2 client on the h2 library (hyper-h2), for ringway's end-to-end tests.

The Rust tests drive it; it never decides anything, it reports what happened as one JSON
object on stdout. Every scenario connects with TLS (ALPN h2 only, no certificate check) to
--connect HOST:PORT, sends --authority as :authority, and gives up after --timeout seconds.

  h2_client.py stalled-reader --path P
      Says its window is 0 (SETTINGS_INITIAL_WINDOW_SIZE) and asks for P: the server may
      send the head but no DATA. Reports what the stream got and when it ended:
        {"ok": true, "status": 200, "data": 0, "reset": "CANCEL" or null,
         "ended_after": SECONDS, "goaway": null or "...",
         "second": {"status": 200, "data": N}}
      `second` is a request for --second-path on the same connection, with the window
      opened, after the first stream ended.

  h2_client.py reset-upload --path P --size N --sent M [--pause S] [--drop]
      Starts a POST of P with content-length N, sends M bytes of it, waits S seconds (0 by
      default), resets the stream (CANCEL), then asks GET --second-path on the same
      connection:
        {"ok": true, "second": {"status": 200, "data": N}}
      With --drop, closes the connection instead of the reset: {"ok": true, "sent": M}

  h2_client.py reset-waiting --path P --wait S [--streams N]
      Asks GET P (on N streams at once, 1 by default), resets the streams (CANCEL) S seconds
      later with no answer yet, then asks GET --second-path on the same connection:
        {"ok": true, "early": null or {"status": N}, "second": {"status": 200, "data": N}}
      (early: an answer that came before the reset, which the scenario did not mean.)

  h2_client.py swap-at-limit --path P --streams N --wait S
      Asks GET P on N streams at once, reads for S seconds, then resets the first stream
      (CANCEL) and asks GET --second-path in the same write, and follows that stream:
        {"ok": true, "early": N, "second": {"status": N or null, "data": N,
         "reset": null or "...", "ended": true or false}}
      (early: the first streams answered or reset before the reset, which the scenario did
      not mean.)

  h2_client.py rapid-reset --path P --count C [--batch B]
      Opens C streams (GET P), each reset (CANCEL) right after its HEADERS, in batches
      of B (100) per write, then waits for the connection to end or --timeout:
        {"ok": true, "sent": C, "goaway": "ENHANCE_YOUR_CALM" or ... or null,
         "closed": true or false, "answers": N}

  h2_client.py windows --path P
      Asks GET P, then says the server's receive windows, a stream's and the connection's:
        {"ok": true, "answer": {...}, "stream": N, "connection": N}

  h2_client.py priority-flood --count C
      Sends C PRIORITY frames (in batches of 1000 per write) and no request, then waits for
      the connection to end or --timeout:
        {"ok": true, "sent": N, "closed": true or false, ...}

  h2_client.py no-path [--no-authority]
      Asks GET with :method, :scheme and :authority (a host field with its value instead
      with --no-authority), but no :path (which RFC 9113 8.3.1 requires), then asks GET --second-path on the same connection:
        {"ok": true, "first": {"status": null or N, "reset": "PROTOCOL_ERROR" or ...},
         "second": {"status": 200, "data": N}, "goaway": null or "..."}

  h2_client.py across-reload --path P --cert C --key K
      Asks for P with client certificate C, prints "ready", waits (at most --timeout) for
      a line on stdin, then asks for P again on the same connection:
        {"ok": true, "first": {"status": 200, "data": N}, "second": {...},
         "goaway": null or "...", "closed": true or false}

  h2_client.py trickled-upload --path P --size N --pause S
      POSTs P with content-length N, then sends one byte of it every S seconds (as raw
      DATA frames, whatever the server answers) until the server closes the connection or
      --timeout:
        {"ok": true, "status": null or N, "sent": N, "closed": true or false,
         "closed_after": SECONDS, "goaway": null or "..."}

  h2_client.py many-streams --path P --count C
      Opens C streams (GET P) at once and reads every answer:
        {"ok": true, "statuses": {"200": N, ...}, "refused": N, "reset": N}
      (refused: RST_STREAM REFUSED_STREAM, the streams past the server's limit.)
"""

import argparse
import json
import select
import socket
import ssl
import struct
import sys
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hpack


class Client:
    def __init__(self, args, window=None, validate=True):
        self.args = args
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        if args.cert:
            ctx.load_cert_chain(args.cert, args.key)
        host, port = args.connect.rsplit(":", 1)
        raw = socket.create_connection((host, int(port)), timeout=args.timeout)
        self.sock = ctx.wrap_socket(raw, server_hostname=args.server_name)
        if self.sock.selected_alpn_protocol() != "h2":
            raise SystemExit(json.dumps({"ok": False, "error": "no h2"}))
        self.conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(
                client_side=True,
                header_encoding="utf-8",
                validate_outbound_headers=validate,
            )
        )
        self.conn.initiate_connection()
        if window is not None:
            self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.flush()
        self.goaway = None
        self.closed = False

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def headers(self, path, method="GET", extra=()):
        return [
            (":method", method),
            (":scheme", "https"),
            (":authority", self.args.authority),
            (":path", path),
        ] + list(extra)

    def events(self, deadline):
        """The next batch of events, [] at the deadline; None once the server closed."""
        left = deadline - time.monotonic()
        if left <= 0:
            return []
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return []
        except (ConnectionError, ssl.SSLError, OSError):
            self.closed = True
            return None
        if not data:
            self.closed = True
            return None
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            # h2 takes no frame after a GOAWAY (a server's PING with its graceful one
            # included): the connection is over for this client.
            self.goaway = self.goaway or "GOAWAY, then frames h2 refuses"
            self.closed = True
            return None
        for e in events:
            if isinstance(e, h2.events.ConnectionTerminated):
                self.goaway = h2.errors.ErrorCodes(e.error_code).name
        self.flush()
        return events

    def follow(self, sid, deadline, acknowledge=True):
        """Reads stream sid's answer until it ends, is reset, or the deadline: its status,
        body size, reset code (or None) and whether it ended. `acknowledge` opens the
        window as data comes (a stalled reader does not)."""
        status, size = None, 0
        while time.monotonic() < deadline:
            events = self.events(deadline)
            if events is None:
                break
            for e in events:
                if getattr(e, "stream_id", None) != sid:
                    continue
                if isinstance(e, h2.events.ResponseReceived):
                    status = int(dict(e.headers)[":status"])
                elif isinstance(e, h2.events.DataReceived):
                    size += len(e.data)
                    if acknowledge:
                        self.conn.acknowledge_received_data(e.flow_controlled_length, sid)
                elif isinstance(e, h2.events.StreamEnded):
                    self.flush()
                    return status, size, None, True
                elif isinstance(e, h2.events.StreamReset):
                    return status, size, e.error_code.name, True
            self.flush()
        return status, size, None, False

    def ask_all(self, path, count):
        """GET path on count new streams at once, sent in one write; their ids."""
        sids = []
        for _ in range(count):
            sid = self.conn.get_next_available_stream_id()
            self.conn.send_headers(sid, self.headers(path), end_stream=True)
            sids.append(sid)
        self.flush()
        return sids

    def fetch(self, path, deadline):
        """GET path with the windows opened as data comes; its status and body size."""
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, self.headers(path), end_stream=True)
        self.flush()
        status, size, reset, ended = self.follow(sid, deadline)
        got = {"status": status, "data": size}
        if reset:
            got["reset"] = reset
        if not ended:
            got["unfinished"] = True
        return got


def stalled_reader(args):
    client = Client(args, window=0)
    deadline = time.monotonic() + args.timeout
    sid = client.conn.get_next_available_stream_id()
    client.conn.send_headers(sid, client.headers(args.path), end_stream=True)
    client.flush()
    started = time.monotonic()
    status, data, reset, ended = client.follow(sid, deadline, acknowledge=False)
    ended_after = time.monotonic() - started if ended else None
    second = None
    if not client.closed:
        client.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 65535})
        client.flush()
        second = client.fetch(args.second_path, time.monotonic() + args.timeout)
    return {
        "ok": True,
        "status": status,
        "data": data,
        "reset": reset,
        "ended_after": ended_after,
        "goaway": client.goaway,
        "second": second,
    }


def reset_upload(args):
    client = Client(args)
    sid = client.conn.get_next_available_stream_id()
    client.conn.send_headers(
        sid,
        client.headers(args.path, "POST", [("content-length", str(args.size))]),
    )
    client.flush()
    sent, piece = 0, b"x" * 16384
    deadline = time.monotonic() + args.timeout
    while sent < args.sent and time.monotonic() < deadline:
        room = min(client.conn.local_flow_control_window(sid), args.sent - sent, len(piece))
        if room <= 0:
            if client.events(deadline) is None:
                return {"ok": False, "error": "closed while uploading"}
            continue
        client.conn.send_data(sid, piece[:room])
        client.flush()
        sent += room
    time.sleep(args.pause)
    if args.drop:
        # The connection lost, not the stream reset: no frame, the socket closed.
        client.sock.close()
        return {"ok": True, "sent": sent}
    client.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
    client.flush()
    second = client.fetch(args.second_path, time.monotonic() + args.timeout)
    return {"ok": True, "sent": sent, "second": second, "goaway": client.goaway}


def reset_waiting(args):
    client = Client(args)
    sids = client.ask_all(args.path, args.streams)
    early = None
    until = time.monotonic() + args.wait
    while early is None and time.monotonic() < until:
        events = client.events(until)
        if events is None:
            return {"ok": False, "error": "closed before the reset"}
        for event in events:
            if isinstance(event, h2.events.ResponseReceived) and event.stream_id in sids:
                early = {"status": int(dict(event.headers)[":status"])}
    for sid in sids:
        client.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
    client.flush()
    second = client.fetch(args.second_path, time.monotonic() + args.timeout)
    return {"ok": True, "early": early, "second": second, "goaway": client.goaway}


def swap_at_limit(args):
    client = Client(args)
    sids = client.ask_all(args.path, args.streams)
    early = 0
    until = time.monotonic() + args.wait
    while time.monotonic() < until:
        events = client.events(until)
        if events is None:
            return {"ok": False, "error": "closed before the reset"}
        early += sum(
            isinstance(e, (h2.events.ResponseReceived, h2.events.StreamReset)) for e in events
        )
    client.conn.reset_stream(sids[0], h2.errors.ErrorCodes.CANCEL)
    sid = client.conn.get_next_available_stream_id()
    client.conn.send_headers(sid, client.headers(args.second_path), end_stream=True)
    client.flush()
    status, size, reset, ended = client.follow(sid, time.monotonic() + args.timeout)
    second = {"status": status, "data": size, "reset": reset, "ended": ended}
    return {"ok": True, "early": early, "second": second, "goaway": client.goaway}


def rapid_reset(args):
    client = Client(args)
    sent = 0
    try:
        while sent < args.count and not client.closed:
            for _ in range(min(args.batch, args.count - sent)):
                sid = client.conn.get_next_available_stream_id()
                client.conn.send_headers(sid, client.headers(args.path), end_stream=True)
                client.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
                sent += 1
            client.flush()
            client.events(time.monotonic() + 0.01)
    # The server closed (the socket's errors, TLS's among them) or refused more streams
    # (h2 on a connection past its GOAWAY): anything else is the script's own failure.
    except (OSError, h2.exceptions.ProtocolError) as err:
        return {"ok": True, "sent": sent, "goaway": client.goaway, "closed": True,
                "error": type(err).__name__}
    deadline = time.monotonic() + args.timeout
    answers = 0
    while not client.closed and time.monotonic() < deadline:
        events = client.events(deadline)
        if events is None:
            break
        answers += sum(isinstance(e, h2.events.ResponseReceived) for e in events)
    return {"ok": True, "sent": sent, "goaway": client.goaway, "closed": client.closed,
            "answers": answers}


def priority_flood(args):
    """PRIORITY frames (for stream 1, never opened) in batches of 1000, raw on the TLS
    session, until --count are sent or the server closes: a frame that asks for no request."""
    client = Client(args)
    frame = struct.pack(">I", 5)[1:] + bytes([0x2, 0]) + struct.pack(">I", 1)
    frame += struct.pack(">IB", 0, 15)
    batch = frame * 1000
    sent = 0
    try:
        while sent < args.count:
            client.sock.sendall(batch)
            sent += 1000
    except (ConnectionError, ssl.SSLError, OSError) as err:
        return {"ok": True, "sent": sent, "closed": True, "error": type(err).__name__}
    deadline = time.monotonic() + args.timeout
    while not client.closed and time.monotonic() < deadline:
        if client.events(deadline) is None:
            break
    return {"ok": True, "sent": sent, "closed": client.closed, "goaway": client.goaway}


def stalled_streams(args):
    """Opens --count streams for --path with no window for their answers, says "ready",
    and holds them (reading, opening nothing) until --timeout."""
    client = Client(args, window=0)
    deadline = time.monotonic() + args.timeout
    for _ in range(args.count):
        sid = client.conn.get_next_available_stream_id()
        client.conn.send_headers(sid, client.headers(args.path), end_stream=True)
    client.flush()
    print("ready", flush=True)
    statuses = {}
    while not client.closed and time.monotonic() < deadline:
        events = client.events(deadline)
        if events is None:
            break
        for e in events:
            if isinstance(e, h2.events.ResponseReceived):
                code = dict(e.headers)[":status"]
                statuses[code] = statuses.get(code, 0) + 1
    return {"ok": True, "statuses": statuses, "goaway": client.goaway}


def trickled_upload(args):
    client = Client(args)
    start = time.monotonic()
    deadline = start + args.timeout
    sid = client.conn.get_next_available_stream_id()
    extra = [("content-length", str(args.size))]
    client.conn.send_headers(sid, client.headers(args.path, method="POST", extra=extra))
    client.flush()
    status, sent, closed = None, 0, False
    raw, decoder = b"", hpack.Decoder()
    next_send = start
    # One byte a frame, written raw: h2 sends nothing once it has a GOAWAY, and the point
    # is what the server does with a client that goes on.
    frame = b"\x00\x00\x01\x00\x00" + struct.pack(">I", sid) + b"x"
    while time.monotonic() < deadline:
        if time.monotonic() >= next_send and sent < args.size:
            try:
                client.sock.sendall(frame)
            except (ConnectionError, ssl.SSLError, OSError):
                closed = True
                break
            sent += 1
            next_send = time.monotonic() + args.pause
        wait = min(next_send, deadline) - time.monotonic()
        client.sock.settimeout(max(0.01, wait))
        try:
            data = client.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            continue
        except (ConnectionError, ssl.SSLError, OSError):
            closed = True
            break
        if not data:
            closed = True
            break
        # Read frame by frame here: h2 takes no frame after a GOAWAY, and the stream's
        # answer to a refused connection comes after one.
        raw += data
        while len(raw) >= 9 and len(raw) >= 9 + int.from_bytes(raw[:3], "big"):
            length, kind, flags = int.from_bytes(raw[:3], "big"), raw[3], raw[4]
            stream = int.from_bytes(raw[5:9], "big") & 0x7FFFFFFF
            payload, raw = raw[9 : 9 + length], raw[9 + length :]
            if kind == 7:
                client.goaway = h2.errors.ErrorCodes(int.from_bytes(payload[4:8], "big")).name
            elif kind == 1:
                fields = dict(decoder.decode(payload))
                if stream == sid and ":status" in fields:
                    status = int(fields[":status"])
            elif kind == 4 and not flags & 1:
                client.sock.sendall(b"\x00\x00\x00\x04\x01\x00\x00\x00\x00")
    return {
        "ok": True,
        "status": status,
        "sent": sent,
        "closed": closed,
        "closed_after": round(time.monotonic() - start, 3),
        "goaway": client.goaway,
    }


def many_streams(args):
    client = Client(args)
    deadline = time.monotonic() + args.timeout
    streams = client.ask_all(args.path, args.count)
    open_ = set(streams)
    statuses, refused, reset = {}, 0, 0
    while open_ and time.monotonic() < deadline:
        events = client.events(deadline)
        if events is None:
            break
        for e in events:
            sid = getattr(e, "stream_id", None)
            if isinstance(e, h2.events.ResponseReceived):
                code = dict(e.headers)[":status"]
                statuses[code] = statuses.get(code, 0) + 1
            elif isinstance(e, h2.events.DataReceived):
                client.conn.acknowledge_received_data(e.flow_controlled_length, sid)
            elif isinstance(e, h2.events.StreamEnded):
                open_.discard(sid)
            elif isinstance(e, h2.events.StreamReset):
                open_.discard(sid)
                if e.error_code == h2.errors.ErrorCodes.REFUSED_STREAM:
                    refused += 1
                else:
                    reset += 1
        client.flush()
    return {"ok": True, "statuses": statuses, "refused": refused, "reset": reset,
            "unfinished": len(open_), "goaway": client.goaway}


def no_path(args):
    client = Client(args, validate=False)
    head = [(":method", "GET"), (":scheme", "https")]
    head.append(("host" if args.no_authority else ":authority", args.authority))
    sid = client.conn.get_next_available_stream_id()
    client.conn.send_headers(sid, head, end_stream=True)
    client.flush()
    status, size, reset, ended = client.follow(sid, time.monotonic() + args.timeout)
    first = {"status": status, "data": size, "reset": reset, "ended": ended}
    second = client.fetch(args.second_path, time.monotonic() + args.timeout)
    return {"ok": True, "first": first, "second": second, "goaway": client.goaway}


def windows(args):
    """The server's receive windows: a stream's (its SETTINGS) and the connection's (65535
    and its first WINDOW_UPDATE), once a request is answered (both have come by then)."""
    client = Client(args)
    answer = client.fetch(args.path, time.monotonic() + args.timeout)
    return {"ok": True, "answer": answer,
            "stream": client.conn.remote_settings.initial_window_size,
            "connection": client.conn.outbound_flow_control_window}


def across_reload(args):
    client = Client(args)
    first = client.fetch(args.path, time.monotonic() + args.timeout)
    print("ready", flush=True)
    ready, _, _ = select.select([sys.stdin], [], [], args.timeout)
    if ready:
        sys.stdin.readline()
    second = client.fetch(args.path, time.monotonic() + args.timeout)
    return {
        "ok": True,
        "first": first,
        "second": second,
        "goaway": client.goaway,
        "closed": client.closed,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario")
    parser.add_argument("--connect", required=True)
    parser.add_argument("--authority", default="a.test")
    parser.add_argument("--server-name", default="a.test")
    parser.add_argument("--path", default="/")
    parser.add_argument("--second-path", default="/")
    parser.add_argument("--size", type=int, default=1 << 20)
    parser.add_argument("--sent", type=int, default=65536)
    parser.add_argument("--wait", type=float, default=0.2)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--pause", type=float, default=0)
    parser.add_argument("--timeout", type=float, default=10)
    parser.add_argument("--no-authority", action="store_true")
    parser.add_argument("--drop", action="store_true")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args()
    scenarios = {
        "stalled-reader": stalled_reader,
        "reset-upload": reset_upload,
        "reset-waiting": reset_waiting,
        "swap-at-limit": swap_at_limit,
        "rapid-reset": rapid_reset,
        "priority-flood": priority_flood,
        "many-streams": many_streams,
        "stalled-streams": stalled_streams,
        "trickled-upload": trickled_upload,
        "across-reload": across_reload,
        "no-path": no_path,
        "windows": windows,
    }
    print(json.dumps(scenarios[args.scenario](args)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
