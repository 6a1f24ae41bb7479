// Tests of the crypto library: Ed25519 and ECDSA P-256 signatures over length-prefixed lists,
// SHA-256 and the hasher encoding, key files and base64, the key set, and TLS certificates.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "mir/alloc.h"
#include "mir/crypto.h"
#include "mir/hasher.h"
}

namespace {

std::vector<uint8_t> Hex(const std::string &s) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < s.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoul(s.substr(i, 2), nullptr, 16)));
  }
  return out;
}

std::string ToHex(const uint8_t *p, size_t n) {
  static const char *digits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; i++) {
    s += digits[p[i] >> 4];
    s += digits[p[i] & 15];
  }
  return s;
}

// A byte string viewing s, which must outlive the use (a named string or a literal).
ProtobufCBinaryData Part(const std::string &s) {
  ProtobufCBinaryData b;
  b.len = s.size();
  b.data = reinterpret_cast<uint8_t *>(const_cast<char *>(s.data()));
  return b;
}
ProtobufCBinaryData Part(const char *literal) {
  ProtobufCBinaryData b;
  b.len = strlen(literal);
  b.data = reinterpret_cast<uint8_t *>(const_cast<char *>(literal));
  return b;
}

std::string TempDir() {
  char tmpl[] = "/tmp/mir-crypto-test-XXXXXX";
  char *d = mkdtemp(tmpl);
  EXPECT_NE(d, nullptr);
  return d ? d : "/tmp";
}

// RFC 8032, section 7.1: secret seed, public key, message and signature.
struct Rfc8032Vector {
  const char *secret, *pub, *msg, *sig;
};
const Rfc8032Vector kRfc8032[] = {
    {"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e3970"
     "1cf9b46bd25bf5f0595bbe24655141438e7a100b"},
    {"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613"
     "d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
    {"c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760"
     "984dc6594a7c15e9716ed28dc027beceea1ec40a"},
};

class SchemeTest : public ::testing::TestWithParam<mir_sig_scheme> {};

}  // namespace

// The Ed25519 key derived from each RFC 8032 test seed has the published public key, and
// signing the test message gives the published signature byte for byte.
TEST(Ed25519, Rfc8032Vectors) {
  for (const auto &v : kRfc8032) {
    std::vector<uint8_t> seed = Hex(v.secret), msg = Hex(v.msg);
    mir_private_key *key = nullptr;
    ASSERT_EQ(mir_private_key_from_seed(MIR_SIG_ED25519, seed.data(), &key), MIR_OK);
    mir_public_key *pub = mir_private_key_public(key);
    uint8_t raw[MIR_PUBLIC_KEY_MAX];
    size_t raw_len = mir_public_key_bytes(pub, raw);
    EXPECT_EQ(ToHex(raw, raw_len), v.pub);
    uint8_t sig[MIR_SIGNATURE_LEN];
    size_t sig_len = 0;
    ASSERT_EQ(mir_sign_message(key, msg.data(), msg.size(), sig, &sig_len), MIR_OK);
    EXPECT_EQ(ToHex(sig, sig_len), v.sig);
    EXPECT_EQ(mir_verify_message(pub, msg.data(), msg.size(), sig, sig_len), MIR_OK);
    mir_public_key_free(pub);
    mir_private_key_free(key);
  }
}

