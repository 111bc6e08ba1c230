"""Framework-free WSGI app for ringway's end-to-end tests (and a baseline for the benches).

Routes (the same as demo_flask.py):
  /                 13 bytes "Hello, World!"
  /bytes/<n>        n bytes of a fixed pattern (byte i = i % 251), with Content-Length
  /stream/<n>       the same n bytes yielded in pieces, without Content-Length
  /lazy/<n>         the same n bytes with Content-Length, made lazily in 65511-byte pieces
                    (261 whole patterns: every piece is the same bytes object), so the app's
                    memory stays one piece whatever n (the benches ask for 100 MB answers)
  /echo             POST: JSON {"length", "sha256"} of the body, reading exactly CONTENT_LENGTH
  /environ[/...]    JSON of the WSGI environ (str values only); for HEAD, in header X-Environ
  /slow?ms=N        sleeps N ms, then answers "slept N ms"
  /header/<n>       a response header X-Big of n bytes
  /truncated/<n>    Content-Length 2n but only n bytes (raw app only: an app dying midway)
  /reflect?<text>   302 with Location: the decoded text, control bytes and all (only
                    with RINGWAY_VALIDATE=0: wsgiref.validate refuses control bytes)
  /set-cookies      two Set-Cookie headers (a proxy must not join them)
  /cookies/<n>      n Set-Cookie headers c0=0 .. c<n-1>=<n-1>, in that order
  /unbuffered/<n>   like /stream/<n>, with `X-Accel-Buffering: no` (relay at the client's pace)
  /paced?gate=PATH  a server-sent event stream (no Content-Length): "data: first", then it
                    waits until the file PATH exists (30 s at most), then "data: second"
                    (raw app only): a client that gets the first event before making the file
                    shows that nothing on the way held it back
  /ticks?n=N&ms=M   an HTML answer (no Content-Length) of N lines `<p>tick I</p>`, one every M
                    milliseconds (raw app only): an app streaming more often than once a second
  /hop-by-hop       `Connection: X-Secret, X-Also-Secret` naming two headers it also sends, and
                    X-Public (raw app only, and only with RINGWAY_VALIDATE=0: wsgiref.validate
                    forbids a Connection header in a WSGI app)
  /error            raises before start_response: uWSGI closes without a byte (proxy: 502)
  /fail-in/<name>   in the instance so named (RINGWAY_INSTANCE, below) fails as ?how= says:
                    `error` (the default: as /error), `exit` (the worker process dies
                    without answering: for servers that turn an exception into a 500),
                    `sleep` (answers only after ?ms=N), `status` (answers ?code=N); every
                    other instance answers 200 "served" (raw app only): a proxy with several
                    servers shows whether it passed the request on
  /status/<code>    answers with that status (no body for 1xx, 204, 304); the body is
                    "status <code>", or with ?bytes=N N pattern bytes (raw app only)
  /report/<name>    X-Accel-Redirect: /protected/<name>, with Content-Type application/pdf,
                    Content-Disposition, Cache-Control, Set-Cookie, X-Accel-Buffering and a body
                    the proxy must replace with the file; `?type=none` sends no Content-Type
                    (only with RINGWAY_VALIDATE=0: wsgiref.validate requires one)
  /typed?type=T&status=N
                    answers status N (200 by default) with `Content-Type: T` (the query
                    value percent-decoded; none when absent) and the body "typed"
                    (raw app only)
  /accel?to=URI     X-Accel-Redirect: URI (the query value, percent-decoded), as an app that
                    trusts its input too much would send it; with &rate=R also
                    `X-Accel-Limit-Rate: R`; with &status=N that status (raw app only);
  /accel?loop=1     X-Accel-Redirect: its own path and query, a redirect cycle (raw app only)
  /limited/<n>?rate=R
                    n pattern bytes with Content-Length and `X-Accel-Limit-Rate: R` (the
                    value as given: a proxy reads digits only) (raw app only)
  /websocket        uWSGI's own WebSocket handshake (`uwsgi.websocket_handshake`) when the
                    request carries a Sec-WebSocket-Key, then every message sent back until
                    the client closes; without a key, 400 "no handshake" (raw app under
                    uWSGI only, and only with RINGWAY_VALIDATE=0: the handshake answers
                    outside start_response)

Any path, with the request header `X-Dump-Environ: 1`: the /environ answer instead of the
route's (to see the vars of a path no route serves, e.g. the root of a mount, `/api/`).

With RINGWAY_INSTANCE=NAME in uWSGI's environment every answer carries `X-Instance: NAME`, so a
test with several uWSGIs can tell which one served a request.

With RINGWAY_VALIDATE=1 in the environment the app is wrapped in wsgiref.validate.validator,
which asserts PEP 3333 on every request (the tests set it).
"""

