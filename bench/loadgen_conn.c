/*
 * The per-thread engine of gw_loadgen: one event_base, N connections, each a small state
 * machine over a non-blocking socket driven by SSL_read/SSL_write directly (no bufferevent,
 * so response bytes are decrypted straight into one per-thread buffer and parsed there).
 *
 * Every request attempt begins in conn_next() and ends exactly once, in either
 * conn_response_done() or conn_fail(); both feed the stats unless the attempt started
 * during warmup. Timeouts are found by a sweep timer rather than one timer per request,
 * which keeps the closed-loop hot path free of timer heap operations.
 */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <llhttp.h>
#include <openssl/err.h>

#include "loadgen.h"

#define RBUF_SIZE       (16 * 1024 + 256) /* one full TLS record per SSL_read */
#define CONNECT_BACKOFF 10000000ull       /* ns; a refused connect must not spin a core */
#define SWEEP_MS        50
#define NS              1000000000ull

enum conn_state { CS_IDLE, CS_CONNECTING, CS_HANDSHAKE, CS_WRITING, CS_READING, CS_DONE };
enum conn_wait { WAIT_NONE, WAIT_SCHED, WAIT_RETRY };

struct lg_conn {
	struct lg_worker *w; /* borrowed: owner */
	int fd;              /* -1 when no connection is open */
	SSL *ssl;
	SSL_SESSION *session; /* owned: last resumable session, kept for --resume */
	struct event *rev;    /* owned storage; persistent read interest while fd is open */
	struct event *wev;    /* owned storage; one-shot, armed only when a write would block */
	struct event *tev;    /* schedule / retry timer */
	bool ev_assigned;     /* rev/wev currently bound to fd */
	enum conn_state st;
	enum conn_wait wait;
	llhttp_t parser;
	size_t woff;
	uint64_t t_origin;   /* latency origin of the current attempt */
	uint64_t t_connect;  /* connect() call, origin of the handshake time */
	uint64_t t_deadline; /* the attempt times out after this */
	uint64_t next_sched; /* --rate: when the next request is due */
	bool warm;           /* attempt started during warmup: not measured */
	bool msg_done;
};

struct lg_worker {
	const struct lg_opts *o; /* borrowed */
	SSL_CTX *ctx;
	struct event_base *base;
	struct event *sweep_ev, *warm_ev, *stop_ev;
	struct lg_conn *conns;
	unsigned nconns, first_conn, ndone;
	uint64_t budget, issued; /* measured attempts allowed / started */
	uint64_t interval_ns;    /* --rate: per-connection spacing; 0 = closed loop */
	uint64_t timeout_ns;
	uint64_t t_start, t_measure, t_end;
	bool warming, stopping, aborted;
	struct lg_stats *stats;
	llhttp_settings_t settings;
	char rbuf[RBUF_SIZE];
};

static void conn_next(struct lg_conn *c);
static void conn_read(struct lg_conn *c);
static void conn_write(struct lg_conn *c);
static void conn_handshake(struct lg_conn *c);
static void on_readable(evutil_socket_t fd, short what, void *arg);
static void on_writable(evutil_socket_t fd, short what, void *arg);

static struct timeval ns_to_tv(uint64_t ns)
{
	struct timeval tv = {.tv_sec = (time_t)(ns / NS), .tv_usec = (suseconds_t)(ns % NS / 1000)};
	return tv;
}

/* An internal libevent failure leaves no way to drive connections: stop the worker. */
static void worker_abort(struct lg_worker *w, const char *why)
{
	fprintf(stderr, "gw_loadgen: %s; stopping this thread\n", why);
	w->stopping = true;
	w->aborted = true;
	event_base_loopbreak(w->base);
}

/* For --resume, keep the newest resumable session. OpenSSL marks a session unresumable
 * when its SSL is freed without a shutdown, so the shutdown flag is set first (no I/O). */
static void conn_session_keep(struct lg_conn *c)
{
	if (!SSL_is_init_finished(c->ssl))
		return;
	SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	SSL_SESSION *s = SSL_get1_session(c->ssl);
	if (s && SSL_SESSION_is_resumable(s)) {
		SSL_SESSION_free(c->session);
		c->session = s;
	} else {
		SSL_SESSION_free(s);
	}
}

