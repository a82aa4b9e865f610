/*
 * policy internals shared by the policy module's .c files: the built policy's layout, the
 * segment trie used for routes, and the identity index used for rules.
 *
 * The rule index is built for a decision that touches as little memory as possible,
 * whatever the number of rules. Every distinct prefix the rules name gets a number in one
 * dictionary, shared by all identities (real policies name the same routes again and
 * again, so it stays small and hot in cache). Each identity (kind, value) the rules name
 * has one block: a contiguous run of bytes in one arena with the identity's value, the
 * numbers of the prefixes its rules name (sorted) and, per prefix, the rules that decide
 * there. A small hash table maps (kind, value) to its block. A decision hashes the path
 * once, left to right; at each prefix of the path as long as some prefix of the block, it
 * looks the prefix up in the dictionary and its number up in the block: one hash probe
 * and one binary search over integers. It touches one slot and one block of a few cache
 * lines per identity of the caller, never a list of rules.
 */
#ifndef POLICY_INT_H
#define POLICY_INT_H

#include "policy.h"

#define POLICY_N_METHODS 9 /* POLICY_M_GET .. POLICY_M_OTHER */
#define POLICY_M_ALL     ((1u << POLICY_N_METHODS) - 1)

/* ---- types ---- */

/* Many small strings and arrays freed together: one malloc per 64 KiB, not per string. */
struct policy_chunk;
struct policy_pool {
	struct policy_chunk *head;
};

/* One identity: a group member, or the identity of a rule. */
struct policy_member {
	enum policy_who who;
	const char *value; /* in the pool, NUL-terminated; SPIFFE prefixes without the '*' */
	size_t value_len;
};

struct policy_group {
	const char *name; /* in the pool */
	struct policy_member *members;
	size_t n_members;
	const char *file;
	int line;
	size_t index; /* position in the spec: the first of two same-named groups */
};

struct policy_rule {
	uint8_t effect;                   /* enum policy_effect */
	uint8_t who;                      /* enum policy_who; unused for group rules */
	unsigned methods;                 /* 0 = all */
	const char *value;                /* NULL for ANY and group rules; in the pool */
	const struct policy_group *group; /* borrowed: from the policy's groups, or NULL */
	const char **prefixes;            /* in the pool */
	const char *file;                 /* in the pool, shared by the rules of one file */
	uint32_t value_len;
	uint32_t n_prefixes;
	int line;
	uint32_t index; /* position among the kept rules, the tie-breaker between equal matches */
};

/*
 * One node per path segment. Children are kept sorted by label so a lookup is a binary
 * search per segment: the cost follows the path's depth, not the number of prefixes.
 */
struct ptrie_node {
	char *label; /* segment text, NULL at the root */
	size_t label_len;
	struct ptrie_node **kids;
	size_t n_kids, cap_kids;
	void *val; /* payload; owned or borrowed as the trie's user decides */
};

/* Hash slot: the upper half of the identity's hash and its block's arena offset / 8. */
struct ix_slot {
	uint32_t tag;
	uint32_t off8; /* 0 = empty (the arena starts with 8 unused bytes) */
};

/* Dictionary slot: a prefix's hash, number + 1 (0 = empty), length and bytes (offset
 * into dict_bytes), so a probe reads the slot and the bytes, nothing else. */
struct ix_dslot {
	uint32_t hash;
	uint32_t id1;
	uint32_t len;
	uint32_t off;
};

/* Dictionary entry: the bytes of one prefix (borrowed from the rules, in the pool). */
struct ix_prefix {
	const char *s;
	uint32_t len;
	uint32_t hash;
};

/*
 * Head of one identity block, followed by: the value and a NUL (padded to 8), the n prefix
 * numbers (uint32, ascending), n uint32 "where" words (first entry << IX_COUNT_BITS |
 * entry count), and the entries.
 */
struct ix_head {
	uint64_t lens;    /* bit L set when a prefix has length L (bit 63: 63 or more) */
	uint32_t n;       /* distinct prefixes */
	uint32_t max_len; /* longest prefix: a path is never scanned further */
	uint32_t value_len;
	uint8_t who;
	uint8_t pad[3];
};

