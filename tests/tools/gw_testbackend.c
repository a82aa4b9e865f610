/*
 * gw_testbackend: a real HTTP/1.1 origin (TLS by default) for the integration tests.
 * One thread, libevent bufferevents, llhttp for parsing. Request bodies are counted and
 * hashed while they stream; /bytes/N bodies are produced only as the output drains.
 * Endpoints, modes and the JSON shapes are described in tests/tools/README.md.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <llhttp.h>

/* Above OUT_HIGH nothing new is produced (next pipelined request, next /bytes slice) until
 * the write callback reports the output drained to OUT_LOW. IN_HIGH bounds what a client
 * can pile up while a response is in progress. */
#define OUT_HIGH      (256 * 1024)
#define OUT_LOW       (64 * 1024)
#define IN_HIGH       (256 * 1024)
#define MAX_TARGET    (16 * 1024)
#define MAX_HDR_BYTES (64 * 1024)
#define MAX_HDRS      256
#define BYTES_MAX     (1ULL << 40)
#define SLOW_MAX_MS   (3600ULL * 1000)
#define PATTERN_MOD   251
#define PATTERN_RUN   (PATTERN_MOD * 64)
#define LINGER_MS     2000
#define BODY_CHUNKED  (-1LL)
#define BODY_NONE     (-2LL)

enum backend_mode { MODE_ECHO, MODE_HANG, MODE_CLOSE, MODE_STATUS, MODE_SLOW };

enum conn_state {
	CS_HANDSHAKE, /* TLS handshake in progress */
	CS_IDLE,      /* parsing the next request */
	CS_SLOW,      /* /slow timer armed */
	CS_STREAM,    /* /bytes body being produced */
	CS_HANG,      /* request read, never answered */
	CS_CLOSING,   /* flush the output, then close */
	CS_LINGER,    /* close_notify and FIN sent; discard input until EOF or timer */
};

struct strbuf {
	char *p;
	size_t len, cap;
};

struct backend {
	struct event_base *base;
	SSL_CTX *ssl_ctx; /* NULL with --plain */
	const char *name;
	enum backend_mode mode;
	unsigned long long mode_arg;
	unsigned long long handshakes, resumed, requests, conns_total, conns_open;
	struct conn *conns;
	unsigned char pattern[PATTERN_RUN + PATTERN_MOD];
};

struct req {
	struct strbuf target;
	struct strbuf hdrs; /* "name\0value\0" pairs, names lower-cased */
	unsigned nhdrs;
	unsigned long long body_bytes;
	EVP_MD_CTX *md;
	unsigned char digest[32];
	int method;
	int keep_alive;
};

struct conn {
	struct backend *be; /* borrowed */
	struct conn *prev, *next;
	struct bufferevent *bev;
	struct event *timer;
	llhttp_t parser;
	struct req req;
	enum conn_state state;
	char *client_cn;
	unsigned long long nreq;
	unsigned long long stream_left, stream_off;
	int stream_chunked;
	int quit_after;
};

static void conn_kick(struct conn *c);
static void conn_free(struct conn *c);

/* Appends n bytes, keeping the buffer NUL-terminated; -1 when it would pass limit or on OOM. */
static int strbuf_add(struct strbuf *sb, const void *data, size_t n, size_t limit)
{
	size_t cap;
	char *p;

	if (n > limit || sb->len > limit - n)
		return -1;
	if (sb->len + n + 1 > sb->cap) {
		cap = sb->cap ? sb->cap : 256;
		while (cap < sb->len + n + 1)
			cap *= 2;
		p = realloc(sb->p, cap);
		if (!p)
			return -1;
		sb->p = p;
		sb->cap = cap;
	}
	memcpy(sb->p + sb->len, data, n);
	sb->len += n;
	sb->p[sb->len] = '\0';
	return 0;
}

/* printf into an evbuffer; 0 or -1, so results can be OR-ed together. */
__attribute__((format(printf, 2, 3))) static int put(struct evbuffer *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = evbuffer_add_vprintf(b, fmt, ap);
	va_end(ap);
	return n < 0 ? -1 : 0;
}

