/*
 * Unit tests of the TLS stream layer (gateway/stream.c): an accepting and a connecting
 * gw_stream over a non-blocking AF_UNIX socketpair, in one event_base (configured as the
 * workers configure theirs), with real OpenSSL contexts and self-signed P-256 certificates
 * made here. The loop runs one pass at a time (EVLOOP_ONCE; a 5 ms tick keeps a pass from
 * blocking) and every wait is bounded, so a lost wakeup fails a test instead of hanging it.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "cu.h"
#include "gw.h"

/* ------------------------------------------------------------------ fixture -- */

static EVP_PKEY *key_a, *key_b;
static X509 *cert_a, *cert_b; /* a: the server's certificate; b: an unrelated one */
static SSL_CTX *srv_ctx;      /* server, no client certificate asked */
static SSL_CTX *srv_ctx_mtls; /* server requiring a client certificate */
static SSL_CTX *cli_ctx;      /* client, no verification */
static SSL_CTX *cli_ctx_ok;   /* client verifying the server against cert_a */
static SSL_CTX *cli_ctx_bad;  /* client verifying the server against cert_b */

static int make_cert(const char *cn, long serial, EVP_PKEY **kp, X509 **xp)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	int ok = k && x && X509_set_version(x, 2) &&
	         ASN1_INTEGER_set(X509_get_serialNumber(x), serial) &&
	         X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
	         X509_gmtime_adj(X509_getm_notAfter(x), 86400) && X509_set_pubkey(x, k);
	X509_NAME *n = ok ? X509_get_subject_name(x) : NULL;
	ok = ok && n &&
	     X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
	                                0) &&
	     X509_set_issuer_name(x, n) && X509_sign(x, k, EVP_sha256()) > 0;
	if (!ok) {
		EVP_PKEY_free(k);
		X509_free(x);
		return -1;
	}
	*kp = k;
	*xp = x;
	return 0;
}

static SSL_CTX *server_ctx(bool require_client_cert)
{
	SSL_CTX *c = SSL_CTX_new(TLS_server_method());
	if (!c)
		return NULL;
	if (SSL_CTX_use_certificate(c, cert_a) != 1 || SSL_CTX_use_PrivateKey(c, key_a) != 1) {
		SSL_CTX_free(c);
		return NULL;
	}
	if (require_client_cert)
		SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	return c;
}

static SSL_CTX *client_ctx(X509 *trust)
{
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());
	if (!c)
		return NULL;
	if (trust) {
		if (X509_STORE_add_cert(SSL_CTX_get_cert_store(c), trust) != 1) {
			SSL_CTX_free(c);
			return NULL;
		}
		SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
	}
	return c;
}

static int suite_clean(void)
{
	SSL_CTX_free(srv_ctx);
	SSL_CTX_free(srv_ctx_mtls);
	SSL_CTX_free(cli_ctx);
	SSL_CTX_free(cli_ctx_ok);
	SSL_CTX_free(cli_ctx_bad);
	X509_free(cert_a);
	X509_free(cert_b);
	EVP_PKEY_free(key_a);
	EVP_PKEY_free(key_b);
	return 0;
}

static int suite_init(void)
{
	/* A write to a socket the peer closed must fail with EPIPE, as in the daemon. */
	signal(SIGPIPE, SIG_IGN);
	if (make_cert("stream-test-server", 1, &key_a, &cert_a) != 0 ||
	    make_cert("stream-test-other", 2, &key_b, &cert_b) != 0)
		return -1;
	srv_ctx = server_ctx(false);
	srv_ctx_mtls = server_ctx(true);
	cli_ctx = client_ctx(NULL);
	cli_ctx_ok = client_ctx(cert_a);
	cli_ctx_bad = client_ctx(cert_b);
	if (!srv_ctx || !srv_ctx_mtls || !cli_ctx || !cli_ctx_ok || !cli_ctx_bad)
		return -1;
	return 0;
}

struct pair;

/* One end: its stream, what its callbacks saw, and optional per-test behaviour. */
struct side {
	struct pair *p;
	struct gw_stream *st; /* NULL once freed */
	int fd;               /* for ioctl only, while st lives */
	unsigned connected, eofs, errors, reads, writes;
	unsigned late;     /* callbacks after the owner freed the stream */
	short events;      /* all event bits seen */
	unsigned long err; /* gw_stream_error when the error came */
	size_t got_at_eof; /* bytes collected when EOF or an error came */
	struct evbuffer *got;
	void (*read_hook)(struct side *); /* replaces "move the input to got" */
	void (*write_hook)(struct side *);
	void (*connected_hook)(struct side *);
	/* per-test state */
	uint64_t off;
	size_t limit;
	bool flag;
	unsigned count;
};

struct pair {
	struct event_base *base;
	struct event *tick;
	struct side srv, cli;
	long passes;
};

/* A callback after the side freed its stream is counted as late (and fails the test). */
static bool side_live(struct side *d, struct gw_stream *st)
{
	if (!d->st) {
		d->late++;
		return false;
	}
	CU_ASSERT(st == d->st);
	return true;
}

static void cb_read(struct gw_stream *st, void *arg)
{
	struct side *d = arg;
	if (!side_live(d, st))
		return;
	d->reads++;
	if (d->read_hook)
		d->read_hook(d);
	else
		evbuffer_add_buffer(d->got, gw_stream_input(st));
}

static void cb_write(struct gw_stream *st, void *arg)
{
	struct side *d = arg;
	if (!side_live(d, st))
		return;
	d->writes++;
	if (d->write_hook)
		d->write_hook(d);
}

static void cb_event(struct gw_stream *st, short what, void *arg)
{
	struct side *d = arg;
	if (!side_live(d, st))
		return;
	d->events |= what;
	if (what & (GW_STREAM_EOF | GW_STREAM_ERROR))
		d->got_at_eof = evbuffer_get_length(d->got);
	if (what & GW_STREAM_CONNECTED)
		d->connected++;
	if (what & GW_STREAM_EOF)
		d->eofs++;
	if (what & GW_STREAM_ERROR) {
		d->errors++;
		d->err = gw_stream_error(st);
	}
	if ((what & GW_STREAM_CONNECTED) && d->connected_hook)
		d->connected_hook(d);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
}

