#!/usr/bin/env python3
"""curl through livery: smtp:// with --ssl-reqd (STARTTLS) and smtps:// (implicit TLS), the
URL host being the brand name (SNI and certificate verification against the test CA) while
--connect-to sends the connection to 127.0.0.1. The relay must record the dot-stuffed bytes."""

import os
import re
import shutil

import harness as h

CURL = shutil.which("curl") or "/usr/bin/curl"
FROM = "ann@acme.test"
TO = ["bob@example.test", "carol@example.test"]


# No skip when curl is missing (see test_swaks.py).
class CurlTest(h.ProxyTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.body_file = os.path.join(h.scratch("curl"), "body.eml")
        with open(cls.body_file, "wb") as f:
            f.write(h.SAMPLE_BODY)

    def curl(self, scheme, name, port, *extra, user=h.USER + ":" + h.PASSWORD, cafile=None):
        argv = [CURL, "--silent", "--show-error", "--verbose", "--max-time", str(h.TIMEOUT),
                "--url", "%s://%s:%d" % (scheme, name, port),
                "--connect-to", "%s:%d:%s:%d" % (name, port, h.HOST, port),
                "--cacert", cafile or self.certs.ca,
                "--mail-from", FROM, "--upload-file", self.body_file, "--user", user]
        for rcpt in TO:
            argv += ["--mail-rcpt", rcpt]
        r = self.run_tool(argv + list(extra))
        out = r.stdout.decode("utf-8", "replace")
        err = r.stderr.decode("utf-8", "replace")
        self.assertClean(out + err, "curl's output")
        # "< " lines of curl -v are what the server sent.
        server = [l[2:] for l in err.splitlines() if l.startswith("< ")]
        return r.returncode, server, err

    def check_delivered(self, before):
        n = self.new_message(before)
        # curl dot-stuffs the upload itself; the file ends in CRLF, so it sends ".\r\n" after it.
        self.assertEqual(self.relay.msg_data(n), h.dot_stuff(h.SAMPLE_BODY))
        env = self.relay.msg_env(n).splitlines()
        self.assertEqual(env[0], "AUTH " + h.USER)
        self.assertRegex(env[1], r"^MAIL FROM:<%s>( SIZE=\d+)?$" % re.escape(FROM))
        self.assertEqual(env[2:], ["RCPT TO:<%s>" % r for r in TO])

    def test_smtp_starttls_ssl_reqd(self):
        before = self.relay.messages()
        name = "smtp.acme.test"
        rc, server, err = self.curl("smtp", name, self.livery.starttls_port, "--ssl-reqd")
        self.assertEqual(rc, 0, err)
        self.assertEqual(server[0], "220 %s ESMTP" % h.LISTENER_HOSTNAME, err)
        self.assertIn("STARTTLS", err)
        self.assertIn("250-%s" % name, server, err)
        self.assertTrue(any(re.match(r"^250 2\.0\.0 Ok: queued as \S+ by %s$" % re.escape(name), l) for l in server), err)
        self.check_delivered(before)

    def test_smtps_implicit(self):
        before = self.relay.messages()
        name = "mail.acme.test"
        rc, server, err = self.curl("smtps", name, self.livery.implicit_port)
        self.assertEqual(rc, 0, err)
        self.assertEqual(server[0], "220 %s ESMTP" % name, err)
        self.assertTrue(any(re.match(r"^250 2\.0\.0 Ok: queued as \S+ by %s$" % re.escape(name), l) for l in server), err)
        self.check_delivered(before)

    def test_smtps_wildcard_tenant(self):
        before = self.relay.messages()
        name = "smtp.globex.test"
        rc, server, err = self.curl("smtps", name, self.livery.implicit_port)
        self.assertEqual(rc, 0, err)
        self.assertEqual(server[0], "220 %s ESMTP" % name, err)
        self.check_delivered(before)

    def test_name_not_in_certificate_fails_verification(self):
        # The default tenant's certificate is for smtp.livery.test only: curl must refuse it
        # for another name, so the passing tests above really did verify the name.
        before = self.relay.messages()
        rc, server, err = self.curl("smtps", "other.example.test", self.livery.implicit_port)
        self.assertNotEqual(rc, 0, err)
        self.assertEqual(self.relay.messages(), before)

    def test_untrusted_ca_fails_verification(self):
        before = self.relay.messages()
        rc, server, err = self.curl("smtp", "smtp.acme.test", self.livery.starttls_port, "--ssl-reqd",
                                    cafile=self.certs.ca2)
        self.assertNotEqual(rc, 0, err)
        self.assertEqual(self.relay.messages(), before)

    def test_wrong_password(self):
        before = self.relay.messages()
        name = "smtp.acme.test"
        rc, server, err = self.curl("smtp", name, self.livery.starttls_port, "--ssl-reqd",
                                    user=h.USER + ":wrong")
        self.assertNotEqual(rc, 0, err)
        self.assertIn("535 5.7.8 Authentication failed at %s" % name, server, err)
        self.assertEqual(self.relay.messages(), before)


if __name__ == "__main__":
    h.main()
