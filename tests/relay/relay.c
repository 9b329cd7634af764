/* relay.c: livery-test-relay's entry point (command line, TLS context, listener, accept loop). */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relay.h"

#include <wolfssl/wolfcrypt/ecc.h>

struct relay_opts opts = { .listen = "127.0.0.1" };
WOLFSSL_CTX *tls_ctx;

static const struct {
    const char *name;
    unsigned bit;
} fault_names[] = {
    { "starttls-inject", FAULT_STARTTLS_INJECT }, { "starttls-error", FAULT_STARTTLS_ERROR },
    { "stall-banner", FAULT_STALL_BANNER },       { "stall-data", FAULT_STALL_DATA },
    { "reset-data", FAULT_RESET_DATA },           { "reset-banner", FAULT_RESET_BANNER },
    { "stall-tls", FAULT_STALL_TLS },             { "stall-mail", FAULT_STALL_MAIL },
    { "stop-reading-data", FAULT_STOP_READING_DATA },
    { "starttls-inject-partial", FAULT_STARTTLS_INJECT_PARTIAL },
};

static void usage(FILE *out)
{
    fputs("usage: livery-test-relay --port P [--listen 127.0.0.1] --cert F --key F --record DIR\n"
          "         [--implicit] [--no-starttls] [--reject-auth] [--no-ext KEYWORD]...\n"
          "         [--plaintext-auth] [--user NAME:PASSWORD]... [--reply VERB=CODE TEXT]...\n"
          "         [--fault NAME]... [--cut AT[:N][/reset]] [--cut-file F] [--ready-file F]\n"
          "         [--idle-close SECONDS]   (close a connection silent that long: a relay's idle timeout)\n"
          "replies: VERB is a command, DOT (end of data), AUTH (final auth reply) or BANNER\n"
          "faults: starttls-inject starttls-error stall-banner stall-data reset-data "
          "reset-banner\n"
          "        stall-tls stall-mail stop-reading-data starttls-inject-partial\n"
          "cuts: close (or /reset) the connection at accept banner tls ehlo auth mail rcpt data\n"
          "      content:N (after N octets of message content) reply rset quit; --cut-file F\n"
          "      holds one such spec, re-read at each accept (missing or empty: no cut)\n"
          "   or: livery-test-relay --sink --port P --cert F --key F [--implicit] [--user N:P]...\n"
          "         a benchmark sink: no recording (--record optional and unused), messages\n"
          "         discarded, AUTH accepted with any credentials unless --user is given, and\n"
          "         also before TLS (for proxies with a plaintext backend)\n",
          out);
}

static _Noreturn void bad_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "livery-test-relay: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    usage(stderr);
    exit(2);
}

static void add_user(const char *spec)
{
    const char *colon = strchr(spec, ':');
    if (!colon || colon == spec)
        bad_usage("--user wants NAME:PASSWORD, got \"%s\"", spec);
    opts.users = realloc(opts.users, (opts.nusers + 1) * sizeof *opts.users);
    if (!opts.users)
        abort();
    opts.users[opts.nusers].name = strndup(spec, (size_t)(colon - spec));
    opts.users[opts.nusers].pass = strdup(colon + 1);
    opts.nusers++;
}

static void add_reply(const char *spec)
{
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || strlen(eq + 1) < 3 || eq[1] < '2' || eq[1] > '5')
        bad_usage("--reply wants VERB=CODE TEXT, got \"%s\"", spec);
    opts.replies = realloc(opts.replies, (opts.nreplies + 1) * sizeof *opts.replies);
    if (!opts.replies)
        abort();
    opts.replies[opts.nreplies].verb = strndup(spec, (size_t)(eq - spec));
    opts.replies[opts.nreplies].text = strdup(eq + 1);
    opts.nreplies++;
}

static void add_fault(const char *name)
{
    for (size_t i = 0; i < sizeof fault_names / sizeof fault_names[0]; i++) {
        if (strcmp(fault_names[i].name, name) == 0) {
            opts.faults |= fault_names[i].bit;
            return;
        }
    }
    bad_usage("unknown fault \"%s\"", name);
}

