/*
 * Property tests: on many random policies (every identity kind, groups, overlapping
 * prefixes, method sets) and random callers, requests and methods, the indexed decision
 * equals a naive pass over the specs written here from the documented semantics: the
 * deciding rule is the matching deny with the longest covering prefix (earliest on a
 * tie), else the matching allow chosen the same way, else the default deny. The same
 * random policies check that explain, grants and diff agree with the decision.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cu.h"
#include "policy.h"

#define N_POLICIES 300
#define N_QUERIES  400
#define MAX_RULES  40
#define MAX_GROUPS 3
#define MAX_PF     3
#define MAX_MEMBER 3

#define FP_A "3f1a7c0e5b2d4f6a8c9e1b3d5f7a9c0e2b4d6f8a1c3e5b7d9f0a2c4e6b8d0f1a"
#define FP_B "0000000000000000000000000000000000000000000000000000000000000001"

/* ---- random material ---- */

static const char *const prefixes[] = {"/",    "/a",   "/a/b",   "/a/b/c", "/ab",   "/b",
                                       "/b/a", "/a-b", "/a/b-c", "/x/y/z", "/a/%25"};
static const char *const paths[] = {
    "/",       "/a",   "/a/", "/a/b",  "/a/b/c/d", "/ab", "/ab/c", "/b/a/b",  "/a-b",  "/a/b-c",
    "/x/y/z/", "/x/y", "/A",  "/a//b", "",         "x",   "/a/b/", "/a/%25/", "/a/b/c"};
static const char *const spiffe_ids[] = {"spiffe://ex.org/ns/p/sa/w", "spiffe://ex.org/ns/p/sa/x",
                                         "spiffe://ex.org/ns/q/sa/w", "spiffe://other.org/w"};
static const char *const spiffe_prefixes[] = {"spiffe://ex.org/*", "spiffe://ex.org/ns/*",
                                              "spiffe://ex.org/ns/p/*",
                                              "spiffe://ex.org/ns/p/sa/*"};
static const char *const cns[] = {"a", "b", "c"};
static const char *const dnss[] = {"d1.ex", "d2.ex"};
static const char *const fps[] = {FP_A, FP_B};
static const char *const subs[] = {"u1", "u2"};
static const char *const scopes[] = {"s1", "s2"};
static const char *const group_names[] = {"g0", "g1", "g2"};

#define PICK(rng, arr) (arr[rnd(rng) % (sizeof(arr) / sizeof(arr[0]))])

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* A random identity of any kind but ANY (which rules pick apart). */
static void random_ident(uint64_t *rng, enum policy_who *who, const char **value)
{
	*who = (enum policy_who)(rnd(rng) % POLICY_WHO_ANY);
	switch (*who) {
	case POLICY_WHO_SPIFFE:
		*value = PICK(rng, spiffe_ids);
		break;
	case POLICY_WHO_SPIFFE_PREFIX:
		*value = PICK(rng, spiffe_prefixes);
		break;
	case POLICY_WHO_CN:
		*value = PICK(rng, cns);
		break;
	case POLICY_WHO_SAN_DNS:
		*value = PICK(rng, dnss);
		break;
	case POLICY_WHO_FINGERPRINT:
		*value = PICK(rng, fps);
		break;
	case POLICY_WHO_TOKEN_SUB:
		*value = PICK(rng, subs);
		break;
	default:
		*value = PICK(rng, scopes);
		break;
	}
}

/* One random policy with its spec arrays. */
struct rpol {
	struct policy_rule_spec rules[MAX_RULES];
	const char *pf[MAX_RULES][MAX_PF];
	struct policy_group_spec groups[MAX_GROUPS];
	struct policy_member_spec members[MAX_GROUPS][MAX_MEMBER];
	size_t n_rules, n_groups;
	struct policy *p;
};

static void rpol_make(struct rpol *r, uint64_t *rng)
{
	memset(r, 0, sizeof(*r));
	r->n_groups = rnd(rng) % (MAX_GROUPS + 1);
	for (size_t g = 0; g < r->n_groups; g++) {
		size_t n = 1 + rnd(rng) % MAX_MEMBER;
		for (size_t m = 0; m < n; m++)
			random_ident(rng, &r->members[g][m].who, &r->members[g][m].value);
		r->groups[g] = (struct policy_group_spec){group_names[g], r->members[g], n, "g", 1};
	}
	r->n_rules = 1 + rnd(rng) % MAX_RULES;
	for (size_t i = 0; i < r->n_rules; i++) {
		struct policy_rule_spec *s = &r->rules[i];
		size_t npf = 1 + rnd(rng) % MAX_PF;
		for (size_t k = 0; k < npf; k++)
			r->pf[i][k] = PICK(rng, prefixes);
		s->effect = rnd(rng) % 3 == 0 ? POLICY_DENY : POLICY_ALLOW;
		unsigned kind = (unsigned)(rnd(rng) % 10);
		if (kind == 0)
			s->who = POLICY_WHO_ANY;
		else if (kind == 1 && r->n_groups)
			s->group = group_names[rnd(rng) % r->n_groups];
		else
			random_ident(rng, &s->who, &s->value);
		s->prefixes = r->pf[i];
		s->n_prefixes = npf;
		s->methods = rnd(rng) % 2 ? 0 : (unsigned)(1 + rnd(rng) % 511);
		s->file = "r";
		s->line = (int)i + 1;
	}
	const struct policy_spec spec = {NULL, 0, r->rules, r->n_rules, r->groups, r->n_groups};
	CU_ASSERT_FATAL(policy_build(&spec, NULL, NULL, &r->p) == 0);
}

