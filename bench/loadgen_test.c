/* Unit tests of gw_loadgen's pure parts: histogram, URL split, durations, options. */
#include <string.h>

#include "cu.h"
#include "loadgen.h"

static void test_hist_exact_small(void)
{
	struct lg_hist *h = lg_hist_new();
	CU_ASSERT_FATAL(h != NULL);
	for (uint64_t v = 1; v <= 1000; v++)
		lg_hist_record(h, v);
	CU_ASSERT_EQUAL(h->total, 1000);
	CU_ASSERT_EQUAL(h->min, 1);
	CU_ASSERT_EQUAL(h->max, 1000);
	CU_ASSERT_EQUAL(lg_hist_percentile(h, 50), 500);
	CU_ASSERT_EQUAL(lg_hist_percentile(h, 90), 900);
	CU_ASSERT_EQUAL(lg_hist_percentile(h, 99.9), 999);
	CU_ASSERT_EQUAL(lg_hist_percentile(h, 100), 1000);
	CU_ASSERT_DOUBLE_EQUAL(lg_hist_mean(h), 500.5, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(lg_hist_stdev(h), 288.82, 0.01);
	lg_hist_free(h);
}

/* Every value, however large, comes back within the promised 0.1% relative error. */
static void test_hist_relative_error(void)
{
	static const uint64_t vals[] = {
	    2047,   2048,    2049,       4095,           4096,           123456,
	    999999, 1000000, 1234567891, 59999999999ull, 60000000000ull, LG_HIST_MAX_NS - 1};
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		struct lg_hist *h = lg_hist_new();
		CU_ASSERT_FATAL(h != NULL);
		lg_hist_record(h, vals[i]);
		lg_hist_record(h, vals[i] * 2 < LG_HIST_MAX_NS ? vals[i] * 2 : vals[i]);
		uint64_t p = lg_hist_percentile(h, 50);
		CU_ASSERT(p >= vals[i]);
		CU_ASSERT((double)(p - vals[i]) <= (double)vals[i] / 1000.0);
		lg_hist_free(h);
	}
}

static void test_hist_clamp_merge_reset(void)
{
	struct lg_hist *a = lg_hist_new(), *b = lg_hist_new();
	CU_ASSERT_FATAL(a && b);
	lg_hist_record(a, 100);
	lg_hist_record(b, LG_HIST_MAX_NS * 4);
	CU_ASSERT_EQUAL(b->clamped, 1);
	CU_ASSERT_EQUAL(b->max, LG_HIST_MAX_NS * 4); /* the exact max survives clamping */
	lg_hist_merge(a, b);
	CU_ASSERT_EQUAL(a->total, 2);
	CU_ASSERT_EQUAL(a->min, 100);
	CU_ASSERT_EQUAL(lg_hist_percentile(a, 50), 100);
	CU_ASSERT(lg_hist_percentile(a, 99) >= LG_HIST_MAX_NS - LG_HIST_MAX_NS / 1000);
	lg_hist_reset(a);
	CU_ASSERT_EQUAL(a->total, 0);
	CU_ASSERT_EQUAL(lg_hist_percentile(a, 50), 0);
	lg_hist_free(a);
	lg_hist_free(b);
}

