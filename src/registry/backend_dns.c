/* dns://?domain=D[&server=ip:port] -- discovery the way Kubernetes does it.
 *
 * c-ares runs on the registry's loop: its socket-state callback opens and
 * stops one uv_poll handle per socket, and one uv_timer wakes it for its own
 * timeouts and retries. No thread and no blocking getaddrinfo. c-ares
 * retries each query on the next try (tries=, timeout_ms= in the URI) and
 * repeats a truncated UDP answer over TCP by itself.
 *
 * One resolution sends four queries at once (SRV _https._tcp.N.D, SRV
 * _http._tcp.N.D, A and AAAA of N.D); dns_answer.c decides which answer
 * wins once all four are back. The next resolution of a watched service is
 * due when the records' TTL expires, bounded by min_ttl_ms and max_ttl_ms
 * and taken up to a tenth early at random, so processes started together
 * do not ask in lockstep and a change is seen within the TTL.
 *
 * Failures keep the last known set (the core's rule); an answer that the
 * service has no records at all empties the set only when a second look,
 * a moment later, says the same: one odd answer during a rollout must not
 * take every instance away.
 *
 * Registration is the platform's (Kubernetes publishes ready pods): put and
 * del succeed without sending anything, and say so once in the log. */
#include <stdio.h>
#include <stdlib.h>

#include <ares.h>

#include <msvc/log.h>

#include "registry/registry-internal.h"

#define DNS_T_A 1
#define DNS_T_AAAA 28
#define DNS_T_SRV 33
#define DNS_C_IN 1
/* Delay of the second look that confirms "no instances". */
#define DNS_CONFIRM_MS 200

typedef struct dns_poll_s {
  struct dns_poll_s *next;
  struct dns_backend_s *db;
  uv_poll_t poll;
  ares_socket_t fd;
  bool closing;
} dns_poll_t;

typedef struct dns_backend_s {
  msvc__reg_backend_t base;
  msvc__dns_config_t cfg;
  ares_channel ch;
  bool ch_ok;
  uv_timer_t timer;
  dns_poll_t *polls;
  int open_handles; /* timer + poll handles not closed yet */
  bool closing;
  bool said_register;
} dns_backend_t;

typedef struct dns_watch_s {
  msvc_registry_watch_t *w;
  struct dns_job_s *job;     /* in flight, or NULL */
  msvc_registry_set_t *last; /* last set reported */
  bool negative_once;        /* one "no records" seen, not confirmed */
} dns_watch_t;

typedef struct dns_job_s {
  dns_backend_t *db;
  char *service;
  msvc__reg_query_t *q; /* a one-off resolve, or */
  dns_watch_t *dw;      /* a watch (NULL once it stopped or gave up) */
  uint64_t started_ms;
  int pending;
  msvc__dns_reply_t r[MSVC__DNS_NQUERIES];
} dns_job_t;

typedef struct dns_query_arg_s {
  dns_job_t *job;
  int index;
} dns_query_arg_t;

/* ---- c-ares on the loop
 * ------------------------------------------------------ */

static void arm_timer(dns_backend_t *db);

static void on_handle_closed(uv_handle_t *h) {
  dns_backend_t *db = h->data;

  if (h->type == UV_POLL)
    msvc__free(msvc__container_of((uv_poll_t *)h, dns_poll_t, poll));
  if (--db->open_handles > 0)
    return;
  msvc_registry_t *reg = db->base.reg;
  msvc__free(db);
  msvc__reg_backend_closed(reg);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  dns_poll_t *p = msvc__container_of(h, dns_poll_t, poll);
  dns_backend_t *db = p->db;
  ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;

  /* An error on the socket: let c-ares read it and find out. */
  if (status < 0 || (events & UV_READABLE))
    rfd = p->fd;
  if (status < 0 || (events & UV_WRITABLE))
    wfd = p->fd;
  ares_process_fd(db->ch, rfd, wfd);
  arm_timer(db);
}

static void poll_close(dns_poll_t *p) {
  dns_poll_t **pp;

  for (pp = &p->db->polls; *pp != NULL; pp = &(*pp)->next)
    if (*pp == p) {
      *pp = p->next;
      break;
    }
  p->closing = true;
  /* Stopped now, while the descriptor is still open: c-ares closes it
   * right after this callback returns. */
  uv_close((uv_handle_t *)&p->poll, on_handle_closed);
}

