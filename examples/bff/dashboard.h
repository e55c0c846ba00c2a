/* The dashboards of the bff, built from what user-service and
 * order-service answered (pure functions, unit-tested). */
#ifndef BFF_DASHBOARD_H
#define BFF_DASHBOARD_H

#include <stdbool.h>

#include <cjson/cJSON.h>

/* How many orders the mobile dashboard lists. */
#define DASHBOARD_RECENT 3

typedef enum dashboard_kind_e {
  DASHBOARD_WEB,   /* {"user","orders","total_spent_cents","degraded"} */
  DASHBOARD_MOBILE /* {"name","order_count","recent_orders","degraded"} */
} dashboard_kind_t;

/*
 * The orders array of an order-service answer ({"orders":[...]}), borrowed
 * from doc; NULL when doc does not have that shape.
 */
const cJSON *dashboard_orders(const cJSON *doc);

/*
 * Builds a dashboard. user is the user object from user-service; orders
 * the user's orders, newest first, or NULL when order-service could not
 * answer: the order fields are then null and "degraded" names
 * order-service. Both are borrowed. Returns the document to cJSON_Delete(),
 * or NULL when out of memory.
 */
cJSON *dashboard_build(dashboard_kind_t kind, const cJSON *user, const cJSON *orders);

/*
 * As dashboard_build(); orders_stale says the orders are the last good
 * answer kept by the cache while order-service fails: they are shown, and
 * "degraded" still names order-service.
 */
cJSON *dashboard_build_stale(dashboard_kind_t kind, const cJSON *user, const cJSON *orders,
                             bool orders_stale);

#endif /* BFF_DASHBOARD_H */
