//! Helpers shared by the integration tests.

use std::sync::Once;

/// Silences the default panic report for panics whose message starts with "planned" (tests
/// that panic on purpose thousands of times); every other panic is reported as usual.
pub(crate) fn quiet_planned_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            if !message.is_some_and(|m| m.starts_with("planned")) {
                default(info);
            }
        }));
    });
}
