#!/usr/bin/env python3
"""ACME: livery orders certificates for tenant host names that have none (or one near expiry)
from a local pebble over HTTP-01 (lego answers the challenge), installs them into cert_dir and
serves them after the watcher's reload, without a restart; a failing ACME server keeps the old
certificate, backs off and retries; an SNI no tenant claims orders nothing.

pebble and pebble-challtestsrv (which resolves every name to 127.0.0.1) are started here on
free loopback ports and stopped by PID."""

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import unittest
import urllib.request

import harness as h
from test_certdir import CertDirLivery, config, first_pem, issue

# Bounds on waits for an order (lego + pebble take about 6 s); not performance thresholds.
ORDER_TIMEOUT = 120

os.environ.update({"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_AUTHZREUSE": "0", "PEBBLE_WFE_NONCEREJECT": "0"})


class ChallTestSrv(h.Process):
    """pebble-challtestsrv as pebble's DNS server: every name is 127.0.0.1, no AAAA."""

    label = "pebble-challtestsrv"

    def start(self):
        d = h.scratch("challtestsrv")
        self.dns_port = h.free_port()
        self._spawn(["pebble-challtestsrv", "-defaultIPv4", h.HOST, "-defaultIPv6", "",
                     "-dns01", "%s:%d" % (h.HOST, self.dns_port), "-http01", "", "-https01", "",
                     "-tlsalpn01", "", "-management", "%s:%d" % (h.HOST, h.free_port())],
                    os.path.join(d, "challtestsrv.log"))
        h.wait_until(lambda: "Starting challenge servers" in self.log() or "dns" in self.log().lower()
                     or self.proc.poll() is not None, "challtestsrv to start")
        if self.proc.poll() is not None:
            raise RuntimeError("pebble-challtestsrv exited:\n%s" % self.log())
        return self


class Pebble(h.Process):
    """pebble on free loopback ports; HTTP-01 validation goes to http_port (where livery's
    lego answers)."""

    label = "pebble"

    def __init__(self, dns_port, tls, ca, port=None, http_port=None):
        super().__init__()
        self.dns_port, self.tls, self.ca = dns_port, tls, ca
        self.port = port or h.free_port()
        self.http_port = http_port or h.free_port()
        self.dir = h.scratch("pebble")

    @property
    def directory(self):
        return "https://localhost:%d/dir" % self.port

    def start(self):
        self.mgmt_port = h.free_port()
        cfg = {"pebble": {"listenAddress": "%s:%d" % (h.HOST, self.port),
                          "managementListenAddress": "%s:%d" % (h.HOST, self.mgmt_port),
                          "certificate": self.tls[0], "privateKey": self.tls[1],
                          "httpPort": self.http_port, "tlsPort": h.free_port(),
                          "ocspResponderURL": "", "externalAccountBindingRequired": False}}
        path = os.path.join(self.dir, "pebble-config.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        self._spawn(["pebble", "-config", path, "-dnsserver", "%s:%d" % (h.HOST, self.dns_port)],
                    os.path.join(self.dir, "pebble.log"))
        h.wait_until(lambda: self._get(self.port, "/dir") or self.proc.poll() is not None, "pebble to answer")
        if self.proc.poll() is not None:
            raise RuntimeError("pebble exited:\n%s" % self.log())
        # pebble makes a new root at each start: fetch it after each one.
        self.root = os.path.join(self.dir, "pebble-root-%d.pem" % self.proc.pid)
        with open(self.root, "wb") as f:
            f.write(self._get(self.mgmt_port, "/roots/0"))
        return self

    def _get(self, port, path):
        ctx = ssl.create_default_context(cafile=self.ca)
        try:
            with urllib.request.urlopen("https://localhost:%d%s" % (port, path), context=ctx, timeout=5) as r:
                return r.read()
        except OSError:
            return None


