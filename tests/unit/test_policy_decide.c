/*
 * policy_build / policy_decide / routes: one table per behaviour. Rules carry their
 * index as their line number so each decision can be traced to the rule that made it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cu.h"
#include "policy.h"

#define FP_A "3f1a7c0e5b2d4f6a8c9e1b3d5f7a9c0e2b4d6f8a1c3e5b7d9f0a2c4e6b8d0f1a"

/* ---- helpers ---- */

struct report_log {
	unsigned n, errors;
	char text[16][600];
};

static void report_collect(void *arg, bool is_error, const char *file, int line, const char *msg)
{
	struct report_log *log = arg;

	if (is_error)
		log->errors++;
	if (log->n < 16)
		snprintf(log->text[log->n], sizeof(log->text[0]), "%s:%d: %s", file ? file : "-",
		         line, msg);
	log->n++;
}

static struct policy *build(const struct policy_rule_spec *rules, size_t n_rules,
                            const struct policy_route_spec *routes, size_t n_routes)
{
	const struct policy_spec spec = {routes, n_routes, rules, n_rules, NULL, 0};
	struct report_log log = {0};
	struct policy *p = NULL;

	if (policy_build(&spec, report_collect, &log, &p) != 0)
		for (unsigned i = 0; i < log.n && i < 16; i++)
			fprintf(stderr, "unexpected: %s\n", log.text[i]);
	return p;
}

/* Line of the deciding rule, 0 for the default deny; effect checked by the caller. */
static int decide_line(const struct policy *p, const struct authn_principal *who, unsigned m,
                       const char *path, enum policy_effect *effect)
{
	struct policy_decision d;
	int line = -1;

	policy_decide(p, who, m, path, strlen(path), &d);
	const char *file = policy_rule_file(d.rule, &line);
	*effect = d.effect;
	if (!d.rule && (file || line != 0))
		return -1;
	return line;
}

struct decide_case {
	int who; /* index into the test's principal array */
	unsigned method;
	const char *path;
	enum policy_effect effect;
	int line; /* deciding rule's line, 0 = default deny */
};

static void run_cases(const struct policy *p, const struct authn_principal *const *who,
                      const struct decide_case *c, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		enum policy_effect e;
		int line = decide_line(p, who[c[i].who], c[i].method, c[i].path, &e);
		if (e != c[i].effect || line != c[i].line)
			fprintf(stderr, "%s case %zu (%s): effect %d line %d, want %d %d\n", name,
			        i, c[i].path, e, line, c[i].effect, c[i].line);
		CU_ASSERT_EQUAL(e, c[i].effect);
		CU_ASSERT_EQUAL(line, c[i].line);
	}
}

static const char *const P_ROOT[] = {"/"};
static const char *const P_S1[] = {"/s1"};
static const char *const P_S2[] = {"/s2"};
static const char *const P_CN[] = {"/cn"};
static const char *const P_DNS[] = {"/dns"};
static const char *const P_FP[] = {"/fp"};
static const char *const P_SUB[] = {"/sub"};
static const char *const P_SCOPE[] = {"/scope"};
static const char *const P_HEALTH[] = {"/health"};

/* ---- matchers ---- */

