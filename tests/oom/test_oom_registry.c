/* Out-of-memory sweeps over the registry: register, watch until the
 * instance shows, deregister, watch until it is gone, on the local
 * directory backend and on a real one-member etcd. A third sweep feeds the
 * etcd backend's parsers an update (a watch stream with a created and an
 * event message, then the kv/range answer the backend re-reads the service
 * with) directly: the same allocations at every run, where the live sweep's
 * depend on timing. */
#include <msvc/registry.h>

#include "oom/oom.h"
#include "registry/etcd_fixture.h"
#include "registry/registry-internal.h"

/* ---- local backend ------------------------------------------------------- */

typedef struct watch_seen_s {
  int calls;
  long count; /* -1 until a fresh set arrived */
  int deregistered;
  int closed;
} watch_seen_t;

static void on_set(msvc_registry_watch_t *w, msvc_registry_set_t *set,
                   void *data) {
  watch_seen_t *s = data;

  (void)w;
  s->calls++;
  s->count = msvc_registry_set_stale(set) ? -1 : (long)msvc_registry_set_count(set);
  if (s->count == 1)
    cr_assert_eq(msvc_registry_set_at(set, 0)->port, 8080);
}

static bool sees_one(void *arg) {
  return ((watch_seen_t *)arg)->count == 1;
}

static bool sees_none(void *arg) {
  watch_seen_t *s = arg;
  return s->deregistered && s->count == 0;
}

static void on_deregistered(int status, void *data) {
  (void)status;
  ((watch_seen_t *)data)->deregistered = 1;
}

static void on_reg_closed(void *data) {
  ((watch_seen_t *)data)->closed++;
}

