/*
 * The exporter: a thread of its own takes batches off the tracer's queue,
 * encodes them and POSTs them to the collector with blocking sockets bounded
 * by timeouts. It never touches a loop, so a slow or dead collector costs
 * the service nothing but the spans that overflow the queue.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <fcntl.h>

#include <msvc/error.h>
#include <msvc/version.h>

#include "trace/trace-internal.h"

/* http://host[:port][/path]; IPv6 literals in brackets. */
int msvc__trace_split_url(const char *url, char **host, char **port, char **path) {
  const char *h, *end, *colon = NULL, *slash;
  size_t hl;

  if (url == NULL || strncmp(url, "http://", 7) != 0)
    return MSVC_EINVAL;
  h = url + 7;
  slash = strchr(h, '/');
  end = slash != NULL ? slash : h + strlen(h);
  if (*h == '[') {
    const char *rb = memchr(h, ']', (size_t)(end - h));
    if (rb == NULL)
      return MSVC_EINVAL;
    if (rb + 1 < end) {
      if (rb[1] != ':')
        return MSVC_EINVAL;
      colon = rb + 1;
    }
    h++;
    hl = (size_t)(rb - h);
  } else {
    colon = memchr(h, ':', (size_t)(end - h));
    hl = (size_t)((colon != NULL ? colon : end) - h);
  }
  if (hl == 0 || hl > 253)
    return MSVC_EINVAL;
  if (colon != NULL) {
    const char *p;
    long v;
    if (colon + 1 == end || end - colon > 6)
      return MSVC_EINVAL;
    for (p = colon + 1; p < end; p++)
      if (*p < '0' || *p > '9')
        return MSVC_EINVAL;
    v = strtol(colon + 1, NULL, 10);
    if (v < 1 || v > 65535)
      return MSVC_EINVAL;
  }
  for (const char *p = end; *p != '\0'; p++)
    if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
      return MSVC_EINVAL;
  *host = msvc__strndup(h, hl);
  *port = colon != NULL ? msvc__strndup(colon + 1, (size_t)(end - colon - 1))
                        : msvc__strdup("80");
  *path = msvc__strdup(slash != NULL ? slash : "/");
  if (*host == NULL || *port == NULL || *path == NULL) {
    msvc__free(*host);
    msvc__free(*port);
    msvc__free(*path);
    *host = *port = *path = NULL;
    return MSVC_ENOMEM;
  }
  return MSVC_OK;
}

/* The flush deadline once a shutdown has begun, else none. */
static uint64_t stop_deadline(const msvc_tracer_t *t) {
  uv_mutex_t *mu = (uv_mutex_t *)&t->mu;
  uint64_t d;

  uv_mutex_lock(mu);
  d = t->stopping ? t->deadline_ms : UINT64_MAX;
  uv_mutex_unlock(mu);
  return d;
}

/* Waits in slices so that a shutdown begun meanwhile cuts a request short
 * at its flush deadline rather than at the request's own timeout. */
#define WAIT_SLICE_MS 50u

static int wait_fd(const msvc_tracer_t *t, int fd, short events, uint64_t deadline_ms) {
  struct pollfd p = {fd, events, 0};
  int r;

  for (;;) {
    uint64_t now = msvc_now_ms(), stop = stop_deadline(t), end, wait;

    end = stop < deadline_ms ? stop : deadline_ms;
    if (now >= end)
      return MSVC_ETIMEDOUT;
    wait = end - now < WAIT_SLICE_MS ? end - now : WAIT_SLICE_MS;
    do
      r = poll(&p, 1, (int)wait);
    while (r < 0 && errno == EINTR);
    if (r != 0)
      return r < 0 ? -errno : MSVC_OK;
  }
}