static void test_matchers(void)
{
	const struct policy_rule_spec rules[] = {
	    {POLICY_ALLOW, POLICY_WHO_SPIFFE, "spiffe://ex.org/ns/prod/sa/web", P_S1, 1, 0, "p", 1,
	     NULL},
	    {POLICY_ALLOW, POLICY_WHO_SPIFFE_PREFIX, "spiffe://ex.org/ns/prod/*", P_S2, 1, 0, "p",
	     2, NULL},
	    {POLICY_ALLOW, POLICY_WHO_CN, "alice", P_CN, 1, 0, "p", 3, NULL},
	    {POLICY_ALLOW, POLICY_WHO_SAN_DNS, "svc.ex.org", P_DNS, 1, 0, "p", 4, NULL},
	    {POLICY_ALLOW, POLICY_WHO_FINGERPRINT, FP_A, P_FP, 1, 0, "p", 5, NULL},
	    {POLICY_ALLOW, POLICY_WHO_TOKEN_SUB, "user-7", P_SUB, 1, 0, "p", 6, NULL},
	    {POLICY_ALLOW, POLICY_WHO_SCOPE, "read:x", P_SCOPE, 1, 0, "p", 7, NULL},
	    {POLICY_ALLOW, POLICY_WHO_ANY, NULL, P_HEALTH, 1, 0, "p", 8, NULL},
	};
	char *dns[] = {(char *)"other.ex.org", (char *)"svc.ex.org"};
	char *scopes[] = {(char *)"write:y", (char *)"read:x"};
	struct authn_cert_id web = {.spiffe_id = (char *)"spiffe://ex.org/ns/prod/sa/web"};
	struct authn_cert_id db = {.spiffe_id = (char *)"spiffe://ex.org/ns/prod/sa/db"};
	struct authn_cert_id dev = {.spiffe_id = (char *)"spiffe://ex.org/ns/dev/sa/web"};
	struct authn_cert_id prodx = {.spiffe_id = (char *)"spiffe://ex.org/ns/prodx/sa/web"};
	struct authn_cert_id alice = {.cn = (char *)"alice", .san_dns = dns, .n_dns = 2};
	struct authn_cert_id fp = {.cn = (char *)"nobody"};
	memcpy(fp.sha256_hex, FP_A, 65);
	const struct authn_principal pw = {.cert = &web}, pdb = {.cert = &db},
	                             pdev = {.cert = &dev}, pprodx = {.cert = &prodx},
	                             palice = {.cert = &alice}, pfp = {.cert = &fp},
	                             ptok = {.has_token = true,
	                                     .token = {.sub = (char *)"user-7",
	                                               .scopes = scopes,
	                                               .n_scopes = 2}};
	const struct authn_principal *who[] = {&pw, &pdb, &pdev, &pprodx, &palice, &pfp, &ptok};
	const struct decide_case cases[] = {
	    {0, POLICY_M_GET, "/s1", POLICY_ALLOW, 1},
	    {0, POLICY_M_GET, "/s2/x", POLICY_ALLOW, 2},
	    {1, POLICY_M_GET, "/s1", POLICY_DENY, 0},
	    {1, POLICY_M_GET, "/s2", POLICY_ALLOW, 2},
	    {2, POLICY_M_GET, "/s2", POLICY_DENY, 0},
	    {3, POLICY_M_GET, "/s2", POLICY_DENY, 0},
	    {4, POLICY_M_GET, "/cn/a", POLICY_ALLOW, 3},
	    {4, POLICY_M_GET, "/dns", POLICY_ALLOW, 4},
	    {4, POLICY_M_GET, "/fp", POLICY_DENY, 0},
	    {5, POLICY_M_GET, "/fp", POLICY_ALLOW, 5},
	    {5, POLICY_M_GET, "/cn", POLICY_DENY, 0},
	    {6, POLICY_M_GET, "/sub", POLICY_ALLOW, 6},
	    {6, POLICY_M_GET, "/scope", POLICY_ALLOW, 7},
	    {6, POLICY_M_GET, "/cn", POLICY_DENY, 0},
	    {0, POLICY_M_GET, "/health", POLICY_ALLOW, 8},
	    {6, POLICY_M_GET, "/health", POLICY_ALLOW, 8},
	    {4, POLICY_M_GET, "/healthz", POLICY_DENY, 0},
	};
	struct policy *p = build(rules, sizeof(rules) / sizeof(rules[0]), NULL, 0);

	CU_ASSERT_FATAL(p != NULL);
	CU_ASSERT_EQUAL(policy_n_rules(p), 8);
	run_cases(p, who, cases, sizeof(cases) / sizeof(cases[0]), "matchers");
	/* A token-less principal with a token struct present must not use it. */
	struct authn_principal stale = ptok;
	stale.has_token = false;
	enum policy_effect e;
	CU_ASSERT_EQUAL(decide_line(p, &stale, POLICY_M_GET, "/sub", &e), 0);
	CU_ASSERT_EQUAL(e, POLICY_DENY);
	policy_free(p);
}

/* ---- deny over allow, specificity, methods, segments, case ---- */

