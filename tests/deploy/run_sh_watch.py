#!/usr/bin/env python3
"""run_sh_watch.py - deploy/kamailio/run.sh keeps the load balancer's list of
edges through a resolver that loses answers, as Podman's does.

The resolver is a DNS server of the test's own on 127.0.0.99:53 that answers
A questions from a zone the test changes as it goes, and can drop questions:
all of them (aardvark-dns reloading when a container joins, or down), or the
ones about one name (a service scaled to 0 whose name the engine's server
forwards upstream, where nobody answers). run.sh --watch runs in a mount
namespace whose /etc/resolv.conf names that server, with a search domain
and 4 s per try (so a question that gets no answer costs 4-8 s, as under
Podman), run.sh's own LOOKUP_MS (500) and DROP_S (3), and prints its list
each time it changes. The steps, each checked on the printed lists and
their times:

1. a new address while every question is dropped for half a second (the
   server reloading): listed within 1.5 s of the server answering again -
   not once the questions that got no answer have timed out (MAX_PENDING=1,
   one lookup at a time, fails here);
2. an address goes: listed for DROP_S more (less a lookup or two), then
   dropped;
3. one name's questions go unanswered (scaled to 0): its address leaves the
   list, the other name's stay;
4. every question dropped for 5 s (longer than DROP_S): the list is kept,
   and stays as it was once the server answers again.

Needs root (unshare --mount, port 53); without it: skipped (exit 77).
Usage: run_sh_watch.py [RUN_SH]; MAX_PENDING in the environment reaches
run.sh (the mutant above).
"""

import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RUN_SH = (
    sys.argv[1]
    if len(sys.argv) > 1
    else os.path.join(HERE, "..", "..", "deploy", "kamailio", "run.sh")
)
DNS_ADDR = "127.0.0.99"
DROP_S = 3  # run.sh's defaults
LOOKUP_MS = 500


def now_ms():
    return int(time.time() * 1000)


class Zone:
    """What the server answers: name -> addresses; dropped names; or all."""

    def __init__(self):
        self.lock = threading.Lock()
        self.names = {}
        self.drop_names = set()
        self.drop_all = False

    def set(self, names, drop_names=(), drop_all=False):
        with self.lock:
            self.names = {k: list(v) for k, v in names.items()}
            self.drop_names = set(drop_names)
            self.drop_all = drop_all

    def answer(self, qname):
        """None: drop the question; else (rcode, addresses)."""
        with self.lock:
            if self.drop_all or qname in self.drop_names:
                return None
            if qname in self.names:
                return 0, self.names[qname]
            return 3, []  # NXDOMAIN


def parse_question(data):
    labels, i = [], 12
    while data[i] != 0:
        n = data[i]
        labels.append(data[i + 1 : i + 1 + n].decode("ascii", "replace").lower())
        i += 1 + n
    qtype, _qclass = struct.unpack("!HH", data[i + 1 : i + 5])
    return ".".join(labels), qtype, data[12 : i + 5]


def serve(sock, zone, stop):
    while not stop.is_set():
        try:
            data, peer = sock.recvfrom(512)
            qid, flags = struct.unpack("!HH", data[:4])
            qname, qtype, question = parse_question(data)
        except (socket.timeout, IndexError, struct.error):
            continue
        got = zone.answer(qname)
        if got is None:
            continue
        rcode, addrs = got
        if qtype != 1:  # only A records here
            addrs = []
        reply = struct.pack(
            "!HHHHHH", qid, 0x8000 | (flags & 0x0100) | 0x0080 | rcode, 1, len(addrs), 0, 0
        )
        reply += question
        for a in addrs:
            reply += struct.pack("!HHHIH", 0xC00C, 1, 1, 0, 4) + socket.inet_aton(a)
        sock.sendto(reply, peer)


