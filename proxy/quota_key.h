/* quota_key: the pure parts of the sending limits: the scopes and kinds counted, fixed hourly windows, the
 * counters' keys, and the Redis backend's URL; no I/O. */
#ifndef LIVERY_QUOTA_KEY_H
#define LIVERY_QUOTA_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Counters run over fixed windows of an hour, numbered from the Unix epoch. */
#define QUOTA_WINDOW_S 3600
/* A counter key never grows past this (tenant and user names are bounded well below it). */
#define QUOTA_KEY_MAX 768
/* The largest limit a counter holds (the memory backend's 24-bit count). */
#define QUOTA_LIMIT_MAX 0xffffffu

/* Who a limit is for: the tenant as a whole, one authenticated user of it, one client address. */
enum quota_scope { QUOTA_TENANT, QUOTA_USER, QUOTA_IP, QUOTA_NSCOPES };
/* What it counts: messages (at MAIL) or recipients (at RCPT). */
enum quota_kind { QUOTA_MESSAGES, QUOTA_RECIPIENTS, QUOTA_NKINDS };

/* A check's outcome: counted, refused (nothing counted), or no answer from the counters. */
enum quota_result { QUOTA_OK, QUOTA_OVER, QUOTA_UNAVAILABLE };

const char *quota_scope_name(enum quota_scope s); /* "tenant", "user", "ip" */
const char *quota_kind_name(enum quota_kind k);   /* "messages", "recipients" */
/* Each limit's name, as a tenant's limits group spells it ("per_user_messages_per_hour"), in
 * [scope * QUOTA_NKINDS + kind] order, NULL-terminated. */
extern const char *const quota_limit_names[QUOTA_NSCOPES * QUOTA_NKINDS + 1];

/* The window unix_s falls in. */
uint64_t quota_window(uint64_t unix_s);
/* How long a counter of unix_s's window must live: to the end of the window, plus a minute
 * for instances whose clocks run a little behind. */
unsigned quota_window_ttl(uint64_t unix_s);

/* Writes the counter key "livery:{tenant}:scope:id:kind:window" into buf (id empty for the
 * tenant scope); returns its length, or 0 when it does not fit in len. The tenant goes in
 * braces so that all of a check's keys share a Redis Cluster hash slot; the key reads back
 * unambiguously from the right (the window is digits, the kind a fixed word). */
size_t quota_key(char *buf, size_t len, const char *tenant, enum quota_scope scope, const char *id,
                 enum quota_kind kind, uint64_t window);

/* redis://[[user]:password@]host[:port][/db]: host a name, an IPv4 address or [IPv6]. */
struct quota_url {
	char host[256];
	int port;    /* 6379 when absent */
	unsigned db; /* 0 when absent */
	char user[128];
	char password[256]; /* empty: no AUTH */
};

/* False with a message in err (never quoting the password) when url is not that shape. */
bool quota_url_parse(const char *url, struct quota_url *u, char *err, size_t errlen);

#endif
