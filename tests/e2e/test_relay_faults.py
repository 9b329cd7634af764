#!/usr/bin/env python3
"""The relay misbehaving or refusing: its refusals (any code) reach the client with enhanced
codes intact and texts scrubbed of the relay's identity (scrub words, host, verify_name);
a relay that drops the connection or goes silent gives the client a 4xx, never a 2xx.
Short livery timeouts keep the silent-relay cases quick; they are bounds, not assertions."""

import harness as h

SHORT_TIMEOUTS = ["limits = {", "  tls_timeout = 2;", "  relay_timeout = 2;", "  relay_data_timeout = 2;", "};"]


class TransactionMixin:

    def start_transaction(self, sni="smtp.acme.test"):
        c = self.starttls_session(sni)
        self.assertReply(c.cmd("MAIL FROM:<ann@acme.test>"), 250)
        return c


class RelayRefusesRecipientTest(TransactionMixin, h.ProxyTestCase):
    relay_options = ("--reply", "RCPT=550 5.1.1 <bob@example.test>: Recipient unknown at smtp.mailgun.test "
                     "(Mailgun) via smtp.relay.test [127.0.0.1]")

    def test_refusal_passes_scrubbed(self):
        for sni in ("smtp.acme.test", "eu.globex.test"):
            with self.subTest(sni=sni):
                c = self.start_transaction(sni)
                r = c.cmd("RCPT TO:<bob@example.test>")
                # Two relay words in a row become one brand name.
                self.assertEqual(r.raw, "550 5.1.1 <bob@example.test>: Recipient unknown at %s via %s\r\n"
                                 % (sni, sni))
                self.assertReply(c.cmd("QUIT"), 221)
                c.read_eof()
                self.assertClean(c.received)
                self.assertNotIn(b"127.0.0.1", c.received)
        self.assertEqual(self.relay.messages(), [])


class RelayRefusesMessageTest(TransactionMixin, h.ProxyTestCase):
    relay_options = ("--reply", "DOT=452 4.3.1 Insufficient system storage on smtp.mailgun.test")

    def test_refusal_after_data_passes_scrubbed(self):
        c = self.start_transaction()
        self.assertReply(c.cmd("RCPT TO:<bob@example.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(h.dot_stuff(h.SAMPLE_BODY) + b".\r\n")
        self.assertEqual(c.reply().raw, "452 4.3.1 Insufficient system storage on smtp.acme.test\r\n")
        # The session goes on: the next transaction is accepted up to its end.
        self.assertReply(c.cmd("MAIL FROM:<ann@acme.test>"), 250)
        self.assertReply(c.cmd("QUIT"), 221)
        c.read_eof()
        self.assertClean(c.received)


class RelayResetInDataTest(TransactionMixin, h.ProxyTestCase):
    """The relay closes its connection after 100 bytes of message data."""
    relay_options = ("--fault", "reset-data")

    def test_client_gets_421(self):
        c = self.start_transaction()
        self.assertReply(c.cmd("RCPT TO:<bob@example.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(h.dot_stuff(h.SAMPLE_BODY) + b".\r\n")
        r = c.reply()
        self.assertEqual(r.code, 421, r.raw)
        self.assertTrue(r.lines[0].startswith("4.4.2 smtp.acme.test "), r.raw)
        c.read_eof()
        self.assertClean(c.received)
        self.assertEqual(self.relay.messages(), [])


class RelayResetAtBannerTest(h.ProxyTestCase):
    relay_options = ("--fault", "reset-banner")

    def test_auth_gets_454(self):
        c = self.starttls_session(auth=False)
        r = c.cmd("AUTH PLAIN " + h.plain_auth())
        self.assertEqual(r.raw, "454 4.7.0 Temporary authentication failure, try again later\r\n")
        self.assertClean(c.received)


class RelaySilentAtBannerTest(h.ProxyTestCase):
    relay_options = ("--fault", "stall-banner")
    livery_config = {"top_extra": SHORT_TIMEOUTS}

    def test_auth_gets_454(self):
        c = self.client(implicit=True, implicit_sni="smtp.acme.test")
        self.assertReply(c.reply(), 220)
        self.assertReply(c.cmd("EHLO client.example.test"), 250)
        r = c.cmd("AUTH PLAIN " + h.plain_auth())
        self.assertEqual(r.raw, "454 4.7.0 Temporary authentication failure, try again later\r\n")
        self.assertReply(c.cmd("QUIT"), 221)
        self.assertClean(c.received)
        self.assertFalse([e for e in self.relay.events() if " auth " in e])


class RelaySilentAfterDataTest(TransactionMixin, h.ProxyTestCase):
    """The relay never answers the end of data: the client must not get a 2xx."""
    relay_options = ("--fault", "stall-data")
    livery_config = {"top_extra": SHORT_TIMEOUTS}

    def test_client_gets_4xx(self):
        c = self.start_transaction()
        self.assertReply(c.cmd("RCPT TO:<bob@example.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(h.dot_stuff(h.SAMPLE_BODY) + b".\r\n")
        r = c.reply()
        self.assertEqual(r.code // 100, 4, r.raw)
        self.assertTrue(r.lines[0].startswith("4."), r.raw)
        c.read_eof()
        self.assertClean(c.received)


if __name__ == "__main__":
    h.main()
