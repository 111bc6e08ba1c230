"""Memory per idle WebSocket (any upgraded connection), ringway beside nginx, in one run.

    python3 benches/scripts/idle_tunnels.py [RINGWAY_BINARY] [--tunnels N]

Starts a stand-in app server on 127.0.0.1 that answers every request with
`101 Switching Protocols` and then holds the connection, ringway (`RINGWAY_BINARY`, by
default target/release/ringway; one worker, an HTTP upstream group) and nginx (one worker,
`proxy_pass` with the Upgrade headers) in front of it; opens N tunnels through each (1000
by default), after 20 opened and closed, and reads the proxy worker's RssAnon before and
after. Prints the bytes per tunnel for each and ringway's over nginx's. `cargo xtask bench`
does not cover tunnels: this is its supplement for them. Needs nginx on the PATH; raises
its own limit of open files to 8192.
"""

import argparse
import os
import resource
import socket
import subprocess
import tempfile
import threading
import time

SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
UPGRADE = b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"


def app_server():
    """The stand-in app: 101 to every request head, then silence. Returns its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    held = []

    def serve(conn):
        data = b""
        while b"\r\n\r\n" not in data:
            more = conn.recv(4096)
            if not more:
                return
            data += more
        conn.sendall(SWITCH)

    def accept():
        while True:
            conn, _ = listener.accept()
            held.append(conn)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_anon(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("RssAnon"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no RssAnon for {pid}")


def tunnel(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(UPGRADE)
    data = b""
    while b"\r\n\r\n" not in data:
        more = s.recv(4096)
        if not more:
            raise RuntimeError("closed before the 101")
        data += more
    if not data.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"not a 101: {data[:80]!r}")
    return s


def wait_for(port, deadline=10.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def measure(name, pid, port, n):
    for s in [tunnel(port) for _ in range(20)]:
        s.close()
    time.sleep(1)
    before = rss_anon(pid)
    tunnels = [tunnel(port) for _ in range(n)]
    time.sleep(2)
    after = rss_anon(pid)
    per = (after - before) / n
    print(f"{name}: {n} idle tunnels: RssAnon {before / 1024:.0f} -> {after / 1024:.0f} KiB, "
          f"{per:.0f} bytes per tunnel")
    for s in tunnels:
        s.close()
    return per


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("ringway", nargs="?", default="target/release/ringway")
    parser.add_argument("--tunnels", type=int, default=1000)
    args = parser.parse_args()
    files = (8192, 8192)
    resource.setrlimit(resource.RLIMIT_NOFILE, files)
    app = app_server()
    scratch = tempfile.mkdtemp(prefix="ringway-tunnels-")

    port = free_port()
    config = os.path.join(scratch, "ringway.toml")
    with open(config, "w") as f:
        f.write(f'listen = "127.0.0.1:{port}"\n[upstreams.app]\n'
                f'servers = ["http://127.0.0.1:{app}"]\n'
                '[[routes]]\npath = "/"\nupstream = "app"\n')
    ringway = subprocess.Popen(
        [args.ringway, "--config", config, "--workers", "1", "--no-ebpf", "--metrics", "off"],
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, files))
    try:
        wait_for(port)
        ours = measure("ringway", ringway.pid, port, args.tunnels)
    finally:
        ringway.terminate()
        ringway.wait()

    port = free_port()
    conf = os.path.join(scratch, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""daemon off; worker_processes 1; worker_rlimit_nofile 8192;
error_log {scratch}/error.log; pid {scratch}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {scratch}/body; proxy_temp_path {scratch}/proxy;
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://127.0.0.1:{app};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_read_timeout 1h;
    }}
  }}
}}
""")
    nginx = subprocess.Popen(["nginx", "-c", conf], stderr=subprocess.DEVNULL)
    try:
        wait_for(port)
        worker = int(subprocess.check_output(["pgrep", "-P", str(nginx.pid)]).split()[0])
        theirs = measure("nginx", worker, port, args.tunnels)
    finally:
        nginx.terminate()
        nginx.wait()
    print(f"ringway / nginx: {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