static int dial(const msvc_tracer_t *t, uint64_t deadline_ms) {
  struct addrinfo hints, *res = NULL, *ai;
  int fd = -1, rc = MSVC_ECONNREFUSED;

  memset(&hints, 0, sizeof(hints));
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(t->host, t->port, &hints, &res) != 0)
    return MSVC_EHTTP_DNS;
  for (ai = res; ai != NULL; ai = ai->ai_next) {
    int err = 0;
    socklen_t el = sizeof(err);

    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                ai->ai_protocol);
    if (fd < 0)
      continue;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
        (errno == EINPROGRESS && (rc = wait_fd(t, fd, POLLOUT, deadline_ms)) == MSVC_OK &&
         getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0)) {
      rc = MSVC_OK;
      break;
    }
    if (err != 0)
      rc = -err;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  return fd >= 0 ? fd : rc;
}

static int send_all(const msvc_tracer_t *t, int fd, const char *p, size_t n,
                    uint64_t deadline_ms) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    int rc;
    if (w > 0) {
      p += w;
      n -= (size_t)w;
    } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
      return -errno;
    } else if ((rc = wait_fd(t, fd, POLLOUT, deadline_ms)) != MSVC_OK) {
      return rc;
    }
  }
  return MSVC_OK;
}

/* The answer's head: the status, and whether the connection may carry the
 * next request (HTTP/1.1, a Content-Length, no "Connection: close"; the
 * body, a few bytes, is read and dropped). Anything else closes it. */
typedef struct answer_s {
  int status;
  bool keep;
} answer_t;

#define HEAD_MAX 2048
#define KEEP_BODY_MAX 65536

/* The value of header name (with its colon) in head, or NULL. */
static const char *header_value(const char *head, const char *name) {
  size_t n = strlen(name);
  const char *p = strstr(head, "\r\n");

  while (p != NULL && p[2] != '\r') {
    p += 2;
    if (msvc__strncasecmp(p, name, n) == 0) {
      p += n;
      while (*p == ' ' || *p == '\t')
        p++;
      return p;
    }
    p = strstr(p, "\r\n");
  }
  return NULL;
}

