#!/usr/bin/env python3
"""Relay legs held for clients that never authenticate are bounded, per client address and in
all (limits.max_unauthenticated_relay_legs[_per_ip]). Past a bound, a session's relay leg waits
for its AUTH, its EHLO is answered from livery's own capabilities, and that AUTH gets
454 4.7.0 while the bound holds; an authenticated session's leg stops counting. Clients come
from two loopback addresses (127.0.0.1 and 127.0.0.2) to tell the two bounds apart."""

import socket

import harness as h

PER_IP, TOTAL = 2, 3


class AddressedClient(h.SMTPClient):
    """An SMTP client whose connection comes from a chosen loopback address."""

    def __init__(self, port, source):
        self.sock = socket.create_connection((h.HOST, port), timeout=h.TIMEOUT, source_address=(source, 0))
        self.buf = b""
        self.received = b""


class UnauthenticatedLegsTest(h.ProxyTestCase):
    livery_config = {"top_extra": ["limits = {",
                                   "  max_unauthenticated_relay_legs = %d;" % TOTAL,
                                   "  max_unauthenticated_relay_legs_per_ip = %d;" % PER_IP,
                                   "};"]}

    def idle(self, source):
        """A client through STARTTLS and EHLO that never authenticates."""
        c = AddressedClient(self.livery.starttls_port, source)
        self._clients.append(c)
        self.assertReply(c.reply(), 220)
        self.assertReply(c.cmd("EHLO client.example.test"), 250)
        self.assertReply(c.cmd("STARTTLS"), 220)
        c.wrap("smtp.acme.test")
        c.ehlo = c.cmd("EHLO client.example.test")
        self.assertReply(c.ehlo, 250)
        self.assertIn("AUTH PLAIN LOGIN", c.ehlo.lines)
        return c

    def auth(self, c):
        return c.cmd("AUTH PLAIN " + h.plain_auth())

    def test_bounds(self):
        conns0 = len(self.relay.connections())
        local = [self.idle("127.0.0.1") for _ in range(PER_IP + 2)]
        # Each session's EHLO waited for its relay leg when it had one: only PER_IP did.
        self.assertEqual(len(self.relay.connections()) - conns0, PER_IP)
        other = [self.idle("127.0.0.2") for _ in range(2)]
        self.assertEqual(len(self.relay.connections()) - conns0, TOTAL, "the total bound")
        # A session without a leg cannot get one while the bound holds: its AUTH is refused
        # for now, and no relay connection is made for it.
        r = self.auth(other[1])
        self.assertEqual(r.raw, "454 4.7.0 Temporary authentication failure, try again later\r\n")
        self.assertEqual(len(self.relay.connections()) - conns0, TOTAL)
        # A session that had a leg authenticates; its leg no longer counts, so the next
        # AUTH of a deferred session opens one.
        self.assertReply(self.auth(local[0]), 235)
        self.assertReply(self.auth(other[1]), 235)
        self.assertEqual(len(self.relay.connections()) - conns0, TOTAL + 1)
        # An idle session that goes away frees its place: the deferred 127.0.0.1 session
        # gets a leg at its AUTH once livery has seen the close.
        local[1].cmd("QUIT")
        local[1].close()
        replies = []

        def retried():
            replies.append(self.auth(local[2]))
            return replies[-1].code == 235
        h.wait_until(retried, "AUTH to succeed once an idle session left")
        self.assertTrue(all(r.code == 454 for r in replies[:-1]), replies)
        # Mail goes through a leg opened at AUTH like through any other.
        before = self.relay.messages()
        c = local[2]
        self.assertReply(c.cmd("MAIL FROM:<ann@acme.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<bob@example.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(h.dot_stuff(h.SAMPLE_BODY) + b".\r\n")
        self.assertReply(c.reply(), 250)
        self.assertEqual(self.relay.msg_data(self.new_message(before)), h.dot_stuff(h.SAMPLE_BODY))
        for c in local + other:
            self.assertClean(c.received)
        log = self.livery.log()
        self.assertIn("relay leg deferred to AUTH", log)


if __name__ == "__main__":
    h.main()
