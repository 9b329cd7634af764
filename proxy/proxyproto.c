/* proxyproto: the PROXY protocol header (v1 text, v2 binary) a load balancer sends ahead of a connection's
 * own bytes: a pure, incremental parser (no I/O) that yields the real client's address. */
#include "proxyproto.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>

/* haproxy.org/download/2.6/doc/proxy-protocol.txt, sections 2.1 and 2.2. */
static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_sig[] = "PROXY ";
#define V1_SIG_LEN (sizeof(v1_sig) - 1)
#define V2_FIXED   16

enum { V2_CMD_LOCAL = 0, V2_CMD_PROXY = 1 };
enum { V2_AF_UNSPEC = 0, V2_AF_INET = 1, V2_AF_INET6 = 2, V2_AF_UNIX = 3 };
enum { V2_PROTO_UNSPEC = 0, V2_PROTO_STREAM = 1 };

static enum proxyproto_status invalid(struct proxyproto_header *h, const char *why)
{
	h->error = why;
	return PROXYPROTO_INVALID;
}

/* Whether the len octets received agree with the signature as far as both go. */
static bool agrees(const uint8_t *buf, size_t len, const void *sig, size_t n)
{
	return memcmp(buf, sig, len < n ? len : n) == 0;
}

/* A v1 port: decimal, 0 to 65535, no leading zero. */
static bool v1_port(const char *s, uint16_t *out)
{
	size_t n = strlen(s);
	unsigned long v = 0;

	if (n == 0 || n > 5 || (s[0] == '0' && n > 1))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 65535)
		return false;
	*out = (uint16_t)v;
	return true;
}

/* An address of family af as text, rewritten in its canonical form into out. */
static bool v1_address(int af, const char *s, char *out)
{
	uint8_t bin[16];

	return strlen(s) < PROXYPROTO_ADDR_LEN && inet_pton(af, s, bin) == 1 &&
	       inet_ntop(af, bin, out, PROXYPROTO_ADDR_LEN) != NULL;
}

/* Splits line at single spaces into exactly n non-empty fields. */
static bool v1_split(char *line, char **fields, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		fields[i] = line;
		char *sp = strchr(line, ' ');
		if ((sp != NULL) != (i + 1 < n))
			return false;
		if (sp) {
			*sp = '\0';
			line = sp + 1;
		}
		if (fields[i][0] == '\0')
			return false;
	}
	return true;
}

/* What follows "PROXY ": "TCP4 src dst sport dport", its TCP6 form, or "UNKNOWN" and anything. */
static enum proxyproto_status v1_fields(char *line, struct proxyproto_header *h)
{
	char *f[4];

	if (strncmp(line, "UNKNOWN", 7) == 0 && (line[7] == '\0' || line[7] == ' ')) {
		h->local = 1;
		return PROXYPROTO_DONE;
	}
	if (strncmp(line, "TCP4 ", 5) == 0)
		h->family = AF_INET;
	else if (strncmp(line, "TCP6 ", 5) == 0)
		h->family = AF_INET6;
	else
		return invalid(h, "a v1 header for a protocol other than TCP4, TCP6 or UNKNOWN");
	if (!v1_split(line + 5, f, 4))
		return invalid(h, "a v1 header without exactly four fields after the protocol");
	if (!v1_address(h->family, f[0], h->src) || !v1_address(h->family, f[1], h->dst))
		return invalid(h, "a v1 address that is not one of its protocol's family");
	if (!v1_port(f[2], &h->src_port) || !v1_port(f[3], &h->dst_port))
		return invalid(h, "a v1 port that is not a number from 0 to 65535");
	return PROXYPROTO_DONE;
}

static enum proxyproto_status parse_v1(const uint8_t *buf, size_t len, struct proxyproto_header *h)
{
	size_t i;
	char line[PROXYPROTO_V1_MAX];

