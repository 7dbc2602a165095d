#pragma once

#include <memory>
#include <optional>

#include <pgbridge/pg/connection.hpp>
#include <pgbridge/transport/consumer.hpp>

namespace pgbridge::apply {

// Records dead letters in pgbridge.dead_letters on the target side, where the DBA looks for
// them (bad input is contained: docs/message-format.md): every text made valid, the payload
// as bytea; a row that is still refused goes in again with only the essentials. Connects on
// first use and again after a lost connection.
class DeadLetterWriter final : public transport::DeadLetterRecorder {
  public:
    explicit DeadLetterWriter(pg::ConnectOptions target);
    ~DeadLetterWriter() override;

    void record(const transport::DeadLetter& letter) override;

  private:
    void insert(const pg::Params& params);

    pg::ConnectOptions target_;
    std::optional<pg::Connection> connection_;
};

}  // namespace pgbridge::apply