import hashlib
import json
import os
import time
from urllib.parse import parse_qs, unquote

PATTERN = bytes(range(251))
PIECE = 16 * 1024 - 7  # an odd size, so pieces never line up with the proxy's buffers
# A whole number of patterns (251 × 261 = 65511, odd like PIECE): each piece starts the
# pattern afresh, so one bytes object serves every piece of a /lazy answer.
LAZY_PIECE = len(PATTERN) * 261
# What /report/<name> and /accel answer with; a proxy that honours X-Accel-Redirect never
# sends it.
REPORT_BODY = b"APP-BODY: the proxy sends the file named by X-Accel-Redirect instead\n"
STATUS_TEXT = {
    200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently",
    304: "Not Modified", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
    418: "I'm a teapot", 500: "Internal Server Error", 503: "Service Unavailable",
}


def pattern(n):
    """The first n bytes of the repeating 0..250 pattern (the tests compute the same)."""
    reps = n // len(PATTERN) + 1
    return (PATTERN * reps)[:n]


def stream_pieces(n):
    data = pattern(n)
    for start in range(0, n, PIECE):
        yield data[start:start + PIECE]


def lazy_pieces(n):
    """pattern(n) in LAZY_PIECE pieces, never holding more than one piece."""
    piece = pattern(LAZY_PIECE)
    whole, rest = divmod(n, LAZY_PIECE)
    for _ in range(whole):
        yield piece
    if rest:
        yield piece[:rest]


PACED_FIRST = b"data: first\n\n"
PACED_SECOND = b"data: second\n\n"
# How long /paced waits for its gate before sending the second event anyway.
PACED_GATE_WAIT = 30.0


def tick_pieces(n, ms):
    """The /ticks lines, one every `ms` milliseconds."""
    for i in range(n):
        if i:
            time.sleep(ms / 1000)
        yield b"<p>tick %d</p>\n" % i


def paced_pieces(gate):
    """The two /paced events, the second only once `gate` exists (or the wait is over)."""
    yield PACED_FIRST
    deadline = time.monotonic() + PACED_GATE_WAIT
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.01)
    yield PACED_SECOND


def accel_target(environ, query):
    """What /accel names: ?to=, or with ?loop its own path and query (a redirect cycle)."""
    if "loop" in query:
        return environ["PATH_INFO"] + "?" + environ["QUERY_STRING"]
    return query["to"][0]


