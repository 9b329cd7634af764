#!/usr/bin/env python3
"""bench/reload.py: how long a reload takes with many tenants.

Makes a throw-away CA and N tenant certificates (ECDSA P-256, then RSA-2048; one key per kind,
a certificate per tenant), starts livery with all of them, sends SIGHUP R times and reports
the time from SIGHUP until the new generation's workers all accept: livery's own figure (its
"reloaded: ... N ms after the reload began" line) and the one seen from outside (until that
line appears in the log). Only 127.0.0.1; livery is stopped by its PID.

usage: bench/reload.py [--build DIR] [--tenants 500] [--reloads 10] [--workers 2]
"""

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def sh(argv, **kw):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


def make_certs(d, n, rsa):
    """A CA, one key, and n certificates t<i>.bench.test signed by the CA."""
    sh(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", d + "/ca.key", "-out", d + "/ca.pem", "-days", "30", "-subj", "/CN=bench reload CA"])
    key = d + "/tenant.key"
    if rsa:
        sh(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key])
    else:
        sh(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key])
    sh(["openssl", "req", "-new", "-key", key, "-out", d + "/tenant.csr", "-subj", "/CN=tenant"])
    for i in range(n):
        ext = d + "/ext"
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:t%d.bench.test\n" % i)
        sh(["openssl", "x509", "-req", "-in", d + "/tenant.csr", "-CA", d + "/ca.pem", "-CAkey", d + "/ca.key",
            "-CAcreateserial", "-days", "30", "-extfile", ext, "-out", "%s/t%d.pem" % (d, i)])
    return key


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def config(d, n, key, workers):
    L = ["workers = %d;" % workers, 'log_level = "info";',
         'listeners = ( { address = "127.0.0.1"; port = %d; hostname = "gw.bench.test"; default_tenant = "t0"; } );'
         % free_port(),
         'regions = ( { name = "r"; host = "127.0.0.1"; port = 9; verify_name = "relay.bench.test"; '
         'ca_file = "%s/ca.pem"; } );' % d, "tenants = ("]
    for i in range(n):
        L.append('  { name = "t%d"; hostnames = [ "t%d.bench.test" ]; cert = "%s/t%d.pem"; key = "%s"; region = "r"; }%s'
                 % (i, i, d, i, key, "," if i < n - 1 else ""))
    L.append(");")
    path = d + "/livery.conf"
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")
    return path


def wait_log(path, pattern, count, bound=120):
    t0 = time.monotonic()
    while time.monotonic() - t0 < bound:
        with open(path) as f:
            found = re.findall(pattern, f.read(), re.M)
        if len(found) >= count:
            return found
        time.sleep(0.002)
    raise SystemExit("timed out waiting for %r in %s" % (pattern, path))


def run(binary, kind, n, reloads, workers):
    with tempfile.TemporaryDirectory(prefix="livery-reload-") as d:
        key = make_certs(d, n, kind == "RSA")
        conf = config(d, n, key, workers)
        log = d + "/livery.log"
        with open(log, "w") as out:
            t0 = time.monotonic()
            p = subprocess.Popen([binary, "-c", conf], stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        try:
            wait_log(log, r"info: ready \(", 1)
            start = (time.monotonic() - t0) * 1000
            inside, outside = [], []
            for k in range(reloads):
                t0 = time.monotonic()
                p.send_signal(signal.SIGHUP)
                found = wait_log(log, r"reloaded: generation \d+ serving .* ([\d.]+) ms after", k + 1)
                outside.append((time.monotonic() - t0) * 1000)
                inside.append(float(found[k]))
                time.sleep(0.2)  # let the old generation drain and exit
        finally:
            p.send_signal(signal.SIGTERM)
            rc = p.wait(60)
        if rc != 0:
            raise SystemExit("livery exited %d; log: %s" % (rc, open(log).read()[-2000:]))
        return start, inside, outside


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(os.path.dirname(HERE), "build"))
    ap.add_argument("--tenants", type=int, default=500)
    ap.add_argument("--reloads", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    binary = os.path.join(a.build, "livery")
    print("| certificates | tenants | workers | start (ms) | reload, livery's own (ms): median / min / max "
          "| reload, seen from outside (ms): median |")
    print("|---|---|---|---|---|---|")
    for kind in ("ECDSA P-256", "RSA"):
        start, inside, outside = run(binary, kind, a.tenants, a.reloads, a.workers)
        print("| %s | %d | %d | %.0f | %.1f / %.1f / %.1f | %.1f |" % (
            kind, a.tenants, a.workers, start, statistics.median(inside), min(inside), max(inside),
            statistics.median(outside)))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