static void parse_args(int argc, char **argv)
{
    enum { O_PORT = 256, O_LISTEN, O_CERT, O_KEY, O_RECORD, O_IMPLICIT, O_NO_STARTTLS,
           O_REJECT_AUTH, O_NO_EXT, O_PLAINTEXT_AUTH, O_USER, O_REPLY, O_FAULT, O_READY, O_SINK, O_HELP, O_IDLE_CLOSE,
           O_CUT, O_CUT_FILE };
    static const struct option longopts[] = {
        { "port", required_argument, NULL, O_PORT },
        { "listen", required_argument, NULL, O_LISTEN },
        { "cert", required_argument, NULL, O_CERT },
        { "key", required_argument, NULL, O_KEY },
        { "record", required_argument, NULL, O_RECORD },
        { "implicit", no_argument, NULL, O_IMPLICIT },
        { "no-starttls", no_argument, NULL, O_NO_STARTTLS },
        { "reject-auth", no_argument, NULL, O_REJECT_AUTH },
        { "no-ext", required_argument, NULL, O_NO_EXT },
        { "plaintext-auth", no_argument, NULL, O_PLAINTEXT_AUTH },
        { "user", required_argument, NULL, O_USER },
        { "reply", required_argument, NULL, O_REPLY },
        { "fault", required_argument, NULL, O_FAULT },
        { "ready-file", required_argument, NULL, O_READY },
        { "idle-close", required_argument, NULL, O_IDLE_CLOSE },
        { "cut", required_argument, NULL, O_CUT },
        { "cut-file", required_argument, NULL, O_CUT_FILE },
        { "sink", no_argument, NULL, O_SINK },
        { "help", no_argument, NULL, O_HELP },
        { NULL, 0, NULL, 0 },
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case O_PORT: opts.port = optarg; break;
        case O_LISTEN: opts.listen = optarg; break;
        case O_CERT: opts.cert = optarg; break;
        case O_KEY: opts.key = optarg; break;
        case O_RECORD: opts.record = optarg; break;
        case O_IMPLICIT: opts.implicit = true; break;
        case O_NO_STARTTLS: opts.no_starttls = true; break;
        case O_REJECT_AUTH: opts.reject_auth = true; break;
        case O_NO_EXT:
            if (opts.nno_ext == sizeof opts.no_ext / sizeof opts.no_ext[0])
                bad_usage("too many --no-ext (\"%s\")", optarg);
            opts.no_ext[opts.nno_ext++] = optarg;
            break;
        case O_PLAINTEXT_AUTH: opts.plaintext_auth = true; break;
        case O_USER: add_user(optarg); break;
        case O_REPLY: add_reply(optarg); break;
        case O_FAULT: add_fault(optarg); break;
        case O_READY: opts.ready_file = optarg; break;
        case O_IDLE_CLOSE: opts.idle_close = atoi(optarg); break;
        case O_CUT:
            if (!cut_parse(optarg, &opts.cut))
                bad_usage("bad --cut \"%s\"", optarg);
            break;
        case O_CUT_FILE: opts.cut_file = optarg; break;
        case O_SINK: opts.sink = true; break;
        case O_HELP: usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind < argc)
        bad_usage("unexpected argument \"%s\"", argv[optind]);
    if (opts.sink) {
        if (!opts.port || !opts.cert || !opts.key)
            bad_usage("%s are required", "--port, --cert and --key");
        opts.record = NULL;
        opts.any_user = opts.nusers == 0;
        return;
    }
    if (!opts.port || !opts.cert || !opts.key || !opts.record)
        bad_usage("%s are required", "--port, --cert, --key and --record");
    if (opts.nusers == 0)
        add_user("user@acme.test:secret");
}

/* Does nothing, but its presence makes wolfSSL keep the client's SNI for
 * wolfSSL_SNI_GetRequest (the "tls-info" event): without a callback or a name of our own
 * registered with wolfSSL_CTX_UseSNI, a build without WOLFSSL_ALWAYS_KEEP_SNI (the static
 * one from bench/build-wolfssl.sh) skips the extension. */
static int keep_sni(WOLFSSL *ssl, int *alert, void *arg)
{
    return 0; /* SSL_TLSEXT_ERR_OK */
}

