// fb_sim_test: drives fathom-sim over real loopback HTTP (see tests/sim/README.md).
#define BOOST_TEST_MODULE fb_sim_test
#include <boost/test/unit_test.hpp>
