//! Connecting: the transport to the server, reconnecting with backoff and binding the new
//! connection to the session (BIND_CONN_TO_SESSION).

use super::*;

impl Inner {
    pub(super) async fn new_transport(&self) -> Result<Arc<Transport>, ClientError> {
        let timeout = Duration::from_millis(self.cfg.connect_timeout_ms);
        let stream = match tokio::time::timeout(timeout, self.connector.connect()).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(ClientError::Connect {
                    addr: self.connector.describe(),
                    detail: e.to_string(),
                })
            }
            Err(_) => {
                return Err(ClientError::Connect {
                    addr: self.connector.describe(),
                    detail: format!("no connection within {} ms", self.cfg.connect_timeout_ms),
                })
            }
        };
        bump(&self.stats.connects);
        // Different xid ranges per connection so a late reply can never match a new call.
        let seed = self.next_xid_seed.fetch_add(0x0100_0000, Ordering::Relaxed);
        let first_xid = u32::try_from(seed & 0xffff_ffff).unwrap_or(1);
        Ok(Transport::start(
            stream,
            self.cfg.limits,
            first_xid,
            self.cb_tx.clone(),
        ))
    }

    /// The current session, establishing client ID and session if there is none.
    pub(super) async fn ensure_session(
        self: &Arc<Self>,
        deadline: Instant,
    ) -> Result<Arc<Session>, ClientError> {
        if let Some(s) = self.conn.lock_unpoisoned().session.clone() {
            return Ok(s);
        }
        let _g = self.recovery.lock().await;
        if let Some(s) = self.conn.lock_unpoisoned().session.clone() {
            return Ok(s);
        }
        self.establish_locked(deadline).await
    }

    /// The current live transport, reconnecting (and binding it to the session) if needed.
    pub(super) async fn ensure_transport(
        self: &Arc<Self>,
        deadline: Instant,
    ) -> Result<(Arc<Transport>, u64), ClientError> {
        {
            let c = self.conn.lock_unpoisoned();
            if let Some(t) = c.transport.as_ref().filter(|t| !t.is_closed()) {
                return Ok((t.clone(), c.conn_gen));
            }
        }
        let _g = self.recovery.lock().await;
        self.reconnect_locked(deadline).await?;
        let c = self.conn.lock_unpoisoned();
        match c.transport.as_ref() {
            Some(t) => Ok((t.clone(), c.conn_gen)),
            None => Err(ClientError::ConnectionLost(
                "no transport after reconnect".into(),
            )),
        }
    }

    /// With the recovery lock held: make sure there is a live transport bound to the session.
    pub(super) async fn reconnect_locked(
        self: &Arc<Self>,
        deadline: Instant,
    ) -> Result<(), ClientError> {
        let started = Instant::now();
        let mut backoff = FIRST_BACKOFF_MS;
        loop {
            if self.is_shutdown() {
                return Err(ClientError::Shutdown);
            }
            let (live, session) = {
                let c = self.conn.lock_unpoisoned();
                (
                    c.transport.as_ref().is_some_and(|t| !t.is_closed()),
                    c.session.clone(),
                )
            };
            if live {
                return Ok(());
            }
            let err = match self.new_transport().await {
                Ok(t) => match &session {
                    None => {
                        self.install_transport(t);
                        return Ok(());
                    }
                    Some(s) => match self
                        .plain_call(&t, vec![wire::bind_conn_to_session(s.id)])
                        .await
                    {
                        Ok(Ok(_)) => {
                            bump(&self.stats.binds);
                            tracing::info!("reconnected and bound the connection to the session");
                            self.install_transport(t);
                            return Ok(());
                        }
                        Ok(Err(f))
                            if matches!(
                                f.status,
                                NfsStat::BADSESSION
                                    | NfsStat::DEADSESSION
                                    | NfsStat::STALE_CLIENTID
                            ) =>
                        {
                            tracing::info!(status = %f.status, "session gone after reconnect: creating a new one");
                            self.install_transport(t);
                            self.drop_session_locked();
                            return Ok(());
                        }
                        Ok(Err(f)) => ClientError::Nfs {
                            op: "BIND_CONN_TO_SESSION",
                            status: f.status,
                        },
                        Err(e) => e,
                    },
                },
                Err(e) => e,
            };
            if Instant::now() + Duration::from_millis(backoff) > deadline {
                return Err(ClientError::RecoveryTimeout {
                    elapsed_ms: elapsed_ms(started),
                    last: err.to_string(),
                });
            }
            tracing::debug!(error = %err, backoff_ms = backoff, "reconnect failed; retrying");
            tokio::time::sleep(Duration::from_millis(backoff)).await;
            backoff = (backoff * 2).min(self.cfg.max_backoff_ms.max(FIRST_BACKOFF_MS));
        }
    }

    pub(super) fn install_transport(&self, t: Arc<Transport>) {
        let mut c = self.conn.lock_unpoisoned();
        if let Some(old) = c.transport.replace(t) {
            old.close("replaced");
        }
        c.conn_gen += 1;
    }

    pub(super) fn drop_session_locked(&self) {
        let mut c = self.conn.lock_unpoisoned();
        if let Some(s) = c.session.take() {
            s.slots.close();
        }
    }
}
