/*
 * gw_testclient: a raw TLS client for exact-bytes tests (smuggling, pipelining, slowloris).
 * It sends the given bytes unmodified, then reports what came back on stdout:
 *   HANDSHAKE OK <version> <cipher> | HANDSHAKE FAIL <reason>
 *   STATUS <code>            one per response, parsed with llhttp (pipelining-safe)
 *   INCOMPLETE               the connection ended inside a response
 *   BADRESPONSE <llhttp error>
 *   CLOSED | OPEN            the server closed, or the wait ended with the connection open
 * Exit 0 when the handshake succeeded, 3 when it failed, 2 on usage or local errors.
 * Blocking logic on a non-blocking socket: every wait is a poll() bounded by a deadline.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <llhttp.h>

#define METHOD_RING  4096
#define WRITE_MAX    (1024 * 1024)
#define SEND_MAX     (1024ULL * 1024 * 1024)
#define EXIT_USAGE   2
#define EXIT_HS_FAIL 3

struct bytes {
	unsigned char *p;
	size_t len, cap;
};

struct client_opts {
	const char *connect, *cert, *key, *ca, *sni;
	struct bytes send;
	long delay_ms, timeout_ms;
	size_t chunk;
	int tls_min, tls_max, dump;
	unsigned long repeat, responses;
};

struct client {
	SSL_CTX *ctx;
	SSL *ssl;
	int fd;
	int dump;
	llhttp_t rsp; /* parses what the server sends */
	llhttp_t req; /* parses what we send, only to learn which requests were HEAD */
	int req_dead; /* our own bytes stopped parsing (deliberately malformed input) */
	int rsp_dead; /* response parsing stopped (error or upgrade) */
	unsigned char methods[METHOD_RING];
	unsigned long m_head, m_tail;
	int status;              /* status of the response being parsed */
	int in_msg;              /* inside a response */
	int keep_alive;          /* of the last complete response */
	unsigned long responses; /* complete final (non-1xx) responses */
	int closed;
	int cert_requested;
	int hs_pending; /* TLS 1.3 with a client certificate: acceptance not yet seen */
	int hs_failed;
	char hs_line[256];
	char fail_reason[256];
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until deadline: returns revents, 0 on timeout, -1 on error. */
static int io_wait(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = {.fd = fd, .events = events};
	int64_t left;
	int r;

	for (;;) {
		left = deadline - now_ms();
		if (left < 0)
			left = 0;
		r = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (r > 0)
			return pfd.revents;
		if (r == 0 && left <= 60000)
			return 0;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

/* Appends n bytes; -1 past SEND_MAX or on OOM. */
static int bytes_add(struct bytes *b, const void *data, size_t n)
{
	size_t cap;
	unsigned char *p;

	if (n > SEND_MAX - b->len)
		return -1;
	if (b->len + n > b->cap) {
		cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p)
			return -1;
		b->p = p;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
	return 0;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Appends s with \r \n \t \\ \0 and \xHH interpreted; any other backslash stays literal. */
static int bytes_add_escaped(struct bytes *b, const char *s)
{
	unsigned char ch;
	int rc = 0;

	for (; *s && rc == 0; s++) {
		ch = (unsigned char)*s;
		if (ch == '\\' && s[1]) {
			switch (*++s) {
			case 'r':
				ch = '\r';
				break;
			case 'n':
				ch = '\n';
				break;
			case 't':
				ch = '\t';
				break;
			case '0':
				ch = '\0';
				break;
			case '\\':
				ch = '\\';
				break;
			case 'x':
				if (hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
					ch = (unsigned char)(hexval(s[1]) * 16 + hexval(s[2]));
					s += 2;
					break;
				}
				/* fall through */
			default:
				rc |= bytes_add(b, "\\", 1);
				ch = (unsigned char)*s;
				break;
			}
		}
		rc |= bytes_add(b, &ch, 1);
	}
	return rc ? -1 : 0;
}

/* Appends the whole of path ("-" = stdin). */
static int bytes_add_file(struct bytes *b, const char *path)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	char buf[65536];
	size_t n;
	int rc = 0;

	if (!f)
		return -1;
	while (rc == 0 && (n = fread(buf, 1, sizeof(buf), f)) > 0)
		rc = bytes_add(b, buf, n);
	if (ferror(f))
		rc = -1;
	if (f != stdin)
		fclose(f);
	return rc;
}

/* "1.0".."1.3" to the OpenSSL version constant; 0 if unknown. */
static int tls_version_parse(const char *s)
{
	static const struct {
		const char *name;
		int v;
	} tab[] = {{"1.0", TLS1_VERSION},
	           {"1.1", TLS1_1_VERSION},
	           {"1.2", TLS1_2_VERSION},
	           {"1.3", TLS1_3_VERSION}};
	size_t i;

	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (strcmp(s, tab[i].name) == 0)
			return tab[i].v;
	return 0;
}

static int num_parse(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Applies one option that takes a value (getopt_long val = index in the option table);
 * -1 if the value is bad or the file unreadable. */
static int opts_apply(struct client_opts *o, int idx, const char *v)
{
	const char **str[] = {&o->connect, &o->cert, &o->key, &o->ca, &o->sni};
	unsigned long n = 0;

	if (idx < 5) {
		*str[idx] = v;
		return 0;
	}
	if (idx == 5)
		return bytes_add_file(&o->send, v);
	if (idx == 6)
		return bytes_add_escaped(&o->send, v);
	if (idx == 11 || idx == 12)
		return (*(idx == 11 ? &o->tls_max : &o->tls_min) = tls_version_parse(v)) ? 0 : -1;
	if (num_parse(v, idx == 8 ? SEND_MAX : 3600000, &n) < 0)
		return -1;
	switch (idx) {
	case 7:
		o->delay_ms = (long)n;
		return 0;
	case 8:
		o->chunk = n;
		return n ? 0 : -1;
	case 9:
		o->timeout_ms = (long)n;
		return 0;
	case 10:
		o->repeat = n;
		return n ? 0 : -1;
	default:
		o->responses = n;
		return 0;
	}
}

/* Fills o from argv; -1 on a usage error (message already printed). */
static int opts_parse(struct client_opts *o, int argc, char **argv)
{
	static const struct option lo[] = {{"connect", required_argument, NULL, 0},
	                                   {"cert", required_argument, NULL, 1},
	                                   {"key", required_argument, NULL, 2},
	                                   {"ca", required_argument, NULL, 3},
	                                   {"servername", required_argument, NULL, 4},
	                                   {"send", required_argument, NULL, 5},
	                                   {"send-str", required_argument, NULL, 6},
	                                   {"delay-ms", required_argument, NULL, 7},
	                                   {"chunk", required_argument, NULL, 8},
	                                   {"timeout-ms", required_argument, NULL, 9},
	                                   {"repeat", required_argument, NULL, 10},
	                                   {"tls-max", required_argument, NULL, 11},
	                                   {"tls-min", required_argument, NULL, 12},
	                                   {"responses", required_argument, NULL, 13},
	                                   {"dump", no_argument, NULL, 14},
	                                   {NULL, 0, NULL, 0}};
	int ch, opt = 0;

	o->timeout_ms = 5000;
	o->repeat = 1;
	while ((ch = getopt_long(argc, argv, "", lo, &opt)) >= 0 && ch <= 14) {
		if (ch == 14) {
			o->dump = 1;
		} else if (opts_apply(o, ch, optarg) < 0) {
			fprintf(stderr, "gw_testclient: bad value for --%s: %s\n", lo[opt].name,
			        optarg);
			return -1;
		}
	}
	if (ch != -1 || optind != argc || !o->connect)
		return -1;
	if (!o->chunk)
		o->chunk = o->delay_ms ? 1 : SEND_MAX;
	return 0;
}

/* ---- TLS ---- */

/* Prints the pending "HANDSHAKE OK" line, once. */
static void client_hs_confirm(struct client *cl)
{
	if (cl->hs_pending) {
		cl->hs_pending = 0;
		printf("%s\n", cl->hs_line);
	}
}

/* A session ticket only arrives once the server accepted our Finished (and certificate):
 * from here on the TLS 1.3 handshake cannot be refused any more. */
static int client_on_new_session(SSL *ssl, SSL_SESSION *sess)
{
	client_hs_confirm(SSL_get_app_data(ssl));
	return 0;
}

/* Called on the client only when the server sends a CertificateRequest. */
static int client_on_cert_request(SSL *ssl, void *arg)
{
	struct client *cl = SSL_get_app_data(ssl);

	cl->cert_requested = 1;
	return 1;
}

/* The client context from the options; NULL with err set. */
static SSL_CTX *client_ctx_new(const struct client_opts *o, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx)
		goto fail;
	if ((o->tls_min && !SSL_CTX_set_min_proto_version(ctx, o->tls_min)) ||
	    (o->tls_max && !SSL_CTX_set_max_proto_version(ctx, o->tls_max)))
		goto fail;
	/* OpenSSL 3 will not even offer TLS 1.0/1.1 at the default security level; a test
	 * asking for them wants to see whether the *server* refuses. */
	if (o->tls_max && o->tls_max < TLS1_2_VERSION)
		SSL_CTX_set_security_level(ctx, 0);
	if (o->cert &&
	    (SSL_CTX_use_certificate_chain_file(ctx, o->cert) != 1 ||
	     SSL_CTX_use_PrivateKey_file(ctx, o->key ? o->key : o->cert, SSL_FILETYPE_PEM) != 1))
		goto fail;
	if (o->ca) {
		if (SSL_CTX_load_verify_locations(ctx, o->ca, NULL) != 1)
			goto fail;
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	SSL_CTX_set_session_cache_mode(ctx,
	                               SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, client_on_new_session);
	SSL_CTX_set_cert_cb(ctx, client_on_cert_request, NULL);
	return ctx;
fail:
	snprintf(err, errlen, "tls setup: %s", ERR_reason_error_string(ERR_peek_last_error()));
	SSL_CTX_free(ctx);
	return NULL;
}

/* Why an SSL call failed, for humans: the OpenSSL reason, the verify error, or errno. */
static void tls_reason(struct client *cl, int sslerr, char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();
	long v = SSL_get_verify_result(cl->ssl);
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	if (r && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED && v != X509_V_OK)
		snprintf(buf, len, "%s: %s", r, X509_verify_cert_error_string(v));
	else if (r)
		snprintf(buf, len, "%s", r);
	else if (sslerr == SSL_ERROR_SYSCALL && errno)
		snprintf(buf, len, "%s", strerror(errno));
	else if (sslerr == SSL_ERROR_SYSCALL || sslerr == SSL_ERROR_ZERO_RETURN)
		snprintf(buf, len, "connection closed by peer");
	else
		snprintf(buf, len, "ssl error %d", sslerr);
}

/* TCP connect to "HOST:PORT" or "[V6]:PORT" before deadline; the socket or -1. */
static int tcp_connect(const char *hostport, int64_t deadline, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV},
	                *ai = NULL;
	const char *colon = strrchr(hostport, ':');
	char host[256];
	socklen_t sl = sizeof(int);
	int fd = -1, one = 1, soerr = 0, r;
	size_t hl;

	if (!colon || (hl = (size_t)(colon - hostport)) >= sizeof(host)) {
		snprintf(err, errlen, "bad address %s", hostport);
		return -1;
	}
	if (hl >= 2 && hostport[0] == '[' && hostport[hl - 1] == ']')
		memcpy(host, hostport + 1, hl -= 2);
	else
		memcpy(host, hostport, hl);
	host[hl] = '\0';
	if ((r = getaddrinfo(host, colon + 1, &hints, &ai)) != 0) {
		snprintf(err, errlen, "resolve %s: %s", hostport, gai_strerror(r));
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS))
		goto fail;
	if ((r = io_wait(fd, POLLOUT, deadline)) <= 0) {
		errno = r == 0 ? ETIMEDOUT : errno;
		goto fail;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || (errno = soerr) != 0)
		goto fail;
	/* Each --chunk must leave as soon as it is written, not when Nagle allows. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	freeaddrinfo(ai);
	return fd;
fail:
	snprintf(err, errlen, "connect: %s", strerror(errno));
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return -1;
}

/* SSL_connect before deadline; 0, or -1 with the reason in err. */
static int client_handshake(struct client *cl, const struct client_opts *o, int64_t deadline,
                            char *err, size_t errlen)
{
	int r, e, w;

	if (!(cl->ssl = SSL_new(cl->ctx)) || !SSL_set_fd(cl->ssl, cl->fd) ||
	    (o->sni && !SSL_set_tlsext_host_name(cl->ssl, o->sni))) {
		snprintf(err, errlen, "SSL_new failed");
		return -1;
	}
	SSL_set_app_data(cl->ssl, cl);
	for (;;) {
		ERR_clear_error();
		r = SSL_connect(cl->ssl);
		if (r == 1)
			return 0;
		e = SSL_get_error(cl->ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			tls_reason(cl, e, err, errlen);
			return -1;
		}
		w = io_wait(cl->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
		if (w <= 0) {
			snprintf(err, errlen, "%s", w == 0 ? "timeout" : strerror(errno));
			return -1;
		}
	}
}

/* ---- HTTP: our requests (for HEAD) and the server's responses ---- */

static int req_on_headers_complete(llhttp_t *p)
{
	struct client *cl = p->data;

	if (cl->m_head - cl->m_tail < METHOD_RING)
		cl->methods[cl->m_head++ % METHOD_RING] = llhttp_get_method(p);
	return 0;
}

static const llhttp_settings_t req_settings = {.on_headers_complete = req_on_headers_complete};

/* Learns the methods of the requests in the bytes we send; deliberately broken input just
 * stops the learning (responses then default to "has a body"). */
static void client_learn_requests(struct client *cl, const unsigned char *p, size_t n)
{
	const char *s = (const char *)p;
	llhttp_errno_t e;

	while (!cl->req_dead && n > 0) {
		e = llhttp_execute(&cl->req, s, n);
		if (e != HPE_PAUSED_UPGRADE) {
			cl->req_dead = e != HPE_OK;
			return;
		}
		n -= (size_t)(llhttp_get_error_pos(&cl->req) - s);
		s = llhttp_get_error_pos(&cl->req);
		llhttp_resume_after_upgrade(&cl->req);
	}
}

static int rsp_on_message_begin(llhttp_t *p)
{
	((struct client *)p->data)->in_msg = 1;
	return 0;
}

/* Prints the status; a response to HEAD has no body whatever its headers say, and a 2xx to
 * CONNECT turns the connection into a tunnel. Interim 1xx answers do not use up a request. */
static int rsp_on_headers_complete(llhttp_t *p)
{
	struct client *cl = p->data;
	int method = -1;

	cl->status = llhttp_get_status_code(p);
	printf("STATUS %d\n", cl->status);
	if (cl->status < 200)
		return 0;
	if (cl->m_tail != cl->m_head)
		method = cl->methods[cl->m_tail++ % METHOD_RING];
	if (method == HTTP_HEAD)
		return 1;
	if (method == HTTP_CONNECT && cl->status < 300)
		return 2;
	return 0;
}

static int rsp_on_message_complete(llhttp_t *p)
{
	struct client *cl = p->data;

	cl->in_msg = 0;
	if (cl->status >= 200 || cl->status == 101) {
		cl->responses++;
		cl->keep_alive = llhttp_should_keep_alive(p);
	}
	return 0;
}

static const llhttp_settings_t rsp_settings = {
    .on_message_begin = rsp_on_message_begin,
    .on_headers_complete = rsp_on_headers_complete,
    .on_message_complete = rsp_on_message_complete,
};

/* Handles received bytes: dump, confirm the handshake, parse responses. */
static void client_feed(struct client *cl, const char *p, size_t n)
{
	llhttp_errno_t e;

	if (cl->dump)
		fwrite(p, 1, n, stderr);
	client_hs_confirm(cl);
	if (cl->rsp_dead)
		return;
	e = llhttp_execute(&cl->rsp, p, n);
	if (e == HPE_PAUSED_UPGRADE) {
		cl->rsp_dead = 1; /* a tunnel now: the rest is not HTTP */
	} else if (e != HPE_OK) {
		cl->rsp_dead = 1;
		printf("BADRESPONSE %s\n", llhttp_errno_name(e));
	}
}

/* The connection ended (close_notify, EOF, reset or TLS error). A fatal alert before the
 * handshake was confirmed means the server refused us after all (TLS 1.3 client auth). */
static void client_on_end(struct client *cl, int sslerr)
{
	unsigned long e = ERR_peek_last_error();
	char why[256];

	tls_reason(cl, sslerr, why, sizeof(why));
	if (cl->hs_pending && sslerr == SSL_ERROR_SSL && ERR_GET_LIB(e) == ERR_LIB_SSL &&
	    ERR_GET_REASON(e) >= SSL_AD_REASON_OFFSET) {
		cl->hs_failed = 1;
		snprintf(cl->fail_reason, sizeof(cl->fail_reason), "%s", why);
	} else if (sslerr != SSL_ERROR_ZERO_RETURN) {
		fprintf(stderr, "gw_testclient: connection ended: %s\n", why);
	}
	ERR_clear_error();
	/* A body delimited by the close completes here; anything else open stays incomplete. */
	if (!cl->rsp_dead && cl->in_msg)
		llhttp_finish(&cl->rsp);
	cl->closed = 1;
}

/* One SSL_read: feeds what arrived, or records the end of the connection. */
static void client_read_some(struct client *cl)
{
	char buf[16384];
	int n, e;

	ERR_clear_error();
	errno = 0;
	n = SSL_read(cl->ssl, buf, sizeof(buf));
	if (n > 0) {
		client_feed(cl, buf, (size_t)n);
		return;
	}
	e = SSL_get_error(cl->ssl, n);
	if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
		client_on_end(cl, e);
}

/* Reads until the connection ends, want complete responses were seen (want > 0) or the
 * deadline passes. */
static void client_read_until(struct client *cl, int64_t deadline, unsigned long want)
{
	while (!cl->closed && !(want && cl->responses >= want)) {
		if (!SSL_pending(cl->ssl) && io_wait(cl->fd, POLLIN, deadline) <= 0)
			return;
		client_read_some(cl);
	}
}

/* Writes n bytes as written by the caller (one SSL_write per call, so one --chunk is one
 * record). While the socket is full, reads responses so a pipelining server that stops
 * reading until we read cannot deadlock us. -1 when the peer is gone or on timeout. */
static int client_write(struct client *cl, const unsigned char *p, size_t n, int64_t deadline)
{
	int r, e, w;

	while (n > 0 && !cl->closed) {
		ERR_clear_error();
		r = SSL_write(cl->ssl, p, n > WRITE_MAX ? WRITE_MAX : (int)n);
		if (r > 0) {
			p += r;
			n -= (size_t)r;
			continue;
		}
		e = SSL_get_error(cl->ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
			return -1;
		w = io_wait(cl->fd, POLLOUT | POLLIN, deadline);
		if (w <= 0)
			return -1;
		if (w & POLLIN)
			client_read_some(cl);
	}
	return cl->closed ? -1 : 0;
}

/* Sends the request bytes once, in --chunk pieces with --delay-ms pauses during which
 * responses (say, a 408 and a close) are still read. -1 once the server stopped us. */
static int client_send(struct client *cl, const struct client_opts *o)
{
	size_t off = 0, n;

	client_learn_requests(cl, o->send.p, o->send.len);
	while (off < o->send.len) {
		n = o->send.len - off < o->chunk ? o->send.len - off : o->chunk;
		if (client_write(cl, o->send.p + off, n, now_ms() + o->timeout_ms) < 0)
			return -1;
		off += n;
		if (o->delay_ms && off < o->send.len) {
			client_read_until(cl, now_ms() + o->delay_ms, 0);
			if (cl->closed)
				return -1;
		}
	}
	return 0;
}

/* Connects, handshakes and reports; returns the exit code. */
static int client_run(struct client *cl, const struct client_opts *o)
{
	char err[512];
	unsigned long i, want;

	if ((cl->fd = tcp_connect(o->connect, now_ms() + o->timeout_ms, err, sizeof(err))) < 0 ||
	    client_handshake(cl, o, now_ms() + o->timeout_ms, err, sizeof(err)) < 0) {
		printf("HANDSHAKE FAIL %s\n", err);
		return EXIT_HS_FAIL;
	}
	snprintf(cl->hs_line, sizeof(cl->hs_line), "HANDSHAKE OK %s %s", SSL_get_version(cl->ssl),
	         SSL_get_cipher_name(cl->ssl));
	/* In TLS 1.3 the server judges our certificate after SSL_connect() returned: hold the
	 * verdict until it answers (ticket or data) or refuses (alert). */
	cl->hs_pending = 1;
	if (SSL_version(cl->ssl) != TLS1_3_VERSION || !cl->cert_requested)
		client_hs_confirm(cl);
	for (i = 0; i < o->repeat && !cl->closed; i++) {
		if (client_send(cl, o) < 0)
			break;
		if (i + 1 < o->repeat) {
			client_read_until(cl, now_ms() + o->timeout_ms, i + 1);
			if (cl->responses < i + 1)
				break;
		}
	}
	want = o->responses ? o->responses : (o->repeat > 1 ? o->repeat : 0);
	client_read_until(cl, now_ms() + o->timeout_ms, want);
	/* The last response announced a close: wait for it, so CLOSED is reported reliably. */
	if (!cl->closed && want && !cl->keep_alive)
		client_read_until(cl, now_ms() + o->timeout_ms, 0);
	if (cl->hs_failed) {
		printf("HANDSHAKE FAIL %s\n", cl->fail_reason);
		return EXIT_HS_FAIL;
	}
	client_hs_confirm(cl);
	if (cl->in_msg)
		printf("INCOMPLETE\n");
	printf("%s\n", cl->closed ? "CLOSED" : "OPEN");
	return 0;
}

int main(int argc, char **argv)
{
	struct client_opts o;
	struct client cl;
	char err[512];
	int rc;

	memset(&o, 0, sizeof(o));
	memset(&cl, 0, sizeof(cl));
	cl.fd = -1;
	if (opts_parse(&o, argc, argv) < 0) {
		fprintf(stderr,
		        "usage: gw_testclient --connect HOST:PORT [--cert F [--key F]] [--ca F]\n"
		        "       [--servername SNI] [--send FILE|-]... [--send-str STR]...\n"
		        "       [--chunk N] [--delay-ms N] [--timeout-ms N] [--tls-min V] "
		        "[--tls-max V]\n"
		        "       [--repeat N] [--responses N] [--dump]\n");
		free(o.send.p);
		return EXIT_USAGE;
	}
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	cl.dump = o.dump;
	llhttp_init(&cl.rsp, HTTP_RESPONSE, &rsp_settings);
	llhttp_init(&cl.req, HTTP_REQUEST, &req_settings);
	cl.rsp.data = &cl;
	cl.req.data = &cl;
	if (!(cl.ctx = client_ctx_new(&o, err, sizeof(err)))) {
		fprintf(stderr, "gw_testclient: %s\n", err);
		rc = EXIT_USAGE;
	} else {
		rc = client_run(&cl, &o);
	}
	/* Say goodbye properly so servers log a clean close rather than a truncation. */
	if (rc == 0 && cl.ssl) {
		SSL_shutdown(cl.ssl);
		ERR_clear_error();
	}
	SSL_free(cl.ssl);
	SSL_CTX_free(cl.ctx);
	if (cl.fd >= 0)
		close(cl.fd);
	free(o.send.p);
	return rc;
}
