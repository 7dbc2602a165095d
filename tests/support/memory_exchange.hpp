#pragma once

// An in-memory broker for the publisher's rules: the exchange side of a bridge, as a channel in
// confirm mode sees it, without a RabbitMQ. The test decides what the broker says and when:
// confirms (one, several, out of order), a nack, an unroutable return, a lost connection.
// Single-threaded, like the publisher.

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <pgbridge/core/error.hpp>
#include <pgbridge/transport/message_codec.hpp>
#include <pgbridge/transport/publisher.hpp>

namespace pgbridge::test {

class MemoryExchange {
  public:
    struct Published {
        std::size_t channel;  // which channel (1 = the first opened)
        std::uint64_t delivery_tag;
        transport::OutgoingMessage message;
        transport::ChangeBatch batch() const { return transport::decode_body(message.body); }
    };

    // Confirm each message as it is published (a broker that keeps up).
    bool auto_confirm = true;

    const std::vector<Published>& published() const { return published_; }
    std::size_t channels_opened() const { return channels_; }

    // What the broker sends next on the current channel.
    void confirm(std::uint64_t tag, bool multiple = false) {
        events_.push_back(Event{Event::Kind::Ack, tag, multiple});
    }
    void nack(std::uint64_t tag) { events_.push_back(Event{Event::Kind::Nack, tag, false}); }
    // The connection is lost: every later call on the current channel throws.
    void drop() { dropped_ = true; }

    // For PublisherOptions::open_channel.
    auto opener() {
        return
            [this](
                const transport::PublisherOptions&) -> std::unique_ptr<transport::PublishChannel> {
                if (refuse_connections) {
                    throw Error(ErrorKind::Broker, "connection refused (memory exchange)");
                }
                ++channels_;
                events_.clear();
                dropped_ = false;
                next_tag_ = 1;
                return std::make_unique<Channel>(*this, channels_);
            };
    }
    bool refuse_connections = false;

  private:
    struct Event {
        enum class Kind { Ack, Nack } kind;
        std::uint64_t tag;
        bool multiple;
    };

    class Channel final : public transport::PublishChannel {
      public:
        Channel(MemoryExchange& exchange, std::size_t number) : x_(exchange), number_(number) {}

        void publish(const transport::OutgoingMessage& message) override {
            check_open();
            const std::uint64_t tag = x_.next_tag_++;
            x_.published_.push_back(Published{number_, tag, message});
            if (x_.auto_confirm) {
                x_.confirm(tag);
            }
        }
        std::optional<transport::PublishConfirm> next_confirm(
            std::optional<std::chrono::milliseconds>) override {
            check_open();
            if (x_.events_.empty()) {
                return std::nullopt;
            }
            const Event e = x_.events_.front();
            x_.events_.pop_front();
            if (e.kind == Event::Kind::Nack) {
                throw Error(ErrorKind::Broker, "the broker refused a message (nack)")
                    .with("delivery_tag", std::to_string(e.tag));
            }
            return transport::PublishConfirm{e.tag, e.multiple};
        }
        int readable_fd() const override { return -1; }
        const std::string& server() const override { return server_; }

      private:
        void check_open() const {
            if (x_.dropped_ || x_.channels_ != number_) {
                throw Error(ErrorKind::Broker, "connection lost (memory exchange)");
            }
        }
        MemoryExchange& x_;
        std::size_t number_;
        std::string server_ = "memory";
    };

    std::vector<Published> published_;
    std::deque<Event> events_;
    std::size_t channels_ = 0;
    std::uint64_t next_tag_ = 1;
    bool dropped_ = false;
};

}  // namespace pgbridge::test