def read_body(environ):
    """Reads exactly CONTENT_LENGTH bytes (PEP 3333: never read past it)."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    chunks = []
    remaining = length
    while remaining > 0:
        chunk = stream.read(min(remaining, 65536))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def string_environ(environ):
    return {k: v for k, v in environ.items() if isinstance(v, str)}


def respond(start_response, status, body, content_type="text/plain", length=True):
    headers = []
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    if length:
        headers.append(("Content-Length", str(len(body))))
    start_response(status, headers)
    return [body]


def environ_answer(environ, start_response):
    """The environ as JSON (str values only); for HEAD, in header X-Environ."""
    read_body(environ)
    body = json.dumps(string_environ(environ), sort_keys=True).encode()
    if environ["REQUEST_METHOD"] == "HEAD":
        # A HEAD response has no body: the environ rides in a header instead.
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("X-Environ", body.decode("ascii"))])
        return []
    return respond(start_response, "200 OK", body, "application/json")


def report(environ, start_response, name):
    """A download the app authorises and the proxy serves from the internal /protected/ route."""
    query = parse_qs(environ.get("QUERY_STRING", ""))
    headers = [("Content-Length", str(len(REPORT_BODY))),
               ("X-Accel-Redirect", "/protected/" + name),
               ("Content-Disposition", 'attachment; filename="%s"' % name),
               ("Cache-Control", "private, max-age=60"),
               ("Set-Cookie", "report=%s; HttpOnly; Path=/" % name),
               ("X-Accel-Buffering", "yes")]
    if query.get("type") != ["none"]:
        headers.insert(0, ("Content-Type", "application/pdf"))
    start_response("200 OK", headers)
    return [REPORT_BODY]


def tag_instance(wsgi_app):
    """Adds `X-Instance: $RINGWAY_INSTANCE` to every answer when that variable is set."""
    name = os.environ.get("RINGWAY_INSTANCE")
    if not name:
        return wsgi_app

    def tagged(environ, start_response):
        def start(status, headers, *exc_info):
            return start_response(status, headers + [("X-Instance", name)], *exc_info)

        return wsgi_app(environ, start)

    return tagged


def fail_in(environ, start_response, name):
    """/fail-in/<name>: fails only in the instance named `name`."""
    if os.environ.get("RINGWAY_INSTANCE") != name:
        return respond(start_response, "200 OK", b"served")
    query = parse_qs(environ.get("QUERY_STRING", ""))
    how = query.get("how", ["error"])[0]
    if how == "exit":
        os._exit(1)
    if how == "sleep":
        time.sleep(int(query["ms"][0]) / 1000)
        return respond(start_response, "200 OK", b"slept")
    if how == "status":
        code = int(query["code"][0])
        status = "%d %s" % (code, STATUS_TEXT.get(code, "Status"))
        return respond(start_response, status, b"failed with %d" % code)
    raise RuntimeError("deliberate error for the tests")


def websocket_echo(environ, start_response):
    if not environ.get("HTTP_SEC_WEBSOCKET_KEY"):
        return respond(start_response, "400 Bad Request", b"no handshake")
    import uwsgi  # only under uWSGI

    uwsgi.websocket_handshake()
    while True:
        try:
            message = uwsgi.websocket_recv()
        except OSError:  # the client closed
            return []
        uwsgi.websocket_send(message)


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if environ.get("HTTP_X_DUMP_ENVIRON"):
        return environ_answer(environ, start_response)
    if path == "/":
        return respond(start_response, "200 OK", b"Hello, World!")
    if path.startswith("/bytes/"):
        n = int(path[len("/bytes/"):])
        return respond(start_response, "200 OK", pattern(n), "application/octet-stream")
    if path.startswith("/stream/"):
        n = int(path[len("/stream/"):])
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return stream_pieces(n)
    if path.startswith("/lazy/"):
        n = int(path[len("/lazy/"):])
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(n))])
        return lazy_pieces(n)
    if path == "/echo":
        body = read_body(environ)
        answer = {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}
        return respond(start_response, "200 OK", json.dumps(answer).encode(), "application/json")
    if path == "/environ" or path.startswith("/environ/"):
        return environ_answer(environ, start_response)
    if path == "/slow":
        ms = int(parse_qs(environ.get("QUERY_STRING", "")).get("ms", ["0"])[0])
        time.sleep(ms / 1000.0)
        return respond(start_response, "200 OK", b"slept %d ms" % ms)
    if path.startswith("/truncated/"):
        # Promises twice the bytes it sends: the response ends early (a crashed app).
        n = int(path[len("/truncated/"):])
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(2 * n))])
        return [pattern(n)]
    if path.startswith("/header/"):
        n = int(path[len("/header/"):])
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2"),
                                  ("X-Big", "h" * n)])
        return [b"ok"]
    if path == "/reflect":
        # A redirect to the decoded query, as an app that echoes its input does.
        target = unquote(environ.get("QUERY_STRING", ""), encoding="latin-1")
        start_response("302 Found", [("Location", target), ("Content-Length", "0")])
        return [b""]
    if path == "/set-cookies":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2"),
                                  ("Set-Cookie", "a=1; Path=/"),
                                  ("Set-Cookie", "b=2; HttpOnly")])
        return [b"ok"]
    if path.startswith("/cookies/"):
        n = int(path[len("/cookies/"):])
        cookies = [("Set-Cookie", "c%d=%d; Path=/" % (i, i)) for i in range(n)]
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")]
                       + cookies)
        return [b"ok"]
    if path.startswith("/unbuffered/"):
        n = int(path[len("/unbuffered/"):])
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("X-Accel-Buffering", "no")])
        return stream_pieces(n)
    if path == "/paced":
        gate = parse_qs(environ.get("QUERY_STRING", ""))["gate"][0]
        start_response("200 OK", [("Content-Type", "text/event-stream"),
                                  ("Cache-Control", "no-cache")])
        return paced_pieces(gate)
    if path == "/ticks":
        query = parse_qs(environ.get("QUERY_STRING", ""))
        n, ms = int(query["n"][0]), int(query["ms"][0])
        start_response("200 OK", [("Content-Type", "text/html")])
        return tick_pieces(n, ms)
    if path == "/hop-by-hop":
        # RFC 9110 7.6.1: a proxy removes the headers the Connection header names.
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2"),
                                  ("Connection", "X-Secret, X-Also-Secret"),
                                  ("X-Secret", "1"), ("X-Also-Secret", "2"),
                                  ("X-Public", "3")])
        return [b"ok"]
    if path.startswith("/report/"):
        return report(environ, start_response, path[len("/report/"):])
    if path == "/typed":
        query = parse_qs(environ.get("QUERY_STRING", ""))
        code = int(query.get("status", ["200"])[0])
        status = "%d %s" % (code, STATUS_TEXT.get(code, "Status"))
        return respond(start_response, status, b"typed", query.get("type", [None])[0])
    if path == "/accel":
        query = parse_qs(environ.get("QUERY_STRING", ""))
        rate = [("X-Accel-Limit-Rate", r) for r in query.get("rate", [])]
        code = int(query.get("status", ["200"])[0])
        status = "%d %s" % (code, STATUS_TEXT.get(code, "Status"))
        start_response(status, [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(REPORT_BODY))),
                                  ("X-Accel-Redirect", accel_target(environ, query))] + rate)
        return [REPORT_BODY]
    if path.startswith("/limited/"):
        n = int(path[len("/limited/"):])
        rate = parse_qs(environ.get("QUERY_STRING", ""))["rate"][0]
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(n)),
                                  ("X-Accel-Limit-Rate", rate)])
        return [pattern(n)]
    if path == "/websocket":
        return websocket_echo(environ, start_response)
    if path == "/error":
        raise RuntimeError("deliberate error for the tests")
    if path.startswith("/fail-in/"):
        return fail_in(environ, start_response, path[len("/fail-in/"):])
    if path.startswith("/status/"):
        code = int(path[len("/status/"):])
        status = "%d %s" % (code, STATUS_TEXT.get(code, "Status"))
        if code in (204, 304) or code < 200:
            start_response(status, [])
            return []
        size = parse_qs(environ.get("QUERY_STRING", "")).get("bytes")
        body = pattern(int(size[0])) if size else b"status %d" % code
        return respond(start_response, status, body)
    return respond(start_response, "404 Not Found", b"not found")


if os.environ.get("RINGWAY_VALIDATE") == "1":
    from wsgiref.validate import validator

    _validated = validator(tag_instance(app))

    def application(environ, start_response):
        # PEP 3333 lets a server omit an empty SCRIPT_NAME (nginx's uwsgi_params do), but
        # Python's validator formats its SCRIPT_NAME message eagerly and raises KeyError
        # when the key is absent: supply the PEP's default first.
        environ.setdefault("SCRIPT_NAME", "")
        return _validated(environ, start_response)
else:
    application = tag_instance(app)