static void side_free(struct side *d)
{
	gw_stream_free(d->st);
	d->st = NULL;
	d->fd = -1;
}

static void pair_free(struct pair *p)
{
	side_free(&p->srv);
	side_free(&p->cli);
	if (p->srv.got)
		evbuffer_free(p->srv.got);
	if (p->cli.got)
		evbuffer_free(p->cli.got);
	if (p->tick)
		event_free(p->tick);
	if (p->base)
		event_base_free(p->base);
	memset(p, 0, sizeof(*p));
}

static bool side_start(struct pair *p, struct side *d, int fd, SSL_CTX *ctx, bool accepting)
{
	d->p = p;
	d->fd = fd;
	d->got = evbuffer_new();
	SSL *ssl = SSL_new(ctx);
	if (!d->got || !ssl) {
		SSL_free(ssl);
		close(fd);
		return false;
	}
	d->st = gw_stream_new(p->base, fd, ssl, accepting);
	if (!d->st) {
		SSL_free(ssl);
		close(fd);
		return false;
	}
	gw_stream_setcb(d->st, cb_read, cb_write, cb_event, d);
	return true;
}

/*
 * A server (accepting) and a client (connecting) stream on a socketpair. cli_sndbuf, when
 * not 0, is the client socket's SO_SNDBUF (an AF_UNIX stream holds what the sender's
 * buffer allows). Reading is off on both; the tests turn it on.
 */
static void pair_new(struct pair *p, SSL_CTX *sctx, SSL_CTX *cctx, int cli_sndbuf)
{
	memset(p, 0, sizeof(*p));
	p->srv.fd = p->cli.fd = -1;
	int sv[2];
	CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) ==
	                0);
	if (cli_sndbuf)
		CU_ASSERT(
		    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &cli_sndbuf, sizeof(cli_sndbuf)) == 0);
	struct event_config *cfg = event_config_new();
	CU_ASSERT_FATAL(cfg != NULL);
	event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST); /* as worker.c */
	p->base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	CU_ASSERT_FATAL(p->base != NULL);
	p->tick = event_new(p->base, -1, EV_PERSIST, tick_cb, NULL);
	struct timeval tv = {0, 5000};
	CU_ASSERT_FATAL(p->tick && event_add(p->tick, &tv) == 0);
	CU_ASSERT_FATAL(side_start(p, &p->srv, sv[0], sctx, true));
	CU_ASSERT_FATAL(side_start(p, &p->cli, sv[1], cctx, false));
}

static void pass(struct pair *p)
{
	event_base_loop(p->base, EVLOOP_ONCE);
	p->passes++;
}

/* Runs loop passes until cond holds, at most max of them. */
#define RUN_UNTIL(p, max, cond)                                                                    \
	do {                                                                                       \
		for (int i_ = 0; i_ < (max) && !(cond); i_++)                                      \
			pass(p);                                                                   \
	} while (0)

static void run(struct pair *p, int n)
{
	for (int i = 0; i < n; i++)
		pass(p);
}

/* Both ends connected, reading on both. */
static void pair_up(struct pair *p, SSL_CTX *sctx, SSL_CTX *cctx)
{
	pair_new(p, sctx, cctx, 0);
	gw_stream_read(p->srv.st, true);
	gw_stream_read(p->cli.st, true);
	RUN_UNTIL(p, 2000, p->srv.connected && p->cli.connected);
	CU_ASSERT_FATAL(p->srv.connected == 1 && p->cli.connected == 1);
}

static size_t inq(int fd)
{
	int n = -1;
	CU_ASSERT_FATAL(ioctl(fd, FIONREAD, &n) == 0);
	return (size_t)n;
}

static bool got_is(struct side *d, const char *s)
{
	size_t n = strlen(s);
	if (evbuffer_get_length(d->got) != n)
		return false;
	const unsigned char *b = evbuffer_pullup(d->got, (ev_ssize_t)n);
	return n == 0 || (b && memcmp(b, s, n) == 0);
}

/* Sends a from the client and b from the server; true when each arrived intact. */
static bool exchange(struct pair *p, const char *a, const char *b)
{
	evbuffer_drain(p->srv.got, evbuffer_get_length(p->srv.got));
	evbuffer_drain(p->cli.got, evbuffer_get_length(p->cli.got));
	evbuffer_add(gw_stream_output(p->cli.st), a, strlen(a));
	evbuffer_add(gw_stream_output(p->srv.st), b, strlen(b));
	RUN_UNTIL(p, 2000,
	          evbuffer_get_length(p->srv.got) >= strlen(a) &&
	              evbuffer_get_length(p->cli.got) >= strlen(b));
	return got_is(&p->srv, a) && got_is(&p->cli, b);
}

/* The byte at offset i of the test stream: no short period, so a lost, repeated or
 * reordered record shows at its first byte. */
static uint8_t pat(uint64_t i)
{
	uint32_t x = (uint32_t)i * 2654435761u;
	return (uint8_t)((x >> 24) ^ (i >> 14));
}

static void *pattern(uint64_t off, size_t len)
{
	uint8_t *b = malloc(len ? len : 1);
	CU_ASSERT_FATAL(b != NULL);
	for (size_t i = 0; i < len; i++)
		b[i] = pat(off + i);
	return b;
}

/* Queues len pattern bytes (from off) as one contiguous evbuffer_add. */
static void add_pattern(struct evbuffer *out, uint64_t off, size_t len)
{
	void *b = pattern(off, len);
	CU_ASSERT_FATAL(evbuffer_add(out, b, len) == 0);
	free(b);
}

