/*
 * jwks_fetch.c: JWKS documents fetched over HTTPS by the gateway itself (issuers with
 * jwks_url), on the main thread.
 *
 * The fetcher keeps the latest good text per source (URL, CA bundle, address) and hands it
 * to conf_load through the conf_jwks_cache hook, so a new key set reaches the workers the
 * way every other change does: a whole new generation from the normal reload path, and a
 * failing reload keeps the old one. A fetch that fails (DNS, TCP, TLS verification against
 * jwks_ca and the URL's host, status other than 200, over 1 MiB, or a document authn does
 * not accept as a key set) never replaces the text in use; it is logged and retried with
 * backoff. At start-up no text exists: the issuer is left out of the key set (its tokens
 * are refused with bad_issuer) and /readyz says not ready until the first fetch succeeds.
 *
 * Workers that meet an unknown kid of such an issuer queue its iss and wake the main
 * thread, which fetches again at most once per jwks_min_refetch; requests inside that
 * window only set a deferred fetch at the window's end and are counted as suppressed.
 * The request itself is answered 401 at once; a retry after the refetch succeeds.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/tcp.h>

#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <jansson.h>

#include "pki.h"
#include "gw.h"

#define JWKS_MAX_BODY   (1024 * 1024)
#define JWKS_MAX_MISSES 64 /* one per configured issuer at most: authn matched the iss */
#define JWKS_ISS_MAX    256

/* One jwks_url issuer as configured (strings owned). */
struct jwks_cfg {
	char *name, *issuer, *url, *ca_file, *address; /* address may be NULL */
	uint32_t refresh_ms, min_refetch_ms, timeout_ms;
};

struct jwks_fetch;

/* Where one issuer's keys come from, and what was fetched there. */
struct jwks_src {
	struct gw_jwks *j;
	struct jwks_cfg c;
	struct conf_https_url u; /* u.path points into c.url */
	struct pki_client *tls;
	char *text; /* latest good JWKS, NUL-terminated; NULL = none yet */
	size_t text_len;
	uint64_t last_start_us; /* monotonic; 0 = never fetched */
	uint32_t backoff_ms;    /* retry delay after failures */
	bool refetch_wanted;    /* an unknown kid waits for the rate limit window */
	bool taken;             /* scratch flag of gw_jwks_commit */
	uint64_t suppressed;    /* unknown-kid requests that started no fetch */
	struct event *timer;    /* the next fetch */
	struct jwks_fetch *fetch;
};

struct jwks_miss {
	char iss[JWKS_ISS_MAX];
	uint64_t n;
};

struct gw_jwks {
	struct gw_main *m;
	void (*reload)(struct gw_main *m);
	struct jwks_src **srcs; /* of the generation in service */
	size_t n_srcs;
	struct jwks_cfg *wants; /* the jwks_url issuers of the latest load */
	size_t n_wants;
	struct evdns_base *dns;
	struct event *ev_wake, *ev_reload;
	bool started;
	atomic_bool any;      /* there are sources: workers skip the queue otherwise */
	pthread_mutex_t lock; /* guards the two below (workers write, main drains) */
	struct jwks_miss misses[JWKS_MAX_MISSES];
	size_t n_misses;
};

/* One HTTPS exchange in progress. */
struct jwks_fetch {
	struct jwks_src *s;
	int fd; /* until the bufferevent owns it */
	struct event *tcp_ev, *deadline;
	struct evdns_getaddrinfo_request *dns;
	SSL *ssl; /* borrowed from bev once it exists */
	struct bufferevent *bev;
	struct gw_parser ps;
	bool ps_ready, too_large;
	struct evbuffer *body;
};

/* Response heads are small; the body limit is enforced by body_cb. */
static const struct conf_limits jwks_limits = {8192, 32768, 100, JWKS_MAX_BODY};

/* ---- worker side (any thread) ---- */

static int b64url_val(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	return ch == '-' ? 62 : ch == '_' ? 63 : -1;
}

/*
 * The "iss" claim of a compact JWS, without verifying anything: only a hint for which
 * source to refetch (authn has already matched it to a configured issuer). 0 with out
 * filled, or -1 (not a JWS, no string iss, or it does not fit).
 */
