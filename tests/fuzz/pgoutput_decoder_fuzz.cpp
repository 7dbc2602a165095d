// Fuzz target: one pgoutput message (the payload of one XLogData), decoded as outside and as
// inside a stream block. Seeds: the messages of the captured fixtures (tests/fixtures/pgoutput).
// Decoding is pure, so it only has to answer every input with a message or a protocol error.

#include <cstddef>
#include <cstdint>

#include <pgbridge/pgoutput/decoder.hpp>

#include "fuzz_target.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace pgbridge;
    const std::string_view payload = fuzz::as_text(data, size);
    for (const bool in_stream_block : {false, true}) {
        fuzz::returns_or_throws(ErrorKind::Protocol, [&] {
            const pgoutput::Message m = pgoutput::decode_message(payload, in_stream_block);
            static_cast<void>(m);
        });
    }
    return 0;
}
