#!/usr/bin/env python3
"""Session tickets shared across instances (issue 13): two livery processes with the same
ticket_key_file resume each other's tickets (TLS 1.3 and TLS 1.2); after the file is rotated
(new key first, old second) and both reload, an old ticket still resumes, and once the old key
leaves the file it no longer does; an instance with another key file never resumes them; a
ticket still never crosses tenants. Without a key file, a ticket resumes on every worker of the
process and across a reload. A bad key file is a configuration error that quotes no key."""

import os
import re
import signal
import subprocess

import harness as h

OPENSSL = "openssl"

VERSIONS = {"tls1.3": ["-tls1_3"], "tls1.2 ticket": ["-tls1_2"]}
# TLS 1.2 without tickets: resumption by session ID, from livery's instance-wide cache.
SESSION_ID = {"tls1.2 session id": ["-tls1_2", "-no_ticket"]}


def new_key():
    """One key as the README tells operators to make it."""
    r = subprocess.run([OPENSSL, "rand", "-base64", "48"], stdout=subprocess.PIPE, check=True, timeout=30)
    return r.stdout.decode().strip()


def write_keys(path, keys):
    with open(path + ".tmp", "w") as f:
        f.write("# livery session-ticket keys, current first\n" + "".join(k + "\n" for k in keys))
    os.chmod(path + ".tmp", 0o600)
    os.replace(path + ".tmp", path)


def key_file(keys):
    path = os.path.join(h.scratch("tickets"), "ticket.keys")
    write_keys(path, keys)
    return path


def start(relay, path=None, workers=2):
    top = ["workers = %d;" % workers]
    if path:
        top.append('ticket_key_file = "%s";' % path)
    return h.Livery(relay, top_extra=top).start()


def reload(livery, generation):
    """SIGHUP, then waits until the new generation serves."""
    livery.proc.send_signal(signal.SIGHUP)
    h.wait_until(lambda: ("generation %d serving" % generation) in livery.log(),
                 "livery to serve generation %d" % generation)


