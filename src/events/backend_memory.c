/*
 * memory:// — an in-process broker with JetStream's semantics: streams that
 * keep events by subject, durable consumers that keep a cursor and hand each
 * message to one member, redelivery after a nack delay or when the ack wait
 * runs out, a per-stream duplicate window by event id.
 *
 * Every memory:// handle of the process shares one broker (so two handles in
 * a test behave like two instances of a service); it lives while a handle
 * does. Handles may sit on different loops: the broker is behind one mutex
 * and each handle pumps its own subscriptions on its own loop, woken through
 * the core's uv_async_t.
 */
#include <string.h>

#include "events/events-internal.h"

#define DEFAULT_DUP_WINDOW_MS 120000u

typedef struct mem_msg_s {
  uint64_t seq;
  uint64_t ts_ms;
  char *subject;
  char *body;
  size_t len;
  msvc__ev_hdr_t *hdrs;
  size_t nhdrs;
  char *msgid;
} mem_msg_t;

typedef struct mem_stream_s {
  msvc__queue_t node;
  char *name;
  char **subjects;
  size_t nsubjects;
  uint64_t dup_window_ms;
  mem_msg_t **msgs; /* msgs[i]->seq == i + 1 */
  size_t count;
  size_t cap;
} mem_stream_t;

typedef struct mem_pending_s {
  uint64_t seq;
  uint32_t deliveries;
  uint64_t due_ms; /* in flight: ack deadline; waiting: redelivery time */
  bool inflight;
} mem_pending_t;

typedef struct mem_consumer_s {
  msvc__queue_t node;
  char *stream;
  char *durable;
  char *filter;
  uint32_t max_deliver; /* deliveries after which the broker gives up */
  uint32_t ack_wait_ms;
  uint64_t next_seq;
  mem_pending_t *pending;
  size_t npending;
  size_t cap;
} mem_consumer_t;

typedef struct mem_broker_s {
  msvc__queue_t streams;
  msvc__queue_t consumers;
  msvc__queue_t backends;
  unsigned refs;
} mem_broker_t;

typedef struct mem_backend_s {
  msvc__ev_backend_t base;
  msvc__queue_t node; /* broker->backends */
  msvc__queue_t subs;
  uv_timer_t timer;
  bool closing;
} mem_backend_t;

typedef struct mem_sub_s {
  msvc__queue_t node;
  msvc_events_sub_t *sub;
  mem_consumer_t *c;
} mem_sub_t;

typedef struct mem_token_s {
  mem_consumer_t *c;
  uint64_t seq;
} mem_token_t;

static uv_once_t g_once = UV_ONCE_INIT;
static uv_mutex_t g_lock;
static mem_broker_t *g_broker;

static void init_lock(void) {
  uv_mutex_init(&g_lock);
}

/* ---- broker (all under g_lock) ------------------------------------------ */

static void msg_free(mem_msg_t *m) {
  msvc__free(m->subject);
  msvc__free(m->body);
  msvc__free(m->msgid);
  msvc__ev_hdrs_free(m->hdrs, m->nhdrs);
  msvc__free(m);
}

static void stream_free(mem_stream_t *s) {
  for (size_t i = 0; i < s->count; i++)
    msg_free(s->msgs[i]);
  msvc__free(s->msgs);
  for (size_t i = 0; i < s->nsubjects; i++)
    msvc__free(s->subjects[i]);
  msvc__free(s->subjects);
  msvc__free(s->name);
  msvc__free(s);
}

static void consumer_free(mem_consumer_t *c) {
  msvc__free(c->stream);
  msvc__free(c->durable);
  msvc__free(c->filter);
  msvc__free(c->pending);
  msvc__free(c);
}

static void broker_unref(void) {
  mem_broker_t *br = g_broker;

  if (--br->refs > 0)
    return;
  while (!msvc__queue_empty(&br->streams)) {
    msvc__queue_t *q = br->streams.next;
    msvc__queue_remove(q);
    stream_free(msvc__container_of(q, mem_stream_t, node));
  }
  while (!msvc__queue_empty(&br->consumers)) {
    msvc__queue_t *q = br->consumers.next;
    msvc__queue_remove(q);
    consumer_free(msvc__container_of(q, mem_consumer_t, node));
  }
  msvc__free(br);
  g_broker = NULL;
}

