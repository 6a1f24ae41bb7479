// Tests of mir-keygen: the files it writes load back with the libraries replicas use, its keys
// sign and verify against the membership file, its TLS certificates (replicas' and clients')
// check against its CA, and it refuses bad arguments and overwriting.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern "C" {
#include "mir/alloc.h"
#include "mir/crypto.h"
#include "mir/membership.h"
}

namespace {

// Runs mir-keygen with args; returns its exit status and fills out with stdout and stderr.
int Keygen(const std::string &args, std::string *out = nullptr) {
  char log[] = "/tmp/mir-keygen-log-XXXXXX";
  int fd = mkstemp(log);
  EXPECT_GE(fd, 0);
  close(fd);
  std::string cmd = std::string(MIR_KEYGEN_PATH) + " " + args + " >" + log + " 2>&1";
  int status = std::system(cmd.c_str());
  std::ifstream f(log);
  std::stringstream ss;
  ss << f.rdbuf();
  if (out != nullptr) *out = ss.str();
  unlink(log);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string Read(const std::string &path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/mir-keygen-test-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf " + path).c_str()); }
};

// Checks that replica i's private key matches its .pub file and its membership entry, and that
// a signature made with it verifies under the membership key and fails under another replica's.
void CheckReplicaKeys(const std::string &dir, const mir_membership *m, size_t i) {
  std::string base = dir + "/replica-" + std::to_string(i);
  mir_private_key *key = nullptr;
  mir_public_key *file_pub = nullptr, *member = nullptr, *other = nullptr;
  ASSERT_EQ(mir_private_key_load((base + ".key").c_str(), &key), MIR_OK) << mir_error_detail();
  ASSERT_EQ(mir_public_key_load((base + ".pub").c_str(), &file_pub), MIR_OK);
  const mir_replica_info *r = &m->replicas[i];
  ASSERT_EQ(mir_public_key_from_bytes(m->scheme, r->public_key, r->public_key_len, &member),
            MIR_OK);
  const mir_replica_info *o = &m->replicas[(i + 1) % m->n];
  ASSERT_EQ(mir_public_key_from_bytes(m->scheme, o->public_key, o->public_key_len, &other), MIR_OK);
  mir_public_key *derived = mir_private_key_public(key);
  EXPECT_TRUE(mir_public_key_equal(derived, file_pub));
  EXPECT_TRUE(mir_public_key_equal(derived, member));
  std::string msg = "checkpoint " + std::to_string(i);
  ProtobufCBinaryData part = {msg.size(), reinterpret_cast<uint8_t *>(&msg[0])};
  uint8_t sig[MIR_SIGNATURE_LEN];
  size_t sig_len = 0;
  ASSERT_EQ(mir_sign(key, &part, 1, sig, &sig_len), MIR_OK);
  EXPECT_EQ(mir_verify(member, &part, 1, sig, sig_len), MIR_OK);
  EXPECT_EQ(mir_verify(other, &part, 1, sig, sig_len), MIR_ECRYPTO);
  struct stat st;
  ASSERT_EQ(stat((base + ".key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  for (mir_public_key *p : {file_pub, member, other, derived}) mir_public_key_free(p);
  mir_private_key_free(key);
}

}  // namespace

// A four-replica Ed25519 cluster with TLS: the membership file loads with ids 0..3 on
// consecutive ports, every key pair matches and works, and every certificate checks against
// the CA with the right replica id and has a usable P-256 key.
TEST(Keygen, Ed25519ClusterWithTlsLoadsBackAndWorks) {
  TempDir d;
  std::string out;
  ASSERT_EQ(Keygen("--n 4 --out " + d.path + " --base-port 7100 --tls", &out), 0) << out;
  mir_membership *m = nullptr;
  ASSERT_EQ(mir_membership_load((d.path + "/membership.json").c_str(), &m), MIR_OK)
      << mir_error_detail();
  ASSERT_EQ(m->n, 4u);
  EXPECT_EQ(m->scheme, MIR_SIG_ED25519);
  EXPECT_EQ(m->total_weight, 4u);
  std::string ca = Read(d.path + "/ca.pem");
  for (size_t i = 0; i < 4; i++) {
    EXPECT_EQ(std::string(m->replicas[i].id), std::to_string(i));
    EXPECT_EQ(std::string(m->replicas[i].address), "127.0.0.1:" + std::to_string(7100 + i));
    CheckReplicaKeys(d.path, m, i);
    std::string base = d.path + "/replica-" + std::to_string(i);
    std::string cert = Read(base + ".crt"), tls_key = Read(base + ".tls.key");
    char id[MIR_MODULE_ID_MAX];
    EXPECT_EQ(mir_tls_cert_check(ca.c_str(), cert.c_str(), id, sizeof id), MIR_OK)
        << mir_error_detail();
    EXPECT_EQ(std::string(id), std::to_string(i));
    mir_private_key *k = nullptr;
    ASSERT_EQ(mir_private_key_from_pem(tls_key.data(), tls_key.size(), &k), MIR_OK);
    EXPECT_EQ(mir_private_key_scheme(k), MIR_SIG_ECDSA_P256);
    mir_private_key_free(k);
  }
  struct stat st;
  ASSERT_EQ(stat((d.path + "/ca.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  mir_membership_free(m);
}

// An ECDSA P-256 cluster on another host and base port loads back, and its keys work.
TEST(Keygen, EcdsaClusterLoadsBackAndWorks) {
  TempDir d;
  std::string out;
  ASSERT_EQ(
      Keygen("--n 3 --scheme ecdsa-p256 --host 10.0.0.5 --base-port 9000 --out " + d.path, &out), 0)
      << out;
  mir_membership *m = nullptr;
  ASSERT_EQ(mir_membership_load((d.path + "/membership.json").c_str(), &m), MIR_OK)
      << mir_error_detail();
  ASSERT_EQ(m->n, 3u);
  EXPECT_EQ(m->scheme, MIR_SIG_ECDSA_P256);
  EXPECT_EQ(std::string(m->replicas[2].address), "10.0.0.5:9002");
  for (size_t i = 0; i < 3; i++) CheckReplicaKeys(d.path, m, i);
  EXPECT_NE(access((d.path + "/ca.pem").c_str(), F_OK), 0);  // no --tls, no CA
  mir_membership_free(m);
}

// A second run into the same folder is refused and leaves the keys alone; --force replaces
// them.
TEST(Keygen, RefusesToOverwriteWithoutForce) {
  TempDir d;
  ASSERT_EQ(Keygen("--n 2 --out " + d.path), 0);
  std::string before = Read(d.path + "/replica-0.key");
  std::string out;
  EXPECT_EQ(Keygen("--n 2 --out " + d.path, &out), 1);
  EXPECT_NE(out.find("exists"), std::string::npos) << out;
  EXPECT_EQ(Read(d.path + "/replica-0.key"), before);
  EXPECT_EQ(Keygen("--n 2 --out " + d.path + " --force"), 0);
  EXPECT_NE(Read(d.path + "/replica-0.key"), before);
}

// Bad arguments exit with status 2 and a message; --help documents every option and exits 0.
TEST(Keygen, RejectsBadArgumentsAndDocumentsOptions) {
  TempDir d;
  for (const std::string &args :
       {std::string("--n 0 --out ") + d.path, std::string("--n 1025 --out ") + d.path,
        std::string("--n 2 --scheme rsa --out ") + d.path,
        std::string("--n 2 --base-port 65535 --out ") + d.path,
        std::string("--n 2 --host a,b --out ") + d.path, std::string("--n 2"),
        std::string("--n 2 --out ") + d.path + " extra"}) {
    std::string out;
    EXPECT_EQ(Keygen(args, &out), 2) << args << "\n" << out;
  }
  EXPECT_NE(access((d.path + "/membership.json").c_str(), F_OK), 0);
  std::string help;
  ASSERT_EQ(Keygen("--help", &help), 0);
  for (const char *opt :
       {"--n", "--out", "--scheme", "--base-port", "--host", "--tls", "--client", "--force"}) {
    EXPECT_NE(help.find(opt), std::string::npos) << opt;
  }
}

// Client certificates, made with a new cluster (--n --tls --client) or later from its CA
// (--out DIR --client): each checks against the CA as a client with its id, is no replica
// certificate, and has a P-256 key of mode 0600; existing ones are not overwritten without
// --force; a bad id, --client with --n but without --tls, or a folder without a CA is refused.
TEST(Keygen, ClientCertificatesCheckAgainstTheCa) {
  TempDir d;
  std::string out;
  ASSERT_EQ(Keygen("--n 1 --tls --client alice --client u@h:1 --out " + d.path, &out), 0) << out;
  ASSERT_EQ(Keygen("--client carol --out " + d.path, &out), 0) << out;
  std::string ca = Read(d.path + "/ca.pem");
  for (const char *client : {"alice", "u@h:1", "carol"}) {
    std::string base = d.path + "/client-" + client;
    std::string cert = Read(base + ".crt"), key = Read(base + ".key");
    char id[MIR_TLS_CLIENT_ID_MAX + 1];
    EXPECT_EQ(mir_tls_client_cert_check(ca.c_str(), cert.c_str(), id, sizeof id), MIR_OK)
        << client << ": " << mir_error_detail();
    EXPECT_EQ(std::string(id), client);
    char rid[MIR_MODULE_ID_MAX];
    EXPECT_EQ(mir_tls_cert_check(ca.c_str(), cert.c_str(), rid, sizeof rid), MIR_ECRYPTO);
    mir_private_key *k = nullptr;
    ASSERT_EQ(mir_private_key_from_pem(key.data(), key.size(), &k), MIR_OK);
    EXPECT_EQ(mir_private_key_scheme(k), MIR_SIG_ECDSA_P256);
    mir_private_key_free(k);
    struct stat st;
    ASSERT_EQ(stat((base + ".key").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
  }
  // A replica certificate is no client certificate.
  std::string replica = Read(d.path + "/replica-0.crt");
  char id[MIR_TLS_CLIENT_ID_MAX + 1];
  EXPECT_EQ(mir_tls_client_cert_check(ca.c_str(), replica.c_str(), id, sizeof id), MIR_ECRYPTO);
  EXPECT_NE(std::string(mir_error_detail()).find("names no client"), std::string::npos);
  std::string before = Read(d.path + "/client-carol.crt");
  EXPECT_EQ(Keygen("--client carol --out " + d.path, &out), 1);
  EXPECT_NE(out.find("exists"), std::string::npos) << out;
  EXPECT_EQ(Read(d.path + "/client-carol.crt"), before);
  EXPECT_EQ(Keygen("--client carol --force --out " + d.path, &out), 0) << out;
  EXPECT_NE(Read(d.path + "/client-carol.crt"), before);
  EXPECT_EQ(Keygen("--client 'a b' --out " + d.path, &out), 2) << out;
  EXPECT_EQ(Keygen("--client a/b --out " + d.path, &out), 2) << out;
  TempDir e;
  EXPECT_EQ(Keygen("--n 1 --client x --out " + e.path, &out), 2) << out;
  EXPECT_EQ(Keygen("--client x --out " + e.path, &out), 1) << out;
  EXPECT_NE(out.find("ca.pem"), std::string::npos) << out;
}

// The key set a replica builds from keygen's membership file and its own key file signs what
// the key set of another replica accepts as coming from it; another replica's private key, or a
// replica id the membership does not list, is refused.
TEST(Keygen, KeySetFromMembershipSignsAndVerifies) {
  TempDir d;
  ASSERT_EQ(Keygen("--n 4 --out " + d.path), 0);
  mir_membership *m = nullptr;
  ASSERT_EQ(mir_membership_load((d.path + "/membership.json").c_str(), &m), MIR_OK);
  mir_private_key *k1 = nullptr, *k2 = nullptr, *k3 = nullptr;
  ASSERT_EQ(mir_private_key_load((d.path + "/replica-1.key").c_str(), &k1), MIR_OK);
  ASSERT_EQ(mir_private_key_load((d.path + "/replica-2.key").c_str(), &k2), MIR_OK);
  ASSERT_EQ(mir_private_key_load((d.path + "/replica-3.key").c_str(), &k3), MIR_OK);
  mir_keyset *ks1 = nullptr, *ks2 = nullptr, *bad = nullptr;
  ASSERT_EQ(mir_keyset_from_membership(m, "1", k1, &ks1), MIR_OK) << mir_error_detail();
  ASSERT_EQ(mir_keyset_from_membership(m, "2", k2, &ks2), MIR_OK) << mir_error_detail();
  EXPECT_EQ(mir_keyset_count(ks1), 4u);
  std::string msg = "prepare";
  ProtobufCBinaryData part = {msg.size(), reinterpret_cast<uint8_t *>(&msg[0])};
  uint8_t sig[MIR_SIGNATURE_LEN];
  size_t sig_len = 0;
  ASSERT_EQ(mir_keyset_sign(ks1, &part, 1, sig, &sig_len), MIR_OK);
  EXPECT_EQ(mir_keyset_verify(ks2, "1", &part, 1, sig, sig_len), MIR_OK);
  EXPECT_EQ(mir_keyset_verify(ks2, "2", &part, 1, sig, sig_len), MIR_ECRYPTO);
  EXPECT_EQ(mir_keyset_from_membership(m, "0", k3, &bad), MIR_ECONFIG);  // frees k3
  EXPECT_NE(std::string(mir_error_detail()).find("does not match"), std::string::npos);
  EXPECT_EQ(mir_keyset_from_membership(m, "9", nullptr, &bad), MIR_ECONFIG);
  EXPECT_EQ(bad, nullptr);
  mir_keyset_free(ks1);
  mir_keyset_free(ks2);
  mir_membership_free(m);
}
