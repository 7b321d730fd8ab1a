//! The wall clock of the live service. Event time comes from commit times, but live
//! runs also need the wall clock: it stamps `detected_at`, measures lag, and — ticking
//! once a second — lets the pipeline move event time on when sources go quiet, so
//! deadlines still fire.

use std::time::Duration;

use tokio::sync::mpsc;

use super::input::Input;

/// The wall clock, as event time: live runs compare commit times with it.
pub fn now() -> fundguard_core::EventTime {
    crate::pipeline::wall_clock()
}

/// Ticks once a second; the pipeline decides whether sources have been idle long enough
/// for the clock to move event time on.
pub async fn tick(inputs: mpsc::Sender<Input>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if inputs.send(Input::Tick(now())).await.is_err() {
            return;
        }
    }
}
