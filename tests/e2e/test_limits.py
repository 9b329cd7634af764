#!/usr/bin/env python3
"""Sending limits (a tenant's limits group, limits.backend, limits.redis_failure): at MAIL
(messages) and RCPT (recipients), per tenant, per authenticated user and per client address.
Exactly the limit is accepted, the next gets 451 4.7.1 with the brand and nothing of it
reaches the relay; the scopes count independently; the workers of an instance share one
budget (memory backend); two instances share one through a real redis-server; with Redis
gone, redis_failure decides, and the failure is logged at most every 10 s and counted."""

import os
import re
import signal
import subprocess
import time

import harness as h
import test_metrics as tm

USERS_LIMIT = "limits = { messages_per_hour = 5; per_user_messages_per_hour = 2; };"
RCPT_LIMIT = ("limits = { recipients_per_hour = 3; per_ip_messages_per_hour = 2; };")
SHARED_LIMIT = "limits = { messages_per_hour = 4; };"
USERS = ("ann@acme.test", "bob@acme.test", "carol@acme.test", "dan@livery.test", "user@globex.test",
         "gone@acme.test")
# The stand-in relay accepts these users, each with the test password.
RELAY_USERS = tuple(x for u in USERS for x in ("--user", "%s:%s" % (u, h.PASSWORD)))


def avoid_hour_turn():
    """Counters run over fixed clock hours: a test does not start in the last minute of one,
    so that its counts all fall in one window."""
    left = 3600 - time.time() % 3600
    if left < 60:
        time.sleep(left + 1)


