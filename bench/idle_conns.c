/*
 * idle_conns: opens N mTLS connections to a server, sends one request on each and reads
 * its response, then holds them all open and idle, so that the server's memory per idle
 * keep-alive connection can be measured (RSS with N connections minus RSS before).
 * At most --parallel connections are being set up at any time; an established one is
 * parked and never touched again until exit.
 *
 * Prints "READY <ok> <failed>" on stdout once every connection is set up (or failed),
 * then waits until stdin reaches EOF, SIGTERM, or --hold seconds pass, and exits.
 *
 * usage: idle_conns --connect HOST:PORT --cert F --key F --ca F [--servername NAME]
 *                   [-n N] [--parallel P] [--path /status/200] [--hold SECONDS]
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

enum ic_state { IC_FREE = 0, IC_CONNECTING, IC_HANDSHAKE, IC_WRITE, IC_READ };

struct ic_conn {
	enum ic_state state;
	int fd;
	SSL *ssl;
	size_t sent, got;
	char buf[4096];
};

struct ic_opts {
	const char *connect, *cert, *key, *ca, *servername, *path;
	unsigned n, parallel, hold;
};

struct ic_run {
	struct ic_opts o;
	SSL_CTX *ctx;
	struct sockaddr_in addr;
	char req[512];
	size_t req_len;
	struct ic_conn *slots; /* the connections being set up */
	int *parked;           /* fds of established connections */
	SSL **parked_ssl;
	unsigned started, ok, failed;
};

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	stop = 1;
}

/* Raises the fd limit to its hard maximum: N connections need N descriptors. */
static void fd_limit_raise(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static SSL_CTX *ctx_new(const struct ic_opts *o)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	/* Our own side of each idle connection should cost little too. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (SSL_CTX_use_certificate_chain_file(ctx, o->cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, o->key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_load_verify_file(ctx, o->ca) != 1) {
		ERR_print_errors_fp(stderr);
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	return ctx;
}

static void conn_drop(struct ic_run *r, struct ic_conn *c, bool ok)
{
	if (ok) {
		r->parked[r->ok] = c->fd;
		r->parked_ssl[r->ok] = c->ssl;
		r->ok++;
	} else {
		SSL_free(c->ssl);
		close(c->fd);
		r->failed++;
	}
	memset(c, 0, sizeof(*c));
}

/* Starts a non-blocking connect in a free slot; false when it failed at once. */
static bool conn_start(struct ic_run *r, struct ic_conn *c)
{
	memset(c, 0, sizeof(*c));
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return false;
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->ssl = SSL_new(r->ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
		SSL_free(c->ssl);
		close(c->fd);
		return false;
	}
	SSL_set1_host(c->ssl, r->o.servername);
	if (inet_addr(r->o.servername) == INADDR_NONE)
		SSL_set_tlsext_host_name(c->ssl, r->o.servername);
	c->state = IC_CONNECTING;
	if (connect(c->fd, (struct sockaddr *)&r->addr, sizeof(r->addr)) != 0 &&
	    errno != EINPROGRESS) {
		SSL_free(c->ssl);
		close(c->fd);
		return false;
	}
	return true;
}

/* True once a whole response (head + Content-Length body) is in the buffer. */
static bool response_complete(const struct ic_conn *c)
{
	const char *end = memmem(c->buf, c->got, "\r\n\r\n", 4);
	if (!end)
		return false;
	size_t head = (size_t)(end - c->buf) + 4, clen = 0;
	for (const char *p = c->buf; p < end; p++) {
		if ((p == c->buf || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0) {
			clen = strtoul(p + 15, NULL, 10);
			break;
		}
	}
	return c->got >= head + clen;
}

/* Advances one connection; returns the poll events it now waits for, 0 when finished. */
static short conn_step(struct ic_run *r, struct ic_conn *c)
{
	int rc, e;
	switch (c->state) {
	case IC_CONNECTING:
		c->state = IC_HANDSHAKE;
		/* fall through */
	case IC_HANDSHAKE:
		rc = SSL_connect(c->ssl);
		if (rc == 1) {
			c->state = IC_WRITE;
			return conn_step(r, c);
		}
		break;
	case IC_WRITE:
		rc = SSL_write(c->ssl, r->req + c->sent, (int)(r->req_len - c->sent));
		if (rc > 0) {
			c->sent += (size_t)rc;
			if (c->sent == r->req_len)
				c->state = IC_READ;
			return conn_step(r, c);
		}
		break;
	case IC_READ:
		rc = SSL_read(c->ssl, c->buf + c->got, (int)(sizeof(c->buf) - 1 - c->got));
		if (rc > 0) {
			c->got += (size_t)rc;
			if (response_complete(c) || c->got >= sizeof(c->buf) - 1) {
				bool ok = strncmp(c->buf, "HTTP/1.1 2", 10) == 0;
				conn_drop(r, c, ok);
				return 0;
			}
			return conn_step(r, c);
		}
		break;
	default:
		return 0;
	}
	e = SSL_get_error(c->ssl, rc);
	if (e == SSL_ERROR_WANT_READ)
		return POLLIN;
	if (e == SSL_ERROR_WANT_WRITE)
		return POLLOUT;
	ERR_clear_error();
	conn_drop(r, c, false);
	return 0;
}

/* Sets up every connection, at most o.parallel at a time. */
static void run_all(struct ic_run *r)
{
	unsigned p = r->o.parallel;
	struct pollfd *pfd = calloc(p, sizeof(*pfd));
	short *want = calloc(p, sizeof(*want));
	if (!pfd || !want)
		goto done;
	while (!stop && r->ok + r->failed < r->o.n) {
		for (unsigned i = 0; i < p; i++) {
			struct ic_conn *c = &r->slots[i];
			if (c->state == IC_FREE && r->started < r->o.n) {
				r->started++;
				if (!conn_start(r, c)) {
					r->failed++;
					continue;
				}
				want[i] = POLLOUT;
			}
			pfd[i].fd = c->state == IC_FREE ? -1 : c->fd;
			pfd[i].events = want[i];
			pfd[i].revents = 0;
		}
		if (poll(pfd, p, 1000) < 0 && errno != EINTR)
			break;
		for (unsigned i = 0; i < p; i++)
			if (pfd[i].fd >= 0 && pfd[i].revents)
				want[i] = conn_step(r, &r->slots[i]);
	}
done:
	free(pfd);
	free(want);
}

static int opts_parse(struct ic_opts *o, int argc, char **argv)
{
	static const struct option lo[] = {{"connect", required_argument, NULL, 'C'},
	                                   {"cert", required_argument, NULL, 'c'},
	                                   {"key", required_argument, NULL, 'k'},
	                                   {"ca", required_argument, NULL, 'a'},
	                                   {"servername", required_argument, NULL, 's'},
	                                   {"parallel", required_argument, NULL, 'P'},
	                                   {"path", required_argument, NULL, 'p'},
	                                   {"hold", required_argument, NULL, 'h'},
	                                   {NULL, 0, NULL, 0}};
	int opt;
	*o = (struct ic_opts){.servername = "localhost",
	                      .path = "/status/200",
	                      .n = 1000,
	                      .parallel = 32,
	                      .hold = 600};
	while ((opt = getopt_long(argc, argv, "n:", lo, NULL)) != -1) {
		switch (opt) {
		case 'C':
			o->connect = optarg;
			break;
		case 'c':
			o->cert = optarg;
			break;
		case 'k':
			o->key = optarg;
			break;
		case 'a':
			o->ca = optarg;
			break;
		case 's':
			o->servername = optarg;
			break;
		case 'P':
			o->parallel = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'p':
			o->path = optarg;
			break;
		case 'h':
			o->hold = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'n':
			o->n = (unsigned)strtoul(optarg, NULL, 10);
			break;
		default:
			return -1;
		}
	}
	if (!o->connect || !o->cert || !o->key || !o->ca || o->n == 0 || o->parallel == 0)
		return -1;
	return 0;
}

static int addr_parse(const char *s, struct sockaddr_in *a)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)atoi(colon + 1));
	return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

