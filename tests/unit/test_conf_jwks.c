/*
 * conf: issuers whose JWKS the gateway fetches (jwks_url). The URL parser, the keys that
 * must go together, and the cache hook: conf_load asks it for each jwks_url issuer, builds
 * the issuer from the text it returns, and leaves the issuer out while it has none.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "cu.h"

/* ---- from test_conf_pki.c ---- */
const char *conf_test_dir(void);
int conf_test_init(void);
int conf_test_write(const char *name, const char *text);
struct conf_snapshot *conf_test_load(const char *name, struct conf_diags *d, bool want_ok);
bool conf_test_has(const struct conf_diags *d, const char *needle);

#define BASE                                                                                       \
	"listeners = ( { address = \"127.0.0.1:8443\";\n"                                          \
	"  tls = { cert = \"server.crt\"; key = \"server.key\"; client_ca = \"ca.crt\"; }; } );\n" \
	"clusters = ( { name = \"app\"; servers = ( { address = \"127.0.0.1:9001\"; } );\n"        \
	"  tls = { ca = \"backend-ca.crt\"; }; } );\n"                                             \
	"routes = ( { prefix = \"/\"; cluster = \"app\"; need = \"cert+token\"; } );\n"            \
	"policy = ( { cn = \"alice\"; allow = [ \"/\" ]; } );\n"
#define URL_ISSUER(extra)                                                                          \
	"issuers = ( { name = \"idp\"; issuer = \"https://idp.test\"; audience = \"gw\";\n"        \
	"  jwks_url = \"https://idp.test:8443/jwks.json\"; " extra " } );\n"

static const struct {
	const char *url;
	int rc;
	const char *host;
	unsigned port;
	const char *path;
} urls[] = {
    {"https://idp.test/jwks.json", 0, "idp.test", 443, "/jwks.json"},
    {"https://idp.test:8443/a/b?x=1", 0, "idp.test", 8443, "/a/b?x=1"},
    {"https://idp.test", 0, "idp.test", 443, ""},
    {"https://127.0.0.1:1/k", 0, "127.0.0.1", 1, "/k"},
    {"https://[::1]:9443/k", 0, "[::1]", 9443, "/k"},
    {"https://[::1]/k", 0, "[::1]", 443, "/k"},
    {"http://idp.test/jwks.json", -1, NULL, 0, NULL},
    {"https://", -1, NULL, 0, NULL},
    {"https:///jwks.json", -1, NULL, 0, NULL},
    {"https://idp.test:/k", -1, NULL, 0, NULL},
    {"https://idp.test:0/k", -1, NULL, 0, NULL},
    {"https://idp.test:65536/k", -1, NULL, 0, NULL},
    {"https://idp.test:+80/k", -1, NULL, 0, NULL},
    {"https://idp.test:80x/k", -1, NULL, 0, NULL},
    {"https://user@idp.test/k", -1, NULL, 0, NULL},
    {"https://idp_test/k", -1, NULL, 0, NULL},
    {"https://[::1/k", -1, NULL, 0, NULL},
    {"https://idp.test/a b", -1, NULL, 0, NULL},
    {"https://idp.test/a#frag", -1, NULL, 0, NULL},
    {"https://idp.test/a\x01", -1, NULL, 0, NULL},
};

static void test_url_parse(void)
{
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		struct conf_https_url u;
		char err[256] = "";
		int rc = conf_https_url_parse(urls[i].url, &u, err, sizeof(err));
		if (rc != urls[i].rc) {
			fprintf(stderr, "\n  '%s': rc %d (%s)\n", urls[i].url, rc, err);
			CU_FAIL("wrong verdict");
			continue;
		}
		if (rc != 0) {
			CU_ASSERT_PTR_NOT_NULL(strstr(err, "must be"));
			continue;
		}
		CU_ASSERT_STRING_EQUAL(u.host, urls[i].host);
		CU_ASSERT_EQUAL(u.port, urls[i].port);
		CU_ASSERT_STRING_EQUAL(u.path, urls[i].path);
	}
}