/* Removes len bytes from b; false at the first one that is not the pattern at off. */
static bool take_pattern(struct evbuffer *b, uint64_t off, size_t len)
{
	uint8_t tmp[16384];
	bool ok = true;
	while (len > 0) {
		size_t n = len < sizeof(tmp) ? len : sizeof(tmp);
		if (evbuffer_remove(b, tmp, n) != (int)n)
			return false;
		for (size_t i = 0; i < n && ok; i++)
			ok = tmp[i] == pat(off + i);
		off += n;
		len -= n;
	}
	return ok;
}

static bool no_failure(const struct pair *p)
{
	return p->srv.eofs == 0 && p->srv.errors == 0 && p->cli.eofs == 0 && p->cli.errors == 0;
}

/* TLS 1.3 application-data records written (inner content type), via the msg callback. */
static void count_records(int write_p, int version, int content_type, const void *buf, size_t len,
                          SSL *ssl, void *arg)
{
	if (write_p && content_type == SSL3_RT_INNER_CONTENT_TYPE && len == 1 &&
	    *(const unsigned char *)buf == SSL3_RT_APPLICATION_DATA)
		++*(unsigned *)arg;
}

/* Alerts received (close_notify included), via the msg callback. */
static void count_alerts_in(int write_p, int version, int content_type, const void *buf, size_t len,
                            SSL *ssl, void *arg)
{
	if (!write_p && content_type == SSL3_RT_ALERT)
		++*(unsigned *)arg;
}

/* -------------------------------------------------------------------- tests -- */

static void send_ping(struct side *d)
{
	evbuffer_add(gw_stream_output(d->st), "ping", 4);
}

static void send_pong(struct side *d)
{
	evbuffer_add(gw_stream_output(d->st), "pong!", 5);
}

/*
 * 1. Each side gets CONNECTED once, and a message each way arrives intact. Both are
 * queued from the CONNECTED callbacks: the client's goes out right behind its Finished,
 * so the server (read-ahead) finds it in OpenSSL's buffer with the socket already quiet
 * and only gets it if the end of the handshake reads what OpenSSL holds.
 */
static void test_handshake_and_message(void)
{
	struct pair p;
	pair_new(&p, srv_ctx, cli_ctx, 0);
	p.cli.connected_hook = send_ping;
	p.srv.connected_hook = send_pong;
	gw_stream_read(p.srv.st, true);
	gw_stream_read(p.cli.st, true);
	RUN_UNTIL(&p, 2000,
	          evbuffer_get_length(p.srv.got) >= 4 && evbuffer_get_length(p.cli.got) >= 5);
	run(&p, 10);
	CU_ASSERT_EQUAL(p.srv.connected, 1);
	CU_ASSERT_EQUAL(p.cli.connected, 1);
	CU_ASSERT(got_is(&p.srv, "ping"));
	CU_ASSERT(got_is(&p.cli, "pong!"));
	CU_ASSERT(no_failure(&p));
	CU_ASSERT(!gw_stream_done(p.srv.st) && !gw_stream_done(p.cli.st));
	CU_ASSERT_EQUAL(SSL_version(gw_stream_ssl(p.srv.st)), TLS1_3_VERSION);
	CU_ASSERT(exchange(&p, "second from client", "second from server"));
	pair_free(&p);
}

/*
 * 1b. The same early data with reading off on the server: it sits decrypted-ahead in
 * OpenSSL (the socket has nothing), and gw_stream_read(true) must fetch it by itself.
 */
static void test_data_behind_finished_waits_for_read_on(void)
{
	struct pair p;
	pair_new(&p, srv_ctx, cli_ctx, 0);
	p.cli.connected_hook = send_ping;
	gw_stream_read(p.cli.st, true);
	RUN_UNTIL(&p, 2000, p.srv.connected && p.cli.connected);
	run(&p, 10);
	CU_ASSERT_FATAL(p.srv.connected == 1 && p.cli.connected == 1);
	/* The scenario: the record is in OpenSSL's read-ahead buffer, none in the socket. */
	CU_ASSERT(SSL_has_pending(gw_stream_ssl(p.srv.st)));
	CU_ASSERT_EQUAL(inq(p.srv.fd), 0);
	CU_ASSERT_EQUAL(p.srv.reads, 0);
	gw_stream_read(p.srv.st, true);
	RUN_UNTIL(&p, 500, evbuffer_get_length(p.srv.got) >= 4);
	CU_ASSERT(got_is(&p.srv, "ping"));
	CU_ASSERT(no_failure(&p));
	pair_free(&p);
}

/*
 * 1c. Output queued before the handshake is done (the owner need not wait for CONNECTED)
 * goes out once it is, from either end.
 */
static void test_output_queued_before_handshake(void)
{
	struct pair p;
	pair_new(&p, srv_ctx, cli_ctx, 0);
	evbuffer_add(gw_stream_output(p.cli.st), "queued by the client", 20);
	evbuffer_add(gw_stream_output(p.srv.st), "queued by the server", 20);
	gw_stream_read(p.srv.st, true);
	gw_stream_read(p.cli.st, true);
	RUN_UNTIL(&p, 2000,
	          evbuffer_get_length(p.srv.got) >= 20 && evbuffer_get_length(p.cli.got) >= 20);
	CU_ASSERT(got_is(&p.srv, "queued by the client"));
	CU_ASSERT(got_is(&p.cli, "queued by the server"));
	CU_ASSERT(p.srv.connected == 1 && p.cli.connected == 1);
	CU_ASSERT(no_failure(&p));
	pair_free(&p);
}

/* Case 2: the receiver pauses above RECV_PAUSE and resumes a few passes later. */
#define BIG_TOTAL  (8u << 20)
#define RECV_PAUSE (256u * 1024)

struct big {
	bool paused;
	long paused_at;
	unsigned pauses, reads_while_paused, held_resumes, quiet_resumes, sender_blocked;
	uint64_t verified;
	bool bad;
};

static struct big big;

static void big_read(struct side *d)
{
	if (big.paused)
		big.reads_while_paused++;
	if (evbuffer_get_length(gw_stream_input(d->st)) > RECV_PAUSE) {
		gw_stream_read(d->st, false);
		big.paused = true;
		big.paused_at = d->p->passes;
		big.pauses++;
	}
}

