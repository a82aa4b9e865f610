/*
 * upstream.c: connections to backends. Each worker keeps, per server, a pool of idle
 * keep-alive TLS connections; a request leases one (or opens one), the response is
 * relayed to the client with backpressure, and the connection goes back to the pool if
 * both sides ended the exchange cleanly. Connect and TLS failures fail over to the next
 * server before any byte reached the backend; nothing is retried once the backend may
 * have acted on a non-idempotent request.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/tcp.h>

#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>

#include "pki.h"
#include "gw.h"

static void up_readcb(struct bufferevent *bev, void *arg);
static void up_writecb(struct bufferevent *bev, void *arg);
static void up_eventcb(struct bufferevent *bev, short what, void *arg);

static void up_timer_set(struct gw_upconn *u, uint32_t ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(u->timer, &tv);
}

static const struct conf_cluster *up_cluster(const struct gw_upconn *u)
{
	return &u->gen->cfg->clusters[u->cluster];
}

static void up_free(struct gw_upconn *u)
{
	if (u->state == GW_UP_IDLE) {
		struct gw_pool *pl = &u->w->pools[u->srv];
		TAILQ_REMOVE(&pl->idle, u, link);
		pl->n_idle--;
	}
	if (u->timer)
		event_free(u->timer);
	if (u->tcp_ev)
		event_free(u->tcp_ev);
	if (u->bev)
		bufferevent_free(u->bev);
	if (u->ssl_owned)
		SSL_free(u->ssl);
	if (u->fd >= 0)
		evutil_closesocket(u->fd);
	gw_parser_free(&u->ps);
	free(u);
}

/* Drops every idle connection of the worker's pools (generation change or exit). */
void gw_worker_pools_free(struct gw_worker *w)
{
	if (!w->pools)
		return;
	for (size_t i = 0; i < w->pools_gen->n_servers_total; i++)
		while (!TAILQ_EMPTY(&w->pools[i].idle))
			up_free(TAILQ_FIRST(&w->pools[i].idle));
	free(w->pools);
	free(w->rr);
	w->pools = NULL;
	w->rr = NULL;
	w->pools_gen = NULL;
}

/* Rebuilds the pools for the worker's current generation; old idle connections go. */
void gw_worker_pools_sync(struct gw_worker *w)
{
	if (w->pools_gen == w->gen)
		return;
	gw_worker_pools_free(w);
	size_t n = w->gen->n_servers_total;
	w->pools = calloc(n ? n : 1, sizeof(*w->pools));
	w->rr = calloc(w->gen->cfg->n_clusters ? w->gen->cfg->n_clusters : 1, sizeof(*w->rr));
	if (!w->pools || !w->rr) {
		free(w->pools);
		free(w->rr);
		w->pools = NULL;
		w->rr = NULL;
		return; /* no pooling until the next generation: requests still work */
	}
	for (size_t i = 0; i < n; i++)
		TAILQ_INIT(&w->pools[i].idle);
	w->pools_gen = w->gen;
}

/*
 * Round robin over the cluster's primaries that were not tried yet; backups only when
 * no primary is left. Returns the index within the cluster, or -1.
 */
static int up_pick(struct gw_req *r, unsigned cl)
{
	const struct conf_cluster *c = &r->gen->cfg->clusters[cl];
	struct gw_worker *w = r->c->w;
	size_t n = c->n_servers < 64 ? c->n_servers : 64;
	unsigned start = (w->rr && w->pools_gen == r->gen) ? w->rr[cl]++ : (unsigned)r->attempts;
	for (int backup = 0; backup < 2; backup++)
		for (size_t k = 0; k < n; k++) {
			size_t i = (start + k) % n;
			if ((r->tried & (1ull << i)) || c->servers[i].backup != (backup == 1))
				continue;
			return (int)i;
		}
	return -1;
}