/* Drop the socket and TLS state; the connection object stays for the next attempt. */
static void conn_close(struct lg_conn *c)
{
	if (c->ev_assigned) {
		event_del(c->rev);
		event_del(c->wev);
		c->ev_assigned = false;
	}
	if (c->ssl) {
		if (c->w->o->resume)
			conn_session_keep(c);
		SSL_free(c->ssl);
		c->ssl = NULL;
		ERR_clear_error(); /* the hot path relies on an empty error queue */
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->st = CS_IDLE;
}

/* This connection has nothing more to do; the last one to finish ends the loop. */
static void conn_retire(struct lg_conn *c)
{
	struct lg_worker *w = c->w;
	conn_close(c);
	c->st = CS_DONE;
	if (++w->ndone == w->nconns) {
		if (!w->t_end)
			w->t_end = lg_now_ns();
		event_base_loopbreak(w->base);
	}
}

static void conn_timer_at(struct lg_conn *c, uint64_t when, enum conn_wait wait)
{
	event_base_update_cache_time(c->w->base);
	uint64_t now = lg_now_ns();
	/* Rounded up to the microsecond so the timer does not fire just before `when`. */
	struct timeval tv = ns_to_tv(when > now ? when - now + 999 : 0);
	c->wait = wait;
	if (event_add(c->tev, &tv) != 0)
		worker_abort(c->w, "event_add failed");
}

/* End the current attempt as failed, then retry (after a pause for connect errors). */
static void conn_fail(struct lg_conn *c, enum lg_err kind, const char *detail)
{
	if (!c->warm)
		lg_stats_error(c->w->stats, kind, detail);
	conn_close(c);
	/* Retrying from a timer, never inline, bounds the stack when errors come synchronously. */
	conn_timer_at(c, lg_now_ns() + (kind == LG_ERR_CONNECT ? CONNECT_BACKOFF : 0), WAIT_RETRY);
}

/*
 * After an SSL call returned r <= 0: arm what OpenSSL waits for and return 0, or end the
 * attempt as `kind` (LG_ERR_TLS for any TLS protocol error or alert) and return -1.
 */
static int conn_ssl_wait(struct lg_conn *c, int r, enum lg_err kind, const char *what)
{
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ)
		return 0; /* rev is persistent while the socket is open */
	if (e == SSL_ERROR_WANT_WRITE && event_add(c->wev, NULL) == 0)
		return 0;
	char detail[160], ebuf[120];
	if (e == SSL_ERROR_SSL) {
		kind = LG_ERR_TLS;
		ERR_error_string_n(ERR_peek_last_error(), ebuf, sizeof(ebuf));
		snprintf(detail, sizeof(detail), "%s: %s", what, ebuf);
	} else if (e == SSL_ERROR_SYSCALL && errno) {
		snprintf(detail, sizeof(detail), "%s: %s", what, strerror(errno));
	} else {
		snprintf(detail, sizeof(detail), "%s: connection closed by peer", what);
	}
	ERR_clear_error();
	conn_fail(c, kind, detail);
	return -1;
}

/* The response is complete: record it, keep or close the connection, start the next. */
static void conn_response_done(struct lg_conn *c, bool eof)
{
	struct lg_worker *w = c->w;
	if (!c->warm) {
		struct lg_stats *s = w->stats;
		int status = llhttp_get_status_code(&c->parser);
		s->requests++;
		s->responses++;
		s->status[status >= 100 && status < 600 ? status / 100 : 0]++;
		lg_hist_record(s->latency, lg_now_ns() - c->t_origin);
	}
	bool unsent = c->woff < w->o->request_len; /* an early answer: the stream is out of step */
	if (eof || unsent || w->o->new_conn || !llhttp_should_keep_alive(&c->parser))
		conn_close(c);
	else
		c->st = CS_IDLE;
	conn_next(c);
}

