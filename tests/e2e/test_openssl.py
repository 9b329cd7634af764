#!/usr/bin/env python3
"""openssl s_client against both listeners: which certificate livery presents for an exact
name (ECDSA acme), a wildcard name (RSA globex), no SNI and an unknown name (the listener's
default tenant), checked by subject, subjectAltName, key type and the exact DER bytes of the
configured certificate, with chain verification against the test CA; and that TLS 1.0/1.1
are refused while 1.2 and 1.3 work."""

import re
import ssl
import subprocess

import harness as h

OPENSSL = "openssl"
PEM_RE = re.compile(r"-----BEGIN CERTIFICATE-----\n.*?-----END CERTIFICATE-----\n?", re.S)

EXPECT = {
    # tenant cert file: (subject CN, SAN DNS names, key type in `openssl x509 -text`)
    "acme": ("smtp.acme.test", ["smtp.acme.test", "mail.acme.test"], "id-ecPublicKey"),
    "globex": ("*.globex.test", ["*.globex.test"], "rsaEncryption"),
    "default": ("smtp.livery.test", ["smtp.livery.test"], "id-ecPublicKey"),
}


def x509_text(pem):
    r = subprocess.run([OPENSSL, "x509", "-noout", "-text"], input=pem.encode(), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=h.TIMEOUT)
    if r.returncode != 0:
        raise AssertionError("openssl x509 failed: %s" % r.stderr.decode(errors="replace"))
    return r.stdout.decode()


def first_cert_der(pem_text):
    m = PEM_RE.search(pem_text)
    assert m, "no certificate in %r" % pem_text[:500]
    return ssl.PEM_cert_to_DER_cert(m.group(0))


class CertificateSelectionTest(h.ProxyTestCase):

    def s_client(self, implicit, servername, verify_hostname):
        port = self.livery.implicit_port if implicit else self.livery.starttls_port
        argv = [OPENSSL, "s_client", "-connect", "%s:%d" % (h.HOST, port), "-CAfile", self.certs.ca,
                "-verify_return_error", "-showcerts"]
        if not implicit:
            argv += ["-starttls", "smtp"]
        argv += ["-noservername"] if servername is None else ["-servername", servername]
        if verify_hostname:
            argv += ["-verify_hostname", verify_hostname]
        # stdin at EOF: s_client completes the handshake, prints the session and quits.
        r = subprocess.run(argv, input=b"", stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        out = r.stdout.decode("utf-8", "replace")
        err = r.stderr.decode("utf-8", "replace")
        self.assertEqual(r.returncode, 0, "%s\nstdout:\n%s\nstderr:\n%s" % (" ".join(argv), out, err))
        self.assertIn("Verify return code: 0 (ok)", out)
        self.assertClean(out + err, "s_client's output")
        return out

    def check(self, implicit, servername, tenant, verify_hostname):
        out = self.s_client(implicit, servername, verify_hostname)
        m = PEM_RE.search(out)
        self.assertIsNotNone(m, out)
        text = x509_text(m.group(0))
        cn, sans, keytype = EXPECT[tenant]
        self.assertRegex(text, re.compile(r"^\s*Subject:.*\bCN ?= ?%s\s*$" % re.escape(cn), re.M),
                         "wrong subject for SNI %r:\n%s" % (servername, text))
        san = re.search(r"X509v3 Subject Alternative Name:.*?\n\s*(.*)\n", text)
        self.assertIsNotNone(san, text)
        self.assertEqual(sorted(re.findall(r"DNS:([^,\s]+)", san.group(1))), sorted(sans))
        self.assertIn("Public Key Algorithm: %s" % keytype, text)
        # The very certificate configured for the tenant, not merely a look-alike.
        with open(self.certs.pem(tenant)) as f:
            self.assertEqual(first_cert_der(out), first_cert_der(f.read()),
                             "the presented certificate is not %s.pem" % tenant)

    # STARTTLS listener

    def test_starttls_exact_name_ecdsa(self):
        self.check(False, "smtp.acme.test", "acme", "smtp.acme.test")

    def test_starttls_second_exact_name(self):
        self.check(False, "mail.acme.test", "acme", "mail.acme.test")

    def test_starttls_wildcard_rsa(self):
        self.check(False, "eu.globex.test", "globex", "eu.globex.test")

    def test_starttls_no_sni_default(self):
        self.check(False, None, "default", "smtp.livery.test")

    def test_starttls_unknown_name_default(self):
        self.check(False, "unknown.example.test", "default", "smtp.livery.test")

    # implicit TLS listener

    def test_implicit_exact_name_ecdsa(self):
        self.check(True, "smtp.acme.test", "acme", "smtp.acme.test")

    def test_implicit_wildcard_rsa(self):
        self.check(True, "outbound.globex.test", "globex", "outbound.globex.test")

    def test_implicit_no_sni_default(self):
        self.check(True, None, "default", "smtp.livery.test")

    def test_implicit_unknown_name_default(self):
        self.check(True, "unknown.example.test", "default", "smtp.livery.test")

    # name matching rules (config reference: case and a trailing dot are ignored; a wildcard
    # matches exactly one more label; exact names win)

    def test_name_matching_ignores_case(self):
        self.check(True, "SMTP.Acme.TEST", "acme", "smtp.acme.test")

    def test_wildcard_does_not_match_two_labels(self):
        self.check(True, "a.b.globex.test", "default", "smtp.livery.test")

    def test_wildcard_does_not_match_bare_domain(self):
        self.check(True, "globex.test", "default", "smtp.livery.test")


class OldTlsRefusedTest(h.ProxyTestCase):
    """TLS 1.0 and 1.1 are refused on both listeners (a wolfSSL context would accept 1.1
    unless told otherwise); TLS 1.2 and 1.3 work."""

    def handshake(self, port, version, starttls):
        argv = [OPENSSL, "s_client", "-connect", "%s:%d" % (h.HOST, port), "-CAfile", self.certs.ca,
                "-servername", "smtp.acme.test", "-verify_return_error", version,
                # OpenSSL 3 itself will not offer TLS < 1.2 at its default security level.
                "-cipher", "DEFAULT@SECLEVEL=0"]
        if starttls:
            argv += ["-starttls", "smtp"]
        r = subprocess.run(argv, input=b"", stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        return r.returncode, r.stdout.decode("utf-8", "replace") + r.stderr.decode("utf-8", "replace")

    def test_versions(self):
        for port, starttls in ((self.livery.starttls_port, True), (self.livery.implicit_port, False)):
            for version in ("-tls1", "-tls1_1"):
                with self.subTest(port=port, version=version):
                    rc, out = self.handshake(port, version, starttls)
                    self.assertIn("Cipher is (NONE)", out)  # no session came of it
                    self.assertIn("alert protocol version", out)
            for version, name in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
                with self.subTest(port=port, version=version):
                    rc, out = self.handshake(port, version, starttls)
                    self.assertEqual(rc, 0, out)
                    self.assertIn("New, %s, Cipher is" % name, out)
                    self.assertIn("Verify return code: 0 (ok)", out)
        c = self.starttls_session()  # and it still serves
        self.assertReply(c.cmd("QUIT"), 221)


if __name__ == "__main__":
    h.main()
