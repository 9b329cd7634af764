"""Protocol edge cases of the client leg, each one a hole that a review found or could find:
SASL responses that are too long or not base64, the AUTH line allowance, a CR inside a
command, an absurd SIZE=, a BDAT message whose last chunk leaves a CR bare, the bad-command
cap on syntax errors, AUTH before EHLO, the locally answered VRFY/EXPN/HELP, passwords in
the log, EHLO keywords that follow the relay's, the longest EHLO reply (plaintext AUTH
allowed), the global connection limit, an IPv6 listener, a ClientHello whose SNI has an
over-long label, and clients that reset right after the TLS handshake."""

import os
import smtplib
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def mail_transaction(c, body=b"Subject: edge\r\n\r\nok\r\n"):
    """MAIL, RCPT and DATA with body; returns the reply after the dot."""
    c.send("MAIL FROM:<ann@acme.test>\r\n")
    assert c.reply().code == 250
    c.send("RCPT TO:<bob@example.com>\r\n")
    assert c.reply().code == 250
    c.send("DATA\r\n")
    assert c.reply().code == 354
    c.send(h.dot_stuff(body) + b".\r\n")
    return c.reply()


def client_hello_tls12(sni):
    """A TLS 1.2 ClientHello (ECDHE-ECDSA/RSA suites, X25519/P-256) naming sni, as bytes: in
    TLS 1.2 the server's certificate then comes in clear, so a test can read its names."""
    def ext(kind, body):
        return struct.pack("!HH", kind, len(body)) + body
    name = sni.encode()
    server_name = struct.pack("!H", len(name) + 3) + b"\x00" + struct.pack("!H", len(name)) + name
    exts = (ext(0, server_name)
            + ext(10, struct.pack("!HHH", 4, 0x001D, 0x0017))
            + ext(11, b"\x01\x00")
            + ext(13, struct.pack("!HHHHH", 8, 0x0403, 0x0804, 0x0401, 0x0503))
            + ext(0xFF01, b"\x00"))
    suites = struct.pack("!HHHHH", 8, 0xC02B, 0xC02F, 0xCCA9, 0xCCA8)
    body = (b"\x03\x03" + os.urandom(32) + b"\x00" + suites + b"\x01\x00"
            + struct.pack("!H", len(exts)) + exts)
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