int gw_jwks_token_iss(const char *tok, size_t len, char *out, size_t outlen)
{
	const char *d1 = memchr(tok, '.', len);
	const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
	unsigned char *raw = NULL;
	size_t n = 0, plen = d2 ? (size_t)(d2 - d1 - 1) : 0;
	uint32_t acc = 0;
	int bits = 0, rc = -1;
	json_t *claims = NULL;

	if (!d2 || plen == 0 || !(raw = malloc(plen)))
		goto fail;
	for (size_t i = 0; i < plen; i++) {
		int v = b64url_val((unsigned char)d1[1 + i]);
		if (v < 0)
			goto fail;
		acc = (acc << 6) | (uint32_t)v;
		if ((bits += 6) >= 8) {
			bits -= 8;
			raw[n++] = (unsigned char)(acc >> bits);
		}
	}
	claims = json_loadb((const char *)raw, n, JSON_REJECT_DUPLICATES, NULL);
	const json_t *iss = json_object_get(claims, "iss");
	const char *v = json_string_value(iss);
	if (!v || json_string_length(iss) != strlen(v) || strlen(v) >= outlen)
		goto fail;
	memcpy(out, v, strlen(v) + 1);
	rc = 0;
fail:
	json_decref(claims);
	free(raw);
	return rc;
}

/* Called by a worker for a token whose issuer lacks its kid; never blocks on I/O. */
void gw_jwks_unknown_kid(struct gw_jwks *j, const char *token, size_t len)
{
	char iss[JWKS_ISS_MAX];
	bool wake = false;
	size_t i;

	if (!j || !atomic_load(&j->any) || gw_jwks_token_iss(token, len, iss, sizeof(iss)) < 0)
		return;
	pthread_mutex_lock(&j->lock);
	for (i = 0; i < j->n_misses && strcmp(j->misses[i].iss, iss) != 0; i++)
		;
	if (i < j->n_misses) {
		j->misses[i].n++;
	} else if (j->n_misses < JWKS_MAX_MISSES) {
		/* An empty queue means nobody has woken the main thread for it yet. */
		wake = j->n_misses == 0;
		memcpy(j->misses[j->n_misses].iss, iss, sizeof(iss));
		j->misses[j->n_misses++].n = 1;
	}
	pthread_mutex_unlock(&j->lock);
	if (wake)
		event_active(j->ev_wake, EV_READ, 0);
}

/* ---- one fetch ---- */

static void src_schedule(struct jwks_src *s, uint32_t ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(s->timer, &tv);
}

/* Milliseconds until the rate limit allows the next fetch (0 = now). */
static uint32_t src_window_ms(const struct jwks_src *s)
{
	uint64_t now = gw_now_us(), open = s->last_start_us + (uint64_t)s->c.min_refetch_ms * 1000u;
	return s->last_start_us == 0 || now >= open ? 0 : (uint32_t)((open - now + 999) / 1000);
}

static void fetch_free(struct jwks_fetch *f)
{
	if (f->dns)
		evdns_getaddrinfo_cancel(f->dns); /* its callback ignores the cancel */
	if (f->tcp_ev)
		event_free(f->tcp_ev);
	if (f->deadline)
		event_free(f->deadline);
	if (f->bev)
		bufferevent_free(f->bev); /* closes the socket and frees the SSL */
	else if (f->fd >= 0)
		close(f->fd);
	if (f->ps_ready)
		gw_parser_free(&f->ps);
	if (f->body)
		evbuffer_free(f->body);
	free(f);
}