static void on_sock_state(void *data, ares_socket_t fd, int readable,
                          int writable) {
  dns_backend_t *db = data;
  dns_poll_t *p;
  int events = (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0);

  for (p = db->polls; p != NULL && p->fd != fd; p = p->next)
    ;
  if (events == 0) {
    if (p != NULL)
      poll_close(p);
    return;
  }
  if (p == NULL) {
    if ((p = msvc__calloc(1, sizeof(*p))) == NULL)
      return; /* the query times out, and the failure is reported */
    if (uv_poll_init_socket(db->base.reg->loop, &p->poll, fd) != 0) {
      msvc__free(p);
      return;
    }
    p->db = db;
    p->fd = fd;
    p->poll.data = db;
    p->next = db->polls;
    db->polls = p;
    db->open_handles++;
  }
  uv_poll_start(&p->poll, events, on_poll);
}

static void on_timer(uv_timer_t *t) {
  dns_backend_t *db = t->data;

  ares_process_fd(db->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  arm_timer(db);
}

static void arm_timer(dns_backend_t *db) {
  struct timeval tv, *tvp;

  if (db->closing)
    return;
  tvp = ares_timeout(db->ch, NULL, &tv);
  if (tvp == NULL) {
    uv_timer_stop(&db->timer);
    return;
  }
  uv_timer_start(
      &db->timer, on_timer,
      (uint64_t)tvp->tv_sec * 1000 + (uint64_t)tvp->tv_usec / 1000 + 1, 0);
}

/* ---- one resolution: four queries ------------------------------------------
 */

static int ares_to_msvc(int status) {
  switch (status) {
  case ARES_ETIMEOUT:
    return MSVC_ETIMEDOUT;
  case ARES_ECONNREFUSED:
    return MSVC_ECONNREFUSED;
  case ARES_ENOMEM:
    return MSVC_ENOMEM;
  case ARES_ECANCELLED:
  case ARES_EDESTRUCTION:
    return MSVC_ECANCELED;
  case ARES_EBADNAME:
    return MSVC_EINVAL;
  case ARES_EBADRESP:
  case ARES_EFORMERR:
    return MSVC_EPROTO;
  default:
    return MSVC_EIO; /* SERVFAIL, REFUSED, no server, ... */
  }
}

static void job_free(dns_job_t *job) {
  int i;

  for (i = 0; i < MSVC__DNS_NQUERIES; i++)
    msvc__free((void *)job->r[i].buf);
  msvc__free(job->service);
  msvc__free(job);
}

static uint64_t next_ms(const msvc__dns_config_t *cfg, uint32_t ttl_s) {
  uint64_t ms = (uint64_t)ttl_s * 1000;

  if (ms < cfg->min_ttl_ms)
    ms = cfg->min_ttl_ms;
  if (ms > cfg->max_ttl_ms)
    ms = cfg->max_ttl_ms;
  return ms - msvc__rand_below(ms / 10 + 1);
}

static void watch_done(dns_watch_t *dw, int rc, msvc_registry_set_t *set,
                       uint32_t ttl_s, bool negative, const char *why,
                       const dns_backend_t *db) {
  msvc_registry_watch_t *w = dw->w;

  if (rc != MSVC_OK) {
    /* The core logs the first failure of a run; this says which lookup. */
    MSVC_LOG_W(MSVC__REG_COMPONENT, "dns: %s: %s", w->service, why);
    msvc__reg_watch_report(w, rc, NULL, 0);
    return;
  }
  if (negative && dw->last != NULL && msvc_registry_set_count(dw->last) > 0 &&
      !dw->negative_once) {
    MSVC_LOG_I(MSVC__REG_COMPONENT,
               "dns: %s: no records; confirming before dropping %zu "
               "instance(s)",
               w->service, msvc_registry_set_count(dw->last));
    dw->negative_once = true;
    msvc_registry_set_unref(set);
    msvc__reg_watch_report(w, MSVC_OK, msvc_registry_set_ref(dw->last),
                           DNS_CONFIRM_MS);
    return;
  }
  dw->negative_once = false;
  msvc_registry_set_unref(dw->last);
  dw->last = msvc_registry_set_ref(set);
  msvc__reg_watch_report(w, MSVC_OK, set, next_ms(&db->cfg, ttl_s));
}

static void job_finish(dns_job_t *job) {
  msvc_registry_set_t *set = NULL;
  uint32_t ttl = 0;
  bool negative = false;
  char why[512];
  int rc;

  rc = msvc__dns_build_set(job->service, job->r, job->db->cfg.port, &set, &ttl,
                           &negative, why, sizeof(why));
  if (job->q != NULL) {
    if (rc != MSVC_OK)
      MSVC_LOG_W(MSVC__REG_COMPONENT, "dns: %s: %s", job->service, why);
    msvc__reg_query_done(job->q, rc, set);
  } else if (job->dw != NULL) {
    job->dw->job = NULL;
    watch_done(job->dw, rc, set, ttl, negative, why, job->db);
  } else {
    msvc_registry_set_unref(set);
  }
  job_free(job);
}

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf,
                      int alen) {
  dns_query_arg_t *qa = arg;
  dns_job_t *job = qa->job;
  msvc__dns_reply_t *r = &job->r[qa->index];

  (void)timeouts;
  msvc__free(qa);
  /* Any answer is parsed, errors included: the parser tells NXDOMAIN (no
   * such service) from SERVFAIL (the server cannot say) and names it in
   * the log. Without an answer (timeout, refused) c-ares's status says. */
  if (abuf != NULL && alen > 0 && status != ARES_EDESTRUCTION &&
      status != ARES_ECANCELLED) {
    uint8_t *copy = msvc__malloc((size_t)alen);
    if (copy != NULL) {
      memcpy(copy, abuf, (size_t)alen);
      r->buf = copy;
      r->len = (size_t)alen;
    } else {
      r->err = MSVC_ENOMEM;
    }
  } else {
    r->err = ares_to_msvc(status);
  }
  if (--job->pending == 0)
    job_finish(job);
}

