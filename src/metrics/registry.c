/*
 * Registries and families: registration, validation and the name clash
 * rules. Children live in children.c.
 */
#include <math.h>
#include <stdlib.h>

#include "metrics/metrics-internal.h"

#define DEFAULT_MAX_SERIES 10000
#define DROPPED_NAME "msvc_metrics_dropped_series_total"

void msvc_metrics_registry_opts_init(msvc_metrics_registry_opts_t *opts) {
  memset(opts, 0, sizeof(*opts));
  opts->size = sizeof(*opts);
  opts->max_series_per_family = DEFAULT_MAX_SERIES;
}

void msvc_metrics_family_opts_init(msvc_metrics_family_opts_t *opts) {
  memset(opts, 0, sizeof(*opts));
  opts->size = sizeof(*opts);
}

msvc_metrics_type_t msvc_metrics_family_type(const msvc_metrics_family_t *fam) {
  return fam->f.type;
}

static void family_free(msvc_metrics_family_t *fam) {
  msvc__family_t *f;
  size_t i;

  if (fam == NULL)
    return;
  f = &fam->f;
  msvc__family_free_children(f);
  msvc__free(f->table);
  for (i = 0; i < f->label_count; i++)
    msvc__free(f->label_names[i]);
  msvc__free(f->label_names);
  if (f->bound_text != NULL)
    for (i = 0; i <= f->bound_count; i++)
      msvc__free(f->bound_text[i]);
  msvc__free(f->bound_text);
  msvc__free(f->bounds);
  msvc__free(f->name);
  msvc__free(f->help);
  msvc__free(f->om_name);
  pthread_mutex_destroy(&f->lock);
  msvc__free(fam);
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);

  return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* ---- name clashes ---------------------------------------------------------
 * A family owns every sample name it can print in either format: a counter
 * b or b_total owns {b, b_total} (OpenMetrics names the family b and its
 * sample b_total), a histogram h owns {h, h_bucket, h_sum, h_count}, a gauge
 * only its name. Two families may not share one. */
static const char *const counter_sfx[] = {"", "_total", NULL};
static const char *const hist_sfx[] = {"", "_bucket", "_sum", "_count", NULL};
static const char *const gauge_sfx[] = {"", NULL};

static const char *const *owned_suffixes(msvc_metrics_type_t type) {
  if (type == MSVC_METRICS_COUNTER)
    return counter_sfx;
  return type == MSVC_METRICS_HISTOGRAM ? hist_sfx : gauge_sfx;
}

static size_t owned_base_len(msvc_metrics_type_t type, const char *name) {
  size_t n = strlen(name);

  if (type == MSVC_METRICS_COUNTER && ends_with(name, "_total") && n > 6)
    return n - 6;
  return n;
}

static bool owns(const msvc__family_t *f, const char *s, size_t slen) {
  const char *const *sfx = owned_suffixes(f->type);
  size_t blen = owned_base_len(f->type, f->name);

  if (slen < blen || memcmp(s, f->name, blen) != 0)
    return false;
  for (; *sfx != NULL; sfx++)
    if (strlen(*sfx) == slen - blen && memcmp(s + blen, *sfx, slen - blen) == 0)
      return true;
  return false;
}

static bool clashes(const msvc_metrics_registry_t *reg, msvc_metrics_type_t type,
                    const char *name) {
  const char *const *sfx;
  size_t blen = owned_base_len(type, name), i;
  char buf[256];
  bool found = false;

  for (sfx = owned_suffixes(type); *sfx != NULL && !found; sfx++) {
    size_t slen = strlen(*sfx);
    char *s = blen + slen < sizeof(buf) ? buf : msvc__malloc(blen + slen + 1);

    if (s == NULL)
      return true;
    memcpy(s, name, blen);
    memcpy(s + blen, *sfx, slen);
    for (i = 0; i < reg->nfamilies && !found; i++)
      found = owns(&reg->families[i]->f, s, blen + slen);
    if (s != buf)
      msvc__free(s);
  }
  return found;
}

/* ---- validation ---------------------------------------------------------- */
static int check_labels(msvc_metrics_type_t type, const msvc_metrics_family_opts_t *o) {
  size_t i, j;

  if (o->label_count > MSVC_METRICS_MAX_LABELS || (o->label_count > 0 && o->label_names == NULL))
    return MSVC_EINVAL;
  for (i = 0; i < o->label_count; i++) {
    if (!msvc_metrics_label_name_valid(o->label_names[i]))
      return MSVC_EMETRIC_NAME;
    if (type == MSVC_METRICS_HISTOGRAM && strcmp(o->label_names[i], "le") == 0)
      return MSVC_EMETRIC_NAME;
    for (j = 0; j < i; j++)
      if (strcmp(o->label_names[i], o->label_names[j]) == 0)
        return MSVC_EMETRIC_NAME;
  }
  return MSVC_OK;
}

