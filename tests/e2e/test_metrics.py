#!/usr/bin/env python3
"""The admin listener (admin_listen): GET /metrics in the Prometheus text format, summed over
every worker process; /healthz and /readyz (503 while livery drains); the bearer token
(admin_token); nothing listening when admin_listen is unset."""

import base64
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import harness as h

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{(name, frozenset of (label, value)): float}; every line a comment or a sample."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            raise AssertionError("not an exposition line: %r" % line)
        labels = frozenset(LABEL.findall(m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def value(metrics, name, /, **labels):
    """The sample's value; 0 when the series is absent (nothing counted yet)."""
    return metrics.get((name, frozenset(labels.items())), 0.0)


def http_get(port, path, token=None, method="GET"):
    """(status, body) of one request to the admin listener."""
    req = urllib.request.Request("http://%s:%d%s" % (h.HOST, port, path), method=method)
    if token is not None:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=h.TIMEOUT) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def listening_ports(pid):
    """The TCP ports the livery processes (master and workers) hold in LISTEN state."""
    inodes = set()
    for p in [pid] + h.children(pid):
        try:
            for fd in os.listdir("/proc/%d/fd" % p):
                link = os.readlink("/proc/%d/fd/%s" % (p, fd))
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            continue
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and cols[9] in inodes:
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


class AdminLivery(h.Livery):
    """livery with admin_listen on a free loopback port (and extra top-level settings)."""

    def __init__(self, relay, top=(), **config_args):
        super().__init__(relay, **config_args)
        self.top = list(top)
        self.admin_port = None

    def start(self):
        for attempt in range(5):
            self.admin_port = h.free_port()
            self.config_args["top_extra"] = self.top + ['admin_listen = "%s:%d";' % (h.HOST, self.admin_port)]
            try:
                return super().start()
            except RuntimeError:
                if attempt == 4:
                    raise


class MetricsTest(h.ProxyTestCase):
    """Two workers: every scrape, whichever worker answers, sums both."""

    livery_class = AdminLivery
    livery_config = {"top": ["workers = 2;", "limits = { tls_timeout = 1; };"]}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        h.wait_until(lambda: len(h.children(cls.livery.proc.pid)) == 2, "two workers")

    def scrape(self):
        status, body = http_get(self.livery.admin_port, "/metrics")
        self.assertEqual(status, 200, body)
        return parse_metrics(body), body

    def failed_auth(self):
        c = self.starttls_session(auth=False)
        self.assertReply(c.cmd("AUTH PLAIN " + h.plain_auth(password="wrong")), 535)
        self.assertReply(c.cmd("QUIT"), 221)
        c.read_eof()

    def failed_handshake(self):
        s = socket.create_connection((h.HOST, self.livery.implicit_port), timeout=h.TIMEOUT)
        s.sendall(b"\x16\x03\x01\x00\x05hello")  # a TLS record that is no ClientHello
        try:
            while s.recv(4096):
                pass
        except OSError:
            pass
        s.close()

    def wait_sessions(self, before, tenant, end, n):
        key = dict(tenant=tenant, end=end)
        h.wait_until(lambda: value(self.scrape()[0], "livery_sessions_total", **key) >=
                     value(before, "livery_sessions_total", **key) + n, "%d more %s sessions" % (n, end))

    def test_counters_move_as_sessions_succeed_and_fail(self):
        before, _ = self.scrape()
        self.deliver()
        self.failed_auth()
        self.failed_handshake()
        self.wait_sessions(before, "acme", "quit", 2)
        self.wait_sessions(before, "default", "client_tls_failed", 1)
        after, _ = self.scrape()
        delta = lambda name, **l: value(after, name, **l) - value(before, name, **l)
        implicit = "%s:%d" % (h.HOST, self.livery.implicit_port)
        starttls = "%s:%d" % (h.HOST, self.livery.starttls_port)
        self.assertEqual(delta("livery_connections_accepted_total", listener=starttls), 2)
        self.assertEqual(delta("livery_connections_accepted_total", listener=implicit), 1)
        self.assertEqual(delta("livery_client_tls_handshakes_total", listener=starttls, result="ok"), 2)
        self.assertEqual(delta("livery_client_tls_handshakes_total", listener=implicit, result="failed"), 1)
        self.assertEqual(delta("livery_client_tls_handshake_seconds_count", listener=starttls), 2)
        self.assertEqual(delta("livery_auth_total", tenant="acme", result="ok"), 1)
        self.assertEqual(delta("livery_auth_total", tenant="acme", result="failed"), 1)
        self.assertEqual(delta("livery_messages_total", tenant="acme", result="2xx"), 1)
        self.assertEqual(delta("livery_relay_verdict_seconds_count", region="relay"), 1)
        self.assertEqual(delta("livery_relay_legs_total", region="relay", result="ok"), 2)
        self.assertEqual(delta("livery_relay_setup_seconds_count", region="relay"), 2)
        self.assertEqual(delta("livery_session_duration_seconds_count", tenant="acme"), 2)
        self.assertGreater(delta("livery_client_bytes_total", tenant="acme", direction="in"), len(h.SAMPLE_BODY))
        self.assertGreater(delta("livery_relay_bytes_total", region="relay", direction="out"), len(h.SAMPLE_BODY))
        self.assertEqual(value(after, "livery_connections_active", listener=starttls), 0)

    def test_refused_by_livery_and_resumption(self):
        before, _ = self.scrape()
        c = self.starttls_session()
        self.assertReply(c.cmd("MAIL FROM:<ann@acme.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<bob@example.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b"Subject: nul\r\n\r\nbad \x00 byte\r\n.\r\n")  # NUL in content: livery refuses it
        self.assertReply(c.reply(), 554)
        self.assertReply(c.cmd("QUIT"), 221)
        c.read_eof()
        self.wait_sessions(before, "acme", "quit", 1)
        after, _ = self.scrape()
        self.assertEqual(value(after, "livery_messages_total", tenant="acme", result="refused_by_livery") -
                         value(before, "livery_messages_total", tenant="acme", result="refused_by_livery"), 1)
        legs = sum(value(after, "livery_relay_tls_handshakes_total", region="relay", resumed=r) for r in
                   ("true", "false"))
        self.assertEqual(legs, value(after, "livery_relay_legs_total", region="relay", result="ok"))

    def test_client_handshake_timeout(self):
        implicit = "%s:%d" % (h.HOST, self.livery.implicit_port)
        key = dict(listener=implicit, result="timeout")
        before = value(self.scrape()[0], "livery_client_tls_handshakes_total", **key)
        s = socket.create_connection((h.HOST, self.livery.implicit_port), timeout=h.TIMEOUT)
        try:
            self.assertEqual(s.recv(4096), b"")  # silent: livery gives up after tls_timeout
        finally:
            s.close()
        h.wait_until(lambda: value(self.scrape()[0], "livery_client_tls_handshakes_total", **key) == before + 1,
                     "a handshake timeout counted")

    def test_active_connections_gauge(self):
        starttls = "%s:%d" % (h.HOST, self.livery.starttls_port)
        c = self.client()
        self.assertReply(c.reply(), 220)
        self.assertGreaterEqual(value(self.scrape()[0], "livery_connections_active", listener=starttls), 1)
        self.assertReply(c.cmd("QUIT"), 221)
        c.read_eof()
        h.wait_until(lambda: value(self.scrape()[0], "livery_connections_active", listener=starttls) == 0,
                     "no active connection")

    def test_concurrent_sessions_counted_exactly_and_monotonically(self):
        """100 short sessions from 10 threads (spread over both workers) while another thread
        scrapes: every scrape's counters are at least the previous one's, and the totals
        come out exact."""
        import threading
        starttls = "%s:%d" % (h.HOST, self.livery.starttls_port)
        before, _ = self.scrape()
        scrapes, errors, done = [], [], threading.Event()

        def sessions():
            try:
                for _ in range(10):
                    c = h.SMTPClient(self.livery.starttls_port)
                    if c.reply().code != 220 or c.cmd("QUIT").code != 221:
                        errors.append("bad reply")
                    c.close()
            except Exception as e:  # reported below, in the test's thread
                errors.append(repr(e))

        def scraper():
            while not done.is_set() and len(scrapes) < 500:
                scrapes.append(self.scrape()[0])

        threads = [threading.Thread(target=sessions) for _ in range(10)]
        watcher = threading.Thread(target=scraper)
        watcher.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join(h.TIMEOUT)
        key = dict(tenant="default", end="quit")
        h.wait_until(lambda: value(self.scrape()[0], "livery_sessions_total", **key) ==
                     value(before, "livery_sessions_total", **key) + 100, "100 sessions counted")
        done.set()
        watcher.join(h.TIMEOUT)
        self.assertEqual(errors, [])
        after, _ = self.scrape()
        self.assertEqual(value(after, "livery_connections_accepted_total", listener=starttls) -
                         value(before, "livery_connections_accepted_total", listener=starttls), 100)
        self.assertGreater(len(scrapes), 1)
        for prev, cur in zip([before] + scrapes, scrapes + [after]):
            for k, v in prev.items():
                if k[0].endswith("_total"):
                    self.assertGreaterEqual(cur.get(k, 0.0), v, "%r went backwards" % (k,))

    def test_every_worker_answers_the_same_sums(self):
        self.deliver()
        self.wait_sessions({}, "acme", "quit", 1)
        seen = {value(self.scrape()[0], "livery_sessions_total", tenant="acme", end="quit") for _ in range(20)}
        self.assertEqual(len(seen), 1, "scrapes disagree: %r" % seen)

    def test_counters_survive_a_worker_crash(self):
        self.deliver()
        self.wait_sessions({}, "acme", "quit", 1)
        before, _ = self.scrape()
        victim = h.children(self.livery.proc.pid)[0]
        os.kill(victim, signal.SIGKILL)
        h.wait_until(lambda: victim not in h.children(self.livery.proc.pid) and len(h.children(self.livery.proc.pid)) == 2,
                     "the worker replaced")
        h.wait_until(lambda: "replacing it" in self.livery.log() and
                     re.search(r"worker \d+ ready", self.livery.log().rsplit("replacing it", 1)[1]), "a new worker")
        for _ in range(10):
            after, _ = self.scrape()
            for key, v in before.items():
                if key[0].endswith(("_total", "_count", "_bucket", "_sum")):
                    self.assertGreaterEqual(after.get(key, 0.0), v, "%r went backwards" % (key,))

    def test_promtool_accepts_the_exposition(self):
        self.deliver()
        _, body = self.scrape()
        r = subprocess.run(["promtool", "check", "metrics"], input=body.encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout.decode())
        for family in ("livery_connections_accepted_total", "livery_sessions_total", "livery_config_generation",
                       "livery_certificate_expiry_seconds", "livery_relay_setup_seconds"):
            self.assertIn("# TYPE %s " % family, body)

    def test_certificate_expiry(self):
        after, _ = self.scrape()
        not_after = h.not_after(self.certs.pem("acme"))
        left = value(after, "livery_certificate_expiry_seconds", tenant="acme", name="smtp.acme.test")
        self.assertAlmostEqual(left, not_after - time.time(), delta=120)
        self.assertIn(("livery_certificate_expiry_seconds", frozenset({("tenant", "acme"), ("name", "mail.acme.test")})),
                      after)

    def test_health_and_readiness(self):
        self.assertEqual(http_get(self.livery.admin_port, "/healthz"), (200, "ok\n"))
        self.assertEqual(http_get(self.livery.admin_port, "/readyz"), (200, "ready\n"))
        self.assertEqual(http_get(self.livery.admin_port, "/nothing")[0], 404)
        self.assertEqual(http_get(self.livery.admin_port, "/metrics", method="POST")[0], 405)

    def test_admin_port_is_listening(self):
        ports = listening_ports(self.livery.proc.pid)
        self.assertEqual(ports, {self.livery.starttls_port, self.livery.implicit_port, self.livery.admin_port})

    def test_reload_keeps_serving_and_counts(self):
        before, _ = self.scrape()
        gen = value(before, "livery_config_generation")
        os.kill(self.livery.proc.pid, signal.SIGHUP)
        # The admin socket is kept across the reload: it answers throughout (bounded loop).
        deadline = time.monotonic() + h.TIMEOUT
        while value(self.scrape()[0], "livery_config_generation") != gen + 1:
            self.assertLess(time.monotonic(), deadline, "no new generation")
            self.assertEqual(http_get(self.livery.admin_port, "/readyz")[0], 200)
        after, _ = self.scrape()
        self.assertEqual(value(after, "livery_config_reloads_total", result="ok") -
                         value(before, "livery_config_reloads_total", result="ok"), 1)
        self.assertEqual(http_get(self.livery.admin_port, "/readyz"), (200, "ready\n"))
        for key, v in before.items():
            if key[0].endswith("_total"):
                self.assertGreaterEqual(after.get(key, 0.0), v, "%r went backwards" % (key,))


class RelayFailureTest(h.ProxyTestCase):
    """A relay whose certificate no configured CA signed: the leg's failure is counted by its
    RFC 8460 name, and so is the session that ended on it."""
    relay_cert = "relay-untrusted"

    livery_class = AdminLivery

    def test_untrusted_relay_counted(self):
        c = self.starttls_session(auth=False)
        r = c.cmd("AUTH PLAIN " + h.plain_auth())
        self.assertEqual(r.code // 100, 4, r.raw)
        c.close()
        key = dict(region="relay", result="certificate-not-trusted")
        h.wait_until(lambda: value(parse_metrics(http_get(self.livery.admin_port, "/metrics")[1]),
                                   "livery_relay_legs_total", **key) >= 1, "the failed leg counted")
        metrics = parse_metrics(http_get(self.livery.admin_port, "/metrics")[1])
        self.assertEqual(value(metrics, "livery_relay_legs_total", region="relay", result="ok"), 0)
        self.assertEqual(value(metrics, "livery_relay_tls_handshakes_total", region="relay", resumed="false"), 0)
        self.assertEqual(value(metrics, "livery_auth_total", tenant="acme", result="ok"), 0)


class TokenTest(h.ProxyTestCase):
    TOKEN = "s3cret-token"

    livery_class = AdminLivery
    livery_config = {"top": ['admin_token = "%s";' % TOKEN]}

    def test_token_required(self):
        port = self.livery.admin_port
        for path in ("/metrics", "/healthz", "/readyz"):
            self.assertEqual(http_get(port, path)[0], 401)
            self.assertEqual(http_get(port, path, token="wrong")[0], 401)
            self.assertEqual(http_get(port, path, token=self.TOKEN + "x")[0], 401)
            self.assertEqual(http_get(port, path, token=self.TOKEN)[0], 200)


class NoAdminTest(h.ProxyTestCase):
    def test_nothing_else_listens(self):
        ports = listening_ports(self.livery.proc.pid)
        self.assertEqual(ports, {self.livery.starttls_port, self.livery.implicit_port})


class DrainTest(h.ProxyTestCase):
    """SIGTERM with a session open: the draining worker still answers, /readyz with 503; once
    the last worker exits, nothing accepts (a monitor reads that as not ready too)."""

    livery_class = AdminLivery
    livery_config = {"top": ["workers = 1;"]}

    def test_readyz_503_while_draining(self):
        port = self.livery.admin_port
        self.assertEqual(http_get(port, "/readyz"), (200, "ready\n"))
        c = self.starttls_session()
        os.kill(self.livery.proc.pid, signal.SIGTERM)
        h.wait_until(lambda: http_get(port, "/readyz")[0] == 503, "/readyz to answer 503")
        self.assertEqual(http_get(port, "/healthz"), (200, "ok\n"))
        metrics = parse_metrics(http_get(port, "/metrics")[1])
        self.assertEqual(value(metrics, "livery_connections_active",
                               listener="%s:%d" % (h.HOST, self.livery.starttls_port)), 1)
        self.assertReply(c.cmd("QUIT"), 221)
        c.read_eof()
        self.assertEqual(self.livery.proc.wait(h.TIMEOUT), 0)
        with self.assertRaises(OSError):
            http_get(port, "/readyz")


class AdminConfigTest(h.ProxyTestCase):
    def check(self, lines):
        d = h.scratch("admin-config")
        path = os.path.join(d, "livery.conf")
        text = h.config_text(self.certs, 2525, 2587, 2465, top_extra=lines)
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([h.LIVERY_BIN, "--check", "-c", path], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        return r.returncode, r.stdout.decode()

    def test_admin_options_checked(self):
        self.assertEqual(self.check(['admin_listen = "127.0.0.1:9025";'])[0], 0)
        self.assertEqual(self.check(['admin_listen = "[::1]:9025";'])[0], 0)
        self.assertEqual(self.check(['admin_listen = "0.0.0.0:9025";', 'admin_token = "t";'])[0], 0)
        for bad, why in ((['admin_listen = "0.0.0.0:9025";'], "needs 'admin_token'"),
                         (['admin_listen = "localhost:9025";'], "address:port"),
                         (['admin_listen = "127.0.0.1:0";'], "address:port"),
                         (['admin_listen = "127.0.0.1";'], "address:port"),
                         (['admin_token = "";'], "must not be empty")):
            rc, out = self.check(bad)
            self.assertEqual(rc, 2, out)
            self.assertIn(why, out)
            self.assertRegex(out, r"livery\.conf:\d+: ")


if __name__ == "__main__":
    h.main()