/*
 * 2. 8 MiB from the client while the server pauses reading above 256 KiB and resumes,
 * after draining, from a later pass. The client's socket fills (SSL_write WANT_WRITE, the
 * rest waits for EV_WRITE). Every byte is checked, in order. With rbuf set, the server's
 * OpenSSL read buffer is that big, so batches reach the 256 KiB read limit and pauses
 * leave records decrypted-ahead in OpenSSL, which the resume must deliver.
 */
static void large_transfer(size_t rbuf)
{
	struct pair p;
	memset(&big, 0, sizeof(big));
	pair_new(&p, srv_ctx, cli_ctx, 512 * 1024);
	if (rbuf)
		SSL_set_default_read_buffer_len(gw_stream_ssl(p.srv.st), rbuf);
	p.srv.read_hook = big_read;
	gw_stream_read(p.srv.st, true);
	gw_stream_read(p.cli.st, true);
	RUN_UNTIL(&p, 2000, p.srv.connected && p.cli.connected);
	CU_ASSERT_FATAL(p.srv.connected == 1 && p.cli.connected == 1);
	struct evbuffer *out = gw_stream_output(p.cli.st);
	add_pattern(out, 0, BIG_TOTAL);
	struct evbuffer *in = gw_stream_input(p.srv.st);
	time_t deadline = time(NULL) + 60;
	for (long i = 0; i < 5000 && time(NULL) < deadline && !big.bad; i++) {
		pass(&p);
		if (big.paused && evbuffer_get_length(out) > 0)
			big.sender_blocked++;
		if (big.paused && p.passes >= big.paused_at + 2) {
			size_t n = evbuffer_get_length(in);
			if (!take_pattern(in, big.verified, n))
				big.bad = true;
			big.verified += n;
			if (SSL_has_pending(gw_stream_ssl(p.srv.st))) {
				big.held_resumes++;
				if (inq(p.srv.fd) == 0)
					big.quiet_resumes++;
			}
			big.paused = false;
			gw_stream_read(p.srv.st, true);
		}
		if (!big.paused && big.verified + evbuffer_get_length(in) == BIG_TOTAL)
			break;
		if (!no_failure(&p))
			break;
	}
	size_t rest = evbuffer_get_length(in);
	if (!big.bad && !take_pattern(in, big.verified, rest))
		big.bad = true;
	big.verified += rest;
	CU_ASSERT(!big.bad);
	CU_ASSERT_EQUAL(big.verified, BIG_TOTAL);
	CU_ASSERT_EQUAL(evbuffer_get_length(out), 0);
	CU_ASSERT_EQUAL(big.reads_while_paused, 0);
	CU_ASSERT(big.pauses >= 8);
	CU_ASSERT(big.sender_blocked > 0); /* the client waited on a full socket */
	if (rbuf)
		CU_ASSERT(big.held_resumes > 0); /* resumed with records held by OpenSSL */
	CU_ASSERT(no_failure(&p));
	if (getenv("GW_STREAM_TEST_VERBOSE"))
		fprintf(stderr,
		        "\nbig(rbuf %zu): passes %ld pauses %u held %u quiet %u blocked %u\n", rbuf,
		        p.passes, big.pauses, big.held_resumes, big.quiet_resumes,
		        big.sender_blocked);
	/* Nothing left behind: one more message each way. */
	p.srv.read_hook = NULL;
	CU_ASSERT(exchange(&p, "after", "the flood"));
	pair_free(&p);
}

static void test_large_transfer_with_pauses(void)
{
	large_transfer(0);
}

static void test_large_transfer_with_pauses_big_rbuf(void)
{
	large_transfer(1 << 20);
}

static void pause_at_limit(struct side *d)
{
	if (evbuffer_get_length(gw_stream_input(d->st)) >= d->limit) {
		gw_stream_read(d->st, false);
		d->flag = true;
	}
}

/*
 * 2b. The read-ahead case made deterministic. With OpenSSL's default read buffer a batch
 * never reaches the 256 KiB read limit (record bodies are read exactly, so the buffer
 * empties after one or two 16 KiB records and the batch ends there); with a 1 MiB buffer
 * (SSL_set_default_read_buffer_len) one read() takes all that waits: 256 KiB + 100 bytes.
 * The batch stops at the limit with the last, small record decrypted-ahead in OpenSSL and
 * the socket empty. When the owner pauses there, trimming must keep that record and a
 * resume must deliver it; when it does not pause, the stream must come back for it by
 * itself. Neither has a socket event to come. The bigger buffer only takes effect once
 * the established stream's buffers were given back, so this also shows that
 * gw_stream_trim on an idle stream really released them.
 */