static int job_start(dns_backend_t *db, const char *service,
                     msvc__reg_query_t *q, dns_watch_t *dw) {
  static const char *const prefix[MSVC__DNS_NQUERIES] = {"_https._tcp.",
                                                         "_http._tcp.", "", ""};
  static const int type[MSVC__DNS_NQUERIES] = {DNS_T_SRV, DNS_T_SRV, DNS_T_A,
                                               DNS_T_AAAA};
  dns_job_t *job = msvc__calloc(1, sizeof(*job));
  char name[300];
  int i;

  if (job == NULL || (job->service = msvc__strdup(service)) == NULL) {
    msvc__free(job);
    return MSVC_ENOMEM;
  }
  job->db = db;
  job->q = q;
  job->dw = dw;
  job->started_ms = msvc_now_ms();
  if (dw != NULL)
    dw->job = job;
  /* One extra count while the queries go out: c-ares may answer one of
   * them from inside ares_query(). */
  job->pending = MSVC__DNS_NQUERIES + 1;
  for (i = 0; i < MSVC__DNS_NQUERIES; i++) {
    dns_query_arg_t *qa = msvc__calloc(1, sizeof(*qa));
    int n = snprintf(name, sizeof(name), "%s%s.%s", prefix[i], service,
                     db->cfg.domain);
    if (qa == NULL || n < 0 || (size_t)n >= sizeof(name) || n > 253) {
      job->r[i].err = qa == NULL ? MSVC_ENOMEM : MSVC_EINVAL;
      msvc__free(qa);
      job->pending--;
      continue;
    }
    qa->job = job;
    qa->index = i;
    ares_query(db->ch, name, DNS_C_IN, type[i], on_answer, qa);
  }
  arm_timer(db);
  if (--job->pending == 0)
    job_finish(job);
  return MSVC__REG_ASYNC;
}

/* ---- the backend's operations -----------------------------------------------
 */

static int dns_put(msvc__reg_backend_t *b, msvc_registry_lease_t *lease) {
  dns_backend_t *db = (dns_backend_t *)b;

  if (!db->said_register) {
    db->said_register = true;
    MSVC_LOG_I(MSVC__REG_COMPONENT,
               "dns: registration is the platform's (a Kubernetes Service "
               "publishes ready pods); %s/%s is not announced by this process",
               lease->inst.service, lease->inst.id);
  }
  return MSVC_OK;
}

static int dns_del(msvc__reg_backend_t *b, msvc_registry_lease_t *lease) {
  (void)b;
  (void)lease;
  return MSVC_OK;
}

static int dns_resolve(msvc__reg_backend_t *b, msvc__reg_query_t *q) {
  return job_start((dns_backend_t *)b, q->service, q, NULL);
}

static int dns_watch_start(msvc__reg_backend_t *b, msvc_registry_watch_t *w) {
  dns_watch_t *dw = msvc__calloc(1, sizeof(*dw));

  (void)b;
  if (dw == NULL)
    return MSVC_ENOMEM;
  dw->w = w;
  w->bdata = dw;
  return MSVC_OK;
}

