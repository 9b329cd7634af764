/* session_int: what the session_*.c files share: the session struct, its queues and states (not for use
 * outside the session module). */
#ifndef LIVERY_SESSION_INT_H
#define LIVERY_SESSION_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "iobuf.h"
#include "names.h"
#include "server.h"
#include "smtp_proto.h"
#include "quota.h"
#include "upstream.h"

/* Unprocessed client input above this pauses reading from the client. */
#define SESSION_INPUT_MAX (128 * 1024)
/* Replies queued for the client above this stop command processing until some are sent,
 * so a client that pipelines without reading cannot make the queue grow without bound. */
#define SESSION_PENDING_MAX 100

/* SS_PROXY: behind a load balancer (listener proxy_protocol), the PROXY header is awaited;
 * nothing else happens until it names the real client (session_proxy.c).
 * SS_WAIT: a command waits (held in s->line) for what session_wait names, or the group a
 * relayed AUTH, DATA or QUIT ends waits for its reply; it resumes once that condition holds.
 * SS_AUTH: an AUTH line was relayed and its reply is owed; SS_SASL: the relay sent 334 and
 * the client's response line is due. SS_VERIFY: local mode: a password is being checked
 * (localauth) and the AUTH's reply is owed. */
enum session_state { SS_HANDSHAKE, SS_COMMAND, SS_WAIT, SS_AUTH, SS_SASL, SS_VERIFY, SS_DATA, SS_BDAT, SS_CLOSING, SS_PROXY };

/* What SS_WAIT waits for. */
enum session_wait {
	SESSION_WAIT_LEG,     /* the relay leg set up (or failed): its capabilities decide */
	SESSION_WAIT_REPLIES, /* every relay reply owed: the reply to the group's last command */
	/* local mode: the password was right; the AUTH's 235 waits for the relay leg (454 if
	 * it fails). Resumes in session_local_auth_leg, not by re-running a command. */
	SESSION_WAIT_AUTH_LEG,
	SESSION_WAIT_LIMIT,   /* the sending-limit check of the held MAIL or RCPT answered */
};

/* The sending-limit check of the held MAIL or RCPT (session_limit.c): none, under way, or
 * answered (the command runs again and takes the answer). */
enum session_limit_state { SL_NONE, SL_CHECKING, SL_ANSWERED };

struct session_limit {
	enum session_limit_state state;
	struct quota_op *op;                  /* SL_CHECKING */
	enum quota_result result;             /* SL_ANSWERED */
	size_t limit;                         /* QUOTA_OVER: the index in quota_limit_names */
	size_t limits[QUOTA_NSCOPES];         /* the index of each key checked */
};

/* The reply after the final dot of DATA, or after BDAT LAST: it ends a message. */
#define SESSION_VERB_MESSAGE_END SMTP_VERB_COUNT

/* What a queued entry stands for: a reply owed by the relay (forwarded or swallowed), or
 * a local reply that must wait for the relay replies queued before it. */
enum session_pending_kind { SP_RELAY, SP_SILENT, SP_LOCAL };

/* Why a session ended: the documented vocabulary of the records ("end"), plus the relay
 * leg's failure (upstream_failure_name) for SE_RELAY. */
enum session_end {
	SE_QUIT,
	SE_CLIENT_TIMEOUT,
	SE_CLIENT_RESET, /* the client closed or reset the connection without QUIT */
	SE_CLIENT_TLS,   /* the client's TLS handshake failed */
	SE_AUTH_FAILED,  /* max_auth_failures reached */
	SE_LIMIT,        /* a connection limit, or too many bad commands */
	SE_PROTOCOL,     /* a line too long, a malformed BDAT */
	SE_DRAIN,        /* shutdown */
	SE_RELAY,        /* the relay leg failed: its failure names the end */
	SE_PROXY,        /* proxy_protocol: an untrusted source, a malformed PROXY header or none in time */
};

/* One message's record: referenced by the transaction while it runs and by each reply owed
 * for it (MAIL, RCPT, the end of data), since pipelining lets the next MAIL come before
 * this message's verdict. Written at the verdict, or when the last reference goes. */
struct session_msgrec {
	unsigned refs;
	char *sender;
	unsigned rcpts;   /* accepted by the relay */
	uint64_t size;    /* content octets received */
	bool content;     /* content went to the relay */
	bool written;
	uint64_t dot_at; /* uv_hrtime() when the end of data went to the relay, for metrics */
	const char *limit; /* the sending limit that refused it or a recipient (records' "limit") */
};