/* Parses exactly n decimal digits into *out; -1 if empty, not all digits or above max. */
static int parse_ull(const char *s, size_t n, unsigned long long max, unsigned long long *out)
{
	unsigned long long v = 0;
	size_t i;

	if (n == 0 || n > 20)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (v > (max - (unsigned)(s[i] - '0')) / 10)
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* Reason phrase for the status codes tests use; clients must not depend on it. */
static const char *reason_phrase(int status)
{
	static const struct {
		int code;
		const char *text;
	} tab[] = {{200, "OK"},
	           {204, "No Content"},
	           {304, "Not Modified"},
	           {400, "Bad Request"},
	           {403, "Forbidden"},
	           {404, "Not Found"},
	           {500, "Internal Server Error"},
	           {502, "Bad Gateway"},
	           {503, "Service Unavailable"},
	           {504, "Gateway Timeout"}};
	size_t i;

	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (tab[i].code == status)
			return tab[i].text;
	return "Status";
}

/* JSON string contents: bytes outside printable ASCII become \u00XX, so a value that is
 * not UTF-8 still yields valid JSON; its raw bytes are value.encode('latin-1'). */
static int json_esc(struct evbuffer *b, const char *s, size_t n)
{
	size_t i, run = 0;
	int rc = 0;

	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
			continue;
		rc |= evbuffer_add(b, s + run, i - run);
		rc |= (ch == '"' || ch == '\\') ? put(b, "\\%c", ch) : put(b, "\\u%04x", ch);
		run = i + 1;
	}
	rc |= evbuffer_add(b, s + run, n - run);
	return rc ? -1 : 0;
}

/* A quoted JSON string; 0 or -1. */
static int json_str(struct evbuffer *b, const char *s)
{
	int rc = evbuffer_add(b, "\"", 1);

	rc |= json_esc(b, s, strlen(s));
	rc |= evbuffer_add(b, "\"", 1);
	return rc ? -1 : 0;
}

/* Splits the request's header store into name/value pointers; returns the pair count. */
static unsigned req_headers(const struct req *r, const char **name, const char **val)
{
	const char *p = r->hdrs.p, *end = r->hdrs.p + r->hdrs.len;
	unsigned n = 0;

	while (p && p < end && n < r->nhdrs && n < MAX_HDRS) {
		name[n] = p;
		p += strlen(p) + 1;
		if (p >= end)
			break;
		val[n++] = p;
		p += strlen(p) + 1;
	}
	return n;
}

/* The headers as one JSON object in first-seen order; a repeated name's values are joined
 * with ", " so tests can see duplicates a proxy should have merged or refused. */
static int json_headers(struct evbuffer *b, const struct req *r)
{
	const char *name[MAX_HDRS], *val[MAX_HDRS];
	unsigned n = req_headers(r, name, val), i, j, k;
	int rc = put(b, "{");

	for (i = 0; i < n; i++) {
		for (j = 0; j < i && strcmp(name[j], name[i]) != 0; j++)
			;
		if (j < i)
			continue;
		rc |= put(b, "%s", i ? "," : "");
		rc |= json_str(b, name[i]);
		rc |= put(b, ":\"");
		for (k = i; k < n; k++) {
			if (strcmp(name[k], name[i]) != 0)
				continue;
			rc |= put(b, "%s", k > i ? ", " : "");
			rc |= json_esc(b, val[k], strlen(val[k]));
		}
		rc |= put(b, "\"");
	}
	rc |= put(b, "}");
	return rc ? -1 : 0;
}

static const char *req_method(const struct req *r)
{
	return llhttp_method_name((llhttp_method_t)r->method);
}

static const char *req_target(const struct req *r)
{
	return r->target.p ? r->target.p : "";
}

/* The one log line per answered (or deliberately unanswered) request. */
static void req_log(const struct conn *c, const char *outcome)
{
	fprintf(stderr, "backend %s: %s %s -> %s\n", c->be->name, req_method(&c->req),
	        req_target(&c->req), outcome);
}

/* The next request may be parsed, or the connection closes if this one asked for that. */
static void resp_done(struct conn *c)
{
	c->state = c->req.keep_alive ? CS_IDLE : CS_CLOSING;
}

/* Queues the status line and headers and logs the request. clen is the body length,
 * BODY_CHUNKED or BODY_NONE. Returns 0 or -1 (OOM). */
static int resp_head(struct conn *c, int status, const char *ctype, long long clen)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	char code[8];
	int rc;

	snprintf(code, sizeof(code), "%d", status);
	req_log(c, code);
	rc = put(out, "HTTP/1.1 %d %s\r\nX-Backend: %s\r\n", status, reason_phrase(status),
	         c->be->name);
	if (ctype)
		rc |= put(out, "Content-Type: %s\r\n", ctype);
	if (clen >= 0)
		rc |= put(out, "Content-Length: %lld\r\n", clen);
	else if (clen == BODY_CHUNKED)
		rc |= put(out, "Transfer-Encoding: chunked\r\n");
	if (!c->req.keep_alive)
		rc |= put(out, "Connection: close\r\n");
	rc |= put(out, "\r\n");
	return rc ? -1 : 0;
}

