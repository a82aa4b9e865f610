/*
 * policy: which authenticated caller may use which method on which path, and which
 * route (upstream cluster) serves a path.
 *
 * Pure module: no sockets, no libevent, no clock, no logging. Inputs in, verdict out.
 * The path normaliser here is the only way a request path reaches the decision and the
 * forwarder, so the path that is authorised is exactly the path that is forwarded.
 * Deny by default: an empty policy denies everything, a matching deny beats any allow.
 */
#ifndef POLICY_H
#define POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "authn.h"

/* ---- types ---- */

enum policy_effect { POLICY_DENY = 0, POLICY_ALLOW };

/* Outcome of path normalisation; everything but OK is a 400 for the client. */
enum policy_path_status {
	POLICY_PATH_OK = 0,
	POLICY_PATH_EMPTY,         /* not starting with '/' (origin-form required) */
	POLICY_PATH_BAD_ESCAPE,    /* '%' not followed by two hex digits */
	POLICY_PATH_ENCODED_SLASH, /* %2F or %5C: would split or join segments downstream */
	POLICY_PATH_BACKSLASH,     /* raw '\': Windows/IIS-style backends treat it as '/' */
	POLICY_PATH_NUL,           /* %00 */
	POLICY_PATH_BAD_CHAR,      /* control, space, non-ASCII raw byte, '#', '?' in path */
	POLICY_PATH_BAD_UTF8,      /* percent-decoded bytes are not valid (or overlong) UTF-8 */
	POLICY_PATH_ABOVE_ROOT,    /* ".." would climb above "/" */
	POLICY_PATH_DOT_PARAM,     /* ".;x" or "..;x": read as a dot segment by Tomcat & co */
	POLICY_PATH_TOO_LONG,      /* output does not fit */
	/*
	 * Raw ';' anywhere in a segment ("/admin;x/y"). Tomcat, Jetty, Spring and other
	 * servlet-style backends strip ";params" from each segment before routing, so the
	 * backend would serve "/admin/y" while the policy judged "/admin;x/y", and a deny
	 * on "/admin" would be bypassed. The dot cases keep their own, more telling
	 * status (POLICY_PATH_DOT_PARAM). An encoded "%3B" is NOT refused: it stays
	 * encoded (never decoded by the normaliser) and backends treat it as data, not as
	 * a parameter separator, so "/a%3Bx" is one segment for policy and backend alike.
	 */
	POLICY_PATH_SEMICOLON,
	POLICY_PATH_STATUS_MAX
};

/* Method bits; a rule with methods == 0 covers every method. */
#define POLICY_M_GET     (1u << 0)
#define POLICY_M_HEAD    (1u << 1)
#define POLICY_M_POST    (1u << 2)
#define POLICY_M_PUT     (1u << 3)
#define POLICY_M_DELETE  (1u << 4)
#define POLICY_M_PATCH   (1u << 5)
#define POLICY_M_OPTIONS (1u << 6)
#define POLICY_M_TRACE   (1u << 7)
#define POLICY_M_OTHER   (1u << 8) /* any other token method */

/* Who a rule is about. Values are matched exactly and case-sensitively. */
enum policy_who {
	POLICY_WHO_SPIFFE = 0,    /* exact SPIFFE ID */
	POLICY_WHO_SPIFFE_PREFIX, /* "spiffe://td/ns/prod/" + "*": stored without the "*" */
	POLICY_WHO_CN,            /* certificate subject CN */
	POLICY_WHO_SAN_DNS,       /* any DNS SAN of the certificate */
	POLICY_WHO_FINGERPRINT,   /* lower-case hex SHA-256 of the certificate DER */
	POLICY_WHO_TOKEN_SUB,     /* token subject (when a token was verified) */
	POLICY_WHO_SCOPE,         /* one of the token's scopes */
	POLICY_WHO_ANY,           /* any authenticated caller */
	POLICY_WHO_MAX
};

struct policy_rule_spec {
	enum policy_effect effect;
	enum policy_who who;
	const char *value;           /* copied by policy_build */
	const char *const *prefixes; /* normalised path prefixes, copied */
	size_t n_prefixes;
	unsigned methods; /* POLICY_M_* bits, 0 = all */
	const char *file; /* where the rule was written, copied */
	int line;
	/* Added with groups: when set, the rule is about every member of the group of this
	 * name (see struct policy_group_spec) and who/value are ignored. */
	const char *group;
};

/* One identity of a group: any kind but POLICY_WHO_ANY, checked like a rule's value. */
struct policy_member_spec {
	enum policy_who who;
	const char *value;
};

/* A named set of identities, defined once and referenced by rules through their name. */
struct policy_group_spec {
	const char *name;
	const struct policy_member_spec *members;
	size_t n_members;
	const char *file;
	int line;
};

/* What a route needs besides the client certificate (tokens come with the authn work). */
enum policy_need {
	POLICY_NEED_CERT = 0,
	POLICY_NEED_CERT_TOKEN,
	POLICY_NEED_CERT_BOUND_TOKEN,
	POLICY_NEED_CERT_APIKEY
};

