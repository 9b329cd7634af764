#!/usr/bin/env python3
"""Relay-leg faults end to end: no false acceptance, nothing lost (issue 3).

Each test checks both sides: what the client got (reply code and enhanced code) and what the
relay received or completed (its raw record, events and messages).

  a. refusals pass through with their codes: banner 421/554 and EHLO 5xx (the client's AUTH
     gets 454 4.7.0, the relay no AUTH), MAIL 451/550, RCPT 450, DATA 554 (no data mode);
  b. the relay stalls mid-session (no reply to MAIL): 421 4.4.2, nothing completed;
  c. the relay stalls in the TLS handshake (STARTTLS and implicit): 454 4.7.0, no AUTH;
  d. the relay stops reading mid-DATA: 421 4.4.2, nothing completed, livery's memory bounded;
  e. the relay's name does not resolve; f. no relay host is reachable;
  g. a connect that hangs (a loopback listener with a full backlog) times out and the next
     host is used;
  h. failover from a relay whose certificate fails verification to a good one;
  i. skip_verification for one tenant only; j. require_tls = false with a plaintext relay;
  k. an implicit-TLS relay; l. a STARTTLS relay: EHLO before and after STARTTLS, the SNI and
     TLS version the relay saw.

Timeouts are configured small (1-2 s) so the stalls are quick; nothing asserts on time.
"""

import os
import re
import select
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

AUTH_454 = "454 4.7.0 Temporary authentication failure, try again later\r\n"
TLS_INFO = re.compile(r"^conn (\d+) tls-info (TLSv1\.[23]) sni=(\S+)$")


def limits(**kw):
    return ("limits = { %s };" % " ".join("%s = %d;" % kv for kv in sorted(kw.items())),)


class RelayAt(h.Relay):
    """A second stand-in relay on a given loopback address and port (a region has one port for
    all its hosts, so a relay on 127.0.0.2 must share the first relay's port)."""

    def __init__(self, listen, port, cert="relay", options=(), implicit=False):
        super().__init__(cert, options, implicit)
        self.listen = listen
        self.port = port
        self.label = "relay at %s" % listen

    def start(self):
        self.dir = h.scratch("relay-" + self.listen)
        self.record = os.path.join(self.dir, "record")
        ready = os.path.join(self.dir, "ready")
        argv = [h.RELAY_BIN, "--port", str(self.port), "--listen", self.listen,
                "--cert", self.certs.pem(self.cert), "--key", self.certs.key(self.cert),
                "--record", self.record, "--ready-file", ready] + self.options
        if self.implicit:
            argv.append("--implicit")
        self._spawn(argv, os.path.join(self.dir, "relay.log"))
        h.wait_until(lambda: os.path.exists(ready) or self.proc.poll() is not None,
                     "the relay at %s to be ready" % self.listen)
        if self.proc.poll() is not None:
            raise RuntimeError("the relay at %s exited with %s:\n%s" % (self.listen, self.proc.wait(), self.log()))
        h.register_log("%s events.log" % self.label, os.path.join(self.record, "events.log"))
        return self


