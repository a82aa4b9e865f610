/*
 * stream.c: a TLS connection on a non-blocking socket, with an input and an output
 * evbuffer, for the two hot sides of the proxy (client and upstream).
 *
 * Why not bufferevent_openssl (which the gateway used first): measured per keep-alive
 * request it cost 6 epoll_ctl calls (EV_WRITE is armed for every write and disarmed on
 * the next loop pass, so even the epoll changelist cannot fold them), 6 reads (no read-ahead:
 * record header and body are two reads, then one more for EAGAIN) and one TLS record per
 * evbuffer chain (head and body of a response went out as two records and two writes).
 * It cannot use read-ahead safely either: it drains only SSL_pending(), so whole records
 * left in OpenSSL's read-ahead buffer would wait for a socket event that never comes.
 *
 * This layer writes at the end of the loop pass in which data was queued (one record for
 * a small response, no EV_WRITE unless the socket is full), reads with read-ahead until
 * OpenSSL holds nothing more (SSL_has_pending), and leaves EAGAIN discovery to
 * level-triggered epoll. Callbacks run only from its own events, never from inside a
 * call the owner makes, so the owner may free the stream from any callback.
 */
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <openssl/err.h>

#include "gw.h"

/* One SSL_write: a full TLS record. Smaller first chains are coalesced up to this. */
#define STREAM_RECORD 16384
/* First chains at least this long are written as they are, without a copy. */
#define STREAM_NOCOPY 4096
/* Read at most this much per event, so one busy peer cannot starve the others. */
#define STREAM_READ_MAX (256 * 1024)

struct gw_stream {
	SSL *ssl;
	evutil_socket_t fd;
	struct event *ev_read, *ev_write, *ev_flush;
	struct event *ev_kick; /* reads what OpenSSL already holds; starts a client handshake */
	struct evbuffer *in, *out;
	gw_stream_cb on_read, on_write;
	gw_stream_event_cb on_event;
	void *arg;
	size_t wlowat;
	unsigned long err;
	int last_try;  /* length of an SSL_write to retry exactly (WANT_*) */
	short hs_want; /* EV_READ or EV_WRITE the handshake waits for */
	bool handshaking;
	bool read_on; /* the owner wants input */
	bool read_armed, write_armed;
	bool write_blocked;    /* SSL_write said WANT_WRITE: wait for the socket */
	bool write_needs_read; /* SSL_write said WANT_READ */
	bool read_needs_write; /* SSL_read said WANT_WRITE */
	bool done;             /* EOF or error delivered: no more I/O */
	bool err_seen;         /* the connection failed (not a clean or dirty EOF) */
	bool dead;             /* freed by the owner inside a callback */
	unsigned busy;         /* callbacks of ours on the stack */
};

static void stream_destroy(struct gw_stream *s)
{
	/* close_notify after a completed handshake, unless the connection failed: besides
	 * telling the peer the data is complete, OpenSSL drops a session from the server
	 * cache when the SSL is freed without it, and stateful resumption would never work. */
	if (!s->handshaking && !(s->err_seen) && !(SSL_get_shutdown(s->ssl) & SSL_SENT_SHUTDOWN)) {
		ERR_clear_error();
		SSL_shutdown(s->ssl);
		ERR_clear_error();
	}
	event_free(s->ev_read);
	event_free(s->ev_write);
	event_free(s->ev_flush);
	event_free(s->ev_kick);
	evbuffer_free(s->in);
	evbuffer_free(s->out);
	SSL_free(s->ssl);
	evutil_closesocket(s->fd);
	free(s);
}

/* Arms exactly the socket events the stream waits for (no syscall when unchanged). */
static void stream_update(struct gw_stream *s)
{
	bool want_r, want_w;
	if (s->dead || s->done) {
		want_r = want_w = false;
	} else if (s->handshaking) {
		want_r = s->hs_want != EV_WRITE;
		want_w = s->hs_want == EV_WRITE;
	} else {
		want_r = s->read_on || s->write_needs_read;
		want_w = s->write_blocked || s->read_needs_write;
	}
	if (want_r != s->read_armed) {
		if (want_r)
			event_add(s->ev_read, NULL);
		else
			event_del(s->ev_read);
		s->read_armed = want_r;
	}
	if (want_w != s->write_armed) {
		if (want_w)
			event_add(s->ev_write, NULL);
		else
			event_del(s->ev_write);
		s->write_armed = want_w;
	}
}

