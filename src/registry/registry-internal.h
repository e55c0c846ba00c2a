/*
 * Internals of the registry block: the structures behind the public handles,
 * the backend vtable, and the helpers every backend shares (instance copies,
 * sets, JSON, URI parsing).
 *
 * Division of labour. The core (registry.c) owns every libuv timer that is
 * not backend-specific: heartbeats, retries with jittered backoff, the
 * debounce of watch deliveries, periodic and expiry-driven refreshes, and
 * the "never replace a good set by an empty one" rule. A backend only knows
 * how to put, delete and read instances, and may push "something changed"
 * through msvc__reg_watch_poke(). That keeps a network backend (etcd) down to
 * the same five operations.
 */
#ifndef MSVC_REGISTRY_INTERNAL_H
#define MSVC_REGISTRY_INTERNAL_H

#include <stdatomic.h>

#include <uv.h>

#include <msvc/registry.h>

#include "msvc-internal.h"

#define MSVC__REG_COMPONENT "registry"

/* Returned by a backend operation that will complete later through the
 * matching msvc__reg_*_done() function. Positive, so it never collides with
 * an error code. */
#define MSVC__REG_ASYNC 1

typedef struct msvc__reg_backend_s msvc__reg_backend_t;
typedef struct msvc__reg_query_s msvc__reg_query_t;

struct msvc_registry_set_s {
  atomic_uint refs;
  bool stale;
  char *service;
  size_t count;
  size_t cap;
  msvc_registry_instance_t *items; /* every string owned by the set */
};

/* The backend vtable. Every operation runs on the loop thread. Operations
 * returning int answer 0 (done), a negative error (failed), or
 * MSVC__REG_ASYNC (the backend calls the matching *_done later, never from
 * inside the operation). */
typedef struct msvc__reg_ops_s {
  const char *name;
  bool read_only; /* put/del are refused with MSVC_ENOTSUP by the core */
  bool poll;      /* the core refreshes watches every rescan_ms */
  /* Announce or refresh lease->inst with lease->ttl_ms; lease->beat_wall_ms
   * is the heartbeat time to record. -> msvc__reg_lease_put_done() */
  int (*put)(msvc__reg_backend_t *b, msvc_registry_lease_t *lease);
  /* Remove the instance; an already absent one is not an error. Never
   * called while a put of the same lease is in flight.
   * -> msvc__reg_lease_del_done() */
  int (*del)(msvc__reg_backend_t *b, msvc_registry_lease_t *lease);
  /* Read q->service; on 0 q->set holds the result (owned by q).
   * -> msvc__reg_query_done() */
  int (*resolve)(msvc__reg_backend_t *b, msvc__reg_query_t *q);
  /* Set up change notification for a watch (w->bdata is the backend's). */
  int (*watch_start)(msvc__reg_backend_t *b, msvc_registry_watch_t *w);
  /* Read the watched service now and report through
   * msvc__reg_watch_report() (synchronously or later). */
  void (*watch_refresh)(msvc__reg_backend_t *b, msvc_registry_watch_t *w);
  /* Release the watch's backend state, then call msvc__reg_watch_stopped()
   * (possibly from inside). No report may follow. */
  void (*watch_stop)(msvc__reg_backend_t *b, msvc_registry_watch_t *w);
  /* Free the backend, then call msvc__reg_backend_closed() (possibly from
   * inside). Every lease and watch is gone by then. */
  void (*close)(msvc__reg_backend_t *b);
  /* How long peers may go on sending to a deregistered instance, for a
   * backend whose peers learn by asking again later; NULL for one whose
   * watches are told (the core's debounce bound then applies). */
  uint64_t (*notice_ms)(const msvc__reg_backend_t *b);
} msvc__reg_ops_t;

struct msvc__reg_backend_s {
  const msvc__reg_ops_t *ops;
  msvc_registry_t *reg;
};

struct msvc_registry_s {
  uv_loop_t *loop;
  msvc_registry_opts_t opts;
  msvc__reg_backend_t *backend;
  msvc__queue_t leases;
  msvc__queue_t watches;
  msvc__queue_t done_queries; /* resolved, waiting for the defer timer */
  uv_timer_t defer;
  size_t children; /* leases + watches + queries not yet released */
  int closing;     /* 0 open, 1 draining children, 2 backend, 3 handles */
  msvc_registry_close_cb close_cb;
  void *close_data;
  uint64_t errors[MSVC_REGISTRY_OP_COUNT];
  msvc_registry_event_fn hook;
  void *hook_data;
};

