// Tests of the membership loader: a valid file loads with defaults, and every malformed case is
// refused with the file, the field and the reason.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

extern "C" {
#include "mir/alloc.h"
#include "mir/membership.h"
}

namespace {

std::string B64(const std::vector<uint8_t> &in) {
  static const char *t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < in.size(); i += 3) {
    uint32_t w = static_cast<uint32_t>(in[i]) << 16;
    if (i + 1 < in.size()) w |= static_cast<uint32_t>(in[i + 1]) << 8;
    if (i + 2 < in.size()) w |= in[i + 2];
    out += t[(w >> 18) & 63];
    out += t[(w >> 12) & 63];
    out += i + 1 < in.size() ? t[(w >> 6) & 63] : '=';
    out += i + 2 < in.size() ? t[w & 63] : '=';
  }
  return out;
}

// A distinct well-formed key of the scheme's length (contents do not matter to the loader).
std::string Key(int i, size_t len = 32, uint8_t first = 7) {
  std::vector<uint8_t> k(len, static_cast<uint8_t>(i));
  k[0] = first;
  return B64(k);
}

std::string Replica(const std::string &id, const std::string &address, const std::string &key,
                    const std::string &extra = "") {
  return "{\"id\":\"" + id + "\",\"address\":\"" + address + "\",\"public_key\":\"" + key + "\"" +
         extra + "}";
}

std::string Doc(const std::vector<std::string> &replicas, const std::string &top = "") {
  std::string s = "{" + top + "\"replicas\":[";
  for (size_t i = 0; i < replicas.size(); i++) s += (i ? "," : "") + replicas[i];
  return s + "]}";
}

std::vector<std::string> Four() {
  std::vector<std::string> r;
  for (int i = 0; i < 4; i++) {
    r.push_back(Replica(std::to_string(i), "127.0.0.1:" + std::to_string(7000 + i), Key(i)));
  }
  return r;
}

// Parses text as "membership.json" and returns the error detail ("" if it loaded).
std::string Error(const std::string &text, mir_err want = MIR_ECONFIG) {
  mir_membership *m = nullptr;
  mir_err err = mir_membership_parse(text.data(), text.size(), "membership.json", &m);
  EXPECT_EQ(err, want) << text;
  mir_membership_free(m);
  return err == MIR_OK ? "" : mir_error_detail();
}

}  // namespace

// A four-replica file loads in order with default weights, split host and port, and decoded
// keys; find looks replicas up by id.
TEST(Membership, ValidFileLoads) {
  std::vector<std::string> r = Four();
  r[3] = Replica("3", "[::1]:7003", Key(3), ",\"weight\":5");
  std::string text = Doc(r, "\"scheme\":\"ed25519\",");
  mir_membership *m = nullptr;
  ASSERT_EQ(mir_membership_parse(text.data(), text.size(), "membership.json", &m), MIR_OK)
      << mir_error_detail();
  ASSERT_EQ(m->n, 4u);
  EXPECT_EQ(m->scheme, MIR_SIG_ED25519);
  EXPECT_EQ(m->total_weight, 8u);
  EXPECT_STREQ(m->replicas[1].id, "1");
  EXPECT_STREQ(m->replicas[1].host, "127.0.0.1");
  EXPECT_EQ(m->replicas[1].port, 7001);
  EXPECT_STREQ(m->replicas[3].host, "::1");
  EXPECT_STREQ(m->replicas[3].address, "[::1]:7003");
  EXPECT_EQ(m->replicas[3].weight, 5u);
  EXPECT_EQ(m->replicas[2].public_key_len, 32u);
  EXPECT_EQ(m->replicas[2].public_key[1], 2);
  EXPECT_EQ(mir_membership_find(m, "2"), &m->replicas[2]);
  EXPECT_EQ(mir_membership_find(m, "9"), nullptr);
  mir_membership_free(m);
}

