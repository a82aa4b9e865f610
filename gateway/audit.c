/*
 * audit.c: the audit writer. Workers hand finished JSON records to a bounded queue and
 * go back to their event loops; one writer thread seals them into the hash chain
 * (audit_chain.c), writes them in batches, fsyncs, signs checkpoints, and optionally
 * copies every line to syslog. docs/audit.md describes the file and the guarantees.
 *
 * Modes: durable (a full queue blocks the producer, fsync per batch or interval) and
 * best-effort (a full queue drops the record, counts it and says so in the log). SIGUSR1
 * reopens the file for logrotate; shutdown flushes, checkpoints and fsyncs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "audit_chain.h"
#include "gw.h"

/* After a batch the writer lets records gather this long before taking the next one:
 * under load that is one write(2) and no wake-up per batch instead of per record. */
#define AUDIT_LINGER_US 5000
/* How much of an existing file's end is read to continue its chain. */
#define AUDIT_TAIL_BYTES (1u << 20)

struct aw_item {
	char *s;
	size_t len;
};

/* The process-wide writer. Fields under lock are shared; the rest is the writer's own. */
struct audit_writer {
	pthread_mutex_t lock;
	pthread_cond_t more, room;
	struct aw_item *ring;
	uint32_t cap, head, count;
	unsigned waiters; /* producers blocked on a full queue (durable) */
	bool idle;        /* the writer sleeps on `more` and must be woken */
	bool lingering;   /* the writer lets a batch gather (woken if the queue fills) */
	bool running, stop, reopen;
	uint64_t pending_drops; /* best-effort drops not yet written as a record */
	atomic_uint_fast64_t dropped, written;

	bool enabled;          /* false: mode off, records are not even built */
	struct conf_audit cfg; /* signing_key and syslog address copied, not borrowed */
	char *path;            /* NULL = stderr */
	int fd, syslog_fd;
	pthread_t thread;
	bool have_signer, last_final, need_newline;
	struct audit_signer signer;
	struct audit_chain chain;
	struct audit_buf out;
	struct aw_item *batch;
	uint64_t unsynced, last_sync, last_ckpt;
	char host[64];
};

static struct audit_writer aw = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .enabled = true, /* until started: records go straight to stderr */
    .fd = STDERR_FILENO,
    .syslog_fd = -1,
};

static void rfc3339_now(char *out, size_t cap)
{
	uint64_t us = gw_wall_us();
	time_t s = (time_t)(us / 1000000u);
	struct tm tm;
	gmtime_r(&s, &tm);
	snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(us % 1000000u));
}

static void write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			gw_log(GW_LOG_ERR, "audit: write failed: %s", strerror(errno));
			return;
		}
		p += w;
		len -= (size_t)w;
	}
}

/* ------------------------------------------------------------ the file -- */

/*
 * Continues the chain of an existing file from its last sealed line, so a restart does
 * not start a second chain in the same file. A file that ends mid-line (a crash during a
 * write) gets a newline first; the verifier will name that cut record.
 */
static void file_resume(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0 || st.st_size == 0) {
		if (fd >= 0)
			close(fd);
		return;
	}
	size_t n = st.st_size > (off_t)AUDIT_TAIL_BYTES ? AUDIT_TAIL_BYTES : (size_t)st.st_size;
	char *buf = malloc(n);
	ssize_t got = buf ? pread(fd, buf, n, st.st_size - (off_t)n) : -1;
	close(fd);
	if (got != (ssize_t)n) {
		gw_log(GW_LOG_ERR, "audit: cannot read the end of %s: starting a new chain", path);
		free(buf);
		return;
	}
	aw.need_newline = buf[n - 1] != '\n';
	/* Walk back over complete lines until one is a sealed record. */
	size_t end = n;
	while (end > 0 && buf[end - 1] != '\n')
		end--;
	while (end > 1) {
		size_t start = end - 1;
		while (start > 0 && buf[start - 1] != '\n')
			start--;
		if (audit_chain_resume(&aw.chain, buf + start, end - 1 - start) == 0) {
			aw.last_final = false;
			free(buf);
			return;
		}
		end = start;
	}
	gw_log(GW_LOG_ERR, "audit: %s does not end with a sealed record: starting a new chain",
	       path);
	free(buf);
}

