#!/usr/bin/env python3
"""The relay closes or resets its connection at every step of its side of the protocol, and at
several points inside message content (DATA and BDAT), while the client keeps streaming or
pipelines. After each fault livery must still be alive, the client must have had a 4xx or
the relay's own reply (never a 2xx for a message the relay did not complete), the relay must
have completed no message it did not acknowledge, and a new session must deliver.

The relay reads its cut plan from a file at each accept (livery-test-relay --cut-file), so
one relay and one livery serve the whole sweep. Run with a class name as argument to run one
relay mode (ctest registers each separately). RandomCutTest draws cut points and the client's
write sizes from a seeded generator: LIVERY_CUT_SEED=N replays a run, LIVERY_CUT_CASES=N sets
how many cases it draws (default 24)."""

import os
import random
import socket
import ssl
import sys

import harness as h

LINE = b"0123456789abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789\r\n"
MIB = 1 << 20


def body_of(size):
    """A message of about size octets: headers, then CRLF lines (a dot-led one included)."""
    head = b"From: ann@acme.test\r\nTo: bob@example.test\r\nSubject: cut sweep\r\n\r\n.a dot-led line\r\n"
    reps = max(1, (size - len(head)) // len(LINE) + 1)
    return head + LINE * reps


# Where the relay cuts, and the message size each point needs: (spec, body size, DATA, BDAT).
# A content point's spec is filled in from the wire size of the message ("first record",
# 4 KiB, 64 KiB, 1 MiB, and just before the final dot / the end of the last chunk).
STEPS = [
    ("accept", 8192, True, True),
    ("banner", 8192, True, True),
    ("tls", 8192, True, True),
    ("ehlo", 8192, True, True),
    ("auth", 8192, True, True),
    ("mail", 8192, True, True),
    ("rcpt", 8192, True, True),
    ("data", 8192, True, False),
    ("content:1", 8192, True, True),
    ("content:4096", 65536, True, True),
    ("content:65536", 256 * 1024, True, True),
    ("content:%d" % MIB, MIB + 64 * 1024, True, True),
    ("content:END", 128 * 1024, True, True),
    ("reply", 8192, True, True),
    ("rset", 8192, True, True),
    ("quit", 8192, True, True),
]

BDAT_CHUNK = 96 * 1024


class Outcome:
    """What one client session saw: each command's reply code (None: none came)."""

    def __init__(self):
        self.replies = []  # (what, code)
        self.eof = False

    def codes(self, what=None):
        return [c for w, c in self.replies if what is None or w == what]


class CutClient:
    """A client session through livery that survives the connection ending at any point."""

    def __init__(self, test, implicit, rng=None):
        self.test = test
        self.rng = rng
        self.out = Outcome()
        self.c = test.client(implicit=implicit, implicit_sni="smtp.acme.test" if implicit else None)
        self.owed = []  # what each reply still owed answers, in order

    def send(self, data):
        """Sends data (in random pieces with an rng); False once the connection is gone (what
        the server said before may still be read)."""
        try:
            if not self.rng:
                self.c.send(data)
                return True
            while data:
                n = self.rng.choice((1, 7, 512, 4096, 16384, 65536))
                self.c.send(data[:n])
                data = data[n:]
            return True
        except (OSError, ssl.SSLError):
            return False

    def expect(self, *whats):
        self.owed.extend(whats)

    def collect(self, n=None):
        """Reads the replies owed (or the next n); stops at the end of the connection."""
        want = len(self.owed) if n is None else n
        for _ in range(want):
            if self.out.eof or not self.owed:
                return
            what = self.owed.pop(0)
            try:
                code = self.c.reply().code
            except (EOFError, OSError, ssl.SSLError):
                self.out.eof = True
                return
            self.out.replies.append((what, code))
            if code == 421:
                self.out.eof = True
                return

    def last_code(self):
        return self.out.replies[-1][1] if self.out.replies else None

    def setup(self, implicit):
        """Greeting, EHLO, STARTTLS (unless implicit), EHLO, AUTH; True when authenticated."""
        c = self.c
        self.expect("greeting")
        self.collect()
        if not implicit:
            c.send("EHLO client.example.test\r\n")
            self.expect("ehlo")
            self.collect()
            c.send("STARTTLS\r\n")
            self.expect("starttls")
            self.collect()
            c.wrap("smtp.acme.test")
        c.send("EHLO client.example.test\r\n")
        self.expect("ehlo")
        self.collect()
        self.send(("AUTH PLAIN %s\r\n" % h.plain_auth()).encode())
        self.expect("auth")
        self.collect()
        return self.last_code() == 235

    def finish(self, pipelined):
        """RSET and QUIT after the message, then read to the end."""
        if self.out.eof:
            return
        if pipelined:
            self.send(b"RSET\r\nQUIT\r\n")
            self.expect("rset", "quit")
        else:
            for verb in ("rset", "quit"):
                if self.out.eof:
                    break
                self.send(verb.upper().encode() + b"\r\n")
                self.expect(verb)
                self.collect()
        self.collect()
        try:
            self.c.read_eof()
        except OSError:
            pass

    def envelope(self, pipelined, last):
        """MAIL, RCPT and `last` (DATA, or None for BDAT) sent together or one by one."""
        cmds = [(b"MAIL FROM:<ann@acme.test>\r\n", "mail"), (b"RCPT TO:<bob@example.test>\r\n", "rcpt")]
        if last:
            cmds.append((last, "data"))
        if pipelined:
            self.send(b"".join(c for c, _ in cmds))
            self.expect(*[w for _, w in cmds])
            self.collect()
        else:
            for c, w in cmds:
                if self.out.eof or (self.out.replies and self.last_code() // 100 != 2):
                    break
                self.send(c)
                self.expect(w)
                self.collect()

    def data_message(self, wire, pipelined):
        self.envelope(pipelined, b"DATA\r\n")
        if self.out.eof or self.last_code() != 354:
            return
        self.send(wire + b".\r\n")
        self.expect("message")
        self.collect()

    def bdat_message(self, body, pipelined):
        self.envelope(pipelined, None)
        if self.out.eof or (not pipelined and self.last_code() != 250):
            return
        chunks = [body[i:i + BDAT_CHUNK] for i in range(0, len(body), BDAT_CHUNK)]
        flight = b""
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            flight += b"BDAT %d%s\r\n" % (len(chunk), b" LAST" if last else b"") + chunk
            self.expect("message" if last else "chunk")
        # The whole flight goes without reading (livery reads on while the relay does).
        self.send(flight)
        self.collect()


class CutCase(h.ProxyTestCase):
    """A relay that cuts where its plan file says, and the checks after each fault."""

    relay_implicit = False
    client_implicit = False

    @classmethod
    def setUpClass(cls):
        cls.cut_dir = h.scratch("cuts")
        cls.cut_file = os.path.join(cls.cut_dir, "cut")
        cls.relay_options = ("--cut-file", cls.cut_file)
        super().setUpClass()

    def plan(self, spec):
        tmp = self.cut_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(spec + "\n")
        os.replace(tmp, self.cut_file)

    def run_case(self, spec, body, mode, pipelined, rng=None):
        try:
            self._run_case(spec, body, mode, pipelined, rng)
        except Exception:
            self.assertAlive(spec)
            raise

    def assertAlive(self, spec):
        rc = self.livery.proc.poll()
        if rc is not None:
            raise AssertionError("livery died (%s) at cut %s" % (
                "signal %d" % -rc if rc < 0 else "exit status %d" % rc, spec))

    def _run_case(self, spec, body, mode, pipelined, rng=None):
        self.assertAlive("(before) " + spec)
        msgs_before = self.relay.messages()
        conns_before = self.relay.connections()
        self.plan(spec)
        cl = CutClient(self, self.client_implicit, rng)
        try:
            if cl.setup(self.client_implicit):
                if mode == "data":
                    cl.data_message(h.dot_stuff(body), pipelined)
                else:
                    cl.bdat_message(body, pipelined)
            cl.finish(pipelined)
        finally:
            self.plan("none")
        self.check_case(spec, cl.out, msgs_before, conns_before)
        self.assertClean(cl.c.received)

    def check_case(self, spec, out, msgs_before, conns_before):
        what = "%s: client saw %r" % (spec, out.replies)
        self.assertAlive(spec)
        new_conns = [n for n in self.relay.connections() if n not in conns_before]
        self.assertTrue(new_conns, "no relay connection: " + what)
        for n in new_conns:
            self.relay.wait_closed(n)
        cut_events = [e for e in self.relay.events() if " cut " in e and int(e.split()[1]) in new_conns]
        self.assertTrue(cut_events, "the relay never cut (%s)" % what)
        new_msgs = [n for n in self.relay.messages() if n not in msgs_before]
        accepted = [c for c in out.codes("message") if c // 100 == 2]
        # The relay's verdict only: a 2xx for the message exactly when the relay completed it.
        self.assertEqual(len(accepted), len(new_msgs), "2xx vs messages the relay completed: " + what)
        if not spec.split("/")[0] in ("reply", "rset", "quit"):
            self.assertEqual(new_msgs, [], "the relay completed a message: " + what)
        # Every session that lost its relay with something owed heard a 4xx about it (after a
        # cut that follows the final reply, nothing may be owed: RSET and QUIT are answered
        # locally once the relay leg is known to be gone).
        if spec.split("/")[0] != "reply":
            self.assertTrue(any(c // 100 == 4 for _, c in out.replies), "no 4xx: " + what)

    def deliver_once(self):
        """A clean session delivers after the fault."""
        before = self.relay.messages()
        cl = CutClient(self, self.client_implicit)
        self.assertTrue(cl.setup(self.client_implicit), "AUTH failed after a fault: %r" % cl.out.replies)
        cl.data_message(h.dot_stuff(h.SAMPLE_BODY), False)
        self.assertEqual(cl.out.codes("message"), [250], cl.out.replies)
        cl.finish(False)
        self.new_message(before)


class SweepMixin:
    """Every step, both ways of cutting, both clients; subclasses set the relay mode."""

    def test_sweep(self):
        for step, size, in_data, in_bdat in STEPS:
            body = body_of(size)
            for mode in ("data", "bdat"):
                if not (in_data if mode == "data" else in_bdat):
                    continue
                spec = step
                if step == "content:END":
                    # DATA: all content read, the final dot not; BDAT: one octet short of the end.
                    spec = "content:%d" % (len(h.dot_stuff(body)) if mode == "data" else len(body) - 1)
                for reset in (False, True):
                    for pipelined in (False, True):
                        full = spec + ("/reset" if reset else "")
                        with self.subTest(cut=full, mode=mode, pipelined=pipelined):
                            self.run_case(full, body, mode, pipelined)
                            self.deliver_once()


class StarttlsRelayCutTest(SweepMixin, CutCase):
    relay_implicit = False
    client_implicit = False


class ImplicitRelayCutTest(SweepMixin, CutCase):
    relay_implicit = True
    client_implicit = True


class RandomCutTest(CutCase):
    """Random content cut points and client write sizes (partial writes down to one octet)."""

    def test_random(self):
        seed = int(os.environ.get("LIVERY_CUT_SEED") or random.SystemRandom().randrange(1 << 30))
        cases = int(os.environ.get("LIVERY_CUT_CASES") or 24)
        sys.stderr.write("RandomCutTest: LIVERY_CUT_SEED=%d\n" % seed)
        rng = random.Random(seed)
        for i in range(cases):
            size = rng.choice((2048, 20000, 150000, 400000))
            body = body_of(size)
            mode = rng.choice(("data", "bdat"))
            point = rng.randrange(1, len(body) + 1)
            spec = "content:%d%s" % (point, rng.choice(("", "/reset")))
            pipelined = rng.random() < 0.5
            with self.subTest(case=i, seed=seed, cut=spec, mode=mode, size=size, pipelined=pipelined):
                self.run_case(spec, body, mode, pipelined, rng)
                self.deliver_once()


class ClientResetTest(CutCase):
    """The client resets its connection at a random point of its message, in random write
    sizes, while the relay reads on: livery's writes to it then fail at once. The relay must
    complete nothing, and livery must live on."""

    def test_client_resets(self):
        seed = int(os.environ.get("LIVERY_CUT_SEED") or random.SystemRandom().randrange(1 << 30))
        sys.stderr.write("ClientResetTest: LIVERY_CUT_SEED=%d\n" % seed)
        rng = random.Random(seed)
        for i in range(int(os.environ.get("LIVERY_CUT_CASES") or 24)):
            body = body_of(rng.choice((4096, 70000, 300000)))
            mode, pipelined = rng.choice(("data", "bdat")), rng.random() < 0.5
            with self.subTest(case=i, seed=seed, mode=mode, size=len(body), pipelined=pipelined):
                self.reset_case(body, mode, pipelined, rng)
                self.deliver_once()

    def reset_case(self, body, mode, pipelined, rng):
        msgs_before, conns_before = self.relay.messages(), self.relay.connections()
        cl = CutClient(self, False, rng)
        self.assertTrue(cl.setup(False), cl.out.replies)
        if mode == "data":
            cl.envelope(pipelined, b"DATA\r\n")
            self.assertEqual(cl.last_code(), 354, cl.out.replies)
            wire = h.dot_stuff(body) + b".\r\n"
        else:
            cl.envelope(pipelined, None)
            wire = b"BDAT %d LAST\r\n" % len(body) + body
        # Short of the end: the last octet never goes, so the message cannot be complete.
        cl.send(wire[:rng.randrange(0, len(wire) - 1)])
        cl.c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        cl.c.close()
        for n in [n for n in self.relay.connections() if n not in conns_before]:
            self.relay.wait_closed(n)
        self.assertAlive("client reset")
        self.assertEqual([n for n in self.relay.messages() if n not in msgs_before], [],
                         "the relay completed a message the client never finished")


if __name__ == "__main__":
    h.main()