/* Starts one callback of ours (the owner may free the stream from inside it). */
static void stream_enter(struct gw_stream *s)
{
	s->busy++;
}

/* Ends one callback of ours: a stream its owner freed meanwhile goes now. */
static void stream_leave(struct gw_stream *s)
{
	if (--s->busy == 0 && s->dead) {
		stream_destroy(s);
		return;
	}
	stream_update(s);
}

/* Delivers EOF or an error once; the error code stays readable by gw_stream_error. */
static void stream_fail(struct gw_stream *s, short what)
{
	if (s->done)
		return;
	s->done = true;
	if (what & GW_STREAM_ERROR) {
		s->err = ERR_peek_error();
		s->err_seen = true;
	}
	if (s->on_event)
		s->on_event(s, what, s->arg);
	ERR_clear_error();
}

/* What an SSL_read/SSL_write/handshake failure means: EOF (clean or not) or an error. */
static short stream_failure(const struct gw_stream *s, int ssl_err)
{
	if (ssl_err == SSL_ERROR_ZERO_RETURN)
		return GW_STREAM_EOF;
	/* No alert and no OpenSSL error: the socket failed under us (a reset: OpenSSL 3 turns
	 * a plain close into an error, or into ZERO_RETURN with SSL_OP_IGNORE_UNEXPECTED_EOF).
	 * EOF only on the side that accepts an unclean end, as the HTTP framing (not
	 * close_notify) tells a complete message from a cut one; on the strict side a reset
	 * must not pass for the end of a close-delimited response. */
	if (ssl_err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 &&
	    (SSL_get_options(s->ssl) & SSL_OP_IGNORE_UNEXPECTED_EOF))
		return GW_STREAM_EOF;
	return GW_STREAM_ERROR;
}

static void stream_flush(struct gw_stream *s);
static void stream_read(struct gw_stream *s);

static void stream_handshake(struct gw_stream *s)
{
	ERR_clear_error();
	int r = SSL_do_handshake(s->ssl);
	if (r == 1) {
		s->handshaking = false;
		s->hs_want = 0;
		SSL_clear_mode(s->ssl, SSL_MODE_RELEASE_BUFFERS);
		if (s->on_event)
			s->on_event(s, GW_STREAM_CONNECTED, s->arg);
		if (s->dead)
			return;
		if (evbuffer_get_length(s->out) > 0)
			stream_flush(s);
		/* With read-ahead, the first request may have come with the client's Finished
		 * and already sit in OpenSSL's buffer: the socket will not say so again. */
		if (!s->dead && !s->done && s->read_on && SSL_has_pending(s->ssl))
			stream_read(s);
		return;
	}
	int e = SSL_get_error(s->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		s->hs_want = e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE;
		return;
	}
	/* Every handshake failure is an error to the owner, whatever the socket said. */
	stream_fail(s, GW_STREAM_ERROR | (stream_failure(s, e) & GW_STREAM_EOF));
}

/*
 * Reads what the socket and OpenSSL hold, then tells the owner once. Stops at the first
 * short read that leaves nothing buffered in OpenSSL: level-triggered epoll reports any
 * later bytes, which saves the read() that would only return EAGAIN.
 */
static void stream_read(struct gw_stream *s)
{
	size_t total = 0;
	short fail = 0;
	/* SSL_get_error needs an empty error queue; successful calls add nothing to it, so
	 * clearing once per batch (not per call: ~400 instructions each) is enough. */
	ERR_clear_error();
	for (;;) {
		struct evbuffer_iovec v;
		if (evbuffer_reserve_space(s->in, STREAM_RECORD, &v, 1) < 1) {
			fail = GW_STREAM_ERROR;
			break;
		}
		int want = v.iov_len > INT_MAX ? INT_MAX : (int)v.iov_len;
		int n = SSL_read(s->ssl, v.iov_base, want);
		if (n > 0) {
			v.iov_len = (size_t)n;
			evbuffer_commit_space(s->in, &v, 1);
			total += (size_t)n;
			if (total >= STREAM_READ_MAX) {
				/* Come back next pass for the rest (OpenSSL's or the socket's). */
				event_active(s->ev_kick, EV_READ, 0);
				break;
			}
			if (n < want && !SSL_has_pending(s->ssl))
				break;
			continue;
		}
		int e = SSL_get_error(s->ssl, n);
		if (e == SSL_ERROR_WANT_READ)
			break;
		if (e == SSL_ERROR_WANT_WRITE) {
			s->read_needs_write = true;
			break;
		}
		fail = stream_failure(s, e);
		break;
	}
	if (total > 0 && s->on_read)
		s->on_read(s, s->arg);
	if (fail && !s->dead)
		stream_fail(s, fail);
}

