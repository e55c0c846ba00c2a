/*
 * nats:// — NATS JetStream through libnats (the official C client).
 *
 * Threads, and why. libnats' synchronous JetStream calls (stream and
 * consumer management, pull fetches) wait for a reply that its own threads
 * read; made on the loop thread they would stall every request of the
 * service, and with libnats' libuv adapter (which reads on the loop) they
 * deadlock. So libnats runs on its own threads, never attached to the loop:
 *
 * - one management thread per handle connects (retrying with jittered
 *   backoff while the broker is away) and runs stream requests;
 * - one fetch thread per subscription creates or binds the durable pull
 *   consumer and fetches at most as many messages as the subscription has
 *   credits (max_unacked minus what it holds), which is the flow control;
 * - publishes are asynchronous (js_PublishMsgAsync) straight from the loop;
 *   their acknowledgements arrive on a libnats thread;
 * - acks, naks and terms are plain publishes, made from the loop.
 *
 * Everything that happens on a libnats or backend thread reaches the loop
 * through the core's inbox (msvc__ev_publish_done, msvc__ev_deliver, ...).
 */
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include <msvc/log.h>

#include "events/events-internal.h"

#define PEND_BUCKETS 1024u
#define PEND_LOCKS 16u
#define FETCH_WAIT_MS 400
#define FETCH_BATCH_MAX 256
#define SETUP_RETRY_MIN_MS 100u
#define SETUP_RETRY_MAX_MS 3000u

typedef struct nb_s {
  msvc__ev_backend_t base;
  char *uri;
  char **servers;
  int nservers;
  uint32_t reconnect_min_ms;
  uint32_t reconnect_max_ms;
  uint32_t publish_timeout_ms;
  uint32_t max_pending;
  char *conn_name;
  natsConnection *nc; /* set by the management thread before `ready` */
  jsCtx *js;
  atomic_bool ready;     /* nc and js exist */
  atomic_bool connected; /* the connection is up */
  atomic_bool stopping;
  atomic_uint dlq_replicas; /* the dead-letter stream exists with this many */
  uv_mutex_t mu; /* jobs, and the condition below */
  uv_cond_t cv;  /* jobs arrived, connected, stopping, nc_closed */
  bool nc_closed; /* under mu: libnats ran its last callback (on_closed) */
  msvc__queue_t jobs;
  uv_thread_t mgmt;
  bool mgmt_started;
  msvc__queue_t waiting_pubs; /* loop thread: publishes made before ready */
  /* Publishes in flight by natsMsg, each bucket group under its own lock:
   * the loop adds, libnats' ack thread takes, rarely the same group. */
  uv_mutex_t pmu[PEND_LOCKS];
  msvc__ev_pub_t *pend[PEND_BUCKETS];
  msvc__ev_item_t ready_item;
  msvc__ev_item_t closed_item;
  msvc__ev_item_t reclaim_item; /* posted by on_disconnected() */
  atomic_bool reclaim_posted;   /* reclaim_item is in the inbox */
  bool pub_list;                /* loop thread: libnats has a pending list */
  bool unreachable_logged;
} nb_t;

typedef struct nsub_s {
  nb_t *b;
  msvc_events_sub_t *sub;
  uv_thread_t thread;
  uv_mutex_t mu;
  uv_cond_t cv;
  atomic_bool stop;
  natsSubscription *ns;
  msvc__ev_item_t done_item;
  bool logged;
  /* A natsMsg acks through its subscription, so the subscription lives
   * until the last message handed out is settled or released. */
  atomic_uint outstanding;
  bool finished; /* loop thread: the fetch thread is gone */
} nsub_t;

typedef struct ntoken_s {
  natsMsg *m;
  nsub_t *ns;
} ntoken_t;

/* A stream request waiting for the management thread. */
typedef struct job_s {
  msvc__queue_t node;
  msvc__ev_stream_req_t *req;
} job_t;

