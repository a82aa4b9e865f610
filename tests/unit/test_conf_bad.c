/*
 * conf: a table of broken configurations, each with the exact diagnostic it must
 * produce ("file:line: message") and how many errors in total (so that one mistake
 * does not drag follow-up noise along). "{dir}" in an expectation stands for the
 * directory the configuration was written to.
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

/* A valid configuration, one line per macro; cases replace or append lines. */
#define L1 "listeners = ( { address = \"127.0.0.1:8443\";\n"
#define L2                                                                                         \
	"  tls = { cert = \"server.crt\"; key = \"server.key\"; client_ca = \"ca.crt\"; }; } );\n"
#define C3   "clusters = ( { name = \"app\"; servers = ( { address = \"127.0.0.1:9001\"; } );\n"
#define C4   "  tls = { ca = \"backend-ca.crt\"; }; } );\n"
#define R5   "routes = ( { prefix = \"/\"; cluster = \"app\"; } );\n"
#define P6   "policy = ( { cn = \"alice\"; allow = [ \"/\" ]; } );\n"
#define GOOD L1 L2 C3 C4 R5 P6

static const struct {
	const char *name;
	const char *text;
	size_t errors;
	const char *expect;
} bad_cases[] = {
    {"unknown top-level key", GOOD "colour = \"red\";\n", 1, "t.conf:7: unknown key 'colour'"},
    {"unknown nested key",
     L1 "  tls = { cert = \"server.crt\"; key = \"server.key\"; client_ca = \"ca.crt\"; "
        "colour = 1; }; } );\n" C3 C4 R5 P6,
     1, "t.conf:2: unknown key 'colour' in 'listeners[0].tls'"},
    {"unknown key in list element",
     L1 L2 C3 C4 "routes = ( { prefix = \"/\"; cluster = "
                 "\"app\"; weight = 2; } );\n" P6,
     1, "t.conf:5: unknown key 'weight' in 'routes[0]'"},
    {"wrong type", GOOD "workers = \"two\";\n", 1,
     "t.conf:7: 'workers' must be an integer, not a string"},
    {"wrong type bool",
     L1 "  tls = { cert = \"server.crt\"; key = \"server.key\"; client_ca = \"ca.crt\";\n"
        "  session_tickets = 1; }; } );\n" C3 C4 R5 P6,
     1,
     "t.conf:3: 'listeners[0].tls.session_tickets' must be a boolean (true or false), not an "
     "integer"},
    {"out of range", GOOD "workers = 65;\n", 1,
     "t.conf:7: 'workers' must be between 0 and 64, not 65"},
    {"duration type", GOOD "timeouts = { idle = \"1m\"; };\n", 1,
     "t.conf:7: 'timeouts.idle' must be a number of seconds, not a string"},
    {"duration too small", GOOD "timeouts = {\n  handshake = 0.0001; };\n", 1,
     "t.conf:8: 'timeouts.handshake' must be between 0.001 and 86400 seconds, not 0.0001"},
    {"size above 2^31 without L", GOOD "limits = { body = 3000000000; };\n", 1,
     "t.conf:7: 'limits.body' must be between 0 and 9223372036854775807, not -1294967296 "
     "(write values above 2147483647 with an L suffix)"},
    {"missing cert file",
     L1 "  tls = { cert = \"missing.crt\"; key = \"server.key\"; client_ca = \"ca.crt\"; }; } "
        ");\n" C3 C4 R5 P6,
     1, "t.conf:2: {dir}/missing.crt"},
    {"missing required key",
     L1 "  tls = { cert = \"server.crt\"; client_ca = \"ca.crt\"; }; } );\n" C3 C4 R5 P6, 1,
     "t.conf:2: missing required key 'key' in 'listeners[0].tls'"},
    {"missing listeners", C3 C4 R5 P6, 1, "t.conf: missing required key 'listeners'"},
    {"empty listeners", "listeners = ();\n" C3 C4 R5 P6, 1,
     "t.conf:1: 'listeners' must have at least 1 entry"},
    {"list element not a group", L1 L2 C3 C4 "routes = ( \"/\" );\n" P6, 1,
     "t.conf:5: 'routes[0]' must be a group { ... }, not a string"},
    {"unknown cluster in route",
     L1 L2 C3 C4 "routes = ( { prefix = \"/\"; cluster = \"nope\"; } );\n" P6, 1,
     "t.conf:5: 'routes[0].cluster' names unknown cluster 'nope'"},
    {"bad route prefix",
     L1 L2 C3 C4 "routes = ( { prefix = \"/api/\"; cluster = \"app\"; } );\n" P6, 1,
     "t.conf:5: route prefix \"/api/\" is not a normalised path prefix"},
    {"bad rule prefix",
     L1 L2 C3 C4 R5 "policy = ( { cn = \"bob\";\n  allow = [ \"/a/../b\" ]; } );\n", 1,
     "t.conf:6: rule prefix \"/a/../b\" is not a normalised path prefix"},
    {"duplicate route prefix",
     L1 L2 C3 C4 "routes = ( { prefix = \"/\"; cluster = \"app\"; },\n"
                 "  { prefix = \"/\"; cluster = \"app\"; } );\n" P6,
     1, "t.conf:6: duplicate route prefix \"/\" (first defined at {dir}/t.conf:5)"},
    {"two identity keys",
     L1 L2 C3 C4 R5 "policy = ( { cn = \"alice\"; dns = \"a.example\"; allow = [ \"/\" ]; } );\n",
     1, "t.conf:6: 'policy[0]' names 2 identities (cn, dns): a rule must name exactly one"},
    {"no identity key", L1 L2 C3 C4 R5 "policy = ( { allow = [ \"/\" ]; } );\n", 1,
     "t.conf:6: 'policy[0]' names no identity"},
    {"any = false", L1 L2 C3 C4 R5 "policy = ( { any = false; allow = [ \"/\" ]; } );\n", 1,
     "t.conf:6: 'policy[0].any' can only be true"},
    {"allow and deny",
     L1 L2 C3 C4 R5 "policy = ( { cn = \"a\"; allow = [ \"/\" ]; deny = [ \"/x\" ]; } );\n", 1,
     "t.conf:6: 'policy[0]' must have exactly one of allow or deny"},
    {"unknown method",
     L1 L2 C3 C4 R5 "policy = ( { cn = \"a\"; allow = [ \"/\" ];\n  methods = [ \"GET\",\n"
                    "    \"FETCH\" ]; } );\n",
     1, "t.conf:8: unknown method 'FETCH' in 'policy[0].methods'"},
    {"bad spiffe id",
     L1 L2 C3 C4 R5 "policy = ( { spiffe = \"http://x\"; allow = [ \"/\" ]; } );\n", 1,
     "t.conf:6: rule spiffe value \"http://x\" is not a valid SPIFFE ID"},
    {"bad address", "listeners = ( { address = \"localhost:8443\";\n" L2 C3 C4 R5 P6, 1,
     "t.conf:1: 'listeners[0].address' must be a numeric host:port or [v6]:port, not "
     "'localhost:8443'"},
    {"port out of range",
     L1 L2 "clusters = ( { name = \"app\"; servers = ( { address = "
           "\"127.0.0.1:65536\"; } );\n" C4 R5 P6,
     1,
     "t.conf:3: 'clusters[0].servers[0].address' must be a numeric host:port or [v6]:port, "
     "not '127.0.0.1:65536'"},
    {"duplicate listener address",
     "listeners = ( { address = \"127.0.0.1:8443\";\n"
     "  tls = { cert = \"server.crt\"; key = \"server.key\"; client_ca = \"ca.crt\"; }; },\n"
     "  { address = \"127.0.0.1:8443\";\n"
     "  tls = { cert = \"server.crt\"; key = \"server.key\"; client_ca = \"ca.crt\"; }; } );\n" C3
         C4 R5 P6,
     1, "t.conf:3: listener address '127.0.0.1:8443' is already used at line 1"},
    {"syntax error", L1 L2 "clusters = ( { name = ; } );\n" C4 R5 P6, 1, "t.conf:3: syntax error"},
    {"require_client_cert without insecure flag",
     L1 "  tls = { cert = \"server.crt\"; key = \"server.key\"; client_ca = \"ca.crt\";\n"
        "    require_client_cert = false; }; } );\n" C3 C4 R5 P6,
     1,
     "t.conf:3: 'listeners[0].tls.require_client_cert' = false is refused unless "
     "insecure_no_client_cert = true"},
    {"bad tls version",
     L1 "  tls = { cert = \"server.crt\"; key = \"server.key\"; client_ca = \"ca.crt\";\n"
        "    min_version = \"TLSv1.1\"; }; } );\n" C3 C4 R5 P6,
     1,
     "t.conf:3: 'listeners[0].tls.min_version' must be \"TLSv1.2\" or \"TLSv1.3\", not "
     "'TLSv1.1'"},
    {"cluster without ca",
     L1 L2 C3 "  tls = { cert = \"gw-client.crt\"; key = \"gw-client.key\"; "
              "}; } );\n" R5 P6,
     1,
     "t.conf:4: missing required key 'ca' in 'clusters[0].tls' (needed unless verify = "
     "false)"},
    {"cluster cert without key",
     L1 L2 C3 "  tls = { ca = \"backend-ca.crt\"; cert = "
              "\"gw-client.crt\"; }; } );\n" R5 P6,
     1, "t.conf:4: 'clusters[0].tls' needs both cert and key, or neither"},
    {"duplicate cluster",
     L1 L2 C3 "  tls = { ca = \"backend-ca.crt\"; }; },\n"
              "  { name = \"app\"; servers = ( { address = \"127.0.0.1:1\"; } ); tls = { ca = "
              "\"backend-ca.crt\"; }; } );\n" R5 P6,
     1, "t.conf:5: cluster 'app' is already defined at line 3"},
    {"weight zero",
     L1 L2 "clusters = ( { name = \"app\"; servers = ( { address = "
           "\"127.0.0.1:9001\"; weight = 0; } );\n" C4 R5 P6,
     1, "t.conf:3: 'clusters[0].servers[0].weight' must be between 1 and 256, not 0"},
    {"empty allow list", L1 L2 C3 C4 R5 "policy = ( { cn = \"a\"; allow = [ ]; } );\n", 1,
     "t.conf:6: 'policy[0].allow' must have at least 1 entry"},
    {"missing backend ca file", L1 L2 C3 "  tls = { ca = \"nope-ca.crt\"; }; } );\n" R5 P6, 1,
     "t.conf:4: {dir}/nope-ca.crt"},
};

