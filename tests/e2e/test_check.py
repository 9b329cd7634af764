#!/usr/bin/env python3
"""`livery check -c FILE [--dns]`: the report per branded host name (certificate, key, chain,
names, expiry) and its exit status (0 clean, 1 on any error, 2 on usage); config errors with
file:line; with --dns, the records each brand publishes, asked of a small DNS responder on
loopback (--dns-server), since tests have no DNS of their own."""

import os
import re
import socket
import struct
import subprocess
import threading
import time
import unittest

import harness as h
from test_certdir import config, issue, place

SERVICE = h.LISTENER_HOSTNAME  # the listeners' host name: what brands CNAME to


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def decode_name(msg, off):
    labels = []
    while msg[off]:
        n = msg[off]
        labels.append(msg[off + 1:off + 1 + n].decode())
        off += 1 + n
    return ".".join(labels).lower(), off + 1


TYPES = {"A": 1, "CNAME": 5, "AAAA": 28, "SRV": 33, "CAA": 257}


def rdata(rtype, value):
    if rtype == "A":
        return socket.inet_pton(socket.AF_INET, value)
    if rtype == "AAAA":
        return socket.inet_pton(socket.AF_INET6, value)
    if rtype == "CNAME":
        return encode_name(value)
    if rtype == "SRV":
        prio, weight, port, target = value
        return struct.pack("!HHH", prio, weight, port) + encode_name(target)
    if rtype == "CAA":
        flags, tag, val = value
        return bytes([flags, len(tag)]) + tag.encode() + val.encode()
    raise ValueError(rtype)


class DNSResponder:
    """Answers UDP queries on 127.0.0.1 from a table {(name, type): [values]}: NOERROR with
    the records, or NOERROR with none when the name has other records, else NXDOMAIN. A CNAME
    is answered for any type, as a recursive resolver's answer starts with it."""

    def __init__(self, records):
        self.records = records
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((h.HOST, 0))
        self.port = self.sock.getsockname()[1]
        self.queries = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def answer(self, q):
        qid, flags = struct.unpack("!HH", q[:4])
        name, off = decode_name(q, 12)
        qtype = struct.unpack("!H", q[off:off + 2])[0]
        self.queries.append((name, qtype))
        rrs = []
        for (n, t), values in self.records.items():
            if n == name and (TYPES[t] == qtype or t == "CNAME"):
                rrs += [(t, v) for v in values]
        known = any(n == name for (n, _t) in self.records)
        rcode = 0 if rrs or known else 3
        head = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, len(rrs), 0, 0)
        body = q[12:off + 4]
        for t, v in rrs:
            d = rdata(t, v)
            body += encode_name(name) + struct.pack("!HHIH", TYPES[t], 1, 300, len(d)) + d
        return head + body

    def serve(self):
        while True:
            try:
                q, addr = self.sock.recvfrom(4096)
            except OSError:
                return
            self.sock.sendto(self.answer(q), addr)

    def close(self):
        self.sock.close()


class LiveryCheckTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.certs = h.certs()
        ca = os.path.dirname(cls.certs.ca)
        gen = h.scratch("check-gen")
        cls.acme = issue(ca, os.path.join(gen, "acme"), ["smtp.acme.test", "mail.acme.test"], "--days", "120")
        cls.soon = issue(ca, os.path.join(gen, "soon"), ["soon.acme.test"], "--days", "10")
        cls.expired = issue(ca, os.path.join(gen, "expired"), ["old.acme.test"], "--expired")
        cls.globex = issue(ca, os.path.join(gen, "globex"), ["*.globex.test"], "--rsa")
        cls.expired_unused = issue(ca, os.path.join(gen, "expired-unused"), ["gone.acme.test"], "--expired")

    def run_check(self, text, *args, tz=None):
        d = h.scratch("check")
        path = os.path.join(d, "livery.conf")
        with open(path, "w") as f:
            f.write(text)
        env = dict(os.environ, TZ=tz) if tz else None
        r = subprocess.run([h.LIVERY_BIN, "check", "-c", path] + list(args), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, env=env)
        return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace"), path

    def host_section(self, out, hostname):
        m = re.search(r"^  %s\n((?:    .*\n)*)" % re.escape(hostname), out, re.M)
        self.assertIsNotNone(m, "no section for %s in:\n%s" % (hostname, out))
        return m.group(1)

    def test_clean_report(self):
        d = h.scratch("check-clean")
        place(*self.acme, os.path.join(d, "acme.pem"), os.path.join(d, "acme.key"))
        place(*self.globex, os.path.join(d, "globex.crt"), os.path.join(d, "globex.key"))
        tenants = [("acme", ["smtp.acme.test", "mail.acme.test"], []), ("globex", ["*.globex.test"], [])]
        since = time.time()
        rc, out, err, _ = self.run_check(config(d, tenants))
        self.assertEqual(rc, 0, out + err)
        s = self.host_section(out, "mail.acme.test")
        self.assertIn("ok    certificate %s (ECDSA), from cert_dir" % os.path.join(d, "acme.pem"), s)
        self.assertIn("ok    key %s matches the certificate" % os.path.join(d, "acme.key"), s)
        self.assertIn("ok    chain: 2 certificates, each issued by the next", s)
        self.assertRegex(s, r"ok    names \(SAN\): (smtp\.acme\.test, mail\.acme\.test|mail\.acme\.test, smtp\.acme\.test)\n")
        self.assertRegex(s, r"ok    expires \d{4}-\d\d-\d\d, in %s days" % h.days_left_re(self.acme[0], since))
        self.assertIn("(RSA)", self.host_section(out, "*.globex.test"))
        self.assertIn("0 errors, 0 warnings", out)
        # Certificate times are UTC whatever the zone (wolfSSL's own conversion shifted them by DST).
        for tz in ("America/New_York", "Australia/Sydney", "Asia/Kolkata"):
            since = time.time()
            rc, out_tz, err, _ = self.run_check(config(d, tenants), tz=tz)
            self.assertEqual(rc, 0, out_tz + err)
            s_tz = self.host_section(out_tz, "mail.acme.test")
            self.assertRegex(s_tz, r"in %s days" % h.days_left_re(self.acme[0], since), tz)
            days = re.compile(r"in \d+ days")
            self.assertEqual(days.sub("", s_tz), days.sub("", s), tz)

    def test_errors_and_warnings(self):
        d = h.scratch("check-bad")
        place(*self.soon, os.path.join(d, "soon.pem"), os.path.join(d, "soon.key"))
        os.chmod(os.path.join(d, "soon.key"), 0o640)
        place(*self.expired, os.path.join(d, "expired.pem"), os.path.join(d, "expired.key"))
        # Serves no name, but --check fails for it: the report says so.
        place(*self.expired_unused, os.path.join(d, "unused.pem"), os.path.join(d, "unused.key"))
        # The leaf followed by a CA that did not issue it: a chain out of order.
        with open(self.acme[0]) as f:
            blocks = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n", f.read(), re.S)
        with open(os.path.join(d, "acme.pem"), "w") as f, open(self.certs.ca2) as ca2:
            f.write(blocks[0] + ca2.read())
        place(self.globex[0], self.acme[1], os.path.join(d, "mismatch.pem"), os.path.join(d, "mismatch.key"))
        explicit = ['cert = "%s";' % os.path.join(d, "acme.pem"), 'key = "%s";' % self.acme[1]]
        tenants = [("soon", ["soon.acme.test", "old.acme.test"], []),
                   ("acme", ["smtp.acme.test", "www.acme.test"], explicit)]
        since = time.time()
        rc, out, err, _ = self.run_check(config(d, tenants))
        self.assertEqual(rc, 1, out + err)
        self.assertRegex(self.host_section(out, "soon.acme.test"),
                         r"warn  expires \S+, in %s days: renew it" % h.days_left_re(self.soon[0], since))
        self.assertRegex(self.host_section(out, "soon.acme.test"), r"warn  key \S+ is readable by group or others \(mode 0640\)")
        self.assertRegex(self.host_section(out, "old.acme.test"), r"error expired on \d{4}-\d\d-\d\d")
        self.assertRegex(out, r"warn  refusing \S*mismatch\.pem \+ \S*mismatch\.key")
        self.assertRegex(self.host_section(out, os.path.join(d, "unused.pem")), r"error expired on \d{4}-")
        s = self.host_section(out, "smtp.acme.test")
        self.assertRegex(s, r"error chain: certificate 1's issuer \(.*Livery Test CA\) is not certificate 2's subject")
        self.assertRegex(s, r"ok    names \(SAN\): ")
        # cert/key lines whose certificate does not name the host.
        self.assertRegex(self.host_section(out, "www.acme.test"), r"error names \(SAN\): .*: none covers www\.acme\.test")
        self.assertRegex(out, r"\n[1-9]\d* errors?, [1-9]\d* warnings?\n")

    def test_config_error_has_file_line(self):
        text = config(None, [("acme", ["smtp.acme.test"], [])])
        rc, out, err, path = self.run_check(text)
        self.assertEqual(rc, 1)
        self.assertRegex(out, r"error %s:\d+: tenant 'acme' needs 'cert' and 'key'" % re.escape(path))
        d = h.scratch("check-uncovered")
        place(*self.acme, os.path.join(d, "acme.pem"), os.path.join(d, "acme.key"))
        rc, out, err, path = self.run_check(config(d, [("acme", ["smtp.acme.test", "www.acme.test"], [])]))
        self.assertEqual(rc, 1)
        self.assertRegex(out, r"error %s:\d+: tenant 'acme': no certificate under \S+ covers host name 'www\.acme\.test'" % re.escape(path))

    def test_usage(self):
        r = subprocess.run([h.LIVERY_BIN, "check"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=h.TIMEOUT)
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"-c FILE is required", r.stderr)
        r = subprocess.run([h.LIVERY_BIN, "check", "--help"], stdout=subprocess.PIPE, timeout=h.TIMEOUT)
        self.assertEqual(r.returncode, 0)
        self.assertIn(b"--dns-server", r.stdout)

    def test_dns(self):
        d = h.scratch("check-dns")
        place(*self.acme, os.path.join(d, "acme.pem"), os.path.join(d, "acme.key"))
        place(*self.globex, os.path.join(d, "globex.pem"), os.path.join(d, "globex.key"))
        records = {
            (SERVICE, "A"): ["192.0.2.10"],
            (SERVICE, "AAAA"): ["2001:db8::10"],
            ("smtp.acme.test", "CNAME"): [SERVICE + "."],
            ("_submission._tcp.acme.test", "SRV"): [(0, 1, 587, "smtp.acme.test")],
            ("acme.test", "CAA"): [(0, "issue", "letsencrypt.org")],
            # mail.acme.test: the service's own address, no CNAME.
            ("mail.acme.test", "A"): ["192.0.2.10"],
            # www.acme.test: somewhere else entirely.
            ("www.acme.test", "A"): ["198.51.100.7"],
        }
        dns = DNSResponder(records)
        self.addCleanup(dns.close)
        cfg = config(d, [("acme", ["smtp.acme.test", "mail.acme.test", "www.acme.test", "new.acme.test"], []),
                         ("globex", ["*.globex.test"], [])], ports=(587, 465))
        # acme's certificate covers neither www nor new: give those names a wildcard of their own.
        wild = issue(os.path.dirname(self.certs.ca), os.path.join(d, "gen-wild"), ["*.acme.test"])
        place(*wild, os.path.join(d, "wild.pem"), os.path.join(d, "wild.key"))
        rc, out, err, _ = self.run_check(cfg, "--dns", "--dns-server", "%s:%d" % (h.HOST, dns.port))
        self.assertEqual(rc, 1, out + err)
        s = self.host_section(out, "smtp.acme.test")
        self.assertIn("ok    dns: CNAME %s" % SERVICE, s)
        self.assertIn("ok    dns: SRV _submission._tcp.acme.test 0 1 587 smtp.acme.test", s)
        self.assertIn("warn  dns: SRV _submissions._tcp.acme.test: none; publish: _submissions._tcp.acme.test. SRV 0 1 465 smtp.acme.test.", s)
        self.assertIn('info  dns: CAA at acme.test: 0 issue "letsencrypt.org"', s)
        self.assertIn("ok    dns: A/AAAA 192.0.2.10 are %s's" % SERVICE, self.host_section(out, "mail.acme.test"))
        self.assertRegex(self.host_section(out, "www.acme.test"),
                         r"error dns: A/AAAA 198\.51\.100\.7 are not %s's \(192\.0\.2\.10\); publish: www\.acme\.test\. CNAME %s\."
                         % (re.escape(SERVICE), re.escape(SERVICE)))
        self.assertIn("error dns: no CNAME, A or AAAA record; publish: new.acme.test. CNAME %s." % SERVICE,
                      self.host_section(out, "new.acme.test"))
        self.assertIn("info  dns: a wildcard is not queried", self.host_section(out, "*.globex.test"))
        self.assertIn("sender authentication (SPF, DKIM, DMARC) stays with the upstream relay's sending", out)
        self.assertIn(("smtp.acme.test", 5), dns.queries)  # the resolver asked the responder

    def test_dns_server_unanswering(self):
        d = h.scratch("check-nodns")
        place(*self.acme, os.path.join(d, "acme.pem"), os.path.join(d, "acme.key"))
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never answers
        s.bind((h.HOST, 0))
        self.addCleanup(s.close)
        rc, out, err, _ = self.run_check(config(d, [("acme", ["smtp.acme.test"], [])]), "--dns", "--dns-server",
                                         "%s:%d" % (h.HOST, s.getsockname()[1]))
        self.assertEqual(rc, 1)
        self.assertIn("error dns: the resolver gave no answer for smtp.acme.test", out)


if __name__ == "__main__":
    h.main()