static void logf_(msvc_log_level_t lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(msvc_log_level_t lvl, const char *fmt, ...) {
  char line[512];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  msvc_log_write(lvl, MSVC__EV_COMPONENT, NULL, 0, "%s", line);
}

static void sleep_on(uv_mutex_t *mu, uv_cond_t *cv, uint64_t ms) {
  uv_mutex_lock(mu);
  (void)uv_cond_timedwait(cv, mu, ms * 1000000ull);
  uv_mutex_unlock(mu);
}

/* ---- status mapping ------------------------------------------------------ */

static int map_status(natsStatus s, jsErrCode jerr) {
  switch (s) {
  case NATS_OK:
    return MSVC_OK;
  case NATS_NO_RESPONDERS:
    return MSVC_EEVENTS_NO_STREAM;
  case NATS_TIMEOUT:
    return MSVC_ETIMEDOUT;
  case NATS_NO_MEMORY:
    return MSVC_ENOMEM;
  case NATS_CONNECTION_CLOSED:
  case NATS_CONNECTION_DISCONNECTED:
  case NATS_NOT_YET_CONNECTED:
  case NATS_NO_SERVER:
    return MSVC_EEVENTS_UNAVAILABLE;
  default:
    (void)jerr;
    return MSVC_EEVENTS_BROKER;
  }
}

/* ---- pending publishes, keyed by the natsMsg handed to libnats ---------- */

static size_t pend_slot(const natsMsg *m) {
  uintptr_t p = (uintptr_t)m;
  return (size_t)((p >> 4) ^ (p >> 14)) & (PEND_BUCKETS - 1);
}

static uv_mutex_t *pend_lock(nb_t *b, size_t slot) {
  return &b->pmu[slot & (PEND_LOCKS - 1)];
}

static void pend_put(nb_t *b, msvc__ev_pub_t *pub, const natsMsg *m) {
  size_t i = pend_slot(m);

  pub->bkey = m;
  uv_mutex_lock(pend_lock(b, i));
  pub->bnext = b->pend[i];
  b->pend[i] = pub;
  uv_mutex_unlock(pend_lock(b, i));
}

static msvc__ev_pub_t *pend_take(nb_t *b, const natsMsg *m) {
  size_t i = pend_slot(m);
  msvc__ev_pub_t *pub = NULL;

  uv_mutex_lock(pend_lock(b, i));
  for (msvc__ev_pub_t **link = &b->pend[i]; *link != NULL; link = &(*link)->bnext) {
    if ((*link)->bkey == m) {
      pub = *link;
      *link = pub->bnext;
      pub->bnext = NULL;
      break;
    }
  }
  uv_mutex_unlock(pend_lock(b, i));
  return pub;
}

/* Runs on a libnats thread for every asynchronous publish. */
static void on_pub_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure) {
  nb_t *b = closure;
  msvc__ev_pub_t *pub = pend_take(b, msg);

  (void)js;
  natsMsg_Destroy(msg); /* ours once the handler runs (libnats' rule) */
  if (pub == NULL)
    return;
  if (pa != NULL)
    msvc__ev_publish_done(pub, MSVC_OK);
  else
    msvc__ev_publish_done(pub, pae != NULL ? map_status(pae->Err, pae->ErrCode)
                                           : MSVC_EEVENTS_BROKER);
}

/* ---- connection ------------------------------------------------------------ */

static int64_t on_reconnect_delay(natsConnection *nc, int attempts, void *closure) {
  nb_t *b = closure;

  (void)nc;
  /* Doubling from the minimum, capped, jittered: many instances that lost
   * the broker together do not come back together. */
  return (int64_t)msvc_events_backoff_ms(b->reconnect_min_ms, b->reconnect_max_ms,
                                         (uint32_t)(attempts > 30 ? 30 : attempts),
                                         msvc__rand64());
}

static void set_connected(nb_t *b, bool up) {
  atomic_store(&b->connected, up);
  uv_mutex_lock(&b->mu);
  uv_cond_broadcast(&b->cv);
  uv_mutex_unlock(&b->mu);
  msvc__ev_set_state(b->base.ev, up ? MSVC_EVENTS_CONNECTED : MSVC_EVENTS_DISCONNECTED);
}

static void on_connected(natsConnection *nc, void *closure) {
  nb_t *b = closure;

  (void)nc;
  logf_(MSVC_LOG_INFO, "connected to the broker at %s", b->uri);
  set_connected(b, true);
}

/* The acknowledgements of publishes sent before a disconnection are lost
 * with the connection: libnats would keep those messages pending for ever
 * (we give it no MaxWait, see send_pub()). Take them back and tell their
 * callers; a publish repeated with the same id is stored once.
 *
 * On the loop thread, where every publish is made: libnats' pending list
 * holds a message from the moment js_PublishMsgAsync() registers it, before
 * it is written out, so taking the list on libnats' thread freed messages
 * the loop was still publishing. Run later than the disconnection, this may
 * also take publishes made since; their callers hear "unavailable" and
 * repeat them, which the id makes harmless. */
static void on_reclaim_item(msvc_events_t *ev, msvc__ev_item_t *item, bool closing) {
  nb_t *b = msvc__container_of(item, nb_t, reclaim_item);
  natsMsgList list = {0};

  (void)ev;
  atomic_store(&b->reclaim_posted, false);
  /* stopping is set on this thread before the management thread destroys
   * b->js. libnats creates its pending list with the first asynchronous
   * publish, and js_PublishAsyncGetPendingList() dereferences it unchecked:
   * asked before (a broker lost before this handle published), it crashed. */
  if (closing || atomic_load(&b->stopping) || !b->pub_list ||
      js_PublishAsyncGetPendingList(&list, b->js) != NATS_OK)
    return;
  for (int i = 0; i < list.Count; i++) {
    natsMsg *m = list.Msgs[i];
    msvc__ev_pub_t *pub = pend_take(b, m);

    list.Msgs[i] = NULL;
    natsMsg_Destroy(m);
    if (pub != NULL)
      msvc__ev_publish_done(pub, MSVC_EEVENTS_UNAVAILABLE);
  }
  natsMsgList_Destroy(&list);
}

static void on_disconnected(natsConnection *nc, void *closure) {
  nb_t *b = closure;

  (void)nc;
  if (atomic_load(&b->stopping) || !atomic_load(&b->connected))
    return;
  logf_(MSVC_LOG_WARN, "lost the broker at %s; reconnecting with backoff (%u..%u ms)", b->uri,
        (unsigned)b->reconnect_min_ms, (unsigned)b->reconnect_max_ms);
  set_connected(b, false);
  /* One post at a time: an item sits in the inbox once. */
  if (!atomic_exchange(&b->reclaim_posted, true))
    msvc__ev_post(b->base.ev, &b->reclaim_item);
}