/* Feed decrypted bytes to the parser. true when the attempt ended (either way). */
static bool conn_parse(struct lg_conn *c, const char *buf, size_t n)
{
	if (!c->warm)
		c->w->stats->bytes_read += n;
	llhttp_errno_t e = llhttp_execute(&c->parser, buf, n);
	if (e == HPE_OK)
		return false;
	if (e == HPE_PAUSED && c->msg_done) {
		/* One request is outstanding at a time, so nothing may follow its response. */
		if (llhttp_get_error_pos(&c->parser) != buf + n) {
			conn_fail(c, LG_ERR_HTTP, "bytes after the end of the response");
			return true;
		}
		conn_response_done(c, false);
		return true;
	}
	char detail[160];
	snprintf(detail, sizeof(detail), "%s: %s", llhttp_errno_name(e),
	         llhttp_get_error_reason(&c->parser));
	conn_fail(c, LG_ERR_HTTP, detail);
	return true;
}

/* The server closed while a response was expected: fine for a body delimited by EOF. */
static void conn_eof(struct lg_conn *c)
{
	llhttp_finish(&c->parser); /* calls on_message_complete when EOF ends the body */
	if (c->msg_done)
		conn_response_done(c, true);
	else
		conn_fail(c, LG_ERR_READ, "read: connection closed before the response ended");
}

static void conn_read(struct lg_conn *c)
{
	struct lg_worker *w = c->w;
	for (;;) {
		/* No ERR_clear_error() here: every error path clears the queue, so it is empty. */
		errno = 0;
		int r = SSL_read(c->ssl, w->rbuf, sizeof(w->rbuf));
		if (r > 0) {
			if (conn_parse(c, w->rbuf, (size_t)r))
				return;
			continue;
		}
		int e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0)) {
			conn_eof(c);
			return;
		}
		conn_ssl_wait(c, r, LG_ERR_READ, "read");
		return;
	}
}

/* Readable while no request is outstanding: a keep-alive close by the server, or TLS 1.3
 * post-handshake messages. Either way this is not a request attempt. */
static void conn_idle_read(struct lg_conn *c)
{
	ERR_clear_error();
	int r = SSL_read(c->ssl, c->w->rbuf, sizeof(c->w->rbuf));
	if (r <= 0 && SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_READ)
		return;
	ERR_clear_error();
	conn_close(c); /* the next attempt reconnects */
}

static void conn_write_start(struct lg_conn *c)
{
	c->st = CS_WRITING;
	c->woff = 0;
	c->msg_done = false;
	llhttp_reset(&c->parser);
	/* Closed-loop keep-alive latency is the request alone, as wrk measures it. */
	if (!c->w->interval_ns && !c->w->o->new_conn)
		c->t_origin = lg_now_ns();
	conn_write(c);
}

static void conn_write(struct lg_conn *c)
{
	const struct lg_opts *o = c->w->o;
	while (c->woff < o->request_len) {
		size_t left = o->request_len - c->woff;
		errno = 0;
		int r =
		    SSL_write(c->ssl, o->request + c->woff, left > INT_MAX ? INT_MAX : (int)left);
		if (r <= 0) {
			conn_ssl_wait(c, r, LG_ERR_WRITE, "write");
			return;
		}
		c->woff += (size_t)r;
	}
	if (!c->warm)
		c->w->stats->bytes_written += o->request_len;
	c->st = CS_READING;
}

static void conn_handshake(struct lg_conn *c)
{
	ERR_clear_error();
	errno = 0;
	int r = SSL_do_handshake(c->ssl);
	if (r != 1) {
		/* Whatever breaks a handshake (reset, EOF, alert) counts as a TLS failure. */
		conn_ssl_wait(c, r, LG_ERR_TLS, "handshake");
		return;
	}
	struct lg_stats *s = c->w->stats;
	if (!c->warm) {
		lg_hist_record(s->handshake, lg_now_ns() - c->t_connect);
		s->handshakes++;
		s->resumed += SSL_session_reused(c->ssl) ? 1 : 0;
	}
	conn_write_start(c);
}

