/*
 * http.c: the llhttp glue. llhttp runs in strict mode (no lenient flags): it already
 * refuses obs-fold, bare CR/LF, invalid header names, CL+TE together, duplicate or bad
 * Content-Length and junk after chunk sizes. This file adds what a proxy must check on
 * top (limits while parsing, fragments, Upgrade, CONNECT, a Transfer-Encoding other than
 * exactly "chunked", identity header aliases) and collects the head into one arena.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gw.h"

static struct gw_parser *parser_of(llhttp_t *p)
{
	return (struct gw_parser *)((char *)p - offsetof(struct gw_parser, p));
}

/* Fails the parse with a reason the caller turns into a 400. */
static int parse_fail(struct gw_parser *ps, const char *why)
{
	if (!ps->head.error)
		ps->head.error = why;
	llhttp_set_error_reason(&ps->p, why);
	return HPE_USER;
}

/*
 * Grows the arena to hold need bytes, doubling from 1 KiB up to the limits. It starts
 * empty and is given back when a connection idles (gw_parser_trim): sizing it to the
 * limits up front cost 40 KiB of heap per idle connection. Heads are kept as offsets,
 * so moving the arena is safe between parser callbacks.
 */
static int head_reserve(struct gw_parser *ps, size_t need)
{
	struct gw_head *h = &ps->head;
	if (need > h->cap_max)
		return parse_fail(ps, "head_too_large");
	size_t cap = h->cap ? h->cap : 1024;
	while (cap < need)
		cap *= 2;
	if (cap > h->cap_max)
		cap = h->cap_max;
	char *nb = realloc(h->buf, cap);
	if (!nb)
		return parse_fail(ps, "out_of_memory");
	h->buf = nb;
	h->cap = (uint32_t)cap;
	return 0;
}

/* Appends span bytes to the arena; the arena never grows past the configured limits. */
static int head_append(struct gw_parser *ps, const char *at, size_t len)
{
	struct gw_head *h = &ps->head;
	if (len == 0)
		return 0;
	if (len > h->cap - h->len && head_reserve(ps, (size_t)h->len + len) != 0)
		return HPE_USER;
	memcpy(h->buf + h->len, at, len);
	h->len += (uint32_t)len;
	return 0;
}

