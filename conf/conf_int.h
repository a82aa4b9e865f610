/*
 * conf internals: the declarative schema, the raw tree it fills, and the builders.
 *
 * Loading is two passes. The walker (walk.c) checks the libconfig tree against the key
 * tables of schema.c and fills the conf_raw_* structs below: every value has the right
 * type and range afterwards, defaults are applied, relative paths are resolved. The
 * builders (build.c, rules.c) then turn raw values into the snapshot's objects through
 * pki and policy, which check what only they know (files, prefixes).
 */
#ifndef CONF_INT_H
#define CONF_INT_H

#include <libconfig.h>

#include "conf.h"

/* ---- schema ---- */

enum conf_type {
	CONF_T_BOOL,  /* bool */
	CONF_T_UINT,  /* unsigned */
	CONF_T_U32,   /* uint32_t */
	CONF_T_U64,   /* uint64_t, a size in bytes (int or int64 in the file) */
	CONF_T_MS,    /* uint32_t milliseconds, from seconds (int or float in the file) */
	CONF_T_STR,   /* const char *, borrowed from the libconfig tree */
	CONF_T_PATH,  /* char *, owned: resolved against the directory of its file */
	CONF_T_STRS,  /* struct conf_strs of borrowed strings */
	CONF_T_PATHS, /* struct conf_strs of owned resolved paths */
	CONF_T_GROUP, /* a nested struct described by sub */
	CONF_T_LIST,  /* struct conf_vec of elem_size groups described by sub */
	CONF_T_RANGE, /* uint32_t[2] from [lo, hi] within [min, max]; def = lo << 16 | hi */
	CONF_T_FRAC,  /* uint32_t thousandths, from a plain number (int or float) */
};

/* Validates a string value; -1 with a predicate ("must be ...") in err. */
typedef int (*conf_check_fn)(const char *value, char *err, size_t errlen);

/*
 * One key of a group. Bounds: numbers are checked against [min, max] (milliseconds for
 * CONF_T_MS), strings against their length, STRS/PATHS/LIST against their entry count.
 * Tables end with an entry whose name is NULL.
 */
struct conf_key {
	const char *name;
	enum conf_type type;
	bool required;
	int64_t min, max;
	int64_t def; /* numbers and bools when the key is absent; strings default to NULL */
	size_t offset;
	const struct conf_key *sub; /* GROUP, LIST */
	size_t elem_size;           /* LIST */
	conf_check_fn check;        /* STR, optional */
};

/* First member of every list element: where it was written, and whether it had errors. */
struct conf_node {
	const config_setting_t *where;
	bool bad;
};

struct conf_vec {
	void *v;
	size_t n;
	const config_setting_t *where; /* NULL when absent */
};

struct conf_strs {
	const char **v;
	size_t n;
	const config_setting_t *where; /* NULL when absent */
};

/* A diagnostic of the load in progress; sorted by place before it reaches conf_diags. */
struct conf_pending {
	char *file;
	int line;
	bool is_error;
	char *msg;
	size_t seq; /* keeps messages about one line in the order they were found */
};

/* What one load carries around. */
struct conf_ctx {
	struct conf_diags *d;
	const char *name; /* file name for settings that carry none (loaded from a string) */
	const char *dir;  /* @include directory (the main file's), NULL for a string */
	char **incs;      /* "dir/name" of each included file seen, owned */
	size_t n_incs;
	struct conf_pending *v;
	size_t n, cap;
	size_t n_errors; /* errors of this load so far */
};

/* ---- the raw tree (field names are the key names) ---- */

struct conf_raw_tls_server {
	char *cert, *key, *client_ca;
	struct conf_strs crl;
	unsigned verify_depth;
	const char *min_version;
	const char *ciphers, *ciphersuites;
	bool session_tickets;
	unsigned ticket_lifetime;
	unsigned session_cache_size;
	bool require_client_cert, insecure_no_client_cert;
	const char *crl_next_update; /* "fail" (default) or "grace" (conf/ops.c) */
	unsigned crl_grace;          /* seconds */
};

struct conf_raw_listener {
	struct conf_node node;
	const char *address;
	struct conf_raw_tls_server tls;
};

