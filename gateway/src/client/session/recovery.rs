//! Recovery: lease renewal bookkeeping, connection and session failures, SEQUENCE status
//! flags, revoked state, and reclaim after a server restart.

use super::*;

impl Inner {
    pub(super) fn note_renewal(&self, sent_at: Instant) {
        self.lease_tx.send_if_modified(|l| {
            if l.last_renewal_sent.is_none_or(|t| t < sent_at) {
                l.last_renewal_sent = Some(sent_at);
                true
            } else {
                false
            }
        });
    }

    /// The connection `conn_gen` failed: close it so the next user reconnects.
    pub(super) fn connection_failed(&self, conn_gen: u64) {
        let c = self.conn.lock_unpoisoned();
        if c.conn_gen == conn_gen {
            if let Some(t) = &c.transport {
                t.close("call failed");
            }
        }
    }

    /// The session `gen` is gone (BADSESSION, …): create a new one unless someone did.
    pub(super) async fn session_failed(
        self: &Arc<Self>,
        gen: u64,
        deadline: Instant,
    ) -> Result<(), ClientError> {
        let _g = self.recovery.lock().await;
        let current = self.conn.lock_unpoisoned().session.as_ref().map(|s| s.gen);
        if current == Some(gen) {
            self.drop_session_locked();
        }
        if self.conn.lock_unpoisoned().session.is_none() {
            self.establish_locked(deadline).await?;
        }
        Ok(())
    }

    pub(super) fn handle_status_flags(self: &Arc<Self>, flags: u32) {
        if flags & (seq4::CB_PATH_DOWN | seq4::CB_PATH_DOWN_SESSION | seq4::BACKCHANNEL_FAULT) != 0
            && !self.rebinding.swap(true, Ordering::SeqCst)
        {
            tracing::info!(
                flags,
                "server reports the callback path down: rebinding the connection"
            );
            let me = self.clone();
            tokio::spawn(async move {
                let _g = me.recovery.lock().await;
                let (t, s) = {
                    let c = me.conn.lock_unpoisoned();
                    (c.transport.clone(), c.session.clone())
                };
                if let (Some(t), Some(s)) = (t, s) {
                    match me
                        .plain_call(&t, vec![wire::bind_conn_to_session(s.id)])
                        .await
                    {
                        Ok(Ok(_)) => bump(&me.stats.binds),
                        other => {
                            tracing::warn!(?other, "rebinding failed: dropping the connection");
                            t.close("rebind failed");
                        }
                    }
                }
                me.rebinding.store(false, Ordering::SeqCst);
            });
        }
        if flags
            & (seq4::EXPIRED_ALL_STATE_REVOKED
                | seq4::EXPIRED_SOME_STATE_REVOKED
                | seq4::ADMIN_STATE_REVOKED
                | seq4::RECALLABLE_STATE_REVOKED)
            != 0
            && !self.recovering_revoked.swap(true, Ordering::SeqCst)
        {
            tracing::warn!(
                flags,
                "server revoked state of this client: testing stateids"
            );
            let me = self.clone();
            let h = tokio::spawn(me.recover_revoked(flags));
            self.tasks.lock_unpoisoned().push(h);
        }
    }

