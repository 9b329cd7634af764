#!/usr/bin/env python3
"""livery behind HAProxy with the PROXY protocol (listener proxy_protocol / proxy_trusted).

A real HAProxy (Debian's haproxy, run in the foreground and stopped by PID) runs the committed
config/haproxy.cfg, with the test's addresses and ports in its environment variables, in front
of two livery instances (each its own configuration and log, the same certificates and relay).
Clients connect from chosen loopback addresses (127.0.0.2 and up) so that the address livery
sees through the PROXY header can be told from HAProxy's own (127.0.0.1, the only trusted one):

- mail goes through on every port of the file (25, 587, 2525 STARTTLS; 465 implicit TLS), to
  both instances, and each instance's log and records name the real client and its port;
- max_connections_per_ip counts the real client: a third connection from one address is
  refused (421 4.7.0) while another address still gets in on the same instance;
- HAProxy's health checks (v2 LOCAL) are served as the balancer's own connections;
- the same file with send-proxy (v1) works too;
- straight to livery: an untrusted source that sends a header is refused, a malformed header or
  none in time closes the connection, and bytes that come with the header in one segment (a
  pipelined EHLO, a ClientHello) are not lost;
- configuration errors name file:line.
- a TLS 1.3 client's ticket from one instance resumes on the other (one ticket_key_file).
"""

import base64
import json
import os
import re
import socket
import ssl
import struct
import subprocess
import unittest

import harness as h

HAPROXY_BIN = os.environ.get("HAPROXY_BIN", "/usr/sbin/haproxy")
HAPROXY_CFG = os.path.join(h.SRC, "config", "haproxy.cfg")
LB = "127.0.0.1"        # where the v2 HAProxy listens; every HAProxy connects from here
LB_V1 = "127.0.0.21"    # where the send-proxy (v1) HAProxy listens
INSTANCES = ("127.0.0.11", "127.0.0.12")
UNTRUSTED = "127.0.0.99"
STARTTLS_PORTS = ("SMTP_PORT", "SUBMISSION_PORT", "ALT_PORT")
PORTS = STARTTLS_PORTS + ("SMTPS_PORT",)
PER_IP = 2
SNI = "smtp.acme.test"
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2_header(src="203.0.113.5", sport=40000, dst="127.0.0.11", dport=587, local=False):
    """A PROXY v2 header for TCP over IPv4 (or a LOCAL one)."""
    if local:
        return V2_SIG + b"\x20\x00\x00\x00"
    body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack(">HH", sport, dport)
    return V2_SIG + b"\x21\x11" + struct.pack(">H", len(body)) + body


def port_free_on_all(addrs):
    """A port that was free a moment ago on every address in addrs."""
    for _ in range(50):
        port = h.free_port()
        ok = True
        for a in addrs:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind((a, port))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return port
    raise RuntimeError("no port free on all of %r" % (addrs,))


def listener_block(address, port, mode):
    return "\n".join([
        "  {",
        '    address = "%s";' % address,
        "    port = %d;" % port,
        '    tls = "%s";' % mode,
        '    hostname = "%s";' % h.LISTENER_HOSTNAME,
        '    default_tenant = "default";',
        "    proxy_protocol = true;",
        '    proxy_trusted = [ "%s/32" ];' % LB,
        "    proxy_timeout = 2;",
        "  },", ""])