/* TCP is up: create the SSL object and start the handshake. */
static void conn_tls_start(struct lg_conn *c)
{
	const struct lg_opts *o = c->w->o;
	const char *sni = o->servername ? o->servername : (o->host_is_ip ? NULL : o->host);
	c->ssl = SSL_new(c->w->ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1 ||
	    (sni && SSL_set_tlsext_host_name(c->ssl, sni) != 1) ||
	    (o->resume && c->session && SSL_set_session(c->ssl, c->session) != 1)) {
		ERR_clear_error();
		conn_fail(c, LG_ERR_TLS, "handshake: cannot set up the SSL object");
		return;
	}
	SSL_set_connect_state(c->ssl);
	if (event_add(c->rev, NULL) != 0) {
		worker_abort(c->w, "event_add failed");
		return;
	}
	c->st = CS_HANDSHAKE;
	conn_handshake(c);
}

static void conn_connect(struct lg_conn *c)
{
	struct lg_worker *w = c->w;
	const struct lg_opts *o = w->o;
	int one = 1;
	c->t_connect = lg_now_ns();
	c->fd = socket(o->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		goto fail;
	/* One small write then a wait for the answer: Nagle could only add delay. */
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (event_assign(c->rev, w->base, c->fd, EV_READ | EV_PERSIST, on_readable, c) != 0 ||
	    event_assign(c->wev, w->base, c->fd, EV_WRITE, on_writable, c) != 0) {
		errno = ENOMEM;
		goto fail;
	}
	c->ev_assigned = true;
	if (connect(c->fd, (const struct sockaddr *)&o->addr, o->addrlen) == 0) {
		conn_tls_start(c);
		return;
	}
	if (errno != EINPROGRESS)
		goto fail;
	c->st = CS_CONNECTING;
	if (event_add(c->wev, NULL) != 0)
		goto fail;
	return;
fail:;
	char detail[96];
	snprintf(detail, sizeof(detail), "connect: %s", strerror(errno));
	conn_fail(c, LG_ERR_CONNECT, detail);
}

/* connect() finished: check how, then go on to TLS. */
static void conn_connected(struct lg_conn *c)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
		soerr = errno;
	if (soerr) {
		char detail[96];
		snprintf(detail, sizeof(detail), "connect: %s", strerror(soerr));
		conn_fail(c, LG_ERR_CONNECT, detail);
		return;
	}
	conn_tls_start(c);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct lg_conn *c = arg;
	switch (c->st) {
	case CS_HANDSHAKE:
		conn_handshake(c);
		break;
	case CS_WRITING:
		/* Either SSL_write wanted to read, or the server answers before taking the
		 * whole body (a 413 or 401): read it, or the readable socket would spin. */
		conn_write(c);
		if (c->st == CS_WRITING)
			conn_read(c);
		break;
	case CS_READING:
		conn_read(c);
		break;
	case CS_IDLE:
		if (c->ssl)
			conn_idle_read(c);
		break;
	default:
		break;
	}
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
	struct lg_conn *c = arg;
	switch (c->st) {
	case CS_CONNECTING:
		conn_connected(c);
		break;
	case CS_HANDSHAKE:
		conn_handshake(c);
		break;
	case CS_WRITING:
		conn_write(c);
		break;
	case CS_READING: /* SSL_read wanted to write first */
		conn_read(c);
		break;
	default:
		break;
	}
}

/* Send the attempt that conn_next() reserved, connecting first when needed. */
static void conn_begin(struct lg_conn *c)
{
	uint64_t now = lg_now_ns();
	c->wait = WAIT_NONE;
	c->t_deadline = now + c->w->timeout_ns;
	if (!c->w->interval_ns)
		c->t_origin = now; /* with --rate the origin is the scheduled time */
	if (c->fd < 0)
		conn_connect(c);
	else
		conn_write_start(c);
}

/*
 * Start the next attempt: reserve it from the budget, then either send now or, with
 * --rate, wait for its slot. A late slot is sent at once and its latency still counts from
 * the slot, so a stalled server shows up in the percentiles (no coordinated omission).
 */
