#!/usr/bin/env python3
"""The warm relay pool of local-mode tenants (issue 12): authenticated relay connections are
reused by later sessions with RSET between them, bounded by pool.max_messages, dropped when
the relay closes them while idle, never reused after a session that ended mid-message, and
never shared by two sessions at once (all asserted from the relay's own record)."""

import math
import re
import signal

import harness as h
import test_local_auth as la
import test_metrics as tm

MAX_MESSAGES = 50


def pool_config(extra=(), workers=1):
    """Configuration for a livery whose acme and globex tenants are local (one worker, so one
    pool sees every session)."""
    d = h.scratch("pool")
    acme, globex, pw = la.local_files(d)
    return {"top_extra": ["workers = %d;" % workers, "pool = {"] + ["  " + x for x in extra] + ["};"],
            "tenant_extra": {"acme": la.local_tenant(acme, pw), "globex": la.local_tenant(globex, pw)}}


class PoolBase(la.LocalAuthBase):
    pool_extra = ("max_messages = %d;" % MAX_MESSAGES,)

    @classmethod
    def setUpClass(cls):
        cls.livery_config = pool_config(cls.pool_extra)
        h.ProxyTestCase.setUpClass.__func__(cls)

    def open_session(self, sender_user=la.ANN, password=la.ANN_PW, sni="smtp.acme.test"):
        c = self.starttls_session(sni, auth=False)
        self.assertReply(c.cmd("AUTH PLAIN " + h.plain_auth(sender_user, password)), 235)
        return c

    def quit(self, c):
        self.assertReply(c.cmd("QUIT"), 221)
        c.read_eof()

    def conn_of(self, sender):
        """The relay connections whose record holds sender's MAIL."""
        needle = b"MAIL FROM:<%s>" % sender.encode()
        return [n for n in self.relay.connections() if needle in self.relay.conn_raw(n)]

    def assert_one_transaction_at_a_time(self, conns):
        """On each connection, every MAIL after the first follows the previous transaction's
        end of data (or its cut) and an RSET: no two sessions' transactions interleave."""
        for n in conns:
            raw = self.relay.conn_raw(n)
            starts = [m.start() for m in re.finditer(rb"(?m)^MAIL FROM:", raw)]
            for a, b in zip(starts, starts[1:]):
                between = raw[a:b]
                self.assertIn(b"\r\n.\r\n", between, "conn %d: two MAILs without an end of data between" % n)
                self.assertRegex(between, rb"\r\n\.\r\n(.*\r\n)*RSET\r\n", "conn %d: no RSET between sessions" % n)