/* Resolves the bounds to use (defaults when none given, a last +Inf
 * dropped) and checks them. */
static int check_buckets(const msvc_metrics_family_opts_t *o, const double **bounds,
                         size_t *count) {
  static const double defaults[] = MSVC_METRICS_DEFAULT_BUCKETS_INIT;
  const double *b = o->buckets;
  size_t n = o->bucket_count, i;

  if (b == NULL) {
    if (n != 0)
      return MSVC_EINVAL;
    b = defaults;
    n = MSVC__ARRAY_SIZE(defaults);
  }
  if (n > 0 && isinf(b[n - 1]) && b[n - 1] > 0)
    n--;
  if (n == 0 || n > MSVC_METRICS_MAX_BUCKETS)
    return MSVC_EINVAL;
  for (i = 0; i < n; i++) {
    if (isnan(b[i]) || isinf(b[i]) || (i > 0 && !(b[i] > b[i - 1])))
      return MSVC_EINVAL;
  }
  *bounds = b;
  *count = n;
  return MSVC_OK;
}

static int check_opts(msvc_metrics_type_t type, const msvc_metrics_family_opts_t *o) {
  if (type != MSVC_METRICS_COUNTER && type != MSVC_METRICS_GAUGE &&
      type != MSVC_METRICS_HISTOGRAM)
    return MSVC_EINVAL;
  if (!msvc_metrics_name_valid(o->name))
    return MSVC_EMETRIC_NAME;
  if (o->help != NULL && !msvc__utf8_valid(o->help, strlen(o->help)))
    return MSVC_EINVAL;
  return check_labels(type, o);
}

/* ---- construction -------------------------------------------------------- */
static int set_bounds(msvc__family_t *f, const double *b, size_t n) {
  char num[32];
  size_t i;

  f->bounds = msvc__malloc(n * sizeof(double));
  f->bound_text = msvc__calloc(n + 1, sizeof(char *));
  if (f->bounds == NULL || f->bound_text == NULL)
    return MSVC_ENOMEM;
  f->bound_count = n;
  memcpy(f->bounds, b, n * sizeof(double));
  for (i = 0; i < n; i++) {
    msvc__metrics_format_double(b[i], num);
    if ((f->bound_text[i] = msvc__strdup(num)) == NULL)
      return MSVC_ENOMEM;
  }
  f->bound_text[n] = msvc__strdup("+Inf");
  return f->bound_text[n] == NULL ? MSVC_ENOMEM : MSVC_OK;
}

static void set_cells(msvc__family_t *f, unsigned flags) {
  size_t size;

  if (f->type == MSVC_METRICS_GAUGE) {
    f->ncells = 0;
    f->cell_size = 0;
    return;
  }
  if (f->type == MSVC_METRICS_COUNTER)
    size = sizeof(msvc__counter_cell_t);
  else
    size = sizeof(msvc__hist_cell_t) + (f->bound_count + 1) * sizeof(_Atomic uint64_t);
  f->cell_size = (size + MSVC__CACHE_LINE - 1) / MSVC__CACHE_LINE * MSVC__CACHE_LINE;
  f->ncells = (flags & MSVC_METRICS_UNSHARDED) ? 1 : msvc__metrics_slots() + 1;
}

static int family_fill(msvc__family_t *f, const msvc_metrics_family_opts_t *o,
                       const double *bounds, size_t nbounds) {
  size_t i;

  f->name = msvc__strdup(o->name);
  f->help = msvc__strdup(o->help != NULL ? o->help : "");
  f->om_name = msvc__strndup(o->name, owned_base_len(f->type, o->name));
  f->label_names = msvc__calloc(o->label_count, sizeof(char *));
  if (f->name == NULL || f->help == NULL || f->om_name == NULL || f->label_names == NULL)
    return MSVC_ENOMEM;
  for (i = 0; i < o->label_count; i++) {
    if ((f->label_names[i] = msvc__strdup(o->label_names[i])) == NULL)
      return MSVC_ENOMEM;
    f->label_count = i + 1;
  }
  if (f->type == MSVC_METRICS_HISTOGRAM && set_bounds(f, bounds, nbounds) != MSVC_OK)
    return MSVC_ENOMEM;
  f->hash_seed = msvc__rand64();
  f->table_size = 16;
  f->table = msvc__calloc(f->table_size, sizeof(msvc__child_t *));
  return f->table == NULL ? MSVC_ENOMEM : MSVC_OK;
}

