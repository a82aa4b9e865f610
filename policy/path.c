/*
 * Path normalisation: the one canonical spelling of a request path that is both
 * authorised and forwarded. Every encoding trick that could make the policy see one
 * path and the backend another (dot segments, encoded dots and slashes, overlong UTF-8,
 * backslashes, ";" path parameters) is either folded into the canonical form or refused
 * with a status. An encoded "%3B" is data, not a parameter: it stays encoded.
 */
#include <stdlib.h>
#include <string.h>

#include "policy_int.h"

static const char hex_upper[] = "0123456789ABCDEF";

/* Canonical form of one segment being built, and what the dot checks need to know. */
struct seg_info {
	size_t out_len; /* canonical bytes */
	size_t pre_len; /* canonical bytes before the first raw ';' */
	char pre[2];    /* the first two of those */
	bool has_semi;
};

/* UTF-8 decoder state: continuation bytes still needed and the allowed range of the next. */
struct utf8_state {
	unsigned need;
	unsigned char lo, hi;
};

static int hex_val(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool is_unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

/* RFC 3986 gen-delims and sub-delims: they keep their raw meaning, so stay raw. */
static bool is_reserved(unsigned char c)
{
	return c != '\0' && strchr(":/?#[]@!$&'()*+,;=", c) != NULL;
}

/*
 * Feeds one (decoded) byte to the UTF-8 check. The ranges after E0, ED, F0 and F4 are
 * what exclude overlong forms, surrogates and code points above U+10FFFF; C0, C1 and
 * F5..FF are never valid leads (so "%C0%AE", an overlong '.', is refused here).
 */
static bool utf8_feed(struct utf8_state *u, unsigned char b)
{
	if (u->need) {
		if (b < u->lo || b > u->hi)
			return false;
		u->need--;
		u->lo = 0x80;
		u->hi = 0xbf;
		return true;
	}
	u->lo = 0x80;
	u->hi = 0xbf;
	if (b < 0x80)
		return true;
	if (b >= 0xc2 && b <= 0xdf)
		u->need = 1;
	else if (b >= 0xe0 && b <= 0xef)
		u->need = 2;
	else if (b >= 0xf0 && b <= 0xf4)
		u->need = 3;
	else
		return false;
	if (b == 0xe0)
		u->lo = 0xa0;
	else if (b == 0xed)
		u->hi = 0x9f;
	else if (b == 0xf0)
		u->lo = 0x90;
	else if (b == 0xf4)
		u->hi = 0x8f;
	return true;
}

/* Appends one canonical byte (out may be NULL on the measuring pass). */
static void seg_emit(char *out, struct seg_info *si, char c)
{
	if (out)
		out[si->out_len] = c;
	si->out_len++;
	if (!si->has_semi) {
		if (si->pre_len < sizeof(si->pre))
			si->pre[si->pre_len] = c;
		si->pre_len++;
	}
}

static void seg_emit_escape(char *out, struct seg_info *si, unsigned char b)
{
	seg_emit(out, si, '%');
	seg_emit(out, si, hex_upper[b >> 4]);
	seg_emit(out, si, hex_upper[b & 0xf]);
}

/* Classifies a raw byte that is not '%'; returns OK or the refusal. */
static enum policy_path_status raw_check(unsigned char c)
{
	/* Why '#' and '?': the caller split the query off, so either here means smuggling. */
	if (c < 0x20 || c == 0x7f || c == ' ' || c >= 0x80 || c == '#' || c == '?')
		return POLICY_PATH_BAD_CHAR;
	if (c == '\\')
		return POLICY_PATH_BACKSLASH;
	return POLICY_PATH_OK;
}

/* Canonicalises the "%HH" escape at s (n bytes left); it always spans 3 bytes. */
static enum policy_path_status escape_code(const char *s, size_t n, char *out, struct seg_info *si,
                                           struct utf8_state *u)
{
	int hi = n >= 3 ? hex_val((unsigned char)s[1]) : -1;
	int lo = n >= 3 ? hex_val((unsigned char)s[2]) : -1;

	if (hi < 0 || lo < 0)
		return POLICY_PATH_BAD_ESCAPE;
	unsigned char b = (unsigned char)(hi << 4 | lo);
	if (b == 0)
		return POLICY_PATH_NUL;
	/* Why refuse: decoded by the backend they would split or join segments. */
	if (b == '/' || b == '\\')
		return POLICY_PATH_ENCODED_SLASH;
	if (!utf8_feed(u, b))
		return POLICY_PATH_BAD_UTF8;
	if (is_unreserved(b))
		seg_emit(out, si, (char)b); /* "%41" and "A" are the same URI: one spelling */
	else
		seg_emit_escape(out, si, b);
	return POLICY_PATH_OK;
}

/*
 * Canonicalises the raw segment s[0..n) (no '/' inside) into out, or only measures it
 * when out is NULL. Fills *si; returns OK or the first refusal found.
 */
static enum policy_path_status seg_code(const char *s, size_t n, char *out, struct seg_info *si)
{
	struct utf8_state u = {0, 0x80, 0xbf};
	enum policy_path_status st;

	memset(si, 0, sizeof(*si));
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '%') {
			st = escape_code(s + i, n - i, out, si, &u);
			if (st != POLICY_PATH_OK)
				return st;
			i += 2;
			continue;
		}
		st = raw_check(c);
		if (st != POLICY_PATH_OK)
			return st;
		/* A raw ASCII byte cannot continue a multi-byte sequence. */
		if (!utf8_feed(&u, c))
			return POLICY_PATH_BAD_UTF8;
		if (c == ';')
			si->has_semi = true;
		/*
		 * Why escape the rest (" < > ^ ` { | }): RFC 3986 does not allow them raw, and a
		 * backend decodes "%22" and '"' alike, so they get one spelling too.
		 */
		if (is_unreserved(c) || is_reserved(c))
			seg_emit(out, si, (char)c);
		else
			seg_emit_escape(out, si, c);
	}
	/* A sequence cut by '/' or the end is as invalid as one cut by any ASCII byte. */
	return u.need ? POLICY_PATH_BAD_UTF8 : POLICY_PATH_OK;
}