struct session_pending {
	struct session_pending *next;
	enum session_pending_kind kind;
	unsigned verb;               /* enum smtp_verb or SESSION_VERB_MESSAGE_END */
	char *text;                  /* SP_LOCAL: the whole reply, CRLF included */
	struct session_msgrec *rec;  /* the message a MAIL, RCPT or end of data is for */
};

/* Facts about a session that are independent of its state (session_has, session_set). */
enum session_flag {
	SF_TLS = 1u << 0,            /* the client leg is TLS */
	SF_EHLO = 1u << 1,           /* EHLO/HELO done since the start or STARTTLS */
	SF_AUTHED = 1u << 2,         /* the relay accepted the client's AUTH */
	SF_LEG_FAILED = 1u << 3,     /* the relay leg failed or was cut: none until STARTTLS */
	SF_PAUSED_FOR_LEG = 1u << 4, /* client reads stopped because the relay stopped reading */
	SF_QUIT_SENT = 1u << 5,      /* the client's QUIT went to the relay */
	SF_IP_COUNTED = 1u << 6,     /* the peer is counted in srv->per_ip */
	SF_UNAUTH_LEG = 1u << 7,     /* the relay leg counts in srv->unauth_legs until AUTH succeeds */
	SF_LEG_REPLACED = 1u << 8,   /* a leg that worked failed unused and was dropped (once) */
};

/* The mail transaction under way, from MAIL to the end of its message; reset at MAIL, RSET,
 * EHLO/HELO and the end of each message (session_tx_reset). */
struct session_tx {
	struct smtp_data_filter filter; /* the message content, DATA or BDAT */
	bool bdat;                      /* a BDAT message is under way (filter set up for it) */
	uint64_t bdat_left;             /* octets of the current chunk still to come */
	bool bdat_last;                 /* the current chunk is the last */
	bool bdat_local;                /* the current chunk is swallowed and answered locally */
	int bdat_code;                  /* that local answer */
	const char *bdat_text;
	struct session_msgrec *rec; /* from a relayed MAIL on */
};

struct session {
	struct server *srv;
	const struct listener_cfg *lcfg;
	const struct tenant_cfg *tenant;
	struct stream *client;
	struct upstream *up;
	struct pool_lease *lease;           /* local mode: up is lent by srv->pool */
	struct localauth_req *verify;       /* SS_VERIFY: the password check under way */
	struct session *next, *prev;
	enum session_state state;
	struct iobuf in;
	struct session_pending *head, *tail;
	unsigned npending;
	int live;               /* client stream + upstreams not yet closed */
	unsigned flags;         /* enum session_flag */
	enum session_wait wait; /* in SS_WAIT */
	/* The command being handled, kept while it waits (SS_WAIT). */
	char *line;
	size_t line_len;
	struct session_tx tx;
	struct session_limit limit;
	struct iobuf fwd; /* filtered content on its way to the relay */
	unsigned messages;
	unsigned auth_failures;
	unsigned bad_commands;
	uint64_t started;              /* uv_hrtime() at accept */
	struct upstream_info relay;    /* the last relay leg's record (relay.region: one was opened) */
	char user[256];                /* the user the relay accepted */
	char auth_user[256];           /* the user named in the AUTH under way */
	unsigned sasl_responses;       /* client responses in the AUTH under way */
	bool sasl_plain;               /* that AUTH is PLAIN (else LOGIN) */
	char brand[NAME_MAX_LEN + 1];
	char id[24];
	char peer[64]; /* the client's address: the connection's, or the one its PROXY header names */
	int peer_port;
};

/* SC_WAIT: the handler called session_wait and runs again, from the start, once the wait
 * is over (its checks are cheap and their outcome may have changed). */
enum session_cmd_result { SC_DONE, SC_WAIT };

struct session_cmd_entry {
	enum smtp_verb verb;
	enum session_cmd_result (*handler)(struct session *s, const struct smtp_cmd *c);
};

struct session_state_entry {
	const char *name;
	bool (*input)(struct session *s); /* consumes input; false when it cannot go on */
};

