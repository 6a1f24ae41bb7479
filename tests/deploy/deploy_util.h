// Helpers of the deployment tests (tests/deploy): commands with a time limit, the Docker engine,
// the project's image (built once and then taken from Docker's layer cache), replica positions
// read with mir-status --json, and an SDK client that commits a bounded number of transactions.
// Every command is bounded in time; every container, network and volume a test makes carries the
// test's own name and process id and is removed by that test.
#ifndef DEPLOY_UTIL_H
#define DEPLOY_UTIL_H

#include <gtest/gtest.h>
#include <mir/client.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "sdk/sdk_proc.h"

namespace deploy {

struct Result {
  int rc = -1;
  std::string out;
};

// Runs argv (argv[0] looked up in PATH) with extra environment entries, output and errors
// together, killed after timeout_ms.
inline Result Cmd(const std::vector<std::string> &argv, int timeout_ms,
                  const std::vector<std::string> &env = {}) {
  std::vector<std::string> full = {"/usr/bin/env"};
  full.insert(full.end(), argv.begin(), argv.end());
  Result r;
  r.rc = RunProgram(full, env, timeout_ms, &r.out);
  return r;
}

inline std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

// A new private folder named prefix-XXXXXX under TMPDIR (else /tmp); empty if none can be made.
// The caller removes it.
inline std::string TempDir(const std::string &prefix) {
  const char *tmp = getenv("TMPDIR");
  std::string t =
      std::string(tmp != nullptr && tmp[0] != '\0' ? tmp : "/tmp") + "/" + prefix + "-XXXXXX";
  std::vector<char> buf(t.begin(), t.end());
  buf.push_back('\0');
  return mkdtemp(buf.data()) != nullptr ? buf.data() : "";
}

// Whether a Docker engine answers here; the reason when not.
inline bool DockerAnswers(std::string *why) {
  Result r = Cmd({"docker", "info", "--format", "{{.ServerVersion}}"}, 30000);
  if (r.rc != 0) *why = "no Docker engine answers (docker info: " + Trim(r.out) + ")";
  return r.rc == 0;
}

// The compose command of this machine: "docker compose" (v2) or docker-compose (v1); empty if
// neither runs.
inline std::vector<std::string> ComposeCommand() {
  if (Cmd({"docker", "compose", "version"}, 30000).rc == 0) return {"docker", "compose"};
  if (Cmd({"docker-compose", "version"}, 30000).rc == 0) return {"docker-compose"};
  return {};
}

constexpr const char *kImage = "mir-c:ctest";

// Builds the base image where it is missing (scripts/docker-base-image.sh) and the project's
// image from the source tree: unchanged layers come from Docker's cache, so only the first build
// after a change of the sources compiles. *log receives the output.
inline bool BuildImage(std::string *log) {
  std::string src = MIR_SOURCE_DIR;
  Result base = Cmd({src + "/scripts/docker-base-image.sh"}, 1200000);
  *log = base.out;
  if (base.rc != 0) return false;
  Result b = Cmd({"docker", "build", "-t", kImage, src}, 3000000);
  *log += b.out;
  return b.rc == 0;
}

// One replica's position from a mir-status --json line.
struct Position {
  std::string addr;
  long long next_sn = -1;
  std::string log_hash;
};

inline std::vector<Position> ParseStatus(const std::string &out) {
  std::vector<Position> ps;
  std::regex re("\"addr\":\"([^\"]*)\".*\"next_sn\":([0-9]+).*\"log_hash\":\"([0-9a-f]*)\"");
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, re)) ps.push_back({m[1], std::stoll(m[2]), m[3]});
  }
  return ps;
}

// Whether n positions were read and all are equal (same next_sn, same log hash).
inline bool AllEqual(const std::vector<Position> &ps, size_t n) {
  if (ps.size() != n) return false;
  for (const auto &p : ps) {
    if (p.next_sn != ps[0].next_sn || p.log_hash != ps[0].log_hash) return false;
  }
  return true;
}

// Submits n transactions of 64 bytes under client_id through libmirclient and waits until each
// has an outcome or timeout_ms passes. Returns how many committed; *why says what went wrong.
// With tls_dir, the client talks TLS trusting tls_dir/ca.pem and presents
// tls_dir/client-<client_id>.crt and .key (as mir-keygen --client names them).
inline long CommitTxs(const std::vector<std::string> &addrs, const std::string &client_id, long n,
                      int timeout_ms, std::string *why, const std::string &tls_dir = "") {
  std::vector<const char *> rs;
  for (const auto &a : addrs) rs.push_back(a.c_str());
  mir_client_options o;
  mir_client_options_init(&o);
  o.replicas = rs.data();
  o.n_replicas = rs.size();
  o.client_id = client_id.c_str();
  o.connect_timeout_ms = 20000;
  std::string ca = tls_dir + "/ca.pem", cert = tls_dir + "/client-" + client_id + ".crt",
              key = tls_dir + "/client-" + client_id + ".key";
  if (!tls_dir.empty()) {
    o.tls_ca_file = ca.c_str();
    o.tls_cert_file = cert.c_str();
    o.tls_key_file = key.c_str();
  }
  mir_client *c = nullptr;
  if (mir_client_open(&o, &c) != MIR_CLIENT_OK) {
    *why = std::string("open: ") + mir_client_errdetail();
    return 0;
  }
  struct Counts {
    std::atomic<long> committed{0}, failed{0};
  } counts;
  auto done = [](mir_client *, const mir_client_result *r, void *u) {
    auto *k = static_cast<Counts *>(u);
    (r->status == MIR_CLIENT_OK ? k->committed : k->failed)++;
  };
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char data[64] = {0};
  long submitted = 0;
  mir_client_ticket oldest = 0, t = 0;
  while (submitted < n && std::chrono::steady_clock::now() < end) {
    snprintf(data, sizeof(data), "%s tx %ld", client_id.c_str(), submitted);
    int rc = mir_client_submit(c, data, sizeof(data), done, &counts, &t);
    if (rc == MIR_CLIENT_OK) {
      if (submitted++ == 0) oldest = t;
    } else if (rc == MIR_CLIENT_EFULL) {
      mir_client_wait(c, oldest++, 100, nullptr);  // the window frees from its oldest ticket
    } else {
      *why = std::string("submit: ") + mir_client_strerror(rc);
      break;
    }
  }
  while (counts.committed + counts.failed < submitted && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  long committed = counts.committed;
  if (why->empty() && committed < n) {
    *why = std::to_string(submitted) + " submitted, " + std::to_string(committed) + " committed, " +
           std::to_string(counts.failed.load()) + " failed in time";
  }
  mir_client_close(c);
  return committed;
}

}  // namespace deploy

#endif
