/* The C ABI, exercised from C as a host would: handles, codes, messages, ownership. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fathom_bridge/fathom_bridge.h"

static int passed = 0, failed = 0;
#define CHECK(cond)                                                        \
  do {                                                                     \
    if (cond) {                                                            \
      ++passed;                                                            \
    } else {                                                               \
      ++failed;                                                            \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                      \
  } while (0)

static char db_dir[256];

static void config_json(char *buf, size_t n, const char *extra) {
  /* A 32-byte key (base64 of 32 'k'), loopback URLs nothing listens on: no call leaves the machine. */
  snprintf(buf, n,
           "{\"fathom\": {\"client_id\": \"cid\", \"client_secret\": \"c-secret-xyz\","
           " \"redirect_uri\": \"http://127.0.0.1:9/oauth/callback\","
           " \"authorize_url\": \"http://127.0.0.1:9/external/v1/oauth2/authorize\","
           " \"token_url\": \"http://127.0.0.1:9/external/v1/oauth2/token\","
           " \"api_base\": \"http://127.0.0.1:9/external/v1\"},"
           " \"frontend\": {\"url\": \"http://127.0.0.1:3000\"},"
           " \"tokens\": {\"key\": \"a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=\"},"
           " \"store\": {\"path\": \"%s/c.db\"},"
           " \"scripts\": {\"dir\": \"%s/scripts\"},"
           " \"sync\": {\"scheduler\": false}%s}",
           db_dir, FB_SOURCE_DIR, extra);
}

static int events_seen = 0;
static void on_event(void *ud, const char *json) {
  (void)ud;
  (void)json;
  ++events_seen;
}

static int batch_begin(void *ud, size_t n) {
  (void)ud;
  (void)n;
  return FB_OK;
}

static int batch_end(void *ud, int ok) {
  (void)ud;
  (void)ok;
  return FB_OK;
}

static int crm_echo(void *ud, const char *call_json, char **result_json, char **error_message) {
  (void)ud;
  (void)error_message;
  *result_json = strdup(strstr(call_json, "\"idempotency_key\"") ? "{\"id\":\"x1\"}" : "{}");
  return FB_OK;
}