static bool is_tchar(unsigned char ch)
{
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
		return true;
	return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static int on_message_begin(llhttp_t *p)
{
	struct gw_parser *ps = parser_of(p);
	struct gw_head *h = &ps->head;
	h->len = h->url_off = h->url_len = 0;
	h->n_hdrs = h->line_bytes = h->header_bytes = 0;
	h->in_value = h->chunked = h->has_clen = false;
	h->clen = 0;
	h->status = 0;
	h->error = NULL;
	ps->head_done = ps->msg_done = false;
	return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
	struct gw_parser *ps = parser_of(p);
	ps->head.line_bytes += (uint32_t)len;
	if (ps->head.line_bytes > ps->limits->request_line)
		return parse_fail(ps, "request_line_too_long");
	if (ps->head.url_len == 0)
		ps->head.url_off = ps->head.len;
	ps->head.url_len += (uint32_t)len;
	return head_append(ps, at, len);
}

static int on_status(llhttp_t *p, const char *at, size_t len)
{
	struct gw_parser *ps = parser_of(p);
	if (ps->head.url_len == 0)
		ps->head.url_off = ps->head.len;
	ps->head.url_len += (uint32_t)len;
	return head_append(ps, at, len);
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
	struct gw_parser *ps = parser_of(p);
	struct gw_head *h = &ps->head;
	h->header_bytes += (uint32_t)len;
	if (h->header_bytes > ps->limits->header_bytes)
		return parse_fail(ps, "headers_too_large");
	/* in_value: the previous field is complete, so this span starts a new header
	 * (a field may arrive in several spans, a value may arrive in none). */
	if (h->n_hdrs == 0 || h->in_value) {
		if (h->n_hdrs == h->max_hdrs)
			return parse_fail(ps, "too_many_headers");
		if (h->n_hdrs == h->hdrs_cap) {
			/* The table grows like the arena: 16 entries first, up to the limit. */
			uint32_t n = h->hdrs_cap ? h->hdrs_cap * 2 : 16;
			if (n > h->max_hdrs)
				n = h->max_hdrs;
			struct gw_hdr *nh = realloc(h->hdrs, n * sizeof(*nh));
			if (!nh)
				return parse_fail(ps, "out_of_memory");
			h->hdrs = nh;
			h->hdrs_cap = n;
		}
		struct gw_hdr *hd = &h->hdrs[h->n_hdrs++];
		hd->name_off = h->len;
		hd->name_len = 0;
		hd->val_off = 0;
		hd->val_len = 0;
		h->in_value = false;
	}
	/* RFC 9110 token characters only: llhttp 8 lets some through (e.g. a space inside
	 * the name), and a name the backend splits differently is a smuggling vector. */
	for (size_t i = 0; i < len; i++)
		if (!is_tchar((unsigned char)at[i]))
			return parse_fail(ps, "bad_header_name");
	h->hdrs[h->n_hdrs - 1].name_len += (uint32_t)len;
	return head_append(ps, at, len);
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
	struct gw_parser *ps = parser_of(p);
	struct gw_head *h = &ps->head;
	h->header_bytes += (uint32_t)len;
	if (h->header_bytes > ps->limits->header_bytes)
		return parse_fail(ps, "headers_too_large");
	if (h->n_hdrs == 0)
		return parse_fail(ps, "empty_header_name");
	struct gw_hdr *hd = &h->hdrs[h->n_hdrs - 1];
	if (hd->val_len == 0) {
		hd->val_off = h->len; /* a value never starts at 0: its name precedes it */
	} else if (at != ps->feed_start || ps->feed_after_lf) {
		/* llhttp strict mode accepts obs-fold and hands the continuation over as a
		 * second span of the same value, with the CRLF removed. A legitimate value
		 * is split only where a feed ends, and never right after a line feed. */
		return parse_fail(ps, "obs_fold");
	}
	/* llhttp strict mode already refuses these, but a NUL or bare CR/LF reaching a
	 * backend is a smuggling primitive, so the proxy does not rely on one layer. */
	for (size_t i = 0; i < len; i++)
		if (at[i] == '\0' || at[i] == '\r' || at[i] == '\n')
			return parse_fail(ps, "bad_header_value");
	hd->val_len += (uint32_t)len;
	return head_append(ps, at, len);
}

/*
 * llhttp 8.1 accepts a line ": value" with an empty field name (found by fuzz_http): no
 * field span at all, or an empty one at a feed boundary. Such a line would reach the
 * backend as a header with no name, so it is refused here.
 */
static int on_header_field_complete(llhttp_t *p)
{
	struct gw_parser *ps = parser_of(p);
	struct gw_head *h = &ps->head;
	if (h->in_value || h->n_hdrs == 0 || h->hdrs[h->n_hdrs - 1].name_len == 0)
		return parse_fail(ps, "empty_header_name");
	h->in_value = true;
	return 0;
}

static int on_headers_complete(llhttp_t *p)
{
	struct gw_parser *ps = parser_of(p);
	struct gw_head *h = &ps->head;
	h->method = (uint8_t)llhttp_get_method(p);
	h->http_major = llhttp_get_http_major(p);
	h->http_minor = llhttp_get_http_minor(p);
	h->status = (uint16_t)llhttp_get_status_code(p);
	h->chunked = (p->flags & F_CHUNKED) != 0;
	h->has_clen = (p->flags & F_CONTENT_LENGTH) != 0;
	h->clen = h->has_clen ? p->content_length : 0;
	ps->head_done = true;
	/* A response to HEAD has no body whatever its headers say: 1 tells llhttp so, and
	 * the message completes at once. Otherwise pause, so the caller routes and
	 * authorises before any body byte is consumed. */
	if (ps->skip_body)
		return 1;
	/* A request without a body completes right here; letting llhttp run on to
	 * on_message_complete (which pauses) avoids a second, empty feed. */
	if (p->type == HTTP_REQUEST && !h->chunked && h->clen == 0)
		return 0;
	/* Likewise for responses that cannot have a body (1xx, 204, 304, length 0). */
	if (p->type == HTTP_RESPONSE && (h->status < 200 || h->status == 204 || h->status == 304 ||
	                                 (h->has_clen && h->clen == 0)))
		return 0;
	return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
	struct gw_parser *ps = parser_of(p);
	if (ps->on_body && ps->on_body(ps->ud, at, len) != 0)
		return parse_fail(ps, "body_rejected");
	return 0;
}

static int on_message_complete(llhttp_t *p)
{
	struct gw_parser *ps = parser_of(p);
	ps->msg_done = true;
	/* Stop after one message: pipelined requests wait until this one is answered. */
	return HPE_PAUSED;
}

static const llhttp_settings_t gw_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_field_complete = on_header_field_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/*
 * Prepares a parser. It cannot fail: the arena is allocated as the head arrives.
 * The limits are borrowed and must outlive the parser (they live in the generation).
 */
void gw_parser_init(struct gw_parser *ps, llhttp_type_t type, const struct conf_limits *lim)
{
	memset(ps, 0, sizeof(*ps));
	ps->limits = lim;
	ps->head.cap_max = lim->request_line + lim->header_bytes + 64;
	ps->head.max_hdrs = lim->header_count;
	llhttp_init(&ps->p, type, &gw_settings);
}

/* Between messages only: the arena and header table go until the next head arrives. */
void gw_parser_trim(struct gw_parser *ps)
{
	gw_parser_free(ps);
	ps->head.cap = ps->head.len = 0;
	ps->head.hdrs_cap = ps->head.n_hdrs = 0;
}

/* Resumes after a paused message so the next pipelined message can be parsed. */
void gw_parser_reset(struct gw_parser *ps)
{
	if (llhttp_get_errno(&ps->p) == HPE_PAUSED)
		llhttp_resume(&ps->p);
	ps->head_done = ps->msg_done = false;
}

void gw_parser_free(struct gw_parser *ps)
{
	free(ps->head.buf);
	free(ps->head.hdrs);
	ps->head.buf = NULL;
	ps->head.hdrs = NULL;
}

/*
 * A stable token for the audit log: ours when we refused, else llhttp's error name
 * ("HPE_UNEXPECTED_CONTENT_LENGTH" becomes "unexpected_content_length"). llhttp's
 * human-readable reason goes to the operational log through gw_parser_error_text().
 */
const char *gw_parser_error(struct gw_parser *ps)
{
	if (ps->head.error)
		return ps->head.error;
	const char *name = llhttp_errno_name(llhttp_get_errno(&ps->p));
	if (strncmp(name, "HPE_", 4) == 0)
		name += 4;
	size_t i = 0;
	for (; i < sizeof(ps->err_token) - 1 && name[i]; i++)
		ps->err_token[i] = (char)tolower((unsigned char)name[i]);
	ps->err_token[i] = '\0';
	return ps->err_token;
}

const char *gw_parser_error_text(const struct gw_parser *ps)
{
	const char *r = llhttp_get_error_reason(&ps->p);
	return r ? r : "";
}

/*
 * Feeds bytes; *used tells how many were consumed. Returns GW_FEED_HEAD when parsing
 * stopped right after the head (body not yet consumed), GW_FEED_DONE at the end of a
 * message (the head may have completed in the same call: check head_done), GW_FEED_MORE
 * when all bytes were consumed, GW_FEED_ERROR on any protocol error.
 */
enum gw_feed gw_parser_feed(struct gw_parser *ps, const char *data, size_t len, size_t *used)
{
	if (llhttp_get_errno(&ps->p) == HPE_PAUSED)
		llhttp_resume(&ps->p);
	ps->feed_start = data;
	llhttp_errno_t e = llhttp_execute(&ps->p, data, len);
	/* llhttp takes "GET /\r\n" as an HTTP/0.9 request and waits for more; refuse it
	 * at once instead of waiting for the header timeout. */
	if (ps->p.type == HTTP_REQUEST && ps->p.http_major == 0 && ps->p.http_minor == 9) {
		*used = 0;
		if (!ps->head.error)
			ps->head.error = "http09";
		return GW_FEED_ERROR;
	}
	if (e == HPE_OK || e == HPE_PAUSED) {
		size_t n = e == HPE_OK ? len : (size_t)(llhttp_get_error_pos(&ps->p) - data);
		ps->feed_after_lf = n > 0 && data[n - 1] == '\n';
	}
	if (e == HPE_OK) {
		*used = len;
		return GW_FEED_MORE;
	}
	if (e == HPE_PAUSED) {
		*used = (size_t)(llhttp_get_error_pos(&ps->p) - data);
		return ps->msg_done ? GW_FEED_DONE : GW_FEED_HEAD;
	}
	/* Upgrade and CONNECT surface as "paused upgrade": we never switch protocols. */
	*used = 0;
	if (e == HPE_PAUSED_UPGRADE && !ps->head.error)
		ps->head.error = "upgrade_not_supported";
	if (e == HPE_PAUSED_H2_UPGRADE && !ps->head.error)
		ps->head.error = "http2_preface";
	return GW_FEED_ERROR;
}

unsigned gw_head_find(const struct gw_head *h, const char *name, const char **val, size_t *len)
{
	size_t nl = strlen(name);
	unsigned n = 0;
	for (uint32_t i = 0; i < h->n_hdrs; i++) {
		const struct gw_hdr *hd = &h->hdrs[i];
		if (hd->name_len != nl || strncasecmp(h->buf + hd->name_off, name, nl) != 0)
			continue;
		if (n++ == 0) {
			*val = h->buf + hd->val_off;
			*len = hd->val_len;
		}
	}
	return n;
}

/* Trims optional whitespace around a header value span. */
static void ows_trim(const char **v, size_t *len)
{
	while (*len && (**v == ' ' || **v == '\t')) {
		(*v)++;
		(*len)--;
	}
	while (*len && ((*v)[*len - 1] == ' ' || (*v)[*len - 1] == '\t'))
		(*len)--;
}

static bool span_ieq(const char *a, size_t alen, const char *b)
{
	return alen == strlen(b) && strncasecmp(a, b, alen) == 0;
}

/* Why each shape is refused is the smuggling or confusion attack it enables. */
const char *gw_head_check_request(const struct gw_head *h)
{
	const char *v;
	size_t vl;
	if (h->http_major != 1 || h->http_minor > 1)
		return "bad_http_version";
	if (h->method == HTTP_CONNECT)
		return "connect_not_supported";
	if (h->method == HTTP_PRI)
		return "http2_preface";
	if (gw_head_find(h, "upgrade", &v, &vl))
		return "upgrade_not_supported";
	unsigned n_te = gw_head_find(h, "transfer-encoding", &v, &vl);
	if (n_te > 1)
		return "duplicate_transfer_encoding";
	if (n_te == 1) {
		ows_trim(&v, &vl);
		/* Anything but exactly "chunked" (gzip, "chunked, identity", ...) is a
		 * framing the backend might read differently from us. */
		if (!span_ieq(v, vl, "chunked"))
			return "bad_transfer_encoding";
		if (h->http_minor == 0)
			return "chunked_on_http10";
	}
	unsigned n_cl = gw_head_find(h, "content-length", &v, &vl);
	if (n_cl > 1)
		return "duplicate_content_length";
	if (n_cl && n_te)
		return "content_length_with_transfer_encoding";
	unsigned n_host = gw_head_find(h, "host", &v, &vl);
	if (n_host > 1)
		return "duplicate_host";
	if (n_host == 0 && h->http_minor == 1)
		return "missing_host";
	for (uint32_t i = 0; i < h->n_hdrs; i++) {
		const char *name = h->buf + h->hdrs[i].name_off;
		if (gw_header_aliases_identity(name, h->hdrs[i].name_len))
			return "identity_header_alias";
	}
	if (memchr(h->buf + h->url_off, '#', h->url_len))
		return "fragment_in_target";
	return NULL;
}

/* True if the Connection header lists this name (it is then hop-by-hop too). */
static bool connection_lists(const struct gw_head *h, const char *name, size_t len)
{
	for (uint32_t i = 0; i < h->n_hdrs; i++) {
		const struct gw_hdr *hd = &h->hdrs[i];
		if (!span_ieq(h->buf + hd->name_off, hd->name_len, "connection"))
			continue;
		const char *v = h->buf + hd->val_off, *end = v + hd->val_len;
		while (v < end) {
			const char *comma = memchr(v, ',', (size_t)(end - v));
			const char *tok_end = comma ? comma : end;
			const char *t = v;
			size_t tl = (size_t)(tok_end - v);
			ows_trim(&t, &tl);
			if (tl == len && strncasecmp(t, name, len) == 0)
				return true;
			v = comma ? comma + 1 : end;
		}
	}
	return false;
}

bool gw_header_is_hop_by_hop(const char *name, size_t len, const struct gw_head *h)
{
	static const char *const hop[] = {"connection",
	                                  "keep-alive",
	                                  "proxy-connection",
	                                  "te",
	                                  "trailer",
	                                  "transfer-encoding",
	                                  "upgrade",
	                                  "proxy-authorization",
	                                  "proxy-authenticate",
	                                  "expect",
	                                  "content-length"};
	for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
		if (span_ieq(name, len, hop[i]))
			return true;
	/* The proxy sets the framing itself (content-length is re-added when known). */
	return h && connection_lists(h, name, len);
}

/*
 * Headers that carry what the gateway verified (or that backends commonly trust as
 * such): a client must never be able to supply them, so they are always stripped and
 * replaced by the gateway's own values.
 */
bool gw_header_is_identity(const char *name, size_t len)
{
	static const char *const prefixes[] = {"x-client-", "x-forwarded-", "x-gateway-", "x-ssl-",
	                                       "x-remote-"};
	static const char *const exact[] = {"forwarded", "x-real-ip", "x-request-id",
	                                    "x-forwarded-client-cert", "ssl-client-cert"};
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		size_t pl = strlen(prefixes[i]);
		if (len >= pl && strncasecmp(name, prefixes[i], pl) == 0)
			return true;
	}
	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
		if (span_ieq(name, len, exact[i]))
			return true;
	return false;
}

/*
 * CGI-style servers (and nginx/PHP, Django's META) map '_' and '-' to the same name, so
 * "X_Client_Identity" would arrive as the identity header we set. Such names are
 * refused outright rather than stripped, so the client learns the request is wrong.
 */
bool gw_header_aliases_identity(const char *name, size_t len)
{
	if (!memchr(name, '_', len) || len > 128)
		return false;
	char tmp[128];
	for (size_t i = 0; i < len; i++)
		tmp[i] = name[i] == '_' ? '-' : name[i];
	return gw_header_is_identity(tmp, len);
}
