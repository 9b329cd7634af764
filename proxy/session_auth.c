/* session_auth: the client's AUTH in local mode: livery answers the SASL exchange itself, has localauth check
 * the password, and holds the 235 until the relay leg (authenticated with the tenant's own credentials) is
 * ready. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "localauth.h"
#include "log.h"
#include "metrics.h"
#include "sasl.h"
#include "session_int.h"
#include "upstream.h"

/* "Username:" and "Password:", as every LOGIN client expects them. */
#define LOGIN_USER_PROMPT "VXNlcm5hbWU6"
#define LOGIN_PASS_PROMPT "UGFzc3dvcmQ6"

static void on_verified(void *owner, enum localauth_result res)
{
	struct session *s = owner;

	s->verify = NULL;
	metrics_local_auth(s->srv->metrics, s->tenant, res);
	session_enter_state(s, SS_COMMAND);
	if (res == LOCALAUTH_FAILED) {
		log_info("%s: AUTH refused locally (tenant %s)", s->id, s->tenant->name);
		session_reply(s, 535, "5.7.8 Authentication credentials invalid");
		if (session_auth_failed(s))
			session_pump(s);
		return;
	}
	log_debug("%s: password verified locally%s", s->id, res == LOCALAUTH_CACHED ? " (cached)" : "");
	/* The 235 promises that mail can be sent: it waits for the relay leg. A leg that failed
	 * before gets one more try, on behalf of this AUTH. */
	if (!s->up && session_has(s, SF_LEG_FAILED))
		session_set(s, SF_LEG_FAILED, false);
	if (!s->up)
		session_start_upstream(s, true);
	session_wait(s, SESSION_WAIT_AUTH_LEG);
	session_pump(s); /* resumes at once in session_local_auth_leg when the leg is ready */
}

void session_local_auth_leg(struct session *s)
{
	if (s->up && upstream_is_ready(s->up)) {
		session_authenticated(s);
		log_info("%s: AUTH accepted locally (tenant %s)", s->id, s->tenant->name);
		session_reply(s, 235, "2.7.0 Authentication successful");
		return;
	}
	/* The relay refused livery's own credentials or is out of reach: the operator's
	 * problem (upstream.c logged it), never the client's password. */
	session_reply(s, 454, "4.7.0 Temporary authentication failure, try again later");
}

static void verify(struct session *s, const char *password)
{
	const struct tenant_auth_cfg *a = &s->tenant->auth;

	if (!sasl_domain_allowed(s->auth_user, a->domains, a->ndomains)) {
		log_info("%s: AUTH refused: login name outside the tenant's auth_domains", s->id);
		session_reply(s, 535, "5.7.8 Authentication credentials invalid");
		session_enter_state(s, SS_COMMAND);
		session_auth_failed(s);
		return;
	}
	s->verify = localauth_verify(s->srv->localauth, s->tenant, s->auth_user, password, on_verified, s);
	session_enter_state(s, SS_VERIFY);
}

/* A response that ends the AUTH without a verdict on a password: 501 for one that is not base64
 * (wolfSSL's decoder would take some of those, e.g. stopping at a NUL, so the form is checked
 * first), 535 for one that decodes to no usable credentials (an empty or over-long field, a NUL
 * in a LOGIN field, another authorization identity): RFC 4954 4 keeps 501 for the former. */
static void refuse_response(struct session *s, bool base64)
{
	if (base64)
		session_reply(s, 535, "5.7.8 Authentication credentials invalid");
	else
		session_reply(s, 501, "5.5.2 Cannot decode the authentication response");
	session_enter_state(s, SS_COMMAND);
	session_auth_failed(s);
}

/* One client response: PLAIN's only one, or LOGIN's user name, then its password. */
static void step(struct session *s, const char *b64, size_t len)
{
	char pass[SASL_FIELD_MAX + 1];
	bool base64 = sasl_b64_valid(b64, len), ok = false;

	if (len == 1 && b64[0] == '*') {
		session_reply(s, 501, "5.7.0 Authentication cancelled");
		session_enter_state(s, SS_COMMAND);
		return;
	}
	if (!base64)
		ok = false;
	else if (s->sasl_plain)
		ok = sasl_plain_decode(b64, len, s->auth_user, sizeof(s->auth_user), pass, sizeof(pass));
	else if (s->sasl_responses++ == 0)
		ok = sasl_login_decode(b64, len, s->auth_user, sizeof(s->auth_user));
	else
		ok = sasl_login_decode(b64, len, pass, sizeof(pass));
	if (ok && !s->sasl_plain && s->sasl_responses == 1) {
		session_reply(s, 334, LOGIN_PASS_PROMPT);
		session_enter_state(s, SS_SASL);
	} else if (ok) {
		verify(s, pass);
	} else {
		refuse_response(s, base64);
	}
	explicit_bzero(pass, sizeof(pass));
}

void session_local_auth_start(struct session *s, const struct smtp_auth_arg *a)
{
	s->sasl_plain = smtp_auth_is(a, "PLAIN");
	s->sasl_responses = 0;
	s->auth_user[0] = '\0';
	if (a->initial)
		return step(s, a->initial, a->initial_len);
	session_reply(s, 334, "%s", s->sasl_plain ? "" : LOGIN_USER_PROMPT);
	session_enter_state(s, SS_SASL);
}

bool session_local_auth_input(struct session *s)
{
	step(s, s->line, s->line_len); /* never over SMTP_AUTH_LINE_MAX: take_line closed then */
	explicit_bzero(s->line, s->line_len);
	free(s->line);
	s->line = NULL;
	return !session_closing(s) && s->state != SS_VERIFY;
}
