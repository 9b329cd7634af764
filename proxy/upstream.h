/* upstream: the relay-facing SMTP client state machine (resolve, connect, banner, EHLO, STARTTLS, verified
 * TLS, EHLO, then relay); never sees the client's stream or reply texts. */
#ifndef LIVERY_UPSTREAM_H
#define LIVERY_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "config.h"
#include "smtp_proto.h"
#include "tls.h"

struct upstream;

/* How a relay leg failed, for records and logs; TLS failures in RFC 8460's result types. */
enum upstream_failure {
	UPSTREAM_OK,
	UPSTREAM_UNREACHABLE,        /* no address resolved or accepted a connection */
	UPSTREAM_TIMEOUT,            /* a reply (or reading) took longer than its timeout */
	UPSTREAM_LOST,               /* the relay closed or broke the connection */
	UPSTREAM_REFUSED,            /* the relay refused the banner or EHLO */
	UPSTREAM_PROTOCOL,           /* a malformed, over-long or unexpected reply */
	UPSTREAM_STARTTLS_MISSING,   /* starttls-not-supported */
	UPSTREAM_CERT_HOST_MISMATCH, /* certificate-host-mismatch */
	UPSTREAM_CERT_EXPIRED,       /* certificate-expired */
	UPSTREAM_CERT_NOT_TRUSTED,   /* certificate-not-trusted */
	UPSTREAM_VALIDATION_FAILURE, /* validation-failure: any other TLS failure */
	UPSTREAM_AUTH,               /* the relay refused livery's own AUTH (local mode): an operator error */
};

/* The name records and metrics use: relay_unreachable, relay_timeout, relay_lost,
 * relay_refused, relay_protocol_error, relay_auth_failed, or the RFC 8460 result type. */
const char *upstream_failure_name(enum upstream_failure f);

/* What operators' records say about a relay leg: kept up to date by the upstream. */
struct upstream_info {
	const char *region; /* the region's name */
	const char *host;   /* the relay host tried last, as configured */
	char addr[64];      /* the address connected to last ("" before any connect) */
	bool tls, verified, resumed;
	bool reused; /* a pooled connection, set up before this session (the timings are its setup's) */
	bool ready;  /* its setup completed: a later failure is one of a connection that worked */
	char tls_version[16];
	char cipher[64];
	double connect_ms, handshake_ms; /* of the last attempt; 0 where it did not get that far */
	uint64_t bytes_in, bytes_out;    /* application bytes on the last attempt's connection */
	enum upstream_failure failure;
};

/* Callbacks to the owner, always from a libuv callback, never from inside an upstream_*
 * call the owner made. on_failed is final: the upstream closes itself right after it
 * (calling upstream_close then is harmless). on_closed comes once the upstream is freed. */
struct upstream_ops {
	void (*on_ready)(void *owner);
	void (*on_reply)(void *owner, const struct smtp_reply *r);
	void (*on_failed)(void *owner, const char *why);
	void (*on_drain)(void *owner);
	void (*on_closed)(void *owner);
};

struct upstream_params {
	uv_loop_t *loop;
	const struct tenant_cfg *tenant;
	tls_ctx *ctx;
	struct tls_session_cache *sessions; /* NULL: no resumption */
	unsigned setup_timeout_ms;          /* TLS handshake and each setup reply */
	unsigned reply_timeout_ms;          /* each reply while relaying */
	const char *log_id;                 /* the session's id, for log lines */
	/* Local mode: livery authenticates at the relay with these after the post-TLS EHLO
	 * (AUTH PLAIN, or LOGIN when only that is offered). NULL: no AUTH step. */
	const char *auth_user, *auth_password;
};

/* Starts resolving the region's first host on the next loop turn; failures are reported
 * through ops, never before this returns. */
struct upstream *upstream_start(const struct upstream_params *p, const struct upstream_ops *ops, void *owner);
bool upstream_is_ready(const struct upstream *u);
/* It failed or is closing: it will never be ready again. */
bool upstream_is_dead(const struct upstream *u);
/* The leg's record so far (byte counts refreshed). Valid until the upstream is closed. */
const struct upstream_info *upstream_info(struct upstream *u);
const struct smtp_caps *upstream_caps(const struct upstream *u);
/* Sends bytes verbatim; nreplies is how many replies they call for (0 for body bytes). */
void upstream_send(struct upstream *u, const char *buf, size_t len, unsigned nreplies);
/* Sets the timeout for the replies owed from now on (e.g. longer after the end of data). */
void upstream_set_reply_timeout(struct upstream *u, unsigned ms);
bool upstream_write_blocked(const struct upstream *u);
void upstream_pause(struct upstream *u);
void upstream_resume(struct upstream *u);
/* Closes (sending QUIT first when ready and quit is set); on_closed follows. Only
 * on_closed is called after this. */
void upstream_close(struct upstream *u, bool quit);

/* For the pool: hands a ready upstream to a new owner. Every later callback goes to ops and
 * owner (none is queued for the old owner: callbacks are looked up when they happen). */
void upstream_rebind(struct upstream *u, const struct upstream_ops *ops, void *owner, const char *log_id);
/* Whether anything was sent since upstream_start or the last upstream_rebind. */
bool upstream_used(const struct upstream *u);
/* Replies still owed by the relay. */
unsigned upstream_awaiting(const struct upstream *u);
void upstream_set_reused(struct upstream *u);

#endif
