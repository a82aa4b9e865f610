/*
 * Grants and diff: what each identity may do, prefix by prefix, and what changes between
 * two policies.
 *
 * For one identity the decision only changes at prefixes its rules (or the rules of the
 * identities it implies, or of "any") name, so evaluating it at those "points" describes
 * it completely: a path gets the verdict of the longest point covering it. Inherited
 * points (from implied identities and "any") are only kept below the identity's own
 * points; elsewhere the identity behaves exactly as the inherited identity, which is
 * listed on its own. A diff evaluates both policies at the union of both sets of points.
 */
#include <stdlib.h>
#include <string.h>

#include "policy_int.h"

#define NONE       UINT32_MAX
#define PREFIX_BUF 8200 /* policy prefixes are at most 8192 bytes */

struct point {
	const char *s; /* borrowed: a prefix of a policy's dictionary */
	size_t len;
};

struct pvec {
	struct point *v;
	size_t n, cap;
};

struct ident {
	enum policy_who who;
	const char *value; /* borrowed: a block's NUL-terminated value */
	size_t len;
};

/* Per-method deciding deny and allow of one identity at one path. */
struct verdict {
	uint32_t deny[POLICY_N_METHODS], allow[POLICY_N_METHODS];
	size_t deny_len[POLICY_N_METHODS], allow_len[POLICY_N_METHODS];
};

/* A point already seen for the current identity, and what held there. */
struct pstate {
	size_t pt;
	unsigned a, b;
};

/* Scratch of one pass over identities. */
struct gwork {
	const struct policy *ps[2];
	size_t n_ps;
	struct ident *ids;
	size_t n_ids;
	struct pvec own, inh, pts;
	struct pstate *stack; /* enclosing points of the one being looked at */
	size_t depth;
	const struct ident *cur;
	bool oom;
	char buf[PREFIX_BUF];
};

static int pvec_push(struct pvec *v, const char *s, size_t len)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? 2 * v->cap : 64;
		struct point *nv = realloc(v->v, cap * sizeof(*nv));
		if (!nv)
			return -1;
		v->v = nv;
		v->cap = cap;
	}
	v->v[v->n++] = (struct point){s, len};
	return 0;
}

static int pvec_add_block(struct pvec *v, const struct policy *p, const struct ix_head *b)
{
	for (size_t i = 0; b && i < b->n; i++) {
		const struct ix_prefix *pf = ix_block_prefix(p, b, i);
		if (pvec_push(v, pf->s, pf->len) < 0)
			return -1;
	}
	return 0;
}

static int point_cmp(const void *a, const void *b)
{
	const struct point *x = a, *y = b;
	return policy_seg_cmp(x->s, x->len, y->s, y->len);
}

/* Sorts in segment order (a prefix, then what it covers) and drops repeats. */
static void pvec_sort_unique(struct pvec *v)
{
	size_t w = 0;

	if (v->n < 2)
		return;
	qsort(v->v, v->n, sizeof(*v->v), point_cmp);
	for (size_t i = 0; i < v->n; i++)
		if (w == 0 || point_cmp(&v->v[w - 1], &v->v[i]) != 0)
			v->v[w++] = v->v[i];
	v->n = w;
}

static const struct ix_head *ident_block(const struct policy *p, const struct ident *k)
{
	if (!p)
		return NULL;
	return k->who == POLICY_WHO_ANY ? ix_any(p) : ix_find(p, k->who, k->value, k->len);
}

/* Implied identities' blocks, the identity's own excepted, into w->inh. */
static void inherit_visit(void *arg, enum policy_who who, const char *v, size_t n)
{
	struct gwork *w = arg;

	if (who == w->cur->who && n == w->cur->len)
		return;
	for (size_t i = 0; i < w->n_ps; i++)
		if (w->ps[i] && pvec_add_block(&w->inh, w->ps[i], ix_find(w->ps[i], who, v, n)) < 0)
			w->oom = true;
}

