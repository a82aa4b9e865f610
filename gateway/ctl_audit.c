/*
 * ctl_audit.c: `gatewayctl audit ...`, the operator's side of the audit log.
 *   keygen --out PREFIX      the Ed25519 key pair that signs checkpoints
 *   verify FILE... --pubkey  the chain and signatures of a file or a rotated series
 *   query FILE... [filters]  matching records, or --summary counts per identity and route
 * It uses the same chain code as the daemon (audit_chain.c) and nothing else of it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "audit_chain.h"

int ctl_audit_main(int argc, char **argv);

static void audit_usage(FILE *f)
{
	fprintf(f,
	        "usage:\n"
	        "  gatewayctl audit keygen --out PREFIX    write PREFIX.key (0600) and PREFIX.pub\n"
	        "  gatewayctl audit verify FILE... [--pubkey PREFIX.pub] [--open]\n"
	        "        check the chain and signed checkpoints of a file or a rotated series\n"
	        "        (oldest first); --open accepts a last file still being written\n"
	        "  gatewayctl audit query FILE... [--since T] [--until T] [--identity ID]\n"
	        "        [--path-prefix P] [--decision allow|deny] [--status N] [--summary]\n"
	        "        T: 2024-05-01, 2024-05-01T12:00:00[.frac][Z|+hh:mm] or unix seconds\n");
}

/* Calls fn for every line of every file, in order; -1 if a file cannot be read. */
static int for_each_line(char **files, int n, void *arg,
                         void (*file_fn)(void *arg, const char *name),
                         void (*line_fn)(void *arg, const char *s, size_t len, bool complete))
{
	char *line = NULL;
	size_t cap = 0;
	for (int i = 0; i < n; i++) {
		FILE *f = fopen(files[i], "re");
		if (!f) {
			perror(files[i]);
			free(line);
			return -1;
		}
		if (file_fn)
			file_fn(arg, files[i]);
		ssize_t len;
		while ((len = getline(&line, &cap, f)) > 0) {
			bool complete = line[len - 1] == '\n';
			line_fn(arg, line, (size_t)len - (complete ? 1 : 0), complete);
		}
		fclose(f);
	}
	free(line);
	return 0;
}

/* ---------------------------------------------------------------- keygen -- */

static int cmd_keygen(int argc, char **argv)
{
	char err[512];
	if (argc != 3 || strcmp(argv[1], "--out") != 0) {
		audit_usage(stderr);
		return 2;
	}
	if (audit_key_generate(argv[2], err, sizeof(err)) != 0) {
		fprintf(stderr, "audit keygen: %s\n", err);
		return 1;
	}
	printf("wrote %s.key (secret, mode 0600) and %s.pub\n", argv[2], argv[2]);
	return 0;
}

/* ---------------------------------------------------------------- verify -- */

static void verify_file_cb(void *arg, const char *name)
{
	audit_verify_file(arg, name);
}

static void verify_line_cb(void *arg, const char *s, size_t len, bool complete)
{
	audit_verify_line(arg, s, len, complete);
}

