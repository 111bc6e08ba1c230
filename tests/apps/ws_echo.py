"""A raw ASGI app for the WebSocket test (no framework, nothing from PyPI): every text or
binary message on a WebSocket is sent back as it came; a plain HTTP request gets a short
text answer. Served by Granian (`--interface asgi ws_echo:app`)."""


async def app(scope, receive, send):
    if scope["type"] == "websocket":
        event = await receive()
        if event["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        while True:
            event = await receive()
            if event["type"] == "websocket.disconnect":
                return
            if event.get("bytes") is not None:
                await send({"type": "websocket.send", "bytes": event["bytes"]})
            else:
                await send({"type": "websocket.send", "text": event.get("text") or ""})
    elif scope["type"] == "http":
        await receive()
        body = b"websocket echo: connect with Upgrade: websocket\n"
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    elif scope["type"] == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
