#!/usr/bin/env python3
"""swaks through livery: STARTTLS (SNI + chain verification against the test CA) with AUTH
PLAIN and AUTH LOGIN, implicit TLS under the wildcard tenant, and a refused password. The
relay's msg-N.data must equal the dot-stuffed bytes swaks put on the wire."""

import os
import re
import shutil

import harness as h

SWAKS = shutil.which("swaks") or "/usr/bin/swaks"
FROM = "ann@acme.test"
TO = "bob@example.test"


# No skip when swaks is missing: tests/install-deps.sh installs it, and a suite that passes
# without running its real-client tests would prove nothing.
class SwaksTest(h.ProxyTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # swaks ends the data with "\r\n.\r\n" itself, so the file has no final line break;
        # it quotes leading dots (the file's lines are CRLF already).
        cls.data_file = os.path.join(h.scratch("swaks"), "body.eml")
        with open(cls.data_file, "wb") as f:
            f.write(h.SAMPLE_BODY[:-2])
        cls.expected_data = h.dot_stuff(h.SAMPLE_BODY)

    def swaks(self, *args, password=h.PASSWORD):
        argv = [SWAKS, "--server", h.HOST, "--from", FROM, "--to", TO,
                "--auth-user", h.USER, "--auth-password", password,
                "--tls-verify", "--tls-ca-path", self.certs.ca,
                "--data", "@" + self.data_file, "--timeout", str(h.TIMEOUT)] + list(args)
        r = self.run_tool(argv)
        out = r.stdout.decode("utf-8", "replace") + r.stderr.decode("utf-8", "replace")
        # Everything the client saw is in swaks' transcript; nothing of the relay may be there.
        self.assertClean(out, "swaks' transcript")
        return r.returncode, out

    @staticmethod
    def server_lines(out):
        """The server's lines in a swaks transcript ("<- " plain, "<~ " over TLS)."""
        return [m.group(1) for m in re.finditer(r"^<[-~]\*?\s+(.*)$", out, re.M)]

    def check_delivered(self, before):
        n = self.new_message(before)
        self.assertEqual(self.relay.msg_data(n), self.expected_data,
                         "the relay did not get the exact dot-stuffed bytes swaks sent")
        self.assertEqual(self.relay.msg_env(n),
                         "AUTH %s\nMAIL FROM:<%s>\nRCPT TO:<%s>\n" % (h.USER, FROM, TO))

    def check_starttls_session(self, sni, mech):
        before = self.relay.messages()
        rc, out = self.swaks("--port", str(self.livery.starttls_port), "--tls", "--tls-sni", sni,
                             "--auth", mech)
        self.assertEqual(rc, 0, out)
        lines = self.server_lines(out)
        self.assertEqual(lines[0], "220 %s ESMTP" % h.LISTENER_HOSTNAME, out)
        self.assertIn('TLS peer DN="/CN=smtp.acme.test"', out)
        # After the handshake the brand is the SNI name.
        self.assertIn("250-%s" % sni, lines, out)
        self.assertIn("235 2.7.0 Authentication successful %s" % sni, lines, out)
        self.assertTrue(any(re.match(r"^250 2\.0\.0 Ok: queued as \S+ by %s$" % re.escape(sni), l) for l in lines), out)
        self.assertIn("221 2.0.0 %s closing connection" % sni, lines, out)
        self.check_delivered(before)

    def test_starttls_auth_plain(self):
        self.check_starttls_session("smtp.acme.test", "PLAIN")

    def test_starttls_auth_login(self):
        self.check_starttls_session("mail.acme.test", "LOGIN")
        self.assertIn("conn %d auth ok %s" % (self.relay.connections()[-1], h.USER), self.relay.events())

    def test_implicit_tls_wildcard_tenant(self):
        before = self.relay.messages()
        sni = "outbound.globex.test"
        rc, out = self.swaks("--port", str(self.livery.implicit_port), "--tlsc", "--tls-sni", sni,
                             "--auth", "PLAIN")
        self.assertEqual(rc, 0, out)
        self.assertIn('TLS peer DN="/CN=*.globex.test"', out)
        lines = self.server_lines(out)
        self.assertEqual(lines[0], "220 %s ESMTP" % sni, out)
        self.assertIn("250-%s" % sni, lines, out)
        self.assertNotIn("250-STARTTLS", lines, "STARTTLS offered on the implicit TLS port")
        self.assertTrue(any(re.match(r"^250 2\.0\.0 Ok: queued as \S+ by %s$" % re.escape(sni), l) for l in lines), out)
        self.check_delivered(before)

    def test_wrong_password_is_refused(self):
        before = self.relay.messages()
        rc, out = self.swaks("--port", str(self.livery.starttls_port), "--tls", "--tls-sni", "smtp.acme.test",
                             "--auth", "PLAIN", password="not-the-password")
        self.assertNotEqual(rc, 0, out)
        self.assertIn("535 5.7.8 Authentication failed at smtp.acme.test", self.server_lines(out), out)
        self.assertEqual(self.relay.messages(), before)


if __name__ == "__main__":
    h.main()
