// The complete example of docs/SDK.md is sdk/examples/submit.c, which the build compiles: this
// test fails when the two drift apart, so the documented program is always one that builds.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

namespace {

std::string Slurp(const std::string &path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(SdkDocs, TheDocumentedExampleIsTheCompiledOne) {
  // docs/SDK.md contains sdk/examples/submit.c verbatim, inside a C code block.
  std::string doc = Slurp(std::string(MIR_SOURCE_DIR) + "/docs/SDK.md");
  std::string example = Slurp(std::string(MIR_SOURCE_DIR) + "/sdk/examples/submit.c");
  ASSERT_FALSE(example.empty());
  EXPECT_NE(doc.find("```c\n" + example + "```"), std::string::npos)
      << "copy sdk/examples/submit.c into the code block of docs/SDK.md";
}

}  // namespace
