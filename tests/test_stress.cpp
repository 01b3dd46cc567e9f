// placeholder: the stress suite is being written
#include <gtest/gtest.h>
TEST(Stress, Placeholder) {}