static void test_url_split(void)
{
	static const struct {
		const char *url;
		int rc;
		const char *host, *port, *path;
	} cases[] = {
	    {"https://127.0.0.1:8443/path?q=1", 0, "127.0.0.1", "8443", "/path?q=1"},
	    {"https://gw.example", 0, "gw.example", "443", ""},
	    {"HTTPS://h:1/", 0, "h", "1", "/"},
	    {"https://[::1]:8443/x", 0, "::1", "8443", "/x"},
	    {"https://[::1]/x", 0, "::1", "443", "/x"},
	    {"http://127.0.0.1/", -1, NULL, NULL, NULL},
	    {"https://:8443/", -1, NULL, NULL, NULL},
	    {"https://h:/", -1, NULL, NULL, NULL},
	    {"https://h:99999/", -1, NULL, NULL, NULL},
	    {"https://h:0/", -1, NULL, NULL, NULL},
	    {"https://h:12a/", -1, NULL, NULL, NULL},
	    {"https://[::1/", -1, NULL, NULL, NULL},
	    {"https://[::1]x/", -1, NULL, NULL, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char host[64] = "", port[8] = "", err[128] = "";
		const char *path = NULL;
		int rc = lg_url_split(cases[i].url, host, sizeof(host), port, sizeof(port), &path,
		                      err, sizeof(err));
		CU_ASSERT_EQUAL(rc, cases[i].rc);
		if (rc != 0 || cases[i].rc != 0) {
			CU_ASSERT(rc == 0 || err[0] != '\0');
			continue;
		}
		CU_ASSERT_STRING_EQUAL(host, cases[i].host);
		CU_ASSERT_STRING_EQUAL(port, cases[i].port);
		CU_ASSERT_STRING_EQUAL(path, cases[i].path);
	}
}

static void test_seconds_parse(void)
{
	static const struct {
		const char *in;
		int rc;
		double want;
	} cases[] = {
	    {"10", 0, 10}, {"1.5", 0, 1.5}, {"250ms", 0, 0.25}, {"2m", 0, 120}, {"3s", 0, 3},
	    {"", -1, 0},   {"-1", -1, 0},   {"5x", -1, 0},      {"nan", -1, 0}, {"s", -1, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		double v = -7;
		CU_ASSERT_EQUAL(lg_seconds_parse(cases[i].in, &v), cases[i].rc);
		if (cases[i].rc == 0)
			CU_ASSERT_DOUBLE_EQUAL(v, cases[i].want, 1e-12);
	}
}

/* Options: the request is formatted once, exactly, and bad combinations are refused. */
static void test_opts_request(void)
{
	char *argv[] = {"gw_loadgen",
	                "--url",
	                "https://127.0.0.1:8443/a",
	                "-H",
	                "Authorization: Bearer t",
	                "--new-conn",
	                "-m",
	                "POST",
	                "--body-size",
	                "3",
	                NULL};
	char err[256];
	struct lg_opts *o = lg_opts_new(10, argv, err, sizeof(err));
	CU_ASSERT_FATAL(o != NULL);
	const char *want = "POST /a HTTP/1.1\r\nHost: 127.0.0.1:8443\r\nUser-Agent: gw_loadgen\r\n"
	                   "Authorization: Bearer t\r\nContent-Length: 3\r\nConnection: close\r\n"
	                   "\r\nxxx";
	CU_ASSERT_EQUAL(o->request_len, strlen(want));
	CU_ASSERT(o->request && memcmp(o->request, want, strlen(want)) == 0);
	CU_ASSERT_EQUAL(o->conns, 8);
	CU_ASSERT_DOUBLE_EQUAL(o->duration, 10, 1e-12);
	CU_ASSERT(o->host_is_ip);
	lg_opts_free(o);
}

static void test_opts_refused(void)
{
	static const char *const bad[][6] = {
	    {"--url", "https://127.0.0.1/", "-t", "4", "-c", "2"},
	    {"--url", "https://127.0.0.1/", "-H", "NoColon", NULL},
	    {"--url", "https://127.0.0.1/", "-H", "X: a\r\nY: b", NULL},
	    {"--url", "https://127.0.0.1/", "--ca", "x", "--insecure", NULL},
	    {"--url", "https://127.0.0.1/", "--key", "k", NULL},
	    {"--url", "https://127.0.0.1/", "--rate", "0", NULL},
	    {"--url", "https://127.0.0.1/", "-n", "0", NULL},
	    {"--url", "https://127.0.0.1/", "-d", "0", NULL},
	    {"--url", "https://127.0.0.1/", "--bogus", NULL},
	    {"-c", "2", NULL},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *argv[8] = {"gw_loadgen"};
		int argc = 1;
		for (size_t j = 0; j < 6 && bad[i][j]; j++)
			argv[argc++] = (char *)bad[i][j];
		char err[256] = "";
		struct lg_opts *o = lg_opts_new(argc, argv, err, sizeof(err));
		CU_ASSERT_PTR_NULL(o);
		CU_ASSERT(err[0] != '\0');
		lg_opts_free(o);
	}
}

CU_SUITE(loadgen, NULL, NULL, {"hist_exact_small", test_hist_exact_small},
         {"hist_relative_error", test_hist_relative_error},
         {"hist_clamp_merge_reset", test_hist_clamp_merge_reset}, {"url_split", test_url_split},
         {"seconds_parse", test_seconds_parse}, {"opts_request", test_opts_request},
         {"opts_refused", test_opts_refused})