/* Keeps the inherited points that lie below one of the identity's own points. */
static int points_merge(struct gwork *w)
{
	for (size_t i = 0; i < w->own.n; i++)
		if (pvec_push(&w->pts, w->own.v[i].s, w->own.v[i].len) < 0)
			return -1;
	for (size_t i = 0; i < w->own.n; i++) {
		const struct point *o = &w->own.v[i];
		size_t lo = 0, hi = w->inh.n;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (point_cmp(&w->inh.v[mid], o) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		/* In segment order, what a prefix covers follows it without a gap. */
		for (; lo < w->inh.n &&
		       policy_prefix_covers(o->s, o->len, w->inh.v[lo].s, w->inh.v[lo].len);
		     lo++)
			if (pvec_push(&w->pts, w->inh.v[lo].s, w->inh.v[lo].len) < 0)
				return -1;
	}
	pvec_sort_unique(&w->pts);
	struct pstate *st = realloc(w->stack, (w->pts.n + 1) * sizeof(*st));
	if (!st)
		return -1;
	w->stack = st;
	w->depth = 0;
	return 0;
}

/*
 * True when point j (visited in segment order) holds exactly what its nearest enclosing
 * point holds: it adds nothing to what that one says, so it is not listed.
 */
static bool same_as_enclosing(struct gwork *w, size_t j, unsigned a, unsigned b)
{
	const struct point *pt = &w->pts.v[j];

	while (w->depth) {
		const struct point *up = &w->pts.v[w->stack[w->depth - 1].pt];
		if (policy_prefix_covers(up->s, up->len, pt->s, pt->len))
			break;
		w->depth--;
	}
	bool same = w->depth && w->stack[w->depth - 1].a == a && w->stack[w->depth - 1].b == b;
	w->stack[w->depth++] = (struct pstate){j, a, b};
	return same;
}

/* The points of identity k in every policy of w, into w->pts; 0 or -1. */
static int points_for(struct gwork *w, const struct ident *k)
{
	w->own.n = w->inh.n = w->pts.n = 0;
	w->cur = k;
	for (size_t i = 0; i < w->n_ps; i++)
		if (pvec_add_block(&w->own, w->ps[i], ident_block(w->ps[i], k)) < 0)
			return -1;
	if (k->who != POLICY_WHO_ANY) {
		policy_ident_implied(k->who, k->value, k->len, inherit_visit, w);
		if (w->oom)
			return -1;
		for (size_t i = 0; i < w->n_ps; i++)
			if (w->ps[i] && pvec_add_block(&w->inh, w->ps[i], ix_any(w->ps[i])) < 0)
				return -1;
	}
	pvec_sort_unique(&w->own);
	pvec_sort_unique(&w->inh);
	return points_merge(w);
}

static void verdict_visit(void *arg, const struct ix_entry *e, size_t n, size_t plen)
{
	struct verdict *v = arg;

	for (size_t i = 0; i < n; i++)
		for (unsigned b = 0; b < POLICY_N_METHODS; b++) {
			if (!(e[i].methods & (1u << b)))
				continue;
			uint32_t *cur = e[i].effect == POLICY_DENY ? &v->deny[b] : &v->allow[b];
			size_t *len =
			    e[i].effect == POLICY_DENY ? &v->deny_len[b] : &v->allow_len[b];
			if (*cur == NONE || plen > *len || (plen == *len && e[i].rule < *cur)) {
				*cur = e[i].rule;
				*len = plen;
			}
		}
}

struct eval_walk {
	const struct policy *p;
	const char *path;
	size_t len;
	struct verdict *v;
};

static void eval_key(void *arg, enum policy_who who, const char *v, size_t n)
{
	struct eval_walk *e = arg;
	ix_walk(e->p, ix_find(e->p, who, v, n), e->path, e->len, verdict_visit, e->v);
}

/* Every method's verdict for a caller holding k alone (and what k implies) at path. */
static void verdict_eval(const struct policy *p, const struct ident *k, const char *path,
                         size_t len, struct verdict *v)
{
	struct eval_walk e = {p, path, len, v};

	memset(v, 0, sizeof(*v));
	for (unsigned b = 0; b < POLICY_N_METHODS; b++)
		v->deny[b] = v->allow[b] = NONE;
	if (!p)
		return;
	if (k->who != POLICY_WHO_ANY)
		policy_ident_implied(k->who, k->value, k->len, eval_key, &e);
	ix_walk(p, ix_any(p), path, len, verdict_visit, v);
}

static unsigned verdict_bits(const struct verdict *v, bool allowed)
{
	unsigned out = 0;

	for (unsigned b = 0; b < POLICY_N_METHODS; b++)
		if (allowed ? v->allow[b] != NONE && v->deny[b] == NONE : v->deny[b] != NONE)
			out |= 1u << b;
	return out;
}

static const struct policy_rule *verdict_rule(const struct policy *p, const struct verdict *v,
                                              unsigned bits)
{
	if (!p || !bits)
		return NULL;
	unsigned b = (unsigned)__builtin_ctz(bits);
	if (v->deny[b] != NONE)
		return &p->rules[v->deny[b]];
	return v->allow[b] != NONE ? &p->rules[v->allow[b]] : NULL;
}

static int ident_cmp(const void *a, const void *b)
{
	const struct ident *x = a, *y = b;

	if (x->who != y->who)
		return x->who < y->who ? -1 : 1;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->value, y->value, n);
	if (c)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

/* Every identity with a block in any policy of w, sorted, once each; 0 or -1. */
static int idents_collect(struct gwork *w)
{
	size_t cap = 1;

	for (size_t i = 0; i < w->n_ps; i++)
		cap += w->ps[i] ? w->ps[i]->n_blocks + 1 : 0;
	w->ids = calloc(cap, sizeof(*w->ids));
	if (!w->ids)
		return -1;
	for (size_t i = 0; i < w->n_ps; i++) {
		const struct policy *p = w->ps[i];
		for (size_t s = 0; p && p->slots && s <= p->slot_mask; s++) {
			const struct ix_head *b = ix_slot_block(p, s);
			if (b)
				w->ids[w->n_ids++] = (struct ident){(enum policy_who)b->who,
				                                    ix_value(b), b->value_len};
		}
		if (p && ix_any(p))
			w->ids[w->n_ids++] = (struct ident){POLICY_WHO_ANY, "", 0};
	}
	qsort(w->ids, w->n_ids, sizeof(*w->ids), ident_cmp);
	size_t k = 0;
	for (size_t i = 0; i < w->n_ids; i++)
		if (k == 0 || ident_cmp(&w->ids[k - 1], &w->ids[i]) != 0)
			w->ids[k++] = w->ids[i];
	w->n_ids = k;
	return 0;
}

/* What callers see: NULL for "any", as in struct policy_rule_info. */
static const char *ident_value(const struct ident *k)
{
	return k->who == POLICY_WHO_ANY ? NULL : k->value;
}

static void gwork_free(struct gwork *w)
{
	free(w->ids);
	free(w->own.v);
	free(w->inh.v);
	free(w->pts.v);
	free(w->stack);
	free(w);
}

/* A NUL-terminated copy of point i of w->pts, in w->buf. */
static const char *point_str(struct gwork *w, size_t i)
{
	size_t n = w->pts.v[i].len < PREFIX_BUF ? w->pts.v[i].len : PREFIX_BUF - 1;

	memcpy(w->buf, w->pts.v[i].s, n);
	w->buf[n] = '\0';
	return w->buf;
}

/* A work area over up to two policies with their identities collected; NULL on failure. */
static struct gwork *gwork_new(const struct policy *a, const struct policy *b)
{
	struct gwork *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->ps[0] = a;
	w->ps[1] = b;
	w->n_ps = b ? 2 : 1;
	if (idents_collect(w) < 0) {
		gwork_free(w);
		return NULL;
	}
	return w;
}

int policy_grants(const struct policy *p, policy_grant_fn fn, void *arg)
{
	struct gwork *w = gwork_new(p, NULL);
	struct verdict v;
	int rc = -1;

	if (!w)
		return -1;
	for (size_t i = 0; i < w->n_ids; i++) {
		const struct ident *k = &w->ids[i];
		if (points_for(w, k) < 0)
			goto fail;
		for (size_t j = 0; j < w->pts.n; j++) {
			const char *pf = point_str(w, j);
			verdict_eval(p, k, pf, w->pts.v[j].len, &v);
			struct policy_grant g = {k->who, ident_value(k), pf, verdict_bits(&v, true),
			                         verdict_bits(&v, false)};
			if (same_as_enclosing(w, j, g.allowed, g.denied))
				continue;
			if ((g.allowed || g.denied) && fn)
				fn(arg, &g);
		}
	}
	rc = 0;
fail:
	gwork_free(w);
	return rc;
}

int policy_diff(const struct policy *old_p, const struct policy *new_p, policy_change_fn fn,
                void *arg)
{
	struct gwork *w = gwork_new(old_p, new_p);
	struct verdict vo, vn;
	int rc = -1;

	if (!w)
		return -1;
	for (size_t i = 0; i < w->n_ids; i++) {
		const struct ident *k = &w->ids[i];
		if (points_for(w, k) < 0)
			goto fail;
		for (size_t j = 0; j < w->pts.n; j++) {
			const char *pf = point_str(w, j);
			verdict_eval(old_p, k, pf, w->pts.v[j].len, &vo);
			verdict_eval(new_p, k, pf, w->pts.v[j].len, &vn);
			unsigned a = verdict_bits(&vo, true), b = verdict_bits(&vn, true);
			if (same_as_enclosing(w, j, a, b) || a == b || !fn)
				continue;
			struct policy_change c = {k->who,
			                          ident_value(k),
			                          pf,
			                          b & ~a,
			                          a & ~b,
			                          verdict_rule(old_p, &vo, a ^ b),
			                          verdict_rule(new_p, &vn, a ^ b)};
			fn(arg, &c);
		}
	}
	rc = 0;
fail:
	gwork_free(w);
	return rc;
}