static bool tls_setup(void)
{
    wolfSSL_Init();
    tls_ctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
    if (!tls_ctx || wolfSSL_CTX_SetMinVersion(tls_ctx, WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS) {
        warnx_relay("cannot create the TLS context");
        return false;
    }
    if (wolfSSL_CTX_use_certificate_chain_file(tls_ctx, opts.cert) != WOLFSSL_SUCCESS) {
        warnx_relay("%s: cannot load the certificate chain", opts.cert);
        return false;
    }
    if (wolfSSL_CTX_use_PrivateKey_file(tls_ctx, opts.key, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
        warnx_relay("%s: cannot load the private key", opts.key);
        return false;
    }
    wolfSSL_CTX_set_servername_callback(tls_ctx, keep_sni);
    return true;
}

static int listen_socket(void)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV };
    struct addrinfo *ai;
    int rc = getaddrinfo(opts.listen, opts.port, &hints, &ai);
    if (rc != 0) {
        warnx_relay("%s port %s: %s", opts.listen, opts.port, gai_strerror(rc));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, opts.sink ? 4096 : 128) < 0) {
        warnx_relay("%s port %s: %s", opts.listen, opts.port, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

/* Writes the bound port number to the ready file, atomically. */
static bool write_ready_file(int lfd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[64], port[16], tmp[4096];
    if (getsockname(lfd, (struct sockaddr *)&ss, &sl) < 0 ||
        getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return false;
    snprintf(tmp, sizeof tmp, "%s.tmp", opts.ready_file);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return false;
    fprintf(f, "%s\n", port);
    return fclose(f) == 0 && rename(tmp, opts.ready_file) == 0;
}

static void on_signal(int sig)
{
    _exit(0);
}

/* Appends the decimal digits of v to *p (async-signal-safe). */
static void put_number(char **p, unsigned long v)
{
    char digits[24];
    int n = 0;
    do
        digits[n++] = (char)('0' + v % 10);
    while ((v /= 10) > 0);
    while (n > 0)
        *(*p)++ = digits[--n];
}

static void put_text(char **p, const char *s)
{
    while (*s)
        *(*p)++ = *s++;
}

/* SIGUSR1: "tls <handshakes> resumed <resumed>" on stderr, for benchmarks to see how many
 * of a proxy's relay legs resumed a TLS session. */
static void on_stats(int sig)
{
    char line[80], *p = line;
    put_text(&p, "tls ");
    put_number(&p, __atomic_load_n(&tls_handshakes, __ATOMIC_RELAXED));
    put_text(&p, " resumed ");
    put_number(&p, __atomic_load_n(&tls_resumed, __ATOMIC_RELAXED));
    put_text(&p, "\n");
    ssize_t ignored = write(2, line, (size_t)(p - line));
    (void)ignored;
}

static void install_signals(void)
{
    struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    struct sigaction st = { .sa_handler = on_stats, .sa_flags = SA_RESTART };
    sigemptyset(&st.sa_mask);
    sigaction(SIGUSR1, &st, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static void serve(struct conn *c)
{
    cut_plan(c);
    if (cut_due(c, CUT_ACCEPT) || (opts.implicit && cut_tls_due(c)))
        ; /* cut before a word was said */
    else if (opts.faults & FAULT_RESET_BANNER)
        conn_reset(c);
    else if (opts.faults & FAULT_STALL_BANNER)
        conn_sink(c);
    else if (opts.implicit && (opts.faults & FAULT_STALL_TLS))
        conn_wait_peer_close(c);
    else if (!opts.implicit || conn_tls_accept(c))
        smtp_session(c);
    conn_close(c);
    record_event("conn %u close", c->n);
    conn_free(c);
}

/* --sink: a thread whose connection ended waits here for the next one instead of exiting, so
 * benchmarks do not pay for a thread (and wolfSSL's per-thread state, such as its fixed-point
 * ECC cache) per connection. Last in, first out: the most recently busy thread, whose caches
 * are warm, gets the next connection. */
struct idle_thread {
    pthread_cond_t cond;
    struct conn *conn; /* set by pool_give */
    struct idle_thread *next;
};

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct idle_thread *pool_top;

static struct conn *pool_wait(void)
{
    struct idle_thread self = { .cond = PTHREAD_COND_INITIALIZER };
    pthread_mutex_lock(&pool_lock);
    self.next = pool_top;
    pool_top = &self;
    while (!self.conn)
        pthread_cond_wait(&self.cond, &pool_lock);
    pthread_mutex_unlock(&pool_lock);
    pthread_cond_destroy(&self.cond);
    return self.conn;
}

/* Hands c to the most recently idle thread; false when none is idle (start a new one then). */
static bool pool_give(struct conn *c)
{
    pthread_mutex_lock(&pool_lock);
    struct idle_thread *t = pool_top;
    if (t) {
        pool_top = t->next;
        t->conn = c;
        pthread_cond_signal(&t->cond);
    }
    pthread_mutex_unlock(&pool_lock);
    return t != NULL;
}

static void *conn_thread(void *arg)
{
    struct conn *c = arg;
    for (;;) {
        serve(c);
        if (!opts.sink)
            break;
        c = pool_wait();
    }
#ifdef FP_ECC
    /* Debian's wolfSSL keeps a fixed-point ECC cache per thread (FP_ECC), ~800 KB that each
     * connection thread would otherwise leak. */
    wc_ecc_fp_free();
#endif
    return NULL;
}

static void start_thread(struct conn *c)
{
    pthread_t tid;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&tid, &attr, conn_thread, c) != 0) {
        warnx_relay("conn %u: cannot start a thread", c->n);
        record_event("conn %u close", c->n);
        conn_free(c);
    }
    pthread_attr_destroy(&attr);
}

static void accept_loop(int lfd)
{
    unsigned count = 0;
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EINTR && errno != ECONNABORTED)
                usleep(10000);
            continue;
        }
        struct conn *c = conn_new(fd, ++count);
        record_event("conn %u open", c->n);
        if (opts.sink) {
            /* Pipelined replies are separate writes: send each at once. */
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            if (pool_give(c))
                continue;
        }
        start_thread(c);
    }
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    install_signals();
    if ((opts.record && !record_init(opts.record)) || !tls_setup())
        return 1;
    int lfd = listen_socket();
    if (lfd < 0)
        return 1;
    if (opts.ready_file && !write_ready_file(lfd)) {
        warnx_relay("%s: cannot write the ready file", opts.ready_file);
        return 1;
    }
    accept_loop(lfd);
}
