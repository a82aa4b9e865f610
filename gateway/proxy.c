/*
 * proxy.c: what happens to a request once its head is parsed: checks, path
 * normalisation, routing, the policy decision, the head sent upstream, body streaming,
 * and the single funnel gw_req_finish() through which every request ends (one answer,
 * one audit record, one free).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "audit_chain.h"
#include "pki.h"
#include "gw.h"

/* The reason table: status and stable token together, like relayd's host_error(). */
static const struct {
	int status;
	const char *token;
} reasons[GW_REASON_MAX] = {
    [GW_OK] = {200, "ok"},
    [GW_TLS_HANDSHAKE] = {0, "tls_handshake_failed"},
    [GW_BAD_REQUEST] = {400, "bad_request"},
    [GW_MISDIRECTED] = {421, "misdirected_request"},
    [GW_UNAUTHENTICATED] = {401, "unauthenticated"},
    [GW_FORBIDDEN] = {403, "forbidden"},
    [GW_NO_ROUTE] = {404, "no_route"},
    [GW_TOO_LARGE] = {413, "body_too_large"},
    [GW_HEADER_TIMEOUT] = {408, "request_timeout"},
    [GW_UPSTREAM_TLS] = {502, "upstream_tls"},
    [GW_UPSTREAM_PROTOCOL] = {502, "upstream_protocol"},
    [GW_NO_BACKEND] = {503, "no_backend"},
    [GW_UPSTREAM_TIMEOUT] = {504, "upstream_timeout"},
    [GW_CLIENT_CLOSED] = {499, "client_closed"},
    [GW_SHUTDOWN] = {503, "shutdown"},
    [GW_INTERNAL] = {500, "internal_error"},
};

int gw_reason_status(enum gw_reason r)
{
	return r < GW_REASON_MAX ? reasons[r].status : 500;
}

const char *gw_reason_str(enum gw_reason r)
{
	return r < GW_REASON_MAX ? reasons[r].token : "unknown";
}

static const char *status_text(int status)
{
	switch (status) {
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 408:
		return "Request Timeout";
	case 413:
		return "Content Too Large";
	case 421:
		return "Misdirected Request";
	case 500:
		return "Internal Server Error";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	default:
		return "Error";
	}
}

/* The gateway's own answer: short JSON with the request id, never client data. */
static void req_send_error(struct gw_req *r, int status, enum gw_reason why, const char *detail)
{
	struct gw_conn *c = r->c;
	char body[256], head[512];
	int bl = snprintf(body, sizeof(body),
	                  "{\"error\":\"%s\",\"reason\":\"%s\",\"request_id\":\"%s\"}\n",
	                  gw_reason_str(why), detail ? detail : gw_reason_str(why), r->id);
	int hl =
	    snprintf(head, sizeof(head),
	             "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
	             "X-Request-Id: %s\r\n%s%s\r\n",
	             status, status_text(status), bl, r->id,
	             status == 401 ? "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n" : "",
	             c->close_after ? "Connection: close\r\n" : "");
	gw_conn_write(c, head, (size_t)hl);
	gw_conn_write(c, body, (size_t)bl);
	r->bytes_out += (uint64_t)(hl + bl);
	r->resp_started = true;
}

/* Host header without its port, lower-cased into out; false if it does not fit. */
static bool host_name(const char *v, size_t len, char *out, size_t cap)
{
	size_t end = len;
	if (len && v[0] == '[') {
		const char *rb = memchr(v, ']', len);
		end = rb ? (size_t)(rb - v) + 1 : len;
	} else {
		const char *colon = memchr(v, ':', len);
		if (colon)
			end = (size_t)(colon - v);
	}
	if (end >= cap)
		return false;
	for (size_t i = 0; i < end; i++)
		out[i] = (char)((v[i] >= 'A' && v[i] <= 'Z') ? v[i] + 32 : v[i]);
	out[end] = '\0';
	return true;
}

