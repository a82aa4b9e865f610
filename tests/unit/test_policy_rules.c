/*
 * Groups, build-time warnings (shadowed and duplicate rules, allows no route serves),
 * the digest and the formatters. Rules carry their index + 1 as their line, so every
 * expected warning names the line of the rule it is about.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cu.h"
#include "policy.h"

#define MAX_MSGS 16

struct msgs {
	unsigned n, errors;
	char text[MAX_MSGS][600];
};

static void collect(void *arg, bool is_error, const char *file, int line, const char *msg)
{
	struct msgs *m = arg;

	if (is_error)
		m->errors++;
	if (m->n < MAX_MSGS)
		snprintf(m->text[m->n], sizeof(m->text[0]), "%s%s:%d: %s", is_error ? "E " : "W ",
		         file ? file : "-", line, msg);
	m->n++;
}

static void dump(const struct msgs *m)
{
	for (unsigned i = 0; i < m->n && i < MAX_MSGS; i++)
		fprintf(stderr, "  reported: %s\n", m->text[i]);
}

/* Index of the first message containing both needles, or -1. */
static int find_msg(const struct msgs *m, const char *a, const char *b)
{
	for (unsigned i = 0; i < m->n && i < MAX_MSGS; i++)
		if (strstr(m->text[i], a) && (!b || strstr(m->text[i], b)))
			return (int)i;
	return -1;
}

static const char *const P_X[] = {"/x"}, *const P_XY[] = {"/x/y"}, *const P_Z[] = {"/z"};
static const char *const P_XZ[] = {"/x", "/z"}, *const P_ZX[] = {"/z", "/x"};
static const char *const P_ROOT[] = {"/"}, *const P_API[] = {"/api"};
static const char *const P_NOWHERE[] = {"/nowhere"}, *const P_APIX[] = {"/api/x"};

#define R(eff, who, val, pf, m, line)                                                              \
	{                                                                                          \
		eff, who, val, pf, sizeof(pf) / sizeof(pf[0]), m, "p", line, NULL                  \
	}
#define RG(eff, grp, pf, m, line)                                                                  \
	{                                                                                          \
		eff, POLICY_WHO_ANY, NULL, pf, sizeof(pf) / sizeof(pf[0]), m, "p", line, grp       \
	}

/* ---- shadowing and duplicates ---- */

struct lint_case {
	const char *name;
	struct policy_rule_spec rules[4];
	size_t n;
	const char *want[2]; /* substrings of expected warnings ("p:LINE: ..."), NULL = none */
};

static const struct policy_member_spec AB[] = {{POLICY_WHO_CN, "a"}, {POLICY_WHO_CN, "b"}};
static const struct policy_group_spec G_AB = {"ab", AB, 2, "g", 1};

