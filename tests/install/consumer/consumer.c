/* A host program built against an installed fathom-bridge (by pkg-config and by find_package):
 * it must compile with only the installed header, link with only the installed library, and open
 * a bridge on the installed default scripts.
 *   consumer SCRIPTS_DIR WORK_DIR */
#include <fathom_bridge/fathom_bridge.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: consumer SCRIPTS_DIR WORK_DIR\n");
    return 2;
  }
  printf("fathom-bridge %s\n", fb_version());
  if (strcmp(fb_code_name(FB_RECONNECT_REQUIRED), "reconnect_required") != 0) return 1;
  char cfg[2048];
  snprintf(cfg, sizeof cfg,
           "{\"fathom\": {\"client_id\": \"cid\", \"client_secret\": \"cs\","
           " \"redirect_uri\": \"http://127.0.0.1:9/oauth/callback\"},"
           " \"frontend\": {\"url\": \"http://127.0.0.1:9\"},"
           " \"tokens\": {\"key\": \"a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=\"},"
           " \"store\": {\"path\": \"%s/consumer.db\"}, \"scripts\": {\"dir\": \"%s\"},"
           " \"sync\": {\"scheduler\": false}}",
           argv[2], argv[1]);
  fb_bridge *b = NULL;
  int rc = fb_bridge_open(NULL, cfg, &b);
  if (rc != FB_OK) {
    fprintf(stderr, "fb_bridge_open: %s: %s\n", fb_code_name(rc), fb_errmsg(b));
    fb_bridge_close(b);
    return 1;
  }
  char *health = NULL;
  rc = fb_token_health(b, "acme", NULL, &health);
  int ok = rc == FB_OK && health != NULL && strcmp(health, "[]") == 0;
  fb_string_free(health);
  fb_bridge_close(b);
  printf("consumer: %s\n", ok ? "ok" : "token health failed");
  return ok ? 0 : 1;
}
