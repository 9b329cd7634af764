"""Shared machinery of the livery end-to-end tests (Python 3 standard library only).

It creates the test certificates once per process (certs/livery-certs test-set), starts the
stand-in relay (livery-test-relay) and livery on free loopback ports, writes livery's
configuration, gives tests small SMTP clients, and tears every process down by PID.

Environment (set by ctest, see CMakeLists.txt; the defaults suit a build in <src>/build):
  LIVERY_BIN, RELAY_BIN, LIVERY_SRC, LIVERY_BUILD
  LIVERY_E2E_KEEP=1   keep the scratch directory (its path is printed) instead of removing it.
"""

import base64
import calendar
import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("LIVERY_SRC") or os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("LIVERY_BUILD") or os.path.join(SRC, "build")
LIVERY_BIN = os.environ.get("LIVERY_BIN") or os.path.join(BUILD, "livery")
RELAY_BIN = os.environ.get("RELAY_BIN") or os.path.join(BUILD, "tests", "relay", "livery-test-relay")
CERTS_TOOL = os.path.join(SRC, "certs", "livery-certs")

HOST = "127.0.0.1"
# Upper bound of any single wait (process start, a reply, a client run). Not a performance
# threshold: a healthy run never comes close.
TIMEOUT = 30
# Words of the relay's identity that must never reach a client.
FORBIDDEN = ("mailgun", "smtp.mailgun.test", "relay.test")

LISTENER_HOSTNAME = "gw.livery.test"
USER = "user@acme.test"
PASSWORD = "secret"

_workdir = None
_certs = None
_logs = []  # (label, path) of every log written in this run, dumped when a test fails


def workdir():
    """The scratch directory of this process, created on first use."""
    global _workdir
    if _workdir is None:
        _workdir = tempfile.mkdtemp(prefix="livery-e2e-")
    return _workdir


def scratch(name):
    """A fresh directory under the scratch directory."""
    return tempfile.mkdtemp(prefix=name + "-", dir=workdir())


def register_log(label, path):
    _logs.append((label, path))


def dump_logs(out=sys.stderr):
    for label, path in _logs:
        out.write("\n===== %s (%s) =====\n" % (label, path))
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            out.write("(unreadable: %s)\n" % e)
            continue
        if len(data) > 200000:
            out.write("(%d bytes, showing the last 200000)\n" % len(data))
            data = data[-200000:]
        out.write(data.decode("utf-8", "backslashreplace"))
        if not data.endswith(b"\n"):
            out.write("\n")
    out.flush()


