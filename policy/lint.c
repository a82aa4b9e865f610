/*
 * Warnings about rules that cannot matter, computed on the finished index so each rule
 * costs a few block walks, not a pass over all rules:
 *  - a rule is fully shadowed when, for every identity, prefix and method it names, the
 *    outcome is already fixed by other rules: a deny (of that identity, of an identity it
 *    implies, or of "any") at the same or a shorter prefix, or for an allow also an allow
 *    of that kind at a shorter prefix or earlier at the same one. Removing such a rule
 *    changes no decision. When the first rule found to cover it says the same thing
 *    (same identity, effect, methods and prefixes), it is reported as a duplicate;
 *  - an allow for a prefix that no route serves can never be used.
 */
#include <string.h>

#include "policy_int.h"

/* One rule being checked, one identity and prefix of it at a time. */
struct shadow {
	const struct policy *p;
	const struct policy_rule *r;
	size_t plen;        /* length of the prefix being checked */
	unsigned remaining; /* methods of this identity and prefix not yet covered */
	uint32_t by;        /* first covering rule */
	bool several;       /* more than one rule covers */
};

static void shadow_visit(void *arg, const struct ix_entry *e, size_t n, size_t plen)
{
	struct shadow *s = arg;

	for (size_t i = 0; i < n; i++) {
		if (e[i].rule == s->r->index || !(e[i].methods & s->remaining))
			continue;
		/* An allow never covers a deny. */
		if (e[i].effect == POLICY_ALLOW && s->r->effect == POLICY_DENY)
			continue;
		/*
		 * Entries hold the first rule per method only, so at the rule's own prefix
		 * and identity a later rule of its effect is never seen here: everything
		 * seen is earlier, broader, or of an identity every holder of this one has.
		 * Two equal rules therefore shadow one way only.
		 */
		s->remaining &= ~(unsigned)e[i].methods;
		if (s->by == UINT32_MAX)
			s->by = e[i].rule;
		else if (s->by != e[i].rule)
			s->several = true;
	}
}

/* Walks one block along the prefix being checked. */
static void shadow_walk(struct shadow *s, const struct ix_head *b, const char *prefix)
{
	if (b && s->remaining)
		ix_walk(s->p, b, prefix, s->plen, shadow_visit, s);
}

/* Every identity (who, v) implies, with the prefix being checked. */
struct implied_walk {
	struct shadow *s;
	const char *prefix;
};

static void implied_visit(void *arg, enum policy_who who, const char *v, size_t n)
{
	struct implied_walk *w = arg;

	shadow_walk(w->s, ix_find(w->s->p, who, v, n), w->prefix);
}

/* True when every method of rule s->r at (identity m, prefix) is covered. */
static bool covered_at(struct shadow *s, const struct policy_member *m, const char *prefix)
{
	struct implied_walk w = {s, prefix};

	s->plen = strlen(prefix);
	s->remaining = s->r->methods ? s->r->methods : POLICY_M_ALL;
	if (m->who != POLICY_WHO_ANY)
		policy_ident_implied(m->who, m->value, m->value_len, implied_visit, &w);
	shadow_walk(s, ix_any(s->p), prefix);
	return s->remaining == 0;
}

/* Same identity (or group), effect, methods and set of prefixes. */
static bool rules_equal(const struct policy_rule *a, const struct policy_rule *b)
{
	unsigned ma = a->methods ? a->methods : POLICY_M_ALL;
	unsigned mb = b->methods ? b->methods : POLICY_M_ALL;

	if (a->effect != b->effect || ma != mb || a->group != b->group ||
	    a->n_prefixes != b->n_prefixes)
		return false;
	if (!a->group && (a->who != b->who || a->value_len != b->value_len ||
	                  (a->value_len && memcmp(a->value, b->value, a->value_len) != 0)))
		return false;
	for (size_t i = 0; i < a->n_prefixes; i++) {
		bool found = false;
		for (size_t j = 0; j < b->n_prefixes && !found; j++)
			found = strcmp(a->prefixes[i], b->prefixes[j]) == 0;
		if (!found)
			return false;
	}
	return true;
}

/* Reports rule r when nothing it says can change a decision. */
static void lint_shadow(const struct policy *p, const struct policy_rule *r,
                        struct policy_reporter *rep)
{
	struct shadow s = {.p = p, .r = r, .by = UINT32_MAX};
	struct policy_member one;
	size_t n;
	const struct policy_member *m = policy_rule_members(r, &one, &n);

	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < r->n_prefixes; j++)
			if (!covered_at(&s, &m[i], r->prefixes[j]))
				return;
	const struct policy_rule *by = &p->rules[s.by];
	if (!s.several && rules_equal(r, by))
		policy_report(rep, false, r->file, r->line, "rule duplicates the rule at %s:%d",
		              by->file ? by->file : "?", by->line);
	else
		policy_report(rep, false, r->file, r->line,
		              "rule is fully shadowed by the rule at %s:%d%s (removing it changes "
		              "no decision)",
		              by->file ? by->file : "?", by->line, s.several ? " and others" : "");
}

/* A prefix is served when a route covers it or lies below it. */
static bool prefix_served(const struct policy *p, const char *prefix)
{
	size_t n = strlen(prefix);

	return policy_route_lookup(p, prefix, n) || ptrie_find(p->route_trie, prefix, n);
}

void policy_lint(const struct policy *p, struct policy_reporter *rep)
{
	for (size_t i = 0; i < p->n_rules; i++) {
		const struct policy_rule *r = &p->rules[i];
		lint_shadow(p, r, rep);
		if (r->effect != POLICY_ALLOW || p->n_routes == 0)
			continue;
		for (size_t j = 0; j < r->n_prefixes; j++)
			if (!prefix_served(p, r->prefixes[j]))
				policy_report(rep, false, r->file, r->line,
				              "allow for \"%s\", which no route serves",
				              r->prefixes[j]);
	}
}
