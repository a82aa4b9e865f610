/*
 * conn.c: one client TLS connection, from accept to close. It owns the handshake, the
 * request parser and the client-side timeouts; what a request does once its head is
 * parsed lives in proxy.c. Requests on one connection are handled strictly one at a
 * time: pipelined bytes wait in the input buffer until the previous response is queued,
 * which keeps responses in order without a per-connection queue.
 */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/tcp.h>

#include <openssl/err.h>

#include "pki.h"
#include "gw.h"

static void conn_process(struct gw_conn *c);
static void conn_readcb(struct gw_stream *st, void *arg);

static void timer_set(struct gw_conn *c, uint32_t ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(c->timer, &tv);
}

static const struct conf_timeouts *conn_timeouts(const struct gw_conn *c)
{
	return &c->gen->cfg->timeouts;
}

/* Stops or restarts reading from the client (backpressure from the upstream side). */
void gw_conn_pause_read(struct gw_conn *c, bool pause)
{
	if (pause == c->read_paused)
		return;
	c->read_paused = pause;
	gw_stream_read(c->st, !pause);
	if (!pause)
		gw_conn_resume(c);
}

void gw_conn_write(struct gw_conn *c, const void *data, size_t len)
{
	evbuffer_add(gw_stream_output(c->st), data, len);
}

/* Schedules conn_process from the event loop, never re-entering it from a callback. */
void gw_conn_resume(struct gw_conn *c)
{
	event_active(c->ev_resume, 0, 0);
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
	conn_process(arg);
}

/* Frees everything of the connection; an unfinished request is audited first. */
void gw_conn_close(struct gw_conn *c, enum gw_reason why)
{
	c->state = GW_CONN_CLOSING; /* tells the funnel not to answer or resume */
	if (c->req)
		gw_req_finish(c->req, gw_reason_status(why), why, "connection_closed");
	struct gw_worker *w = c->w;
	TAILQ_REMOVE(&w->conns, c, link);
	w->n_conns--;
	if (c->timer)
		event_free(c->timer);
	if (c->ev_resume)
		event_free(c->ev_resume);
	gw_stream_free(c->st);
	if (c->ps_ready)
		gw_parser_free(&c->ps);
	authn_cert_id_clear(&c->cert);
	free(c->fwd_hdrs);
	free(c->audit_peer);
	if (c->pending)
		evbuffer_free(c->pending);
	if (c->replay)
		evbuffer_free(c->replay);
	gw_gen_unref(c->gen);
	free(c);
}

/*
 * Gives back what an idle connection does not need until its next request: OpenSSL's
 * record buffers and the parser arena (up to 35 KiB together). Only after half a second
 * of idleness, so a busy keep-alive connection does not pay to re-allocate them. Freed
 * heap in the middle of an arena stays resident until malloc_trim hands its pages back,
 * so after a sweep that freed something the process does that too.
 */
void gw_conn_trim_idle(struct gw_worker *w)
{
	uint64_t now = gw_now_us();
	unsigned n = 0;
	struct gw_conn *c;
	TAILQ_FOREACH(c, &w->conns, link)
	{
		if (c->trimmed || c->state != GW_CONN_READY || c->req ||
		    now - c->t_idle < GW_IDLE_TRIM_US)
			continue;
		gw_stream_trim(c->st);
		gw_parser_trim(&c->ps);
		c->trimmed = true;
		n++;
	}
	n += gw_worker_pools_trim(w);
	if (n > 0)
		malloc_trim(0);
}

/* Closes connections that have no request in progress (drain at shutdown). */
void gw_conn_close_idle(struct gw_worker *w)
{
	struct gw_conn *c, *tmp;
	/* glibc's sys/queue.h lacks TAILQ_FOREACH_SAFE. */
	for (c = TAILQ_FIRST(&w->conns); c; c = tmp) {
		tmp = TAILQ_NEXT(c, link);
		if (c->state == GW_CONN_READY && !c->req)
			gw_conn_close(c, GW_SHUTDOWN);
		else
			c->close_after = true;
	}
}

