/*
 * policy lifecycle: build a complete policy from specs or nothing at all, free it, and
 * the small accessors. Routes live in route.c, rules and the decision in rules.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_int.h"

/* Formats one problem, hands it to the caller's callback and counts errors. */
void policy_report(struct policy_reporter *r, bool is_error, const char *file, int line,
                   const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (is_error)
		r->errors++;
	if (!r->fn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r->fn(r->arg, is_error, file, line, msg);
}

/* strdup that maps NULL to NULL; the caller checks (s && !result) for failure. */
char *policy_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

/*
 * Builds an immutable policy (see policy.h). Routes and rules are both checked even when
 * the first had errors, so one run reports every problem; only then is anything kept.
 */
int policy_build(const struct policy_spec *spec, policy_report_fn report, void *arg,
                 struct policy **out)
{
	struct policy_reporter rep = {report, arg, 0};
	struct policy *p = NULL;

	if (out)
		*out = NULL;
	if (!spec || !out) {
		policy_report(&rep, true, NULL, 0, "policy_build: no spec or no output");
		goto fail;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		policy_report(&rep, true, NULL, 0, "out of memory");
		goto fail;
	}
	if (policy_routes_build(p, spec, &rep) < 0)
		goto fail;
	if (policy_rules_build(p, spec, &rep) < 0)
		goto fail;
	if (rep.errors)
		goto fail;
	*out = p;
	return 0;
fail:
	policy_free(p);
	return -1;
}

/* Frees everything built; NULL is a no-op. */
void policy_free(struct policy *p)
{
	if (!p)
		return;
	policy_rules_free(p);
	policy_routes_free(p);
	free(p);
}

/* Where a rule was written; NULL and line 0 for a default deny. */
const char *policy_rule_file(const struct policy_rule *r, int *line)
{
	if (line)
		*line = r ? r->line : 0;
	return r ? r->file : NULL;
}

size_t policy_n_rules(const struct policy *p)
{
	return p ? p->n_rules : 0;
}

size_t policy_n_routes(const struct policy *p)
{
	return p ? p->n_routes : 0;
}

/* The i-th route in spec order, or NULL past the end. */
const struct policy_route *policy_route_at(const struct policy *p, size_t i)
{
	return p && i < p->n_routes ? &p->routes[i] : NULL;
}
