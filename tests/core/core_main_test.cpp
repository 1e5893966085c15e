#define BOOST_TEST_MODULE fb_core
#include <boost/test/unit_test.hpp>
