/* The bff's dashboards, complete and degraded. */
#include "dashboard.h"
#include "ex.h"
#include "ex_test.h"

static const char user_json[] =
    "{\"id\":7,\"name\":\"Ada\",\"email\":\"ada@example.com\","
    "\"created_at\":\"2026-01-01T00:00:00Z\"}";

/* Five orders, newest first, as order-service lists them. */
static const char orders_json[] =
    "{\"orders\":["
    "{\"id\":5,\"user_id\":7,\"items\":[],\"total_cents\":500,\"status\":\"created\"},"
    "{\"id\":4,\"user_id\":7,\"items\":[],\"total_cents\":400,\"status\":\"created\"},"
    "{\"id\":3,\"user_id\":7,\"items\":[],\"total_cents\":300,\"status\":\"created\"},"
    "{\"id\":2,\"user_id\":7,\"items\":[],\"total_cents\":200,\"status\":\"created\"},"
    "{\"id\":1,\"user_id\":7,\"items\":[],\"total_cents\":100,\"status\":\"created\"}]}";

static char *build(dashboard_kind_t kind, const char *orders_text) {
  cJSON *user = cJSON_Parse(user_json);
  cJSON *orders = orders_text != NULL ? cJSON_Parse(orders_text) : NULL;
  cJSON *doc;
  char *text;

  cr_assert_not_null(user);
  doc = dashboard_build(kind, user, dashboard_orders(orders));
  cr_assert_not_null(doc);
  text = cJSON_PrintUnformatted(doc);
  cJSON_Delete(doc);
  cJSON_Delete(orders);
  cJSON_Delete(user);
  return text;
}

Test(examples_dashboard, web_complete) {
  char *text = build(DASHBOARD_WEB, orders_json);
  cJSON *doc = cJSON_Parse(text);

  cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "user"), "id")->valuedouble, 7);
  cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "orders")), 5);
  cr_assert_eq(cJSON_GetObjectItem(doc, "total_spent_cents")->valuedouble, 1500);
  cr_assert_not_null(strstr(text, "\"degraded\":[]"), "%s", text);
  cJSON_Delete(doc);
  cJSON_free(text);
}

Test(examples_dashboard, web_degraded) {
  char *text = build(DASHBOARD_WEB, NULL);

  cr_assert_not_null(strstr(text, "\"orders\":null"), "%s", text);
  cr_assert_not_null(strstr(text, "\"total_spent_cents\":null"), "%s", text);
  cr_assert_not_null(strstr(text, "\"degraded\":[\"order-service\"]"), "%s", text);
  cr_assert_not_null(strstr(text, "\"name\":\"Ada\""), "%s", text);
  cJSON_free(text);
}

Test(examples_dashboard, mobile_lists_the_last_three) {
  char *text = build(DASHBOARD_MOBILE, orders_json);

  cr_assert_str_eq(text, "{\"name\":\"Ada\",\"order_count\":5,\"recent_orders\":["
                         "{\"id\":5,\"total_cents\":500,\"status\":\"created\"},"
                         "{\"id\":4,\"total_cents\":400,\"status\":\"created\"},"
                         "{\"id\":3,\"total_cents\":300,\"status\":\"created\"}],"
                         "\"degraded\":[]}");
  cJSON_free(text);
}

Test(examples_dashboard, mobile_degraded) {
  char *text = build(DASHBOARD_MOBILE, NULL);

  cr_assert_str_eq(text, "{\"name\":\"Ada\",\"order_count\":null,\"recent_orders\":null,"
                         "\"degraded\":[\"order-service\"]}");
  cJSON_free(text);
}

Test(examples_dashboard, mobile_with_no_orders) {
  char *text = build(DASHBOARD_MOBILE, "{\"orders\":[]}");

  cr_assert_str_eq(text, "{\"name\":\"Ada\",\"order_count\":0,\"recent_orders\":[],"
                         "\"degraded\":[]}");
  cJSON_free(text);
}

Test(examples_dashboard, total_is_held_below_the_json_limit) {
  char *text = build(DASHBOARD_WEB, "{\"orders\":[{\"id\":1,\"total_cents\":999999999999999},"
                                    "{\"id\":2,\"total_cents\":999999999999999}]}");

  cr_assert_not_null(strstr(text, "\"total_spent_cents\":999999999999999"), "%s", text);
  cJSON_free(text);
}

Test(examples_dashboard, orders_shape) {
  cJSON *ok = cJSON_Parse("{\"orders\":[]}"), *bad = cJSON_Parse("{\"orders\":{}}");
  cJSON *none = cJSON_Parse("[1]");

  cr_assert_not_null(dashboard_orders(ok));
  cr_assert_null(dashboard_orders(bad));
  cr_assert_null(dashboard_orders(none));
  cr_assert_null(dashboard_orders(NULL));
  cJSON_Delete(ok);
  cJSON_Delete(bad);
  cJSON_Delete(none);
}
