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
 * -1 if any error was reported (nothing is kept).
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

#endif
