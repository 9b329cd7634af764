#!/usr/bin/env python3
"""Hostile cases of the second probing round, each a defect found against the real binary:
a file the configuration names that is not a regular file (a FIFO, a device) is refused with
"not a regular file" by `livery --check`, `livery check` and a reload, instead of blocking the
master in open(2) for ever (a reload then hung, and SIGTERM no longer stopped livery); ..."""

import os
import re
import signal
import subprocess

import harness as h
import test_local_auth as la


class NotRegularFileTest(h.ProxyTestCase):
    """A FIFO or a device where the configuration names a certificate, key, CA file, users
    file or ticket key file."""

    def variants(self, d):
        """(what, configuration text) for each file the configuration may name."""
        fifo = os.path.join(d, "fifo")
        os.mkfifo(fifo)
        good = h.read_text(self.livery.config_path)
        acme_users = 'region = "relay";\n    auth = "local"; users_file = "%s"; relay_user = "u"; ' \
                     'relay_password_file = "%s";'
        pw, users = os.path.join(d, "pw"), os.path.join(d, "users")
        with open(pw, "w") as f:
            f.write("p\n")
        with open(users, "w") as f:
            f.write(la.passwd(la.ANN, la.ANN_PW) + "\n")
        return (("certificate", good.replace(self.certs.pem("acme"), fifo, 1)),
                ("key", good.replace(self.certs.key("acme"), "/dev/zero", 1)),
                ("CA file", good.replace(self.certs.ca, fifo, 1)),
                ("users_file", good.replace('region = "relay";', acme_users % (fifo, pw), 1)),
                ("relay_password_file", good.replace('region = "relay";', acme_users % (users, fifo), 1)),
                ("ticket_key_file", good + 'ticket_key_file = "%s";\n' % fifo))

    def test_check_refuses_and_ends(self):
        d = h.scratch("notreg")
        conf = os.path.join(d, "livery.conf")
        for what, text in self.variants(d):
            with open(conf, "w") as f:
                f.write(text)
            for argv, status in (([h.LIVERY_BIN, "--check", "-c", conf], 2), ([h.LIVERY_BIN, "check", "-c", conf], 1)):
                with self.subTest(what=what, command=argv[1]):
                    # Bounded: the defect was a check that never ended.
                    r = self.run_tool(argv, timeout=h.TIMEOUT)
                    self.assertEqual(r.returncode, status, r.stdout + r.stderr)
                    self.assertIn(b"not a regular file", r.stdout + r.stderr)

    def test_reload_refuses_and_the_old_generation_serves(self):
        d = h.scratch("notreg")
        good = h.read_text(self.livery.config_path)
        try:
            for n, (what, text) in enumerate(self.variants(d)):
                with self.subTest(what=what):
                    with open(self.livery.config_path, "w") as f:
                        f.write(text)
                    self.livery.proc.send_signal(signal.SIGHUP)
                    h.wait_until(lambda: self.livery.log().count("reload rejected") > n, "the reload to be rejected")
                    line = [l for l in self.livery.log().splitlines() if "reload rejected" in l][-1]
                    self.assertRegex(line, re.escape(self.livery.config_path) + r":\d+: .*not a regular file")
                    self.deliver()
        finally:
            with open(self.livery.config_path, "w") as f:
                f.write(good)


if __name__ == "__main__":
    h.main()
