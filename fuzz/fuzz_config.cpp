// Config parsing: any text given to parse_config either yields a Config that validates or an
// error that says what was wrong; never a crash, a hang or an exception.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "fathom_bridge/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  for (bool oauth : {true, false}) {
    fb::ConfigRequirements req;
    req.oauth = oauth;
    auto c = fb::parse_config(text, /*use_env=*/false, req);
    if (c.ok()) {
      // What parse_config accepted must pass validation on its own.
      if (!fb::validate_config(*c, req).ok()) std::abort();
    } else if (c.status().to_string().empty()) {
      std::abort();  // an error must say something
    }
  }
  return 0;
}