static int cmd_verify(int argc, char **argv)
{
	char **files = calloc((size_t)argc, sizeof(char *)), err[512];
	const char *pubkey = NULL;
	bool open_ok = false;
	int n = 0, rc = 2;
	static struct audit_verify v; /* large; one per process */
	unsigned char pk[32];
	char id[AUDIT_KEYID_LEN + 1];
	if (!files)
		return 2;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--pubkey") == 0 && i + 1 < argc)
			pubkey = argv[++i];
		else if (strcmp(argv[i], "--open") == 0)
			open_ok = true;
		else if (argv[i][0] != '-')
			files[n++] = argv[i];
		else
			goto out;
	}
	if (n == 0)
		goto out;
	if (pubkey && audit_pubkey_load(pk, id, pubkey, err, sizeof(err)) != 0) {
		fprintf(stderr, "audit verify: %s\n", err);
		goto out;
	}
	audit_verify_init(&v, pubkey ? pk : NULL, open_ok);
	if (for_each_line(files, n, &v, verify_file_cb, verify_line_cb) != 0)
		goto out;
	enum audit_verdict verdict = audit_verify_finish(&v);
	const struct audit_report *r = &v.rep;
	if (r->warnings)
		printf("warning: %s%s\n", r->warning, r->warnings > 1 ? " (and more)" : "");
	if (!pubkey)
		printf("warning: no --pubkey: only the hash chain was checked, checkpoints prove "
		       "nothing\n");
	if (verdict == AUDIT_INTACT) {
		printf("OK: %llu records in %llu file(s), %llu checkpoints (%llu signed%s%s): "
		       "intact\n",
		       (unsigned long long)r->records, (unsigned long long)r->files,
		       (unsigned long long)r->checkpoints,
		       (unsigned long long)r->signed_checkpoints, pubkey ? " by key " : "",
		       pubkey ? id : "");
		rc = 0;
	} else {
		printf("FAIL: %s:%llu: record %llu: %s: %s\n", r->file, (unsigned long long)r->line,
		       (unsigned long long)r->seq, audit_verdict_str(verdict), r->text);
		rc = 1;
	}
out:
	if (rc == 2 && n == 0)
		audit_usage(stderr);
	free(files);
	return rc;
}

/* ----------------------------------------------------------------- query -- */

/* RFC 3339 (date, optional time, fraction and zone; UTC without a zone) or unix
 * seconds, to microseconds since the epoch. -1 if unreadable. */
static int parse_time(const char *s, long long *us)
{
	struct tm tm = {0};
	char *end;
	long long frac = 0, scale = 1000000, off = 0;
	if (s[0] >= '0' && s[0] <= '9' && strlen(s) < 12 && strchr(s, '-') == NULL) {
		*us = strtoll(s, &end, 10) * 1000000;
		return *end ? -1 : 0;
	}
	const char *p = strptime(s, "%Y-%m-%d", &tm);
	if (!p)
		return -1;
	if (*p == 'T' || *p == ' ') {
		const char *q = strptime(p + 1, "%H:%M", &tm);
		if (!q)
			return -1;
		p = *q == ':' ? strptime(q + 1, "%S", &tm) : q;
		if (!p)
			return -1;
		if (*p == '.')
			for (p++; *p >= '0' && *p <= '9'; p++)
				if (scale > 1)
					frac += (*p - '0') * (scale /= 10);
	}
	if (*p == '+' || *p == '-') {
		int hh, mm;
		if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2)
			return -1;
		off = (hh * 3600LL + mm * 60LL) * (*p == '+' ? 1 : -1);
		p += 6;
	} else if (*p == 'Z') {
		p++;
	}
	if (*p)
		return -1;
	*us = ((long long)timegm(&tm) - off) * 1000000 + frac;
	return 0;
}

struct query {
	bool have_since, have_until, summary;
	long long since, until;
	const char *identity, *prefix, *decision;
	int status;
	unsigned long long matched;
	struct counts *by_identity, *by_route, *reasons;
};

/* A small string-keyed table of allow/deny counters (open addressing, grows). */
struct count_entry {
	char *key;
	unsigned long long allow, deny;
};
struct counts {
	struct count_entry *v;
	size_t n, cap;
};

static size_t str_hash(const char *s)
{
	size_t h = 1469598103934665603u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	return h;
}