/* A complete response whose body is moved out of body (not sent for HEAD). */
static int resp_send(struct conn *c, int status, const char *ctype, struct evbuffer *body)
{
	int rc = resp_head(c, status, ctype, (long long)evbuffer_get_length(body));

	struct evbuffer *out = bufferevent_get_output(c->bev);
	if (rc == 0 && c->req.method != HTTP_HEAD)
		rc = evbuffer_add_buffer(out, body);
	/* bufferevent_openssl writes each chain as a record of its own, with a write() each: a
	 * small response made one chain leaves in one write, so a backend killed with SIGKILL
	 * (t081) dies between responses, never after a head the gateway already forwarded. */
	if (rc == 0 && evbuffer_get_length(out) <= 65536 && !evbuffer_pullup(out, -1))
		rc = -1;
	if (rc == 0)
		resp_done(c);
	return rc;
}

/* The echo document: what this backend received, plus the counters tests assert on. */
static int resp_echo(struct conn *c)
{
	const struct backend *be = c->be;
	const struct req *r = &c->req;
	struct evbuffer *b = evbuffer_new();
	char hex[65];
	int rc, i;

	if (!b)
		return -1;
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", r->digest[i]);
	rc = put(b, "{\"backend\":");
	rc |= json_str(b, be->name);
	rc |= put(b, ",\"method\":\"%s\",\"path\":", req_method(r));
	rc |= json_str(b, req_target(r));
	rc |= put(b, ",\"headers\":");
	rc |= json_headers(b, r);
	rc |= put(b, ",\"body_bytes\":%llu,\"body_sha256\":\"%s\",\"client_cn\":", r->body_bytes,
	          hex);
	rc |= c->client_cn ? json_str(b, c->client_cn) : put(b, "null");
	rc |= put(b, ",\"conn_requests\":%llu,\"tls_handshakes\":%llu,\"requests\":%llu}\n",
	          c->nreq, be->handshakes, be->requests);
	if (rc == 0)
		rc = resp_send(c, 200, "application/json", b);
	evbuffer_free(b);
	return rc;
}

/* A small JSON document {"backend":NAME,<fields>} where fields is printf-formatted. */
__attribute__((format(printf, 3, 4))) static int resp_json(struct conn *c, int status,
                                                           const char *fmt, ...)
{
	struct evbuffer *b = evbuffer_new();
	va_list ap;
	int rc;

	if (!b)
		return -1;
	rc = put(b, "{\"backend\":");
	rc |= json_str(b, c->be->name);
	rc |= put(b, ",");
	va_start(ap, fmt);
	rc |= evbuffer_add_vprintf(b, fmt, ap) < 0 ? -1 : 0;
	va_end(ap);
	rc |= put(b, "}\n");
	if (rc == 0)
		rc = resp_send(c, status, "application/json", b);
	evbuffer_free(b);
	return rc;
}

/* /__stats: process-wide counters (this request is not counted in "requests"). */
static int resp_stats(struct conn *c)
{
	const struct backend *be = c->be;

	return resp_json(c, 200,
	                 "\"handshakes\":%llu,\"resumed\":%llu,\"requests\":%llu,"
	                 "\"connections_open\":%llu,\"connections_total\":%llu",
	                 be->handshakes, be->resumed, be->requests, be->conns_open,
	                 be->conns_total);
}

/* The given status with a small body; 204 and 304 get neither body nor length. */
static int resp_status(struct conn *c, int status)
{
	if (status == 204 || status == 304) {
		if (resp_head(c, status, NULL, BODY_NONE) < 0)
			return -1;
		resp_done(c);
		return 0;
	}
	return resp_json(c, status, "\"status\":%d", status);
}

/* Starts a /bytes/N response; conn_stream_fill() produces the body as the output drains. */
static int resp_bytes_start(struct conn *c, unsigned long long n, int chunked)
{
	if (resp_head(c, 200, "application/octet-stream", chunked ? BODY_CHUNKED : (long long)n))
		return -1;
	if (c->req.method == HTTP_HEAD) {
		resp_done(c);
		return 0;
	}
	c->stream_left = n;
	c->stream_off = 0;
	c->stream_chunked = chunked;
	c->state = CS_STREAM;
	return 0;
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg);

/* Arms the connection timer; the echo answer is sent when it fires. */
static int resp_slow_start(struct conn *c, unsigned long long ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

	if (!c->timer) {
		c->timer = evtimer_new(c->be->base, conn_timer_cb, c);
		if (!c->timer)
			return -1;
	}
	if (evtimer_add(c->timer, &tv) < 0)
		return -1;
	c->state = CS_SLOW;
	return 0;
}

/* Adds at most OUT_HIGH of the /bytes pattern (byte i = i % 251); finishes the response
 * when all was queued. Returns 0 or -1 (OOM). */
