/*
 * conf: loading real files. The suite mints a test PKI with tests/tools/mkpki.sh into a
 * temporary directory and writes each configuration there, so relative file names in
 * the configurations resolve against that directory (as they would for a real file).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <unistd.h>

#include "conf.h"
#include "cu.h"

/* ---- from test_conf_pki.c ---- */
const char *conf_test_dir(void);
int conf_test_init(void);
int conf_test_write(const char *name, const char *text);
int conf_test_copy(const char *src, const char *name);
struct conf_snapshot *conf_test_load(const char *name, struct conf_diags *d, bool want_ok);
bool conf_test_has(const struct conf_diags *d, const char *needle);

static unsigned port_of(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)(const void *)ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)(const void *)ss)->sin_port);
}

static void test_minimal_defaults(void)
{
	struct conf_diags d = {0};
	char data[512];

	snprintf(data, sizeof(data), "%s/conf/minimal.conf", cu_data_dir());
	CU_ASSERT_EQUAL_FATAL(conf_test_copy(data, "minimal.conf"), 0);
	struct conf_snapshot *s = conf_test_load("minimal.conf", &d, true);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL(d.n, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(s->path, "minimal.conf"));
	CU_ASSERT_EQUAL(s->workers, 0);
	CU_ASSERT_PTR_NULL(s->audit_path);
	CU_ASSERT_PTR_NULL(s->admin_address);
	CU_ASSERT_EQUAL(s->limits.request_line, 8192);
	CU_ASSERT_EQUAL(s->limits.header_bytes, 32768);
	CU_ASSERT_EQUAL(s->limits.header_count, 100);
	CU_ASSERT_EQUAL(s->limits.body, 1073741824ull);
	CU_ASSERT_EQUAL(s->timeouts.handshake, 10000);
	CU_ASSERT_EQUAL(s->timeouts.request_header, 10000);
	CU_ASSERT_EQUAL(s->timeouts.idle, 60000);
	CU_ASSERT_EQUAL(s->timeouts.upstream_connect, 5000);
	CU_ASSERT_EQUAL(s->timeouts.upstream_response, 30000);
	CU_ASSERT_EQUAL(s->timeouts.body, 30000);
	CU_ASSERT_EQUAL_FATAL(s->n_listeners, 1);
	const struct conf_listener *l = &s->listeners[0];
	CU_ASSERT_STRING_EQUAL(l->address, "127.0.0.1:8443");
	CU_ASSERT_EQUAL(l->addr.ss_family, AF_INET);
	CU_ASSERT_EQUAL(port_of(&l->addr), 8443);
	CU_ASSERT_PTR_NOT_NULL(l->tls);
	CU_ASSERT_EQUAL(l->line, 3);
	CU_ASSERT_PTR_NOT_NULL(strstr(l->file, "minimal.conf"));
	static const unsigned char zero[32];
	CU_ASSERT_NOT_EQUAL(memcmp(l->trust_digest, zero, 32), 0);
	CU_ASSERT_EQUAL_FATAL(s->n_clusters, 1);
	const struct conf_cluster *c = &s->clusters[0];
	CU_ASSERT_STRING_EQUAL(c->name, "app");
	CU_ASSERT_PTR_NOT_NULL(c->tls);
	CU_ASSERT_EQUAL(c->pool_max_idle, 128);
	CU_ASSERT_EQUAL(c->pool_idle_timeout, 60000);
	CU_ASSERT_EQUAL(c->max_attempts, 3);
	CU_ASSERT_EQUAL(c->line, 9);
	CU_ASSERT_EQUAL_FATAL(c->n_servers, 1);
	CU_ASSERT_STRING_EQUAL(c->servers[0].address, "127.0.0.1:9001");
	CU_ASSERT_STRING_EQUAL(c->servers[0].name, "127.0.0.1"); /* default: the host part */
	CU_ASSERT_EQUAL(c->servers[0].weight, 1);
	CU_ASSERT_FALSE(c->servers[0].backup);
	CU_ASSERT_EQUAL(port_of(&c->servers[0].addr), 9001);
	CU_ASSERT_EQUAL(policy_n_routes(s->policy), 1);
	CU_ASSERT_EQUAL(policy_n_rules(s->policy), 1);
	conf_snapshot_free(s);
	conf_diags_clear(&d);
}

