/*
 * The identity index (layout in policy_int.h): building it from the copied rules, and the
 * lookups a decision makes. Building avoids per-rule allocations, so a million rules load
 * in about a second: prefixes are numbered through one hash table, identities through
 * another, every (identity, prefix, rule) triple is placed by a counting sort on the
 * identity, each identity's triples are sorted by prefix number, and its block is written
 * into one growing arena.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "policy_int.h"

#define FNV32_INIT  2166136261u
#define FNV32_PRIME 16777619u
#define SCHEME_LEN  9 /* "spiffe://" */
#define HUGE_PAGE   ((size_t)2 << 20)
#define COUNT_MASK  ((1u << IX_COUNT_BITS) - 1)

/* An identity while building: its triples are pairs[first .. first + n_pairs). */
struct bident {
	enum policy_who who;
	const char *value;
	size_t value_len;
	uint64_t hash;
	size_t first, n_pairs;
};

/* One (prefix number, rule) of an identity. */
struct bpair {
	uint32_t id;
	uint32_t rule;
};

struct ibuild {
	struct policy *p;
	struct bident *ids;
	size_t n_ids;
	uint32_t *table; /* identity number + 1; 0 = empty */
	size_t mask;
	uint32_t *rule_id;   /* identity number of each non-group rule */
	uint32_t **group_id; /* identity numbers of each group's members */
	uint32_t *pf_id;     /* prefix number of every rule prefix, rules in order */
	struct bpair *pairs;
	struct ix_entry *ents; /* scratch: the entries of one block */
	uint32_t *where;       /* scratch: the where words of one block */
	size_t cap_ents, cap_where;
	size_t arena_cap;
};

static inline uint32_t fnv32_step(uint32_t h, unsigned char c)
{
	return (h ^ c) * FNV32_PRIME;
}

static uint32_t fnv32(const char *s, size_t n)
{
	uint32_t h = FNV32_INIT;

	for (size_t i = 0; i < n; i++)
		h = fnv32_step(h, (unsigned char)s[i]);
	return h;
}

/*
 * The identity hash, eight bytes at a time with a multiply-xorshift mix (as in
 * MurmurHash3's finaliser): every decision hashes each identity of the caller, so it
 * must be cheap. Keys come from configuration, so flooding the table is no concern.
 */
