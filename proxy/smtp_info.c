/* smtp_info: what operators' records take from SMTP text: the relay's queue id in its verdict on a message, and
 * the user name in a client's SASL response; pure functions (no I/O, no logging). */
#include "smtp_info.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "sasl.h"

/* Octets a queue id or user name may hold: printable ASCII but space (records are read by
 * people and by grep; JSON escaping happens elsewhere). */
static bool id_char(unsigned char c)
{
	return c > ' ' && c < 0x7f;
}

/* Copies the run of id characters at p (ending at stop, when given) into out. */
static bool copy_token(const char *p, char stop, char *out, size_t cap)
{
	size_t n = 0;

	while (id_char((unsigned char)p[n]) && p[n] != stop)
		n++;
	if (n == 0 || n >= cap)
		return false;
	memcpy(out, p, n);
	out[n] = '\0';
	return true;
}

static const char *find_nocase(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	for (; *hay; hay++) {
		if (strncasecmp(hay, needle, n) == 0)
			return hay;
	}
	return NULL;
}

bool smtp_info_queue_id(const char *text, char *out, size_t cap)
{
	const char *p;

	if ((p = find_nocase(text, "queued as ")))
		return copy_token(p + 10, 0, out, cap);
	if ((p = find_nocase(text, "id=")))
		return copy_token(p + 3, 0, out, cap);
	if ((p = strchr(text, '<')) && strchr(p, '>'))
		return copy_token(p + 1, '>', out, cap);
	p = text;
	while (isdigit((unsigned char)*p) || *p == '.')
		p++; /* an enhanced status code */
	while (*p == ' ')
		p++;
	if (strncasecmp(p, "ok ", 3) == 0 && !strchr(p + 3, ' '))
		return copy_token(p + 3, 0, out, cap);
	return false;
}

/* A user name is kept only when it is printable ASCII (spaces allowed): records must not
 * carry control octets, and a name that is not is recorded as unknown. */
static bool copy_user(const unsigned char *p, size_t n, char *out, size_t cap)
{
	if (n == 0 || n >= cap)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!id_char(p[i]) && p[i] != ' ')
			return false;
	}
	memcpy(out, p, n);
	out[n] = '\0';
	return true;
}

bool smtp_info_plain_user(const char *b64, size_t len, char *out, size_t cap)
{
	unsigned char buf[1024];
	long n = sasl_b64_decode(b64, len, buf, sizeof(buf));

	if (n < 0)
		return false;
	const unsigned char *authcid = memchr(buf, '\0', (size_t)n);
	if (!authcid)
		return false;
	authcid++;
	const unsigned char *end = memchr(authcid, '\0', (size_t)(buf + n - authcid));
	if (!end)
		return false;
	return copy_user(authcid, (size_t)(end - authcid), out, cap);
}

bool smtp_info_login_user(const char *b64, size_t len, char *out, size_t cap)
{
	unsigned char buf[1024];
	long n = sasl_b64_decode(b64, len, buf, sizeof(buf));

	return n > 0 && copy_user(buf, (size_t)n, out, cap);
}