static void conn_next(struct lg_conn *c)
{
	struct lg_worker *w = c->w;
	if (w->stopping) {
		conn_retire(c);
		return;
	}
	c->warm = w->warming;
	if (!c->warm) {
		if (w->issued >= w->budget) {
			conn_retire(c);
			return;
		}
		w->issued++;
	}
	if (w->interval_ns) {
		uint64_t due = c->next_sched;
		c->next_sched += w->interval_ns;
		c->t_origin = due;
		if (due > lg_now_ns()) {
			conn_timer_at(c, due, WAIT_SCHED);
			return;
		}
	}
	conn_begin(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct lg_conn *c = arg;
	enum conn_wait wait = c->wait;
	/* libevent measures a timeout from its cached loop time, so it can fire early; a
	 * request must never leave before its slot, or its latency would go negative. */
	if (wait == WAIT_SCHED && lg_now_ns() < c->t_origin) {
		conn_timer_at(c, c->t_origin, WAIT_SCHED);
		return;
	}
	c->wait = WAIT_NONE;
	if (wait == WAIT_SCHED)
		conn_begin(c);
	else if (wait == WAIT_RETRY)
		conn_next(c);
}

/* Fail every attempt past its deadline; the phase tells where the server got stuck. */
static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	static const char *const phase[] = {
	    [CS_CONNECTING] = "timeout: connecting",
	    [CS_HANDSHAKE] = "timeout: in the TLS handshake",
	    [CS_WRITING] = "timeout: writing the request",
	    [CS_READING] = "timeout: waiting for the response",
	};
	struct lg_worker *w = arg;
	uint64_t now = lg_now_ns();
	for (unsigned i = 0; i < w->nconns; i++) {
		struct lg_conn *c = &w->conns[i];
		if (c->st >= CS_CONNECTING && c->st <= CS_READING && now > c->t_deadline)
			conn_fail(c, LG_ERR_TIMEOUT, phase[c->st]);
	}
}

/* Warmup is over: forget what was counted and start the measured window. */
static void on_warm_end(evutil_socket_t fd, short what, void *arg)
{
	struct lg_worker *w = arg;
	w->warming = false;
	lg_stats_reset(w->stats);
	w->t_measure = lg_now_ns();
	struct timeval tv = ns_to_tv((uint64_t)(w->o->duration * (double)NS));
	if (w->o->duration > 0 && event_add(w->stop_ev, &tv) != 0)
		worker_abort(w, "event_add failed");
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	struct lg_worker *w = arg;
	w->stopping = true;
	w->t_end = lg_now_ns();
	event_base_loopbreak(w->base);
}

static int on_headers_complete(llhttp_t *p)
{
	struct lg_conn *c = p->data;
	/* A HEAD response announces a body it never sends; 1 tells llhttp there is none. */
	return c->w->o->head ? 1 : 0;
}

static int on_message_complete(llhttp_t *p)
{
	struct lg_conn *c = p->data;
	c->msg_done = true;
	return HPE_PAUSED; /* stop exactly at the end so trailing bytes are detected */
}

/* Allocate the connection slots; each owns its event storage and parser. */
static int worker_conns_init(struct lg_worker *w)
{
	w->conns = calloc(w->nconns, sizeof(*w->conns));
	if (!w->conns)
		return -1;
	for (unsigned i = 0; i < w->nconns; i++) {
		struct lg_conn *c = &w->conns[i];
		c->w = w;
		c->fd = -1;
		/* Storage reused by event_assign on every reconnect: no malloc per connection. */
		c->rev = malloc(event_get_struct_event_size());
		c->wev = malloc(event_get_struct_event_size());
		c->tev = evtimer_new(w->base, on_timer, c);
		if (!c->rev || !c->wev || !c->tev)
			return -1;
		llhttp_init(&c->parser, HTTP_RESPONSE, &w->settings);
		c->parser.data = c;
	}
	return 0;
}