/* The fetch of s ended: keep or replace the text, log, and plan the next one. */
static void fetch_end(struct jwks_fetch *f, bool ok, bool changed, const char *why)
{
	struct jwks_src *s = f->s;
	uint32_t delay = s->c.refresh_ms;

	s->fetch = NULL;
	fetch_free(f);
	if (ok) {
		s->backoff_ms = 0;
		gw_log(changed ? GW_LOG_INFO : GW_LOG_DEBUG,
		       "jwks: %s: %s (%zu bytes) for issuer %s%s", s->c.url,
		       changed ? "new key set" : "key set unchanged", s->text_len, s->c.name,
		       changed ? ": reloading" : "");
	} else {
		s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : s->c.min_refetch_ms;
		if (s->backoff_ms > s->c.refresh_ms)
			s->backoff_ms = s->c.refresh_ms;
		delay = s->backoff_ms;
		if (s->text)
			gw_log(GW_LOG_WARN,
			       "jwks: %s: fetch failed: %s; keeping the previous key set "
			       "of issuer %s (retry in %u ms)",
			       s->c.url, why, s->c.name, delay);
		else
			gw_log(GW_LOG_ERR,
			       "jwks: %s: fetch failed: %s; issuer %s has no keys yet, "
			       "its tokens are refused until a fetch succeeds (retry in %u ms)",
			       s->c.url, why, s->c.name, delay);
	}
	if (s->refetch_wanted && src_window_ms(s) < delay)
		delay = src_window_ms(s);
	src_schedule(s, delay);
	/* Deferred: the reload replaces the source table this function runs in. */
	if (changed)
		event_active(s->j->ev_reload, EV_TIMEOUT, 0);
}