static const struct lint_case lint_cases[] = {
    {"duplicate",
     {R(POLICY_ALLOW, POLICY_WHO_CN, "a", P_X, 0, 1),
      R(POLICY_ALLOW, POLICY_WHO_CN, "a", P_X, 0, 2)},
     2,
     {"p:2: rule duplicates the rule at p:1", NULL}},
    {"duplicate with prefixes in another order",
     {R(POLICY_DENY, POLICY_WHO_CN, "a", P_XZ, 0, 1),
      R(POLICY_DENY, POLICY_WHO_CN, "a", P_ZX, 0, 2)},
     2,
     {"p:2: rule duplicates the rule at p:1", NULL}},
    {"allow below an earlier deny",
     {R(POLICY_DENY, POLICY_WHO_CN, "a", P_X, 0, 1),
      R(POLICY_ALLOW, POLICY_WHO_CN, "a", P_XY, 0, 2)},
     2,
     {"p:2: rule is fully shadowed by the rule at p:1", NULL}},
    {"allow below a later deny",
     {R(POLICY_ALLOW, POLICY_WHO_CN, "a", P_XY, 0, 1),
      R(POLICY_DENY, POLICY_WHO_CN, "a", P_X, 0, 2)},
     2,
     {"p:1: rule is fully shadowed by the rule at p:2", NULL}},
    {"allow below a broader allow",
     {R(POLICY_ALLOW, POLICY_WHO_CN, "a", P_X, 0, 1),
      R(POLICY_ALLOW, POLICY_WHO_CN, "a", P_XY, POLICY_M_GET, 2)},
     2,
     {"p:2: rule is fully shadowed by the rule at p:1", NULL}},
    {"earlier allow below a later broader allow",
     {R(POLICY_ALLOW, POLICY_WHO_CN, "a", P_XY, 0, 1),
      R(POLICY_ALLOW, POLICY_WHO_CN, "a", P_X, 0, 2)},
     2,
     {"p:1: rule is fully shadowed by the rule at p:2", NULL}},
    {"broader allow with fewer methods: no warning",
     {R(POLICY_ALLOW, POLICY_WHO_CN, "a", P_X, POLICY_M_GET, 1),
      R(POLICY_ALLOW, POLICY_WHO_CN, "a", P_XY, 0, 2)},
     2,
     {NULL, NULL}},
    {"any deny covers a cn allow",
     {R(POLICY_DENY, POLICY_WHO_ANY, NULL, P_X, 0, 1),
      R(POLICY_ALLOW, POLICY_WHO_CN, "a", P_X, 0, 2)},
     2,
     {"p:2: rule is fully shadowed by the rule at p:1", NULL}},
    {"a cn deny does not cover an any allow",
     {R(POLICY_DENY, POLICY_WHO_CN, "a", P_X, 0, 1),
      R(POLICY_ALLOW, POLICY_WHO_ANY, NULL, P_X, 0, 2)},
     2,
     {NULL, NULL}},
    {"SPIFFE prefix deny covers an exact ID",
     {R(POLICY_DENY, POLICY_WHO_SPIFFE_PREFIX, "spiffe://td/ns/*", P_X, 0, 1),
      R(POLICY_ALLOW, POLICY_WHO_SPIFFE, "spiffe://td/ns/a", P_XY, 0, 2)},
     2,
     {"p:2: rule is fully shadowed by the rule at p:1", NULL}},
    {"deny methods split over two rules",
     {R(POLICY_DENY, POLICY_WHO_CN, "a", P_X, POLICY_M_GET, 1),
      R(POLICY_DENY, POLICY_WHO_CN, "a", P_X, POLICY_M_POST, 2),
      R(POLICY_ALLOW, POLICY_WHO_CN, "a", P_XY, POLICY_M_GET | POLICY_M_POST, 3)},
     3,
     {"p:3: rule is fully shadowed by the rule at p:1 and others", NULL}},
    {"group: one member covered is not enough",
     {R(POLICY_ALLOW, POLICY_WHO_CN, "a", P_X, 0, 1), RG(POLICY_ALLOW, "ab", P_X, 0, 2)},
     2,
     {NULL, NULL}},
    {"group: every member covered",
     {R(POLICY_ALLOW, POLICY_WHO_CN, "a", P_X, 0, 1), RG(POLICY_ALLOW, "ab", P_X, 0, 2),
      R(POLICY_DENY, POLICY_WHO_CN, "b", P_ROOT, 0, 3)},
     3,
     {"p:2: rule is fully shadowed by the rule at p:1 and others", NULL}},
    {"two equal denies: only the second",
     {R(POLICY_DENY, POLICY_WHO_CN, "a", P_X, 0, 1), R(POLICY_DENY, POLICY_WHO_CN, "a", P_X, 0, 2),
      R(POLICY_ALLOW, POLICY_WHO_CN, "a", P_Z, 0, 3)},
     3,
     {"p:2: rule duplicates the rule at p:1", NULL}},
    {"other identity: no warning",
     {R(POLICY_DENY, POLICY_WHO_CN, "a", P_X, 0, 1),
      R(POLICY_ALLOW, POLICY_WHO_CN, "b", P_X, 0, 2)},
     2,
     {NULL, NULL}},
};

static void test_lint(void)
{
	for (size_t i = 0; i < sizeof(lint_cases) / sizeof(lint_cases[0]); i++) {
		const struct lint_case *lc = &lint_cases[i];
		const struct policy_spec spec = {NULL, 0, lc->rules, lc->n, &G_AB, 1};
		struct msgs m = {0};
		struct policy *p = NULL;
		unsigned want = 0;

		CU_ASSERT_EQUAL(policy_build(&spec, collect, &m, &p), 0);
		CU_ASSERT_PTR_NOT_NULL(p);
		for (size_t w = 0; w < 2 && lc->want[w]; w++, want++)
			CU_ASSERT_TRUE(find_msg(&m, lc->want[w], NULL) >= 0);
		CU_ASSERT_EQUAL(m.n, want);
		CU_ASSERT_EQUAL(m.errors, 0);
		if (m.n != want || (want && find_msg(&m, lc->want[0], NULL) < 0)) {
			fprintf(stderr, "lint case '%s':\n", lc->name);
			dump(&m);
		}
		policy_free(p);
	}
}

