#!/usr/bin/env python3
"""Hostile cases against the newer features, each a defect found by probing the real binary:
the PROXY header's deadline (a source that dribbles its header is cut at proxy_timeout, however
often a byte arrives), ..."""

import re
import socket
import time

import harness as h

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


if __name__ == "__main__":
    h.main()
