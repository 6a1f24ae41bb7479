// Process helpers of the SDK's process tests (e2e_test.cc, programs_test.cc): run a program with
// a time limit, start one with pipes, and PortFree (from integration/ports.h). Everything is
// bounded in time and every child is reaped.
#ifndef SDK_PROC_H
#define SDK_PROC_H

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "integration/ports.h"

namespace {

// Runs argv with extra environment entries, collecting stdout and stderr; kills it after
// timeout_ms. Returns the exit status (or -1).
inline int RunProgram(const std::vector<std::string> &argv, const std::vector<std::string> &env,
                      int timeout_ms, std::string *out) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    for (const auto &e : env) putenv(strdup(e.c_str()));
    std::vector<char *> args;
    for (const auto &a : argv) args.push_back(const_cast<char *>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(fds[1]);
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char buf[4096];
  for (;;) {
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    end - std::chrono::steady_clock::now())
                                    .count());
    if (left <= 0) {
      kill(pid, SIGKILL);
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    if (poll(&p, 1, left) <= 0) continue;
    ssize_t n = read(fds[0], buf, sizeof(buf));
    if (n <= 0) break;
    out->append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

using mirtest::PortFree;  // integration/ports.h

// A child with its standard input and output on pipes (for sdk-fake-cluster).
struct Child {
  pid_t pid = -1;
  int in = -1, out = -1;
};

inline Child Spawn(const std::vector<std::string> &argv) {
  Child ch;
  int to[2], from[2];
  if (pipe(to) != 0) return ch;
  if (pipe(from) != 0) {
    close(to[0]);
    close(to[1]);
    return ch;
  }
  ch.pid = fork();
  if (ch.pid == 0) {
    dup2(to[0], 0);
    dup2(from[1], 1);
    close(to[0]);
    close(to[1]);
    close(from[0]);
    close(from[1]);
    std::vector<char *> args;
    for (const auto &a : argv) args.push_back(const_cast<char *>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(to[0]);
  close(from[1]);
  ch.in = to[1];
  ch.out = from[0];
  return ch;
}

// Reads one line from the child's output, waiting at most timeout_ms.
inline std::string ReadLine(const Child &ch, int timeout_ms) {
  std::string line;
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < end) {
    pollfd p{ch.out, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char c = 0;
    if (read(ch.out, &c, 1) != 1 || c == '\n') break;
    line += c;
  }
  return line;
}

// Closes the child's input (it exits on that), waits up to timeout_ms, then kills it.
inline void Finish(Child *ch, int timeout_ms) {
  if (ch->pid <= 0) return;
  close(ch->in);
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  int status = 0;
  while (waitpid(ch->pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > end) {
      kill(ch->pid, SIGKILL);
      waitpid(ch->pid, &status, 0);
      break;
    }
    usleep(10000);
  }
  close(ch->out);
  ch->pid = -1;
}

}  // namespace

#endif
