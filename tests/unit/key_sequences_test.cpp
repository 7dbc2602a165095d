// The arithmetic of partitioned key sequences (docs/setup.md, "Keys written on both sides").

#include <doctest/doctest.h>

#include <pgbridge/setup/key_sequences.hpp>

using namespace pgbridge;

namespace {

KeySequence sequence(std::int64_t increment, std::int64_t next) {
    KeySequence s;
    s.increment = increment;
    s.next = next;
    return s;
}

}  // namespace

TEST_CASE("the first value of a parity at or above a mark") {
    CHECK(first_with_parity(1000, 1) == 1001);
    CHECK(first_with_parity(1001, 1) == 1001);
    CHECK(first_with_parity(1000, 0) == 1000);
    CHECK(first_with_parity(1001, 0) == 1002);
    CHECK(first_with_parity(-3, 1) == -3);  // negative values keep their parity
    CHECK(first_with_parity(-3, 0) == -2);
    CHECK(key_parity(0) == 1);  // the first side of the file gets odd keys
    CHECK(key_parity(1) == 0);
}

TEST_CASE("two sequences are kept apart only when both step by 2 from different parities") {
    CHECK(kept_apart(sequence(2, 101), sequence(2, 102)));
    CHECK(kept_apart(sequence(2, 102), sequence(2, 7)));  // either side may hold the odd ones
    CHECK_FALSE(kept_apart(sequence(2, 101), sequence(2, 103)));
    CHECK_FALSE(kept_apart(sequence(1, 101), sequence(2, 102)));
    CHECK_FALSE(kept_apart(sequence(2, 101), sequence(4, 102)));
    CHECK_FALSE(kept_apart(sequence(1, 1), sequence(1, 1)));
}