static void on_reconnected(natsConnection *nc, void *closure) {
  nb_t *b = closure;

  (void)nc;
  logf_(MSVC_LOG_INFO, "reconnected to the broker at %s", b->uri);
  set_connected(b, true);
}

/* libnats' closed callback is the last it queues for a connection, after
 * the disconnection that closing causes. */
static void on_closed(natsConnection *nc, void *closure) {
  nb_t *b = closure;

  (void)nc;
  uv_mutex_lock(&b->mu);
  b->nc_closed = true;
  uv_cond_broadcast(&b->cv);
  uv_mutex_unlock(&b->mu);
}

/* Management thread. libnats runs connection callbacks on a thread of its
 * own, from a queue: when natsConnection_Close() returns, the disconnection
 * callback it queued may not have run yet, and b must outlive it. Waiting
 * for it also puts its reclaim_item in the inbox before closed_item. */
static void close_broker(nb_t *b) {
  natsConnection_Close(b->nc);
  uv_mutex_lock(&b->mu);
  while (!b->nc_closed)
    uv_cond_wait(&b->cv, &b->mu);
  uv_mutex_unlock(&b->mu);
  jsCtx_Destroy(b->js);
  b->js = NULL;
  natsConnection_Destroy(b->nc);
  b->nc = NULL;
}

static int connect_broker(nb_t *b) {
  natsOptions *o = NULL;
  jsOptions jo;
  natsStatus s;

  s = natsOptions_Create(&o);
  if (s == NATS_OK)
    s = natsOptions_SetServers(o, (const char **)b->servers, b->nservers);
  if (s == NATS_OK)
    s = natsOptions_SetName(o, b->conn_name);
  if (s == NATS_OK)
    s = natsOptions_SetNoRandomize(o, true);
  if (s == NATS_OK)
    s = natsOptions_SetTimeout(o, 2000);
  if (s == NATS_OK)
    s = natsOptions_SetMaxReconnect(o, -1);
  if (s == NATS_OK)
    s = natsOptions_SetCustomReconnectDelay(o, on_reconnect_delay, b);
  if (s == NATS_OK)
    s = natsOptions_SetRetryOnFailedConnect(o, true, on_connected, b);
  if (s == NATS_OK)
    s = natsOptions_SetDisconnectedCB(o, on_disconnected, b);
  if (s == NATS_OK)
    s = natsOptions_SetReconnectedCB(o, on_reconnected, b);
  if (s == NATS_OK)
    s = natsOptions_SetClosedCB(o, on_closed, b);
  /* Pings find a half-open connection (a broker host that vanished). */
  if (s == NATS_OK)
    s = natsOptions_SetPingInterval(o, 5000);
  if (s == NATS_OK)
    s = natsOptions_SetMaxPingsOut(o, 2);
  if (s != NATS_OK) {
    natsOptions_Destroy(o);
    return map_status(s, 0);
  }
  s = natsConnection_Connect(&b->nc, o);
  natsOptions_Destroy(o);
  if (s == NATS_NOT_YET_CONNECTED) {
    logf_(MSVC_LOG_WARN,
          "broker at %s unreachable; retrying in the background with backoff (%u..%u ms, "
          "jittered)",
          b->uri, (unsigned)b->reconnect_min_ms, (unsigned)b->reconnect_max_ms);
  } else if (s != NATS_OK) {
    logf_(MSVC_LOG_ERROR, "cannot connect to %s: %s", b->uri, natsStatus_GetText(s));
    return map_status(s, 0);
  } else {
    logf_(MSVC_LOG_INFO, "connected to the broker at %s", b->uri);
    set_connected(b, true);
  }
  jsOptions_Init(&jo);
  jo.Wait = 5000;
  jo.PublishAsync.MaxPending = b->max_pending;
  jo.PublishAsync.AckHandler = on_pub_ack;
  jo.PublishAsync.AckHandlerClosure = b;
  s = natsConnection_JetStream(&b->js, b->nc, &jo);
  if (s != NATS_OK) {
    close_broker(b);
    return map_status(s, 0);
  }
  return MSVC_OK;
}

/* ---- streams (management thread) ------------------------------------------ */

static int ensure_stream(nb_t *b, const char *name, char *const *subjects, size_t n,
                         unsigned replicas, uint64_t max_age_ms, uint64_t dup_ms) {
  jsStreamConfig cfg;
  jsStreamInfo *si = NULL;
  jsErrCode jerr = 0;
  natsStatus s;

  jsStreamConfig_Init(&cfg);
  cfg.Name = name;
  cfg.Subjects = (const char **)subjects;
  cfg.SubjectsLen = (int)n;
  cfg.Storage = js_FileStorage;
  cfg.Replicas = replicas;
  cfg.MaxAge = (int64_t)max_age_ms * 1000000;
  if (dup_ms != 0)
    cfg.Duplicates = (int64_t)dup_ms * 1000000;
  s = js_AddStream(&si, b->js, &cfg, NULL, &jerr);
  if (s != NATS_OK && jerr == JSStreamNameExistErr) {
    jerr = 0;
    s = js_UpdateStream(&si, b->js, &cfg, NULL, &jerr);
  }
  jsStreamInfo_Destroy(si);
  if (s != NATS_OK)
    logf_(MSVC_LOG_WARN, "stream %s: %s (JetStream error %d)", name, natsStatus_GetText(s),
          (int)jerr);
  return map_status(s, jerr);
}

