/*
 * Path normalisation against hostile encodings: a table of known tricks with the exact
 * expected status and output, then a randomised property test that builds paths from
 * the same hostile pieces and checks idempotence and that nothing escapes "/public".
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cu.h"
#include "policy.h"

struct norm_case {
	const char *in;
	enum policy_path_status st;
	const char *out; /* expected output when st is OK */
};

static const struct norm_case norm_cases[] = {
    {"/", POLICY_PATH_OK, "/"},
    {"/a/./b", POLICY_PATH_OK, "/a/b"},
    {"/a/../b", POLICY_PATH_OK, "/b"},
    {"/public/../admin", POLICY_PATH_OK, "/admin"},
    {"/public/%2e%2e/admin", POLICY_PATH_OK, "/admin"},
    {"/public/%2E%2E/admin", POLICY_PATH_OK, "/admin"},
    {"/public/.%2e/admin", POLICY_PATH_OK, "/admin"},
    {"/public/%2e/admin", POLICY_PATH_OK, "/public/admin"},
    {"/public%2fadmin", POLICY_PATH_ENCODED_SLASH, NULL},
    {"/public%2Fadmin", POLICY_PATH_ENCODED_SLASH, NULL},
    {"/public%5cadmin", POLICY_PATH_ENCODED_SLASH, NULL},
    {"/public%5Cadmin", POLICY_PATH_ENCODED_SLASH, NULL},
    {"//admin", POLICY_PATH_OK, "/admin"},
    {"/a//b/", POLICY_PATH_OK, "/a/b/"},
    {"///", POLICY_PATH_OK, "/"},
    {"/..", POLICY_PATH_ABOVE_ROOT, NULL},
    {"/a/../../b", POLICY_PATH_ABOVE_ROOT, NULL},
    {"/%2e%2e/x", POLICY_PATH_ABOVE_ROOT, NULL},
    /*
     * Double encoding stays literal: "%25" is a kept escape and the "2e" after it is two
     * plain characters, so it is not a dot segment and its case is not touched (the
     * letters are data, upper-casing them would change the path).
     */
    {"/%252e%252e/x", POLICY_PATH_OK, "/%252e%252e/x"},
    {"/a\\b", POLICY_PATH_BACKSLASH, NULL},
    {"/a%00", POLICY_PATH_NUL, NULL},
    {"/a/..;/b", POLICY_PATH_DOT_PARAM, NULL},
    {"/a/.;x/b", POLICY_PATH_DOT_PARAM, NULL},
    {"/a/%2e;x/b", POLICY_PATH_DOT_PARAM, NULL},
    /*
     * Any raw ';' is refused: servlet-style backends drop ";x" from a segment, so
     * "/admin;x" would be judged as itself but served as "/admin".
     */
    {"/a;x/b", POLICY_PATH_SEMICOLON, NULL},
    {"/admin;x", POLICY_PATH_SEMICOLON, NULL},
    {"/admin;", POLICY_PATH_SEMICOLON, NULL},
    {"/a/;x", POLICY_PATH_SEMICOLON, NULL},
    {"/a/b;jsessionid=1/", POLICY_PATH_SEMICOLON, NULL},
    {"/a/x;/../b", POLICY_PATH_SEMICOLON, NULL},
    {"/a/...;x", POLICY_PATH_SEMICOLON, NULL},
    /* Encoded, ';' is data for every backend: it stays "%3B" and is allowed. */
    {"/admin%3bx/b", POLICY_PATH_OK, "/admin%3Bx/b"},
    {"/a/%2e%3bx", POLICY_PATH_OK, "/a/.%3Bx"},
    {"/a/..x/b", POLICY_PATH_OK, "/a/..x/b"},
    {"/a/.../b", POLICY_PATH_OK, "/a/.../b"},
    {"/%c0%ae%c0%ae/x", POLICY_PATH_BAD_UTF8, NULL},
    {"/%e0%80%ae", POLICY_PATH_BAD_UTF8, NULL},    /* overlong 3-byte '.' */
    {"/%ed%a0%80", POLICY_PATH_BAD_UTF8, NULL},    /* surrogate */
    {"/%f4%90%80%80", POLICY_PATH_BAD_UTF8, NULL}, /* above U+10FFFF */
    {"/%e2%82", POLICY_PATH_BAD_UTF8, NULL},       /* truncated */
    {"/%e2%82/%ac", POLICY_PATH_BAD_UTF8, NULL},   /* split by a slash */
    {"/%e2a%82%ac", POLICY_PATH_BAD_UTF8, NULL},   /* raw byte inside a sequence */
    {"/%e2%82%ac", POLICY_PATH_OK, "/%E2%82%AC"},
    {"/%c3%a9t%C3%A9", POLICY_PATH_OK, "/%C3%A9t%C3%A9"},
    {"/%41b", POLICY_PATH_OK, "/Ab"},
    {"/a%7e", POLICY_PATH_OK, "/a~"},
    {"/a%2d%2E%5f%30", POLICY_PATH_OK, "/a-._0"},
    {"/a%3b", POLICY_PATH_OK, "/a%3B"}, /* reserved: the escape keeps its meaning */
    {"/a%25", POLICY_PATH_OK, "/a%25"},
    {"/a%22b", POLICY_PATH_OK, "/a%22b"},
    {"/a\"b", POLICY_PATH_OK, "/a%22b"}, /* not allowed raw: one spelling with %22 */
    {"/a|b{c}", POLICY_PATH_OK, "/a%7Cb%7Bc%7D"},
    {"/a:b@c!$&'()*+,=", POLICY_PATH_OK, "/a:b@c!$&'()*+,="},
    {"/a b", POLICY_PATH_BAD_CHAR, NULL},
    {"/a#b", POLICY_PATH_BAD_CHAR, NULL},
    {"/a?b", POLICY_PATH_BAD_CHAR, NULL},
    {"/a\tb", POLICY_PATH_BAD_CHAR, NULL},
    {"/a\x7f", POLICY_PATH_BAD_CHAR, NULL},
    {"/caf\xc3\xa9", POLICY_PATH_BAD_CHAR, NULL},
    {"a/b", POLICY_PATH_EMPTY, NULL},
    {"", POLICY_PATH_EMPTY, NULL},
    {"%2fa", POLICY_PATH_EMPTY, NULL},
    {"/%zz", POLICY_PATH_BAD_ESCAPE, NULL},
    {"/%2", POLICY_PATH_BAD_ESCAPE, NULL},
    {"/%", POLICY_PATH_BAD_ESCAPE, NULL},
    {"/a%g1", POLICY_PATH_BAD_ESCAPE, NULL},
    {"/.", POLICY_PATH_OK, "/"},
    {"/a/.", POLICY_PATH_OK, "/a/"},
    {"/a/..", POLICY_PATH_OK, "/"},
    {"/a/b/..", POLICY_PATH_OK, "/a/"},
    {"/a/b/%2E%2e", POLICY_PATH_OK, "/a/"},
};

