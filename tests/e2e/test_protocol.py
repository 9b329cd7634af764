#!/usr/bin/env python3
"""The client-facing SMTP dialogue on a raw socket: the greeting, AUTH before STARTTLS, MAIL
before AUTH, unknown commands, plaintext pipelined after STARTTLS (CVE-2011-0411 class), and
bare line endings in message content (SMTP smuggling). Checks both what the client got and
what reached the relay."""

import base64
import signal
import socket

import harness as h


class ProtocolTest(h.ProxyTestCase):

    # ---- greeting and EHLO ----

    def test_greeting_starttls_listener(self):
        c = self.client()
        greeting = c.reply()
        self.assertEqual(greeting.raw, "220 %s ESMTP\r\n" % h.LISTENER_HOSTNAME)
        ehlo = c.cmd("EHLO client.example.test")
        self.assertReply(ehlo, 250)
        self.assertEqual(ehlo.lines[0], h.LISTENER_HOSTNAME)
        self.assertIn("STARTTLS", ehlo.lines)
        self.assertFalse([l for l in ehlo.lines if l.upper().startswith("AUTH")], "AUTH offered before TLS: %r" % ehlo.raw)
        self.assertEqual(c.cmd("QUIT").raw, "221 2.0.0 %s Service closing transmission channel\r\n" % h.LISTENER_HOSTNAME)
        c.read_eof()
        self.assertClean(c.received)
        for word in ("Relay ready", "ESMTP Mailgun", "greets"):
            self.assertNotIn(word.encode(), c.received)

    def test_greeting_implicit_listener_uses_sni_brand(self):
        for sni, brand in (("smtp.acme.test", "smtp.acme.test"), ("x.globex.test", "x.globex.test"),
                           (None, h.LISTENER_HOSTNAME), ("nobody.example.test", h.LISTENER_HOSTNAME)):
            with self.subTest(sni=sni):
                # An unclaimed name gets the default tenant's certificate (smtp.livery.test).
                ctx = h.ssl_context(check_hostname=sni in ("smtp.acme.test", "x.globex.test"))
                c = self.client(implicit=True, implicit_sni=sni, ctx=ctx)
                self.assertEqual(c.reply().raw, "220 %s ESMTP\r\n" % brand)
                ehlo = c.cmd("EHLO client.example.test")
                self.assertEqual(ehlo.lines[0], brand)
                self.assertNotIn("STARTTLS", ehlo.lines)
                self.assertIn("AUTH PLAIN LOGIN", ehlo.lines)
                self.assertEqual(c.cmd("QUIT").code, 221)
                c.read_eof()
                self.assertClean(c.received)

    def test_ehlo_after_starttls_uses_sni_brand(self):
        c = self.starttls_session("mail.acme.test", auth=False)
        self.assertEqual(c.ehlo.lines[0], "mail.acme.test")
        self.assertNotIn("STARTTLS", c.ehlo.lines)
        self.assertIn("AUTH PLAIN LOGIN", c.ehlo.lines)
        self.assertReply(c.cmd("QUIT"), 221)
        c.read_eof()
        self.assertClean(c.received)

    # ---- commands out of order ----

    def test_auth_before_starttls(self):
        secret = base64.b64encode(b"\0early@acme.test\0early-secret").decode()
        c = self.client()
        self.assertReply(c.reply(), 220)
        self.assertReply(c.cmd("EHLO client.example.test"), 250)
        self.assertEqual(c.cmd("AUTH PLAIN " + secret).raw, "530 5.7.0 Must issue a STARTTLS command first\r\n")
        self.assertEqual(c.cmd("AUTH LOGIN").raw, "530 5.7.0 Must issue a STARTTLS command first\r\n")
        self.assertReply(c.cmd("QUIT"), 221)
        c.read_eof()
        self.assertClean(c.received)
        self.assertNotIn(secret.encode(), self.relay.all_raw(), "credentials sent before TLS reached the relay")
        self.assertFalse([e for e in self.relay.events() if "early@acme.test" in e])

    def test_mail_before_auth(self):
        conns = self.relay.connections()
        c = self.starttls_session(auth=False)
        self.assertEqual(c.cmd("MAIL FROM:<noauth@acme.test>").raw, "530 5.7.0 Authentication required\r\n")
        self.assertEqual(c.cmd("RCPT TO:<bob@example.test>").code, 530)
        self.assertEqual(c.cmd("DATA").code, 530)
        self.assertReply(c.cmd("QUIT"), 221)
        c.read_eof()
        self.assertClean(c.received)
        self.assertNotIn(b"noauth@acme.test", self.relay_raw_since(conns))

    def test_mail_before_auth_plaintext(self):
        c = self.client()
        self.assertReply(c.reply(), 220)
        self.assertReply(c.cmd("EHLO client.example.test"), 250)
        self.assertEqual(c.cmd("MAIL FROM:<noauth-plain@acme.test>").raw, "530 5.7.0 Authentication required\r\n")
        self.assertReply(c.cmd("QUIT"), 221)
        self.assertNotIn(b"noauth-plain@acme.test", self.relay.all_raw())

    def test_unknown_command(self):
        conns = self.relay.connections()
        c = self.client()
        self.assertReply(c.reply(), 220)
        self.assertEqual(c.cmd("XYZZY plugh").raw, "500 5.5.1 Command unrecognized\r\n")
        self.assertReply(c.cmd("EHLO client.example.test"), 250)
        self.assertReply(c.cmd("STARTTLS"), 220)
        c.wrap("smtp.acme.test")
        self.assertReply(c.cmd("EHLO client.example.test"), 250)
        self.assertReply(c.cmd("AUTH PLAIN " + h.plain_auth()), 235)
        # Authenticated, with the relay leg up: still answered by livery, never relayed.
        self.assertEqual(c.cmd("XYZZY2 plugh").raw, "500 5.5.1 Command unrecognized\r\n")
        self.assertReply(c.cmd("NOOP"), 250)
        self.assertReply(c.cmd("QUIT"), 221)
        c.read_eof()
        self.assertClean(c.received)
        raw = self.relay_raw_since(conns)
        self.assertIn(b"NOOP\r\n", raw)
        self.assertNotIn(b"XYZZY", raw)

    def test_starttls_when_tls_is_active(self):
        c = self.starttls_session(auth=False)
        self.assertEqual(c.cmd("STARTTLS").raw, "503 5.5.1 TLS already active\r\n")
        c2 = self.client(implicit=True, implicit_sni="smtp.acme.test")
        self.assertReply(c2.reply(), 220)
        self.assertReply(c2.cmd("EHLO client.example.test"), 250)
        self.assertEqual(c2.cmd("STARTTLS").code, 503)
        self.assertClean(c.received + c2.received)

    # ---- STARTTLS command injection ----

    def test_plaintext_pipelined_after_starttls_is_discarded(self):
        conns_before = self.relay.connections()
        c = self.client()
        self.assertReply(c.reply(), 220)
        self.assertReply(c.cmd("EHLO client.example.test"), 250)
        # One write: STARTTLS plus commands an attacker injected in the plaintext stream.
        c.send(b"STARTTLS\r\nRSET\r\nMAIL FROM:<injected@evil.test>\r\n")
        r = c.reply()
        self.assertEqual(r.raw, "220 2.0.0 Ready to start TLS\r\n")
        # Nothing else may follow in plaintext (wrap() also checks that nothing is buffered).
        c.wrap("smtp.acme.test")
        # The first reply inside TLS must be the one to this EHLO, not to RSET or MAIL.
        ehlo = c.cmd("EHLO client.example.test")
        self.assertEqual(ehlo.code, 250, ehlo.raw)
        self.assertEqual(ehlo.lines[0], "smtp.acme.test", "first reply after the handshake is not the EHLO reply: %r" % ehlo.raw)
        self.assertIn("PIPELINING", ehlo.lines)
        self.assertReply(c.cmd("AUTH PLAIN " + h.plain_auth()), 235)
        # Had MAIL been executed, this would be 503 (nested MAIL).
        self.assertReply(c.cmd("MAIL FROM:<real@acme.test>"), 250, "2.1.0")
        self.assertReply(c.cmd("RSET"), 250)
        self.assertReply(c.cmd("QUIT"), 221)
        c.read_eof()
        self.assertClean(c.received)
        self.assertEqual(len(self.relay.connections()) - len(conns_before), 1)
        raw = self.relay_raw_since(conns_before)
        self.assertNotIn(b"injected@evil.test", raw)
        self.assertIn(b"MAIL FROM:<real@acme.test>\r\n", raw)
        self.assertEqual(raw.count(b"RSET"), 1, "RSET reached the relay other than the client's own: %r" % raw)

    # ---- SMTP smuggling: bare CR / LF in content ----

    def check_bare_line_ending_rejected(self, payload):
        before = self.relay.messages()
        conns = self.relay.connections()
        c = self.starttls_session()
        self.assertReply(c.cmd("MAIL FROM:<ann@acme.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<bob@example.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b"Subject: smuggling\r\n\r\nhello" + payload +
               b"MAIL FROM:<smuggled@evil.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\n"
               b"smuggled body\r\n.\r\n")
        r = c.reply()
        self.assertEqual(r.raw, "554 5.6.0 Message rejected: bare CR or LF in message content\r\n")
        c.close()
        self.assertClean(c.received)
        raw = self.relay_raw_since(conns)
        self.assertIn(b"DATA\r\n", raw)  # the relay leg did carry the transaction
        self.assertEqual(self.relay.messages(), before, "a message reached the relay")
        self.assertNotIn(b"smuggled@evil.test", raw)
        self.assertNotIn(b"victim@example.test", raw)

    def test_bare_lf_dot_is_not_end_of_data(self):
        self.check_bare_line_ending_rejected(b"\n.\r\n")

    def test_bare_cr_dot_is_not_end_of_data(self):
        self.check_bare_line_ending_rejected(b"\r\n.\r")

    def test_lf_dot_lf_is_not_end_of_data(self):
        self.check_bare_line_ending_rejected(b"\n.\n")


class ShutdownTest(h.ProxyTestCase):
    """SIGTERM with sessions open: livery stops accepting, lets sessions finish for a grace
    period, then tells each remaining client 421 4.3.2 and exits 0. A second signal ends the
    sessions at once. Each test has a livery of its own."""

    def setUp(self):
        super().setUp()
        self.livery = h.Livery(self.relay).start()
        self.addCleanup(self.livery.kill)

    def open_sessions(self):
        idle = self.client()
        self.assertReply(idle.reply(), 220)
        busy = self.starttls_session()
        self.assertReply(busy.cmd("MAIL FROM:<ann@acme.test>"), 250)
        return idle, busy

    def refuses_connections(self):
        try:
            socket.create_connection((h.HOST, self.livery.starttls_port), timeout=h.TIMEOUT).close()
            return False
        except ConnectionRefusedError:
            return True
        except ConnectionResetError:
            # Caught while the listening socket closed: ask again.
            return False

    def check_ended(self, idle, busy):
        self.assertEqual(idle.reply().raw, "421 4.3.2 %s Service shutting down\r\n" % h.LISTENER_HOSTNAME)
        self.assertEqual(busy.reply().raw, "421 4.3.2 smtp.acme.test Service shutting down\r\n")
        idle.read_eof()
        busy.read_eof()
        # Waits for the exit livery is already making (no further signal).
        self.assertEqual(self.livery.proc.wait(h.TIMEOUT), 0, "livery's exit status after SIGTERM")
        self.assertClean(idle.received + busy.received)

    def test_sigterm_with_open_sessions(self):
        idle, busy = self.open_sessions()
        self.livery.proc.send_signal(signal.SIGTERM)
        h.wait_until(self.refuses_connections, "livery to stop accepting connections")
        self.check_ended(idle, busy)

    def test_second_sigterm_ends_sessions_at_once(self):
        idle, busy = self.open_sessions()
        self.livery.proc.send_signal(signal.SIGTERM)
        h.wait_until(self.refuses_connections, "livery to stop accepting connections")
        self.livery.proc.send_signal(signal.SIGTERM)
        self.check_ended(idle, busy)

    def test_sigterm_without_sessions(self):
        self.livery.proc.send_signal(signal.SIGINT)
        self.assertEqual(self.livery.proc.wait(h.TIMEOUT), 0)


if __name__ == "__main__":
    h.main()