/* Waits until connected; false when stopping. */
static bool wait_connected(nb_t *b, uv_mutex_t *mu, uv_cond_t *cv, const atomic_bool *stop) {
  while (!atomic_load(&b->connected) || !atomic_load(&b->ready)) {
    if (atomic_load(&b->stopping) || (stop != NULL && atomic_load(stop)))
      return false;
    sleep_on(mu, cv, 200);
  }
  return !atomic_load(&b->stopping) && (stop == NULL || !atomic_load(stop));
}

static void on_ready_item(msvc_events_t *ev, msvc__ev_item_t *item, bool closing);

static void mgmt_main(void *arg) {
  nb_t *b = arg;
  int rc = connect_broker(b);

  if (rc == MSVC_OK) {
    atomic_store(&b->ready, true);
  } else {
    logf_(MSVC_LOG_ERROR, "events backend %s failed: %s", b->uri, msvc_strerror(rc));
  }
  msvc__ev_post(b->base.ev, &b->ready_item);
  for (;;) {
    job_t *job = NULL;

    uv_mutex_lock(&b->mu);
    while (msvc__queue_empty(&b->jobs) && !atomic_load(&b->stopping))
      uv_cond_wait(&b->cv, &b->mu);
    if (!msvc__queue_empty(&b->jobs)) {
      job = msvc__container_of(b->jobs.next, job_t, node);
      msvc__queue_remove(&job->node);
    }
    uv_mutex_unlock(&b->mu);
    if (job == NULL)
      break; /* stopping, and nothing left */
    if (rc != MSVC_OK || !wait_connected(b, &b->mu, &b->cv, NULL)) {
      msvc__ev_stream_done(job->req, rc != MSVC_OK ? rc : MSVC_ECLOSED);
    } else {
      msvc__ev_stream_req_t *r = job->req;
      msvc__ev_stream_done(r, ensure_stream(b, r->name, r->subjects, r->subject_count,
                                            r->replicas, r->max_age_ms,
                                            r->duplicate_window_ms));
    }
    msvc__free(job);
  }
  /* Closing: no callback of libnats may run once this is done. */
  if (b->nc != NULL)
    close_broker(b);
  for (size_t i = 0; i < PEND_BUCKETS; i++) {
    while (b->pend[i] != NULL) {
      msvc__ev_pub_t *pub = b->pend[i];
      b->pend[i] = pub->bnext;
      /* Its natsMsg is still libnats' (never handed back), not ours to free. */
      msvc__ev_publish_done(pub, MSVC_ECLOSED);
    }
  }
  msvc__ev_post(b->base.ev, &b->closed_item);
}

/* ---- publishing (loop thread) ------------------------------------------------ */

static void send_pub(nb_t *b, msvc__ev_pub_t *pub) {
  natsMsg *m = NULL, *key;
  jsPubOptions po;
  natsStatus s;

  s = natsMsg_Create(&m, pub->subject, NULL, pub->body, (int)pub->len);
  for (size_t i = 0; s == NATS_OK && i < pub->header_count; i++)
    s = natsMsgHeader_Add(m, pub->headers[i].name, pub->headers[i].value);
  if (s != NATS_OK) {
    natsMsg_Destroy(m);
    msvc__ev_publish_done(pub, map_status(s, 0));
    return;
  }
  key = m;
  pend_put(b, pub, key); /* before the publish: its ack may come at once */
  jsPubOptions_Init(&po);
  po.MsgId = pub->id[0] != '\0' ? pub->id : NULL;
  /* No MaxWait: with one, libnats 3.4 keeps a timeout record per publish
   * until its deadline even after the acknowledgement came, then feeds each
   * one through its reply subscription, so at a steady rate it held
   * rate x MaxWait records (60 s: millions) and did every publish's work a
   * second time. The caller hears of a timeout from the core
   * (publish_timeout_ms); what a lost connection never acknowledges is
   * taken back on disconnection (on_reclaim_item()). */
  po.MaxWait = 0;
  s = js_PublishMsgAsync(b->js, &m, &po);
  if (s == NATS_OK) {
    b->pub_list = true; /* created by this publish: see on_reclaim_item() */
  } else {
    if (pend_take(b, key) != NULL) {
      natsMsg_Destroy(m);
      msvc__ev_publish_done(pub, map_status(s, 0));
    }
  }
}

static void nb_publish(msvc__ev_backend_t *base, msvc__ev_pub_t *pub) {
  nb_t *b = (nb_t *)base;

  if (!atomic_load(&b->ready)) {
    /* Not even a connection object yet: wait for it (the core's timeout
     * still runs). bdata links it; the pub's own node is the core's. */
    job_t *w = msvc__calloc(1, sizeof(*w));
    if (w == NULL) {
      msvc__ev_publish_done(pub, MSVC_ENOMEM);
      return;
    }
    w->req = (msvc__ev_stream_req_t *)(void *)pub;
    msvc__queue_insert_tail(&b->waiting_pubs, &w->node);
    return;
  }
  send_pub(b, pub);
}