static int family_create(msvc_metrics_registry_t *reg, msvc_metrics_type_t type,
                         const msvc_metrics_family_opts_t *o, const double *bounds,
                         size_t nbounds, msvc_metrics_family_t **out) {
  msvc_metrics_family_t *fam = msvc__calloc(1, sizeof(*fam));
  msvc__family_t *f;
  int rc;

  if (fam == NULL)
    return MSVC_ENOMEM;
  f = &fam->f;
  f->reg = reg;
  f->type = type;
  f->max_series = o->max_series != 0 ? o->max_series : reg->max_series;
  msvc__queue_init(&f->children);
  if (pthread_mutex_init(&f->lock, NULL) != 0) {
    msvc__free(fam);
    return MSVC_ENOMEM;
  }
  rc = family_fill(f, o, bounds, nbounds);
  if (rc == MSVC_OK) {
    set_cells(f, o->flags);
    if (o->label_count == 0)
      rc = msvc__child_create_solo(f);
  }
  if (rc != MSVC_OK) {
    family_free(fam);
    return rc;
  }
  *out = fam;
  return MSVC_OK;
}

/* ---- lookup and registration --------------------------------------------- */
static size_t find_pos(const msvc_metrics_registry_t *reg, const char *name, bool *found) {
  size_t lo = 0, hi = reg->nfamilies;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(reg->families[mid]->f.name, name);
    if (c == 0) {
      *found = true;
      return mid;
    }
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = false;
  return lo;
}

static bool same_family(const msvc__family_t *f, msvc_metrics_type_t type,
                        const msvc_metrics_family_opts_t *o, const double *b, size_t nb) {
  size_t i;

  if (f->type != type || f->label_count != o->label_count)
    return false;
  for (i = 0; i < f->label_count; i++)
    if (strcmp(f->label_names[i], o->label_names[i]) != 0)
      return false;
  if (type != MSVC_METRICS_HISTOGRAM)
    return true;
  return f->bound_count == nb && memcmp(f->bounds, b, nb * sizeof(double)) == 0;
}

static int insert_family(msvc_metrics_registry_t *reg, size_t pos, msvc_metrics_family_t *fam) {
  if (reg->nfamilies == reg->cap) {
    size_t cap = reg->cap == 0 ? 16 : reg->cap * 2;
    msvc_metrics_family_t **a = msvc__realloc(reg->families, cap * sizeof(*a));
    if (a == NULL)
      return MSVC_ENOMEM;
    reg->families = a;
    reg->cap = cap;
  }
  memmove(reg->families + pos + 1, reg->families + pos,
          (reg->nfamilies - pos) * sizeof(*reg->families));
  reg->families[pos] = fam;
  reg->nfamilies++;
  return MSVC_OK;
}

static int register_locked(msvc_metrics_registry_t *reg, msvc_metrics_type_t type,
                           const msvc_metrics_family_opts_t *o,
                           msvc_metrics_family_t **out) {
  const double *bounds = NULL;
  size_t nbounds = 0, pos;
  bool found;
  int rc;

  if (type == MSVC_METRICS_HISTOGRAM && (rc = check_buckets(o, &bounds, &nbounds)) != MSVC_OK)
    return rc;
  pos = find_pos(reg, o->name, &found);
  if (found) {
    if (!same_family(&reg->families[pos]->f, type, o, bounds, nbounds))
      return MSVC_EMETRIC_MISMATCH;
    *out = reg->families[pos];
    return MSVC_OK;
  }
  if (clashes(reg, type, o->name))
    return MSVC_EMETRIC_NAME;
  if ((rc = family_create(reg, type, o, bounds, nbounds, out)) != MSVC_OK)
    return rc;
  if ((rc = insert_family(reg, pos, *out)) != MSVC_OK) {
    family_free(*out);
    *out = NULL;
  }
  return rc;
}