/* arg: an etcd:// URI, or NULL for a fresh local directory. */
static int registry_scenario(void *arg) {
  static const msvc_registry_meta_t meta[] = {{"zone", "a"}, {"tls", "no"}};
  msvc_registry_instance_t inst;
  msvc_registry_opts_t o;
  msvc_registry_t *reg = NULL;
  msvc_registry_lease_t *lease = NULL;
  msvc_registry_watch_t *watch = NULL;
  watch_seen_t seen = {0, -1, 0, 0};
  static unsigned runs;
  char dir[256] = "", uri[600], service[32];
  oom_loop_t l;
  int rc;

  if (arg == NULL) {
    snprintf(dir, sizeof(dir), "/tmp/msvc-oom-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(uri, sizeof(uri), "local://%s", dir);
  } else {
    snprintf(uri, sizeof(uri), "%s", (const char *)arg);
  }
  /* A service of its own per run: nothing a failed run left in a shared
   * store can show up in the next one. */
  snprintf(service, sizeof(service), "svc-%u", runs++);
  if (arg == NULL) {
    /* Corrupt instance files beside the real one: the backend skips them
     * and remembers which ones it complained about. */
    char path[600];
    FILE *f;
    int i;

    snprintf(path, sizeof(path), "%s/%s", dir, service);
    cr_assert_eq(mkdir(path, 0700), 0);
    for (i = 0; i < 2; i++) {
      snprintf(path, sizeof(path), "%s/%s/junk%d.json", dir, service, i);
      cr_assert_not_null(f = fopen(path, "w"));
      fputs("{not json", f);
      fclose(f);
    }
  }
  cr_assert_eq(oom_loop_init(&l), 0);
  msvc_registry_opts_init(&o);
  o.debounce_ms = 1;
  o.debounce_max_ms = 5;
  o.rescan_ms = 20;
  o.retry_min_ms = 5;
  o.retry_max_ms = 20;
  OOM_CALL(rc, msvc_registry_new(&l.loop, uri, &o, &reg), out);
  msvc_registry_instance_init(&inst);
  inst.id = "oom-1";
  inst.service = service;
  inst.address = "127.0.0.1";
  inst.port = 8080;
  inst.weight = 2;
  inst.version = "1.0";
  inst.metadata = meta;
  inst.nmetadata = 2;
  OOM_CALL(rc, msvc_registry_register(reg, &inst, 30000, NULL, NULL, &lease),
           out);
  OOM_CALL(rc, msvc_registry_watch(reg, service, on_set, &seen, &watch), out);
  cr_assert(oom_run_until(&l, sees_one, &seen, 3000),
            "N=%lu: the watch never saw the instance (last %ld)", oom_n,
            seen.count);
  msvc_registry_deregister(lease, on_deregistered, &seen);
  lease = NULL;
  cr_assert(oom_run_until(&l, sees_none, &seen, 3000),
            "N=%lu: the watch never saw the instance go (last %ld)", oom_n,
            seen.count);
out:
  msvc_registry_unwatch(watch);
  msvc_registry_deregister(lease, NULL, NULL);
  if (reg != NULL)
    msvc_registry_close(reg, on_reg_closed, &seen);
  oom_loop_finish(&l);
  cr_assert_eq(seen.closed, reg != NULL ? 1 : 0);
  if (dir[0] != '\0')
    fx_rmtree(dir);
  return rc;
}

Test(oom, registry_local, .init = oom_init, .timeout = 240) {
  oom_stats_t st;

  oom_sweep("registry local", registry_scenario, NULL, 100000, 1, &st);
}

/* The same against a real etcd: its HTTP exchanges (lease grant, put,
 * range, watch stream, delete, revoke) and their parsing. */
Test(oom, registry_etcd, .init = oom_init, .timeout = 280) {
  static etcd_cluster_t c; /* static: the fixture stops it at exit */
  oom_stats_t st;

  etcd_start(&c, 1);
  oom_sweep("registry etcd", registry_scenario, c.uri, 100000, 1, &st);
  etcd_finish(&c);
}

/* ---- etcd watch update ---------------------------------------------------- */

typedef struct etcd_fx_s {
  char stream[1024];
  char range[4096];
} etcd_fx_t;

static void b64(const char *s, char *out, size_t cap) {
  msvc__buf_t b;

  msvc__buf_init(&b, 0);
  msvc__etcd_b64_encode(&b, s, strlen(s));
  cr_assert(b.len < cap);
  memcpy(out, b.data, b.len);
  out[b.len] = '\0';
  msvc__buf_free(&b);
}

static void etcd_fx_init(etcd_fx_t *fx) {
  static const char *const ids[] = {"a1", "a2"};
  msvc_registry_instance_t inst;
  msvc_registry_meta_t meta = {"zone", "b"};
  char k[128], v[1024];
  size_t off;
  int i;

  snprintf(fx->stream, sizeof(fx->stream),
           "{\"result\":{\"header\":{\"revision\":\"7\"},\"created\":true}}\n"
           "{\"result\":{\"header\":{\"revision\":\"8\"},\"events\":[{\"kv\":"
           "{\"key\":\"eA==\",\"mod_revision\":\"8\"}}]}}\n");
  off = (size_t)snprintf(fx->range, sizeof(fx->range),
                         "{\"header\":{\"revision\":\"8\"},\"kvs\":[");
  for (i = 0; i < 2; i++) {
    msvc__buf_t json;

    msvc_registry_instance_init(&inst);
    inst.id = ids[i];
    inst.service = "svc";
    inst.address = "10.0.0.1";
    inst.port = (uint16_t)(9000 + i);
    inst.weight = 1;
    inst.metadata = &meta;
    inst.nmetadata = 1;
    msvc__buf_init(&json, 0);
    cr_assert_eq(msvc__reg_instance_to_json(&inst, 0, 0, &json), 0);
    msvc__buf_append(&json, "", 1);
    b64(json.data, v, sizeof(v));
    msvc__buf_free(&json);
    snprintf(k, sizeof(k), "/msvc/svc/%s", ids[i]);
    b64(k, k, sizeof(k));
    off += (size_t)snprintf(fx->range + off, sizeof(fx->range) - off,
                            "%s{\"key\":\"%s\",\"value\":\"%s\"}",
                            i > 0 ? "," : "", k, v);
  }
  snprintf(fx->range + off, sizeof(fx->range) - off, "],\"count\":\"2\"}");
}

static int etcd_scenario(void *arg) {
  etcd_fx_t *fx = arg;
  msvc__etcd_watch_msg_t m;
  msvc_registry_set_t *set = NULL;
  size_t pos = 0, start, end, len = strlen(fx->stream);
  int64_t rev;
  int rc = 0, msgs = 0;

  while ((end = msvc__etcd_next_object(fx->stream + pos, len - pos, &start)) >
             0 &&
         end != (size_t)-1) {
    memset(&m, 0, sizeof(m));
    OOM_CALL(rc, msvc__etcd_parse_watch_msg(fx->stream + pos + start,
                                            end - start, &m),
             out);
    cr_assert_eq(m.revision, msgs == 0 ? 7 : 8);
    cr_assert_eq(m.events, msgs == 0 ? 0u : 1u);
    msgs++;
    pos += end;
  }
  cr_assert_eq(msgs, 2);
  OOM_CALL(rc, msvc__etcd_parse_range(fx->range, strlen(fx->range), "svc",
                                      &set, &rev),
           out);
  cr_assert_eq(rev, 8);
  cr_assert_eq(msvc_registry_set_count(set), 2);
  cr_assert_str_eq(msvc_registry_set_at(set, 1)->id, "a2");
out:
  msvc_registry_set_unref(set);
  return rc;
}

Test(oom, etcd_watch_update, .init = oom_init, .timeout = 240) {
  etcd_fx_t fx;
  oom_stats_t st;

  etcd_fx_init(&fx);
  oom_sweep("etcd watch update", etcd_scenario, &fx, 100000, 1, &st);
  oom_sweep_mode("etcd watch update", etcd_scenario, &fx, 100000, 1, true,
                 &st);
}