class RelayLegCase(h.ProxyTestCase):
    """Helpers shared by the classes below."""

    # -- the client side --

    def transaction(self, c, rcpt="bob@example.test"):
        self.assertReply(c.cmd("MAIL FROM:<ann@acme.test>"), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<%s>" % rcpt), 250, "2.1.5")

    def send_message(self, c, body=h.SAMPLE_BODY):
        """MAIL, RCPT, DATA and the body; returns the reply to the end of data."""
        self.transaction(c)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(h.dot_stuff(body) + b".\r\n")
        return c.reply()

    def quit(self, c):
        self.assertReply(c.cmd("QUIT"), 221)
        c.read_eof()
        self.assertClean(c.received)

    def refused_auth(self, c):
        """AUTH gets exactly the 454 4.7.0 of an unavailable relay leg; MAIL then gets 530."""
        self.assertEqual(c.cmd("AUTH PLAIN " + h.plain_auth()).raw, AUTH_454)
        self.assertReply(c.cmd("MAIL FROM:<ann@acme.test>"), 530, "5.7.0")

    # -- the relay side --

    def new_conns(self, before, relay=None):
        relay = relay or self.relay
        return [n for n in relay.connections() if n not in before]

    def conn_events(self, n, relay=None):
        return [e for e in (relay or self.relay).events() if e.startswith("conn %d " % n)]

    def assertNoAuthAt(self, before, relay=None, tried=True):
        """The relay connections opened after `before` (all closed by now) carried no AUTH,
        no credentials and no MAIL, and the relay completed nothing on them."""
        relay = relay or self.relay
        new = self.new_conns(before, relay)
        if tried:  # otherwise the test would pass for the wrong reason
            self.assertTrue(new, "livery never connected to the relay; events: %r" % relay.events())
        for n in new:
            relay.wait_closed(n)
            raw = relay.conn_raw(n)
            self.assertNotIn(b"AUTH", raw, "AUTH reached the relay on conn %d: %r" % (n, raw))
            self.assertNotIn(h.plain_auth().encode(), raw)
            self.assertNotIn(b"MAIL", raw)
            self.assertFalse([e for e in self.conn_events(n, relay) if " auth " in e], relay.events())

    def tls_info(self, n, relay=None):
        """(version, sni) from the relay's tls-info event of connection n."""
        for e in self.conn_events(n, relay):
            m = TLS_INFO.match(e)
            if m:
                return m.group(2), m.group(3)
        self.fail("no tls-info for conn %d: %r" % (n, (relay or self.relay).events()))

    # -- livery's log --

    def log_mark(self):
        return len(self.livery.log())

    def log_since(self, mark):
        return self.livery.log()[mark:]

    def warnings_since(self, mark):
        return [l for l in self.log_since(mark).splitlines() if ": warn: " in l]

    def assertLogged(self, mark, pattern):
        """Waits (bounded) for a warning matching pattern in livery's log after mark."""
        rx = re.compile(pattern, re.I)
        h.wait_until(lambda: any(rx.search(l) for l in self.warnings_since(mark)),
                     "a livery warning matching %r" % pattern)


# ---- a. refusals pass through with their codes ----

class SetupRefusal:
    """The relay refuses before the relay leg is ready (banner or EHLO): the client's AUTH gets
    454 4.7.0, the relay no AUTH."""

    reason = None  # livery's warning must say why

    def test_auth_gets_454(self):
        before = self.relay.connections()
        mark = self.log_mark()
        c = self.starttls_session(auth=False)
        self.refused_auth(c)
        self.quit(c)
        self.assertNoAuthAt(before)
        self.assertEqual(self.relay.messages(), [])
        self.assertLogged(mark, self.reason)


class Banner421Test(SetupRefusal, RelayLegCase):
    relay_options = ("--reply", "BANNER=421 4.3.2 smtp.mailgun.test Service not available")
    reason = r"relay 127\.0\.0\.1:\d+ greeted with 421"


class Banner554Test(SetupRefusal, RelayLegCase):
    relay_options = ("--reply", "BANNER=554 5.3.2 smtp.mailgun.test No SMTP service here")
    reason = r"relay 127\.0\.0\.1:\d+ greeted with 554"


class Ehlo550Test(SetupRefusal, RelayLegCase):
    relay_options = ("--reply", "EHLO=550 5.7.1 smtp.mailgun.test does not talk to you")
    reason = r"rejected EHLO with 550"

    def test_no_starttls_after_refused_ehlo(self):
        before = self.relay.connections()
        c = self.starttls_session(auth=False)
        self.refused_auth(c)
        c.close()
        for n in self.new_conns(before):
            self.relay.wait_closed(n)
            raw = self.relay.conn_raw(n)
            self.assertTrue(raw.startswith(b"EHLO "), raw)
            self.assertNotIn(b"STARTTLS", raw)


class MailRefusal:
    """The relay refuses MAIL: the client gets the relay's code and enhanced code, the
    transaction never starts at the relay, and the session goes on."""

    code = enhanced = None

    def test_mail_refusal_passes(self):
        before = self.relay.messages()
        conns = self.relay.connections()
        c = self.starttls_session()
        r = c.cmd("MAIL FROM:<ann@acme.test>")
        self.assertReply(r, self.code, self.enhanced + " ")
        self.assertReply(c.cmd("RCPT TO:<bob@example.test>"), 503)
        self.assertReply(c.cmd("MAIL FROM:<ann@acme.test>"), self.code, self.enhanced + " ")
        self.quit(c)
        self.assertEqual(self.relay.messages(), before)
        raw = self.relay_raw_since(conns)
        self.assertEqual(raw.count(b"MAIL FROM:<ann@acme.test>\r\n"), 2, raw)
        self.assertNotIn(b"DATA", raw)
        self.assertTrue(raw.endswith(b"QUIT\r\n"), raw[-60:])


class Mail451Test(MailRefusal, RelayLegCase):
    relay_options = ("--reply", "MAIL=451 4.3.0 smtp.mailgun.test: local error in processing")
    code, enhanced = 451, "4.3.0"


class Mail550Test(MailRefusal, RelayLegCase):
    relay_options = ("--reply", "MAIL=550 5.7.1 Sender rejected by Mailgun policy")
    code, enhanced = 550, "5.7.1"


class Rcpt450Test(RelayLegCase):
    relay_options = ("--reply", "RCPT=450 4.2.1 <bob@example.test>: mailbox busy at smtp.mailgun.test")

    def test_rcpt_refusal_passes(self):
        before = self.relay.messages()
        conns = self.relay.connections()
        c = self.starttls_session()
        self.assertReply(c.cmd("MAIL FROM:<ann@acme.test>"), 250)
        r = c.cmd("RCPT TO:<bob@example.test>")
        self.assertReply(r, 450, "4.2.1 ")
        # No recipient: DATA must not open data mode.
        r = c.cmd("DATA")
        self.assertEqual(r.code // 100, 5, r.raw)
        self.assertReply(c.cmd("NOOP"), 250)
        self.assertReply(c.cmd("RSET"), 250)
        self.quit(c)
        self.assertEqual(self.relay.messages(), before)
        raw = self.relay_raw_since(conns)
        self.assertIn(b"RCPT TO:<bob@example.test>\r\n", raw)
        self.assertIn(b"NOOP\r\nRSET\r\n", raw)


class Data554Test(RelayLegCase):
    relay_options = ("--reply", "DATA=554 5.7.0 smtp.mailgun.test: transaction failed")

    def test_data_refusal_no_data_mode(self):
        before = self.relay.messages()
        conns = self.relay.connections()
        c = self.starttls_session()
        self.transaction(c)
        r = c.cmd("DATA")
        self.assertReply(r, 554, "5.7.0 ")
        # Not in data mode: these are commands, answered one by one.
        self.assertReply(c.cmd("NOOP"), 250)
        self.assertReply(c.cmd("RSET"), 250)
        self.transaction(c)  # a new transaction starts normally
        self.assertReply(c.cmd("RSET"), 250)
        self.quit(c)
        self.assertEqual(self.relay.messages(), before)
        raw = self.relay_raw_since(conns)
        self.assertIn(b"DATA\r\nNOOP\r\nRSET\r\nMAIL FROM:", raw)
        self.assertTrue(raw.endswith(b"RSET\r\nQUIT\r\n"), raw[-60:])


# ---- b. a stall mid-session ----

class StallMailTest(RelayLegCase):
    """The relay never answers MAIL (after AUTH): relay_timeout ends the session with 421."""
    relay_options = ("--fault", "stall-mail")
    livery_config = {"top_extra": limits(relay_timeout=1)}

    def check_relay_completed_nothing(self, conns, before):
        raw = self.relay_raw_since(conns)
        self.assertIn(b"AUTH PLAIN ", raw)
        self.assertIn(b"MAIL FROM:<ann@acme.test>\r\n", raw)
        new = self.new_conns(conns)
        self.assertTrue(any(" auth ok " in e for n in new for e in self.conn_events(n)), self.relay.events())
        self.assertEqual(self.relay.messages(), before)

    def test_mail_stall_gives_421(self):
        before, conns, mark = self.relay.messages(), self.relay.connections(), self.log_mark()
        c = self.starttls_session()
        r = c.cmd("MAIL FROM:<ann@acme.test>")
        self.assertReply(r, 421, "4.4.2 ")
        self.assertEqual(c.read_eof(), b"")
        self.assertClean(c.received)
        self.check_relay_completed_nothing(conns, before)
        self.assertLogged(mark, r"timed out in state ready")

    def test_pipelined_transaction_gets_one_421(self):
        before, conns = self.relay.messages(), self.relay.connections()
        c = self.starttls_session()
        self.assertIn("PIPELINING", c.ehlo.raw)
        c.send("MAIL FROM:<ann@acme.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
        r = c.reply()
        self.assertReply(r, 421, "4.4.2 ")
        self.assertEqual(c.read_eof(), b"", "more than one reply after the 421")
        self.check_relay_completed_nothing(conns, before)


class QueueBehindStalledMailTest(RelayLegCase):
    """Commands pipelined behind a MAIL the relay never answers are answered locally (VRFY)
    but must wait behind the owed reply: livery queues only so many of them (SESSION_PENDING_MAX),
    then stops reading, instead of buffering a flood without bound."""
    relay_options = ("--fault", "stall-mail")
    livery_config = {"top_extra": limits(relay_timeout=8, command_timeout=60)}
    LIMIT = 64 << 20

    def test_queue_is_bounded(self):
        pid = self.livery.proc.pid
        c = self.starttls_session()
        base = h.rss_kib(pid)
        # Bounded in bytes and in time (well under relay_timeout).
        sent = h.flood(c.sock, b"VRFY x\r\n" * 8192, self.LIMIT, bound=6, first=b"MAIL FROM:<ann@acme.test>\r\n")
        grown = h.rss_kib(pid) - base
        self.assertLess(sent, 8 << 20, "livery kept reading commands it queues behind an owed reply")
        if not h.under_asan(pid):  # AddressSanitizer keeps freed memory in quarantine
            self.assertLess(grown, 32 * 1024, "livery grew by %d KiB" % grown)
        # relay_timeout: the owed MAIL gets 421 and the session ends; no VRFY answer overtakes it.
        self.assertReply(c.reply(), 421, "4.4.2")
        c.read_eof()


# ---- c. a stall in the relay's TLS handshake ----

class StallTlsTest(RelayLegCase):
    """The relay answers STARTTLS with 220, then never handshakes: tls_timeout."""
    relay_options = ("--fault", "stall-tls")
    livery_config = {"top_extra": limits(tls_timeout=1)}

    def test_auth_gets_454(self):
        conns, mark = self.relay.connections(), self.log_mark()
        c = self.starttls_session(auth=False)
        self.refused_auth(c)
        self.quit(c)
        self.assertNoAuthAt(conns)
        for n in self.new_conns(conns):
            self.assertEqual(self.relay.conn_raw(n), b"EHLO livery.localdomain\r\nSTARTTLS\r\n")
            self.assertNotIn("conn %d tls" % n, self.relay.events())
        self.assertEqual(self.relay.messages(), [])
        self.assertLogged(mark, r"timed out in state tls")


class StallImplicitTlsTest(RelayLegCase):
    """An implicit-TLS relay that accepts and never handshakes."""
    relay_implicit = True
    relay_options = ("--fault", "stall-tls")
    livery_config = {"top_extra": limits(tls_timeout=1)}

    def test_auth_gets_454(self):
        conns, mark = self.relay.connections(), self.log_mark()
        c = self.client(implicit=True, implicit_sni="smtp.acme.test")
        self.assertReply(c.reply(), 220)
        self.assertReply(c.cmd("EHLO client.example.test"), 250)
        self.refused_auth(c)
        self.quit(c)
        self.assertNoAuthAt(conns)
        for n in self.new_conns(conns):
            self.assertEqual(self.relay.conn_raw(n), b"")
            self.assertNotIn("conn %d tls" % n, self.relay.events())
        self.assertLogged(mark, r"timed out in state tls")


# ---- d. the relay stops reading mid-DATA ----

class StopReadingDataTest(RelayLegCase):
    """After its 354 the relay reads nothing more. The client pushes a large body; livery must
    apply backpressure (bounded memory) and end with a 4xx, the relay completing nothing."""
    relay_options = ("--fault", "stop-reading-data")
    # max_message_size is raised so that livery forwards (or must hold) every byte instead of
    # discarding what is over the limit.
    # data_timeout is far above relay_timeout: while livery does not read the client (because
    # the relay does not read), the client is not timed; the relay is, and is blamed.
    livery_config = {"top_extra": limits(data_timeout=60, relay_timeout=2, max_message_size=256 << 20)}

    LIMIT = 96 << 20  # more than livery may hold without backpressure (see the RSS bound)

    def push_body(self, c):
        """Sends body lines until the socket stays unwritable for a while (livery stopped
        reading; the while is well under relay_timeout so that the client is reading by the
        time livery gives up) or LIMIT bytes went out; returns the bytes sent."""
        lines = (b"x" * 998 + b"\r\n") * 256
        return h.flood(c.sock, lines, self.LIMIT, stall=0.5, first=b"Subject: big\r\n\r\n" + lines)

    def test_backpressure_then_4xx(self):
        pid = self.livery.proc.pid
        before, conns = self.relay.messages(), self.relay.connections()
        c = self.starttls_session()
        self.transaction(c)
        self.assertReply(c.cmd("DATA"), 354)
        base = h.rss_kib(pid)
        sent = self.push_body(c)
        grown = h.rss_kib(pid) - base
        self.assertLess(sent, self.LIMIT, "livery kept reading a body its relay does not take")
        r = c.reply()
        self.assertReply(r, 421, "4.4.2 ")
        c.read_eof()
        self.assertClean(c.received)
        if not h.under_asan(pid):  # AddressSanitizer keeps freed memory in quarantine
            self.assertLess(grown, 64 * 1024, "livery grew by %d KiB after %d bytes" % (grown, sent))
        self.assertIn("stopped reading", self.livery.log())
        self.assertNotIn("client timed out", self.livery.log())
        # The relay read nothing after DATA and completed nothing; livery reset the relay leg
        # (a FIN would sit behind the megabytes the relay never reads).
        self.assertEqual(self.relay.messages(), before)
        new = self.new_conns(conns)
        self.assertEqual(len(new), 1, new)
        self.relay.wait_closed(new[0])
        self.assertTrue(self.relay.conn_raw(new[0]).endswith(b"RCPT TO:<bob@example.test>\r\nDATA\r\n"))
        # livery still serves others.
        other = self.starttls_session()
        self.quit(other)


# ---- e, f, g. resolving and connecting ----

class DnsFailureTest(RelayLegCase):
    livery_config = {"region_hosts": ("relay.invalid",)}

    def test_auth_gets_454(self):
        conns, mark = self.relay.connections(), self.log_mark()
        c = self.starttls_session(auth=False)
        self.refused_auth(c)
        self.quit(c)
        self.assertEqual(self.new_conns(conns), [])
        self.assertFalse([e for e in self.relay.events() if " auth " in e])
        self.assertLogged(mark, r"cannot resolve relay relay\.invalid")


class AllUnreachableTest(RelayLegCase):
    # Loopback addresses where nothing listens on the relay's port: connections are refused.
    livery_config = {"region_hosts": ("127.0.0.2", "127.0.0.3")}

    def test_auth_gets_454(self):
        conns, mark = self.relay.connections(), self.log_mark()
        c = self.starttls_session(auth=False)
        self.refused_auth(c)
        self.quit(c)
        self.assertEqual(self.new_conns(conns), [])
        port = self.relay.port
        self.assertLogged(mark, r"connect to relay 127\.0\.0\.2:%d: " % port)
        self.assertLogged(mark, r"127\.0\.0\.3:%d" % port)
        self.assertLogged(mark, r"no relay of region 'relay' could be used")


class ConnectTimeoutTest(RelayLegCase):
    """127.0.0.4 has a listener whose backlog (listen(0): one connection) is full and never
    accepted: the kernel drops further SYNs, so a connect there hangs until connect_timeout."""
    livery_config = {"region_hosts": ("127.0.0.4", "127.0.0.1"), "region_extra": ("connect_timeout = 1;",)}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.held = []
        cls.addClassCleanup(lambda: [s.close() for s in cls.held])
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        cls.held.append(lsock)
        lsock.bind(("127.0.0.4", cls.relay.port))
        lsock.listen(0)
        # Fill the queue: connections complete until it is full; the first that does not
        # shows that connects now hang.
        for _ in range(8):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            cls.held.append(s)
            s.setblocking(False)
            s.connect_ex(("127.0.0.4", cls.relay.port))
            if not select.select([], [s], [], 0.5)[1]:
                cls.probe = s
                return
        raise AssertionError("could not fill the backlog of a loopback listener: connects do not hang")

    def test_next_host_after_connect_timeout(self):
        before, conns, mark = self.relay.messages(), self.relay.connections(), self.log_mark()
        c = self.starttls_session()
        self.assertReply(self.send_message(c), 250, "2.0.0")
        self.quit(c)
        n = self.new_message(before)
        self.assertEqual(self.relay.msg_data(n), h.dot_stuff(h.SAMPLE_BODY))
        self.assertIn("AUTH %s\n" % h.USER, self.relay.msg_env(n))
        self.assertEqual(len(self.new_conns(conns)), 1)
        self.assertLogged(mark, r"relay 127\.0\.0\.4:%d timed out in state connect" % self.relay.port)
        # Still hanging: the timeout was livery's, not a refusal.
        self.assertFalse(select.select([], [self.probe], [], 0)[1], "the probe connect completed")


# ---- h. failover after a verification failure ----

class FailoverAfterVerifyFailureTest(RelayLegCase):
    """A relay with a certificate for the wrong name is listed first; livery moves on to the
    good relay without sending it anything after the handshake."""
    livery_config = {"region_hosts": ("127.0.0.2", "127.0.0.1")}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bad = RelayAt("127.0.0.2", cls.relay.port, cert="relay-wrongname")
        cls.addClassCleanup(cls.bad.kill)
        cls.bad.start()

    @classmethod
    def tearDownClass(cls):
        rc = cls.bad.stop()
        super().tearDownClass()
        if rc != 0:
            raise AssertionError("the relay at 127.0.0.2 exited with %r on SIGTERM" % (rc,))

    def test_message_goes_via_good_relay(self):
        before, mark = self.relay.messages(), self.log_mark()
        bad_conns = self.bad.connections()
        c = self.starttls_session()
        self.assertReply(self.send_message(c), 250, "2.0.0")
        self.quit(c)
        n = self.new_message(before)
        self.assertEqual(self.relay.msg_data(n), h.dot_stuff(h.SAMPLE_BODY))
        self.assertNoAuthAt(bad_conns, relay=self.bad)
        for b in self.new_conns(bad_conns, self.bad):
            self.assertNotIn("conn %d tls" % b, self.bad.events())  # livery aborted the handshake
        self.assertEqual(self.bad.messages(), [])
        self.assertLogged(mark, r"127\.0\.0\.2:%d.*(name mismatch|subject name|host ?name)" % self.relay.port)


# ---- i. skip_verification for one tenant ----

class SkipVerificationOneTenantTest(RelayLegCase):
    relay_cert = "relay-wrongname"
    livery_config = {"tenant_extra": {"acme": ("skip_verification = true;",)}}

    SKIP = r"certificate verification is skipped for tenant 'acme'"

    def acme_message(self):
        before, conns, mark = self.relay.messages(), self.relay.connections(), self.log_mark()
        c = self.starttls_session("smtp.acme.test")
        self.assertReply(self.send_message(c), 250, "2.0.0")
        self.quit(c)
        n = self.new_message(before)
        self.assertIn("AUTH %s\n" % h.USER, self.relay.msg_env(n))
        new = self.new_conns(conns)
        self.assertEqual(len(new), 1)
        self.assertIn("conn %d tls" % new[0], self.relay.events())
        skips = [l for l in self.warnings_since(mark) if re.search(self.SKIP, l)]
        self.assertEqual(len(skips), 1, "one warning per session expected: %r" % skips)

    def test_acme_sessions_succeed_with_warning(self):
        self.acme_message()
        self.acme_message()  # possibly resumed: still warned

    def test_other_tenant_still_verifies(self):
        self.acme_message()  # a TLS session made without verification is now cached
        conns, mark = self.relay.connections(), self.log_mark()
        c = self.starttls_session("x.globex.test", auth=False)
        self.refused_auth(c)
        self.quit(c)
        self.assertNoAuthAt(conns)
        self.assertFalse([l for l in self.warnings_since(mark) if "skipped" in l])
        self.assertLogged(mark, r"name mismatch|subject name|host ?name")


# ---- j. require_tls = false ----

class PlaintextRelayAllowedTest(RelayLegCase):
    """A relay without STARTTLS (that takes AUTH in plaintext): acme has require_tls = false,
    so its mail goes through in plaintext with a warning. (The default, refusal, is covered by
    test_relay_failures.NoStarttlsRelayTest; here only that the setting stays per tenant.)"""
    relay_options = ("--no-starttls", "--plaintext-auth")
    livery_config = {"tenant_extra": {"acme": ("require_tls = false;",)}}

    def test_plaintext_with_warning(self):
        before, conns, mark = self.relay.messages(), self.relay.connections(), self.log_mark()
        c = self.starttls_session("smtp.acme.test")
        self.assertReply(self.send_message(c), 250, "2.0.0")
        self.quit(c)
        n = self.new_message(before)
        self.assertEqual(self.relay.msg_data(n), h.dot_stuff(h.SAMPLE_BODY))
        new = self.new_conns(conns)
        self.assertEqual(len(new), 1)
        raw = self.relay_raw_since(conns)
        self.assertNotIn(b"STARTTLS", raw)
        self.assertIn(("AUTH PLAIN " + h.plain_auth()).encode(), raw)
        events = self.conn_events(new[0])
        self.assertNotIn("conn %d tls" % new[0], events)
        self.assertIn("conn %d auth ok %s" % (new[0], h.USER), events)
        plain = [l for l in self.warnings_since(mark) if re.search(r"does not offer STARTTLS: relaying in plaintext", l)]
        self.assertEqual(len(plain), 1, plain)

    def test_other_tenant_still_requires_tls(self):
        conns = self.relay.connections()
        c = self.starttls_session("x.globex.test", auth=False)
        self.refused_auth(c)
        self.quit(c)
        self.assertNoAuthAt(conns)


# ---- k, l. what the relay sees of a healthy relay leg ----

class ImplicitRelayTest(RelayLegCase):
    relay_implicit = True

    def test_full_session(self):
        before, conns = self.relay.messages(), self.relay.connections()
        c = self.starttls_session()
        self.assertReply(self.send_message(c), 250, "2.0.0")
        self.quit(c)
        n = self.new_message(before)
        self.assertEqual(self.relay.msg_data(n), h.dot_stuff(h.SAMPLE_BODY))
        raw = self.relay_raw_since(conns)
        (conn,) = self.new_conns(conns)
        self.assertTrue(raw.startswith(b"EHLO livery.localdomain\r\nAUTH PLAIN "), raw[:80])
        self.assertNotIn(b"STARTTLS", raw)
        version, sni = self.tls_info(conn)
        self.assertIn(version, ("TLSv1.2", "TLSv1.3"))
        self.assertEqual(sni, "smtp.relay.test")  # the region's verify_name (the host is an IP)
        events = self.conn_events(conn)
        self.assertLess(events.index("conn %d tls" % conn), events.index("conn %d auth ok %s" % (conn, h.USER)))


class StarttlsRelayTest(RelayLegCase):
    livery_config = {"region_extra": ('ehlo_name = "proxy.e2e.test";',)}

    def test_ehlo_around_starttls_and_tls_info(self):
        before, conns = self.relay.messages(), self.relay.connections()
        c = self.starttls_session()
        self.assertReply(self.send_message(c), 250, "2.0.0")
        self.quit(c)
        self.new_message(before)
        raw = self.relay_raw_since(conns)
        (conn,) = self.new_conns(conns)
        # Recorded after decryption, no markers: EHLO, STARTTLS, then (inside TLS) EHLO again.
        self.assertTrue(raw.startswith(b"EHLO proxy.e2e.test\r\nSTARTTLS\r\nEHLO proxy.e2e.test\r\nAUTH PLAIN "),
                        raw[:100])
        version, sni = self.tls_info(conn)
        self.assertIn(version, ("TLSv1.2", "TLSv1.3"))
        self.assertEqual(sni, "smtp.relay.test")


if __name__ == "__main__":
    h.main()