static struct count_entry *counts_get(struct counts *c, const char *key)
{
	if (c->n * 2 >= c->cap) {
		struct counts g = {calloc(c->cap ? c->cap * 2 : 64, sizeof(*g.v)), 0,
		                   c->cap ? c->cap * 2 : 64};
		if (!g.v)
			return NULL;
		for (size_t i = 0; i < c->cap; i++) {
			if (!c->v[i].key)
				continue;
			size_t j = str_hash(c->v[i].key) % g.cap;
			while (g.v[j].key)
				j = (j + 1) % g.cap;
			g.v[j] = c->v[i];
			g.n++;
		}
		free(c->v);
		*c = g;
	}
	size_t j = str_hash(key) % c->cap;
	while (c->v[j].key && strcmp(c->v[j].key, key) != 0)
		j = (j + 1) % c->cap;
	if (!c->v[j].key) {
		if (!(c->v[j].key = strdup(key)))
			return NULL;
		c->n++;
	}
	return &c->v[j];
}

static void counts_free(struct counts *c)
{
	for (size_t i = 0; i < c->cap; i++)
		free(c->v[i].key);
	free(c->v);
}

static const char *jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static bool identity_matches(json_t *o, const char *id)
{
	json_t *cert = json_object_get(o, "cert");
	const char *cand[] = {jstr(o, "identity"), jstr(cert, "spiffe_id"), jstr(cert, "cn"),
	                      jstr(cert, "sha256")};
	for (size_t i = 0; i < sizeof(cand) / sizeof(cand[0]); i++)
		if (cand[i] && strcmp(cand[i], id) == 0)
			return true;
	return false;
}

/* Segment-aware like the policy: /api matches /api and /api/x, never /apix. */
static bool prefix_matches(const char *path, const char *p)
{
	size_t n = strlen(p);
	if (!path || strncmp(path, p, n) != 0)
		return false;
	return n == 0 || p[n - 1] == '/' || path[n] == '\0' || path[n] == '/';
}

static bool record_matches(const struct query *q, json_t *o)
{
	long long t = 0;
	const char *type = jstr(o, "type"), *ts = jstr(o, "time");
	if (!type || (strcmp(type, "request") != 0 && strcmp(type, "handshake") != 0))
		return false;
	if ((q->have_since || q->have_until) && (!ts || parse_time(ts, &t) != 0))
		return false;
	if ((q->have_since && t < q->since) || (q->have_until && t > q->until))
		return false;
	if (q->identity && !identity_matches(o, q->identity))
		return false;
	if (q->prefix && !prefix_matches(jstr(o, "path"), q->prefix))
		return false;
	if (q->decision && (!jstr(o, "decision") || strcmp(jstr(o, "decision"), q->decision) != 0))
		return false;
	if (q->status >= 0 && json_integer_value(json_object_get(o, "status")) != q->status)
		return false;
	return true;
}

static void summary_add(struct query *q, json_t *o)
{
	bool handshake = strcmp(jstr(o, "type"), "handshake") == 0;
	bool allow = jstr(o, "decision") && strcmp(jstr(o, "decision"), "allow") == 0;
	const char *id = handshake ? "(failed handshake)" : jstr(o, "identity");
	const char *route = handshake ? "(failed handshake)" : jstr(o, "route");
	char reason[160];
	struct count_entry *e[3];
	snprintf(reason, sizeof(reason), "%s%s", handshake ? "handshake: " : "",
	         jstr(o, "reason") ? jstr(o, "reason") : "?");
	e[0] = counts_get(q->by_identity, id ? id : "(no identity)");
	e[1] = counts_get(q->by_route, route ? route : "(no route)");
	e[2] = allow ? NULL : counts_get(q->reasons, reason);
	for (int i = 0; i < 3; i++) {
		if (e[i] && allow)
			e[i]->allow++;
		else if (e[i])
			e[i]->deny++;
	}
}

static void query_line_cb(void *arg, const char *s, size_t len, bool complete)
{
	struct query *q = arg;
	json_t *o = json_loadb(s, len, 0, NULL);
	if (o && record_matches(q, o)) {
		q->matched++;
		if (q->summary)
			summary_add(q, o);
		else
			printf("%.*s\n", (int)len, s);
	}
	json_decref(o);
}

