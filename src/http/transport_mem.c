/*
 * An in-memory transport: input is pushed by the owner of the transport,
 * output is collected in a buffer. It runs the whole connection path without
 * a socket (the fuzz target, tests). Write completions are reported from a
 * zero-delay timer, as a socket would report them from the loop.
 */
#include "http/transport.h"
#include "http/transport_mem.h"
#include "msvc-internal.h"

typedef struct mem_write_s {
  struct mem_write_s *next;
  msvc__transport_write_cb cb;
  void *arg;
} mem_write_t;

typedef struct mem_transport_s {
  msvc__transport_t base;
  uv_timer_t timer;
  msvc__buf_t out;
  mem_write_t *writes;
  mem_write_t **tail;
  bool reading;
  bool closing;
} mem_transport_t;

static void complete(mem_transport_t *m, int status) {
  while (m->writes != NULL) {
    mem_write_t *w = m->writes;
    m->writes = w->next;
    if (m->writes == NULL)
      m->tail = &m->writes;
    if (w->cb != NULL)
      w->cb(&m->base, status, w->arg);
    msvc__free(w);
  }
}

static void on_timer(uv_timer_t *t) {
  mem_transport_t *m = msvc__container_of(t, mem_transport_t, timer);
  complete(m, m->closing ? UV_ECANCELED : 0);
}

static int mem_read_start(msvc__transport_t *t) {
  ((mem_transport_t *)t)->reading = true;
  return 0;
}

static int mem_read_stop(msvc__transport_t *t) {
  ((mem_transport_t *)t)->reading = false;
  return 0;
}

static int mem_write(msvc__transport_t *t, const uv_buf_t *bufs, unsigned n,
                     msvc__transport_write_cb cb, void *arg) {
  mem_transport_t *m = (mem_transport_t *)t;
  mem_write_t *w;
  unsigned i;

  if (m->closing)
    return MSVC_ECLOSED;
  w = msvc__calloc(1, sizeof(*w));
  if (w == NULL)
    return MSVC_ENOMEM;
  for (i = 0; i < n; i++)
    msvc__buf_append(&m->out, bufs[i].base, bufs[i].len);
  w->cb = cb;
  w->arg = arg;
  *m->tail = w;
  m->tail = &w->next;
  uv_timer_start(&m->timer, on_timer, 0, 0);
  return 0;
}

static int mem_shutdown(msvc__transport_t *t) {
  (void)t;
  return 0;
}

static void on_closed(uv_handle_t *h) {
  mem_transport_t *m = msvc__container_of(h, mem_transport_t, timer);
  const msvc__transport_events_t *ev = m->base.ev;
  void *owner = m->base.owner;

  complete(m, UV_ECANCELED);
  msvc__buf_free(&m->out);
  msvc__free(m);
  if (ev != NULL && ev->on_closed != NULL)
    ev->on_closed(owner);
}

static void mem_close(msvc__transport_t *t) {
  mem_transport_t *m = (mem_transport_t *)t;

  if (m->closing)
    return;
  m->closing = true;
  m->reading = false;
  uv_close((uv_handle_t *)&m->timer, on_closed);
}

static int mem_peer(msvc__transport_t *t, char *out, size_t len) {
  (void)t;
  if (len < sizeof("memory"))
    return MSVC_ERANGE;
  memcpy(out, "memory", sizeof("memory"));
  return 0;
}

static const msvc__transport_ops_t mem_ops = {
    mem_read_start, mem_read_stop, mem_write, mem_shutdown, mem_close, mem_peer, NULL, NULL,
};

int msvc__mem_transport_new(uv_loop_t *loop, size_t max_out, msvc__transport_t **out) {
  mem_transport_t *m = msvc__calloc(1, sizeof(*m));

  *out = NULL;
  if (m == NULL)
    return MSVC_ENOMEM;
  uv_timer_init(loop, &m->timer);
  m->base.ops = &mem_ops;
  m->tail = &m->writes;
  msvc__buf_init(&m->out, max_out);
  *out = &m->base;
  return 0;
}

bool msvc__mem_transport_push(msvc__transport_t *t, const char *data, size_t len) {
  mem_transport_t *m = (mem_transport_t *)t;

  if (!m->reading || m->closing)
    return false;
  m->base.ev->on_read(m->base.owner, data, len);
  return true;
}

void msvc__mem_transport_eof(msvc__transport_t *t) {
  mem_transport_t *m = (mem_transport_t *)t;

  if (!m->closing)
    m->base.ev->on_end(m->base.owner, UV_EOF);
}

const char *msvc__mem_transport_output(msvc__transport_t *t, size_t *len) {
  mem_transport_t *m = (mem_transport_t *)t;

  *len = m->out.len;
  return m->out.data != NULL ? m->out.data : "";
}