static void test_norm_table(void)
{
	char out[256], again[256];

	for (size_t i = 0; i < sizeof(norm_cases) / sizeof(norm_cases[0]); i++) {
		const struct norm_case *c = &norm_cases[i];
		size_t n = 99, n2 = 0;
		enum policy_path_status st =
		    policy_path_normalize(c->in, strlen(c->in), out, sizeof(out), &n);
		if (st != c->st)
			fprintf(stderr, "case %zu \"%s\": got %s want %s\n", i, c->in,
			        policy_path_status_str(st), policy_path_status_str(c->st));
		CU_ASSERT_EQUAL(st, c->st);
		if (st != POLICY_PATH_OK || c->st != POLICY_PATH_OK) {
			CU_ASSERT_EQUAL(n, 0);
			continue;
		}
		if (strcmp(out, c->out) != 0)
			fprintf(stderr, "case %zu \"%s\": got \"%s\" want \"%s\"\n", i, c->in, out,
			        c->out);
		CU_ASSERT_STRING_EQUAL(out, c->out);
		CU_ASSERT_EQUAL(n, strlen(c->out));
		/* Idempotent: the output is its own normal form. */
		CU_ASSERT_EQUAL(policy_path_normalize(out, n, again, sizeof(again), &n2),
		                POLICY_PATH_OK);
		CU_ASSERT_STRING_EQUAL(again, out);
	}
}

