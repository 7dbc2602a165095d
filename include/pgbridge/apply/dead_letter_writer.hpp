#pragma once

#include <memory>
#include <optional>

#include <pgbridge/pg/connection.hpp>
#include <pgbridge/transport/consumer.hpp>

namespace pgbridge::apply {

// Records dead letters in pgbridge.dead_letters on the target side, where the DBA looks for
// them (SPEC guarantee 6). Connects on first use and again after a failure.
class DeadLetterWriter final : public transport::DeadLetterRecorder {
  public:
    explicit DeadLetterWriter(pg::ConnectOptions target);
    ~DeadLetterWriter() override;

    void record(const transport::DeadLetter& letter) override;

  private:
    pg::ConnectOptions target_;
    std::optional<pg::Connection> connection_;
};

}  // namespace pgbridge::apply
