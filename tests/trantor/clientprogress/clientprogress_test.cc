// Tests of the client progress: windows, duplicates, the advance of the low watermark, the
// client bound, and the canonical (de)serialisation.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

extern "C" {
#include "clientprogress.h"
#include "mir/alloc.h"
}

namespace {

struct Progress {
  trantor_client_progress *cp = nullptr;
  Progress(uint64_t window, size_t clients_max) {
    EXPECT_EQ(trantor_client_progress_new(window, clients_max, &cp), MIR_OK);
  }
  ~Progress() { trantor_client_progress_free(cp); }
  bool Add(const std::string &c, uint64_t n, trantor_cp_status *why = nullptr) {
    return trantor_client_progress_add(cp, c.c_str(), n, why);
  }
  trantor_cp_status Check(const std::string &c, uint64_t n) {
    return trantor_client_progress_check(cp, c.c_str(), n);
  }
  uint64_t LowWm(const std::string &c) { return trantor_client_progress_low_wm(cp, c.c_str()); }
};

// Packs a ClientProgress message into bytes, then frees it.
std::string PackAndFree(Trantor__ClientProgress *msg) {
  std::string out(trantor__client_progress__get_packed_size(msg), '\0');
  trantor__client_progress__pack(msg, reinterpret_cast<uint8_t *>(out.data()));
  protobuf_c_message_free_unpacked(&msg->base, nullptr);
  return out;
}

// One client's entry of a ClientProgress message.
struct Wm {
  std::string id;
  uint64_t low_wm;
  std::vector<uint64_t> delivered;
};

// A ClientProgress message built from entries; it points into its own members, so it is neither
// copied nor moved.
struct Msg {
  std::vector<Wm> list;
  std::vector<Trantor__ClientWatermark> wms;
  std::vector<Trantor__ClientWatermark *> ptrs;
  Trantor__ClientProgress m = TRANTOR__CLIENT_PROGRESS__INIT;
  explicit Msg(std::vector<Wm> l) : list(std::move(l)) {
    wms.resize(list.size());
    for (size_t i = 0; i < list.size(); i++) {
      trantor__client_watermark__init(&wms[i]);
      wms[i].client_id = const_cast<char *>(list[i].id.c_str());
      wms[i].low_wm = list[i].low_wm;
      wms[i].n_delivered = list[i].delivered.size();
      wms[i].delivered = list[i].delivered.data();
    }
    for (auto &w : wms) ptrs.push_back(&w);
    m.n_clients = ptrs.size();
    m.clients = ptrs.data();
  }
  Msg(const Msg &) = delete;
  Msg &operator=(const Msg &) = delete;
};

TEST(ClientProgress, WindowBoundsWhatIsNew) {
  // A tx number is new only inside [low_wm, low_wm + window); one at the window's end is not.
  Progress p(4, 0);
  EXPECT_EQ(p.Check("a", 0), TRANTOR_CP_NEW);
  EXPECT_EQ(p.Check("a", 3), TRANTOR_CP_NEW);
  EXPECT_EQ(p.Check("a", 4), TRANTOR_CP_OUT_OF_WINDOW);
  trantor_cp_status why = TRANTOR_CP_NEW;
  EXPECT_FALSE(p.Add("a", 4, &why));
  EXPECT_EQ(why, TRANTOR_CP_OUT_OF_WINDOW);
  EXPECT_TRUE(p.Add("a", 3));
  EXPECT_EQ(p.LowWm("a"), 0u);
  EXPECT_EQ(p.Check("a", 4), TRANTOR_CP_OUT_OF_WINDOW);  // the window did not move yet
  EXPECT_EQ(p.Check("a", UINT64_MAX), TRANTOR_CP_OUT_OF_WINDOW);
}

TEST(ClientProgress, DuplicatesAreRefused) {
  // A number already delivered, above or below the watermark, is refused as delivered.
  Progress p(8, 0);
  EXPECT_TRUE(p.Add("a", 2));
  trantor_cp_status why = TRANTOR_CP_NEW;
  EXPECT_FALSE(p.Add("a", 2, &why));
  EXPECT_EQ(why, TRANTOR_CP_DELIVERED);
  EXPECT_TRUE(p.Add("a", 0));
  EXPECT_FALSE(p.Add("a", 0, &why));
  EXPECT_EQ(why, TRANTOR_CP_DELIVERED);
  EXPECT_TRUE(trantor_client_progress_contains(p.cp, "a", 2));
  EXPECT_FALSE(trantor_client_progress_contains(p.cp, "a", 1));
  EXPECT_FALSE(trantor_client_progress_contains(p.cp, "b", 0));
}

TEST(ClientProgress, FillingTheGapAdvancesTheWatermark) {
  // Numbers above a gap are kept in the delivered set; filling the gap moves the watermark over
  // all of them, empties the set, and moves the window.
  Progress p(4, 0);
  EXPECT_TRUE(p.Add("a", 1));
  EXPECT_TRUE(p.Add("a", 2));
  EXPECT_TRUE(p.Add("a", 3));
  EXPECT_EQ(p.LowWm("a"), 0u);
  EXPECT_EQ(trantor_client_progress_delivered_above(p.cp), 3u);
  EXPECT_TRUE(p.Add("a", 0));
  EXPECT_EQ(p.LowWm("a"), 4u);
  EXPECT_EQ(trantor_client_progress_delivered_above(p.cp), 0u);
  EXPECT_EQ(p.Check("a", 7), TRANTOR_CP_NEW);
  EXPECT_EQ(p.Check("a", 3), TRANTOR_CP_DELIVERED);
}

TEST(ClientProgress, MatchesASetModelOverManyOutOfOrderDeliveries) {
  // Against a plain set model, out-of-order deliveries across many 64-bit words and window moves
  // give the same answers and watermarks (fixed seed, so the run is reproducible).
  const uint64_t window = 300;
  Progress p(window, 0);
  std::map<std::string, std::set<uint64_t>> model;  // every delivered number
  std::map<std::string, uint64_t> first_missing;    // first number not in the model
  std::mt19937_64 rng(12345);
  auto low_of = [&](const std::string &c) {
    while (model[c].count(first_missing[c])) first_missing[c]++;
    return first_missing[c];
  };
  for (int step = 0; step < 20000; step++) {
    std::string c = "c" + std::to_string(rng() % 3);
    uint64_t low = low_of(c);
    uint64_t n = low + rng() % (window + 20);
    if (rng() % 10 == 0 && low > 0) n = rng() % low;
    bool expect_new = n - low < window && !model[c].count(n) && n >= low;
    ASSERT_EQ(p.Add(c, n), expect_new) << "step " << step << " client " << c << " n " << n;
    if (expect_new) model[c].insert(n);
    ASSERT_EQ(p.LowWm(c), low_of(c));
  }
  uint64_t above = 0;
  for (auto &[c, s] : model) above += s.size() - low_of(c);
  EXPECT_EQ(trantor_client_progress_delivered_above(p.cp), above);
  EXPECT_GT(p.LowWm("c0"), 1000u);  // the windows really moved
}

TEST(ClientProgress, SerialisesSortedAndRoundTrips) {
  // The message lists clients by id and delivered numbers ascending, and loading it into a new
  // progress gives the same state (byte-identical re-serialisation).
  Progress p(100, 0);
  EXPECT_TRUE(p.Add("zed", 0));
  EXPECT_TRUE(p.Add("alice", 70));
  EXPECT_TRUE(p.Add("alice", 5));
  EXPECT_TRUE(p.Add("bob", 0));
  EXPECT_TRUE(p.Add("bob", 1));
  EXPECT_TRUE(p.Add("alice", 66));
  Trantor__ClientProgress *msg = trantor_client_progress_to_msg(p.cp);
  ASSERT_EQ(msg->n_clients, 3u);
  EXPECT_STREQ(msg->clients[0]->client_id, "alice");
  EXPECT_STREQ(msg->clients[1]->client_id, "bob");
  EXPECT_STREQ(msg->clients[2]->client_id, "zed");
  EXPECT_EQ(msg->clients[0]->low_wm, 0u);
  ASSERT_EQ(msg->clients[0]->n_delivered, 3u);
  EXPECT_EQ(msg->clients[0]->delivered[0], 5u);
  EXPECT_EQ(msg->clients[0]->delivered[1], 66u);
  EXPECT_EQ(msg->clients[0]->delivered[2], 70u);
  EXPECT_EQ(msg->clients[1]->low_wm, 2u);
  EXPECT_EQ(msg->clients[1]->n_delivered, 0u);

  Progress q(100, 0);
  ASSERT_EQ(trantor_client_progress_load(q.cp, msg), MIR_OK);
  std::string a = PackAndFree(msg);
  EXPECT_EQ(PackAndFree(trantor_client_progress_to_msg(q.cp)), a);
  EXPECT_EQ(q.Check("alice", 66), TRANTOR_CP_DELIVERED);
  EXPECT_EQ(q.Check("alice", 67), TRANTOR_CP_NEW);
  EXPECT_EQ(q.Check("bob", 1), TRANTOR_CP_DELIVERED);
}

TEST(ClientProgress, LoadRejectsNonCanonicalInputAndKeepsTheState) {
  // Unsorted or duplicate ids, bad ids, a delivered set holding the watermark, out of order or
  // outside the window, too large, or too many clients are each refused; the state is unchanged.
  Progress p(4, 2);
  EXPECT_TRUE(p.Add("keep", 0));
  std::vector<std::vector<Wm>> bad = {
      {{"b", 0, {}}, {"a", 0, {}}},
      {{"a", 0, {}}, {"a", 1, {}}},
      {{"", 0, {}}},
      {{std::string(65, 'x'), 0, {}}},
      {{"a", 3, {3}}},
      {{"a", 3, {5, 4}}},
      {{"a", 3, {7}}},
      {{"a", 3, {4, 5, 6, 7}}},
      {{"a", 0, {}}, {"b", 0, {}}, {"c", 0, {}}},
      {{"a", UINT64_MAX, {}}},
  };
  for (size_t i = 0; i < bad.size(); i++) {
    Msg msg(bad[i]);
    EXPECT_EQ(trantor_client_progress_load(p.cp, &msg.m), MIR_EPROTO) << "case " << i;
  }
  EXPECT_EQ(trantor_client_progress_clients(p.cp), 1u);
  EXPECT_EQ(p.LowWm("keep"), 1u);
  Msg good({{"a", 3, {5, 6}}, {"b", 0, {}}});
  EXPECT_EQ(trantor_client_progress_load(p.cp, &good.m), MIR_OK);
  EXPECT_EQ(p.LowWm("keep"), 0u);
  EXPECT_EQ(p.Check("a", 6), TRANTOR_CP_DELIVERED);
  EXPECT_EQ(trantor_client_progress_load(p.cp, nullptr), MIR_OK);
  EXPECT_EQ(trantor_client_progress_clients(p.cp), 0u);
}

TEST(ClientProgress, AtTheClientBoundNewClientsAreRefused) {
  // With clients_max clients tracked, an unknown client is refused (nothing is evicted), while
  // the known ones go on.
  Progress p(8, 2);
  EXPECT_TRUE(p.Add("a", 0));
  EXPECT_TRUE(p.Add("b", 0));
  trantor_cp_status why = TRANTOR_CP_NEW;
  EXPECT_FALSE(p.Add("c", 0, &why));
  EXPECT_EQ(why, TRANTOR_CP_TOO_MANY_CLIENTS);
  EXPECT_TRUE(p.Add("a", 1));
  EXPECT_EQ(trantor_client_progress_clients(p.cp), 2u);
}

TEST(ClientProgress, ClientIdsAreChecked) {
  // Client ids must have 1 to TRANTOR_CLIENT_ID_MAX bytes.
  Progress p(8, 0);
  trantor_cp_status why = TRANTOR_CP_NEW;
  EXPECT_FALSE(p.Add("", 0, &why));
  EXPECT_EQ(why, TRANTOR_CP_INVALID);
  EXPECT_FALSE(p.Add(std::string(65, 'x'), 0, &why));
  EXPECT_EQ(why, TRANTOR_CP_INVALID);
  EXPECT_FALSE(trantor_client_progress_add(p.cp, nullptr, 0, &why));
  EXPECT_TRUE(p.Add(std::string(64, 'x'), 0));
}

TEST(ClientProgress, RejectsBadParameters) {
  // The window and the client bound are checked at creation.
  trantor_client_progress *cp = nullptr;
  EXPECT_EQ(trantor_client_progress_new(0, 0, &cp), MIR_EINVAL);
  EXPECT_EQ(trantor_client_progress_new(2000000, 0, &cp), MIR_EINVAL);
  EXPECT_EQ(trantor_client_progress_new(8, TRANTOR_CLIENTS_MAX_LIMIT + 1, &cp), MIR_EINVAL);
  ASSERT_EQ(trantor_client_progress_new(8, 0, &cp), MIR_OK);
  EXPECT_EQ(trantor_client_progress_clients_max(cp), (size_t)TRANTOR_CLIENTS_MAX_DEFAULT);
  trantor_client_progress_free(cp);
}

}  // namespace