/* ---- the cache hook ---- */

struct fake_cache {
	const char *text; /* what source() answers */
	int begins, sources;
	char url[256], ca[512], address[64], issuer[64];
	uint32_t refresh, min_refetch, timeout;
};

static void fake_begin(void *arg)
{
	((struct fake_cache *)arg)->begins++;
}

static const char *fake_source(void *arg, const struct conf_jwks_source *src, size_t *len)
{
	struct fake_cache *fc = arg;

	fc->sources++;
	snprintf(fc->url, sizeof(fc->url), "%s", src->url);
	snprintf(fc->ca, sizeof(fc->ca), "%s", src->ca_file);
	snprintf(fc->address, sizeof(fc->address), "%s", src->address ? src->address : "-");
	snprintf(fc->issuer, sizeof(fc->issuer), "%s", src->issuer);
	fc->refresh = src->refresh_ms;
	fc->min_refetch = src->min_refetch_ms;
	fc->timeout = src->timeout_ms;
	*len = fc->text ? strlen(fc->text) : 0;
	return fc->text;
}

static char *jwks_text;

static int suite_init(void)
{
	char path[512];
	FILE *f;
	long n;

	if (conf_test_init() < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/authn/jwks.json", cu_data_dir());
	if (!(f = fopen(path, "r")) || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) <= 0 ||
	    fseek(f, 0, SEEK_SET) != 0 || !(jwks_text = calloc(1, (size_t)n + 1)) ||
	    fread(jwks_text, 1, (size_t)n, f) != (size_t)n) {
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	return 0;
}

static int suite_clean(void)
{
	conf_jwks_cache_set(NULL);
	free(jwks_text);
	return 0;
}

static void test_cache(void)
{
	struct fake_cache fc = {0};
	struct conf_jwks_cache c = {.begin = fake_begin, .source = fake_source, .arg = &fc};
	struct conf_diags d = {0};
	char ca[512];

	CU_ASSERT_EQUAL_FATAL(
	    conf_test_write("url.conf",
	                    BASE URL_ISSUER("jwks_ca = \"backend-ca.crt\";\n"
	                                    "  jwks_address = \"127.0.0.1:9443\";\n"
	                                    "  jwks_refresh = 60; jwks_timeout = 2.5;")),
	    0);
	/* No cache (gatewayd -t): valid, the issuer has no keys, nothing to warn about. */
	conf_jwks_cache_set(NULL);
	struct conf_snapshot *s = conf_test_load("url.conf", &d, true);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_FALSE(authn_keys_has_issuers(s->keys));
	CU_ASSERT_EQUAL(d.n, 0);
	conf_snapshot_free(s);
	conf_diags_clear(&d);

	/* A cache without text yet: the same, with a warning, and the source is reported. */
	conf_jwks_cache_set(&c);
	s = conf_test_load("url.conf", &d, true);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_FALSE(authn_keys_has_issuers(s->keys));
	CU_ASSERT_TRUE(conf_test_has(&d, "issuer 'idp': no JWKS fetched from "
	                                 "https://idp.test:8443/jwks.json yet"));
	CU_ASSERT_EQUAL(fc.begins, 1);
	CU_ASSERT_EQUAL(fc.sources, 1);
	CU_ASSERT_STRING_EQUAL(fc.url, "https://idp.test:8443/jwks.json");
	snprintf(ca, sizeof(ca), "%s/backend-ca.crt", conf_test_dir());
	CU_ASSERT_STRING_EQUAL(fc.ca, ca);
	CU_ASSERT_STRING_EQUAL(fc.address, "127.0.0.1:9443");
	CU_ASSERT_STRING_EQUAL(fc.issuer, "https://idp.test");
	CU_ASSERT_EQUAL(fc.refresh, 60000);
	CU_ASSERT_EQUAL(fc.min_refetch, 10000);
	CU_ASSERT_EQUAL(fc.timeout, 2500);
	conf_snapshot_free(s);
	conf_diags_clear(&d);

	/* With text: the issuer is built from it. */
	fc.text = jwks_text;
	s = conf_test_load("url.conf", &d, true);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_TRUE(authn_keys_has_issuers(s->keys));
	CU_ASSERT_EQUAL(d.n, 0);
	CU_ASSERT_EQUAL(fc.begins, 2);
	conf_snapshot_free(s);
	conf_diags_clear(&d);

	/* A load without issuers still begins (so the fetcher forgets old sources); here
	 * it fails later (a route needs a token), which the fetcher learns by no commit. */
	CU_ASSERT_EQUAL_FATAL(conf_test_write("none.conf", BASE), 0);
	s = conf_test_load("none.conf", &d, false);
	conf_diags_clear(&d);
	CU_ASSERT_EQUAL(fc.begins, 3);
	CU_ASSERT_EQUAL(fc.sources, 2);
	/* A file that does not even parse never reaches the issuers. */
	CU_ASSERT_EQUAL_FATAL(conf_test_write("syntax.conf", "listeners = ("), 0);
	s = conf_test_load("syntax.conf", &d, false);
	conf_diags_clear(&d);
	CU_ASSERT_EQUAL(fc.begins, 3);
	conf_jwks_cache_set(NULL);
}

static const struct {
	const char *name, *text, *expect;
} bad[] = {
    {"jwks and jwks_url",
     BASE URL_ISSUER("jwks_ca = \"backend-ca.crt\"; jwks = \"backend-ca.crt\";"),
     "give either jwks or jwks_url, not both"},
    {"jwks_url without jwks_ca", BASE URL_ISSUER(""), "jwks_url needs jwks_ca"},
    {"jwks_ca without jwks_url",
     BASE "issuers = ( { name = \"idp\"; issuer = \"i\"; audience = \"a\";\n"
          "  hmac_secret = \"x\"; jwks_ca = \"backend-ca.crt\"; } );\n",
     "jwks_ca and jwks_address need jwks_url"},
    {"jwks_ca that does not load", BASE URL_ISSUER("jwks_ca = \"server.key\";"),
     "issuer 'idp': jwks_ca: "},
    {"plain http",
     BASE "issuers = ( { name = \"idp\"; issuer = \"i\"; audience = \"a\";\n"
          "  jwks_url = \"http://idp.test/k\"; jwks_ca = \"ca.crt\"; } );\n",
     "'issuers[0].jwks_url' must be an https:// URL, not 'http://idp.test/k'"},
    {"bad address", BASE URL_ISSUER("jwks_ca = \"ca.crt\"; jwks_address = \"idp.test:443\";"),
     "'issuers[0].jwks_address' must be a numeric host:port"},
    {"min_refetch too small", BASE URL_ISSUER("jwks_ca = \"ca.crt\"; jwks_min_refetch = 0;"),
     "'issuers[0].jwks_min_refetch' must be between"},
};

static void test_bad(void)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct conf_diags d = {0};
		CU_ASSERT_EQUAL_FATAL(conf_test_write("t.conf", bad[i].text), 0);
		struct conf_snapshot *s = conf_test_load("t.conf", &d, false);
		if (s || !conf_test_has(&d, bad[i].expect)) {
			fprintf(stderr, "\n  case '%s': want '%s', got:\n", bad[i].name,
			        bad[i].expect);
			conf_diags_print(&d, stderr);
			CU_FAIL("wrong diagnostics");
		}
		conf_snapshot_free(s);
		conf_diags_clear(&d);
	}
}

CU_SUITE(conf_jwks, suite_init, suite_clean, {"url_parse", test_url_parse}, {"cache", test_cache},
         {"bad", test_bad})