static void test_deny_and_specificity(void)
{
	static const char *const api[] = {"/api"}, *const adm[] = {"/api/admin"};
	static const char *const a[] = {"/a"}, *const ab[] = {"/a/b"};
	const struct policy_rule_spec rules[] = {
	    {POLICY_ALLOW, POLICY_WHO_CN, "alice", api, 1, 0, "p", 1, NULL},
	    {POLICY_DENY, POLICY_WHO_CN, "alice", adm, 1, 0, "p", 2, NULL},
	    {POLICY_ALLOW, POLICY_WHO_ANY, NULL, P_ROOT, 1, 0, "p", 3, NULL},
	    {POLICY_DENY, POLICY_WHO_SCOPE, "banned", a, 1, 0, "p", 4, NULL},
	    {POLICY_ALLOW, POLICY_WHO_CN, "alice", ab, 1, 0, "p", 5, NULL},
	};
	char *scopes[] = {(char *)"banned"};
	struct authn_cert_id alice = {.cn = (char *)"alice"};
	const struct authn_principal pa = {.cert = &alice},
	                             pab = {.cert = &alice,
	                                    .has_token = true,
	                                    .token = {.scopes = scopes, .n_scopes = 1}};
	const struct authn_principal *who[] = {&pa, &pab};
	const struct decide_case cases[] = {
	    {0, POLICY_M_GET, "/api/x", POLICY_ALLOW, 1},
	    {0, POLICY_M_GET, "/api/admin", POLICY_DENY, 2},
	    {0, POLICY_M_GET, "/api/admin/x", POLICY_DENY, 2},
	    {0, POLICY_M_GET, "/api/adminx", POLICY_ALLOW, 1},
	    {0, POLICY_M_GET, "/other", POLICY_ALLOW, 3}, /* ANY on "/" */
	    {0, POLICY_M_GET, "/a/b/c", POLICY_ALLOW, 5}, /* most specific allow */
	    {1, POLICY_M_GET, "/a/b/c", POLICY_DENY, 4},  /* shorter deny beats longer allow */
	    {1, POLICY_M_GET, "/api/admin", POLICY_DENY, 2},
	    {1, POLICY_M_GET, "/ab", POLICY_ALLOW, 3},
	};
	struct policy *p = build(rules, sizeof(rules) / sizeof(rules[0]), NULL, 0);

	CU_ASSERT_FATAL(p != NULL);
	run_cases(p, who, cases, sizeof(cases) / sizeof(cases[0]), "deny");
	policy_free(p);
}

static void test_methods_segments_case(void)
{
	static const char *const r[] = {"/r"}, *const rw[] = {"/r/w"}, *const users[] = {"/users"};
	static const char *const adm[] = {"/admin"};
	const struct policy_rule_spec rules[] = {
	    {POLICY_ALLOW, POLICY_WHO_CN, "bob", r, 1, POLICY_M_GET | POLICY_M_HEAD, "p", 1, NULL},
	    {POLICY_ALLOW, POLICY_WHO_CN, "bob", rw, 1, 0, "p", 2, NULL},
	    {POLICY_DENY, POLICY_WHO_CN, "bob", rw, 1, POLICY_M_DELETE, "p", 3, NULL},
	    {POLICY_ALLOW, POLICY_WHO_CN, "bob", users, 1, 0, "p", 4, NULL},
	    {POLICY_ALLOW, POLICY_WHO_CN, "admin", adm, 1, 0, "p", 5, NULL},
	    {POLICY_ALLOW, POLICY_WHO_SAN_DNS, "svc.ex.org", adm, 1, 0, "p", 6, NULL},
	    {POLICY_ALLOW, POLICY_WHO_TOKEN_SUB, "admin", adm, 1, 0, "p", 7, NULL},
	};
	char *dns[] = {(char *)"SVC.ex.org"};
	struct authn_cert_id bob = {.cn = (char *)"bob"};
	struct authn_cert_id up = {.cn = (char *)"Admin", .san_dns = dns, .n_dns = 1};
	struct authn_cert_id sp = {.cn = (char *)"admin "};
	const struct authn_principal pb = {.cert = &bob}, pu = {.cert = &up}, psp = {.cert = &sp},
	                             ptok = {.has_token = true, .token = {.sub = (char *)"ADMIN"}};
	const struct authn_principal *who[] = {&pb, &pu, &psp, &ptok};
	const struct decide_case cases[] = {
	    {0, POLICY_M_GET, "/r", POLICY_ALLOW, 1},
	    {0, POLICY_M_HEAD, "/r/x", POLICY_ALLOW, 1},
	    {0, POLICY_M_POST, "/r", POLICY_DENY, 0},
	    {0, POLICY_M_OTHER, "/r", POLICY_DENY, 0},
	    {0, POLICY_M_POST, "/r/w", POLICY_ALLOW, 2},
	    {0, POLICY_M_DELETE, "/r/w/1", POLICY_DENY, 3},
	    {0, POLICY_M_GET | POLICY_M_POST, "/r", POLICY_DENY, 0}, /* not one method */
	    {0, 0, "/r", POLICY_DENY, 0},
	    {0, POLICY_M_GET, "/users", POLICY_ALLOW, 4},
	    {0, POLICY_M_GET, "/users/", POLICY_ALLOW, 4},
	    {0, POLICY_M_GET, "/users/7", POLICY_ALLOW, 4},
	    {0, POLICY_M_GET, "/usersx", POLICY_DENY, 0},
	    {0, POLICY_M_GET, "/user", POLICY_DENY, 0},
	    {0, POLICY_M_GET, "/", POLICY_DENY, 0},
	    {1, POLICY_M_GET, "/admin", POLICY_DENY, 0}, /* CN=Admin, DNS upper-case */
	    {2, POLICY_M_GET, "/admin", POLICY_DENY, 0}, /* trailing space */
	    {3, POLICY_M_GET, "/admin", POLICY_DENY, 0},
	};
	struct policy *p = build(rules, sizeof(rules) / sizeof(rules[0]), NULL, 0);

	CU_ASSERT_FATAL(p != NULL);
	run_cases(p, who, cases, sizeof(cases) / sizeof(cases[0]), "methods");
	policy_free(p);
}

