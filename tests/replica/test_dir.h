// A temporary folder for a test, removed (with everything in it) when the object goes away.
#ifndef MIR_TESTS_REPLICA_TEST_DIR_H
#define MIR_TESTS_REPLICA_TEST_DIR_H

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace reptest {

class TempDir {
 public:
  TempDir() {
    const char *tmp = getenv("TMPDIR");
    std::string t = std::string(tmp != nullptr ? tmp : "/tmp") + "/mir-replica-test-XXXXXX";
    std::vector<char> buf(t.begin(), t.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) != nullptr) path_ = buf.data();
  }
  ~TempDir() {
    if (!path_.empty()) Remove(path_);
  }
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;
  const std::string &path() const { return path_; }
  std::string sub(const std::string &name) const { return path_ + "/" + name; }

 private:
  // Removes a tree; depth is bounded by what tests create (a RocksDB folder).
  static void Remove(const std::string &p) {
    DIR *d = opendir(p.c_str());
    if (d != nullptr) {
      for (dirent *e = readdir(d); e != nullptr; e = readdir(d)) {
        std::string n = e->d_name;
        if (n == "." || n == "..") continue;
        std::string full = p + "/" + n;
        struct stat st;
        if (lstat(full.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
          Remove(full);
        } else {
          unlink(full.c_str());
        }
      }
      closedir(d);
    }
    rmdir(p.c_str());
  }
  std::string path_;
};

}  // namespace reptest

#endif