static void held_records(bool pause)
{
	struct pair p;
	pair_new(&p, srv_ctx, cli_ctx, 1 << 20);
	gw_stream_read(p.srv.st, true);
	gw_stream_read(p.cli.st, true);
	RUN_UNTIL(&p, 2000, p.srv.connected && p.cli.connected);
	CU_ASSERT_FATAL(p.srv.connected == 1 && p.cli.connected == 1);
	CU_ASSERT_FATAL(exchange(&p, "buffers", "in use")); /* OpenSSL's buffers allocated */
	run(&p, 3);
	evbuffer_drain(p.srv.got, evbuffer_get_length(p.srv.got));
	SSL *ssl = gw_stream_ssl(p.srv.st);
	gw_stream_read(p.srv.st, false);
	SSL_set_default_read_buffer_len(ssl, 1 << 20);
	gw_stream_trim(p.srv.st);

	const size_t head = 256 * 1024, tail = 100;
	struct evbuffer *out = gw_stream_output(p.cli.st);
	add_pattern(out, 0, head + tail);
	RUN_UNTIL(&p, 2000, evbuffer_get_length(out) == 0);
	run(&p, 5);
	CU_ASSERT_FATAL(evbuffer_get_length(out) == 0); /* all of it in the socket */
	CU_ASSERT_FATAL(inq(p.srv.fd) > head);
	unsigned reads = p.srv.reads;
	if (!pause) {
		gw_stream_read(p.srv.st, true);
		RUN_UNTIL(&p, 500, evbuffer_get_length(p.srv.got) >= head + tail);
		run(&p, 5);
		CU_ASSERT_EQUAL(evbuffer_get_length(p.srv.got), head + tail);
		CU_ASSERT(take_pattern(p.srv.got, 0, evbuffer_get_length(p.srv.got)));
		CU_ASSERT_EQUAL(p.srv.reads - reads, 2); /* the limited batch, then the rest */
		CU_ASSERT(no_failure(&p));
		CU_ASSERT(exchange(&p, "more", "data"));
		pair_free(&p);
		return;
	}
	p.srv.read_hook = pause_at_limit;
	p.srv.limit = head;
	gw_stream_read(p.srv.st, true);
	RUN_UNTIL(&p, 2000, p.srv.flag);
	run(&p, 10);
	struct evbuffer *in = gw_stream_input(p.srv.st);
	CU_ASSERT_EQUAL(p.srv.reads - reads, 1); /* one batch, then nothing while paused */
	CU_ASSERT_EQUAL_FATAL(evbuffer_get_length(in), head);
	CU_ASSERT_FATAL(SSL_has_pending(ssl));
	CU_ASSERT_FATAL(inq(p.srv.fd) == 0);
	/* Idle as far as the owner knows: trim, which OpenSSL must refuse here. */
	gw_stream_trim(p.srv.st);
	CU_ASSERT(SSL_has_pending(ssl));
	CU_ASSERT(take_pattern(in, 0, head));
	p.srv.read_hook = NULL;
	run(&p, 3);
	CU_ASSERT_EQUAL(p.srv.reads - reads, 1);
	gw_stream_read(p.srv.st, true);
	RUN_UNTIL(&p, 500, evbuffer_get_length(p.srv.got) >= tail);
	CU_ASSERT_EQUAL(evbuffer_get_length(p.srv.got), tail);
	CU_ASSERT(take_pattern(p.srv.got, head, tail));
	CU_ASSERT_EQUAL(p.srv.reads - reads, 2);
	CU_ASSERT(no_failure(&p));
	CU_ASSERT(exchange(&p, "more", "data"));
	pair_free(&p);
}

static void test_held_records_paused(void)
{
	held_records(true);
}

static void test_held_records_not_paused(void)
{
	held_records(false);
}

static const char *const pieces[] = {"HTTP/1.1 200 OK\r\n", "Content-Length: 5\r\n",
                                     "X-A: 1\r\n",          "X-B: 2\r\n",
                                     "X-C: 3\r\n",          "\r\n"};

static void reply_in_pieces(struct side *d)
{
	struct evbuffer *in = gw_stream_input(d->st);
	if (evbuffer_get_length(in) < 2)
		return;
	evbuffer_drain(in, evbuffer_get_length(in));
	struct evbuffer *out = gw_stream_output(d->st);
	for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++)
		evbuffer_add(out, pieces[i], strlen(pieces[i]));
	/* A separate chain that cannot be appended to, then more small chains. */
	evbuffer_add_reference(out, "hel", 3, NULL, NULL);
	evbuffer_add_printf(out, "%s", "lo");
	evbuffer_add(out, "!", 1);
	d->count++;
}

/*
 * 3. Small writes queued in one callback go out at the end of the pass as one record and
 * arrive as one contiguous input, in order.
 */
static void test_small_writes_coalesce(void)
{
	struct pair p;
	pair_up(&p, srv_ctx, cli_ctx);
	unsigned records = 0;
	SSL_set_msg_callback(gw_stream_ssl(p.srv.st), count_records);
	SSL_set_msg_callback_arg(gw_stream_ssl(p.srv.st), &records);
	run(&p, 5);
	CU_ASSERT_EQUAL(records, 0);
	p.srv.read_hook = reply_in_pieces;
	unsigned reads_before = p.cli.reads;
	evbuffer_add(gw_stream_output(p.cli.st), "go", 2);
	const char *want = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nX-B: 2\r\nX-C: "
	                   "3\r\n\r\nhello!";
	RUN_UNTIL(&p, 2000, evbuffer_get_length(p.cli.got) >= strlen(want));
	run(&p, 5);
	CU_ASSERT_EQUAL(p.srv.count, 1);
	CU_ASSERT(got_is(&p.cli, want));
	CU_ASSERT_EQUAL(records, 1);
	CU_ASSERT_EQUAL(p.cli.reads - reads_before, 1);
	CU_ASSERT(no_failure(&p));
	SSL_set_msg_callback(gw_stream_ssl(p.srv.st), NULL);
	pair_free(&p);
}

/* Case 4: the client refills from on_write; the server consumes as it reads. */
#define LOWAT_TOTAL (4u << 20)
#define LOWAT_PIECE (256u * 1024)
#define LOWAT       (64u * 1024)

static void refill(struct side *d)
{
	struct evbuffer *out = gw_stream_output(d->st);
	/* Called only once a write left at most the low watermark queued. */
	if (evbuffer_get_length(out) > LOWAT)
		d->flag = true;
	if (d->off < LOWAT_TOTAL) {
		add_pattern(out, d->off, LOWAT_PIECE);
		d->off += LOWAT_PIECE;
	}
}

static void consume(struct side *d)
{
	struct evbuffer *in = gw_stream_input(d->st);
	size_t n = evbuffer_get_length(in);
	if (!take_pattern(in, d->off, n))
		d->flag = true;
	d->off += n;
}

/*
 * 4. on_write runs once a write leaves the output at or below the watermark (never above
 * it), often enough for a producer that refills from it to move 4 MiB, and not when
 * nothing was written.
 */
