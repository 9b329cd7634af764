/* session: the client-facing SMTP server state machine (greeting, EHLO, STARTTLS, AUTH relay, pipelined relay
 * of MAIL/RCPT/DATA/BDAT, reply scrubbing). */
#ifndef LIVERY_SESSION_H
#define LIVERY_SESSION_H

#include <uv.h>

#include "config.h"
#include "server.h"

/* Accepts a pending connection from listener and runs a session on it until it ends. */
void session_start(struct server *srv, const struct listener_cfg *lcfg, uv_stream_t *listener);
/* Ends a session at shutdown with a 421 to the client. */
void session_shutdown(struct session *s);
/* Opens the pool.min_idle relay connections of each local-mode tenant (worker start). */
void session_prewarm(struct server *srv);
struct session *session_next(struct session *s);

#endif
