/* Command line of gw_loadgen: parse, validate, resolve the target, format the request. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "loadgen.h"

enum {
	OPT_CERT = 256,
	OPT_KEY,
	OPT_CA,
	OPT_INSECURE,
	OPT_SNI,
	OPT_RATE,
	OPT_NEW_CONN,
	OPT_RESUME,
	OPT_BODY,
	OPT_JSON,
	OPT_TLS12,
	OPT_TLS13,
	OPT_WARMUP,
	OPT_TIMEOUT,
	OPT_URL,
};

static const struct option long_opts[] = {
    {"url", required_argument, NULL, OPT_URL},
    {"cert", required_argument, NULL, OPT_CERT},
    {"key", required_argument, NULL, OPT_KEY},
    {"ca", required_argument, NULL, OPT_CA},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"servername", required_argument, NULL, OPT_SNI},
    {"connections", required_argument, NULL, 'c'},
    {"threads", required_argument, NULL, 't'},
    {"duration", required_argument, NULL, 'd'},
    {"requests", required_argument, NULL, 'n'},
    {"rate", required_argument, NULL, OPT_RATE},
    {"new-conn", no_argument, NULL, OPT_NEW_CONN},
    {"resume", no_argument, NULL, OPT_RESUME},
    {"header", required_argument, NULL, 'H'},
    {"method", required_argument, NULL, 'm'},
    {"body-size", required_argument, NULL, OPT_BODY},
    {"json", no_argument, NULL, OPT_JSON},
    {"tls12", no_argument, NULL, OPT_TLS12},
    {"tls13", no_argument, NULL, OPT_TLS13},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

void lg_opts_usage(FILE *out)
{
	fputs("usage: gw_loadgen --url https://HOST:PORT/PATH [options]\n"
	      "  --cert F --key F     client certificate and key (PEM)\n"
	      "  --ca F | --insecure  verify the server against F, or not at all\n"
	      "  --servername NAME    SNI and name to verify (default: URL host unless an IP)\n"
	      "  -c, --connections N  concurrent connections (default 8)\n"
	      "  -t, --threads N      threads, each with its own event loop (default 1)\n"
	      "  -d, --duration T     measure for T (10, 10s, 500ms, 1m; default 10s)\n"
	      "  -n, --requests N     stop after N measured requests\n"
	      "  --rate R             open loop: R requests/s in total, latency from the\n"
	      "                       scheduled send time (default: closed loop)\n"
	      "  --new-conn           new TCP+TLS connection for every request\n"
	      "  --resume             with --new-conn, resume the previous TLS session\n"
	      "  -H, --header 'N: v'  extra request header (repeatable)\n"
	      "  -m, --method M       request method (default GET)\n"
	      "  --body-size N        send an N-byte body\n"
	      "  --tls12 | --tls13    force the TLS version\n"
	      "  --warmup T           run T before measuring (default 0)\n"
	      "  --timeout T          per request, connect included (default 10s)\n"
	      "  --json               print the result as JSON\n",
	      out);
}

int lg_seconds_parse(const char *s, double *out)
{
	char *end = NULL;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || !isfinite(v) || v < 0)
		return -1;
	if (strcmp(end, "ms") == 0)
		v /= 1000.0;
	else if (strcmp(end, "m") == 0)
		v *= 60.0;
	else if (*end && strcmp(end, "s") != 0)
		return -1;
	*out = v;
	return 0;
}

/* Parse a positive integer option no larger than max. */
static int uint_parse(const char *s, uint64_t max, uint64_t *out)
{
	char *end = NULL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v > max)
		return -1;
	*out = v;
	return 0;
}

int lg_url_split(const char *url, char *host, size_t hostlen, char *port, size_t portlen,
                 const char **path, char *err, size_t errlen)
{
	static const char scheme[] = "https://";
	if (strncasecmp(url, scheme, sizeof(scheme) - 1) != 0) {
		snprintf(err, errlen, "url must start with https://");
		return -1;
	}
	const char *p = url + sizeof(scheme) - 1;
	const char *auth_end = p + strcspn(p, "/?#");
	const char *h = p, *h_end, *colon = NULL;
	if (*p == '[') { /* an IPv6 literal carries colons of its own */
		h = p + 1;
		h_end = memchr(h, ']', (size_t)(auth_end - h));
		if (!h_end) {
			snprintf(err, errlen, "unterminated [ in url host");
			return -1;
		}
		if (h_end + 1 < auth_end && h_end[1] == ':')
			colon = h_end + 1;
		else if (h_end + 1 != auth_end)
			goto bad;
	} else {
		colon = memchr(p, ':', (size_t)(auth_end - p));
		h_end = colon ? colon : auth_end;
	}
	size_t hl = (size_t)(h_end - h);
	if (hl == 0 || hl >= hostlen)
		goto bad;
	memcpy(host, h, hl);
	host[hl] = '\0';
	size_t pl = colon ? (size_t)(auth_end - colon - 1) : 3;
	if (pl == 0 || pl >= portlen || pl > 5)
		goto bad;
	memcpy(port, colon ? colon + 1 : "443", pl);
	port[pl] = '\0';
	if (strspn(port, "0123456789") != pl || atoi(port) < 1 || atoi(port) > 65535)
		goto bad;
	*path = auth_end;
	return 0;
bad:
	snprintf(err, errlen, "bad host or port in url '%s'", url);
	return -1;
}

