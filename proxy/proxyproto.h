/* proxyproto: the PROXY protocol header (v1 text, v2 binary) a load balancer sends ahead of a connection's
 * own bytes: a pure, incremental parser (no I/O) that yields the real client's address. */
#ifndef LIVERY_PROXYPROTO_H
#define LIVERY_PROXYPROTO_H

#include <stddef.h>
#include <stdint.h>

/* A v1 header is one line of at most 107 octets, CRLF included. */
#define PROXYPROTO_V1_MAX 107
/* A v2 header: the 16-octet fixed part, then its addresses and TLVs. The protocol allows
 * 65535 octets after the fixed part; balancers send a few dozen (AWS and GCP add a TLV of an
 * endpoint ID), so anything larger is refused rather than buffered. */
#define PROXYPROTO_V2_MAX (16 + 2048)
/* Long enough for any IPv6 address as text. */
#define PROXYPROTO_ADDR_LEN 46

enum proxyproto_status {
	PROXYPROTO_NEED_MORE, /* a valid beginning: call again with more bytes */
	PROXYPROTO_DONE,
	PROXYPROTO_INVALID,
};

/* What a whole header says. With local set (v2 LOCAL: a balancer's own health check; v1
 * UNKNOWN, v2 AF_UNSPEC or AF_UNIX: no address to tell) the connection's own addresses
 * stand, and src/dst are empty. */
struct proxyproto_header {
	size_t len;  /* octets the header takes: the connection's own bytes follow */
	int version; /* 1 or 2 */
	int local;   /* non-zero: see above */
	int family;  /* AF_INET or AF_INET6 when not local */
	char src[PROXYPROTO_ADDR_LEN], dst[PROXYPROTO_ADDR_LEN];
	uint16_t src_port, dst_port;
	const char *error; /* PROXYPROTO_INVALID: why, as a static phrase */
};

/* Parses the header at the start of buf[0..len), the bytes received so far. Never reads past
 * len; NEED_MORE only while len is below the header's own limit. */
enum proxyproto_status proxyproto_parse(const uint8_t *buf, size_t len, struct proxyproto_header *h);

#endif
