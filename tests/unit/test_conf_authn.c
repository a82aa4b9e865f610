/*
 * conf: token issuers, API keys and route needs. The JWKS and key files come from
 * tests/data/authn and are copied next to each configuration, so relative names resolve
 * as they would for a real file; broken cases expect their exact "file:line: message".
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
int conf_test_copy(const char *src, const char *name);
struct conf_snapshot *conf_test_load(const char *name, struct conf_diags *d, bool want_ok);
bool conf_test_has(const struct conf_diags *d, const char *needle);

#define BASE                                                                                       \
	"listeners = ( { address = \"127.0.0.1:8443\";\n"                                          \
	"  tls = { cert = \"server.crt\"; key = \"server.key\"; client_ca = \"ca.crt\"; }; } );\n" \
	"clusters = ( { name = \"app\"; servers = ( { address = \"127.0.0.1:9001\"; } );\n"        \
	"  tls = { ca = \"backend-ca.crt\"; }; } );\n"                                             \
	"policy = ( { cn = \"alice\"; allow = [ \"/\" ]; } );\n"
#define ISSUER                                                                                     \
	"issuers = ( { name = \"idp\"; issuer = \"https://idp.example\"; audience = "              \
	"\"gateway\";\n"                                                                           \
	"  jwks = \"jwks.json\"; scope_claim = \"scp\"; leeway = 30; max_token = 4096; } );\n"
#define APIKEYS "api_keys = { file = \"apikeys.txt\"; hash_key = \"test-apikey.key\"; };\n"
#define ROUTES                                                                                     \
	"routes = ( { prefix = \"/a\"; cluster = \"app\"; need = \"cert+token\"; },\n"             \
	"  { prefix = \"/b\"; cluster = \"app\"; need = \"cert+bound-token\"; },\n"                \
	"  { prefix = \"/c\"; cluster = \"app\"; need = \"cert+apikey\"; },\n"                     \
	"  { prefix = \"/\"; cluster = \"app\"; } );\n"

static int suite_init(void)
{
	static const char *const files[] = {"jwks.json", "apikeys.txt", "test-apikey.key"};
	char src[512];

	if (conf_test_init() < 0)
		return -1;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(src, sizeof(src), "%s/authn/%s", cu_data_dir(), files[i]);
		if (conf_test_copy(src, files[i]) < 0)
			return -1;
	}
	return conf_test_write("bad-jwks.json", "{\"keys\": [ {\"kty\": \"EC\", } ]}\n");
}

static enum policy_need need_of(const struct conf_snapshot *s, const char *prefix)
{
	for (size_t i = 0; i < policy_n_routes(s->policy); i++) {
		const struct policy_route *r = policy_route_at(s->policy, i);
		if (strcmp(r->prefix, prefix) == 0)
			return r->need;
	}
	CU_FAIL("route not found");
	return POLICY_NEED_CERT;
}

static void test_good(void)
{
	struct conf_diags d = {0};

	CU_ASSERT_EQUAL_FATAL(conf_test_write("authn.conf", BASE ISSUER APIKEYS ROUTES), 0);
	struct conf_snapshot *s = conf_test_load("authn.conf", &d, true);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_TRUE(authn_keys_has_issuers(s->keys));
	CU_ASSERT_TRUE(authn_keys_has_apikeys(s->keys));
	CU_ASSERT_EQUAL(need_of(s, "/a"), POLICY_NEED_CERT_TOKEN);
	CU_ASSERT_EQUAL(need_of(s, "/b"), POLICY_NEED_CERT_BOUND_TOKEN);
	CU_ASSERT_EQUAL(need_of(s, "/c"), POLICY_NEED_CERT_APIKEY);
	CU_ASSERT_EQUAL(need_of(s, "/"), POLICY_NEED_CERT);
	/* The key file's entries are live: a key hashed with test-apikey.key passes. */
	struct authn_token_id id;
	CU_ASSERT_EQUAL(authn_apikey_verify(s->keys, "gwk_conf-test-key-1", 19, &id), AUTHN_OK);
	authn_token_id_clear(&id);
	conf_snapshot_free(s);
	conf_diags_clear(&d);

	/* Nothing configured: no key set at all. */
	CU_ASSERT_EQUAL_FATAL(conf_test_write("plain.conf", BASE "routes = ( { prefix = \"/\"; "
	                                                         "cluster = \"app\"; } );\n"),
	                      0);
	s = conf_test_load("plain.conf", &d, true);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_PTR_NULL(s->keys);
	conf_snapshot_free(s);
	conf_diags_clear(&d);
}

