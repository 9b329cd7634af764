"""Hostile input, limits and faults: what the client gets, and that the relay never completes
what it must not (smuggling policies, line and size limits, connection and error caps,
timeouts, a vanishing client, relay failover, TLS abuse, backpressure)."""

import os
import socket
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

# The scanners' smuggling payloads (issue 9): one write whose first message "ends" at a "."
# line made by a bare line end, then carries a second transaction. Only the client's own
# CRLF "." CRLF may end the data, so the relay must see one message (or none), never two.
SMUGGLE_SEPS = (b"\r\n\n.\r\n", b"\r\n\r.\r\n", b"\n.\r\n", b"\r.\r\n", b"\r\n.\n", b"\n.\n", b"\r.\r")
SMUGGLED = (b"MAIL FROM:<smuggled@acme.test>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
            b"Subject: SMUGGLED\r\n\r\nSMUGGLED\r\n.\r\n")


def smuggle_body(sep):
    return b"Subject: t\r\n\r\nTESTING" + sep + SMUGGLED


def replies_until_quit(test, c):
    """Sends QUIT and returns the codes of every reply still owed, through the 221: a
    smuggled transaction would show as replies the client never asked for."""
    c.send(b"QUIT\r\n")
    codes = []
    for _ in range(10):
        codes.append(c.reply().code)
        if codes[-1] == 221:
            break
    return codes


def bdat_smuggling_refused(test, code, enhanced):
    """Each smuggling payload as one BDAT LAST chunk is refused with code, and nothing of it
    (nor a command inside it) reaches the relay."""
    before = test.relay.messages()
    for sep in SMUGGLE_SEPS:
        with test.subTest(sep=sep):
            c = test.starttls_session()
            test.assertReply(c.cmd("MAIL FROM:<ann@acme.test>"), 250)
            test.assertReply(c.cmd("RCPT TO:<bob@example.com>"), 250)
            chunk = smuggle_body(sep)
            c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
            test.assertReply(c.reply(), code, enhanced)
            test.assertEqual(replies_until_quit(test, c), [221])
    test.assertEqual(test.relay.messages(), before)
    test.assertNotIn(b"smuggled", test.relay.all_raw())


LIMITS = ("limits = { max_message_size = 4096; max_bad_commands = 3; command_timeout = 2;"
          " data_timeout = 2; tls_timeout = 2; };")


