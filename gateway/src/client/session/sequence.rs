//! SEQUENCE and slots: one compound with every retry the module docs of `session` list.

use super::*;

enum Attempt {
    Reply(Vec<u8>, Instant),
    SessionChanged,
}

impl Inner {
    /// Runs one compound (SEQUENCE + `build()`), with every retry the module docs list. `build`
    /// is called again for each new attempt so it can pick up stateids changed by recovery.
    pub(crate) async fn compound(
        self: &Arc<Self>,
        build: &(dyn Fn() -> Result<Vec<NfsArgOp>, ClientError> + Send + Sync),
        flags: CallFlags,
    ) -> Result<Vec<NfsResOp>, ClientError> {
        match self.compound_raw(build, flags).await? {
            Ok(r) => Ok(r),
            Err(f) => Err(ClientError::Nfs {
                op: wire::op_name(f.opnum),
                status: f.status,
            }),
        }
    }

    /// Like [`Inner::compound`] but returns an op failure as a value (for TOOSMALL's count).
    pub(crate) async fn compound_raw(
        self: &Arc<Self>,
        build: &(dyn Fn() -> Result<Vec<NfsArgOp>, ClientError> + Send + Sync),
        flags: CallFlags,
    ) -> Result<Result<Vec<NfsResOp>, OpFailure>, ClientError> {
        let deadline = self.stall_deadline();
        let started = Instant::now();
        let mut backoff = FIRST_BACKOFF_MS;
        let mut misordered = 0u32;
        let mut last_err = String::new();
        loop {
            if self.is_shutdown() {
                return Err(ClientError::Shutdown);
            }
            if Instant::now() > deadline {
                return Err(ClientError::RecoveryTimeout {
                    elapsed_ms: elapsed_ms(started),
                    last: last_err,
                });
            }
            let session = self.ensure_session(deadline).await?;
            let Some(slot) = session.slots.acquire().await else {
                continue; // the session was replaced while we waited
            };
            let open_gen_at_build = self.open_gen.load(Ordering::SeqCst);
            let ops = build()?;
            let sent: Vec<u32> = std::iter::once(wire::opnum::SEQUENCE)
                .chain(ops.iter().map(NfsArgOp::opnum))
                .collect();
            let mut all = Vec::with_capacity(ops.len() + 1);
            all.push(wire::sequence(
                session.id,
                slot.seqid,
                slot.slot,
                slot.highest_slotid,
                flags.cache_this,
            ));
            all.extend(ops);
            let args = wire::encode_compound("", all);
            // Same slot and seqid across reconnects: the server executes the request once and
            // answers a retry from its reply cache.
            let attempt = loop {
                let (t, conn_gen) = self.ensure_transport(deadline).await?;
                if self.conn.lock_unpoisoned().session.as_ref().map(|s| s.gen) != Some(session.gen)
                {
                    break Attempt::SessionChanged;
                }
                let sent_at = Instant::now();
                match t
                    .call(NFS_PROGRAM, NFS_V4, NFSPROC4_COMPOUND, &self.cred, &args)
                    .await
                {
                    Ok(bytes) => break Attempt::Reply(bytes, sent_at),
                    Err(e) if e.is_transport() => {
                        tracing::debug!(error = %e, "call failed on the transport; reconnecting");
                        last_err = e.to_string();
                        self.connection_failed(conn_gen);
                        if Instant::now() > deadline {
                            return Err(ClientError::RecoveryTimeout {
                                elapsed_ms: elapsed_ms(started),
                                last: last_err,
                            });
                        }
                    }
                    Err(e) => return Err(e),
                }
            };
            let (bytes, sent_at) = match attempt {
                Attempt::Reply(b, t) => (b, t),
                Attempt::SessionChanged => {
                    slot.abandon();
                    continue;
                }
            };
            let CompoundRes { results, failure } = wire::decode_compound(&bytes, &sent)?;
            if results.is_empty() {
                let f = failure.unwrap_or(OpFailure {
                    opnum: wire::opnum::SEQUENCE,
                    status: NfsStat::SERVERFAULT,
                    min_count: None,
                });
                last_err = format!("SEQUENCE: {}", f.status);
                match f.status {
                    NfsStat::BADSESSION
                    | NfsStat::DEADSESSION
                    | NfsStat::STALE_CLIENTID
                    | NfsStat::EXPIRED => {
                        slot.abandon();
                        self.session_failed(session.gen, deadline).await?;
                    }
                    NfsStat::DELAY => {
                        slot.abandon();
                        bump(&self.stats.delay_retries);
                        tokio::time::sleep(Duration::from_millis(backoff)).await;
                        backoff = (backoff * 2).min(self.cfg.max_backoff_ms.max(FIRST_BACKOFF_MS));
                    }
                    NfsStat::BADSLOT | NfsStat::BAD_HIGH_SLOT => {
                        session.slots.shrink_below(slot.slot);
                        slot.abandon();
                    }
                    NfsStat::SEQ_MISORDERED if misordered < MAX_MISORDERED_RETRIES => {
                        misordered += 1;
                        session.slots.resync(slot.slot, slot.seqid);
                        slot.abandon();
                    }
                    NfsStat::RETRY_UNCACHED_REP | NfsStat::SEQ_FALSE_RETRY if flags.idempotent => {
                        slot.complete();
                    }
                    _ => {
                        slot.complete();
                        return Ok(Err(f));
                    }
                }
                continue;
            }
            let mut results = results.into_iter();
            if let Some(NfsResOp::Sequence(Ok(seq))) = results.next() {
                slot.complete();
                session
                    .slots
                    .update_limits(seq.highest_slotid, seq.target_highest_slotid);
                self.note_renewal(sent_at);
                if seq.status_flags != 0 {
                    self.handle_status_flags(seq.status_flags);
                }
            } else {
                return Err(ClientError::Protocol("first result is not SEQUENCE".into()));
            }
            let results: Vec<NfsResOp> = results.collect();
            let Some(f) = failure else {
                return Ok(Ok(results));
            };
            last_err = format!("{}: {}", wire::op_name(f.opnum), f.status);
            match f.status {
                NfsStat::DELAY => {}
                NfsStat::GRACE if !flags.reclaim => {}
                NfsStat::BADSESSION | NfsStat::DEADSESSION | NfsStat::STALE_CLIENTID => {
                    self.session_failed(session.gen, deadline).await?;
                    continue;
                }
                // A retry on the same slot+seqid whose reply the server did not cache (some
                // servers report it on the op after SEQUENCE): safe to send again as new.
                NfsStat::RETRY_UNCACHED_REP if flags.idempotent => continue,
                NfsStat::STALE_STATEID | NfsStat::BAD_STATEID | NfsStat::EXPIRED
                    if flags.uses_open_state
                        && (self.open_gen.load(Ordering::SeqCst) != open_gen_at_build
                            || self.wait_reclaim(deadline).await) =>
                {
                    continue;
                }
                _ => return Ok(Err(f)),
            }
            bump(&self.stats.delay_retries);
            tokio::time::sleep(Duration::from_millis(backoff)).await;
            backoff = (backoff * 2).min(self.cfg.max_backoff_ms.max(FIRST_BACKOFF_MS));
        }
    }
}