def wait_until(pred, what, timeout=TIMEOUT, interval=0.02):
    """Polls pred() until it returns something true; fails with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)


def free_port():
    """A loopback port that was free a moment ago (bound to port 0, then released)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((HOST, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def read_text(path):
    with open(path, "r", encoding="utf-8", errors="backslashreplace") as f:
        return f.read()


# ---- certificates ----

class Certs:
    """Paths of the standard test set (tests/SPEC.md, `livery-certs test-set`)."""

    def __init__(self, d):
        self.dir = d
        self.ca = os.path.join(d, "ca", "ca.pem")
        self.ca2 = os.path.join(d, "ca2", "ca.pem")

    def pem(self, name):
        return os.path.join(self.dir, name + ".pem")

    def key(self, name):
        return os.path.join(self.dir, name + ".key")


def certs():
    """Creates the test certificates once per process."""
    global _certs
    if _certs is None:
        d = os.path.join(workdir(), "certs")
        r = subprocess.run(["bash", CERTS_TOOL, "test-set", d], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=120)
        if r.returncode != 0:
            raise RuntimeError("livery-certs test-set failed (%d):\n%s" % (r.returncode, r.stdout.decode(errors="replace")))
        _certs = Certs(d)
        for n in ("acme", "globex", "default", "relay", "relay-wrongname", "relay-untrusted", "relay-expired"):
            for p in (_certs.pem(n), _certs.key(n)):
                if not os.path.isfile(p):
                    raise RuntimeError("livery-certs test-set did not create %s" % p)
    return _certs


def not_after(pem):
    """The first certificate's notAfter in PEM, as a Unix time."""
    r = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", pem], stdout=subprocess.PIPE,
                       check=True, timeout=30)
    text = r.stdout.decode().strip().split("=", 1)[1]
    return calendar.timegm(time.strptime(text, "%b %d %H:%M:%S %Y %Z"))


def days_left_re(pem, since, until=None):
    """A regex for the whole days left on PEM's certificate as livery counts them (rounded down) at
    some moment between SINCE and UNTIL (now): the test reads the certificate itself, so neither the
    seconds that pass nor a clock stepped by the machine's time sync make it depend on the moment."""
    end = not_after(pem)
    until = time.time() if until is None else until
    # livery counts from time(NULL), whole seconds: a check in the second the certificate was
    # issued has exactly N days left.
    days = sorted({(end - int(t)) // 86400 for t in (since, until)})
    return "(?:%s)" % "|".join(str(d) for d in days)


# ---- processes ----

class Process:
    """A child process with its output in a log file, stopped by PID."""

    label = "process"

    def __init__(self):
        self.proc = None
        self.log_path = None
        self.returncode = None

    def _spawn(self, argv, log_path):
        self.log_path = log_path
        register_log(self.label, log_path)
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         close_fds=True)

    def log(self):
        return read_text(self.log_path) if self.log_path and os.path.exists(self.log_path) else ""

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM, then waits (bounded; SIGKILL after TIMEOUT). Returns the exit status."""
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(TIMEOUT)
                self.returncode = "killed after not exiting within %ss of SIGTERM" % TIMEOUT
                self.proc = None
                return self.returncode
        self.returncode = self.proc.returncode
        self.proc = None
        return self.returncode

    def kill(self):
        """Safety net for cleanups: ends the process if it still runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(TIMEOUT)
        self.proc = None


def _bind_failed(text):
    t = text.lower()
    return "address already in use" in t or "eaddrinuse" in t or "bind" in t


class Relay(Process):
    """livery-test-relay with a record directory (tests/SPEC.md)."""

    label = "relay"

    def __init__(self, cert="relay", options=(), implicit=False):
        super().__init__()
        self.certs = certs()
        self.cert = cert
        self.options = list(options)
        self.implicit = implicit
        self.port = None
        self.dir = None
        self.record = None

    def start(self):
        for attempt in range(5):
            self.dir = scratch("relay")
            self.record = os.path.join(self.dir, "record")
            ready = os.path.join(self.dir, "ready")
            self.port = free_port()
            argv = [RELAY_BIN, "--port", str(self.port), "--listen", HOST,
                    "--cert", self.certs.pem(self.cert), "--key", self.certs.key(self.cert),
                    "--record", self.record, "--ready-file", ready] + self.options
            if self.implicit:
                argv.append("--implicit")
            self._spawn(argv, os.path.join(self.dir, "relay.log"))
            wait_until(lambda: os.path.exists(ready) or self.proc.poll() is not None, "the relay to be ready")
            if os.path.exists(ready) and self.proc.poll() is None:
                register_log("relay events.log", os.path.join(self.record, "events.log"))
                return self
            rc = self.proc.wait(TIMEOUT)
            self.proc = None
            if not _bind_failed(self.log()):
                raise RuntimeError("the relay exited with %s before it was ready:\n%s" % (rc, self.log()))
        raise RuntimeError("the relay could not bind a port after 5 attempts")

    # -- what it recorded --

    def path(self, name):
        return os.path.join(self.record, name)

    def events(self):
        p = self.path("events.log")
        return read_text(p).splitlines() if os.path.exists(p) else []

    def messages(self):
        """Numbers of the recorded messages, ascending."""
        if not os.path.isdir(self.record):
            return []
        ns = [int(m.group(1)) for m in (re.match(r"msg-(\d+)\.data$", f) for f in os.listdir(self.record)) if m]
        return sorted(ns)

    def connections(self):
        if not os.path.isdir(self.record):
            return []
        ns = [int(m.group(1)) for m in (re.match(r"conn-(\d+)\.raw$", f) for f in os.listdir(self.record)) if m]
        return sorted(ns)

    def msg_data(self, n):
        return read_bytes(self.path("msg-%d.data" % n))

    def msg_env(self, n):
        p = self.path("msg-%d.env" % n)
        wait_until(lambda: os.path.exists(p), "relay file msg-%d.env" % n)
        return read_text(p)

    def conn_raw(self, n):
        return read_bytes(self.path("conn-%d.raw" % n))

    def all_raw(self):
        return b"".join(self.conn_raw(n) for n in self.connections())

    def wait_closed(self, n):
        """Waits until the relay logged the close of its connection n."""
        wait_until(lambda: ("conn %d close" % n) in self.events(), "the relay to log 'conn %d close'" % n)


def config_text(certs, relay_port, starttls_port, implicit_port, relay_tls="starttls",
                region_extra=(), tenant_extra=None, listener_extra=(), top_extra=(), region_hosts=None):
    """livery's configuration for the standard test setup, one setting per line."""
    tenant_extra = tenant_extra or {}
    q = lambda s: '"%s"' % s
    L = []
    L.append("# livery e2e test configuration (generated by tests/e2e/harness.py)")
    L.append('log_level = "debug";')
    L.extend(top_extra)
    L.append("listeners = (")
    for i, (port, mode) in enumerate(((starttls_port, "starttls"), (implicit_port, "implicit"))):
        L.append("  {")
        L.append('    address = "%s";' % HOST)
        L.append("    port = %d;" % port)
        L.append("    tls = %s;" % q(mode))
        L.append("    hostname = %s;" % q(LISTENER_HOSTNAME))
        L.append('    default_tenant = "default";')
        L.extend("    " + x for x in listener_extra)
        L.append("  }" + ("," if i == 0 else ""))
    L.append(");")
    L.append("regions = (")
    L.append("  {")
    L.append('    name = "relay";')
    if region_hosts:
        L.append("    hosts = [ %s ];" % ", ".join(q(x) for x in region_hosts))
    else:
        L.append('    host = "%s";' % HOST)
    L.append("    port = %d;" % relay_port)
    L.append("    tls = %s;" % q(relay_tls))
    L.append('    verify_name = "smtp.relay.test";')
    L.append("    ca_file = %s;" % q(certs.ca))
    L.append('    scrub = [ "mailgun" ];')
    L.extend("    " + x for x in region_extra)
    L.append("  }")
    L.append(");")
    tenants = [
        ("acme", ["smtp.acme.test", "mail.acme.test"], "acme"),
        ("globex", ["*.globex.test"], "globex"),
        ("default", ["smtp.livery.test"], "default"),
    ]
    L.append("tenants = (")
    for i, (name, names, cert) in enumerate(tenants):
        L.append("  {")
        L.append("    name = %s;" % q(name))
        L.append("    hostnames = [ %s ];" % ", ".join(q(n) for n in names))
        L.append("    cert = %s;" % q(certs.pem(cert)))
        L.append("    key = %s;" % q(certs.key(cert)))
        L.append('    region = "relay";')
        L.extend("    " + x for x in tenant_extra.get(name, ()))
        L.append("  }" + ("," if i < len(tenants) - 1 else ""))
    L.append(");")
    return "\n".join(L) + "\n"


class Livery(Process):
    """The proxy under test, configured for `relay`."""

    label = "livery"

    def __init__(self, relay, **config_args):
        super().__init__()
        self.relay = relay
        self.certs = certs()
        self.config_args = config_args
        self.starttls_port = None
        self.implicit_port = None
        self.config_path = None

    def start(self):
        for attempt in range(5):
            d = scratch("livery")
            self.starttls_port = free_port()
            self.implicit_port = free_port()
            while self.implicit_port == self.starttls_port:
                self.implicit_port = free_port()
            self.config_path = os.path.join(d, "livery.conf")
            with open(self.config_path, "w") as f:
                f.write(config_text(self.certs, self.relay.port, self.starttls_port, self.implicit_port,
                                    relay_tls="implicit" if self.relay.implicit else "starttls",
                                    **self.config_args))
            self._spawn([LIVERY_BIN, "-c", self.config_path, "--log-level", "debug"],
                        os.path.join(d, "livery.log"))
            ready = re.compile(r"^(?:\S+ )?livery\[\d+\]: info: ready\b", re.M)
            wait_until(lambda: ready.search(self.log()) or self.proc.poll() is not None, "livery to log 'ready'")
            if self.proc.poll() is None:
                return self
            rc = self.proc.wait(TIMEOUT)
            self.proc = None
            if not _bind_failed(self.log()):
                raise RuntimeError("livery exited with %s before it was ready:\n%s" % (rc, self.log()))
        raise RuntimeError("livery could not bind its ports after 5 attempts")


# ---- assertions ----

# The test credentials in every form a client sends them: none may appear in livery's output.
SECRETS = (PASSWORD, base64.b64encode(b"\0" + USER.encode() + b"\0" + PASSWORD.encode()).decode(),
           base64.b64encode(PASSWORD.encode()).decode())


def records(text):
    """The session and message records in livery's output: every line that starts with "{"
    must be one JSON object with a "record" field."""
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                o = json.loads(line)
            except ValueError as e:
                raise AssertionError("a record that is not JSON (%s): %r" % (e, line))
            if not isinstance(o, dict) or o.get("record") not in ("session", "message"):
                raise AssertionError("not a record: %r" % line)
            out.append(o)
    return out


def check_output(text):
    """Every JSON line of livery's output parses, and no AUTH secret appears anywhere."""
    records(text)
    for s in SECRETS:
        if s in text:
            raise AssertionError("an AUTH secret (%r) appears in livery's output" % s)

def forbidden_in(data):
    """The relay identity words found in data (bytes or str), case-insensitively."""
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    low = data.lower()
    return [w for w in FORBIDDEN if w in low]


def ssl_context(cafile=None, check_hostname=True):
    ctx = ssl.create_default_context(cafile=cafile or certs().ca)
    ctx.check_hostname = check_hostname
    return ctx


def flood(sock, data, limit, stall=2.0, bound=TIMEOUT, first=b""):
    """Writes first, then data over and over, to sock until limit bytes went out, the socket
    stayed unwritable for stall seconds (the peer stopped reading: what backpressure tests
    wait for), or bound seconds passed. Returns the bytes sent; sock is blocking again after,
    with the usual TIMEOUT."""
    sock.setblocking(False)
    sent, pending, t0 = 0, first or data, time.monotonic()
    while sent < limit and time.monotonic() - t0 < bound:
        if not pending:
            pending = data
        if not select.select([], [sock], [], stall)[1]:
            break
        try:
            n = sock.send(pending)
        except (BlockingIOError, ssl.SSLWantWriteError):
            continue
        sent += n
        pending = pending[n:]
    sock.setblocking(True)
    sock.settimeout(TIMEOUT)
    return sent


def children(pid):
    """PIDs of the live children of a process (livery's master: its workers)."""
    out = []
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for t in tasks:
        try:
            with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                out.extend(int(x) for x in f.read().split())
        except OSError:
            pass
    return out


def _rss_one(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_kib(pid):
    """VmRSS of a process and its children (livery's master and its workers), in KiB."""
    own = _rss_one(pid)
    if own is None:
        raise AssertionError("no VmRSS for %d" % pid)
    return own + sum(_rss_one(c) or 0 for c in children(pid))


def under_asan(pid):
    """True for a process built with AddressSanitizer, whose freed memory sits in quarantine
    (so its RSS says nothing about leaks or bounds)."""
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


def plain_auth(user=USER, password=PASSWORD):
    return base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()


def dot_stuff(body):
    """The DATA wire form of a message (CRLF lines), without the final ".\\r\\n"."""
    assert body.endswith(b"\r\n")
    lines = body[:-2].split(b"\r\n")
    return b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n" for l in lines)


# A message with a line that needs dot-stuffing, a lone dot inside a line, 8-bit UTF-8 and
# CRLF line ends everywhere.
SAMPLE_BODY = (
    "From: Ann <ann@acme.test>\r\n"
    "To: Bob <bob@example.test>\r\n"
    "Subject: e2e test with =?UTF-8?Q?=C3=BCml=C3=A4uts?=\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Grüße aus Köln – naïve café, 東京, emoji \U0001F4E8.\r\n"
    ".a line that starts with a dot\r\n"
    "..two dots\r\n"
    "a dot . in the middle\r\n"
    ".\tdot then a tab\r\n"
    "last line\r\n"
).encode("utf-8")


# ---- a raw SMTP client ----

class Reply:
    def __init__(self, code, lines, raw):
        self.code = code
        self.lines = lines  # texts after "NNN-" / "NNN "
        self.raw = raw

    @property
    def text(self):
        return "\n".join(self.lines)

    def __repr__(self):
        return "Reply(%r)" % self.raw


class SMTPClient:
    """A line-level SMTP client over a socket that may be upgraded to TLS. Everything the
    server sent is kept in .received (for the forbidden-words check)."""

    def __init__(self, port, implicit_sni=None, implicit=False, ctx=None, source=None):
        """source: the loopback address to connect from (default: the system's choice)."""
        self.sock = socket.create_connection((HOST, port), timeout=TIMEOUT,
                                             source_address=(source, 0) if source else None)
        self.buf = b""
        self.received = b""
        if implicit:
            self.wrap(implicit_sni, ctx)

    def wrap(self, sni, ctx=None):
        assert self.buf == b"", "bytes after the reply to STARTTLS, before the TLS handshake: %r" % self.buf
        if ctx is None:
            ctx = ssl_context(check_hostname=sni is not None)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=sni)
        return self.sock

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed by the server; buffered: %r" % self.buf)
        self.received += chunk
        self.buf += chunk

    def readline(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        lines, raw = [], b""
        while True:
            line = self.readline()
            raw += line + b"\r\n"
            m = re.match(rb"^(\d{3})([ -])(.*)$", line)
            if not m:
                raise AssertionError("malformed reply line %r" % line)
            lines.append(m.group(3).decode("utf-8", "replace"))
            if m.group(2) == b" ":
                return Reply(int(m.group(1)), lines, raw.decode("utf-8", "replace"))

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def read_eof(self):
        """Reads until the server closes; returns what came."""
        data = self.buf
        self.buf = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                break
            if not chunk:
                break
            self.received += chunk
            data += chunk
        return data

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---- the base test case ----

class ProxyTestCase(unittest.TestCase):
    """Starts a relay and livery for the class; stops both at the end and checks that livery
    exits with status 0 on SIGTERM."""

    relay_cert = "relay"
    relay_options = ()
    relay_implicit = False
    livery_config = {}
    livery_class = None  # a Livery subclass; None: Livery

    @classmethod
    def setUpClass(cls):
        cls.certs = certs()
        cls.relay = Relay(cls.relay_cert, cls.relay_options, cls.relay_implicit)
        cls.addClassCleanup(cls.relay.kill)
        cls.relay.start()
        cls.livery = (cls.livery_class or Livery)(cls.relay, **cls.livery_config)
        cls.addClassCleanup(cls.livery.kill)
        cls.livery.start()

    @classmethod
    def tearDownClass(cls):
        rc = cls.livery.stop()
        relay_rc = cls.relay.stop()
        if rc != 0:
            raise AssertionError("livery exited with %r on SIGTERM, expected 0" % (rc,))
        if relay_rc != 0:
            raise AssertionError("the relay exited with %r on SIGTERM, expected 0" % (relay_rc,))
        # With -DLIVERY_SANITIZE=ON, sanitizer reports land in livery's log.
        for word in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            if word in cls.livery.log():
                raise AssertionError("sanitizer report in livery's log (%s)" % word)
        check_output(cls.livery.log())

    def setUp(self):
        self._clients = []

    def tearDown(self):
        for c in self._clients:
            c.close()

    # -- helpers --

    def client(self, port=None, implicit_sni=None, implicit=False, ctx=None):
        c = SMTPClient(port or (self.livery.implicit_port if implicit else self.livery.starttls_port),
                       implicit_sni=implicit_sni, implicit=implicit, ctx=ctx)
        self._clients.append(c)
        return c

    def assertClean(self, data, what="what the client received"):
        found = forbidden_in(data)
        if found:
            self.fail("%s contains relay identity %s:\n%s" % (what, found, data if isinstance(data, str) else data.decode("utf-8", "replace")))

    def assertReply(self, reply, code, startswith=None):
        self.assertEqual(reply.code, code, "unexpected reply %r" % reply.raw)
        if startswith is not None:
            self.assertTrue(reply.lines[0].startswith(startswith), "reply %r does not start with %r" % (reply.raw, startswith))

    def starttls_session(self, sni="smtp.acme.test", auth=True, client=None, user=USER):
        """Greeting, EHLO, STARTTLS with SNI, EHLO, and AUTH PLAIN as user: a ready session
        (on client, an SMTPClient just connected, or a new one to livery's STARTTLS port)."""
        c = client or self.client()
        if client:
            self._clients.append(c)
        self.assertReply(c.reply(), 220)
        self.assertReply(c.cmd("EHLO client.example.test"), 250)
        self.assertReply(c.cmd("STARTTLS"), 220, "2.0.0")
        c.wrap(sni)
        ehlo = c.cmd("EHLO client.example.test")
        self.assertReply(ehlo, 250)
        c.ehlo = ehlo
        if auth:
            self.assertReply(c.cmd("AUTH PLAIN " + plain_auth(user)), 235, "2.7.0")
        return c

    def deliver(self, sender="ann@acme.test", sni="smtp.acme.test"):
        """A whole session: STARTTLS, AUTH, SAMPLE_BODY from sender (accepted), QUIT."""
        c = self.starttls_session(sni)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % sender), 250)
        self.assertReply(c.cmd("RCPT TO:<bob@example.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(dot_stuff(SAMPLE_BODY) + b".\r\n")
        self.assertReply(c.reply(), 250)
        self.assertReply(c.cmd("QUIT"), 221)
        c.read_eof()
        return c

    def relay_raw_since(self, conns_before):
        """Everything the relay received on the connections opened after `conns_before` (the
        list connections() gave), once each of them is closed."""
        new = [n for n in self.relay.connections() if n not in conns_before]
        for n in new:
            self.relay.wait_closed(n)
        return b"".join(self.relay.conn_raw(n) for n in new)

    def new_message(self, before):
        """The one message the relay recorded after `before` (the list messages() gave)."""
        after = self.relay.messages()
        new = [n for n in after if n not in before]
        self.assertEqual(len(new), 1, "expected exactly one new message at the relay, got %r" % new)
        return new[0]

    def run_tool(self, argv, input=None, timeout=60):
        r = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        return r


def check_all_output():
    """Everything every livery of this run wrote (whichever test started it): each JSON line
    a record, and no AUTH secret anywhere."""
    for label, path in _logs:
        if label.startswith("livery") and os.path.exists(path):
            try:
                check_output(read_text(path))
            except AssertionError as e:
                sys.stderr.write("output check failed for %s (%s): %s\n" % (label, path, e))
                return False
    return True


def main():
    """unittest.main with the logs dumped on failure and the scratch directory removed."""
    prog = unittest.main(exit=False, verbosity=2)
    ok = prog.result.wasSuccessful() and check_all_output()
    if not ok:
        dump_logs()
    if _workdir:
        if os.environ.get("LIVERY_E2E_KEEP"):
            sys.stderr.write("scratch directory kept: %s\n" % _workdir)
        else:
            shutil.rmtree(_workdir, ignore_errors=True)
    sys.exit(0 if ok else 1)
