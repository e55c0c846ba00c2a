/* URIs, JSON, sets, options, and the hygiene layer driven directly. */
#include "fixture.h"

Test(uri, accepted_forms) {
  char err[512];

  cr_assert_eq(msvc_registry_check_uri("memory://", err, sizeof(err)), 0);
  cr_assert_eq(msvc_registry_check_uri("local:///tmp/x", err, sizeof(err)), 0);
  cr_assert_eq(msvc_registry_check_uri("local://", err, sizeof(err)), 0);
  cr_assert_eq(msvc_registry_check_uri("LOCAL:///a/b/", NULL, 0), 0);
  cr_assert_eq(msvc_registry_check_uri(
                   "static://a=1.2.3.4:80,h:1;b=[::1]:65535;", err, sizeof(err)),
               0, "%s", err);
  cr_assert_str_eq(err, "");
}

Test(uri, bad_uris_name_the_accepted_forms) {
  static const char *const bad[] = {
      "",        "memory",          "memory://x",       "local://relative",
      "ftp://x", "static://",       "static://;;",      "static://a",       "static://a=",
      "static://a=h", "static://a=h:0", "static://a=h:70000", "static://a=h:1,",
      "static://.a=h:1", "static://a=h:1;a=h:2", "static://a=[::1:80",
      "static://a=h:8x", "etcd://", "etcd://h", "etcd://h:1,", "etcd://h:0",
      "etcd://:80"};
  char err[512];
  size_t i;

  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    cr_assert_eq(msvc_registry_check_uri(bad[i], err, sizeof(err)), MSVC_EURI,
                 "%s", bad[i]);
    cr_assert_not_null(strstr(err, "accepted forms: memory://"), "%s", err);
    cr_assert_not_null(strstr(err, "etcd://host:port"), "%s", err);
  }
  cr_assert_eq(msvc_registry_check_uri(NULL, err, sizeof(err)), MSVC_EURI);
}

static void count_closed_units(void *data) {
  (*(int *)data)++;
}

