// Cross-backend tests of the crypto seam: the fixtures under fixtures/boringssl and
// fixtures/openssl were written once by each backend (make_fixtures.c); this file is built against
// both backends, so each backend checks its own files and the other's. Ed25519 keys, PEM text and
// signatures must be byte-identical across backends; a P-256 key derived from a seed must be the
// same key; ECDSA signatures, PEM keys and TLS certificates of one backend must verify, load and
// check in the other; certificates a hostile peer could make are refused by both.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern "C" {
#include "mir/alloc.h"
#include "mir/crypto.h"
}
#include "fixture_data.h"

namespace {

std::string FixturePath(const std::string &set, const std::string &name) {
  return std::string(MIR_CRYPTO_FIXTURES) + "/" + set + "/" + name;
}

std::string ReadText(const std::string &path) {
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path;
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The signature stored in <set>/<name>.sig as hex.
std::vector<uint8_t> ReadSig(const std::string &set, const std::string &name) {
  std::string hex = ReadText(FixturePath(set, name + ".sig"));
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size() && hex[i] != '\n'; i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

std::vector<uint8_t> RawBytes(const mir_public_key *key) {
  uint8_t raw[MIR_PUBLIC_KEY_MAX];
  size_t len = mir_public_key_bytes(key, raw);
  return std::vector<uint8_t>(raw, raw + len);
}

// The fixture key of id, derived in this process. Returns owned (free with mir_private_key_free).
mir_private_key *Derive(mir_sig_scheme scheme, const char *id) {
  uint8_t seed[MIR_SIG_SEED_LEN];
  mir_crypto_pseudo_seed(FIXTURE_SEED, id, seed);
  mir_private_key *key = nullptr;
  EXPECT_EQ(mir_private_key_from_seed(scheme, seed, &key), MIR_OK) << mir_error_detail();
  return key;
}

// The fixture key files of one scheme in one set, loaded, with the key derived here.
struct LoadedKeys {
  mir_private_key *file_key = nullptr, *derived = nullptr;
  mir_public_key *file_pub = nullptr, *derived_pub = nullptr;
  LoadedKeys(const std::string &set, mir_sig_scheme scheme, const char *id, const char *name) {
    EXPECT_EQ(mir_private_key_load(FixturePath(set, std::string(name) + ".key").c_str(), &file_key),
              MIR_OK)
        << mir_error_detail();
    EXPECT_EQ(mir_public_key_load(FixturePath(set, std::string(name) + ".pub").c_str(), &file_pub),
              MIR_OK)
        << mir_error_detail();
    derived = Derive(scheme, id);
    if (derived != nullptr) derived_pub = mir_private_key_public(derived);
  }
  ~LoadedKeys() {
    mir_private_key_free(file_key);
    mir_private_key_free(derived);
    mir_public_key_free(file_pub);
    mir_public_key_free(derived_pub);
  }
  bool ok() const { return file_key && file_pub && derived && derived_pub; }
};

class FixtureSet : public ::testing::TestWithParam<std::string> {};

}  // namespace

// The Ed25519 fixture of either backend is byte-identical to what this backend makes from the
// same seed: public key, private key PEM text and the (deterministic) signature of the fixture
// list; the stored signature verifies and stops verifying when the list changes.
TEST_P(FixtureSet, Ed25519IsByteIdentical) {
  LoadedKeys k(GetParam(), MIR_SIG_ED25519, FIXTURE_ED25519_ID, "ed25519");
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(mir_private_key_scheme(k.file_key), MIR_SIG_ED25519);
  EXPECT_EQ(RawBytes(k.file_pub), RawBytes(k.derived_pub));
  char *pem = nullptr;
  ASSERT_EQ(mir_private_key_to_pem(k.derived, &pem), MIR_OK);
  EXPECT_EQ(std::string(pem), ReadText(FixturePath(GetParam(), "ed25519.key")));
  free(pem);
  ASSERT_EQ(mir_public_key_to_pem(k.derived_pub, &pem), MIR_OK);
  EXPECT_EQ(std::string(pem), ReadText(FixturePath(GetParam(), "ed25519.pub")));
  free(pem);
  ProtobufCBinaryData parts[FIXTURE_N_PARTS];
  fixture_parts(parts);
  std::vector<uint8_t> want = ReadSig(GetParam(), "ed25519");
  uint8_t sig[MIR_SIGNATURE_LEN];
  size_t sig_len = 0;
  ASSERT_EQ(mir_sign(k.file_key, parts, FIXTURE_N_PARTS, sig, &sig_len), MIR_OK);
  EXPECT_EQ(std::vector<uint8_t>(sig, sig + sig_len), want);
  EXPECT_EQ(mir_verify(k.file_pub, parts, FIXTURE_N_PARTS, want.data(), want.size()), MIR_OK);
  EXPECT_EQ(mir_verify(k.file_pub, parts, 2, want.data(), want.size()), MIR_ECRYPTO);
}

// The ECDSA P-256 fixture key is the key this backend derives from the same seed (so pseudo key
// sets agree across backends); the other backend's stored signature verifies here, a one-bit
// change of it does not, and a signature made here with the loaded key verifies under the
// loaded public key.
TEST_P(FixtureSet, EcdsaKeysAgreeAndSignaturesVerify) {
  LoadedKeys k(GetParam(), MIR_SIG_ECDSA_P256, FIXTURE_ECDSA_ID, "ecdsa");
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(mir_private_key_scheme(k.file_key), MIR_SIG_ECDSA_P256);
  EXPECT_EQ(RawBytes(k.file_pub), RawBytes(k.derived_pub));
  mir_public_key *file_key_pub = mir_private_key_public(k.file_key);
  EXPECT_TRUE(mir_public_key_equal(file_key_pub, k.file_pub));
  mir_public_key_free(file_key_pub);
  ProtobufCBinaryData parts[FIXTURE_N_PARTS];
  fixture_parts(parts);
  std::vector<uint8_t> stored = ReadSig(GetParam(), "ecdsa");
  ASSERT_EQ(stored.size(), static_cast<size_t>(MIR_SIGNATURE_LEN));
  EXPECT_EQ(mir_verify(k.file_pub, parts, FIXTURE_N_PARTS, stored.data(), stored.size()), MIR_OK);
  EXPECT_EQ(mir_verify(k.derived_pub, parts, FIXTURE_N_PARTS, stored.data(), stored.size()),
            MIR_OK);
  stored[40] ^= 0x10;
  EXPECT_EQ(mir_verify(k.file_pub, parts, FIXTURE_N_PARTS, stored.data(), stored.size()),
            MIR_ECRYPTO);
  uint8_t sig[MIR_SIGNATURE_LEN];
  size_t sig_len = 0;
  ASSERT_EQ(mir_sign(k.file_key, parts, FIXTURE_N_PARTS, sig, &sig_len), MIR_OK);
  EXPECT_EQ(mir_verify(k.file_pub, parts, FIXTURE_N_PARTS, sig, sig_len), MIR_OK);
}

// A replica certificate issued by either backend checks out here against its CA and names its
// replica; the CA key loads and issues a new certificate here that checks against the same CA;
// the replica's TLS key loads as an ECDSA P-256 key.
TEST_P(FixtureSet, TlsCertificatesCheckAndIssue) {
  std::string ca = ReadText(FixturePath(GetParam(), "ca.crt"));
  std::string ca_key = ReadText(FixturePath(GetParam(), "ca.key"));
  std::string cert = ReadText(FixturePath(GetParam(), "replica.crt"));
  char id[MIR_MODULE_ID_MAX];
  EXPECT_EQ(mir_tls_cert_check(ca.c_str(), cert.c_str(), id, sizeof id), MIR_OK)
      << mir_error_detail();
  EXPECT_STREQ(id, FIXTURE_REPLICA_ID);
  char *cert2 = nullptr, *key2 = nullptr;
  ASSERT_EQ(
      mir_tls_cert_new(ca.c_str(), ca_key.c_str(), "12", "replica12.example", 30, &cert2, &key2),
      MIR_OK)
      << mir_error_detail();
  EXPECT_EQ(mir_tls_cert_check(ca.c_str(), cert2, id, sizeof id), MIR_OK) << mir_error_detail();
  EXPECT_STREQ(id, "12");
  free(cert2);
  free(key2);
  mir_private_key *tls_key = nullptr;
  ASSERT_EQ(mir_private_key_load(FixturePath(GetParam(), "replica.key").c_str(), &tls_key), MIR_OK)
      << mir_error_detail();
  EXPECT_EQ(mir_private_key_scheme(tls_key), MIR_SIG_ECDSA_P256);
  mir_private_key_free(tls_key);
}

INSTANTIATE_TEST_SUITE_P(Backends, FixtureSet, ::testing::Values("boringssl", "openssl"),
                         [](const ::testing::TestParamInfo<std::string> &p) { return p.param; });

// The two backends' fixtures agree with each other directly: same Ed25519 signature and keys,
// same derived ECDSA public key; and a certificate of one backend's CA does not check against the
// other's CA.
TEST(FixtureSets, AgreeWithEachOther) {
  EXPECT_EQ(ReadSig("boringssl", "ed25519"), ReadSig("openssl", "ed25519"));
  for (const char *name : {"ed25519.key", "ed25519.pub", "ecdsa.pub"}) {
    EXPECT_EQ(ReadText(FixturePath("boringssl", name)), ReadText(FixturePath("openssl", name)))
        << name;
  }
  std::string ca_b = ReadText(FixturePath("boringssl", "ca.crt"));
  std::string cert_o = ReadText(FixturePath("openssl", "replica.crt"));
  char id[MIR_MODULE_ID_MAX];
  EXPECT_EQ(mir_tls_cert_check(ca_b.c_str(), cert_o.c_str(), id, sizeof id), MIR_ECRYPTO);
  EXPECT_STREQ(id, "");
}

// Certificates a hostile peer could present (fixtures/hostile/make.sh, made with the openssl
// command line) are refused by both backends: a replica id with a character ids never have, no
// replica URI at all, and a certificate that names the cluster CA as issuer but was signed by
// another key. The id buffer is left empty, also for badid.crt, whose rejected id ("bad/id") was
// copied into it while it was checked.
TEST(FixtureSets, HostileCertificatesAreRefused) {
  std::string ca = ReadText(FixturePath("openssl", "ca.crt"));
  for (const char *name : {"badid.crt", "noreplica.crt", "forged.crt"}) {
    std::string cert = ReadText(FixturePath("hostile", name));
    ASSERT_FALSE(cert.empty()) << name;
    char id[MIR_MODULE_ID_MAX];
    memset(id, 'x', sizeof id);
    EXPECT_EQ(mir_tls_cert_check(ca.c_str(), cert.c_str(), id, sizeof id), MIR_ECRYPTO) << name;
    EXPECT_NE(strstr(mir_error_detail(),
                     std::string(name) == "forged.crt" ? "not issued" : "names no replica"),
              nullptr)
        << name << ": " << mir_error_detail();
    EXPECT_STREQ(id, "") << name;
  }
}
