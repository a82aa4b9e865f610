/*
 * The decision: the path's prefixes looked up once in the prefix dictionary, then one
 * index lookup per identity the caller holds and a binary search per prefix in each block
 * found. Cost grows with the path's length and the caller's identities, never with the
 * number of rules (bench/policy_bench.c measures it).
 */
#include <string.h>

#include "policy_int.h"

#define SCHEME_LEN 9 /* "spiffe://" */
#define NONE       UINT32_MAX
#define MAX_KEYS   16 /* identities of one caller fetched ahead; more are looked up after */

/* One identity of the caller, hashed, its slot already on its way. */
struct key {
	enum policy_who who;
	const char *v;
	size_t n;
	uint64_t h;
};

/* One decision: the request, the caller's identities, the best deny and allow so far. */
struct decide_ctx {
	unsigned bit;
	uint32_t deny, allow; /* rule numbers, NONE when not seen */
	size_t deny_len, allow_len;
	const struct policy *p;
	const char *path;
	size_t len;
	struct ix_path ap; /* the path's prefixes the policy names */
	struct key keys[MAX_KEYS];
	size_t n_keys, n_seen;
};

/* Longer prefix wins; between equal prefixes the rule written first. */
static void consider(uint32_t *cur, size_t *cur_len, uint32_t cand, size_t len)
{
	if (*cur == NONE || len > *cur_len || (len == *cur_len && cand < *cur)) {
		*cur = cand;
		*cur_len = len;
	}
}

static void decide_visit(void *arg, const struct ix_entry *e, size_t n, size_t plen)
{
	struct decide_ctx *d = arg;

	/* Within one effect, entries claim disjoint methods: at most one has the bit. */
	for (size_t i = 0; i < n; i++) {
		if (!(e[i].methods & d->bit))
			continue;
		if (e[i].effect == POLICY_DENY)
			consider(&d->deny, &d->deny_len, e[i].rule, plen);
		else
			consider(&d->allow, &d->allow_len, e[i].rule, plen);
	}
}

typedef void (*key_fn)(struct decide_ctx *d, enum policy_who who, const char *v, size_t n);

/* Calls fn for every identity of the caller, in a fixed order. */
static void each_ident(const struct authn_principal *who, key_fn fn, struct decide_ctx *d)
{
	const struct authn_cert_id *c = who->cert;
	const struct authn_token_id *t = who->has_token ? &who->token : NULL;

	if (c && c->spiffe_id) {
		size_t n = strlen(c->spiffe_id);
		fn(d, POLICY_WHO_SPIFFE, c->spiffe_id, n);
		/* The trust domain has no '/', so every '/' after the scheme ends a prefix. */
		for (size_t i = SCHEME_LEN; i < n; i++)
			if (c->spiffe_id[i] == '/')
				fn(d, POLICY_WHO_SPIFFE_PREFIX, c->spiffe_id, i + 1);
	}
	if (c && c->cn)
		fn(d, POLICY_WHO_CN, c->cn, strlen(c->cn));
	for (size_t i = 0; c && i < c->n_dns; i++)
		if (c->san_dns[i])
			fn(d, POLICY_WHO_SAN_DNS, c->san_dns[i], strlen(c->san_dns[i]));
	if (c && c->sha256_hex[0])
		fn(d, POLICY_WHO_FINGERPRINT, c->sha256_hex, strlen(c->sha256_hex));
	if (t && t->sub)
		fn(d, POLICY_WHO_TOKEN_SUB, t->sub, strlen(t->sub));
	for (size_t i = 0; t && i < t->n_scopes; i++)
		if (t->scopes[i])
			fn(d, POLICY_WHO_SCOPE, t->scopes[i], strlen(t->scopes[i]));
}

/* Rules of one identity that cover the path, into d. */
static void decide_key(struct decide_ctx *d, const struct key *k)
{
	const struct ix_head *b = ix_find_hashed(d->p, k->who, k->v, k->n, k->h);

	ix_walk_path(d->p, b, &d->ap, d->path, d->len, decide_visit, d);
}

/* First pass: hash each identity and start fetching its slot; keep MAX_KEYS of them. */
static void key_collect(struct decide_ctx *d, enum policy_who who, const char *v, size_t n)
{
	uint64_t h = ix_ident_hash(who, v, n);

	if (d->n_seen++ >= MAX_KEYS)
		return;
	ix_prefetch(d->p, h);
	d->keys[d->n_keys++] = (struct key){who, v, n, h};
}

/* Second pass, for callers with more identities than MAX_KEYS: the ones left over. */
static void key_rest(struct decide_ctx *d, enum policy_who who, const char *v, size_t n)
{
	if (d->n_seen++ < MAX_KEYS)
		return;
	const struct key k = {who, v, n, ix_ident_hash(who, v, n)};
	decide_key(d, &k);
}

/*
 * Decides for one caller (see policy.h). Fails closed: no policy, no principal or a
 * method that is not exactly one POLICY_M_* bit all give the default deny. The slots of
 * the caller's identities are requested first and the path's prefixes are looked up in
 * the dictionary while they arrive: at scale these are the cache misses that cost.
 */
void policy_decide(const struct policy *p, const struct authn_principal *who, unsigned method,
                   const char *path, size_t len, struct policy_decision *out)
{
	struct decide_ctx d;

	/* Only the scalars: the arrays are filled before they are read, and zeroing them
	 * would cost more than the rest of a small policy's decision. */
	d.deny = d.allow = NONE;
	d.deny_len = d.allow_len = 0;
	d.p = p;
	d.path = path;
	d.len = len;
	d.n_keys = d.n_seen = 0;
	out->effect = POLICY_DENY;
	out->rule = NULL;
	if (!p || !who || !path || method == 0 || (method & (method - 1)) ||
	    method > POLICY_M_OTHER)
		return;
	d.bit = method;
	each_ident(who, key_collect, &d);
	ix_path_scan(p, path, len, &d.ap);
	for (size_t i = 0; i < d.n_keys; i++)
		decide_key(&d, &d.keys[i]);
	if (d.n_seen > MAX_KEYS) {
		d.n_seen = 0;
		each_ident(who, key_rest, &d);
	}
	ix_walk_path(p, ix_any(p), &d.ap, path, len, decide_visit, &d);
	if (d.deny != NONE) {
		out->rule = &p->rules[d.deny];
	} else if (d.allow != NONE) {
		out->effect = POLICY_ALLOW;
		out->rule = &p->rules[d.allow];
	}
}