struct msvc_registry_lease_s {
  msvc_registry_t *reg;
  msvc__queue_t node;
  msvc_registry_instance_t inst; /* owned copy */
  uint32_t ttl_ms;
  uint64_t beat_wall_ms;
  uv_timer_t timer;
  msvc_registry_lease_cb cb;
  void *cb_data;
  msvc_registry_done_cb done_cb;
  void *done_data;
  int status;       /* last reported status */
  int done_status;
  unsigned attempt; /* consecutive failures, for backoff */
  bool announced;   /* first status reported */
  bool in_flight;   /* an async put is running */
  bool withdrawing;
  bool frozen;      /* tests: heartbeats stopped, as if the process hung */
  void *bdata;
};

struct msvc_registry_watch_s {
  msvc_registry_t *reg;
  msvc__queue_t node;
  char *service;
  msvc_registry_watch_cb cb;
  void *cb_data;
  uv_timer_t debounce;
  uv_timer_t refresh;
  msvc_registry_set_t *current; /* last delivered */
  msvc_registry_set_t *pending; /* waiting for the debounce */
  uint64_t pending_since;
  unsigned attempt;
  int open_handles;
  bool stopping;
  bool backend_stopped;
  void *bdata;
};

struct msvc__reg_query_s {
  msvc_registry_t *reg;
  msvc__queue_t node;
  char *service;
  msvc_registry_resolve_cb cb;
  void *cb_data;
  int status;
  msvc_registry_set_t *set;
  void *bdata;
};

/* ---- completions from backends (registry.c) ---------------------------- */
void msvc__reg_lease_put_done(msvc_registry_lease_t *lease, int status);
void msvc__reg_lease_del_done(msvc_registry_lease_t *lease, int status);
void msvc__reg_query_done(msvc__reg_query_t *q, int status,
                          msvc_registry_set_t *set);
/* status 0: set (ownership taken) is the service's full current set, and
 * recheck_ms (0 = none) asks for another refresh then (an instance expires).
 * status < 0: the backend could not be read; set must be NULL. */
void msvc__reg_watch_report(msvc_registry_watch_t *w, int status,
                            msvc_registry_set_t *set, uint64_t recheck_ms);
/* Something may have changed: refresh soon (coalesced). */
void msvc__reg_watch_poke(msvc_registry_watch_t *w);
/* Refresh after delay_ms unless a report reschedules it first: a backend
 * whose read may never come back uses it to look again. */
void msvc__reg_watch_recheck(msvc_registry_watch_t *w, uint64_t delay_ms);
void msvc__reg_watch_stopped(msvc_registry_watch_t *w);
void msvc__reg_backend_closed(msvc_registry_t *reg);
/* Moves a closing registry on once its last lease/watch/query is gone. */
void msvc__reg_maybe_finish(msvc_registry_t *reg);
/* Counts a failure and tells the event hook. */
void msvc__reg_count_error(msvc_registry_t *reg, msvc_registry_op_t op,
                           int err, const char *service);
/* Jittered exponential backoff: a delay in [d/2, d] where d doubles from
 * retry_min_ms per attempt up to retry_max_ms. */
uint64_t msvc__reg_backoff_ms(const msvc_registry_opts_t *o,
                              unsigned attempt);
/* Tests: stop a lease's heartbeats without removing it. */
void msvc__reg_lease_freeze(msvc_registry_lease_t *lease);

/* ---- instances and sets (set.c) ---------------------------------------- */
bool msvc__reg_name_valid(const char *s);
int msvc__reg_instance_validate(const msvc_registry_instance_t *inst);
/* Deep copy; dst's strings are owned (clear with _instance_clear). */
int msvc__reg_instance_copy(msvc_registry_instance_t *dst,
                            const msvc_registry_instance_t *src);
void msvc__reg_instance_clear(msvc_registry_instance_t *inst);
bool msvc__reg_instance_equal(const msvc_registry_instance_t *a,
                              const msvc_registry_instance_t *b);
/* 32 lower-case hex digits from the kernel's random source. */
void msvc__reg_new_id(char out[33]);