/* An allow for a prefix no route serves, and the prefixes that are served. */
static void test_lint_routes(void)
{
	const struct policy_route_spec routes[] = {{"/api", NULL, 0, POLICY_NEED_CERT, "r", 1}};
	const struct policy_rule_spec rules[] = {
	    R(POLICY_ALLOW, POLICY_WHO_CN, "a", P_NOWHERE, 0, 1),
	    R(POLICY_ALLOW, POLICY_WHO_CN, "b", P_ROOT, 0, 2),
	    R(POLICY_ALLOW, POLICY_WHO_CN, "c", P_APIX, 0, 3),
	    R(POLICY_DENY, POLICY_WHO_CN, "d", P_NOWHERE, 0, 4),
	};
	const struct policy_spec spec = {routes, 1, rules, 4, NULL, 0};
	struct msgs m = {0};
	struct policy *p = NULL;

	CU_ASSERT_EQUAL(policy_build(&spec, collect, &m, &p), 0);
	CU_ASSERT_EQUAL(m.n, 1);
	CU_ASSERT_TRUE(find_msg(&m, "W p:1: allow for \"/nowhere\", which no route serves", NULL) >=
	               0);
	if (m.n != 1)
		dump(&m);
	policy_free(p);
	/* Without routes (policy files checked alone) nothing is said about them. */
	const struct policy_spec alone = {NULL, 0, rules, 1, NULL, 0};
	memset(&m, 0, sizeof(m));
	CU_ASSERT_EQUAL(policy_build(&alone, collect, &m, &p), 0);
	CU_ASSERT_EQUAL(m.n, 0);
	policy_free(p);
}

/* ---- groups ---- */

static void test_groups_decide(void)
{
	static const struct policy_member_spec fe[] = {
	    {POLICY_WHO_SPIFFE, "spiffe://ex.org/ns/prod/sa/web"},
	    {POLICY_WHO_CN, "alice"},
	    {POLICY_WHO_SPIFFE_PREFIX, "spiffe://ex.org/ns/edge/*"},
	    {POLICY_WHO_SCOPE, "fe"},
	};
	const struct policy_group_spec groups[] = {{"frontends", fe, 4, "g.conf", 3}};
	const struct policy_rule_spec rules[] = {
	    RG(POLICY_ALLOW, "frontends", P_API, POLICY_M_GET, 1),
	    R(POLICY_DENY, POLICY_WHO_CN, "alice", P_APIX, 0, 2),
	};
	const struct policy_spec spec = {NULL, 0, rules, 2, groups, 1};
	struct authn_cert_id web = {.spiffe_id = (char *)"spiffe://ex.org/ns/prod/sa/web"};
	struct authn_cert_id edge = {.spiffe_id = (char *)"spiffe://ex.org/ns/edge/sa/lb"};
	struct authn_cert_id alice = {.cn = (char *)"alice"}, bob = {.cn = (char *)"bob"};
	char *sc[] = {(char *)"fe"};
	const struct {
		struct authn_principal who;
		unsigned m;
		const char *path;
		enum policy_effect e;
		int line;
	} cases[] = {
	    {{.cert = &web}, POLICY_M_GET, "/api/v", POLICY_ALLOW, 1},
	    {{.cert = &web}, POLICY_M_POST, "/api/v", POLICY_DENY, 0},
	    {{.cert = &edge}, POLICY_M_GET, "/api", POLICY_ALLOW, 1},
	    {{.cert = &alice}, POLICY_M_GET, "/api", POLICY_ALLOW, 1},
	    {{.cert = &alice}, POLICY_M_GET, "/api/x/1", POLICY_DENY, 2},
	    {{.cert = &bob}, POLICY_M_GET, "/api", POLICY_DENY, 0},
	    {{.has_token = true, .token = {.scopes = sc, .n_scopes = 1}},
	     POLICY_M_GET,
	     "/api",
	     POLICY_ALLOW,
	     1},
	};
	struct policy *p = NULL;
	struct policy_rule_info ri;

	CU_ASSERT_FATAL(policy_build(&spec, NULL, NULL, &p) == 0);
	CU_ASSERT_EQUAL(policy_n_groups(p), 1);
	policy_rule_get(policy_rule_at(p, 0), &ri);
	CU_ASSERT_STRING_EQUAL(ri.group, "frontends");
	CU_ASSERT_PTR_NULL(ri.value);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct policy_decision d;
		int line = -1;
		policy_decide(p, &cases[i].who, cases[i].m, cases[i].path, strlen(cases[i].path),
		              &d);
		policy_rule_file(d.rule, &line);
		if (d.effect != cases[i].e || line != cases[i].line)
			fprintf(stderr, "group case %zu: %d/%d\n", i, d.effect, line);
		CU_ASSERT_EQUAL(d.effect, cases[i].e);
		CU_ASSERT_EQUAL(line, cases[i].line);
	}
	policy_free(p);
}