static void test_default_and_empty(void)
{
	static const char *const x[] = {"/x"};
	const struct policy_rule_spec rule = {POLICY_ALLOW, POLICY_WHO_CN, "carol", x, 1, 0, "p", 1,
	                                      NULL};
	struct authn_cert_id dave = {.cn = (char *)"dave"};
	const struct authn_principal pd = {.cert = &dave}, none = {0};
	const struct authn_principal *who[] = {&pd, &none};
	const struct decide_case cases[] = {
	    {0, POLICY_M_GET, "/x", POLICY_DENY, 0},
	    {1, POLICY_M_GET, "/x", POLICY_DENY, 0},
	    {0, POLICY_M_GET, "/", POLICY_DENY, 0},
	};
	struct policy *p = build(&rule, 1, NULL, 0);
	struct policy *empty = build(NULL, 0, NULL, 0);
	struct policy_decision d = {POLICY_ALLOW, NULL};

	CU_ASSERT_FATAL(p != NULL && empty != NULL);
	run_cases(p, who, cases, sizeof(cases) / sizeof(cases[0]), "default");
	run_cases(empty, who, cases, sizeof(cases) / sizeof(cases[0]), "empty");
	CU_ASSERT_EQUAL(policy_n_rules(empty), 0);
	CU_ASSERT_EQUAL(policy_n_routes(empty), 0);
	CU_ASSERT_PTR_NULL(policy_route_lookup(empty, "/", 1));
	policy_decide(p, NULL, POLICY_M_GET, "/x", 2, &d);
	CU_ASSERT_EQUAL(d.effect, POLICY_DENY);
	policy_free(p);
	policy_free(empty);
	policy_free(NULL);
}

/* Many rules: every identity still finds exactly its own rule. */
static void test_many_rules(void)
{
	enum { N = 5000 };
	struct policy_rule_spec *rules = calloc(N, sizeof(*rules));
	char(*names)[16] = calloc(N, sizeof(*names));
	char(*paths)[16] = calloc(N, sizeof(*paths));
	const char **pp = calloc(N, sizeof(*pp));

	CU_ASSERT_FATAL(rules && names && paths && pp);
	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "user%d", i);
		snprintf(paths[i], sizeof(paths[i]), "/u/%d", i);
		pp[i] = paths[i];
		rules[i] = (struct policy_rule_spec){
		    POLICY_ALLOW, POLICY_WHO_CN, names[i], &pp[i], 1, 0, "p", i + 1, NULL};
	}
	struct policy *p = build(rules, N, NULL, 0);
	CU_ASSERT_FATAL(p != NULL);
	for (int i = 0; i < N; i += 97) {
		struct authn_cert_id c = {.cn = names[i]};
		const struct authn_principal who = {.cert = &c};
		enum policy_effect e;
		CU_ASSERT_EQUAL(decide_line(p, &who, POLICY_M_GET, paths[i], &e), i + 1);
		CU_ASSERT_EQUAL(e, POLICY_ALLOW);
		CU_ASSERT_EQUAL(decide_line(p, &who, POLICY_M_GET, paths[(i + 1) % N], &e), 0);
		CU_ASSERT_EQUAL(e, POLICY_DENY);
	}
	policy_free(p);
	free(rules);
	free(names);
	free(paths);
	free(pp);
}

