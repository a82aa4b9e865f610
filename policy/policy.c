/*
 * policy lifecycle: build a complete policy from specs or nothing at all, free it, the
 * string pool everything lives in, and the small accessors and formatters. Routes live in
 * route.c, rules in rules.c, the index in index.c and the decision in decide.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_int.h"

#define CHUNK_MIN (64 * 1024)

struct policy_chunk {
	struct policy_chunk *next;
	size_t used, cap;
	max_align_t data[]; /* aligned for anything the pool hands out */
};

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

/* n zeroed bytes, 8-aligned, from the current chunk or a new one; NULL when out of memory. */
void *policy_pool_alloc(struct policy_pool *pool, size_t n)
{
	struct policy_chunk *c = pool->head;

	n = ix_align8(n ? n : 1);
	if (!c || c->cap - c->used < n) {
		size_t cap = n > CHUNK_MIN ? n : CHUNK_MIN;
		c = calloc(1, sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->cap = cap;
		c->next = pool->head;
		pool->head = c;
	}
	void *out = (char *)c->data + c->used;
	c->used += n;
	return out;
}

/* A NUL-terminated copy of s[0..n) in the pool. */
char *policy_pool_strndup(struct policy_pool *pool, const char *s, size_t n)
{
	char *out = policy_pool_alloc(pool, n + 1);

	if (out)
		memcpy(out, s, n);
	return out;
}

void policy_pool_free(struct policy_pool *pool)
{
	while (pool->head) {
		struct policy_chunk *next = pool->head->next;
		free(pool->head);
		pool->head = next;
	}
}

/*
 * Builds an immutable policy (see policy.h). Routes and rules are both checked even when
 * the first had errors, so one run reports every problem; warnings about rules that can
 * never decide come last, from the finished index, and only when there was no error.
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
	if (policy_index_build(p) < 0 || policy_digest_compute(p) < 0) {
		policy_report(&rep, true, NULL, 0, "out of memory");
		goto fail;
	}
	policy_lint(p, &rep);
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
	policy_index_free(p);
	policy_routes_free(p);
	free(p->rules);
	free(p->groups);
	policy_pool_free(&p->pool);
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

size_t policy_n_groups(const struct policy *p)
{
	return p ? p->n_groups : 0;
}

/* The i-th route in spec order, or NULL past the end. */
const struct policy_route *policy_route_at(const struct policy *p, size_t i)
{
	return p && i < p->n_routes ? &p->routes[i] : NULL;
}

/* The i-th kept rule, or NULL past the end. */
const struct policy_rule *policy_rule_at(const struct policy *p, size_t i)
{
	return p && i < p->n_rules ? &p->rules[i] : NULL;
}

/* Copies r's fields out; every pointer stays owned by the policy. */
void policy_rule_get(const struct policy_rule *r, struct policy_rule_info *out)
{
	*out = (struct policy_rule_info){
	    .effect = (enum policy_effect)r->effect,
	    .who = (enum policy_who)r->who,
	    .value = r->value,
	    .group = r->group ? r->group->name : NULL,
	    .prefixes = (const char *const *)r->prefixes,
	    .n_prefixes = r->n_prefixes,
	    .methods = r->methods,
	    .file = r->file,
	    .line = r->line,
	    .index = r->index,
	};
}

const char *policy_who_str(enum policy_who w)
{
	static const char *const names[POLICY_WHO_MAX] = {
	    "spiffe", "spiffe_prefix", "cn", "dns", "fingerprint", "token_sub", "scope", "any",
	};
	return (unsigned)w < POLICY_WHO_MAX ? names[w] : "unknown";
}

/* "cn=alice"; a SPIFFE prefix is written back as the operator wrote it, with its '*'. */
size_t policy_ident_format(enum policy_who who, const char *value, const char *group, char *buf,
                           size_t cap)
{
	int n;

	if (group)
		n = snprintf(buf, cap, "group=%s", group);
	else if (who == POLICY_WHO_ANY)
		n = snprintf(buf, cap, "any");
	else if (who == POLICY_WHO_SPIFFE_PREFIX)
		n = snprintf(buf, cap, "spiffe=%s*", value ? value : "");
	else
		n = snprintf(buf, cap, "%s=%s", policy_who_str(who), value ? value : "");
	return n < 0 ? 0 : (size_t)n;
}

size_t policy_methods_format(unsigned methods, char *buf, size_t cap)
{
	static const char *const names[POLICY_N_METHODS] = {
	    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "OTHER",
	};
	size_t n = 0;

	if (cap)
		buf[0] = '\0';
	if ((methods & POLICY_M_ALL) == 0 || (methods & POLICY_M_ALL) == POLICY_M_ALL) {
		int k = snprintf(buf, cap, "*");
		return k < 0 ? 0 : (size_t)k;
	}
	for (unsigned b = 0; b < POLICY_N_METHODS; b++) {
		if (!(methods & (1u << b)))
			continue;
		int k = snprintf(n < cap ? buf + n : NULL, n < cap ? cap - n : 0, "%s%s",
		                 n ? "," : "", names[b]);
		n += k < 0 ? 0 : (size_t)k;
	}
	return n;
}

void policy_digest(const struct policy *p, unsigned char out[32])
{
	if (p)
		memcpy(out, p->digest, 32);
	else
		memset(out, 0, 32);
}

void policy_digest_hex(const struct policy *p, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char d[32];

	policy_digest(p, d);
	for (size_t i = 0; i < 32; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[64] = '\0';
}
