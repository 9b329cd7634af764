/* cidr: address ranges in CIDR notation ("10.0.0.0/8", "2001:db8::/32", or a single address) and whether an
 * address falls in one of them; pure (libc only). */
#include "cidr.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Whether the first bits of a and b agree. */
static bool same_prefix(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned whole = bits / 8, rest = bits % 8;

	if (memcmp(a, b, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[whole] & mask) == (b[whole] & mask);
}

static bool host_bits_zero(const uint8_t *a, unsigned bits, unsigned max)
{
	for (unsigned i = bits; i < max; i++) {
		if (a[i / 8] & (0x80u >> (i % 8)))
			return false;
	}
	return true;
}

static bool parse_bits(const char *s, unsigned max, unsigned *out)
{
	unsigned v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 3 || (s[0] == '0' && n > 1))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return v <= max;
}

bool cidr_parse(const char *text, struct cidr *out, const char **why)
{
	char addr[64];
	const char *slash = strchr(text, '/');
	size_t alen = slash ? (size_t)(slash - text) : strlen(text);

	memset(out, 0, sizeof(*out));
	*why = "is not an IP address or a CIDR range (address/bits)";
	if (alen == 0 || alen >= sizeof(addr))
		return false;
	memcpy(addr, text, alen);
	addr[alen] = '\0';
	out->family = strchr(addr, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(out->family, addr, out->addr) != 1)
		return false;
	unsigned max = out->family == AF_INET ? 32 : 128;
	out->bits = max;
	if (slash && !parse_bits(slash + 1, max, &out->bits)) {
		*why = out->family == AF_INET ? "has a prefix length that is not 0 to 32"
		                              : "has a prefix length that is not 0 to 128";
		return false;
	}
	if (!host_bits_zero(out->addr, out->bits, max)) {
		*why = "has address bits set past its prefix length";
		return false;
	}
	*why = NULL;
	return true;
}

bool cidr_match(const struct cidr *list, size_t n, const char *address)
{
	uint8_t a[16];
	int family = strchr(address, ':') ? AF_INET6 : AF_INET;

	if (inet_pton(family, address, a) != 1)
		return false;
	if (family == AF_INET6 && memcmp(a, v4_mapped, sizeof(v4_mapped)) == 0) {
		memmove(a, a + 12, 4);
		family = AF_INET;
	}
	for (size_t i = 0; i < n; i++) {
		if (list[i].family == family && same_prefix(a, list[i].addr, list[i].bits))
			return true;
	}
	return false;
}
