/*
 * The configuration schema as data: one table per group, one row per key with its type,
 * whether it is required, its bounds and default, and an optional validator. The rows
 * are the reference for docs/config.md; a key that is not in a table is an error.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "conf_int.h"

#define MAX_STR  4096
#define MAX_PATH 4095

/* clang-format off */
#define SEC(s) ((int64_t)(s) * 1000) /* durations are bounded in milliseconds */

/* Row builders; the key name is the field name of the raw struct. */
#define K_BOOL(st, f, def) \
	{#f, CONF_T_BOOL, false, 0, 1, def, offsetof(struct st, f), NULL, 0, NULL}
#define K_NUM(st, f, type, lo, hi, def) \
	{#f, type, false, lo, hi, def, offsetof(struct st, f), NULL, 0, NULL}
#define K_STR(st, f, req, check) \
	{#f, CONF_T_STR, req, 1, MAX_STR, 0, offsetof(struct st, f), NULL, 0, check}
#define K_PATH(st, f, req) \
	{#f, CONF_T_PATH, req, 1, MAX_PATH, 0, offsetof(struct st, f), NULL, 0, NULL}
#define K_STRS(st, f, type, lo, hi) \
	{#f, type, false, lo, hi, 0, offsetof(struct st, f), NULL, 0, NULL}
#define K_GROUP(st, f, req, sub) \
	{#f, CONF_T_GROUP, req, 0, 0, 0, offsetof(struct st, f), sub, 0, NULL}
#define K_LIST(st, f, req, lo, hi, sub, elem) \
	{#f, CONF_T_LIST, req, lo, hi, 0, offsetof(struct st, f), sub, sizeof(struct elem), NULL}
#define K_END {NULL, CONF_T_BOOL, false, 0, 0, 0, 0, NULL, 0, NULL}
/* clang-format on */

/* ---- validators ---- */

static int check_address(const char *v, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (conf_parse_address(v, &ss, &len) == 0)
		return 0;
	snprintf(err, errlen, "must be a numeric host:port or [v6]:port, not '%s'", v);
	return -1;
}

static int check_tls_version(const char *v, char *err, size_t errlen)
{
	if (strcmp(v, "TLSv1.2") == 0 || strcmp(v, "TLSv1.3") == 0)
		return 0;
	snprintf(err, errlen, "must be \"TLSv1.2\" or \"TLSv1.3\", not '%s'", v);
	return -1;
}

/* A backend name is sent as SNI and matched against its certificate: a DNS name or IP. */
static int check_server_name(const char *v, char *err, size_t errlen)
{
	for (const char *p = v; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr(".-:_", *p))
			continue;
		snprintf(err, errlen, "must be a DNS name or an IP address, not '%s'", v);
		return -1;
	}
	if (strlen(v) > 253) {
		snprintf(err, errlen, "must be at most 253 characters long");
		return -1;
	}
	return 0;
}

static int check_balance(const char *v, char *err, size_t errlen)
{
	if (strcmp(v, "round_robin") == 0 || strcmp(v, "least_outstanding") == 0)
		return 0;
	snprintf(err, errlen, "must be \"round_robin\" or \"least_outstanding\", not '%s'", v);
	return -1;
}

/* A health check target: an origin-form path, sent as is on the request line. */
static int check_health_path(const char *v, char *err, size_t errlen)
{
	if (v[0] != '/') {
		snprintf(err, errlen, "must start with '/'");
		return -1;
	}
	for (const char *p = v; *p; p++) {
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
			snprintf(err, errlen, "must not contain spaces or control characters");
			return -1;
		}
	}
	return 0;
}

static int check_health_method(const char *v, char *err, size_t errlen)
{
	if (strcmp(v, "GET") == 0 || strcmp(v, "HEAD") == 0)
		return 0;
	snprintf(err, errlen, "must be \"GET\" or \"HEAD\", not '%s'", v);
	return -1;
}

static int check_audit_mode(const char *v, char *err, size_t errlen)
{
	if (strcmp(v, "durable") == 0 || strcmp(v, "best-effort") == 0 || strcmp(v, "off") == 0)
		return 0;
	snprintf(err, errlen, "must be \"durable\", \"best-effort\" or \"off\", not '%s'", v);
	return -1;
}

/* ---- tables, innermost first ---- */

/* What a CRL past its nextUpdate does to a load: refuse it, or accept it for crl_grace. */
static int check_crl_mode(const char *v, char *err, size_t errlen)
{
	if (strcmp(v, "fail") == 0 || strcmp(v, "grace") == 0)
		return 0;
	snprintf(err, errlen, "must be \"fail\" or \"grace\", not '%s'", v);
	return -1;
}

static const struct conf_key tls_server_keys[] = {
    K_PATH(conf_raw_tls_server, cert, true),
    K_PATH(conf_raw_tls_server, key, true),
    K_PATH(conf_raw_tls_server, client_ca, true),
    K_STRS(conf_raw_tls_server, crl, CONF_T_PATHS, 1, 64),
    K_NUM(conf_raw_tls_server, verify_depth, CONF_T_UINT, 1, 16, 4),
    K_STR(conf_raw_tls_server, min_version, false, check_tls_version),
    K_STR(conf_raw_tls_server, ciphers, false, NULL),
    K_STR(conf_raw_tls_server, ciphersuites, false, NULL),
    K_BOOL(conf_raw_tls_server, session_tickets, false),
    K_NUM(conf_raw_tls_server, ticket_lifetime, CONF_T_UINT, 60, 7 * 86400, 300),
    K_NUM(conf_raw_tls_server, session_cache_size, CONF_T_UINT, 1, 10000000, 20480),
    K_BOOL(conf_raw_tls_server, require_client_cert, true),
    K_BOOL(conf_raw_tls_server, insecure_no_client_cert, false),
    K_STR(conf_raw_tls_server, crl_next_update, false, check_crl_mode),
    K_NUM(conf_raw_tls_server, crl_grace, CONF_T_UINT, 0, 90 * 86400, 86400),
    K_END,
};

static const struct conf_key listener_keys[] = {
    K_STR(conf_raw_listener, address, true, check_address),
    K_GROUP(conf_raw_listener, tls, true, tls_server_keys),
    K_END,
};

static const struct conf_key server_keys[] = {
    K_STR(conf_raw_server, address, true, check_address),
    K_STR(conf_raw_server, name, false, check_server_name),
    K_NUM(conf_raw_server, weight, CONF_T_UINT, 1, 256, 1),
    K_BOOL(conf_raw_server, backup, false),
    K_END,
};

static const struct conf_key tls_client_keys[] = {
    K_PATH(conf_raw_tls_client, ca, false),
    K_BOOL(conf_raw_tls_client, name_check, true),
    K_PATH(conf_raw_tls_client, cert, false),
    K_PATH(conf_raw_tls_client, key, false),
    K_STR(conf_raw_tls_client, min_version, false, check_tls_version),
    K_STR(conf_raw_tls_client, ciphers, false, NULL),
    K_BOOL(conf_raw_tls_client, verify, true),
    K_END,
};

static const struct conf_key pool_keys[] = {
    K_NUM(conf_raw_pool, max_idle, CONF_T_U32, 0, 4096, 128),
    K_NUM(conf_raw_pool, idle_timeout, CONF_T_MS, 1, SEC(86400), SEC(60)),
    K_NUM(conf_raw_pool, max_connections, CONF_T_U32, 0, 1000000, 0),
    K_NUM(conf_raw_pool, queue, CONF_T_U32, 0, 1000000, 64),
    K_END,
};

static const struct conf_key health_keys[] = {
    K_STR(conf_raw_health, path, false, check_health_path),
    K_STR(conf_raw_health, method, false, check_health_method),
    K_NUM(conf_raw_health, expect_status, CONF_T_RANGE, 100, 599, (200 << 16) | 399),
    K_STR(conf_raw_health, expect_body, false, NULL),
    K_NUM(conf_raw_health, interval, CONF_T_MS, 10, SEC(86400), SEC(2)),
    K_NUM(conf_raw_health, timeout, CONF_T_MS, 10, SEC(86400), SEC(1)),
    K_NUM(conf_raw_health, rise, CONF_T_U32, 1, 100, 2),
    K_NUM(conf_raw_health, fall, CONF_T_U32, 1, 100, 3),
    K_NUM(conf_raw_health, jitter, CONF_T_FRAC, 0, 1000, 200),
    K_END,
};

static const struct conf_key outlier_keys[] = {
    K_NUM(conf_raw_outlier, consecutive_failures, CONF_T_U32, 0, 1000, 5),
    K_NUM(conf_raw_outlier, base_ejection, CONF_T_MS, 1, SEC(86400), SEC(10)),
    K_NUM(conf_raw_outlier, max_ejection, CONF_T_MS, 1, SEC(86400), SEC(300)),
    K_NUM(conf_raw_outlier, max_ejected_percent, CONF_T_U32, 0, 100, 50),
    K_END,
};

static const struct conf_key cluster_keys[] = {
    K_STR(conf_raw_cluster, name, true, NULL),
    K_LIST(conf_raw_cluster, servers, true, 1, 1024, server_keys, conf_raw_server),
    K_GROUP(conf_raw_cluster, tls, true, tls_client_keys),
    K_GROUP(conf_raw_cluster, pool, false, pool_keys),
    K_NUM(conf_raw_cluster, max_attempts, CONF_T_U32, 1, 16, 3),
    K_STR(conf_raw_cluster, balance, false, check_balance),
    K_NUM(conf_raw_cluster, retries, CONF_T_U32, 0, 15, 2),
    K_NUM(conf_raw_cluster, retry_deadline, CONF_T_MS, 1, SEC(86400), SEC(10)),
    K_GROUP(conf_raw_cluster, health, false, health_keys),
    K_GROUP(conf_raw_cluster, outlier, false, outlier_keys),
    K_END,
};

/* What a route needs besides the certificate (mapped to policy_need in access.c). */
static int check_need(const char *v, char *err, size_t errlen)
{
	static const char *const needs[] = {"cert", "cert+token", "cert+bound-token",
	                                    "cert+apikey"};
	for (size_t i = 0; i < sizeof(needs) / sizeof(needs[0]); i++) {
		if (strcmp(v, needs[i]) == 0)
			return 0;
	}
	snprintf(err, errlen,
	         "must be \"cert\", \"cert+token\", \"cert+bound-token\" or \"cert+apikey\", "
	         "not '%s'",
	         v);
	return -1;
}

static const struct conf_key route_keys[] = {
    K_STR(conf_raw_route, prefix, true, NULL),
    K_STR(conf_raw_route, cluster, true, NULL),
    K_STR(conf_raw_route, rewrite, false, NULL),
    K_STR(conf_raw_route, need, false, check_need),
    K_STR(conf_raw_route, name, false, NULL),
    K_END,
};

/* An https:// URL the gateway can fetch a JWKS from (conf_https_url_parse). */
static int check_jwks_url(const char *v, char *err, size_t errlen)
{
	struct conf_https_url u;

	return conf_https_url_parse(v, &u, err, errlen);
}

/* Token issuers and API keys; files are checked by authn when the snapshot is built. */
static const struct conf_key issuer_keys[] = {
    K_STR(conf_raw_issuer, name, true, NULL),
    K_STR(conf_raw_issuer, issuer, true, NULL),
    K_STR(conf_raw_issuer, audience, true, NULL),
    K_PATH(conf_raw_issuer, jwks, false),
    K_PATH(conf_raw_issuer, hmac_secret, false),
    K_STR(conf_raw_issuer, hmac_kid, false, NULL),
    K_STR(conf_raw_issuer, scope_claim, false, NULL),
    K_NUM(conf_raw_issuer, leeway, CONF_T_U32, 0, 3600, AUTHN_LEEWAY_DEFAULT),
    K_NUM(conf_raw_issuer, max_token, CONF_T_U32, 512, 65536, AUTHN_MAX_TOKEN_DEFAULT),
    K_STR(conf_raw_issuer, jwks_url, false, check_jwks_url),
    K_PATH(conf_raw_issuer, jwks_ca, false),
    K_STR(conf_raw_issuer, jwks_address, false, check_address),
    K_NUM(conf_raw_issuer, jwks_refresh, CONF_T_MS, SEC(1), SEC(86400), SEC(300)),
    K_NUM(conf_raw_issuer, jwks_min_refetch, CONF_T_MS, SEC(1), SEC(3600), SEC(10)),
    K_NUM(conf_raw_issuer, jwks_timeout, CONF_T_MS, 100, SEC(60), SEC(5)),
    K_END,
};

static const struct conf_key api_keys_keys[] = {
    K_PATH(conf_raw_api_keys, file, true),
    K_PATH(conf_raw_api_keys, hash_key, true),
    K_END,
};

/* Which identity and effect a rule has is checked by the rule builder (rules.c). */
static const struct conf_key rule_keys[] = {
    K_STR(conf_raw_rule, spiffe, false, NULL),
    K_STR(conf_raw_rule, cn, false, NULL),
    K_STR(conf_raw_rule, dns, false, NULL),
    K_STR(conf_raw_rule, fingerprint, false, NULL),
    K_STR(conf_raw_rule, token_sub, false, NULL),
    K_STR(conf_raw_rule, scope, false, NULL),
    K_BOOL(conf_raw_rule, any, false),
    K_STRS(conf_raw_rule, allow, CONF_T_STRS, 1, 1024),
    K_STRS(conf_raw_rule, deny, CONF_T_STRS, 1, 1024),
    K_STRS(conf_raw_rule, methods, CONF_T_STRS, 1, 16),
    K_STR(conf_raw_rule, group, false, NULL),
    K_END,
};

/* Policy files (conf/policy_files.c): groups of identities and rules, nothing else. */
static const struct conf_key member_keys[] = {
    K_STR(conf_raw_member, spiffe, false, NULL),
    K_STR(conf_raw_member, cn, false, NULL),
    K_STR(conf_raw_member, dns, false, NULL),
    K_STR(conf_raw_member, fingerprint, false, NULL),
    K_STR(conf_raw_member, token_sub, false, NULL),
    K_STR(conf_raw_member, scope, false, NULL),
    K_END,
};

static const struct conf_key group_keys[] = {
    K_STR(conf_raw_group, name, true, NULL),
    K_LIST(conf_raw_group, members, true, 1, 100000, member_keys, conf_raw_member),
    K_END,
};

const struct conf_key conf_schema_policy_file[] = {
    K_LIST(conf_raw_policy_file, groups, false, 0, 100000, group_keys, conf_raw_group),
    K_LIST(conf_raw_policy_file, rules, false, 0, 1000000, rule_keys, conf_raw_rule),
    K_END,
};

static const struct conf_key limits_keys[] = {
    K_NUM(conf_limits, request_line, CONF_T_U32, 64, 1 << 20, 8192),
    K_NUM(conf_limits, header_bytes, CONF_T_U32, 1024, 16 << 20, 32768),
    K_NUM(conf_limits, header_count, CONF_T_U32, 1, 10000, 100),
    K_NUM(conf_limits, body, CONF_T_U64, 0, INT64_MAX, (int64_t)1 << 30),
    K_END,
};

static const struct conf_key timeouts_keys[] = {
    K_NUM(conf_timeouts, handshake, CONF_T_MS, 1, SEC(86400), SEC(10)),
    K_NUM(conf_timeouts, request_header, CONF_T_MS, 1, SEC(86400), SEC(10)),
    K_NUM(conf_timeouts, idle, CONF_T_MS, 1, SEC(86400), SEC(60)),
    K_NUM(conf_timeouts, upstream_connect, CONF_T_MS, 1, SEC(86400), SEC(5)),
    K_NUM(conf_timeouts, upstream_response, CONF_T_MS, 1, SEC(86400), SEC(30)),
    K_NUM(conf_timeouts, body, CONF_T_MS, 1, SEC(86400), SEC(30)),
    K_END,
};

static const struct conf_key audit_keys[] = {
    K_PATH(conf_raw_audit, path, false),
    K_STR(conf_raw_audit, mode, false, check_audit_mode),
    K_NUM(conf_raw_audit, queue, CONF_T_U32, 1, 1 << 24, 65536),
    K_NUM(conf_raw_audit, fsync_batch, CONF_T_U32, 1, 1 << 20, 256),
    K_NUM(conf_raw_audit, fsync_interval, CONF_T_MS, 1, SEC(3600), 200),
    K_NUM(conf_raw_audit, checkpoint_records, CONF_T_U32, 1, 1 << 30, 1000),
    K_NUM(conf_raw_audit, checkpoint_interval, CONF_T_MS, 10, SEC(86400), SEC(10)),
    K_PATH(conf_raw_audit, signing_key, false),
    K_BOOL(conf_raw_audit, syslog, false),
    K_STR(conf_raw_audit, syslog_address, false, check_address),
    K_END,
};

static const struct conf_key admin_keys[] = {
    K_STR(conf_raw_admin, address, true, check_address),
    K_BOOL(conf_raw_admin, allow_remote, false),
    K_END,
};

const struct conf_key conf_schema_root[] = {
    K_NUM(conf_raw, workers, CONF_T_UINT, 0, 64, 0),
    K_GROUP(conf_raw, audit, false, audit_keys),
    K_GROUP(conf_raw, admin, false, admin_keys),
    K_LIST(conf_raw, listeners, true, 1, 64, listener_keys, conf_raw_listener),
    K_GROUP(conf_raw, limits, false, limits_keys),
    K_GROUP(conf_raw, timeouts, false, timeouts_keys),
    K_LIST(conf_raw, clusters, false, 0, 1024, cluster_keys, conf_raw_cluster),
    K_LIST(conf_raw, routes, false, 0, 10000, route_keys, conf_raw_route),
    K_LIST(conf_raw, issuers, false, 0, 64, issuer_keys, conf_raw_issuer),
    K_GROUP(conf_raw, api_keys, false, api_keys_keys),
    K_LIST(conf_raw, policy, false, 0, 100000, rule_keys, conf_raw_rule),
    K_STRS(conf_raw, policy_files, CONF_T_PATHS, 1, 256),
    K_STR(conf_raw, user, false, NULL),
    K_STR(conf_raw, group, false, NULL),
    K_BOOL(conf_raw, allow_root, false),
    K_BOOL(conf_raw, strict_key_permissions, false),
    K_NUM(conf_raw, drain_timeout, CONF_T_MS, 0, SEC(3600), SEC(10)),
    K_NUM(conf_raw, watch_files, CONF_T_MS, 0, SEC(86400), 0),
    K_END,
};
