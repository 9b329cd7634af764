#!/usr/bin/env python3
"""Hostile cases of the second probing round, each a defect found against the real binary:
a file the configuration names that is not a regular file (a FIFO, a device) is refused with
"not a regular file" by `livery --check`, `livery check` and a reload, instead of blocking the
master in open(2) for ever (a reload then hung, and SIGTERM no longer stopped livery); the
admin listener cuts a request that is not read and answered within 10 s (a client sending a
byte now and then held a connection for ever, and 16 such per worker shut /healthz out) and
holds at most 4 connections per client address; a request with two Authorization headers is
refused whatever they hold (the first one decided); with log_format = "text", a sender, user
or reply is escaped (a sender's terminal escape or bare CR went to the line as is, and a
quoted local part with spaces could add fields of its own)."""

import os
import re
import select
import signal
import socket

import harness as h
import test_local_auth as la
from test_metrics import AdminLivery

TOKEN = "adm1n-t0ken"


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


def http_raw(port, request, source=None):
    """What the admin listener answers to request (bytes) before it closes the connection."""
    s = socket.create_connection((h.HOST, port), timeout=h.TIMEOUT, source_address=(source, 0) if source else None)
    try:
        s.sendall(request)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk
    finally:
        s.close()


def get(path, *headers):
    return b"GET %s HTTP/1.1\r\nHost: livery\r\n%sConnection: close\r\n\r\n" % (
        path.encode(), b"".join(x + b"\r\n" for x in headers))


class AdminHostileTest(h.ProxyTestCase):
    livery_class = AdminLivery
    livery_config = {"top": ['admin_token = "%s";' % TOKEN, "workers = 2;"]}

    def status(self, request, source=None):
        out = http_raw(self.livery.admin_port, request, source)
        return int(out.split(b" ", 2)[1]) if out.startswith(b"HTTP/1.1 ") else out

    def test_two_authorization_headers_are_refused(self):
        good, bad = b"Authorization: Bearer " + TOKEN.encode(), b"Authorization: Bearer wrong"
        self.assertEqual(self.status(get("/healthz", good)), 200)
        self.assertEqual(self.status(get("/healthz", good, bad)), 401)
        self.assertEqual(self.status(get("/healthz", bad, good)), 401)
        self.assertEqual(self.status(get("/healthz", good, good)), 401)

    def test_a_dribbled_request_is_cut(self):
        s = socket.create_connection((h.HOST, self.livery.admin_port), timeout=h.TIMEOUT)
        got = None
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: livery\r\nX-Pad: ")
            # A byte every half second, well within the idle timeout, for at most 30 s.
            for _ in range(60):
                if select.select([s], [], [], 0.5)[0]:
                    got = s.recv(1000)
                    break
                s.send(b"a")
        except OSError:
            got = b""
        finally:
            s.close()
        self.assertEqual(got, b"", "a request dribbled for 30 s was still being read")
        self.assertEqual(self.status(get("/healthz", b"Authorization: Bearer " + TOKEN.encode())), 200)

    def test_one_address_cannot_take_every_connection(self):
        """20 connections from 127.0.0.2 that keep sending header lines: the 2 workers keep 4
        each and close the others at once, so 127.0.0.1 is served."""
        held = [socket.create_connection((h.HOST, self.livery.admin_port), timeout=h.TIMEOUT,
                                         source_address=("127.0.0.2", 0)) for _ in range(20)]
        try:
            closed = set()
            for _ in range(60):  # at most 30 s; a header line every half second
                for i, c in enumerate(held):
                    if i in closed:
                        continue
                    try:
                        c.send(b"GET /healthz HTTP/1.1\r\n" if _ == 0 else b"X-Pad: a\r\n")
                        if select.select([c], [], [], 0)[0] and c.recv(1000) == b"":
                            closed.add(i)
                    except OSError:
                        closed.add(i)
                if len(closed) >= 12:
                    break
                select.select([], [], [], 0.5)
            self.assertGreaterEqual(len(closed), 12, "one address held more than 4 connections per worker")
            self.assertEqual(self.status(get("/healthz", b"Authorization: Bearer " + TOKEN.encode())), 200)
        finally:
            for c in held:
                c.close()

class TextRecordsTest(h.ProxyTestCase):
    livery_config = {"top_extra": ['log_format = "text";']}

    def test_hostile_sender_stays_one_field(self):
        c = self.starttls_session()
        sender = b'"x recipients=9 code=500\x1b[2J\\\x7f"@acme.test'
        c.send(b"MAIL FROM:<" + sender + b">\r\n")
        self.assertReply(c.reply(), 250)
        self.assertReply(c.cmd("RCPT TO:<bob@example.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b"Subject: t\r\n\r\nhi\r\n.\r\n")
        self.assertReply(c.reply(), 250)
        self.assertReply(c.cmd("QUIT"), 221)
        pattern = re.compile(rb"^\S+ message \S+ sender=(\S*) ", re.M)
        line = h.wait_until(lambda: [l for l in h.read_bytes(self.livery.log_path).split(b"\n")
                                     if b" message " in l and b"sender=" in l and b"acme.test" in l],
                            "the message record")[-1]
        self.assertNotIn(b"\x1b", line)
        self.assertNotIn(b"\x7f", line)
        self.assertEqual(line.count(b" recipients="), 1, line)
        self.assertEqual(line.count(b" code="), 1, line)
        self.assertEqual(pattern.match(line).group(1),
                         rb"\x22x\x20recipients=9\x20code=500\x1b[2J\x5c\x7f\x22@acme.test")


if __name__ == "__main__":
    h.main()
