#!/usr/bin/env python3
"""Relay legs held for clients that never authenticate are bounded, per client address and in
all (limits.max_unauthenticated_relay_legs[_per_ip]). Below the bounds the leg opens right
after the client's TLS handshake; past them it waits for the client's AUTH (its EHLO is
answered from livery's own capabilities), so idle TLS clients hold no more legs than the
bounds, while clients that do authenticate are never refused for it. A leg stops counting
once its session authenticates; one whose AUTH failed is not kept while the bounds are full.
Clients come from two loopback addresses (127.0.0.1 and 127.0.0.2) to tell the bounds apart."""

import harness as h

PER_IP, TOTAL = 2, 3


class UnauthenticatedLegsTest(h.ProxyTestCase):
    livery_config = {"top_extra": ["limits = {",
                                   "  max_unauthenticated_relay_legs = %d;" % TOTAL,
                                   "  max_unauthenticated_relay_legs_per_ip = %d;" % PER_IP,
                                   "};"]}

    def idle(self, source):
        """A client through STARTTLS and EHLO that does not authenticate (yet)."""
        c = h.SMTPClient(self.livery.starttls_port, source=source)
        self._clients.append(c)
        self.assertReply(c.reply(), 220)
        self.assertReply(c.cmd("EHLO client.example.test"), 250)
        self.assertReply(c.cmd("STARTTLS"), 220)
        c.wrap("smtp.acme.test")
        c.ehlo = c.cmd("EHLO client.example.test")
        self.assertReply(c.ehlo, 250)
        self.assertIn("AUTH PLAIN LOGIN", c.ehlo.lines)
        return c

    def auth(self, c, password=h.PASSWORD):
        return c.cmd("AUTH PLAIN " + h.plain_auth(password=password))

    def conns(self):
        return len(self.relay.connections()) - self.conns0

    def test_bounds(self):
        self.conns0 = len(self.relay.connections())
        local = [self.idle("127.0.0.1") for _ in range(PER_IP + 2)]
        # Each session's EHLO waited for its relay leg when it had one: only PER_IP did.
        self.assertEqual(self.conns(), PER_IP)
        other = [self.idle("127.0.0.2") for _ in range(2)]
        self.assertEqual(self.conns(), TOTAL, "the total bound")
        # A deferred session that authenticates gets its leg then, and is not refused.
        self.assertReply(self.auth(other[1]), 235)
        self.assertEqual(self.conns(), TOTAL + 1)
        # A failed AUTH while the bounds are full does not keep its leg...
        self.assertReply(self.auth(local[2], password="wrong"), 535)
        self.assertEqual(self.conns(), TOTAL + 2)
        self.relay.wait_closed(self.conns0 + TOTAL + 2)
        # ...and the next AUTH opens another.
        self.assertReply(self.auth(local[2]), 235)
        self.assertEqual(self.conns(), TOTAL + 3)
        # Mail goes through a leg opened at AUTH like through any other.
        before = self.relay.messages()
        c = local[2]
        self.assertReply(c.cmd("MAIL FROM:<ann@acme.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<bob@example.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(h.dot_stuff(h.SAMPLE_BODY) + b".\r\n")
        self.assertReply(c.reply(), 250)
        self.assertEqual(self.relay.msg_data(self.new_message(before)), h.dot_stuff(h.SAMPLE_BODY))
        # Authenticated legs do not count: a new idle client from 127.0.0.1 gets a leg again
        # once an idle one left (local[0] and local[1] hold the two places).
        local[0].cmd("QUIT")
        local[0].close()
        h.wait_until(lambda: ("conn %d close" % (self.conns0 + 1)) in self.relay.events(), "the first leg to close")
        n = self.conns()
        self.idle("127.0.0.1")
        self.assertEqual(self.conns(), n + 1)
        for c in local + other:
            self.assertClean(c.received)
        self.assertIn("relay leg deferred to AUTH", self.livery.log())


if __name__ == "__main__":
    h.main()