    /// After SEQ4_STATUS_*_REVOKED: TEST_STATEID every open stateid (and, when only
    /// recallable state was revoked, every layout stateid); FREE_STATEID each one the server
    /// no longer honours (so the flag clears) and re-open the revoked opens with CLAIM_FH.
    /// Then the pNFS layer drops the layouts: only the revoked ones after
    /// RECALLABLE_STATE_REVOKED ([`CallbackSink::layouts_revoked`]), all of them after the
    /// other flags ([`CallbackSink::state_lost`]). A recovery that found nothing revoked keeps
    /// the next one [`REVOKED_RECHECK_MIN`] away: a server may keep the flag up for state
    /// this client has already forgotten.
    pub(super) fn recover_revoked(
        self: Arc<Self>,
        flags: u32,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            let only_recallable = flags
                & (seq4::EXPIRED_ALL_STATE_REVOKED
                    | seq4::EXPIRED_SOME_STATE_REVOKED
                    | seq4::ADMIN_STATE_REVOKED)
                == 0;
            let opens: Vec<(u64, OpenState)> = self
                .opens
                .lock_unpoisoned()
                .iter()
                .map(|(k, v)| (*k, v.clone()))
                .collect();
            let layouts: Vec<Stateid> = match (only_recallable, self.sink()) {
                (true, Some(sink)) => sink.layout_stateids(),
                _ => Vec::new(),
            };
            let mut sids: Vec<Stateid> = opens.iter().map(|(_, o)| o.stateid).collect();
            sids.extend(layouts.iter().copied());
            // TEST_STATEID in chunks the protocol allows; any failure ends the testing (what
            // was found so far is still recovered).
            let mut revoked: Vec<Stateid> = Vec::new();
            for chunk in sids.chunks(NFS4_MAX_TEST_STATEIDS) {
                let ids = chunk.to_vec();
                match self
                    .compound(
                        &move || {
                            Ok(vec![NfsArgOp::TestStateid(p::TestStateidArgs {
                                stateids: ids.clone(),
                            })])
                        },
                        CallFlags::READ_ONLY,
                    )
                    .await
                {
                    Ok(r) => {
                        let Some(NfsResOp::TestStateid(Ok(t))) = r.into_iter().next() else {
                            tracing::error!("TEST_STATEID after revocation: no result");
                            break;
                        };
                        revoked.extend(
                            chunk
                                .iter()
                                .zip(t.status_codes)
                                .filter(|(_, status)| !status.is_ok())
                                .map(|(sid, _)| *sid),
                        );
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "TEST_STATEID after revocation failed");
                        break;
                    }
                }
            }
            for &sid in &revoked {
                if let Err(e) = self
                    .compound(
                        &move || Ok(vec![NfsArgOp::FreeStateid(sid)]),
                        CallFlags::READ_ONLY,
                    )
                    .await
                {
                    tracing::warn!(error = %e, "FREE_STATEID of a revoked stateid failed");
                }
            }
            let is_revoked = |sid: &Stateid| revoked.iter().any(|r| r.other == sid.other);
            let revoked_layouts: Vec<Stateid> =
                layouts.iter().filter(|l| is_revoked(l)).copied().collect();
            let mut reopened = 0u32;
            for (id, st) in &opens {
                if !is_revoked(&st.stateid) {
                    continue;
                }
                match self.reopen(st, false).await {
                    Ok(new) => {
                        reopened += 1;
                        bump(&self.stats.reopened_opens);
                        if let Some(o) = self.opens.lock_unpoisoned().get_mut(id) {
                            o.stateid = new;
                            self.open_gen.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Err(e) => {
                        tracing::error!(path = %st.path, error = %e, "re-open after revocation failed")
                    }
                }
            }
            if let Some(sink) = self.sink() {
                if !only_recallable {
                    // Layout state may be revoked even when the opens survived.
                    sink.state_lost();
                } else if !revoked_layouts.is_empty() {
                    sink.layouts_revoked(&revoked_layouts);
                }
            }
            tracing::info!(
                reopened,
                layouts = revoked_layouts.len(),
                "recovery from revoked state done"
            );
            if only_recallable && reopened == 0 && revoked_layouts.is_empty() {
                tokio::time::sleep(REVOKED_RECHECK_MIN).await;
            }
            self.recovering_revoked.store(false, Ordering::SeqCst);
        })
    }

    /// If a reclaim is running, waits for it (true: retry the request with the new stateid).
    pub(super) async fn wait_reclaim(&self, deadline: Instant) -> bool {
        let mut rx = self.reclaiming.subscribe();
        if !*rx.borrow() {
            return false;
        }
        let _ = tokio::time::timeout_at(deadline, rx.wait_for(|r| !*r)).await;
        true
    }

    /// Reboot recovery: re-open every file (CLAIM_PREVIOUS, or CLAIM_FH when the server has
    /// no grace period for us), let the pNFS layer reclaim its layout commits, then
    /// RECLAIM_COMPLETE.
    ///
    /// Boxed with an explicit `Send` type: it is spawned from inside session establishment,
    /// which its own compounds call, and that cycle defeats auto-trait inference.
    pub(super) fn reclaim(self: Arc<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move { self.reclaim_inner().await })
    }

    pub(super) async fn reclaim_inner(self: Arc<Self>) {
        let ids: Vec<u64> = self.opens.lock_unpoisoned().keys().copied().collect();
        let mut lost = false;
        for id in ids {
            let Some(st) = self.opens.lock_unpoisoned().get(&id).cloned() else {
                continue;
            };
            match self.reopen(&st, true).await {
                Ok(sid) => {
                    bump(&self.stats.reclaimed_opens);
                    if let Some(o) = self.opens.lock_unpoisoned().get_mut(&id) {
                        o.stateid = sid;
                        self.open_gen.fetch_add(1, Ordering::SeqCst);
                    }
                }
                Err(ClientError::Nfs {
                    status: NfsStat::NO_GRACE | NfsStat::RECLAIM_BAD | NfsStat::RECLAIM_CONFLICT,
                    ..
                }) => {
                    lost = true;
                    match self.reopen(&st, false).await {
                        Ok(sid) => {
                            bump(&self.stats.reopened_opens);
                            if let Some(o) = self.opens.lock_unpoisoned().get_mut(&id) {
                                o.stateid = sid;
                                self.open_gen.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        Err(e) => {
                            tracing::error!(path = %st.path, error = %e, "re-open after server restart failed")
                        }
                    }
                }
                Err(e) => tracing::error!(path = %st.path, error = %e, "reclaim of an open failed"),
            }
        }
        if let Some(sink) = self.sink() {
            if lost {
                sink.state_lost();
            } else {
                let grace = self.lease_tx.borrow().lease;
                if tokio::time::timeout(grace, sink.server_restarted())
                    .await
                    .is_err()
                {
                    tracing::warn!("pNFS reclaim did not finish within the grace period");
                }
            }
        }
        let r = self
            .compound(
                &|| Ok(vec![NfsArgOp::ReclaimComplete(false)]),
                CallFlags {
                    reclaim: true,
                    ..CallFlags::READ_ONLY
                },
            )
            .await;
        match r {
            Ok(_)
            | Err(ClientError::Nfs {
                status: NfsStat::COMPLETE_ALREADY,
                ..
            }) => {}
            Err(e) => tracing::warn!(error = %e, "RECLAIM_COMPLETE failed"),
        }
        tracing::info!("reboot recovery done");
        self.reclaiming.send_replace(false);
    }

    pub(super) async fn reopen(
        self: &Arc<Self>,
        st: &OpenState,
        previous: bool,
    ) -> Result<Stateid, ClientError> {
        let clientid = self.conn.lock_unpoisoned().clientid.unwrap_or(0);
        let (fh, access, owner) = (st.fh.clone(), st.access, st.owner.clone());
        let build = move || {
            Ok(vec![
                NfsArgOp::Putfh(fh.clone()),
                wire::open(
                    access | wire::share::WANT_NO_DELEG,
                    owner.clone(),
                    clientid,
                    p::OpenFlag::NoCreate,
                    if previous {
                        p::OpenClaim::Previous(p::OpenDelegationType::None)
                    } else {
                        p::OpenClaim::Fh
                    },
                ),
            ])
        };
        let flags = CallFlags {
            reclaim: previous,
            uses_open_state: false,
            ..CallFlags::STATEFUL
        };
        let res = self.compound(&build, flags).await?;
        match res.get(1) {
            Some(NfsResOp::Open(Ok(o))) => {
                if let Some(d) = wire::delegation_stateid(&o.delegation) {
                    self.return_delegation(st.fh.clone(), d);
                }
                Ok(o.stateid)
            }
            _ => Err(ClientError::Protocol("OPEN without result".into())),
        }
    }
}
