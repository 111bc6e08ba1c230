"""WSGI app that tells what it received, for the nginx `proxy_pass` parity test (an HTTP app
server such as gunicorn serves it behind ringway and behind nginx).

Routes:
  /status/<code>   answers with that status: no body for 204 and 304 (304 with an ETag), else
                   "status <code>"
  /stream/<n>      n bytes of a fixed pattern (byte i = i % 251) yielded in 1000-byte pieces,
                   without Content-Length (the server frames it)
  /set-cookie      200 "ok", with a Set-Cookie header for each `set` in the query string
                   (its value as given, percent-decoded)
  /headers         200 "ok", with a header for each `h=NAME:VALUE` in the query string
                   (percent-decoded)
  anything else    200, JSON: {"method", "target" (the request target as the server read it),
                   "headers" (the HTTP_* request headers, lower-case names with dashes, as the
                   server joined them), "content_length", "body_length" (bytes read from
                   wsgi.input until its end), "remote_addr", "scheme"}; for HEAD the same
                   JSON in the header X-Echo and no body
"""

import json
from urllib.parse import parse_qs

PATTERN = bytes(i % 251 for i in range(251))


def pattern(n):
    whole, rest = divmod(n, len(PATTERN))
    return PATTERN * whole + PATTERN[:rest]


def echo(environ):
    body = environ["wsgi.input"].read()
    headers = {
        key[5:].lower().replace("_", "-"): value
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not target:
        query = environ.get("QUERY_STRING", "")
        target = environ.get("PATH_INFO", "") + ("?" + query if query else "")
    return {
        "method": environ["REQUEST_METHOD"],
        "target": target,
        "headers": headers,
        "content_length": environ.get("CONTENT_LENGTH", ""),
        "body_length": len(body),
        "remote_addr": environ.get("REMOTE_ADDR", ""),
        "scheme": environ["wsgi.url_scheme"],
    }


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path.startswith("/status/"):
        code = int(path[len("/status/"):])
        if code in (204, 304):
            headers = [("ETag", '"v1"')] if code == 304 else []
            start_response(f"{code} Status", headers)
            return [b""]
        text = f"status {code}".encode()
        start_response(
            f"{code} Status",
            [("Content-Type", "text/plain"), ("Content-Length", str(len(text)))],
        )
        return [text]
    if path == "/set-cookie":
        cookies = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).get("set", [])
        start_response(
            "200 OK",
            [("Content-Type", "text/plain"), ("Content-Length", "2")]
            + [("Set-Cookie", cookie) for cookie in cookies],
        )
        return [b"ok"]
    if path == "/headers":
        pairs = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).get("h", [])
        start_response(
            "200 OK",
            [("Content-Type", "text/plain"), ("Content-Length", "2")]
            + [tuple(pair.split(":", 1)) for pair in pairs],
        )
        return [b"ok"]
    if path.startswith("/stream/"):
        data = pattern(int(path[len("/stream/"):]))
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return (data[i:i + 1000] for i in range(0, len(data), 1000))
    text = json.dumps(echo(environ), sort_keys=True)
    if environ["REQUEST_METHOD"] == "HEAD":
        start_response(
            "200 OK",
            [("Content-Type", "application/json"), ("X-Echo", text), ("Content-Length", "0")],
        )
        return [b""]
    data = text.encode()
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
    )
    return [data]
