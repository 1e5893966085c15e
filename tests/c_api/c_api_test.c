/* The C ABI, exercised from C as a host would: handles, codes, messages, ownership. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
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

/* ---- fathom-sim, for the parts that need a Fathom account ---- */

static pid_t sim_pid = -1;
static int sim_port = 0;

/* Starts fathom-sim as a child (its first line: "fathom-sim listening on http://127.0.0.1:PORT"). */
static int start_sim(void) {
  int fds[2];
  if (pipe(fds) != 0) return 0;
  sim_pid = fork();
  if (sim_pid < 0) return 0;
  if (sim_pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(fds[1], 1);
    close(fds[0]);
    execl(FB_SIM_BIN, FB_SIM_BIN, "--port", "0", "--quiet", "--meetings", "3", (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  FILE *out = fdopen(fds[0], "r");
  char line[256];
  int ok = out && fgets(line, sizeof line, out) != NULL;
  if (out) fclose(out);
  const char *at = ok ? strstr(line, "127.0.0.1:") : NULL;
  sim_port = at ? atoi(at + 10) : 0;
  return sim_port > 0;
}

static void stop_sim(void) {
  if (sim_pid <= 0) return;
  kill(sim_pid, SIGTERM);
  waitpid(sim_pid, NULL, 0);
  sim_pid = -1;
}

/* GET path from the sim; returns a malloc'd response (headers and body) or NULL. */
static char *sim_get(const char *path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)sim_port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) return NULL;
  char req[256];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
  if (write(fd, req, (size_t)n) != n) return NULL;
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  ssize_t r;
  while (buf && (r = read(fd, buf + len, cap - len - 1)) > 0) len += (size_t)r;
  close(fd);
  if (buf) buf[len] = '\0';
  return buf;
}

/* Copies the string value of "key":"..." found after `from` in json into out. */
static int json_string_after(const char *json, const char *from, const char *key, char *out, size_t n) {
  const char *p = from ? strstr(json, from) : json;
  if (!p) return 0;
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\":\"", key);
  p = strstr(p, pat);
  if (!p) return 0;
  p += strlen(pat);
  const char *end = strchr(p, '"');
  if (!end || (size_t)(end - p) >= n) return 0;
  memcpy(out, p, (size_t)(end - p));
  out[end - p] = '\0';
  return 1;
}

/* fathom-api.md 5.3, the synthetic Fathom-style vector: signed with kSecretA. */
static const char *kSecretA = "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY";
static const char *kSecretB = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
static const char *kSecretC = "whsec_x6EV6NIAAz3ldclszNJTwrow";
static const char *kVectorBody = "{\"recording_id\":123456789,\"title\":\"Vector test\"}";

static int deliver_vector(fb_bridge *b, const char *path, int *status) {
  const char *names[] = {"webhook-id", "webhook-timestamp", "webhook-signature"};
  const char *values[] = {"msg_2SyntheticExampleId000001", "1740848520",
                          "v1,6z0X8Q5GLN0fMq+UIIPAz9mJFTLGedv6XItPDDke9vI="};
  char *body = NULL;
  int rc = fb_webhook_receive(b, path, names, values, 3, kVectorBody, strlen(kVectorBody), status, &body);
  fb_string_free(body);
  return rc;
}

/* fb_webhook_receive_async's answer, as a host's event loop would collect it. */
struct async_answer {
  _Atomic int calls;
  int result, status;
  char body[64];
};

static void on_async_answer(void *user_data, int result, int http_status, const char *response_body) {
  struct async_answer *a = user_data;
  a->result = result;
  a->status = http_status;
  snprintf(a->body, sizeof a->body, "%s", response_body ? response_body : "(null)");
  atomic_fetch_add(&a->calls, 1);
}

/* Delivers the vector through fb_webhook_receive_async and waits (up to 10 s) for its answer. */
static int deliver_vector_async(fb_bridge *b, const char *path, struct async_answer *a) {
  const char *names[] = {"webhook-id", "webhook-timestamp", "webhook-signature"};
  const char *values[] = {"msg_2SyntheticExampleId000001", "1740848520",
                          "v1,6z0X8Q5GLN0fMq+UIIPAz9mJFTLGedv6XItPDDke9vI="};
  atomic_store(&a->calls, 0);
  int rc = fb_webhook_receive_async(b, path, names, values, 3, kVectorBody, strlen(kVectorBody), on_async_answer, a);
  for (int i = 0; rc == FB_OK && i < 1000 && atomic_load(&a->calls) == 0; ++i) usleep(10000);
  return rc;
}

