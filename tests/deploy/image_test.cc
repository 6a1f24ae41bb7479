// The Docker image (Dockerfile at the repository root): it builds, on a local
// debian:bookworm-slim made by scripts/docker-base-image.sh where none can be pulled; it runs its
// programs as the unprivileged user "mir"; it declares the /data volume, the health check
// through mir-status and SIGTERM as stop signal; the runtime stage holds no compiler. Skipped
// where no Docker engine answers. The image is the one the compose and Ansible tests use (ctest
// runs this test first, as the setup of their fixture).
#include "deploy_util.h"

namespace {

using deploy::Cmd;
using deploy::Trim;

std::string Inspect(const std::string &format) {
  return Trim(Cmd({"docker", "image", "inspect", "-f", format, deploy::kImage}, 30000).out);
}

// The image builds, and what it declares and holds is what docs/OPERATIONS.md says.
TEST(DockerImage, BuildsAndRunsAsNonRoot) {
  std::string why;
  if (!deploy::DockerAnswers(&why)) GTEST_SKIP() << why;
  std::string log;
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(deploy::BuildImage(&log)) << log;
  long secs = static_cast<long>(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - t0)
          .count());
  std::string size = Inspect("{{.Size}}");
  RecordProperty("image_bytes", size);
  RecordProperty("build_seconds", std::to_string(secs));
  std::cout << "image " << deploy::kImage << ": " << std::stoll(size) / 1000000 << " MB, built in "
            << secs << " s\n";

  EXPECT_EQ(Inspect("{{.Config.User}}"), "mir");
  EXPECT_NE(Inspect("{{json .Config.Volumes}}").find("/data"), std::string::npos);
  EXPECT_NE(Inspect("{{json .Config.Healthcheck}}").find("health"), std::string::npos);
  EXPECT_EQ(Inspect("{{.Config.StopSignal}}"), "SIGTERM");

  deploy::Result id = Cmd({"docker", "run", "--rm", deploy::kImage, "id", "-u"}, 120000);
  ASSERT_EQ(id.rc, 0) << id.out;
  EXPECT_NE(Trim(id.out), "0");
  for (const char *prog : {"mir-replica", "mir-status", "mir-keygen", "mir-cat"}) {
    deploy::Result h = Cmd({"docker", "run", "--rm", deploy::kImage, prog, "--help"}, 120000);
    EXPECT_EQ(h.rc, 0) << prog << ": " << h.out;
  }
  deploy::Result bench = Cmd({"docker", "run", "--rm", deploy::kImage, "mir-bench"}, 120000);
  EXPECT_NE(bench.out.find("usage: mir-bench"), std::string::npos) << bench.out;
  // The runtime stage holds the programs and their libraries, no build tools, and the SDK.
  deploy::Result cc = Cmd({"docker", "run", "--rm", deploy::kImage, "sh", "-c",
                           "command -v gcc cmake; ls /usr/local/lib/libmirclient.so "
                           "/usr/local/include/mir/client.h /usr/local/lib/pkgconfig/mirclient.pc"},
                          120000);
  EXPECT_EQ(cc.out.find("gcc"), std::string::npos) << cc.out;
  EXPECT_NE(cc.out.find("mirclient.pc"), std::string::npos) << cc.out;
  // Without a configuration the entry point says what is missing, with the usage exit status.
  deploy::Result bad = Cmd({"docker", "run", "--rm", deploy::kImage}, 120000);
  EXPECT_EQ(bad.rc, 2) << bad.out;
  EXPECT_NE(bad.out.find("MIR_ID is not set"), std::string::npos) << bad.out;
}

}  // namespace
