//! Establishing: EXCHANGE_ID and CREATE_SESSION, and sessionless compounds used while doing
//! so.

use super::*;

impl Inner {
    /// With the recovery lock held: client ID (if needed) and a new session.
    pub(super) async fn establish_locked(
        self: &Arc<Self>,
        deadline: Instant,
    ) -> Result<Arc<Session>, ClientError> {
        let started = Instant::now();
        let mut backoff = FIRST_BACKOFF_MS;
        loop {
            if self.is_shutdown() {
                return Err(ClientError::Shutdown);
            }
            let err = match self.try_establish(deadline).await {
                Ok(s) => return Ok(s),
                Err(e) => e,
            };
            if !(err.is_transport()
                || matches!(
                    err,
                    ClientError::Nfs {
                        status: NfsStat::DELAY,
                        ..
                    }
                ))
            {
                return Err(err);
            }
            if Instant::now() + Duration::from_millis(backoff) > deadline {
                return Err(ClientError::RecoveryTimeout {
                    elapsed_ms: elapsed_ms(started),
                    last: err.to_string(),
                });
            }
            tokio::time::sleep(Duration::from_millis(backoff)).await;
            backoff = (backoff * 2).min(self.cfg.max_backoff_ms.max(FIRST_BACKOFF_MS));
        }
    }

    pub(super) async fn try_establish(
        self: &Arc<Self>,
        deadline: Instant,
    ) -> Result<Arc<Session>, ClientError> {
        self.reconnect_locked(deadline).await?;
        if let Some(s) = self.conn.lock_unpoisoned().session.clone() {
            return Ok(s);
        }
        let t = self
            .conn
            .lock_unpoisoned()
            .transport
            .clone()
            .ok_or_else(|| ClientError::ConnectionLost("no transport".into()))?;
        let (clientid, seq) = {
            let c = self.conn.lock_unpoisoned();
            (c.clientid, c.create_seq)
        };
        if let Some(cid) = clientid {
            match self.create_session(&t, cid, seq).await {
                Ok(s) => return Ok(s),
                Err(ClientError::Nfs {
                    status: NfsStat::STALE_CLIENTID | NfsStat::EXPIRED,
                    ..
                }) => {
                    tracing::info!("client ID is stale: the server lost our state (restart?)");
                    self.conn.lock_unpoisoned().clientid = None;
                }
                Err(e) => return Err(e),
            }
        }
        let had_client = self.conn.lock_unpoisoned().client_epoch > 0;
        let (cid, seq) = self.exchange_id(&t).await?;
        let session = self.create_session(&t, cid, seq).await?;
        let epoch = {
            let mut c = self.conn.lock_unpoisoned();
            c.client_epoch += 1;
            c.client_epoch
        };
        self.lease_tx.send_modify(|l| l.client_epoch = epoch);
        bump(&self.stats.client_ids);
        let have_opens = !self.opens.lock_unpoisoned().is_empty();
        if had_client && have_opens {
            // Reclaim runs outside the recovery lock: its compounds need the session.
            self.reclaiming.send_replace(true);
            let me = self.clone();
            let h = tokio::spawn(me.reclaim());
            self.tasks.lock_unpoisoned().push(h);
        } else {
            // Nothing to reclaim: tell the server so that it can end our part of the grace.
            match self
                .plain_session_call(&t, &session, vec![NfsArgOp::ReclaimComplete(false)])
                .await
            {
                Ok(Ok(_)) => {}
                Ok(Err(f)) if f.status == NfsStat::COMPLETE_ALREADY => {}
                Ok(Err(f)) => tracing::warn!(status = %f.status, "RECLAIM_COMPLETE failed"),
                Err(e) => return Err(e),
            }
        }
        Ok(session)
    }

    /// A compound with SEQUENCE on `session` over `t`, without recovery (used inside recovery).
    pub(super) async fn plain_session_call(
        &self,
        t: &Transport,
        session: &Arc<Session>,
        ops: Vec<NfsArgOp>,
    ) -> Result<Result<Vec<NfsResOp>, OpFailure>, ClientError> {
        let slot = session
            .slots
            .acquire()
            .await
            .ok_or_else(|| ClientError::Protocol("session closed".into()))?;
        let mut all = vec![wire::sequence(
            session.id,
            slot.seqid,
            slot.slot,
            slot.highest_slotid,
            false,
        )];
        all.extend(ops);
        let sent_at = Instant::now();
        let r = self.plain_call(t, all).await?;
        match r {
            Ok(res) => {
                slot.complete();
                self.note_renewal(sent_at);
                Ok(Ok(res.into_iter().skip(1).collect()))
            }
            Err(f) if f.opnum == wire::opnum::SEQUENCE => {
                slot.abandon();
                Ok(Err(f))
            }
            Err(f) => {
                slot.complete();
                self.note_renewal(sent_at);
                Ok(Err(f))
            }
        }
    }

