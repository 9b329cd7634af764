/* acme_state: the ACME state of each managed host name (what it waits for, failures, backoff, dates) and
 * its JSON form in state.json, which `livery check` reads; pure: no I/O, no clock of its own. */
#ifndef LIVERY_ACME_STATE_H
#define LIVERY_ACME_STATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The longest wait after failures: one day. */
#define ACME_STATE_MAX_BACKOFF_S 86400

enum acme_state_kind {
	ACME_VALID,    /* its certificates are valid beyond renew_days: nothing to do until renew_at */
	ACME_DUE,      /* waits for its turn to be ordered */
	ACME_ORDERING, /* lego runs for it now */
	ACME_BACKOFF,  /* the last order failed: retried at next_try */
};

struct acme_entry {
	char *name;
	char *dir;     /* the cert_dir its certificates go into */
	unsigned need; /* the config_acme_keys bits still to order */
	enum acme_state_kind state;
	unsigned failures; /* in a row */
	/* Unix times, 0 for none. */
	long long next_try, not_after, renew_at, last_order, last_success;
	char *last_error;
	unsigned installed;     /* key bits installed into the cert_dir, not yet loaded by a reload */
	unsigned installed_gen; /* the generation serving when they were installed */
	bool wanted;            /* a tenant of the serving configuration claims it */
	bool asked;             /* a client asked for it (on demand): ordered before the others */
};

struct acme_table {
	struct acme_entry *v;
	size_t n;
};

struct acme_entry *acme_state_find(struct acme_table *t, const char *name);
/* Finds name, or adds it (ACME_VALID, nothing needed yet). The pointer lasts until the next add
 * or remove. */
struct acme_entry *acme_state_get(struct acme_table *t, const char *name, const char *dir);
/* Removes the entries no longer wanted (except the one ordering), or all with all. */
void acme_state_prune(struct acme_table *t, bool all);
/* The delay before retry number failures (1, 2, ...): base doubled each time, at most a day. */
long long acme_state_backoff(unsigned base_s, unsigned failures);
const char *acme_state_kind_name(enum acme_state_kind k);
/* The table as state.json holds it: {"names": {NAME: {"state": ..., ...}}}. */
json_t *acme_state_to_json(const struct acme_table *t);
/* One name's entry of a state.json as a line for `livery check`: "ordering", "retry at DATE
 * after 3 failures: ERROR", ...; false when the name is not in it. */
bool acme_state_describe(const json_t *root, const char *name, char *buf, size_t len);

#endif