static void on_ready_item(msvc_events_t *ev, msvc__ev_item_t *item, bool closing) {
  nb_t *b = msvc__container_of(item, nb_t, ready_item);

  (void)ev;
  while (!msvc__queue_empty(&b->waiting_pubs)) {
    job_t *w = msvc__container_of(b->waiting_pubs.next, job_t, node);
    msvc__ev_pub_t *pub = (msvc__ev_pub_t *)(void *)w->req;
    msvc__queue_remove(&w->node);
    msvc__free(w);
    if (closing || !atomic_load(&b->ready))
      msvc__ev_publish_done(pub, closing ? MSVC_ECLOSED : MSVC_EEVENTS_UNAVAILABLE);
    else
      send_pub(b, pub);
  }
}

/* ---- streams (loop thread side) --------------------------------------------- */

static void nb_stream_ensure(msvc__ev_backend_t *base, msvc__ev_stream_req_t *req) {
  nb_t *b = (nb_t *)base;
  job_t *job = msvc__calloc(1, sizeof(*job));

  if (job == NULL) {
    msvc__ev_stream_done(req, MSVC_ENOMEM);
    return;
  }
  job->req = req;
  uv_mutex_lock(&b->mu);
  msvc__queue_insert_tail(&b->jobs, &job->node);
  uv_cond_broadcast(&b->cv);
  uv_mutex_unlock(&b->mu);
}

/* ---- subscriptions (fetch thread) ------------------------------------------ */

static unsigned stream_replicas(nb_t *b, const char *name) {
  jsStreamInfo *si = NULL;
  unsigned r = 0;

  if (js_GetStreamInfo(&si, b->js, name, NULL, NULL) == NATS_OK && si != NULL &&
      si->Config != NULL)
    r = si->Config->Replicas > 0 ? (unsigned)si->Config->Replicas : 1;
  jsStreamInfo_Destroy(si);
  return r;
}

/* The shared dead-letter stream keeps as many replicas as the streams it
 * serves. With one replica it sits on a single node of a cluster, and when
 * that node dies nothing can be dead-lettered. A failure here does not hold
 * the consumer back: a message that cannot be dead-lettered is nacked and
 * tried again (events.c), and the next set-up tries the stream again. */
static void ensure_dlq(nsub_t *ns) {
  nb_t *b = ns->b;
  char *dlq = MSVC_EVENTS_DLQ_PREFIX ">";
  unsigned want = stream_replicas(b, ns->sub->opts.stream), have;
  int rc;

  if (want == 0)
    want = 1;
  if (want <= atomic_load(&b->dlq_replicas))
    return;
  have = stream_replicas(b, MSVC_EVENTS_DLQ_STREAM); /* never shrink another's */
  rc = have >= want ? MSVC_OK
                    : ensure_stream(b, MSVC_EVENTS_DLQ_STREAM, &dlq, 1, want, 0, 0);
  if (rc == MSVC_OK)
    atomic_store(&b->dlq_replicas, have > want ? have : want);
  else
    logf_(MSVC_LOG_WARN, "dead-letter stream %s is not ready (%s); failed messages are retried",
          MSVC_EVENTS_DLQ_STREAM, msvc_strerror(rc));
}

static int setup_consumer(nsub_t *ns) {
  nb_t *b = ns->b;
  const msvc_events_sub_opts_t *o = &ns->sub->opts;
  jsConsumerConfig cc;
  jsConsumerInfo *ci = NULL;
  jsSubOptions so;
  jsErrCode jerr = 0;
  natsStatus s;

  if (ns->sub->dlq_default)
    ensure_dlq(ns);
  jsConsumerConfig_Init(&cc);
  cc.Durable = o->durable;
  cc.AckPolicy = js_AckExplicit;
  cc.AckWait = (int64_t)o->ack_wait_ms * 1000000;
  /* One more than the caller's limit: the core dead-letters a message that
   * comes back once more without having been settled in time. */
  cc.MaxDeliver = (int64_t)o->max_deliveries + 1;
  cc.FilterSubject = o->subject;
  cc.DeliverPolicy = o->deliver_new ? js_DeliverNew : js_DeliverAll;
  /* The bound per subscription is ours (credits); the consumer's own bound
   * only has to leave room for every instance. */
  cc.MaxAckPending = (int64_t)o->max_unacked * 64 > 1000 ? (int64_t)o->max_unacked * 64 : 1000;
  s = js_AddConsumer(&ci, b->js, o->stream, &cc, NULL, &jerr);
  if (s != NATS_OK && (jerr == JSConsumerNameExistErr || jerr == JSConsumerExistingActiveErr ||
                       jerr == 10148 /* consumer already exists */)) {
    jerr = 0;
    s = js_UpdateConsumer(&ci, b->js, o->stream, &cc, NULL, &jerr);
    if (s != NATS_OK) {
      /* Fields a consumer cannot change (its filter, its start): bind anyway. */
      logf_(MSVC_LOG_WARN, "consumer %s on %s kept its settings: %s", o->durable, o->stream,
            natsStatus_GetText(s));
      s = NATS_OK;
    }
  }
  jsConsumerInfo_Destroy(ci);
  if (s != NATS_OK) {
    if (!ns->logged)
      logf_(MSVC_LOG_WARN, "consumer %s on stream %s: %s (JetStream error %d); retrying",
            o->durable, o->stream, natsStatus_GetText(s), (int)jerr);
    ns->logged = true;
    return map_status(s, jerr);
  }
  jsSubOptions_Init(&so);
  so.Stream = o->stream;
  so.Consumer = o->durable; /* bind: never create, never delete on unsubscribe */
  s = js_PullSubscribe(&ns->ns, b->js, o->subject, o->durable, NULL, &so, &jerr);
  if (s != NATS_OK) {
    ns->ns = NULL;
    if (!ns->logged)
      logf_(MSVC_LOG_WARN, "subscribing to %s as %s: %s; retrying", o->subject, o->durable,
            natsStatus_GetText(s));
    ns->logged = true;
    return map_status(s, jerr);
  }
  if (ns->logged)
    logf_(MSVC_LOG_INFO, "consumer %s on stream %s is ready", o->durable, o->stream);
  ns->logged = false;
  return MSVC_OK;
}