static int entry_cmp(const void *a, const void *b)
{
	const struct count_entry *x = a, *y = b;
	unsigned long long tx = x->allow + x->deny, ty = y->allow + y->deny;
	if (!x->key || !y->key)
		return !x->key - !y->key;
	return tx != ty ? (tx < ty ? 1 : -1) : strcmp(x->key, y->key);
}

static void print_counts(const char *title, struct counts *c, bool reasons)
{
	qsort(c->v, c->cap, sizeof(*c->v), entry_cmp);
	printf("\n%s\n", title);
	if (reasons)
		printf("  %8s  %s\n", "denies", "reason");
	else
		printf("  %8s %8s  %s\n", "allow", "deny", "name");
	for (size_t i = 0; i < c->cap && c->v[i].key && (!reasons || i < 10); i++) {
		if (reasons)
			printf("  %8llu  %s\n", c->v[i].deny, c->v[i].key);
		else
			printf("  %8llu %8llu  %s\n", c->v[i].allow, c->v[i].deny, c->v[i].key);
	}
}

/* Parses the filter options into q; the files are gathered into files. -1: bad usage. */
static int query_args(int argc, char **argv, struct query *q, char **files, int *n)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool takes = v && strncmp(a, "--", 2) == 0 && strcmp(a, "--summary") != 0;
		if (strcmp(a, "--summary") == 0)
			q->summary = true;
		else if (strcmp(a, "--since") == 0 && v && parse_time(v, &q->since) == 0)
			q->have_since = true;
		else if (strcmp(a, "--until") == 0 && v && parse_time(v, &q->until) == 0)
			q->have_until = true;
		else if (strcmp(a, "--identity") == 0 && v)
			q->identity = v;
		else if (strcmp(a, "--path-prefix") == 0 && v)
			q->prefix = v;
		else if (strcmp(a, "--decision") == 0 && v &&
		         (!strcmp(v, "allow") || !strcmp(v, "deny")))
			q->decision = v;
		else if (strcmp(a, "--status") == 0 && v && atoi(v) > 0)
			q->status = atoi(v);
		else if (a[0] != '-')
			files[(*n)++] = argv[i];
		else {
			fprintf(stderr, "audit query: bad option or value: %s %s\n", a, v ? v : "");
			return -1;
		}
		i += takes ? 1 : 0;
	}
	return *n > 0 ? 0 : -1;
}

static int cmd_query(int argc, char **argv)
{
	struct counts ids = {0}, routes = {0}, reasons = {0};
	struct query q = {
	    .status = -1, .by_identity = &ids, .by_route = &routes, .reasons = &reasons};
	char **files = calloc((size_t)argc, sizeof(char *));
	int n = 0, rc = 2;
	if (!files)
		return 2;
	if (query_args(argc, argv, &q, files, &n) != 0) {
		audit_usage(stderr);
		goto out;
	}
	rc = 1;
	if (for_each_line(files, n, &q, NULL, query_line_cb) != 0)
		goto out;
	if (q.summary) {
		printf("%llu matching records\n", q.matched);
		print_counts("by identity:", &ids, false);
		print_counts("by route:", &routes, false);
		print_counts("top deny reasons:", &reasons, true);
	}
	rc = 0;
out:
	counts_free(&ids);
	counts_free(&routes);
	counts_free(&reasons);
	free(files);
	return rc;
}

/* argv[0] is "audit". Exit status: 0 fine, 1 failed (verify: not intact), 2 usage. */
int ctl_audit_main(int argc, char **argv)
{
	if (argc < 2) {
		audit_usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "keygen") == 0)
		return cmd_keygen(argc - 1, argv + 1);
	if (strcmp(argv[1], "verify") == 0)
		return cmd_verify(argc - 1, argv + 1);
	if (strcmp(argv[1], "query") == 0)
		return cmd_query(argc - 1, argv + 1);
	audit_usage(strcmp(argv[1], "help") == 0 ? stdout : stderr);
	return strcmp(argv[1], "help") == 0 ? 0 : 2;
}
