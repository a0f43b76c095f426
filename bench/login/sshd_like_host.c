/* A PAM client shaped like sshd: OpenSSL loaded and initialised before pam_start, then one
 * login whose prompts are answered from stdin.  usage: sshd_like_host SERVICE USER
 * Exit status: 0 when pam_authenticate succeeds, otherwise 64 + its PAM code (so a benchmark can
 * tell PAM_AUTH_ERR from PAM_AUTHINFO_UNAVAIL); 2 usage, 3 pam_start failed.
 * PBX_BENCH_TWICE=1: a second pam_authenticate in the same process after the first (its answer
 * is the next line; its outcome is not reported), to compare a cold login with a warm one
 * (bench/login/phases.patch, bench/login/PROFILE-issue20.md). */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int conv(int n, const struct pam_message** msg, struct pam_response** resp, void* data) {
  (void)data;
  struct pam_response* r = calloc((size_t)n, sizeof *r);
  for (int i = 0; r && i < n; ++i) {
    char line[512] = "";
    if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF || msg[i]->msg_style == PAM_PROMPT_ECHO_ON) {
      if (!fgets(line, sizeof line, stdin)) line[0] = 0;
      line[strcspn(line, "\n")] = 0;
      r[i].resp = strdup(line);
    }
  }
  *resp = r;
  return r ? PAM_SUCCESS : PAM_BUF_ERR;
}

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, NULL);
  EVP_Digest("x", 1, md, &len, EVP_sha256(), NULL);
  struct pam_conv c = {conv, NULL};
  pam_handle_t* pamh = NULL;
  if (pam_start(argv[1], argv[2], &c, &pamh) != PAM_SUCCESS) return 3;
  int rc = pam_authenticate(pamh, 0);
  if (getenv("PBX_BENCH_TWICE") != NULL) (void)pam_authenticate(pamh, 0);
  pam_end(pamh, rc);
  return rc == PAM_SUCCESS ? 0 : 64 + rc;
}