static void conn_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_conn *c = arg;
	switch (c->state) {
	case GW_CONN_HANDSHAKE:
		gw_log(GW_LOG_INFO, "tls handshake from %s:%u failed: handshake_timeout", c->peer,
		       c->peer_port);
		gw_audit_handshake(c, "handshake_timeout");
		c->w->ctr.handshakes_failed++;
		gw_conn_close(c, GW_TLS_HANDSHAKE);
		return;
	case GW_CONN_READY:
		if (c->req) {
			/* Slowloris: the head did not arrive in time. */
			c->close_after = true;
			gw_req_finish(c->req, 408, GW_HEADER_TIMEOUT, "request_header_timeout");
			return;
		}
		gw_conn_close(c, GW_OK);
		return;
	case GW_CONN_ACTIVE:
		/* Only armed while the body is read: the client stalled mid-body. */
		if (c->req && !c->req->body_done) {
			c->close_after = true;
			gw_req_finish(c->req, 408, GW_HEADER_TIMEOUT, "request_body_timeout");
		}
		return;
	case GW_CONN_CLOSING:
		gw_conn_close(c, GW_OK);
		return;
	}
}

/*
 * After a reload, a kept-alive connection is held to the trust of the generation now in
 * service before its next request: a certificate revoked by the new CRL (or a CA removed
 * from the bundle) is cut off without waiting for the client to reconnect. Listeners
 * are the same across generations (a reload that changes them is refused).
 */
int gw_conn_recheck(struct gw_conn *c, struct gw_gen *g)
{
	if (c->gen == g)
		return PKI_OK;
	const struct conf_listener *now = &g->cfg->listeners[c->lis_idx];
	const struct conf_listener *then = &c->gen->cfg->listeners[c->lis_idx];
	if (memcmp(now->trust_digest, then->trust_digest, sizeof(now->trust_digest)) != 0) {
		enum pki_reason r = pki_server_reverify(now->tls, c->ssl);
		if (r != PKI_OK)
			return r;
	}
	gw_gen_unref(c->gen);
	c->gen = gw_gen_ref(g);
	return PKI_OK;
}

/* Takes the verified identity and moves the connection to reading requests. */
static void conn_established(struct gw_conn *c)
{
	char err[256];
	c->handshake_us = gw_now_us() - c->t_accept;
	c->w->ctr.handshakes_ok++;
	X509 *leaf = SSL_get0_peer_certificate(c->ssl);
	if (leaf && authn_cert_id_from_x509(&c->cert, leaf, err, sizeof(err)) != 0) {
		gw_log(GW_LOG_INFO, "tls from %s:%u refused: bad_identity: %s", c->peer,
		       c->peer_port, err);
		gw_audit_handshake(c, "bad_identity");
		gw_conn_close(c, GW_TLS_HANDSHAKE);
		return;
	}
	const char *sni = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
	if (sni)
		snprintf(c->sni, sizeof(c->sni), "%s", sni);
	gw_parser_init(&c->ps, HTTP_REQUEST, &c->gen->cfg->limits);
	c->ps_ready = true;
	c->state = GW_CONN_READY;
	c->t_idle = gw_now_us();
	timer_set(c, conn_timeouts(c)->idle);
	conn_process(c);
}

static void conn_eventcb(struct gw_stream *st, short what, void *arg)
{
	struct gw_conn *c = arg;
	if (what & GW_STREAM_CONNECTED) {
		conn_established(c);
		return;
	}
	if (c->state == GW_CONN_HANDSHAKE) {
		enum pki_reason r = pki_ssl_reason(c->ssl);
		unsigned long e = gw_stream_error(st);
		char detail[160] = "";
		if (e)
			ERR_error_string_n(e, detail, sizeof(detail));
		gw_log(GW_LOG_INFO, "tls handshake from %s:%u failed: %s%s%s", c->peer,
		       c->peer_port, pki_reason_str(r), e ? " " : "", detail);
		gw_audit_handshake(c, pki_reason_str(r));
		c->w->ctr.handshakes_failed++;
		gw_conn_close(c, GW_TLS_HANDSHAKE);
		return;
	}
	/* EOF or error from the client: anything in progress is lost to it. */
	gw_conn_close(c, GW_CLIENT_CLOSED);
}

