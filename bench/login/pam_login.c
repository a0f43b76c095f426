/* pbx-pam-login: one real login through libpam, for scripts/demo and by hand.
 *
 *   pbx-pam-login [--confdir DIR] [--service NAME] [--replay] USER
 *
 * Starts PAM for SERVICE (default "login") and USER, with pam_start_confdir() when --confdir is
 * given (a private directory of service files: nothing under /etc/pam.d is read), then runs
 * pam_authenticate. Every PAM message and prompt is printed on standard output; an answer is
 * read from standard input, without echo when that is a terminal. It prints PAM's result as
 * "result: NAME (CODE): TEXT".
 *
 * --replay then runs a second, separate login that answers every prompt with the answers
 * typed in the first (kept only in this process's memory, wiped afterwards): a code that was
 * accepted once must be refused the second time.
 *
 * Exit status: 0 the login succeeded (with --replay: and the replayed login was refused);
 * 1 the login failed; 3 with --replay, the replayed login succeeded too; 2 usage error or
 * PAM could not start. */
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define MAX_ANSWERS 16

struct conv_state {
  int replay;                 /* answer from answers[] instead of stdin */
  size_t next;                /* next answer to replay */
  size_t count;               /* answers recorded */
  char* answers[MAX_ANSWERS]; /* what was typed in the first login */
};

static void wipe_free(char* s) {
  if (s == NULL) return;
  volatile char* p = s;
  while (*p != '\0') *p++ = '\0';
  free(s);
}

/* One line from stdin, without echo on a terminal when !echo. NULL at end of input. */
static char* read_answer(int echo) {
  int tty = isatty(STDIN_FILENO);
  struct termios old, quiet;
  int quieted = 0;
  if (tty && !echo && tcgetattr(STDIN_FILENO, &old) == 0) {
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    quieted = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
  }
  char line[512];
  char* got = fgets(line, sizeof line, stdin);
  if (quieted) {
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    fputs("\n", stdout);
  } else if (!tty) {
    fputs(got != NULL ? (echo ? line : "(answered from standard input)\n") : "\n", stdout);
  }
  char* answer = NULL;
  if (got != NULL) {
    line[strcspn(line, "\r\n")] = '\0';
    answer = strdup(line);
  }
  volatile char* p = line;
  for (size_t i = 0; i < sizeof line; ++i) p[i] = '\0';
  return answer;
}

static int converse(int n, const struct pam_message** msg, struct pam_response** resp, void* data) {
  struct conv_state* st = data;
  if (n <= 0 || n > PAM_MAX_NUM_MSG) return PAM_CONV_ERR;
  struct pam_response* r = calloc((size_t)n, sizeof *r);
  if (r == NULL) return PAM_BUF_ERR;
  for (int i = 0; i < n; ++i) {
    const char* text = msg[i]->msg != NULL ? msg[i]->msg : "";
    switch (msg[i]->msg_style) {
      case PAM_PROMPT_ECHO_OFF:
      case PAM_PROMPT_ECHO_ON: {
        fputs(text, stdout);
        fflush(stdout);
        char* answer = NULL;
        if (st->replay) {
          if (st->next < st->count) answer = strdup(st->answers[st->next++]);
          fputs("(the same answer as in the first login)\n", stdout);
        } else {
          answer = read_answer(msg[i]->msg_style == PAM_PROMPT_ECHO_ON);
          if (answer != NULL && st->count < MAX_ANSWERS) {
            st->answers[st->count] = strdup(answer);
            if (st->answers[st->count] != NULL) ++st->count;
          }
        }
        if (answer == NULL) {
          for (int j = 0; j < i; ++j) wipe_free(r[j].resp);
          free(r);
          return PAM_CONV_ERR;
        }
        r[i].resp = answer;
        break;
      }
      case PAM_ERROR_MSG:
      case PAM_TEXT_INFO:
        printf("%s\n", text);
        break;
      default:
        break;
    }
  }
  fflush(stdout);
  *resp = r;
  return PAM_SUCCESS;
}

static const char* pam_code_name(int rc) {
  switch (rc) {
    case PAM_SUCCESS:
      return "PAM_SUCCESS";
    case PAM_AUTH_ERR:
      return "PAM_AUTH_ERR";
    case PAM_AUTHINFO_UNAVAIL:
      return "PAM_AUTHINFO_UNAVAIL";
    case PAM_SERVICE_ERR:
      return "PAM_SERVICE_ERR";
    case PAM_CONV_ERR:
      return "PAM_CONV_ERR";
    case PAM_IGNORE:
      return "PAM_IGNORE";
    case PAM_USER_UNKNOWN:
      return "PAM_USER_UNKNOWN";
    case PAM_MAXTRIES:
      return "PAM_MAXTRIES";
    case PAM_CRED_INSUFFICIENT:
      return "PAM_CRED_INSUFFICIENT";
    case PAM_PERM_DENIED:
      return "PAM_PERM_DENIED";
    case PAM_BUF_ERR:
      return "PAM_BUF_ERR";
    case PAM_SYSTEM_ERR:
      return "PAM_SYSTEM_ERR";
    case PAM_OPEN_ERR:
      return "PAM_OPEN_ERR";
    case PAM_SYMBOL_ERR:
      return "PAM_SYMBOL_ERR";
    case PAM_ABORT:
      return "PAM_ABORT";
    default:
      return "PAM_?";
  }
}

/* One login; returns PAM's code, or -1 when PAM could not even start. */
static int login(const char* confdir, const char* service, const char* user,
                 struct conv_state* st) {
  struct pam_conv conv = {converse, st};
  pam_handle_t* pamh = NULL;
  int rc = confdir != NULL ? pam_start_confdir(service, user, &conv, confdir, &pamh)
                           : pam_start(service, user, &conv, &pamh);
  if (rc != PAM_SUCCESS) {
    fprintf(stderr, "pbx-pam-login: pam_start failed: %s (%d)\n", pam_code_name(rc), rc);
    return -1;
  }
  rc = pam_authenticate(pamh, 0);
  printf("result: %s (%d): %s\n", pam_code_name(rc), rc, pam_strerror(pamh, rc));
  fflush(stdout);
  pam_end(pamh, rc);
  return rc;
}

static int usage(void) {
  fputs("usage: pbx-pam-login [--confdir DIR] [--service NAME] [--replay] USER\n", stderr);
  return 2;
}

int main(int argc, char** argv) {
  const char* confdir = NULL;
  const char* service = "login";
  const char* user = NULL;
  int replay = 0;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--confdir") == 0 && i + 1 < argc) {
      confdir = argv[++i];
    } else if (strcmp(argv[i], "--service") == 0 && i + 1 < argc) {
      service = argv[++i];
    } else if (strcmp(argv[i], "--replay") == 0) {
      replay = 1;
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage();
      return 0;
    } else if (argv[i][0] == '-' || user != NULL) {
      return usage();
    } else {
      user = argv[i];
    }
  }
  if (user == NULL) return usage();

  struct conv_state st;
  memset(&st, 0, sizeof st);
  int status = 2;
  int first = login(confdir, service, user, &st);
  if (first >= 0) {
    status = first == PAM_SUCCESS ? 0 : 1;
    if (replay && first == PAM_SUCCESS) {
      printf("\nThe same answers again, in a new login:\n");
      fflush(stdout);
      st.replay = 1;
      int second = login(confdir, service, user, &st);
      status = second < 0 ? 2 : second == PAM_SUCCESS ? 3 : 0;
    }
  }
  for (size_t i = 0; i < st.count; ++i) wipe_free(st.answers[i]);
  return status;
}