// The error of the example reads exactly "file: replicas[2].weight: reason".
TEST(Membership, WeightErrorNamesFileFieldAndReason) {
  std::vector<std::string> r = Four();
  r[2] = Replica("2", "127.0.0.1:7002", Key(2), ",\"weight\":0");
  EXPECT_EQ(Error(Doc(r)), "membership.json: replicas[2].weight: must be a positive integer");
  for (const char *bad : {"-1", "1.5", "\"1\"", "true", "null"}) {
    r[2] = Replica("2", "127.0.0.1:7002", Key(2), std::string(",\"weight\":") + bad);
    EXPECT_EQ(Error(Doc(r)), "membership.json: replicas[2].weight: must be a positive integer");
  }
  r[2] = Replica("2", "127.0.0.1:7002", Key(2), ",\"weight\":4294967296");
  EXPECT_EQ(Error(Doc(r)), "membership.json: replicas[2].weight: must be at most 4294967295");
}

// JSON syntax errors carry jansson's line and column; duplicate object keys are syntax errors.
TEST(Membership, SyntaxErrorsGiveLineAndColumn) {
  EXPECT_EQ(Error("{\n  \"replicas\": [\n    {\"id\": \"0\",,}\n  ]\n}")
                .rfind("membership.json: line 3, column ", 0),
            0u);
  std::string dup = "{\"replicas\":[], \"replicas\":[]}";
  std::string e = Error(dup);
  EXPECT_NE(e.find("line 1"), std::string::npos) << e;
  EXPECT_NE(e.find("duplicate"), std::string::npos) << e;
  EXPECT_NE(Error("").find("membership.json: line"), std::string::npos);
}

// Structural problems of the document: not an object, unknown fields (top level and in a
// replica), a bad scheme, replicas missing, not an array, empty, too many, not objects.
TEST(Membership, RejectsBadStructure) {
  EXPECT_EQ(Error("[]"), "membership.json: must be a JSON object");
  EXPECT_EQ(Error(Doc(Four(), "\"extra\":1,")), "membership.json: extra: unknown field");
  std::vector<std::string> r = Four();
  r[1] = Replica("1", "127.0.0.1:7001", Key(1), ",\"wieght\":2");
  EXPECT_EQ(Error(Doc(r)), "membership.json: replicas[1].wieght: unknown field");
  EXPECT_EQ(Error(Doc(Four(), "\"scheme\":\"rsa\",")),
            "membership.json: scheme: must be \"ed25519\" or \"ecdsa-p256\"");
  EXPECT_EQ(Error("{}"), "membership.json: replicas: missing");
  EXPECT_EQ(Error("{\"replicas\":{}}"), "membership.json: replicas: must be an array");
  EXPECT_EQ(Error("{\"replicas\":[]}"), "membership.json: replicas: must have 1 to 1024 entries");
  std::vector<std::string> many;
  for (int i = 0; i < 1025; i++) many.push_back("1");
  EXPECT_EQ(Error(Doc(many)), "membership.json: replicas: must have 1 to 1024 entries");
  r = Four();
  r[2] = "7";
  EXPECT_EQ(Error(Doc(r)), "membership.json: replicas[2]: must be an object");
}

// Ids must be present, strings of 1-63 safe characters, and unique.
TEST(Membership, RejectsBadIds) {
  std::vector<std::string> r = Four();
  r[1] = "{\"address\":\"127.0.0.1:7001\",\"public_key\":\"" + Key(1) + "\"}";
  EXPECT_EQ(Error(Doc(r)), "membership.json: replicas[1].id: missing");
  r[1] = "{\"id\":1,\"address\":\"127.0.0.1:7001\",\"public_key\":\"" + Key(1) + "\"}";
  EXPECT_EQ(Error(Doc(r)), "membership.json: replicas[1].id: must be a string");
  r[1] = Replica("", "127.0.0.1:7001", Key(1));
  EXPECT_EQ(Error(Doc(r)), "membership.json: replicas[1].id: must have 1 to 63 characters");
  r[1] = Replica(std::string(64, 'a'), "127.0.0.1:7001", Key(1));
  EXPECT_EQ(Error(Doc(r)), "membership.json: replicas[1].id: must have 1 to 63 characters");
  r[1] = Replica("a/b", "127.0.0.1:7001", Key(1));
  EXPECT_EQ(Error(Doc(r)), "membership.json: replicas[1].id: may only contain A-Z a-z 0-9 _ . -");
  r[1] = Replica("0", "127.0.0.1:7001", Key(1));
  EXPECT_EQ(Error(Doc(r)), "membership.json: replicas[1].id: same as replicas[0]");
}

