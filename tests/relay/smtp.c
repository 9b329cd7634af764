/* smtp.c: the relay's SMTP server state machine (EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA, BDAT...). */
#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"

#define QUEUED_FMT "250 2.0.0 Ok: queued as %s by " RELAY_HOST

/* ---- replies ---- */

/* The reply text for VERB: the last --reply override for it, else dflt. */
static const char *reply_text(const char *verb, const char *dflt)
{
    for (size_t i = opts.nreplies; i-- > 0;)
        if (strcasecmp(opts.replies[i].verb, verb) == 0)
            return opts.replies[i].text;
    return dflt;
}

static int reply_code(const char *text)
{
    return atoi(text);
}

static bool reply_ok(const char *text)
{
    return reply_code(text) / 100 == 2;
}

/* Sends one reply line; a 421 also ends the session, as RFC 5321 wants. */
static void send_reply(struct conn *c, const char *text)
{
    struct buf b = { 0 };
    buf_printf(&b, "%s\r\n", text);
    conn_write(c, b.p, b.len);
    buf_free(&b);
    if (reply_code(text) == 421)
        c->dead = true;
}

static void answer(struct conn *c, const char *verb, const char *dflt)
{
    send_reply(c, reply_text(verb, dflt));
}

/* ---- state ---- */

static void reset_txn(struct conn *c)
{
    c->has_mail = false;
    c->nrcpt = 0;
    c->in_bdat = false;
    c->env.len = 0;
    c->payload.len = 0;
}

static void new_queue_id(char *out, size_t cap)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static uint64_t next;
    pthread_mutex_lock(&lock);
    if (next == 0)
        next = ((uint64_t)time(NULL) << 20) ^ ((uint64_t)getpid() << 4);
    uint64_t id = next++;
    pthread_mutex_unlock(&lock);
    snprintf(out, cap, "%012" PRIX64, id & UINT64_C(0xFFFFFFFFFFFF));
}

/* Records the finished transaction (when accepted) and sends the end-of-message reply. */
static void finish_message(struct conn *c, const char *verb)
{
    char id[32], dflt[128];
    new_queue_id(id, sizeof id);
    snprintf(dflt, sizeof dflt, QUEUED_FMT, id);
    const char *text = reply_text(verb, reply_text("DOT", dflt));
    bool stall = opts.faults & FAULT_STALL_DATA;
    if (stall || reply_ok(text))
        record_message(c->user, &c->env, &c->payload);
    reset_txn(c);
    if (stall) {
        conn_sink(c);
        return;
    }
    send_reply(c, text);
    cut_due(c, CUT_REPLY);
}

/* ---- commands ---- */

/* --no-ext: the keyword (first word of an EHLO line) is left out. */
static bool ext_left_out(const char *line)
{
    size_t n = strcspn(line, " ");
    for (size_t i = 0; i < opts.nno_ext; i++) {
        if (strlen(opts.no_ext[i]) == n && strncasecmp(line, opts.no_ext[i], n) == 0)
            return true;
    }
    return false;
}

static void cmd_ehlo(struct conn *c, const char *arg)
{
    reset_txn(c);
    if (!*arg) {
        send_reply(c, "501 5.5.4 Syntax: EHLO hostname");
        return;
    }
    const char *over = reply_text("EHLO", NULL);
    if (over) {
        send_reply(c, over);
        return;
    }
    const char *ext[10];
    size_t n = 0;
    ext[n++] = "PIPELINING";
    ext[n++] = "SIZE 52428800";
    ext[n++] = "8BITMIME";
    ext[n++] = "ENHANCEDSTATUSCODES";
    ext[n++] = "SMTPUTF8";
    ext[n++] = "CHUNKING";
    if (!c->ssl && !opts.no_starttls)
        ext[n++] = "STARTTLS";
    if (c->ssl || opts.sink || opts.plaintext_auth)
        ext[n++] = "AUTH PLAIN LOGIN";
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (!ext_left_out(ext[i]))
            ext[kept++] = ext[i];
    }
    n = kept;
    struct buf b = { 0 };
    buf_printf(&b, "250-" RELAY_HOST " greets %s (mailgun)\r\n", arg);
    for (size_t i = 0; i < n; i++)
        buf_printf(&b, "250%c%s\r\n", i + 1 == n ? ' ' : '-', ext[i]);
    conn_write(c, b.p, b.len);
    buf_free(&b);
    if (c->ssl)
        cut_due(c, CUT_EHLO);
}