Test(uri, etcd_opens_without_contacting_etcd) {
  char err[512];
  uv_loop_t loop;
  msvc_registry_t *reg = (msvc_registry_t *)&loop;
  int closed = 0;

  cr_assert_eq(msvc_registry_check_uri("etcd://127.0.0.1:2379,[::1]:2379,h:1",
                                       err, sizeof(err)),
               MSVC_OK, "%s", err);
  cr_assert_eq(uv_loop_init(&loop), 0);
  msvc_log_set_level(MSVC_LOG_OFF);
  cr_assert_eq(msvc_registry_new(&loop, "etcd://127.0.0.1:2379,[::1]:2379",
                                 NULL, &reg),
               MSVC_OK);
  msvc_registry_close(reg, count_closed_units, &closed);
  cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(closed, 1);
  cr_assert_eq(msvc_registry_new(&loop, "bogus://", NULL, &reg), MSVC_EURI);
  cr_assert_eq(msvc_registry_new(NULL, "memory://", NULL, &reg), MSVC_EINVAL);
  msvc_log_reset();
  cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(uri, default_follows_xdg_runtime_dir) {
  char *uri = NULL;

  setenv("XDG_RUNTIME_DIR", "/run/user/1234/", 1);
  cr_assert_eq(msvc_registry_default_uri(&uri), 0);
  cr_assert_str_eq(uri, "local:///run/user/1234/msvc");
  msvc_free(uri);
  /* Without it: a directory of this user alone, named by uid, under
   * TMPDIR (absolute only) or /tmp. Never one fixed name for everybody. */
  char want[64];
  unsetenv("TMPDIR");
  snprintf(want, sizeof(want), "local:///tmp/msvc-%lu", (unsigned long)geteuid());
  setenv("XDG_RUNTIME_DIR", "relative", 1);
  cr_assert_eq(msvc_registry_default_uri(&uri), 0);
  cr_assert_str_eq(uri, want);
  msvc_free(uri);
  unsetenv("XDG_RUNTIME_DIR");
  cr_assert_eq(msvc_registry_default_uri(&uri), 0);
  cr_assert_str_eq(uri, want);
  msvc_free(uri);
  setenv("TMPDIR", "/var/tmp/", 1);
  snprintf(want, sizeof(want), "local:///var/tmp/msvc-%lu", (unsigned long)geteuid());
  cr_assert_eq(msvc_registry_default_uri(&uri), 0);
  cr_assert_str_eq(uri, want);
  msvc_free(uri);
  setenv("TMPDIR", "rel", 1);
  snprintf(want, sizeof(want), "local:///tmp/msvc-%lu", (unsigned long)geteuid());
  cr_assert_eq(msvc_registry_default_uri(&uri), 0);
  cr_assert_str_eq(uri, want);
  msvc_free(uri);
  unsetenv("TMPDIR");
  cr_assert_eq(msvc_registry_default_uri(NULL), MSVC_EINVAL);
}

Test(uri, null_uri_reads_the_environment) {
  uv_loop_t loop;
  msvc_registry_t *reg;

  cr_assert_eq(uv_loop_init(&loop), 0);
  setenv("MSVC_REGISTRY", "static://a=h:1", 1);
  cr_assert_eq(msvc_registry_new(&loop, NULL, NULL, &reg), 0);
  cr_assert_str_eq(msvc_registry_backend(reg), "static");
  msvc_registry_close(reg, NULL, NULL);
  unsetenv("MSVC_REGISTRY");
  cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(json, roundtrip_and_wire_form) {
  static const msvc_registry_meta_t meta[] = {{"k", "v\"1"}};
  msvc_registry_instance_t in, out;
  msvc__buf_t b;
  uint32_t ttl;
  uint64_t beat;

  msvc_registry_instance_init(&in);
  in.id = "i1";
  in.service = "svc";
  in.address = "h";
  in.port = 80;
  in.metadata = meta;
  in.nmetadata = 1;
  msvc__buf_init(&b, 0);
  cr_assert_eq(msvc__reg_instance_to_json(&in, 0, 0, &b), 0);
  cr_assert_str_eq(b.data, "{\"id\":\"i1\",\"service\":\"svc\",\"address\":"
                           "\"h\",\"port\":80,\"weight\":1,\"version\":\"\","
                           "\"metadata\":{\"k\":\"v\\\"1\"}}");
  cr_assert_eq(msvc__reg_instance_from_json(b.data, b.len, &out, &ttl, &beat),
               0);
  cr_assert(msvc__reg_instance_equal(&in, &out));
  cr_assert_eq(ttl, 0);
  msvc__reg_instance_clear(&out);
  b.len = 0;
  cr_assert_eq(msvc__reg_instance_to_json(&in, 300, 1234567890123ULL, &b), 0);
  cr_assert_eq(msvc__reg_instance_from_json(b.data, b.len, &out, &ttl, &beat),
               0);
  cr_assert_eq(ttl, 300);
  cr_assert_eq(beat, 1234567890123ULL);
  msvc__reg_instance_clear(&out);
  msvc__buf_free(&b);
}

Test(json, rejects_bad_instances) {
  static const char *const bad[] = {
      "", "{", "[]", "null", "{\"id\":\"a\"}",
      "{\"id\":\"a\",\"service\":\"s\",\"address\":\"h\"}",
      "{\"id\":\"a\",\"service\":\"s\",\"address\":\"h\",\"port\":0}",
      "{\"id\":\"a\",\"service\":\"s\",\"address\":\"h\",\"port\":65536}",
      "{\"id\":\"a\",\"service\":\"s\",\"address\":\"h\",\"port\":1.5}",
      "{\"id\":\"a\",\"service\":\"s\",\"address\":\"h\",\"port\":\"80\"}",
      "{\"id\":\"a/b\",\"service\":\"s\",\"address\":\"h\",\"port\":1}",
      "{\"id\":\".a\",\"service\":\"s\",\"address\":\"h\",\"port\":1}",
      "{\"id\":\"a\",\"service\":\"\",\"address\":\"h\",\"port\":1}",
      "{\"id\":\"a\",\"service\":\"s\",\"address\":\"\",\"port\":1}",
      "{\"id\":\"a\",\"service\":\"s\",\"address\":\"h\",\"port\":1,"
      "\"weight\":-1}",
      "{\"id\":\"a\",\"service\":\"s\",\"address\":\"h\",\"port\":1,"
      "\"metadata\":{\"k\":1}}",
      "{\"id\":\"a\",\"service\":\"s\",\"address\":\"h\",\"port\":1,"
      "\"metadata\":[]}",
      "{\"id\":\"a\",\"service\":\"s\",\"address\":\"h\",\"port\":1} x",
      "{\"id\":\"a\",\"service\":\"s\",\"address\":\"h\",\"port\":1,"
      "\"ttl_ms\":0}"};
  msvc_registry_instance_t out;
  size_t i;

  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int rc = msvc__reg_instance_from_json(bad[i], strlen(bad[i]), &out, NULL,
                                          NULL);
    cr_assert(rc == MSVC_EJSON || rc == MSVC_EINVAL, "%s -> %d", bad[i], rc);
    cr_assert_null(out.id);
  }
}

Test(set, sorted_deduplicated_and_compared) {
  msvc_registry_set_t *a = msvc__reg_set_new("s"), *b = msvc__reg_set_new("s");
  msvc_registry_instance_t in, copy;
  static const char *const ids[] = {"c", "a", "b", "a"};
  size_t i;

  msvc_registry_instance_init(&in);
  in.service = "s";
  in.address = "h";
  in.port = 1;
  for (i = 0; i < 4; i++) {
    in.id = ids[i];
    cr_assert_eq(msvc__reg_instance_copy(&copy, &in), 0);
    cr_assert_eq(msvc__reg_set_add(a, &copy), 0);
    in.id = ids[3 - i];
    cr_assert_eq(msvc__reg_instance_copy(&copy, &in), 0);
    cr_assert_eq(msvc__reg_set_add(b, &copy), 0);
  }
  msvc__reg_set_finish(a);
  msvc__reg_set_finish(b);
  cr_assert_eq(msvc_registry_set_count(a), 3);
  cr_assert_str_eq(msvc_registry_set_at(a, 0)->id, "a");
  cr_assert_str_eq(msvc_registry_set_at(a, 2)->id, "c");
  cr_assert(msvc__reg_set_equal(a, b));
  msvc_registry_set_t *s = msvc__reg_set_copy(a, true);
  cr_assert(msvc_registry_set_stale(s));
  cr_assert(msvc__reg_set_equal(a, s));
  msvc_registry_set_unref(s);
  msvc_registry_set_unref(b);
  msvc_registry_set_unref(msvc_registry_set_ref(a));
  msvc_registry_set_unref(a);
  msvc_registry_set_unref(NULL);
}

Test(instance, validation) {
  msvc_registry_instance_t in;
  msvc_registry_meta_t dup[] = {{"k", "1"}, {"k", "2"}};

  msvc_registry_instance_init(&in);
  cr_assert_eq(in.weight, 1);
  in.service = "s";
  in.address = "h";
  in.port = 1;
  cr_assert_eq(msvc__reg_instance_validate(&in), 0);
  in.metadata = dup;
  in.nmetadata = 2;
  cr_assert_eq(msvc__reg_instance_validate(&in), MSVC_EINVAL, "duplicate key");
  in.nmetadata = 0;
  in.address = "a\nb";
  cr_assert_eq(msvc__reg_instance_validate(&in), MSVC_EINVAL);
  in.address = "h";
  in.weight = MSVC_REGISTRY_WEIGHT_MAX + 1;
  cr_assert_eq(msvc__reg_instance_validate(&in), MSVC_EINVAL);
}

Test(misc, options_backoff_and_names) {
  msvc_registry_opts_t o;
  unsigned attempt;

  msvc_registry_opts_init(&o);
  cr_assert_eq(o.size, sizeof(o));
  cr_assert_eq(o.debounce_ms, 10);
  for (attempt = 1; attempt < 40; attempt++) {
    uint64_t d = msvc__reg_backoff_ms(&o, attempt);
    uint64_t step = (uint64_t)o.retry_min_ms << (attempt - 1 < 20 ? attempt - 1 : 20);
    if (step > o.retry_max_ms)
      step = o.retry_max_ms;
    cr_assert(d >= step / 2 && d <= step, "attempt %u: %llu", attempt,
              (unsigned long long)d);
  }
  cr_assert_str_eq(msvc_registry_op_name(MSVC_REGISTRY_OP_HEARTBEAT),
                   "heartbeat");
  cr_assert_str_eq(msvc_registry_op_name(MSVC_REGISTRY_OP_COUNT), "unknown");
  cr_assert_eq(msvc_registry_errors(NULL, MSVC_REGISTRY_OP_WATCH), 0);
}

static void never_resolved(int status, msvc_registry_set_t *set, void *data) {
  (void)status;
  (void)set;
  (void)data;
  cr_assert_fail("resolve callback after a refused call");
}

Test(misc, register_rejects_bad_arguments) {
  msvc_registry_instance_t in;
  msvc_registry_lease_t *lease = (msvc_registry_lease_t *)1;
  fx_t f;

  fx_open(&f, "memory://", NULL);
  msvc_registry_instance_init(&in);
  in.service = "s";
  in.address = "h";
  in.port = 1;
  cr_assert_eq(msvc_registry_register(f.reg, &in, 10, NULL, NULL, &lease),
               MSVC_EINVAL, "TTL too short");
  cr_assert_null(lease);
  in.port = 0;
  cr_assert_eq(msvc_registry_register(f.reg, &in, 1000, NULL, NULL, NULL),
               MSVC_EINVAL);
  in.port = 1;
  in.id = "bad id";
  cr_assert_eq(msvc_registry_register(f.reg, &in, 1000, NULL, NULL, NULL),
               MSVC_EINVAL);
  cr_assert_eq(msvc_registry_resolve(f.reg, "a/b", never_resolved, NULL),
               MSVC_EINVAL);
  cr_assert_eq(msvc_registry_resolve(f.reg, "ok", NULL, NULL), MSVC_EINVAL);
  cr_assert_eq(msvc_registry_watch(f.reg, "", seen_cb, NULL, NULL), MSVC_EINVAL);
  msvc_registry_deregister(NULL, NULL, NULL);
  msvc_registry_unwatch(NULL);
  msvc_registry_close(NULL, NULL, NULL);
  fx_close(&f);
}

/* ---- the hygiene layer, driven by hand through a memory registry ------- */

typedef struct hook_s {
  int errors;
  int instances;
  size_t last_count;
  bool last_stale;
} hook_t;

static void on_event(void *data, const msvc_registry_event_t *ev) {
  hook_t *h = data;

  if (ev->type == MSVC_REGISTRY_EVENT_ERROR) {
    h->errors++;
    cr_assert_str_eq(ev->backend, "memory");
    return;
  }
  h->instances++;
  h->last_count = ev->instances;
  h->last_stale = ev->stale;
}

static msvc_registry_set_t *make_set(const char *service, int n) {
  msvc_registry_set_t *set = msvc__reg_set_new(service);
  msvc_registry_instance_t in, copy;
  char id[16];
  int i;

  msvc_registry_instance_init(&in);
  in.service = service;
  in.address = "h";
  in.port = 1;
  for (i = 0; i < n; i++) {
    snprintf(id, sizeof(id), "i%03d", i);
    in.id = id;
    cr_assert_eq(msvc__reg_instance_copy(&copy, &in), 0);
    cr_assert_eq(msvc__reg_set_add(set, &copy), 0);
  }
  msvc__reg_set_finish(set);
  return set;
}

static bool calls_at_least(void *arg) {
  seen_t *s = arg;
  return s->calls >= 2;
}

Test(hygiene, unreachable_keeps_last_set_as_stale_and_empty_is_empty,
     .timeout = 30) {
  msvc_registry_opts_t o;
  seen_t seen = {0, NULL};
  want_t want = {&seen, 0};
  msvc_registry_watch_t *w;
  hook_t hook = {0, 0, 0, false};
  fx_t f;

  msvc_registry_opts_init(&o);
  o.retry_min_ms = 10000; /* keep the core's retries out of the way */
  o.retry_max_ms = 10000;
  fx_open(&f, "memory://", &o);
  msvc_log_set_level(MSVC_LOG_OFF);
  msvc_registry_set_event_hook(f.reg, on_event, &hook);
  cr_assert_eq(msvc_registry_watch(f.reg, "h", seen_cb, &seen, &w), 0);
  cr_assert(fx_run_until(&f, want_count, &want, 5000));

  msvc__reg_watch_report(w, MSVC_OK, make_set("h", 3), 0);
  want.count = 3;
  cr_assert(fx_run_until(&f, want_count, &want, 5000));

  /* Unreachable: the three stay, flagged stale. */
  msvc__reg_watch_report(w, MSVC_ECONNREFUSED, NULL, 0);
  seen.calls = 0;
  cr_assert(fx_run_until(&f, int_positive, &seen.calls, 5000));
  cr_assert(msvc_registry_set_stale(seen.last));
  cr_assert_eq(msvc_registry_set_count(seen.last), 3);
  cr_assert(hook.last_stale);
  cr_assert_eq(msvc_registry_errors(f.reg, MSVC_REGISTRY_OP_WATCH), 1);
  cr_assert_eq(hook.errors, 1);

  /* Still unreachable: nothing new to say. */
  msvc__reg_watch_report(w, MSVC_ETIMEDOUT, NULL, 0);
  fx_run_until(&f, calls_at_least, &seen, 100);
  cr_assert_eq(seen.calls, 1);
  cr_assert_eq(msvc_registry_errors(f.reg, MSVC_REGISTRY_OP_WATCH), 2);

  /* Reachable again and really empty: reported as empty, fresh. */
  msvc__reg_watch_report(w, MSVC_OK, make_set("h", 0), 0);
  want.count = 0;
  cr_assert(fx_run_until(&f, want_count, &want, 5000));
  cr_assert_eq(hook.last_count, 0);
  cr_assert_not(hook.last_stale);
  msvc_log_reset();
  seen_clear(&seen);
  fx_close(&f);
}

Test(hygiene, bursts_are_debounced_and_identical_sets_dropped, .timeout = 30) {
  msvc_registry_opts_t o;
  seen_t seen = {0, NULL};
  want_t want = {&seen, 0};
  msvc_registry_watch_t *w;
  int i;
  fx_t f;

  msvc_registry_opts_init(&o);
  o.debounce_ms = 50;
  o.debounce_max_ms = 1000;
  fx_open(&f, "memory://", &o);
  cr_assert_eq(msvc_registry_watch(f.reg, "b", seen_cb, &seen, &w), 0);
  cr_assert(fx_run_until(&f, want_count, &want, 5000));
  cr_assert_eq(seen.calls, 1, "the first set is delivered at once");
  for (i = 1; i <= 20; i++)
    msvc__reg_watch_report(w, MSVC_OK, make_set("b", i), 0);
  want.count = 20;
  cr_assert(fx_run_until(&f, want_count, &want, 5000));
  cr_assert_eq(seen.calls, 2, "one callback for the burst");
  msvc__reg_watch_report(w, MSVC_OK, make_set("b", 20), 0);
  fx_run_until(&f, want_count, &(want_t){&seen, 99}, 150);
  cr_assert_eq(seen.calls, 2, "an identical set is not delivered");
  /* A change and its undoing inside one debounce window: nothing. */
  msvc__reg_watch_report(w, MSVC_OK, make_set("b", 5), 0);
  msvc__reg_watch_report(w, MSVC_OK, make_set("b", 20), 0);
  fx_run_until(&f, want_count, &(want_t){&seen, 99}, 150);
  cr_assert_eq(seen.calls, 2);
  seen_clear(&seen);
  fx_close(&f);
}
