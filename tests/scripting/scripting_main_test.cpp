#define BOOST_TEST_MODULE fb_scripting_test
#include <boost/test/unit_test.hpp>

#include "core/log.h"

// Script log lines and load notices are expected in these tests; keep the output readable.
struct QuietLogs {
  QuietLogs() { fb::detail::set_log_level(fb::detail::LogLevel::kError); }
};
BOOST_TEST_GLOBAL_FIXTURE(QuietLogs);