class Edges(h.ProxyTestCase):

    # -- AUTH --

    def test_sasl_response_over_long_ends_the_session(self):
        """A SASL response over the 12288-octet AUTH allowance gets 500 5.5.6 and the session
        ends, whether the line came whole or in pieces; the relay never sees its content."""
        conns = self.relay.connections()
        for piece in (None, 1000, 4096, 12287):
            c = self.starttls_session(auth=False)
            self.assertReply(c.cmd("AUTH PLAIN"), 334)
            line = b"A" * 13000 + b"\r\n"
            if piece is None:
                c.send(line)  # one TLS record: a complete line
            else:
                for i in range(0, len(line), piece):
                    c.send(line[i:i + piece])
            self.assertReply(c.reply(), 500, "5.5.6")
            c.read_eof()
        raw = self.relay_raw_since(conns)
        self.assertNotIn(b"AAAAAAAAAA", raw)

    def test_sasl_response_at_the_allowance_is_relayed(self):
        conns = self.relay.connections()
        c = self.starttls_session(auth=False)
        self.assertReply(c.cmd("AUTH PLAIN"), 334)
        c.send(b"B" * 12286 + b"\r\n")  # 12288 octets with the CRLF: the relay's verdict
        self.assertReply(c.reply(), 501, "5.5.2")
        self.assertReply(c.cmd("AUTH PLAIN " + h.plain_auth()), 235)
        self.assertReply(c.cmd("QUIT"), 221)
        self.assertIn(b"B" * 12286 + b"\r\n", self.relay_raw_since(conns))

    def test_sasl_response_with_nul_is_cancelled(self):
        conns = self.relay.connections()
        c = self.starttls_session(auth=False)
        self.assertReply(c.cmd("AUTH LOGIN"), 334)
        c.send(b"dXNl\0cg==\r\n")
        self.assertReply(c.reply(), 500, "5.5.2")
        self.assertReply(c.cmd("QUIT"), 221)
        raw = self.relay_raw_since(conns)
        self.assertIn(b"AUTH LOGIN\r\n*\r\n", raw)
        self.assertNotIn(b"dXNl", raw)

    def test_auth_line_allowance(self):
        # An AUTH line far over 512 octets is still an AUTH line: the relay judges it.
        conns = self.relay.connections()
        c = self.starttls_session(auth=False)
        long_plain = h.plain_auth(user="u" * 600 + "@acme.test")
        self.assertGreater(len("AUTH PLAIN " + long_plain), 600)
        self.assertReply(c.cmd("AUTH PLAIN " + long_plain), 535)
        self.assertReply(c.cmd("QUIT"), 221)
        self.assertIn(long_plain.encode(), self.relay_raw_since(conns))

    def test_auth_before_ehlo_in_plaintext(self):
        c = self.client()
        self.assertReply(c.reply(), 220)
        r = c.cmd("AUTH PLAIN " + h.plain_auth())
        self.assertReply(r, 530, "5.7.0 Must issue a STARTTLS command first")

    def test_password_never_logged(self):
        c = self.starttls_session(auth=False)
        self.assertReply(c.cmd("AUTH LOGIN"), 334)
        self.assertReply(c.cmd("dXNlckBhY21lLnRlc3Q="), 334)  # user@acme.test
        self.assertReply(c.cmd("c2VjcmV0"), 235)  # secret
        self.assertReply(c.cmd("QUIT"), 221)
        c = self.starttls_session()
        self.assertReply(c.cmd("QUIT"), 221)
        log = self.livery.log()  # at debug level
        for secret in (h.PASSWORD, h.plain_auth(), "c2VjcmV0"):
            self.assertNotIn(secret, log)

    # -- commands --

    def test_cr_inside_a_command_is_refused(self):
        conns = self.relay.connections()
        c = self.starttls_session()
        self.assertReply(c.cmd("NOOP\rRSET"), 500, "5.5.2")
        self.assertReply(c.cmd("QUIT"), 221)
        raw = self.relay_raw_since(conns)
        self.assertIn(b"QUIT", raw)  # this session's relay leg was read
        self.assertNotIn(b"RSET", raw)

    def test_absurd_size_parameter(self):
        conns = self.relay.connections()
        c = self.starttls_session()
        self.assertReply(c.cmd("MAIL FROM:<ann@acme.test> SIZE=" + "9" * 30), 552, "5.3.4")
        self.assertReply(c.cmd("QUIT"), 221)
        raw = self.relay_raw_since(conns)
        self.assertIn(b"QUIT", raw)
        self.assertNotIn(b"SIZE=", raw)

    def test_vrfy_expn_help_answered_locally(self):
        conns = self.relay.connections()
        c = self.starttls_session()
        self.assertReply(c.cmd("VRFY bob"), 252, "2.5.2")
        self.assertReply(c.cmd("EXPN staff"), 502, "5.5.1")
        r = c.cmd("HELP")
        self.assertReply(r, 214, "2.0.0")
        self.assertIn("smtp.acme.test", r.text)
        self.assertReply(c.cmd("QUIT"), 221)
        raw = self.relay_raw_since(conns)
        self.assertIn(b"QUIT", raw)
        for verb in (b"VRFY", b"EXPN", b"HELP"):
            self.assertNotIn(verb, raw)
        self.assertClean(c.received)

    def test_bad_command_cap_counts_syntax_errors(self):
        c = self.client()
        self.assertReply(c.reply(), 220)
        for _ in range(20):  # max_bad_commands defaults to 20
            c.send(b"NO\0OP\r\n")
            self.assertReply(c.reply(), 500, "5.5.2")
        c.send(b"NO\0OP\r\n")
        self.assertReply(c.reply(), 500, "5.5.2")
        self.assertReply(c.reply(), 421, "4.7.0")
        self.assertEqual(c.read_eof(), b"")

    # -- BDAT --

    def test_bdat_chunk_ending_in_cr_then_empty_last(self):
        before = self.relay.messages()
        conns = self.relay.connections()
        c = self.starttls_session()
        self.assertReply(c.cmd("MAIL FROM:<ann@acme.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<bob@example.com>"), 250)
        chunk = b"Subject: cr\r\n\r\nends in CR\r"
        c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
        self.assertReply(c.reply(), 250)
        self.assertReply(c.cmd("BDAT 0 LAST"), 554, "5.6.0")
        self.assertEqual(self.relay.messages(), before)
        raw = self.relay_raw_since(conns)
        self.assertIn(b"BDAT %d\r\n" % len(chunk), raw)
        self.assertNotIn(b"LAST", raw)

    # -- TLS --

    def test_reset_right_after_handshake_leaves_no_relay_leg(self):
        # Each session's relay leg starts when its handshake ends; a client that resets then
        # must not leave it open (the reset can surface while the handshake's last flight is
        # written). 100 tries make the race likely.
        opened_before = len(self.relay.connections())
        for _ in range(100):
            raw = socket.create_connection((h.HOST, self.livery.implicit_port), timeout=h.TIMEOUT)
            s = h.ssl_context().wrap_socket(raw, server_hostname="smtp.acme.test")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        h.wait_until(lambda: len(self.relay.connections()) > opened_before, "a relay leg to open")

        def all_closed():
            ev = self.relay.events()
            return sum(e.endswith(" open") for e in ev) == sum(e.endswith(" close") for e in ev)
        h.wait_until(all_closed, "every relay leg to close")
        c = self.starttls_session()
        self.assertReply(c.cmd("QUIT"), 221)

    def test_over_long_sni_label_gets_the_default_certificate(self):
        for name in ("a" * 64 + ".acme.test", "a" * 300):
            with self.subTest(name=name[:20]):
                s = socket.create_connection((h.HOST, self.livery.implicit_port), timeout=h.TIMEOUT)
                s.sendall(client_hello_tls12(name))
                got = b""
                while b"smtp.livery.test" not in got and len(got) < 65536:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += chunk
                s.close()
                self.assertTrue(got.startswith(b"\x16\x03\x03"), got[:16])  # a ServerHello
                self.assertIn(b"smtp.livery.test", got)  # the default tenant's certificate
                self.assertNotIn(b"acme", got)
        c = self.starttls_session()
        self.assertReply(c.cmd("QUIT"), 221)


