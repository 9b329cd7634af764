/* quota_key: the pure parts of the sending limits: the scopes and kinds counted, fixed hourly windows, the
 * counters' keys, and the Redis backend's URL; no I/O. */
#include "quota_key.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *quota_scope_name(enum quota_scope s)
{
	static const char *const names[] = {[QUOTA_TENANT] = "tenant", [QUOTA_USER] = "user", [QUOTA_IP] = "ip"};
	return names[s];
}

const char *quota_kind_name(enum quota_kind k)
{
	return k == QUOTA_MESSAGES ? "messages" : "recipients";
}

const char *const quota_limit_names[] = {
        "messages_per_hour",          "recipients_per_hour",          "per_user_messages_per_hour",
        "per_user_recipients_per_hour", "per_ip_messages_per_hour", "per_ip_recipients_per_hour", NULL};

uint64_t quota_window(uint64_t unix_s)
{
	return unix_s / QUOTA_WINDOW_S;
}

unsigned quota_window_ttl(uint64_t unix_s)
{
	return (unsigned)(QUOTA_WINDOW_S - unix_s % QUOTA_WINDOW_S) + 60;
}

size_t quota_key(char *buf, size_t len, const char *tenant, enum quota_scope scope, const char *id,
                 enum quota_kind kind, uint64_t window)
{
	static const char scopes[] = {[QUOTA_TENANT] = 't', [QUOTA_USER] = 'u', [QUOTA_IP] = 'i'};
	int n = snprintf(buf, len, "livery:{%s}:%c:%s:%c:%llu", tenant, scopes[scope], scope == QUOTA_TENANT ? "" : id,
	                 kind == QUOTA_MESSAGES ? 'm' : 'r', (unsigned long long)window);

	return n < 0 || (size_t)n >= len ? 0 : (size_t)n;
}

/* Copies [s, e) into out (size len); false when it is empty or does not fit. */
static bool take(const char *s, const char *e, char *out, size_t len)
{
	if (e <= s || (size_t)(e - s) >= len)
		return false;
	memcpy(out, s, (size_t)(e - s));
	out[e - s] = '\0';
	return true;
}

/* "[user]:password@" before the host, if any; *rest moves past it. */
static bool parse_userinfo(const char **rest, struct quota_url *u, char *err, size_t errlen)
{
	const char *s = *rest, *at = strchr(s, '@');
	const char *colon = at ? memchr(s, ':', (size_t)(at - s)) : NULL;

	if (!at)
		return true;
	if (!colon || at == colon + 1 || (colon > s && !take(s, colon, u->user, sizeof(u->user))) ||
	    !take(colon + 1, at, u->password, sizeof(u->password))) {
		snprintf(err, errlen, "the credentials in a Redis URL are written user:password@ or :password@");
		return false;
	}
	*rest = at + 1;
	return true;
}

/* ":port" and "/db" after the host; s points just past the host. */
static bool parse_port_db(const char *s, struct quota_url *u, char *err, size_t errlen)
{
	char *end;

	if (*s == ':') {
		long port = strtol(s + 1, &end, 10);
		if (end == s + 1 || port < 1 || port > 65535) {
			snprintf(err, errlen, "the port in a Redis URL must be 1 to 65535");
			return false;
		}
		u->port = (int)port;
		s = end;
	}
	if (*s == '/' && s[1]) {
		long db = strtol(s + 1, &end, 10);
		if (end == s + 1 || *end || db < 0 || db > 1000000) {
			snprintf(err, errlen, "the database in a Redis URL must be a number (redis://host:port/0)");
			return false;
		}
		u->db = (unsigned)db;
		s = end;
	} else if (*s == '/') {
		s++;
	}
	if (*s) {
		snprintf(err, errlen, "unexpected text after the host in a Redis URL (redis://host:port/db)");
		return false;
	}
	return true;
}

bool quota_url_parse(const char *url, struct quota_url *u, char *err, size_t errlen)
{
	static const char scheme[] = "redis://";
	const char *s = url, *e;

	memset(u, 0, sizeof(*u));
	u->port = 6379;
	if (strncmp(s, scheme, sizeof(scheme) - 1) != 0) {
		snprintf(err, errlen, "a Redis backend is written redis://host:port/db");
		return false;
	}
	s += sizeof(scheme) - 1;
	if (!parse_userinfo(&s, u, err, errlen))
		return false;
	if (*s == '[') {
		e = strchr(s, ']');
		if (!e || !take(s + 1, e, u->host, sizeof(u->host))) {
			snprintf(err, errlen, "an IPv6 address in a Redis URL is written [address]");
			return false;
		}
		e++;
	} else {
		e = s + strcspn(s, ":/");
		if (!take(s, e, u->host, sizeof(u->host))) {
			snprintf(err, errlen, "a Redis URL needs a host: redis://host:port/db");
			return false;
		}
	}
	return parse_port_db(e, u, err, errlen);
}