static void test_norm_too_long(void)
{
	static char big[5001];
	char out[4096];
	size_t n;
	const struct {
		const char *in;
		size_t cap;
		enum policy_path_status st;
	} cases[] = {
	    {"/abc", 4, POLICY_PATH_TOO_LONG},  {"/abc", 5, POLICY_PATH_OK},
	    {"/abc/", 5, POLICY_PATH_TOO_LONG}, {"/abc/", 6, POLICY_PATH_OK},
	    {"/", 1, POLICY_PATH_TOO_LONG},     {"/", 2, POLICY_PATH_OK},
	    {"/a\"", 4, POLICY_PATH_TOO_LONG},  {"/a\"", 6, POLICY_PATH_OK},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CU_ASSERT_EQUAL(
		    policy_path_normalize(cases[i].in, strlen(cases[i].in), out, cases[i].cap, &n),
		    cases[i].st);
	big[0] = '/';
	memset(big + 1, 'a', sizeof(big) - 2);
	CU_ASSERT_EQUAL(policy_path_normalize(big, sizeof(big) - 1, out, sizeof(out), &n),
	                POLICY_PATH_TOO_LONG);
	CU_ASSERT_EQUAL(out[0], '\0');
}

static void test_status_str(void)
{
	const char *seen[POLICY_PATH_STATUS_MAX];

	CU_ASSERT_STRING_EQUAL(policy_path_status_str(POLICY_PATH_BAD_ESCAPE), "bad_escape");
	CU_ASSERT_STRING_EQUAL(policy_path_status_str(POLICY_PATH_ENCODED_SLASH), "encoded_slash");
	CU_ASSERT_STRING_EQUAL(policy_path_status_str(POLICY_PATH_SEMICOLON), "path_parameter");
	CU_ASSERT_STRING_EQUAL(policy_path_status_str(POLICY_PATH_STATUS_MAX), "unknown");
	for (int i = 0; i < POLICY_PATH_STATUS_MAX; i++) {
		seen[i] = policy_path_status_str((enum policy_path_status)i);
		CU_ASSERT_STRING_NOT_EQUAL(seen[i], "unknown");
		for (int j = 0; j < i; j++)
			CU_ASSERT_STRING_NOT_EQUAL(seen[i], seen[j]);
	}
}

static void test_prefix_valid(void)
{
	const struct {
		const char *p;
		bool ok;
	} cases[] = {
	    {"/", true},        {"/a", true},       {"/a/b", true},    {"/a;x", false},
	    {"/%C3%A9", true},  {"/a/", false},     {"", false},       {"a", false},
	    {"//a", false},     {"/a/../b", false}, {"/a/./b", false}, {"/%41", false},
	    {"/%c3%a9", false}, {"/a%2Fb", false},  {"/..", false},    {"/a b", false},
	    {"/a\"b", false},   {"/a%22b", true},   {"/a%3Bx", true},  {"/a%3bx", false},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool got = policy_prefix_valid(cases[i].p, strlen(cases[i].p));
		if (got != cases[i].ok)
			fprintf(stderr, "prefix_valid(\"%s\") = %d\n", cases[i].p, got);
		CU_ASSERT_EQUAL(got, cases[i].ok);
	}
}

static void test_prefix_covers(void)
{
	const struct {
		const char *prefix, *path;
		bool covers;
	} cases[] = {
	    {"/", "/", true},
	    {"/", "/anything/at/all", true},
	    {"/users", "/users", true},
	    {"/users", "/users/", true},
	    {"/users", "/users/7", true},
	    {"/users", "/usersx", false},
	    {"/users", "/user", false},
	    {"/users", "/", false},
	    {"/a/b", "/a/b/c", true},
	    {"/a/b", "/a/bc", false},
	    {"/a", "", false},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CU_ASSERT_EQUAL(policy_prefix_covers(cases[i].prefix, strlen(cases[i].prefix),
		                                     cases[i].path, strlen(cases[i].path)),
		                cases[i].covers);
}

static void test_methods(void)
{
	const struct {
		const char *name;
		unsigned bit, parsed;
	} cases[] = {
	    {"GET", POLICY_M_GET, POLICY_M_GET},
	    {"HEAD", POLICY_M_HEAD, POLICY_M_HEAD},
	    {"POST", POLICY_M_POST, POLICY_M_POST},
	    {"PUT", POLICY_M_PUT, POLICY_M_PUT},
	    {"DELETE", POLICY_M_DELETE, POLICY_M_DELETE},
	    {"PATCH", POLICY_M_PATCH, POLICY_M_PATCH},
	    {"OPTIONS", POLICY_M_OPTIONS, POLICY_M_OPTIONS},
	    {"TRACE", POLICY_M_TRACE, POLICY_M_TRACE},
	    {"get", POLICY_M_OTHER, 0},
	    {"GETX", POLICY_M_OTHER, 0},
	    {"PROPFIND", POLICY_M_OTHER, 0},
	    {"", POLICY_M_OTHER, 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CU_ASSERT_EQUAL(policy_method_bit(cases[i].name, strlen(cases[i].name)),
		                cases[i].bit);
		CU_ASSERT_EQUAL(policy_method_parse(cases[i].name), cases[i].parsed);
	}
	CU_ASSERT_EQUAL(policy_method_bit("GETTING", 3), POLICY_M_GET); /* length, not NUL */
	CU_ASSERT_EQUAL(policy_method_parse(NULL), 0);
}

/* ---- property test ---- */

static const char *const pieces[] = {
    "/",     ".",      "..",  "%2e", "%2E", "%2f", "%25", ";",  "%3b", "a",
    "admin", "public", "%41", "\\",  "%00", "//",  ";x",  "\"", "|{",
};

static uint64_t rng_next(uint64_t *s)
{
	/* xorshift64*: deterministic, so a failure reproduces. */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static void report_ignore(void *arg, bool is_error, const char *file, int line, const char *msg)
{
}

static void test_norm_property(void)
{
	static const char *const pub[] = {"/public"};
	const struct policy_rule_spec rule = {POLICY_ALLOW, POLICY_WHO_CN, "bob", pub, 1, 0, "t", 1,
	                                      NULL};
	const struct policy_spec spec = {NULL, 0, &rule, 1, NULL, 0};
	struct authn_cert_id cert = {.cn = (char *)"bob"};
	const struct authn_principal who = {.cert = &cert};
	struct policy *p = NULL;
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	unsigned n_ok = 0, n_allowed = 0;

	CU_ASSERT_FATAL(policy_build(&spec, report_ignore, NULL, &p) == 0);
	for (int iter = 0; iter < 20000; iter++) {
		char in[256], out[512], again[512];
		size_t len = 0, n = 0, n2 = 0;
		int npieces = 1 + (int)(rng_next(&seed) % 10);
		/* Half start with "/public" so the allowed side is exercised too. */
		len = (size_t)snprintf(in, sizeof(in), "%s", rng_next(&seed) & 1 ? "/public" : "/");
		for (int k = 0; k < npieces; k++) {
			const char *pc =
			    pieces[rng_next(&seed) % (sizeof(pieces) / sizeof(pieces[0]))];
			len += (size_t)snprintf(in + len, sizeof(in) - len, "%s", pc);
		}
		/* policy.h promises that 3 * len + 1 bytes always suffice. */
		CU_ASSERT_FATAL(3 * len + 1 <= sizeof(out));
		enum policy_path_status st = policy_path_normalize(in, len, out, 3 * len + 1, &n);
		CU_ASSERT_NOT_EQUAL(st, POLICY_PATH_TOO_LONG);
		if (st != POLICY_PATH_OK)
			continue;
		n_ok++;
		CU_ASSERT_EQUAL(policy_path_normalize(out, n, again, sizeof(again), &n2),
		                POLICY_PATH_OK);
		CU_ASSERT_TRUE(n2 == n && memcmp(out, again, n) == 0);
		/* No raw ';' ever gets through: a backend would strip it as a parameter. */
		CU_ASSERT_PTR_NULL(memchr(out, ';', n));
		struct policy_decision d;
		policy_decide(p, &who, POLICY_M_GET, out, n, &d);
		bool inside = policy_prefix_covers("/public", 7, out, n);
		if (d.effect == POLICY_ALLOW)
			n_allowed++;
		if ((d.effect == POLICY_ALLOW) != inside)
			fprintf(stderr, "property: \"%s\" -> \"%s\" effect %d\n", in, out,
			        d.effect);
		CU_ASSERT_EQUAL(d.effect == POLICY_ALLOW, inside);
	}
	/* Both sides must have been exercised for the property to mean anything. */
	CU_ASSERT_TRUE(n_ok > 1000);
	CU_ASSERT_TRUE(n_allowed > 100 && n_allowed < n_ok);
	policy_free(p);
}

CU_SUITE(policy_path, NULL, NULL, {"norm_table", test_norm_table},
         {"norm_too_long", test_norm_too_long}, {"status_str", test_status_str},
         {"prefix_valid", test_prefix_valid}, {"prefix_covers", test_prefix_covers},
         {"methods", test_methods}, {"norm_property", test_norm_property})