static void dns_watch_refresh(msvc__reg_backend_t *b,
                              msvc_registry_watch_t *w) {
  dns_backend_t *db = (dns_backend_t *)b;
  dns_watch_t *dw = w->bdata;
  int rc;

  if (dw->job != NULL) {
    uint64_t age = msvc_now_ms() - dw->job->started_ms;
    if (age < db->cfg.timeout_ms) {
      msvc__reg_watch_recheck(w, db->cfg.timeout_ms - age);
      return; /* the resolution in flight will report */
    }
    /* A lost datagram costs c-ares its whole timeout, doubled on every
     * try: seconds in which the set may change. Ask again beside it; its
     * late answers are dropped. */
    MSVC_LOG_I(MSVC__REG_COMPONENT,
               "dns: %s: no answer in %llu ms; asking again", w->service,
               (unsigned long long)age);
    dw->job->dw = NULL;
    dw->job = NULL;
  }
  rc = job_start(db, w->service, NULL, dw);
  if (rc < 0) {
    msvc__reg_watch_report(w, rc, NULL, 0);
    return;
  }
  /* Unless the answers come first and reschedule it. */
  if (dw->job != NULL)
    msvc__reg_watch_recheck(w, db->cfg.timeout_ms);
}

static void dns_watch_stop(msvc__reg_backend_t *b, msvc_registry_watch_t *w) {
  dns_watch_t *dw = w->bdata;

  (void)b;
  if (dw->job != NULL)
    dw->job->dw = NULL; /* its answers are dropped */
  msvc_registry_set_unref(dw->last);
  msvc__free(dw);
  w->bdata = NULL;
  msvc__reg_watch_stopped(w);
}

static void dns_close(msvc__reg_backend_t *b) {
  dns_backend_t *db = (dns_backend_t *)b;

  db->closing = true;
  /* Ends every query (their callbacks see ARES_EDESTRUCTION) and closes
   * every socket, which stops and closes the poll handles. */
  if (db->ch_ok)
    ares_destroy(db->ch);
  db->ch_ok = false;
  while (db->polls != NULL)
    poll_close(db->polls);
  uv_close((uv_handle_t *)&db->timer, on_handle_closed);
}

/* Peers learn that an instance left at their next resolution: within
 * min_ttl_ms when the records' TTL is no longer, plus one timeout when a
 * query is lost on the way and asked again. */
static uint64_t dns_notice_ms(const msvc__reg_backend_t *b) {
  const dns_backend_t *db = (const dns_backend_t *)b;

  return (uint64_t)db->cfg.min_ttl_ms + db->cfg.timeout_ms;
}

static const msvc__reg_ops_t dns_ops = {
    "dns",          false,       false,           dns_put,
    dns_del,        dns_resolve, dns_watch_start, dns_watch_refresh,
    dns_watch_stop, dns_close,   dns_notice_ms};

static uv_once_t cares_once = UV_ONCE_INIT;
static int cares_init_status;

static void cares_init(void) {
  cares_init_status = ares_library_init(ARES_LIB_INIT_ALL);
}

int msvc__reg_dns_open(msvc_registry_t *reg, const char *params,
                       msvc__reg_backend_t **out) {
  struct ares_options o;
  dns_backend_t *db;
  int rc;

  uv_once(&cares_once, cares_init);
  if (cares_init_status != ARES_SUCCESS)
    return MSVC_ENOMEM;
  if ((db = msvc__calloc(1, sizeof(*db))) == NULL)
    return MSVC_ENOMEM;
  if ((rc = msvc__dns_config_parse(params, &db->cfg, NULL, 0)) != MSVC_OK) {
    msvc__free(db);
    return rc;
  }
  memset(&o, 0, sizeof(o));
  o.sock_state_cb = on_sock_state;
  o.sock_state_cb_data = db;
  o.timeout = (int)db->cfg.timeout_ms;
  o.tries = (int)db->cfg.tries;
  /* SERVFAIL and REFUSED answers come back to us rather than end as a
   * bare error after every server was tried: the log then says what the
   * server answered, and the core retries with backoff anyway. */
  o.flags = ARES_FLAG_NOCHECKRESP;
  rc = ares_init_options(&db->ch, &o,
                         ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS |
                             ARES_OPT_TRIES | ARES_OPT_FLAGS);
  if (rc == ARES_SUCCESS && db->cfg.server[0] != '\0' &&
      (rc = ares_set_servers_ports_csv(db->ch, db->cfg.server)) != ARES_SUCCESS)
    ares_destroy(db->ch);
  if (rc != ARES_SUCCESS) {
    MSVC_LOG_E(MSVC__REG_COMPONENT, "dns: cannot set up the resolver: %s",
               ares_strerror(rc));
    msvc__free(db);
    return rc == ARES_ENOMEM ? MSVC_ENOMEM : MSVC_EINVAL;
  }
  db->ch_ok = true;
  db->base.ops = &dns_ops;
  db->base.reg = reg;
  uv_timer_init(reg->loop, &db->timer);
  db->timer.data = db;
  db->open_handles = 1;
  *out = &db->base;
  return MSVC_OK;
}
