/*
 * policy internals shared by the policy module's .c files: the built policy's layout, the
 * segment trie used for both route and rule lookups, and the identity index.
 */
#ifndef POLICY_INT_H
#define POLICY_INT_H

#include "policy.h"

#define POLICY_N_METHODS 9 /* POLICY_M_GET .. POLICY_M_OTHER */

/* ---- types ---- */

struct policy_rule {
	enum policy_effect effect;
	enum policy_who who;
	char *value; /* NULL for POLICY_WHO_ANY; SPIFFE_PREFIX without the '*' */
	size_t value_len;
	char **prefixes;
	size_t n_prefixes;
	unsigned methods; /* 0 = all */
	char *file;
	int line;
	size_t index; /* position in the spec, the tie-breaker between equal matches */
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

/* Per trie node of a rule index: the first rule (in spec order) per method and effect. */
struct policy_verdict {
	const struct policy_rule *deny[POLICY_N_METHODS];
	const struct policy_rule *allow[POLICY_N_METHODS];
};

/* One (who, value) identity and the prefixes its rules speak about. */
struct policy_ident {
	enum policy_who who;
	const char *value; /* borrowed: from the first rule with this identity */
	size_t value_len;
	struct ptrie_node *trie; /* owned; vals are owned struct policy_verdict */
};

struct policy {
	struct policy_route *routes;
	size_t n_routes;
	struct ptrie_node *route_trie; /* vals borrowed: point into routes */
	struct policy_rule *rules;
	size_t n_rules;
	struct policy_ident *idents; /* open-addressing hash table, cap a power of two */
	size_t ident_cap;
	size_t n_idents;
	struct ptrie_node *any_trie; /* rules for POLICY_WHO_ANY */
};

/* Called for each node along a path, root first; plen = bytes of path it covers. */
typedef void (*ptrie_visit_fn)(void *arg, const struct ptrie_node *n, size_t plen);

/* ---- trie (trie.c) ---- */

struct ptrie_node *ptrie_new(void);
/* Frees the trie; free_val (may be NULL) is applied to every non-NULL val. */
void ptrie_free(struct ptrie_node *root, void (*free_val)(void *));
/* Node for a valid prefix, created if absent; NULL on allocation failure. */
struct ptrie_node *ptrie_insert(struct ptrie_node *root, const char *prefix, size_t len);
/* Visits the root and every node whose prefix covers path (segment-aware). */
void ptrie_walk(const struct ptrie_node *root, const char *path, size_t len, ptrie_visit_fn fn,
                void *arg);

/* ---- building (route.c, rules.c) ---- */

struct policy_reporter {
	policy_report_fn fn;
	void *arg;
	unsigned errors;
};

/* Reports one problem with printf-style text and counts errors. */
void policy_report(struct policy_reporter *r, bool is_error, const char *file, int line,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
char *policy_strdup(const char *s);

/* Copy and index the spec's routes / rules into p; 0 or -1 (problems reported). */
int policy_routes_build(struct policy *p, const struct policy_spec *spec,
                        struct policy_reporter *rep);
void policy_routes_free(struct policy *p);
int policy_rules_build(struct policy *p, const struct policy_spec *spec,
                       struct policy_reporter *rep);
void policy_rules_free(struct policy *p);

#endif
