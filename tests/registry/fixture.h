/* Shared helpers of the registry tests: a private loop, a temporary
 * directory, and "run the loop until this is true or time is up". */
#ifndef MSVC_TEST_REGISTRY_FIXTURE_H
#define MSVC_TEST_REGISTRY_FIXTURE_H

#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <msvc/log.h>
#include <msvc/registry.h>

#include "registry/registry-internal.h"

typedef struct fx_s {
  uv_loop_t loop;
  uv_timer_t tick;
  msvc_registry_t *reg;
  char dir[256];
  char uri[512];
  int closed;
} fx_t;

/* What a watch has seen. */
typedef struct seen_s {
  int calls;
  msvc_registry_set_t *last; /* referenced */
} seen_t;

static inline void on_tick(uv_timer_t *t) {
  (void)t;
}

static inline int rm_entry(const char *path, const struct stat *st, int flag,
                           struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static inline void fx_rmtree(const char *dir) {
  nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void fx_mkdtemp(fx_t *f) {
  const char *base = getenv("TMPDIR");

  snprintf(f->dir, sizeof(f->dir), "%s/msvc-reg-test-XXXXXX",
           base != NULL && base[0] == '/' ? base : "/tmp");
  cr_assert_not_null(mkdtemp(f->dir));
}

/* uri NULL: a fresh local directory. */
static inline void fx_open(fx_t *f, const char *uri,
                           const msvc_registry_opts_t *opts) {
  memset(f, 0, sizeof(*f));
  cr_assert_eq(uv_loop_init(&f->loop), 0);
  cr_assert_eq(uv_timer_init(&f->loop, &f->tick), 0);
  if (uri == NULL) {
    fx_mkdtemp(f);
    snprintf(f->uri, sizeof(f->uri), "local://%s", f->dir);
  } else {
    snprintf(f->uri, sizeof(f->uri), "%s", uri);
  }
  cr_assert_eq(msvc_registry_new(&f->loop, f->uri, opts, &f->reg), MSVC_OK,
               "opening %s", f->uri);
}

static inline void fx_on_closed(void *data) {
  ((fx_t *)data)->closed++;
}

static inline void fx_close(fx_t *f) {
  msvc_registry_close(f->reg, fx_on_closed, f);
  uv_close((uv_handle_t *)&f->tick, NULL);
  cr_assert_eq(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(f->closed, 1, "close callback ran once");
  cr_assert_eq(uv_loop_close(&f->loop), 0, "a handle leaked");
  if (f->dir[0] != '\0')
    fx_rmtree(f->dir);
}

/* Runs the loop until pred(arg) holds; false after timeout_ms. The tick
 * timer keeps UV_RUN_ONCE from blocking when nothing else is pending. */
static inline bool fx_run_until(fx_t *f, bool (*pred)(void *), void *arg,
                                uint64_t timeout_ms) {
  uint64_t end = msvc_now_ms() + timeout_ms;
  bool ok;

  uv_timer_start(&f->tick, on_tick, 5, 5);
  while (!(ok = pred(arg)) && msvc_now_ms() < end)
    uv_run(&f->loop, UV_RUN_ONCE);
  uv_timer_stop(&f->tick);
  return ok;
}

static inline void seen_cb(msvc_registry_watch_t *w, msvc_registry_set_t *set,
                           void *data) {
  seen_t *s = data;

  (void)w;
  s->calls++;
  msvc_registry_set_unref(s->last);
  s->last = msvc_registry_set_ref(set);
}

static inline void seen_clear(seen_t *s) {
  msvc_registry_set_unref(s->last);
  s->last = NULL;
}

/* Predicates over a seen_t. */
typedef struct want_s {
  seen_t *seen;
  size_t count;
} want_t;

static inline bool want_count(void *arg) {
  want_t *w = arg;
  return w->seen->last != NULL && !msvc_registry_set_stale(w->seen->last) &&
         msvc_registry_set_count(w->seen->last) == w->count;
}

static inline bool int_positive(void *arg) {
  return *(int *)arg > 0;
}

#endif
