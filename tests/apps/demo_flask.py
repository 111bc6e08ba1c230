"""Flask demo app for ringway: `/` says hello; the other routes serve the end-to-end tests.

Routes are the same as raw_wsgi.py (see its docstring), except that on /error Flask turns the
exception into its own 500 page, and /truncated/<n>, /hop-by-hop, /accel and /report's
`?type=none` are the raw app's only.
The `X-Dump-Environ: 1` request header and RINGWAY_INSTANCE work as in raw_wsgi.py. These
routes are this app's only:
  /page/<n>         an HTML page of n bytes, with an ETag and Accept-Ranges (what a proxy's
                    compression changes)
  /encoded          a body the app compressed itself (Content-Encoding: gzip), never to be
                    compressed again
  /urls             JSON of the URLs as Flask builds them: `relative` and `external`
                    (url_for of /bytes/7, plain and with _external=True), `script_root`,
                    `path` and `url` of the request; shows how Flask sees a mount
                    (SCRIPT_NAME) and the URL scheme.
  /auth/check       the check an `auth_request` asks: the token in the X-Token header or
                    the `token` cookie decides. `alice`: 200 with X-Auth-User: alice;
                    `banned`: 403; `broken`: 500 (alice's 200 also sets a cookie, as
                    oauth2-proxy refreshing its session); anything else: 401 with
                    `WWW-Authenticate: Bearer realm="demo"` and a Location to a login page
                    naming the X-Original-URI. Every answer carries X-Auth-Seen, JSON of
                    the request it got (method, CONTENT_LENGTH, body bytes, X-Original-URI,
                    the X-User a client may have sent).
With RINGWAY_VALIDATE=1 the WSGI callable is wrapped in wsgiref.validate.validator (the tests
set it). With RINGWAY_PROXY_FIX=1 (behind an HTTP proxy: gunicorn, Granian) Werkzeug's
ProxyFix takes the client's address, the scheme and the host from the proxy's
X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host, trusting one proxy.
"""

import gzip
import hashlib
import json
import os
import time
from urllib.parse import quote

from flask import Flask, Response, request, url_for

app = Flask(__name__)
if os.environ.get("RINGWAY_PROXY_FIX") == "1":
    from werkzeug.middleware.proxy_fix import ProxyFix

    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)

PATTERN = bytes(range(251))
PIECE = 16 * 1024 - 7
LAZY_PIECE = len(PATTERN) * 261  # whole patterns: one bytes object serves every piece
# What /report/<name> answers with; a proxy that honours X-Accel-Redirect never sends it.
REPORT_BODY = b"APP-BODY: the proxy sends the file named by X-Accel-Redirect instead\n"


def pattern(n):
    reps = n // len(PATTERN) + 1
    return (PATTERN * reps)[:n]


def read_body():
    """Reads exactly CONTENT_LENGTH bytes from wsgi.input (no Werkzeug stream wrapping)."""
    length = int(request.environ.get("CONTENT_LENGTH") or 0)
    stream = request.environ["wsgi.input"]
    chunks = []
    remaining = length
    while remaining > 0:
        chunk = stream.read(min(remaining, 65536))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


@app.before_request
def dump_environ_on_request():
    # Returning a response here skips routing: any path answers with the environ.
    if request.headers.get("X-Dump-Environ"):
        return environ()
    return None


@app.route("/")
def hello():
    return Response(b"Hello, World!", mimetype="text/plain")


@app.route("/bytes/<int:n>")
def fixed_bytes(n):
    return Response(pattern(n), mimetype="application/octet-stream")


@app.route("/stream/<int:n>")
def stream(n):
    def pieces():
        data = pattern(n)
        for start in range(0, n, PIECE):
            yield data[start:start + PIECE]

    return Response(pieces(), mimetype="application/octet-stream")


@app.route("/lazy/<int:n>")
def lazy(n):
    def pieces():
        piece = pattern(LAZY_PIECE)
        whole, rest = divmod(n, LAZY_PIECE)
        for _ in range(whole):
            yield piece
        if rest:
            yield piece[:rest]

    response = Response(pieces(), mimetype="application/octet-stream")
    response.headers["Content-Length"] = str(n)
    return response