/* Moves what the request queued so far onto the now-usable connection. */
static void up_attach(struct gw_upconn *u, struct gw_req *r)
{
	const struct conf_cluster *cl = up_cluster(u);
	u->req = r;
	u->state = GW_UP_ACTIVE;
	u->got_bytes = false;
	u->n_requests++;
	r->up = u;
	r->t_up = gw_now_us();
	gw_parser_reset(&u->ps);
	u->ps.skip_body = r->resp_head_req;
	u->ps.ud = r;
	evbuffer_add_buffer(bufferevent_get_output(u->bev), r->pending);
	bufferevent_setwatermark(u->bev, EV_WRITE, GW_HIGH_WATER / 2, 0);
	bufferevent_enable(u->bev, EV_READ | EV_WRITE);
	up_timer_set(u, r->gen->cfg->timeouts.upstream_response);
	(void)cl;
	/* The client may have been paused while we connected. */
	if (r->c->read_paused && evbuffer_get_length(bufferevent_get_output(u->bev)) < GW_HIGH_WATER)
		gw_conn_pause_read(r->c, false);
}

static int up_body_cb(void *ud, const char *at, size_t len);
static void up_timeout_cb(evutil_socket_t fd, short what, void *arg);

static void up_attempt_failed(struct gw_upconn *u, enum gw_reason why, const char *detail);

/*
 * TCP is connected (or failed): start TLS on the socket. The connect is done on a raw
 * socket first so that "nobody listens" (503, fail over) is never mistaken for a TLS
 * verification failure (502).
 */
static void up_tcp_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_upconn *u = arg;
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	event_free(u->tcp_ev);
	u->tcp_ev = NULL;
	if (err) {
		up_attempt_failed(u, GW_NO_BACKEND, evutil_socket_error_to_string(err));
		return;
	}
	u->bev = bufferevent_openssl_socket_new(u->w->base, fd, u->ssl, BUFFEREVENT_SSL_CONNECTING,
	                                        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (!u->bev) {
		up_attempt_failed(u, GW_INTERNAL, "out of memory");
		return;
	}
	u->fd = -1; /* fd and SSL now belong to the bufferevent */
	u->ssl_owned = false;
	bufferevent_openssl_set_allow_dirty_shutdown(u->bev, 1);
	bufferevent_setcb(u->bev, up_readcb, up_writecb, up_eventcb, u);
	bufferevent_enable(u->bev, EV_READ | EV_WRITE);
}