class Hostile(h.ProxyTestCase):
    livery_config = {"top_extra": (LIMITS,)}

    def data_session(self):
        c = self.starttls_session()
        self.assertReply(c.cmd("MAIL FROM:<ann@acme.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<bob@example.com>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        return c

    def refused_body(self, body, code, enhanced):
        """Sends body (ending in CRLF.CRLF), expects code; the relay completes nothing, and the
        relay leg is gone: the next MAIL gets 421."""
        before = self.relay.messages()
        conns = self.relay.connections()
        c = self.data_session()
        c.send(body)
        r = c.reply()
        self.assertReply(r, code, enhanced)
        self.assertReply(c.cmd("MAIL FROM:<ann@acme.test>"), 421, "4.7.0")
        self.assertEqual(self.relay.messages(), before)
        raw = self.relay_raw_since(conns)
        self.assertNotIn(b"evil", raw)
        data = raw.split(b"DATA\r\n", 1)[1]
        self.assertNotIn(b"\r\n.\r\n", b"\r\n" + data, "the relay got an end of data")
        for i, ch in enumerate(data):
            if ch == 10:
                self.assertEqual(data[i - 1], 13, "bare LF forwarded: %r" % data)
        self.assertClean(c.received)

    # -- smuggling (default policy: reject) --

    def test_smuggling_variants_rejected(self):
        for variant in (b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r\n.\r", b"\nmid", b"\rmid"):
            with self.subTest(variant=variant):
                body = b"Subject: s\r\n\r\nhello" + variant + b"MAIL FROM:<evil@x.test>\r\n.\r\n"
                self.refused_body(body, 554, "5.6.0")

    def test_smuggling_payloads_rejected(self):
        for sep in SMUGGLE_SEPS:
            with self.subTest(sep=sep):
                self.refused_body(smuggle_body(sep), 554, "5.6.0")
                self.assertNotIn(b"smuggled", self.relay.all_raw())

    def test_smuggling_payloads_in_bdat_rejected(self):
        bdat_smuggling_refused(self, 554, "5.6.0")

    def test_nul_in_content_refused(self):
        self.refused_body(b"Subject: n\r\n\r\nnul\0here\r\n.\r\n", 554, "5.6.0")
        before = self.relay.messages()
        c = self.starttls_session()
        self.assertReply(c.cmd("MAIL FROM:<ann@acme.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<bob@example.com>"), 250)
        chunk = b"Subject: n\r\n\r\nnul\0here\r\n"
        c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        r = c.reply()
        self.assertReply(r, 554, "5.6.0")
        self.assertIn("NUL", r.text)
        self.assertReply(c.cmd("MAIL FROM:<ann@acme.test>"), 421, "4.7.0")
        self.assertEqual(self.relay.messages(), before)
        self.assertNotIn(b"\0", self.relay.all_raw())

    def test_bdat_bare_lf_rejected(self):
        before = self.relay.messages()
        c = self.starttls_session()
        self.assertIn("CHUNKING", c.ehlo.raw)
        self.assertReply(c.cmd("MAIL FROM:<ann@acme.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<bob@example.com>"), 250)
        chunk = b"Subject: b\r\n\r\nbare\nline\r\n"
        c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        self.assertReply(c.reply(), 554, "5.6.0")
        chunk = b"Subject: b\r\n\r\nends in CR\r"
        c2 = self.starttls_session()
        self.assertReply(c2.cmd("MAIL FROM:<ann@acme.test>"), 250)
        self.assertReply(c2.cmd("RCPT TO:<bob@example.com>"), 250)
        c2.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        self.assertReply(c2.reply(), 554, "5.6.0")
        self.assertEqual(self.relay.messages(), before)

    # -- lines and sizes --

    def test_long_command_line(self):
        conns = self.relay.connections()
        c = self.starttls_session()
        self.assertReply(c.cmd("MAIL FROM:<" + "a" * 600 + "@acme.test>"), 500, "5.5.6")
        self.assertReply(c.cmd("NO\0OP"), 500, "5.5.2")
        self.assertReply(c.cmd("QUIT"), 221)
        raw = self.relay_raw_since(conns)
        self.assertIn(b"QUIT", raw)  # this session's relay leg was read
        self.assertNotIn(b"aaaaaaaaaa", raw)

    def test_nul_in_mail_never_reaches_the_relay(self):
        conns = self.relay.connections()
        c = self.starttls_session()
        c.send(b"MAIL FROM:<a\0b@acme.test>\r\n")
        self.assertReply(c.reply(), 500, "5.5.2")
        self.assertReply(c.cmd("QUIT"), 221)
        raw = self.relay_raw_since(conns)
        self.assertIn(b"QUIT", raw)  # this session's relay leg was read
        self.assertNotIn(b"\0", raw)
        self.assertNotIn(b"MAIL", raw)

    def test_data_line_limit(self):
        before = self.relay.messages()
        c = self.data_session()
        c.send(b"Subject: ok\r\n\r\n" + b"x" * 998 + b"\r\n.\r\n")
        self.assertReply(c.reply(), 250)
        n = self.new_message(before)
        self.assertEqual(self.relay.msg_data(n), b"Subject: ok\r\n\r\n" + b"x" * 998 + b"\r\n")
        self.refused_body(b"Subject: long\r\n\r\n" + b"x" * 999 + b"\r\n.\r\n", 552, "5.6.0")

    def test_size_limits(self):
        conns = self.relay.connections()
        c = self.starttls_session()
        self.assertReply(c.cmd("MAIL FROM:<ann@acme.test> SIZE=5000"), 552, "5.3.4")
        self.assertReply(c.cmd("QUIT"), 221)
        raw = self.relay_raw_since(conns)
        self.assertIn(b"QUIT", raw)
        self.assertNotIn(b"SIZE=5000", raw)
        self.refused_body(b"Subject: big\r\n\r\n" + (b"y" * 70 + b"\r\n") * 80 + b".\r\n", 552, "5.3.4")

    def test_bdat_over_size(self):
        before = self.relay.messages()
        c = self.starttls_session()
        self.assertReply(c.cmd("MAIL FROM:<ann@acme.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<bob@example.com>"), 250)
        chunk = (b"z" * 70 + b"\r\n") * 80
        c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        self.assertReply(c.reply(), 552, "5.3.4")
        self.assertEqual(self.relay.messages(), before)

    def test_bad_commands_cap(self):
        c = self.client()
        self.assertReply(c.reply(), 220)
        for _ in range(3):
            self.assertReply(c.cmd("BOGUS"), 500, "5.5.1")
        self.assertReply(c.cmd("BOGUS"), 500)
        self.assertReply(c.reply(), 421, "4.7.0")
        self.assertEqual(c.read_eof(), b"")

    # -- timeouts --

    def test_command_timeout(self):
        c = self.starttls_session()
        r = c.reply()  # nothing sent: the server gives up on us
        self.assertReply(r, 421, "4.4.2")
        self.assertIn("timeout", r.text)
        self.assertEqual(c.read_eof(), b"")

    def test_data_timeout_completes_nothing(self):
        before = self.relay.messages()
        conns = self.relay.connections()
        c = self.data_session()
        c.send(b"Subject: stalled\r\n\r\nhalf a body\r\n")
        self.assertReply(c.reply(), 421, "4.4.2")
        raw = self.relay_raw_since(conns)
        self.assertTrue(raw.endswith(b"half a body\r\n"), raw[-40:])
        self.assertEqual(self.relay.messages(), before)

    def test_tls_handshake_timeout(self):
        s = socket.create_connection((h.HOST, self.livery.implicit_port), timeout=h.TIMEOUT)
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # half a ClientHello
        self.assertEqual(s.recv(100), b"")
        s.close()

    # -- a client that vanishes mid-DATA --

    def test_client_vanishes_mid_data(self):
        before = self.relay.messages()
        conns = self.relay.connections()
        c = self.data_session()
        c.send(b"Subject: gone\r\n\r\nfirst half\r\n")
        c.close()
        raw = self.relay_raw_since(conns)
        self.assertTrue(raw.endswith(b"first half\r\n"), raw[-40:])
        self.assertEqual(self.relay.messages(), before)

    # -- TLS abuse --

    def peer_cn(self, sni):
        ctx = h.ssl_context(check_hostname=False)
        with socket.create_connection((h.HOST, self.livery.implicit_port), timeout=h.TIMEOUT) as raw:
            with ctx.wrap_socket(raw, server_hostname=sni) as s:
                subject = dict(x[0] for x in s.getpeercert()["subject"])
                return subject["commonName"]

    def test_tls_abuse(self):
        s = socket.create_connection((h.HOST, self.livery.implicit_port), timeout=h.TIMEOUT)
        s.sendall(b"EHLO not-tls\r\n" * 10)
        self.assertEqual(s.recv(100), b"")
        s.close()
        self.assertEqual(self.peer_cn("SMTP.ACME.TEST"), "smtp.acme.test")
        # RFC 6066 3: no trailing dot in a HostName; an invalid name gets the default.
        self.assertEqual(self.peer_cn("smtp.acme.test."), "smtp.livery.test")
        self.assertEqual(self.peer_cn("x.GLOBEX.test"), "*.globex.test")
        for name in ("a" * 63 + ".acme.test", "xn--bcher-kva.example", "nobody.example", "a.b.globex.test"):
            with self.subTest(name=name):
                self.assertEqual(self.peer_cn(name), "smtp.livery.test")
        c = self.starttls_session()  # and it still serves
        self.assertReply(c.cmd("QUIT"), 221)

class Backpressure(h.ProxyTestCase):
    """A client that pipelines without reading. Its own class: under Hostile's 2 s
    command_timeout the session could time out while the test still waits for the flood
    to stall, and the replies it then reads would be gone."""
    livery_config = {"top_extra": (LIMITS.replace("command_timeout = 2", "command_timeout = 120"),)}

    def test_pipelining_without_reading_is_bounded(self):
        pid = self.livery.proc.pid
        base = h.rss_kib(pid)
        c = self.client()
        self.assertReply(c.reply(), 220)
        flood = b"NOOP\r\n" * 20000
        limit = 500 * len(flood)  # 60 MB: far more than livery may take in without replying
        sent = h.flood(c.sock, flood, limit)
        self.assertLess(sent, limit, "livery kept reading a client that reads no replies")
        grown = h.rss_kib(pid) - base
        if not h.under_asan(pid):  # AddressSanitizer keeps freed memory in quarantine
            self.assertLess(grown, 64 * 1024, "livery grew by %d KiB" % grown)
        other = self.starttls_session()
        self.assertReply(other.cmd("QUIT"), 221)
        for _ in range(100):
            self.assertReply(c.reply(), 250)
        c.close()


class Normalize(h.ProxyTestCase):
    livery_config = {"top_extra": ('bare_line_endings = "normalize";',)}

    def test_bare_endings_normalised(self):
        before = self.relay.messages()
        c = self.starttls_session()
        self.assertNotIn("CHUNKING", c.ehlo.raw)
        self.assertReply(c.cmd("MAIL FROM:<ann@acme.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<bob@example.com>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b"a\nb\r\nc\rd\r\n\n.\nx\r\n.\r\n")
        self.assertReply(c.reply(), 250)
        n = self.new_message(before)
        # Each bare CR or LF became CRLF; the "." line that made is dot-stuffed (content).
        self.assertEqual(self.relay.msg_data(n), b"a\r\nb\r\nc\r\nd\r\n\r\n..\r\nx\r\n")

    def test_smuggling_payloads_stay_one_message(self):
        """A "." on a line that normalising made is stuffed: the smuggled transaction stays
        content of the one message, which ends at the client's own final dot."""
        for sep in SMUGGLE_SEPS:
            with self.subTest(sep=sep):
                before = self.relay.messages()
                c = self.starttls_session()
                self.assertReply(c.cmd("MAIL FROM:<ann@acme.test>"), 250)
                self.assertReply(c.cmd("RCPT TO:<bob@example.com>"), 250)
                self.assertReply(c.cmd("DATA"), 354)
                c.send(smuggle_body(sep))
                self.assertEqual([c.reply().code] + replies_until_quit(self, c), [250, 221])
                n = self.new_message(before)
                self.assertIn("ann@acme.test", self.relay.msg_env(n))
                self.assertNotIn("smuggled", self.relay.msg_env(n))
                data = self.relay.msg_data(n)
                self.assertIn(b"\r\nMAIL FROM:<smuggled@acme.test>\r\n", data)
                self.assertTrue(data.endswith(b"\r\nSMUGGLED\r\n"), data)

    def test_smuggling_payloads_in_bdat_refused(self):
        """CHUNKING is not offered with normalize; a BDAT chunk is swallowed and refused,
        and nothing inside it is taken for a command."""
        bdat_smuggling_refused(self, 502, "5.5.1")


class AuthFailures(h.ProxyTestCase):
    relay_options = ("--reject-auth",)
    livery_config = {"top_extra": ("limits = { max_auth_failures = 2; };",)}

    def test_auth_failure_cap(self):
        c = self.starttls_session(auth=False)
        self.assertReply(c.cmd("AUTH PLAIN " + h.plain_auth()), 535)
        self.assertReply(c.cmd("AUTH PLAIN " + h.plain_auth()), 535)
        self.assertReply(c.reply(), 421, "4.7.0")
        self.assertEqual(c.read_eof(), b"")
        conns = self.relay.connections()
        for n in conns:
            self.relay.wait_closed(n)  # the relay leg was closed too


class ConnectionLimits(h.ProxyTestCase):
    livery_config = {"top_extra": ("limits = { max_connections_per_ip = 2; };",)}

    def test_per_ip_limit(self):
        a, b = self.client(), self.client()
        self.assertReply(a.reply(), 220)
        self.assertReply(b.reply(), 220)
        third = self.client()
        self.assertReply(third.reply(), 421, "4.7.0")
        self.assertEqual(third.read_eof(), b"")
        with self.assertRaises((ssl.SSLError, ConnectionResetError, OSError)):
            self.client(implicit=True, implicit_sni="smtp.acme.test")
        a.close()

        def serves():
            c = h.SMTPClient(self.livery.starttls_port)
            try:
                return c.reply().code == 220
            except EOFError:
                return False
            finally:
                c.close()
        h.wait_until(serves, "a connection slot to free up")


class Failover(h.ProxyTestCase):
    # 127.0.0.2 is loopback too, but nothing listens there on the relay's port.
    livery_config = {"region_hosts": ("127.0.0.2", "127.0.0.1")}

    def test_next_host_after_refused_connection(self):
        before = self.relay.messages()
        c = self.starttls_session()
        self.assertReply(c.cmd("MAIL FROM:<ann@acme.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<bob@example.com>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b"Subject: failover\r\n\r\nok\r\n.\r\n")
        self.assertReply(c.reply(), 250)
        self.new_message(before)
        self.assertIn("127.0.0.2", self.livery.log())


class SkipVerificationStillNeedsTls(h.ProxyTestCase):
    relay_options = ("--no-starttls",)
    livery_config = {"tenant_extra": {"acme": ("skip_verification = true;",)}}

    def test_no_starttls_refused(self):
        c = self.starttls_session(auth=False)
        self.assertReply(c.cmd("AUTH PLAIN " + h.plain_auth()), 454, "4.7.0")
        self.assertNotIn("auth", self.relay.events())


if __name__ == "__main__":
    h.main()
