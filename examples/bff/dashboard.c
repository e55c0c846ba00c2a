/* The dashboards of the bff (see dashboard.h). */
#include "dashboard.h"

#include <stdbool.h>
#include <stdint.h>

#include "ex.h"

const cJSON *dashboard_orders(const cJSON *doc) {
  const cJSON *orders = cJSON_GetObjectItemCaseSensitive(doc, "orders");

  return cJSON_IsArray(orders) ? orders : NULL;
}

static int64_t order_total(const cJSON *order) {
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(order, "total_cents");

  if (!cJSON_IsNumber(t) || t->valuedouble < 0 || t->valuedouble > (double)EX_JSON_INT_MAX)
    return 0;
  return (int64_t)t->valuedouble;
}

/* The sum of the totals, held at EX_JSON_INT_MAX rather than overflowing. */
static int64_t total_spent(const cJSON *orders) {
  const cJSON *o;
  int64_t sum = 0;

  cJSON_ArrayForEach(o, orders) {
    int64_t t = order_total(o);

    sum = t > EX_JSON_INT_MAX - sum ? EX_JSON_INT_MAX : sum + t;
  }
  return sum;
}

static bool add_degraded(cJSON *doc, bool orders_missing) {
  cJSON *list = cJSON_AddArrayToObject(doc, "degraded");
  cJSON *name;

  if (list == NULL)
    return false;
  if (!orders_missing)
    return true;
  name = cJSON_CreateString("order-service");
  if (name == NULL || !cJSON_AddItemToArray(list, name)) {
    cJSON_Delete(name);
    return false;
  }
  return true;
}

/* Adds a borrowed item as a copy under name ("null" when item is NULL). */
static bool add_copy(cJSON *doc, const char *name, const cJSON *item) {
  cJSON *copy = item != NULL ? cJSON_Duplicate(item, 1) : cJSON_CreateNull();

  if (copy == NULL || !cJSON_AddItemToObject(doc, name, copy)) {
    cJSON_Delete(copy);
    return false;
  }
  return true;
}

static bool build_web(cJSON *doc, const cJSON *user, const cJSON *orders) {
  if (!add_copy(doc, "user", user) || !add_copy(doc, "orders", orders))
    return false;
  if (orders == NULL)
    return cJSON_AddNullToObject(doc, "total_spent_cents") != NULL;
  return ex_json_add_int(doc, "total_spent_cents", total_spent(orders));
}

static cJSON *recent_orders(const cJSON *orders) {
  cJSON *list = cJSON_CreateArray();
  const cJSON *o;
  int n = 0;

  cJSON_ArrayForEach(o, orders) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(o, "status");
    cJSON *item;

    if (list == NULL || n++ == DASHBOARD_RECENT)
      break;
    item = cJSON_CreateObject();
    if (item == NULL || !add_copy(item, "id", id) ||
        !ex_json_add_int(item, "total_cents", order_total(o)) ||
        /* With the order saga, a glance at the phone says whether an
         * order went through. */
        (cJSON_IsString(status) && !add_copy(item, "status", status)) ||
        !cJSON_AddItemToArray(list, item)) {
      cJSON_Delete(item);
      cJSON_Delete(list);
      return NULL;
    }
  }
  return list;
}

static bool build_mobile(cJSON *doc, const cJSON *user, const cJSON *orders) {
  cJSON *recent;

  if (!add_copy(doc, "name", cJSON_GetObjectItemCaseSensitive(user, "name")))
    return false;
  if (orders == NULL)
    return cJSON_AddNullToObject(doc, "order_count") != NULL &&
           cJSON_AddNullToObject(doc, "recent_orders") != NULL;
  recent = recent_orders(orders);
  if (!ex_json_add_int(doc, "order_count", cJSON_GetArraySize(orders)) || recent == NULL ||
      !cJSON_AddItemToObject(doc, "recent_orders", recent)) {
    cJSON_Delete(recent);
    return false;
  }
  return true;
}

cJSON *dashboard_build(dashboard_kind_t kind, const cJSON *user, const cJSON *orders) {
  return dashboard_build_stale(kind, user, orders, false);
}

cJSON *dashboard_build_stale(dashboard_kind_t kind, const cJSON *user, const cJSON *orders,
                             bool orders_stale) {
  cJSON *doc = cJSON_CreateObject();
  bool ok;

  if (doc == NULL)
    return NULL;
  ok = kind == DASHBOARD_WEB ? build_web(doc, user, orders) : build_mobile(doc, user, orders);
  if (!ok || !add_degraded(doc, orders == NULL || orders_stale)) {
    cJSON_Delete(doc);
    return NULL;
  }
  return doc;
}