/* Writes the output buffer: one record per call, small chains coalesced, big ones not. */
static void stream_flush(struct gw_stream *s)
{
	bool wrote = false;
	s->write_blocked = false;
	s->write_needs_read = false;
	ERR_clear_error(); /* as in stream_read */
	for (;;) {
		size_t left = evbuffer_get_length(s->out);
		if (left == 0)
			break;
		size_t n;
		const void *p;
		if (s->last_try > 0) {
			/* OpenSSL wants the retry of a blocked write to be the same write. */
			n = (size_t)s->last_try;
			p = evbuffer_pullup(s->out, (ev_ssize_t)n);
		} else {
			struct evbuffer_iovec v;
			evbuffer_peek(s->out, -1, NULL, &v, 1);
			n = v.iov_len < STREAM_RECORD ? v.iov_len : STREAM_RECORD;
			p = v.iov_base;
			if (n < STREAM_NOCOPY && left > n) {
				n = left < STREAM_RECORD ? left : STREAM_RECORD;
				p = evbuffer_pullup(s->out, (ev_ssize_t)n);
			}
		}
		if (!p) {
			stream_fail(s, GW_STREAM_ERROR);
			return;
		}
		int r = SSL_write(s->ssl, p, (int)n);
		if (r > 0) {
			s->last_try = 0;
			evbuffer_drain(s->out, (size_t)r);
			wrote = true;
			continue;
		}
		int e = SSL_get_error(s->ssl, r);
		if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
			s->last_try = (int)n;
			s->write_blocked = e == SSL_ERROR_WANT_WRITE;
			s->write_needs_read = e == SSL_ERROR_WANT_READ;
			break;
		}
		stream_fail(s, stream_failure(s, e) | GW_STREAM_ERROR);
		return;
	}
	if (wrote && s->on_write && evbuffer_get_length(s->out) <= s->wlowat)
		s->on_write(s, s->arg);
}

static void stream_readable(evutil_socket_t fd, short what, void *arg)
{
	struct gw_stream *s = arg;
	stream_enter(s);
	if (s->handshaking) {
		stream_handshake(s);
	} else {
		if (s->write_needs_read)
			stream_flush(s);
		if (!s->dead && !s->done && s->read_on)
			stream_read(s);
	}
	stream_leave(s);
}

static void stream_writable(evutil_socket_t fd, short what, void *arg)
{
	struct gw_stream *s = arg;
	stream_enter(s);
	if (s->handshaking) {
		stream_handshake(s);
	} else {
		if (s->read_needs_write) {
			s->read_needs_write = false;
			if (s->read_on)
				stream_read(s);
		}
		if (!s->dead && !s->done && s->write_blocked)
			stream_flush(s);
	}
	stream_leave(s);
}

/* The loop pass in which output was queued is over: write it all at once. */
static void stream_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_stream *s = arg;
	if (s->handshaking || s->done || s->write_blocked || s->write_needs_read)
		return;
	stream_enter(s);
	stream_flush(s);
	stream_leave(s);
}

/*
 * Not a socket event: OpenSSL holds decrypted-ahead records the socket will not announce,
 * or a client handshake is to start. (event_active on the socket events would do, but an
 * active event that is not yet added is never added by event_add: a libevent rule.)
 */
static void stream_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_stream *s = arg;
	stream_enter(s);
	if (s->handshaking)
		stream_handshake(s);
	else if (!s->done && s->read_on)
		stream_read(s);
	stream_leave(s);
}

/* Output was queued by the owner: flush at the end of this loop pass (no syscall now). */
static void stream_out_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	struct gw_stream *s = arg;
	if (info->n_added > 0 && !s->handshaking && !s->write_blocked && !s->done)
		event_active(s->ev_flush, EV_WRITE, 0);
}