static int conn_stream_fill(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	const unsigned char *p;
	size_t n;
	int rc = 0;

	while (rc == 0 && c->stream_left > 0 && evbuffer_get_length(out) < OUT_HIGH) {
		n = c->stream_left < PATTERN_RUN ? (size_t)c->stream_left : PATTERN_RUN;
		p = c->be->pattern + c->stream_off % PATTERN_MOD;
		if (c->stream_chunked)
			rc |= put(out, "%zx\r\n", n);
		rc |= evbuffer_add(out, p, n);
		if (c->stream_chunked)
			rc |= evbuffer_add(out, "\r\n", 2);
		c->stream_left -= n;
		c->stream_off += n;
	}
	if (rc == 0 && c->stream_left == 0) {
		if (c->stream_chunked)
			rc = evbuffer_add(out, "0\r\n\r\n", 5);
		resp_done(c);
	}
	return rc ? -1 : 0;
}

/* Matches "PREFIX<digits>" against the path: 1 = other path, 0 = *n set, -1 = bad number. */
static int path_num(const char *path, size_t plen, const char *prefix, unsigned long long max,
                    unsigned long long *n)
{
	size_t l = strlen(prefix);

	if (plen < l || strncmp(path, prefix, l) != 0)
		return 1;
	return parse_ull(path + l, plen - l, max, n);
}

/* True when the query string (after '?') has the exact parameter param. */
static int query_has(const char *query, const char *param)
{
	size_t l = strlen(param);
	const char *p;

	if (*query != '?')
		return 0;
	for (p = query + 1; *p; p += strcspn(p, "&"), p += *p == '&') {
		if (strncmp(p, param, l) == 0 && (p[l] == '&' || p[l] == '\0'))
			return 1;
	}
	return 0;
}

/* Routes one complete request. The path endpoints win over the status/slow modes; hang and
 * close apply to everything except the /__ control paths. Returns 0 or -1 (OOM). */
static int conn_dispatch(struct conn *c)
{
	struct backend *be = c->be;
	const char *t = req_target(&c->req);
	size_t plen = strcspn(t, "?");
	unsigned long long n;
	int r;

	c->nreq++;
	if (plen == 8 && strncmp(t, "/__stats", 8) == 0)
		return resp_stats(c);
	be->requests++;
	if (plen == 7 && strncmp(t, "/__quit", 7) == 0) {
		c->quit_after = 1;
		c->req.keep_alive = 0;
		return resp_status(c, 200);
	}
	if (be->mode == MODE_HANG || be->mode == MODE_CLOSE) {
		req_log(c, be->mode == MODE_HANG ? "hang" : "close");
		c->state = be->mode == MODE_HANG ? CS_HANG : CS_CLOSING;
		return 0;
	}
	if ((r = path_num(t, plen, "/bytes/", BYTES_MAX, &n)) <= 0)
		return r ? resp_status(c, 400)
		         : resp_bytes_start(c, n, query_has(t + plen, "chunked=1"));
	if ((r = path_num(t, plen, "/status/", 599, &n)) <= 0)
		return r || n < 200 ? resp_status(c, 400) : resp_status(c, (int)n);
	if ((r = path_num(t, plen, "/slow/", SLOW_MAX_MS, &n)) <= 0)
		return r ? resp_status(c, 400) : resp_slow_start(c, n);
	if (be->mode == MODE_STATUS)
		return resp_status(c, (int)be->mode_arg);
	if (be->mode == MODE_SLOW)
		return resp_slow_start(c, be->mode_arg);
	return resp_echo(c);
}

/* ---- llhttp callbacks: collect one request; the body is only counted and hashed ---- */

static int req_on_message_begin(llhttp_t *p)
{
	struct req *r = &((struct conn *)p->data)->req;

	r->target.len = 0;
	if (r->target.p)
		r->target.p[0] = '\0';
	r->hdrs.len = 0;
	r->nhdrs = 0;
	r->body_bytes = 0;
	return EVP_DigestInit_ex(r->md, EVP_sha256(), NULL) == 1 ? 0 : -1;
}

static int req_on_url(llhttp_t *p, const char *at, size_t n)
{
	return strbuf_add(&((struct conn *)p->data)->req.target, at, n, MAX_TARGET);
}

static int req_on_header_field(llhttp_t *p, const char *at, size_t n)
{
	struct strbuf *sb = &((struct conn *)p->data)->req.hdrs;
	size_t i = sb->len;

	if (strbuf_add(sb, at, n, MAX_HDR_BYTES) < 0)
		return -1;
	for (; i < sb->len; i++)
		sb->p[i] = (char)tolower((unsigned char)sb->p[i]);
	return 0;
}

static int req_on_header_value(llhttp_t *p, const char *at, size_t n)
{
	return strbuf_add(&((struct conn *)p->data)->req.hdrs, at, n, MAX_HDR_BYTES);
}

static int req_on_field_complete(llhttp_t *p)
{
	return strbuf_add(&((struct conn *)p->data)->req.hdrs, "", 1, MAX_HDR_BYTES);
}

