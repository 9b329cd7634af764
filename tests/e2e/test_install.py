"""`cmake --install` into a scratch DESTDIR: the binary, /etc/livery/livery.conf (which --check
passes once its certificate paths exist), the livery(8) man page (every configuration key and
command documented, no roff warnings) and livery.service, which `systemd-analyze verify`
accepts (a unit broken on purpose is refused, so the check is real)."""

import os
import re
import shutil
import subprocess
import unittest

import harness as h

CONFDIR = "/etc/livery"  # LIVERY_CONFDIR's default


def run(argv, env=None, timeout=120):
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=e, timeout=timeout)
    return r.returncode, r.stdout.decode("utf-8", "replace")


def config_keys():
    """Every key livery's configuration accepts, from config.c's key tables."""
    with open(os.path.join(h.SRC, "proxy", "config.c")) as f:
        src = f.read()
    keys = set()
    for body in re.findall(r"static const char \*const \w+_keys\[\] = \{(.*?)\};", src, re.S):
        keys.update(re.findall(r'"(\w+)"', body))
    assert len(keys) > 30, keys
    return keys


class InstallTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dest = h.scratch("destdir")
        rc, out = run(["cmake", "--install", h.BUILD], env={"DESTDIR": cls.dest})
        if rc != 0:
            raise AssertionError("cmake --install failed:\n" + out)
        cls.installed = {}
        for root, _, files in os.walk(cls.dest):
            for f in files:
                cls.installed[f if f != "livery.conf" or "sysusers" not in root else "sysusers"] = os.path.join(root, f)

    def path(self, name):
        self.assertIn(name, self.installed, "not installed: %s (got %s)" % (name, sorted(self.installed)))
        return self.installed[name]

    def test_binary_runs(self):
        binary = self.path("livery")
        self.assertRegex(binary, r"/s?bin/livery$")
        rc, out = run([binary, "--version"])
        self.assertEqual(rc, 0, out)
        rc, out = run([binary, "--help"])
        for word in ("reload", "--check", "--log-level", "SIGHUP", "pid_file", "user"):
            self.assertIn(word, out)

    def test_example_config_checks_once_its_certificates_exist(self):
        conf = self.path("livery.conf")
        self.assertEqual(conf, os.path.join(self.dest, CONFDIR.lstrip("/"), "livery.conf"))
        d = h.scratch("etc-livery")
        with open(conf) as f:
            text = f.read()
        active = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))
        for name in set(re.findall(re.escape(CONFDIR) + r"/([\w.-]+)", active)):
            stem, ext = os.path.splitext(name)
            self.assertIn(ext, (".pem", ".key"), name)
            shutil.copy(getattr(h.certs(), "pem" if ext == ".pem" else "key")("acme"), os.path.join(d, name))
        copy = os.path.join(d, "livery.conf")
        with open(copy, "w") as f:
            f.write(text.replace(CONFDIR + "/", d + "/"))
        rc, out = run([self.path("livery"), "--check", "-c", copy])
        self.assertEqual((rc, out.strip()), (0, copy + ": OK"))

    def test_man_page_covers_every_option_and_command(self):
        page = self.path("livery.8")
        self.assertIn("/man8/", page)
        rc, out = run(["groff", "-man", "-Tutf8", "-ww", "-z", page])
        self.assertEqual((rc, out), (0, ""), "roff warnings")
        rc, text = run(["groff", "-man", "-Tutf8", "-P-cbou", "-rLL=1000n", "-rHY=0", page])  # no hyphens
        self.assertEqual(rc, 0)
        missing = [k for k in sorted(config_keys()) if not re.search(r"\b%s\b" % k, text)]
        self.assertEqual(missing, [], "configuration keys not in livery(8)")
        for word in ("run", "reload", "--check", "--log-level", "--help", "--version", "SIGHUP", "SIGTERM",
                     "SIGQUIT", "JOURNAL_STREAM"):
            self.assertIn(word, text)

    def verify(self, unit_text, name="livery.service"):
        d = h.scratch("unit")
        unit = os.path.join(d, name)
        with open(unit, "w") as f:
            f.write(unit_text)
        return run(["systemd-analyze", "verify", unit], env={"MANPATH": os.path.dirname(os.path.dirname(self.path("livery.8")))})

    def test_unit_passes_systemd_analyze_verify(self):
        if not shutil.which("systemd-analyze"):
            self.fail("systemd-analyze is missing (tests/install-deps.sh installs systemd)")
        rc, out = self.verify("[Unit]\nDescription=probe\n[Service]\nExecStart=/bin/true\n", "probe.service")
        if rc != 0:
            print("SKIP reason: systemd-analyze cannot run here: %s" % out.strip())
            self.skipTest("systemd-analyze cannot run here: %s" % out.strip())
        with open(self.path("livery.service")) as f:
            unit = f.read()
        self.assertIn("Type=notify", unit)
        for line in ("NoNewPrivileges=yes", "ProtectSystem=strict", "AmbientCapabilities=CAP_NET_BIND_SERVICE",
                     "Restart=on-failure", "ExecReload=", "KillMode=mixed"):
            self.assertIn(line, unit)
        # ExecStart must name an executable that exists: point it into DESTDIR.
        exe = re.search(r"^ExecStart=(\S+)", unit, re.M).group(1)
        unit = unit.replace(exe, self.path("livery"))
        rc, out = self.verify(unit)
        self.assertEqual((rc, out), (0, ""), "systemd-analyze verify livery.service")
        rc, out = self.verify(unit.replace("Type=notify", "Type=notifyy"))
        self.assertNotEqual(out, "", "systemd-analyze accepted a broken unit: the check proves nothing")


if __name__ == "__main__":
    h.main()