struct group_err_case {
	const char *name;
	struct policy_group_spec groups[2];
	size_t n_groups;
	const char *rule_group;
	const char *want; /* expected error text */
};

static const struct policy_member_spec M_BAD_SPIFFE[] = {{POLICY_WHO_SPIFFE, "spiffe://Ex/a"}};
static const struct policy_member_spec M_ANY[] = {{POLICY_WHO_ANY, NULL}};
static const struct policy_member_spec M_BAD_FP[] = {{POLICY_WHO_FINGERPRINT, "ABC"}};
static const struct policy_member_spec M_OK[] = {{POLICY_WHO_CN, "x"}};

static const struct group_err_case group_errs[] = {
    {"undefined",
     {{"g", M_OK, 1, "g.conf", 1}},
     1,
     "nope",
     "p:1: rule names undefined group 'nope'"},
    {"twice",
     {{"g", M_OK, 1, "a.conf", 4}, {"g", M_OK, 1, "b.conf", 9}},
     2,
     "g",
     "b.conf:9: group 'g' is already defined at a.conf:4"},
    {"bad spiffe member",
     {{"g", M_BAD_SPIFFE, 1, "g.conf", 2}},
     1,
     "g",
     "g.conf:2: group member spiffe"},
    {"any member", {{"g", M_ANY, 1, "g.conf", 2}}, 1, "g", "g.conf:2: group 'g' member 1"},
    {"bad fingerprint",
     {{"g", M_BAD_FP, 1, "g.conf", 2}},
     1,
     "g",
     "g.conf:2: group member fingerprint"},
    {"empty", {{"g", NULL, 0, "g.conf", 2}}, 1, "g", "g.conf:2: group 'g' has no members"},
    {"no name", {{"", M_OK, 1, "g.conf", 5}}, 1, "g", "g.conf:5: group has no name"},
};

static void test_group_errors(void)
{
	for (size_t i = 0; i < sizeof(group_errs) / sizeof(group_errs[0]); i++) {
		const struct group_err_case *gc = &group_errs[i];
		const struct policy_rule_spec rule = RG(POLICY_ALLOW, gc->rule_group, P_X, 0, 1);
		const struct policy_spec spec = {NULL, 0, &rule, 1, gc->groups, gc->n_groups};
		struct msgs m = {0};
		struct policy *p = (struct policy *)&m;

		CU_ASSERT_EQUAL(policy_build(&spec, collect, &m, &p), -1);
		CU_ASSERT_PTR_NULL(p);
		CU_ASSERT_TRUE(m.errors >= 1);
		if (find_msg(&m, gc->want, NULL) < 0) {
			fprintf(stderr, "group error case '%s' (want %s):\n", gc->name, gc->want);
			dump(&m);
		}
		CU_ASSERT_TRUE(find_msg(&m, gc->want, NULL) >= 0);
	}
}

/* ---- digest ---- */

static void digest_of(const struct policy_rule_spec *rules, size_t n,
                      const struct policy_group_spec *g, size_t ng, unsigned char out[32])
{
	const struct policy_spec spec = {NULL, 0, rules, n, g, ng};
	struct policy *p = NULL;

	memset(out, 0xee, 32);
	CU_ASSERT_FATAL(policy_build(&spec, NULL, NULL, &p) == 0);
	policy_digest(p, out);
	policy_free(p);
}