static int file_open(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		gw_log(GW_LOG_ERR, "audit: cannot open %s: %s", path, strerror(errno));
	return fd;
}

/* --------------------------------------------------------- writer side -- */

static void writer_flush(void)
{
	if (aw.out.len == 0)
		return;
	if (aw.need_newline) {
		write_all(aw.fd, "\n", 1);
		aw.need_newline = false;
	}
	write_all(aw.fd, aw.out.p, aw.out.len);
	aw.out.len = 0;
}

static void writer_fsync(void)
{
	/* stderr may be a pipe or a terminal, where fsync means nothing. fdatasync: the size
	 * is flushed with the data, only timestamps are left to the kernel. */
	if (aw.path && fdatasync(aw.fd) != 0)
		gw_log(GW_LOG_ERR, "audit: fsync failed: %s", strerror(errno));
	aw.unsynced = 0;
	aw.last_sync = gw_now_us();
}

/* One RFC 5424 message per record: <110> is facility 13 (log audit), severity info. */
static void writer_syslog(const char *line, size_t len)
{
	char head[256], ts[80];
	rfc3339_now(ts, sizeof(ts));
	int n = snprintf(head, sizeof(head), "<110>1 %s %s gatewayd %d audit - ", ts, aw.host,
	                 (int)getpid());
	struct iovec iov[2] = {{head, (size_t)n}, {(void *)line, len}};
	struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2};
	/* UDP and non-blocking: a slow or absent collector never stalls the file. A refusal
	 * reported now belongs to an earlier datagram, so this one is sent again once. */
	if (sendmsg(aw.syslog_fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno == ECONNREFUSED)
		(void)sendmsg(aw.syslog_fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void writer_checkpoint(bool final)
{
	char ts[80];
	size_t start = aw.out.len;
	rfc3339_now(ts, sizeof(ts));
	if (audit_chain_checkpoint(&aw.chain, ts, final, aw.have_signer ? &aw.signer : NULL,
	                           &aw.out) != 0) {
		gw_log(GW_LOG_ERR, "audit: out of memory writing a checkpoint");
		return;
	}
	if (aw.syslog_fd >= 0)
		writer_syslog(aw.out.p + start, aw.out.len - start - 1);
	aw.last_final = final;
	aw.last_ckpt = gw_now_us();
	aw.unsynced++;
}

/* Seals one record (object text) into the output buffer; false if it was not sealed. */
static bool writer_seal(const char *obj, size_t len)
{
	size_t start = aw.out.len;
	if (audit_chain_seal(&aw.chain, obj, len, &aw.out) != 0) {
		gw_log(GW_LOG_ERR,
		       "audit: record not sealed (not a JSON object, or out of memory)");
		return false;
	}
	if (aw.syslog_fd >= 0)
		writer_syslog(aw.out.p + start, aw.out.len - start - 1);
	aw.last_final = false;
	aw.unsynced++;
	if (aw.chain.since_ckpt >= aw.cfg.checkpoint_records)
		writer_checkpoint(false);
	return true;
}

static void writer_open_record(const char *reason)
{
	char ts[80];
	size_t start = aw.out.len;
	rfc3339_now(ts, sizeof(ts));
	if (audit_chain_open(&aw.chain, ts, reason, &aw.out) != 0) {
		gw_log(GW_LOG_ERR, "audit: out of memory writing the file opening record");
		return;
	}
	if (aw.syslog_fd >= 0)
		writer_syslog(aw.out.p + start, aw.out.len - start - 1);
	aw.last_final = false;
}

static void writer_batch(size_t n, uint64_t drops)
{
	for (size_t i = 0; i < n; i++) {
		if (writer_seal(aw.batch[i].s, aw.batch[i].len))
			atomic_fetch_add_explicit(&aw.written, 1, memory_order_relaxed);
		free(aw.batch[i].s);
	}
	if (drops) {
		char ts[80], obj[160];
		rfc3339_now(ts, sizeof(ts));
		int len = snprintf(obj, sizeof(obj),
		                   "{\"type\":\"audit_drop\",\"time\":\"%s\",\"count\":%llu}", ts,
		                   (unsigned long long)drops);
		writer_seal(obj, (size_t)len);
	}
	writer_flush();
}

/*
 * logrotate has renamed the file: close it with a final checkpoint and continue the same
 * chain in a new file at the configured path. If the new file cannot be opened, nothing
 * changes (no final checkpoint is written to a file that goes on).
 */
static void writer_rotate(void)
{
	if (!aw.path)
		return;
	int fd = file_open(aw.path);
	if (fd < 0)
		return;
	writer_checkpoint(true);
	writer_flush();
	writer_fsync();
	close(aw.fd);
	aw.fd = fd;
	writer_open_record("reopen");
	writer_flush();
	gw_log(GW_LOG_INFO, "audit: reopened %s at record %llu", aw.path,
	       (unsigned long long)aw.chain.seq);
}

/* Time-driven work after a batch: checkpoint interval, fsync policy, reopen, stop. */
static void writer_maintain(bool reopen, bool stop)
{
	uint64_t now = gw_now_us();
	if (aw.chain.since_ckpt > 0 &&
	    now - aw.last_ckpt >= (uint64_t)aw.cfg.checkpoint_interval * 1000u) {
		writer_checkpoint(false);
		writer_flush();
	}
	if (aw.cfg.mode == CONF_AUDIT_DURABLE && aw.unsynced > 0 &&
	    (aw.unsynced >= aw.cfg.fsync_batch ||
	     now - aw.last_sync >= (uint64_t)aw.cfg.fsync_interval * 1000u))
		writer_fsync();
	if (reopen)
		writer_rotate();
	if (stop) {
		if (!aw.last_final)
			writer_checkpoint(true);
		writer_flush();
		writer_fsync();
	}
}

/* When the writer must wake up without new records (0: never). */
static uint64_t writer_deadline(void)
{
	uint64_t d = 0;
	if (aw.chain.since_ckpt > 0)
		d = aw.last_ckpt + (uint64_t)aw.cfg.checkpoint_interval * 1000u;
	if (aw.cfg.mode == CONF_AUDIT_DURABLE && aw.unsynced > 0) {
		uint64_t s = aw.last_sync + (uint64_t)aw.cfg.fsync_interval * 1000u;
		if (!d || s < d)
			d = s;
	}
	return d;
}

/* Waits (lock held) until there is something to do; moves the queue into aw.batch. */
static size_t writer_wait_take(void)
{
	uint64_t deadline = writer_deadline();
	while (aw.count == 0 && !aw.stop && !aw.reopen && (!deadline || gw_now_us() < deadline)) {
		aw.idle = true;
		if (deadline) {
			struct timespec ts = {(time_t)(deadline / 1000000u),
			                      (long)(deadline % 1000000u) * 1000};
			pthread_cond_timedwait(&aw.more, &aw.lock, &ts);
		} else {
			pthread_cond_wait(&aw.more, &aw.lock);
		}
		aw.idle = false;
	}
	size_t n = aw.count;
	for (size_t i = 0; i < n; i++)
		aw.batch[i] = aw.ring[(aw.head + i) % aw.cap];
	aw.head = (aw.head + (uint32_t)n) % aw.cap;
	aw.count = 0;
	if (aw.waiters)
		pthread_cond_broadcast(&aw.room);
	return n;
}

/* Lock held: lets the next batch gather, unless the queue is half full, a producer is
 * blocked on it, or there is a reopen or stop to do. */
static void writer_linger(void)
{
	uint64_t until = gw_now_us() + AUDIT_LINGER_US;
	struct timespec ts = {(time_t)(until / 1000000u), (long)(until % 1000000u) * 1000};
	aw.lingering = true;
	while (!aw.stop && !aw.reopen && !aw.waiters && aw.count < aw.cap / 2 &&
	       gw_now_us() < until)
		if (pthread_cond_timedwait(&aw.more, &aw.lock, &ts) == ETIMEDOUT)
			break;
	aw.lingering = false;
}

static void *writer_main(void *arg)
{
	pthread_mutex_lock(&aw.lock);
	for (;;) {
		size_t n = writer_wait_take();
		uint64_t drops = aw.pending_drops;
		bool reopen = aw.reopen, stop = aw.stop;
		aw.pending_drops = 0;
		aw.reopen = false;
		pthread_mutex_unlock(&aw.lock);
		writer_batch(n, drops);
		writer_maintain(reopen, stop);
		if (stop)
			return NULL;
		pthread_mutex_lock(&aw.lock);
		if (n > 0)
			writer_linger();
	}
}

/* ------------------------------------------------------------ start/stop -- */

static int syslog_open(const struct conf_audit *a)
{
	int fd = socket(a->syslog_addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
	    connect(fd, (const struct sockaddr *)&a->syslog_addr, a->syslog_addrlen) != 0) {
		gw_log(GW_LOG_ERR, "audit: syslog socket: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Everything the thread needs, prepared before it starts; -1 leaves nothing behind. */
static int writer_prepare(const char *path, const struct conf_audit *a, char *err, size_t errlen)
{
	/* Also selects libsodium's fastest BLAKE2b for this CPU. */
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium cannot initialise");
		return -1;
	}
	aw.cfg = *a;
	aw.cfg.signing_key = NULL;
	if (a->signing_key && audit_signer_load(&aw.signer, a->signing_key, err, errlen) != 0)
		return -1;
	aw.have_signer = a->signing_key != NULL;
	aw.ring = calloc(a->queue, sizeof(*aw.ring));
	aw.batch = calloc(a->queue, sizeof(*aw.batch));
	aw.path = path ? strdup(path) : NULL;
	if (!aw.ring || !aw.batch || (path && !aw.path)) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	aw.cap = a->queue;
	if (path) {
		file_resume(path);
		if ((aw.fd = file_open(path)) < 0) {
			snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
			goto fail;
		}
	}
	if (a->syslog && (aw.syslog_fd = syslog_open(a)) < 0) {
		snprintf(err, errlen, "cannot create the syslog socket");
		goto fail;
	}
	if (gethostname(aw.host, sizeof(aw.host)) != 0 || !aw.host[0])
		snprintf(aw.host, sizeof(aw.host), "-");
	aw.host[sizeof(aw.host) - 1] = '\0';
	return 0;
fail:
	if (aw.fd != STDERR_FILENO)
		close(aw.fd);
	aw.fd = STDERR_FILENO;
	free(aw.ring);
	free(aw.batch);
	free(aw.path);
	aw.ring = aw.batch = NULL;
	aw.path = NULL;
	return -1;
}

/*
 * Starts the writer for path (NULL = stderr) with settings a. Mode off starts nothing
 * and makes gw_audit_enabled() false. Fails on an unreadable signing key or file.
 */
int gw_audit_start(const char *path, const struct conf_audit *a, char *err, size_t errlen)
{
	if (a->mode == CONF_AUDIT_OFF) {
		aw.enabled = false;
		return 0;
	}
	if (writer_prepare(path, a, err, errlen) != 0)
		return -1;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* deadlines come from gw_now_us */
	pthread_cond_init(&aw.more, &ca);
	pthread_cond_init(&aw.room, NULL);
	pthread_condattr_destroy(&ca);
	aw.last_sync = aw.last_ckpt = gw_now_us();
	writer_open_record("start");
	writer_flush();
	aw.running = true;
	if (pthread_create(&aw.thread, NULL, writer_main, NULL) != 0) {
		aw.running = false;
		snprintf(err, errlen, "cannot start the writer thread");
		return -1;
	}
	pthread_setname_np(aw.thread, "gw-audit"); /* for top -H and perf */
	return 0;
}

/* The former interface: the file with default settings. */
int gw_audit_open(const char *path)
{
	struct conf_audit a = {.mode = CONF_AUDIT_DURABLE,
	                       .queue = 65536,
	                       .fsync_batch = 256,
	                       .fsync_interval = 200,
	                       .checkpoint_records = 1000,
	                       .checkpoint_interval = 10000};
	char err[256];
	if (gw_audit_start(path, &a, err, sizeof(err)) != 0) {
		gw_log(GW_LOG_ERR, "audit: %s", err);
		return -1;
	}
	return 0;
}

/* Stops the writer after it has written everything, a final checkpoint and an fsync. */
void gw_audit_close(void)
{
	pthread_mutex_lock(&aw.lock);
	bool running = aw.running;
	aw.stop = true;
	pthread_cond_signal(&aw.more);
	pthread_mutex_unlock(&aw.lock);
	if (!running)
		return;
	pthread_join(aw.thread, NULL);
	pthread_mutex_lock(&aw.lock);
	aw.running = false;
	pthread_mutex_unlock(&aw.lock);
	if (aw.fd != STDERR_FILENO)
		close(aw.fd);
	if (aw.syslog_fd >= 0)
		close(aw.syslog_fd);
	aw.fd = STDERR_FILENO;
	aw.syslog_fd = -1;
	audit_buf_free(&aw.out);
	free(aw.ring);
	free(aw.batch);
	free(aw.path);
	aw.ring = aw.batch = NULL;
	aw.path = NULL;
	sodium_memzero(&aw.signer, sizeof(aw.signer));
}

/* SIGUSR1 (main thread): the writer reopens the file between two batches. */
void gw_audit_reopen(void)
{
	pthread_mutex_lock(&aw.lock);
	aw.reopen = true;
	pthread_cond_signal(&aw.more);
	pthread_mutex_unlock(&aw.lock);
}

bool gw_audit_enabled(void)
{
	return aw.enabled;
}

void gw_audit_stats(struct gw_audit_stats *st)
{
	pthread_mutex_lock(&aw.lock);
	st->depth = aw.count;
	st->capacity = aw.cap;
	pthread_mutex_unlock(&aw.lock);
	st->dropped = atomic_load_explicit(&aw.dropped, memory_order_relaxed);
	st->written = atomic_load_explicit(&aw.written, memory_order_relaxed);
}

/* --------------------------------------------------------- producer side -- */

/*
 * Queues one record, taking ownership of obj (malloc'd JSON object text). Durable: waits
 * while the queue is full. Best-effort: drops it and counts the drop.
 */
void gw_audit_submit(char *obj, size_t len)
{
	if (!aw.enabled) {
		free(obj);
		return;
	}
	pthread_mutex_lock(&aw.lock);
	if (!aw.running) {
		/* Before start or after stop: unsealed, straight to stderr, never lost silently. */
		pthread_mutex_unlock(&aw.lock);
		write_all(STDERR_FILENO, obj, len);
		write_all(STDERR_FILENO, "\n", 1);
		free(obj);
		return;
	}
	while (aw.count == aw.cap) {
		if (aw.cfg.mode == CONF_AUDIT_BEST_EFFORT) {
			aw.pending_drops++;
			pthread_mutex_unlock(&aw.lock);
			atomic_fetch_add_explicit(&aw.dropped, 1, memory_order_relaxed);
			free(obj);
			return;
		}
		aw.waiters++;
		pthread_cond_signal(&aw.more); /* ends a linger: someone is blocked */
		pthread_cond_wait(&aw.room, &aw.lock);
		aw.waiters--;
	}
	aw.ring[(aw.head + aw.count) % aw.cap] = (struct aw_item){obj, len};
	aw.count++;
	bool wake = aw.idle || (aw.lingering && aw.count >= aw.cap / 2);
	pthread_mutex_unlock(&aw.lock);
	if (wake)
		pthread_cond_signal(&aw.more);
}

/* Queues a copy of one record; a trailing newline is not part of it. */
void gw_audit_line(const char *line, size_t len)
{
	if (len > 0 && line[len - 1] == '\n')
		len--;
	char *copy = malloc(len + 1);
	if (!copy) {
		gw_log(GW_LOG_ERR, "audit: out of memory: record lost");
		return;
	}
	memcpy(copy, line, len);
	copy[len] = '\0';
	gw_audit_submit(copy, len);
}