class LimitsCase(h.ProxyTestCase):

    def session(self, sni, user, client=None):
        return self.starttls_session(sni, client=client, user=user)

    def send_message(self, c, sender, rcpts=("bob@example.test",)):
        """MAIL, RCPTs and DATA; returns the MAIL reply (the rest only when it was 250)."""
        r = c.cmd("MAIL FROM:<%s>" % sender)
        if r.code != 250:
            return r
        for rcpt in rcpts:
            self.assertReply(c.cmd("RCPT TO:<%s>" % rcpt), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(h.dot_stuff(h.SAMPLE_BODY) + b".\r\n")
        self.assertReply(c.reply(), 250)
        return r

    def assertLimited(self, r, brand, words):
        self.assertReply(r, 451, "4.7.1 %s Sending limit reached: %s" % (brand, words))
        self.assertClean(r.raw)

    def relay_senders(self):
        return [re.search(r"MAIL FROM:<([^>]*)>", self.relay.msg_env(n)).group(1) for n in self.relay.messages()]

    def records(self, **match):
        return [r for r in h.records(self.livery.log())
                if r["record"] == "message" and all(r.get(k) == v for k, v in match.items())]


class MemoryLimitsTest(LimitsCase):
    """The memory backend (the default), two workers."""

    livery_class = tm.AdminLivery
    relay_options = RELAY_USERS
    livery_config = {"top": ["workers = 2;"],
                     "tenant_extra": {"acme": [USERS_LIMIT], "globex": [SHARED_LIMIT], "default": [RCPT_LIMIT]}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        h.wait_until(lambda: len(h.children(cls.livery.proc.pid)) == 2, "two workers")

    def setUp(self):
        super().setUp()
        avoid_hour_turn()

    def test_per_user_and_per_tenant(self):
        """acme: 2 messages per user, 5 for the tenant. Each user gets exactly 2; the third
        user's second message meets the tenant's limit; nothing refused reaches the relay."""
        before = self.relay.messages()
        for user in ("ann@acme.test", "bob@acme.test"):
            c = self.session("smtp.acme.test", user)
            for i in range(2):
                self.assertReply(self.send_message(c, "%s-%d@acme.test" % (user[:3], i)), 250)
            self.assertLimited(self.send_message(c, "%s-over@acme.test" % user[:3]), "smtp.acme.test",
                               "messages per hour for this user")
            # After a refused MAIL nothing of that message goes to the relay: its RCPT and
            # DATA are answered here, and a RSET leaves the session usable.
            self.assertReply(c.cmd("RCPT TO:<x@example.test>"), 503)
            self.assertReply(c.cmd("DATA"), 503)
            c.send(b"BDAT 9 LAST\r\nover-body")  # the chunk is swallowed, not relayed
            self.assertReply(c.reply(), 503)
            self.assertReply(c.cmd("RSET"), 250)
            self.assertReply(c.cmd("QUIT"), 221)
        c = self.session("smtp.acme.test", "carol@acme.test")
        self.assertReply(self.send_message(c, "car-0@acme.test"), 250)
        # Carol has one left of her own, but the tenant's 5 are spent.
        self.assertLimited(self.send_message(c, "car-over@acme.test"), "smtp.acme.test",
                           "messages per hour for this account")
        self.assertReply(c.cmd("QUIT"), 221)
        got = sorted(self.relay_senders()[len(before):])
        self.assertEqual(got, sorted(["ann-0@acme.test", "ann-1@acme.test", "bob-0@acme.test", "bob-1@acme.test",
                                      "car-0@acme.test"]))
        raw = self.relay.all_raw()
        self.assertNotIn(b"-over@acme.test", raw)
        self.assertNotIn(b"over-body", raw)
        # Logged, recorded and counted.
        h.wait_until(lambda: len(self.records(limit="per_user_messages_per_hour")) == 2, "two per-user records")
        rec = self.records(sender="car-over@acme.test")[0]
        self.assertEqual((rec["code"], rec["by"], rec["limit"], rec["user"]),
                         (451, "livery", "messages_per_hour", "carol@acme.test"))
        self.assertIn("sending limit per_user_messages_per_hour (2) of tenant acme reached, user ann@acme.test",
                      self.livery.log())
        m = tm.parse_metrics(tm.http_get(self.livery.admin_port, "/metrics")[1])
        self.assertEqual(tm.value(m, "livery_sending_limit_refusals_total", tenant="acme",
                                  limit="per_user_messages_per_hour"), 2)
        self.assertEqual(tm.value(m, "livery_sending_limit_refusals_total", tenant="acme",
                                  limit="messages_per_hour"), 1)

    def test_recipients_pipelined_and_per_ip(self):
        """default: 3 recipients per hour, 2 messages per client address. A pipelined group
        keeps its reply order; the refused recipient never reaches the relay."""
        before = self.relay.messages()
        c = self.session("smtp.livery.test", "dan@livery.test", h.SMTPClient(self.livery.starttls_port, source="127.0.0.2"))
        c.send("MAIL FROM:<rcpts@livery.test>\r\nRCPT TO:<r1@example.test>\r\nRCPT TO:<r2@example.test>\r\n"
               "RCPT TO:<r3@example.test>\r\nRCPT TO:<r4@example.test>\r\nNOOP\r\nDATA\r\n")
        codes = [c.reply() for _ in range(7)]
        self.assertEqual([r.code for r in codes], [250, 250, 250, 250, 451, 250, 354], [r.raw for r in codes])
        self.assertLimited(codes[4], "smtp.livery.test", "recipients per hour for this account")
        c.send(h.dot_stuff(h.SAMPLE_BODY) + b".\r\n")
        self.assertReply(c.reply(), 250)
        n = self.new_message(before)
        env = self.relay.msg_env(n)
        self.assertIn("r3@example.test", env)
        self.assertNotIn("r4@example.test", env)
        rec = h.wait_until(lambda: self.records(sender="rcpts@livery.test"), "the message's record")[0]
        self.assertEqual((rec["recipients"], rec["code"], rec["limit"]), (3, 250, "recipients_per_hour"))
        # The second message from 127.0.0.2 is its last; the recipients are all spent.
        self.assertReply(c.cmd("MAIL FROM:<second@livery.test>"), 250)
        self.assertLimited(c.cmd("RCPT TO:<r5@example.test>"), "smtp.livery.test",
                           "recipients per hour for this account")
        self.assertReply(c.cmd("RSET"), 250)
        self.assertLimited(c.cmd("MAIL FROM:<third@livery.test>"), "smtp.livery.test",
                           "messages per hour for this client address")
        self.assertReply(c.cmd("QUIT"), 221)
        # Another address has its own budget.
        c = self.session("smtp.livery.test", "dan@livery.test", h.SMTPClient(self.livery.starttls_port, source="127.0.0.3"))
        self.assertReply(c.cmd("MAIL FROM:<other-ip@livery.test>"), 250)
        self.assertReply(c.cmd("QUIT"), 221)
        self.assertNotIn(b"r5@example.test", self.relay.all_raw())

    def test_reload_keeps_the_counts(self):
        """The counters live in the master's memory: a reload (new workers) keeps them."""
        c = self.session("smtp.livery.test", "dan@livery.test", h.SMTPClient(self.livery.starttls_port, source="127.0.0.9"))
        for i in range(2):
            self.assertReply(c.cmd("MAIL FROM:<reload-%d@livery.test>" % i), 250)
            self.assertReply(c.cmd("RSET"), 250)
        self.assertReply(c.cmd("QUIT"), 221)
        done = len(re.findall(r"info: reloaded: generation", self.livery.log())) + 1
        self.livery.proc.send_signal(signal.SIGHUP)
        h.wait_until(lambda: len(re.findall(r"info: reloaded: generation", self.livery.log())) >= done, "the reload")
        c = self.session("smtp.livery.test", "dan@livery.test", h.SMTPClient(self.livery.starttls_port, source="127.0.0.9"))
        self.assertLimited(c.cmd("MAIL FROM:<reload-2@livery.test>"), "smtp.livery.test",
                           "messages per hour for this client address")
        self.assertReply(c.cmd("QUIT"), 221)

    def test_workers_share_one_budget(self):
        """globex: 4 messages per hour for the instance, whichever worker serves them."""
        conns = []
        pids = []
        for _ in range(40):
            n = len(re.findall(r"w(\d+)s\d+: connection from", self.livery.log()))
            conns.append(h.SMTPClient(self.livery.starttls_port))
            self._clients.append(conns[-1])
            lines = h.wait_until(lambda: re.findall(r"w(\d+)s\d+: connection from", self.livery.log())[n:],
                                 "the connection's log line")
            pids.append(lines[0])
            if len(set(pids)) == 2:
                break
        self.assertEqual(len(set(pids)), 2, "40 connections all went to one worker")
        a, b = (self.session("smtp.globex.test", "user@globex.test", conns[pids.index(p)])
                for p in (pids[0], pids[-1]))
        codes = []
        for i in range(6):
            c = (a, b)[i % 2]
            r = c.cmd("MAIL FROM:<w%d@globex.test>" % i)
            codes.append(r.code)
            c.cmd("RSET")
        self.assertEqual(codes, [250, 250, 250, 250, 451, 451])


class RedisServer(h.Process):
    label = "redis"

    def __init__(self, password=None):
        super().__init__()
        self.port = None
        self.password = password

    def start(self, port=None):
        d = h.scratch("redis")
        auth = ["--requirepass", self.password] if self.password else []
        for attempt in range(5):
            self.port = port or h.free_port()
            self._spawn(["redis-server", "--port", str(self.port), "--bind", h.HOST, "--save", "",
                         "--appendonly", "no", "--dir", d] + auth, os.path.join(d, "redis.log"))
            h.wait_until(lambda: self.proc.poll() is not None or self.ping(), "redis-server to answer")
            if self.proc.poll() is None:
                return self
            self.proc = None
            if port:
                raise RuntimeError("redis-server could not start on port %d:\n%s" % (port, self.log()))
        raise RuntimeError("redis-server could not start")

    def cli(self, *args):
        auth = ["--no-auth-warning", "-a", self.password] if self.password else []
        r = subprocess.run(["redis-cli", "-h", h.HOST, "-p", str(self.port)] + auth + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=h.TIMEOUT)
        return r.stdout.decode().strip()

    def ping(self):
        return self.cli("PING") == "PONG"

    def crash(self):
        """SIGKILL, as a crash or an OOM kill would end it."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(h.TIMEOUT)
        self.proc = None


class TwoInstancesCase(LimitsCase):
    """Two livery instances (cls.instances, with admin listeners) sharing one relay and one
    redis-server; each instance's top-level limits group comes from backends()."""

    redis_password = None
    acme_limits = None

    @classmethod
    def backends(cls, redis_port):
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        cls.certs = h.certs()
        cls.redis = RedisServer(cls.redis_password)
        cls.addClassCleanup(cls.redis.kill)
        cls.redis.start()
        cls.relay = h.Relay(options=RELAY_USERS)
        cls.addClassCleanup(cls.relay.kill)
        cls.relay.start()
        cls.instances = []
        for top in cls.backends(cls.redis.port):
            inst = tm.AdminLivery(cls.relay, top=[top], tenant_extra={"acme": [cls.acme_limits]})
            cls.addClassCleanup(inst.kill)
            inst.start()
            cls.instances.append(inst)
        cls.livery = cls.instances[0]

    @classmethod
    def tearDownClass(cls):
        for inst in cls.instances[1:]:
            rc = inst.stop()
            if rc != 0:
                raise AssertionError("livery exited with %r on SIGTERM" % (rc,))
            h.check_output(inst.log())
            for word in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
                if word in inst.log():
                    raise AssertionError("sanitizer report in livery's log (%s)" % word)
        super().tearDownClass()
        cls.redis.stop()

    def session_on(self, inst, user="ann@acme.test"):
        c = h.SMTPClient(inst.starttls_port)
        self._clients.append(c)
        return self.session("smtp.acme.test", user, c)


class RedisLimitsTest(TwoInstancesCase):
    """Two instances, one redis-server: one budget. Instance A fails open, B closed. The
    tests run in order (the outages' reports are rate-limited across them)."""

    outage_at = None

    acme_limits = SHARED_LIMIT

    @classmethod
    def backends(cls, port):
        return ['limits = { backend = "redis://%s:%d/3"; redis_failure = "%s"; redis_timeout_ms = 300; };'
                % (h.HOST, port, policy) for policy in ("open", "closed")]

    def test_1_shared_limit(self):
        """4 messages per hour for acme across both instances: exactly 4, then 451 4.7.1."""
        avoid_hour_turn()
        before = self.relay.messages()
        a, b = (self.session_on(i) for i in self.instances)
        codes = []
        for i in range(6):
            r = self.send_message((a, b)[i % 2], "shared-%d@acme.test" % i)
            codes.append(r.code)
            if r.code != 250:
                self.assertLimited(r, "smtp.acme.test", "messages per hour for this account")
        self.assertEqual(codes, [250, 250, 250, 250, 451, 451])
        self.assertEqual(len(self.relay.messages()) - len(before), 4)
        self.assertNotIn(b"shared-4@", self.relay.all_raw())
        # One counter in the configured database, holding exactly the limit (refusals cost
        # nothing), expiring with its window.
        keys = self.redis.cli("-n", "3", "KEYS", "livery:*").split()
        self.assertEqual(keys, ["livery:{acme}:t::m:%d" % (time.time() // 3600)])
        self.assertEqual(self.redis.cli("-n", "3", "GET", keys[0]), "4")
        self.assertTrue(0 < int(self.redis.cli("-n", "3", "TTL", keys[0])) <= 3660)
        for c in (a, b):
            self.assertReply(c.cmd("QUIT"), 221)

    def unanswered(self, inst, outcome):
        m = tm.parse_metrics(tm.http_get(inst.admin_port, "/metrics")[1])
        return tm.value(m, "livery_sending_limit_unanswered_total", tenant="acme", outcome=outcome)

    def test_2_redis_stalled(self):
        """Redis stopped (SIGSTOP): a check without an answer within redis_timeout_ms counts
        as Redis unreachable; once it runs again, checks are answered again."""
        avoid_hour_turn()
        self.redis.cli("-n", "3", "FLUSHDB")  # test_1 spent acme's budget
        a, b = (self.session_on(i, "gone@acme.test") for i in self.instances)
        before = (self.unanswered(self.instances[0], "accepted"), self.unanswered(self.instances[1], "refused"))
        type(self).outage_at = time.monotonic()
        self.redis.proc.send_signal(signal.SIGSTOP)
        try:
            self.assertReply(self.send_message(a, "stalled-open@acme.test"), 250)
            self.assertReply(b.cmd("MAIL FROM:<stalled-closed@acme.test>"), 451, "4.3.0")
        finally:
            self.redis.proc.send_signal(signal.SIGCONT)
        self.assertEqual((self.unanswered(self.instances[0], "accepted"), self.unanswered(self.instances[1], "refused")),
                         (before[0] + 1, before[1] + 1))
        h.wait_until(lambda: b.cmd("RSET") and b.cmd("MAIL FROM:<resumed@acme.test>").code == 250,
                     "the closed instance to accept again once Redis runs", interval=0.2)
        # The first outage of each instance: reported at once, with its cause.
        for inst in self.instances:
            self.assertIn("sending limits: no answer from Redis 127.0.0.1 port %d within 300 ms; 1 check without "
                          "an answer in this worker" % self.redis.port, inst.log())
        for c in (a, b):
            self.assertReply(c.cmd("QUIT"), 221)

    def test_3_redis_gone(self):
        """Redis killed: A (open) accepts, B (closed) answers 451 4.3.0; each logs it at most
        every 10 s and counts it; once Redis is back, checks count again."""
        avoid_hour_turn()
        a, b = (self.session_on(i, "gone@acme.test") for i in self.instances)
        before = (self.unanswered(self.instances[0], "accepted"), self.unanswered(self.instances[1], "refused"))
        self.redis.crash()
        for i in range(3):
            self.assertReply(self.send_message(a, "open-%d@acme.test" % i), 250)
            r = b.cmd("MAIL FROM:<closed-%d@acme.test>" % i)
            self.assertReply(r, 451, "4.3.0 smtp.acme.test Sending limits cannot be checked now")
            self.assertClean(r.raw)
        elapsed = time.monotonic() - self.outage_at
        for inst, policy in zip(self.instances, ("accepted (redis_failure = open)",
                                                 "refused with 451 4.3.0 (redis_failure = closed)")):
            # Both outages so far, reported at most every 10 s.
            lines = [l for l in inst.log().splitlines() if "sending limits: " in l and policy in l]
            self.assertGreaterEqual(len(lines), 1, inst.log())
            self.assertLessEqual(len(lines), 1 + int(elapsed // 10), lines)
        self.assertEqual((self.unanswered(self.instances[0], "accepted"), self.unanswered(self.instances[1], "refused")),
                         (before[0] + 3, before[1] + 3))
        recs = [(r["sender"], r["code"], r["by"]) for r in h.records(self.instances[1].log())
                if r.get("limit") == "backend_unavailable" and r["sender"].startswith("closed-")]
        self.assertEqual(recs, [("closed-%d@acme.test" % i, 451, "livery") for i in range(3)])
        # Redis back (empty, on the same port): B reconnects and counts again.
        self.redis.start(self.redis.port)
        h.wait_until(lambda: b.cmd("RSET") and b.cmd("MAIL FROM:<back@acme.test>").code == 250,
                     "the closed instance to accept again once Redis is back", interval=0.2)
        self.assertEqual(self.redis.cli("-n", "3", "GET", "livery:{acme}:t::m:%d" % (time.time() // 3600)), "1")
        for c in (a, b):
            self.assertReply(c.cmd("QUIT"), 221)


class RedisAuthTest(TwoInstancesCase):
    """A Redis that wants a password: the right one (and a database number) counts there; a
    wrong one is Redis refusing, reported without the password."""

    redis_password = "s3cret-redis"
    acme_limits = "limits = { messages_per_hour = 1; };"

    @classmethod
    def backends(cls, port):
        return ['limits = { backend = "redis://:%s@%s:%d/2"; redis_failure = "closed"; };' % (pw, h.HOST, port)
                for pw in ("s3cret-redis", "wrong-pass")]

    def test_password_and_database(self):
        avoid_hour_turn()
        good, bad = (self.session_on(i) for i in self.instances)
        self.assertReply(good.cmd("MAIL FROM:<one@acme.test>"), 250)
        good.cmd("RSET")
        self.assertLimited(good.cmd("MAIL FROM:<two@acme.test>"), "smtp.acme.test", "messages per hour")
        self.assertEqual(self.redis.cli("-n", "2", "GET", "livery:{acme}:t::m:%d" % (time.time() // 3600)), "1")
        self.assertReply(bad.cmd("MAIL FROM:<three@acme.test>"), 451, "4.3.0")
        h.wait_until(lambda: "sending limits: Redis refused AUTH" in self.instances[1].log(), "the refusal's report")
        for inst in self.instances:
            self.assertNotIn("wrong-pass", inst.log())
            self.assertNotIn("s3cret-redis", inst.log())
        for c in (good, bad):
            self.assertReply(c.cmd("QUIT"), 221)


if __name__ == "__main__":
    h.main()