struct conf_raw_server {
	struct conf_node node;
	const char *address;
	const char *name;
	unsigned weight;
	bool backup;
};

struct conf_raw_tls_client {
	char *ca, *cert, *key;
	bool name_check, verify;
	const char *min_version;
	const char *ciphers;
};

struct conf_raw_pool {
	uint32_t max_idle, idle_timeout;
	uint32_t max_connections, queue;
};

struct conf_raw_health {
	const char *path, *method, *expect_body;
	uint32_t expect_status[2];
	uint32_t interval, timeout, rise, fall, jitter;
};

struct conf_raw_outlier {
	uint32_t consecutive_failures, base_ejection, max_ejection, max_ejected_percent;
};

struct conf_raw_cluster {
	struct conf_node node;
	const char *name;
	struct conf_vec servers;
	struct conf_raw_tls_client tls;
	struct conf_raw_pool pool;
	uint32_t max_attempts;
	const char *balance;
	uint32_t retries, retry_deadline;
	struct conf_raw_health health;
	struct conf_raw_outlier outlier;
};

struct conf_raw_route {
	struct conf_node node;
	const char *prefix, *cluster, *rewrite;
	const char *need; /* "cert", "cert+token", "cert+bound-token", "cert+apikey" */
	const char *name; /* optional: rules may write "route:NAME" for the prefix */
};

/* A trusted token issuer (conf/authn.c). */
struct conf_raw_issuer {
	struct conf_node node;
	const char *name, *issuer, *audience, *hmac_kid, *scope_claim;
	char *jwks, *hmac_secret;
	uint32_t leeway, max_token;
	/* Or a JWKS fetched over HTTPS by the gateway (conf_jwks_cache_set): */
	const char *jwks_url, *jwks_address;
	char *jwks_ca;
	uint32_t jwks_refresh, jwks_min_refetch, jwks_timeout; /* ms */
};

struct conf_raw_api_keys {
	char *file, *hash_key;
};

struct conf_raw_rule {
	struct conf_node node;
	const char *spiffe, *cn, *dns, *fingerprint, *token_sub, *scope;
	bool any;
	struct conf_strs allow, deny, methods;
	const char *group; /* a group of a policy file instead of an identity */
};

/* ---- policy files (conf/policy_files.c) ---- */

struct conf_raw_member {
	struct conf_node node;
	const char *spiffe, *cn, *dns, *fingerprint, *token_sub, *scope;
};

struct conf_raw_group {
	struct conf_node node;
	const char *name;
	struct conf_vec members;
};

/* The top level of one policy file. */
struct conf_raw_policy_file {
	struct conf_vec groups, rules;
};

/* The policy files of one load, read and walked; their strings live in cfgs. */
struct conf_policy_set {
	char **paths; /* owned */
	size_t n;
	config_t *cfgs;                    /* one per path, kept until the policy is built */
	struct conf_raw_policy_file *raws; /* one per path */
	bool *ok;                          /* read and walked (errors inside are reported) */
	struct policy_group_spec *groups;  /* filled by conf_policy_files_specs */
	struct policy_member_spec *members;
	size_t n_groups;
	char **dirs; /* directories of glob patterns (watched for new files), owned */
	size_t n_dirs;
};

struct conf_raw_audit {
	char *path;
	const char *mode;
	uint32_t queue, fsync_batch, fsync_interval, checkpoint_records, checkpoint_interval;
	char *signing_key;
	bool syslog;
	const char *syslog_address;
};

struct conf_raw_admin {
	const char *address;
	bool allow_remote;
};

struct conf_raw {
	unsigned workers;
	struct conf_raw_audit audit;
	struct conf_raw_admin admin;
	struct conf_vec listeners, clusters, routes, policy;
	struct conf_strs policy_files; /* resolved patterns (conf/policy_files.c) */
	struct conf_limits limits;
	struct conf_timeouts timeouts;
	struct conf_vec issuers;           /* conf/authn.c */
	struct conf_raw_api_keys api_keys; /* conf/authn.c */
	/* Process settings (conf/ops.c). */
	const char *user, *group;
	bool allow_root, strict_key_permissions;
	uint32_t drain_timeout, watch_files; /* ms */
};