static void test_low_watermark(void)
{
	struct pair p;
	pair_up(&p, srv_ctx, cli_ctx);
	p.srv.read_hook = consume;
	p.cli.write_hook = refill;
	gw_stream_set_wlowat(p.cli.st, LOWAT);
	struct evbuffer *out = gw_stream_output(p.cli.st);
	add_pattern(out, 0, LOWAT_PIECE);
	p.cli.off = LOWAT_PIECE;
	CU_ASSERT_EQUAL(p.cli.writes, 0);
	RUN_UNTIL(&p, 5000, p.srv.off >= LOWAT_TOTAL || p.srv.flag || p.cli.flag);
	CU_ASSERT(!p.cli.flag); /* on_write never ran above the watermark */
	CU_ASSERT(!p.srv.flag); /* every byte as sent */
	CU_ASSERT_EQUAL(p.srv.off, LOWAT_TOTAL);
	CU_ASSERT(p.cli.writes >= LOWAT_TOTAL / LOWAT_PIECE - 1);
	run(&p, 10);
	unsigned writes = p.cli.writes;
	CU_ASSERT_EQUAL(evbuffer_get_length(out), 0);
	run(&p, 10);
	CU_ASSERT_EQUAL(p.cli.writes, writes); /* idle: no more on_write */
	CU_ASSERT(no_failure(&p));
	pair_free(&p);
}

static void free_when_drained(struct side *d)
{
	if (evbuffer_get_length(gw_stream_output(d->st)) == 0)
		side_free(d);
}

static void free_in_read(struct side *d)
{
	d->count = (unsigned)evbuffer_get_length(gw_stream_input(d->st));
	d->flag = SSL_has_pending(gw_stream_ssl(d->st)) || inq(d->fd) > 0;
	side_free(d);
}

/*
 * 5. The owner frees the stream inside its on_read while more data (beyond the 256 KiB
 * batch) and the peer's close_notify are still to be read, and the batch's kick event is
 * pending: no callback after that (ASan would see any use of the freed stream). The
 * sender frees itself from its on_write, once drained.
 */
static void test_free_inside_on_read(void)
{
	struct pair p;
	pair_new(&p, srv_ctx, cli_ctx, 1 << 20);
	gw_stream_read(p.cli.st, true);
	RUN_UNTIL(&p, 2000, p.srv.connected && p.cli.connected);
	CU_ASSERT_FATAL(p.srv.connected == 1 && p.cli.connected == 1);
	/* A 1 MiB OpenSSL read buffer: the batch stops at the 256 KiB read limit. */
	SSL_set_default_read_buffer_len(gw_stream_ssl(p.srv.st), 1 << 20);
	const size_t total = 272 * 1024;
	p.cli.write_hook = free_when_drained;
	add_pattern(gw_stream_output(p.cli.st), 0, total);
	RUN_UNTIL(&p, 2000, p.cli.st == NULL);
	CU_ASSERT_FATAL(p.cli.st == NULL);
	run(&p, 5);
	CU_ASSERT(inq(p.srv.fd) > 0);
	p.srv.read_hook = free_in_read;
	gw_stream_read(p.srv.st, true);
	RUN_UNTIL(&p, 2000, p.srv.st == NULL);
	CU_ASSERT_FATAL(p.srv.st == NULL);
	run(&p, 20);
	CU_ASSERT_EQUAL(p.srv.reads, 1);
	CU_ASSERT_EQUAL(p.srv.count, 256 * 1024); /* stopped at the limit */
	CU_ASSERT(p.srv.flag);                    /* more was pending */
	CU_ASSERT_EQUAL(p.srv.eofs, 0);
	CU_ASSERT_EQUAL(p.srv.errors, 0);
	CU_ASSERT_EQUAL(p.srv.late, 0);
	CU_ASSERT_EQUAL(p.cli.late, 0);
	CU_ASSERT_EQUAL(p.cli.errors, 0);
	pair_free(&p);
}

/*
 * 5b. The same with only EOF left: a small message and the close_notify come in one
 * batch (one read-ahead), the owner frees in on_read, and the EOF, found in the same
 * batch, is not delivered to the freed stream.
 */
static void test_free_inside_on_read_before_eof(void)
{
	struct pair p;
	pair_new(&p, srv_ctx, cli_ctx, 0);
	gw_stream_read(p.cli.st, true);
	RUN_UNTIL(&p, 2000, p.srv.connected && p.cli.connected);
	CU_ASSERT_FATAL(p.srv.connected == 1 && p.cli.connected == 1);
	p.cli.write_hook = free_when_drained;
	add_pattern(gw_stream_output(p.cli.st), 0, 100);
	RUN_UNTIL(&p, 2000, p.cli.st == NULL);
	CU_ASSERT_FATAL(p.cli.st == NULL);
	run(&p, 5);
	p.srv.read_hook = free_in_read;
	gw_stream_read(p.srv.st, true);
	RUN_UNTIL(&p, 2000, p.srv.st == NULL);
	CU_ASSERT_FATAL(p.srv.st == NULL);
	run(&p, 20);
	CU_ASSERT_EQUAL(p.srv.reads, 1);
	CU_ASSERT_EQUAL(p.srv.count, 100);
	CU_ASSERT_EQUAL(p.srv.eofs, 0);
	CU_ASSERT_EQUAL(p.srv.errors, 0);
	CU_ASSERT_EQUAL(p.srv.late, 0);
	pair_free(&p);
}

/* Frees one end after an exchange and a last message, cleanly or without close_notify
 * (raw); the other end reads that message and the close in one batch. */
static void close_one(struct pair *p, struct side *closer, struct side *other, bool raw)
{
	CU_ASSERT_FATAL(exchange(p, "hello", "there"));
	run(p, 5);
	evbuffer_drain(other->got, evbuffer_get_length(other->got));
	gw_stream_read(other->st, false);
	evbuffer_add(gw_stream_output(closer->st), "bye", 3);
	RUN_UNTIL(p, 200, evbuffer_get_length(gw_stream_output(closer->st)) == 0);
	run(p, 2);
	if (raw)
		SSL_set_shutdown(gw_stream_ssl(closer->st), SSL_SENT_SHUTDOWN);
	side_free(closer);
	run(p, 2);
	gw_stream_read(other->st, true);
}

