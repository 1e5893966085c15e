#define BOOST_TEST_MODULE fb_fathom
#include <boost/test/unit_test.hpp>
