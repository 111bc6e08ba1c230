"""How long a worker stalls when a 1 GiB temp file is closed.

    python3 benches/scripts/temp_file_close.py RINGWAY_BINARY PORT

A slow reader asks uWSGI (the raw test app, from target/venv) for 1 GiB through ringway
(one worker), which spools it to a temp file; once the file is whole and written back
(`sync`), the reader disconnects, and the kernel frees the file's blocks at its last
close. A probe asks GET /bytes/10 every 4 ms on a keep-alive connection meanwhile; the
script prints its median and worst latency in the 2.5 s after the disconnect. Needs about
2 GiB of disk under /var/tmp and 3 GiB of memory (the app builds its answer whole).
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

bin_, port = sys.argv[1], int(sys.argv[2])
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
venv = os.path.join(root, "target", "venv", "bin")
d = tempfile.mkdtemp(prefix="ringway-tempclose-")
sock = f"{d}/app.sock"
uw = subprocess.Popen([f"{venv}/uwsgi", "--socket", sock, "--wsgi-file",
                       os.path.join(root, "tests", "apps", "raw_wsgi.py"), "--workers", "2",
                       "--buffer-size", "8192", "--socket-timeout", "120",
                       # SIGTERM ends it, workers and all (without, uWSGI takes it for a
                       # reload, and a worker outlives the script).
                       "--master", "--die-on-term"],
                      stdout=subprocess.DEVNULL, stderr=open(f"{d}/uwsgi.log", "w"))
while not os.path.exists(sock):
    time.sleep(0.05)
time.sleep(0.5)
rw = subprocess.Popen([bin_, "--listen", f"127.0.0.1:{port}", "--upstream", f"unix:{sock}",
                       "--workers", "1", "--no-ebpf", "--max-temp-file-size", "2g",
                       "--upstream-read-timeout", "120s", "--send-timeout", "120s"],
                      stdout=subprocess.DEVNULL, stderr=open(f"{d}/ringway.log", "w"))
time.sleep(1.0)
try:
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", port))
    n = 1 << 30
    slow.sendall(f"GET /bytes/{n} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
    # Until ringway's temp file holds (nearly) the whole answer.
    pid = rw.pid
    deadline = time.time() + 120
    size = 0
    while time.time() < deadline:
        size = 0
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                st = os.stat(f"/proc/{pid}/fd/{fd}")
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("/var/tmp"):
                    size = max(size, st.st_size)
            except OSError:
                pass
        if size >= n - (4 << 20):
            break
        time.sleep(0.2)
    os.system("sync")
    probe = socket.create_connection(("127.0.0.1", port))
    req = b"GET /bytes/10 HTTP/1.1\r\nHost: a\r\n\r\n"
    worst, lat = 0.0, []
    stop = time.time() + 3.0
    closed_at = time.time() + 0.5
    did_close = False
    while time.time() < stop:
        if not did_close and time.time() >= closed_at:
            slow.close()
            did_close = True
        t = time.perf_counter()
        try:
            probe.sendall(req)
        except OSError:
            probe = socket.create_connection(("127.0.0.1", port))
            continue
        got = b""
        while True:
            piece = probe.recv(65536)
            if not piece:
                break
            got += piece
            if b"\r\n\r\n" in got and len(got.split(b"\r\n\r\n", 1)[1]) >= 10:
                break
        if not got:
            probe = socket.create_connection(("127.0.0.1", port))
            continue
        dt = time.perf_counter() - t
        if did_close:
            lat.append(dt)
        time.sleep(0.004)
    lat.sort()
    print(f"file {size >> 20} MiB; probes after close: {len(lat)}, "
          f"p50 {lat[len(lat)//2]*1000:.2f} ms, worst {lat[-1]*1000:.1f} ms")
finally:
    rw.terminate()
    uw.terminate()
    rw.wait()
    uw.wait()
    shutil.rmtree(d, ignore_errors=True)
