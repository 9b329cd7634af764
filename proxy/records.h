/* records: one line per session end and per message, for operators: a JSON object (jansson) or, with
 * log_format = "text", a human line with a timestamp; gathered and written to stdout or to log_file once
 * per loop turn, reopened on request. Plain data in, no protocol decisions. */
#ifndef LIVERY_RECORDS_H
#define LIVERY_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "upstream.h"

enum records_format { RECORDS_JSON, RECORDS_TEXT, RECORDS_NONE };

struct records_session {
	const char *id, *listener, *client, *sni, *tenant, *brand;
	const char *user;        /* the authenticated user, or NULL */
	const char *auth;        /* who checked it: "local" or "relay" (passthrough); NULL without user */
	const char *tls_version; /* NULL: plaintext */
	const char *cipher;
	bool tls_resumed;
	const char *end;    /* the end reason, from the documented vocabulary */
	const char *detail; /* what the log line says about it */
	unsigned messages;  /* accepted by the relay */
	uint64_t bytes_in, bytes_out;
	double duration_ms;
	const struct upstream_info *relay; /* NULL when no relay leg was opened */
};

struct records_message {
	const char *session, *tenant, *user;
	const char *sender; /* the MAIL FROM argument's address */
	unsigned rcpts;     /* recipients the relay accepted */
	uint64_t size;      /* octets of content received */
	int code;           /* the verdict: the relay's, or livery's own (0: none came) */
	const char *reply;  /* its text, as the relay sent it (operators may see it) */
	const char *by;     /* "relay" or "livery" */
	const char *queue_id;
	/* The sending limit (its config key, or "backend_unavailable") that refused the message
	 * at MAIL or one of its recipients at RCPT; NULL: none. */
	const char *limit;
	const struct upstream_info *relay;
};

/* Creates path if needed and gives it to uid:gid (-1: leave as is), so that a process that
 * gave up root can open it. False with a message in err. */
bool records_prepare(const char *path, int uid, int gid, char *err, size_t errlen);
/* Opens path for appending (NULL: stdout). False with a message in err. */
bool records_open(const char *path, enum records_format format, char *err, size_t errlen);
/* Reopens the file (logrotate moved it away); a failure keeps the old one and is logged. */
void records_reopen(void);
void records_close(void);
/* Make a record; it is written at the next records_flush (or at once past 64 KiB made). */
void records_session(const struct records_session *r);
void records_message(const struct records_message *r);
/* Writes the records made so far: the worker calls it once per event-loop turn, before it
 * polls, so a turn's records cost one system call. */
void records_flush(void);

#endif