static void fetch_fail(struct jwks_fetch *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void fetch_fail(struct jwks_fetch *f, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	fetch_end(f, false, false, why);
}

/* A document authn accepts as this issuer's key set; -1 with the reason. */
static int jwks_check(const struct jwks_src *s, const char *text, size_t len, char *err,
                      size_t errlen)
{
	struct authn_issuer_opts io = {
	    .issuer = s->c.issuer, .audience = "-", .jwks_json = text, .jwks_json_len = len};
	struct authn_keys_opts o = {.issuers = &io, .n_issuers = 1};
	struct authn_keys *k = NULL;

	if (authn_keys_new(&o, &k, err, errlen) < 0)
		return -1;
	authn_keys_free(k);
	return 0;
}

/* The whole 200 answer is in: a new good text replaces the old one. */
static void fetch_judge(struct jwks_fetch *f)
{
	struct jwks_src *s = f->s;
	size_t len = evbuffer_get_length(f->body);
	char *text = malloc(len + 1), why[384] = "";

	if (!text) {
		fetch_fail(f, "out of memory");
		return;
	}
	evbuffer_remove(f->body, text, len);
	text[len] = '\0';
	if (jwks_check(s, text, len, why, sizeof(why)) < 0) {
		free(text);
		fetch_fail(f, "not a usable key set: %s", why);
		return;
	}
	if (s->text && s->text_len == len && memcmp(s->text, text, len) == 0) {
		free(text);
		fetch_end(f, true, false, NULL);
		return;
	}
	free(s->text);
	s->text = text;
	s->text_len = len;
	fetch_end(f, true, true, NULL);
}

static int body_cb(void *ud, const char *at, size_t len)
{
	struct jwks_fetch *f = ud;

	if (len > JWKS_MAX_BODY - evbuffer_get_length(f->body)) {
		f->too_large = true;
		return -1;
	}
	return evbuffer_add(f->body, at, len);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct jwks_fetch *f = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	const struct gw_head *h = &f->ps.head;

	while (evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		size_t used = 0;
		evbuffer_peek(in, -1, NULL, &v, 1);
		enum gw_feed r = gw_parser_feed(&f->ps, v.iov_base, v.iov_len, &used);
		evbuffer_drain(in, used);
		if (r == GW_FEED_ERROR && f->too_large) {
			fetch_fail(f, "document over the %d byte limit", JWKS_MAX_BODY);
			return;
		}
		if (r == GW_FEED_ERROR) {
			fetch_fail(f, "malformed HTTP response (%s)", gw_parser_error(&f->ps));
			return;
		}
		if (!f->ps.head_done)
			continue;
		if ((r == GW_FEED_HEAD || r == GW_FEED_DONE) && h->status < 200) {
			gw_parser_reset(&f->ps); /* interim 1xx */
			continue;
		}
		if (h->status != 200) {
			fetch_fail(f, "HTTP status %u", h->status);
			return;
		}
		if (r == GW_FEED_HEAD && h->has_clen && h->clen > JWKS_MAX_BODY) {
			fetch_fail(f, "document of %llu bytes is over the %d byte limit",
			           (unsigned long long)h->clen, JWKS_MAX_BODY);
			return;
		}
		if (r == GW_FEED_DONE) {
			fetch_judge(f);
			return;
		}
	}
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct jwks_fetch *f = arg;
	const struct jwks_src *s = f->s;

	if (what & BEV_EVENT_CONNECTED) {
		char host[300];
		if (s->u.port == 443)
			snprintf(host, sizeof(host), "%s", s->u.host);
		else
			snprintf(host, sizeof(host), "%s:%u", s->u.host, s->u.port);
		/* The same shape curl sends; Connection: close frames a body without length. */
		evbuffer_add_printf(bufferevent_get_output(bev),
		                    "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: gatewayd-jwks\r\n"
		                    "Accept: application/json, application/jwk-set+json\r\n"
		                    "Connection: close\r\n\r\n",
		                    s->u.path[0] ? s->u.path : "/", host);
		return;
	}
	if (!SSL_is_init_finished(f->ssl)) {
		unsigned long e = bufferevent_get_openssl_error(bev);
		fetch_fail(f, "TLS with %s: %s", s->u.host, pki_client_error_str(f->ssl, e));
		return;
	}
	if ((what & BEV_EVENT_EOF) && f->ps.head_done && llhttp_message_needs_eof(&f->ps.p)) {
		llhttp_finish(&f->ps.p);
		if (f->ps.msg_done && !f->too_large) {
			fetch_judge(f);
			return;
		}
	}
	fetch_fail(f, "connection closed %s",
	           f->ps.head_done ? "mid-response" : "before answering");
}

/* TCP is up (or failed): TLS on top, verified against jwks_ca and the URL's host. */
static void tcp_cb(evutil_socket_t fd, short what, void *arg)
{
	struct jwks_fetch *f = arg;
	struct jwks_src *s = f->s;
	int err = 0;
	socklen_t elen = sizeof(err);

	event_free(f->tcp_ev);
	f->tcp_ev = NULL;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
		err = errno;
	if (err) {
		fetch_fail(f, "connect: %s", evutil_socket_error_to_string(err));
		return;
	}
	if (!s->tls) {
		fetch_fail(f, "no TLS client: jwks_ca %s could not be loaded", s->c.ca_file);
		return;
	}
	f->ssl = pki_client_ssl_new(s->tls, s->u.host);
	if (f->ssl)
		f->bev = bufferevent_openssl_socket_new(
		    s->j->m->base, fd, f->ssl, BUFFEREVENT_SSL_CONNECTING,
		    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (!f->bev) {
		SSL_free(f->ssl);
		f->ssl = NULL;
		fetch_fail(f, "out of memory");
		return;
	}
	f->fd = -1; /* the bufferevent owns it now */
	gw_parser_init(&f->ps, HTTP_RESPONSE, &jwks_limits);
	f->ps_ready = true;
	f->ps.ud = f;
	f->ps.on_body = body_cb;
	bufferevent_openssl_set_allow_dirty_shutdown(f->bev, 1);
	bufferevent_setcb(f->bev, read_cb, NULL, event_cb, f);
	bufferevent_enable(f->bev, EV_READ | EV_WRITE);
}

static void fetch_connect(struct jwks_fetch *f, const struct sockaddr *sa, socklen_t len)
{
	int one = 1;

	f->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (f->fd < 0) {
		fetch_fail(f, "socket: %s", strerror(errno));
		return;
	}
	setsockopt(f->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(f->fd, sa, len) != 0 && errno != EINPROGRESS) {
		fetch_fail(f, "connect: %s", strerror(errno));
		return;
	}
	f->tcp_ev = event_new(f->s->j->m->base, f->fd, EV_WRITE, tcp_cb, f);
	if (!f->tcp_ev) {
		fetch_fail(f, "out of memory");
		return;
	}
	event_add(f->tcp_ev, NULL);
}

static void dns_cb(int result, struct evutil_addrinfo *res, void *arg)
{
	struct jwks_fetch *f = arg;

	if (result == EVUTIL_EAI_CANCEL) {
		if (res)
			evutil_freeaddrinfo(res);
		return; /* f is gone: fetch_free cancelled us */
	}
	f->dns = NULL;
	if (result != 0 || !res) {
		fetch_fail(f, "cannot resolve %s: %s", f->s->u.host, evutil_gai_strerror(result));
		return;
	}
	fetch_connect(f, res->ai_addr, (socklen_t)res->ai_addrlen);
	evutil_freeaddrinfo(res);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct jwks_fetch *f = arg;

	fetch_fail(f, "no complete answer within %u ms", f->s->c.timeout_ms);
}

/* Where to connect: jwks_address, an IP literal host, or else the resolver (async). */
static void fetch_resolve(struct jwks_fetch *f)
{
	struct jwks_src *s = f->s;
	struct gw_jwks *j = s->j;
	struct sockaddr_storage ss;
	socklen_t len;
	char hp[300], port[8];

	snprintf(hp, sizeof(hp), "%s:%u", s->u.host, s->u.port);
	if (conf_parse_address(s->c.address ? s->c.address : hp, &ss, &len) == 0) {
		fetch_connect(f, (const struct sockaddr *)&ss, len);
		return;
	}
	if (!j->dns)
		j->dns = evdns_base_new(j->m->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
		                                        EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (!j->dns) {
		fetch_fail(f, "cannot resolve %s: no DNS resolver (set jwks_address)", s->u.host);
		return;
	}
	struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	snprintf(port, sizeof(port), "%u", s->u.port);
	/* NULL means the callback already ran (and may have freed f): do not touch it. */
	struct evdns_getaddrinfo_request *req =
	    evdns_getaddrinfo(j->dns, s->u.host, port, &hints, dns_cb, f);
	if (req)
		f->dns = req;
}

/* Starts a fetch of s unless one runs; kid: asked for by an unknown kid. */
static void src_fetch(struct jwks_src *s, bool kid)
{
	struct jwks_fetch *f = NULL;

	if (s->fetch)
		return;
	if (kid)
		gw_log(GW_LOG_INFO,
		       "jwks: %s: refetching for an unknown kid (%llu more unknown-kid request(s) "
		       "suppressed since the last fetch: at most one fetch per %u ms)",
		       s->c.url, (unsigned long long)s->suppressed, s->c.min_refetch_ms);
	else
		gw_log(GW_LOG_DEBUG, "jwks: %s: fetching (%s)", s->c.url,
		       s->text ? "refresh" : "no keys yet");
	s->refetch_wanted = false;
	s->suppressed = 0;
	s->last_start_us = gw_now_us();
	f = calloc(1, sizeof(*f));
	if (!f) {
		gw_log(GW_LOG_ERR, "jwks: %s: out of memory", s->c.url);
		src_schedule(s, s->c.min_refetch_ms);
		return;
	}
	f->s = s;
	f->fd = -1;
	s->fetch = f;
	f->deadline = evtimer_new(s->j->m->base, deadline_cb, f);
	f->body = evbuffer_new();
	if (!f->deadline || !f->body) {
		fetch_fail(f, "out of memory");
		return;
	}
	struct timeval tv = {s->c.timeout_ms / 1000, (s->c.timeout_ms % 1000) * 1000};
	evtimer_add(f->deadline, &tv);
	fetch_resolve(f);
}

static void src_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct jwks_src *s = arg;

	src_fetch(s, s->refetch_wanted);
}

/* An unknown kid of s: fetch now if the rate limit allows, else once it does. */
static void src_kid_miss(struct jwks_src *s, uint64_t n)
{
	if (!s->fetch && src_window_ms(s) == 0) {
		s->suppressed += n - 1; /* the first one starts this fetch */
		src_fetch(s, true);
		return;
	}
	s->suppressed += n;
	if (s->refetch_wanted)
		return;
	s->refetch_wanted = true;
	/* A fetch in progress plans the deferred one when it ends. */
	if (!s->fetch)
		src_schedule(s, src_window_ms(s));
}

/* Main thread: the workers' queue of unknown kids, by issuer. */
static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_jwks *j = arg;
	struct jwks_miss q[JWKS_MAX_MISSES];
	size_t n;

	pthread_mutex_lock(&j->lock);
	n = j->n_misses;
	memcpy(q, j->misses, n * sizeof(q[0]));
	j->n_misses = 0;
	pthread_mutex_unlock(&j->lock);
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < j->n_srcs; k++) {
			if (strcmp(j->srcs[k]->c.issuer, q[i].iss) == 0)
				src_kid_miss(j->srcs[k], q[i].n);
		}
	}
}

