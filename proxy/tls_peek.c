/* tls_peek: the pure ClientHello reader that finds the SNI host name before a TLS context is chosen
 * (reassembling a hello fragmented over several records); no I/O, no wolfSSL. */
#include "tls_peek.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "names.h"

#define RECORD_HANDSHAKE   0x16
#define HANDSHAKE_HELLO    1
#define EXT_SERVER_NAME    0
#define NAME_TYPE_HOST     0
#define RECORD_PAYLOAD_MAX 16384 /* RFC 8446 5.1: 2^14 */

/* The hello as one message: the handshake header and body, copied out of its records. */
struct hello {
	unsigned char b[4 + TLS_PEEK_HELLO_MAX];
	size_t n;
};

enum gather { GATHER_MORE, GATHER_DONE, GATHER_BAD, GATHER_TOO_BIG };

/* A bounded view of bytes still to read. */
struct reader {
	const unsigned char *p;
	size_t n;
};

/* The first handshake message's length once its header is in. */
static size_t hello_len(const struct hello *h)
{
	return (size_t)h->b[1] << 16 | (size_t)h->b[2] << 8 | h->b[3];
}

/* Appends handshake records to h until it holds the whole ClientHello. Records of
 * another type may not come between a handshake message's fragments (RFC 8446 5.1), and
 * empty or oversized ones are malformed. */
static enum gather gather(const unsigned char *u, size_t len, struct hello *h)
{
	size_t off = 0;
	bool partial = false; /* the last record read has not all arrived */

	h->n = 0;
	for (;;) {
		if (h->n >= 4) {
			if (h->b[0] != HANDSHAKE_HELLO)
				return GATHER_BAD;
			if (hello_len(h) > TLS_PEEK_HELLO_MAX)
				return GATHER_TOO_BIG; /* known from the header alone */
			if (h->n >= 4 + hello_len(h))
				return GATHER_DONE;
		}
		if (partial || len - off < 5)
			return GATHER_MORE;
		const unsigned char *r = u + off;
		size_t rl = (size_t)r[3] << 8 | r[4];
		if (r[0] != RECORD_HANDSHAKE || r[1] != 3 || rl == 0 || rl > RECORD_PAYLOAD_MAX)
			return GATHER_BAD;
		size_t have = len - off - 5 < rl ? len - off - 5 : rl;
		size_t take = have < sizeof(h->b) - h->n ? have : sizeof(h->b) - h->n;
		memcpy(h->b + h->n, r + 5, take);
		h->n += take;
		partial = have < rl;
		off += 5 + have;
	}
}

static bool skip(struct reader *r, size_t k)
{
	if (r->n < k)
		return false;
	r->p += k;
	r->n -= k;
	return true;
}

/* Reads a vector with a length prefix of lenbytes (1 or 2) octets into out. */
static bool vec(struct reader *r, int lenbytes, struct reader *out)
{
	size_t k = 0;

	if (r->n < (size_t)lenbytes)
		return false;
	for (int i = 0; i < lenbytes; i++)
		k = k << 8 | r->p[i];
	out->p = r->p + lenbytes;
	out->n = k;
	return skip(r, (size_t)lenbytes + k);
}

static bool u16(struct reader *r, unsigned *v)
{
	if (r->n < 2)
		return false;
	*v = (unsigned)r->p[0] << 8 | r->p[1];
	return skip(r, 2);
}

/* The server_name extension's ServerNameList: its one host_name (RFC 6066 3 allows no
 * second one), or an empty host when it has none. */
static bool server_name_list(struct reader ext, struct reader *host)
{
	struct reader list, name;
	bool found = false;

	if (!vec(&ext, 2, &list) || ext.n != 0 || list.n == 0)
		return false;
	while (list.n > 0) {
		unsigned char type = list.p[0];
		if (!skip(&list, 1) || !vec(&list, 2, &name))
			return false;
		if (type != NAME_TYPE_HOST)
			continue;
		if (found)
			return false;
		*host = name;
		found = true;
	}
	return true;
}

/* Walks the extensions for server_name; false when they are malformed. */
static bool find_sni(struct reader exts, struct reader *host)
{
	bool seen = false;

	host->n = 0;
	while (exts.n > 0) {
		unsigned type;
		struct reader data;
		if (!u16(&exts, &type) || !vec(&exts, 2, &data))
			return false;
		if (type != EXT_SERVER_NAME)
			continue;
		if (seen || !server_name_list(data, host))
			return false; /* RFC 8446 4.2: one extension of each type */
		seen = true;
	}
	return true;
}

/* The ClientHello body up to its extensions (RFC 8446 4.1.2, RFC 5246 7.4.1.2). */
static bool hello_sni(struct reader body, struct reader *host)
{
	struct reader v, exts;

	host->n = 0;
	if (!skip(&body, 2 + 32) || !vec(&body, 1, &v) || v.n > 32 || !vec(&body, 2, &v) || v.n < 2 ||
	    !vec(&body, 1, &v) || v.n < 1)
		return false;
	if (body.n == 0)
		return true; /* no extensions at all */
	return vec(&body, 2, &exts) && body.n == 0 && find_sni(exts, host);
}

/* RFC 6066 3: "HostName" is the fully qualified DNS host name in ASCII, without a trailing
 * dot. A NUL would cut the name short when it is read as a C string. */
static bool valid_host(const struct reader *host)
{
	char norm[NAME_MAX_LEN + 1];

	if (host->n == 0 || host->p[host->n - 1] == '.' || memchr(host->p, '\0', host->n) != NULL)
		return false;
	return name_normalize((const char *)host->p, host->n, norm, false);
}

enum tls_peek tls_peek_sni(const char *buf, size_t len, char *sni, size_t snicap)
{
	const unsigned char *u = (const unsigned char *)buf;
	struct hello h;
	struct reader host = {0};

	sni[0] = '\0';
	if (len >= 1 && u[0] != RECORD_HANDSHAKE)
		return TLS_PEEK_NOT_TLS;
	enum gather g = gather(u, len, &h);
	if (g == GATHER_MORE)
		return TLS_PEEK_NEED_MORE;
	if (g == GATHER_TOO_BIG)
		return TLS_PEEK_TOO_BIG;
	if (g == GATHER_DONE && hello_sni((struct reader){h.b + 4, hello_len(&h)}, &host) &&
	    valid_host(&host) && host.n < snicap) {
		memcpy(sni, host.p, host.n);
		sni[host.n] = '\0';
	}
	return TLS_PEEK_DONE;
}