static int read_answer(const msvc_tracer_t *t, int fd, uint64_t deadline_ms, answer_t *a) {
  char buf[HEAD_MAX + 1];
  const char *end = NULL, *v;
  size_t len = 0, have, need = 0;
  int rc;

  a->keep = false;
  /* The answer cannot be there yet: wait before the first read. */
  if ((rc = wait_fd(t, fd, POLLIN, deadline_ms)) != MSVC_OK)
    return rc;
  while (end == NULL && len < HEAD_MAX) {
    ssize_t r = recv(fd, buf + len, HEAD_MAX - len, 0);
    if (r > 0) {
      len += (size_t)r;
      buf[len] = '\0';
      end = strstr(buf, "\r\n\r\n");
    } else if (r == 0) {
      break;
    } else if (errno != EAGAIN && errno != EINTR) {
      return -errno;
    } else if ((rc = wait_fd(t, fd, POLLIN, deadline_ms)) != MSVC_OK) {
      return rc;
    }
  }
  buf[len] = '\0';
  if (len == 0)
    return MSVC_ECONNRESET; /* closed before a byte: a stale connection */
  if (len < 12 || strncmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ')
    return MSVC_EHTTP_BAD_RESPONSE;
  a->status = atoi(buf + 9);
  if (a->status < 100 || a->status > 599)
    return MSVC_EHTTP_BAD_RESPONSE;
  if (end == NULL || buf[7] != '1' || header_value(buf, "transfer-encoding:") != NULL ||
      ((v = header_value(buf, "connection:")) != NULL && msvc__strncasecmp(v, "close", 5) == 0) ||
      (v = header_value(buf, "content-length:")) == NULL || *v < '0' || *v > '9' ||
      (need = strtoul(v, NULL, 10)) > KEEP_BODY_MAX)
    return MSVC_OK; /* not kept: the status is all we need */
  have = len - (size_t)(end + 4 - buf);
  if (have > need)
    return MSVC_OK; /* more than the body: not ours to guess */
  need -= have;
  while (need > 0) {
    ssize_t r = recv(fd, buf, need < HEAD_MAX ? need : HEAD_MAX, 0);
    if (r > 0)
      need -= (size_t)r;
    else if (r == 0 || (errno != EAGAIN && errno != EINTR))
      return MSVC_OK;
    else if (wait_fd(t, fd, POLLIN, deadline_ms) != MSVC_OK)
      return MSVC_OK;
  }
  a->keep = true;
  return MSVC_OK;
}

static void drop_conn(msvc_tracer_t *t) {
  if (t->export_fd >= 0)
    close(t->export_fd);
  t->export_fd = -1;
}

/* A kept connection the collector has closed since (idle timeout, or a
 * server that closes after each answer) reads as end of file at once. */
static bool conn_alive(int fd) {
  char c;
  ssize_t r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

  return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* One request on the kept connection, or on a new one. Head and body go
 * out in one system call when the socket takes them. */
static int post_on(msvc_tracer_t *t, const char *head, size_t hl, const char *body,
                   size_t len, uint64_t deadline, answer_t *a) {
  struct iovec iov[2] = {{(void *)head, hl}, {(void *)body, len}};
  struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
  ssize_t w = sendmsg(t->export_fd, &m, MSG_NOSIGNAL);
  int rc = MSVC_OK;

  if (w < 0) {
    if (errno != EAGAIN && errno != EINTR)
      return -errno;
    w = 0;
  }
  if ((size_t)w < hl)
    rc = send_all(t, t->export_fd, head + w, hl - (size_t)w, deadline);
  if (rc == MSVC_OK) {
    size_t off = (size_t)w > hl ? (size_t)w - hl : 0;
    rc = send_all(t, t->export_fd, body + off, len - off, deadline);
  }
  return rc == MSVC_OK ? read_answer(t, t->export_fd, deadline, a) : rc;
}

int msvc__trace_http_post(msvc_tracer_t *t, const char *body, size_t len,
                          uint32_t timeout_ms) {
  uint64_t deadline = msvc_now_ms() + timeout_ms;
  char head[1024];
  answer_t a = {0, false};
  int fd, rc = MSVC_ECONNRESET, hl, tries;

  hl = snprintf(head, sizeof(head),
                "POST %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: libmsvc/%s\r\n"
                "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n",
                t->path, t->host, t->port, MSVC_VERSION_STRING,
                t->protocol == MSVC_OTLP_HTTP_JSON ? "application/json"
                                                    : "application/x-protobuf",
                len);
  if (hl < 0 || (size_t)hl >= sizeof(head))
    return MSVC_ERANGE;
  /* The connection is kept from batch to batch: a batch then costs no
   * connect and no close. A kept one that fails before an answer (the
   * collector closed it meanwhile) is given up for a new one, once. */
  for (tries = 0; tries < 2; tries++) {
    bool reused = t->export_fd >= 0 && conn_alive(t->export_fd);

    if (!reused) {
      drop_conn(t);
      if ((fd = dial(t, deadline)) < 0)
        return fd;
      t->export_fd = fd;
    }
    rc = post_on(t, head, (size_t)hl, body, len, deadline, &a);
    if (rc == MSVC_OK) {
      if (!a.keep)
        drop_conn(t);
      return a.status;
    }
    drop_conn(t);
    if (!reused || rc == MSVC_ETIMEDOUT)
      return rc;
  }
  return rc;
}

/* ---- the thread ------------------------------------------------------------- */

static bool retryable(int status) {
  return status == 429 || status == 502 || status == 503 || status == 504 || status < 0;
}

/* Sleeps up to ms, cut short by a shutdown whose deadline is nearer.
 * Returns false when the flush deadline has passed. */
static bool backoff(msvc_tracer_t *t, uint64_t ms) {
  uint64_t until = msvc_now_ms() + ms;
  bool ok;

  uv_mutex_lock(&t->mu);
  for (;;) {
    uint64_t now = msvc_now_ms(), end = until;
    if (t->stopping && t->deadline_ms < end)
      end = t->deadline_ms;
    if (now >= end)
      break;
    uv_cond_timedwait(&t->cond, &t->mu, (end - now) * 1000000u);
  }
  ok = !t->stopping || msvc_now_ms() < t->deadline_ms;
  uv_mutex_unlock(&t->mu);
  return ok;
}

static uint32_t attempt_timeout(msvc_tracer_t *t) {
  uint32_t to = t->timeout_ms;
  uint64_t now = msvc_now_ms();

  uv_mutex_lock(&t->mu);
  if (t->stopping)
    to = t->deadline_ms > now ? (uint32_t)(t->deadline_ms - now < to ? t->deadline_ms - now
                                                                     : to)
                              : 0;
  uv_mutex_unlock(&t->mu);
  return to;
}

/* b keeps its memory from batch to batch: a steady stream of spans then
 * encodes without allocating. */
static void send_batch(msvc_tracer_t *t, msvc_span_t **batch, size_t n, msvc__buf_t *buf) {
  msvc__buf_t b = *buf;
  size_t start = 0;
  uint32_t attempt;
  int status = MSVC_ENOMEM;

  b.len = 0;
  b.err = MSVC_OK;
  if (t->protocol == MSVC_OTLP_HTTP_JSON)
    msvc__trace_encode(t, batch, n, &b);
  else
    msvc__trace_encode_pb(t, batch, n, &b, &start);
  msvc__trace_span_recycle(t, batch, n);
  for (attempt = 0; b.err == MSVC_OK; attempt++) {
    uint32_t to = attempt_timeout(t);
    if (to == 0)
      break;
    status = msvc__trace_http_post(t, b.data + start, b.len - start, to);
    if (!retryable(status) || attempt >= t->retries)
      break;
    /* 100 ms, 200, 400, ... with up to 50 % jitter */
    if (!backoff(t, (100u << (attempt < 6 ? attempt : 6)) + msvc__rand_below(50u << attempt)))
      break;
  }
  /* A failed encoding may have left the buffer in any state: start over. */
  if (b.err != MSVC_OK) {
    msvc__buf_free(&b);
    msvc__buf_init(&b, 0);
  }
  *buf = b;
  if (status >= 200 && status < 300) {
    atomic_fetch_add(&t->exported, n);
    if (t->m_exported != NULL)
      msvc_metrics_counter_add(t->m_exported, (double)n);
  } else {
    msvc__trace_count_dropped(t, t->m_dropped_failed, n);
  }
}

/* Up to batch_max spans off the backlog, oldest first. */
static size_t take_batch(msvc_tracer_t *t, msvc_span_t **batch) {
  size_t n = 0;

  while (n < t->batch_max && t->backlog != NULL) {
    batch[n++] = t->backlog;
    t->backlog = t->backlog->next;
  }
  if (t->backlog == NULL)
    t->backlog_tail = NULL;
  t->nbacklog -= n;
  atomic_fetch_sub(&t->count, n);
  return n;
}

static void exporter_main(void *arg) {
  msvc_tracer_t *t = arg;
  msvc_span_t **batch = msvc__calloc(t->batch_max, sizeof(*batch));
  msvc__buf_t buf;
  bool short_wait = false;

  msvc__buf_init(&buf, 0);
  for (;;) {
    size_t n;
    bool stopping;
    uint64_t deadline;

    uv_mutex_lock(&t->mu);
    /* A full batch counted but not yet in the inbox (its span end is
     * between the count and the push) is waited for briefly, not spun on. */
    if (!t->stopping && (short_wait || atomic_load(&t->count) < t->batch_max))
      uv_cond_timedwait(&t->cond, &t->mu,
                        short_wait ? 1000000u : (uint64_t)t->delay_ms * 1000000u);
    stopping = t->stopping;
    deadline = t->deadline_ms;
    uv_mutex_unlock(&t->mu);
    msvc__trace_take_inbox(t);
    if (stopping && (t->nbacklog == 0 || msvc_now_ms() >= deadline || batch == NULL))
      break;
    n = batch != NULL ? take_batch(t, batch) : 0;
    short_wait = n == 0 && atomic_load(&t->count) >= t->batch_max;
    if (n > 0)
      send_batch(t, batch, n, &buf);
  }
  drop_conn(t);
  msvc__buf_free(&buf);
  msvc__free(batch);
}

int msvc__trace_export_start(msvc_tracer_t *t) {
  int rc = uv_thread_create(&t->thread, exporter_main, t);

  if (rc != 0)
    return rc;
  t->thread_on = true;
  return MSVC_OK;
}
