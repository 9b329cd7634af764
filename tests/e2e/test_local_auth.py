#!/usr/bin/env python3
"""Reseller credentials (issue 12): a tenant with auth = "local" checks its customers' AUTH
against its own users_file and relays with the tenant's own relay_user and password; a
passthrough tenant with auth_domains refuses login names outside them before the relay sees
a credential. The relay password never appears in any output."""

import base64
import os
import re
import signal
import subprocess
import warnings

import harness as h

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # Python 3.11 still has it: sha512crypt and bcrypt hashes for the users_file

RELAY_USER = "reseller-acct@relay.example"
RELAY_PASSWORD = "Rel4y-Pa55-never-shown"
ANN, ANN_PW = "ann@acme.test", "ann-pw-1"      # acme: yescrypt (livery passwd)
CAROL, CAROL_PW = "carol@acme.test", "carol-pw"  # acme: sha512crypt
BOB, BOB_PW = "bob@globex.test", "bob-pw-2"    # globex: bcrypt
EVE = "eve@evil.test"


def passwd(user, password):
    r = subprocess.run([h.LIVERY_BIN, "passwd", user], input=(password + "\n").encode(), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=h.TIMEOUT)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode().strip()


def local_files(d, relay_password=RELAY_PASSWORD):
    """users files for acme and globex and the relay password file, in d."""
    acme, globex, pw = (os.path.join(d, n) for n in ("acme.users", "globex.users", "relay.password"))
    with open(acme, "w") as f:
        f.write("# acme's customers\n%s\n%s:%s\n\n" % (passwd(ANN, ANN_PW), CAROL,
                                                       crypt.crypt(CAROL_PW, crypt.mksalt(crypt.METHOD_SHA512))))
    with open(globex, "w") as f:
        f.write("%s:%s\n" % (BOB, crypt.crypt(BOB_PW, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 5))))
    with open(pw, "w") as f:
        f.write(relay_password + "\n")
    return acme, globex, pw


def local_tenant(users, pw, extra=()):
    return ['auth = "local";', 'users_file = "%s";' % users, 'relay_user = "%s";' % RELAY_USER,
            'relay_password_file = "%s";' % pw] + list(extra)


def login(c, user, password):
    """AUTH LOGIN without an initial response: the two 334 prompts come from livery."""
    r = c.cmd("AUTH LOGIN")
    if r.code != 334:
        return r
    r = c.cmd(base64.b64encode(user.encode()).decode())
    if r.code != 334:
        return r
    return c.cmd(base64.b64encode(password.encode()).decode())


