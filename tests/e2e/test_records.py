#!/usr/bin/env python3
"""The session and message records: one JSON object per line (or a text line with
log_format = "text") for each session end and each message, on stdout or in log_file
(reopened on SIGUSR1). What an operator asks of them: did this customer's message go out,
encrypted, verified, to which relay, with which queue id; and why did a session end."""

import os
import re
import signal

import harness as h


def find(recs, kind, **match):
    return [r for r in recs if r["record"] == kind and all(r.get(k) == v for k, v in match.items())]


class RecordsTest(h.ProxyTestCase):

    def recs(self):
        return h.records(self.livery.log())

    def wait_record(self, kind, **match):
        h.wait_until(lambda: find(self.recs(), kind, **match), "a %s record with %r" % (kind, match))
        return find(self.recs(), kind, **match)[-1]

    def test_delivered_over_verified_tls(self):
        c = self.starttls_session()
        self.assertReply(c.cmd("MAIL FROM:<ann@acme.test> SIZE=100"), 250)
        self.assertReply(c.cmd("RCPT TO:<bob@example.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<carol@example.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        wire = h.dot_stuff(h.SAMPLE_BODY) + b".\r\n"
        c.send(wire)
        verdict = c.reply()
        self.assertReply(verdict, 250)
        self.assertReply(c.cmd("QUIT"), 221)
        c.read_eof()
        sess = self.wait_record("session", user=h.USER, messages=1)
        msg = find(self.recs(), "message", session=sess["session"])[-1]
        # The relay's own reply (the client saw it scrubbed) and its queue id.
        qid = re.search(r"queued as (\w+)", msg["reply"]).group(1)
        self.assertEqual(msg["queue_id"], qid)
        self.assertIn(qid, verdict.text)
        self.assertEqual((msg["code"], msg["by"], msg["sender"], msg["recipients"], msg["size"]),
                         (250, "relay", "ann@acme.test", 2, len(wire)))
        relay = msg["relay"]
        self.assertEqual(relay["address"], "%s:%d" % (h.HOST, self.relay.port))
        self.assertTrue(relay["tls"] and relay["certificate_verified"], relay)
        self.assertIsNone(relay["failure"])
        self.assertTrue(relay["tls_version"].startswith("TLSv1."), relay)
        self.assertEqual((sess["tenant"], sess["sni"], sess["brand"], sess["end"], sess["tls"]),
                         ("acme", "smtp.acme.test", "smtp.acme.test", "quit", True))
        self.assertTrue(sess["tls_version"].startswith("TLSv1.") and sess["cipher"], sess)
        self.assertRegex(sess["client"], r"^127\.0\.0\.1:\d+$")
        self.assertEqual(sess["listener"], "%s:%d" % (h.HOST, self.livery.starttls_port))
        self.assertGreater(sess["bytes_in"], len(wire))
        self.assertGreater(sess["relay"]["bytes_out"], len(wire))
        self.assertRegex(sess["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

    def test_pipelined_bdat_counts_recipients(self):
        c = self.starttls_session(sni="mail.acme.test")
        body = h.SAMPLE_BODY
        c.send(b"MAIL FROM:<pipe@acme.test>\r\nRCPT TO:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n"
               b"RCPT TO:<c@example.test>\r\nBDAT %d LAST\r\n" % len(body) + body + b"MAIL FROM:<next@acme.test>\r\n")
        codes = [c.reply().code for _ in range(6)]
        self.assertEqual(codes, [250] * 6)
        self.assertReply(c.cmd("QUIT"), 221)
        msg = self.wait_record("message", sender="pipe@acme.test")
        self.assertEqual((msg["recipients"], msg["size"], msg["code"]), (3, len(body), 250))
        sess = self.wait_record("session", session=msg["session"])
        self.assertEqual(sess["messages"], 1)

    def test_refused_by_livery(self):
        c = self.starttls_session()
        self.assertReply(c.cmd("MAIL FROM:<bare@acme.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<bob@example.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b"Subject: x\r\n\r\nbare\nline\r\n.\r\n")
        self.assertReply(c.reply(), 554)
        msg = self.wait_record("message", sender="bare@acme.test")
        self.assertEqual((msg["code"], msg["by"], msg["queue_id"]), (554, "livery", None))

    def test_client_vanishes_mid_data(self):
        c = self.starttls_session()
        self.assertReply(c.cmd("MAIL FROM:<gone@acme.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<bob@example.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b"Subject: cut\r\n\r\n" + b"x" * 70 + b"\r\n" * 80)
        c.close()
        msg = self.wait_record("message", sender="gone@acme.test")
        self.assertIsNone(msg["code"], msg)
        sess = self.wait_record("session", session=msg["session"])
        self.assertEqual((sess["end"], sess["messages"]), ("client_reset", 0))


class RelayCutRecordsTest(h.ProxyTestCase):
    """The relay resets its connection in the middle of the content."""
    relay_options = ("--cut", "content:200/reset")

    def test_relay_lost(self):
        c = self.starttls_session()
        self.assertReply(c.cmd("MAIL FROM:<lost@acme.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<bob@example.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b"Subject: lost\r\n\r\n" + (b"y" * 70 + b"\r\n") * 300 + b".\r\n")
        self.assertEqual(c.reply().code, 421)
        recs = []
        h.wait_until(lambda: recs.extend(find(h.records(self.livery.log()), "session", end="relay_lost")) or recs,
                     "a session record ending relay_lost")
        msg = find(h.records(self.livery.log()), "message", sender="lost@acme.test")[-1]
        self.assertIsNone(msg["code"])
        self.assertEqual(msg["relay"]["failure"], "relay_lost")


class WrongNameRecordsTest(h.ProxyTestCase):
    relay_cert = "relay-wrongname"

    def test_host_mismatch(self):
        c = self.starttls_session(auth=False)
        self.assertReply(c.cmd("AUTH PLAIN " + h.plain_auth()), 454)
        self.assertReply(c.cmd("QUIT"), 221)
        recs = []
        h.wait_until(lambda: recs.extend(find(h.records(self.livery.log()), "session", end="quit")) or recs,
                     "the session record")
        relay = recs[-1]["relay"]
        self.assertEqual(relay["failure"], "certificate-host-mismatch")
        self.assertFalse(relay["certificate_verified"])
        self.assertIsNone(recs[-1]["user"])


class TextFileRecordsTest(h.ProxyTestCase):
    """log_format = "text" into log_file; SIGUSR1 reopens it after logrotate moved it."""

    @classmethod
    def setUpClass(cls):
        cls.dir = h.scratch("records")
        # The workers reopen log_file after giving up root: its directory must be searchable
        # by their user (nobody), as /var/log/livery would be by the livery user.
        os.chmod(h.workdir(), 0o711)
        os.chmod(cls.dir, 0o711)
        cls.path = os.path.join(cls.dir, "records.log")
        cls.livery_config = {"top_extra": ['log_format = "text";', 'log_file = "%s";' % cls.path]}
        super().setUpClass()

    def test_text_and_reopen(self):
        self.deliver("first@acme.test")
        h.wait_until(lambda: "end=quit" in h.read_text(self.path), "the first session's record")
        os.rename(self.path, self.path + ".1")
        self.livery.proc.send_signal(signal.SIGUSR1)
        h.wait_until(lambda: os.path.exists(self.path), "log_file to be reopened")
        self.deliver("second@acme.test")
        h.wait_until(lambda: "end=quit" in h.read_text(self.path), "the second session's record")
        old, new = h.read_text(self.path + ".1"), h.read_text(self.path)
        self.assertIn("sender=first@acme.test", old)
        self.assertIn("sender=second@acme.test", new)
        self.assertNotIn("first@acme.test", new)
        for line in (old + new).splitlines():
            self.assertRegex(line, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (session|message) ")
        self.assertRegex(new, r"message w\d+s\d+ sender=second@acme.test recipients=1 size=\d+ code=250 by=relay "
                              r"queue_id=\w+")
        self.assertNotIn('"record"', self.livery.log())  # records went to the file only


class NoRecordsTest(h.ProxyTestCase):
    """log_format = "none": sessions and messages go through, and no record is written."""
    livery_config = {"top_extra": ['log_format = "none";']}

    def test_no_records(self):
        self.deliver("quiet@acme.test")
        h.wait_until(lambda: "session from 127.0.0.1 ended" in self.livery.log(), "the session's end")
        self.assertEqual(h.records(self.livery.log()), [])
        self.assertNotIn("quiet@acme.test", self.livery.log())


if __name__ == "__main__":
    h.main()