class EhloFollowsTheRelay(h.ProxyTestCase):
    relay_options = ("--no-ext", "PIPELINING", "--no-ext", "ENHANCEDSTATUSCODES", "--no-ext", "SMTPUTF8",
                     "--no-ext", "CHUNKING")

    def test_keywords_the_relay_lacks_are_not_offered(self):
        c = self.starttls_session()
        for kw in ("PIPELINING", "ENHANCEDSTATUSCODES", "SMTPUTF8", "CHUNKING"):
            self.assertNotIn(kw, c.ehlo.raw)
        for kw in ("SIZE", "8BITMIME"):
            self.assertIn(kw, c.ehlo.raw)
        self.assertReply(mail_transaction(c), 250)


class PlaintextAuthAllowed(h.ProxyTestCase):
    livery_config = {"listener_extra": ("allow_plaintext_auth = true;",)}

    def test_longest_ehlo_reply(self):
        c = self.client()
        self.assertReply(c.reply(), 220)
        self.assertReply(c.cmd("EHLO client.example.test"), 250)
        self.assertReply(c.cmd("AUTH PLAIN " + h.plain_auth(password="wrong")), 535)
        # The relay leg is up now: every keyword, AUTH and STARTTLS in one reply.
        r = c.cmd("EHLO client.example.test")
        self.assertReply(r, 250)
        kws = [l.split(" ")[0] for l in r.lines[1:]]
        self.assertEqual(kws, ["PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8",
                               "CHUNKING", "AUTH", "STARTTLS"])
        self.assertReply(c.cmd("AUTH PLAIN " + h.plain_auth()), 235)
        self.assertReply(mail_transaction(c), 250)
        self.assertReply(c.cmd("QUIT"), 221)
        self.assertClean(c.received)


class GlobalConnectionLimit(h.ProxyTestCase):
    livery_config = {"top_extra": ("limits = { max_connections = 2; };",)}

    def test_over_the_limit_gets_421(self):
        a, b = self.client(), self.client()
        self.assertReply(a.reply(), 220)
        self.assertReply(b.reply(), 220)
        c = self.client()
        self.assertReply(c.reply(), 421, "4.7.0")
        self.assertEqual(c.read_eof(), b"")
        self.assertIn("too many connections", self.livery.log())


class Livery6(h.Livery):
    """livery with its STARTTLS listener on ::1."""

    def start(self):
        plain = h.config_text
        h.config_text = lambda *a, **k: plain(*a, **k).replace('address = "%s";' % h.HOST, 'address = "::1";', 1)
        try:
            return super().start()
        finally:
            h.config_text = plain


class Ipv6Listener(h.ProxyTestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = h.certs()
        cls.relay = h.Relay(cls.relay_cert)
        cls.addClassCleanup(cls.relay.kill)
        cls.relay.start()
        cls.livery = Livery6(cls.relay)
        cls.addClassCleanup(cls.livery.kill)
        cls.livery.start()

    def test_smtplib_over_ipv6(self):
        before = self.relay.messages()
        ctx = h.ssl_context(check_hostname=False)  # no SNI for an address: the default tenant
        with smtplib.SMTP("::1", self.livery.starttls_port, timeout=h.TIMEOUT) as s:
            code, banner = s.ehlo()
            self.assertEqual(code, 250)
            s.starttls(context=ctx)
            s.login(h.USER, h.PASSWORD)
            s.sendmail("ann@acme.test", ["bob@example.com"], b"Subject: v6\r\n\r\nover ::1\r\n")
        n = self.new_message(before)
        self.assertEqual(self.relay.msg_data(n), b"Subject: v6\r\n\r\nover ::1\r\n")
        self.assertIn("listening on ::1", self.livery.log())


if __name__ == "__main__":
    h.main()