// Addresses must be host:port with a port in 1..65535, IPv6 in brackets, and unique.
TEST(Membership, RejectsBadAddresses) {
  struct Case {
    const char *address, *reason;
  } cases[] = {
      {"127.0.0.1", "must be host:port"},
      {"127.0.0.1:", "port must be 1 to 65535"},
      {"127.0.0.1:0", "port must be 1 to 65535"},
      {"127.0.0.1:65536", "port must be 1 to 65535"},
      {"127.0.0.1:+80", "port must be 1 to 65535"},
      {"127.0.0.1:80x", "port must be 1 to 65535"},
      {":80", "empty host"},
      {"a b:80", "invalid character in host"},
      {"::1:80", "IPv6 hosts must be in brackets"},
      {"127.0.0.1:7000", "same as replicas[0]"},
  };
  for (const Case &c : cases) {
    std::vector<std::string> r = Four();
    r[3] = Replica("3", c.address, Key(3));
    EXPECT_EQ(Error(Doc(r)), std::string("membership.json: replicas[3].address: ") + c.reason)
        << c.address;
  }
  std::vector<std::string> r = Four();
  r[3] = "{\"id\":\"3\",\"public_key\":\"" + Key(3) + "\"}";
  EXPECT_EQ(Error(Doc(r)), "membership.json: replicas[3].address: missing");
}

// Public keys must be base64 (or hex:) of the scheme's length, ECDSA points uncompressed, and
// no two replicas may share a key.
TEST(Membership, RejectsBadPublicKeys) {
  std::vector<std::string> r = Four();
  r[0] = Replica("0", "127.0.0.1:7000", "not base64!");
  EXPECT_EQ(Error(Doc(r)),
            "membership.json: replicas[0].public_key: must be base64 (or hex:<digits>) of a raw "
            "key");
  r[0] = Replica("0", "127.0.0.1:7000", Key(0, 31));
  EXPECT_EQ(Error(Doc(r)),
            "membership.json: replicas[0].public_key: has 31 bytes, a ed25519 key has 32");
  r[0] = Replica("0", "127.0.0.1:7000", Key(1));
  EXPECT_EQ(Error(Doc(r)), "membership.json: replicas[1].public_key: same as replicas[0]");
  r[0] = Replica("0", "127.0.0.1:7000", "hex:" + std::string(64, 'a'));
  EXPECT_EQ(Error(Doc(r), MIR_OK), "");
  r[0] = Replica("0", "127.0.0.1:7000", "hex:" + std::string(63, 'a'));
  EXPECT_NE(Error(Doc(r)).find("replicas[0].public_key: must be base64"), std::string::npos);
  r[0] = "{\"id\":\"0\",\"address\":\"127.0.0.1:7000\"}";
  EXPECT_EQ(Error(Doc(r)), "membership.json: replicas[0].public_key: missing");
  // ECDSA P-256: 65 bytes starting with 04.
  std::vector<std::string> e;
  for (int i = 0; i < 4; i++) {
    e.push_back(Replica(std::to_string(i), "h:" + std::to_string(1 + i), Key(i, 65, 4)));
  }
  std::string top = "\"scheme\":\"ecdsa-p256\",";
  EXPECT_EQ(Error(Doc(e, top), MIR_OK), "");
  e[2] = Replica("2", "h:3", Key(2, 65, 2));
  EXPECT_EQ(Error(Doc(e, top)),
            "membership.json: replicas[2].public_key: must be an uncompressed P-256 point (04 || "
            "X || Y)");
  e[2] = Replica("2", "h:3", Key(2));
  EXPECT_EQ(Error(Doc(e, top)),
            "membership.json: replicas[2].public_key: has 32 bytes, a ecdsa-p256 key has 65");
}