/* Starts a new connection to server idx of the cluster: TCP first, then TLS. */
static struct gw_upconn *up_connect(struct gw_req *r, unsigned cl, int idx)
{
	struct gw_worker *w = r->c->w;
	const struct conf_cluster *c = &r->gen->cfg->clusters[cl];
	const struct conf_server *s = &c->servers[idx];
	struct gw_upconn *u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->w = w;
	u->gen = r->gen;
	u->cluster = cl;
	u->srv = r->gen->cluster_base[cl] + (size_t)idx;
	u->state = GW_UP_CONNECTING;
	u->fd = -1;
	u->req = r;
	r->up = u;
	if (gw_parser_init(&u->ps, HTTP_RESPONSE, &r->gen->cfg->limits) != 0)
		goto fail;
	u->ps.on_body = up_body_cb;
	u->ssl = pki_client_ssl_new(c->tls, s->name);
	u->ssl_owned = u->ssl != NULL;
	u->timer = evtimer_new(w->base, up_timeout_cb, u);
	u->fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (!u->ssl || !u->timer || u->fd < 0)
		goto fail;
	int one = 1;
	setsockopt(u->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	w->ctr.upstream_connects++;
	if (connect(u->fd, (const struct sockaddr *)&s->addr, s->addrlen) != 0 && errno != EINPROGRESS)
		u->broken = true; /* refused at once: reported from the timer, not re-entrantly */
	u->tcp_ev = event_new(w->base, u->fd, EV_WRITE, up_tcp_cb, u);
	if (!u->tcp_ev)
		goto fail;
	if (!u->broken)
		event_add(u->tcp_ev, NULL);
	return u;
fail:
	r->up = NULL;
	u->req = NULL;
	up_free(u);
	return NULL;
}


/*
 * Picks a server and leases or opens a connection for r. Answers 503/502 when no server
 * is left to try; the reason says whether every try failed to connect or to verify.
 */
void gw_upstream_start(struct gw_req *r)
{
	const struct conf_cluster *c = &r->gen->cfg->clusters[r->route->cluster];
	unsigned cl = r->route->cluster;
	int idx = r->attempts < c->max_attempts ? up_pick(r, cl) : -1;
	if (idx < 0) {
		if (r->last_fail == GW_UPSTREAM_TLS)
			gw_req_finish(r, 502, GW_UPSTREAM_TLS, "upstream_tls_failed");
		else if (r->last_fail == GW_UPSTREAM_TIMEOUT)
			gw_req_finish(r, 504, GW_UPSTREAM_TIMEOUT, "upstream_connect_timeout");
		else
			gw_req_finish(r, 503, GW_NO_BACKEND, "no_backend_available");
		return;
	}
	r->attempts++;
	r->tried |= 1ull << idx;
	r->cluster = (int)cl;
	r->server = idx;
	struct gw_worker *w = r->c->w;
	size_t srv = r->gen->cluster_base[cl] + (size_t)idx;
	if (w->pools && w->pools_gen == r->gen && !TAILQ_EMPTY(&w->pools[srv].idle)) {
		struct gw_upconn *u = TAILQ_FIRST(&w->pools[srv].idle);
		TAILQ_REMOVE(&w->pools[srv].idle, u, link);
		w->pools[srv].n_idle--;
		u->reused = true;
		w->ctr.upstream_reuses++;
		up_attach(u, r);
		return;
	}
	struct gw_upconn *u = up_connect(r, cl, idx);
	if (!u) {
		gw_req_finish(r, 500, GW_INTERNAL, "out_of_memory");
		return;
	}
	up_timer_set(u, u->broken ? 0 : r->gen->cfg->timeouts.upstream_connect);
}

/*
 * Ends the lease. A clean, reusable connection of the worker's current generation goes
 * back to its pool (bounded); anything else is closed.
 */
void gw_upstream_release(struct gw_upconn *u, bool reusable)
{
	struct gw_worker *w = u->w;
	struct gw_req *r = u->req;
	if (r)
		r->up = NULL;
	u->req = NULL;
	u->ps.ud = NULL;
	const struct conf_cluster *cl = up_cluster(u);
	bool pool_ok = reusable && !u->broken && w->pools && w->pools_gen == u->gen && !w->draining &&
	               w->pools[u->srv].n_idle < cl->pool_max_idle &&
	               evbuffer_get_length(bufferevent_get_input(u->bev)) == 0;
	if (!pool_ok) {
		up_free(u);
		return;
	}
	u->state = GW_UP_IDLE;
	TAILQ_INSERT_HEAD(&w->pools[u->srv].idle, u, link);
	w->pools[u->srv].n_idle++;
	bufferevent_enable(u->bev, EV_READ);
	up_timer_set(u, cl->pool_idle_timeout);
}

/*
 * The client drained: continue relaying the response. Bytes may already wait in the
 * input buffer (read before we paused) with nothing more coming from the socket, so
 * they are processed now rather than on a read event that might never fire.
 */
void gw_upstream_resume_read(struct gw_upconn *u)
{
	if (u->state != GW_UP_ACTIVE)
		return;
	bufferevent_enable(u->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_input(u->bev)) > 0)
		up_readcb(u->bev, u);
}

/*
 * One attempt failed before the backend could have produced a response: fail over if
 * the request can still be sent elsewhere unchanged, else answer with why.
 */
static void up_attempt_failed(struct gw_upconn *u, enum gw_reason why, const char *detail)
{
	struct gw_req *r = u->req;
	const struct conf_server *s = &up_cluster(u)->servers[u->srv - u->gen->cluster_base[u->cluster]];
	gw_log(GW_LOG_WARN, "upstream %s (%s) for request %s: %s: %s", s->address, s->name,
	       r ? r->id : "-", gw_reason_str(why), detail);
	bool sent_nothing = u->state == GW_UP_CONNECTING;
	up_free(u);
	if (!r)
		return;
	r->up = NULL;
	r->last_fail = why;
	if (!sent_nothing) {
		/* Rebuild the request from the replay copy, if it still holds all of it. */
		if (!r->replay_ok || r->resp_started) {
			gw_req_finish(r, why == GW_UPSTREAM_TIMEOUT ? 504 : 502, why, detail);
			return;
		}
		evbuffer_drain(r->pending, evbuffer_get_length(r->pending));
		evbuffer_add(r->pending, evbuffer_pullup(r->replay, -1), evbuffer_get_length(r->replay));
	}
	gw_upstream_start(r);
}