/* Waits for stdin EOF, SIGTERM or the hold time, without using any CPU meanwhile. */
static void hold(unsigned secs)
{
	time_t end = time(NULL) + secs;
	char b[64];
	while (!stop && time(NULL) < end) {
		struct pollfd pf = {.fd = STDIN_FILENO, .events = POLLIN};
		int rc = poll(&pf, 1, 1000);
		if (rc > 0 && read(STDIN_FILENO, b, sizeof(b)) <= 0)
			break;
	}
}

int main(int argc, char **argv)
{
	struct ic_run r = {0};
	if (opts_parse(&r.o, argc, argv) != 0 || addr_parse(r.o.connect, &r.addr) != 0) {
		fprintf(stderr, "usage: idle_conns --connect IP:PORT --cert F --key F --ca F "
		                "[--servername N] [-n N] [--parallel P] [--path P] [--hold S]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_term);
	fd_limit_raise();
	r.ctx = ctx_new(&r.o);
	r.slots = calloc(r.o.parallel, sizeof(*r.slots));
	r.parked = calloc(r.o.n, sizeof(*r.parked));
	r.parked_ssl = calloc(r.o.n, sizeof(*r.parked_ssl));
	if (!r.ctx || !r.slots || !r.parked || !r.parked_ssl)
		return 2;
	r.req_len = (size_t)snprintf(r.req, sizeof(r.req), "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n",
	                             r.o.path, r.o.servername);
	run_all(&r);
	printf("READY %u %u\n", r.ok, r.failed);
	fflush(stdout);
	hold(r.o.hold);
	/* Exit closes every descriptor; no orderly TLS shutdown is wanted here. */
	return r.ok > 0 ? 0 : 1;
}