msvc_registry_set_t *msvc__reg_set_new(const char *service);
/* Takes ownership of inst's strings (inst is zeroed) on success. */
int msvc__reg_set_add(msvc_registry_set_t *set, msvc_registry_instance_t *inst);
/* Sorts by id and drops duplicate ids (the first stays). */
void msvc__reg_set_finish(msvc_registry_set_t *set);
bool msvc__reg_set_equal(const msvc_registry_set_t *a,
                         const msvc_registry_set_t *b);
msvc_registry_set_t *msvc__reg_set_copy(const msvc_registry_set_t *set,
                                        bool stale);

/* ---- JSON (instance_json.c) --------------------------------------------
 * The wire form; when ttl_ms is non-zero the local backend's liveness fields
 * "ttl_ms" and "heartbeat_ms" are added. */
int msvc__reg_instance_to_json(const msvc_registry_instance_t *inst,
                               uint32_t ttl_ms, uint64_t beat_wall_ms,
                               msvc__buf_t *out);
/* Parses and validates; inst's strings are owned on success. ttl_ms and
 * beat_wall_ms may be NULL; they receive 0 when the fields are absent.
 * Returns MSVC_EJSON for bad JSON, MSVC_EINVAL for a bad field,
 * MSVC_ETOOLARGE, MSVC_ENOMEM. */
int msvc__reg_instance_from_json(const char *json, size_t len,
                                 msvc_registry_instance_t *inst,
                                 uint32_t *ttl_ms, uint64_t *beat_wall_ms);

/* ---- URIs (uri.c) ------------------------------------------------------- */
typedef enum msvc__reg_kind_e {
  MSVC__REG_MEMORY,
  MSVC__REG_LOCAL,
  MSVC__REG_STATIC,
  MSVC__REG_ETCD,
  MSVC__REG_DNS
} msvc__reg_kind_t;

/* On success *arg (owned, may be NULL) is the local directory (already
 * defaulted) or the static table text. */
int msvc__reg_uri_parse(const char *uri, msvc__reg_kind_t *kind, char **arg,
                        char *err, size_t errlen);
int msvc__reg_default_dir(char **out);

/* ---- etcd v3 JSON gateway (etcd_json.c) ----------------------------------
 * Peer input: every parser accepts arbitrary bytes. */
void msvc__etcd_b64_encode(msvc__buf_t *b, const void *data, size_t len);
/* Standard base64 (padding optional) appended to out; MSVC_EJSON if bad. */
int msvc__etcd_b64_decode(const char *in, msvc__buf_t *out);
/* An int64 field sent as a JSON string (or number); absent or bad: 0. */
int64_t msvc__etcd_int(const void *cjson_obj, const char *key);
/* lease/grant and lease/keepalive answers; a missing TTL reads as 0. */
int msvc__etcd_parse_lease(const char *json, size_t len, int64_t *id,
                           int64_t *ttl);
/* A kv/range answer into a finished set of service's instances (foreign or
 * corrupt values skipped) and the store revision it was read at. */
int msvc__etcd_parse_range(const char *json, size_t len, const char *service,
                           msvc_registry_set_t **out, int64_t *revision);
/* Finds the first complete top-level JSON object in p[0..len): returns the
 * offset just past it (its start in *start), 0 when none is complete yet,
 * (size_t)-1 when the nesting is unreasonably deep. */
size_t msvc__etcd_next_object(const char *p, size_t len, size_t *start);
typedef struct msvc__etcd_watch_msg_s {
  int64_t revision;
  int64_t compact_revision;
  size_t events;
  bool created;
  bool canceled;
  bool error;
} msvc__etcd_watch_msg_t;
int msvc__etcd_parse_watch_msg(const char *json, size_t len,
                               msvc__etcd_watch_msg_t *m);

/* ---- DNS answers (dns_answer.c) ------------------------------------------
 * Peer input: every parser accepts arbitrary bytes. */
#define MSVC__DNS_MAX_RR 1024    /* records kept from one answer */
#define MSVC__DNS_DOMAIN_MAX 180 /* leaves room for _https._tcp.<service>. */
/* The lookups of one resolution, in order of preference. */
enum {
  MSVC__DNS_Q_SRV_HTTPS = 0,
  MSVC__DNS_Q_SRV_HTTP = 1,
  MSVC__DNS_Q_A = 2,
  MSVC__DNS_Q_AAAA = 3,
  MSVC__DNS_NQUERIES = 4
};