/* session_reply.c: the reply queue (replies keep the order of commands) and relaying. */
void session_reply_text(struct session *s, const struct iobuf *text);
void session_reply(struct session *s, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void session_expect_relay(struct session *s, unsigned verb, enum session_pending_kind kind);
struct session_pending *session_pop_pending(struct session *s);
void session_flush_local(struct session *s);
void session_free_pending(struct session *s);
void session_pending_free(struct session *s, struct session_pending *p);
bool session_relay_owed(const struct session *s);
/* Sends line (no CRLF, at most SMTP_AUTH_LINE_MAX octets) and CRLF to the relay. */
void session_send_line(struct session *s, const char *line, size_t len, unsigned nreplies);
void session_relay_line(struct session *s, const char *line, size_t len, unsigned verb);
void session_relay_body(struct session *s, const char *buf, size_t len, unsigned nreplies);
void session_forward_reply(struct session *s, const struct smtp_reply *r, bool scrub);

/* session_cmd.c: commands. */
bool session_input_command(struct session *s);
bool session_input_auth(struct session *s);
bool session_need_upstream(struct session *s, enum session_cmd_result *res, bool is_auth);
/* session_auth.c: AUTH in local mode. */
void session_local_auth_start(struct session *s, const struct smtp_auth_arg *a);
/* SS_SASL in local mode: the client's response in s->line. */
bool session_local_auth_input(struct session *s);
/* Local mode: the wait for the relay leg after a good password is over: 235 or 454. */
void session_local_auth_leg(struct session *s);
static inline bool session_local(const struct session *s)
{
	return s->tenant->auth.mode == TENANT_AUTH_LOCAL;
}

/* session_limit.c: the sending limits, at MAIL (kind QUOTA_MESSAGES) and RCPT (recipients).
 * True when the held command may go on (within the limits, or none apply); false after
 * session_wait (*res SC_WAIT) while the counters are asked, or once refused (*res SC_DONE,
 * the 451 queued, recorded and counted). */
bool session_limit_pass(struct session *s, enum quota_kind kind, enum session_cmd_result *res);
/* The session is going away: an answer under way must not reach it. */
void session_limit_cancel(struct session *s);

/* session_msg.c: message content and message records. */
/* A record for a message whose MAIL line is line, attached to nothing. */
struct session_msgrec *session_msgrec_new(const char *line, size_t len);
void session_tx_reset(struct session *s);
/* A record for the transaction a relayed MAIL line starts, with its sender. */
void session_msgrec_start(struct session *s, const char *line, size_t len);
struct session_msgrec *session_msgrec_ref(struct session_msgrec *r);
void session_msgrec_unref(struct session *s, struct session_msgrec *r);
/* Writes the record with a verdict: the relay's reply r, or livery's own (code, text). */
void session_msgrec_write(struct session *s, struct session_msgrec *rec, int code, const char *text,
                          const char *by);
enum session_cmd_result session_cmd_bdat(struct session *s, const struct smtp_cmd *c);
bool session_input_data(struct session *s);
bool session_input_bdat(struct session *s);

/* session_proxy.c: the PROXY header (SS_PROXY). */
/* Refuses an untrusted source, else enters SS_PROXY. */
void session_proxy_start(struct session *s);
bool session_input_proxy(struct session *s);

/* session.c: states, events and lifetime. */
/* The session proper, once the client's address is known: connection limits, then the
 * greeting (STARTTLS listeners) or the TLS handshake (implicit). */
void session_begin(struct session *s);
void session_pump(struct session *s);
void session_close(struct session *s, enum session_end end, const char *detail);
bool session_start_upstream(struct session *s, bool on_demand);
/* Closes the relay leg (QUIT first with quit) and forgets it. */
void session_drop_upstream(struct session *s, bool quit);
void session_enter_state(struct session *s, enum session_state next);
/* Enters SS_WAIT until why holds; the held command (if any) then runs again. */
void session_wait(struct session *s, enum session_wait why);
static inline bool session_closing(const struct session *s)
{
	return s->state == SS_CLOSING;
}

static inline bool session_has(const struct session *s, enum session_flag f)
{
	return (s->flags & f) != 0;
}

static inline void session_set(struct session *s, enum session_flag f, bool on)
{
	s->flags = on ? s->flags | f : s->flags & ~(unsigned)f;
}
void session_update_flow(struct session *s);
/* The client authenticated (by the relay, or locally with a ready leg). */
void session_authenticated(struct session *s);
/* An AUTH failed: counted; false when that was one too many and the session is closing. */
bool session_auth_failed(struct session *s);

#endif