static mem_stream_t *stream_by_name(const char *name) {
  msvc__queue_t *q;

  msvc__queue_foreach(q, &g_broker->streams) {
    mem_stream_t *s = msvc__container_of(q, mem_stream_t, node);
    if (strcmp(s->name, name) == 0)
      return s;
  }
  return NULL;
}

static mem_stream_t *stream_for_subject(const char *subject) {
  msvc__queue_t *q;

  msvc__queue_foreach(q, &g_broker->streams) {
    mem_stream_t *s = msvc__container_of(q, mem_stream_t, node);
    for (size_t i = 0; i < s->nsubjects; i++)
      if (msvc__ev_subject_match(s->subjects[i], subject))
        return s;
  }
  return NULL;
}

static int stream_set_subjects(mem_stream_t *s, char *const *subjects, size_t n) {
  char **copy = msvc__calloc(n, sizeof(char *));

  if (copy == NULL)
    return MSVC_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    copy[i] = msvc__strdup(subjects[i]);
    if (copy[i] == NULL) {
      for (size_t j = 0; j < i; j++)
        msvc__free(copy[j]);
      msvc__free(copy);
      return MSVC_ENOMEM;
    }
  }
  for (size_t i = 0; i < s->nsubjects; i++)
    msvc__free(s->subjects[i]);
  msvc__free(s->subjects);
  s->subjects = copy;
  s->nsubjects = n;
  return MSVC_OK;
}

static int stream_ensure_locked(const char *name, char *const *subjects, size_t n,
                                uint64_t dup_window_ms) {
  mem_stream_t *s = stream_by_name(name);
  msvc__queue_t *q;

  /* Like JetStream: two streams may not claim the same subject. */
  msvc__queue_foreach(q, &g_broker->streams) {
    mem_stream_t *o = msvc__container_of(q, mem_stream_t, node);
    if (o == s)
      continue;
    for (size_t i = 0; i < o->nsubjects; i++)
      for (size_t j = 0; j < n; j++)
        if (strcmp(o->subjects[i], subjects[j]) == 0 ||
            msvc__ev_subject_match(o->subjects[i], subjects[j]) ||
            msvc__ev_subject_match(subjects[j], o->subjects[i]))
          return MSVC_EEVENTS_BROKER;
  }
  if (s == NULL) {
    s = msvc__calloc(1, sizeof(*s));
    if (s == NULL || (s->name = msvc__strdup(name)) == NULL) {
      msvc__free(s);
      return MSVC_ENOMEM;
    }
    if (stream_set_subjects(s, subjects, n) != MSVC_OK) {
      stream_free(s);
      return MSVC_ENOMEM;
    }
    msvc__queue_insert_tail(&g_broker->streams, &s->node);
  } else if (stream_set_subjects(s, subjects, n) != MSVC_OK) {
    return MSVC_ENOMEM;
  }
  s->dup_window_ms = dup_window_ms != 0 ? dup_window_ms : DEFAULT_DUP_WINDOW_MS;
  return MSVC_OK;
}

static void wake_all(void) {
  msvc__queue_t *q;

  msvc__queue_foreach(q, &g_broker->backends) {
    mem_backend_t *b = msvc__container_of(q, mem_backend_t, node);
    uv_async_send(&b->base.ev->async);
  }
}

static int append_locked(const msvc__ev_pub_t *pub) {
  mem_stream_t *s = stream_for_subject(pub->subject);
  uint64_t now = msvc_now_ms();
  mem_msg_t *m;

  if (s == NULL)
    return MSVC_EEVENTS_NO_STREAM;
  /* The duplicate window: a second publish of an id is acknowledged and
   * dropped, as JetStream does with Nats-Msg-Id. */
  for (size_t i = s->count; i-- > 0;) {
    mem_msg_t *o = s->msgs[i];
    if (o->ts_ms + s->dup_window_ms < now)
      break;
    if (pub->id[0] != '\0' && o->msgid != NULL && strcmp(o->msgid, pub->id) == 0)
      return MSVC_OK;
  }
  if (s->count == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 64;
    mem_msg_t **grown = msvc__realloc(s->msgs, cap * sizeof(*grown));
    if (grown == NULL)
      return MSVC_ENOMEM;
    s->msgs = grown;
    s->cap = cap;
  }
  m = msvc__calloc(1, sizeof(*m));
  if (m == NULL)
    return MSVC_ENOMEM;
  m->subject = msvc__strdup(pub->subject);
  m->body = msvc__malloc(pub->len + 1);
  m->msgid = pub->id[0] != '\0' ? msvc__strdup(pub->id) : NULL;
  if (m->subject == NULL || m->body == NULL || (pub->id[0] != '\0' && m->msgid == NULL) ||
      msvc__ev_hdrs_copy(pub->headers, pub->header_count, &m->hdrs) != MSVC_OK) {
    msg_free(m);
    return MSVC_ENOMEM;
  }
  memcpy(m->body, pub->body, pub->len);
  m->body[pub->len] = '\0';
  m->len = pub->len;
  m->nhdrs = pub->header_count;
  m->ts_ms = now;
  m->seq = s->count + 1;
  s->msgs[s->count++] = m;
  return MSVC_OK;
}