struct lg_worker *lg_worker_new(const struct lg_opts *o, SSL_CTX *ctx, unsigned first_conn,
                                unsigned nconns, uint64_t budget, char *err, size_t errlen)
{
	struct event_config *cfg = NULL;
	struct lg_worker *w = calloc(1, sizeof(*w));
	if (!w) {
		SSL_CTX_free(ctx);
		goto fail;
	}
	w->o = o;
	w->ctx = ctx;
	w->first_conn = first_conn;
	w->nconns = nconns;
	w->budget = budget;
	w->timeout_ns = (uint64_t)(o->timeout * (double)NS);
	if (o->rate > 0) {
		double iv = (double)o->conns / o->rate * (double)NS;
		w->interval_ns = iv < 1.0 ? 1 : (uint64_t)iv;
	}
	w->stats = lg_stats_new();
	cfg = event_config_new();
	if (!w->stats || !cfg)
		goto fail;
	/* One thread per base, so no locks; precise timers put --rate slots on time instead of
	 * on the next millisecond tick. */
	event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
	if (o->rate > 0)
		event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
	w->base = event_base_new_with_config(cfg);
	if (!w->base)
		goto fail;
	w->sweep_ev = event_new(w->base, -1, EV_PERSIST, on_sweep, w);
	w->warm_ev = evtimer_new(w->base, on_warm_end, w);
	w->stop_ev = evtimer_new(w->base, on_stop, w);
	if (!w->sweep_ev || !w->warm_ev || !w->stop_ev)
		goto fail;
	llhttp_settings_init(&w->settings);
	w->settings.on_headers_complete = on_headers_complete;
	w->settings.on_message_complete = on_message_complete;
	if (worker_conns_init(w))
		goto fail;
	event_config_free(cfg);
	return w;
fail:
	snprintf(err, errlen, "cannot create a worker (out of memory or no event backend)");
	event_config_free(cfg);
	lg_worker_free(w);
	return NULL;
}

void lg_worker_free(struct lg_worker *w)
{
	if (!w)
		return;
	for (unsigned i = 0; w->conns && i < w->nconns; i++) {
		struct lg_conn *c = &w->conns[i];
		if (c->w)
			conn_close(c);
		SSL_SESSION_free(c->session);
		if (c->tev)
			event_free(c->tev);
		free(c->rev);
		free(c->wev);
	}
	free(w->conns);
	if (w->sweep_ev)
		event_free(w->sweep_ev);
	if (w->warm_ev)
		event_free(w->warm_ev);
	if (w->stop_ev)
		event_free(w->stop_ev);
	if (w->base)
		event_base_free(w->base);
	SSL_CTX_free(w->ctx);
	lg_stats_free(w->stats);
	free(w);
}

int lg_worker_run(struct lg_worker *w)
{
	const struct lg_opts *o = w->o;
	struct timeval sweep = {.tv_sec = 0, .tv_usec = SWEEP_MS * 1000};
	w->t_start = w->t_measure = lg_now_ns();
	w->warming = o->warmup > 0;
	struct timeval first = ns_to_tv((uint64_t)((w->warming ? o->warmup : o->duration) * NS));
	if (event_add(w->sweep_ev, &sweep) != 0 ||
	    (w->warming && event_add(w->warm_ev, &first) != 0) ||
	    (!w->warming && o->duration > 0 && event_add(w->stop_ev, &first) != 0)) {
		fprintf(stderr, "gw_loadgen: event_add failed\n");
		return -1;
	}
	/* Spread the first --rate slots over one interval instead of bursting at t=0. */
	uint64_t gap = o->rate > 0 ? (uint64_t)((double)NS / o->rate) : 0;
	for (unsigned i = 0; i < w->nconns; i++) {
		w->conns[i].next_sched = w->t_start + (uint64_t)(w->first_conn + i) * gap;
		conn_next(&w->conns[i]);
	}
	if (w->ndone < w->nconns && !w->stopping)
		event_base_dispatch(w->base);
	if (!w->t_end)
		w->t_end = lg_now_ns();
	/* Attempts still in flight at the end are dropped unmeasured, as wrk does. */
	for (unsigned i = 0; i < w->nconns; i++)
		conn_close(&w->conns[i]);
	return w->aborted ? -1 : 0;
}

const struct lg_stats *lg_worker_stats(const struct lg_worker *w)
{
	return w->stats;
}

void lg_worker_window(const struct lg_worker *w, uint64_t *start, uint64_t *end)
{
	*start = w->t_measure;
	*end = w->t_end;
}