/* Each broken configuration, the diagnostic it must produce and the error count. */
static const struct {
	const char *name, *text, *expect;
	size_t errors;
} bad[] = {
    {"need without issuers", BASE APIKEYS ROUTES,
     "t.conf:7: 'routes[0].need' is \"cert+token\" but no issuers are configured", 2},
    {"need apikey without api_keys", BASE ISSUER ROUTES,
     "t.conf:10: 'routes[2].need' is \"cert+apikey\" but api_keys is not configured", 1},
    {"unknown need",
     BASE ISSUER "routes = ( { prefix = \"/\"; cluster = \"app\"; need = \"token\"; } );\n",
     "t.conf:8: 'routes[0].need' must be \"cert\", \"cert+token\", \"cert+bound-token\" or "
     "\"cert+apikey\", not 'token'",
     1},
    {"JWKS that does not parse",
     BASE "issuers = ( { name = \"idp\"; issuer = \"i\"; audience = \"a\";\n"
          "  jwks = \"bad-jwks.json\"; } );\n",
     "t.conf:6: issuer 'idp': {dir}/bad-jwks.json: JWKS is not valid JSON", 1},
    {"missing JWKS file",
     BASE
     "issuers = ( { name = \"idp\"; issuer = \"i\"; audience = \"a\"; jwks = \"nope.json\"; } );\n",
     "t.conf:6: issuer 'idp': {dir}/nope.json: No such file or directory", 1},
    {"issuer without keys",
     BASE "issuers = ( { name = \"idp\"; issuer = \"i\"; audience = \"a\"; } );\n",
     "t.conf:6: issuer 'idp': needs a JWKS or an HMAC secret", 1},
    {"issuer without audience",
     BASE "issuers = ( { name = \"idp\"; issuer = \"i\"; jwks = \"jwks.json\"; } );\n",
     "t.conf:6: missing required key 'audience' in 'issuers[0]'", 1},
    {"same issuer twice",
     BASE "issuers = ( { name = \"a\"; issuer = \"i\"; audience = \"a\"; jwks = \"jwks.json\"; },\n"
          "  { name = \"b\"; issuer = \"i\"; audience = \"a\"; jwks = \"jwks.json\"; } );\n",
     "t.conf:7: issuer \"i\" is configured twice (also at line 6)", 1},
    {"leeway out of range",
     BASE "issuers = ( { name = \"idp\"; issuer = \"i\"; audience = \"a\"; jwks = \"jwks.json\";\n"
          "  leeway = 7200; } );\n",
     "t.conf:7: 'issuers[0].leeway' must be between 0 and 3600, not 7200", 1},
    {"api_keys with a bad hash key",
     BASE "api_keys = { file = \"apikeys.txt\";\n  hash_key = \"jwks.json\"; };\n",
     "t.conf:6: api_keys: {dir}/jwks.json: must hold 64 hex digits", 1},
    {"api_keys without hash_key", BASE "api_keys = { file = \"apikeys.txt\"; };\n",
     "t.conf:6: missing required key 'hash_key' in 'api_keys'", 1},
};

/* Replaces "{dir}" in want with the test directory. */
static void expand_dir(const char *want, char *out, size_t cap)
{
	const char *p = strstr(want, "{dir}");
	if (!p)
		snprintf(out, cap, "%s", want);
	else
		snprintf(out, cap, "%.*s%s%s", (int)(p - want), want, conf_test_dir(), p + 5);
}

static void test_bad(void)
{
	char want[1024];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct conf_diags d = {0};
		CU_ASSERT_EQUAL_FATAL(conf_test_write("t.conf", bad[i].text), 0);
		struct conf_snapshot *s = conf_test_load("t.conf", &d, false);
		expand_dir(bad[i].expect, want, sizeof(want));
		/* Diagnostics carry the full path of the file; compare from its base name. */
		bool found = false;
		for (size_t j = 0; j < d.n; j++)
			found = found || strstr(d.v[j].text, want) != NULL;
		if (s || !found || d.n_errors != bad[i].errors) {
			fprintf(stderr, "\n  case '%s': want %zu error(s) with '%s', got:\n",
			        bad[i].name, bad[i].errors, want);
			conf_diags_print(&d, stderr);
			CU_FAIL("wrong diagnostics");
		}
		conf_snapshot_free(s);
		conf_diags_clear(&d);
	}
}

CU_SUITE(conf_authn, suite_init, NULL, {"good", test_good}, {"bad", test_bad})