static void test_digest(void)
{
	struct policy_rule_spec base[] = {R(POLICY_ALLOW, POLICY_WHO_CN, "a", P_X, 0, 1),
	                                  R(POLICY_DENY, POLICY_WHO_CN, "a", P_XY, 0, 2)};
	struct policy_rule_spec v[2];
	unsigned char d0[32], d1[32], zero[32] = {0};
	char hex[65];

	digest_of(base, 2, NULL, 0, d0);
	CU_ASSERT_NOT_EQUAL(memcmp(d0, zero, 32), 0);
	/* Where rules were written does not matter; 0 and "all methods" are the same. */
	memcpy(v, base, sizeof(v));
	v[0].file = "elsewhere.conf";
	v[1].line = 77;
	v[0].methods = (1u << 9) - 1;
	digest_of(v, 2, NULL, 0, d1);
	CU_ASSERT_EQUAL(memcmp(d0, d1, 32), 0);
	/* What decides does. */
	const struct {
		int rule;
		unsigned methods;
		const char *value;
		enum policy_effect effect;
	} changes[] = {
	    {0, POLICY_M_GET, "a", POLICY_ALLOW},
	    {1, 0, "b", POLICY_DENY},
	    {0, 0, "a", POLICY_DENY},
	};
	for (size_t i = 0; i < sizeof(changes) / sizeof(changes[0]); i++) {
		memcpy(v, base, sizeof(v));
		v[changes[i].rule].methods = changes[i].methods;
		v[changes[i].rule].value = changes[i].value;
		v[changes[i].rule].effect = changes[i].effect;
		digest_of(v, 2, NULL, 0, d1);
		CU_ASSERT_NOT_EQUAL(memcmp(d0, d1, 32), 0);
	}
	/* Order is part of it (it picks the rule an audit record names). */
	v[0] = base[1];
	v[1] = base[0];
	digest_of(v, 2, NULL, 0, d1);
	CU_ASSERT_NOT_EQUAL(memcmp(d0, d1, 32), 0);
	/* A group's members are. */
	digest_of(base, 2, &G_AB, 1, d1);
	CU_ASSERT_NOT_EQUAL(memcmp(d0, d1, 32), 0);
	policy_digest(NULL, d1);
	CU_ASSERT_EQUAL(memcmp(d1, zero, 32), 0);
	policy_digest_hex(NULL, hex);
	CU_ASSERT_EQUAL(strlen(hex), 64);
	CU_ASSERT_EQUAL(strspn(hex, "0"), 64);
}

/* ---- formatters ---- */

static void test_format(void)
{
	const struct {
		enum policy_who who;
		const char *value, *group, *want;
	} ids[] = {
	    {POLICY_WHO_CN, "alice", NULL, "cn=alice"},
	    {POLICY_WHO_SPIFFE_PREFIX, "spiffe://td/ns/", NULL, "spiffe=spiffe://td/ns/*"},
	    {POLICY_WHO_SPIFFE, "spiffe://td/a", NULL, "spiffe=spiffe://td/a"},
	    {POLICY_WHO_SAN_DNS, "a.b", NULL, "dns=a.b"},
	    {POLICY_WHO_TOKEN_SUB, "u", NULL, "token_sub=u"},
	    {POLICY_WHO_SCOPE, "s", NULL, "scope=s"},
	    {POLICY_WHO_ANY, NULL, NULL, "any"},
	    {POLICY_WHO_CN, NULL, "fe", "group=fe"},
	};
	const struct {
		unsigned m;
		const char *want;
	} ms[] = {
	    {0, "*"},
	    {(1u << 9) - 1, "*"},
	    {POLICY_M_GET, "GET"},
	    {POLICY_M_GET | POLICY_M_POST | POLICY_M_OTHER, "GET,POST,OTHER"},
	};
	char buf[64], tiny[4];

	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		size_t n =
		    policy_ident_format(ids[i].who, ids[i].value, ids[i].group, buf, sizeof(buf));
		CU_ASSERT_STRING_EQUAL(buf, ids[i].want);
		CU_ASSERT_EQUAL(n, strlen(ids[i].want));
	}
	for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
		CU_ASSERT_EQUAL(policy_methods_format(ms[i].m, buf, sizeof(buf)),
		                strlen(ms[i].want));
		CU_ASSERT_STRING_EQUAL(buf, ms[i].want);
	}
	/* Truncated, still terminated, and the needed length is returned. */
	CU_ASSERT_EQUAL(policy_methods_format(POLICY_M_GET | POLICY_M_POST, tiny, sizeof(tiny)), 8);
	CU_ASSERT_STRING_EQUAL(tiny, "GET");
	CU_ASSERT_EQUAL(policy_ident_format(POLICY_WHO_CN, "alice", NULL, tiny, sizeof(tiny)), 8);
	CU_ASSERT_STRING_EQUAL(tiny, "cn=");
	CU_ASSERT_STRING_EQUAL(policy_who_str(POLICY_WHO_SAN_DNS), "dns");
	CU_ASSERT_STRING_EQUAL(policy_who_str(POLICY_WHO_MAX), "unknown");
}

CU_SUITE(policy_rules, NULL, NULL, {"lint", test_lint}, {"lint_routes", test_lint_routes},
         {"groups_decide", test_groups_decide}, {"group_errors", test_group_errors},
         {"digest", test_digest}, {"format", test_format})