@app.route("/echo", methods=["POST", "PUT"])
def echo():
    body = read_body()
    answer = {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    return Response(json.dumps(answer), mimetype="application/json")


ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


@app.route("/environ", methods=ALL_METHODS)
@app.route("/environ/<path:rest>", methods=ALL_METHODS)
def environ(rest=None):
    read_body()
    env = {k: v for k, v in request.environ.items() if isinstance(v, str)}
    body = json.dumps(env, sort_keys=True)
    response = Response(body, mimetype="application/json")
    if request.method == "HEAD":
        # A HEAD response has no body: the environ rides in a header instead.
        response.headers["X-Environ"] = body
    return response


@app.route("/urls")
def urls():
    answer = {
        "relative": url_for("fixed_bytes", n=7),
        "external": url_for("fixed_bytes", n=7, _external=True),
        "script_root": request.script_root,
        "path": request.path,
        "url": request.url,
    }
    return Response(json.dumps(answer, sort_keys=True), mimetype="application/json")


@app.route("/slow")
def slow():
    ms = int(request.args.get("ms", "0"))
    time.sleep(ms / 1000.0)
    return Response(b"slept %d ms" % ms, mimetype="text/plain")


@app.route("/header/<int:n>")
def big_header(n):
    response = Response(b"ok", mimetype="text/plain")
    response.headers["X-Big"] = "h" * n
    return response


@app.route("/set-cookies")
def set_cookies():
    response = Response(b"ok", mimetype="text/plain")
    response.headers.add("Set-Cookie", "a=1; Path=/")
    response.headers.add("Set-Cookie", "b=2; HttpOnly")
    return response


@app.route("/cookies/<int:n>")
def many_cookies(n):
    response = Response(b"ok", mimetype="text/plain")
    for i in range(n):
        response.headers.add("Set-Cookie", "c%d=%d; Path=/" % (i, i))
    return response


@app.route("/unbuffered/<int:n>")
def unbuffered(n):
    response = stream(n)
    response.headers["X-Accel-Buffering"] = "no"
    return response


@app.route("/report/<name>")
def report(name):
    """A download the app authorises and the proxy serves: X-Accel-Redirect names the file
    under the internal /protected/ route, and the proxy sends that file in place of this body,
    keeping the Content-Type, Content-Disposition, Cache-Control and Set-Cookie set here."""
    response = Response(REPORT_BODY, mimetype="application/pdf")
    response.headers["X-Accel-Redirect"] = "/protected/" + name
    response.headers["Content-Disposition"] = 'attachment; filename="%s"' % name
    response.headers["Cache-Control"] = "private, max-age=60"
    response.set_cookie("report", name, httponly=True)
    return response


@app.route("/page/<int:n>")
def page(n):
    body = (b"<p>" + b"ringway serves this page. " * (n // 26 + 1))[:n]
    response = Response(body, mimetype="text/html")
    response.set_etag(hashlib.sha256(body).hexdigest()[:16])
    response.headers["Accept-Ranges"] = "bytes"
    return response


@app.route("/encoded")
def encoded():
    response = Response(gzip.compress(b"compressed by the app " * 40), mimetype="text/html")
    response.headers["Content-Encoding"] = "gzip"
    return response


@app.route("/auth/check", methods=ALL_METHODS)
def auth_check():
    body = read_body()
    token = request.headers.get("X-Token") or request.cookies.get("token", "")
    original = request.headers.get("X-Original-URI", "")
    seen = {
        "method": request.method,
        "content_length": request.environ.get("CONTENT_LENGTH", ""),
        "body": len(body),
        "uri": original,
        "x_user": request.headers.get("X-User", ""),
    }
    headers = {"X-Auth-Seen": json.dumps(seen, sort_keys=True)}
    if token == "alice":
        headers["X-Auth-User"] = "alice"
        # oauth2-proxy's refreshed session cookie, for the proxy to pass on.
        headers["Set-Cookie"] = "session=refreshed; Path=/"
        return Response("ok", headers=headers)
    if token == "banned":
        return Response("banned", status=403, headers=headers)
    if token == "broken":
        return Response("broken", status=500, headers=headers)
    headers["WWW-Authenticate"] = 'Bearer realm="demo"'
    # Another header to nginx, not a second challenge.
    headers["WWW_Authenticate"] = "Bogus"

    headers["Location"] = "https://login.example/start?rd=" + quote(original, safe="")
    return Response("who are you?", status=401, headers=headers)


@app.route("/error")
def error():
    raise RuntimeError("deliberate error for the tests")


@app.route("/status/<int:code>")
def status(code):
    if code in (204, 304):
        response = Response(status=code)
        # Werkzeug adds a default Content-Type; PEP 3333's validator forbids it here.
        response.headers.pop("Content-Type", None)
        return response
    return Response(b"status %d" % code, status=code, mimetype="text/plain")


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
