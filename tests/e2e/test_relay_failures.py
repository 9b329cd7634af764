#!/usr/bin/env python3
"""A relay livery must not use: wrong certificate name, untrusted CA, expired certificate, no
STARTTLS, STARTTLS refused, data injected after the STARTTLS reply. The client gets a 4xx
(454 4.7.0 to AUTH, or 421), its credentials never reach the relay, and no message is
relayed. Also: the relay refusing AUTH (535 reaches the client, scrubbed)."""

import base64
import re

import harness as h


class RelayUnusableChecks:
    """Tests shared by every class whose relay livery must refuse to use."""

    # What livery's warning about the relay leg must mention (case-insensitive), so that each
    # class fails for its own reason and not, say, because the relay did not start TLS at all.
    reason = None

    def check_refused(self, c):
        """AUTH gets 454 4.7.0 (or 421 and the connection ends); returns False after 421."""
        r = c.cmd("AUTH PLAIN " + h.plain_auth())
        self.assertIn(r.code, (421, 454), r.raw)
        self.assertTrue(r.lines[0].startswith("4.7.0") or r.code == 421, r.raw)
        if r.code == 421:
            c.read_eof()
            return False
        # Not authenticated, so nothing else gets through either.
        self.assertEqual(c.cmd("MAIL FROM:<ann@acme.test>").code // 100, 5 if r.code == 454 else 4)
        return True

    def check_relay_untouched(self, conns_before):
        new = [n for n in self.relay.connections() if n not in conns_before]
        # livery did try: otherwise the test would pass for the wrong reason.
        self.assertTrue(new, "livery never connected to the relay; events: %r" % self.relay.events())
        for n in new:
            self.relay.wait_closed(n)
            raw = self.relay.conn_raw(n)
            self.assertNotIn(b"AUTH", raw, "AUTH reached an unusable relay: %r" % raw)
            self.assertNotIn(h.plain_auth().encode(), raw)
            self.assertNotIn(b"MAIL", raw)
        self.assertFalse([e for e in self.relay.events() if " auth " in e], self.relay.events())
        self.assertEqual(self.relay.messages(), [])

    def test_starttls_listener(self):
        before = self.relay.connections()
        c = self.starttls_session(auth=False)
        if self.check_refused(c):
            self.assertReply(c.cmd("QUIT"), 221)
            c.read_eof()
        self.assertClean(c.received)
        self.check_relay_untouched(before)

    def test_reason_is_logged(self):
        c = self.starttls_session(auth=False)
        self.check_refused(c)
        c.close()
        warnings = [l for l in self.livery.log().splitlines() if ": warn: " in l and "relay" in l]
        self.assertTrue(warnings, "livery logged no warning about the relay leg")
        self.assertRegex("\n".join(warnings), re.compile(self.reason, re.I))

    def test_implicit_listener(self):
        before = self.relay.connections()
        c = self.client(implicit=True, implicit_sni="x.globex.test")
        self.assertEqual(c.reply().raw, "220 x.globex.test ESMTP\r\n")
        self.assertReply(c.cmd("EHLO client.example.test"), 250)
        if self.check_refused(c):
            # A second try on the same connection does not reach the relay either.
            self.check_refused(c)
            self.assertReply(c.cmd("QUIT"), 221)
            c.read_eof()
        self.assertClean(c.received)
        self.check_relay_untouched(before)


class WrongNameRelayTest(RelayUnusableChecks, h.ProxyTestCase):
    relay_cert = "relay-wrongname"
    reason = r"name mismatch|subject name|host ?name"


class UntrustedRelayTest(RelayUnusableChecks, h.ProxyTestCase):
    relay_cert = "relay-untrusted"
    reason = r"verif|issuer|unknown ca|signer"


class ExpiredRelayTest(RelayUnusableChecks, h.ProxyTestCase):
    relay_cert = "relay-expired"
    reason = r"date|expired"


class NoStarttlsRelayTest(RelayUnusableChecks, h.ProxyTestCase):
    relay_options = ("--no-starttls",)
    reason = r"starttls"

    def test_no_plaintext_relay_leg(self):
        before = self.relay.connections()
        c = self.starttls_session(auth=False)
        self.check_refused(c)
        self.check_relay_untouched(before)
        for n in self.relay.connections():
            self.assertNotIn(b"STARTTLS", self.relay.conn_raw(n), "STARTTLS sent though not offered")


class StarttlsErrorRelayTest(RelayUnusableChecks, h.ProxyTestCase):
    relay_options = ("--fault", "starttls-error")
    reason = r"starttls.*454|454.*starttls"


class StarttlsInjectRelayTest(RelayUnusableChecks, h.ProxyTestCase):
    """The relay sends "250 injected" in the same write as its 220 to STARTTLS: a reply that
    would be taken as coming from inside TLS. livery must not use such a relay."""
    relay_options = ("--fault", "starttls-inject")
    reason = r"inject|after its starttls"

    def test_injected_reply_never_reaches_client(self):
        c = self.starttls_session(auth=False)
        self.check_refused(c)
        c.close()
        self.assertNotIn(b"injected", c.received)


class StarttlsInjectPartialRelayTest(RelayUnusableChecks, h.ProxyTestCase):
    """The same with only the start of a reply ("250-", no line end) after the 220: nothing
    a reply parser would notice before TLS, so only the check for bytes after the 220 can
    catch it."""
    relay_options = ("--fault", "starttls-inject-partial")
    reason = r"inject|after its starttls"


class RejectAuthRelayTest(h.ProxyTestCase):
    """The relay refuses every AUTH: its 535 reaches the client, scrubbed to the brand."""
    relay_options = ("--reject-auth",)

    def test_auth_plain_refused(self):
        c = self.starttls_session(auth=False)
        r = c.cmd("AUTH PLAIN " + h.plain_auth())
        self.assertEqual(r.raw, "535 5.7.8 Authentication failed at smtp.acme.test\r\n")
        self.assertEqual(c.cmd("MAIL FROM:<ann@acme.test>").raw, "530 5.7.0 Authentication required\r\n")
        self.assertReply(c.cmd("QUIT"), 221)
        c.read_eof()
        self.assertClean(c.received)
        self.assertIn("auth fail", " ".join(self.relay.events()))
        self.assertFalse([e for e in self.relay.events() if "auth ok" in e])
        self.assertEqual(self.relay.messages(), [])

    def test_auth_login_refused(self):
        c = self.client(implicit=True, implicit_sni="mail.acme.test")
        self.assertReply(c.reply(), 220)
        self.assertReply(c.cmd("EHLO client.example.test"), 250)
        r = c.cmd("AUTH LOGIN")
        self.assertEqual(r.raw, "334 VXNlcm5hbWU6\r\n")
        r = c.cmd(base64.b64encode(h.USER.encode()).decode())
        self.assertEqual(r.raw, "334 UGFzc3dvcmQ6\r\n")
        r = c.cmd(base64.b64encode(h.PASSWORD.encode()).decode())
        self.assertEqual(r.raw, "535 5.7.8 Authentication failed at mail.acme.test\r\n")
        self.assertReply(c.cmd("QUIT"), 221)
        c.read_eof()
        self.assertClean(c.received)
        self.assertEqual(self.relay.messages(), [])


if __name__ == "__main__":
    h.main()