/*
 * Splits the target into path and query. Absolute-form is accepted only for the host
 * the client already named (Host header), so it can never redirect to a foreign host.
 */
static const char *req_split_target(struct gw_req *r, const char **path, size_t *plen)
{
	const struct gw_head *h = &r->c->ps.head;
	const char *t = h->buf + h->url_off;
	size_t tl = h->url_len;
	if (tl > 8 && (strncasecmp(t, "https://", 8) == 0 || strncasecmp(t, "http://", 7) == 0)) {
		size_t skip = t[4] == 's' || t[4] == 'S' ? 8 : 7;
		const char *auth = t + skip;
		size_t al = 0;
		while (skip + al < tl && auth[al] != '/' && auth[al] != '?')
			al++;
		const char *hv;
		size_t hl;
		if (!gw_head_find(h, "host", &hv, &hl) || hl != al ||
		    strncasecmp(hv, auth, al) != 0)
			return "foreign_absolute_target";
		t = auth + al;
		tl -= skip + al;
		if (tl == 0 || t[0] != '/')
			return "bad_target";
	} else if (tl == 0 || t[0] != '/') {
		return "bad_target";
	}
	const char *q = memchr(t, '?', tl);
	*path = t;
	*plen = q ? (size_t)(q - t) : tl;
	if (q) {
		r->query = q + 1;
		r->query_len = tl - *plen - 1;
	}
	return NULL;
}

/* Checks SNI against Host: a certificate verified for one name must not reach another. */
static bool req_sni_matches(const struct gw_req *r)
{
	const struct gw_conn *c = r->c;
	const char *hv;
	size_t hl;
	char host[256];
	if (!c->sni[0] || !gw_head_find(&c->ps.head, "host", &hv, &hl))
		return true;
	if (!host_name(hv, hl, host, sizeof(host)))
		return false;
	return strcasecmp(host, c->sni) == 0;
}