/* Issue 10 point 7: webhook routes with a hand-made secret, rotation with a grace period, removal,
 * through the C ABI, with an API-key integration at fathom-sim. */
static void webhook_routes_test(void) {
  if (!start_sim()) {
    ++failed;
    fprintf(stderr, "fathom-sim did not start (%s)\n", FB_SIM_BIN);
    stop_sim();
    return;
  }
  char *users = sim_get("/_sim/users");
  char key[128] = "";
  CHECK(users != NULL && json_string_after(users, "alice@example.com", "api_key", key, sizeof key));
  free(users);

  /* The tolerance covers the published vector's 2025 timestamp; nothing else depends on it. */
  char cfg[4096];
  snprintf(cfg, sizeof cfg,
           "{\"fathom\": {\"api_base\": \"http://127.0.0.1:%d/external/v1\", \"client_id\": \"sim-client\","
           " \"client_secret\": \"sim-secret\", \"redirect_uri\": \"http://127.0.0.1:9/oauth/callback\","
           " \"authorize_url\": \"http://127.0.0.1:9/a\", \"token_url\": \"http://127.0.0.1:9/t\"},"
           " \"frontend\": {\"url\": \"http://127.0.0.1:9\"},"
           " \"tokens\": {\"key\": \"a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=\"},"
           " \"store\": {\"path\": \"%s/routes.db\"}, \"scripts\": {\"dir\": \"%s/scripts\"},"
           " \"webhooks\": {\"tolerance_s\": 2000000000, \"secret_grace_s\": 3600},"
           " \"sync\": {\"scheduler\": false}, \"log_level\": \"error\"}",
           sim_port, db_dir, FB_SOURCE_DIR);
  fb_bridge *b = NULL;
  int rc = fb_bridge_open(NULL, cfg, &b);
  if (rc != FB_OK) fprintf(stderr, "open failed: %s\n", fb_errmsg(b));
  CHECK(rc == FB_OK);
  int64_t id = 0;
  rc = fb_connect_api_key(b, "acme", "u7", key, &id);
  if (rc != FB_OK) fprintf(stderr, "connect failed: %s\n", fb_errmsg(b));
  CHECK(rc == FB_OK && id > 0);

  char *json = NULL;
  CHECK(fb_webhook_routes(b, "acme", "u7", id, &json) == FB_OK);
  CHECK(json != NULL && strcmp(json, "[]") == 0); /* no public URL: nothing registered at connect */
  fb_string_free(json);
  CHECK(fb_webhook_route_register(b, "acme", "u7", id, &json) == FB_FAILED_PRECONDITION);
  CHECK(strstr(fb_errmsg(b), "public_base_url") != NULL);

  /* A malformed secret is refused without being echoed. */
  CHECK(fb_webhook_route_add(b, "acme", "u7", id, "whsec_not*base64*secret", &json) == FB_INVALID_ARGUMENT);
  CHECK(json == NULL);
  CHECK(strstr(fb_errmsg(b), "not*base64") == NULL);
  /* Another user's integration is not found. */
  CHECK(fb_webhook_route_add(b, "globex", "u7", id, kSecretA, &json) == FB_NOT_FOUND);

  CHECK(fb_webhook_route_add(b, "acme", "u7", id, kSecretA, &json) == FB_OK);
  char path[256] = "";
  CHECK(json != NULL && json_string_after(json, NULL, "path", path, sizeof path));
  CHECK(json != NULL && strstr(json, "\"source\":\"manual\"") != NULL);
  CHECK(json != NULL && strstr(json, "whsec_") == NULL);
  const char *idp = json ? strstr(json, "\"id\":") : NULL;
  int64_t route = idp ? strtoll(idp + 5, NULL, 10) : 0;
  CHECK(route > 0);
  fb_string_free(json);

  int status = 0;
  CHECK(deliver_vector(b, path, &status) == FB_OK); /* signed with the hand-made secret */
  CHECK(status == 200);
  /* The same delivery without waiting for the commit: a repeat, answered from the writer thread;
   * an unknown path is answered before the call returns; a NULL callback is misuse. */
  struct async_answer answer;
  CHECK(deliver_vector_async(b, path, &answer) == FB_OK);
  CHECK(atomic_load(&answer.calls) == 1 && answer.result == FB_OK && answer.status == 200);
  CHECK(strcmp(answer.body, "duplicate") == 0);
  atomic_store(&answer.calls, 0);
  const char *no_names[] = {"webhook-id"};
  const char *no_values[] = {"msg_x"};
  CHECK(fb_webhook_receive_async(b, "/webhooks/fathom/unknown", no_names, no_values, 1, "{}", 2, on_async_answer,
                                 &answer) == FB_OK);
  CHECK(atomic_load(&answer.calls) == 1 && answer.result == FB_NOT_FOUND && answer.status == 404);
  CHECK(fb_webhook_receive_async(b, path, no_names, no_values, 1, "{}", 2, NULL, NULL) == FB_MISUSE);

  /* Rotation: the replaced secret stays accepted for the grace period. */
  CHECK(fb_webhook_route_rotate(b, "globex", "u7", route, kSecretB, &json) == FB_NOT_FOUND);
  CHECK(fb_webhook_route_rotate(b, "acme", "u7", route, kSecretB, &json) == FB_OK);
  CHECK(json != NULL && strstr(json, "\"previous_secret_expires_at\":null") == NULL);
  CHECK(json != NULL && strstr(json, "whsec_") == NULL);
  fb_string_free(json);
  CHECK(deliver_vector(b, path, &status) == FB_OK); /* signed with the previous secret */
  CHECK(status == 200);
  /* A second rotation replaces the previous secret: A is no longer accepted. */
  CHECK(fb_webhook_route_rotate(b, "acme", "u7", route, kSecretC, &json) == FB_OK);
  fb_string_free(json);
  CHECK(deliver_vector(b, path, &status) == FB_REJECTED);
  CHECK(status == 401);

  CHECK(fb_webhook_routes(b, "acme", "u7", 0, &json) == FB_OK);
  CHECK(json != NULL && strstr(json, path) != NULL && strstr(json, "whsec_") == NULL);
  fb_string_free(json);
  CHECK(fb_webhook_route_remove(b, "globex", "u7", route) == FB_NOT_FOUND);
  CHECK(fb_webhook_route_remove(b, "acme", "u7", route) == FB_OK);
  CHECK(deliver_vector(b, path, &status) == FB_NOT_FOUND);
  CHECK(status == 404);
  CHECK(fb_webhook_route_remove(b, "acme", "u7", route) == FB_NOT_FOUND);

  /* An asynchronous sync: its job at once, then its progress by id until it ends; cancelling an
   * ended job is refused, and another user's view of it is "not found". */
  CHECK(fb_sync_start(b, "acme", "u7", id, "backfill", NULL, NULL) == FB_MISUSE);
  CHECK(fb_sync_start(b, "acme", "u7", id, "sideways", NULL, &json) == FB_INVALID_ARGUMENT);
  CHECK(fb_sync(b, "acme", "u7", id, "incremental", "{\"wait_if_running\": 1}", &json) == FB_INVALID_ARGUMENT);
  CHECK(strstr(fb_errmsg(b), "wait_if_running") != NULL);
  CHECK(fb_sync_start(b, "acme", "u7", id, "backfill", NULL, &json) == FB_OK);
  const char *at = json ? strstr(json, "\"id\":") : NULL;
  long long job = at ? strtoll(at + 5, NULL, 10) : 0;
  CHECK(job > 0);
  fb_string_free(json);
  int ended = 0;
  for (int i = 0; i < 1500 && !ended; ++i) {
    CHECK(fb_sync_job(b, "acme", "u7", job, &json) == FB_OK);
    ended = json != NULL && strstr(json, "\"status\":\"running\"") == NULL;
    if (ended) {
      CHECK(strstr(json, "\"status\":\"succeeded") != NULL);
      CHECK(strstr(json, "\"progress\":{") != NULL);
    }
    fb_string_free(json);
    if (!ended) usleep(10000);
  }
  CHECK(ended);
  CHECK(fb_sync_cancel(b, "acme", "u7", job) == FB_FAILED_PRECONDITION);
  CHECK(strstr(fb_errmsg(b), "not running") != NULL);
  CHECK(fb_sync_job(b, "globex", "u7", job, &json) == FB_NOT_FOUND);
  CHECK(json == NULL);
  fb_bridge_close(b);
  stop_sim();
}