struct gw_stream *gw_stream_new(struct event_base *base, evutil_socket_t fd, SSL *ssl,
                                bool accepting)
{
	struct gw_stream *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->ev_read = event_new(base, fd, EV_READ | EV_PERSIST, stream_readable, s);
	s->ev_write = event_new(base, fd, EV_WRITE | EV_PERSIST, stream_writable, s);
	s->ev_flush = event_new(base, -1, 0, stream_flush_cb, s);
	s->ev_kick = event_new(base, -1, 0, stream_kick_cb, s);
	s->in = evbuffer_new();
	s->out = evbuffer_new();
	if (!s->ev_read || !s->ev_write || !s->ev_flush || !s->ev_kick || !s->in || !s->out ||
	    !evbuffer_add_cb(s->out, stream_out_cb, s) || !SSL_set_fd(ssl, (int)fd)) {
		if (s->ev_read)
			event_free(s->ev_read);
		if (s->ev_write)
			event_free(s->ev_write);
		if (s->ev_flush)
			event_free(s->ev_flush);
		if (s->ev_kick)
			event_free(s->ev_kick);
		if (s->in)
			evbuffer_free(s->in);
		if (s->out)
			evbuffer_free(s->out);
		free(s);
		return NULL;
	}
	s->ssl = ssl;
	s->fd = fd;
	s->handshaking = true;
	/* During the handshake OpenSSL releases its record buffers as soon as they are empty
	 * (so a handshake flood or a connection that never sends a request holds none); once
	 * established they stay (releasing them after every record cost ~40 allocations per
	 * request), until gw_stream_trim finds the connection idle. */
	SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
	SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* One read() per batch of records instead of two per record. */
	SSL_set_read_ahead(ssl, 1);
	if (accepting) {
		/* A client that closes without close_notify is not an error here: requests are
		 * never delimited by the close (a cut body is caught by its framing), and the
		 * fatal alert OpenSSL 3 would raise also evicts the session from the cache.
		 * Upstream responses can be close-delimited, so that side stays strict. */
		SSL_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
		SSL_set_accept_state(ssl);
		s->hs_want = EV_READ;
	} else {
		SSL_set_connect_state(ssl);
		/* The ClientHello goes out from the loop, once the owner set its callbacks. */
		s->hs_want = EV_WRITE;
		event_active(s->ev_kick, EV_WRITE, 0);
	}
	stream_update(s);
	return s;
}

void gw_stream_setcb(struct gw_stream *s, gw_stream_cb on_read, gw_stream_cb on_write,
                     gw_stream_event_cb on_event, void *arg)
{
	s->on_read = on_read;
	s->on_write = on_write;
	s->on_event = on_event;
	s->arg = arg;
}

void gw_stream_free(struct gw_stream *s)
{
	if (!s)
		return;
	if (s->busy > 0) {
		s->dead = true;
		event_del(s->ev_read);
		event_del(s->ev_write);
		event_del(s->ev_flush);
		event_del(s->ev_kick);
		s->read_armed = s->write_armed = false;
		return;
	}
	stream_destroy(s);
}

struct evbuffer *gw_stream_input(struct gw_stream *s)
{
	return s->in;
}

struct evbuffer *gw_stream_output(struct gw_stream *s)
{
	return s->out;
}

SSL *gw_stream_ssl(struct gw_stream *s)
{
	return s->ssl;
}

void gw_stream_read(struct gw_stream *s, bool on)
{
	if (s->read_on == on)
		return;
	s->read_on = on;
	/* Records already decrypted-ahead would not wake the socket: go and get them. */
	if (on && !s->handshaking && !s->done && SSL_has_pending(s->ssl))
		event_active(s->ev_kick, EV_READ, 0);
	if (s->busy == 0)
		stream_update(s);
}

void gw_stream_set_wlowat(struct gw_stream *s, size_t lowat)
{
	s->wlowat = lowat;
}

unsigned long gw_stream_error(const struct gw_stream *s)
{
	return s->err;
}

bool gw_stream_done(const struct gw_stream *s)
{
	return s->done;
}

/* The connection went idle: OpenSSL's record buffers (about 34 KiB) are made again on
 * the next read or write. Refused by OpenSSL while it holds unread data: then kept. */
void gw_stream_trim(struct gw_stream *s)
{
	if (!s->handshaking && !s->done && evbuffer_get_length(s->out) == 0)
		SSL_free_buffers(s->ssl);
}