static void cmd_helo(struct conn *c, const char *arg)
{
    reset_txn(c);
    answer(c, "HELO", "250 " RELAY_HOST);
}

static void cmd_starttls(struct conn *c, const char *arg)
{
    if (c->ssl) {
        send_reply(c, "503 5.5.1 TLS already active");
        return;
    }
    if (opts.no_starttls) {
        send_reply(c, "502 5.5.1 Command not implemented");
        return;
    }
    if (opts.faults & FAULT_STARTTLS_ERROR) {
        send_reply(c, "454 4.7.0 TLS not available");
        return;
    }
    const char *text = reply_text("STARTTLS", "220 2.0.0 Ready to start TLS");
    if (reply_code(text) != 220) {
        send_reply(c, text);
        return;
    }
    struct buf b = { 0 };
    /* An injected whole reply, or the start of one (no line end yet), in the same write. */
    buf_printf(&b, "%s\r\n%s", text,
               (opts.faults & FAULT_STARTTLS_INJECT)           ? "250 injected\r\n"
               : (opts.faults & FAULT_STARTTLS_INJECT_PARTIAL) ? "250-"
                                                               : "");
    bool sent = conn_write(c, b.p, b.len);
    buf_free(&b);
    c->off = c->len = 0; /* plaintext sent ahead of the handshake is discarded */
    if (sent && cut_tls_due(c))
        return;
    if (sent && (opts.faults & FAULT_STALL_TLS)) {
        conn_wait_peer_close(c); /* the ClientHello stays unread */
        return;
    }
    if (!sent || !conn_tls_accept(c))
        return;
    c->authed = false;
    c->user[0] = '\0';
    reset_txn(c);
}

static bool user_valid(const char *name, const char *pass)
{
    if (opts.reject_auth)
        return false;
    if (opts.any_user)
        return true;
    for (size_t i = 0; i < opts.nusers; i++)
        if (strcmp(opts.users[i].name, name) == 0 && strcmp(opts.users[i].pass, pass) == 0)
            return true;
    return false;
}

static void finish_auth(struct conn *c, const char *name, const char *pass)
{
    bool valid = user_valid(name, pass);
    const char *text = reply_text("AUTH", valid ? "235 2.7.0 Authentication successful (mailgun)"
                                                : "535 5.7.8 Authentication failed at " RELAY_HOST);
    if (reply_ok(text)) {
        c->authed = true;
        snprintf(c->user, sizeof c->user, "%s", name);
        record_event("conn %u auth ok %s", c->n, name);
    } else {
        record_event("conn %u auth fail", c->n);
    }
    send_reply(c, text);
    cut_due(c, CUT_AUTH);
}

/* Gets one base64 SASL response: the initial one if given, else after a 334 prompt.
 * Returns the decoded length, or -1 after having replied with an error. */
static long sasl_response(struct conn *c, const char *initial, const char *prompt, char *out,
                          size_t cap)
{
    char line[IN_CAP];
    const char *resp = initial;
    if (!resp) {
        send_reply(c, prompt);
        enum line_status st = conn_read_line(c, line);
        if (st != LINE_OK) {
            if (st == LINE_LONG)
                send_reply(c, "500 5.5.2 Line too long");
            return -1;
        }
        resp = line;
    }
    if (strcmp(resp, "*") == 0) {
        send_reply(c, "501 5.7.0 Authentication aborted");
        return -1;
    }
    if (strcmp(resp, "=") == 0) { /* RFC 4954: an empty initial response */
        out[0] = '\0';
        return 0;
    }
    long n = base64_decode(resp, out, cap);
    if (n < 0)
        send_reply(c, "501 5.5.2 Cannot decode response");
    return n;
}

static void auth_plain(struct conn *c, const char *initial)
{
    char dec[1024];
    long n = sasl_response(c, initial, "334 ", dec, sizeof dec);
    if (n < 0)
        return;
    const char *authcid = memchr(dec, '\0', (size_t)n);
    const char *pass = authcid ? memchr(authcid + 1, '\0', (size_t)(dec + n - authcid - 1)) : NULL;
    if (!pass) {
        send_reply(c, "501 5.5.2 Malformed PLAIN response");
        return;
    }
    finish_auth(c, authcid + 1, pass + 1);
}

