#!/usr/bin/env python3
"""Python smtplib through livery (SMTP + starttls + login + sendmail, SMTP_SSL with
server_hostname), and raw-socket BDAT (RFC 3030 CHUNKING) over implicit TLS, comparing what
the relay recorded byte for byte."""

import smtplib
import socket

import harness as h

FROM = "ann@acme.test"
TO = "bob@example.test"


class _Loopback:
    """Connects to 127.0.0.1 whatever host name smtplib was given; the name stays the TLS
    server_hostname (SNI and certificate check)."""

    def _get_socket(self, host, port, timeout):
        sock = socket.create_connection((h.HOST, port), timeout)
        if isinstance(self, smtplib.SMTP_SSL):
            return self.context.wrap_socket(sock, server_hostname=self._host)
        return sock


class SMTP(_Loopback, smtplib.SMTP):
    pass


class SMTP_SSL(_Loopback, smtplib.SMTP_SSL):
    pass


class SmtplibTest(h.ProxyTestCase):

    def transcript(self, s):
        """Collects what the server sent over an smtplib connection."""
        seen = []
        orig = s.getreply

        def getreply():
            code, msg = orig()
            seen.append("%d %s" % (code, msg.decode("utf-8", "replace")))
            return code, msg
        s.getreply = getreply
        return seen

    def check_message(self, before, body, mail_line, rcpts=(TO,), user=h.USER):
        n = self.new_message(before)
        self.assertEqual(self.relay.msg_data(n), h.dot_stuff(body))
        self.assertEqual(self.relay.msg_env(n),
                         "AUTH %s\nMAIL %s\n" % (user, mail_line) + "".join("RCPT TO:<%s>\n" % r for r in rcpts))

    def test_starttls_login_sendmail(self):
        before = self.relay.messages()
        name = "smtp.acme.test"
        s = SMTP(name, self.livery.starttls_port, local_hostname="client.example.test", timeout=h.TIMEOUT)
        try:
            seen = self.transcript(s)
            code, msg = s.ehlo()
            self.assertEqual(code, 250)
            self.assertEqual(msg.decode().splitlines()[0], h.LISTENER_HOSTNAME)
            self.assertTrue(s.has_extn("starttls"))
            self.assertFalse(s.has_extn("auth"), "AUTH offered before TLS")
            code, msg = s.starttls(context=h.ssl_context())
            self.assertEqual(code, 220)
            self.assertEqual(s.sock.server_hostname, name)
            code, msg = s.ehlo()
            self.assertEqual(msg.decode().splitlines()[0], name)
            self.assertFalse(s.has_extn("starttls"), "STARTTLS offered again inside TLS")
            self.assertEqual(s.esmtp_features.get("auth", "").split(), ["PLAIN", "LOGIN"])
            code, msg = s.login(h.USER, h.PASSWORD)
            self.assertEqual(code, 235)
            refused = s.sendmail(FROM, [TO], h.SAMPLE_BODY, mail_options=["BODY=8BITMIME"])
            self.assertEqual(refused, {})
            code, msg = s.quit()
            self.assertEqual(code, 221)
        finally:
            s.close()
        self.assertClean("\n".join(seen))
        self.assertTrue(any(l.startswith("250 2.0.0 Ok: queued as ") and l.endswith(" by " + name) for l in seen), seen)
        # smtplib adds size= (SIZE is advertised) and writes the verb in lower case: the line
        # reaches the relay exactly as the client sent it.
        self.check_message(before, h.SAMPLE_BODY,
                           "FROM:<%s> size=%d BODY=8BITMIME" % (FROM, len(h.SAMPLE_BODY)))
        self.assertIn(b"mail FROM:<%s> size=%d BODY=8BITMIME\r\n" % (FROM.encode(), len(h.SAMPLE_BODY)),
                      self.relay.all_raw())

    def test_smtp_ssl_auth_login_two_messages(self):
        before = self.relay.messages()
        name = "mx.globex.test"
        ctx = h.ssl_context()
        s = SMTP_SSL(name, self.livery.implicit_port, context=ctx, timeout=h.TIMEOUT)
        try:
            seen = self.transcript(s)
            s.ehlo("client.example.test")
            self.assertEqual(s.ehlo_resp.decode().splitlines()[0], name)
            self.assertEqual(s.sock.server_hostname, name)
            self.assertIn("globex.test", str(s.sock.getpeercert()["subjectAltName"]))
            s.user, s.password = h.USER, h.PASSWORD
            code, msg = s.auth("LOGIN", s.auth_login)
            self.assertEqual(code, 235)
            bodies = [h.SAMPLE_BODY, b"Subject: second\r\n\r\n.\r\n..\r\nend\r\n"]
            for body in bodies:
                self.assertEqual(s.sendmail(FROM, [TO, "carol@example.test"], body), {})
            s.quit()
        finally:
            s.close()
        self.assertClean("\n".join(seen))
        after = self.relay.messages()
        new = [n for n in after if n not in before]
        self.assertEqual(len(new), 2, new)
        for n, body in zip(new, bodies):
            self.assertEqual(self.relay.msg_data(n), h.dot_stuff(body))
            self.assertEqual(self.relay.msg_env(n),
                             "AUTH %s\nMAIL FROM:<%s> size=%d\nRCPT TO:<%s>\nRCPT TO:<carol@example.test>\n"
                             % (h.USER, FROM, len(body), TO))

    def test_smtputf8_address(self):
        before = self.relay.messages()
        name = "smtp.acme.test"
        s = SMTP_SSL(name, self.livery.implicit_port, context=h.ssl_context(), timeout=h.TIMEOUT)
        try:
            s.ehlo("client.example.test")
            self.assertTrue(s.has_extn("smtputf8"))
            s.login(h.USER, h.PASSWORD)
            body = "Subject: =?UTF-8?Q?gr=C3=BC=C3=9Fe?=\r\n\r\nHallo Jörg\r\n".encode()
            self.assertEqual(s.sendmail("jörg@acme.test", ["zoë@example.test"], body, mail_options=["SMTPUTF8"]), {})
            s.quit()
        finally:
            s.close()
        n = self.new_message(before)
        self.assertEqual(self.relay.msg_data(n), body)
        env = self.relay.msg_env(n)
        self.assertIn("MAIL FROM:<jörg@acme.test> size=%d SMTPUTF8\n" % len(body), env)
        self.assertIn("RCPT TO:<zoë@example.test>\n", env)

    def test_bdat_chunking(self):
        before = self.relay.messages()
        name = "smtp.acme.test"
        c = self.client(implicit=True, implicit_sni=name)
        self.assertEqual(c.reply().raw, "220 %s ESMTP\r\n" % name)
        ehlo = c.cmd("EHLO client.example.test")
        self.assertReply(ehlo, 250)
        self.assertEqual(ehlo.lines[0], name)
        self.assertIn("CHUNKING", ehlo.lines, "CHUNKING not advertised: %r" % ehlo.raw)
        self.assertIn("PIPELINING", ehlo.lines)
        self.assertReply(c.cmd("AUTH PLAIN " + h.plain_auth()), 235)
        # Chunks carry bytes that would mean something in DATA: a lone dot line, leading dots,
        # command lines and 8-bit bytes. None of it may be touched. (Bare CR/LF and NUL are
        # left out: they are refused, see test_protocol.py and test_hostile.py.)
        chunks = [
            b"Subject: bdat\r\nMIME-Version: 1.0\r\n\r\nline one\r\n.\r\n",
            b"..not stuffed\r\n8-bit \xff\xfe caf\xc3\xa9\r\n",
            b"QUIT\r\nRSET\r\n.\r\n",
        ]
        self.assertReply(c.cmd("MAIL FROM:<%s>" % FROM), 250)
        self.assertReply(c.cmd("RCPT TO:<%s>" % TO), 250)
        # The first chunk alone, then the others pipelined in one write.
        c.send(b"BDAT %d\r\n" % len(chunks[0]) + chunks[0])
        r = c.reply()
        self.assertEqual(r.raw, "250 2.0.0 %d octets received\r\n" % len(chunks[0]))
        c.send(b"BDAT %d\r\n" % len(chunks[1]) + chunks[1] + b"BDAT %d LAST\r\n" % len(chunks[2]) + chunks[2])
        r = c.reply()
        self.assertEqual(r.raw, "250 2.0.0 %d octets received\r\n" % len(chunks[1]))
        r = c.reply()
        self.assertReply(r, 250, "2.0.0 Ok: queued as ")
        self.assertTrue(r.lines[0].endswith(" by " + name), r.raw)
        n = self.new_message(before)
        self.assertEqual(self.relay.msg_data(n), b"".join(chunks))
        self.assertEqual(self.relay.msg_env(n), "AUTH %s\nMAIL FROM:<%s>\nRCPT TO:<%s>\n" % (h.USER, FROM, TO))

        # A second message in the same session, ended by an empty LAST chunk.
        before = self.relay.messages()
        c.send("MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nBDAT 5\r\nhelloBDAT 0 LAST\r\n" % (FROM, TO))
        self.assertReply(c.reply(), 250, "2.1.0")
        self.assertReply(c.reply(), 250, "2.1.5")
        self.assertEqual(c.reply().raw, "250 2.0.0 5 octets received\r\n")
        self.assertReply(c.reply(), 250, "2.0.0 Ok: queued as ")
        n = self.new_message(before)
        self.assertEqual(self.relay.msg_data(n), b"hello")
        self.assertReply(c.cmd("QUIT"), 221)
        c.read_eof()
        self.assertClean(c.received)


if __name__ == "__main__":
    h.main()