class LbLivery(h.Livery):
    """One instance behind the balancer: four listeners on its own address (the file's ports),
    each with proxy_protocol, trusting only 127.0.0.1."""

    def __init__(self, relay, address, ports, top_extra=()):
        super().__init__(relay)
        self.label = "livery %s" % address
        self.address = address
        self.ports = ports
        self.top_extra = list(top_extra)

    def text(self):
        text = h.config_text(self.certs, self.relay.port, self.ports["SUBMISSION_PORT"], self.ports["SMTPS_PORT"],
                             listener_extra=["proxy_protocol = true;", 'proxy_trusted = [ "%s/32" ];' % LB,
                                             "proxy_timeout = 2;"],
                             top_extra=["limits = {", "  max_connections_per_ip = %d;" % PER_IP,
                                        "  max_unauthenticated_relay_legs_per_ip = 1;", "};"]
                             + self.top_extra)
        text = text.replace('address = "%s";' % h.HOST, 'address = "%s";' % self.address)
        more = listener_block(self.address, self.ports["SMTP_PORT"], "starttls") + \
            listener_block(self.address, self.ports["ALT_PORT"], "starttls")
        return text.replace("listeners = (\n", "listeners = (\n" + more, 1)

    def start(self):
        d = h.scratch("livery")
        self.starttls_port = self.ports["SUBMISSION_PORT"]
        self.implicit_port = self.ports["SMTPS_PORT"]
        self.config_path = os.path.join(d, "livery.conf")
        with open(self.config_path, "w") as f:
            f.write(self.text())
        self._spawn([h.LIVERY_BIN, "-c", self.config_path, "--log-level", "debug"], os.path.join(d, "livery.log"))
        ready = re.compile(r"^(?:\S+ )?livery\[\d+\]: info: ready\b", re.M)
        h.wait_until(lambda: ready.search(self.log()) or self.proc.poll() is not None, "livery to log 'ready'")
        if self.proc.poll() is not None:
            raise RuntimeError("livery %s exited before it was ready:\n%s" % (self.address, self.log()))
        return self

    def records(self):
        return h.records(self.log())


class HAProxy(h.Process):
    """haproxy -db (foreground) on a configuration file, with its variables in the environment."""

    def __init__(self, cfg_path, env, label="haproxy"):
        super().__init__()
        self.cfg_path = cfg_path
        self.env = env
        self.label = label

    def start(self):
        d = h.scratch(self.label)
        self.log_path = os.path.join(d, "haproxy.log")
        h.register_log(self.label, self.log_path)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([HAPROXY_BIN, "-db", "-f", self.cfg_path], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, close_fds=True, env=dict(os.environ, **self.env))
        return self


class Client(h.SMTPClient):
    """An SMTP client whose connection comes from a chosen loopback address."""

    def __init__(self, host, port, source, implicit=False):
        self.sock = socket.create_connection((host, port), timeout=h.TIMEOUT, source_address=(source, 0))
        self.port = self.sock.getsockname()[1]
        self.source = source
        self.buf = b""
        self.received = b""
        if implicit:
            self.wrap(SNI)


def send_quietly(sock, data):
    """Sends what it can: a peer that refuses may already have reset the connection."""
    try:
        sock.sendall(data)
    except OSError:
        pass


