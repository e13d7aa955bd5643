#!/usr/bin/env python3
"""Head-to-head: the wharf registry server against CNCF Distribution, same workloads, same run.

    python3 benches/head_to_head.py [--quick] [--skip-skopeo]

Starts three servers on loopback, each on a fresh directory:
  - wharf with the at-rest codec off (`--compression off --encryption off`: blobs in
    checksummed frames that name them, so full reads check CRC-32s, not sha256),
  - wharf with its defaults (compressed and encrypted at rest),
  - Distribution (Debian package `docker-registry`, filesystem storage),
then runs every workload against each and prints throughput, the server's CPU time per
operation or per byte (utime + stime of the server process from /proc/PID/stat, so the
client's own CPU does not count), and the server's peak RSS (VmHWM). Ratios are
Distribution's figure over wharf's: above 1 means wharf spends less.

Needs root (or both packages present) to install `docker-registry` and `skopeo`, and
builds the server with `cargo build --release --features server --bin wharf-registry`.
"""

import argparse
import gzip
import hashlib
import http.client
import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICKS = os.sysconf("SC_CLK_TCK")
MIB = 1 << 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_tools():
    missing = [pkg for tool, pkg in (("docker-registry", "docker-registry"), ("skopeo", "skopeo"))
               if shutil.which(tool) is None]
    if missing:
        if os.geteuid() != 0:
            sys.exit(f"missing {' '.join(missing)}: apt-get install them, or run as root")
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    subprocess.run(["cargo", "build", "--release", "--features", "server", "--bin", "wharf-registry"], cwd=REPO_ROOT,
                   check=True)


class Server:
    """A registry process on loopback whose CPU time and peak RSS we read from /proc."""

    def __init__(self, name, argv, port, log):
        self.name, self.port = name, port
        self.proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.time() + 30
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/v2/")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline or self.proc.poll() is not None:
                sys.exit(f"{name} did not start")
            time.sleep(0.1)

    def cpu_seconds(self):
        fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime

    def peak_rss_mib(self):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def start_servers(work):
    servers = []
    wharf = os.path.join(REPO_ROOT, "target", "release", "wharf-registry")
    for name, extra in (("wharf", ["--compression", "off", "--encryption", "off"]),
                        ("wharf+codec", [])):
        port = free_port()
        log = open(os.path.join(work, f"{name}.log"), "w")
        servers.append(Server(name, [wharf, "--root", os.path.join(work, name),
                                     "--listen", f"127.0.0.1:{port}", *extra], port, log))
    port = free_port()
    config = os.path.join(work, "distribution.yml")
    with open(config, "w") as f:
        f.write(f"""version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {os.path.join(work, "distribution")}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
""")
    log = open(os.path.join(work, "distribution.log"), "w")
    servers.append(Server("distribution", ["docker-registry", "serve", config], port, log))
    return servers


# --- clients -------------------------------------------------------------------------


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Client:
    """One keep-alive connection speaking the distribution API."""

    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)

    def call(self, method, path, body=None, headers=None, expect=(200,)):
        self.conn.request(method, path, body=body, headers=headers or {})
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status not in expect:
            raise RuntimeError(f"{method} {path}: {resp.status} {data[:300]!r}")
        return resp, data

    def push_blob(self, repo, data):
        """POST, one PATCH with the bytes, PUT: what docker and skopeo do."""
        digest = sha256(data)
        resp, _ = self.call("HEAD", f"/v2/{repo}/blobs/{digest}", expect=(200, 404))
        if resp.status == 200:
            return digest
        resp, _ = self.call("POST", f"/v2/{repo}/blobs/uploads/", expect=(202,))
        location = resp.getheader("Location")
        resp, _ = self.call("PATCH", location, body=data,
                            headers={"Content-Type": "application/octet-stream"}, expect=(202,))
        location = resp.getheader("Location")
        sep = "&" if "?" in location else "?"
        self.call("PUT", f"{location}{sep}digest={digest}", expect=(201,))
        return digest

    def push_manifest(self, repo, ref, body):
        self.call("PUT", f"/v2/{repo}/manifests/{ref}", body=body,
                  headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
                  expect=(201,))


