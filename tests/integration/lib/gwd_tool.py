#!/usr/bin/env python3
"""Small network tools for the gwd integration tests (stdlib only).

  sink   --addr A --port P --out FILE     accept one TCP connection, read to
                                          EOF, write "BYTES SHA256" to FILE
  source --addr A --port P --file F       send F over TCP (at --rate bytes/s
                                          if given), half-close, wait for the
                                          sink to close
  flood  --addr A --port P --pub KEY ...  send WireGuard handshake initiations
                                          with a valid mac1 and random
                                          everything else; count the cookie
                                          replies addressed to them
  uapi   --sock PATH [REQUEST]            one UAPI exchange, answer on stdout

The flood messages follow the WireGuard protocol page: a 148-byte type-1
message whose mac1 is BLAKE2s-128 keyed with BLAKE2s-256("mac1----" ||
responder static public key) over the first 116 bytes; mac2 is zero. A
responder that is not under load spends a DH on each and drops it (the
static key cannot be decrypted); one under load must answer with a type-3
cookie reply instead.
"""

import argparse
import base64
import hashlib
import json
import os
import select
import socket
import struct
import sys
import time

MSG_INITIATION = 1
MSG_COOKIE = 3
INITIATION_LEN = 148
MAC1_OFFSET = 116
COOKIE_REPLY_LEN = 64


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def cmd_sink(a):
    srv = socket.socket(family_of(a.addr), socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((a.addr, a.port))
    srv.listen(1)
    srv.settimeout(a.timeout)
    conn, peer = srv.accept()
    conn.settimeout(a.timeout)
    h = hashlib.sha256()
    n = 0
    while True:
        buf = conn.recv(1 << 16)
        if not buf:
            break
        h.update(buf)
        n += len(buf)
    conn.close()
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d %s\n" % (n, h.hexdigest()))
    os.rename(tmp, a.out)
    print("received %d bytes from %s" % (n, peer[0]))


def cmd_source(a):
    c = socket.create_connection((a.addr, a.port), timeout=a.timeout)
    start = time.monotonic()
    sent = 0
    with open(a.file, "rb") as f:
        while True:
            buf = f.read(1 << 14)
            if not buf:
                break
            c.sendall(buf)
            sent += len(buf)
            if a.rate:
                ahead = sent / a.rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
    c.shutdown(socket.SHUT_WR)
    # The sink closes only after it has read everything.
    while c.recv(4096):
        pass
    c.close()


def mac1_key(pub):
    return hashlib.blake2s(b"mac1----" + pub).digest()


def initiation(key, index):
    body = struct.pack("<II", MSG_INITIATION, index) + os.urandom(MAC1_OFFSET - 8)
    mac1 = hashlib.blake2s(body, key=key, digest_size=16).digest()
    return body + mac1 + bytes(16)


def drain(sock, prefix, stats):
    while True:
        try:
            buf = sock.recv(2048)
        except BlockingIOError:
            return
        stats["received"] += 1
        if len(buf) != COOKIE_REPLY_LEN:
            continue
        mtype, receiver = struct.unpack_from("<II", buf)
        if mtype == MSG_COOKIE and receiver >> 24 == prefix:
            stats["cookie_replies"] += 1


def cmd_flood(a):
    pub = base64.b64decode(a.pub)
    if len(pub) != 32:
        sys.exit("flood: the public key must be 32 bytes")
    key = mac1_key(pub)
    sock = socket.socket(family_of(a.addr), socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.connect((a.addr, a.port))
    stats = {"sent": 0, "received": 0, "cookie_replies": 0, "send_errors": 0}
    start = time.monotonic()
    end = start + a.duration
    seq = 0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        due = int((now - start) * a.rate) - stats["sent"]
        for _ in range(min(due, 256)):
            seq = (seq + 1) & 0xFFFFFF
            try:
                sock.send(initiation(key, a.prefix << 24 | seq))
                stats["sent"] += 1
            except (BlockingIOError, ConnectionRefusedError):
                stats["send_errors"] += 1
                break
        drain(sock, a.prefix, stats)
        select.select([sock], [], [], 0.001)
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        select.select([sock], [], [], 0.05)
        drain(sock, a.prefix, stats)
    stats["seconds"] = round(time.monotonic() - start, 3)
    out = json.dumps(stats)
    print(out)
    if a.report:
        with open(a.report + ".tmp", "w") as f:
            f.write(out + "\n")
        os.rename(a.report + ".tmp", a.report)


def cmd_uapi(a):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(a.timeout)
    s.connect(a.sock)
    req = a.request.replace("\\n", "\n")
    if not req.endswith("\n\n"):
        req = req.rstrip("\n") + "\n\n"
    s.sendall(req.encode())
    out = b""
    while not out.endswith(b"\n\n"):
        buf = s.recv(65536)
        if not buf:
            break
        out += buf
    s.close()
    sys.stdout.write(out.decode())


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sink")
    s.add_argument("--addr", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--timeout", type=float, default=30)
    s = sub.add_parser("source")
    s.add_argument("--addr", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--file", required=True)
    s.add_argument("--rate", type=float, default=0, help="bytes per second, 0: unpaced")
    s.add_argument("--timeout", type=float, default=30)
    s = sub.add_parser("flood")
    s.add_argument("--addr", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--pub", required=True, help="responder public key, base64")
    s.add_argument("--rate", type=float, default=3000, help="initiations per second")
    s.add_argument("--duration", type=float, default=5)
    s.add_argument("--prefix", type=int, default=0xF1, help="top byte of sender indexes")
    s.add_argument("--report", help="write the JSON counters here too")
    s = sub.add_parser("uapi")
    s.add_argument("--sock", required=True)
    s.add_argument("--timeout", type=float, default=5)
    s.add_argument("request", nargs="?", default="get=1")
    a = p.parse_args()
    {"sink": cmd_sink, "source": cmd_source, "flood": cmd_flood, "uapi": cmd_uapi}[a.cmd](a)


if __name__ == "__main__":
    main()