/*
 * 6. Clean close: freeing an end sends close_notify; the other end gets GW_STREAM_EOF
 * without GW_STREAM_ERROR, once, in either direction.
 */
static void test_clean_close(void)
{
	for (int dir = 0; dir < 2; dir++) {
		struct pair p;
		pair_up(&p, srv_ctx, cli_ctx);
		struct side *closer = dir ? &p.srv : &p.cli, *other = dir ? &p.cli : &p.srv;
		unsigned alerts = 0;
		SSL_set_msg_callback(gw_stream_ssl(other->st), count_alerts_in);
		SSL_set_msg_callback_arg(gw_stream_ssl(other->st), &alerts);
		close_one(&p, closer, other, false);
		RUN_UNTIL(&p, 2000, other->eofs || other->errors);
		run(&p, 20);
		CU_ASSERT_EQUAL(alerts, 1); /* the close_notify */
		CU_ASSERT(got_is(other, "bye"));
		CU_ASSERT_EQUAL(other->got_at_eof, 3); /* the data first, then the EOF */
		CU_ASSERT_EQUAL(other->eofs, 1);
		CU_ASSERT_EQUAL(other->errors, 0);
		CU_ASSERT_EQUAL(other->events, GW_STREAM_CONNECTED | GW_STREAM_EOF);
		CU_ASSERT(gw_stream_done(other->st));
		CU_ASSERT_EQUAL(gw_stream_error(other->st), 0);
		CU_ASSERT_EQUAL(closer->late + other->late, 0);
		SSL_set_msg_callback(gw_stream_ssl(other->st), NULL);
		pair_free(&p);
	}
}

/*
 * 6b. The client closes the socket without close_notify: the accepting end takes it as
 * EOF (SSL_OP_IGNORE_UNEXPECTED_EOF), not as an error. The connecting end stays strict:
 * the same close from the server is an error there.
 */
static void test_raw_close(void)
{
	struct pair p;
	pair_up(&p, srv_ctx, cli_ctx);
	unsigned alerts = 0;
	SSL_set_msg_callback(gw_stream_ssl(p.srv.st), count_alerts_in);
	SSL_set_msg_callback_arg(gw_stream_ssl(p.srv.st), &alerts);
	close_one(&p, &p.cli, &p.srv, true);
	RUN_UNTIL(&p, 2000, p.srv.eofs || p.srv.errors);
	run(&p, 20);
	CU_ASSERT_EQUAL(alerts, 0); /* really no close_notify */
	CU_ASSERT(got_is(&p.srv, "bye"));
	CU_ASSERT_EQUAL(p.srv.got_at_eof, 3);
	CU_ASSERT_EQUAL(p.srv.eofs, 1);
	CU_ASSERT_EQUAL(p.srv.errors, 0);
	CU_ASSERT(gw_stream_done(p.srv.st));
	pair_free(&p);

	pair_up(&p, srv_ctx, cli_ctx);
	close_one(&p, &p.srv, &p.cli, true);
	RUN_UNTIL(&p, 2000, p.cli.eofs || p.cli.errors);
	run(&p, 20);
	CU_ASSERT_EQUAL(p.cli.errors, 1);
	CU_ASSERT(p.cli.err != 0);
	CU_ASSERT_EQUAL(ERR_GET_REASON(p.cli.err), SSL_R_UNEXPECTED_EOF_WHILE_READING);
	CU_ASSERT(got_is(&p.cli, "bye"));
	pair_free(&p);
}

/*
 * 6c. One end goes away with bytes of the other's still unread: the other's socket reports
 * a reset (ECONNRESET after the queued data; TCP would send an RST), not an orderly close.
 * The accepting end takes that as EOF like any unclean close. The strict (connecting) end
 * must not take it for a clean EOF: upstream.c ends a close-delimited response on EOF
 * without error, and a reset is no proof of the response's end.
 */
static void reset_by(struct side *closer, struct side *other)
{
	struct pair *p = closer->p;
	CU_ASSERT_FATAL(exchange(p, "hello", "there"));
	run(p, 5);
	evbuffer_drain(other->got, evbuffer_get_length(other->got));
	gw_stream_read(closer->st, false);
	run(p, 2);
	evbuffer_add(gw_stream_output(other->st), "unread", 6);
	RUN_UNTIL(p, 200, inq(closer->fd) > 0);
	CU_ASSERT_FATAL(inq(closer->fd) > 0);
	/* Part of an answer, then the socket closes without close_notify. */
	evbuffer_add(gw_stream_output(closer->st), "partial", 7);
	RUN_UNTIL(p, 200, evbuffer_get_length(other->got) >= 7);
	SSL_set_shutdown(gw_stream_ssl(closer->st), SSL_SENT_SHUTDOWN);
	side_free(closer);
	RUN_UNTIL(p, 2000, other->eofs || other->errors);
	run(p, 20);
	CU_ASSERT(got_is(other, "partial"));
	CU_ASSERT_EQUAL(other->late + closer->late, 0);
}

static void test_reset(void)
{
	struct pair p;
	pair_up(&p, srv_ctx, cli_ctx);
	reset_by(&p.cli, &p.srv);
	CU_ASSERT_EQUAL(p.srv.eofs, 1);
	CU_ASSERT_EQUAL(p.srv.errors, 0);
	pair_free(&p);

	pair_up(&p, srv_ctx, cli_ctx);
	reset_by(&p.srv, &p.cli);
	CU_ASSERT_EQUAL(p.cli.errors, 1);
	CU_ASSERT(p.cli.events & GW_STREAM_ERROR);
	pair_free(&p);
}

static void handshake_both(struct pair *p, SSL_CTX *sctx, SSL_CTX *cctx)
{
	pair_new(p, sctx, cctx, 0);
	gw_stream_read(p->srv.st, true);
	gw_stream_read(p->cli.st, true);
	RUN_UNTIL(p, 2000,
	          (p->srv.connected || p->srv.errors) && (p->cli.connected || p->cli.errors));
	run(p, 20);
}

