/* loadgen: shared declarations of livery-loadgen (options, run state, the connection state machine). */
#ifndef LIVERY_LOADGEN_H
#define LIVERY_LOADGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "benchutil.h"

#define LG_MAX_SNI    64
#define LG_MAX_ERRORS 48

struct lg_opts {
	const char *host;
	int port;
	unsigned concurrency;
	unsigned long sessions; /* 0: bounded by duration only */
	double duration;        /* seconds; always a bound */
	unsigned messages;      /* per session */
	size_t size;            /* bytes per message */
	bool implicit;          /* TLS on connect (465) instead of STARTTLS */
	const char *sni[LG_MAX_SNI];
	unsigned nsni;
	const char *verify_name; /* NULL: each session's SNI name */
	const char *ca;
	const char *user, *password;
	bool resume;
	double rate;    /* new connections per second; 0: no cap */
	double timeout; /* seconds of silence before a session fails */
	bool hold;      /* open, AUTH, then idle until told to stop */
	const char *ready_file;
	bool json;
	const char *groups; /* "x25519", "p256" or "default" */
	const char *ehlo;
};

struct lg_error {
	char kind[48];
	unsigned long count;
};

struct lg_conn;

/* The whole run: one event loop, one thread. */
struct lg {
	struct lg_opts o;
	uv_loop_t *loop;
	WOLFSSL_CTX *ctx;
	WOLFSSL_SESSION *sessions[LG_MAX_SNI]; /* for --resume, per SNI name */
	char *msg;                             /* one message, dot-terminated */
	size_t msglen;
	char auth_line[512];
	uv_timer_t tick;
	uv_signal_t sigint, sigterm;
	double t_start, t_end;
	unsigned long started, ok, failed, messages, resumed;
	unsigned active, held;
	bool stopping, ready_reported, closing_handles;
	double stop_at;       /* when stopping: the grace deadline for sessions in flight */
	struct lg_conn *live; /* every open connection */
	struct bu_samples banner_ms, tls_ms, session_ms;
	struct lg_error errors[LG_MAX_ERRORS];
	unsigned nerrors;
	unsigned long error_reports;
};

/* lg_conn.c */
void lg_conn_start(struct lg *lg);
/* Hold mode: sends QUIT on an idle session. */
void lg_conn_release(struct lg_conn *c);
/* Ends a session at once (counted as failed with kind). */
void lg_conn_abort(struct lg_conn *c, const char *kind);
struct lg_conn *lg_conn_next(struct lg_conn *c);
/* Builds lg->auth_line ("AUTH PLAIN <base64>\r\n") from the user and password. */
void lg_auth_line(struct lg *lg);

/* loadgen.c */
void lg_count_error(struct lg *lg, const char *kind);
/* A session ended (successfully or not) and its handles are closed: schedule more. */
void lg_session_closed(struct lg *lg);
void lg_session_held(struct lg *lg);

#endif