static bool seg_is_dots(const struct seg_info *si, size_t len, size_t ndots)
{
	return len == ndots && si->pre[0] == '.' && (ndots == 1 || si->pre[1] == '.');
}

/* Drops the last segment of out[0..*w) (which ends in '/') back to the previous '/'. */
static void out_pop(const char *out, size_t *w)
{
	size_t j = *w - 1;

	while (j > 0 && out[j - 1] != '/')
		j--;
	*w = j;
}

/* Handles one non-empty raw segment; *trailing tells whether the result must end in '/'. */
static enum policy_path_status seg_step(const char *s, size_t n, char *out, size_t cap, size_t *w,
                                        size_t *nseg, bool *trailing)
{
	struct seg_info si;
	enum policy_path_status st = seg_code(s, n, NULL, &si);

	if (st != POLICY_PATH_OK)
		return st;
	/* Why refuse ".;x" and "..;x": Tomcat & co drop the parameter and see a dot segment. */
	if (si.has_semi && (seg_is_dots(&si, si.pre_len, 1) || seg_is_dots(&si, si.pre_len, 2)))
		return POLICY_PATH_DOT_PARAM;
	/* Why refuse any other ';': those backends also drop "/admin;x" to "/admin". */
	if (si.has_semi)
		return POLICY_PATH_SEMICOLON;
	if (seg_is_dots(&si, si.out_len, 1)) {
		*trailing = true;
		return POLICY_PATH_OK;
	}
	if (seg_is_dots(&si, si.out_len, 2)) {
		/* Clamping at "/" (RFC 3986) would hide a probe; refusing is clearer. */
		if (*nseg == 0)
			return POLICY_PATH_ABOVE_ROOT;
		out_pop(out, w);
		(*nseg)--;
		*trailing = true;
		return POLICY_PATH_OK;
	}
	/* Room for the segment and one more byte: its '/' or the final NUL. */
	if (*w + si.out_len + 1 > cap)
		return POLICY_PATH_TOO_LONG;
	seg_code(s, n, out + *w, &si);
	*w += si.out_len;
	out[(*w)++] = '/';
	(*nseg)++;
	*trailing = false;
	return POLICY_PATH_OK;
}

/*
 * Normalises an origin-form path (see policy.h). The output is built as "/seg/seg/" and
 * the last '/' dropped unless the input ended in '/', "/." or "/..". TOO_LONG is also
 * returned when a segment that a later ".." would remove does not fit. in and out must
 * not overlap: the canonical form can be longer than the input (%-escaping " < > etc.).
 */
