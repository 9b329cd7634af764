#!/usr/bin/env python3
"""Hostile cases against the newer features, each a defect found by probing the real binary:
the PROXY header's deadline (a source that dribbles its header is cut at proxy_timeout, however
often a byte arrives); local AUTH answers a response that is base64 but holds no usable
credentials with 535 5.7.8 and keeps 501 5.5.2 for one that is not base64 (RFC 4954 4); ..."""

import re
import socket
import time

import base64

import harness as h
import test_local_auth as la

V1_HEADER = b"PROXY TCP4 198.51.100.7 127.0.0.1 51000 587\r\n"


class ProxyDeadlineTest(h.ProxyTestCase):
    """proxy_timeout bounds the whole PROXY header, not the silence between its bytes."""

    livery_config = {"listener_extra": ["proxy_protocol = true;", 'proxy_trusted = [ "127.0.0.1/32" ];',
                                        "proxy_timeout = 1;"]}

    def test_header_one_byte_at_a_time_is_cut_at_the_deadline(self):
        s = socket.create_connection((h.HOST, self.livery.starttls_port), timeout=h.TIMEOUT)
        try:
            # Six bytes half a second apart: no gap reaches proxy_timeout, the whole does.
            for b in V1_HEADER[:6]:
                try:
                    s.send(bytes([b]))
                except OSError:
                    break
                time.sleep(0.5)
            try:
                s.sendall(V1_HEADER[6:] + b"EHLO client.example.test\r\n")
                got = s.recv(1000)
            except OSError:
                got = b""
            self.assertEqual(got, b"", "a header that took longer than proxy_timeout was accepted")
        finally:
            s.close()
        h.wait_until(lambda: "no PROXY header within proxy_timeout" in self.livery.log(), "the deadline's log line")
        # A header that arrives in time, even in pieces, is served.
        s = socket.create_connection((h.HOST, self.livery.starttls_port), timeout=h.TIMEOUT)
        try:
            s.sendall(V1_HEADER[:10])
            s.sendall(V1_HEADER[10:])
            self.assertTrue(s.recv(1000).startswith(b"220 "))
        finally:
            s.close()



def b64(raw):
    return base64.b64encode(raw).decode()


class LocalAuthRepliesTest(la.LocalAuthBase):
    """RFC 4954 4: 501 is for a response the server cannot base64-decode (or a cancel); a
    response that decodes but names no valid credentials is an authentication failure, 535."""

    def auth(self, *lines):
        c = self.starttls_session("smtp.acme.test", auth=False)
        r = None
        for line in lines:
            r = c.cmd(line)
        c.cmd("QUIT")
        return r

    def test_decodable_but_invalid_is_535(self):
        for lines in (("AUTH PLAIN " + b64(b"\0\0" + la.ANN_PW.encode()),),       # empty user
                      ("AUTH PLAIN =",),                                        # a zero-length response
                      ("AUTH PLAIN", b64(b"\0" + la.ANN.encode() + b"\0")),     # empty password
                      ("AUTH PLAIN", b64(b"bob@acme.test\0" + la.ANN.encode() + b"\0" + la.ANN_PW.encode())),
                      ("AUTH PLAIN " + b64(b"\0" + la.ANN.encode() + b"\0" + la.ANN_PW.encode() + b"\0x"),),
                      ("AUTH PLAIN " + "QUFB" * 3000,),                         # decodes past any field
                      ("AUTH LOGIN", ""),                                       # empty user
                      ("AUTH LOGIN", b64(b"ann\0x")),                            # a NUL in the user
                      ("AUTH LOGIN " + b64(la.ANN.encode()), "=")):             # empty password
            self.assertReply(self.auth(*lines), 535, "5.7.8")

    def test_not_base64_is_501(self):
        for lines in (("AUTH PLAIN !!!!",), ("AUTH PLAIN", "AGFu bkBh"), ("AUTH LOGIN", "YW5"),
                      ("AUTH LOGIN " + b64(la.ANN.encode()), "cGFz\x00==")):
            self.assertReply(self.auth(*lines), 501, "5.5.2")
        self.assertReply(self.auth("AUTH LOGIN", "*"), 501, "5.7.0")
        self.assertReply(self.auth("AUTH PLAIN " + h.plain_auth(la.ANN, la.ANN_PW)), 235)


class PassthroughIdleLegTest(h.ProxyTestCase):
    """A passthrough leg opened ahead of AUTH that the relay closes for idleness (after 1 s)
    before the client's AUTH: AUTH opens another, unseen by the client. A leg that carried the
    client's AUTH is never reopened (the credential was spent on it): its close is a 421."""

    relay_options = ("--idle-close", "1")

    def test_auth_after_the_relay_closed_the_leg_opened_ahead(self):
        dropped = self.livery.log().count("failed before use")
        c = self.starttls_session(auth=False)
        h.wait_until(lambda: self.livery.log().count("failed before use") > dropped, "the idle close")
        self.assertReply(c.cmd("AUTH PLAIN " + h.plain_auth()), 235)
        before = set(self.relay.messages())
        self.assertReply(c.cmd("MAIL FROM:<slow@acme.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<rcpt@example.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(h.dot_stuff(h.SAMPLE_BODY) + b".\r\n")
        self.assertReply(c.reply(), 250)
        (m,) = set(self.relay.messages()) - before
        self.assertEqual(self.relay.msg_data(m), h.dot_stuff(h.SAMPLE_BODY))
        self.assertReply(c.cmd("QUIT"), 221)

    def test_close_after_auth_is_reported(self):
        lost = self.livery.log().count("relay leg for tenant")
        c = self.starttls_session(auth=False)
        self.assertReply(c.cmd("AUTH PLAIN " + h.plain_auth()), 235)
        h.wait_until(lambda: self.livery.log().count("relay leg for tenant") > lost, "the relay's idle close")
        self.assertReply(c.cmd("MAIL FROM:<late@acme.test>"), 421)
        c.read_eof()


if __name__ == "__main__":
    h.main()
