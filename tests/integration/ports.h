// Ports for test clusters on 127.0.0.1, shared by every test that starts real processes
// (integration/cluster.cc, the SDK's end-to-end test), so that tests running at the same time
// never choose the same ports and none lies in the kernel's ephemeral range.
#ifndef MIR_TESTS_INTEGRATION_PORTS_H
#define MIR_TESTS_INTEGRATION_PORTS_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>

namespace mirtest {

inline bool PortFree(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof(a)) == 0;
  close(fd);
  return ok;
}

// The first port the kernel hands out for outgoing connections (ip_local_port_range): test
// ports lie below it, so that no client socket of any program can take one between the check
// and the bind.
inline int EphemeralLow() {
  std::ifstream f("/proc/sys/net/ipv4/ip_local_port_range");
  int lo = 0;
  if (!(f >> lo) || lo < 16384) lo = 32768;
  return lo;
}

// A base port with `count` free ports from it. Ports come in blocks of kPortBlock below the
// ephemeral range; a test process takes a block by holding an exclusive flock on its lock file
// in $TMPDIR/mir-test-ports until it exits, so tests that run at the same time (ctest -j, or two
// suites on one machine) never choose the same ports. Servers may set SO_REUSEPORT (gRPC does),
// which would otherwise let two clusters bind one port and receive each other's connections.
// A program outside the tests can still take a port; PortFree checks for that. Other tests pick
// their own ports below kPortFirst (Prometheus near 19090, the compose cluster from 21000).
inline constexpr int kPortBlock = 64;
inline constexpr int kPortFirst = 26112;

inline int FindPorts(int count) {
  if (count < 1 || count > kPortBlock) return 0;
  const char *tmp = getenv("TMPDIR");
  std::string dir = std::string(tmp != nullptr ? tmp : "/tmp") + "/mir-test-ports";
  mkdir(dir.c_str(), 0777);
  int blocks = (EphemeralLow() - kPortFirst) / kPortBlock;
  if (blocks < 1) return 0;
  std::mt19937 rng(
      static_cast<unsigned>(getpid()) ^
      static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count()));
  for (int attempt = 0; attempt < 4 * blocks; attempt++) {
    int block = static_cast<int>(rng() % static_cast<unsigned>(blocks));
    std::string lock = dir + "/block-" + std::to_string(block);
    int fd = open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) continue;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      close(fd);
      continue; /* another test process holds it */
    }
    int base = kPortFirst + block * kPortBlock;
    bool ok = true;
    for (int i = 0; i < count && ok; i++) ok = PortFree(base + i);
    if (ok) return base; /* fd stays open: the block is ours until the process exits */
    close(fd);
  }
  return 0;
}

}  // namespace mirtest

#endif