static uint64_t ident_hash(enum policy_who who, const char *v, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ ((uint64_t)who << 56) ^ n, w = 0;
	const char *end = v + n;
	size_t rest = n % 8;

	for (; v + 8 <= end; v += 8) {
		memcpy(&w, v, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	if (rest) {
		/* The tail: the last eight bytes again when there are that many (one load;
		 * the length is mixed in already), else byte by byte. */
		w = 0;
		if (n >= 8)
			memcpy(&w, end - 8, 8);
		else
			for (size_t i = 0; i < rest; i++)
				w |= (uint64_t)(unsigned char)v[i] << (8 * i);
		h = (h ^ w) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	return h ^ (h >> 33);
}

static size_t pow2_at_least(size_t n)
{
	size_t c = 8;

	while (c < n)
		c *= 2;
	return c;
}

/* ---- the prefix dictionary ---- */

/* Number of prefix s[0..n) with hash h, or UINT32_MAX when no rule names it. */
static uint32_t dict_find(const struct policy *p, const char *s, size_t n, uint32_t h)
{
	for (size_t i = h & p->dict_mask;; i = (i + 1) & p->dict_mask) {
		const struct ix_dslot *d = &p->dict[i];
		if (!d->id1)
			return UINT32_MAX;
		if (d->hash == h && d->len == n && memcmp(p->dict_bytes + d->off, s, n) == 0)
			return d->id1 - 1;
	}
}

/* While numbering: the number of s[0..n) among the prefixes seen so far, or UINT32_MAX. */
static uint32_t intern_find(const struct policy *p, const uint32_t *tab, size_t mask, const char *s,
                            size_t n, uint32_t h)
{
	for (size_t i = h & mask; tab[i]; i = (i + 1) & mask) {
		const struct ix_prefix *pf = &p->prefixes[tab[i] - 1];
		if (pf->hash == h && pf->len == n && memcmp(pf->s, s, n) == 0)
			return tab[i] - 1;
	}
	return UINT32_MAX;
}

/* Numbers every distinct prefix; b->pf_id gets the number of each rule prefix in order. */
static int dict_number(struct ibuild *b, size_t *bytes)
{
	struct policy *p = b->p;
	size_t total = 0, k = 0;

	for (size_t i = 0; i < p->n_rules; i++)
		total += p->rules[i].n_prefixes;
	size_t mask = pow2_at_least(2 * total) - 1;
	uint32_t *tab = calloc(mask + 1, sizeof(*tab));
	p->prefixes = calloc(total + 1, sizeof(*p->prefixes));
	b->pf_id = calloc(total + 1, sizeof(*b->pf_id));
	if (!tab || !p->prefixes || !b->pf_id) {
		free(tab);
		return -1;
	}
	for (size_t i = 0; i < p->n_rules; i++)
		for (size_t j = 0; j < p->rules[i].n_prefixes; j++, k++) {
			const char *s = p->rules[i].prefixes[j];
			size_t n = strlen(s);
			uint32_t h = fnv32(s, n), id = intern_find(p, tab, mask, s, n, h);
			if (id == UINT32_MAX) {
				id = (uint32_t)p->n_prefixes++;
				p->prefixes[id] = (struct ix_prefix){s, (uint32_t)n, h};
				size_t t = h & mask;
				while (tab[t])
					t = (t + 1) & mask;
				tab[t] = id + 1;
				*bytes += n + 1;
			}
			b->pf_id[k] = id;
		}
	free(tab);
	return 0;
}

/*
 * The prefix dictionary: every distinct prefix numbered, its bytes copied together and
 * hashed into a table sized for them, so what a decision probes is small enough to stay
 * in cache.
 */
static int dict_build(struct ibuild *b)
{
	struct policy *p = b->p;
	size_t bytes = 0, off = 0;

	if (dict_number(b, &bytes) < 0)
		return -1;
	/* Up to two thirds full: probes stay short and the table small enough for cache. */
	p->dict_mask = pow2_at_least(p->n_prefixes + p->n_prefixes / 2 + 1) - 1;
	p->dict = calloc(p->dict_mask + 1, sizeof(*p->dict));
	p->dict_bytes = policy_pool_alloc(&p->pool, bytes);
	if (!p->dict || !p->dict_bytes)
		return -1;
	for (size_t i = 0; i < p->n_prefixes; i++) {
		struct ix_prefix *pf = &p->prefixes[i];
		memcpy(p->dict_bytes + off, pf->s, pf->len + 1);
		pf->s = p->dict_bytes + off;
		size_t t = pf->hash & p->dict_mask;
		while (p->dict[t].id1)
			t = (t + 1) & p->dict_mask;
		p->dict[t] = (struct ix_dslot){pf->hash, (uint32_t)i + 1, pf->len, (uint32_t)off};
		off += pf->len + 1;
	}
	return 0;
}

/* ---- identities and triples ---- */

/* Number of identity (who, v), added if new (the table is sized for every identity). */
static uint32_t ident_number(struct ibuild *b, enum policy_who who, const char *v, size_t n)
{
	uint64_t h = ident_hash(who, v, n);

	for (size_t i = (size_t)h & b->mask;; i = (i + 1) & b->mask) {
		uint32_t k = b->table[i];
		if (k == 0) {
			b->ids[b->n_ids] = (struct bident){who, v, n, h, 0, 0};
			b->table[i] = (uint32_t)++b->n_ids;
			return (uint32_t)(b->n_ids - 1);
		}
		const struct bident *e = &b->ids[k - 1];
		if (e->hash == h && e->who == who && e->value_len == n &&
		    memcmp(e->value, v, n) == 0)
			return k - 1;
	}
}

/* Numbers every identity of the groups and rules; -1 when memory runs out. */
static int idents_number(struct ibuild *b)
{
	const struct policy *p = b->p;
	size_t bound = 1 + p->n_rules;

	for (size_t g = 0; g < p->n_groups; g++)
		bound += p->groups[g].n_members;
	b->ids = calloc(bound, sizeof(*b->ids));
	b->mask = pow2_at_least(2 * bound) - 1;
	b->table = calloc(b->mask + 1, sizeof(*b->table));
	b->rule_id = calloc(p->n_rules + 1, sizeof(*b->rule_id));
	b->group_id = calloc(p->n_groups + 1, sizeof(*b->group_id));
	if (!b->ids || !b->table || !b->rule_id || !b->group_id)
		return -1;
	for (size_t g = 0; g < p->n_groups; g++) {
		const struct policy_group *gr = &p->groups[g];
		b->group_id[g] = calloc(gr->n_members, sizeof(**b->group_id));
		if (!b->group_id[g])
			return -1;
		for (size_t m = 0; m < gr->n_members; m++)
			b->group_id[g][m] = ident_number(
			    b, gr->members[m].who, gr->members[m].value, gr->members[m].value_len);
	}
	for (size_t i = 0; i < p->n_rules; i++) {
		const struct policy_rule *r = &p->rules[i];
		if (!r->group)
			b->rule_id[i] = ident_number(b, (enum policy_who)r->who,
			                             r->value ? r->value : "", r->value_len);
	}
	return 0;
}

/* The identity numbers of rule i's members, and how many. */
static const uint32_t *rule_ids(const struct ibuild *b, size_t i, size_t *n)
{
	const struct policy_rule *r = &b->p->rules[i];

	if (!r->group) {
		*n = 1;
		return &b->rule_id[i];
	}
	*n = r->group->n_members;
	return b->group_id[r->group - b->p->groups];
}

/* Places every (identity, prefix, rule) triple, grouped by identity, in rule order. */
static int pairs_place(struct ibuild *b)
{
	const struct policy *p = b->p;
	size_t total = 0, n;

	for (size_t i = 0; i < p->n_rules; i++) {
		const uint32_t *ids = rule_ids(b, i, &n);
		for (size_t k = 0; k < n; k++)
			b->ids[ids[k]].n_pairs += p->rules[i].n_prefixes;
	}
	for (size_t k = 0; k < b->n_ids; k++) {
		b->ids[k].first = total;
		total += b->ids[k].n_pairs;
		b->ids[k].n_pairs = 0; /* counts again while placing */
	}
	b->pairs = calloc(total + 1, sizeof(*b->pairs));
	if (!b->pairs)
		return -1;
	for (size_t i = 0, pf = 0; i < p->n_rules; pf += p->rules[i].n_prefixes, i++) {
		const uint32_t *ids = rule_ids(b, i, &n);
		for (size_t k = 0; k < n; k++) {
			struct bident *e = &b->ids[ids[k]];
			for (size_t j = 0; j < p->rules[i].n_prefixes; j++)
				b->pairs[e->first + e->n_pairs++] =
				    (struct bpair){b->pf_id[pf + j], (uint32_t)i};
		}
	}
	return 0;
}

static int pair_cmp(const void *a, const void *b)
{
	const struct bpair *x = a, *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->rule < y->rule ? -1 : x->rule > y->rule;
}

/* ---- blocks ---- */

/* Room for n more bytes in the arena; -1 when memory runs out. */
static int arena_reserve(struct ibuild *b, size_t n)
{
	struct policy *p = b->p;

	if (p->arena_len + n <= b->arena_cap)
		return 0;
	size_t nc = b->arena_cap ? b->arena_cap : 4096;
	while (nc < p->arena_len + n)
		nc *= 2;
	unsigned char *a = realloc(p->arena, nc);
	if (!a)
		return -1;
	memset(a + b->arena_cap, 0, nc - b->arena_cap);
	p->arena = a;
	b->arena_cap = nc;
	return 0;
}

/* Grows a scratch array to hold need elements; -1 when memory runs out. */
static int scratch_grow(void **v, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return 0;
	size_t nc = *cap ? *cap : 64;
	while (nc < need)
		nc *= 2;
	void *nv = realloc(*v, nc * size);
	if (!nv)
		return -1;
	*v = nv;
	*cap = nc;
	return 0;
}

/*
 * Entries of one identity, into the scratch arrays: per prefix (pairs sorted by prefix
 * number, then rule), the first rule of each effect for each method, in rule order; and
 * per prefix its number and where word. Returns the prefix count, or -1 when memory runs
 * out; *n_ents counts the entries.
 */
static long block_entries(struct ibuild *b, const struct bpair *pr, size_t n, size_t *n_ents)
{
	size_t n_recs = 0;

	*n_ents = 0;
	for (size_t i = 0, j; i < n; i = j) {
		unsigned claimed[2] = {0, 0};
		size_t first = *n_ents;
		for (j = i; j < n && pr[j].id == pr[i].id; j++) {
			const struct policy_rule *r = &b->p->rules[pr[j].rule];
			unsigned fresh =
			    (r->methods ? r->methods : POLICY_M_ALL) & ~claimed[r->effect];
			if (!fresh)
				continue;
			claimed[r->effect] |= fresh;
			if (scratch_grow((void **)&b->ents, &b->cap_ents, *n_ents + 1,
			                 sizeof(*b->ents)) < 0)
				return -1;
			b->ents[(*n_ents)++] =
			    (struct ix_entry){pr[j].rule, (uint16_t)fresh, r->effect, 0};
		}
		if (scratch_grow((void **)&b->where, &b->cap_where, 2 * (n_recs + 1),
		                 sizeof(*b->where)) < 0)
			return -1;
		/* Scratch pairs: the prefix number, then the where word. */
		b->where[2 * n_recs] = pr[i].id;
		b->where[2 * n_recs + 1] = (uint32_t)(first << IX_COUNT_BITS | (*n_ents - first));
		n_recs++;
	}
	return (long)n_recs;
}

/* Sorts one identity's triples and appends its block; returns its offset, 0 on failure. */
static size_t block_emit(struct ibuild *b, const struct bident *id)
{
	struct policy *p = b->p;
	struct bpair *pr = b->pairs + id->first;
	size_t n_ents;

	qsort(pr, id->n_pairs, sizeof(*pr), pair_cmp);
	long n = block_entries(b, pr, id->n_pairs, &n_ents);
	size_t head = sizeof(struct ix_head) + ix_align8(id->value_len + 1);
	size_t total = ix_align8(head + 8 * (size_t)n + n_ents * sizeof(struct ix_entry));
	if (n < 0 || arena_reserve(b, total) < 0)
		return 0;
	size_t off = p->arena_len;
	struct ix_head *h = (struct ix_head *)(void *)(p->arena + off);
	uint32_t *ids = (uint32_t *)(void *)((char *)h + head);
	h->n = (uint32_t)n;
	h->value_len = (uint32_t)id->value_len;
	h->who = (uint8_t)id->who;
	memcpy(h + 1, id->value, id->value_len);
	for (long k = 0; k < n; k++) {
		const struct ix_prefix *pf = &p->prefixes[b->where[2 * k]];
		ids[k] = b->where[2 * k];
		ids[n + k] = b->where[2 * k + 1];
		h->lens |= ix_len_bit(pf->len);
		if (pf->len > h->max_len)
			h->max_len = pf->len;
	}
	memcpy(ids + 2 * n, b->ents, n_ents * sizeof(*b->ents));
	p->arena_len += total;
	return off;
}

/*
 * Moves a large table to memory aligned for huge pages and asks for them: a decision
 * touches random blocks, and with 4 KiB pages nearly every one of those touches also
 * misses the TLB. Only a hint; 0 or -1 (out of memory).
 */
static int settle(void **mem, size_t len)
{
	void *m = NULL;
	size_t cap = (len + HUGE_PAGE - 1) & ~(size_t)(HUGE_PAGE - 1);

	if (len < HUGE_PAGE)
		return 0;
	if (posix_memalign(&m, HUGE_PAGE, cap) != 0)
		return -1;
#ifdef MADV_HUGEPAGE
	madvise(m, cap, MADV_HUGEPAGE);
#endif
	memcpy(m, *mem, len);
	free(*mem);
	*mem = m;
	return 0;
}

/* Writes every block and the final slot table (sized for the identities actually seen). */
static int blocks_emit(struct ibuild *b)
{
	struct policy *p = b->p;

	p->slot_mask = pow2_at_least(2 * b->n_ids) - 1;
	p->slots = calloc(p->slot_mask + 1, sizeof(*p->slots));
	if (!p->slots || arena_reserve(b, 8) < 0)
		return -1;
	p->arena_len = 8; /* offset 0 marks an empty slot */
	for (size_t k = 0; k < b->n_ids; k++) {
		const struct bident *id = &b->ids[k];
		if (id->n_pairs == 0)
			continue; /* a group member no rule uses */
		size_t off = block_emit(b, id);
		if (!off)
			return -1;
		if (id->who == POLICY_WHO_ANY) {
			p->any_off8 = (uint32_t)(off / 8);
			continue;
		}
		size_t i = (size_t)id->hash & p->slot_mask;
		while (p->slots[i].off8)
			i = (i + 1) & p->slot_mask;
		p->slots[i] = (struct ix_slot){(uint32_t)(id->hash >> 32), (uint32_t)(off / 8)};
		p->n_blocks++;
	}
	for (size_t i = 0; i < p->n_prefixes; i++) {
		const struct ix_prefix *pf = &p->prefixes[i];
		size_t depth = 0;
		for (size_t k = 0; pf->len > 1 && k < pf->len; k++)
			depth += pf->s[k] == '/';
		p->lens |= ix_len_bit(pf->len);
		p->depths |= 1u << (depth < 31 ? depth : 31);
		if (pf->len > p->max_len)
			p->max_len = pf->len;
	}
	if (settle((void **)&p->arena, p->arena_len) < 0 ||
	    settle((void **)&p->slots, (p->slot_mask + 1) * sizeof(*p->slots)) < 0)
		return -1;
	return 0;
}

/*
 * Builds p's prefix dictionary and identity index from p->rules and p->groups. Returns 0,
 * or -1 when memory ran out (p keeps what it has, for policy_free). Arena offsets are
 * stored divided by 8 in 32 bits, so an index holds up to 32 GiB of blocks.
 */
int policy_index_build(struct policy *p)
{
	struct ibuild b = {.p = p};
	int rc = -1;

	if (dict_build(&b) < 0 || idents_number(&b) < 0 || pairs_place(&b) < 0 ||
	    blocks_emit(&b) < 0)
		goto fail;
	rc = 0;
fail:
	for (size_t g = 0; b.group_id && g < p->n_groups; g++)
		free(b.group_id[g]);
	free(b.group_id);
	free(b.rule_id);
	free(b.table);
	free(b.ids);
	free(b.pf_id);
	free(b.pairs);
	free(b.ents);
	free(b.where);
	return rc;
}

void policy_index_free(struct policy *p)
{
	free(p->arena);
	free(p->slots);
	free(p->dict);
	free(p->prefixes);
	p->arena = NULL;
	p->slots = NULL;
	p->dict = NULL;
	p->prefixes = NULL;
	p->arena_len = p->n_blocks = p->slot_mask = p->dict_mask = p->n_prefixes = 0;
	p->any_off8 = 0;
	p->lens = 0;
	p->depths = 0;
	p->max_len = 0;
}

/* ---- lookups ---- */

uint64_t ix_ident_hash(enum policy_who who, const char *v, size_t n)
{
	return ident_hash(who, v, n);
}

/* Starts fetching the slot an identity of hash h is looked up in. */
void ix_prefetch(const struct policy *p, uint64_t h)
{
	if (p->slots)
		__builtin_prefetch(&p->slots[(size_t)h & p->slot_mask]);
}

const struct ix_head *ix_find_hashed(const struct policy *p, enum policy_who who, const char *v,
                                     size_t n, uint64_t h)
{
	uint32_t tag = (uint32_t)(h >> 32);

	if (!p->slots || !p->n_blocks)
		return NULL;
	/* The table is at most half full, so the probe always ends. */
	for (size_t i = (size_t)h & p->slot_mask;; i = (i + 1) & p->slot_mask) {
		const struct ix_slot s = p->slots[i];
		if (!s.off8)
			return NULL;
		if (s.tag != tag)
			continue;
		const struct ix_head *b = (const void *)(p->arena + (size_t)s.off8 * 8);
		/* The walk reads the block's next lines too: ask for them all at once rather
		 * than one cache miss after another. */
		for (size_t k = 1; k < 4; k++)
			__builtin_prefetch((const char *)b + 64 * k);
		if (b->who == who && b->value_len == n && memcmp(ix_value(b), v, n) == 0)
			return b;
	}
}

const struct ix_head *ix_find(const struct policy *p, enum policy_who who, const char *v, size_t n)
{
	return ix_find_hashed(p, who, v, n, ident_hash(who, v, n));
}

const struct ix_head *ix_any(const struct policy *p)
{
	return p->any_off8 ? (const void *)(p->arena + (size_t)p->any_off8 * 8) : NULL;
}

const struct ix_head *ix_slot_block(const struct policy *p, size_t i)
{
	if (!p->slots || i > p->slot_mask || !p->slots[i].off8)
		return NULL;
	return (const void *)(p->arena + (size_t)p->slots[i].off8 * 8);
}

const struct ix_prefix *ix_block_prefix(const struct policy *p, const struct ix_head *b, size_t i)
{
	return &p->prefixes[ix_ids(b)[i]];
}

/* Calls fn with the entries of prefix number id (plen bytes) when block b names it. */
static void visit_id(const struct ix_head *b, uint32_t id, size_t plen, ix_visit_fn fn, void *arg)
{
	const uint32_t *ids = ix_ids(b);
	size_t lo = 0, hi = b->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ids[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == b->n || ids[lo] != id)
		return;
	uint32_t w = ix_where(b)[lo];
	fn(arg, ix_entries(b) + (w >> IX_COUNT_BITS), w & COUNT_MASK, plen);
}

/* Calls fn with the entries of prefix path[0..plen) (hash h) when block b names it. */
static void visit(const struct policy *p, const struct ix_head *b, const char *path, size_t plen,
                  uint32_t h, ix_visit_fn fn, void *arg)
{
	uint32_t id = dict_find(p, path, plen, h);

	if (id != UINT32_MAX)
		visit_id(b, id, plen, fn, arg);
}

/*
 * The prefixes covering a path are "/" and path[0..e) for every e where a '/' follows or
 * the path ends; the path is hashed once, left to right, and each of those lengths the
 * block has prefixes of is looked up. Nothing past the block's longest prefix can match,
 * so the scan stops there.
 */
void ix_walk(const struct policy *p, const struct ix_head *b, const char *path, size_t len,
             ix_visit_fn fn, void *arg)
{
	uint32_t h = fnv32_step(FNV32_INIT, '/');

	if (!b || len == 0 || path[0] != '/')
		return;
	if (b->lens & ix_len_bit(1))
		visit(p, b, path, 1, h, fn, arg);
	size_t lim = len < b->max_len ? len : b->max_len;
	for (size_t e = 1; e <= lim; e++) {
		/* Most identities name prefixes of a few lengths only: skip the others. */
		if (e >= 2 && (e == len || path[e] == '/') && (b->lens & ix_len_bit(e)))
			visit(p, b, path, e, h, fn, arg);
		if (e < len)
			h = fnv32_step(h, (unsigned char)path[e]);
	}
}

/*
 * Looks the prefixes of path up in the dictionary once for all the caller's identities:
 * the scan of ix_walk, against the lengths any rule names.
 */
/* Appends prefix number id of plen bytes; false (overflow set) when ap is full. */
static bool path_add(struct ix_path *ap, uint32_t id, size_t plen)
{
	if (ap->n == IX_PATH_MAX) {
		ap->overflow = true;
		return false;
	}
	ap->id[ap->n] = id;
	ap->len[ap->n++] = (uint32_t)plen;
	return true;
}

void ix_path_scan(const struct policy *p, const char *path, size_t len, struct ix_path *ap)
{
	uint32_t h = fnv32_step(FNV32_INIT, '/'), id;
	size_t lim = len < p->max_len ? len : p->max_len, depth = 1;

	ap->n = 0;
	ap->overflow = false;
	if (len == 0 || path[0] != '/')
		return;
	if ((p->lens & ix_len_bit(1)) && (id = dict_find(p, path, 1, h)) != UINT32_MAX)
		path_add(ap, id, 1);
	/* Segment by segment: hash to the next '/', then probe the prefix that ends there
	 * if some prefix has its length and its number of segments. */
	for (size_t i = 1; i <= len; depth++) {
		size_t j = i;
		while (j < len && j <= lim && path[j] != '/')
			h = fnv32_step(h, (unsigned char)path[j++]);
		if (j > lim)
			return;
		if (j >= 2 && (p->lens & ix_len_bit(j)) &&
		    (p->depths & (1u << (depth < 31 ? depth : 31))) &&
		    (id = dict_find(p, path, j, h)) != UINT32_MAX && !path_add(ap, id, j))
			return;
		if (j == len)
			return;
		h = fnv32_step(h, '/');
		i = j + 1;
	}
}

void ix_walk_path(const struct policy *p, const struct ix_head *b, const struct ix_path *ap,
                  const char *path, size_t len, ix_visit_fn fn, void *arg)
{
	if (!b)
		return;
	if (ap->overflow) {
		ix_walk(p, b, path, len, fn, arg);
		return;
	}
	for (size_t i = 0; i < ap->n; i++)
		if (ap->len[i] <= b->max_len && (b->lens & ix_len_bit(ap->len[i])))
			visit_id(b, ap->id[i], ap->len[i], fn, arg);
}

void policy_ident_implied(enum policy_who who, const char *v, size_t n, ident_fn fn, void *arg)
{
	fn(arg, who, v, n);
	if ((who != POLICY_WHO_SPIFFE && who != POLICY_WHO_SPIFFE_PREFIX) || n <= SCHEME_LEN)
		return;
	/* The trust domain has no '/', so every '/' after the scheme ends a prefix. */
	for (size_t i = SCHEME_LEN; i + 1 < n; i++)
		if (v[i] == '/')
			fn(arg, POLICY_WHO_SPIFFE_PREFIX, v, i + 1);
}

int policy_seg_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;

	for (size_t i = 0; i < n; i++) {
		unsigned x = a[i] == '/' ? 0 : (unsigned char)a[i] + 1u;
		unsigned y = b[i] == '/' ? 0 : (unsigned char)b[i] + 1u;
		if (x != y)
			return x < y ? -1 : 1;
	}
	return alen < blen ? -1 : alen > blen;
}