static mem_pending_t *pending_find(mem_consumer_t *c, uint64_t seq) {
  for (size_t i = 0; i < c->npending; i++)
    if (c->pending[i].seq == seq)
      return &c->pending[i];
  return NULL;
}

static void pending_remove(mem_consumer_t *c, mem_pending_t *p) {
  size_t i = (size_t)(p - c->pending);

  memmove(&c->pending[i], &c->pending[i + 1], (c->npending - i - 1) * sizeof(*p));
  c->npending--;
}

/* The next message this consumer owes someone: a redelivery that is due,
 * else the next new message matching its filter. NULL when none is. */
static mem_pending_t *next_due(mem_consumer_t *c, mem_stream_t *s, uint64_t now) {
  for (size_t i = 0; i < c->npending; i++) {
    mem_pending_t *p = &c->pending[i];
    if (p->due_ms <= now) {
      if (p->deliveries >= c->max_deliver) {
        /* The broker gives up on it, as JetStream does at MaxDeliver. */
        pending_remove(c, p);
        i--;
        continue;
      }
      return p;
    }
  }
  if (s == NULL)
    return NULL;
  while (c->next_seq <= s->count) {
    mem_msg_t *m = s->msgs[c->next_seq - 1];
    c->next_seq++;
    if (msvc__ev_subject_match(c->filter, m->subject)) {
      if (c->npending == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        mem_pending_t *grown = msvc__realloc(c->pending, cap * sizeof(*grown));
        if (grown == NULL) {
          c->next_seq--;
          return NULL;
        }
        c->pending = grown;
        c->cap = cap;
      }
      c->pending[c->npending] = (mem_pending_t){.seq = m->seq, .deliveries = 0, .due_ms = 0};
      return &c->pending[c->npending++];
    }
  }
  return NULL;
}

static msvc__ev_delivery_t *delivery_for(msvc_events_sub_t *sub, mem_consumer_t *c,
                                         const mem_msg_t *m, uint32_t deliveries,
                                         uint64_t pending) {
  msvc__ev_delivery_t *d = msvc__ev_delivery_new(sub);
  mem_token_t *t = msvc__malloc(sizeof(*t));

  if (d == NULL || t == NULL)
    goto fail;
  d->subject = msvc__strdup(m->subject);
  d->body = msvc__malloc(m->len + 1);
  if (d->subject == NULL || d->body == NULL ||
      msvc__ev_hdrs_copy(m->hdrs, m->nhdrs, &d->headers) != MSVC_OK)
    goto fail;
  memcpy(d->body, m->body, m->len + 1);
  d->len = m->len;
  d->header_count = m->nhdrs;
  d->deliveries = deliveries;
  d->pending = pending;
  t->c = c;
  t->seq = m->seq;
  d->token = t;
  return d;

fail:
  msvc__free(t);
  if (d != NULL)
    msvc__ev_delivery_free(d);
  return NULL;
}

/* ---- pumping: hand out what is due, on this handle's loop ---------------- */

static void on_timer(uv_timer_t *t);

static void pump(mem_backend_t *b) {
  uint64_t now = msvc_now_ms(), next = UINT64_MAX;
  msvc__queue_t *q;

  if (b->closing)
    return;
  uv_mutex_lock(&g_lock);
  msvc__queue_foreach(q, &b->subs) {
    mem_sub_t *ms = msvc__container_of(q, mem_sub_t, node);
    mem_consumer_t *c = ms->c;
    mem_stream_t *s = stream_by_name(c->stream);
    uint32_t credits = msvc__ev_sub_credits(ms->sub);

    while (credits > 0) {
      mem_pending_t *p = next_due(c, s, now);
      msvc__ev_delivery_t *d;
      if (p == NULL || s == NULL)
        break;
      d = delivery_for(ms->sub, c, s->msgs[p->seq - 1], p->deliveries + 1,
                       s->count >= c->next_seq ? s->count - c->next_seq + 1 : 0);
      if (d == NULL)
        break; /* out of memory: try again on the next wake */
      p->deliveries++;
      p->inflight = true;
      p->due_ms = now + c->ack_wait_ms;
      msvc__ev_deliver(d);
      credits--;
    }
    for (size_t i = 0; i < c->npending; i++)
      if (c->pending[i].due_ms < next && c->pending[i].deliveries < c->max_deliver)
        next = c->pending[i].due_ms;
  }
  uv_mutex_unlock(&g_lock);
  if (next != UINT64_MAX)
    uv_timer_start(&b->timer, on_timer, next > now ? next - now : 1, 0);
  else
    uv_timer_stop(&b->timer);
}