class TicketCase(h.ProxyTestCase):
    """A relay and a key file for the class; each test starts the instances it needs."""

    livery_config = {"top_extra": ["workers = 2;"]}

    def handshake(self, livery, version, name="smtp.acme.test", sess_out=None, sess_in=None):
        """One implicit-TLS session through openssl s_client; True when it resumed."""
        args = dict(VERSIONS, **SESSION_ID)[version] + ["-connect", "%s:%d" % (h.HOST, livery.implicit_port), "-ign_eof",
                                    "-servername", name, "-CAfile", self.certs.ca, "-verify_return_error"]
        if sess_out:
            args += ["-sess_out", sess_out]
        if sess_in:
            args += ["-sess_in", sess_in]
        r = subprocess.run([OPENSSL, "s_client"] + args, input=b"QUIT\r\n", stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        out = r.stdout.decode("utf-8", "replace")
        self.assertEqual(r.returncode, 0, out)
        self.assertIn("221", out)  # the session reached SMTP and ended cleanly
        m = re.search(r"^(New|Reused), TLSv1\.[23]", out, re.M)
        self.assertIsNotNone(m, out)
        return m.group(1) == "Reused", out

    def ticket(self, livery, version, name="smtp.acme.test"):
        """A fresh ticket from livery (a full handshake), in a session file."""
        f = os.path.join(h.scratch("sess"), "%s.pem" % version.replace(" ", "_"))
        reused, out = self.handshake(livery, version, name, sess_out=f)
        self.assertFalse(reused, out)
        return f

    def instance(self, path=None, workers=2):
        lv = start(self.relay, path, workers)
        self.addCleanup(self.stopped, lv)
        return lv

    def stopped(self, lv):
        rc = lv.stop()
        self.assertEqual(rc, 0, "livery exited with %r on SIGTERM" % (rc,))
        for word in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            self.assertNotIn(word, lv.log())


class SharedKeyFile(TicketCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.keys = [new_key()]
        cls.path = key_file(cls.keys)

    def test_other_instance_resumes(self):
        a, b = self.instance(self.path), self.instance(self.path)
        for version in VERSIONS:
            with self.subTest(version=version):
                f = self.ticket(a, version)
                reused, out = self.handshake(b, version, sess_in=f)
                self.assertTrue(reused, "B did not resume A's ticket (%s):\n%s" % (version, out))
                reused, out = self.handshake(a, version, sess_in=f)
                self.assertTrue(reused, "A did not resume its own ticket (%s):\n%s" % (version, out))
        self.assertIn("ticket_key_file %s: 1 key" % self.path, a.log())
        for key in self.keys:
            self.assertNotIn(key, a.log())

    def test_other_key_file_does_not_resume(self):
        a = self.instance(self.path)
        c = self.instance(key_file([new_key()]))
        d = self.instance()  # no key file: its own keys
        for version in VERSIONS:
            with self.subTest(version=version):
                f = self.ticket(a, version)
                for other in (c, d):
                    reused, out = self.handshake(other, version, sess_in=f)
                    self.assertFalse(reused, "a ticket under another key resumed (%s):\n%s" % (version, out))

    def test_tickets_do_not_cross_tenants(self):
        a, b = self.instance(self.path), self.instance(self.path)
        for version in VERSIONS:
            with self.subTest(version=version):
                f = self.ticket(a, version, "smtp.acme.test")
                for name in ("x.globex.test", "mail.acme.test"):
                    reused, out = self.handshake(b, version, name, sess_in=f)
                    self.assertFalse(reused, "smtp.acme.test's ticket resumed as %s (%s)" % (name, version))


class Rotation(TicketCase):
    def test_rotation_keeps_old_tickets_until_their_key_goes(self):
        old, new = new_key(), new_key()
        path = key_file([old])
        a, b = self.instance(path), self.instance(path)
        tickets = {v: self.ticket(a, v) for v in VERSIONS}
        write_keys(path, [new, old])
        reload(a, 2)
        reload(b, 2)
        self.assertIn("ticket_key_file %s: 2 keys" % path, b.log())
        renewed = {}
        for version in VERSIONS:
            with self.subTest(version=version, step="old key second"):
                # TLS 1.3: the resumed session's new ticket (made under the new key) is kept.
                # wolfSSL 5.5.4 sends no new ticket in an abbreviated TLS 1.2 handshake, so a
                # TLS 1.2 client gets its next one from a full handshake.
                renewed[version] = tickets[version] + ".renewed" if version == "tls1.3" else None
                reused, out = self.handshake(b, version, sess_in=tickets[version], sess_out=renewed[version])
                self.assertTrue(reused, "an old ticket did not resume after the rotation (%s):\n%s" % (version, out))
                renewed[version] = renewed[version] or self.ticket(b, version)
        write_keys(path, [new])
        reload(a, 3)
        for version in VERSIONS:
            with self.subTest(version=version, step="old key gone"):
                reused, _ = self.handshake(a, version, sess_in=tickets[version])
                self.assertFalse(reused, "a ticket resumed after its key left the file (%s)" % version)
                reused, out = self.handshake(a, version, sess_in=renewed[version])
                self.assertTrue(reused, "a ticket under the new key did not resume (%s):\n%s" % (version, out))

    def test_bad_key_file_is_refused_on_reload(self):
        path = key_file([new_key()])
        a = self.instance(path)
        f = self.ticket(a, "tls1.3")
        with open(path, "a") as kf:
            kf.write("c2hvcnQ=\n")  # five octets
        a.proc.send_signal(signal.SIGHUP)
        h.wait_until(lambda: "reload rejected" in a.log(), "livery to reject the reload")
        self.assertRegex(a.log(), r"ticket_key_file %s:3: not a key" % re.escape(path))
        reused, out = self.handshake(a, "tls1.3", sess_in=f)
        self.assertTrue(reused, "generation 1 lost its keys after a rejected reload:\n%s" % out)


class OwnKeys(TicketCase):
    """Without a key file: one set of keys for the process, every worker, every generation."""

    def test_every_worker_and_a_reload_resume(self):
        a = self.instance(None, workers=2)
        for version in VERSIONS:
            f = self.ticket(a, version)
            # New connections spread over both workers (SO_REUSEPORT hashes each one).
            for i in range(8):
                with self.subTest(version=version, i=i):
                    reused, out = self.handshake(a, version, sess_in=f)
                    self.assertTrue(reused, "a ticket did not resume (%s, try %d):\n%s" % (version, i, out))
        f = self.ticket(a, "tls1.3")
        reload(a, 2)
        reused, out = self.handshake(a, "tls1.3", sess_in=f)
        self.assertTrue(reused, "a ticket did not survive the reload:\n%s" % out)


class SessionIds(TicketCase):
    """TLS 1.2 session IDs resume on every worker of an instance (the cache is shared memory),
    and only for the name they were made for."""

    def test_every_worker_resumes_a_session_id(self):
        a = self.instance(None, workers=2)
        version = "tls1.2 session id"
        f = self.ticket(a, version)
        # New connections spread over both workers (SO_REUSEPORT hashes each one): with a
        # cache per worker, about half of these would be full handshakes.
        for i in range(12):
            with self.subTest(i=i):
                reused, out = self.handshake(a, version, sess_in=f)
                self.assertTrue(reused, "a session ID did not resume (try %d):\n%s" % (i, out))
        reused, out = self.handshake(a, version, name="mail.globex.test", sess_in=f)
        self.assertFalse(reused, "a session ID resumed under another tenant's name:\n%s" % out)


class ConfigErrors(h.ProxyTestCase):
    def check(self, path):
        conf = h.config_text(self.certs, self.relay.port, h.free_port(), h.free_port(),
                             top_extra=['ticket_key_file = "%s";' % path])
        cpath = os.path.join(h.scratch("check"), "livery.conf")
        with open(cpath, "w") as f:
            f.write(conf)
        line = conf.splitlines().index('ticket_key_file = "%s";' % path) + 1
        r = self.run_tool([h.LIVERY_BIN, "--check", "-c", cpath])
        return r.returncode, r.stdout.decode() + r.stderr.decode(), "%s:%d: ticket_key_file " % (cpath, line)

    def test_missing_file(self):
        rc, out, where = self.check("/nonexistent/ticket.keys")
        self.assertEqual(rc, 2, out)
        self.assertIn(where + "cannot read /nonexistent/ticket.keys: No such file or directory", out)

    def test_bad_key_quotes_nothing(self):
        good = new_key()
        path = key_file([good, "this-is-not-base64!"])
        rc, out, where = self.check(path)
        self.assertEqual(rc, 2, out)
        self.assertIn(where + path + ":3: not a key", out)
        self.assertNotIn(good, out)
        self.assertNotIn("this-is-not-base64", out)

    def test_good_file(self):
        rc, out, _ = self.check(key_file([new_key(), new_key()]))
        self.assertEqual(rc, 0, out)


if __name__ == "__main__":
    h.main()