int main(void) {
  snprintf(db_dir, sizeof db_dir, "/tmp/fb-c-api-XXXXXX");
  if (!mkdtemp(db_dir)) return 2;
  char cfg[2048];

  /* Codes and names are stable. */
  CHECK(strcmp(fb_code_name(FB_OK), "ok") == 0);
  CHECK(strcmp(fb_code_name(FB_INVALID_GRANT), "invalid_grant") == 0);
  CHECK(strcmp(fb_code_name(FB_MISUSE), "misuse") == 0);
  CHECK(strcmp(fb_code_name(12345), "unknown") == 0);
  CHECK(strlen(fb_version()) > 0);

  /* NULL handles: harmless close, misuse elsewhere. */
  CHECK(fb_bridge_close(NULL) == FB_OK);
  fb_string_free(NULL);
  CHECK(fb_tick(NULL) == FB_MISUSE);
  CHECK(fb_bridge_open(NULL, "{}", NULL) == FB_MISUSE);

  /* A failed open still yields a handle with the message, which names the setting. */
  fb_bridge *bad = NULL;
  int rc = fb_bridge_open(NULL, "{\"fathom\": {\"client_id\": \"x\"}}", &bad);
  CHECK(rc == FB_CONFIG);
  CHECK(bad != NULL);
  CHECK(strstr(fb_errmsg(bad), "client_secret") != NULL);
  CHECK(fb_tick(bad) == FB_MISUSE);
  CHECK(fb_bridge_close(bad) == FB_OK);

  /* A typo in a setting is refused by name, and the secret is not echoed. */
  config_json(cfg, sizeof cfg, ", \"sycn\": {}");
  rc = fb_bridge_open(NULL, cfg, &bad);
  CHECK(rc == FB_CONFIG);
  CHECK(strstr(fb_errmsg(bad), "sycn") != NULL);
  CHECK(strstr(fb_errmsg(bad), "c-secret-xyz") == NULL);
  fb_bridge_close(bad);

  fb_bridge *b = NULL;
  config_json(cfg, sizeof cfg, "");
  rc = fb_bridge_open(NULL, cfg, &b);
  if (rc != FB_OK) fprintf(stderr, "open failed: %s\n", fb_errmsg(b));
  CHECK(rc == FB_OK);
  if (rc != FB_OK) {
    fb_bridge_close(b);
    printf("%d passed, %d failed\n", passed, failed + 1);
    return 1;
  }
  CHECK(fb_set_event_callback(b, on_event, NULL) == FB_OK);
  CHECK(fb_register_crm_operation(b, "upsert_contact", crm_echo, NULL) == FB_OK);
  CHECK(fb_register_crm_operation(b, NULL, crm_echo, NULL) == FB_MISUSE);
  CHECK(fb_set_crm_batch_callbacks(NULL, batch_begin, batch_end, NULL) == FB_MISUSE);
  CHECK(fb_set_crm_batch_callbacks(b, batch_begin, batch_end, NULL) == FB_OK);
  CHECK(fb_set_crm_batch_callbacks(b, NULL, NULL, NULL) == FB_OK);

  /* Connect start: the authorize URL carries the documented parameters and a state. */
  char *url = NULL;
  CHECK(fb_connect_start(b, "acme", "u1", NULL, 1, &url) == FB_OK);
  CHECK(url != NULL);
  if (url) {
    CHECK(strncmp(url, "http://127.0.0.1:9/external/v1/oauth2/authorize?", 48) == 0);
    CHECK(strstr(url, "scope=public_api") != NULL);
    CHECK(strstr(url, "response_type=code") != NULL);
    CHECK(strstr(url, "client_id=cid") != NULL);
    CHECK(strstr(url, "state=") != NULL);
    CHECK(strstr(url, "c-secret-xyz") == NULL);
  }
  fb_string_free(url);
  url = (char *)1;
  CHECK(fb_connect_start(b, "", "u1", NULL, 1, &url) == FB_INVALID_ARGUMENT);
  CHECK(url == NULL);
  CHECK(strstr(fb_errmsg(b), "tenant_id") != NULL);

  /* A forged state is refused, with a page to show and a reason. */
  char *result = NULL;
  rc = fb_connect_callback(b, "code=abc&state=forged-state-value", &result);
  CHECK(rc != FB_OK);
  CHECK(result != NULL);
  if (result) {
    CHECK(strstr(result, "\"ok\":false") != NULL);
    CHECK(strstr(result, "state") != NULL);
  }
  fb_string_free(result);

  /* Token health of a fresh store: an empty array. */
  char *report = NULL;
  CHECK(fb_token_health(b, "acme", NULL, &report) == FB_OK);
  CHECK(report != NULL && strcmp(report, "[]") == 0);
  fb_string_free(report);

  /* Webhooks to an unknown path are refused and nothing is stored. */
  const char *names[] = {"webhook-id", "webhook-timestamp", "webhook-signature"};
  const char *values[] = {"msg_1", "1700000000", "v1,AAAA"};
  int status = 0;
  char *body = NULL;
  rc = fb_webhook_receive(b, "/webhooks/fathom/unknown", names, values, 3, "{}", 2, &status, &body);
  CHECK(rc != FB_OK);
  CHECK(status == 404);
  CHECK(body != NULL);
  fb_string_free(body);
  char *events = NULL;
  CHECK(fb_webhook_events(b, NULL, &events) == FB_OK);
  CHECK(events != NULL && strcmp(events, "[]") == 0);
  fb_string_free(events);
  CHECK(fb_webhook_events(b, "{not json", &events) == FB_INVALID_ARGUMENT);

  /* Acting on an integration that does not exist is refused, not crashed. */
  CHECK(fb_disconnect(b, "acme", "u1", 999) == FB_NOT_FOUND);
  char *token = NULL;
  CHECK(fb_access_token(b, "acme", "u1", 999, &token) == FB_NOT_FOUND);
  CHECK(token == NULL);

  CHECK(fb_bridge_close(b) == FB_OK);

  /* An API-key-only host needs no OAuth settings: open works, and the OAuth calls name the
   * missing setting (issue 10, point 20). */
  snprintf(cfg, sizeof cfg,
           "{\"tokens\": {\"key\": \"a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=\"},"
           " \"store\": {\"path\": \"%s/api-only.db\"}, \"scripts\": {\"dir\": \"%s/scripts\"},"
           " \"sync\": {\"scheduler\": false}}",
           db_dir, FB_SOURCE_DIR);
  fb_bridge *api_only = NULL;
  rc = fb_bridge_open(NULL, cfg, &api_only);
  if (rc != FB_OK) fprintf(stderr, "API-key-only open failed: %s\n", fb_errmsg(api_only));
  CHECK(rc == FB_OK);
  if (rc == FB_OK) {
    char *auth_url = NULL;
    CHECK(fb_connect_start(api_only, "acme", "u1", NULL, 1, &auth_url) == FB_CONFIG);
    CHECK(auth_url == NULL);
    CHECK(strstr(fb_errmsg(api_only), "fathom.client_id") != NULL);
    char *cb = NULL;
    CHECK(fb_connect_callback(api_only, "code=abc&state=pabc", &cb) == FB_CONFIG);
    CHECK(cb != NULL && strstr(cb, "configuration_error") != NULL);
    fb_string_free(cb);
  }
  CHECK(fb_bridge_close(api_only) == FB_OK);

  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", db_dir);
  if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
