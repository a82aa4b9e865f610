/*
 * Unit tests of the llhttp glue (gateway/http.c): byte strings in, verdicts out. Each
 * smuggling shape must be refused (parser error or head check), each well-formed request
 * must parse with the right method, target, headers and framing.
 */
#include <string.h>

#include "cu.h"
#include "gw.h"

static const struct conf_limits limits = {
    .request_line = 256, .header_bytes = 1024, .header_count = 10, .body = 1 << 20};

struct parse_result {
	bool error;      /* parser or head check refused it */
	const char *why; /* reason token */
	bool head_done;
	size_t body_bytes;
	bool msg_done;
};

static int count_body(void *ud, const char *at, size_t len)
{
	*(size_t *)ud += len;
	return 0;
}

/* Feeds the whole string, continuing after the head pause, then applies the head checks. */
static struct parse_result parse(const char *req, size_t len)
{
	struct parse_result res = {0};
	struct gw_parser ps;
	gw_parser_init(&ps, HTTP_REQUEST, &limits);
	ps.ud = &res.body_bytes;
	ps.on_body = count_body;
	size_t off = 0;
	while (off <= len) {
		size_t used = 0;
		enum gw_feed f = gw_parser_feed(&ps, req + off, len - off, &used);
		off += used;
		if (f == GW_FEED_ERROR) {
			res.error = true;
			res.why = gw_parser_error(&ps);
			break;
		}
		if (ps.head_done && !res.head_done) {
			res.head_done = true;
			const char *why = gw_head_check_request(&ps.head);
			if (why) {
				res.error = true;
				res.why = why;
				break;
			}
		}
		if (f == GW_FEED_DONE) {
			res.msg_done = true;
			break;
		}
		if (f == GW_FEED_MORE && off == len)
			break;
	}
	gw_parser_free(&ps);
	return res;
}

#define S(x) x, sizeof(x) - 1