static void up_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_upconn *u = arg;
	switch (u->state) {
	case GW_UP_IDLE:
		up_free(u);
		return;
	case GW_UP_CONNECTING:
		if (u->broken)
			up_attempt_failed(u, GW_NO_BACKEND, "connect failed");
		else
			up_attempt_failed(u, GW_UPSTREAM_TIMEOUT, "connect timeout");
		return;
	case GW_UP_ACTIVE: {
		struct gw_req *r = u->req;
		/* The backend may have acted: a timeout is never retried. */
		u->broken = true;
		gw_req_finish(r, 504, GW_UPSTREAM_TIMEOUT, "upstream_response_timeout");
		return;
	}
	}
}

static void up_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct gw_upconn *u = arg;
	if (what & BEV_EVENT_CONNECTED) {
		if (u->req)
			up_attach(u, u->req);
		return;
	}
	if (u->state == GW_UP_IDLE) {
		up_free(u); /* the backend closed an idle connection */
		return;
	}
	if (u->state == GW_UP_CONNECTING) {
		/* TCP was up (see up_tcp_cb): whatever failed now failed in TLS. */
		unsigned long e = bufferevent_get_openssl_error(bev);
		up_attempt_failed(u, GW_UPSTREAM_TLS, pki_client_error_str(u->ssl, e));
		return;
	}
	struct gw_req *r = u->req;
	u->broken = true;
	if ((what & BEV_EVENT_EOF) && u->ps.head_done && llhttp_message_needs_eof(&u->ps.p)) {
		/* A close-delimited body ends here. */
		llhttp_finish(&u->ps.p);
		if (r && r->resp_rechunk)
			gw_conn_write(r->c, "0\r\n\r\n", 5);
		if (r)
			gw_req_finish(r, r->status, GW_OK, NULL);
		else
			up_free(u);
		return;
	}
	if (!u->got_bytes && u->reused) {
		/* A pooled connection the backend had already closed: the classic keep-alive
		 * race. Safe to retry when the request is replayable. */
		up_attempt_failed(u, GW_UPSTREAM_PROTOCOL, "pooled connection closed");
		return;
	}
	if (r)
		gw_req_finish(r, 502, GW_UPSTREAM_PROTOCOL, "upstream_closed_early");
	else
		up_free(u);
}

/* The response head: status line and headers minus hop-by-hop, framing set by us. */
static void up_send_head(struct gw_upconn *u, struct gw_req *r)
{
	const struct gw_head *h = &u->ps.head;
	struct gw_conn *c = r->c;
	struct evbuffer *b = evbuffer_new();
	if (!b) {
		gw_req_finish(r, 500, GW_INTERNAL, "out_of_memory");
		return;
	}
	evbuffer_add_printf(b, "HTTP/1.1 %u ", h->status);
	evbuffer_add(b, h->buf + h->url_off, h->url_len);
	evbuffer_add(b, "\r\n", 2);
	for (uint32_t i = 0; i < h->n_hdrs; i++) {
		const struct gw_hdr *hd = &h->hdrs[i];
		if (gw_header_is_hop_by_hop(h->buf + hd->name_off, hd->name_len, h))
			continue;
		evbuffer_add(b, h->buf + hd->name_off, hd->name_len);
		evbuffer_add(b, ": ", 2);
		evbuffer_add(b, h->buf + hd->val_off, hd->val_len);
		evbuffer_add(b, "\r\n", 2);
	}
	bool no_body = r->resp_head_req || h->status == 204 || h->status == 304;
	if (h->has_clen && (h->status != 204))
		evbuffer_add_printf(b, "Content-Length: %llu\r\n", (unsigned long long)h->clen);
	else if (!no_body) {
		if (c->ps.head.http_minor == 1) {
			r->resp_rechunk = true;
			evbuffer_add_printf(b, "Transfer-Encoding: chunked\r\n");
		} else {
			c->close_after = true; /* HTTP/1.0 client: the body ends at close */
		}
	}
	if (!llhttp_should_keep_alive(&u->ps.p) && !h->chunked && !h->has_clen && !no_body)
		u->broken = true;
	if (c->close_after || c->w->draining)
		evbuffer_add_printf(b, "Connection: close\r\n");
	evbuffer_add(b, "\r\n", 2);
	r->bytes_out += evbuffer_get_length(b);
	bufferevent_write_buffer(c->bev, b);
	evbuffer_free(b);
	r->status = h->status;
	r->resp_started = true;
}

