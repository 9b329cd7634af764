/* relay.h: shared declarations of livery-test-relay (options, connection state, helpers). */
#ifndef LIVERY_TEST_RELAY_H
#define LIVERY_TEST_RELAY_H

#include <stdbool.h>
#include <stddef.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#define RELAY_HOST "smtp.mailgun.test"
#define IN_CAP 16384 /* input buffer: the longest command line we accept, minus one */

enum fault {
    FAULT_STARTTLS_INJECT = 1u << 0,
    FAULT_STARTTLS_ERROR = 1u << 1,
    FAULT_STALL_BANNER = 1u << 2,
    FAULT_STALL_DATA = 1u << 3,
    FAULT_RESET_DATA = 1u << 4,
    FAULT_RESET_BANNER = 1u << 5,
    FAULT_STALL_TLS = 1u << 6,
    FAULT_STALL_MAIL = 1u << 7,
    FAULT_STOP_READING_DATA = 1u << 8,
    FAULT_STARTTLS_INJECT_PARTIAL = 1u << 9,
};

/* Where a planned cut closes (or resets) the connection: before the banner, after it, in
 * the TLS handshake, after the reply to EHLO (once TLS is up), AUTH, MAIL, RCPT or DATA
 * (354), after N octets of message content, after the end-of-message reply, or on
 * receiving RSET or QUIT (unanswered). */
enum cut_at {
    CUT_NONE, CUT_ACCEPT, CUT_BANNER, CUT_TLS, CUT_EHLO, CUT_AUTH, CUT_MAIL, CUT_RCPT, CUT_DATA,
    CUT_CONTENT, CUT_REPLY, CUT_RSET, CUT_QUIT,
};

struct cut {
    enum cut_at at;
    unsigned long long octets; /* CUT_CONTENT */
    bool reset;                /* RST instead of FIN */
};

struct user {
    char *name;
    char *pass;
};

struct reply_override {
    char *verb; /* upper case */
    char *text; /* "CODE TEXT", no CRLF */
};

struct relay_opts {
    const char *port, *listen, *cert, *key, *record, *ready_file;
    bool implicit, no_starttls, reject_auth;
    /* --plaintext-auth: AUTH offered and accepted also before TLS (for require_tls = false). */
    bool plaintext_auth;
    /* --no-ext: EHLO keywords (the first word of the line) left out of the EHLO reply. */
    const char *no_ext[8];
    size_t nno_ext;
    /* --sink: a fast stand-in for benchmarks: nothing recorded, messages discarded, AUTH
     * accepted for any credentials (unless --user is given) and also without TLS. */
    bool sink;
    bool any_user; /* no --user given in sink mode */
    struct user *users;
    size_t nusers;
    struct reply_override *replies;
    size_t nreplies;
    unsigned faults;
    struct cut cut;       /* --cut: for every connection */
    const char *cut_file; /* --cut-file: re-read at each accept, overrides --cut */
    int idle_close;       /* --idle-close: seconds without input before the relay closes (0: never) */
};

extern struct relay_opts opts;
extern WOLFSSL_CTX *tls_ctx;

/* A growable byte buffer. */
struct buf {
    char *p;
    size_t len, cap;
};

void buf_append(struct buf *b, const void *data, size_t n);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_free(struct buf *b);
bool buf_ends_crlf(const struct buf *b);
/* Drops all but the last n bytes. */
void buf_keep_tail(struct buf *b, size_t n);
/* Decodes base64 into out (NUL-terminated, cap bytes); returns the length or -1. */
long base64_decode(const char *in, char *out, size_t cap);
void *xcalloc(size_t n, size_t size);
void warnx_relay(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

struct conn {
    int fd;
    unsigned n;        /* connection number, from 1 */
    int raw_fd;        /* conn-<n>.raw */
    WOLFSSL *ssl;      /* non-NULL once TLS is on */
    bool dead;         /* stop reading; close the connection */
    bool was_reset;    /* socket already closed abortively */
    char in[IN_CAP];   /* received, not yet consumed: in[off .. off+len) */
    size_t off, len;
    bool authed;
    char user[512];
    bool has_mail;
    size_t nrcpt;
    bool in_bdat;
    struct buf env;     /* "MAIL ..." and "RCPT ..." lines of the transaction */
    struct buf payload; /* message bytes of the transaction */
    struct cut cut;     /* this connection's planned cut */
    unsigned long long content; /* message-content octets read so far (DATA and BDAT) */
};

/* conn.c */
struct conn *conn_new(int fd, unsigned n);
void conn_free(struct conn *c);
size_t conn_fill(struct conn *c);
/* Bytes up to and including the next LF, or all buffered bytes once max (or IN_CAP) are
 * buffered without one; 0 on EOF. */
size_t conn_chunk(struct conn *c, size_t max);
void conn_consume(struct conn *c, size_t n);
enum line_status { LINE_OK, LINE_LONG, LINE_EOF };
enum line_status conn_read_line(struct conn *c, char *out);
bool conn_write(struct conn *c, const void *p, size_t n);
bool conn_tls_accept(struct conn *c);
/* TLS handshakes completed, and how many of them resumed a session (SIGUSR1 prints both). */
extern unsigned long tls_handshakes, tls_resumed;
void conn_sink(struct conn *c);
void conn_wait_peer_close(struct conn *c);
void conn_reset(struct conn *c);
void conn_close(struct conn *c);
/* Ends the connection at once: a FIN (and an RST for anything unread), or an RST. */
void conn_cut(struct conn *c, bool reset);

/* cut.c */
bool cut_parse(const char *spec, struct cut *out);
void cut_plan(struct conn *c);
/* Cuts (and returns true) when c's plan is to cut at this step. */
bool cut_due(struct conn *c, enum cut_at at);
bool cut_tls_due(struct conn *c);
/* How many of want content octets may be read before a planned content cut. */
size_t cut_content_room(const struct conn *c, size_t want);
/* Counts n content octets read; cuts (and returns true) once the planned count is reached. */
bool cut_content_taken(struct conn *c, size_t n);

/* record.c */
bool record_init(const char *dir);
void record_event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int record_open_raw(unsigned n);
void record_raw(int fd, const void *p, size_t n);
unsigned record_message(const char *user, const struct buf *env, const struct buf *payload);

/* smtp.c */
void smtp_session(struct conn *c);

#endif
