/* session_limit: the sending limits in the session: at MAIL (messages) and RCPT (recipients), the tenant's,
 * the authenticated user's and the client address's counters are asked, the command waits for the answer,
 * and a refusal is answered 451, logged, counted and recorded; nothing refused reaches the relay. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "quota.h"
#include "session_int.h"
#include "util.h"

/* The counters this session's command counts on: one key per scope the tenant limits. */
struct limit_req {
	struct quota_req q;
	char keys[QUOTA_MAX_KEYS][QUOTA_KEY_MAX];
};

static const char *scope_id(const struct session *s, enum quota_scope scope)
{
	return scope == QUOTA_USER ? s->user : scope == QUOTA_IP ? s->peer : "";
}

/* False when no limit applies (a per-user limit needs the user's name). */
static bool build(struct session *s, enum quota_kind kind, struct limit_req *r)
{
	uint64_t now = (uint64_t)time(NULL);

	r->q = (struct quota_req){.amount = 1, .now_s = now};
	if (!s->srv->quota)
		return false; /* a server made without counters (a benchmark's) */
	for (int scope = 0; scope < QUOTA_NSCOPES; scope++) {
		unsigned limit = s->tenant->per_hour[scope][kind];
		const char *id = scope_id(s, (enum quota_scope)scope);
		size_t n = r->q.n;
		if (limit == 0 || (scope != QUOTA_TENANT && !id[0]) ||
		    !quota_key(r->keys[n], sizeof(r->keys[n]), s->tenant->name, (enum quota_scope)scope, id, kind,
		               quota_window(now)))
			continue;
		r->q.keys[n] = r->keys[n];
		r->q.limits[n] = limit;
		s->limit.limits[n] = (size_t)scope * QUOTA_NKINDS + kind;
		r->q.n++;
	}
	return r->q.n > 0;
}

static void on_answer(void *arg, enum quota_result result, size_t over)
{
	struct session *s = arg;

	s->limit.op = NULL;
	s->limit.state = SL_ANSWERED;
	s->limit.result = result;
	s->limit.limit = s->limit.limits[over];
	session_pump(s); /* the held command runs again and takes the answer */
}

static const char *scope_words(size_t limit)
{
	static const char *const words[] = {[QUOTA_TENANT] = "this account", [QUOTA_USER] = "this user",
	                                    [QUOTA_IP] = "this client address"};
	return words[limit / QUOTA_NKINDS];
}

/* A MAIL refused here has a record of its own (its message never reaches the relay); a RCPT
 * refused marks the record of its message. */
static void record(struct session *s, enum quota_kind kind, const char *limit, int code, const char *text)
{
	if (kind == QUOTA_RECIPIENTS) {
		if (s->tx.rec && !s->tx.rec->limit)
			s->tx.rec->limit = limit;
		return;
	}
	struct session_msgrec *rec = session_msgrec_new(s->line, s->line_len);
	rec->limit = limit;
	session_msgrec_write(s, rec, code, text, "livery");
	session_msgrec_unref(s, rec);
}

/* The answer for the held command: true to go on. The texts name the brand and the limit,
 * never the relay. */
static bool take_answer(struct session *s, enum quota_kind kind)
{
	const struct sending_cfg *sc = &s->srv->cfg->sending;
	enum quota_result r = s->limit.result;
	const char *verb = kind == QUOTA_MESSAGES ? "MAIL" : "RCPT";
	char text[400];

	s->limit.state = SL_NONE;
	metrics_sending_limit(s->srv->metrics, s->tenant, r, s->limit.limit, sc->fail_closed);
	if (r == QUOTA_OK || (r == QUOTA_UNAVAILABLE && !sc->fail_closed))
		return true;
	if (r == QUOTA_OVER) {
		const char *name = quota_limit_names[s->limit.limit];
		snprintf(text, sizeof(text), "4.7.1 %s Sending limit reached: %s per hour for %s, try again later",
		         s->brand, quota_kind_name(kind), scope_words(s->limit.limit));
		log_info("%s: %s refused: sending limit %s (%u) of tenant %s reached%s%s", s->id, verb, name,
		         s->tenant->per_hour[s->limit.limit / QUOTA_NKINDS][kind], s->tenant->name,
		         s->user[0] ? ", user " : "", s->user);
		record(s, kind, name, 451, text);
	} else {
		snprintf(text, sizeof(text), "4.3.0 %s Sending limits cannot be checked now, try again later", s->brand);
		/* Logged at debug: quota.c reports the outage itself, at most every 10 s. */
		log_debug("%s: %s refused: the sending-limit counters did not answer (redis_failure = closed)", s->id,
		          verb);
		record(s, kind, "backend_unavailable", 451, text);
	}
	session_reply(s, 451, "%s", text);
	return false;
}

bool session_limit_pass(struct session *s, enum quota_kind kind, enum session_cmd_result *res)
{
	struct limit_req r;

	*res = SC_DONE;
	if (s->limit.state == SL_ANSWERED)
		return take_answer(s, kind);
	if (!build(s, kind, &r))
		return true;
	s->limit.state = SL_CHECKING;
	s->limit.op = quota_check(s->srv->quota, &r.q, on_answer, s); /* answers on a later turn */
	session_wait(s, SESSION_WAIT_LIMIT);
	*res = SC_WAIT;
	return false;
}

void session_limit_cancel(struct session *s)
{
	quota_cancel(s->limit.op);
	s->limit.op = NULL;
}
