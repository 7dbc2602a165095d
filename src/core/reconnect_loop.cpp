#include <utility>

#include <pgbridge/core/backoff.hpp>
#include <pgbridge/core/reconnect_loop.hpp>
#include <pgbridge/core/wait_for_stop.hpp>

namespace pgbridge {

void run_reconnecting(std::stop_token stop, const ReconnectOptions& options,
                      const ReconnectSession& session, const ReconnectFailureHandler& on_failure) {
    Backoff backoff(options.min, options.max);
    while (!stop.stop_requested()) {
        Interruption interruption;
        try {
            session(stop);
            return;
        } catch (...) {
            if (stop.stop_requested()) {
                return;
            }
            // Inside the catch, so that the handler may also rethrow with a bare `throw;`.
            interruption = on_failure(std::current_exception());
        }
        const auto wait = backoff.next(interruption.progressed);
        if (options.reconnects != nullptr) {
            ++*options.reconnects;
        }
        std::vector<log::Field> fields = std::move(interruption.fields);
        fields.emplace_back("retry_in_ms", std::to_string(wait.count()));
        fields.emplace_back("error", std::move(interruption.error));
        log::write(log::Level::Warning, options.area, options.what, fields);
        wait_for_stop(stop, wait);
    }
}

}  // namespace pgbridge