static int up_body_cb(void *ud, const char *at, size_t len)
{
	struct gw_req *r = ud;
	if (!r)
		return 0;
	if (r->resp_rechunk) {
		char sz[24];
		int n = snprintf(sz, sizeof(sz), "%zx\r\n", len);
		gw_conn_write(r->c, sz, (size_t)n);
		gw_conn_write(r->c, at, len);
		gw_conn_write(r->c, "\r\n", 2);
		r->bytes_out += (uint64_t)n + len + 2;
	} else {
		gw_conn_write(r->c, at, len);
		r->bytes_out += len;
	}
	return 0;
}

/* The response ended cleanly: the connection may go back to the pool. */
static void up_response_done(struct gw_upconn *u, struct gw_req *r)
{
	if (r->resp_rechunk)
		gw_conn_write(r->c, "0\r\n\r\n", 5);
	bool reusable = llhttp_should_keep_alive(&u->ps.p) && r->body_done && !u->broken;
	gw_upstream_release(u, reusable);
	gw_req_finish(r, r->status, GW_OK, NULL);
}

static void up_readcb(struct bufferevent *bev, void *arg)
{
	struct gw_upconn *u = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	if (u->state != GW_UP_ACTIVE || !u->req) {
		/* Bytes on an idle connection: the backend is confused; do not reuse it. */
		up_free(u);
		return;
	}
	struct gw_req *r = u->req;
	up_timer_set(u, r->gen->cfg->timeouts.upstream_response);
	while (evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		evbuffer_peek(in, -1, NULL, &v, 1);
		bool had_head = u->ps.head_done;
		size_t used = 0;
		u->got_bytes = true;
		enum gw_feed f = gw_parser_feed(&u->ps, v.iov_base, v.iov_len, &used);
		evbuffer_drain(in, used);
		if (f == GW_FEED_ERROR) {
			u->broken = true;
			gw_req_finish(r, 502, GW_UPSTREAM_PROTOCOL, "bad_upstream_response");
			return;
		}
		if (u->ps.head_done && !had_head) {
			if (u->ps.head.status < 200) {
				/* Interim 1xx (complete at once, no body): not relayed, as we
				 * answer 100-continue ourselves. */
				gw_parser_reset(&u->ps);
				u->ps.skip_body = r->resp_head_req;
				continue;
			}
			up_send_head(u, r);
			if (u->req != r)
				return;
		}
		if (f == GW_FEED_DONE) {
			up_response_done(u, r);
			return;
		}
		if (evbuffer_get_length(bufferevent_get_output(r->c->bev)) > GW_HIGH_WATER) {
			/* The client is slower than the backend: stop reading until it drains. */
			bufferevent_disable(bev, EV_READ);
			return;
		}
	}
}

static void up_writecb(struct bufferevent *bev, void *arg)
{
	struct gw_upconn *u = arg;
	struct gw_req *r = u->req;
	if (u->state != GW_UP_ACTIVE || !r)
		return;
	/* Upload progress counts as liveness; and the backend drained: read the client. */
	up_timer_set(u, r->gen->cfg->timeouts.upstream_response);
	if (r->c->read_paused)
		gw_conn_pause_read(r->c, false);
}