int msvc_metrics_family_new(msvc_metrics_registry_t *reg, msvc_metrics_type_t type,
                            const msvc_metrics_family_opts_t *opts,
                            msvc_metrics_family_t **out) {
  msvc_metrics_family_opts_t o;
  int rc;

  if (opts == NULL || out == NULL)
    return MSVC_EINVAL;
  *out = NULL;
  msvc_metrics_family_opts_init(&o);
  if (!msvc__opts_copy(&o, sizeof(o), opts))
    return MSVC_EINVAL;
  opts = &o;
  if (reg == NULL && (reg = msvc_metrics_default_registry()) == NULL)
    return MSVC_ENOMEM;
  if ((rc = check_opts(type, opts)) != MSVC_OK)
    return rc;
  pthread_mutex_lock(&reg->lock);
  rc = register_locked(reg, type, opts, out);
  pthread_mutex_unlock(&reg->lock);
  return rc;
}

/* ---- registries ---------------------------------------------------------- */
static int add_dropped_family(msvc_metrics_registry_t *reg) {
  static const char *const labels[] = {"metric"};
  msvc_metrics_family_opts_t o;

  msvc_metrics_family_opts_init(&o);
  o.name = DROPPED_NAME;
  o.help = "Series refused because their family reached its series limit.";
  o.label_names = labels;
  o.label_count = 1;
  /* One child per family at most, so its own limit can never be hit. */
  o.max_series = SIZE_MAX;
  o.flags = MSVC_METRICS_UNSHARDED;
  return msvc_metrics_family_new(reg, MSVC_METRICS_COUNTER, &o, &reg->dropped);
}

int msvc_metrics_registry_new(const msvc_metrics_registry_opts_t *opts,
                              msvc_metrics_registry_t **out) {
  msvc_metrics_registry_opts_t def;
  msvc_metrics_registry_t *reg;
  int rc;

  if (out == NULL)
    return MSVC_EINVAL;
  *out = NULL;
  msvc_metrics_registry_opts_init(&def);
  if (opts != NULL && !msvc__opts_copy(&def, sizeof(def), opts))
    return MSVC_EINVAL;
  opts = &def;
  if (opts->max_series_per_family == 0)
    return MSVC_EINVAL;
  if ((reg = msvc__calloc(1, sizeof(*reg))) == NULL)
    return MSVC_ENOMEM;
  if (pthread_mutex_init(&reg->lock, NULL) != 0) {
    msvc__free(reg);
    return MSVC_ENOMEM;
  }
  reg->max_series = opts->max_series_per_family;
  if ((rc = add_dropped_family(reg)) != MSVC_OK) {
    msvc_metrics_registry_free(reg);
    return rc;
  }
  *out = reg;
  return MSVC_OK;
}

static void registry_destroy(msvc_metrics_registry_t *reg) {
  size_t i;

  for (i = 0; i < reg->nfamilies; i++)
    family_free(reg->families[i]);
  msvc__free(reg->families);
  msvc__free(reg->hooks);
  msvc__free(reg->process);
  pthread_mutex_destroy(&reg->lock);
  msvc__free(reg);
}

void msvc_metrics_registry_free(msvc_metrics_registry_t *reg) {
  if (reg == NULL || reg->is_default)
    return;
  registry_destroy(reg);
}

static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static msvc_metrics_registry_t *default_reg;

static void default_init(void) {
  msvc_metrics_registry_t *reg;

  if (msvc_metrics_registry_new(NULL, &reg) != MSVC_OK)
    return;
  reg->is_default = true;
  if (msvc_metrics_process_collector_register(reg) != MSVC_OK) {
    registry_destroy(reg);
    return;
  }
  default_reg = reg;
}

msvc_metrics_registry_t *msvc_metrics_default_registry(void) {
  pthread_once(&default_once, default_init);
  return default_reg;
}

int msvc_metrics_collect_hook_add(msvc_metrics_registry_t *reg, msvc_metrics_collect_fn fn,
                                  void *data) {
  msvc__hook_t *hooks;

  if (fn == NULL)
    return MSVC_EINVAL;
  if (reg == NULL && (reg = msvc_metrics_default_registry()) == NULL)
    return MSVC_ENOMEM;
  pthread_mutex_lock(&reg->lock);
  hooks = msvc__realloc(reg->hooks, (reg->nhooks + 1) * sizeof(*hooks));
  if (hooks == NULL) {
    pthread_mutex_unlock(&reg->lock);
    return MSVC_ENOMEM;
  }
  hooks[reg->nhooks].fn = fn;
  hooks[reg->nhooks].data = data;
  reg->hooks = hooks;
  reg->nhooks++;
  pthread_mutex_unlock(&reg->lock);
  return MSVC_OK;
}