struct policy_route_spec {
	const char *prefix;  /* normalised, segment-aware: "/users" covers "/users/7" */
	const char *rewrite; /* replaces the prefix when forwarding; NULL keeps the path */
	unsigned cluster;    /* index into the config's clusters */
	enum policy_need need;
	const char *file;
	int line;
};

struct policy_spec {
	const struct policy_route_spec *routes;
	size_t n_routes;
	const struct policy_rule_spec *rules;
	size_t n_rules;
	/* Added with groups; zero-initialised specs have none. */
	const struct policy_group_spec *groups;
	size_t n_groups;
};

/* A route as stored in a built policy; read-only for callers. */
struct policy_route {
	char *prefix;
	size_t prefix_len;
	char *rewrite; /* NULL = forward the path unchanged */
	size_t rewrite_len;
	unsigned cluster;
	enum policy_need need;
	char *file;
	int line;
};

struct policy_rule; /* opaque */
struct policy;      /* opaque, immutable after build, shared read-only across threads */

struct policy_decision {
	enum policy_effect effect;
	const struct policy_rule *rule; /* the rule that decided, NULL for default deny */
};

/* Called for every problem policy_build finds; is_error false means a warning. */
typedef void (*policy_report_fn)(void *arg, bool is_error, const char *file, int line,
                                 const char *msg);

/* A built rule as written (strings borrowed from the policy; read-only). */
struct policy_rule_info {
	enum policy_effect effect;
	enum policy_who who;         /* unused when group is set */
	const char *value;           /* NULL for POLICY_WHO_ANY and group rules; a SPIFFE
	                              * prefix ends in '/' (the '*' is not kept) */
	const char *group;           /* name of the group the rule names, or NULL */
	const char *const *prefixes; /* as written, normalised */
	size_t n_prefixes;
	unsigned methods; /* 0 = all */
	const char *file;
	int line;
	size_t index; /* position among the policy's rules, 0-based */
};

/* How a rule relates to one request, for policy_explain. */
enum policy_explain_kind {
	POLICY_EXPLAIN_DECIDED = 0,    /* the rule policy_decide returned */
	POLICY_EXPLAIN_MATCHED,        /* applies too (identity, method, prefix), did not decide */
	POLICY_EXPLAIN_OTHER_METHOD,   /* identity and prefix apply; the method is not listed */
	POLICY_EXPLAIN_OTHER_PREFIX,   /* the caller's identity; no prefix covers the path */
	POLICY_EXPLAIN_OTHER_IDENTITY, /* a prefix covers the path; an identity the caller lacks */
};

struct policy_explain_item {
	enum policy_explain_kind kind;
	const struct policy_rule *rule;
	const char *prefix; /* the rule's longest prefix covering the path, else its first */
};

typedef void (*policy_explain_fn)(void *arg, const struct policy_explain_item *item);

/*
 * What one identity may do under one prefix, as policy_grants and policy_diff see it: a
 * caller holding this identity alone (plus what it implies: the SPIFFE prefixes above a
 * SPIFFE ID, and "any") asks for a path under prefix but under none of the longer
 * prefixes the policy names for it.
 */
struct policy_grant {
	enum policy_who who;
	const char *value; /* NULL for POLICY_WHO_ANY; NUL-terminated */
	const char *prefix;
	unsigned allowed; /* methods allowed there */
	unsigned denied;  /* methods a deny rule refuses there */
};

typedef void (*policy_grant_fn)(void *arg, const struct policy_grant *g);

/* One change between two policies, at one identity and prefix (see struct policy_grant). */
struct policy_change {
	enum policy_who who;
	const char *value;
	const char *prefix;
	unsigned gained, lost;         /* methods allowed only in the new / only in the old */
	const struct policy_rule *was; /* old deciding rule for the first changed method */
	const struct policy_rule *now; /* new deciding rule for it (NULL: default deny) */
};

typedef void (*policy_change_fn)(void *arg, const struct policy_change *c);

/* ---- path normalisation ---- */

/*
 * Normalises an origin-form path (no query; the caller splits at the first '?'):
 * percent-decodes unreserved characters, upper-cases remaining escapes, merges repeated
 * slashes, removes "." and ".." segments (RFC 3986 5.2.4), and refuses every shape in
 * enum policy_path_status. Idempotent: normalising the output again yields it unchanged.
 * out must hold cap bytes; the result is NUL-terminated, *outlen excludes the NUL.
 * The output can be longer than the input (a raw '"' becomes "%22"): a cap of
 * 3 * len + 1 always suffices, a smaller one may give POLICY_PATH_TOO_LONG.
 */
enum policy_path_status policy_path_normalize(const char *in, size_t len, char *out, size_t cap,
                                              size_t *outlen);
const char *policy_path_status_str(enum policy_path_status s);

/* True if p[0..len) is its own normal form and a valid prefix ("/" or no trailing '/'). */
bool policy_prefix_valid(const char *p, size_t len);

