//! Background tasks: the lease renewal loop and the back channel (callbacks from the server).

use super::*;

pub(super) async fn renew_loop(weak: Weak<Inner>) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        if inner.is_shutdown() {
            return;
        }
        let (lease, last) = {
            let l = inner.lease_tx.borrow();
            (l.lease, l.last_renewal_sent)
        };
        let period = lease / 3;
        let due = last.map_or_else(Instant::now, |t| t + period);
        if Instant::now() >= due {
            bump(&inner.stats.renewals);
            if let Err(e) = inner.compound(&|| Ok(vec![]), CallFlags::READ_ONLY).await {
                tracing::warn!(error = %e, "lease renewal failed");
                drop(inner);
                tokio::time::sleep(Duration::from_millis(FIRST_BACKOFF_MS * 4)).await;
            }
            continue;
        }
        let mut lease_rx = inner.lease_tx.subscribe();
        drop(inner);
        // Wakes when due, or early when a compound renewed the lease (then re-computes).
        tokio::select! {
            () = tokio::time::sleep_until(due) => {}
            r = lease_rx.changed() => {
                if r.is_err() {
                    return;
                }
            }
        }
    }
}

pub(super) async fn backchannel_loop(weak: Weak<Inner>, mut rx: mpsc::Receiver<IncomingCall>) {
    while let Some(call) = rx.recv().await {
        let Some(inner) = weak.upgrade() else { return };
        let (stat, body) = answer_callback(&inner, &call);
        if let Err(e) = call.reply.send(call.xid, stat, &body).await {
            tracing::debug!(error = %e, "callback reply not sent (connection gone)");
        }
    }
}

pub(super) fn answer_callback(inner: &Arc<Inner>, call: &IncomingCall) -> (AcceptStat, Vec<u8>) {
    if call.prog != inner.cfg.cb_program {
        return (AcceptStat::ProgUnavail, vec![]);
    }
    if call.vers != NFS_CB_VERSION {
        return (
            AcceptStat::ProgMismatch {
                low: NFS_CB_VERSION,
                high: NFS_CB_VERSION,
            },
            vec![],
        );
    }
    match call.proc_num {
        CB_NULL => (AcceptStat::Success, vec![]),
        CB_COMPOUND => {
            let cbc = match cb::decode_cb_compound(&call.args) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "malformed CB_COMPOUND");
                    return (AcceptStat::GarbageArgs, vec![]);
                }
            };
            let session = inner.conn.lock_unpoisoned().session.clone();
            let Some(session) = session else {
                let res = pnfs_proto::nfs4::cb::CbCompoundRes {
                    status: NfsStat::BADSESSION,
                    tag: cbc.tag.clone(),
                    results: vec![],
                };
                return (AcceptStat::Success, pnfs_proto::xdr::to_bytes(&res));
            };
            let ctx = cb::CbContext {
                session: session.id,
                slots: &session.cb_slots,
                sink: inner.sink(),
            };
            // Counted before the pNFS layer sees the callback, so a test that saw the
            // callback also sees the count.
            bump(&inner.stats.callbacks);
            let (reply, follow) = cb::handle_cb_compound(&cbc, &ctx);
            for f in follow {
                match f {
                    FollowUp::ReturnDelegation { fh, stateid } => {
                        inner.return_delegation(fh, stateid)
                    }
                }
            }
            (AcceptStat::Success, reply)
        }
        _ => (AcceptStat::ProcUnavail, vec![]),
    }
}
