#!/usr/bin/env python3
"""`livery --check -c FILE`: a good configuration passes ("FILE: OK", exit 0); each broken one
fails with exit status 2 and "FILE:LINE: message" on stderr, LINE being the offending
setting's line."""

import os
import re
import subprocess
import unittest

import harness as h


def find_line(lines, text, after=None):
    """Index (0-based) of the first line containing `text`, after the first line containing
    `after` when given."""
    start = 0
    if after is not None:
        start = next(i for i, l in enumerate(lines) if after in l) + 1
    for i in range(start, len(lines)):
        if text in lines[i]:
            return i
    raise AssertionError("no line with %r after %r" % (text, after))


class ConfigCheckTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.certs = h.certs()
        cls.dir = h.scratch("config")
        # --check binds nothing and never connects to the relay: fixed ports are fine.
        cls.base = h.config_text(cls.certs, relay_port=2587, starttls_port=2525, implicit_port=2465).splitlines()

    def write(self, name, lines):
        path = os.path.join(self.dir, name + ".conf")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def check(self, path):
        r = subprocess.run([h.LIVERY_BIN, "--check", "-c", path], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=h.TIMEOUT)
        return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")

    def assertConfigError(self, name, lines, lineno, message_re=None):
        """lineno is 0-based (an index into lines)."""
        path = self.write(name, lines)
        rc, out, err = self.check(path)
        numbered = "\n".join("%3d %s" % (i + 1, l) for i, l in enumerate(lines))
        self.assertEqual(rc, 2, "exit status %d, expected 2\nstdout: %s\nstderr: %s\n%s" % (rc, out, err, numbered))
        self.assertRegex(err, re.compile(r"^%s:%d: \S" % (re.escape(path), lineno + 1)),
                         "expected an error at %s:%d (%r)\n%s" % (os.path.basename(path), lineno + 1, lines[lineno], numbered))
        if message_re:
            self.assertRegex(err.splitlines()[0], re.compile(message_re, re.I))
        self.assertNotIn(": OK", out)

    def test_good_config(self):
        path = self.write("good", self.base)
        rc, out, err = self.check(path)
        self.assertEqual(rc, 0, "stdout: %s\nstderr: %s" % (out, err))
        self.assertEqual(out.strip(), "%s: OK" % path)

    def test_good_config_relative_paths(self):
        # Paths are relative to the directory of the configuration file.
        lines = [l.replace(self.certs.dir + "/", os.path.relpath(self.certs.dir, self.dir) + "/") for l in self.base]
        self.assertNotEqual(lines, self.base)
        rc, out, err = self.check(self.write("relative", lines))
        self.assertEqual(rc, 0, "stdout: %s\nstderr: %s" % (out, err))

    def test_unknown_key_in_tenant(self):
        lines = list(self.base)
        i = find_line(lines, 'region = "relay";', after='name = "globex";')
        lines.insert(i + 1, '    colour = "blue";')
        self.assertConfigError("unknown-key", lines, i + 1, r"colour")

    def test_unknown_key_top_level(self):
        lines = list(self.base)
        i = find_line(lines, "log_level")
        lines.insert(i + 1, "debug_everything = true;")
        self.assertConfigError("unknown-top-key", lines, i + 1, r"debug_everything")

    def test_wrong_type_port(self):
        lines = list(self.base)
        i = find_line(lines, "port = 2465;")
        lines[i] = '    port = "2465";'
        self.assertConfigError("wrong-type-port", lines, i, r"port")

    def test_wrong_type_bool(self):
        lines = list(self.base)
        i = find_line(lines, 'region = "relay";', after='name = "acme";')
        lines.insert(i + 1, '    require_tls = "yes";')
        self.assertConfigError("wrong-type-bool", lines, i + 1, r"require_tls")

    def test_wrong_type_hostnames(self):
        lines = list(self.base)
        i = find_line(lines, "hostnames", after='name = "globex";')
        lines[i] = '    hostnames = "*.globex.test";'
        self.assertConfigError("wrong-type-list", lines, i, r"hostnames")

    def test_tenant_names_missing_region(self):
        lines = list(self.base)
        i = find_line(lines, 'region = "relay";', after='name = "globex";')
        lines[i] = '    region = "nowhere";'
        self.assertConfigError("missing-region", lines, i, r"nowhere")

    def test_two_tenants_claim_one_hostname(self):
        lines = list(self.base)
        i = find_line(lines, "hostnames", after='name = "default";')
        lines[i] = '    hostnames = [ "smtp.livery.test", "mail.acme.test" ];'
        self.assertConfigError("duplicate-hostname", lines, i, r"mail\.acme\.test")

    def test_two_tenants_claim_one_hostname_ignoring_case(self):
        lines = list(self.base)
        i = find_line(lines, "hostnames", after='name = "default";')
        lines[i] = '    hostnames = [ "*.GLOBEX.test" ];'
        self.assertConfigError("duplicate-wildcard", lines, i, r"globex")

    def test_cert_file_missing(self):
        lines = list(self.base)
        i = find_line(lines, "cert = ", after='name = "globex";')
        lines[i] = '    cert = "%s";' % os.path.join(self.dir, "no-such-cert.pem")
        self.assertConfigError("missing-cert", lines, i, r"no-such-cert\.pem")

    def test_key_file_missing(self):
        lines = list(self.base)
        i = find_line(lines, "key = ", after='name = "acme";')
        lines[i] = '    key = "%s";' % os.path.join(self.dir, "no-such-key.key")
        self.assertConfigError("missing-key", lines, i, r"no-such-key\.key")

    def test_key_does_not_match_cert_same_type(self):
        # Both ECDSA P-256: only comparing the keys themselves finds this.
        lines = list(self.base)
        i = find_line(lines, "key = ", after='name = "acme";')
        lines[i] = '    key = "%s";' % self.certs.key("default")
        self.assertConfigError("key-mismatch-ec", lines, i)

    def test_key_does_not_match_cert_other_type(self):
        lines = list(self.base)
        i = find_line(lines, "key = ", after='name = "globex";')
        lines[i] = '    key = "%s";' % self.certs.key("acme")
        self.assertConfigError("key-mismatch-rsa", lines, i)

    def test_listener_default_tenant_unknown(self):
        lines = list(self.base)
        i = find_line(lines, "default_tenant")
        lines[i] = '    default_tenant = "initech";'
        self.assertConfigError("unknown-default-tenant", lines, i, r"initech")

    def test_syntax_error(self):
        lines = list(self.base)
        i = find_line(lines, "verify_name")
        lines[i] = '    verify_name = ;'  # no value: libconfig's parser fails on this line
        path = self.write("syntax", lines)
        rc, out, err = self.check(path)
        self.assertEqual(rc, 2, err)
        m = re.match(r"^%s:(\d+): \S" % re.escape(path), err)
        self.assertIsNotNone(m, err)
        self.assertEqual(int(m.group(1)), i + 1, err)


if __name__ == "__main__":
    h.main()