/*
 * 7. Handshake failures: GW_STREAM_ERROR on the failing side, with its OpenSSL error.
 * A client that verifies the server against the wrong CA; a server that requires a client
 * certificate the client does not send. The positive control connects.
 */
static void test_handshake_failures(void)
{
	struct pair p;
	pair_up(&p, srv_ctx, cli_ctx_ok); /* control: the right CA */
	CU_ASSERT(no_failure(&p));
	CU_ASSERT_EQUAL(SSL_get_verify_result(gw_stream_ssl(p.cli.st)), X509_V_OK);
	pair_free(&p);

	handshake_both(&p, srv_ctx, cli_ctx_bad);
	CU_ASSERT_EQUAL(p.cli.connected, 0);
	CU_ASSERT_EQUAL(p.cli.errors, 1);
	CU_ASSERT(p.cli.err != 0);
	CU_ASSERT_EQUAL(ERR_GET_REASON(p.cli.err), SSL_R_CERTIFICATE_VERIFY_FAILED);
	CU_ASSERT(gw_stream_done(p.cli.st));
	CU_ASSERT_EQUAL(gw_stream_error(p.cli.st), p.cli.err);
	/* The server hears the client's alert. */
	CU_ASSERT_EQUAL(p.srv.connected, 0);
	CU_ASSERT_EQUAL(p.srv.errors, 1);
	CU_ASSERT(p.srv.err != 0);
	CU_ASSERT_EQUAL(p.srv.late + p.cli.late, 0);
	pair_free(&p);

	handshake_both(&p, srv_ctx_mtls, cli_ctx);
	RUN_UNTIL(&p, 2000, p.srv.errors && p.cli.errors);
	CU_ASSERT_EQUAL(p.srv.connected, 0);
	CU_ASSERT_EQUAL(p.srv.errors, 1);
	CU_ASSERT_EQUAL(ERR_GET_REASON(p.srv.err), SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE);
	CU_ASSERT(gw_stream_error(p.srv.st) != 0);
	/* TLS 1.3: the client finished first, then reads the server's alert. */
	CU_ASSERT_EQUAL(p.cli.errors, 1);
	CU_ASSERT(p.cli.err != 0);
	pair_free(&p);

	/* The server is gone before the ClientHello: one error, nothing after it. */
	pair_new(&p, srv_ctx, cli_ctx, 0);
	side_free(&p.srv);
	gw_stream_read(p.cli.st, true);
	RUN_UNTIL(&p, 2000, p.cli.errors || p.cli.eofs);
	run(&p, 20);
	CU_ASSERT_EQUAL(p.cli.errors, 1);
	CU_ASSERT_EQUAL(p.cli.connected, 0);
	CU_ASSERT(gw_stream_done(p.cli.st));
	pair_free(&p);
}

/*
 * 8. gw_stream_trim: a no-op while handshaking, and on idle established streams it gives
 * the buffers back without losing anything: more data both ways still works, small and
 * large (the latter also refills the buffers while the socket is full).
 */
static void test_trim(void)
{
	struct pair p;
	pair_new(&p, srv_ctx, cli_ctx, 0);
	gw_stream_trim(p.srv.st);
	gw_stream_trim(p.cli.st);
	gw_stream_read(p.srv.st, true);
	gw_stream_read(p.cli.st, true);
	RUN_UNTIL(&p, 2000, p.srv.connected && p.cli.connected);
	CU_ASSERT_FATAL(p.srv.connected == 1 && p.cli.connected == 1);
	for (int round = 0; round < 3; round++) {
		run(&p, 3);
		gw_stream_trim(p.srv.st);
		gw_stream_trim(p.cli.st);
		CU_ASSERT(exchange(&p, "request after trim", "response after trim"));
	}
	gw_stream_trim(p.srv.st);
	gw_stream_trim(p.cli.st);
	const size_t n = 1 << 20;
	evbuffer_drain(p.srv.got, evbuffer_get_length(p.srv.got));
	evbuffer_drain(p.cli.got, evbuffer_get_length(p.cli.got));
	add_pattern(gw_stream_output(p.srv.st), 0, n);
	add_pattern(gw_stream_output(p.cli.st), 7, n);
	gw_stream_trim(p.srv.st); /* output queued: not idle */
	RUN_UNTIL(&p, 5000,
	          evbuffer_get_length(p.srv.got) >= n && evbuffer_get_length(p.cli.got) >= n);
	CU_ASSERT_EQUAL(evbuffer_get_length(p.srv.got), n);
	CU_ASSERT_EQUAL(evbuffer_get_length(p.cli.got), n);
	CU_ASSERT(take_pattern(p.cli.got, 0, evbuffer_get_length(p.cli.got)));
	CU_ASSERT(take_pattern(p.srv.got, 7, evbuffer_get_length(p.srv.got)));
	gw_stream_trim(p.srv.st);
	gw_stream_trim(p.cli.st);
	CU_ASSERT(exchange(&p, "last", "word"));
	CU_ASSERT(no_failure(&p));
	pair_free(&p);
}

CU_SUITE(gw_stream, suite_init, suite_clean,
         {"handshake and a message each way", test_handshake_and_message},
         {"data behind Finished waits for read on", test_data_behind_finished_waits_for_read_on},
         {"output queued before the handshake", test_output_queued_before_handshake},
         {"8 MiB with receiver pauses", test_large_transfer_with_pauses},
         {"8 MiB with receiver pauses, 1 MiB rbuf", test_large_transfer_with_pauses_big_rbuf},
         {"held records after the read limit, paused", test_held_records_paused},
         {"held records after the read limit, not paused", test_held_records_not_paused},
         {"small writes coalesce", test_small_writes_coalesce},
         {"low watermark", test_low_watermark}, {"free inside on_read", test_free_inside_on_read},
         {"free inside on_read before EOF", test_free_inside_on_read_before_eof},
         {"clean close", test_clean_close}, {"raw close", test_raw_close}, {"reset", test_reset},
         {"handshake failures", test_handshake_failures}, {"trim", test_trim})