static void conn_writecb(struct gw_stream *st, void *arg)
{
	struct gw_conn *c = arg;
	struct evbuffer *out = gw_stream_output(st);
	if (c->state == GW_CONN_CLOSING && evbuffer_get_length(out) == 0) {
		gw_conn_close(c, GW_OK);
		return;
	}
	/* The client drained below the low mark: let the upstream send again. */
	if (c->req && c->req->up)
		gw_upstream_resume_read(c->req->up);
}

static void conn_readcb(struct gw_stream *st, void *arg)
{
	conn_process(arg);
}

static int req_body_cb(void *ud, const char *at, size_t len)
{
	return gw_req_body(ud, at, len);
}

/* "<prefix><worker:2 hex><sequence:12 hex>", by hand: snprintf was 1 in 70 instructions
 * of a request. */
static void req_id(char *out, const char *prefix, unsigned worker, uint64_t seq)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = strlen(prefix);
	memcpy(out, prefix, n);
	out[n++] = hex[(worker >> 4) & 15];
	out[n++] = hex[worker & 15];
	for (int i = 11; i >= 0; i--)
		out[n++] = hex[(seq >> (4 * i)) & 15];
	out[n] = '\0';
}

/* Starts a request object when the first byte of a new head arrives. */
static struct gw_req *conn_req_new(struct gw_conn *c)
{
	struct gw_req *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->c = c;
	r->gen = gw_gen_ref(c->w->gen);
	r->t_start = gw_now_us();
	r->cluster = r->server = -1;
	struct gw_worker *w = c->w;
	req_id(r->id, w->main->id_prefix, w->id & 0xff, ++w->req_seq);
	c->req = r;
	c->trimmed = false;
	c->ps.ud = r;
	c->ps.on_body = req_body_cb;
	c->ps.limits = &r->gen->cfg->limits;
	timer_set(c, conn_timeouts(c)->request_header);
	return r;
}

/* A parse error before or during the body: 400 if nothing was answered yet, then close. */
static void conn_parse_error(struct gw_conn *c)
{
	c->close_after = true;
	if (!c->ps.head.error)
		gw_log(GW_LOG_DEBUG, "request from %s:%u: %s", c->peer, c->peer_port,
		       gw_parser_error_text(&c->ps));
	gw_req_finish(c->req, 400, GW_BAD_REQUEST, gw_parser_error(&c->ps));
}

/* One step of feeding the parser; false when processing must stop for now. */
static bool conn_feed_once(struct gw_conn *c, struct evbuffer *in)
{
	struct evbuffer_iovec v;
	if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
		return false;
	struct gw_req *r = c->req;
	bool had_head = c->ps.head_done;
	size_t used = 0;
	enum gw_feed f = gw_parser_feed(&c->ps, v.iov_base, v.iov_len, &used);
	r->bytes_in += used;
	evbuffer_drain(in, used);
	if (f == GW_FEED_ERROR) {
		conn_parse_error(c);
		return false;
	}
	if (f == GW_FEED_DONE)
		r->body_done = true; /* before the head is handled: a GET has no body to wait for */
	if (c->ps.head_done && !had_head) {
		c->state = GW_CONN_ACTIVE;
		r->t_head = gw_now_us();
		evtimer_del(c->timer);
		gw_req_on_head(r);
		if (c->req != r)
			return false; /* answered at once (error) */
		timer_set(c, conn_timeouts(c)->body);
	}
	if (f == GW_FEED_DONE && c->req == r) {
		evtimer_del(c->timer);
		gw_req_body_done(r);
		return false;
	}
	return c->req == r && !c->read_paused;
}