static void auth_login(struct conn *c, const char *initial)
{
    char name[512], pass[512];
    if (sasl_response(c, initial, "334 VXNlcm5hbWU6", name, sizeof name) < 0)
        return;
    if (sasl_response(c, NULL, "334 UGFzc3dvcmQ6", pass, sizeof pass) < 0)
        return;
    finish_auth(c, name, pass);
}

static void cmd_auth(struct conn *c, const char *arg)
{
    if (!c->ssl && !opts.sink && !opts.plaintext_auth) {
        send_reply(c, "530 5.7.0 Must issue a STARTTLS command first");
        return;
    }
    if (c->authed || c->has_mail) {
        send_reply(c, "503 5.5.1 Already authenticated");
        return;
    }
    char mech[32];
    size_t mlen = strcspn(arg, " ");
    const char *initial = arg[mlen] == ' ' ? arg + mlen + 1 : NULL;
    snprintf(mech, sizeof mech, "%.*s", (int)(mlen < 31 ? mlen : 31), arg);
    if (strcasecmp(mech, "PLAIN") == 0)
        auth_plain(c, initial);
    else if (strcasecmp(mech, "LOGIN") == 0)
        auth_login(c, initial);
    else
        send_reply(c, "504 5.5.4 Unrecognized authentication type");
}

static void cmd_mail(struct conn *c, const char *arg)
{
    if (!c->authed) {
        send_reply(c, "530 5.7.0 Authentication required");
        return;
    }
    if (c->has_mail) {
        send_reply(c, "503 5.5.1 Nested MAIL command");
        return;
    }
    if (strncasecmp(arg, "FROM:", 5) != 0) {
        send_reply(c, "501 5.5.4 Syntax: MAIL FROM:<address>");
        return;
    }
    if (opts.faults & FAULT_STALL_MAIL) {
        conn_sink(c); /* no reply, ever; what follows is still recorded */
        return;
    }
    const char *text = reply_text("MAIL", "250 2.1.0 Sender ok");
    if (reply_ok(text)) {
        c->has_mail = true;
        buf_printf(&c->env, "MAIL %s\n", arg);
    }
    send_reply(c, text);
    cut_due(c, CUT_MAIL);
}

static void cmd_rcpt(struct conn *c, const char *arg)
{
    if (!c->has_mail) {
        send_reply(c, "503 5.5.1 Need MAIL before RCPT");
        return;
    }
    if (strncasecmp(arg, "TO:", 3) != 0) {
        send_reply(c, "501 5.5.4 Syntax: RCPT TO:<address>");
        return;
    }
    const char *text = reply_text("RCPT", "250 2.1.5 Recipient ok");
    if (reply_ok(text)) {
        c->nrcpt++;
        buf_printf(&c->env, "RCPT %s\n", arg);
    }
    send_reply(c, text);
    cut_due(c, CUT_RCPT);
}

/* Whether the transaction may take message data; replies with the error if not. */
static bool txn_ready(struct conn *c)
{
    if (!c->has_mail)
        send_reply(c, "503 5.5.1 Need MAIL command");
    else if (c->nrcpt == 0)
        send_reply(c, "503 5.5.1 Need RCPT command");
    return c->has_mail && c->nrcpt > 0;
}

static bool reset_data_due(struct conn *c)
{
    if (!(opts.faults & FAULT_RESET_DATA) || c->payload.len < 100)
        return false;
    conn_reset(c);
    return true;
}

/* Reads dot-stuffed DATA up to the terminating ".\r\n", which is not kept. With the
 * reset-data fault, chunks stop at payload byte 100 even mid-line. */
static bool read_data(struct conn *c)
{
    for (;;) {
        bool reset = opts.faults & FAULT_RESET_DATA;
        size_t n = conn_chunk(c, reset ? 100 - c->payload.len : IN_CAP);
        if (n == 0)
            return false;
        n = cut_content_room(c, n);
        const char *p = c->in + c->off;
        bool line_start = c->payload.len == 0 || buf_ends_crlf(&c->payload);
        if (line_start && n == 3 && memcmp(p, ".\r\n", 3) == 0) {
            conn_consume(c, n);
            return true;
        }
        buf_append(&c->payload, p, n);
        conn_consume(c, n);
        if (opts.sink)
            buf_keep_tail(&c->payload, 2); /* only line-start tracking needs the payload */
        if (reset_data_due(c) || cut_content_taken(c, n))
            return false;
    }
}