/* A request rate: a positive finite number, no unit. */
static int rate_parse(const char *s, double *out)
{
	char *end = NULL;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v <= 0)
		return -1;
	*out = v;
	return 0;
}

/* Long name of option value c, for messages. */
static const char *opt_name(int c)
{
	for (const struct option *lo = long_opts; lo->name; lo++)
		if (lo->val == c)
			return lo->name;
	return "?";
}

/* Handle one option that takes no numeric argument; -1 + err on misuse. */
static int opt_flag(struct lg_opts *o, int c, const char *arg, char *err, size_t errlen)
{
	switch (c) {
	case OPT_URL:
		o->url = arg;
		return 0;
	case OPT_CERT:
		o->cert_file = arg;
		return 0;
	case OPT_KEY:
		o->key_file = arg;
		return 0;
	case OPT_CA:
		o->ca_file = arg;
		return 0;
	case OPT_INSECURE:
		o->insecure = true;
		return 0;
	case OPT_SNI:
		o->servername = arg;
		return 0;
	case OPT_NEW_CONN:
		o->new_conn = true;
		return 0;
	case OPT_RESUME:
		o->resume = true;
		return 0;
	case 'm':
		o->method = arg;
		return 0;
	case OPT_JSON:
		o->json = true;
		return 0;
	case OPT_TLS12:
	case OPT_TLS13:
		o->tls_version = c == OPT_TLS12 ? TLS1_2_VERSION : TLS1_3_VERSION;
		return 0;
	case 'h':
		o->help = true;
		return 0;
	}
	snprintf(err, errlen, "unknown option (try --help)");
	return -1;
}

/* Append a -H value after checking it is one well-formed header line. */
static int opt_header(struct lg_opts *o, const char *arg, char *err, size_t errlen)
{
	const char *colon = strchr(arg, ':');
	/* A CR or LF would let a header smuggle a second header or request. */
	if (!colon || colon == arg || strpbrk(arg, "\r\n") ||
	    strcspn(arg, " \t") < (size_t)(colon - arg)) {
		snprintf(err, errlen, "bad header '%s' (want 'Name: value')", arg);
		return -1;
	}
	const char **nh = realloc(o->headers, (o->n_headers + 1) * sizeof(*nh));
	if (!nh) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	o->headers = nh;
	o->headers[o->n_headers++] = arg;
	return 0;
}

/* Handle one option with a numeric or duration argument. */
static int opt_number(struct lg_opts *o, int c, const char *arg, char *err, size_t errlen)
{
	uint64_t v = 0;
	int rc = 0;
	switch (c) {
	case 'c':
		rc = uint_parse(arg, 100000, &v);
		o->conns = (unsigned)v;
		break;
	case 't':
		rc = uint_parse(arg, 256, &v);
		o->threads = (unsigned)v;
		break;
	case 'n':
		rc = uint_parse(arg, UINT64_MAX / 2, &v);
		o->total = v;
		rc = rc || v == 0 ? -1 : 0;
		break;
	case OPT_BODY:
		rc = uint_parse(arg, 64u << 20, &v);
		o->body_size = (size_t)v;
		break;
	case 'd':
		rc = lg_seconds_parse(arg, &o->duration);
		break;
	case OPT_WARMUP:
		rc = lg_seconds_parse(arg, &o->warmup);
		break;
	case OPT_TIMEOUT:
		rc = lg_seconds_parse(arg, &o->timeout) || o->timeout <= 0 ? -1 : 0;
		break;
	case OPT_RATE:
		rc = rate_parse(arg, &o->rate);
		break;
	default:
		return opt_flag(o, c, arg, err, errlen);
	}
	if (rc)
		snprintf(err, errlen, "bad value '%s' for --%s", arg, opt_name(c));
	return rc;
}

/* Cross-option rules and defaults that depend on more than one option. */
static int opts_check(struct lg_opts *o, char *err, size_t errlen)
{
	if (!o->url) {
		snprintf(err, errlen, "--url is required");
		return -1;
	}
	if (o->key_file && !o->cert_file) {
		snprintf(err, errlen, "--key needs --cert");
		return -1;
	}
	if (o->cert_file && !o->key_file)
		o->key_file = o->cert_file; /* a PEM holding both */
	if (o->ca_file && o->insecure) {
		snprintf(err, errlen, "--ca and --insecure contradict each other");
		return -1;
	}
	if (o->conns == 0 || o->threads == 0 || o->threads > o->conns) {
		snprintf(err, errlen, "need 1 <= threads (%u) <= connections (%u)", o->threads,
		         o->conns);
		return -1;
	}
	if (o->duration < 0)
		o->duration = o->total ? 0 : 10;
	if (o->duration == 0 && o->total == 0) {
		snprintf(err, errlen, "need a duration (-d) or a request count (-n)");
		return -1;
	}
	if (!*o->method || strpbrk(o->method, " \t\r\n")) {
		snprintf(err, errlen, "bad method '%s'", o->method);
		return -1;
	}
	o->head = strcasecmp(o->method, "HEAD") == 0;
	return 0;
}