    pub(super) async fn exchange_id(&self, t: &Transport) -> Result<(ClientId, u32), ClientError> {
        let mut mach = self.cfg.request_mach_cred;
        loop {
            let op = wire::exchange_id(
                self.verifier,
                self.cfg.owner_id.as_bytes().to_vec(),
                exchgid::USE_PNFS_MDS,
                mach,
            );
            match self.plain_call(t, vec![op]).await? {
                Ok(res) => {
                    let Some(NfsResOp::ExchangeId(Ok(e))) = res.into_iter().next() else {
                        return Err(ClientError::Protocol("EXCHANGE_ID without result".into()));
                    };
                    let (clientid, seqid, flags) = (e.clientid, e.sequenceid, e.flags);
                    let mut c = self.conn.lock_unpoisoned();
                    c.clientid = Some(clientid);
                    c.create_seq = seqid;
                    c.mach_cred = matches!(e.state_protect, p::StateProtectR::MachCred(_));
                    tracing::info!(clientid, flags, mach_cred = c.mach_cred, "EXCHANGE_ID done");
                    return Ok((clientid, seqid));
                }
                Err(f) if mach && !matches!(f.status, NfsStat::DELAY | NfsStat::CLID_INUSE) => {
                    // The server does not offer SP4_MACH_CRED with AUTH_SYS (Linux nfsd requires
                    // an integrity-protected transport): fall back to SP4_NONE.
                    tracing::info!(status = %f.status, "SP4_MACH_CRED refused; using SP4_NONE");
                    mach = false;
                }
                Err(f) => {
                    return Err(ClientError::Nfs {
                        op: "EXCHANGE_ID",
                        status: f.status,
                    })
                }
            }
        }
    }

    pub(super) async fn create_session(
        &self,
        t: &Transport,
        clientid: ClientId,
        seq: u32,
    ) -> Result<Arc<Session>, ClientError> {
        let rw = self.cfg.max_rw_bytes;
        let fore = ChannelAttrs {
            headerpadsize: 0,
            maxrequestsize: rw.saturating_add(COMPOUND_OVERHEAD_BYTES * 8),
            maxresponsesize: rw.saturating_add(COMPOUND_OVERHEAD_BYTES * 8),
            maxresponsesize_cached: 64 * 1024,
            maxoperations: 16,
            maxrequests: self.cfg.fore_slots,
            rdma_ird: None,
        };
        let back = ChannelAttrs {
            headerpadsize: 0,
            maxrequestsize: 16 * 1024,
            maxresponsesize: 16 * 1024,
            maxresponsesize_cached: 16 * 1024,
            maxoperations: 8,
            maxrequests: self.cfg.back_slots,
            rdma_ird: None,
        };
        let op = NfsArgOp::CreateSession(p::CreateSessionArgs {
            clientid,
            sequence: seq,
            flags: CREATE_SESSION4_FLAG_CONN_BACK_CHAN,
            fore_chan_attrs: fore,
            back_chan_attrs: back,
            cb_program: self.cfg.cb_program,
            sec_parms: vec![p::CallbackSecParms::Sys(self.cred.clone())],
        });
        match self.plain_call(t, vec![op]).await? {
            Ok(res) => {
                let Some(NfsResOp::CreateSession(Ok(created))) = res.into_iter().next() else {
                    return Err(ClientError::Protocol(
                        "CREATE_SESSION without result".into(),
                    ));
                };
                let (session, flags) = (created.sessionid, created.flags);
                let (fore, back) = (created.fore_chan_attrs, created.back_chan_attrs);
                if flags & CREATE_SESSION4_FLAG_CONN_BACK_CHAN == 0 {
                    tracing::warn!("server did not bind the connection for callbacks");
                }
                let mut c = self.conn.lock_unpoisoned();
                c.create_seq = seq.wrapping_add(1);
                c.session_gen += 1;
                let s = Arc::new(Session {
                    id: session,
                    gen: c.session_gen,
                    slots: SlotTable::new(fore.maxrequests),
                    cb_slots: Arc::new(CbSlotTable::new(back.maxrequests)),
                    fore,
                });
                if let Some(old) = c.session.replace(s.clone()) {
                    old.slots.close();
                }
                bump(&self.stats.sessions);
                tracing::info!(
                    slots = fore.maxrequests,
                    back_slots = back.maxrequests,
                    "session created"
                );
                Ok(s)
            }
            Err(f) => Err(ClientError::Nfs {
                op: "CREATE_SESSION",
                status: f.status,
            }),
        }
    }
}