// Ed25519 keys that encode a point of small order are refused with the file, the field and the
// reason: each of the eight points (y = 0 and the two order-8 y with either sign of x, y = 1 and
// y = p - 1), and the non-canonical encodings p and p + 1 of y = 0 and y = 1, in hex: and base64.
// Keys one bit away from one of them load.
TEST(Membership, RejectsSmallOrderEd25519Keys) {
  const std::string ff = std::string(60, 'f');
  const std::vector<std::string> small = {
      std::string(64, '0'),
      std::string(62, '0') + "80",
      "01" + std::string(62, '0'),
      "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
      "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
      "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
      "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
      "ec" + ff + "7f",
      "ed" + ff + "7f",
      "ee" + ff + "7f",
      "ed" + ff + "ff",
  };
  const std::string why =
      "membership.json: replicas[2].public_key: is an Ed25519 point of small order (signatures "
      "under it need no private key)";
  for (const std::string &hex : small) {
    std::vector<std::string> r = Four();
    r[2] = Replica("2", "127.0.0.1:7002", "hex:" + hex);
    EXPECT_EQ(Error(Doc(r)), why) << hex;
  }
  std::vector<std::string> r = Four();
  r[2] = Replica("2", "127.0.0.1:7002", B64(std::vector<uint8_t>(32, 0)));
  EXPECT_EQ(Error(Doc(r, "\"scheme\":\"ed25519\",")), why);
  r[2] = Replica("2", "127.0.0.1:7002", "hex:02" + std::string(62, '0'));
  EXPECT_EQ(Error(Doc(r), MIR_OK), "");
  r[2] = Replica("2", "127.0.0.1:7002",
                 "hex:27e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05");
  EXPECT_EQ(Error(Doc(r), MIR_OK), "");
}

// The strict base64 decoder accepts padded text and refuses bad padding, bad characters and
// output that does not fit.
TEST(Membership, Base64DecoderIsStrict) {
  uint8_t out[8];
  EXPECT_EQ(mir_base64_decode("YWJj", out, sizeof out), 3);
  EXPECT_EQ(std::string(reinterpret_cast<char *>(out), 3), "abc");
  EXPECT_EQ(mir_base64_decode("YWI=", out, sizeof out), 2);
  EXPECT_EQ(mir_base64_decode("YQ==", out, sizeof out), 1);
  EXPECT_EQ(mir_base64_decode("", out, sizeof out), 0);
  EXPECT_EQ(mir_base64_decode("YQ=", out, sizeof out), -1);
  EXPECT_EQ(mir_base64_decode("Y===", out, sizeof out), -1);
  EXPECT_EQ(mir_base64_decode("YQ==YWJj", out, sizeof out), -1);
  EXPECT_EQ(mir_base64_decode("Y=Jj", out, sizeof out), -1);
  EXPECT_EQ(mir_base64_decode("YW J", out, sizeof out), -1);
  EXPECT_EQ(mir_base64_decode("YWJjYWJjYWJj", out, sizeof out), -1);
}

// Loading from disk names the file: a missing file is MIR_EIO, a bad one MIR_ECONFIG with its
// path; a good file loads.
TEST(Membership, LoadFromFile) {
  mir_membership *m = nullptr;
  EXPECT_EQ(mir_membership_load("/nonexistent/membership.json", &m), MIR_EIO);
  EXPECT_NE(std::string(mir_error_detail()).find("/nonexistent/membership.json"),
            std::string::npos);
  char path[] = "/tmp/mir-membership-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  std::string text = Doc(Four());
  ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
  ASSERT_EQ(mir_membership_load(path, &m), MIR_OK) << mir_error_detail();
  EXPECT_EQ(m->n, 4u);
  mir_membership_free(m);
  FILE *f = fopen(path, "w");
  fputs("{\"replicas\": 3}", f);
  fclose(f);
  EXPECT_EQ(mir_membership_load(path, &m), MIR_ECONFIG);
  EXPECT_EQ(std::string(mir_error_detail()), std::string(path) + ": replicas: must be an array");
  unlink(path);
}