/* ---- routes ---- */

static void test_routes(void)
{
	const struct policy_route_spec routes[] = {
	    {"/api", "/v1", 1, POLICY_NEED_CERT, "r", 1},
	    {"/api/admin", NULL, 2, POLICY_NEED_CERT_TOKEN, "r", 2},
	    {"/", NULL, 0, POLICY_NEED_CERT, "r", 3},
	    {"/strip", "/", 3, POLICY_NEED_CERT, "r", 4},
	};
	const struct {
		const char *path;
		unsigned cluster;
		const char *fwd;
	} cases[] = {
	    {"/api/x", 1, "/v1/x"},
	    {"/api", 1, "/v1"},
	    {"/api/", 1, "/v1/"},
	    {"/api/admin/u", 2, "/api/admin/u"},
	    {"/api/adminx", 1, "/v1/adminx"},
	    {"/apix", 0, "/apix"},
	    {"/", 0, "/"},
	    {"/strip/x/y", 3, "/x/y"},
	    {"/strip", 3, "/"},
	    {"/strip/", 3, "/"},
	};
	struct policy *p = build(NULL, 0, routes, 4);
	char out[64];
	size_t n;

	CU_ASSERT_FATAL(p != NULL);
	CU_ASSERT_EQUAL(policy_n_routes(p), 4);
	CU_ASSERT_STRING_EQUAL(policy_route_at(p, 3)->prefix, "/strip");
	CU_ASSERT_PTR_NULL(policy_route_at(p, 4));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct policy_route *r =
		    policy_route_lookup(p, cases[i].path, strlen(cases[i].path));
		CU_ASSERT_FATAL(r != NULL);
		CU_ASSERT_EQUAL(r->cluster, cases[i].cluster);
		CU_ASSERT_EQUAL(policy_route_rewrite(r, cases[i].path, strlen(cases[i].path), out,
		                                     sizeof(out), &n),
		                0);
		if (strcmp(out, cases[i].fwd) != 0)
			fprintf(stderr, "route %s -> %s, want %s\n", cases[i].path, out,
			        cases[i].fwd);
		CU_ASSERT_STRING_EQUAL(out, cases[i].fwd);
		CU_ASSERT_EQUAL(n, strlen(cases[i].fwd));
	}
	const struct policy_route *api = policy_route_at(p, 0);
	/* "/v1/x" needs 6 bytes with its NUL. */
	CU_ASSERT_EQUAL(policy_route_rewrite(api, "/api/x", 6, out, 5, &n), -1);
	CU_ASSERT_EQUAL(policy_route_rewrite(api, "/api/x", 6, out, 6, &n), 0);
	CU_ASSERT_EQUAL(policy_route_rewrite(api, "/other", 6, out, sizeof(out), &n), -1);
	policy_free(p);

	/* A policy without a "/" route has 404s. */
	p = build(NULL, 0, routes, 2);
	CU_ASSERT_FATAL(p != NULL);
	CU_ASSERT_PTR_NULL(policy_route_lookup(p, "/apix", 5));
	CU_ASSERT_PTR_NULL(policy_route_lookup(p, "/", 1));
	policy_free(p);
}

/* ---- build errors ---- */