static void deliver(nsub_t *ns, natsMsg *m) {
  msvc__ev_delivery_t *d = msvc__ev_delivery_new(ns->sub);
  const char **keys = NULL;
  int nkeys = 0;
  jsMsgMetaData *meta = NULL;
  int len = natsMsg_GetDataLength(m);
  ntoken_t *tok;

  if (d == NULL)
    goto fail;
  d->subject = msvc__strdup(natsMsg_GetSubject(m));
  d->body = msvc__malloc((size_t)len + 1);
  if (d->subject == NULL || d->body == NULL)
    goto fail;
  if (len > 0)
    memcpy(d->body, natsMsg_GetData(m), (size_t)len);
  d->body[len] = '\0';
  d->len = (size_t)len;
  if (natsMsgHeader_Keys(m, &keys, &nkeys) == NATS_OK && nkeys > 0) {
    d->headers = msvc__calloc((size_t)nkeys, sizeof(*d->headers));
    if (d->headers == NULL)
      goto fail;
    for (int i = 0; i < nkeys; i++) {
      const char *v = NULL;
      size_t kl, vl;
      if (natsMsgHeader_Get(m, keys[i], &v) != NATS_OK || v == NULL)
        v = "";
      kl = strlen(keys[i]);
      vl = strlen(v);
      d->headers[d->header_count].name = msvc__malloc(kl + vl + 2);
      if (d->headers[d->header_count].name == NULL)
        goto fail;
      memcpy(d->headers[d->header_count].name, keys[i], kl + 1);
      d->headers[d->header_count].value = d->headers[d->header_count].name + kl + 1;
      memcpy(d->headers[d->header_count].value, v, vl + 1);
      d->header_count++;
    }
  }
  free((void *)keys);
  keys = NULL;
  d->deliveries = 1;
  if (natsMsg_GetMetaData(&meta, m) == NATS_OK) {
    d->deliveries = (uint32_t)meta->NumDelivered;
    d->pending = meta->NumPending;
    jsMsgMetaData_Destroy(meta);
  }
  tok = msvc__malloc(sizeof(*tok));
  if (tok == NULL)
    goto fail;
  tok->m = m;
  tok->ns = ns;
  atomic_fetch_add(&ns->outstanding, 1);
  d->token = tok;
  msvc__ev_deliver(d);
  return;

fail:
  free((void *)keys);
  if (d != NULL)
    msvc__ev_delivery_free(d);
  natsMsg_Destroy(m); /* not acked: the broker delivers it again */
}

static void nsub_free(nsub_t *ns) {
  if (ns->ns != NULL)
    natsSubscription_Destroy(ns->ns);
  uv_cond_destroy(&ns->cv);
  uv_mutex_destroy(&ns->mu);
  msvc__free(ns);
}

static void on_sub_done_item(msvc_events_t *ev, msvc__ev_item_t *item, bool closing) {
  nsub_t *ns = msvc__container_of(item, nsub_t, done_item);
  msvc_events_sub_t *sub = ns->sub;

  (void)ev;
  (void)closing;
  uv_thread_join(&ns->thread);
  ns->finished = true;
  ns->sub = NULL;
  sub->bdata = NULL;
  if (atomic_load(&ns->outstanding) == 0)
    nsub_free(ns);
  msvc__ev_sub_stopped(sub);
}

/* Loop thread: a message of ns is settled or released. */
static void token_done(ntoken_t *tok) {
  nsub_t *ns = tok->ns;

  natsMsg_Destroy(tok->m);
  msvc__free(tok);
  if (atomic_fetch_sub(&ns->outstanding, 1) == 1 && ns->finished)
    nsub_free(ns);
}

