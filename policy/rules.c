/*
 * Rules and the decision. Rules are indexed at build time so a decision costs a few hash
 * lookups (one per identity the caller has) and one trie walk per hit, whatever the
 * number of rules: a hash table maps (kind, value) to that identity's segment trie, whose
 * nodes hold, per method, the first allow and the first deny rule for that prefix.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy_int.h"

#define SPIFFE_SCHEME_LEN 9 /* "spiffe://" */
#define ALL_METHODS       ((1u << POLICY_N_METHODS) - 1)

static const char *const who_names[POLICY_WHO_MAX] = {
    "spiffe", "spiffe prefix", "cn", "dns", "fingerprint", "token_sub", "scope", "any",
};

static bool fingerprint_valid(const char *v)
{
	size_t n = strlen(v);

	for (size_t i = 0; i < n; i++)
		if (!((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f')))
			return false;
	return n == 64;
}

/* Checks the identity value of a rule whose kind is known to be in range. */
static bool rule_value_check(const struct policy_rule_spec *rs, struct policy_reporter *rep)
{
	const char *v = rs->value;
	size_t n = v ? strlen(v) : 0;
	const char *why = NULL;

	if (rs->who == POLICY_WHO_ANY)
		return true;
	if (n == 0)
		why = "is empty";
	else if (rs->who == POLICY_WHO_SPIFFE && !authn_spiffe_id_valid(v, n))
		why = "is not a valid SPIFFE ID";
	else if (rs->who == POLICY_WHO_SPIFFE_PREFIX) {
		/* "spiffe://td/ns/" plus a "*": what precedes the last "/" must be an ID. */
		if (v[n - 1] == '*')
			n--;
		if (n < 2 || v[n - 1] != '/' || !authn_spiffe_id_valid(v, n - 1))
			why = "is not a SPIFFE ID prefix of the form spiffe://trust.domain/path/*";
	} else if (rs->who == POLICY_WHO_FINGERPRINT && !fingerprint_valid(v))
		why = "is not 64 lower-case hex digits (SHA-256 of the certificate DER)";
	if (why) {
		policy_report(rep, true, rs->file, rs->line, "rule %s value \"%s\" %s",
		              who_names[rs->who], v ? v : "(null)", why);
		return false;
	}
	/* authn refuses such identities, so the rule is dead: worth a word, not a failure. */
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) {
			policy_report(
			    rep, false, rs->file, rs->line,
			    "rule %s value contains control characters and can never match",
			    who_names[rs->who]);
			break;
		}
	return true;
}

/* Checks one rule spec, reporting every problem; true if it can be kept. */
static bool rule_spec_check(const struct policy_rule_spec *rs, struct policy_reporter *rep)
{
	bool ok = true;

	if ((unsigned)rs->effect > POLICY_ALLOW || (unsigned)rs->who >= POLICY_WHO_MAX) {
		policy_report(rep, true, rs->file, rs->line, "rule has an unknown effect or kind");
		return false;
	}
	ok = rule_value_check(rs, rep);
	if (rs->methods & ~ALL_METHODS) {
		policy_report(rep, true, rs->file, rs->line, "rule has unknown method bits 0x%x",
		              rs->methods & ~ALL_METHODS);
		ok = false;
	}
	if (rs->n_prefixes == 0 || !rs->prefixes) {
		policy_report(rep, true, rs->file, rs->line, "rule lists no path prefixes");
		return false;
	}
	for (size_t i = 0; i < rs->n_prefixes; i++) {
		const char *pf = rs->prefixes[i];
		if (pf && policy_prefix_valid(pf, strlen(pf)))
			continue;
		policy_report(rep, true, rs->file, rs->line,
		              "rule prefix \"%s\" is not a normalised path prefix (like \"/api\": "
		              "no trailing '/', no dot segments, no needless escapes)",
		              pf ? pf : "(null)");
		ok = false;
	}
	return ok;
}

/* Copies a checked rule spec into r; -1 on allocation failure (r stays freeable). */
static int rule_copy(struct policy_rule *r, const struct policy_rule_spec *rs, size_t index)
{
	r->effect = rs->effect;
	r->who = rs->who;
	r->methods = rs->methods;
	r->line = rs->line;
	r->index = index;
	r->file = policy_strdup(rs->file);
	if (rs->file && !r->file)
		return -1;
	if (rs->who != POLICY_WHO_ANY) {
		r->value_len = strlen(rs->value);
		if (rs->who == POLICY_WHO_SPIFFE_PREFIX && rs->value[r->value_len - 1] == '*')
			r->value_len--; /* stored without the '*': matched as a plain prefix */
		r->value = strndup(rs->value, r->value_len);
		if (!r->value)
			return -1;
	}
	r->prefixes = calloc(rs->n_prefixes, sizeof(*r->prefixes));
	if (!r->prefixes)
		return -1;
	for (size_t i = 0; i < rs->n_prefixes; i++) {
		r->prefixes[i] = strdup(rs->prefixes[i]);
		if (!r->prefixes[i])
			return -1;
		r->n_prefixes++;
	}
	return 0;
}

/* FNV-1a over the kind and the value: keys come from config, so no flooding concern. */
static uint64_t ident_hash(enum policy_who who, const char *v, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	h = (h ^ (unsigned)who) * 1099511628211ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)v[i]) * 1099511628211ull;
	return h;
}