#define IX_COUNT_BITS 5 /* at most 18 entries per prefix: one per method and effect */

/*
 * The first rule (in rule order) of one effect for the methods it claims at one prefix: a
 * rule appears only if it is the first of its effect for at least one method there.
 */
struct ix_entry {
	uint32_t rule;
	uint16_t methods;
	uint8_t effect;
	uint8_t pad;
};

struct policy {
	struct policy_route *routes;
	size_t n_routes;
	struct ptrie_node *route_trie; /* vals borrowed: point into routes */
	struct policy_pool pool;       /* every string of groups and rules */
	struct policy_rule *rules;
	size_t n_rules;
	struct policy_group *groups;
	size_t n_groups;
	struct ix_dslot *dict; /* prefix -> number; open addressing, at most 2/3 full */
	size_t dict_mask;
	char *dict_bytes;           /* the distinct prefixes, NUL-separated, in the pool */
	struct ix_prefix *prefixes; /* number -> prefix */
	size_t n_prefixes;
	unsigned char *arena; /* identity blocks */
	size_t arena_len;
	struct ix_slot *slots; /* open addressing, a power of two, at most half full */
	size_t slot_mask;
	size_t n_blocks;
	uint32_t any_off8; /* the block of POLICY_WHO_ANY rules; 0 = none */
	uint64_t lens;     /* every block's lens, or-ed: prefix lengths any rule names */
	uint32_t depths;   /* bit D: some prefix has D segments ("/" has 0; 31: 31 or more) */
	uint32_t max_len;  /* the longest prefix any rule names */
	unsigned char digest[32];
};

#define IX_PATH_MAX 32 /* prefixes of one path that a policy names, remembered at once */

/* The prefixes of one request path that some rule names: dictionary numbers and lengths,
 * shortest first. overflow: more than IX_PATH_MAX, so blocks are walked one by one. */
struct ix_path {
	size_t n;
	bool overflow;
	uint32_t id[IX_PATH_MAX];
	uint32_t len[IX_PATH_MAX];
};

/* Called with the entries of each prefix of a block that covers a path, shortest first. */
typedef void (*ix_visit_fn)(void *arg, const struct ix_entry *e, size_t n, size_t plen);
/* Called for each identity implied by another (see policy_ident_implied). */
typedef void (*ident_fn)(void *arg, enum policy_who who, const char *v, size_t n);
/* Called for each node along a path, root first; plen = bytes of path it covers. */
typedef void (*ptrie_visit_fn)(void *arg, const struct ptrie_node *n, size_t plen);

/* ---- block layout ---- */

static inline size_t ix_align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

/* The bit of struct ix_head's length mask for a prefix of len bytes. */
static inline uint64_t ix_len_bit(size_t len)
{
	return (uint64_t)1 << (len < 63 ? len : 63);
}

static inline const char *ix_value(const struct ix_head *b)
{
	return (const char *)(b + 1);
}

static inline const uint32_t *ix_ids(const struct ix_head *b)
{
	return (const uint32_t *)(const void *)(ix_value(b) + ix_align8(b->value_len + 1));
}

static inline const uint32_t *ix_where(const struct ix_head *b)
{
	return ix_ids(b) + b->n;
}

static inline const struct ix_entry *ix_entries(const struct ix_head *b)
{
	return (const struct ix_entry *)(const void *)(ix_where(b) + b->n);
}

/* ---- pool (policy.c) ---- */

/* n bytes, 8-aligned, zeroed; NULL on allocation failure. */
void *policy_pool_alloc(struct policy_pool *pool, size_t n);
/* A NUL-terminated copy of s[0..n); NULL on allocation failure. */
char *policy_pool_strndup(struct policy_pool *pool, const char *s, size_t n);
void policy_pool_free(struct policy_pool *pool);

/* ---- trie (trie.c) ---- */