class LocalAuthBase(h.ProxyTestCase):
    relay_options = ("--user", "%s:%s" % (RELAY_USER, RELAY_PASSWORD), "--user", "%s:%s" % (h.USER, h.PASSWORD))
    relay_password = RELAY_PASSWORD

    @classmethod
    def setUpClass(cls):
        d = h.scratch("local-auth")
        acme, globex, pw = local_files(d, cls.relay_password)
        cls.livery_config = {"tenant_extra": {
            "acme": local_tenant(acme, pw),
            "globex": local_tenant(globex, pw),
            "default": ['auth_domains = [ "acme.test" ];'],
        }}
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        for secret in (RELAY_PASSWORD, ANN_PW, BOB_PW, CAROL_PW, base64.b64encode(RELAY_PASSWORD.encode()).decode()):
            assert secret not in cls.livery.log(), "a password appears in livery's output"

    def session(self, sni, user, password, mech="PLAIN"):
        c = self.starttls_session(sni, auth=False)
        if mech == "PLAIN":
            return c, c.cmd("AUTH PLAIN " + h.plain_auth(user, password))
        return c, login(c, user, password)

    def send_one(self, c, sender):
        self.assertReply(c.cmd("MAIL FROM:<%s>" % sender), 250)
        self.assertReply(c.cmd("RCPT TO:<rcpt@example.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(h.dot_stuff(h.SAMPLE_BODY) + b".\r\n")
        self.assertReply(c.reply(), 250)


class LocalAuthTest(LocalAuthBase):
    def test_local_user_sends_through_each_tenant(self):
        for sni, user, pw, mech in (("smtp.acme.test", ANN, ANN_PW, "PLAIN"), ("mail.acme.test", CAROL, CAROL_PW, "LOGIN"),
                                    ("x.globex.test", BOB, BOB_PW, "LOGIN"), ("y.globex.test", BOB, BOB_PW, "PLAIN")):
            before = self.relay.messages()
            c, r = self.session(sni, user, pw, mech)
            self.assertReply(r, 235, "2.7.0")
            self.assertIn("AUTH PLAIN LOGIN", c.ehlo.lines)
            self.send_one(c, user)
            self.assertReply(c.cmd("QUIT"), 221)
            c.read_eof()
            self.assertClean(c.received)
            n = self.new_message(before)
            self.assertEqual(self.relay.msg_data(n), h.dot_stuff(h.SAMPLE_BODY))
            # The relay saw the tenant's own account, never the customer's.
            self.assertTrue(self.relay.msg_env(n).startswith("AUTH %s\n" % RELAY_USER), self.relay.msg_env(n))
        recs = h.wait_until(lambda: [r for r in h.records(self.livery.log())
                                     if r["record"] == "session" and r.get("user") == BOB], "bob's session records")
        self.assertTrue(all(r.get("auth") == "local" for r in recs), recs)

    def test_wrong_password_gets_535_and_nothing_reaches_the_relay(self):
        events = len(self.relay.events())
        mails = self.relay.all_raw().count(b"MAIL FROM:<%s>" % ANN.encode())
        for mech in ("PLAIN", "LOGIN"):
            c, r = self.session("smtp.acme.test", ANN, "wrong", mech)
            self.assertReply(r, 535, "5.7.8")
            self.assertReply(c.cmd("MAIL FROM:<%s>" % ANN), 530)
            self.assertReply(c.cmd("QUIT"), 221)
            c.read_eof()
        c, r = self.session("smtp.acme.test", "nobody@acme.test", ANN_PW)
        self.assertReply(r, 535, "5.7.8")
        new = self.relay.events()[events:]
        self.assertFalse([e for e in new if " auth " in e and RELAY_USER not in e], new)
        raw = self.relay.all_raw()
        self.assertNotIn(base64.b64encode(b"\0" + ANN.encode() + b"\0wrong"), raw)
        self.assertEqual(raw.count(b"MAIL FROM:<%s>" % ANN.encode()), mails)

    def test_too_many_failures_end_the_session(self):
        c, r = self.session("smtp.acme.test", ANN, "bad-1")
        self.assertReply(r, 535)
        self.assertReply(c.cmd("AUTH PLAIN " + h.plain_auth(ANN, "bad-2")), 535)
        self.assertReply(c.cmd("AUTH PLAIN " + h.plain_auth(ANN, "bad-3")), 535)
        self.assertReply(c.reply(), 421, "4.7.0")

    def test_tenant_a_users_refused_on_tenant_b(self):
        c, r = self.session("x.globex.test", ANN, ANN_PW)
        self.assertReply(r, 535, "5.7.8")
        c, r = self.session("smtp.acme.test", BOB, BOB_PW, "LOGIN")
        self.assertReply(r, 535, "5.7.8")

    def test_cached_verification_still_checks_the_password(self):
        for pw, code in ((ANN_PW, 235), (ANN_PW, 235), ("wrong", 535), (ANN_PW, 235)):
            c, r = self.session("smtp.acme.test", ANN, pw)
            self.assertReply(r, code)
            self.assertReply(c.cmd("QUIT"), 221)

    def test_cancel_and_garbage(self):
        c = self.starttls_session("smtp.acme.test", auth=False)
        self.assertReply(c.cmd("AUTH LOGIN"), 334)
        self.assertReply(c.cmd("*"), 501)
        self.assertReply(c.cmd("AUTH PLAIN"), 334)
        self.assertReply(c.cmd("!!!notbase64"), 501)
        self.assertReply(c.cmd("AUTH PLAIN " + h.plain_auth(ANN, ANN_PW)), 235)
        self.assertReply(c.cmd("AUTH PLAIN " + h.plain_auth(ANN, ANN_PW)), 503)

    def test_auth_domains_refuse_a_foreign_login_in_passthrough(self):
        before = len(self.relay.events())
        c, r = self.session("smtp.livery.test", EVE, h.PASSWORD)
        self.assertReply(r, 535, "5.7.8")
        c, r = self.session("smtp.livery.test", EVE, h.PASSWORD, "LOGIN")
        self.assertReply(r, 535, "5.7.8")
        self.assertFalse([e for e in self.relay.events()[before:] if " auth " in e], "the relay saw an AUTH")
        self.assertNotIn(b"ZXZlQGV2aWwudGVzd", self.relay.all_raw())  # base64 of eve@evil.test
        # A name in the domain is passed through, to the relay's own verdict.
        c, r = self.session("smtp.livery.test", h.USER, h.PASSWORD)
        self.assertReply(r, 235)
        self.assertIn(" auth ok %s" % h.USER, "\n".join(self.relay.events()))

    def test_relay_password_in_no_check_output(self):
        for argv in ([h.LIVERY_BIN, "--check", "-c", self.livery.config_path],
                     [h.LIVERY_BIN, "check", "-c", self.livery.config_path]):
            r = self.run_tool(argv)
            out = r.stdout + r.stderr
            self.assertNotIn(RELAY_PASSWORD.encode(), out)


class RelayRefusesLiveryTest(LocalAuthBase):
    """The relay refuses the tenant's own credentials: an operator error, logged loudly; the
    client gets 454 4.7.0, never 535."""
    relay_password = "not-the-relay-password"

    def test_454_and_an_error_in_the_log(self):
        c, r = self.session("smtp.acme.test", ANN, ANN_PW)
        self.assertReply(r, 454, "4.7.0")
        self.assertReply(c.cmd("MAIL FROM:<%s>" % ANN), 530)
        h.wait_until(lambda: "REFUSED livery's AUTH" in self.livery.log(), "the error line")
        line = [l for l in self.livery.log().splitlines() if "REFUSED livery's AUTH" in l][0]
        self.assertIn("error", line)
        self.assertNotIn(self.relay_password, self.livery.log())


class RotationTest(LocalAuthBase):
    """A reseller rotates a customer's password: a new users_file line and a reload."""

    def test_reload_rotates_a_password(self):
        c, r = self.session("smtp.acme.test", ANN, ANN_PW)
        self.assertReply(r, 235)
        self.quit_session(c)
        users = re.search(r'users_file = "([^"]*acme.users)"', h.read_text(self.livery.config_path)).group(1)
        text = h.read_text(users)
        with open(users, "w") as f:
            f.write("\n".join(l for l in text.splitlines() if not l.startswith(ANN + ":")) + "\n" +
                    passwd(ANN, "rotated-pw") + "\n")
        n = len(re.findall("reloaded: generation", self.livery.log()))
        self.livery.proc.send_signal(signal.SIGHUP)
        h.wait_until(lambda: len(re.findall("reloaded: generation", self.livery.log())) > n, "the reload")
        c, r = self.session("smtp.acme.test", ANN, ANN_PW)
        self.assertReply(r, 535, "5.7.8")
        c, r = self.session("smtp.acme.test", ANN, "rotated-pw")
        self.assertReply(r, 235)
        self.quit_session(c)
        # A broken users file rejects the reload with file:line; the serving generation goes on.
        with open(users, "a") as f:
            f.write("broken line\n")
        self.livery.proc.send_signal(signal.SIGHUP)
        h.wait_until(lambda: re.search(r"acme\.users:\d+: expected user:hash", self.livery.log()), "the rejection")
        c, r = self.session("smtp.acme.test", ANN, "rotated-pw")
        self.assertReply(r, 235)

    def quit_session(self, c):
        self.assertReply(c.cmd("QUIT"), 221)
        c.read_eof()


class ConfigErrorsTest(h.ProxyTestCase):
    """Local mode's settings are validated with file:line, and their files read at load."""

    def check(self, tenant_lines, d):
        path = os.path.join(d, "livery.conf")
        with open(path, "w") as f:
            f.write(h.config_text(h.certs(), self.relay.port, 2525, 4650, tenant_extra={"acme": tenant_lines}))
        r = self.run_tool([h.LIVERY_BIN, "--check", "-c", path])
        return r.returncode, (r.stdout + r.stderr).decode(), path

    def test_errors(self):
        d = h.scratch("local-auth-config")
        acme, _, pw = local_files(d)
        cases = [
            (['auth = "local";', 'relay_user = "r";', 'relay_password_file = "%s";' % pw],
             r"livery\.conf:\d+: tenant 'acme': auth = \"local\" needs 'users_file'"),
            (['auth = "local";', 'users_file = "%s";' % acme, 'relay_password_file = "%s";' % pw],
             r"needs 'relay_user'"),
            (['auth = "local";', 'users_file = "%s";' % acme, 'relay_user = "r";',
              'relay_password_file = "%s/missing";' % d], r"livery\.conf:\d+: cannot read relay_password_file"),
            (['auth = "local";', 'users_file = "%s/missing";' % d, 'relay_user = "r";',
              'relay_password_file = "%s";' % pw], r"livery\.conf:\d+: cannot read users_file"),
            (['users_file = "%s";' % acme], r"'users_file' is only used with auth = \"local\""),
            (['auth = "ldap";'], r"'auth' must be \"passthrough\" or \"local\""),
            (['auth_domains = [ "not a domain" ];'], r"is not a valid domain"),
        ]
        for lines, want in cases:
            rc, out, path = self.check(lines, d)
            self.assertEqual(rc, 2, out)
            self.assertRegex(out, want)
            self.assertNotIn(RELAY_PASSWORD, out)
        bad = os.path.join(d, "bad.users")
        with open(bad, "w") as f:
            f.write("# ok\nann:$6$salt$hash\nann:$6$salt$hash\n")
        rc, out, _ = self.check(['auth = "local";', 'users_file = "%s";' % bad, 'relay_user = "r";',
                                 'relay_password_file = "%s";' % pw], d)
        self.assertEqual(rc, 2)
        self.assertIn("bad.users", out)
        self.assertIn("listed twice", out)
        rc, out, _ = self.check(local_tenant(acme, pw), d)
        self.assertEqual(rc, 0, out)
        self.assertNotIn(RELAY_PASSWORD, out)


class PasswdTest(h.ProxyTestCase):
    def test_passwd_prints_a_verifiable_yescrypt_hash(self):
        line = passwd("dan@acme.test", "correct horse")
        user, hashed = line.split(":", 1)
        self.assertEqual(user, "dan@acme.test")
        self.assertTrue(hashed.startswith("$y$"), hashed)
        self.assertEqual(crypt.crypt("correct horse", hashed), hashed)
        self.assertNotEqual(passwd("dan@acme.test", "correct horse"), line, "a fresh salt each time")
        r = self.run_tool([h.LIVERY_BIN, "passwd", "bad:name"], input=b"x\n")
        self.assertEqual(r.returncode, 2)
        r = self.run_tool([h.LIVERY_BIN, "passwd"], input=b"")
        self.assertEqual(r.returncode, 2)


if __name__ == "__main__":
    h.main()