def acme_block(pebble, ca, renew_days=30, backoff=1, directory=None, key_type="ecdsa"):
    return ["acme = {",
            '  directory = "%s";' % (directory or pebble.directory),
            '  email = "ops@livery.test";',
            '  ca_file = "%s";' % ca,
            '  http_listen = "%s:%d";' % (h.HOST, pebble.http_port),
            "  renew_days = %d;" % renew_days,
            "  backoff = %d;" % backoff,
            '  key_type = "%s";' % key_type,
            "};"]


class AcmeTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.certs = h.certs()
        cls.ca = cls.certs.ca
        gen = h.scratch("acme-gen")
        cls.api_tls = issue(os.path.dirname(cls.ca), os.path.join(gen, "pebble-api"), ["localhost"])
        cls.soon = issue(os.path.dirname(cls.ca), os.path.join(gen, "soon"), ["smtp.renew.test"], "--days", "10")
        cls.chall = ChallTestSrv().start()

    @classmethod
    def tearDownClass(cls):
        cls.chall.stop()

    def setUp(self):
        self.procs = []

    def tearDown(self):
        for p in reversed(self.procs):
            p.stop()

    def pebble(self, **kw):
        p = Pebble(self.chall.dns_port, self.api_tls, self.ca, **kw).start()
        self.procs.append(p)
        return p

    def cert_dir(self, *extra):
        """A cert_dir with the default tenant's certificate, and extra (pem, key) pairs."""
        d = h.scratch("acme-certs")
        for i, (pem, key) in enumerate([(self.certs.pem("acme"), self.certs.key("acme"))] + list(extra)):
            shutil.copy(pem, os.path.join(d, "pair%d.pem" % i))
            shutil.copy(key, os.path.join(d, "pair%d.key" % i))
            os.chmod(os.path.join(d, "pair%d.key" % i), 0o600)
        return d

    def livery(self, cert_dir, tenants, acme):
        relay = h.Relay().start()
        self.procs.append(relay)
        tenants = [("acme", ["smtp.acme.test"], [])] + tenants
        p = CertDirLivery(lambda ports: config(cert_dir, tenants, relay_port=relay.port, ports=ports,
                                               extra_top=acme))
        self.procs.append(p)
        return p.start()

    def stop_clean(self, p):
        """livery exits 0 on SIGTERM, with no sanitizer report and no secret in its output."""
        self.assertEqual(p.stop(), 0)
        log = p.log()
        for word in ("AddressSanitizer", "LeakSanitizer", "runtime error:", "PRIVATE KEY"):
            self.assertNotIn(word, log)
        h.check_output(log)

    def metrics(self, port):
        with urllib.request.urlopen("http://%s:%d/metrics" % (h.HOST, port), timeout=h.TIMEOUT) as r:
            return r.read().decode()

    def verifies(self, p, name, root, rsa=False):
        """Whether livery serves name a certificate that verifies against root for name (the
        RSA one, with rsa: the client then offers no ECDSA signature algorithm)."""
        sigalgs = ["-sigalgs", "RSA-PSS+SHA256:RSA+SHA256", "-tls1_2"] if rsa else []
        r = subprocess.run(["openssl", "s_client", "-connect", "%s:%d" % (h.HOST, p.ports[1]), "-servername", name,
                            "-verify_return_error", "-verify_hostname", name, "-CAfile", root] + sigalgs,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=h.TIMEOUT)
        return r.returncode == 0 and "Verify return code: 0 (ok)" in r.stdout.decode(errors="replace")

    def check_report(self, p):
        r = subprocess.run([h.LIVERY_BIN, "check", "-c", p.config_path], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=h.TIMEOUT)
        return r.stdout.decode(errors="replace")

    def test_new_tenant_gets_a_certificate(self):
        pebble = self.pebble()
        d = self.cert_dir((self.certs.pem("globex"), self.certs.key("globex")))
        admin = h.free_port()
        p = self.livery(d, [("brand", ["smtp.brand.test", "*.globex.test"], [])],
                        acme_block(pebble, self.ca) + ['admin_listen = "%s:%d";' % (h.HOST, admin)])
        h.wait_until(lambda: self.verifies(p, "smtp.brand.test", pebble.root), "a pebble certificate for smtp.brand.test",
                     timeout=ORDER_TIMEOUT, interval=0.5)
        log = p.log()
        self.assertIn("acme: ordering a certificate for smtp.brand.test (ecdsa)", log)
        self.assertRegex(log, r"acme: smtp\.brand\.test: certificate obtained \(ecdsa\) and installed as "
                              r"\S+/smtp\.brand\.test\.acme\.pem")
        self.assertIn("reloading the configuration (certificates changed under cert_dir)", log)
        # The wildcard needs DNS-01: never ordered; the default tenant's name has a certificate.
        self.assertNotIn("ordering a certificate for *.globex.test", log)
        self.assertNotIn("ordering a certificate for smtp.acme.test", log)
        self.assertEqual(os.stat(os.path.join(d, "smtp.brand.test.acme.key")).st_mode & 0o777, 0o600)
        self.assertTrue(self.verifies(p, "smtp.acme.test", self.ca))
        report = self.check_report(p)
        self.assertRegex(report, r"smtp\.brand\.test\n(?:.*\n)*?\s+ok\s+acme: valid: renewal due at \d{4}-")
        m = self.metrics(admin)
        self.assertIn('livery_acme_orders_total{result="ok"} 1\n', m)
        self.assertIn('livery_acme_orders_total{result="failed"} 0\n', m)
        self.assertRegex(m, r'livery_acme_renewal_timestamp_seconds\{tenant="brand",name="smtp\.brand\.test"\} \d+\n')
        self.assertNotIn('name="*.globex.test"} ', m.split("livery_acme_renewal")[1])
        self.stop_clean(p)

    def test_near_expiry_is_renewed_without_restart(self):
        pebble = self.pebble()
        # key_type "both": the ECDSA certificate near expiry is renewed, the missing RSA one ordered.
        p = self.livery(self.cert_dir(self.soon), [("renew", ["smtp.renew.test"], [])],
                        acme_block(pebble, self.ca, key_type="both"))
        pid = p.proc.pid
        h.wait_until(lambda: self.verifies(p, "smtp.renew.test", pebble.root)
                     and self.verifies(p, "smtp.renew.test", pebble.root, rsa=True), "the renewed certificates",
                     timeout=ORDER_TIMEOUT, interval=0.5)
        self.assertIn("acme: ordering a certificate for smtp.renew.test (rsa)", p.log())
        self.assertEqual(p.proc.pid, pid)
        self.assertTrue(p.running())
        self.assertIn("acme: ordering a certificate for smtp.renew.test (ecdsa)", p.log())
        self.assertRegex(p.log(), r"reloaded: generation 2 serving")
        self.stop_clean(p)

    def test_failure_keeps_the_old_certificate_backs_off_and_retries(self):
        # The directory's port has no pebble yet: every order fails until one starts there.
        port, http_port = h.free_port(), h.free_port()
        down = Pebble(self.chall.dns_port, self.api_tls, self.ca, port=port, http_port=http_port)
        d = self.cert_dir(self.soon)
        p = self.livery(d, [("renew", ["smtp.renew.test"], []), ("brand", ["smtp.brand.test"], [])],
                        acme_block(down, self.ca, backoff=1))
        fails = lambda n, name: re.search(r"acme: %s: order failed \(%d in a row\): lego exited with status \d+: .+; "
                                          r"next try in %d s" % (re.escape(name), n, 2 ** (n - 1)), p.log())
        h.wait_until(lambda: fails(2, "smtp.renew.test") and fails(2, "smtp.brand.test"), "two failed orders each",
                     timeout=ORDER_TIMEOUT, interval=0.2)
        # The old certificate stays; the name without one gets the default certificate.
        with open(self.soon[0]) as f:
            self.assertEqual(p.served("smtp.renew.test"), first_pem(f.read()))
        with open(self.certs.pem("acme")) as f:
            self.assertEqual(p.served("smtp.brand.test"), first_pem(f.read()))
        self.assertRegex(self.check_report(p), r"warn\s+acme: backoff: retry at .* after \d+ failures: lego exited")
        # The ACME server comes back: the next retry succeeds.
        pebble = self.pebble(port=port, http_port=http_port)
        h.wait_until(lambda: self.verifies(p, "smtp.renew.test", pebble.root)
                     and self.verifies(p, "smtp.brand.test", pebble.root),
                     "both certificates after the retries", timeout=ORDER_TIMEOUT, interval=0.5)
        self.stop_clean(p)

    def test_unclaimed_sni_orders_nothing(self):
        # No ACME server: the claimed name never gets a certificate, so it stays on demand.
        down = Pebble(self.chall.dns_port, self.api_tls, self.ca)
        p = self.livery(self.cert_dir(), [("brand", ["smtp.brand.test"], [])], acme_block(down, self.ca, backoff=3600))
        h.wait_until(lambda: "acme: smtp.brand.test: order failed (1 in a row)" in p.log(), "the first failure")
        with open(self.certs.pem("acme")) as f:
            default = first_pem(f.read())
        self.assertEqual(p.served("random.unclaimed.test"), default)
        self.assertEqual(p.served("smtp.brand.test"), default)
        # The claimed name reached the master (after the other handshake, through the same pipe).
        h.wait_until(lambda: "acme: smtp.brand.test asked for on demand (a client's SNI): backoff" in p.log(),
                     "the on-demand request")
        self.assertNotIn("random.unclaimed.test asked", p.log())
        self.assertNotIn("ordering a certificate for random.unclaimed.test", p.log())
        self.assertEqual(p.log().count("acme: ordering a certificate"), 1)
        with open(self.state_json(p)) as f:
            state = json.load(f)
        self.assertEqual(sorted(state["names"]), ["smtp.acme.test", "smtp.brand.test"])
        self.assertEqual(state["names"]["smtp.acme.test"]["state"], "valid")
        self.assertEqual(state["names"]["smtp.brand.test"]["state"], "backoff")
        self.stop_clean(p)

    def test_stop_during_an_order(self):
        # A directory that accepts connections and never answers: lego hangs in its first request.
        silent = socket.socket()
        silent.bind((h.HOST, 0))
        silent.listen(8)
        self.addCleanup(silent.close)
        port = silent.getsockname()[1]
        down = Pebble(self.chall.dns_port, self.api_tls, self.ca, port=port)
        d = self.cert_dir()
        p = self.livery(d, [("brand", ["smtp.brand.test"], [])], acme_block(down, self.ca))
        h.wait_until(lambda: "acme: ordering a certificate for smtp.brand.test" in p.log(), "the order")
        lego = h.wait_until(lambda: lego_pid(d), "lego to run")
        # SIGTERM: livery drains and exits 0 at once, and lego does not outlive it.
        self.stop_clean(p)
        h.wait_until(lambda: not alive(lego), "lego to end")
        self.assertNotIn("certificate obtained", p.log())

    def state_json(self, p):
        text = h.read_text(p.config_path)
        cert_dir = re.search(r'^cert_dir = "([^"]+)";', text, re.M).group(1)
        return os.path.join(cert_dir, ".acme", "state.json")


def lego_pid(state_under):
    """The pid of a lego whose command line names a path under state_under, or None."""
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"lego" and any(state_under.encode() in a for a in argv):
            return int(pid)
    return None


def alive(pid):
    """Whether pid runs (a zombie does not count)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


if __name__ == "__main__":
    unittest.main()