/* The slot holding (who, v) or, if absent, the empty slot where it belongs. */
static struct policy_ident *ident_slot(const struct policy *p, enum policy_who who, const char *v,
                                       size_t n)
{
	size_t mask = p->ident_cap - 1;
	size_t i = (size_t)ident_hash(who, v, n) & mask;

	/* The table is at most half full, so the probe always ends. */
	for (;; i = (i + 1) & mask) {
		struct policy_ident *e = &p->idents[i];
		if (!e->trie)
			return e;
		if (e->who == who && e->value_len == n && memcmp(e->value, v, n) == 0)
			return e;
	}
}

/* Records r under prefix in the trie rooted at root. */
static int verdict_add(struct ptrie_node *root, const struct policy_rule *r, const char *prefix)
{
	struct ptrie_node *n = ptrie_insert(root, prefix, strlen(prefix));

	if (!n)
		return -1;
	if (!n->val) {
		n->val = calloc(1, sizeof(struct policy_verdict));
		if (!n->val)
			return -1;
	}
	struct policy_verdict *v = n->val;
	const struct policy_rule **slot = r->effect == POLICY_DENY ? v->deny : v->allow;
	for (unsigned b = 0; b < POLICY_N_METHODS; b++)
		/* Rules arrive in spec order: the first one written decides ties. */
		if ((r->methods == 0 || (r->methods & (1u << b))) && !slot[b])
			slot[b] = r;
	return 0;
}

/* Adds rule r to the index: its identity's trie (or the ANY trie) gets its prefixes. */
static int rule_index(struct policy *p, const struct policy_rule *r)
{
	struct ptrie_node *root = p->any_trie;

	if (r->who != POLICY_WHO_ANY) {
		struct policy_ident *e = ident_slot(p, r->who, r->value, r->value_len);
		if (!e->trie) {
			e->trie = ptrie_new();
			if (!e->trie)
				return -1;
			e->who = r->who;
			e->value = r->value;
			e->value_len = r->value_len;
			p->n_idents++;
		}
		root = e->trie;
	}
	for (size_t i = 0; i < r->n_prefixes; i++)
		if (verdict_add(root, r, r->prefixes[i]) < 0)
			return -1;
	return 0;
}

/* Allocates the index: a hash table at least twice the rule count, and the ANY trie. */
static int index_alloc(struct policy *p, size_t n_rules)
{
	p->ident_cap = 8;
	while (p->ident_cap < 2 * n_rules)
		p->ident_cap *= 2;
	p->idents = calloc(p->ident_cap, sizeof(*p->idents));
	p->any_trie = ptrie_new();
	p->rules = calloc(n_rules ? n_rules : 1, sizeof(*p->rules));
	return p->idents && p->any_trie && p->rules ? 0 : -1;
}

/*
 * Copies, checks and indexes every rule. Invalid rules are reported and counted in rep;
 * returns -1 only when building cannot go on (allocation failure).
 */
int policy_rules_build(struct policy *p, const struct policy_spec *spec,
                       struct policy_reporter *rep)
{
	if (spec->n_rules && !spec->rules) {
		policy_report(rep, true, NULL, 0, "rules: count without an array");
		return -1;
	}
	if (index_alloc(p, spec->n_rules) < 0)
		goto fail;
	for (size_t i = 0; i < spec->n_rules; i++) {
		if (!rule_spec_check(&spec->rules[i], rep))
			continue;
		struct policy_rule *r = &p->rules[p->n_rules++];
		if (rule_copy(r, &spec->rules[i], i) < 0 || rule_index(p, r) < 0)
			goto fail;
	}
	return 0;
fail:
	policy_report(rep, true, NULL, 0, "out of memory");
	return -1;
}

