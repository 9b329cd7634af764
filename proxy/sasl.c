/* sasl: SASL PLAIN and LOGIN credentials for local authentication: decoding the client's responses into a
 * user name and password, encoding livery's own for the relay, and the auth_domains rule; pure functions. */
#include "sasl.h"

#include <string.h>
#include <strings.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>

long sasl_b64_decode(const char *b64, size_t len, unsigned char *buf, size_t cap)
{
	word32 n = (word32)cap;

	if (len == 0 || len > 4 * (cap / 3))
		return -1;
	if (Base64_Decode((const byte *)b64, (word32)len, buf, &n) != 0)
		return -1;
	return (long)n;
}

static bool b64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
	       c == '/';
}

bool sasl_b64_valid(const char *b64, size_t len)
{
	size_t pad = 0;

	if (len == 0 || (len == 1 && b64[0] == '='))
		return true;
	if (len % 4 != 0)
		return false;
	while (pad < 2 && b64[len - 1 - pad] == '=')
		pad++;
	for (size_t i = 0; i < len - pad; i++) {
		if (!b64_char(b64[i]))
			return false;
	}
	return true;
}

static bool copy_field(const unsigned char *p, size_t n, char *out, size_t cap)
{
	if (n == 0 || n >= cap || n > SASL_FIELD_MAX || memchr(p, '\0', n))
		return false;
	memcpy(out, p, n);
	out[n] = '\0';
	return true;
}

bool sasl_plain_decode(const char *b64, size_t len, char *user, size_t ucap, char *pass, size_t pcap)
{
	unsigned char buf[3 * SASL_FIELD_MAX + 3];
	long n = sasl_b64_decode(b64, len, buf, sizeof(buf));
	bool ok = false;

	const unsigned char *z1 = n > 0 ? memchr(buf, '\0', (size_t)n) : NULL;
	const unsigned char *z2 = z1 ? memchr(z1 + 1, '\0', (size_t)(buf + n - z1 - 1)) : NULL;
	if (z2) {
		size_t authz = (size_t)(z1 - buf), authc = (size_t)(z2 - z1 - 1);
		ok = copy_field(z1 + 1, authc, user, ucap) &&
		     copy_field(z2 + 1, (size_t)(buf + n - z2 - 1), pass, pcap) &&
		     (authz == 0 || (authz == authc && memcmp(buf, z1 + 1, authz) == 0));
	}
	explicit_bzero(buf, sizeof(buf));
	return ok;
}

bool sasl_login_decode(const char *b64, size_t len, char *out, size_t cap)
{
	unsigned char buf[SASL_FIELD_MAX + 3];
	long n = sasl_b64_decode(b64, len, buf, sizeof(buf));
	bool ok = n > 0 && copy_field(buf, (size_t)n, out, cap);

	explicit_bzero(buf, sizeof(buf));
	return ok;
}

static bool b64_encode(const unsigned char *in, size_t len, char *out, size_t cap)
{
	word32 n = (word32)cap - 1;

	if (cap < 1 || Base64_Encode_NoNl(in, (word32)len, (byte *)out, &n) != 0)
		return false;
	out[n] = '\0';
	return true;
}

bool sasl_plain_encode(const char *user, const char *pass, char *out, size_t cap)
{
	unsigned char buf[2 * SASL_FIELD_MAX + 2];
	size_t ul = strlen(user), pl = strlen(pass);

	if (ul > SASL_FIELD_MAX || pl > SASL_FIELD_MAX)
		return false;
	buf[0] = '\0';
	memcpy(buf + 1, user, ul);
	buf[1 + ul] = '\0';
	memcpy(buf + 2 + ul, pass, pl);
	bool ok = b64_encode(buf, ul + pl + 2, out, cap);
	explicit_bzero(buf, sizeof(buf));
	return ok;
}

bool sasl_b64_encode(const char *text, char *out, size_t cap)
{
	return b64_encode((const unsigned char *)text, strlen(text), out, cap);
}

bool sasl_domain_allowed(const char *user, char *const *domains, size_t n)
{
	const char *at = strrchr(user, '@');

	if (n == 0)
		return true;
	if (!at || at == user)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (strcasecmp(at + 1, domains[i]) == 0)
			return true;
	}
	return false;
}