/* ---- schema.c ---- */

extern const struct conf_key conf_schema_root[];
extern const struct conf_key conf_schema_policy_file[];

/* ---- walk.c ---- */

/* Checks group g (NULL = absent: defaults only) against keys and fills base. */
void conf_walk_group(struct conf_ctx *c, const struct conf_key *keys, const config_setting_t *g,
                     void *base);
/* Frees what conf_walk_group allocated in base (arrays, resolved paths). */
void conf_walk_release(const struct conf_key *keys, void *base);

/* ---- diag.c ---- */

/*
 * File and line a setting was read from: the load's name when libconfig has no file,
 * and for an @included file its name joined to the include directory (libconfig keeps
 * the name as written). Never NULL.
 */
const char *conf_setting_file(struct conf_ctx *c, const config_setting_t *s);
int conf_setting_line(const config_setting_t *s);
/* Dotted path of a setting, e.g. "listeners[0].tls"; "" for the root. */
void conf_setting_path(const config_setting_t *s, char *buf, size_t len);
/* Adds a diagnostic of this load; file NULL means c->name, line <= 0 the whole file. */
void conf_report(struct conf_ctx *c, bool is_error, const char *file, int line, const char *fmt,
                 ...) __attribute__((format(printf, 5, 6)));
/* Moves this load's diagnostics into c->d ordered by file and line, and frees them
 * together with the rest of what c holds. */
void conf_report_flush(struct conf_ctx *c);
/* Adds a diagnostic located at setting s. */
void conf_diag_at(struct conf_ctx *c, const config_setting_t *s, bool is_error, const char *fmt,
                  ...) __attribute__((format(printf, 4, 5)));

/* ---- addr.c ---- */

bool conf_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
unsigned conf_addr_port(const struct sockaddr_storage *a);

/* ---- build.c / rules.c ---- */

/* Fills s from raw; every problem goes to c->d (s may be left partly built). */
void conf_build(struct conf_ctx *c, const struct conf_raw *raw, struct conf_snapshot *s);
void conf_build_policy(struct conf_ctx *c, const struct conf_raw *raw, struct conf_snapshot *s);
/* access.c: one rule group to a spec (strings borrowed); raw NULL = no routes to name.
 * -1 after diagnostics. */
int conf_rule_spec(struct conf_ctx *c, const struct conf_raw_rule *r, const struct conf_raw *raw,
                   struct policy_rule_spec *out);
/* access.c: hands policy_build's findings to conf_report (arg is the conf_ctx). */
void conf_policy_report(void *arg, bool is_error, const char *file, int line, const char *msg);

/* policy_files.c: expands the patterns, reads and walks each file into set. */
void conf_policy_files_read(struct conf_ctx *c, const struct conf_strs *patterns,
                            struct conf_policy_set *set);
/* Number of rules the files of set hold (an upper bound for the spec array). */
size_t conf_policy_files_count(const struct conf_policy_set *set);
/* Appends the files' rules to rules[spec->n_rules..] and sets spec's groups. */
void conf_policy_files_specs(struct conf_ctx *c, struct conf_policy_set *set,
                             const struct conf_raw *raw, struct policy_spec *spec,
                             struct policy_rule_spec *rules);
/* Adds the files (and globbed directories) to s->files for the watcher. */
void conf_policy_files_watch(struct conf_ctx *c, const struct conf_policy_set *set,
                             struct conf_snapshot *s);
void conf_policy_files_release(struct conf_policy_set *set);
/* authn.c: s->keys from the issuers and api_keys (NULL when neither is configured). */
void conf_build_authn(struct conf_ctx *c, const struct conf_raw *raw, struct conf_snapshot *s);
/* ops.c: run-as user, drain, watch list, key permissions, CRL and certificate freshness. */
void conf_build_ops(struct conf_ctx *c, const struct conf_raw *raw, struct conf_snapshot *s);
/* ops.c: whether a listener uses the CRL grace period (crl_next_update = "grace"). */
bool conf_crl_grace_mode(const struct conf_raw_tls_server *t);

#endif