/* A random caller: some certificate identities, sometimes a token. */
struct rwho {
	struct authn_cert_id cert;
	char *dns[2], *scopes[2];
	struct authn_principal who;
};

static void rwho_make(struct rwho *w, uint64_t *rng)
{
	memset(w, 0, sizeof(*w));
	if (rnd(rng) % 2)
		w->cert.spiffe_id = (char *)PICK(rng, spiffe_ids);
	if (rnd(rng) % 2)
		w->cert.cn = (char *)PICK(rng, cns);
	w->cert.n_dns = rnd(rng) % 3;
	for (size_t i = 0; i < w->cert.n_dns; i++)
		w->dns[i] = (char *)PICK(rng, dnss);
	w->cert.san_dns = w->dns;
	if (rnd(rng) % 3 == 0)
		memcpy(w->cert.sha256_hex, PICK(rng, fps), 65);
	w->who.cert = rnd(rng) % 8 ? &w->cert : NULL;
	w->who.has_token = rnd(rng) % 2;
	w->who.token.sub = rnd(rng) % 2 ? (char *)PICK(rng, subs) : NULL;
	w->who.token.n_scopes = rnd(rng) % 3;
	for (size_t i = 0; i < w->who.token.n_scopes; i++)
		w->scopes[i] = (char *)PICK(rng, scopes);
	w->who.token.scopes = w->scopes;
}

/* ---- the reference, from the specs ---- */