def tiny_image(seed):
    """A config and one small layer, unique per seed, and the manifest listing them."""
    layer = os.urandom(1024) + seed.encode()
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha256(layer), "size": len(layer)}],
    }).encode()
    return config, layer, manifest


def in_processes(clients, work):
    """Runs work(client_index) in `clients` forked processes at once; fails if any does."""
    if clients == 1:
        work(0)
        return
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=work, args=(i,)) for i in range(clients)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"{len(failed)} of {clients} client processes failed: {failed}")


# --- workloads: each returns (operations, bytes moved), run under measure() ----------


def measure(server, workload):
    cpu0, wall0 = server.cpu_seconds(), time.perf_counter()
    ops, nbytes = workload(server.port)
    wall = time.perf_counter() - wall0
    cpu = server.cpu_seconds() - cpu0
    return {"ops": ops, "bytes": nbytes, "wall": wall, "cpu": cpu,
            "rss": server.peak_rss_mib()}


def setup_small(port):
    c = Client(port)
    config, layer, manifest = tiny_image("fixture")
    c.push_blob("bench/fixture", config)
    c.push_blob("bench/fixture", layer)
    c.push_manifest("bench/fixture", "latest", manifest)
    return sha256(layer)


def blob_heads(n, fixtures):
    def run(port):
        c = Client(port)
        digest = fixtures[port]
        for _ in range(n):
            c.call("HEAD", f"/v2/bench/fixture/blobs/{digest}")
        return n, 0
    return run


def manifest_gets(n):
    def run(port):
        c = Client(port)
        headers = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
        for _ in range(n):
            c.call("GET", "/v2/bench/fixture/manifests/latest", headers=headers)
        return n, 0
    return run


def small_puts(n):
    blobs = [os.urandom(4096) for _ in range(n)]

    def run(port):
        c = Client(port)
        for data in blobs:
            c.push_blob("bench/small", data)
        return n, n * 4096
    return run


def image_pushes(n, clients):
    """Tiny image pushes from `clients` processes at once (threads would share one
    interpreter lock, and the client, not the server, would set the pace). The images
    are made before the clock starts; each server gets the same ones, into a fresh store."""
    per = n // clients
    images = [[tiny_image(f"{i}-{k}-{time.time_ns()}") for k in range(per)]
              for i in range(clients)]

    def run(port):
        def work(i):
            c = Client(port)
            for k, (config, layer, manifest) in enumerate(images[i]):
                c.push_blob(f"bench/tiny{i}", config)
                c.push_blob(f"bench/tiny{i}", layer)
                c.push_manifest(f"bench/tiny{i}", f"t{k}", manifest)
        in_processes(clients, work)
        return per * clients, 0
    return run


def large_puts(size, reps, state):
    blobs = [os.urandom(size) for _ in range(reps)]
    state["digests"] = [sha256(b) for b in blobs]

    def run(port):
        c = Client(port)
        for data in blobs:
            c.push_blob("bench/large", data)
        return reps, size * reps
    return run


def large_gets(size, reps, state):
    def run(port):
        c = Client(port)
        for digest in state["digests"][:reps]:
            c.conn.request("GET", f"/v2/bench/large/blobs/{digest}")
            resp = c.conn.getresponse()
            n = 0
            while chunk := resp.read(1 << 20):
                n += len(chunk)
            assert resp.status == 200 and n == size, (resp.status, n)
        return reps, size * reps
    return run