	if (!agrees(buf, len, v1_sig, V1_SIG_LEN))
		return invalid(h, "not a PROXY protocol header");
	/* The line ends at the first CR, which must be followed by LF within the limit. */
	for (i = 0; i < len && i < PROXYPROTO_V1_MAX && buf[i] != '\r'; i++) {
		if (buf[i] < 0x20 || buf[i] > 0x7e)
			return invalid(h, "a v1 header with an octet that is not printable ASCII");
	}
	if (i + 2 > PROXYPROTO_V1_MAX)
		return invalid(h, "a v1 header longer than 107 octets");
	if (i + 2 > len)
		return PROXYPROTO_NEED_MORE;
	if (buf[i + 1] != '\n')
		return invalid(h, "a v1 header whose CR is not followed by LF");
	if (i < V1_SIG_LEN)
		return invalid(h, "not a PROXY protocol header");
	h->version = 1;
	h->len = i + 2;
	memcpy(line, buf + V1_SIG_LEN, i - V1_SIG_LEN);
	line[i - V1_SIG_LEN] = '\0';
	return v1_fields(line, h);
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* TLVs (type, 16-bit length, value) fill the rest of the header exactly. None is needed here,
 * but each must stay inside the header, or the header is not what it claims. */
static enum proxyproto_status v2_tlvs(const uint8_t *p, size_t n, struct proxyproto_header *h)
{
	while (n > 0) {
		if (n < 3)
			return invalid(h, "a v2 header with a truncated TLV");
		size_t vlen = be16(p + 1);
		if (vlen > n - 3)
			return invalid(h, "a v2 TLV that overruns its header");
		p += 3 + vlen;
		n -= 3 + vlen;
	}
	return PROXYPROTO_DONE;
}

/* The address block of a PROXY command; body is everything after the fixed 16 octets. */
static enum proxyproto_status v2_addresses(const uint8_t *body, size_t n, unsigned fam, unsigned proto,
                                           struct proxyproto_header *h)
{
	static const size_t need[] = {
	        [V2_AF_UNSPEC] = 0, [V2_AF_INET] = 12, [V2_AF_INET6] = 36, [V2_AF_UNIX] = 216};

	if (fam > V2_AF_UNIX)
		return invalid(h, "a v2 header with an unknown address family");
	if (proto > V2_PROTO_STREAM)
		return invalid(h, "a v2 header for a protocol other than TCP");
	if (n < need[fam])
		return invalid(h, "a v2 address block shorter than its family needs");
	/* Unspecified, or an address this listener cannot use: the connection's own stands. */
	if (fam == V2_AF_UNSPEC || fam == V2_AF_UNIX || proto == V2_PROTO_UNSPEC) {
		h->local = 1;
		return fam == V2_AF_UNSPEC ? PROXYPROTO_DONE : v2_tlvs(body + need[fam], n - need[fam], h);
	}
	size_t alen = fam == V2_AF_INET ? 4 : 16;
	h->family = fam == V2_AF_INET ? AF_INET : AF_INET6;
	inet_ntop(h->family, body, h->src, sizeof(h->src));
	inet_ntop(h->family, body + alen, h->dst, sizeof(h->dst));
	h->src_port = be16(body + 2 * alen);
	h->dst_port = be16(body + 2 * alen + 2);
	return v2_tlvs(body + need[fam], n - need[fam], h);
}

static enum proxyproto_status parse_v2(const uint8_t *buf, size_t len, struct proxyproto_header *h)
{
	if (!agrees(buf, len, v2_sig, sizeof(v2_sig)))
		return invalid(h, "not a PROXY protocol header");
	if (len < V2_FIXED)
		return PROXYPROTO_NEED_MORE;
	if (buf[12] >> 4 != 2)
		return invalid(h, "a v2 signature with a version other than 2");
	unsigned cmd = buf[12] & 0x0f;
	if (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY)
		return invalid(h, "a v2 header with an unknown command");
	size_t n = be16(buf + 14);
	if (V2_FIXED + n > PROXYPROTO_V2_MAX)
		return invalid(h, "a v2 header longer than livery accepts (2064 octets)");
	if (len < V2_FIXED + n)
		return PROXYPROTO_NEED_MORE;
	h->version = 2;
	h->len = V2_FIXED + n;
	if (cmd == V2_CMD_LOCAL) { /* the balancer's own connection: addresses and TLVs are ignored */
		h->local = 1;
		return PROXYPROTO_DONE;
	}
	return v2_addresses(buf + V2_FIXED, n, buf[13] >> 4, buf[13] & 0x0f, h);
}

enum proxyproto_status proxyproto_parse(const uint8_t *buf, size_t len, struct proxyproto_header *h)
{
	memset(h, 0, sizeof(*h));
	if (len == 0)
		return PROXYPROTO_NEED_MORE;
	enum proxyproto_status st = buf[0] == v2_sig[0] ? parse_v2(buf, len, h)
	                            : buf[0] == 'P'     ? parse_v1(buf, len, h)
	                                                : invalid(h, "not a PROXY protocol header");
	if (st != PROXYPROTO_DONE) { /* nothing half-filled on the way out */
		const char *why = h->error;
		memset(h, 0, sizeof(*h));
		h->error = why;
	}
	return st;
}