static int req_on_value_complete(llhttp_t *p)
{
	struct req *r = &((struct conn *)p->data)->req;

	if (++r->nhdrs > MAX_HDRS)
		return -1;
	return strbuf_add(&r->hdrs, "", 1, MAX_HDR_BYTES);
}

/* Answers "Expect: 100-continue" so clients that wait for it (curl) do not stall; the hang
 * and close modes stay silent on purpose. */
static int req_on_headers_complete(llhttp_t *p)
{
	struct conn *c = p->data;
	const char *name[MAX_HDRS], *val[MAX_HDRS];
	unsigned n = req_headers(&c->req, name, val), i;

	if (c->be->mode == MODE_HANG || c->be->mode == MODE_CLOSE)
		return 0;
	for (i = 0; i < n; i++) {
		if (strcmp(name[i], "expect") == 0 && strcasecmp(val[i], "100-continue") == 0)
			return put(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n");
	}
	return 0;
}

static int req_on_body(llhttp_t *p, const char *at, size_t n)
{
	struct req *r = &((struct conn *)p->data)->req;

	r->body_bytes += n;
	return EVP_DigestUpdate(r->md, at, n) == 1 ? 0 : -1;
}

/* Pausing here hands exactly one request to conn_dispatch(); the bytes after it stay in
 * the input buffer until this response is done, which is what makes pipelining safe. */
static int req_on_message_complete(llhttp_t *p)
{
	struct req *r = &((struct conn *)p->data)->req;

	if (EVP_DigestFinal_ex(r->md, r->digest, NULL) != 1)
		return -1;
	r->method = llhttp_get_method(p);
	r->keep_alive = llhttp_should_keep_alive(p);
	return HPE_PAUSED;
}

static const llhttp_settings_t req_settings = {
    .on_message_begin = req_on_message_begin,
    .on_url = req_on_url,
    .on_header_field = req_on_header_field,
    .on_header_value = req_on_header_value,
    .on_header_field_complete = req_on_field_complete,
    .on_header_value_complete = req_on_value_complete,
    .on_headers_complete = req_on_headers_complete,
    .on_body = req_on_body,
    .on_message_complete = req_on_message_complete,
};

/* ---- connections ---- */

/* A request llhttp (or one of our limits) refused: 400, then close, since the framing of
 * whatever follows is unknown. */
static void conn_bad_request(struct conn *c, llhttp_errno_t err)
{
	static const char body[] = "bad request\n";
	struct evbuffer *out = bufferevent_get_output(c->bev);

	fprintf(stderr, "backend %s: - %s -> 400 (%s %s)\n", c->be->name, req_target(&c->req),
	        llhttp_errno_name(err), llhttp_get_error_reason(&c->parser));
	put(out,
	    "HTTP/1.1 400 Bad Request\r\nX-Backend: %s\r\nContent-Type: text/plain\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
	    c->be->name, sizeof(body) - 1, body);
	c->state = CS_CLOSING;
}

/* Feeds buffered input to llhttp while idle and the output is below the high mark. */
static void conn_parse(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer *out = bufferevent_get_output(c->bev);
	struct evbuffer_iovec v;
	llhttp_errno_t err;
	size_t used;

	while (c->state == CS_IDLE && evbuffer_get_length(out) < OUT_HIGH) {
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
			return;
		err = llhttp_execute(&c->parser, v.iov_base, v.iov_len);
		if (err == HPE_OK) {
			evbuffer_drain(in, v.iov_len);
			continue;
		}
		if (err != HPE_PAUSED && err != HPE_PAUSED_UPGRADE) {
			conn_bad_request(c, err);
			return;
		}
		used = (size_t)(llhttp_get_error_pos(&c->parser) - (const char *)v.iov_base);
		evbuffer_drain(in, used);
		/* An Upgrade/CONNECT request is answered like any other, so the connection
		 * simply stays HTTP. */
		if (err == HPE_PAUSED_UPGRADE) {
			llhttp_resume_after_upgrade(&c->parser);
			continue;
		}
		llhttp_resume(&c->parser);
		if (conn_dispatch(c) < 0)
			c->state = CS_CLOSING;
	}
}

/* Sends close_notify and FIN, then keeps reading for a while: closing with unread input
 * would make the kernel send RST, and an RST can destroy a response still in flight. */
static void conn_shutdown(struct conn *c)
{
	struct timeval tv = {LINGER_MS / 1000, (LINGER_MS % 1000) * 1000};
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);

	if (c->quit_after)
		event_base_loopbreak(c->be->base);
	if (ssl) {
		SSL_shutdown(ssl);
		ERR_clear_error();
	}
	shutdown(bufferevent_getfd(c->bev), SHUT_WR);
	c->state = CS_LINGER;
	evbuffer_drain(bufferevent_get_input(c->bev),
	               evbuffer_get_length(bufferevent_get_input(c->bev)));
	if (!c->timer)
		c->timer = evtimer_new(c->be->base, conn_timer_cb, c);
	if (!c->timer || evtimer_add(c->timer, &tv) < 0)
		conn_free(c);
}