enum policy_path_status policy_path_normalize(const char *in, size_t len, char *out, size_t cap,
                                              size_t *outlen)
{
	enum policy_path_status st = POLICY_PATH_OK;
	size_t w = 1, nseg = 0, i = 1;
	bool trailing = false;

	if (outlen)
		*outlen = 0;
	if (out && cap)
		out[0] = '\0';
	if (!in || len == 0 || in[0] != '/')
		return POLICY_PATH_EMPTY;
	if (!out || cap < 2)
		return POLICY_PATH_TOO_LONG;
	out[0] = '/';
	while (i <= len) {
		size_t e = i;
		while (e < len && in[e] != '/')
			e++;
		if (e > i)
			st = seg_step(in + i, e - i, out, cap, &w, &nseg, &trailing);
		else if (e == len)
			trailing = true; /* empty last segment: the path ended in '/' */
		if (st != POLICY_PATH_OK)
			goto fail;
		i = e + 1;
	}
	if (nseg > 0 && !trailing)
		w--;
	if (w >= cap) {
		st = POLICY_PATH_TOO_LONG;
		goto fail;
	}
	out[w] = '\0';
	if (outlen)
		*outlen = w;
	return POLICY_PATH_OK;
fail:
	out[0] = '\0';
	return st;
}

/* Stable lower-case token for logs and metrics. */
const char *policy_path_status_str(enum policy_path_status s)
{
	static const char *const names[POLICY_PATH_STATUS_MAX] = {
	    [POLICY_PATH_OK] = "ok",
	    [POLICY_PATH_EMPTY] = "empty",
	    [POLICY_PATH_BAD_ESCAPE] = "bad_escape",
	    [POLICY_PATH_ENCODED_SLASH] = "encoded_slash",
	    [POLICY_PATH_BACKSLASH] = "backslash",
	    [POLICY_PATH_NUL] = "nul",
	    [POLICY_PATH_BAD_CHAR] = "bad_char",
	    [POLICY_PATH_BAD_UTF8] = "bad_utf8",
	    [POLICY_PATH_ABOVE_ROOT] = "above_root",
	    [POLICY_PATH_DOT_PARAM] = "dot_param",
	    [POLICY_PATH_TOO_LONG] = "too_long",
	    [POLICY_PATH_SEMICOLON] = "path_parameter",
	};

	if ((unsigned)s >= POLICY_PATH_STATUS_MAX)
		return "unknown";
	return names[s];
}

/* True if p is "/" or a normalised path without a trailing '/'. */
bool policy_prefix_valid(const char *p, size_t len)
{
	char *buf = NULL;
	size_t n = 0;
	bool ok = false;

	if (!p || len == 0 || p[0] != '/' || (len > 1 && p[len - 1] == '/'))
		return false;
	/* Normal form never grows, so len + 1 bytes hold it if p is already normal. */
	buf = malloc(len + 1);
	if (!buf)
		goto fail;
	ok = policy_path_normalize(p, len, buf, len + 1, &n) == POLICY_PATH_OK && n == len &&
	     memcmp(buf, p, len) == 0;
fail:
	free(buf);
	return ok;
}

/* "/a" covers "/a", "/a/" and "/a/b", never "/ab"; "/" covers every path. */
bool policy_prefix_covers(const char *prefix, size_t plen, const char *path, size_t len)
{
	if (!prefix || !path || plen == 0 || len == 0 || path[0] != '/')
		return false;
	if (plen == 1 && prefix[0] == '/')
		return true;
	return len >= plen && memcmp(prefix, path, plen) == 0 && (len == plen || path[plen] == '/');
}

static const struct {
	const char *name;
	size_t len;
	unsigned bit;
} method_names[] = {
    {"GET", 3, POLICY_M_GET},         {"HEAD", 4, POLICY_M_HEAD},     {"POST", 4, POLICY_M_POST},
    {"PUT", 3, POLICY_M_PUT},         {"DELETE", 6, POLICY_M_DELETE}, {"PATCH", 5, POLICY_M_PATCH},
    {"OPTIONS", 7, POLICY_M_OPTIONS}, {"TRACE", 5, POLICY_M_TRACE},
};

/* Method token to its bit; case-sensitive, as HTTP methods are. */
unsigned policy_method_bit(const char *method, size_t len)
{
	for (size_t i = 0; method && i < sizeof(method_names) / sizeof(method_names[0]); i++)
		if (len == method_names[i].len && memcmp(method, method_names[i].name, len) == 0)
			return method_names[i].bit;
	return POLICY_M_OTHER;
}

/* Config method name to its bit; 0 for anything not listed (no "OTHER", no lower case). */
unsigned policy_method_parse(const char *name)
{
	if (!name)
		return 0;
	unsigned bit = policy_method_bit(name, strlen(name));
	return bit == POLICY_M_OTHER ? 0 : bit;
}
