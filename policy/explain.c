/*
 * Explain: the decision, and every rule that bears on it. Deliberately a plain pass over
 * all rules with its own identity matching, not the index: an operator's tool should
 * show what the rules say, and agreeing with the indexed decision is then a check of the
 * index (the unit tests compare both on random policies).
 */
#include <string.h>

#include "policy_int.h"

/* True when the caller holds identity m. */
static bool ident_held(const struct policy_member *m, const struct authn_principal *who)
{
	const struct authn_cert_id *c = who->cert;
	const struct authn_token_id *t = who->has_token ? &who->token : NULL;

	switch (m->who) {
	case POLICY_WHO_ANY:
		return true;
	case POLICY_WHO_SPIFFE:
		return c && c->spiffe_id && strcmp(c->spiffe_id, m->value) == 0;
	case POLICY_WHO_SPIFFE_PREFIX:
		/* The value ends in '/' after the trust domain: a prefix at a segment edge. */
		return c && c->spiffe_id && strlen(c->spiffe_id) >= m->value_len &&
		       memcmp(c->spiffe_id, m->value, m->value_len) == 0;
	case POLICY_WHO_CN:
		return c && c->cn && strcmp(c->cn, m->value) == 0;
	case POLICY_WHO_SAN_DNS:
		for (size_t i = 0; c && i < c->n_dns; i++)
			if (c->san_dns[i] && strcmp(c->san_dns[i], m->value) == 0)
				return true;
		return false;
	case POLICY_WHO_FINGERPRINT:
		return c && strcmp(c->sha256_hex, m->value) == 0;
	case POLICY_WHO_TOKEN_SUB:
		return t && t->sub && strcmp(t->sub, m->value) == 0;
	case POLICY_WHO_SCOPE:
		for (size_t i = 0; t && i < t->n_scopes; i++)
			if (t->scopes[i] && strcmp(t->scopes[i], m->value) == 0)
				return true;
		return false;
	default:
		return false;
	}
}

static bool rule_held(const struct policy_rule *r, const struct authn_principal *who)
{
	struct policy_member one;
	size_t n;
	const struct policy_member *m = policy_rule_members(r, &one, &n);

	for (size_t i = 0; i < n; i++)
		if (ident_held(&m[i], who))
			return true;
	return false;
}

/* r's longest prefix covering path, or NULL. */
static const char *rule_cover(const struct policy_rule *r, const char *path, size_t len)
{
	const char *best = NULL;
	size_t best_len = 0;

	for (size_t i = 0; i < r->n_prefixes; i++) {
		size_t n = strlen(r->prefixes[i]);
		if (policy_prefix_covers(r->prefixes[i], n, path, len) && (!best || n > best_len)) {
			best = r->prefixes[i];
			best_len = n;
		}
	}
	return best;
}

/* Decides (as policy_decide) and reports each rule that bears on the request. */
void policy_explain(const struct policy *p, const struct authn_principal *who, unsigned method,
                    const char *path, size_t len, struct policy_decision *out, policy_explain_fn fn,
                    void *arg)
{
	policy_decide(p, who, method, path, len, out);
	if (!p || !fn || !path)
		return;
	for (size_t i = 0; i < p->n_rules; i++) {
		const struct policy_rule *r = &p->rules[i];
		bool held = who && rule_held(r, who);
		const char *cover = rule_cover(r, path, len);
		bool meth = r->methods == 0 || (r->methods & method);
		struct policy_explain_item it = {.rule = r,
		                                 .prefix = cover ? cover : r->prefixes[0]};
		if (r == out->rule)
			it.kind = POLICY_EXPLAIN_DECIDED;
		else if (held && cover)
			it.kind = meth ? POLICY_EXPLAIN_MATCHED : POLICY_EXPLAIN_OTHER_METHOD;
		else if (held)
			it.kind = POLICY_EXPLAIN_OTHER_PREFIX;
		else if (cover)
			it.kind = POLICY_EXPLAIN_OTHER_IDENTITY;
		else
			continue;
		fn(arg, &it);
	}
}
