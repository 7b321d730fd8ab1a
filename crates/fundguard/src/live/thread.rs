//! The pipeline thread: runs the [`LivePipeline`], evaluating inputs in the order
//! sources send them and answering each one, until told to stop.
//!
//! It is a plain thread, not a task: evaluation is CPU work and sinks may be blocking
//! clients (the PostgreSQL alert store), which must not stall the runtime's workers.

use std::thread::JoinHandle;

use anyhow::Context;

use super::pipeline::{LivePipeline, PipelineParts};

/// Starts the pipeline thread over what assembly opened, and waits until it is ready:
/// a fresh start has written its first checkpoint, a restart has told its sinks what is
/// about to be replayed. What went wrong there is the error here, so the service does
/// not start its sources on a pipeline that cannot work.
pub fn spawn(parts: PipelineParts) -> anyhow::Result<JoinHandle<()>> {
    let resuming = parts.restored.as_ref().map(|restored| restored.epoch);
    let (mut pipeline, mut inputs) = LivePipeline::new(parts);
    // Sinks may use blocking clients (the PostgreSQL alert store), so they are touched on
    // the pipeline thread only; spawn waits for it to be ready to report what went wrong.
    let (ready_tx, ready) = std::sync::mpsc::channel::<anyhow::Result<()>>();
    let thread = std::thread::Builder::new().name("fundguard-pipeline".into()).spawn(move || {
        let start = pipeline.start(resuming);
        let started = start.is_ok();
        let _ = ready_tx.send(start);
        if !started {
            return;
        }
        while let Some(input) = inputs.blocking_recv() {
            if !pipeline.handle(input) {
                break;
            }
        }
        pipeline.stop();
    })?;
    ready.recv().context("the pipeline thread stopped while starting")??;
    Ok(thread)
}