/* Replaces "{dir}" in pattern with the test directory. */
static void expand(const char *pattern, char *out, size_t len)
{
	const char *at = strstr(pattern, "{dir}");
	if (!at) {
		snprintf(out, len, "%s", pattern);
		return;
	}
	snprintf(out, len, "%.*s%s%s", (int)(at - pattern), pattern, conf_test_dir(), at + 5);
}

static void test_bad_table(void)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		struct conf_diags d = {0};
		char expect[1024];

		CU_ASSERT_EQUAL_FATAL(conf_test_write("t.conf", bad_cases[i].text), 0);
		struct conf_snapshot *s = conf_test_load("t.conf", &d, false);
		CU_ASSERT_PTR_NULL(s);
		conf_snapshot_free(s);
		expand(bad_cases[i].expect, expect, sizeof(expect));
		bool found = conf_test_has(&d, expect);
		CU_ASSERT_TRUE(found);
		CU_ASSERT_EQUAL(d.n_errors, bad_cases[i].errors);
		if (!found || d.n_errors != bad_cases[i].errors) {
			fprintf(stderr, "\ncase '%s': want %zu error(s) with '%s', got:\n",
			        bad_cases[i].name, bad_cases[i].errors, expect);
			conf_diags_print(&d, stderr);
		}
		conf_diags_clear(&d);
	}
}

/* The base of the table must itself be valid, or every case would pass trivially. */
static void test_good_base(void)
{
	struct conf_diags d = {0};

	CU_ASSERT_EQUAL_FATAL(conf_test_write("t.conf", GOOD), 0);
	struct conf_snapshot *s = conf_test_load("t.conf", &d, true);
	CU_ASSERT_PTR_NOT_NULL(s);
	CU_ASSERT_EQUAL(d.n, 0);
	conf_snapshot_free(s);
	conf_diags_clear(&d);
}

CU_SUITE(conf_bad, conf_test_init, NULL, {"good_base", test_good_base},
         {"bad_table", test_bad_table})