static void on_timer(uv_timer_t *t) {
  pump(msvc__container_of(t, mem_backend_t, timer));
}

/* ---- vtable --------------------------------------------------------------- */

static int mem_start(msvc__ev_backend_t *base) {
  mem_backend_t *b = (mem_backend_t *)base;

  /* Only now, with the core's async handle ready, can others wake us. */
  uv_mutex_lock(&g_lock);
  msvc__queue_insert_tail(&g_broker->backends, &b->node);
  uv_mutex_unlock(&g_lock);
  msvc__ev_set_state(base->ev, MSVC_EVENTS_CONNECTED);
  return MSVC_OK;
}

static void mem_stream_ensure(msvc__ev_backend_t *base, msvc__ev_stream_req_t *req) {
  int rc;

  (void)base;
  uv_mutex_lock(&g_lock);
  rc = stream_ensure_locked(req->name, req->subjects, req->subject_count,
                            req->duplicate_window_ms);
  uv_mutex_unlock(&g_lock);
  msvc__ev_stream_done(req, rc); /* posted: runs after this call returns */
}

static void mem_publish(msvc__ev_backend_t *base, msvc__ev_pub_t *pub) {
  int rc;

  (void)base;
  uv_mutex_lock(&g_lock);
  rc = append_locked(pub);
  if (rc == MSVC_OK)
    wake_all();
  uv_mutex_unlock(&g_lock);
  msvc__ev_publish_done(pub, rc);
}

static int mem_sub_start(msvc__ev_backend_t *base, msvc_events_sub_t *sub) {
  mem_backend_t *b = (mem_backend_t *)base;
  const msvc_events_sub_opts_t *o = &sub->opts;
  mem_consumer_t *c = NULL;
  mem_sub_t *ms = msvc__calloc(1, sizeof(*ms));
  msvc__queue_t *q;
  int rc = MSVC_OK;

  if (ms == NULL)
    return MSVC_ENOMEM;
  uv_mutex_lock(&g_lock);
  if (sub->dlq_default && stream_by_name(MSVC_EVENTS_DLQ_STREAM) == NULL) {
    char *dlq = MSVC_EVENTS_DLQ_PREFIX ">";
    rc = stream_ensure_locked(MSVC_EVENTS_DLQ_STREAM, &dlq, 1, 0);
    if (rc != MSVC_OK)
      goto out;
  }
  msvc__queue_foreach(q, &g_broker->consumers) {
    mem_consumer_t *o2 = msvc__container_of(q, mem_consumer_t, node);
    if (strcmp(o2->stream, o->stream) == 0 && strcmp(o2->durable, o->durable) == 0) {
      c = o2;
      break;
    }
  }
  if (c == NULL) {
    mem_stream_t *s = stream_by_name(o->stream);
    c = msvc__calloc(1, sizeof(*c));
    if (c == NULL || (c->stream = msvc__strdup(o->stream)) == NULL ||
        (c->durable = msvc__strdup(o->durable)) == NULL ||
        (c->filter = msvc__strdup(o->subject)) == NULL) {
      if (c != NULL)
        consumer_free(c);
      rc = MSVC_ENOMEM;
      goto out;
    }
    c->next_seq = o->deliver_new && s != NULL ? s->count + 1 : 1;
    msvc__queue_insert_tail(&g_broker->consumers, &c->node);
  }
  /* One more delivery than the caller's limit: the core dead-letters a
   * message that comes back once more without having been settled. */
  c->max_deliver = o->max_deliveries + 1;
  c->ack_wait_ms = o->ack_wait_ms;
  ms->sub = sub;
  ms->c = c;
  sub->bdata = ms;
  msvc__queue_insert_tail(&b->subs, &ms->node);
out:
  uv_mutex_unlock(&g_lock);
  if (rc != MSVC_OK) {
    msvc__free(ms);
    return rc;
  }
  uv_async_send(&base->ev->async); /* pump on the next turn, never from inside */
  return MSVC_OK;
}