static void fetch_main(void *arg) {
  nsub_t *ns = arg;
  uint32_t retry_ms = SETUP_RETRY_MIN_MS;

  while (!atomic_load(&ns->stop)) {
    natsMsgList list = {0};
    jsErrCode jerr = 0;
    uint32_t used, credits;
    natsStatus s;

    if (!wait_connected(ns->b, &ns->mu, &ns->cv, &ns->stop))
      break;
    if (ns->ns == NULL) {
      if (setup_consumer(ns) != MSVC_OK) {
        sleep_on(&ns->mu, &ns->cv, msvc_events_backoff_ms(retry_ms, retry_ms, 1, msvc__rand64()));
        retry_ms = retry_ms * 2 > SETUP_RETRY_MAX_MS ? SETUP_RETRY_MAX_MS : retry_ms * 2;
        continue;
      }
      retry_ms = SETUP_RETRY_MIN_MS;
    }
    used = atomic_load(&ns->sub->unacked);
    credits = used >= ns->sub->opts.max_unacked ? 0 : ns->sub->opts.max_unacked - used;
    if (credits == 0) {
      sleep_on(&ns->mu, &ns->cv, 200); /* woken by a settlement */
      continue;
    }
    s = natsSubscription_Fetch(&list, ns->ns, credits > FETCH_BATCH_MAX ? FETCH_BATCH_MAX
                                                                        : (int)credits,
                               FETCH_WAIT_MS, &jerr);
    if (s == NATS_OK) {
      for (int i = 0; i < list.Count; i++) {
        natsMsg *m = list.Msgs[i];
        list.Msgs[i] = NULL;
        if (atomic_load(&ns->stop))
          natsMsg_Destroy(m);
        else
          deliver(ns, m);
      }
      natsMsgList_Destroy(&list);
    } else if (s != NATS_TIMEOUT) {
      natsMsgList_Destroy(&list);
      if ((s == NATS_INVALID_SUBSCRIPTION || s == NATS_NOT_FOUND ||
           jerr == JSConsumerNotFoundErr) &&
          atomic_load(&ns->outstanding) == 0) {
        natsSubscription_Destroy(ns->ns); /* the consumer went away: set it up again */
        ns->ns = NULL;
      }
      sleep_on(&ns->mu, &ns->cv, 100);
    }
  }
  /* Stop the interest now; the object goes with the last message. */
  if (ns->ns != NULL)
    natsSubscription_Unsubscribe(ns->ns);
  msvc__ev_post(ns->b->base.ev, &ns->done_item);
}

static int nb_sub_start(msvc__ev_backend_t *base, msvc_events_sub_t *sub) {
  nsub_t *ns = msvc__calloc(1, sizeof(*ns));
  int rc;

  if (ns == NULL)
    return MSVC_ENOMEM;
  ns->b = (nb_t *)base;
  ns->sub = sub;
  ns->done_item.run = on_sub_done_item;
  atomic_init(&ns->stop, false);
  atomic_init(&ns->outstanding, 0);
  if (uv_mutex_init(&ns->mu) != 0) {
    msvc__free(ns);
    return MSVC_ENOMEM;
  }
  if (uv_cond_init(&ns->cv) != 0) {
    uv_mutex_destroy(&ns->mu);
    msvc__free(ns);
    return MSVC_ENOMEM;
  }
  sub->bdata = ns;
  rc = uv_thread_create(&ns->thread, fetch_main, ns);
  if (rc != 0) {
    uv_cond_destroy(&ns->cv);
    uv_mutex_destroy(&ns->mu);
    msvc__free(ns);
    sub->bdata = NULL;
    return rc;
  }
  return MSVC_OK;
}

static void nb_sub_credit(msvc__ev_backend_t *base, msvc_events_sub_t *sub) {
  nsub_t *ns = sub->bdata;

  (void)base;
  if (ns == NULL)
    return;
  uv_mutex_lock(&ns->mu);
  uv_cond_signal(&ns->cv);
  uv_mutex_unlock(&ns->mu);
}

static void nb_sub_stop(msvc__ev_backend_t *base, msvc_events_sub_t *sub) {
  nsub_t *ns = sub->bdata;

  (void)base;
  atomic_store(&ns->stop, true);
  uv_mutex_lock(&ns->mu);
  uv_cond_signal(&ns->cv);
  uv_mutex_unlock(&ns->mu);
  /* The thread leaves within one fetch wait and posts done_item. */
}

static void nb_settle(msvc__ev_backend_t *base, msvc_events_sub_t *sub, void *token,
                      msvc__ev_settle_t how, uint32_t delay_ms) {
  ntoken_t *tok = token;
  natsMsg *m = tok->m;
  natsStatus s;

  (void)base;
  (void)sub;
  if (how == MSVC__EV_ACK)
    s = natsMsg_Ack(m, NULL);
  else if (how == MSVC__EV_TERM)
    s = natsMsg_Term(m, NULL);
  else
    s = delay_ms > 0 ? natsMsg_NakWithDelay(m, delay_ms, NULL) : natsMsg_Nak(m, NULL);
  if (s != NATS_OK)
    logf_(MSVC_LOG_DEBUG, "settling a message: %s (the broker will deliver it again)",
          natsStatus_GetText(s));
  token_done(tok);
}

static void nb_release(msvc__ev_backend_t *base, void *token) {
  (void)base;
  token_done(token);
}

/* ---- start and close ------------------------------------------------------- */

static void nb_free(nb_t *b) {
  for (int i = 0; i < b->nservers; i++)
    msvc__free(b->servers[i]);
  msvc__free(b->servers);
  msvc__free(b->uri);
  msvc__free(b->conn_name);
  uv_cond_destroy(&b->cv);
  uv_mutex_destroy(&b->mu);
  for (unsigned i = 0; i < PEND_LOCKS; i++)
    uv_mutex_destroy(&b->pmu[i]);
  msvc__free(b);
}

static void on_closed_item(msvc_events_t *ev, msvc__ev_item_t *item, bool closing) {
  nb_t *b = msvc__container_of(item, nb_t, closed_item);

  (void)closing;
  uv_thread_join(&b->mgmt);
  on_ready_item(ev, &b->ready_item, true); /* publishes still waiting */
  nb_free(b);
  msvc__ev_backend_closed(ev);
}

