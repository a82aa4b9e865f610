/*
 * fuzz_http: the llhttp glue of gateway/http.c (gw_parser_* and the head checks) on
 * arbitrary bytes, fed the way conn.c feeds it: in pieces as they "arrive", resuming
 * after the head pause, and parsing pipelined messages one after the other.
 *
 * The first input byte picks the run's shape (the rest is the stream):
 *   bit 0     parse responses (the upstream side) instead of requests
 *   bits 1-4  arrival size: 0 = everything at once, else N bytes per arrival
 *   bit 5     tight limits (exercises every limit path) instead of the defaults
 *   bit 6     responses only: the request was HEAD (no body whatever the headers say)
 *
 * Checked on every parsed head: all offsets inside the arena, header names are tokens,
 * values carry no CR, LF or NUL, and a head the checks accept has one framing only.

 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "gw.h"

#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond))                                                                       \
			__builtin_trap();                                                          \
	} while (0)

static const struct conf_limits limits_default = {
    .request_line = 8192, .header_bytes = 32768, .header_count = 100, .body = 1 << 20};
static const struct conf_limits limits_tight = {
    .request_line = 64, .header_bytes = 1024, .header_count = 4, .body = 64};

struct fuzz_run {
	uint64_t body_bytes;
};

static int count_body(void *ud, const char *at, size_t len)
{
	struct fuzz_run *run = ud;
	FUZZ_CHECK(len > 0);
	/* Touch every byte: ASan then proves the span lies in the fed input. */
	volatile char sink = 0;
	for (size_t i = 0; i < len; i++)
		sink ^= at[i];
	(void)sink;
	run->body_bytes += len;
	return 0;
}

static bool is_tchar(unsigned char ch)
{
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
		return true;
	return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* The arena invariants, then every header through the classification helpers. */
static void check_head(const struct gw_head *h, bool request)
{
	FUZZ_CHECK(h->len <= h->cap && h->cap <= h->cap_max && h->n_hdrs <= h->hdrs_cap &&
	           h->hdrs_cap <= h->max_hdrs);
	FUZZ_CHECK((uint64_t)h->url_off + h->url_len <= h->len);
	for (uint32_t i = 0; i < h->n_hdrs; i++) {
		const struct gw_hdr *hd = &h->hdrs[i];
		FUZZ_CHECK((uint64_t)hd->name_off + hd->name_len <= h->len);
		FUZZ_CHECK((uint64_t)hd->val_off + hd->val_len <= h->len);
		FUZZ_CHECK(hd->name_len > 0);
		const char *name = h->buf + hd->name_off, *val = h->buf + hd->val_off;
		for (uint32_t j = 0; j < hd->name_len; j++)
			FUZZ_CHECK(is_tchar((unsigned char)name[j]));
		for (uint32_t j = 0; j < hd->val_len; j++)
			FUZZ_CHECK(val[j] != '\0' && val[j] != '\r' && val[j] != '\n');
		(void)gw_header_is_hop_by_hop(name, hd->name_len, h);
		(void)gw_header_is_identity(name, hd->name_len);
		(void)gw_header_aliases_identity(name, hd->name_len);
	}
	const char *v;
	size_t vl;
	(void)gw_head_find(h, "host", &v, &vl);
	if (!request)
		return;
	const char *why = gw_head_check_request(h);
	if (why)
		return;
	/* Accepted: exactly one framing, HTTP/1.x, no Upgrade (the smuggling shapes). */
	FUZZ_CHECK(h->http_major == 1 && h->http_minor <= 1);
	FUZZ_CHECK(!(h->chunked && h->has_clen));
	FUZZ_CHECK(gw_head_find(h, "upgrade", &v, &vl) == 0);
	FUZZ_CHECK(gw_head_find(h, "transfer-encoding", &v, &vl) <= 1);
	FUZZ_CHECK(gw_head_find(h, "content-length", &v, &vl) <= 1);
}

/* Runs the stream through one parser; returns when it is used up or refused. */
static void run_stream(struct gw_parser *ps, const char *data, size_t size, size_t step,
                       bool request)
{
	struct fuzz_run run = {0};
	size_t off = 0, avail = step ? (step < size ? step : size) : size;
	bool head_seen = false;
	ps->ud = &run;
	ps->on_body = count_body;
	/* Each round consumes bytes, delivers more, or finishes a message: bounded. */
	for (size_t rounds = 0; rounds < 4 * size + 16; rounds++) {
		size_t used = 0;
		enum gw_feed f = gw_parser_feed(ps, data + off, avail - off, &used);
		FUZZ_CHECK(used <= avail - off);
		off += used;
		if (f == GW_FEED_ERROR) {
			FUZZ_CHECK(gw_parser_error(ps) != NULL);
			(void)gw_parser_error_text(ps);
			return;
		}
		if (ps->head_done && !head_seen) {
			head_seen = true;
			check_head(&ps->head, request);
		}
		if (f == GW_FEED_DONE) {
			const struct gw_head *h = &ps->head;
			/* Only for heads the gateway accepts: llhttp completes a CONNECT at
			 * its head whatever Content-Length says (the check refuses CONNECT). */
			if (request && h->has_clen && !h->chunked && !gw_head_check_request(h))
				FUZZ_CHECK(run.body_bytes == h->clen);
			if (ps->skip_body)
				FUZZ_CHECK(run.body_bytes == 0);
			run.body_bytes = 0;
			head_seen = false;
			gw_parser_reset(ps);
			continue;
		}
		if (f == GW_FEED_MORE && off == avail) {
			if (avail == size)
				return;
			avail = step && avail + step < size ? avail + step : size;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	bool request = !(mode & 1);
	size_t step = (mode >> 1) & 0xf;
	const struct conf_limits *lim = (mode & 0x20) ? &limits_tight : &limits_default;
	struct gw_parser ps;
	gw_parser_init(&ps, request ? HTTP_REQUEST : HTTP_RESPONSE, lim);
	ps.skip_body = !request && (mode & 0x40);
	run_stream(&ps, (const char *)data + 1, size - 1, step, request);
	gw_parser_free(&ps);
	return 0;
}