static void mem_sub_credit(msvc__ev_backend_t *base, msvc_events_sub_t *sub) {
  (void)sub;
  uv_async_send(&base->ev->async);
}

static void mem_settle(msvc__ev_backend_t *base, msvc_events_sub_t *sub, void *token,
                       msvc__ev_settle_t how, uint32_t delay_ms) {
  mem_token_t *t = token;
  mem_pending_t *p;

  (void)base;
  (void)sub;
  uv_mutex_lock(&g_lock);
  p = pending_find(t->c, t->seq);
  if (p != NULL) {
    if (how == MSVC__EV_NACK) {
      p->inflight = false;
      p->due_ms = msvc_now_ms() + delay_ms;
    } else {
      pending_remove(t->c, p);
    }
  }
  wake_all();
  uv_mutex_unlock(&g_lock);
  msvc__free(t);
}

static void mem_release(msvc__ev_backend_t *base, void *token) {
  (void)base;
  msvc__free(token); /* stays in flight until its ack wait runs out */
}

static void mem_sub_stop(msvc__ev_backend_t *base, msvc_events_sub_t *sub) {
  mem_sub_t *ms = sub->bdata;

  (void)base;
  uv_mutex_lock(&g_lock);
  msvc__queue_remove(&ms->node);
  /* Its messages in flight come back to the others once their ack wait runs
   * out; make sure some handle is watching the clock. */
  wake_all();
  uv_mutex_unlock(&g_lock);
  msvc__free(ms);
  sub->bdata = NULL;
  msvc__ev_sub_stopped(sub);
}

static void mem_wake(msvc__ev_backend_t *base) {
  pump((mem_backend_t *)base);
}

static void on_timer_closed(uv_handle_t *h) {
  mem_backend_t *b = msvc__container_of((uv_timer_t *)h, mem_backend_t, timer);
  msvc_events_t *ev = b->base.ev;

  msvc__free(b);
  msvc__ev_backend_closed(ev);
}

static void mem_close(msvc__ev_backend_t *base) {
  mem_backend_t *b = (mem_backend_t *)base;

  b->closing = true;
  uv_mutex_lock(&g_lock);
  msvc__queue_remove(&b->node);
  broker_unref();
  uv_mutex_unlock(&g_lock);
  uv_close((uv_handle_t *)&b->timer, on_timer_closed);
}

static const msvc__ev_ops_t mem_ops = {
    .name = "memory",
    .start = mem_start,
    .stream_ensure = mem_stream_ensure,
    .publish = mem_publish,
    .sub_start = mem_sub_start,
    .sub_credit = mem_sub_credit,
    .settle = mem_settle,
    .release = mem_release,
    .sub_stop = mem_sub_stop,
    .wake = mem_wake,
    .close = mem_close,
};

int msvc__ev_memory_new(msvc_events_t *ev, const char *uri, msvc__ev_backend_t **out,
                        char *err, size_t errlen) {
  mem_backend_t *b;

  if (strcmp(uri, "memory://") != 0) {
    if (err != NULL && errlen > 0)
      snprintf(err, errlen, "events: memory:// takes no host, path or query: '%s'", uri);
    return MSVC_EURI;
  }
  uv_once(&g_once, init_lock);
  b = msvc__calloc(1, sizeof(*b));
  if (b == NULL)
    return MSVC_ENOMEM;
  uv_mutex_lock(&g_lock);
  if (g_broker == NULL) {
    g_broker = msvc__calloc(1, sizeof(*g_broker));
    if (g_broker == NULL) {
      uv_mutex_unlock(&g_lock);
      msvc__free(b);
      return MSVC_ENOMEM;
    }
    msvc__queue_init(&g_broker->streams);
    msvc__queue_init(&g_broker->consumers);
    msvc__queue_init(&g_broker->backends);
  }
  g_broker->refs++;
  b->base.ops = &mem_ops;
  b->base.ev = ev;
  msvc__queue_init(&b->subs);
  msvc__queue_init(&b->node);
  uv_mutex_unlock(&g_lock);
  uv_timer_init(ev->loop, &b->timer);
  *out = &b->base;
  return MSVC_OK;
}