static void reload_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_jwks *j = arg;

	j->reload(j->m);
}

/* ---- sources across reloads ---- */

static void cfg_clear(struct jwks_cfg *c)
{
	free(c->name);
	free(c->issuer);
	free(c->url);
	free(c->ca_file);
	free(c->address);
	memset(c, 0, sizeof(*c));
}

static int cfg_copy(struct jwks_cfg *c, const struct conf_jwks_source *src)
{
	*c = (struct jwks_cfg){
	    .name = strdup(src->name),
	    .issuer = strdup(src->issuer),
	    .url = strdup(src->url),
	    .ca_file = strdup(src->ca_file),
	    .address = src->address ? strdup(src->address) : NULL,
	    .refresh_ms = src->refresh_ms,
	    .min_refetch_ms = src->min_refetch_ms,
	    .timeout_ms = src->timeout_ms,
	};
	if (c->name && c->issuer && c->url && c->ca_file && (c->address || !src->address))
		return 0;
	cfg_clear(c);
	return -1;
}

/* The same keys: one issuer, fetched from one place, trusted through one CA file. */
static bool cfg_same(const struct jwks_cfg *c, const char *issuer, const char *url, const char *ca,
                     const char *addr)
{
	return strcmp(c->issuer, issuer) == 0 && strcmp(c->url, url) == 0 &&
	       strcmp(c->ca_file, ca) == 0 &&
	       (c->address == addr || (c->address && addr && strcmp(c->address, addr) == 0));
}

