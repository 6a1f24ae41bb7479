// The client's lock counts contention (mir_client_stats.lock_contended, lock_wait_ns): only an
// acquisition that finds the lock held is counted, with the time it waited.
#include <gtest/gtest.h>
#include <pthread.h>

#include <chrono>
#include <cstdlib>
#include <thread>

extern "C" {
#include "client_internal.h"
}

namespace {

TEST(ClientLock, ContendedAcquisitionsAreCountedWithTheirWait) {
  // An uncontended acquisition counts nothing; one made while another thread holds the lock for
  // 50 ms counts once, with a wait greater than zero.
  auto *c = static_cast<mir_client *>(calloc(1, sizeof(mir_client)));
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(pthread_mutex_init(&c->mu, nullptr), 0);
  mc_lock(c);
  pthread_mutex_unlock(&c->mu);
  EXPECT_EQ(c->stats.lock_contended, 0u);
  EXPECT_EQ(c->stats.lock_wait_ns, 0u);

  pthread_mutex_lock(&c->mu);
  std::thread waiter([c] {
    mc_lock(c);
    pthread_mutex_unlock(&c->mu);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  pthread_mutex_unlock(&c->mu);
  waiter.join();
  EXPECT_EQ(c->stats.lock_contended, 1u);
  EXPECT_GT(c->stats.lock_wait_ns, 0u);
  EXPECT_LT(c->stats.lock_wait_ns, 10000000000u);  // bounded by the test's own duration
  pthread_mutex_destroy(&c->mu);
  free(c);
}

}  // namespace
