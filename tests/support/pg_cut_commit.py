#!/usr/bin/env python3
"""pg_cut_commit.py LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT - a TCP relay in
front of PostgreSQL that breaks one connection in the middle of a COMMIT:
the first time a client, after sending a statement holding MARK ("INSERT
INTO calls" unless --mark says otherwise), sends a COMMIT, the COMMIT goes
on to the server, which commits it, and then the connection is closed
without its answer - the client cannot know whether it committed. Every
other connection, and everything after, is relayed untouched. It prints
"cut" on stdout when it has cut; "listening" once it accepts.

For sip-edge's test of a route whose COMMIT went unanswered (test_sip_edge).
Loopback only; ends when its parent kills it."""
import socket
import sys
import threading
import time

listen_port, up_host, up_port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
mark = b"INSERT INTO calls"
if len(sys.argv) > 5 and sys.argv[4] == "--mark":
    mark = sys.argv[5].encode()
state = {"cut": False}
lock = threading.Lock()


def close(*socks):
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def to_server(client, upstream, conn):
    armed = False
    try:
        while True:
            data = client.recv(65536)
            if not data:
                break
            with lock:
                if not state["cut"] and mark in data:
                    armed = True
                elif not state["cut"] and armed and b"COMMIT" in data:
                    # from now on nothing of the server's reaches the client
                    state["cut"] = conn["cutting"] = True
            upstream.sendall(data)
            if conn["cutting"]:
                time.sleep(0.3)  # the server reads the COMMIT and commits
                print("cut", flush=True)
                break
    except OSError:
        pass
    close(client, upstream)


def to_client(upstream, client, conn):
    try:
        while True:
            data = upstream.recv(65536)
            if not data or conn["cutting"]:
                break
            client.sendall(data)
    except OSError:
        pass
    close(client, upstream)


server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", listen_port))
server.listen(64)
print("listening", flush=True)
while True:
    client, _ = server.accept()
    upstream = socket.create_connection((up_host, up_port))
    conn = {"cutting": False}
    threading.Thread(target=to_server, args=(client, upstream, conn), daemon=True).start()
    threading.Thread(target=to_client, args=(upstream, client, conn), daemon=True).start()