static void test_build_errors(void)
{
	static const char *const bad1[] = {"/a/"}, *const ok[] = {"/ok"};
	static const char *const bad2[] = {"/ok", "/x/%41"};
	const struct policy_route_spec routes[] = {
	    {"/a/../b", NULL, 0, POLICY_NEED_CERT, "routes.conf", 10},
	    {"/api", NULL, 0, POLICY_NEED_CERT, "routes.conf", 11},
	    {"/api", NULL, 1, POLICY_NEED_CERT, "routes.conf", 12},
	    {"/v", "/v1/", 0, POLICY_NEED_CERT, "routes.conf", 13},
	};
	const struct policy_rule_spec rules[] = {
	    {POLICY_ALLOW, POLICY_WHO_CN, "a", bad1, 1, 0, "rules.conf", 20, NULL},
	    {POLICY_ALLOW, POLICY_WHO_SPIFFE, "spiffe://Ex.org/a", ok, 1, 0, "rules.conf", 21,
	     NULL},
	    {POLICY_ALLOW, POLICY_WHO_SPIFFE_PREFIX, "spiffe://ex.org/a", ok, 1, 0, "rules.conf",
	     22, NULL},
	    {POLICY_ALLOW, POLICY_WHO_FINGERPRINT, "ABCD", ok, 1, 0, "rules.conf", 23, NULL},
	    {POLICY_ALLOW, POLICY_WHO_CN, "", ok, 1, 0, "rules.conf", 24, NULL},
	    {POLICY_ALLOW, POLICY_WHO_CN, "a", ok, 0, 0, "rules.conf", 25, NULL},
	    {POLICY_ALLOW, POLICY_WHO_CN, "a", bad2, 2, 0, "rules.conf", 26, NULL},
	    {POLICY_ALLOW, POLICY_WHO_SPIFFE_PREFIX, "spiffe://ex.org/a/*", ok, 1, 0, "rules.conf",
	     27, NULL},
	};
	const char *const want[] = {
	    "routes.conf:10: ", "routes.conf:12: ", "routes.conf:13: ", "rules.conf:20: ",
	    "rules.conf:21: ",  "rules.conf:22: ",  "rules.conf:23: ",  "rules.conf:24: ",
	    "rules.conf:25: ",  "rules.conf:26: ",
	};
	const struct policy_spec spec = {routes, 4, rules, 8, NULL, 0};
	struct report_log log = {0};
	struct policy *p = (struct policy *)&log; /* must be reset to NULL */

	CU_ASSERT_EQUAL(policy_build(&spec, report_collect, &log, &p), -1);
	CU_ASSERT_PTR_NULL(p);
	CU_ASSERT_EQUAL(log.errors, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; log.errors != sizeof(want) / sizeof(want[0]) && i < log.n && i < 16; i++)
		fprintf(stderr, "  reported: %s\n", log.text[i]);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]) && i < log.n; i++)
		CU_ASSERT_NSTRING_EQUAL(log.text[i], want[i], strlen(want[i]));
	CU_ASSERT_PTR_NOT_NULL(strstr(log.text[1], "duplicate"));
	CU_ASSERT_PTR_NOT_NULL(strstr(log.text[1], "routes.conf:11"));

	/* Each valid part alone builds; no report callback is fine too. */
	const struct policy_spec good = {&routes[1], 1, &rules[7], 1, NULL, 0};
	CU_ASSERT_EQUAL(policy_build(&good, NULL, NULL, &p), 0);
	CU_ASSERT_PTR_NOT_NULL(p);
	policy_free(p);
	const struct policy_spec bad = {&routes[1], 2, NULL, 0, NULL, 0};
	CU_ASSERT_EQUAL(policy_build(&bad, NULL, NULL, &p), -1);
	CU_ASSERT_PTR_NULL(p);
}

/* A value that can never match is a warning, not an error: the policy still builds. */
static void test_build_warning(void)
{
	const struct policy_rule_spec rule = {
	    POLICY_ALLOW, POLICY_WHO_CN, "bad\tname", P_ROOT, 1, 0, "w.conf", 7, NULL};
	const struct policy_spec spec = {NULL, 0, &rule, 1, NULL, 0};
	struct report_log log = {0};
	struct policy *p = NULL;

	CU_ASSERT_EQUAL(policy_build(&spec, report_collect, &log, &p), 0);
	CU_ASSERT_PTR_NOT_NULL(p);
	CU_ASSERT_EQUAL(log.n, 1);
	CU_ASSERT_EQUAL(log.errors, 0);
	CU_ASSERT_NSTRING_EQUAL(log.text[0], "w.conf:7: ", 10);
	policy_free(p);
}

CU_SUITE(policy_decide, NULL, NULL, {"matchers", test_matchers},
         {"deny_and_specificity", test_deny_and_specificity},
         {"methods_segments_case", test_methods_segments_case},
         {"default_and_empty", test_default_and_empty}, {"many_rules", test_many_rules},
         {"routes", test_routes}, {"build_errors", test_build_errors},
         {"build_warning", test_build_warning})