/*
 * Parses whatever input is buffered. Stops while a request is waiting for its response
 * (pipelining in order), while reading is paused for backpressure, or when closing.
 */
static void conn_process(struct gw_conn *c)
{
	struct evbuffer *in = gw_stream_input(c->st);
	for (;;) {
		if (c->state == GW_CONN_HANDSHAKE)
			return;
		if (c->state == GW_CONN_CLOSING) {
			evbuffer_drain(in, evbuffer_get_length(in));
			return;
		}
		if (c->read_paused || evbuffer_get_length(in) == 0)
			return;
		if (c->req && c->req->body_done)
			return; /* next pipelined request waits for this response */
		if (!c->req) {
			if (c->close_after || c->w->draining)
				return;
			if (!conn_req_new(c)) {
				gw_conn_close(c, GW_INTERNAL);
				return;
			}
			gw_parser_reset(&c->ps);
		}
		if (!conn_feed_once(c, in))
			return;
	}
}

/*
 * Called by gw_req_finish once a request is over: either close (after flushing) or wait
 * for the next request, parsing any pipelined bytes already buffered.
 */
void gw_conn_request_done(struct gw_conn *c)
{
	c->n_requests++;
	if (c->close_after || c->w->draining) {
		c->state = GW_CONN_CLOSING;
		gw_stream_read(c->st, false);
		if (evbuffer_get_length(gw_stream_output(c->st)) == 0) {
			/* Close from the loop, not under the caller's feet. */
			timer_set(c, 0);
			return;
		}
		timer_set(c, 5000);
		return;
	}
	c->state = GW_CONN_READY;
	c->t_idle = gw_now_us();
	c->read_paused = false;
	gw_stream_read(c->st, true);
	timer_set(c, conn_timeouts(c)->idle);
	gw_conn_resume(c);
}

/* Accepts one TCP connection on listener lis_idx and starts the TLS handshake. */
void gw_conn_accept(struct gw_worker *w, unsigned lis_idx, evutil_socket_t fd,
                    const struct sockaddr *sa, int salen)
{
	struct gw_conn *c = calloc(1, sizeof(*c));
	SSL *ssl = NULL;
	if (!c)
		goto fail;
	c->w = w;
	c->gen = gw_gen_ref(w->gen);
	c->lis_idx = lis_idx;
	c->t_accept = gw_now_us();
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, c->peer, sizeof(c->peer));
		c->peer_port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, c->peer, sizeof(c->peer));
		c->peer_port = ntohs(in6->sin6_port);
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ssl = SSL_new(pki_server_get0_ctx(c->gen->cfg->listeners[lis_idx].tls));
	if (!ssl)
		goto fail;
	c->ssl = ssl;
	c->st = gw_stream_new(w->base, fd, ssl, true);
	if (!c->st)
		goto fail;
	fd = -1;
	ssl = NULL; /* owned by the stream now */
	c->timer = evtimer_new(w->base, conn_timeout_cb, c);
	c->ev_resume = event_new(w->base, -1, 0, resume_cb, c);
	if (!c->timer || !c->ev_resume)
		goto fail;
	TAILQ_INSERT_TAIL(&w->conns, c, link);
	w->n_conns++;
	gw_stream_setcb(c->st, conn_readcb, conn_writecb, conn_eventcb, c);
	gw_stream_set_wlowat(c->st, GW_HIGH_WATER / 2);
	gw_stream_read(c->st, true);
	timer_set(c, conn_timeouts(c)->handshake);
	return;
fail:
	gw_log(GW_LOG_ERR, "accept: out of memory");
	if (ssl)
		SSL_free(ssl);
	if (fd >= 0)
		evutil_closesocket(fd);
	if (c) {
		gw_stream_free(c->st);
		if (c->timer)
			event_free(c->timer);
		if (c->ev_resume)
			event_free(c->ev_resume);
		gw_gen_unref(c->gen);
		free(c);
	}
}
