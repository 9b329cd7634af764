/* cut.c: the relay's "cut" faults: it closes or resets a connection at a chosen step of the
 * protocol, or after a chosen number of message-content octets, planned per connection. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relay.h"

static const char *const cut_names[] = {
    [CUT_NONE] = "none",   [CUT_ACCEPT] = "accept", [CUT_BANNER] = "banner", [CUT_TLS] = "tls",
    [CUT_EHLO] = "ehlo",   [CUT_AUTH] = "auth",     [CUT_MAIL] = "mail",     [CUT_RCPT] = "rcpt",
    [CUT_DATA] = "data",   [CUT_CONTENT] = "content", [CUT_REPLY] = "reply", [CUT_RSET] = "rset",
    [CUT_QUIT] = "quit",
};

/* "AT", "content:N", each optionally followed by "/reset" (default: close). */
bool cut_parse(const char *spec, struct cut *out)
{
    char at[32];
    size_t n = strcspn(spec, ":/");
    const char *rest = spec + n;

    *out = (struct cut){ .at = CUT_NONE };
    if (n == 0 || n >= sizeof at)
        return false;
    memcpy(at, spec, n);
    at[n] = '\0';
    for (size_t i = 0; i < sizeof cut_names / sizeof cut_names[0]; i++)
        if (strcmp(at, cut_names[i]) == 0)
            out->at = (enum cut_at)i;
    if (out->at == CUT_NONE && strcmp(at, "none") != 0)
        return false;
    if (*rest == ':') {
        char *end;
        if (out->at != CUT_CONTENT || !isdigit((unsigned char)rest[1]))
            return false;
        out->octets = strtoull(rest + 1, &end, 10);
        rest = end;
    } else if (out->at == CUT_CONTENT) {
        return false;
    }
    if (strcmp(rest, "/reset") == 0)
        out->reset = true;
    else if (*rest != '\0')
        return false;
    return true;
}

/* --cut-file is read at every accept, so one relay serves a sweep of faults. */
void cut_plan(struct conn *c)
{
    c->cut = opts.cut;
    if (!opts.cut_file)
        return;
    FILE *f = fopen(opts.cut_file, "r");
    if (!f)
        return; /* no file: no cut */
    char line[128] = "";
    if (fgets(line, sizeof line, f))
        line[strcspn(line, "\r\n")] = '\0';
    fclose(f);
    if (line[0] && !cut_parse(line, &c->cut))
        warnx_relay("%s: bad cut \"%s\"", opts.cut_file, line);
}

static void cut_now(struct conn *c)
{
    record_event("conn %u cut %s%s after %llu content octets", c->n, cut_names[c->cut.at],
                 c->cut.reset ? "/reset" : "", c->content);
    c->cut.at = CUT_NONE;
    conn_cut(c, c->cut.reset);
}

bool cut_due(struct conn *c, enum cut_at at)
{
    if (c->cut.at != at || c->dead)
        return false;
    cut_now(c);
    return true;
}

/* During the handshake: the start of the ClientHello is read, then the connection cut. */
bool cut_tls_due(struct conn *c)
{
    if (c->cut.at != CUT_TLS || c->dead)
        return false;
    char head[5];
    ssize_t r;
    do
        r = recv(c->fd, head, sizeof head, 0);
    while (r < 0 && errno == EINTR);
    cut_now(c);
    return true;
}

size_t cut_content_room(const struct conn *c, size_t want)
{
    if (c->cut.at != CUT_CONTENT || c->content >= c->cut.octets)
        return want;
    uint64_t room = c->cut.octets - c->content;
    return room < want ? (size_t)room : want;
}

bool cut_content_taken(struct conn *c, size_t n)
{
    c->content += n;
    if (c->cut.at != CUT_CONTENT || c->content < c->cut.octets)
        return false;
    cut_now(c);
    return true;
}