def oci_layout(directory, layer_sizes):
    """An OCI layout holding one image with incompressible layers of `layer_sizes`."""
    blobs = os.path.join(directory, "blobs", "sha256")
    os.makedirs(blobs)

    def put(data):
        digest = sha256(data)
        with open(os.path.join(blobs, digest[7:]), "wb") as f:
            f.write(data)
        return {"digest": digest, "size": len(data)}

    layers = []
    for size in layer_sizes:
        # A real gzip stream (stored, level 0) of random bytes: clients keep it as it is.
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                       **put(gzip.compress(os.urandom(size), compresslevel=0))})
    config = {"mediaType": "application/vnd.oci.image.config.v1+json",
              **put(json.dumps({"architecture": "amd64", "os": "linux",
                                "rootfs": {"type": "layers", "diff_ids": []}}).encode())}
    manifest = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": config, "layers": layers}).encode()
    entry = {"mediaType": "application/vnd.oci.image.manifest.v1+json", **put(manifest),
             "annotations": {"org.opencontainers.image.ref.name": "v1"}}
    with open(os.path.join(directory, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [entry]}, f)
    with open(os.path.join(directory, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    return sum(layer["size"] for layer in layers)


def skopeo_push(layout, total, repo):
    def run(port):
        subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet", "--preserve-digests",
                        "--dest-tls-verify=false", f"oci:{layout}:v1",
                        f"docker://127.0.0.1:{port}/{repo}:v1"], check=True)
        return 1, total
    return run


# --- report --------------------------------------------------------------------------


def fmt_cost(result):
    if result["bytes"] and result["ops"] <= 20:
        return result["cpu"] / result["bytes"] * 1e9, "ns/B"
    return result["cpu"] / result["ops"] * 1e3, "ms/op"


def fmt_rate(result):
    if result["bytes"] and result["ops"] <= 20:
        return f"{result['bytes'] / result['wall'] / MIB:8.1f} MiB/s"
    return f"{result['ops'] / result['wall']:8.0f} op/s "


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer operations, smaller layers")
    parser.add_argument("--skip-skopeo", action="store_true")
    args = parser.parse_args()
    ensure_tools()
    scale = 10 if args.quick else 1
    work = tempfile.mkdtemp(prefix="wharf-h2h-")
    servers = start_servers(work)
    state = {}
    fixtures = {s.port: setup_small(s.port) for s in servers}
    workloads = [
        ("blob HEAD", blob_heads(20000 // scale, fixtures)),
        ("manifest GET", manifest_gets(20000 // scale)),
        ("4 KiB blob PUT", small_puts(3000 // scale)),
        ("tiny image push, 1 client", image_pushes(1000 // scale, 1)),
        ("tiny image push, 4 clients", image_pushes(2000 // scale, 4)),
        ("64 MiB blob PUT", large_puts(64 * MIB, 8 // min(scale, 4), state)),
        ("64 MiB blob GET", large_gets(64 * MIB, 8 // min(scale, 4), state)),
    ]
    if not args.skip_skopeo:
        big = os.path.join(work, "layout-512m")
        many = os.path.join(work, "layout-10x20m")
        big_total = oci_layout(big, [512 * MIB // scale])
        many_total = oci_layout(many, [20 * MIB // scale] * 10)
        workloads.append(("skopeo: one 512 MiB layer", skopeo_push(big, big_total, "bench/big")))
        workloads.append(("skopeo: 10 x 20 MiB layers",
                          skopeo_push(many, many_total, "bench/many")))

    names = [s.name for s in servers]
    print("server CPU per operation or byte (lower is better); ratio = distribution / wharf\n")
    header = f"{'workload':30}" + "".join(f"{n:>30}" for n in names) + f"{'ratio':>8}"
    print(header)
    print("-" * len(header))
    results = []
    try:
        for title, workload in workloads:
            row = {s.name: measure(s, workload) for s in servers}
            results.append((title, row))
            cells = []
            for s in servers:
                cost, unit = fmt_cost(row[s.name])
                cells.append(f"{cost:9.3f} {unit:5} {fmt_rate(row[s.name])}")
            ratio = fmt_cost(row["distribution"])[0] / max(fmt_cost(row["wharf"])[0], 1e-12)
            print(f"{title:30}" + "".join(f"{c:>30}" for c in cells) + f"{ratio:8.1f}",
                  flush=True)
        print()
        print("peak RSS (MiB): " + ", ".join(f"{s.name} {s.peak_rss_mib():.0f}" for s in servers))
    finally:
        for s in servers:
            s.stop()
        # The stores and layouts hold gigabytes of random layers; the logs stay.
        for name in names + ["layout-512m", "layout-10x20m"]:
            shutil.rmtree(os.path.join(work, name), ignore_errors=True)
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(f"raw figures and server logs in {work}")


if __name__ == "__main__":
    main()