class PoolTest(PoolBase):
    def test_sequential_sessions_reuse_few_connections(self):
        total = 200
        conns0 = set(self.relay.connections())
        msgs0 = set(self.relay.messages())
        for i in range(total):
            c = self.open_session()
            self.send_one(c, "seq%d@acme.test" % i)
            self.quit(c)
            c.close()
        new = sorted(set(self.relay.connections()) - conns0)
        self.assertLessEqual(len(new), math.ceil(total / MAX_MESSAGES), "relay connections opened: %r" % new)
        msgs = sorted(set(self.relay.messages()) - msgs0)
        self.assertEqual(len(msgs), total)
        senders = set()
        for n in msgs:
            self.assertEqual(self.relay.msg_data(n), h.dot_stuff(h.SAMPLE_BODY), "message %d" % n)
            m = re.search(r"MAIL FROM:<(seq\d+@acme.test)>", self.relay.msg_env(n))
            senders.add(m.group(1))
        self.assertEqual(senders, {"seq%d@acme.test" % i for i in range(total)})
        self.assert_one_transaction_at_a_time(self.relay.connections())
        h.wait_until(lambda: [r for r in h.records(self.livery.log()) if r["record"] == "session" and
                              r.get("relay") and r["relay"]["pooled"]], "a session record that says pooled")

    def test_records_count_each_sessions_own_relay_bytes(self):
        """A pooled session's record (and the relay byte metrics) count the bytes of that
        session on the connection, not the connection's since it was opened."""
        sent = {}
        for i in range(3):
            sender = "bytes%d@acme.test" % i
            c = self.open_session()
            self.send_one(c, sender)
            self.quit(c)
            sent[sender] = len(b"MAIL FROM:<%s>\r\nRCPT TO:<rcpt@example.test>\r\nDATA\r\n" % sender.encode()
                               + h.dot_stuff(h.SAMPLE_BODY) + b".\r\n")
        pooled = 0
        for sender, want in sent.items():
            recs = h.wait_until(lambda: self.session_of(sender), "the records of %s" % sender)
            if recs["relay"]["pooled"]:
                pooled += 1
                self.assertEqual(recs["relay"]["bytes_out"], want, recs)
                self.assertGreater(recs["relay"]["bytes_in"], 0, recs)
        self.assertGreaterEqual(pooled, 2)

    def session_of(self, sender):
        recs = h.records(self.livery.log())
        msg = [r for r in recs if r["record"] == "message" and r.get("sender") == sender]
        ses = [r for r in recs if msg and r["record"] == "session" and r["session"] == msg[0]["session"]]
        return ses[0] if ses else None

    def test_quit_pipelined_after_the_data_waits_for_the_verdict(self):
        c = self.open_session()
        c.send("MAIL FROM:<piped@acme.test>\r\nRCPT TO:<rcpt@example.test>\r\nDATA\r\n")
        self.assertReply(c.reply(), 250)
        self.assertReply(c.reply(), 250)
        self.assertReply(c.reply(), 354)
        c.send(h.dot_stuff(h.SAMPLE_BODY) + b".\r\nQUIT\r\n")
        self.assertReply(c.reply(), 250)
        self.assertReply(c.reply(), 221)
        c.read_eof()
        (n,) = self.conn_of("piped@acme.test")
        h.wait_until(lambda: self.relay.conn_raw(n).endswith(b"RSET\r\n"), "the RSET after the session")
        c = self.open_session()
        self.send_one(c, "after-piped@acme.test")
        self.quit(c)

    def test_client_vanishing_mid_data_retires_its_connection(self):
        c = self.open_session()
        self.assertReply(c.cmd("MAIL FROM:<vanish@acme.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<rcpt@example.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b"Subject: cut short\r\n\r\nhalf a message\r\n")
        c.close()
        (n,) = h.wait_until(lambda: self.conn_of("vanish@acme.test"), "the relay to see the MAIL")
        self.relay.wait_closed(n)
        # The next session gets another connection, and the cut message was never completed.
        c = self.open_session()
        self.send_one(c, "after-vanish@acme.test")
        self.quit(c)
        self.assertNotEqual(self.conn_of("after-vanish@acme.test"), [n])
        envs = [self.relay.msg_env(m) for m in self.relay.messages()]
        self.assertFalse([e for e in envs if "vanish@acme.test>" in e and "after-vanish" not in e])

    def test_concurrent_sessions_never_share_a_connection(self):
        for rnd in range(2):
            clients = [self.open_session() for _ in range(5)]
            senders = ["r%dc%d@acme.test" % (rnd, i) for i in range(len(clients))]
            for c, s in zip(clients, senders):  # every transaction open at once
                self.assertReply(c.cmd("MAIL FROM:<%s>" % s), 250)
            for c in clients:
                self.assertReply(c.cmd("RCPT TO:<rcpt@example.test>"), 250)
            for c in clients:
                self.assertReply(c.cmd("DATA"), 354)
                c.send(h.dot_stuff(h.SAMPLE_BODY) + b".\r\n")
                self.assertReply(c.reply(), 250)
            for c in clients:
                self.quit(c)
            used = [self.conn_of(s) for s in senders]
            self.assertTrue(all(len(u) == 1 for u in used), used)
            self.assertEqual(len({u[0] for u in used}), len(senders), "two open sessions on one connection: %r" % used)
            self.assert_one_transaction_at_a_time(self.relay.connections())


class IdleCloseTest(PoolBase):
    """A relay that closes idle connections (here after 1 s, below pool.idle_timeout)."""
    relay_options = la.LocalAuthBase.relay_options + ("--idle-close", "1")

    def test_next_session_succeeds_after_the_relay_closed_the_idle_one(self):
        for i in range(3):
            c = self.open_session()
            self.send_one(c, "idle%d@acme.test" % i)
            self.quit(c)
            (n,) = self.conn_of("idle%d@acme.test" % i)
            h.wait_until(lambda: ("conn %d idle-close" % n) in self.relay.events(), "the relay to close conn %d" % n)
            self.relay.wait_closed(n)
        h.wait_until(lambda: "dropped while idle" in self.livery.log(), "livery to notice")

    def test_slow_client_after_the_relay_closed_its_connection(self):
        """The relay closes the session's own connection while the client thinks between AUTH
        and MAIL: another opens at MAIL, unseen by the client."""
        for i in range(2):
            dropped = self.livery.log().count("failed before use")
            c = self.open_session()
            h.wait_until(lambda: self.livery.log().count("failed before use") > dropped,
                         "the relay to close the session's connection")
            self.send_one(c, "slow%d@acme.test" % i)
            self.quit(c)
            (n,) = self.conn_of("slow%d@acme.test" % i)
            self.assertEqual(self.relay.msg_data(self.relay.messages()[-1]), h.dot_stuff(h.SAMPLE_BODY))


class PrewarmTest(PoolBase):
    pool_extra = ("min_idle = 2;", "max_idle = 2;")

    def test_connections_are_warm_before_the_first_client(self):
        h.wait_until(lambda: len([e for e in self.relay.events() if " auth ok " in e]) >= 2, "two pre-warmed connections")
        conns = set(self.relay.connections())
        c = self.open_session()
        self.send_one(c, "warm@acme.test")
        self.quit(c)
        self.assertIn(self.conn_of("warm@acme.test")[0], conns)
        recs = h.wait_until(lambda: [r for r in h.records(self.livery.log())
                                     if r["record"] == "session" and r.get("user") == la.ANN], "the session record")
        self.assertTrue(recs[-1]["relay"]["pooled"], recs[-1])

    def test_reload_starts_an_empty_pool_and_the_old_one_closes(self):
        h.wait_until(lambda: len([e for e in self.relay.events() if " auth ok " in e]) >= 2, "two pre-warmed connections")
        old = set(self.relay.connections())
        self.livery.proc.send_signal(signal.SIGHUP)
        for n in old:
            self.relay.wait_closed(n)  # the old generation's pool closes when its worker drains
        h.wait_until(lambda: len(set(self.relay.connections()) - old) >= 2, "the new generation's pre-warmed pool")
        c = self.open_session()
        self.send_one(c, "reloaded@acme.test")
        self.quit(c)
        self.assertNotIn(self.conn_of("reloaded@acme.test")[0], old)


class PoolMetricsTest(PoolBase):
    livery_class = tm.AdminLivery

    @classmethod
    def setUpClass(cls):
        cfg = pool_config(cls.pool_extra)
        cls.livery_config = {"top": cfg["top_extra"], "tenant_extra": cfg["tenant_extra"]}
        h.ProxyTestCase.setUpClass.__func__(cls)

    def test_local_auth_and_pool_counters(self):
        for pw in (la.ANN_PW, la.ANN_PW, "wrong", la.ANN_PW):
            c = self.starttls_session("smtp.acme.test", auth=False)
            self.assertReply(c.cmd("AUTH PLAIN " + h.plain_auth(la.ANN, pw)), 235 if pw == la.ANN_PW else 535)
            self.quit(c)
        status, body = tm.http_get(self.livery.admin_port, "/metrics")
        m = tm.parse_metrics(body)
        v = lambda name, **labels: tm.value(m, name, **labels)
        self.assertEqual(v("livery_local_auth_total", tenant="acme", result="ok"), 1, body)
        self.assertEqual(v("livery_local_auth_total", tenant="acme", result="cached"), 2)
        self.assertEqual(v("livery_local_auth_total", tenant="acme", result="failed"), 1)
        self.assertEqual(v("livery_auth_total", tenant="acme", result="ok"), 3)
        hits = v("livery_relay_pool_checkouts_total", region="relay", result="hit")
        misses = v("livery_relay_pool_checkouts_total", region="relay", result="miss")
        self.assertEqual(hits + misses, 4)
        self.assertGreaterEqual(misses, 1)
        self.assertEqual(v("livery_relay_pool_opened_total", region="relay"), misses)
        self.assertIn('livery_relay_pool_retired_total{region="relay",reason="max_messages"} 0', body)


if __name__ == "__main__":
    h.main()
