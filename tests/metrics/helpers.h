/* Helpers shared by the metrics tests: golden files and small builders. */
#ifndef MSVC_TEST_METRICS_HELPERS_H
#define MSVC_TEST_METRICS_HELPERS_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics-internal.h"

#define GOLDEN_DIR LIBMSVC_TEST_SOURCE_DIR "/tests/metrics/golden/"

static inline char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  char *data;
  long n;

  if (f == NULL)
    return NULL;
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  data = malloc((size_t)n + 1);
  if (data != NULL && fread(data, 1, (size_t)n, f) != (size_t)n) {
    free(data);
    data = NULL;
  }
  if (data != NULL)
    data[n] = '\0';
  fclose(f);
  return data;
}

/* Compares text with tests/metrics/golden/<name>. MSVC_UPDATE_GOLDEN=1
 * rewrites the file instead (review the diff before committing it). */
static inline void assert_golden(const char *text, const char *name) {
  char path[1024];
  char *want;
  const char *update = getenv("MSVC_UPDATE_GOLDEN");

  snprintf(path, sizeof(path), "%s%s", GOLDEN_DIR, name);
  if (update != NULL && strcmp(update, "1") == 0) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
    return;
  }
  want = read_file(path);
  cr_assert_not_null(want, "golden file %s missing", path);
  cr_assert_str_eq(text, want, "exposition differs from %s:\n--- got ---\n%s", name, text);
  free(want);
}

static inline msvc_metrics_family_t *family(msvc_metrics_registry_t *reg,
                                            msvc_metrics_type_t type, const char *name,
                                            const char *help,
                                            const char *const *labels, size_t nlabels) {
  msvc_metrics_family_opts_t o;
  msvc_metrics_family_t *fam = NULL;

  msvc_metrics_family_opts_init(&o);
  o.name = name;
  o.help = help;
  o.label_names = labels;
  o.label_count = nlabels;
  cr_assert_eq(msvc_metrics_family_new(reg, type, &o, &fam), MSVC_OK, "registering %s", name);
  return fam;
}

static inline char *expose(msvc_metrics_registry_t *reg, msvc_metrics_format_t fmt) {
  char *out = NULL;
  size_t len = 0;

  cr_assert_eq(msvc_metrics_expose(reg, fmt, &out, &len), MSVC_OK);
  cr_assert_not_null(out);
  cr_assert_eq(len, strlen(out));
  return out;
}

#endif
