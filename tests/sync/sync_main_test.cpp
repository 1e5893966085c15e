#define BOOST_TEST_MODULE fb_sync
#include <boost/test/unit_test.hpp>