// A published RFC 8032 signature verifies under the published key (built from raw bytes), and
// stops verifying when any single bit of it is flipped.
TEST(Ed25519, Rfc8032SignatureRejectsEveryFlippedBit) {
  const auto &v = kRfc8032[2];
  std::vector<uint8_t> pub_raw = Hex(v.pub), msg = Hex(v.msg), sig = Hex(v.sig);
  mir_public_key *pub = nullptr;
  ASSERT_EQ(mir_public_key_from_bytes(MIR_SIG_ED25519, pub_raw.data(), pub_raw.size(), &pub),
            MIR_OK);
  ASSERT_EQ(mir_verify_message(pub, msg.data(), msg.size(), sig.data(), sig.size()), MIR_OK);
  for (size_t bit = 0; bit < sig.size() * 8; bit++) {
    std::vector<uint8_t> bad = sig;
    bad[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    EXPECT_EQ(mir_verify_message(pub, msg.data(), msg.size(), bad.data(), bad.size()), MIR_ECRYPTO)
        << "bit " << bit;
  }
  mir_public_key_free(pub);
}

// Ed25519 edge cases get the same verdict from both backends (this test runs against each):
// verification is cofactorless, requires a canonical S (S < L), and checks neither the public key
// nor R for small order or a canonical encoding of the key. Replicas must agree on every
// signature whatever backend they run, so a library change that moves any verdict fails here.
TEST(Ed25519, EdgeCaseVerdictsAreTheSameOnBothBackends) {
  const char *identity = "0100000000000000000000000000000000000000000000000000000000000000";
  const char *order8 = "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a";
  const char *identity_noncanonical =  // y = p + 1
      "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f";
  const char *identity_negative_x =
      "0100000000000000000000000000000000000000000000000000000000000080";
  const std::string zero_s(64, '0');
  struct Case {
    std::string pub, r, s, msg;
    mir_err want;
  } cases[] = {
      {kRfc8032[0].pub, std::string(kRfc8032[0].sig, 64), std::string(kRfc8032[0].sig + 64), "",
       MIR_OK},
      // The same signature with S + L: the same value modulo L, but not canonical.
      {kRfc8032[0].pub, std::string(kRfc8032[0].sig, 64),
       "4c8c7872aa064e049dbb3013fbf29380d25bf5f0595bbe24655141438e7a101b", "", MIR_ECRYPTO},
      // The identity as public key and R, S = 0: "verifies" any message on both.
      {identity, identity, zero_s, "78", MIR_OK},
      {identity_noncanonical, identity, zero_s, "78", MIR_OK},
      {identity_negative_x, identity, zero_s, "78", MIR_OK},
      // A point of order 8 as key: k * A is not the identity for this message.
      {order8, identity, zero_s, "78", MIR_ECRYPTO},
      {order8, order8, zero_s, "78", MIR_ECRYPTO},
      // A non-canonical R never equals the recomputed (canonical) R.
      {identity, identity_noncanonical, zero_s, "78", MIR_ECRYPTO},
  };
  for (const auto &c : cases) {
    std::vector<uint8_t> pub_raw = Hex(c.pub), sig = Hex(c.r + c.s), msg = Hex(c.msg);
    mir_public_key *pub = nullptr;
    ASSERT_EQ(mir_public_key_from_bytes(MIR_SIG_ED25519, pub_raw.data(), pub_raw.size(), &pub),
              MIR_OK);
    EXPECT_EQ(mir_verify_message(pub, msg.data(), msg.size(), sig.data(), sig.size()), c.want)
        << "key " << c.pub << " R " << c.r << " S " << c.s;
    mir_public_key_free(pub);
  }
}

// SHA-256 gives the FIPS 180-2 digests of "abc" and of the 448-bit two-block message, and of
// the empty string.
TEST(Sha256, Fips180ShortVectors) {
  uint8_t d[MIR_HASH_LEN];
  mir_sha256("abc", 3, d);
  EXPECT_EQ(ToHex(d, sizeof d), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  mir_sha256(two, strlen(two), d);
  EXPECT_EQ(ToHex(d, sizeof d), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  mir_sha256("", 0, d);
  EXPECT_EQ(ToHex(d, sizeof d), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

// The million-'a' FIPS 180-2 vector comes out the same in one call and streamed in uneven
// pieces through the incremental interface.
TEST(Sha256, Fips180MillionA) {
  const std::string a(1000000, 'a');
  const char *want = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
  uint8_t d[MIR_HASH_LEN];
  mir_sha256(a.data(), a.size(), d);
  EXPECT_EQ(ToHex(d, sizeof d), want);
  mir_hash_ctx ctx;
  mir_hash_init(&ctx);
  for (size_t off = 0, step = 1; off < a.size(); off += step, step = step * 3 % 1000 + 1) {
    mir_hash_update_raw(&ctx, a.data() + off, std::min(step, a.size() - off));
  }
  mir_hash_final(&ctx, d);
  EXPECT_EQ(ToHex(d, sizeof d), want);
}

// The list digest is SHA-256 of the length-prefixed encoding, so ["ab","c"], ["a","bc"],
// ["abc"], [] and [""] all hash differently.
TEST(Hasher, LengthPrefixSeparatesLists) {
  std::vector<std::vector<std::string>> lists = {{"ab", "c"}, {"a", "bc"}, {"abc"}, {}, {""}};
  std::vector<std::string> digests;
  for (const auto &l : lists) {
    std::vector<ProtobufCBinaryData> parts;
    for (const auto &s : l) parts.push_back(Part(s));
    uint8_t d[MIR_HASH_LEN];
    mir_hash_parts(parts.data(), parts.size(), d);
    digests.push_back(ToHex(d, sizeof d));
  }
  for (size_t i = 0; i < digests.size(); i++) {
    for (size_t j = i + 1; j < digests.size(); j++) EXPECT_NE(digests[i], digests[j]) << i << j;
  }
  // ["ab","c"] is SHA-256 over 00..02 'a' 'b' 00..01 'c'.
  std::vector<uint8_t> enc =
      Hex("0000000000000002616200000000000000"
          "0163");
  uint8_t d[MIR_HASH_LEN];
  mir_sha256(enc.data(), enc.size(), d);
  EXPECT_EQ(ToHex(d, sizeof d), digests[0]);
}

// The signing encoding is the same length-prefixed concatenation the hasher uses.
TEST(Sign, EncodingIsLengthPrefixed) {
  std::vector<ProtobufCBinaryData> parts = {Part("ab"), Part("c")};
  ASSERT_EQ(mir_sign_encoded_len(parts.data(), parts.size()), 19u);
  std::vector<uint8_t> enc(19);
  mir_sign_encode(parts.data(), parts.size(), enc.data());
  EXPECT_EQ(ToHex(enc.data(), enc.size()), "00000000000000026162000000000000000163");
}

// A signature over a list verifies for exactly that list: moving a part boundary, changing a
// byte, or checking with another key fails; a truncated or padded signature fails too.
TEST_P(SchemeTest, TamperedDataOrWrongKeyFails) {
  mir_private_key *key = nullptr, *other = nullptr;
  ASSERT_EQ(mir_private_key_generate(GetParam(), &key), MIR_OK);
  ASSERT_EQ(mir_private_key_generate(GetParam(), &other), MIR_OK);
  mir_public_key *pub = mir_private_key_public(key), *other_pub = mir_private_key_public(other);
  std::vector<ProtobufCBinaryData> good = {Part("ab"), Part("c")};
  std::vector<ProtobufCBinaryData> moved = {Part("a"), Part("bc")};
  std::vector<ProtobufCBinaryData> changed = {Part("ab"), Part("d")};
  uint8_t sig[MIR_SIGNATURE_LEN + 1];
  size_t sig_len = 0;
  ASSERT_EQ(mir_sign(key, good.data(), good.size(), sig, &sig_len), MIR_OK);
  ASSERT_EQ(sig_len, static_cast<size_t>(MIR_SIGNATURE_LEN));
  EXPECT_EQ(mir_verify(pub, good.data(), good.size(), sig, sig_len), MIR_OK);
  EXPECT_EQ(mir_verify(pub, moved.data(), moved.size(), sig, sig_len), MIR_ECRYPTO);
  EXPECT_EQ(mir_verify(pub, changed.data(), changed.size(), sig, sig_len), MIR_ECRYPTO);
  EXPECT_EQ(mir_verify(other_pub, good.data(), good.size(), sig, sig_len), MIR_ECRYPTO);
  EXPECT_EQ(mir_verify(pub, good.data(), good.size(), sig, sig_len - 1), MIR_ECRYPTO);
  sig[MIR_SIGNATURE_LEN] = 0;
  EXPECT_EQ(mir_verify(pub, good.data(), good.size(), sig, sig_len + 1), MIR_ECRYPTO);
  EXPECT_EQ(mir_verify(pub, good.data(), good.size(), nullptr, 0), MIR_ECRYPTO);
  mir_public_key_free(pub);
  mir_public_key_free(other_pub);
  mir_private_key_free(key);
  mir_private_key_free(other);
}

// Keys derived from one seed are identical (same public key, and for Ed25519 the same
// signature); a different seed gives a different key.
TEST_P(SchemeTest, SeedDerivationIsDeterministic) {
  uint8_t seed[MIR_SIG_SEED_LEN] = {1, 2, 3};
  uint8_t seed2[MIR_SIG_SEED_LEN] = {1, 2, 4};
  mir_private_key *a = nullptr, *b = nullptr, *c = nullptr;
  ASSERT_EQ(mir_private_key_from_seed(GetParam(), seed, &a), MIR_OK);
  ASSERT_EQ(mir_private_key_from_seed(GetParam(), seed, &b), MIR_OK);
  ASSERT_EQ(mir_private_key_from_seed(GetParam(), seed2, &c), MIR_OK);
  mir_public_key *pa = mir_private_key_public(a), *pb = mir_private_key_public(b),
                 *pc = mir_private_key_public(c);
  EXPECT_TRUE(mir_public_key_equal(pa, pb));
  EXPECT_FALSE(mir_public_key_equal(pa, pc));
  std::vector<ProtobufCBinaryData> data = {Part("x")};
  uint8_t s1[MIR_SIGNATURE_LEN], s2[MIR_SIGNATURE_LEN];
  size_t l1 = 0, l2 = 0;
  ASSERT_EQ(mir_sign(a, data.data(), 1, s1, &l1), MIR_OK);
  ASSERT_EQ(mir_sign(b, data.data(), 1, s2, &l2), MIR_OK);
  EXPECT_EQ(mir_verify(pa, data.data(), 1, s2, l2), MIR_OK);
  if (GetParam() == MIR_SIG_ED25519) {
    EXPECT_EQ(ToHex(s1, l1), ToHex(s2, l2));
  }
  mir_public_key_free(pa);
  mir_public_key_free(pb);
  mir_public_key_free(pc);
  mir_private_key_free(a);
  mir_private_key_free(b);
  mir_private_key_free(c);
}

// Private and public keys survive PEM text and files: the loaded private key signs what the
// original public key accepts; the private file is readable by its owner only.
TEST_P(SchemeTest, PemFilesRoundTrip) {
  std::string dir = TempDir();
  mir_private_key *key = nullptr;
  ASSERT_EQ(mir_private_key_generate(GetParam(), &key), MIR_OK);
  mir_public_key *pub = mir_private_key_public(key);
  std::string kpath = dir + "/k.key", ppath = dir + "/k.pub";
  ASSERT_EQ(mir_private_key_save(key, kpath.c_str()), MIR_OK);
  ASSERT_EQ(mir_public_key_save(pub, ppath.c_str()), MIR_OK);
  struct stat st;
  ASSERT_EQ(stat(kpath.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  mir_private_key *key2 = nullptr;
  mir_public_key *pub2 = nullptr;
  ASSERT_EQ(mir_private_key_load(kpath.c_str(), &key2), MIR_OK) << mir_error_detail();
  ASSERT_EQ(mir_public_key_load(ppath.c_str(), &pub2), MIR_OK) << mir_error_detail();
  EXPECT_EQ(mir_private_key_scheme(key2), GetParam());
  EXPECT_TRUE(mir_public_key_equal(pub, pub2));
  std::vector<ProtobufCBinaryData> data = {Part("hello"), Part("")};
  uint8_t sig[MIR_SIGNATURE_LEN];
  size_t sig_len = 0;
  ASSERT_EQ(mir_sign(key2, data.data(), data.size(), sig, &sig_len), MIR_OK);
  EXPECT_EQ(mir_verify(pub, data.data(), data.size(), sig, sig_len), MIR_OK);
  char *pem = nullptr;
  ASSERT_EQ(mir_public_key_to_pem(pub, &pem), MIR_OK);
  EXPECT_NE(strstr(pem, "-----BEGIN PUBLIC KEY-----"), nullptr);
  free(pem);
  mir_public_key_free(pub);
  mir_public_key_free(pub2);
  mir_private_key_free(key);
  mir_private_key_free(key2);
  unlink(kpath.c_str());
  unlink(ppath.c_str());
  rmdir(dir.c_str());
}

// A public key survives base64 and hex text, and the decoder refuses bad base64, the other scheme's
// length and (for ECDSA) a point that is not on the curve.
TEST_P(SchemeTest, Base64RoundTripAndRejects) {
  mir_private_key *key = nullptr;
  ASSERT_EQ(mir_private_key_generate(GetParam(), &key), MIR_OK);
  mir_public_key *pub = mir_private_key_public(key), *back = nullptr;
  char *b64 = mir_public_key_to_base64(pub);
  ASSERT_EQ(mir_public_key_from_base64(GetParam(), b64, &back), MIR_OK);
  EXPECT_TRUE(mir_public_key_equal(pub, back));
  char *hex = mir_public_key_to_hex(pub);
  mir_public_key *from_hex = nullptr, *from_b64 = nullptr;
  ASSERT_EQ(mir_public_key_from_text(GetParam(), hex, &from_hex), MIR_OK) << hex;
  ASSERT_EQ(mir_public_key_from_text(GetParam(), b64, &from_b64), MIR_OK);
  EXPECT_TRUE(mir_public_key_equal(pub, from_hex));
  EXPECT_TRUE(mir_public_key_equal(pub, from_b64));
  mir_public_key *none = nullptr;
  EXPECT_EQ(mir_public_key_from_text(GetParam(), "hex:zz", &none), MIR_ECRYPTO);
  free(hex);
  mir_public_key_free(from_hex);
  mir_public_key_free(from_b64);
  mir_sig_scheme other = GetParam() == MIR_SIG_ED25519 ? MIR_SIG_ECDSA_P256 : MIR_SIG_ED25519;
  EXPECT_EQ(mir_public_key_from_base64(other, b64, &none), MIR_ECRYPTO);
  EXPECT_EQ(mir_public_key_from_base64(GetParam(), "not base64!", &none), MIR_ECRYPTO);
  EXPECT_EQ(none, nullptr);
  if (GetParam() == MIR_SIG_ECDSA_P256) {
    uint8_t raw[MIR_PUBLIC_KEY_MAX];
    mir_public_key_bytes(pub, raw);
    raw[64] ^= 1;  // Y no longer matches X
    EXPECT_EQ(mir_public_key_from_bytes(GetParam(), raw, 65, &none), MIR_ECRYPTO);
    raw[0] = 0x02;  // compressed form is not accepted
    EXPECT_EQ(mir_public_key_from_bytes(GetParam(), raw, 65, &none), MIR_ECRYPTO);
  }
  free(b64);
  mir_public_key_free(pub);
  mir_public_key_free(back);
  mir_private_key_free(key);
}

// The base64 form of a public key is decoded strictly and alike by both backends: the standard
// alphabet, a length that is a multiple of four and padding only at the end; white space, a
// missing pad, the URL-safe alphabet or a pad inside the text are refused. Unused low bits of the
// last character are ignored (BoringSSL's rule, kept by the OpenSSL backend), so such a text still
// names the same key.
TEST(KeyText, Base64DecodingIsStrictAndTheSameOnBothBackends) {
  std::vector<uint8_t> raw = Hex(kRfc8032[0].pub);
  mir_public_key *key = nullptr;
  ASSERT_EQ(mir_public_key_from_bytes(MIR_SIG_ED25519, raw.data(), raw.size(), &key), MIR_OK);
  char *b64 = mir_public_key_to_base64(key);
  const std::string good = b64;
  free(b64);
  ASSERT_EQ(good, "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
  std::string loose_bits = good;
  loose_bits[42] = 'p';  // 'o' + 1: the two unused bits of the last character set
  const std::string refused[] = {
      "",
      good.substr(0, 43),
      good + "\n",
      " " + good,
      good.substr(0, 40) + "====",
      "11qYAYKxCrfVS-7TyWQHOg7hcvPapiMlrwIaaPcHURo=",      // URL-safe '-'
      "11qY=YKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",      // a pad inside
      "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHUR==",      // too short after padding
      "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=AAAA",  // data after the pad
      "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHUQ==Gg==",  // the right 32 bytes, padded twice
  };
  for (const auto &text : refused) {
    mir_public_key *back = nullptr;
    EXPECT_EQ(mir_public_key_from_base64(MIR_SIG_ED25519, text.c_str(), &back), MIR_ECRYPTO)
        << "\"" << text << "\"";
    EXPECT_EQ(back, nullptr);
  }
  for (const auto &text : {good, loose_bits}) {
    mir_public_key *back = nullptr;
    ASSERT_EQ(mir_public_key_from_base64(MIR_SIG_ED25519, text.c_str(), &back), MIR_OK) << text;
    EXPECT_TRUE(mir_public_key_equal(key, back)) << text;
    mir_public_key_free(back);
  }
  mir_public_key_free(key);
}

INSTANTIATE_TEST_SUITE_P(Schemes, SchemeTest,
                         ::testing::Values(MIR_SIG_ED25519, MIR_SIG_ECDSA_P256),
                         [](const ::testing::TestParamInfo<mir_sig_scheme> &p) {
                           return std::string(p.param == MIR_SIG_ED25519 ? "Ed25519" : "EcdsaP256");
                         });

// An ECDSA signature made with one key is 64 bytes and verifies under its public key; the
// all-zero and all-ones signatures (r or s out of range) never verify.
TEST(Ecdsa, SignVerifyRoundTripAndOutOfRange) {
  mir_private_key *key = nullptr;
  ASSERT_EQ(mir_private_key_generate(MIR_SIG_ECDSA_P256, &key), MIR_OK);
  mir_public_key *pub = mir_private_key_public(key);
  for (int i = 0; i < 20; i++) {
    std::string msg = "message " + std::to_string(i);
    std::vector<ProtobufCBinaryData> data = {Part(msg)};
    uint8_t sig[MIR_SIGNATURE_LEN];
    size_t sig_len = 0;
    ASSERT_EQ(mir_sign(key, data.data(), 1, sig, &sig_len), MIR_OK);
    EXPECT_EQ(sig_len, 64u);
    EXPECT_EQ(mir_verify(pub, data.data(), 1, sig, sig_len), MIR_OK);
  }
  std::vector<ProtobufCBinaryData> data = {Part("m")};
  uint8_t zero[64] = {0}, ones[64];
  memset(ones, 0xff, sizeof ones);
  EXPECT_EQ(mir_verify(pub, data.data(), 1, zero, 64), MIR_ECRYPTO);
  EXPECT_EQ(mir_verify(pub, data.data(), 1, ones, 64), MIR_ECRYPTO);
  mir_public_key_free(pub);
  mir_private_key_free(key);
}

// Garbage, truncated PEM, an X25519 key and a P-384 key are refused with an error, not a
// crash; loading a missing file is MIR_EIO naming the file.
TEST(KeyFiles, RejectsMalformedAndUnsupportedKeys) {
  const char *x25519 =
      "-----BEGIN PRIVATE KEY-----\n"
      "MC4CAQAwBQYDK2VuBCIEIMgKtYSVnveeTk0NfamrubjRsxJ5L/GEPznFk6iv9Ytw\n"
      "-----END PRIVATE KEY-----\n";
  const char *p384 =
      "-----BEGIN PRIVATE KEY-----\n"
      "MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDC7tilz1F45a6qx0IKZ\n"
      "ofodVO+P36+7ckNNhyeFF6/toXMW3E5jtWYF0kVpFDZd9YihZANiAAQISem79sLF\n"
      "olPIB2sFbIct51Ro1kYwsXe3zvjI67PH+O/AJhtfiJV6xgDVxg7go2hJGRcR+DHo\n"
      "kn7fQkfODW7RwhvaGiBWateOVj8IbaHLCZ9FEeqzG5WCQvdoafylYmo=\n"
      "-----END PRIVATE KEY-----\n";
  mir_private_key *key = nullptr;
  EXPECT_EQ(mir_private_key_from_pem("garbage", 7, &key), MIR_ECRYPTO);
  std::string cut(p384, 60);
  EXPECT_EQ(mir_private_key_from_pem(cut.data(), cut.size(), &key), MIR_ECRYPTO);
  EXPECT_EQ(mir_private_key_from_pem(x25519, strlen(x25519), &key), MIR_EUNSUPPORTED);
  EXPECT_EQ(mir_private_key_from_pem(p384, strlen(p384), &key), MIR_EUNSUPPORTED);
  EXPECT_EQ(key, nullptr);
  mir_public_key *pub = nullptr;
  EXPECT_EQ(mir_public_key_from_pem(x25519, strlen(x25519), &pub), MIR_ECRYPTO);
  EXPECT_EQ(mir_private_key_load("/nonexistent/replica.key", &key), MIR_EIO);
  EXPECT_NE(strstr(mir_error_detail(), "/nonexistent/replica.key"), nullptr);
}

// An encrypted private key is refused without asking for a password, and so is an EC key whose
// stored public point does not belong to its private scalar (BoringSSL checks that while parsing,
// the OpenSSL backend afterwards); a certificate in an "encrypted" PEM block is refused without a
// password prompt too.
TEST(KeyFiles, RefusesEncryptedAndInconsistentKeysWithoutPrompting) {
  const char *encrypted =
      "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
      "MIGaMFYGCSqGSIb3DQEFDTBJMCgGCSqGSIb3DQEFDDAbBAjIDQbjw9ioTAIBATAM\n"
      "BggqhkiG9w0CCQUAMB0GCWCGSAFlAwQBKgQQZ1NX/q2ddpXJkWo3uwirSQRAsOTd\n"
      "3MupPudjiGE5E9SdAZEo9aH1aDG7zPY3LZZItZprgU9emUQE9npeQxwmlgd2ZW9z\n"
      "eD7dE2SSOHJ0Np98Jg==\n"
      "-----END ENCRYPTED PRIVATE KEY-----\n";
  const char *mismatched =  // the fixture ECDSA scalar with the replica key's public point
      "-----BEGIN PRIVATE KEY-----\n"
      "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgkrqXwKCfTAZ3xc3W\n"
      "XKlMx+lAymjV1i5Y5mwVMFY43KGhRANCAAQ7sANW6c3VYV4L0614W2P5NaIEn0/p\n"
      "LvFJHbAyboTSeSWKBFALdHycaJ0BAAyakN1zj/AZHFdQHAL5WFUxErEe\n"
      "-----END PRIVATE KEY-----\n";
  const char *encrypted_cert =
      "-----BEGIN CERTIFICATE-----\n"
      "Proc-Type: 4,ENCRYPTED\n"
      "DEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n"
      "\n"
      "MIGaMFYGCSqGSIb3DQEFDTBJMCgGCSqGSIb3DQEFDDAbBAjIDQbjw9ioTAIBATAM\n"
      "-----END CERTIFICATE-----\n";
  mir_private_key *key = nullptr;
  EXPECT_EQ(mir_private_key_from_pem(encrypted, strlen(encrypted), &key), MIR_ECRYPTO);
  EXPECT_EQ(mir_private_key_from_pem(mismatched, strlen(mismatched), &key), MIR_ECRYPTO);
  EXPECT_EQ(key, nullptr);
  char *ca = nullptr, *ca_key = nullptr;
  ASSERT_EQ(mir_tls_ca_new("test CA", 10, &ca, &ca_key), MIR_OK);
  char id[MIR_MODULE_ID_MAX];
  EXPECT_EQ(mir_tls_cert_check(ca, encrypted_cert, id, sizeof id), MIR_ECRYPTO);
  EXPECT_EQ(mir_tls_cert_check(encrypted_cert, ca, id, sizeof id), MIR_ECRYPTO);
  free(ca);
  free(ca_key);
}

// More parts than MIR_SIGN_PARTS_MAX are refused before anything is signed or verified.
TEST(Sign, LimitsAreEnforced) {
  mir_private_key *key = nullptr;
  ASSERT_EQ(mir_private_key_generate(MIR_SIG_ED25519, &key), MIR_OK);
  mir_public_key *pub = mir_private_key_public(key);
  std::vector<ProtobufCBinaryData> parts(MIR_SIGN_PARTS_MAX + 1, Part(""));
  uint8_t sig[MIR_SIGNATURE_LEN] = {0};
  size_t sig_len = 0;
  EXPECT_EQ(mir_sign(key, parts.data(), parts.size(), sig, &sig_len), MIR_EINVAL);
  EXPECT_EQ(mir_verify(pub, parts.data(), parts.size(), sig, sizeof sig), MIR_EINVAL);
  mir_public_key_free(pub);
  mir_private_key_free(key);
}

// mir_verify_many reports each item: a good signature, a tampered one, and an unknown signer.
TEST(Sign, VerifyManyReportsEachItem) {
  mir_private_key *key = nullptr;
  ASSERT_EQ(mir_private_key_generate(MIR_SIG_ED25519, &key), MIR_OK);
  mir_public_key *pub = mir_private_key_public(key);
  std::vector<ProtobufCBinaryData> data = {Part("d")}, other = {Part("e")};
  uint8_t sig[MIR_SIGNATURE_LEN];
  size_t sig_len = 0;
  ASSERT_EQ(mir_sign(key, data.data(), 1, sig, &sig_len), MIR_OK);
  mir_signed_item items[3] = {{data.data(), 1, sig, sig_len, pub},
                              {other.data(), 1, sig, sig_len, pub},
                              {data.data(), 1, sig, sig_len, nullptr}};
  bool ok[3] = {false, true, true};
  EXPECT_FALSE(mir_verify_many(items, 3, ok));
  EXPECT_TRUE(ok[0]);
  EXPECT_FALSE(ok[1]);
  EXPECT_FALSE(ok[2]);
  EXPECT_TRUE(mir_verify_many(items, 1, nullptr));
  mir_public_key_free(pub);
  mir_private_key_free(key);
}

// The key set finds, refuses duplicates, removes, and keeps working across growth and removals;
// a signature verifies as its signer's and fails as any other node's.
TEST(KeySet, AddFindRemoveAndWrongNode) {
  std::vector<std::string> ids;
  for (int i = 0; i < 1000; i++) ids.push_back("node-" + std::to_string(i));
  std::vector<const char *> cids;
  for (auto &s : ids) cids.push_back(s.c_str());
  mir_keyset *ks = nullptr;
  ASSERT_EQ(mir_keyset_new_pseudo(MIR_SIG_ED25519, 7, cids.data(), cids.size(), "node-3", &ks),
            MIR_OK);
  EXPECT_EQ(mir_keyset_count(ks), 1000u);
  EXPECT_EQ(mir_keyset_add(ks, "node-5", mir_public_key_clone(mir_keyset_find(ks, "node-6"))),
            MIR_EEXIST);
  EXPECT_EQ(mir_keyset_add(ks, "", mir_public_key_clone(mir_keyset_find(ks, "node-6"))),
            MIR_EINVAL);
  for (int i = 0; i < 1000; i += 2) ASSERT_EQ(mir_keyset_remove(ks, cids[i]), MIR_OK);
  EXPECT_EQ(mir_keyset_remove(ks, "node-0"), MIR_ENOTFOUND);
  EXPECT_EQ(mir_keyset_count(ks), 500u);
  // Churn: tombstones must be recycled, or probing would run out of empty slots.
  const mir_public_key *some = mir_keyset_find(ks, "node-1");
  for (int i = 0; i < 20000; i++) {
    std::string id = "tmp-" + std::to_string(i);
    ASSERT_EQ(mir_keyset_add(ks, id.c_str(), mir_public_key_clone(some)), MIR_OK);
    ASSERT_EQ(mir_keyset_remove(ks, id.c_str()), MIR_OK);
  }
  EXPECT_EQ(mir_keyset_count(ks), 500u);
  for (int i = 0; i < 1000; i++) EXPECT_EQ(mir_keyset_find(ks, cids[i]) != nullptr, i % 2 == 1);
  std::vector<ProtobufCBinaryData> data = {Part("vote")};
  uint8_t sig[MIR_SIGNATURE_LEN];
  size_t sig_len = 0;
  ASSERT_EQ(mir_keyset_sign(ks, data.data(), 1, sig, &sig_len), MIR_OK);
  EXPECT_EQ(mir_keyset_verify(ks, "node-3", data.data(), 1, sig, sig_len), MIR_OK);
  EXPECT_EQ(mir_keyset_verify(ks, "node-5", data.data(), 1, sig, sig_len), MIR_ECRYPTO);
  EXPECT_EQ(mir_keyset_verify(ks, "node-4", data.data(), 1, sig, sig_len), MIR_ENOTFOUND);
  EXPECT_EQ(mir_keyset_verify(ks, "stranger", data.data(), 1, sig, sig_len), MIR_ENOTFOUND);
  mir_keyset_free(ks);
}

// Two nodes building pseudo key sets from the same seed agree: what one signs, the other
// verifies as coming from it; a verify-only set cannot sign.
TEST(KeySet, PseudoKeySetsAgreeAcrossNodes) {
  const char *ids[] = {"0", "1", "2", "3"};
  for (mir_sig_scheme scheme : {MIR_SIG_ED25519, MIR_SIG_ECDSA_P256}) {
    mir_keyset *a = nullptr, *b = nullptr, *v = nullptr;
    ASSERT_EQ(mir_keyset_new_pseudo(scheme, 12345, ids, 4, "1", &a), MIR_OK);
    ASSERT_EQ(mir_keyset_new_pseudo(scheme, 12345, ids, 4, "2", &b), MIR_OK);
    ASSERT_EQ(mir_keyset_new_pseudo(scheme, 12345, ids, 4, nullptr, &v), MIR_OK);
    std::vector<ProtobufCBinaryData> data = {Part("batch"), Part("42")};
    uint8_t sig[MIR_SIGNATURE_LEN];
    size_t sig_len = 0;
    ASSERT_EQ(mir_keyset_sign(a, data.data(), 2, sig, &sig_len), MIR_OK);
    EXPECT_EQ(mir_keyset_verify(b, "1", data.data(), 2, sig, sig_len), MIR_OK);
    EXPECT_EQ(mir_keyset_verify(v, "1", data.data(), 2, sig, sig_len), MIR_OK);
    EXPECT_EQ(mir_keyset_verify(b, "2", data.data(), 2, sig, sig_len), MIR_ECRYPTO);
    EXPECT_EQ(mir_keyset_sign(v, data.data(), 2, sig, &sig_len), MIR_EINVAL);
    mir_keyset_free(a);
    mir_keyset_free(b);
    mir_keyset_free(v);
  }
}

// A replica certificate issued by the cluster CA checks out and yields the replica id; the same
// certificate fails against another CA, and garbage fails; a bad replica id is refused.
TEST(Tls, IssuedCertificateChecksAgainstItsCaOnly) {
  char *ca = nullptr, *ca_key = nullptr, *ca2 = nullptr, *ca2_key = nullptr;
  ASSERT_EQ(mir_tls_ca_new("test CA", 3650, &ca, &ca_key), MIR_OK) << mir_error_detail();
  ASSERT_EQ(mir_tls_ca_new("other CA", 3650, &ca2, &ca2_key), MIR_OK);
  char *cert = nullptr, *key = nullptr;
  ASSERT_EQ(mir_tls_cert_new(ca, ca_key, "7", "127.0.0.1", 3650, &cert, &key), MIR_OK)
      << mir_error_detail();
  char id[MIR_MODULE_ID_MAX];
  EXPECT_EQ(mir_tls_cert_check(ca, cert, id, sizeof id), MIR_OK) << mir_error_detail();
  EXPECT_STREQ(id, "7");
  EXPECT_EQ(mir_tls_cert_check(ca2, cert, id, sizeof id), MIR_ECRYPTO);
  EXPECT_EQ(mir_tls_cert_check(ca, "garbage", id, sizeof id), MIR_ECRYPTO);
  mir_private_key *tls_key = nullptr;
  ASSERT_EQ(mir_private_key_from_pem(key, strlen(key), &tls_key), MIR_OK);
  EXPECT_EQ(mir_private_key_scheme(tls_key), MIR_SIG_ECDSA_P256);
  char *c2 = nullptr, *k2 = nullptr;
  EXPECT_EQ(mir_tls_cert_new(ca, ca_key, "bad,id", nullptr, 10, &c2, &k2), MIR_EINVAL);
  EXPECT_EQ(mir_tls_cert_new(ca, ca2_key, "1", nullptr, 10, &c2, &k2), MIR_ECRYPTO);
  EXPECT_EQ(c2, nullptr);
  mir_private_key_free(tls_key);
  for (char *p : {ca, ca_key, ca2, ca2_key, cert, key}) free(p);
}