/* The single progress function, called last by every callback: produce, parse, close.
 * It may free c. */
static void conn_kick(struct conn *c)
{
	enum conn_state before;

	do {
		before = c->state;
		if (c->state == CS_STREAM && conn_stream_fill(c) < 0)
			c->state = CS_CLOSING;
		if (c->state == CS_IDLE)
			conn_parse(c);
	} while (c->state != before && (c->state == CS_STREAM || c->state == CS_IDLE));
	if (c->state == CS_LINGER)
		evbuffer_drain(bufferevent_get_input(c->bev),
		               evbuffer_get_length(bufferevent_get_input(c->bev)));
	if (c->state == CS_CLOSING && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		conn_shutdown(c);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	if (c->state == CS_LINGER) {
		conn_free(c);
		return;
	}
	if (c->state == CS_SLOW && resp_echo(c) < 0)
		c->state = CS_CLOSING;
	conn_kick(c);
}

static void conn_io_cb(struct bufferevent *bev, void *arg)
{
	conn_kick(arg);
}

/* Records what the handshake established: counters and the client certificate's CN. */
static int conn_handshake_done(struct conn *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	X509 *peer = SSL_get0_peer_certificate(ssl);
	char cn[256];

	c->be->handshakes++;
	if (SSL_session_reused(ssl))
		c->be->resumed++;
	c->state = CS_IDLE;
	if (peer && X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn,
	                                      sizeof(cn)) >= 0) {
		c->client_cn = strdup(cn);
		if (!c->client_cn)
			return -1;
	}
	return 0;
}

/* Logs why TLS failed; a failed handshake (e.g. no or bad client certificate) is the
 * interesting case for the tests. Plain socket errors (resets) stay quiet. */
static void conn_log_error(struct conn *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	char buf[256];
	unsigned long e;
	long v;

	while ((e = bufferevent_get_openssl_error(c->bev)) != 0) {
		/* libevent also queues the raw SSL_get_error() code (library 0): noise. */
		if (ERR_GET_LIB(e) == 0)
			continue;
		ERR_error_string_n(e, buf, sizeof(buf));
		fprintf(stderr, "backend %s: tls error%s: %s\n", c->be->name,
		        c->state == CS_HANDSHAKE ? " in handshake" : "", buf);
	}
	if (ssl && c->state == CS_HANDSHAKE && (v = SSL_get_verify_result(ssl)) != X509_V_OK)
		fprintf(stderr, "backend %s: client certificate: %s\n", c->be->name,
		        X509_verify_cert_error_string(v));
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		if (conn_handshake_done(c) < 0)
			c->state = CS_CLOSING;
		conn_kick(c);
		return;
	}
	if (what & BEV_EVENT_ERROR)
		conn_log_error(c);
	conn_free(c);
}

/* Frees the connection, its bufferevent (which owns the socket and SSL) and timer. */
static void conn_free(struct conn *c)
{
	if (!c)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		c->be->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->be->conns_open--;
	if (c->timer)
		event_free(c->timer);
	if (c->bev)
		bufferevent_free(c->bev);
	EVP_MD_CTX_free(c->req.md);
	free(c->req.target.p);
	free(c->req.hdrs.p);
	free(c->client_cn);
	free(c);
}

/* Wraps an accepted socket (TLS or plain) into a linked connection. Owns fd in all cases:
 * on failure the socket is closed. */
