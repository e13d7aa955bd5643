#!/usr/bin/env python3
"""What access control costs a request: blob HEAD server CPU with and without --auth.

    python3 benches/auth_overhead.py [--requests N]

Starts the registry server (release build, codec off) three ways on fresh directories:
without --auth (the baseline, measured in the same run), with --auth and Basic
credentials on every request, and with --auth and a Bearer token from /token. Each gets
the same blob HEADs on one keep-alive connection, in interleaved rounds; the figure is
the server's CPU time (utime + stime from /proc/PID/stat) per request in the least
disturbed and in the median round, and the overhead is the difference from the baseline
as a share of it. Rounds differ by several percent on a busy machine: read the overhead
against that spread. The target (the access-control issue) is under 5%.

Needs `htpasswd` (Debian apache2-utils; installed when run as root) for the bcrypt hash.
"""

import argparse
import base64
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from head_to_head import REPO_ROOT, TICKS, free_port, sha256  # noqa: E402

USER, PASSWORD = "alice", "a long benchmark password"


def bcrypt_hash(password):
    if shutil.which("htpasswd") is None:
        if os.geteuid() != 0:
            sys.exit("htpasswd missing: apt-get install apache2-utils")
        subprocess.run(["apt-get", "install", "-y", "-qq", "apache2-utils"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    out = subprocess.run(["htpasswd", "-nbBC", "10", USER, password], check=True,
                         capture_output=True, text=True).stdout
    return out.strip().split(":", 1)[1]


class Wharf:
    def __init__(self, work, name, extra):
        self.port = free_port()
        binary = os.path.join(REPO_ROOT, "target", "release", "wharf-registry")
        log = open(os.path.join(work, f"{name}.log"), "w")
        self.proc = subprocess.Popen(
            [binary, "--root", os.path.join(work, name), "--listen", f"127.0.0.1:{self.port}",
             "--compression", "off", "--encryption", "off", *extra],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.time() + 30
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/v2/")
                conn.getresponse().read()
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    sys.exit(f"{name} did not start")
                time.sleep(0.1)

    def cpu_seconds(self):
        fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def call(conn, method, path, headers, body=None, expect=(200,)):
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    if resp.status not in expect:
        raise RuntimeError(f"{method} {path}: {resp.status} {data[:300]!r}")
    return resp, data


def push_blob(conn, headers, repo, data):
    digest = sha256(data)
    resp, _ = call(conn, "POST", f"/v2/{repo}/blobs/uploads/", headers, expect=(202,))
    location = resp.getheader("Location")
    sep = "&" if "?" in location else "?"
    call(conn, "PUT", f"{location}{sep}digest={digest}", headers, body=data, expect=(201,))
    return digest


def token(conn, basic, scope):
    query = urllib.parse.urlencode({"scope": scope, "service": "wharf-registry"})
    _, data = call(conn, "GET", f"/token?{query}", {"Authorization": basic})
    return json.loads(data)["token"]


class Workload:
    """Blob HEADs from one keep-alive connection to `server` with `headers`."""

    def __init__(self, name, server, headers):
        self.name, self.server, self.headers = name, server, headers
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        self.digest = push_blob(self.conn, headers, "team/app", os.urandom(4096))
        self.costs, self.rates = [], []
        self.run(200)  # warm up: connection, caches, the password check
        self.costs, self.rates = [], []

    def run(self, n):
        path = f"/v2/team/app/blobs/{self.digest}"
        before, started = self.server.cpu_seconds(), time.time()
        for _ in range(n):
            call(self.conn, "HEAD", path, self.headers)
        self.costs.append((self.server.cpu_seconds() - before) / n * 1e6)
        self.rates.append(n / (time.time() - started))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=10000, help="per round")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    subprocess.run(["cargo", "build", "--release", "--features", "server", "--bin", "wharf-registry"], cwd=REPO_ROOT,
                   check=True)
    work = tempfile.mkdtemp(prefix="wharf-auth-bench-")
    users = os.path.join(work, "users.json")
    with open(users, "w") as f:
        json.dump({"users": [{"name": USER, "password": bcrypt_hash(PASSWORD), "policies": [{
            "Version": "2012-10-17",
            "Statement": {"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}}]}]}, f)
    basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    servers = []
    try:
        plain = Wharf(work, "no-auth", [])
        authed = Wharf(work, "auth", ["--auth", users])
        servers = [plain, authed]
        conn = http.client.HTTPConnection("127.0.0.1", authed.port, timeout=60)
        bearer = token(conn, basic, "repository:team/app:pull,push")
        workloads = [
            Workload("no --auth (baseline)", plain, {}),
            Workload("--auth, Basic", authed, {"Authorization": basic}),
            Workload("--auth, Bearer token", authed, {"Authorization": f"Bearer {bearer}"}),
        ]
        # Rounds interleave the three, so drift (frequency, other load) hits all alike;
        # the least disturbed round of each counts.
        for _ in range(args.rounds):
            for workload in workloads:
                workload.run(args.requests)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    base_min, base_median = min(workloads[0].costs), statistics.median(workloads[0].costs)
    print(f"blob HEAD, {args.rounds} rounds of {args.requests} requests, server CPU per "
          "request (best round, median round):")
    for w in workloads:
        best, median = min(w.costs), statistics.median(w.costs)
        print(f"  {w.name:24} {best:6.1f} µs {median:6.1f} µs  {max(w.rates):7.0f} req/s  "
              f"overhead {(best - base_min) / base_min * 100:+5.1f}% best, "
              f"{(median - base_median) / base_median * 100:+5.1f}% median  "
              f"(rounds: {' '.join(f'{c:.0f}' for c in w.costs)})")


if __name__ == "__main__":
    main()