struct ptrie_node *ptrie_new(void);
/* Frees the trie; free_val (may be NULL) is applied to every non-NULL val. */
void ptrie_free(struct ptrie_node *root, void (*free_val)(void *));
/* Node for a valid prefix, created if absent; NULL on allocation failure. */
struct ptrie_node *ptrie_insert(struct ptrie_node *root, const char *prefix, size_t len);
/* Node for exactly prefix, or NULL when the trie has none (no route at or below it). */
const struct ptrie_node *ptrie_find(const struct ptrie_node *root, const char *prefix, size_t len);
/* Visits the root and every node whose prefix covers path (segment-aware). */
void ptrie_walk(const struct ptrie_node *root, const char *path, size_t len, ptrie_visit_fn fn,
                void *arg);

/* ---- building (route.c, rules.c, index.c, lint.c, digest.c) ---- */

struct policy_reporter {
	policy_report_fn fn;
	void *arg;
	unsigned errors;
};

/* Reports one problem with printf-style text and counts errors. */
void policy_report(struct policy_reporter *r, bool is_error, const char *file, int line,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
char *policy_strdup(const char *s);

/* Copy and index the spec's routes into p; 0 or -1 (problems reported). */
int policy_routes_build(struct policy *p, const struct policy_spec *spec,
                        struct policy_reporter *rep);
void policy_routes_free(struct policy *p);
/* Check and copy groups and rules into p (rules.c); -1 only when memory ran out. */
int policy_rules_build(struct policy *p, const struct policy_spec *spec,
                       struct policy_reporter *rep);
/* Build the identity index over p's rules (index.c); 0 or -1 (out of memory). */
int policy_index_build(struct policy *p);
void policy_index_free(struct policy *p);
/* Warnings about rules that can never decide anything (lint.c). */
void policy_lint(const struct policy *p, struct policy_reporter *rep);
/* p->digest over groups and rules (digest.c); 0 or -1. */
int policy_digest_compute(struct policy *p);

/* ---- index lookups (index.c) ---- */

/* The block of identity (who, v[0..n)), or NULL when no rule names it. */
const struct ix_head *ix_find(const struct policy *p, enum policy_who who, const char *v, size_t n);
/* The same in two steps, so the slot can be fetched while other work goes on. */
uint64_t ix_ident_hash(enum policy_who who, const char *v, size_t n);
void ix_prefetch(const struct policy *p, uint64_t h);
const struct ix_head *ix_find_hashed(const struct policy *p, enum policy_who who, const char *v,
                                     size_t n, uint64_t h);
/* The prefixes of path that the policy names (one dictionary probe per length it names). */
void ix_path_scan(const struct policy *p, const char *path, size_t len, struct ix_path *ap);
/* ix_walk over the prefixes ix_path_scan found (or over path itself after an overflow). */
void ix_walk_path(const struct policy *p, const struct ix_head *b, const struct ix_path *ap,
                  const char *path, size_t len, ix_visit_fn fn, void *arg);
/* The block of the POLICY_WHO_ANY rules, or NULL. */
const struct ix_head *ix_any(const struct policy *p);
/* Calls fn for each prefix of b (b may be NULL) that covers path, shortest first. */
void ix_walk(const struct policy *p, const struct ix_head *b, const char *path, size_t len,
             ix_visit_fn fn, void *arg);
/* The i-th prefix of block b (i < b->n). */
const struct ix_prefix *ix_block_prefix(const struct policy *p, const struct ix_head *b, size_t i);
/* The i-th block of the hash table (i < slot_mask + 1), NULL for an empty slot. */
const struct ix_head *ix_slot_block(const struct policy *p, size_t i);

/*
 * Calls fn for (who, v) itself and for every identity a caller holding it necessarily
 * holds too: the SPIFFE prefixes ("spiffe://td/", "spiffe://td/ns/", ...) above a SPIFFE
 * ID or a SPIFFE prefix. POLICY_WHO_ANY is left to the caller.
 */
void policy_ident_implied(enum policy_who who, const char *v, size_t n, ident_fn fn, void *arg);

/* The members of rule r's identity: its group's, or r's own as a one-member array. */
const struct policy_member *policy_rule_members(const struct policy_rule *r,
                                                struct policy_member *one, size_t *n);

/* Segment order: '/' sorts before every other byte, so a prefix and all the paths it
 * covers are contiguous when sorted. strcmp-like result. */
int policy_seg_cmp(const char *a, size_t alen, const char *b, size_t blen);

#endif