/* Segment-aware cover, written independently of the library. */
static bool covers(const char *prefix, const char *path)
{
	size_t n = strlen(prefix);

	if (path[0] != '/')
		return false;
	if (strcmp(prefix, "/") == 0)
		return true;
	return strncmp(prefix, path, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static bool holds(const struct authn_principal *w, enum policy_who who, const char *v)
{
	const struct authn_cert_id *c = w->cert;
	const struct authn_token_id *t = w->has_token ? &w->token : NULL;
	size_t n = v ? strlen(v) : 0;

	switch (who) {
	case POLICY_WHO_ANY:
		return true;
	case POLICY_WHO_SPIFFE:
		return c && c->spiffe_id && strcmp(c->spiffe_id, v) == 0;
	case POLICY_WHO_SPIFFE_PREFIX: /* value ends in a star: the ID starts with the rest */
		return c && c->spiffe_id && strncmp(c->spiffe_id, v, n - 1) == 0;
	case POLICY_WHO_CN:
		return c && c->cn && strcmp(c->cn, v) == 0;
	case POLICY_WHO_SAN_DNS:
		for (size_t i = 0; c && i < c->n_dns; i++)
			if (strcmp(c->san_dns[i], v) == 0)
				return true;
		return false;
	case POLICY_WHO_FINGERPRINT:
		return c && strcmp(c->sha256_hex, v) == 0;
	case POLICY_WHO_TOKEN_SUB:
		return t && t->sub && strcmp(t->sub, v) == 0;
	case POLICY_WHO_SCOPE:
		for (size_t i = 0; t && i < t->n_scopes; i++)
			if (strcmp(t->scopes[i], v) == 0)
				return true;
		return false;
	default:
		return false;
	}
}

static bool rule_holds(const struct rpol *r, const struct policy_rule_spec *s,
                       const struct authn_principal *w)
{
	if (!s->group)
		return holds(w, s->who, s->value);
	for (size_t g = 0; g < r->n_groups; g++)
		if (strcmp(r->groups[g].name, s->group) == 0)
			for (size_t m = 0; m < r->groups[g].n_members; m++)
				if (holds(w, r->groups[g].members[m].who,
				          r->groups[g].members[m].value))
					return true;
	return false;
}

/* The line of the deciding rule (0: default deny) and the effect. */
static int naive(const struct rpol *r, const struct authn_principal *w, unsigned m,
                 const char *path, enum policy_effect *eff, unsigned *n_apply)
{
	int best[2] = {0, 0};
	size_t best_len[2] = {0, 0};

	*n_apply = 0;
	*eff = POLICY_DENY;
	if (!w || m == 0 || (m & (m - 1)) || m > POLICY_M_OTHER)
		return 0;
	for (size_t i = 0; i < r->n_rules; i++) {
		const struct policy_rule_spec *s = &r->rules[i];
		if ((s->methods && !(s->methods & m)) || !rule_holds(r, s, w))
			continue;
		size_t len = 0;
		bool hit = false;
		for (size_t k = 0; k < s->n_prefixes; k++)
			if (covers(s->prefixes[k], path) &&
			    (!hit || strlen(s->prefixes[k]) > len)) {
				hit = true;
				len = strlen(s->prefixes[k]);
			}
		if (!hit)
			continue;
		(*n_apply)++;
		if (!best[s->effect] || len > best_len[s->effect]) {
			best[s->effect] = s->line;
			best_len[s->effect] = len;
		}
	}
	if (best[POLICY_DENY])
		return best[POLICY_DENY];
	if (best[POLICY_ALLOW])
		*eff = POLICY_ALLOW;
	return best[POLICY_ALLOW];
}

/* ---- indexed vs naive, and explain ---- */

struct explain_count {
	unsigned applied, decided;
	int decided_line;
};

static void count_item(void *arg, const struct policy_explain_item *it)
{
	struct explain_count *c = arg;
	int line = 0;

	policy_rule_file(it->rule, &line);
	if (it->kind == POLICY_EXPLAIN_DECIDED) {
		c->decided++;
		c->decided_line = line;
	}
	if (it->kind == POLICY_EXPLAIN_DECIDED || it->kind == POLICY_EXPLAIN_MATCHED)
		c->applied++;
}

static unsigned random_method(uint64_t *rng)
{
	unsigned k = (unsigned)(rnd(rng) % 24);

	if (k == 22)
		return 0;
	if (k == 23)
		return POLICY_M_GET | POLICY_M_POST; /* not one method: must deny */
	return 1u << (k % 9);
}

static unsigned long mismatches;

static void check_query(const struct rpol *r, const struct authn_principal *w, unsigned m,
                        const char *path)
{
	enum policy_effect want;
	unsigned n_apply;
	int want_line = naive(r, w, m, path, &want, &n_apply), line = -1;
	struct policy_decision d;
	struct explain_count ec = {0};

	policy_decide(r->p, w, m, path, strlen(path), &d);
	policy_rule_file(d.rule, &line);
	if ((d.effect != want || line != want_line) && mismatches++ < 5)
		fprintf(stderr,
		        "mismatch: path '%s' method %#x: indexed %d line %d, naive %d line %d\n",
		        path, m, d.effect, line, want, want_line);
	CU_ASSERT_EQUAL(d.effect, want);
	CU_ASSERT_EQUAL(line, want_line);
	/* Explain decides the same and lists exactly the applicable rules as applying. */
	if (!w || !m || (m & (m - 1)))
		return;
	policy_explain(r->p, w, m, path, strlen(path), &d, count_item, &ec);
	CU_ASSERT_EQUAL(ec.decided, want_line ? 1u : 0u);
	CU_ASSERT_EQUAL(ec.decided_line, want_line);
	CU_ASSERT_EQUAL(ec.applied, n_apply);
}

static void test_indexed_equals_naive(void)
{
	uint64_t rng = 0x243f6a8885a308d3ull;
	struct rpol *r = malloc(sizeof(*r));
	struct rwho w;

	CU_ASSERT_FATAL(r != NULL);
	for (int i = 0; i < N_POLICIES; i++) {
		rpol_make(r, &rng);
		for (int q = 0; q < N_QUERIES; q++) {
			rwho_make(&w, &rng);
			check_query(r, rnd(&rng) % 50 ? &w.who : NULL, random_method(&rng),
			            PICK(&rng, paths));
		}
		policy_free(r->p);
	}
	CU_ASSERT_EQUAL(mismatches, 0);
	free(r);
}

/* ---- grants and diff against the decision ---- */

/* A caller holding exactly one identity (and what it implies); false for a prefix. */
static bool sole_holder(struct rwho *w, enum policy_who who, const char *v)
{
	memset(w, 0, sizeof(*w));
	w->who.cert = &w->cert;
	w->cert.san_dns = w->dns;
	w->who.token.scopes = w->scopes;
	switch (who) {
	case POLICY_WHO_SPIFFE:
		w->cert.spiffe_id = (char *)v;
		return true;
	case POLICY_WHO_CN:
		w->cert.cn = (char *)v;
		return true;
	case POLICY_WHO_SAN_DNS:
		w->dns[0] = (char *)v;
		w->cert.n_dns = 1;
		return true;
	case POLICY_WHO_FINGERPRINT:
		memcpy(w->cert.sha256_hex, v, 65);
		return true;
	case POLICY_WHO_TOKEN_SUB:
		w->who.has_token = true;
		w->who.token.sub = (char *)v;
		return true;
	case POLICY_WHO_SCOPE:
		w->who.has_token = true;
		w->scopes[0] = (char *)v;
		w->who.token.n_scopes = 1;
		return true;
	case POLICY_WHO_ANY:
		return true;
	default:
		return false;
	}
}

static unsigned allowed_at(const struct policy *p, const struct authn_principal *w,
                           const char *path)
{
	unsigned out = 0;

	for (unsigned b = 0; b < 9; b++) {
		struct policy_decision d;
		policy_decide(p, w, 1u << b, path, strlen(path), &d);
		if (d.effect == POLICY_ALLOW)
			out |= 1u << b;
	}
	return out;
}

static unsigned long grant_errors;

static void grant_check(void *arg, const struct policy_grant *g)
{
	const struct policy *p = arg;
	struct rwho w;

	if (!sole_holder(&w, g->who, g->value))
		return;
	unsigned got = allowed_at(p, &w.who, g->prefix);
	if (got != g->allowed && grant_errors++ < 5)
		fprintf(stderr, "grant %d %s %s: allowed %#x, decisions say %#x\n", g->who,
		        g->value ? g->value : "-", g->prefix, g->allowed, got);
	CU_ASSERT_EQUAL(got, g->allowed);
	CU_ASSERT_EQUAL(g->allowed & g->denied, 0);
}

struct diff_ctx {
	const struct policy *a, *b;
	char seen[64][2][16]; /* (cn value, prefix) of changes, for completeness */
	size_t n_seen;
};

static void change_check(void *arg, const struct policy_change *c)
{
	struct diff_ctx *d = arg;
	struct rwho w;

	CU_ASSERT(c->gained || c->lost);
	CU_ASSERT_EQUAL(c->gained & c->lost, 0);
	if ((c->who == POLICY_WHO_CN || c->who == POLICY_WHO_ANY) && d->n_seen < 64) {
		snprintf(d->seen[d->n_seen][0], 16, "%s", c->value ? c->value : "");
		snprintf(d->seen[d->n_seen++][1], 16, "%s", c->prefix);
	}
	if (!sole_holder(&w, c->who, c->value))
		return;
	unsigned a = allowed_at(d->a, &w.who, c->prefix), b = allowed_at(d->b, &w.who, c->prefix);
	if ((b & ~a) != c->gained || (a & ~b) != c->lost)
		grant_errors++;
	CU_ASSERT_EQUAL(b & ~a, c->gained);
	CU_ASSERT_EQUAL(a & ~b, c->lost);
}

/* Some change, for the cn or for any, covers path (a cn caller's access changed there). */
static bool change_covers(const struct diff_ctx *d, const char *cn, const char *path)
{
	for (size_t i = 0; i < d->n_seen; i++)
		if ((!d->seen[i][0][0] || strcmp(d->seen[i][0], cn) == 0) &&
		    covers(d->seen[i][1], path))
			return true;
	return false;
}

static void test_grants_and_diff(void)
{
	uint64_t rng = 0x13198a2e03707344ull;
	struct rpol *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	struct rwho w;

	CU_ASSERT_FATAL(a && b);
	for (int i = 0; i < N_POLICIES / 3; i++) {
		rpol_make(a, &rng);
		rpol_make(b, &rng);
		CU_ASSERT_EQUAL(policy_grants(a->p, grant_check, a->p), 0);
		struct diff_ctx d = {.a = a->p, .b = b->p};
		CU_ASSERT_EQUAL(policy_diff(a->p, b->p, change_check, &d), 0);
		/* Completeness for cn callers, while the list of changes is short. */
		for (size_t k = 0; d.n_seen < 64 && k < sizeof(cns) / sizeof(cns[0]); k++)
			for (size_t j = 0; j < sizeof(paths) / sizeof(paths[0]); j++) {
				sole_holder(&w, POLICY_WHO_CN, cns[k]);
				if (paths[j][0] != '/' || strstr(paths[j], "//"))
					continue;
				if (allowed_at(a->p, &w.who, paths[j]) !=
				    allowed_at(b->p, &w.who, paths[j]))
					CU_ASSERT_TRUE(change_covers(&d, cns[k], paths[j]));
			}
		CU_ASSERT_EQUAL(policy_diff(a->p, a->p, change_check, &d), 0);
		policy_free(a->p);
		policy_free(b->p);
	}
	CU_ASSERT_EQUAL(grant_errors, 0);
	free(a);
	free(b);
}

CU_SUITE(policy_prop, NULL, NULL, {"indexed_equals_naive", test_indexed_equals_naive},
         {"grants_and_diff", test_grants_and_diff})