@unittest.skipUnless(os.access(HAPROXY_BIN, os.X_OK), "no haproxy (tests/install-deps.sh installs it)")
class ProxyProtocolTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.certs = h.certs()
        cls.relay = h.Relay()
        cls.addClassCleanup(cls.relay.kill)
        cls.relay.start()
        cls.ports = {}
        for var in PORTS:
            port = port_free_on_all((LB, LB_V1) + INSTANCES)
            while port in cls.ports.values():
                port = port_free_on_all((LB, LB_V1) + INSTANCES)
            cls.ports[var] = port
        # Both instances share one ticket_key_file (README, "Session-ticket keys"): one base64
        # key per line, as `openssl rand -base64 48` prints it.
        key = os.path.join(h.scratch("tickets"), "ticket.key")
        with open(key, "w") as f:
            f.write(base64.b64encode(os.urandom(48)).decode() + "\n")
        os.chmod(key, 0o600)
        cls.ticket_extra = ['ticket_key_file = "%s";' % key]
        cls.instances = []
        for address in INSTANCES:
            lv = LbLivery(cls.relay, address, cls.ports, top_extra=cls.ticket_extra)
            cls.addClassCleanup(lv.kill)
            cls.instances.append(lv.start())
        env = {k: str(v) for k, v in cls.ports.items()}
        env.update(LB_ADDR=LB, LIVERY1=INSTANCES[0], LIVERY2=INSTANCES[1])
        cls.haproxy = HAProxy(HAPROXY_CFG, env)
        cls.addClassCleanup(cls.haproxy.kill)
        cls.haproxy.start()
        # The same file with send-proxy (v1) instead of send-proxy-v2, on its own address.
        with open(HAPROXY_CFG) as f:
            v1_text = f.read().replace("send-proxy-v2", "send-proxy")
        assert "send-proxy " in v1_text
        cls.v1_cfg = os.path.join(h.scratch("haproxy-v1"), "haproxy.cfg")
        with open(cls.v1_cfg, "w") as f:
            f.write(v1_text)
        cls.haproxy_v1 = HAProxy(cls.v1_cfg, dict(env, LB_ADDR=LB_V1), "haproxy-v1")
        cls.addClassCleanup(cls.haproxy_v1.kill)
        cls.haproxy_v1.start()
        cls.sources = cls.map_sources()

    @classmethod
    def tearDownClass(cls):
        bad = []
        for p in (cls.haproxy, cls.haproxy_v1):
            p.stop()  # HAProxy exits 0 on SIGTERM only with its master; -db may say 143: not judged
        for lv in cls.instances:
            rc = lv.stop()
            if rc != 0:
                bad.append("livery %s exited with %r on SIGTERM" % (lv.address, rc))
            for word in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
                if word in lv.log():
                    bad.append("sanitizer report in the log of livery %s (%s)" % (lv.address, word))
            h.check_output(lv.log())
        if cls.relay.stop() != 0:
            bad.append("the relay did not exit 0 on SIGTERM")
        if bad:
            raise AssertionError("; ".join(bad))

    # -- where connections land --

    @classmethod
    def served_by(cls, source, port):
        """The instance whose log names the client source:port, waiting for it."""
        needle = "client %s port %d via the load balancer" % (source, port)
        return h.wait_until(lambda: next((lv for lv in cls.instances if needle in lv.log()), None),
                            "a livery to log '%s'" % needle)

    @classmethod
    def map_sources(cls):
        """Loopback client addresses by the instance HAProxy sends them to (balance source):
        at least two for each, found by asking (bounded)."""
        by = {lv.address: [] for lv in cls.instances}
        # HAProxy is ready once a connection through it is greeted by a livery.
        c = h.wait_until(lambda: cls.try_connect(cls.ports["SUBMISSION_PORT"], "127.0.0.2"), "HAProxy to relay a 220")
        c.close()
        for i in range(2, 60):
            if all(len(v) >= 2 for v in by.values()):
                return by
            source = "127.0.0.%d" % i
            c = Client(LB, cls.ports["SUBMISSION_PORT"], source)
            assert c.reply().code == 220
            assert c.cmd("QUIT").code == 221
            c.read_eof()
            c.close()
            by[cls.served_by(source, c.port).address].append(source)
        raise AssertionError("HAProxy sent 58 client addresses to one instance only: %r" % by)

    @classmethod
    def try_connect(cls, port, source):
        try:
            c = Client(LB, port, source)
            if c.reply().code == 220:
                c.cmd("QUIT")
                return c
            c.close()
        except (OSError, EOFError, AssertionError):
            pass
        return None

    def setUp(self):
        self._clients = []

    def tearDown(self):
        for c in self._clients:
            c.close()

    def client(self, port_var, source, host=LB, implicit=None):
        port = self.ports[port_var]
        c = Client(host, port, source, implicit=port_var == "SMTPS_PORT" if implicit is None else implicit)
        self._clients.append(c)
        return c

    def instance(self, address):
        return next(lv for lv in self.instances if lv.address == address)

    def assertReply(self, reply, code, startswith=None):
        self.assertEqual(reply.code, code, "unexpected reply %r" % reply.raw)
        if startswith is not None:
            self.assertTrue(reply.lines[0].startswith(startswith), reply.raw)

    # -- mail through HAProxy --

    def deliver(self, port_var, source, host=LB):
        """A whole session through the balancer on the port named port_var: returns the client."""
        c = self.client(port_var, source, host)
        self.assertReply(c.reply(), 220)
        if port_var != "SMTPS_PORT":
            self.assertReply(c.cmd("EHLO client.example.test"), 250)
            self.assertReply(c.cmd("STARTTLS"), 220, "2.0.0")
            c.wrap(SNI)
        self.assertReply(c.cmd("EHLO client.example.test"), 250)
        self.assertReply(c.cmd("AUTH PLAIN " + h.plain_auth()), 235)
        self.assertReply(c.cmd("MAIL FROM:<ann@acme.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<bob@example.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(h.dot_stuff(h.SAMPLE_BODY) + b".\r\n")
        self.assertReply(c.reply(), 250)
        self.assertReply(c.cmd("QUIT"), 221)
        c.read_eof()
        return c

    def session_record(self, lv, client):
        """The session record lv wrote for client (by its address and port), waiting for it."""
        want = "%s:%d" % (client.source, client.port)
        return h.wait_until(lambda: next((r for r in lv.records()
                                          if r["record"] == "session" and r["client"] == want), None),
                            "livery %s to record the session of %s" % (lv.address, want))

    def test_delivers_on_every_port_to_both_instances(self):
        for address, sources in sorted(self.sources.items()):
            lv = self.instance(address)
            for port_var in PORTS:
                with self.subTest(instance=address, port=port_var):
                    before = self.relay.messages()
                    c = self.deliver(port_var, sources[0])
                    self.assertEqual(self.relay.msg_data(self.new_message(before)), h.dot_stuff(h.SAMPLE_BODY))
                    # The instance that served it names the real client, in its log and record.
                    self.assertIs(self.served_by(c.source, c.port), lv)
                    r = self.session_record(lv, c)
                    self.assertEqual((r["end"], r["messages"], r["tls"]), ("quit", 1, True))
                    self.assertEqual(r["listener"], "%s:%d" % (address, self.ports[port_var]))
                    self.assertIn("session from %s ended: client quit" % c.source, lv.log())
                    self.assertEqual(h.forbidden_in(c.received), [])

    def new_message(self, before):
        new = [n for n in self.relay.messages() if n not in before]
        self.assertEqual(len(new), 1, "expected one new message at the relay, got %r" % new)
        return new[0]

    def test_per_ip_limit_counts_the_real_client(self):
        address, sources = sorted(self.sources.items())[0]
        lv = self.instance(address)
        a, b = sources[:2]  # two clients HAProxy sends to the same instance
        held = [self.client("SUBMISSION_PORT", a) for _ in range(PER_IP)]
        for c in held:
            self.assertReply(c.reply(), 220)
        third = self.client("SUBMISSION_PORT", a)
        self.assertReply(third.reply(), 421, "4.7.0")
        self.assertIn("refusing %s: too many connections from this address" % a, lv.log())
        # Same instance, same balancer address, another client: not refused.
        other = self.client("SUBMISSION_PORT", b)
        self.assertReply(other.reply(), 220)
        self.assertReply(other.cmd("QUIT"), 221)
        r = self.session_record(lv, third)
        self.assertEqual(r["end"], "limit")
        for c in held:
            self.assertReply(c.cmd("QUIT"), 221)

    def session_id(self, lv, client):
        needle = re.compile(r"(w\d+s\d+): client %s port %d via" % (re.escape(client.source), client.port))
        return h.wait_until(lambda: (needle.search(lv.log()) or [None, None])[1], "the session id of %s" % client.source)

    def test_unauthenticated_leg_bound_counts_the_real_client(self):
        # max_unauthenticated_relay_legs_per_ip = 1: a second idle TLS session from one client
        # waits for AUTH for its relay leg; another client's, on the same instance, does not.
        address, sources = sorted(self.sources.items())[0]
        lv = self.instance(address)
        idle = []
        for source in (sources[0], sources[0], sources[1]):
            c = self.client("SUBMISSION_PORT", source)
            self.assertReply(c.reply(), 220)
            self.assertReply(c.cmd("EHLO client.example.test"), 250)
            self.assertReply(c.cmd("STARTTLS"), 220)
            c.wrap(SNI)
            self.assertReply(c.cmd("EHLO client.example.test"), 250)  # the leg was decided at TLS
            idle.append(c)
        deferred = [("%s: relay leg deferred to AUTH" % self.session_id(lv, c)) in lv.log() for c in idle]
        self.assertEqual(deferred, [False, True, False])
        for c in idle:
            self.assertReply(c.cmd("QUIT"), 221)

    def test_health_checks_are_served_as_the_balancers_own(self):
        # Only HAProxy's checks (v2 LOCAL headers) use the port-25 and port-2525 listeners
        # straight from 127.0.0.1: it reads the 220 and says QUIT.
        for lv in self.instances:
            for port_var in ("SMTP_PORT", "ALT_PORT"):
                listener = "%s:%d" % (lv.address, self.ports[port_var])
                h.wait_until(lambda: any(r["record"] == "session" and r["listener"] == listener and
                                         r["client"].startswith(LB + ":") and r["end"] == "quit"
                                         for r in lv.records()),
                             "a health check of %s to end with QUIT" % listener)
            self.assertIn("without a client address: served as the balancer's own", lv.log())

    def test_send_proxy_v1(self):
        for port_var in ("SUBMISSION_PORT", "SMTPS_PORT"):
            with self.subTest(port=port_var):
                source = self.sources[INSTANCES[0]][0]
                c = self.deliver(port_var, source, host=LB_V1)
                lv = self.served_by(c.source, c.port)
                self.assertIn("client %s port %d via the load balancer %s (PROXY v1)" % (c.source, c.port, LB),
                              lv.log())
                self.assertEqual(self.session_record(lv, c)["end"], "quit")

    # -- straight to an instance --

    def direct(self, source, port_var="SUBMISSION_PORT", lv=None):
        lv = lv or self.instances[0]
        c = Client(lv.address, self.ports[port_var], source)
        self._clients.append(c)
        return c

    def test_untrusted_source_is_refused(self):
        lv = self.instances[0]
        for port_var in ("SUBMISSION_PORT", "SMTPS_PORT"):
            with self.subTest(port=port_var):
                c = self.direct(UNTRUSTED, port_var)
                send_quietly(c.sock, v2_header(src="203.0.113.77") + b"EHLO client.example.test\r\n")
                self.assertEqual(c.read_eof(), b"", "an untrusted source got an answer")
                h.wait_until(lambda: "refusing %s on %s port %d: not a trusted PROXY protocol source"
                             % (UNTRUSTED, lv.address, self.ports[port_var]) in lv.log(), "the refusal in the log")
                self.assertEqual(self.session_record(lv, c)["end"], "proxy_refused")
        self.assertNotIn("203.0.113.77", lv.log())

    def test_malformed_header_closes(self):
        lv = self.instances[0]
        cases = [
            (b"PROXY TCP4 203.0.113.5 127.0.0.11 1\r\n", "without exactly four fields"),
            (b"EHLO client.example.test\r\n", "not a PROXY protocol header"),
            (V2_SIG + b"\x31\x11\x00\x0c" + bytes(12), "a version other than 2"),
            (V2_SIG + b"\x21\x11\xff\xff", "longer than livery accepts"),
            (b"PROXY " + b"x" * 120, "longer than 107 octets"),
        ]
        for data, why in cases:
            with self.subTest(why=why):
                c = self.direct(LB)
                send_quietly(c.sock, data)
                self.assertEqual(c.read_eof(), b"")
                r = self.session_record(lv, c)
                self.assertEqual(r["end"], "proxy_refused")
                self.assertIn(why, r["detail"])
                self.assertIn("closing the connection from %s: malformed PROXY header: " % LB, lv.log())

    def test_no_header_in_time_closes(self):
        lv = self.instances[0]
        c = self.direct(LB)
        send_quietly(c.sock, b"PROXY TCP4 203.0.113.5")  # and then nothing
        self.assertEqual(c.read_eof(), b"")
        self.assertEqual(self.session_record(lv, c)["detail"], "no PROXY header in time")
        self.assertIn("closing the connection from %s: no PROXY header within proxy_timeout" % LB, lv.log())

    def test_bytes_with_the_header_are_kept(self):
        lv = self.instances[0]
        # STARTTLS: an EHLO in the same segment as the header is answered after the greeting.
        c = self.direct(LB)
        c.send(b"PROXY TCP4 203.0.113.5 127.0.0.11 40001 587\r\nEHLO client.example.test\r\n")
        self.assertReply(c.reply(), 220)
        self.assertReply(c.reply(), 250)
        self.assertReply(c.cmd("QUIT"), 221)
        self.assertIn("client 203.0.113.5 port 40001 via the load balancer", lv.log())
        # Implicit TLS: the ClientHello in the same segment as the header.
        raw = self.direct(LB, "SMTPS_PORT")
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = h.ssl_context().wrap_bio(incoming, outgoing, server_hostname=SNI)
        with self.assertRaises(ssl.SSLWantReadError):
            tls.do_handshake()
        raw.sock.sendall(v2_header(src="203.0.113.6", sport=40002, dport=465) + outgoing.read())
        greeting = b""
        while b"\r\n" not in greeting:
            data = raw.sock.recv(65536)
            self.assertNotEqual(data, b"", "closed during the handshake")
            incoming.write(data)
            try:
                tls.do_handshake()
                greeting += tls.read(4096)
            except ssl.SSLWantReadError:
                pass
            raw.sock.sendall(outgoing.read())
        self.assertTrue(greeting.startswith(b"220 %s ESMTP" % SNI.encode()), greeting)
        self.assertIn("client 203.0.113.6 port 40002 via the load balancer", lv.log())

    def test_local_header_is_served(self):
        lv = self.instances[0]
        c = self.direct(LB)
        c.send(v2_header(local=True))
        self.assertReply(c.reply(), 220)
        self.assertReply(c.cmd("QUIT"), 221)
        self.assertEqual(self.session_record(lv, c)["end"], "quit")  # as from the balancer itself

    # -- shared session tickets across instances --
    # A TLS 1.3 client's ticket from one instance resumes on the other, through HAProxy (the
    # client's source address picks the instance).

    def test_tls13_resumes_on_the_other_instance(self):
        ctx = h.ssl_context()
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
        first_source, second_source = self.sources[INSTANCES[0]][0], self.sources[INSTANCES[1]][0]
        first = Client(LB, self.ports["SMTPS_PORT"], first_source)
        self._clients.append(first)
        first.wrap(SNI, ctx)
        self.assertReply(first.reply(), 220)  # the ticket comes with the first application data
        ticket = first.sock.session
        self.assertReply(first.cmd("QUIT"), 221)
        self.assertIs(self.served_by(first_source, first.port), self.instance(INSTANCES[0]))
        second = Client(LB, self.ports["SMTPS_PORT"], second_source)
        self._clients.append(second)
        second.sock = ctx.wrap_socket(second.sock, server_hostname=SNI, session=ticket)
        self.assertReply(second.reply(), 220)
        self.assertTrue(second.sock.session_reused, "the other instance did not resume the ticket")
        self.assertReply(second.cmd("QUIT"), 221)
        lv = self.instance(INSTANCES[1])
        self.assertIs(self.served_by(second_source, second.port), lv)
        self.assertTrue(self.session_record(lv, second)["resumed"])


class ProxyConfigTest(unittest.TestCase):
    """The options' errors, as `livery --check` reports them: file:line and what is wrong."""

    def check(self, listener_extra):
        d = h.scratch("config")
        path = os.path.join(d, "livery.conf")
        text = h.config_text(h.certs(), 1, 2, 3, listener_extra=listener_extra)
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([h.LIVERY_BIN, "--check", "-c", path], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        line = text.splitlines().index("    " + listener_extra[0]) + 1
        return r.returncode, r.stdout.decode(errors="replace"), "%s:%d: " % (path, line)

    def test_errors(self):
        cases = [
            (["proxy_protocol = true;"], "'proxy_protocol' needs 'proxy_trusted'"),
            (['proxy_trusted = [ "10.0.0.1/8" ];', "proxy_protocol = true;"],
             "'proxy_trusted': \"10.0.0.1/8\" has address bits set past its prefix length"),
            (['proxy_trusted = [ "10.0.0.0/33" ];', "proxy_protocol = true;"],
             "'proxy_trusted': \"10.0.0.0/33\" has a prefix length that is not 0 to 32"),
            (['proxy_trusted = [ "lb.example" ];', "proxy_protocol = true;"],
             "'proxy_trusted': \"lb.example\" is not an IP address or a CIDR range"),
            (['proxy_trusted = [ "10.0.0.0/8" ];'], "'proxy_trusted' only applies with 'proxy_protocol = true'"),
        ]
        for extra, message in cases:
            with self.subTest(extra=extra):
                rc, out, where = self.check(extra)
                self.assertEqual(rc, 2, out)
                self.assertIn(where + message, out)

    def test_readme_shows_the_file_the_tests_run(self):
        with open(HAPROXY_CFG) as f:
            cfg = f.read()
        with open(os.path.join(h.SRC, "README.md")) as f:
            self.assertIn("```\n" + cfg + "```\n", f.read(), "README's haproxy.cfg differs from config/haproxy.cfg")

    def test_accepted(self):
        rc, out, _ = self.check(["proxy_protocol = true;",
                                 'proxy_trusted = [ "127.0.0.1", "10.0.0.0/8", "2001:db8::/32" ];',
                                 "proxy_timeout = 3;"])
        self.assertEqual(rc, 0, out)


if __name__ == "__main__":
    h.main()