def main():
    if os.geteuid() != 0:
        print("run_sh_watch: needs root (unshare --mount, port 53); skipped", file=sys.stderr)
        return 77
    tmp = tempfile.mkdtemp(prefix="sipdrain-lb-watch-")
    conf = os.path.join(tmp, "resolv.conf")
    with open(conf, "w") as f:
        f.write(f"search sipdrain.test\nnameserver {DNS_ADDR}\n")
    hosts = os.path.join(tmp, "hosts")
    with open(hosts, "w") as f:
        f.write("127.0.0.1 localhost\n")

    zone = Zone()
    a2, a3, a4, a5 = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"
    zone.set({"edge-a": [a2, a3], "edge-b": [a4]})
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((DNS_ADDR, 53))
    sock.settimeout(0.2)
    stop = threading.Event()
    server = threading.Thread(target=serve, args=(sock, zone, stop), daemon=True)
    server.start()

    env = dict(
        os.environ,
        EDGE_NAMES="edge-a edge-b",
        EDGE_PORT="5060",
        WORK=os.path.join(tmp, "lb"),
        RES_OPTIONS="timeout:4 attempts:1",
    )
    script = 'mount --bind "$0" /etc/resolv.conf && mount --bind "$1" /etc/hosts && exec "$2" --watch 27'
    proc = subprocess.Popen(
        ["unshare", "--mount", "--", "/bin/sh", "-c", script, conf, hosts, RUN_SH],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    marks = {}

    def at(t_ms, name, **zone_args):
        time.sleep(max(0, (t0 + t_ms - now_ms()) / 1000))
        zone.set(**zone_args)
        marks[name] = now_ms()

    t0 = now_ms()
    at(1500, "blackout", names={"edge-a": [a2, a3, a5], "edge-b": [a4]}, drop_all=True)
    at(2000, "resume", names={"edge-a": [a2, a3, a5], "edge-b": [a4]})
    at(6000, "a3_gone", names={"edge-a": [a2, a5], "edge-b": [a4]})
    at(12000, "b_silent", names={"edge-a": [a2, a5]}, drop_names={"edge-b"})
    at(18000, "down", names={"edge-a": [a2, a5]}, drop_all=True)
    at(23000, "up", names={"edge-a": [a2, a5]}, drop_names={"edge-b"})
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        print(f"run_sh_watch: run.sh --watch 27 still ran after 60 s\n{out}{err}", file=sys.stderr)
        return 1
    stop.set()
    server.join()
    sock.close()
    print(out, end="")
    print(err, end="", file=sys.stderr)
    if proc.returncode != 0:
        print(f"run_sh_watch: run.sh --watch exited {proc.returncode}", file=sys.stderr)
        return 1

    # the lists printed, with their times: [(ms, {addresses})]
    lists = []
    for line in out.splitlines():
        f = line.split()
        if len(f) == 2 and f[1] == "list":
            lists.append((int(f[0]), set()))
        elif line.startswith("1 sip:") and lists:
            lists[-1][1].add(f[1][len("sip:") :].rsplit(":", 1)[0])

    def listed(t):
        """the list in force at time t"""
        cur = None
        for ts, addrs in lists:
            if ts <= t:
                cur = addrs
        return cur

    def first_time(pred, after):
        for ts, addrs in lists:
            if ts >= after and pred(addrs):
                return ts
        return None

    failures = []

    def check(ok, what):
        print(f"run_sh_watch: {'ok' if ok else 'FAILED'}: {what}")
        if not ok:
            failures.append(what)

    start = {a2, a3, a4}
    check(lists and lists[0][1] == start, f"the first list is {sorted(start)} (got {lists[:1]})")
    # 1. .5 soon after the server answers again
    t5 = first_time(lambda s: a5 in s, marks["blackout"])
    check(
        t5 is not None and t5 - marks["resume"] <= 1500,
        "the new address is listed within 1500 ms of the resolver answering again "
        f"(after {None if t5 is None else t5 - marks['resume']} ms)",
    )
    check(listed(marks["a3_gone"] - 1) == {a2, a3, a4, a5}, "all four listed before .3 goes")
    # 2. .3 stays DROP_S (less one lookup and one step), then goes
    t3 = first_time(lambda s: a3 not in s, marks["a3_gone"])
    lo, hi = DROP_S * 1000 - 2 * LOOKUP_MS, DROP_S * 1000 + 3000
    check(
        t3 is not None and lo <= t3 - marks["a3_gone"] <= hi,
        f"the address gone is dropped {lo}..{hi} ms after "
        f"(after {None if t3 is None else t3 - marks['a3_gone']} ms)",
    )
    # 3. edge-b's questions unanswered: .4 goes, edge-a's stay
    t4 = first_time(lambda s: a4 not in s, marks["b_silent"])
    check(
        t4 is not None and t4 - marks["b_silent"] <= DROP_S * 1000 + 3000,
        "the silent name's address is dropped "
        f"(after {None if t4 is None else t4 - marks['b_silent']} ms)",
    )
    check(listed(marks["down"] - 1) == {a2, a5}, f"edge-a's two stay (got {listed(marks['down'] - 1)})")
    # 4. resolver down for longer than DROP_S: the list stays, also after
    changes = [(ts, addrs) for ts, addrs in lists if ts >= marks["down"]]
    check(not changes, f"the list kept while the resolver is down and after (got {changes})")
    check("is the resolver down?" in err, "the resolver being down is logged")
    check(listed(t0 + 30000) == {a2, a5}, f"the last list is .2 .5 (got {listed(t0 + 30000)})")

    if failures:
        print(f"run_sh_watch: {len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("run_sh_watch: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