size_t gw_u64_dec(uint64_t v, char *out)
{
	char t[24];
	size_t n = 0;
	do {
		t[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		out[i] = t[n - 1 - i];
	out[n] = '\0';
	return n;
}

/* Both directions re-frame a message with a length they parsed; written once here. */
void gw_add_clen(struct evbuffer *b, uint64_t n)
{
	char num[24];
	evbuffer_add(b, "Content-Length: ", 16);
	evbuffer_add(b, num, gw_u64_dec(n, num));
	evbuffer_add(b, "\r\n", 2);
}

static void add_hdr(struct evbuffer *b, const char *name, const char *value)
{
	if (!value)
		return;
	evbuffer_add(b, name, strlen(name));
	evbuffer_add(b, ": ", 2);
	evbuffer_add(b, value, strlen(value));
	evbuffer_add(b, "\r\n", 2);
}

/*
 * The header lines that are the same for every request of a connection (who the client
 * is, as verified at the handshake), formatted once: they were most of the formatting
 * work of a request.
 */
static int conn_fwd_hdrs(struct gw_conn *c)
{
	if (c->fwd_hdrs)
		return 0;
	struct evbuffer *b = evbuffer_new();
	if (!b)
		return -1;
	add_hdr(b, "X-Forwarded-For", c->peer);
	add_hdr(b, "X-Forwarded-Proto", "https");
	add_hdr(b, "X-Client-Identity", authn_cert_id_name(&c->cert));
	add_hdr(b, "X-Client-Spiffe-Id", c->cert.spiffe_id);
	add_hdr(b, "X-Client-Cn", c->cert.cn);
	if (c->cert.sha256_hex[0])
		add_hdr(b, "X-Client-Cert-Sha256", c->cert.sha256_hex);
	add_hdr(b, "X-Client-Cert-Serial", c->cert.serial_hex);
	size_t n = evbuffer_get_length(b);
	c->fwd_hdrs = malloc(n ? n : 1);
	if (c->fwd_hdrs) {
		evbuffer_remove(b, c->fwd_hdrs, n);
		c->fwd_hdrs_len = n;
	}
	evbuffer_free(b);
	return c->fwd_hdrs ? 0 : -1;
}

/* The head sent upstream: client headers minus hop-by-hop and identity ones, plus ours. */
static int req_build_upstream_head(struct gw_req *r, const char *fwd, size_t fwd_len)
{
	const struct gw_conn *c = r->c;
	const struct gw_head *h = &c->ps.head;
	struct evbuffer *b = r->pending;
	const char *method = llhttp_method_name(h->method);
	evbuffer_add(b, method, strlen(method));
	evbuffer_add(b, " ", 1);
	evbuffer_add(b, fwd, fwd_len);
	if (r->query) {
		evbuffer_add(b, "?", 1);
		evbuffer_add(b, r->query, r->query_len);
	}
	evbuffer_add(b, " HTTP/1.1\r\n", 11);
	for (uint32_t i = 0; i < h->n_hdrs; i++) {
		const struct gw_hdr *hd = &h->hdrs[i];
		const char *name = h->buf + hd->name_off;
		/* The API key was consumed here; it is a secret the backend does not need. */
		if (gw_header_is_hop_by_hop(name, hd->name_len, h) ||
		    gw_header_is_identity(name, hd->name_len) ||
		    (hd->name_len == 9 && strncasecmp(name, "x-api-key", 9) == 0))
			continue;
		evbuffer_add(b, name, hd->name_len);
		evbuffer_add(b, ": ", 2);
		evbuffer_add(b, h->buf + hd->val_off, hd->val_len);
		evbuffer_add(b, "\r\n", 2);
	}
	evbuffer_add(b, c->fwd_hdrs, c->fwd_hdrs_len);
	add_hdr(b, "X-Request-Id", r->id);
	if (r->has_token) {
		add_hdr(b, "X-Client-Token-Issuer", r->token.iss);
		add_hdr(b, "X-Client-Token-Subject", r->token.sub);
		if (r->token.n_scopes) {
			evbuffer_add(b, "X-Client-Token-Scopes: ", 23);
			for (size_t i = 0; i < r->token.n_scopes; i++) {
				if (i)
					evbuffer_add(b, " ", 1);
				evbuffer_add(b, r->token.scopes[i], strlen(r->token.scopes[i]));
			}
			evbuffer_add(b, "\r\n", 2);
		}
	}
	if (h->chunked) {
		r->body_chunked = true;
		evbuffer_add(b, "Transfer-Encoding: chunked\r\n", 28);
	} else if (h->has_clen) {
		gw_add_clen(b, h->clen);
	}
	return evbuffer_add(b, "\r\n", 2);
}

static bool method_idempotent(uint8_t m)
{
	return m == HTTP_GET || m == HTTP_HEAD || m == HTTP_PUT || m == HTTP_DELETE ||
	       m == HTTP_OPTIONS || m == HTTP_TRACE;
}

/* 401 with the reason; the credential itself is never echoed or logged. */
static int req_unauthenticated(struct gw_req *r, enum authn_status st)
{
	gw_metrics_token_failed(r->c->w, authn_status_str(st));
	gw_req_finish(r, 401, GW_UNAUTHENTICATED, authn_status_str(st));
	return -1;
}

/* The bearer token of "Authorization: Bearer <token>", or NULL for another scheme. */
static const char *bearer_token(const char *v, size_t vl, size_t *tl)
{
	while (vl && (*v == ' ' || *v == '\t')) {
		v++;
		vl--;
	}
	if (vl < 7 || strncasecmp(v, "bearer ", 7) != 0)
		return NULL;
	v += 7;
	vl -= 7;
	while (vl && *v == ' ') {
		v++;
		vl--;
	}
	while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
		vl--;
	*tl = vl;
	return v;
}

/*
 * Verifies the credentials presented beside the certificate and enforces what the route
 * needs. A token or API key that is presented is always verified, on every route: an
 * invalid one is refused, never ignored (fail closed). 0 to proceed, else answered 401.
 */
static int req_credentials(struct gw_req *r)
{
	struct gw_conn *c = r->c;
	const struct gw_head *h = &c->ps.head;
	const struct conf_snapshot *cfg = r->gen->cfg;
	enum policy_need need = r->route->need;
	const char *v, *tok = NULL;
	size_t vl, tl = 0;
	unsigned n_auth = gw_head_find(h, "authorization", &v, &vl);
	if (n_auth > 1)
		return req_unauthenticated(r, AUTHN_MALFORMED);
	if (n_auth == 1)
		tok = bearer_token(v, vl, &tl);
	if (tok) {
		enum authn_status st =
		    authn_token_check(cfg->keys, c->w->authn_cache, tok, tl, time(NULL), &c->cert,
		                      need == POLICY_NEED_CERT_BOUND_TOKEN, &r->token);
		/* A rotated key may not be fetched yet: ask for a (rate-limited) refetch; this
		 * request is still refused, a retry after the refetch succeeds. */
		if (st == AUTHN_UNKNOWN_KID)
			gw_jwks_unknown_kid(c->w->main ? c->w->main->jwks : NULL, tok, tl);
		if (st != AUTHN_OK)
			return req_unauthenticated(r, st);
		r->has_token = true;
	}
	unsigned n_key = gw_head_find(h, "x-api-key", &v, &vl);
	if (n_key > 1)
		return req_unauthenticated(r, AUTHN_MALFORMED);
	if (n_key == 1) {
		if (r->has_token)
			return req_unauthenticated(r,
			                           AUTHN_MALFORMED); /* one credential, not two */
		enum authn_status st = authn_apikey_verify(cfg->keys, v, vl, &r->token);
		if (st != AUTHN_OK)
			return req_unauthenticated(r, st);
		r->has_token = true;
	}
	bool need_token = need == POLICY_NEED_CERT_TOKEN || need == POLICY_NEED_CERT_BOUND_TOKEN;
	if ((need_token && (!r->has_token || r->token.kind != AUTHN_CRED_JWT)) ||
	    (need == POLICY_NEED_CERT_APIKEY &&
	     (!r->has_token || r->token.kind != AUTHN_CRED_APIKEY)))
		return req_unauthenticated(r, AUTHN_NO_CREDENTIAL);
	return 0;
}

/* Authorises the request and builds what goes upstream; 0 to proceed, else answered. */
static int req_authorise(struct gw_req *r)
{
	struct gw_conn *c = r->c;
	const struct gw_head *h = &c->ps.head;
	const struct conf_snapshot *cfg = r->gen->cfg;
	const char *why = gw_head_check_request(h), *path;
	size_t plen;
	if (!why)
		why = req_split_target(r, &path, &plen);
	if (why) {
		c->close_after = true;
		gw_req_finish(r, 400, GW_BAD_REQUEST, why);
		return -1;
	}
	if (!req_sni_matches(r)) {
		gw_req_finish(r, 421, GW_MISDIRECTED, "sni_host_mismatch");
		return -1;
	}
	/* Normalising can grow a path: a raw '"' becomes "%22" (see policy.h). */
	size_t cap = 3 * plen + 2;
	r->path = malloc(cap);
	if (!r->path) {
		gw_req_finish(r, 500, GW_INTERNAL, "out_of_memory");
		return -1;
	}
	enum policy_path_status ps = policy_path_normalize(path, plen, r->path, cap, &r->path_len);
	if (ps != POLICY_PATH_OK) {
		free(r->path);
		r->path = NULL;
		c->close_after = true;
		gw_req_finish(r, 400, GW_BAD_REQUEST, policy_path_status_str(ps));
		return -1;
	}
	r->route = policy_route_lookup(cfg->policy, r->path, r->path_len);
	if (!r->route) {
		gw_req_finish(r, 404, GW_NO_ROUTE, "no_route");
		return -1;
	}
	if (h->has_clen && h->clen > cfg->limits.body) {
		c->close_after = true;
		gw_req_finish(r, 413, GW_TOO_LARGE, "content_length_over_limit");
		return -1;
	}
	if (req_credentials(r) != 0)
		return -1;
	struct authn_principal who = {.cert = &c->cert, .has_token = r->has_token};
	if (r->has_token)
		who.token = r->token; /* shallow: r keeps ownership */
	policy_decide(
	    cfg->policy, &who,
	    policy_method_bit(llhttp_method_name(h->method), strlen(llhttp_method_name(h->method))),
	    r->path, r->path_len, &r->decision);
	if (r->decision.effect != POLICY_ALLOW) {
		gw_req_finish(r, 403, GW_FORBIDDEN,
		              r->decision.rule ? "policy_deny_rule" : "policy_no_allow");
		return -1;
	}
	return 0;
}

/*
 * Runs once per request when its head is complete. On success the upstream head is
 * queued and an upstream is being picked; on failure the request was answered.
 */
void gw_req_on_head(struct gw_req *r)
{
	struct gw_conn *c = r->c;
	const struct gw_head *h = &c->ps.head;
	r->c->w->ctr.requests++;
	if (!llhttp_should_keep_alive(&c->ps.p))
		c->close_after = true;
	int trust = gw_conn_recheck(c, r->gen);
	if (trust != PKI_OK) {
		c->close_after = true;
		gw_log(GW_LOG_INFO,
		       "connection from %s:%u: certificate no longer trusted after reload: %s",
		       c->peer, c->peer_port, pki_reason_str(trust));
		gw_req_finish(r, 403, GW_FORBIDDEN, pki_reason_str(trust));
		return;
	}
	if (req_authorise(r) != 0)
		return;
	char fwd[8192 + 2];
	size_t fwd_len;
	if (policy_route_rewrite(r->route, r->path, r->path_len, fwd, sizeof(fwd), &fwd_len) != 0) {
		c->close_after = true;
		gw_req_finish(r, 400, GW_BAD_REQUEST, "rewritten_path_too_long");
		return;
	}
	/* Per connection, lent to one request at a time: two allocations less per request. */
	if (!c->pending)
		c->pending = evbuffer_new();
	if (!c->replay)
		c->replay = evbuffer_new();
	r->pending = c->pending;
	r->replay = c->replay;
	if (!r->pending || !r->replay || conn_fwd_hdrs(c) != 0 ||
	    req_build_upstream_head(r, fwd, fwd_len) != 0) {
		gw_req_finish(r, 500, GW_INTERNAL, "out_of_memory");
		return;
	}
	/* Keep a copy of a small idempotent request, to retry it on a pooled connection
	 * that the backend closed before reading it. */
	r->replay_ok = method_idempotent(h->method);
	if (r->replay_ok) {
		size_t n = evbuffer_get_length(r->pending);
		evbuffer_add(r->replay, evbuffer_pullup(r->pending, -1), n);
	}
	/* We answer 100-continue ourselves, and only once the request is authorised, so an
	 * unauthorised client never gets to send its body. */
	const char *ev;
	size_t el;
	if (gw_head_find(h, "expect", &ev, &el) && el == 12 &&
	    strncasecmp(ev, "100-continue", 12) == 0 && h->http_minor == 1 &&
	    (h->chunked || h->clen > 0))
		gw_conn_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	r->resp_head_req = h->method == HTTP_HEAD;
	gw_upstream_start(r);
}

/* Queues bytes for the upstream: straight onto its connection once it is attached. */
void gw_req_write_upstream(struct gw_req *r, const void *data, size_t len)
{
	struct evbuffer *dst =
	    (r->up && r->up->state == GW_UP_ACTIVE) ? gw_stream_output(r->up->st) : r->pending;
	evbuffer_add(dst, data, len);
	/* Only small requests are replayable after a failed attempt; big bodies stream. */
	if (r->replay_ok) {
		if (evbuffer_get_length(r->replay) + len > 64 * 1024)
			r->replay_ok = false;
		else
			evbuffer_add(r->replay, data, len);
	}
	if (evbuffer_get_length(dst) > GW_HIGH_WATER)
		gw_conn_pause_read(r->c, true);
}

/* Body bytes from the parser (already de-chunked); re-chunked when the client chunked. */
int gw_req_body(struct gw_req *r, const char *at, size_t len)
{
	if (!r || r->finished)
		return 0; /* answered already: the rest of the body is discarded */
	r->body_bytes += len;
	/* Content-Length was checked against the limit up front; chunked bodies here. */
	if (r->body_bytes > r->gen->cfg->limits.body) {
		r->c->close_after = true;
		gw_req_finish(r, 413, GW_TOO_LARGE, "chunked_body_over_limit");
		return 0;
	}
	if (r->body_chunked) {
		char sz[24];
		int n = snprintf(sz, sizeof(sz), "%zx\r\n", len);
		gw_req_write_upstream(r, sz, (size_t)n);
		gw_req_write_upstream(r, at, len);
		gw_req_write_upstream(r, "\r\n", 2);
	} else {
		gw_req_write_upstream(r, at, len);
	}
	return 0;
}

void gw_req_body_done(struct gw_req *r)
{
	r->body_done = true;
	if (r->finished)
		return;
	if (r->body_chunked)
		gw_req_write_upstream(r, "0\r\n\r\n", 5);
}

/*
 * RFC 3339 UTC with microseconds. Every audit record needs one, so each worker keeps the
 * text of the current second and only writes the microseconds.
 */
static void rfc3339(uint64_t us, char *out, size_t cap)
{
	static __thread time_t last = -1;
	static __thread char head[40]; /* "YYYY-MM-DDTHH:MM:SS." */
	time_t s = (time_t)(us / 1000000u);
	if (s != last) {
		struct tm tm;
		gmtime_r(&s, &tm);
		snprintf(head, sizeof(head), "%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900,
		         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		last = s;
	}
	unsigned frac = (unsigned)(us % 1000000u);
	size_t n = strlen(head);
	if (cap < n + 8) {
		if (cap)
			out[0] = '\0';
		return;
	}
	memcpy(out, head, n);
	for (int i = 5; i >= 0; i--, frac /= 10)
		out[n + (size_t)i] = (char)('0' + frac % 10);
	out[n + 6] = 'Z';
	out[n + 7] = '\0';
}

/* Hands the finished record to the audit writer, which seals it into the chain. */
static void audit_emit(struct audit_json *j)
{
	size_t len;
	char *s = audit_json_take(j, &len);
	if (s)
		gw_audit_submit(s, len);
	else
		gw_log(GW_LOG_ERR, "audit: out of memory: record lost");
}

static void audit_base(struct audit_json *j, const struct gw_conn *c, const char *type)
{
	char ts[80];
	rfc3339(gw_wall_us(), ts, sizeof(ts));
	audit_json_begin(j);
	audit_json_str(j, "time", ts);
	audit_json_str(j, "type", type);
	audit_json_int(j, "worker", c->w->id);
	audit_json_open(j, "client", '{');
	audit_json_str(j, "addr", c->peer);
	audit_json_int(j, "port", c->peer_port);
	audit_json_close(j);
}

void gw_audit_handshake(struct gw_conn *c, const char *reason)
{
	struct audit_json j;
	gw_metrics_handshake_failed(c->w, reason);
	if (!gw_audit_enabled())
		return;
	audit_base(&j, c, "handshake");
	audit_json_str(&j, "decision", "deny");
	audit_json_str(&j, "reason", reason);
	audit_json_int(&j, "handshake_us", (long long)(gw_now_us() - c->t_accept));
	audit_emit(&j);
}

static void audit_peer_members(struct audit_json *j, const struct gw_conn *c);

/*
 * Who is connected: TLS parameters and the certificate's identity. The same for every
 * request of the connection, so rendered (and escaped) once, then spliced in.
 */
static void audit_peer(struct audit_json *j, struct gw_conn *c)
{
	if (!c->audit_peer) {
		struct audit_json f;
		audit_json_fragment_begin(&f);
		audit_peer_members(&f, c);
		c->audit_peer = audit_json_take(&f, &c->audit_peer_len);
	}
	if (c->audit_peer)
		audit_json_raw(j, c->audit_peer, c->audit_peer_len);
	else
		audit_peer_members(j, c); /* out of memory for the copy: the slow way */
}

static void audit_peer_members(struct audit_json *j, const struct gw_conn *c)
{
	audit_json_str(j, "identity", authn_cert_id_name(&c->cert));
	audit_json_open(j, "tls", '{');
	audit_json_str(j, "version", SSL_get_version(c->ssl));
	audit_json_str(j, "cipher", SSL_get_cipher_name(c->ssl));
	audit_json_str(j, "sni", c->sni[0] ? c->sni : NULL);
	audit_json_close(j);
	audit_json_open(j, "cert", '{');
	audit_json_str(j, "spiffe_id", c->cert.spiffe_id);
	audit_json_str(j, "cn", c->cert.cn);
	audit_json_str(j, "sha256", c->cert.sha256_hex);
	audit_json_str(j, "serial", c->cert.serial_hex);
	audit_json_str(j, "issuer", c->cert.issuer);
	audit_json_close(j);
}

/* The verified token's identity: who issued it to whom, never the token itself. */
static void audit_token(struct audit_json *j, const struct gw_req *r)
{
	if (!r->has_token)
		return;
	audit_json_open(j, "token", '{');
	audit_json_str(j, "kind", r->token.kind == AUTHN_CRED_APIKEY ? "api_key" : "jwt");
	audit_json_str(j, "issuer", r->token.iss);
	audit_json_str(j, "subject", r->token.sub);
	audit_json_str(j, "jti", r->token.jti);
	audit_json_open(j, "scopes", '[');
	for (size_t i = 0; i < r->token.n_scopes; i++)
		audit_json_str(j, NULL, r->token.scopes[i]);
	audit_json_close(j);
	audit_json_close(j);
}

/* The decision: rule (file:line) and the digest of the policy it belongs to. */
static void audit_decision(struct audit_json *j, const struct gw_req *r)
{
	char digest[65], rule[4200];
	int line = 0;
	const char *file = policy_rule_file(r->decision.rule, &line);
	audit_json_str(j, "route", r->route ? r->route->prefix : NULL);
	audit_json_str(j, "decision", r->decision.effect == POLICY_ALLOW ? "allow" : "deny");
	audit_json_str(j, "reason", r->detail ? r->detail : gw_reason_str(r->reason));
	if (file) {
		size_t fl = strnlen(file, sizeof(rule) - 24);
		memcpy(rule, file, fl);
		rule[fl] = ':';
		gw_u64_dec(line > 0 ? (uint64_t)line : 0, rule + fl + 1);
	}
	audit_json_str(j, "rule", file ? rule : NULL);
	policy_digest_hex(r->gen->cfg->policy, digest);
	audit_json_str(j, "policy_sha256", digest);
}

static void audit_durations(struct audit_json *j, const struct gw_req *r)
{
	uint64_t now = gw_now_us();
	/* policy: head complete to upstream start (or to the answer): normalise, route, decide. */
	uint64_t policy = r->t_head ? (r->t_up ? r->t_up : now) - r->t_head : 0;
	audit_json_open(j, "duration_us", '{');
	audit_json_int(j, "handshake", (long long)r->c->handshake_us);
	audit_json_int(j, "policy", (long long)policy);
	audit_json_int(j, "upstream", (long long)(r->t_up ? now - r->t_up : 0));
	audit_json_int(j, "total", (long long)(now - r->t_start));
	audit_json_close(j);
}

/* One record per request, with what was verified and why it was decided. */
static void audit_request(const struct gw_req *r)
{
	const struct gw_conn *c = r->c;
	const struct gw_head *h = &c->ps.head;
	const struct conf_snapshot *cfg = r->gen->cfg;
	struct audit_json j;
	if (!gw_audit_enabled())
		return;
	audit_base(&j, c, "request");
	audit_json_str(&j, "request_id", r->id);
	audit_peer(&j, r->c);
	audit_token(&j, r);
	if (h->method || r->t_head)
		audit_json_str(&j, "method", llhttp_method_name(h->method));
	audit_json_strn(&j, "path", r->path, r->path_len);
	/* The raw target too, for refused requests: bounded, and without its query (which
	 * may carry a credential). */
	if (!r->path && h->url_len) {
		const char *t = h->buf + h->url_off, *q = memchr(t, '?', h->url_len);
		size_t tl = q ? (size_t)(q - t) : h->url_len;
		audit_json_strn(&j, "target", t, tl > 512 ? 512 : tl);
	}
	audit_decision(&j, r);
	if (r->cluster >= 0 && r->server >= 0)
		audit_json_str(&j, "upstream",
		               cfg->clusters[r->cluster].servers[r->server].address);
	audit_json_int(&j, "attempts", r->attempts);
	audit_json_int(&j, "status", r->status);
	audit_json_int(&j, "bytes_in", (long long)r->bytes_in);
	audit_json_int(&j, "bytes_out", (long long)r->bytes_out);
	audit_durations(&j, r);
	audit_emit(&j);
}

/*
 * The funnel: every request ends here exactly once. It answers (if nothing was sent yet
 * and there is an error to tell), audits, returns or closes the upstream connection,
 * and hands the client connection back to reading or to closing.
 */
void gw_req_finish(struct gw_req *r, int status, enum gw_reason why, const char *detail)
{
	if (r->finished)
		return;
	struct gw_conn *c = r->c;
	r->finished = true;
	if (!r->status || why != GW_OK)
		r->status = status;
	r->reason = why;
	r->detail = detail;
	bool conn_dying = why == GW_CLIENT_CLOSED || c->state == GW_CONN_CLOSING;
	if (!r->body_done || why == GW_BAD_REQUEST)
		c->close_after = true;
	if (why != GW_OK && !conn_dying) {
		if (!r->resp_started && status >= 400)
			req_send_error(r, status, why, detail);
		else
			c->close_after =
			    true; /* a response was cut short: the client must see EOF */
	}
	if (why != GW_OK)
		gw_log(GW_LOG_INFO, "request %s from %s:%u: %d %s", r->id, c->peer, c->peer_port,
		       r->status, detail ? detail : gw_reason_str(why));
	/* A connection that closed after a stray CRLF sent no request: nothing to audit. */
	if (!(why == GW_CLIENT_CLOSED && !r->t_head && r->bytes_in <= 2)) {
		audit_request(r);
		gw_metrics_request(c->w, r);
	}
	gw_upstream_req_done(r);
	if (r->up)
		gw_upstream_release(r->up, false);
	if (r->pending)
		evbuffer_drain(r->pending, evbuffer_get_length(r->pending));
	if (r->replay)
		evbuffer_drain(r->replay, evbuffer_get_length(r->replay));
	free(r->path);
	authn_token_id_clear(&r->token);
	gw_gen_unref(r->gen);
	c->req = NULL;
	c->ps.ud = NULL;
	free(r);
	if (!conn_dying)
		gw_conn_request_done(c);
}