static const struct {
	const char *name;
	const char *req;
	size_t len;
} bad[] = {
    {"CL and TE", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: "
                    "chunked\r\n\r\n0\r\n\r\n")},
    {"TE and CL", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: "
                    "3\r\n\r\n0\r\n\r\n")},
    {"differing CL",
     S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd")},
    {"duplicate CL",
     S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc")},
    {"CL list", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc")},
    {"TE gzip", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n")},
    {"TE chunked not final",
     S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n")},
    {"TE gzip, chunked",
     S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n")},
    {"TE twice", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
                   "chunked\r\n\r\n0\r\n\r\n")},
    {"TE with space in name",
     S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n")},
    {"obs-fold", S("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n")},
    {"bare LF in header", S("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\nX-B: c\r\n\r\n")},
    {"bare CR in header", S("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rX-B: c\r\n\r\n")},
    {"NUL in header", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n", 38},
    {"space in header name", S("GET / HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n")},
    {"bad header name", S("GET / HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n")},
    {"fragment in target", S("GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n")},
    {"HTTP/0.9", S("GET /\r\n")},
    {"HTTP/2 preface", S("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")},
    {"HTTP/2.0 version", S("GET / HTTP/2.0\r\nHost: a\r\n\r\n")},
    {"CONNECT", S("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n")},
    {"Upgrade h2c", S("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, "
                      "HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAA\r\n\r\n")},
    {"missing Host", S("GET / HTTP/1.1\r\n\r\n")},
    {"two Hosts", S("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")},
    {"identity alias", S("GET / HTTP/1.1\r\nHost: a\r\nX_Client_Identity: admin\r\n\r\n")},
    {"identity alias mixed", S("GET / HTTP/1.1\r\nHost: a\r\nx-client_cn: admin\r\n\r\n")},
    {"chunk size junk",
     S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3x\r\nabc\r\n0\r\n\r\n")},
    {"too many headers", S("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: "
                           "1\r\nF: 1\r\nG: 1\r\nH: 1\r\nI: 1\r\nJ: 1\r\n\r\n")},
    {"space before colon", S("GET / HTTP/1.1\r\nHost : a\r\n\r\n")},
    {"chunked on HTTP/1.0", S("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")},
    {"negative CL", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n")},
    {"plus CL", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\na")},
};

static void test_smuggling_shapes_refused(void)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct parse_result r = parse(bad[i].req, bad[i].len);
		if (!r.error)
			fprintf(stderr, "\n  not refused: %s\n", bad[i].name);
		CU_ASSERT(r.error);
		CU_ASSERT(!r.msg_done || r.error);
	}
}

/* The request line limit counts while parsing: the head is refused before it ends. */
static void test_request_line_limit(void)
{
	char req[600];
	int n = snprintf(req, sizeof(req), "GET /%0300d HTTP/1.1\r\nHost: a\r\n\r\n", 0);
	struct parse_result r = parse(req, (size_t)n);
	CU_ASSERT(r.error);
	CU_ASSERT(r.why && strcmp(r.why, "request_line_too_long") == 0);
	n = snprintf(req, sizeof(req), "GET /%0200d HTTP/1.1\r\nHost: a\r\n\r\n", 0);
	r = parse(req, (size_t)n);
	CU_ASSERT(!r.error && r.msg_done);
}

/* The fuzz_http finding: an empty header name fed one byte at a time is refused too. */
static void test_empty_name_bytewise(void)
{
	static const char req[] =
	    "GET / HTTP/1.1\r\nHost: a\r\n: keep-alive, X-Foo\r\nX-A: 1\r\n\r\n";
	struct gw_parser ps;
	gw_parser_init(&ps, HTTP_REQUEST, &limits);
	enum gw_feed f = GW_FEED_MORE;
	for (size_t off = 0; off < sizeof(req) - 1 && f != GW_FEED_ERROR && f != GW_FEED_DONE;) {
		size_t used = 0;
		f = gw_parser_feed(&ps, req + off, 1, &used);
		off += used ? used : 1;
	}
	CU_ASSERT_EQUAL(f, GW_FEED_ERROR);
	CU_ASSERT_STRING_EQUAL(gw_parser_error(&ps), "empty_header_name");
	gw_parser_free(&ps);
}

/* obs-fold split exactly at a feed boundary is still caught (the feed ended with LF). */
static void test_obs_fold_across_feeds(void)
{
	static const char a[] = "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n", b[] = " c\r\n\r\n";
	struct gw_parser ps;
	gw_parser_init(&ps, HTTP_REQUEST, &limits);
	size_t used;
	CU_ASSERT_EQUAL(gw_parser_feed(&ps, a, sizeof(a) - 1, &used), GW_FEED_MORE);
	CU_ASSERT_EQUAL(gw_parser_feed(&ps, b, sizeof(b) - 1, &used), GW_FEED_ERROR);
	gw_parser_free(&ps);
	/* A value legitimately split between feeds is fine. */
	static const char c[] = "GET / HTTP/1.1\r\nHost: a\r\nX-A: b", d[] = " c\r\n\r\n";
	gw_parser_init(&ps, HTTP_REQUEST, &limits);
	CU_ASSERT_EQUAL(gw_parser_feed(&ps, c, sizeof(c) - 1, &used), GW_FEED_MORE);
	CU_ASSERT_EQUAL(gw_parser_feed(&ps, d, sizeof(d) - 1, &used), GW_FEED_DONE);
	const char *v;
	size_t vl;
	CU_ASSERT(gw_head_find(&ps.head, "x-a", &v, &vl) == 1 && vl == 3 &&
	          memcmp(v, "b c", 3) == 0);
	gw_parser_free(&ps);
}

static void test_valid_requests(void)
{
	struct parse_result r = parse(S("GET /a?b=c HTTP/1.1\r\nHost: a\r\n\r\n"));
	CU_ASSERT(!r.error);
	CU_ASSERT(r.head_done && r.msg_done);
	r = parse(S("POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"));
	CU_ASSERT(!r.error && r.msg_done);
	CU_ASSERT_EQUAL(r.body_bytes, 5);
	r = parse(S("POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
	            "chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"));
	CU_ASSERT(!r.error && r.msg_done);
	CU_ASSERT_EQUAL(r.body_bytes, 5);
	r = parse(S("GET / HTTP/1.0\r\n\r\n"));
	CU_ASSERT(!r.error && r.msg_done);
	r = parse(S("GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-B: c\r\n\r\n"));
	CU_ASSERT(!r.error && r.msg_done);
}

/* The head arena keeps header names and values apart even when they arrive split. */
static void test_head_collected_across_splits(void)
{
	static const char req[] =
	    "GET /path HTTP/1.1\r\nHost: example\r\nX-Long-Name: some value\r\n"
	    "X-Empty:\r\nAccept: */*\r\n\r\n";
	struct gw_parser ps;
	gw_parser_init(&ps, HTTP_REQUEST, &limits);
	size_t len = sizeof(req) - 1, off = 0;
	/* One byte at a time: every callback sees the smallest spans possible. */
	while (off < len && !ps.head_done) {
		size_t used = 0;
		enum gw_feed f = gw_parser_feed(&ps, req + off, 1, &used);
		CU_ASSERT_FATAL(f != GW_FEED_ERROR);
		off += used ? used : 1;
	}
	CU_ASSERT(ps.head_done);
	const char *v;
	size_t vl;
	CU_ASSERT_EQUAL(gw_head_find(&ps.head, "x-long-name", &v, &vl), 1);
	CU_ASSERT(vl == 10 && memcmp(v, "some value", 10) == 0);
	CU_ASSERT_EQUAL(gw_head_find(&ps.head, "x-empty", &v, &vl), 1);
	CU_ASSERT_EQUAL(vl, 0);
	CU_ASSERT_EQUAL(gw_head_find(&ps.head, "accept", &v, &vl), 1);
	CU_ASSERT(vl == 3 && memcmp(v, "*/*", 3) == 0);
	CU_ASSERT_EQUAL(ps.head.n_hdrs, 4);
	CU_ASSERT(ps.head.url_len == 5 &&
	          memcmp(gw_head_str(&ps.head, ps.head.url_off), "/path", 5) == 0);
	gw_parser_free(&ps);
}

/* Two pipelined requests: the parser stops after the first and resumes for the second. */
static void test_pipelined_stop_between_messages(void)
{
	static const char two[] =
	    "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
	struct gw_parser ps;
	gw_parser_init(&ps, HTTP_REQUEST, &limits);
	size_t used = 0;
	enum gw_feed f = gw_parser_feed(&ps, two, sizeof(two) - 1, &used);
	CU_ASSERT_EQUAL(f, GW_FEED_DONE);
	CU_ASSERT_EQUAL(used, 28);
	CU_ASSERT(memcmp(gw_head_str(&ps.head, ps.head.url_off), "/1", 2) == 0);
	gw_parser_reset(&ps);
	size_t used2 = 0;
	f = gw_parser_feed(&ps, two + used, sizeof(two) - 1 - used, &used2);
	CU_ASSERT_EQUAL(f, GW_FEED_DONE);
	CU_ASSERT_EQUAL(used + used2, sizeof(two) - 1);
	CU_ASSERT(memcmp(gw_head_str(&ps.head, ps.head.url_off), "/2", 2) == 0);
	gw_parser_free(&ps);
}

static void test_header_classes(void)
{
	CU_ASSERT(gw_header_is_identity("X-Client-Identity", 17));
	CU_ASSERT(gw_header_is_identity("x-forwarded-for", 15));
	CU_ASSERT(gw_header_is_identity("Forwarded", 9));
	CU_ASSERT(gw_header_is_identity("X-Request-Id", 12));
	CU_ASSERT(!gw_header_is_identity("X-Clientele", 11));
	CU_ASSERT(!gw_header_is_identity("Accept", 6));
	CU_ASSERT(gw_header_aliases_identity("X_Client_Cn", 11));
	CU_ASSERT(gw_header_aliases_identity("x_forwarded_for", 15));
	CU_ASSERT(!gw_header_aliases_identity("X_Custom", 8));
	CU_ASSERT(gw_header_is_hop_by_hop("Connection", 10, NULL));
	CU_ASSERT(gw_header_is_hop_by_hop("transfer-encoding", 17, NULL));
	CU_ASSERT(!gw_header_is_hop_by_hop("X-Foo", 5, NULL));
}

/* A header named in Connection is hop-by-hop for this message only. */
static void test_connection_listed_is_hop_by_hop(void)
{
	static const char req[] =
	    "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Foo\r\nX-Foo: 1\r\n\r\n";
	struct gw_parser ps;
	gw_parser_init(&ps, HTTP_REQUEST, &limits);
	size_t used;
	CU_ASSERT_EQUAL(gw_parser_feed(&ps, req, sizeof(req) - 1, &used), GW_FEED_DONE);
	CU_ASSERT(gw_header_is_hop_by_hop("x-foo", 5, &ps.head));
	CU_ASSERT(!gw_header_is_hop_by_hop("x-bar", 5, &ps.head));
	gw_parser_free(&ps);
}

/* Responses: no-body statuses complete at once; 1xx is a message of its own. */
static void test_responses(void)
{
	struct gw_parser ps;
	gw_parser_init(&ps, HTTP_RESPONSE, &limits);
	static const char r204[] = "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n";
	size_t used;
	CU_ASSERT_EQUAL(gw_parser_feed(&ps, r204, sizeof(r204) - 1, &used), GW_FEED_DONE);
	CU_ASSERT(ps.head_done);
	CU_ASSERT_EQUAL(ps.head.status, 204);
	gw_parser_reset(&ps);
	static const char r200[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
	CU_ASSERT_EQUAL(gw_parser_feed(&ps, r200, sizeof(r200) - 1, &used), GW_FEED_HEAD);
	CU_ASSERT(ps.head.has_clen && ps.head.clen == 3);
	size_t used2;
	CU_ASSERT_EQUAL(gw_parser_feed(&ps, r200 + used, sizeof(r200) - 1 - used, &used2),
	                GW_FEED_DONE);
	gw_parser_reset(&ps);
	ps.skip_body = true; /* answer to HEAD */
	CU_ASSERT_EQUAL(gw_parser_feed(&ps, r200, sizeof(r200) - 4, &used), GW_FEED_DONE);
	gw_parser_free(&ps);
}

CU_SUITE(gw_http, NULL, NULL, {"smuggling shapes refused", test_smuggling_shapes_refused},
         {"valid requests parse", test_valid_requests},
         {"request line limit", test_request_line_limit},
         {"obs-fold across feeds", test_obs_fold_across_feeds},
         {"empty header name byte by byte", test_empty_name_bytewise},
         {"head collected across splits", test_head_collected_across_splits},
         {"pipelined stop between messages", test_pipelined_stop_between_messages},
         {"header classes", test_header_classes},
         {"connection-listed header is hop-by-hop", test_connection_listed_is_hop_by_hop},
         {"responses", test_responses})
