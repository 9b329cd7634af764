/* ticketkeys: the session-ticket key file's format (one base64 key per line, the current one first),
 * parsed from text in memory; no I/O. */
#include "ticketkeys.h"

#include <stdio.h>
#include <string.h>

/* The value of a base64 digit, or -1. */
static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decodes s[0..n) into out (at most cap octets); -1 when it is not base64 or too long. Padding
 * is allowed only at the end, and leftover bits must be zero (one text, one key). */
static long b64_decode(const char *s, size_t n, unsigned char *out, size_t cap)
{
	unsigned acc = 0, bits = 0;
	size_t o = 0;

	while (n > 0 && s[n - 1] == '=')
		n--;
	if (n % 4 == 1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int v = b64_value(s[i]);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o == cap)
				return -1;
			out[o++] = (unsigned char)(acc >> bits);
		}
		acc &= (1u << bits) - 1;
	}
	return acc == 0 ? (long)o : -1;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* One key line, trimmed, into the next free key. */
static bool add_key(struct ticketkeys *out, const char *s, size_t n, char *err, size_t errlen)
{
	unsigned char buf[TICKETKEYS_MAX_LEN];
	long got;

	if (out->n == TICKETKEYS_MAX) {
		snprintf(err, errlen, "more than %d keys (the current one and %d previous ones at most)",
		         TICKETKEYS_MAX, TICKETKEYS_MAX - 1);
		return false;
	}
	got = b64_decode(s, n, buf, sizeof(buf));
	if (got < TICKETKEYS_MIN_LEN) {
		snprintf(err, errlen,
		         "not a key: each line must be the base64 of %d to %d random octets "
		         "(openssl rand -base64 48)",
		         TICKETKEYS_MIN_LEN, TICKETKEYS_MAX_LEN);
		memset(buf, 0, sizeof(buf));
		return false;
	}
	for (unsigned i = 0; i < out->n; i++) {
		if (out->key[i].len == (size_t)got && memcmp(out->key[i].octets, buf, (size_t)got) == 0) {
			snprintf(err, errlen, "the same key as line %u's", i + 1);
			memset(buf, 0, sizeof(buf));
			return false;
		}
	}
	memcpy(out->key[out->n].octets, buf, (size_t)got);
	out->key[out->n++].len = (size_t)got;
	memset(buf, 0, sizeof(buf));
	return true;
}

bool ticketkeys_parse(const char *text, size_t len, struct ticketkeys *out, int *line, char *err,
                      size_t errlen)
{
	size_t pos = 0;

	memset(out, 0, sizeof(*out));
	*line = 0;
	while (pos < len) {
		const char *eol = memchr(text + pos, '\n', len - pos);
		size_t end = eol ? (size_t)(eol - text) : len, b = pos, e = end;
		(*line)++;
		pos = end + 1;
		while (b < e && is_space(text[b]))
			b++;
		while (e > b && is_space(text[e - 1]))
			e--;
		if (b == e || text[b] == '#')
			continue;
		if (!add_key(out, text + b, e - b, err, errlen)) {
			ticketkeys_wipe(out);
			return false;
		}
	}
	if (out->n > 0)
		return true;
	*line = 0;
	snprintf(err, errlen, "no key in the file (one per line: openssl rand -base64 48)");
	return false;
}

void ticketkeys_wipe(struct ticketkeys *k)
{
	volatile unsigned char *p = (volatile unsigned char *)k;

	for (size_t i = 0; i < sizeof(*k); i++)
		p[i] = 0;
}
