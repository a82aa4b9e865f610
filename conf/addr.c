/* Numeric socket addresses: "127.0.0.1:8443" and "[::1]:443". */
#include <arpa/inet.h>
#include <string.h>

#include "conf_int.h"

/* Port 0..65535 written as 1 to 5 decimal digits, nothing else (no sign, no spaces). */
static int port_parse(const char *s, in_port_t *out)
{
	unsigned long v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 5)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 65535)
		return -1;
	*out = htons((in_port_t)v);
	return 0;
}

/*
 * Parses "host:port" with an IPv4 host or "[host]:port" with an IPv6 host into *out
 * (zeroed first) and its length. Hostnames are refused on purpose: a listener or backend
 * address must not depend on DNS at load time. Returns 0, or -1 leaving *out zeroed.
 */
int conf_parse_address(const char *s, struct sockaddr_storage *out, socklen_t *outlen)
{
	char host[INET6_ADDRSTRLEN];
	const char *colon;
	size_t hlen;
	in_port_t port;
	bool v6 = false;

	if (!s || !out || !outlen)
		return -1;
	memset(out, 0, sizeof(*out));
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			return -1;
		colon = close + 1;
		v6 = true;
		s++;
		hlen = (size_t)(close - s);
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -1;
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= sizeof(host) || port_parse(colon + 1, &port) < 0)
		return -1;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (v6) {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)out;
		if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
			goto fail;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = port;
		*outlen = sizeof(*a6);
		return 0;
	}
	struct sockaddr_in *a4 = (struct sockaddr_in *)out;
	if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
		goto fail;
	a4->sin_family = AF_INET;
	a4->sin_port = port;
	*outlen = sizeof(*a4);
	return 0;
fail:
	memset(out, 0, sizeof(*out));
	return -1;
}

/* Family, address and port; the rest of sockaddr_storage is padding. */
bool conf_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
		return x->sin6_port == y->sin6_port &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	return false;
}

/* Port in host order (0 for an unknown family). */
unsigned conf_addr_port(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)(const void *)a)->sin_port);
	if (a->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)(const void *)a)->sin6_port);
	return 0;
}