static void src_free(struct jwks_src *s)
{
	if (!s)
		return;
	if (s->fetch)
		fetch_free(s->fetch);
	if (s->timer)
		event_free(s->timer);
	pki_client_free(s->tls);
	cfg_clear(&s->c);
	free(s->text);
	free(s);
}

/* Takes over the settings of w (moved out of it) and (re)builds the TLS client, so a
 * reload also picks up a rotated CA file; if that fails the previous client stays. */
static int src_configure(struct jwks_src *s, struct jwks_cfg *w)
{
	struct pki_client_opts po = {.ca_file = w->ca_file, .verify = true};
	struct pki_client *cli = NULL;
	struct conf_https_url u;
	char err[384] = "";

	if (conf_https_url_parse(w->url, &u, err, sizeof(err)) != 0)
		return -1; /* conf has checked it */
	cfg_clear(&s->c);
	s->c = *w;
	s->u = u;
	memset(w, 0, sizeof(*w));
	if (pki_client_new(&po, &cli, err, sizeof(err)) != 0) {
		gw_log(GW_LOG_ERR, "jwks: %s: jwks_ca: %s%s", s->c.url, err,
		       s->tls ? "; keeping the previous CA bundle" : "");
		return 0;
	}
	pki_client_free(s->tls);
	s->tls = cli;
	return 0;
}

/* The source in service for w (moved out of the old table), or a new one. */
static struct jwks_src *src_take(struct gw_jwks *j, struct jwks_cfg *w)
{
	struct jwks_src *s = NULL;

	for (size_t i = 0; i < j->n_srcs && !s; i++) {
		struct jwks_src *o = j->srcs[i];
		if (!o->taken && cfg_same(&o->c, w->issuer, w->url, w->ca_file, w->address))
			s = o;
	}
	if (s)
		return src_configure(s, w) == 0 && (s->taken = true) ? s : NULL;
	if (!(s = calloc(1, sizeof(*s))))
		return NULL;
	s->j = j;
	s->timer = evtimer_new(j->m->base, src_timer_cb, s);
	if (!s->timer || src_configure(s, w) != 0) {
		src_free(s);
		return NULL;
	}
	if (j->started)
		src_schedule(s, 0);
	s->taken = true;
	return s;
}

/*
 * The load whose wants were recorded is in service now: its sources replace the old
 * ones. A source that stays keeps its text, its timer and a fetch in progress.
 */