void policy_rules_free(struct policy *p)
{
	for (size_t i = 0; p->idents && i < p->ident_cap; i++)
		ptrie_free(p->idents[i].trie, free);
	free(p->idents);
	ptrie_free(p->any_trie, free);
	for (size_t i = 0; p->rules && i < p->n_rules; i++) {
		struct policy_rule *r = &p->rules[i];
		for (size_t j = 0; j < r->n_prefixes; j++)
			free(r->prefixes[j]);
		free(r->prefixes);
		free(r->value);
		free(r->file);
	}
	free(p->rules);
	p->idents = NULL;
	p->any_trie = NULL;
	p->rules = NULL;
	p->n_rules = p->n_idents = p->ident_cap = 0;
}

/* The best deny and allow seen so far for one method. */
struct decide_ctx {
	unsigned m; /* method index */
	const struct policy_rule *deny, *allow;
	size_t deny_len, allow_len;
};

/* Longer prefix wins; between equal prefixes the rule written first. */
static bool rule_better(const struct policy_rule *cur, size_t cur_len,
                        const struct policy_rule *cand, size_t len)
{
	if (!cur)
		return true;
	if (len != cur_len)
		return len > cur_len;
	return cand->index < cur->index;
}

static void decide_visit(void *arg, const struct ptrie_node *n, size_t plen)
{
	const struct policy_verdict *v = n->val;
	struct decide_ctx *d = arg;

	if (!v)
		return;
	if (v->deny[d->m] && rule_better(d->deny, d->deny_len, v->deny[d->m], plen)) {
		d->deny = v->deny[d->m];
		d->deny_len = plen;
	}
	if (v->allow[d->m] && rule_better(d->allow, d->allow_len, v->allow[d->m], plen)) {
		d->allow = v->allow[d->m];
		d->allow_len = plen;
	}
}

/* Collects the rules of one identity that cover path. */
static void decide_ident(const struct policy *p, enum policy_who who, const char *v, size_t n,
                         const char *path, size_t len, struct decide_ctx *d)
{
	if (!v || p->n_idents == 0)
		return;
	const struct policy_ident *e = ident_slot(p, who, v, n);
	if (e->trie)
		ptrie_walk(e->trie, path, len, decide_visit, d);
}

/* Certificate identities: SPIFFE ID and each of its "spiffe://td/a/" prefixes, CN, DNS, hash. */
static void decide_cert(const struct policy *p, const struct authn_cert_id *c, const char *path,
                        size_t len, struct decide_ctx *d)
{
	if (c->spiffe_id) {
		size_t n = strlen(c->spiffe_id);
		decide_ident(p, POLICY_WHO_SPIFFE, c->spiffe_id, n, path, len, d);
		/* The trust domain has no '/', so every '/' after the scheme ends a prefix. */
		for (size_t i = SPIFFE_SCHEME_LEN; i < n; i++)
			if (c->spiffe_id[i] == '/')
				decide_ident(p, POLICY_WHO_SPIFFE_PREFIX, c->spiffe_id, i + 1, path,
				             len, d);
	}
	if (c->cn)
		decide_ident(p, POLICY_WHO_CN, c->cn, strlen(c->cn), path, len, d);
	for (size_t i = 0; i < c->n_dns; i++)
		decide_ident(p, POLICY_WHO_SAN_DNS, c->san_dns[i], strlen(c->san_dns[i]), path, len,
		             d);
	if (c->sha256_hex[0])
		decide_ident(p, POLICY_WHO_FINGERPRINT, c->sha256_hex, strlen(c->sha256_hex), path,
		             len, d);
}

/*
 * Decides for one caller (see policy.h). Fails closed: no policy, no principal or a
 * method that is not exactly one POLICY_M_* bit all give the default deny.
 */
void policy_decide(const struct policy *p, const struct authn_principal *who, unsigned method,
                   const char *path, size_t len, struct policy_decision *out)
{
	struct decide_ctx d = {0};

	out->effect = POLICY_DENY;
	out->rule = NULL;
	if (!p || !who || !path || method == 0 || (method & (method - 1)) ||
	    method > POLICY_M_OTHER)
		return;
	d.m = (unsigned)__builtin_ctz(method);
	if (who->cert)
		decide_cert(p, who->cert, path, len, &d);
	if (who->has_token) {
		const struct authn_token_id *t = &who->token;
		if (t->sub)
			decide_ident(p, POLICY_WHO_TOKEN_SUB, t->sub, strlen(t->sub), path, len,
			             &d);
		for (size_t i = 0; i < t->n_scopes; i++)
			if (t->scopes[i])
				decide_ident(p, POLICY_WHO_SCOPE, t->scopes[i],
				             strlen(t->scopes[i]), path, len, &d);
	}
	ptrie_walk(p->any_trie, path, len, decide_visit, &d);
	if (d.deny) {
		out->rule = d.deny;
	} else if (d.allow) {
		out->effect = POLICY_ALLOW;
		out->rule = d.allow;
	}
}
