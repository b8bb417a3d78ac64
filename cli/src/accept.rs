//! The accept loop shared by the gateway's small request servers (the control socket and the
//! metrics listener): at most `connections_max` connections at once (more are closed at once),
//! each answered under a time limit, until shutdown; accept errors back off instead of
//! spinning (EMFILE).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};

/// How long to wait after a failed accept before the next one.
const ACCEPT_ERROR_BACKOFF_MS: u64 = 100;

/// Limits of one server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// What the server is called in the log ("control socket", "metrics").
    pub what: &'static str,
    /// Connections served at once.
    pub connections_max: usize,
    /// Time for one connection's request and answer.
    pub request_timeout_ms: u64,
}

/// Accepts with `accept` (a connection and a name for its peer) and runs `answer` on each in
/// its own task, within `limits`, until `shutdown` turns true.
pub async fn serve<S, A, AF, F, FF>(
    limits: Limits,
    mut accept: A,
    answer: F,
    mut shutdown: watch::Receiver<bool>,
) where
    S: Send + 'static,
    A: FnMut() -> AF,
    AF: Future<Output = std::io::Result<(S, String)>>,
    F: Fn(S) -> FF,
    FF: Future<Output = std::io::Result<()>> + Send + 'static,
{
    let what = limits.what;
    let slots = Arc::new(Semaphore::new(limits.connections_max));
    loop {
        tokio::select! {
            _ = crate::stopped(&mut shutdown) => break,
            accepted = accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        tracing::warn!("{what}: too many connections, closing one from {peer}");
                        continue;
                    };
                    let work = answer(stream);
                    let limit = Duration::from_millis(limits.request_timeout_ms);
                    tokio::spawn(async move {
                        match tokio::time::timeout(limit, work).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => tracing::debug!("{what}: request from {peer} failed: {e}"),
                            Err(_) => tracing::debug!("{what}: request from {peer} timed out"),
                        }
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!("{what}: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(ACCEPT_ERROR_BACKOFF_MS)).await;
                }
            },
        }
    }
}