static int nb_start(msvc__ev_backend_t *base) {
  nb_t *b = (nb_t *)base;
  int rc = uv_thread_create(&b->mgmt, mgmt_main, b);

  if (rc == 0)
    b->mgmt_started = true;
  return rc;
}

static void nb_close(msvc__ev_backend_t *base) {
  nb_t *b = (nb_t *)base;

  atomic_store(&b->stopping, true);
  if (!b->mgmt_started) {
    msvc_events_t *ev = b->base.ev;
    nb_free(b);
    msvc__ev_backend_closed(ev);
    return;
  }
  uv_mutex_lock(&b->mu);
  uv_cond_broadcast(&b->cv);
  uv_mutex_unlock(&b->mu);
  /* The management thread closes the connection and posts closed_item. */
}

static const msvc__ev_ops_t nats_ops = {
    .name = "nats",
    .start = nb_start,
    .stream_ensure = nb_stream_ensure,
    .publish = nb_publish,
    .sub_start = nb_sub_start,
    .sub_credit = nb_sub_credit,
    .settle = nb_settle,
    .release = nb_release,
    .sub_stop = nb_sub_stop,
    .wake = NULL,
    .close = nb_close,
};

/* nats://host[:port][,host[:port]...] -> "nats://host:port" each. */
static int parse_servers(nb_t *b, const char *uri, char *err, size_t errlen) {
  const char *p = uri + 7;
  size_t n = 1;

  for (const char *q = p; *q; q++)
    n += *q == ',';
  b->servers = msvc__calloc(n, sizeof(char *));
  if (b->servers == NULL)
    return MSVC_ENOMEM;
  while (*p != '\0') {
    size_t len = strcspn(p, ",");
    const char *colon = memchr(p, ':', len);
    char host[256];
    unsigned long port = 4222;
    size_t hl = colon != NULL ? (size_t)(colon - p) : len;

    if (hl == 0 || hl >= sizeof(host) || memchr(p, '/', len) != NULL ||
        memchr(p, '@', len) != NULL)
      goto bad;
    memcpy(host, p, hl);
    host[hl] = '\0';
    if (colon != NULL) {
      char *end;
      if (colon + 1 == p + len)
        goto bad;
      port = strtoul(colon + 1, &end, 10);
      if (end != p + len || port == 0 || port > 65535)
        goto bad;
    }
    b->servers[b->nservers] = msvc__malloc(hl + 16);
    if (b->servers[b->nservers] == NULL)
      return MSVC_ENOMEM;
    snprintf(b->servers[b->nservers], hl + 16, "nats://%s:%lu", host, port);
    b->nservers++;
    p += len;
    if (*p == ',')
      p++;
  }
  if (b->nservers == 0)
    goto bad;
  return MSVC_OK;

bad:
  if (err != NULL && errlen > 0)
    snprintf(err, errlen, "events: bad NATS URI '%s' (expected nats://host:port[,host:port])",
             uri);
  return MSVC_EURI;
}

int msvc__ev_nats_new(msvc_events_t *ev, const char *uri, msvc__ev_backend_t **out, char *err,
                      size_t errlen) {
  nb_t *b = msvc__calloc(1, sizeof(*b));
  int rc;

  if (b == NULL)
    return MSVC_ENOMEM;
  b->base.ops = &nats_ops;
  b->base.ev = ev;
  b->reconnect_min_ms = ev->opts.reconnect_min_ms;
  b->reconnect_max_ms = ev->opts.reconnect_max_ms;
  b->publish_timeout_ms = ev->opts.publish_timeout_ms;
  b->max_pending = ev->opts.max_pending_publishes + 64;
  b->ready_item.run = on_ready_item;
  b->closed_item.run = on_closed_item;
  b->reclaim_item.run = on_reclaim_item;
  msvc__queue_init(&b->jobs);
  msvc__queue_init(&b->waiting_pubs);
  atomic_init(&b->ready, false);
  atomic_init(&b->connected, false);
  atomic_init(&b->stopping, false);
  atomic_init(&b->reclaim_posted, false);
  atomic_init(&b->dlq_replicas, 0);
  if (uv_mutex_init(&b->mu) != 0) {
    msvc__free(b);
    return MSVC_ENOMEM;
  }
  for (unsigned i = 0; i < PEND_LOCKS; i++) {
    if (uv_mutex_init(&b->pmu[i]) != 0) {
      while (i-- > 0)
        uv_mutex_destroy(&b->pmu[i]);
      uv_mutex_destroy(&b->mu);
      msvc__free(b);
      return MSVC_ENOMEM;
    }
  }
  if (uv_cond_init(&b->cv) != 0) {
    uv_mutex_destroy(&b->mu);
    for (unsigned i = 0; i < PEND_LOCKS; i++)
      uv_mutex_destroy(&b->pmu[i]);
    msvc__free(b);
    return MSVC_ENOMEM;
  }
  b->uri = msvc__strdup(uri);
  b->conn_name = msvc__strdup(ev->name);
  rc = b->uri == NULL || b->conn_name == NULL ? MSVC_ENOMEM : parse_servers(b, uri, err, errlen);
  if (rc != MSVC_OK) {
    nb_free(b);
    return rc;
  }
  *out = &b->base;
  return MSVC_OK;
}
