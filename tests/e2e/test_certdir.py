#!/usr/bin/env python3
"""cert_dir: livery finds certificates by name under a directory (certbot's live/ -> archive/
symlinks, and flat <name>.pem/.crt + <name>.key pairs), serves each tenant host name the
certificate that covers it (the later-expiring one when two do, never an expired or not yet
valid one while a valid one exists), refuses pairs that do not match, fails --check for names
no certificate covers and for expired certificates, warns about near expiry and loose key
modes, and notices a certbot-style renewal."""

import os
import re
import subprocess
import time
import unittest

import harness as h

CERTS_TOOL = h.CERTS_TOOL


def issue(ca_dir, out, names, *opts):
    argv = ["bash", CERTS_TOOL, "issue", "--ca", ca_dir, "--out", out]
    for n in names:
        argv += ["--name", n]
    r = subprocess.run(argv + list(opts), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("livery-certs issue failed: %s" % r.stdout.decode(errors="replace"))
    return out + ".pem", out + ".key"


def place(src_pem, src_key, cert_path, key_path):
    os.makedirs(os.path.dirname(cert_path), exist_ok=True)
    with open(src_pem, "rb") as f, open(cert_path, "wb") as g:
        g.write(f.read())
    with open(src_key, "rb") as f, open(key_path, "wb") as g:
        g.write(f.read())
    os.chmod(key_path, 0o600)


def certbot_install(cert_dir, name, version, pem, key):
    """What certbot does: archive/<name>/fullchainN.pem + privkeyN.pem, and live/<name>/ symlinks
    re-pointed at them (unlink, then symlink)."""
    archive = os.path.join(cert_dir, "archive", name)
    live = os.path.join(cert_dir, "live", name)
    os.makedirs(live, exist_ok=True)
    place(pem, key, os.path.join(archive, "fullchain%d.pem" % version), os.path.join(archive, "privkey%d.pem" % version))
    for link, target in (("fullchain.pem", "fullchain%d.pem" % version), ("privkey.pem", "privkey%d.pem" % version)):
        path = os.path.join(live, link)
        if os.path.lexists(path):
            os.unlink(path)
        os.symlink(os.path.join("..", "..", "archive", name, target), path)


def first_pem(text):
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S)
    return m.group(0) if m else None


def config(cert_dir, tenants, relay_port=2587, ca=None, ports=(2525, 2465), extra_top=()):
    """tenants: (name, [hostnames], extra lines). The first tenant is the listeners' default."""
    q = lambda s: '"%s"' % s
    L = ['log_level = "debug";']
    if cert_dir:
        L.append("cert_dir = %s;" % q(cert_dir))
    L.extend(extra_top)
    L.append("listeners = (")
    for i, (port, mode) in enumerate(zip(ports, ("starttls", "implicit"))):
        L.append('  { address = "%s"; port = %d; tls = "%s"; hostname = "%s"; default_tenant = "%s"; }%s'
                 % (h.HOST, port, mode, h.LISTENER_HOSTNAME, tenants[0][0], "," if i == 0 else ""))
    L.append(");")
    L.append('regions = ( { name = "relay"; host = "%s"; port = %d; verify_name = "smtp.relay.test"; ca_file = %s; } );'
             % (h.HOST, relay_port, q(ca or h.certs().ca)))
    L.append("tenants = (")
    for i, (name, names, extra) in enumerate(tenants):
        L.append("  {")
        L.append("    name = %s;" % q(name))
        L.append("    hostnames = [ %s ];" % ", ".join(q(n) for n in names))
        L.append('    region = "relay";')
        L.extend("    " + x for x in extra)
        L.append("  }" + ("," if i < len(tenants) - 1 else ""))
    L.append(");")
    return "\n".join(L) + "\n"


class CertDirLivery(h.Process):
    label = "livery"

    def __init__(self, text_fn):
        super().__init__()
        self.text_fn = text_fn

    def start(self):
        d = h.scratch("livery-certdir")
        self.ports = (h.free_port(), h.free_port())
        self.config_path = os.path.join(d, "livery.conf")
        with open(self.config_path, "w") as f:
            f.write(self.text_fn(self.ports))
        self._spawn([h.LIVERY_BIN, "-c", self.config_path], os.path.join(d, "livery.log"))
        ready = re.compile(r"^(?:\S+ )?livery\[\d+\]: info: ready\b", re.M)
        h.wait_until(lambda: ready.search(self.log()) or self.proc.poll() is not None, "livery to log 'ready'")
        if self.proc.poll() is not None:
            raise RuntimeError("livery exited before it was ready:\n%s" % self.log())
        return self

    def served(self, sni, *args, starttls=False):
        """The leaf certificate (PEM) livery presents for sni on its implicit-TLS port, or after
        STARTTLS on the other; args go to openssl s_client."""
        port = self.ports[0] if starttls else self.ports[1]
        extra = ["-starttls", "smtp"] if starttls else []
        r = subprocess.run(["openssl", "s_client", "-connect", "%s:%d" % (h.HOST, port), "-servername", sni]
                           + extra + list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=h.TIMEOUT)
        return first_pem(r.stdout.decode(errors="replace"))


class CertDirTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.certs = h.certs()
        cls.ca = os.path.dirname(cls.certs.ca)
        cls.gen = h.scratch("certdir-gen")
        g = lambda n: os.path.join(cls.gen, n)
        cls.acme_short = issue(cls.ca, g("acme-short"), ["smtp.acme.test", "mail.acme.test"], "--days", "40")
        cls.acme_long = issue(cls.ca, g("acme-long"), ["smtp.acme.test"], "--days", "90")
        cls.globex = issue(cls.ca, g("globex"), ["*.globex.test"], "--rsa")
        cls.cn_not_in_san = issue(cls.ca, g("cn-not-in-san"), ["other.initech.test"], "--cn", "cn.initech.test")
        cls.cn_only = issue(cls.ca, g("cn-only"), ["cn.initech.test"], "--no-san")
        cls.expired = issue(cls.ca, g("expired"), ["old.acme.test"], "--expired")
        cls.valid_old = issue(cls.ca, g("valid-old"), ["old.acme.test"], "--days", "30")
        cls.future = issue(cls.ca, g("future"), ["old.acme.test"], "--not-yet-valid", "--days", "400")
        cls.soon = issue(cls.ca, g("soon"), ["soon.acme.test"], "--days", "10")
        cls.acme_rsa = issue(cls.ca, g("acme-rsa"), ["smtp.acme.test", "mail.acme.test"], "--rsa", "--days", "200")
        cls.renewed = issue(cls.ca, g("renewed"), ["smtp.acme.test", "mail.acme.test"], "--days", "60")

    def setUp(self):
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            p.kill()

    def new_dir(self, name):
        return h.scratch("certdir-" + name)

    def run_check(self, text):
        d = h.scratch("certdir-check")
        path = os.path.join(d, "livery.conf")
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([h.LIVERY_BIN, "--check", "-c", path], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=h.TIMEOUT)
        return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace"), path

    def start(self, text_fn):
        p = CertDirLivery(text_fn)
        self.procs.append(p)
        return p.start()

    def stop(self, p):
        rc = p.stop()
        self.assertEqual(rc, 0, "livery exited with %r on SIGTERM" % (rc,))
        for word in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            self.assertNotIn(word, p.log())

    def assertServes(self, livery, sni, pem_path, *args, starttls=False):
        with open(pem_path) as f:
            want = first_pem(f.read())
        got = livery.served(sni, *args, starttls=starttls)
        self.assertIsNotNone(got, "no certificate from livery for %s" % sni)
        self.assertEqual(got, want, "livery served the wrong certificate for %s (wanted %s)" % (sni, pem_path))

    def test_both_layouts_served_by_sni(self):
        d = self.new_dir("layouts")
        certbot_install(d, "acme", 1, *self.acme_short)
        place(*self.globex, os.path.join(d, "globex.crt"), os.path.join(d, "globex.key"))
        place(*self.cn_only, os.path.join(d, "initech.pem"), os.path.join(d, "initech.key"))
        tenants = [("acme", ["smtp.acme.test", "mail.acme.test"], []),
                   ("globex", ["*.globex.test", "smtp.globex.test"], []),
                   ("initech", ["cn.initech.test"], [])]
        rc, out, err, _ = self.run_check(config(d, tenants))
        self.assertEqual(rc, 0, err)
        self.assertIn(": OK", out)
        p = self.start(lambda ports: config(d, tenants, ports=ports))
        self.assertServes(p, "smtp.acme.test", self.acme_short[0])
        self.assertServes(p, "mail.acme.test", self.acme_short[0])
        # A one-label wildcard covers the tenant's wildcard and a name under it.
        self.assertServes(p, "smtp.globex.test", self.globex[0])
        self.assertServes(p, "x.globex.test", self.globex[0])
        # No SAN at all: the CN names the certificate (RFC 9525 6.4.4).
        self.assertServes(p, "cn.initech.test", self.cn_only[0])
        self.assertIn("cert_dir %s: 3 certificates loaded" % d, p.log())
        self.stop(p)

    def test_full_session_with_cert_dir(self):
        """The relay leg and the session work as with cert/key lines: AUTH and a message."""
        d = self.new_dir("session")
        certbot_install(d, "acme", 1, *self.acme_short)
        relay = h.Relay()
        self.procs.append(relay)
        relay.start()
        tenants = [("acme", ["smtp.acme.test", "mail.acme.test"], [])]
        p = self.start(lambda ports: config(d, tenants, relay_port=relay.port, ports=ports))
        c = h.SMTPClient(p.ports[0])
        try:
            self.assertEqual(c.reply().code, 220)
            self.assertEqual(c.cmd("EHLO client.test").code, 250)
            self.assertEqual(c.cmd("STARTTLS").code, 220)
            ctx = h.ssl_context(self.certs.ca)
            c.wrap("mail.acme.test", ctx)  # verifies the chain and the name against the CA
            self.assertEqual(c.cmd("EHLO client.test").code, 250)
            self.assertEqual(c.cmd("AUTH PLAIN " + h.plain_auth()).code, 235)
            self.assertEqual(c.cmd("MAIL FROM:<a@acme.test>").code, 250)
            self.assertEqual(c.cmd("RCPT TO:<b@example.test>").code, 250)
            self.assertEqual(c.cmd("DATA").code, 354)
            c.send(b"Subject: cert_dir\r\n\r\nhello\r\n.\r\n")
            self.assertEqual(c.reply().code, 250)
            self.assertEqual(c.cmd("QUIT").code, 221)
        finally:
            c.close()
        self.assertIn("tenant acme, mail.acme.test", h.wait_until(lambda: re.search(r"tenant acme, mail\.acme\.test.*1 message", p.log()) and p.log(), "the session's end line"))
        self.stop(p)
        self.assertEqual(relay.stop(), 0)

    def test_cn_ignored_when_san_exists(self):
        """RFC 9525: with a SAN, the CN names nothing."""
        d = self.new_dir("cn-san")
        place(*self.cn_not_in_san, os.path.join(d, "initech.pem"), os.path.join(d, "initech.key"))
        rc, out, err, _ = self.run_check(config(d, [("initech", ["other.initech.test", "cn.initech.test"], [])]))
        self.assertEqual(rc, 2, err)
        self.assertIn("covers host name 'cn.initech.test'", err)
        rc, out, err, _ = self.run_check(config(d, [("initech", ["other.initech.test"], [])]))
        self.assertEqual(rc, 0, err)

    def test_later_expiring_wins(self):
        d = self.new_dir("later")
        place(*self.acme_short, os.path.join(d, "a-short.pem"), os.path.join(d, "a-short.key"))
        place(*self.acme_long, os.path.join(d, "b-long.pem"), os.path.join(d, "b-long.key"))
        tenants = [("acme", ["smtp.acme.test", "mail.acme.test"], [])]
        p = self.start(lambda ports: config(d, tenants, ports=ports))
        self.assertServes(p, "smtp.acme.test", self.acme_long[0])
        # Only the shorter one covers mail.acme.test.
        self.assertServes(p, "mail.acme.test", self.acme_short[0])
        self.assertRegex(p.log(), r"smtp\.acme\.test: \S*b-long\.pem \(expires [^)]*\) chosen over \S*a-short\.pem")
        self.stop(p)

    def test_expired_and_not_yet_valid(self):
        d = self.new_dir("expired")
        place(*self.expired, os.path.join(d, "expired.pem"), os.path.join(d, "expired.key"))
        place(*self.valid_old, os.path.join(d, "valid.pem"), os.path.join(d, "valid.key"))
        # Expires last of the three, but is not valid yet: it must not win.
        place(*self.future, os.path.join(d, "future.pem"), os.path.join(d, "future.key"))
        tenants = [("acme", ["old.acme.test"], [])]
        rc, out, err, _ = self.run_check(config(d, tenants))
        self.assertEqual(rc, 2, out + err)
        self.assertRegex(err, r"certificate \S*expired\.pem expired on \d{4}-\d\d-\d\d")
        self.assertRegex(err, r"certificate \S*future\.pem is not valid until \d{4}-\d\d-\d\d")
        self.assertNotIn(": OK", out)
        p = self.start(lambda ports: config(d, tenants, ports=ports))
        self.assertServes(p, "old.acme.test", self.valid_old[0])
        self.assertRegex(p.log(), r"warn|error: certificate \S*expired\.pem expired on")
        self.stop(p)

    def test_ecdsa_and_rsa_for_one_name(self):
        """Both kinds for one name: the client's signature_algorithms choose. The RSA one
        expires later, yet a client that accepts ECDSA gets the ECDSA one."""
        d = self.new_dir("dual")
        place(*self.acme_long, os.path.join(d, "acme-ec.pem"), os.path.join(d, "acme-ec.key"))
        place(*self.acme_short, os.path.join(d, "acme-ec2.pem"), os.path.join(d, "acme-ec2.key"))
        place(*self.acme_rsa, os.path.join(d, "acme-rsa.pem"), os.path.join(d, "acme-rsa.key"))
        tenants = [("acme", ["smtp.acme.test", "mail.acme.test"], [])]
        p = self.start(lambda ports: config(d, tenants, ports=ports))
        rsa_only = ("-sigalgs", "RSA-PSS+SHA256:RSA+SHA256")
        self.assertServes(p, "smtp.acme.test", self.acme_long[0])
        self.assertServes(p, "smtp.acme.test", self.acme_rsa[0], *rsa_only)
        self.assertServes(p, "smtp.acme.test", self.acme_rsa[0], "-tls1_2", "-sigalgs", "RSA+SHA256")
        self.assertServes(p, "smtp.acme.test", self.acme_long[0], "-tls1_2")
        # TLS 1.2 with only RSA key-exchange suites, though its sigalgs allow ECDSA.
        self.assertServes(p, "smtp.acme.test", self.acme_rsa[0], "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
        self.assertServes(p, "smtp.acme.test", self.acme_rsa[0], *rsa_only, starttls=True)
        self.assertServes(p, "smtp.acme.test", self.acme_long[0], starttls=True)
        # mail.acme.test's ECDSA certificate is another one: its own fallback, the same RSA one.
        self.assertServes(p, "mail.acme.test", self.acme_short[0])
        self.assertServes(p, "mail.acme.test", self.acme_rsa[0], *rsa_only)
        self.assertRegex(p.log(), r"smtp\.acme\.test: \S*acme-ec\.pem, and \S*acme-rsa\.pem for clients without ECDSA")
        self.stop(p)

    def test_mismatched_pair_refused(self):
        d = self.new_dir("mismatch")
        # acme's certificate with globex's key: refused, logged, and acme then has no certificate.
        place(self.acme_short[0], self.globex[1], os.path.join(d, "acme.pem"), os.path.join(d, "acme.key"))
        place(*self.globex, os.path.join(d, "globex.pem"), os.path.join(d, "globex.key"))
        with open(os.path.join(d, "half.pem"), "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nMIIB\n")  # half written
        place(self.soon[1], self.soon[1], os.path.join(d, "x.pem"), os.path.join(d, "half.key"))
        tenants = [("globex", ["*.globex.test"], []), ("acme", ["smtp.acme.test"], [])]
        rc, out, err, path = self.run_check(config(d, tenants))
        self.assertEqual(rc, 2, out + err)
        self.assertRegex(err, r"refusing \S*/acme\.pem \+ \S*/acme\.key: private key .* does not match")
        self.assertRegex(err, r"refusing \S*/half\.pem \+ \S*/half\.key")
        lines = config(d, tenants).splitlines()
        lineno = next(i for i, l in enumerate(lines) if "smtp.acme.test" in l) + 1
        self.assertRegex(err, r"%s:%d: tenant 'acme': no certificate under \S+ covers host name 'smtp\.acme\.test'"
                         % (re.escape(path), lineno))
        # With only the good tenant, the daemon starts and logs the refusal.
        p = self.start(lambda ports: config(d, tenants[:1], ports=ports))
        self.assertServes(p, "a.globex.test", self.globex[0])
        self.assertIn("refusing", p.log())
        self.stop(p)

    def test_cert_key_lines_still_win(self):
        """A tenant with cert/key lines needs no certificate in the directory."""
        d = self.new_dir("explicit")
        place(*self.globex, os.path.join(d, "globex.pem"), os.path.join(d, "globex.key"))
        tenants = [("globex", ["*.globex.test"], []),
                   ("acme", ["smtp.acme.test"], ['cert = "%s";' % self.certs.pem("acme"), 'key = "%s";' % self.certs.key("acme")])]
        p = self.start(lambda ports: config(d, tenants, ports=ports))
        self.assertServes(p, "smtp.acme.test", self.certs.pem("acme"))
        self.assertServes(p, "b.globex.test", self.globex[0])
        self.stop(p)

    def test_tenant_cert_dirs(self):
        """Per-tenant cert_dir: searched instead of the top level's; a tenant whose cert/key
        lines win over its cert_dir does not keep another tenant from loading that directory."""
        top = self.new_dir("top")
        own = self.new_dir("own")
        place(*self.acme_long, os.path.join(top, "acme.pem"), os.path.join(top, "acme.key"))
        place(*self.globex, os.path.join(own, "globex.pem"), os.path.join(own, "globex.key"))
        explicit = ['cert = "%s";' % self.certs.pem("default"), 'key = "%s";' % self.certs.key("default"),
                    'cert_dir = "%s";' % own]
        tenants = [("default", ["smtp.livery.test"], explicit),
                   ("globex", ["*.globex.test"], ['cert_dir = "%s";' % own]),
                   ("acme", ["smtp.acme.test"], [])]
        rc, out, err, _ = self.run_check(config(top, tenants))
        self.assertEqual(rc, 0, err)
        # globex's names are searched in its own directory only.
        tenants[2] = ("acme", ["smtp.acme.test", "x.globex.test"], [])
        rc, out, err, _ = self.run_check(config(top, tenants[1:]))
        self.assertEqual(rc, 2, err)
        self.assertIn("no certificate under %s covers host name 'x.globex.test'" % top, err)

    def test_tenant_without_certificates_is_an_error(self):
        tenants = [("acme", ["smtp.acme.test"], [])]
        rc, out, err, path = self.run_check(config(None, tenants))
        self.assertEqual(rc, 2)
        self.assertRegex(err, r"^%s:\d+: tenant 'acme' needs 'cert' and 'key', or a 'cert_dir'" % re.escape(path))

    def test_expiry_soon_and_key_mode_warnings(self):
        d = self.new_dir("soon")
        place(*self.soon, os.path.join(d, "soon.pem"), os.path.join(d, "soon.key"))
        os.chmod(os.path.join(d, "soon.key"), 0o644)
        tenants = [("acme", ["soon.acme.test"], [])]
        since = time.time()
        rc, out, err, _ = self.run_check(config(d, tenants))
        self.assertEqual(rc, 0, err)
        self.assertIn(": OK", out)
        days = h.days_left_re(self.soon[0], since)
        self.assertRegex(err, r"warn: certificate \S*soon\.pem expires in %s days \(\d{4}-\d\d-\d\d" % days)
        self.assertRegex(err, r"warn: private key \S*soon\.key is readable by group or others \(mode 0644\)")
        # The running daemon says it too (the daily timer's first run is at start).
        since = time.time()
        p = self.start(lambda ports: config(d, tenants, ports=ports))
        h.wait_until(lambda: re.search(r"expires in %s days" % h.days_left_re(self.soon[0], since), p.log()),
                     "the expiry warning in the log")
        self.stop(p)

    def test_watcher_sees_certbot_renewal(self):
        d = self.new_dir("renew")
        certbot_install(d, "acme", 1, *self.acme_short)
        tenants = [("acme", ["smtp.acme.test", "mail.acme.test"], [])]
        p = self.start(lambda ports: config(d, tenants, ports=ports))
        self.assertServes(p, "smtp.acme.test", self.acme_short[0])
        self.assertNotIn("changed", p.log())
        certbot_install(d, "acme", 2, *self.renewed)
        line = "certificates under %s changed" % d
        h.wait_until(lambda: line in p.log(), "the watcher to log %r" % line)
        # The change reloads livery, no signal sent: new connections get the renewed certificate.
        h.wait_until(lambda: "reloaded: generation" in p.log(), "the reload")
        self.assertServes(p, "smtp.acme.test", self.renewed[0])
        # A renewal whose key does not match rejects that reload; the renewed certificate stays.
        place(self.renewed[0], self.globex[1], os.path.join(d, "archive", "acme", "fullchain3.pem"),
              os.path.join(d, "archive", "acme", "privkey3.pem"))
        certbot_install(d, "acme", 3, self.renewed[0], self.globex[1])
        h.wait_until(lambda: "reload rejected" in p.log(), "the rejected reload")
        self.assertRegex(p.log(), r"refusing \S*live/acme/fullchain\.pem \+ \S*live/acme/privkey\.pem: private key")
        self.assertRegex(p.log(), r"reload rejected.*no certificate under \S+ covers host name 'smtp\.acme\.test'")
        self.assertServes(p, "smtp.acme.test", self.renewed[0])
        # A new certificate name appearing later (a new live/<name>/) is seen too.
        n = p.log().count(line)
        certbot_install(d, "globex", 1, *self.globex)
        h.wait_until(lambda: p.log().count(line) > n, "the watcher to log a second change")
        self.stop(p)


if __name__ == "__main__":
    h.main()