void gw_jwks_commit(struct gw_jwks *j)
{
	struct jwks_src **next = NULL;
	size_t n = 0;

	if (!j)
		return;
	if (!(next = calloc(j->n_wants + 1, sizeof(*next)))) {
		gw_log(GW_LOG_ERR, "jwks: out of memory: keeping the previous sources");
		return;
	}
	for (size_t i = 0; i < j->n_wants; i++) {
		const char *url = j->wants[i].url;
		if (!(next[n] = src_take(j, &j->wants[i])))
			gw_log(GW_LOG_ERR, "jwks: %s: out of memory", url ? url : "?");
		else
			n++;
	}
	for (size_t i = 0; i < j->n_srcs; i++) {
		if (!j->srcs[i]->taken)
			src_free(j->srcs[i]);
	}
	for (size_t i = 0; i < n; i++)
		next[i]->taken = false;
	free(j->srcs);
	j->srcs = next;
	j->n_srcs = n;
	atomic_store(&j->any, n > 0);
}

/* ---- the conf hook ---- */

static void cache_begin(void *arg)
{
	struct gw_jwks *j = arg;

	for (size_t i = 0; i < j->n_wants; i++)
		cfg_clear(&j->wants[i]);
	j->n_wants = 0;
}

/* Records src for the commit and answers with the text in use for it, if any. */
static const char *cache_source(void *arg, const struct conf_jwks_source *src, size_t *len)
{
	struct gw_jwks *j = arg;
	struct jwks_cfg *v = realloc(j->wants, (j->n_wants + 1) * sizeof(*v));

	if (v) {
		j->wants = v;
		if (cfg_copy(&v[j->n_wants], src) == 0)
			j->n_wants++;
	}
	for (size_t i = 0; i < j->n_srcs; i++) {
		const struct jwks_src *s = j->srcs[i];
		if (s->text && cfg_same(&s->c, src->issuer, src->url, src->ca_file, src->address)) {
			*len = s->text_len;
			return s->text;
		}
	}
	return NULL;
}

/* /readyz: not ready while an issuer has no keys because nothing was fetched yet. */
static bool jwks_ready(struct gw_main *m, char *why, size_t whylen)
{
	for (size_t i = 0; m->jwks && i < m->jwks->n_srcs; i++) {
		const struct jwks_src *s = m->jwks->srcs[i];
		if (!s->text) {
			snprintf(why, whylen, "jwks: no keys fetched yet from %s", s->c.url);
			return false;
		}
	}
	return true;
}

/* ---- life cycle ---- */

/* The fetcher, with the conf hook installed (before the first load). NULL if no memory. */
struct gw_jwks *gw_jwks_new(struct gw_main *m, void (*reload)(struct gw_main *m))
{
	struct gw_jwks *j = calloc(1, sizeof(*j));

	if (!j || pthread_mutex_init(&j->lock, NULL) != 0) {
		free(j);
		return NULL;
	}
	j->m = m;
	j->reload = reload;
	atomic_init(&j->any, false);
	struct conf_jwks_cache c = {.begin = cache_begin, .source = cache_source, .arg = j};
	conf_jwks_cache_set(&c);
	return j;
}

/* On m->base, before the workers: the first load's sources go into service and are
 * fetched at once. 0, or -1 (out of memory). */
int gw_jwks_start(struct gw_jwks *j)
{
	j->ev_wake = event_new(j->m->base, -1, 0, wake_cb, j);
	j->ev_reload = event_new(j->m->base, -1, 0, reload_cb, j);
	if (!j->ev_wake || !j->ev_reload || gw_admin_add_ready_check(j->m, jwks_ready) != 0)
		return -1;
	j->started = true;
	gw_jwks_commit(j);
	for (size_t i = 0; i < j->n_srcs; i++)
		gw_log(GW_LOG_INFO, "jwks: issuer %s: keys come from %s (refresh every %u ms)",
		       j->srcs[i]->c.name, j->srcs[i]->c.url, j->srcs[i]->c.refresh_ms);
	return 0;
}

/* After the workers stopped: cancels fetches and removes the conf hook. NULL-safe. */
void gw_jwks_free(struct gw_jwks *j)
{
	if (!j)
		return;
	conf_jwks_cache_set(NULL);
	for (size_t i = 0; i < j->n_srcs; i++)
		src_free(j->srcs[i]);
	free(j->srcs);
	cache_begin(j);
	free(j->wants);
	if (j->ev_wake)
		event_free(j->ev_wake);
	if (j->ev_reload)
		event_free(j->ev_reload);
	if (j->dns)
		evdns_base_free(j->dns, 0);
	pthread_mutex_destroy(&j->lock);
	free(j);
}
