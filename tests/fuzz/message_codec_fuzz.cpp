// Fuzz target: a RabbitMQ message body given to the message codec, as a consumer reads it.
// Whatever decodes must encode again, and that encoding must decode to an equal batch: a
// consumer that re-publishes (dead letters, replays) must not change what a message says.
// Seeds: batches the unit tests build, encoded (make_message_codec_seeds.cpp).

#include <cstddef>
#include <cstdint>
#include <string>

#include <pgbridge/transport/message_codec.hpp>

#include "batch_difference.hpp"
#include "fuzz_target.hpp"

using namespace pgbridge;
using namespace pgbridge::transport;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    ChangeBatch batch;
    if (!fuzz::returns_or_throws(ErrorKind::Protocol,
                                 [&] { batch = decode_body(fuzz::as_text(data, size)); })) {
        return 0;
    }
    // What a consumer does with a batch it read: name it, and re-publish it.
    static_cast<void>(message_id(batch));
    static_cast<void>(message_headers(batch));
    const std::string again = encode_body(batch);
    ChangeBatch second;
    try {
        second = decode_body(again);
    } catch (const Error& e) {
        fuzz::fail(std::string("a decoded batch, encoded again, does not decode: ") + e.what() +
                   "\nencoded: " + again);
    }
    if (const std::string d = fuzz::batch_difference(batch, second); !d.empty()) {
        fuzz::fail("a decoded batch, encoded and decoded again, differs at " + d +
                   "\nencoded: " + again);
    }
    // And whatever the comparison above does not name: the encoding is canonical.
    if (const std::string third = encode_body(second); third != again) {
        fuzz::fail("a batch encodes differently after a round trip\nfirst:  " + again +
                   "\nsecond: " + third);
    }
    return 0;
}