typedef struct msvc__dns_rr_s {
  uint16_t type; /* 1 A, 28 AAAA, 33 SRV */
  bool answer;   /* from the answer section (else authority/additional) */
  uint32_t ttl;  /* seconds */
  uint16_t priority, weight, port; /* SRV */
  char owner[256];  /* lower case, no trailing dot */
  char target[256]; /* SRV target name, or the address as text */
} msvc__dns_rr_t;

typedef struct msvc__dns_msg_s {
  int rcode;
  bool truncated;
  msvc__dns_rr_t *rr; /* A, AAAA and SRV records of class IN */
  size_t nrr;
  size_t cap;
} msvc__dns_msg_t;

/* A raw reply: err < 0 when no answer came (timeout, refused, ...). */
typedef struct msvc__dns_reply_s {
  int err;
  const uint8_t *buf;
  size_t len;
} msvc__dns_reply_t;

typedef struct msvc__dns_config_s {
  char domain[MSVC__DNS_DOMAIN_MAX + 1];
  char server[64]; /* "" = the system's resolver configuration */
  uint16_t port;   /* for A/AAAA answers */
  uint32_t min_ttl_ms, max_ttl_ms, timeout_ms, tries;
} msvc__dns_config_t;

/* MSVC_EPROTO for a malformed message, MSVC_ETOOLARGE past
 * MSVC__DNS_MAX_RR records, MSVC_ENOMEM. Free msg with _msg_free. */
int msvc__dns_parse(const uint8_t *m, size_t len, msvc__dns_msg_t *msg);
void msvc__dns_msg_free(msvc__dns_msg_t *msg);
/* The replies of the four lookups into a finished set (*ttl_s: the
 * smallest TTL of the records used, 0 if none). *negative: every name was
 * NXDOMAIN or empty. On failure why says which lookup and what. */
int msvc__dns_build_set(const char *service,
                        const msvc__dns_reply_t r[MSVC__DNS_NQUERIES],
                        uint16_t default_port, msvc_registry_set_t **out,
                        uint32_t *ttl_s, bool *negative, char *why,
                        size_t whylen);
/* rest: what follows "dns://"; MSVC_EURI with why on a bad parameter. */
int msvc__dns_config_parse(const char *rest, msvc__dns_config_t *cfg,
                           char *why, size_t whylen);

/* ---- backends ------------------------------------------------------------ */
int msvc__reg_memory_open(msvc_registry_t *reg, msvc__reg_backend_t **out);
int msvc__reg_local_open(msvc_registry_t *reg, const char *dir,
                         msvc__reg_backend_t **out);
/* Checks that dir may serve as a registry directory: a real directory (not
 * a symbolic link), owned by the effective user, writable by nobody else,
 * below no ancestor that others could replace it from. With create, missing
 * components are made (0700); without, a missing directory is fine (it
 * will be created private). MSVC_OK; MSVC_EACCES when unsafe; a system
 * error. why (may be NULL) receives one line naming the directory and the
 * reason. */
int msvc__reg_local_check(const char *dir, bool create, char *why,
                          size_t whylen);
struct stat;
/* Why a directory or file of the local registry is not the effective
 * user's alone (written into buf), or NULL when it is. */
const char *msvc__reg_not_private(const struct stat *st, char *buf,
                                  size_t len);
/* Tests: make the local backend's file operations fail with the stored
 * error (0: no fault). Process-wide. */
typedef struct msvc__reg_local_faults_s {
  atomic_int read;   /* reading an instance file */
  atomic_int write;  /* writing an instance file (register, heartbeat) */
  atomic_int unlink; /* removing a dead instance's file */
  atomic_bool full;  /* the directory's filesystem reports no free space */
} msvc__reg_local_faults_t;
extern msvc__reg_local_faults_t msvc__reg_local_faults;
/* Parses a static table into a backend (reg may be NULL to only check). */
int msvc__reg_static_open(msvc_registry_t *reg, const char *spec, char *err,
                          size_t errlen, msvc__reg_backend_t **out);
/* endpoints: "h:p[,h:p...]" as validated by the URI parser. */
int msvc__reg_etcd_open(msvc_registry_t *reg, const char *endpoints,
                        msvc__reg_backend_t **out);
#ifdef MSVC_HAVE_CARES
/* params: what follows "dns://", as validated by the URI parser. */
int msvc__reg_dns_open(msvc_registry_t *reg, const char *params,
                       msvc__reg_backend_t **out);
#endif

#endif /* MSVC_REGISTRY_INTERNAL_H */