static int conn_new(struct backend *be, evutil_socket_t fd)
{
	struct conn *c = calloc(1, sizeof(*c));
	SSL *ssl;

	if (!c || !(c->req.md = EVP_MD_CTX_new()))
		goto fail;
	c->be = be;
	llhttp_init(&c->parser, HTTP_REQUEST, &req_settings);
	c->parser.data = c;
	c->state = be->ssl_ctx ? CS_HANDSHAKE : CS_IDLE;
	if (be->ssl_ctx) {
		if (!(ssl = SSL_new(be->ssl_ctx)))
			goto fail;
		/* On failure libevent frees ssl itself (BEV_OPT_CLOSE_ON_FREE) but not fd. */
		c->bev = bufferevent_openssl_socket_new(
		    be->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
		if (c->bev)
			bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	} else {
		c->bev = bufferevent_socket_new(be->base, fd, BEV_OPT_CLOSE_ON_FREE);
	}
	if (!c->bev)
		goto fail;
	bufferevent_setcb(c->bev, conn_io_cb, conn_io_cb, conn_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, IN_HIGH);
	bufferevent_setwatermark(c->bev, EV_WRITE, OUT_LOW, 0);
	if (bufferevent_enable(c->bev, EV_READ | EV_WRITE) < 0)
		goto fail;
	c->next = be->conns;
	if (be->conns)
		be->conns->prev = c;
	be->conns = c;
	be->conns_open++;
	be->conns_total++;
	return 0;
fail:
	if (c && c->bev)
		bufferevent_free(c->bev);
	else
		evutil_closesocket(fd);
	if (c)
		EVP_MD_CTX_free(c->req.md);
	free(c);
	return -1;
}

static void backend_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                              int salen, void *arg)
{
	int one = 1;

	/* Small responses would otherwise wait for the client's delayed ACK. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (conn_new(arg, fd) < 0)
		fprintf(stderr, "backend %s: out of memory accepting a connection\n",
		        ((struct backend *)arg)->name);
}

/* Out of descriptors and the like: log and keep listening. */
static void backend_accept_error_cb(struct evconnlistener *l, void *arg)
{
	fprintf(stderr, "backend %s: accept: %s\n", ((struct backend *)arg)->name,
	        evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static void backend_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopbreak(arg);
}

/* ---- setup ---- */

/* Server TLS context from --cert/--key; with ca, a client certificate is required and
 * verified against it. Returns the context or NULL with err set. */
static SSL_CTX *backend_tls_new(const char *cert, const char *key, const char *ca, char *err,
                                size_t errlen)
{
	static const unsigned char sid_ctx[] = "gw_testbackend";
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	STACK_OF(X509_NAME) * names;

	if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION))
		goto fail;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)
		goto fail;
	/* Without a session id context, resuming a session that carried a verified client
	 * certificate is a fatal handshake error rather than a full handshake. */
	if (SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1) != 1)
		goto fail;
	/* Clients that just close the socket (no close_notify) are ordinary EOF here. */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (ca) {
		if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1 ||
		    !(names = SSL_load_client_CA_file(ca)))
			goto fail;
		SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	return ctx;
fail:
	snprintf(err, errlen, "tls setup: %s", ERR_reason_error_string(ERR_peek_last_error()));
	SSL_CTX_free(ctx);
	return NULL;
}

/* Writes "PORT\n" to path via a temporary file and rename(), so a polling test never
 * reads a half-written file. */
static int ready_file_write(const char *path, unsigned port, char *err, size_t errlen)
{
	char tmp[4096];
	FILE *f = NULL;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
		goto fail;
	f = fopen(tmp, "w");
	if (!f || fprintf(f, "%u\n", port) < 0)
		goto fail;
	if (fclose(f) != 0) {
		f = NULL;
		goto fail;
	}
	f = NULL;
	if (rename(tmp, path) != 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "ready file %s: %s", path, strerror(errno));
	if (f)
		fclose(f);
	unlink(tmp);
	return -1;
}

/* Parses --mode: echo | hang | close | status:NNN | slow:MS. */
static int backend_mode_parse(struct backend *be, const char *s)
{
	be->mode = strcmp(s, "hang") == 0    ? MODE_HANG
	           : strcmp(s, "close") == 0 ? MODE_CLOSE
	                                     : MODE_ECHO;
	if (strcmp(s, "echo") == 0 || be->mode != MODE_ECHO)
		return 0;
	if (strncmp(s, "status:", 7) == 0) {
		be->mode = MODE_STATUS;
		return parse_ull(s + 7, strlen(s + 7), 599, &be->mode_arg) || be->mode_arg < 200;
	}
	be->mode = MODE_SLOW;
	return strncmp(s, "slow:", 5) ? -1
	                              : parse_ull(s + 5, strlen(s + 5), SLOW_MAX_MS, &be->mode_arg);
}

struct backend_opts {
	const char *listen, *ready_file, *cert, *key, *ca, *name, *mode;
	int plain;
};

/* Fills o from argv; -1 on a usage error (usage printed). */
static int backend_opts_parse(struct backend_opts *o, int argc, char **argv)
{
	static const struct option lo[] = {{"listen", required_argument, NULL, 0},
	                                   {"ready-file", required_argument, NULL, 1},
	                                   {"cert", required_argument, NULL, 2},
	                                   {"key", required_argument, NULL, 3},
	                                   {"ca", required_argument, NULL, 4},
	                                   {"name", required_argument, NULL, 5},
	                                   {"mode", required_argument, NULL, 6},
	                                   {"plain", no_argument, NULL, 7},
	                                   {NULL, 0, NULL, 0}};
	const char **dst[] = {&o->listen, &o->ready_file, &o->cert, &o->key,
	                      &o->ca,     &o->name,       &o->mode};
	int ch;

	*o = (struct backend_opts){.listen = "127.0.0.1:0", .name = "backend", .mode = "echo"};
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) >= 0 && ch <= 7) {
		if (ch == 7)
			o->plain = 1;
		else
			*dst[ch] = optarg;
	}
	if (ch != -1 || optind != argc || (!o->plain && (!o->cert || !o->key))) {
		fprintf(stderr,
		        "usage: gw_testbackend [--listen ADDR:PORT] [--ready-file F] --cert F"
		        " --key F [--ca F]\n       [--name NAME] [--mode "
		        "echo|hang|close|status:NNN|slow:MS] [--plain]\n");
		return -1;
	}
	return 0;
}