static void check_full_listeners(const struct conf_snapshot *s)
{
	CU_ASSERT_EQUAL_FATAL(s->n_listeners, 2);
	CU_ASSERT_EQUAL(s->listeners[1].addr.ss_family, AF_INET6);
	CU_ASSERT_EQUAL(port_of(&s->listeners[1].addr), 0);
	CU_ASSERT_PTR_NOT_NULL(s->listeners[0].tls);
	CU_ASSERT_PTR_NOT_NULL(s->listeners[1].tls);
	/* Different CA bundles, so sessions must not resume across the two listeners. */
	CU_ASSERT_NOT_EQUAL(memcmp(s->listeners[0].trust_digest, s->listeners[1].trust_digest, 32),
	                    0);
	SSL_CTX *ctx = pki_server_get0_ctx(s->listeners[0].tls);
	CU_ASSERT_EQUAL(SSL_CTX_get_min_proto_version(ctx), TLS1_3_VERSION);
	CU_ASSERT_EQUAL(SSL_CTX_sess_get_cache_size(ctx), 1000);
	CU_ASSERT_EQUAL(SSL_CTX_sess_get_cache_size(pki_server_get0_ctx(s->listeners[1].tls)),
	                20480);
}

static void check_full_clusters(const struct conf_snapshot *s)
{
	CU_ASSERT_EQUAL_FATAL(s->n_clusters, 2);
	const struct conf_cluster *c = &s->clusters[0];
	CU_ASSERT_EQUAL(c->pool_max_idle, 4);
	CU_ASSERT_EQUAL(c->pool_idle_timeout, 1500);
	CU_ASSERT_EQUAL(c->max_attempts, 2);
	CU_ASSERT_EQUAL_FATAL(c->n_servers, 2);
	CU_ASSERT_STRING_EQUAL(c->servers[0].name, "backend.test");
	CU_ASSERT_EQUAL(c->servers[0].weight, 5);
	CU_ASSERT_FALSE(c->servers[0].backup);
	CU_ASSERT_STRING_EQUAL(c->servers[1].name, "::1");
	CU_ASSERT_TRUE(c->servers[1].backup);
	CU_ASSERT_EQUAL(c->servers[1].addr.ss_family, AF_INET6);
	CU_ASSERT_STRING_EQUAL(s->clusters[1].name, "other");
	CU_ASSERT_PTR_NOT_NULL(s->clusters[1].tls);
	const struct policy_route *r = policy_route_at(s->policy, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_STRING_EQUAL(r->prefix, "/api");
	CU_ASSERT_STRING_EQUAL(r->rewrite, "/v1");
	CU_ASSERT_EQUAL(r->cluster, 0);
	r = policy_route_at(s->policy, 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL(r->cluster, 1);
	CU_ASSERT_PTR_NULL(r->rewrite);
}

static void test_full(void)
{
	struct conf_diags d = {0};
	char data[512], expect[600];

	snprintf(data, sizeof(data), "%s/conf/full.conf", cu_data_dir());
	CU_ASSERT_EQUAL_FATAL(conf_test_copy(data, "full.conf"), 0);
	struct conf_snapshot *s = conf_test_load("full.conf", &d, true);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL(d.n_errors, 0);
	CU_ASSERT_EQUAL(d.n, 1); /* the verify = false warning */
	CU_ASSERT_TRUE(conf_test_has(&d, "full.conf:59: warning: TLS verification of cluster other "
	                                 "is disabled"));
	CU_ASSERT_EQUAL(s->workers, 4);
	snprintf(expect, sizeof(expect), "%s/logs/audit.log", conf_test_dir());
	CU_ASSERT_STRING_EQUAL(s->audit_path, expect);
	CU_ASSERT_STRING_EQUAL(s->admin_address, "127.0.0.1:9090");
	CU_ASSERT_EQUAL(port_of(&s->admin_addr), 9090);
	CU_ASSERT_EQUAL(s->admin_addrlen, sizeof(struct sockaddr_in));
	CU_ASSERT_EQUAL(s->limits.request_line, 4096);
	CU_ASSERT_EQUAL(s->limits.header_bytes, 16384);
	CU_ASSERT_EQUAL(s->limits.header_count, 50);
	CU_ASSERT_EQUAL(s->limits.body, 3000000000ull);
	CU_ASSERT_EQUAL(s->timeouts.handshake, 2500);
	CU_ASSERT_EQUAL(s->timeouts.request_header, 3000);
	CU_ASSERT_EQUAL(s->timeouts.idle, 30000);
	CU_ASSERT_EQUAL(s->timeouts.body, 250);
	CU_ASSERT_EQUAL(s->timeouts.upstream_connect, 1000);
	CU_ASSERT_EQUAL(s->timeouts.upstream_response, 45000);
	check_full_listeners(s);
	check_full_clusters(s);
	CU_ASSERT_EQUAL(policy_n_rules(s->policy), 8);
	conf_snapshot_free(s);
	conf_diags_clear(&d);
}

/* Decision of s's policy for a client whose certificate has only this CN or SPIFFE ID. */
static enum policy_effect decide(const struct conf_snapshot *s, const char *cn, const char *spiffe,
                                 const char *path)
{
	struct authn_cert_id id = {0};
	struct authn_principal who = {.cert = &id};
	struct policy_decision out;

	id.cn = (char *)cn;
	id.spiffe_id = (char *)spiffe;
	policy_decide(s->policy, &who, POLICY_M_GET, path, strlen(path), &out);
	return out.effect;
}

/* The embedded default runs the demo from a mkpki directory (the current directory). */
static void test_default_conf(void)
{
	struct conf_diags d = {0};
	char cwd[512];

	CU_ASSERT_PTR_NOT_NULL_FATAL(getcwd(cwd, sizeof(cwd)));
	CU_ASSERT_EQUAL_FATAL(chdir(conf_test_dir()), 0);
	struct conf_snapshot *s = conf_load_string(conf_default_text, "default.conf", &d);
	CU_ASSERT_EQUAL(chdir(cwd), 0);
	if (!s)
		conf_diags_print(&d, stderr);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL(d.n, 0);
	CU_ASSERT_STRING_EQUAL(s->path, "default.conf");
	CU_ASSERT_STRING_EQUAL(s->audit_path, "audit.log");
	CU_ASSERT_EQUAL_FATAL(s->n_listeners, 1);
	CU_ASSERT_STRING_EQUAL(s->listeners[0].address, "127.0.0.1:8443");
	CU_ASSERT_EQUAL_FATAL(s->n_clusters, 1);
	CU_ASSERT_STRING_EQUAL(s->clusters[0].name, "demo");
	CU_ASSERT_EQUAL_FATAL(s->clusters[0].n_servers, 2);
	CU_ASSERT_STRING_EQUAL(s->clusters[0].servers[0].address, "127.0.0.1:9001");
	CU_ASSERT_STRING_EQUAL(s->clusters[0].servers[1].address, "127.0.0.1:9002");
	CU_ASSERT_STRING_EQUAL(s->clusters[0].servers[1].name, "backend.test");
	CU_ASSERT_EQUAL(decide(s, "alice", NULL, "/api/users"), POLICY_ALLOW);
	CU_ASSERT_EQUAL(decide(s, "alice", NULL, "/api/admin/x"), POLICY_DENY);
	CU_ASSERT_EQUAL(decide(s, "bob", NULL, "/public/a"), POLICY_ALLOW);
	CU_ASSERT_EQUAL(decide(s, "bob", NULL, "/api"), POLICY_DENY);
	CU_ASSERT_EQUAL(decide(s, "web", "spiffe://example.org/ns/prod/sa/web", "/api"),
	                POLICY_ALLOW);
	CU_ASSERT_EQUAL(decide(s, "mallory", NULL, "/public"), POLICY_DENY);
	conf_snapshot_free(s);
	conf_diags_clear(&d);
}

static void test_example_conf(void)
{
	struct conf_diags d = {0};
	char src[512];

	snprintf(src, sizeof(src), "%s/conf/gateway.conf.example", getenv("GW_SRC"));
	CU_ASSERT_EQUAL_FATAL(conf_test_copy(src, "example.conf"), 0);
	struct conf_snapshot *s = conf_test_load("example.conf", &d, true);
	CU_ASSERT_PTR_NOT_NULL(s);
	CU_ASSERT_EQUAL(d.n, 0);
	conf_snapshot_free(s);
	conf_diags_clear(&d);
}

/* Relative names follow the file, not the current directory. */
static void test_relative_paths(void)
{
	struct conf_diags d = {0};
	char cwd[512];

	CU_ASSERT_EQUAL_FATAL(conf_test_write("rel.conf",
	                                      "listeners = ( { address = \"127.0.0.1:1\"; tls = {\n"
	                                      "  cert = \"server.crt\"; key = \"./server.key\";\n"
	                                      "  client_ca = \"nothere.pem\";\n"
	                                      "}; } );\n"),
	                      0);
	/* pki must name the resolved path of the missing bundle, at the tls group's line. */
	struct conf_snapshot *s = conf_test_load("rel.conf", &d, false);
	CU_ASSERT_PTR_NULL(s);
	char expect[600];
	snprintf(expect, sizeof(expect), "rel.conf:1: %s/nothere.pem", conf_test_dir());
	CU_ASSERT_TRUE(conf_test_has(&d, expect));
	conf_diags_clear(&d);

	CU_ASSERT_PTR_NOT_NULL_FATAL(getcwd(cwd, sizeof(cwd)));
	CU_ASSERT_EQUAL_FATAL(chdir("/"), 0);
	char data[512];
	snprintf(data, sizeof(data), "%s/conf/minimal.conf", cu_data_dir());
	CU_ASSERT_EQUAL(conf_test_copy(data, "minimal.conf"), 0);
	s = conf_test_load("minimal.conf", &d, true);
	CU_ASSERT_EQUAL(chdir(cwd), 0);
	CU_ASSERT_PTR_NOT_NULL(s);
	conf_snapshot_free(s);
	conf_diags_clear(&d);
}

/* Included files: names in diagnostics and relative paths follow the included file. */
static void test_include(void)
{
	struct conf_diags d = {0};
	char dir[512], expect[600];

	snprintf(dir, sizeof(dir), "%s/incs", conf_test_dir());
	CU_ASSERT_FATAL(mkdir(dir, 0700) == 0 || errno == EEXIST);
	CU_ASSERT_EQUAL_FATAL(
	    conf_test_write("incs/listeners.inc",
	                    "listeners = ( { address = \"127.0.0.1:8443\";\n"
	                    "  tls = { cert = \"../server.crt\"; key = \"../server.key\";\n"
	                    "          client_ca = \"../ca.crt\"; }; } );\n"),
	    0);
	CU_ASSERT_EQUAL_FATAL(conf_test_write("incs/bad.inc", "\ncolour = 1;\n"), 0);
	CU_ASSERT_EQUAL_FATAL(conf_test_write("inc.conf", "@include \"incs/listeners.inc\"\n"), 0);
	CU_ASSERT_EQUAL_FATAL(conf_test_write("inc2.conf", "@include \"incs/listeners.inc\"\n"
	                                                   "@include \"incs/bad.inc\"\n"),
	                      0);
	struct conf_snapshot *s = conf_test_load("inc.conf", &d, true);
	CU_ASSERT_PTR_NOT_NULL(s);
	CU_ASSERT_EQUAL(d.n_errors, 0);
	conf_snapshot_free(s);
	conf_diags_clear(&d);

	CU_ASSERT_PTR_NULL(conf_test_load("inc2.conf", &d, false));
	CU_ASSERT_EQUAL(d.n_errors, 1);
	snprintf(expect, sizeof(expect), "%s/incs/bad.inc:2: unknown key 'colour'",
	         conf_test_dir());
	CU_ASSERT_TRUE(conf_test_has(&d, expect));
	conf_diags_clear(&d);
}

static void test_listeners_equal(void)
{
	struct conf_diags d = {0};
	static const char *const texts[] = {
	    "listeners = ( { address = \"127.0.0.1:8443\"; tls = { cert = \"server.crt\"; key = "
	    "\"server.key\"; client_ca = \"ca.crt\"; }; } );\n",
	    "listeners = ( { address = \"127.0.0.1:8443\"; tls = { cert = \"server-rsa.crt\"; key "
	    "= \"server-rsa.key\"; client_ca = \"client-cas.pem\"; }; } );\n",
	    "listeners = ( { address = \"127.0.0.1:8444\"; tls = { cert = \"server.crt\"; key = "
	    "\"server.key\"; client_ca = \"ca.crt\"; }; } );\n",
	};
	struct conf_snapshot *s[3];

	for (int i = 0; i < 3; i++) {
		char name[32];
		snprintf(name, sizeof(name), "eq%d.conf", i);
		CU_ASSERT_EQUAL_FATAL(conf_test_write(name, texts[i]), 0);
		s[i] = conf_test_load(name, &d, true);
		CU_ASSERT_PTR_NOT_NULL_FATAL(s[i]);
	}
	/* Only addresses count: a different certificate still reuses the sockets. */
	CU_ASSERT_TRUE(conf_listeners_equal(s[0], s[1]));
	CU_ASSERT_FALSE(conf_listeners_equal(s[0], s[2]));
	CU_ASSERT_TRUE(conf_listeners_equal(s[2], s[2]));
	for (int i = 0; i < 3; i++)
		conf_snapshot_free(s[i]);
	conf_diags_clear(&d);
}

static void test_missing_file_and_string_syntax(void)
{
	struct conf_diags d = {0};

	CU_ASSERT_PTR_NULL(conf_load("/nonexistent/gw.conf", &d));
	CU_ASSERT_EQUAL(d.n_errors, 1);
	CU_ASSERT_TRUE(conf_test_has(&d, "/nonexistent/gw.conf: cannot open: No such file"));
	conf_diags_clear(&d);

	CU_ASSERT_PTR_NULL(conf_load_string("workers = 1;\n\nlisteners = ( { ;\n", "mem.conf", &d));
	CU_ASSERT_EQUAL(d.n_errors, 1);
	CU_ASSERT_TRUE(conf_test_has(&d, "mem.conf:3: syntax error"));
	conf_diags_clear(&d);

	/* Without a diags list the load still fails. */
	CU_ASSERT_PTR_NULL(conf_load_string("workers = 1;", "mem.conf", NULL));
	CU_ASSERT_PTR_NULL(conf_load_string(NULL, "mem.conf", &d));
	CU_ASSERT_EQUAL(d.n_errors, 1);
	conf_diags_clear(&d);
}

/* Warnings alone do not fail a load. */
static void test_warnings(void)
{
	struct conf_diags d = {0};

	CU_ASSERT_EQUAL_FATAL(
	    conf_test_write(
	        "warn.conf",
	        "listeners = ( { address = \"127.0.0.1:8443\";\n"
	        "  tls = { cert = \"server.crt\"; key = \"server.key\"; client_ca = \"ca.crt\";\n"
	        "          require_client_cert = false; insecure_no_client_cert = true; }; } );\n"
	        "clusters = ( { name = \"app\"; servers = ( { address = \"127.0.0.1:9001\"; } );\n"
	        "  tls = { verify = false; }; } );\n"),
	    0);
	struct conf_snapshot *s = conf_test_load("warn.conf", &d, true);
	CU_ASSERT_PTR_NOT_NULL(s);
	CU_ASSERT_EQUAL(d.n_errors, 0);
	CU_ASSERT_TRUE(conf_test_has(&d, "warn.conf:3: warning: listener 127.0.0.1:8443 accepts "
	                                 "clients without a certificate"));
	CU_ASSERT_TRUE(conf_test_has(&d, "warn.conf:5: warning: TLS verification of cluster app is "
	                                 "disabled"));
	CU_ASSERT_TRUE(conf_test_has(&d, "warn.conf: warning: no routes: every request will be "
	                                 "answered 404"));
	CU_ASSERT_TRUE(conf_test_has(&d, "warn.conf: warning: no policy rules: every request will "
	                                 "be denied"));
	CU_ASSERT_EQUAL(d.n, 4);
	conf_snapshot_free(s);
	conf_diags_clear(&d);
}

/* Three unrelated mistakes are all reported in one run, in line order. */
static void test_three_errors(void)
{
	struct conf_diags d = {0};

	CU_ASSERT_EQUAL_FATAL(
	    conf_test_write(
	        "three.conf",
	        "listeners = ( { address = \"127.0.0.1:8443\";\n"
	        "  tls = { cert = \"missing.crt\"; key = \"server.key\"; client_ca = \"ca.crt\"; "
	        "}; } );\n"
	        "clusters = ( { name = \"app\"; servers = ( { address = \"127.0.0.1:9001\"; } );\n"
	        "  tls = { ca = \"backend-ca.crt\"; colour = \"red\"; }; } );\n"
	        "routes = ( { prefix = \"/\"; cluster = \"nope\"; } );\n"
	        "policy = ( { cn = \"alice\"; allow = [ \"/\" ]; } );\n"),
	    0);
	CU_ASSERT_PTR_NULL(conf_test_load("three.conf", &d, false));
	CU_ASSERT_EQUAL(d.n_errors, 3);
	CU_ASSERT_EQUAL_FATAL(d.n, 3);
	char expect[600];
	snprintf(expect, sizeof(expect), "three.conf:2: %s/missing.crt", conf_test_dir());
	CU_ASSERT_PTR_NOT_NULL(strstr(d.v[0].text, expect));
	CU_ASSERT_PTR_NOT_NULL(strstr(d.v[1].text, "three.conf:4: unknown key 'colour' in "
	                                           "'clusters[0].tls'"));
	CU_ASSERT_PTR_NOT_NULL(strstr(d.v[2].text, "three.conf:5: 'routes[0].cluster' names "
	                                           "unknown cluster 'nope'"));
	conf_diags_clear(&d);
}

CU_SUITE(conf_load, conf_test_init, NULL, {"minimal_defaults", test_minimal_defaults},
         {"full", test_full}, {"default_conf", test_default_conf},
         {"example_conf", test_example_conf}, {"relative_paths", test_relative_paths},
         {"include", test_include}, {"listeners_equal", test_listeners_equal},
         {"missing_file_and_string_syntax", test_missing_file_and_string_syntax},
         {"warnings", test_warnings}, {"three_errors", test_three_errors})