static void cmd_data(struct conn *c, const char *arg)
{
    if (c->in_bdat) {
        send_reply(c, "503 5.5.1 DATA not allowed after BDAT");
        return;
    }
    if (!txn_ready(c))
        return;
    const char *text = reply_text("DATA", "354 Start mail input; end with <CRLF>.<CRLF>");
    send_reply(c, text);
    if (reply_code(text) != 354 || cut_due(c, CUT_DATA))
        return;
    if (opts.faults & FAULT_STOP_READING_DATA) {
        conn_wait_peer_close(c); /* the peer's writes back up */
        return;
    }
    c->payload.len = 0;
    if (read_data(c))
        finish_message(c, "DOT");
}

/* Reads exactly n bytes of a BDAT chunk, appending them to the payload if keep. */
static bool read_exact(struct conn *c, uint64_t n, bool keep)
{
    while (n > 0) {
        if (c->len == 0 && !conn_fill(c))
            return false;
        size_t take = cut_content_room(c, n < c->len ? (size_t)n : c->len);
        if (keep)
            buf_append(&c->payload, c->in + c->off, take);
        conn_consume(c, take);
        n -= take;
        if (keep && (reset_data_due(c) || cut_content_taken(c, take)))
            return false;
    }
    return true;
}

static bool parse_bdat(const char *arg, uint64_t *size, bool *last)
{
    char *end;
    if (!isdigit((unsigned char)arg[0]))
        return false;
    *size = strtoull(arg, &end, 10);
    while (*end == ' ')
        end++;
    *last = strcasecmp(end, "LAST") == 0;
    return *end == '\0' || *last;
}

static void cmd_bdat(struct conn *c, const char *arg)
{
    uint64_t size;
    bool last;
    if (!parse_bdat(arg, &size, &last)) {
        send_reply(c, "501 5.5.4 Syntax: BDAT <size> [LAST]");
        return;
    }
    if (!c->has_mail || c->nrcpt == 0) {
        if (read_exact(c, size, false))
            txn_ready(c);
        return;
    }
    if (!c->in_bdat)
        c->payload.len = 0;
    c->in_bdat = true;
    if (!read_exact(c, size, !opts.sink))
        return;
    if (last) {
        finish_message(c, "BDAT");
        return;
    }
    char dflt[64];
    snprintf(dflt, sizeof dflt, "250 2.0.0 %" PRIu64 " octets received", size);
    const char *text = reply_text("BDAT", dflt);
    if (!reply_ok(text))
        reset_txn(c);
    send_reply(c, text);
}

static void cmd_rset(struct conn *c, const char *arg)
{
    if (cut_due(c, CUT_RSET))
        return;
    reset_txn(c);
    answer(c, "RSET", "250 2.0.0 Ok");
}

static void cmd_noop(struct conn *c, const char *arg)
{
    answer(c, "NOOP", "250 2.0.0 Ok");
}

static void cmd_quit(struct conn *c, const char *arg)
{
    if (cut_due(c, CUT_QUIT))
        return;
    answer(c, "QUIT", "221 2.0.0 " RELAY_HOST " closing connection");
    c->dead = true;
}

static const struct command {
    const char *verb;
    void (*run)(struct conn *c, const char *arg);
} commands[] = {
    { "EHLO", cmd_ehlo }, { "HELO", cmd_helo }, { "STARTTLS", cmd_starttls },
    { "AUTH", cmd_auth }, { "MAIL", cmd_mail }, { "RCPT", cmd_rcpt },
    { "DATA", cmd_data }, { "BDAT", cmd_bdat }, { "RSET", cmd_rset },
    { "NOOP", cmd_noop }, { "QUIT", cmd_quit },
};

static void dispatch(struct conn *c, char *line)
{
    size_t vlen = strcspn(line, " ");
    const char *arg = line[vlen] ? line + vlen + 1 : "";
    line[vlen] = '\0';
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcasecmp(line, commands[i].verb) == 0) {
            commands[i].run(c, arg);
            return;
        }
    }
    answer(c, line, "500 5.5.2 Command unrecognized");
}

void smtp_session(struct conn *c)
{
    char line[IN_CAP];
    answer(c, "BANNER", "220 " RELAY_HOST " ESMTP Mailgun Relay ready");
    cut_due(c, CUT_BANNER);
    while (!c->dead) {
        enum line_status st = conn_read_line(c, line);
        if (st == LINE_EOF)
            break;
        if (st == LINE_LONG)
            send_reply(c, "500 5.5.2 Line too long");
        else
            dispatch(c, line);
    }
}
