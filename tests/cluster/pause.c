/* The pod sandbox's PID 1: holds the pod's namespaces open, reaps orphaned children (when the
 * pod shares its process namespace) and exits cleanly on SIGINT/SIGTERM. Written for the Kask
 * test bed, whose containerd must never pull registry.k8s.io/pause. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig) {
  (void)sig;
  _exit(0);
}

static void on_child(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "-v") == 0) {
    puts("kask-pause 1");
    return 0;
  }
  struct sigaction stop = {.sa_handler = on_stop};
  struct sigaction child = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP};
  if (sigaction(SIGINT, &stop, NULL) < 0 || sigaction(SIGTERM, &stop, NULL) < 0 ||
      sigaction(SIGCHLD, &child, NULL) < 0) {
    perror("kask-pause: sigaction");
    return 1;
  }
  if (getpid() != 1) {
    fputs("kask-pause: warning: not running as PID 1\n", stderr);
  }
  for (;;) {
    pause();
  }
}