/* The integer value of the first "key": in json (-1 when there is none). */
static long long json_int(const char *json, const char *key) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\":", key);
  const char *p = json ? strstr(json, pat) : NULL;
  return p && (p[strlen(pat)] == '-' || (p[strlen(pat)] >= '0' && p[strlen(pat)] <= '9')) ? atoll(p + strlen(pat)) : -1;
}

/* Stored script versions (issue 15) through fb_script_* and the same operations through fb_invoke:
 * a broken upload names file and line and stores nothing; upload, list, activate, roll back. */
static void script_versions_test(fb_bridge *b) {
  char *out = NULL;
  CHECK(fb_script_upload(b, "acme", "{\"mapping.lua\": \"function on_meeting(m, ctx)\\n  x = = 1\\nend\\n\"}", "alice",
                         "broken", &out) == FB_SCRIPT);
  CHECK(out == NULL);
  CHECK(strstr(fb_errmsg(b), "mapping.lua:2") != NULL);
  CHECK(fb_script_versions(b, "acme", 10, &out) == FB_OK);
  CHECK(out != NULL && strcmp(out, "[]") == 0);
  fb_string_free(out);

  const char *v1 = "{\"mapping.lua\": \"function on_meeting(m, ctx) end\\n\"}";
  CHECK(fb_script_upload(b, "acme", v1, "alice", "first", &out) == FB_OK);
  const long long id1 = json_int(out, "id");
  CHECK(id1 > 0);
  CHECK(out != NULL && strstr(out, "\"author\":\"alice\"") != NULL);
  fb_string_free(out);
  char *again = NULL;  /* the same content gives the same version */
  CHECK(fb_script_upload(b, "acme", v1, "bob", "again", &again) == FB_OK);
  CHECK(json_int(again, "id") == id1);
  fb_string_free(again);

  CHECK(fb_script_rollback(b, "acme", "alice", &out) == FB_FAILED_PRECONDITION);  /* nothing active yet */
  CHECK(fb_script_activate(b, "acme", 999999, "alice", &out) == FB_NOT_FOUND);
  CHECK(fb_script_activate(b, "acme", id1, "alice", &out) == FB_OK);
  CHECK(out != NULL && strstr(out, "\"kind\":\"activate\"") != NULL);
  fb_string_free(out);
  CHECK(fb_script_versions(b, "acme", 10, &out) == FB_OK);
  CHECK(out != NULL && strstr(out, "\"active\":true") != NULL);
  fb_string_free(out);

  /* The same lifecycle through fb_invoke, with the same codes. */
  CHECK(fb_invoke(b, "script_upload", "{\"tenant_id\": \"acme\", \"files\": {\"mapping.lua\": \"-- v2\\nfunction on_meeting(m, ctx) end\\n\"}, \"author\": \"carol\", \"note\": \"second\"}", &out) == FB_OK);
  const long long id2 = json_int(out, "id");
  CHECK(id2 > 0 && id2 != id1);
  fb_string_free(out);
  char args[256];
  snprintf(args, sizeof args, "{\"tenant_id\": \"acme\", \"version_id\": %lld, \"author\": \"carol\"}", id2);
  CHECK(fb_invoke(b, "script_activate", args, &out) == FB_OK);
  fb_string_free(out);
  CHECK(fb_invoke(b, "script_rollback", "{\"tenant_id\": \"acme\", \"author\": \"carol\"}", &out) == FB_OK);
  CHECK(out != NULL && strstr(out, "\"kind\":\"rollback\"") != NULL);
  CHECK(json_int(out, "version_id") == id1);
  fb_string_free(out);
  CHECK(fb_invoke(b, "script_versions", "{\"tenant_id\": \"acme\", \"limit\": 10}", &out) == FB_OK);
  CHECK(out != NULL && strstr(out, "\"note\":\"second\"") != NULL);
  fb_string_free(out);
  CHECK(fb_invoke(b, "script_import", "{\"tenant_id\": \"acme\", \"folder\": \"" FB_SOURCE_DIR "/scripts\", \"author\": \"carol\"}", &out) == FB_OK);
  CHECK(out != NULL && strstr(out, "mapping.lua") != NULL);
  fb_string_free(out);
  CHECK(fb_invoke(b, "script_upload", "{\"tenant_id\": \"acme\", \"files\": {\"mapping.lua\": \"x = = 1\"}}", &out) == FB_SCRIPT);
  CHECK(out != NULL && strstr(out, "\"error\":\"script\"") != NULL);
  fb_string_free(out);
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

  /* The callback with the CRM user signed in where it arrived: both ids are required, and a state
   * that is not that user's is refused like any other (here: never issued). */
  char *cb = (char *)1;
  CHECK(fb_connect_callback_as(b, "code=c&state=pforged", "acme", NULL, &cb) == FB_INVALID_ARGUMENT);
  CHECK(cb == NULL);
  CHECK(strstr(fb_errmsg(b), "user_id") != NULL);
  CHECK(fb_connect_callback_as(b, "code=c&state=pforged", "acme", "u1", &cb) != FB_OK);
  CHECK(cb != NULL && strstr(cb, "\"error\":\"state_unknown\"") != NULL);
  fb_string_free(cb);

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

  /* Issue 10 point 9: identifiers that are not UTF-8, too long or with control characters are
   * refused at the boundary, naming the field; the all-tenant report keeps working. */
  url = (char *)1;
  CHECK(fb_connect_start(b, "\xff" "acme", "u1", NULL, 1, &url) == FB_INVALID_ARGUMENT);
  CHECK(url == NULL);
  CHECK(strstr(fb_errmsg(b), "tenant_id is not valid UTF-8") != NULL);
  CHECK(fb_connect_start(b, "acme", "u\xc0\xaf", NULL, 1, &url) == FB_INVALID_ARGUMENT); /* overlong '/' */
  CHECK(strstr(fb_errmsg(b), "user_id is not valid UTF-8") != NULL);
  CHECK(fb_connect_start(b, "acme", "u1", "t\xed\xa0\x80", 1, &url) == FB_INVALID_ARGUMENT); /* surrogate */
  CHECK(strstr(fb_errmsg(b), "team_id") != NULL);
  CHECK(fb_connect_start(b, "acme\x1b[31m", "u1", NULL, 1, &url) == FB_INVALID_ARGUMENT);
  CHECK(strstr(fb_errmsg(b), "control character") != NULL);
  CHECK(fb_connect_start(b, "acme\xc2\x85", "u1", NULL, 1, &url) == FB_INVALID_ARGUMENT); /* C1 NEL */
  {
    char long_id[260];
    memset(long_id, 'a', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    CHECK(fb_connect_start(b, long_id, "u1", NULL, 1, &url) == FB_INVALID_ARGUMENT);
    CHECK(strstr(fb_errmsg(b), "longer than 200 bytes") != NULL);
  }
  int64_t bad_id = 0;
  CHECK(fb_connect_api_key(b, "\xff", "u1", "fk_key", &bad_id) == FB_INVALID_ARGUMENT);
  CHECK(fb_connect_start(b, "\xc3\xa9quipe-\xe6\x9d\xb1\xe4\xba\xac-\xf0\x9f\x9a\x80", "u1", NULL, 1, &url) == FB_OK);
  fb_string_free(url);
  char *all = NULL;
  CHECK(fb_token_health(b, "\xff", NULL, &all) == FB_INVALID_ARGUMENT);
  CHECK(all == NULL);
  CHECK(fb_token_health(b, NULL, NULL, &all) == FB_OK);
  fb_string_free(all);

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

  script_versions_test(b);
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

  webhook_routes_test();

  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", db_dir);
  if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
