/* Options structs carry their size: a struct never filled in is refused, and
 * one from an older, smaller header keeps the defaults of the fields it lacks. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include <msvc/msvc.h>

#include "msvc-internal.h"

typedef struct {
  size_t size;
  int64_t a;
} old_opts_t;

typedef struct {
  size_t size;
  int64_t a;
  int64_t b; /* added later */
} new_opts_t;

Test(opts, copy_keeps_defaults_of_fields_an_old_caller_lacks) {
  old_opts_t old = {sizeof(old), 7};
  new_opts_t dst = {sizeof(dst), 1, 42};

  cr_assert(msvc__opts_copy(&dst, sizeof(dst), &old));
  cr_assert_eq(dst.size, sizeof(dst));
  cr_assert_eq(dst.a, 7);
  cr_assert_eq(dst.b, 42, "a field the caller never knew keeps its default");
}

Test(opts, copy_refuses_a_size_never_filled_in) {
  new_opts_t zero;
  new_opts_t dst = {sizeof(dst), 1, 42};

  memset(&zero, 0, sizeof(zero));
  zero.a = 9;
  cr_assert_not(msvc__opts_copy(&dst, sizeof(dst), &zero));
  cr_assert_eq(dst.a, 1, "nothing copied");
}

Test(opts, every_public_init_fills_the_size) {
  msvc_retry_opts_t r;
  msvc_http_client_opts_t c;
  msvc_metrics_registry_opts_t mr;
  msvc_metrics_family_opts_t mf;
  msvc_http_route_opts_t ro;
  msvc_breaker_opts_t b;
  msvc_lb_opts_t l;
  msvc_registry_opts_t g;

  msvc_retry_opts_init(&r);
  msvc_http_client_opts_init(&c);
  msvc_metrics_registry_opts_init(&mr);
  msvc_metrics_family_opts_init(&mf);
  msvc_http_route_opts_init(&ro);
  msvc_breaker_opts_init(&b);
  msvc_lb_opts_init(&l);
  msvc_registry_opts_init(&g);
  cr_assert_eq(r.size, sizeof(r));
  cr_assert_eq(c.size, sizeof(c));
  cr_assert_eq(mr.size, sizeof(mr));
  cr_assert_eq(mf.size, sizeof(mf));
  cr_assert_eq(ro.size, sizeof(ro));
  cr_assert_eq(b.size, sizeof(b));
  cr_assert_eq(l.size, sizeof(l));
  cr_assert_eq(g.size, sizeof(g));
}

Test(opts, unfilled_structs_are_refused_by_their_constructors) {
  msvc_retry_opts_t r;
  msvc_retry_t *retry = NULL;
  msvc_metrics_registry_opts_t mr;
  msvc_metrics_registry_t *reg = NULL;
  msvc_metrics_family_opts_t mf;
  msvc_metrics_family_t *fam = NULL;
  msvc_http_client_opts_t c;
  msvc_http_client_t *client = NULL;
  uv_loop_t loop;

  msvc_retry_opts_init(&r);
  r.size = 0;
  cr_assert_eq(msvc_retry_new(&r, &retry), MSVC_EINVAL);
  msvc_retry_opts_init(&r);
  cr_assert_eq(msvc_retry_new(&r, &retry), MSVC_OK);
  msvc_retry_free(retry);

  msvc_metrics_registry_opts_init(&mr);
  mr.size = 0;
  cr_assert_eq(msvc_metrics_registry_new(&mr, &reg), MSVC_EINVAL);
  msvc_metrics_registry_opts_init(&mr);
  cr_assert_eq(msvc_metrics_registry_new(&mr, &reg), MSVC_OK);

  msvc_metrics_family_opts_init(&mf);
  mf.name = "opts_test_total";
  mf.size = 0;
  cr_assert_eq(msvc_metrics_family_new(reg, MSVC_METRICS_COUNTER, &mf, &fam), MSVC_EINVAL);
  mf.size = sizeof(mf);
  cr_assert_eq(msvc_metrics_family_new(reg, MSVC_METRICS_COUNTER, &mf, &fam), MSVC_OK);
  msvc_metrics_registry_free(reg);

  cr_assert_eq(uv_loop_init(&loop), 0);
  msvc_http_client_opts_init(&c);
  c.size = 0;
  cr_assert_eq(msvc_http_client_new(&loop, &c, &client), MSVC_EINVAL);
  cr_assert_null(client);
  cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(uv_loop_close(&loop), 0);
}