/* Resolve the URL host once; every connection reuses the address. */
static int opts_resolve(struct lg_opts *o, char *err, size_t errlen)
{
	const char *path = NULL;
	if (lg_url_split(o->url, o->host, sizeof(o->host), o->port, sizeof(o->port), &path, err,
	                 errlen))
		return -1;
	size_t plen = strcspn(path, "#"); /* a fragment never goes on the wire */
	int add_slash = plen == 0 || path[0] != '/';
	o->path = malloc(plen + 2);
	if (!o->path) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(o->path, plen + 2, "%s%.*s", add_slash ? "/" : "", (int)plen, path);

	unsigned char tmp[sizeof(struct in6_addr)];
	o->host_is_ip =
	    inet_pton(AF_INET, o->host, tmp) == 1 || inet_pton(AF_INET6, o->host, tmp) == 1;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	int rc = getaddrinfo(o->host, o->port, &hints, &ai);
	if (rc != 0 || !ai) {
		snprintf(err, errlen, "cannot resolve %s: %s", o->host, gai_strerror(rc));
		return -1;
	}
	memcpy(&o->addr, ai->ai_addr, ai->ai_addrlen);
	o->addrlen = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

/* True when the user supplied header `name` with -H. */
static bool opts_has_header(const struct lg_opts *o, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < o->n_headers; i++)
		if (strncasecmp(o->headers[i], name, n) == 0 && o->headers[i][n] == ':')
			return true;
	return false;
}

/* Format the request once so the hot path only copies bytes into SSL_write. */
static int opts_request_build(struct lg_opts *o, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		goto fail;
	fprintf(f, "%s %s HTTP/1.1\r\n", o->method, o->path);
	if (!opts_has_header(o, "Host")) {
		bool v6 = strchr(o->host, ':') != NULL;
		fprintf(f, "Host: %s%s%s", v6 ? "[" : "", o->host, v6 ? "]" : "");
		fprintf(f, "%s%s\r\n", strcmp(o->port, "443") ? ":" : "",
		        strcmp(o->port, "443") ? o->port : "");
	}
	if (!opts_has_header(o, "User-Agent"))
		fputs("User-Agent: gw_loadgen\r\n", f);
	for (size_t i = 0; i < o->n_headers; i++)
		fprintf(f, "%s\r\n", o->headers[i]);
	bool wants_body = !strcasecmp(o->method, "POST") || !strcasecmp(o->method, "PUT") ||
	                  !strcasecmp(o->method, "PATCH");
	if ((o->body_size || wants_body) && !opts_has_header(o, "Content-Length"))
		fprintf(f, "Content-Length: %zu\r\n", o->body_size);
	if (o->new_conn)
		fputs("Connection: close\r\n", f); /* the server closes, so TIME_WAIT lands there */
	fputs("\r\n", f);
	for (size_t i = 0; i < o->body_size; i++)
		fputc('x', f);
	if (ferror(f))
		goto fail;
	if (fclose(f) != 0) {
		f = NULL;
		goto fail;
	}
	o->request = buf;
	o->request_len = len;
	return 0;
fail:
	if (f)
		fclose(f);
	free(buf);
	snprintf(err, errlen, "out of memory formatting the request");
	return -1;
}

struct lg_opts *lg_opts_new(int argc, char **argv, char *err, size_t errlen)
{
	struct lg_opts *o = calloc(1, sizeof(*o));
	if (!o) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	o->conns = 8;
	o->threads = 1;
	o->timeout = 10;
	o->duration = -1;
	o->method = "GET";
	optind = 1;
	opterr = 0; /* our own message, with the offending word */
	int c;
	while ((c = getopt_long(argc, argv, "c:t:d:n:H:m:h", long_opts, NULL)) != -1) {
		if (c == '?' || c == ':') {
			snprintf(err, errlen, "unknown option or missing value in '%s'",
			         argv[optind - 1]);
			goto fail;
		}
		if (c == 'H' ? opt_header(o, optarg, err, errlen)
		             : opt_number(o, c, optarg, err, errlen))
			goto fail;
	}
	if (optind < argc && !o->url && optind + 1 == argc)
		o->url = argv[optind++]; /* wrk style: the URL as the last word */
	if (optind < argc) {
		snprintf(err, errlen, "unexpected argument '%s'", argv[optind]);
		goto fail;
	}
	if (o->help)
		return o;
	if (opts_check(o, err, errlen) || opts_resolve(o, err, errlen) ||
	    opts_request_build(o, err, errlen))
		goto fail;
	return o;
fail:
	lg_opts_free(o);
	return NULL;
}

void lg_opts_free(struct lg_opts *o)
{
	if (!o)
		return;
	free(o->path);
	free(o->headers);
	free(o->request);
	free(o);
}