/* Segment-aware prefix test: "/a" covers "/a" and "/a/b", not "/ab"; "/" covers all. */
bool policy_prefix_covers(const char *prefix, size_t plen, const char *path, size_t len);

/* Method token to POLICY_M_* bit (POLICY_M_OTHER for any other token). */
unsigned policy_method_bit(const char *method, size_t len);
/* Parses "GET" etc. strictly (for config); 0 if not a known method name. */
unsigned policy_method_parse(const char *name);

/* ---- build ---- */

/*
 * Builds an immutable policy from specs (all strings copied). Reports every problem
 * through report (may be NULL), with the spec's file:line. Returns 0 and sets *out, or
 * -1 if any error was reported (nothing is kept). A policy without errors is then checked
 * for rules that cannot matter, each reported as a warning at its file:line: rules fully
 * shadowed by others, duplicates, and (when there are routes) allows for prefixes that no
 * route serves. Costs O(rules) plus a sort per identity; no step looks at all rule pairs.
 */
int policy_build(const struct policy_spec *spec, policy_report_fn report, void *arg,
                 struct policy **out);
void policy_free(struct policy *p);

/* ---- lookups ---- */

/* Longest segment-aware prefix route for a normalised path, or NULL (404). */
const struct policy_route *policy_route_lookup(const struct policy *p, const char *path,
                                               size_t len);

/*
 * The path to forward: route->rewrite replacing route->prefix, else path unchanged.
 * Result is normalised too. Returns 0, or -1 if it does not fit in cap.
 */
int policy_route_rewrite(const struct policy_route *r, const char *path, size_t len, char *out,
                         size_t cap, size_t *outlen);

/*
 * Decides for a principal, a method bit and a normalised path. Deny if no rule allows,
 * or if any matching deny rule exists. Cost grows with path segments and the principal's
 * identities, not with the number of rules.
 */
void policy_decide(const struct policy *p, const struct authn_principal *who, unsigned method,
                   const char *path, size_t len, struct policy_decision *out);

/* file:line of a rule (for audit and explain); rule may be NULL (returns NULL, line 0). */
const char *policy_rule_file(const struct policy_rule *r, int *line);

size_t policy_n_rules(const struct policy *p);
size_t policy_n_routes(const struct policy *p);
const struct policy_route *policy_route_at(const struct policy *p, size_t i);

/* ---- rules, explain, grants, diff, digest (added with policy files) ---- */

/* The i-th rule in spec order (kept rules only), or NULL past the end. */
const struct policy_rule *policy_rule_at(const struct policy *p, size_t i);
/* Fills *out with r's fields, borrowed from the policy; r must not be NULL. */
void policy_rule_get(const struct policy_rule *r, struct policy_rule_info *out);
size_t policy_n_groups(const struct policy *p);

/* Stable token of an identity kind: "spiffe", "spiffe_prefix", "cn", "dns", ... */
const char *policy_who_str(enum policy_who w);
/*
 * Writes an identity as an operator reads it: "cn=alice", "spiffe=spiffe://td/ns/" plus a star,
 * "any", or "group=NAME" when group is set. Always NUL-terminates (truncating); returns
 * the length it needed, like snprintf.
 */
size_t policy_ident_format(enum policy_who who, const char *value, const char *group, char *buf,
                           size_t cap);
/* "GET,POST" for a method set, "*" for 0 (all); same contract as policy_ident_format. */
size_t policy_methods_format(unsigned methods, char *buf, size_t cap);

/*
 * Decides exactly like policy_decide (same *out) and then calls fn for every rule that
 * bears on the request, in rule order, classified by enum policy_explain_kind; rules that
 * share neither the caller's identity nor a prefix covering the path are skipped. Costs
 * one pass over all rules: for tools, not for the request path.
 */
void policy_explain(const struct policy *p, const struct authn_principal *who, unsigned method,
                    const char *path, size_t len, struct policy_decision *out, policy_explain_fn fn,
                    void *arg);

/*
 * Calls fn for every identity the policy names (group members one by one, "any" too) and
 * every prefix that matters to it, sorted by identity then prefix, with the methods
 * allowed and denied there (see struct policy_grant). Returns 0, or -1 when memory ran out
 * (fn may have been called for part of the grants).
 */
int policy_grants(const struct policy *p, policy_grant_fn fn, void *arg);

/*
 * Calls fn for every identity and prefix where the methods allowed differ between old and
 * new, sorted like policy_grants: who gains and who loses access, before a policy ships.
 * Either policy may be NULL (no rules). Returns 0, or -1 when memory ran out.
 */
int policy_diff(const struct policy *old_p, const struct policy *new_p, policy_change_fn fn,
                void *arg);

/*
 * SHA-256 over the groups and rules in order (effect, identity or group, methods,
 * prefixes; not file names or line numbers, so moving or re-commenting a file keeps it),
 * computed once at build. All zero for NULL. The hex form is 64 characters and a NUL.
 */
void policy_digest(const struct policy *p, unsigned char out[32]);
void policy_digest_hex(const struct policy *p, char out[65]);

#endif