/* Binds "IP:PORT" or "[IPV6]:PORT" (numeric, port 0 = any) and reports the bound port;
 * NULL with err set on failure. */
static struct evconnlistener *backend_listen(struct backend *be, const char *addr, unsigned *port,
                                             char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE};
	struct addrinfo *ai = NULL;
	const char *colon = strrchr(addr, ':');
	struct evconnlistener *l = NULL;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[64];
	int n = colon ? (int)(colon - addr) : 0;

	/* Strip the brackets of "[::1]:0"; getaddrinfo wants the bare address. */
	if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']')
		snprintf(host, sizeof(host), "%.*s", n - 2, addr + 1);
	else
		snprintf(host, sizeof(host), "%.*s", n, addr);
	if (!colon || getaddrinfo(host, colon + 1, &hints, &ai) != 0) {
		snprintf(err, errlen, "bad listen address %s", addr);
		return NULL;
	}
	l = evconnlistener_new_bind(be->base, backend_accept_cb, be,
	                            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 512, ai->ai_addr,
	                            (int)ai->ai_addrlen);
	freeaddrinfo(ai);
	if (!l || getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&ss, &len) < 0) {
		snprintf(err, errlen, "listen %s: %s", addr, strerror(errno));
		if (l)
			evconnlistener_free(l);
		return NULL;
	}
	evconnlistener_set_error_cb(l, backend_accept_error_cb);
	*port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                                       : ((struct sockaddr_in *)&ss)->sin_port);
	return l;
}

/* Runs the loop until a signal or /__quit, then frees everything (so leak checkers see a
 * clean exit). */
static int backend_run(struct backend *be, struct backend_opts *o, char *err, size_t errlen)
{
	struct evconnlistener *l = NULL;
	struct event *sigs[2] = {NULL, NULL};
	unsigned port;
	int rc = -1, i;

	l = backend_listen(be, o->listen, &port, err, errlen);
	if (!l)
		goto fail;
	sigs[0] = evsignal_new(be->base, SIGTERM, backend_signal_cb, be->base);
	sigs[1] = evsignal_new(be->base, SIGINT, backend_signal_cb, be->base);
	if (!sigs[0] || !sigs[1] || evsignal_add(sigs[0], NULL) < 0 ||
	    evsignal_add(sigs[1], NULL) < 0) {
		snprintf(err, errlen, "signal setup failed");
		goto fail;
	}
	if (o->ready_file && ready_file_write(o->ready_file, port, err, errlen) < 0)
		goto fail;
	fprintf(stderr, "backend %s: listening on port %u (%s, mode %s)\n", be->name, port,
	        be->ssl_ctx ? "tls" : "plain", o->mode);
	event_base_dispatch(be->base);
	rc = 0;
fail:
	while (be->conns)
		conn_free(be->conns);
	for (i = 0; i < 2; i++)
		if (sigs[i])
			event_free(sigs[i]);
	if (l)
		evconnlistener_free(l);
	return rc;
}

int main(int argc, char **argv)
{
	struct backend be;
	struct backend_opts o;
	char err[512] = "";
	size_t i;
	int rc = 1;

	memset(&be, 0, sizeof(be));
	if (backend_opts_parse(&o, argc, argv) < 0)
		return 2;
	if (backend_mode_parse(&be, o.mode) != 0) {
		fprintf(stderr, "gw_testbackend: bad --mode %s\n", o.mode);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	be.name = o.name;
	for (i = 0; i < sizeof(be.pattern); i++)
		be.pattern[i] = (unsigned char)(i % PATTERN_MOD);
	be.base = event_base_new();
	if (!be.base) {
		snprintf(err, sizeof(err), "event_base_new failed");
		goto fail;
	}
	if (!o.plain && !(be.ssl_ctx = backend_tls_new(o.cert, o.key, o.ca, err, sizeof(err))))
		goto fail;
	if (backend_run(&be, &o, err, sizeof(err)) == 0)
		rc = 0;
fail:
	if (rc != 0)
		fprintf(stderr, "gw_testbackend: %s\n", err);
	SSL_CTX_free(be.ssl_ctx);
	if (be.base)
		event_base_free(be.base);
	return rc;
}
