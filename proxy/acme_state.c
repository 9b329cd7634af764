/* acme_state: the ACME state of each managed host name (what it waits for, failures, backoff, dates) and
 * its JSON form in state.json, which `livery check` reads; pure: no I/O, no clock of its own. */
#include "acme_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

static const char *const kind_names[] = {
        [ACME_VALID] = "valid", [ACME_DUE] = "due", [ACME_ORDERING] = "ordering", [ACME_BACKOFF] = "backoff"};

const char *acme_state_kind_name(enum acme_state_kind k)
{
	return kind_names[k];
}

struct acme_entry *acme_state_find(struct acme_table *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++) {
		if (strcmp(t->v[i].name, name) == 0)
			return &t->v[i];
	}
	return NULL;
}

struct acme_entry *acme_state_get(struct acme_table *t, const char *name, const char *dir)
{
	struct acme_entry *e = acme_state_find(t, name);

	if (!e) {
		t->v = xrealloc(t->v, (t->n + 1) * sizeof(*t->v));
		e = &t->v[t->n++];
		*e = (struct acme_entry){.name = xstrdup(name), .state = ACME_VALID};
	}
	if (!e->dir || strcmp(e->dir, dir) != 0) {
		free(e->dir);
		e->dir = xstrdup(dir);
	}
	return e;
}

void acme_state_prune(struct acme_table *t, bool all)
{
	size_t k = 0;

	for (size_t i = 0; i < t->n; i++) {
		struct acme_entry *e = &t->v[i];
		if (!all && (e->wanted || e->state == ACME_ORDERING)) {
			t->v[k++] = *e;
			continue;
		}
		free(e->name);
		free(e->dir);
		free(e->last_error);
	}
	t->n = k;
	if (all) {
		free(t->v);
		t->v = NULL;
	}
}

long long acme_state_backoff(unsigned base_s, unsigned failures)
{
	long long d = base_s ? base_s : 1;

	for (unsigned i = 1; i < failures && d < ACME_STATE_MAX_BACKOFF_S; i++)
		d *= 2;
	return d < ACME_STATE_MAX_BACKOFF_S ? d : ACME_STATE_MAX_BACKOFF_S;
}

static void set_time(json_t *o, const char *key, long long t)
{
	if (t > 0)
		json_object_set_new(o, key, json_integer(t));
}

json_t *acme_state_to_json(const struct acme_table *t)
{
	json_t *names = json_object();

	for (size_t i = 0; i < t->n; i++) {
		const struct acme_entry *e = &t->v[i];
		json_t *o = json_pack("{s:s, s:i}", "state", kind_names[e->state], "failures",
		                      (json_int_t)e->failures);
		set_time(o, "not_after", e->not_after);
		set_time(o, "renew_at", e->renew_at);
		set_time(o, "last_order", e->last_order);
		set_time(o, "last_success", e->last_success);
		if (e->state == ACME_BACKOFF)
			set_time(o, "next_try", e->next_try);
		if (e->last_error)
			json_object_set_new(o, "last_error", json_string(e->last_error));
		json_object_set_new(names, e->name, o);
	}
	return json_pack("{s:o}", "names", names);
}

static void fmt_time(long long t, char *buf, size_t cap)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, cap, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static long long get_time(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

bool acme_state_describe(const json_t *root, const char *name, char *buf, size_t len)
{
	const json_t *o = json_object_get(json_object_get(root, "names"), name);
	const char *state = json_string_value(json_object_get(o, "state"));
	const char *error = json_string_value(json_object_get(o, "last_error"));
	char when[40] = "";

	if (!json_is_object(o) || !state)
		return false;
	long long failures = get_time(o, "failures");
	if (strcmp(state, "backoff") == 0) {
		fmt_time(get_time(o, "next_try"), when, sizeof(when));
		snprintf(buf, len, "backoff: retry at %s after %lld failure%s: %s", when, failures,
		         failures == 1 ? "" : "s", error ? error : "(no detail)");
	} else if (strcmp(state, "valid") == 0 && get_time(o, "renew_at")) {
		fmt_time(get_time(o, "renew_at"), when, sizeof(when));
		snprintf(buf, len, "valid: renewal due at %s", when);
	} else {
		snprintf(buf, len, "%s", state);
	}
	return true;
}
