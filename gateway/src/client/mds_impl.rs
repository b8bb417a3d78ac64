//! [`MetadataServer`] for [`NfsClient`]: the file operations of the pNFS layer, built on
//! [`Inner::compound`](super::session) with its retries.

use crate::sync::LockExt;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use pnfs_proto::nfs4::ops as p;
use pnfs_proto::nfs4::ops::{NfsArgOp, NfsResOp};
use pnfs_proto::nfs4::{Bitmap4, DeviceId, FileHandle, LayoutType, NfsStat, Stateid, Verifier};
use tokio::sync::watch;

use super::error::ClientError;
use super::session::{CallFlags, Inner, NfsClient, OpenState};
use super::wire::{self, attr, share, Attrs};
use crate::mds_api::{
    CallbackSink, DeviceInfo, LayoutCommitArgs, LayoutCommitResult, LayoutGetArgs, LayoutGetResult,
    LayoutReturnArgs, LayoutReturnResult, LayoutReturnTarget, LayoutSegment, LeaseStatus, MdsError,
    MdsErrorKind, MdsResult, MetadataServer, OpenFile, OpenId, OpenMode, ReadResult, StableHow,
    StateidArg, WriteResult,
};

/// Most path components in an open path.
pub const MAX_PATH_COMPONENTS: usize = 64;
/// Longest path component.
pub const MAX_COMPONENT_BYTES: usize = 255;
/// Permission bits of files the client creates.
const CREATE_MODE: u32 = 0o600;
/// Attributes fetched at open.
const OPEN_ATTRS: [u32; 5] = [
    attr::SIZE,
    attr::FSID,
    attr::FS_LAYOUT_TYPES,
    attr::LAYOUT_BLKSIZE,
    attr::LAYOUT_ALIGNMENT,
];

/// Maps a client error to the boundary error, once.
pub fn to_mds_error(op: &'static str, e: ClientError) -> MdsError {
    let kind = match &e {
        ClientError::Nfs { status, .. }
            if matches!(*status, NfsStat::NOTSUPP | NfsStat::OP_ILLEGAL) =>
        {
            MdsErrorKind::NotSupported
        }
        ClientError::Nfs { status, .. } => MdsErrorKind::Status(*status),
        ClientError::Connect { .. } | ClientError::ConnectionLost(_) => MdsErrorKind::Transport,
        ClientError::Timeout { .. } | ClientError::RecoveryTimeout { .. } => MdsErrorKind::Timeout,
        ClientError::Rpc(_)
        | ClientError::Xdr(_)
        | ClientError::Protocol(_)
        | ClientError::Invalid(_) => MdsErrorKind::Protocol,
        ClientError::Shutdown => MdsErrorKind::Shutdown,
    };
    MdsError::new(kind, op, e.to_string())
}

fn split_path(path: &str) -> Result<Vec<String>, ClientError> {
    let comps: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    if comps.is_empty() || comps.len() > MAX_PATH_COMPONENTS {
        return Err(ClientError::Invalid(format!(
            "path {path:?}: need 1..={MAX_PATH_COMPONENTS} components"
        )));
    }
    if let Some(c) = comps
        .iter()
        .find(|c| c.len() > MAX_COMPONENT_BYTES || *c == "." || *c == "..")
    {
        return Err(ClientError::Invalid(format!(
            "path component {c:?} not allowed"
        )));
    }
    Ok(comps)
}

impl Inner {
    fn open_state(&self, id: OpenId) -> Result<OpenState, ClientError> {
        self.opens
            .lock_unpoisoned()
            .get(&id.0)
            .cloned()
            .ok_or_else(|| {
                ClientError::Invalid(format!("open {} is not held by this client", id.0))
            })
    }

    fn current_stateid(&self, id: OpenId) -> Stateid {
        self.opens
            .lock_unpoisoned()
            .get(&id.0)
            .map_or(Stateid::default(), |o| o.stateid)
    }

    fn resolve(&self, id: OpenId, s: StateidArg) -> Stateid {
        match s {
            StateidArg::Open => self.current_stateid(id),
            StateidArg::Given(s) => s,
        }
    }

    async fn open_file(
        self: &Arc<Self>,
        path: &str,
        mode: OpenMode,
    ) -> Result<OpenFile, ClientError> {
        let comps = split_path(path)?;
        let access = if mode.read_only {
            share::ACCESS_READ
        } else {
            share::ACCESS_BOTH
        };
        let id = self.next_open_id.fetch_add(1, Ordering::Relaxed);
        let owner = format!("pnfs-gateway open {id}").into_bytes();
        let mut create = mode
            .create_size_bytes
            .map(|_| wire::create_guarded(CREATE_MODE));
        let (stateid, deleg, fh, attrs, created) = loop {
            let clientid = self
                .conn_clientid()
                .ok_or_else(|| ClientError::Protocol("no client ID".into()))?;
            let (comps, owner) = (comps.clone(), owner.clone());
            let cr = create.clone().unwrap_or(p::OpenFlag::NoCreate);
            let build = move || {
                let (last, dirs) = comps
                    .split_last()
                    .map_or((String::new(), &[][..]), |(l, d)| (l.clone(), d));
                let mut ops = vec![NfsArgOp::Putrootfh];
                ops.extend(dirs.iter().map(|c| wire::lookup(c)));
                ops.push(wire::open(
                    access | share::WANT_NO_DELEG,
                    owner.clone(),
                    clientid,
                    cr.clone(),
                    p::OpenClaim::Null(last),
                ));
                ops.push(NfsArgOp::Getfh);
                ops.push(wire::getattr(&OPEN_ATTRS));
                Ok(ops)
            };
            match self
                .compound(
                    &build,
                    CallFlags {
                        uses_open_state: false,
                        ..CallFlags::STATEFUL
                    },
                )
                .await
            {
                Ok(res) => {
                    let n = res.len();
                    let (
                        Some(NfsResOp::Open(Ok(o))),
                        Some(NfsResOp::Getfh(Ok(fh))),
                        Some(NfsResOp::Getattr(Ok(a))),
                    ) = (
                        res.get(n.wrapping_sub(3)),
                        res.get(n.wrapping_sub(2)),
                        res.get(n.wrapping_sub(1)),
                    )
                    else {
                        return Err(ClientError::Protocol(
                            "OPEN compound results out of shape".into(),
                        ));
                    };
                    break (
                        o.stateid,
                        wire::delegation_stateid(&o.delegation),
                        fh.object.clone(),
                        Attrs::from_fattr4(&a.obj_attributes)?,
                        create.is_some(),
                    );
                }
                Err(ClientError::Nfs {
                    status: NfsStat::EXIST,
                    ..
                }) if create.is_some() => create = None,
                Err(e) => return Err(e),
            }
        };
        if let Some(d) = deleg {
            self.return_delegation(fh.clone(), d);
        }
        self.opens.lock_unpoisoned().insert(
            id,
            OpenState {
                path: path.to_owned(),
                fh: fh.clone(),
                stateid,
                access,
                owner,
            },
        );
        let mut size = attrs.size_bytes.unwrap_or(0);
        if let (true, Some(want)) = (created, mode.create_size_bytes) {
            if want != size {
                self.set_size(OpenId(id), want).await?;
                size = want;
            }
        }
        Ok(OpenFile {
            id: OpenId(id),
            path: path.to_owned(),
            fh,
            open_stateid: stateid,
            size_bytes: size,
            fsid: attrs.fsid.unwrap_or((0, 0)),
            layout_types: attrs.fs_layout_types,
            layout_blksize_bytes: attrs.layout_blksize.unwrap_or(0),
            layout_alignment_bytes: attrs.layout_alignment.unwrap_or(0),
        })
    }

    fn conn_clientid(&self) -> Option<u64> {
        // A separate accessor so the lock is never held across an await.
        self.client_id_snapshot()
    }

    async fn set_size(self: &Arc<Self>, id: OpenId, size_bytes: u64) -> Result<(), ClientError> {
        let fh = self.open_state(id)?.fh;
        let me = self.clone();
        let build = move || {
            Ok(vec![
                NfsArgOp::Putfh(fh.clone()),
                wire::set_size(me.current_stateid(id), size_bytes),
            ])
        };
        self.compound(
            &build,
            CallFlags {
                idempotent: true,
                ..CallFlags::STATEFUL
            },
        )
        .await
        .map(|_| ())
    }
}

fn fh_of(open: &OpenFile) -> FileHandle {
    open.fh.clone()
}

impl NfsClient {
    async fn run<T>(
        &self,
        op: &'static str,
        f: impl Future<Output = Result<T, ClientError>>,
    ) -> MdsResult<T> {
        f.await.map_err(|e| to_mds_error(op, e))
    }
}

impl MetadataServer for NfsClient {
    fn set_callback_sink(&self, sink: Weak<dyn CallbackSink>) {
        *self.inner.sink.lock_unpoisoned() = Some(sink);
    }

    fn open(&self, path: &str, mode: OpenMode) -> impl Future<Output = MdsResult<OpenFile>> + Send {
        let path = path.to_owned();
        self.run(
            "OPEN",
            async move { self.inner.open_file(&path, mode).await },
        )
    }

    fn close(&self, open: &OpenFile) -> impl Future<Output = MdsResult<()>> + Send {
        let id = open.id.0;
        self.run("CLOSE", async move { self.inner.close_open(id).await })
    }

    fn get_size(&self, open: &OpenFile) -> impl Future<Output = MdsResult<u64>> + Send {
        let fh = fh_of(open);
        self.run("GETATTR", async move {
            let build = move || {
                Ok(vec![
                    NfsArgOp::Putfh(fh.clone()),
                    wire::getattr(&[attr::SIZE]),
                ])
            };
            let res = self.inner.compound(&build, CallFlags::READ_ONLY).await?;
            match res.get(1) {
                Some(NfsResOp::Getattr(Ok(a))) => Attrs::from_fattr4(&a.obj_attributes)?
                    .size_bytes
                    .ok_or_else(|| ClientError::Protocol("no size in GETATTR".into())),
                _ => Err(ClientError::Protocol("GETATTR without result".into())),
            }
        })
    }

    fn set_size(
        &self,
        open: &OpenFile,
        size_bytes: u64,
    ) -> impl Future<Output = MdsResult<()>> + Send {
        let id = open.id;
        self.run("SETATTR", async move {
            self.inner.set_size(id, size_bytes).await
        })
    }

    fn layout_get(
        &self,
        open: &OpenFile,
        args: LayoutGetArgs,
    ) -> impl Future<Output = MdsResult<LayoutGetResult>> + Send {
        let (fh, id) = (fh_of(open), open.id);
        self.run("LAYOUTGET", async move {
            let me = self.inner.clone();
            let build = move || {
                Ok(vec![
                    NfsArgOp::Putfh(fh.clone()),
                    NfsArgOp::Layoutget(p::LayoutgetArgs {
                        signal_layout_avail: args.signal_layout_avail,
                        layout_type: args.layout_type,
                        iomode: args.iomode,
                        offset: args.offset_bytes,
                        length: args.length_bytes,
                        minlength: args.min_length_bytes,
                        stateid: me.resolve(id, args.stateid),
                        maxcount: args.max_reply_bytes,
                    }),
                ])
            };
            let flags = CallFlags {
                uses_open_state: args.stateid == StateidArg::Open,
                ..CallFlags::STATEFUL
            };
            match self.inner.compound(&build, flags).await?.into_iter().nth(1) {
                Some(NfsResOp::Layoutget(p::LayoutgetRes::Ok(l))) => Ok(LayoutGetResult {
                    return_on_close: l.return_on_close,
                    stateid: l.stateid,
                    segments: l
                        .layouts
                        .into_iter()
                        .map(|s| LayoutSegment {
                            offset_bytes: s.offset,
                            length_bytes: s.length,
                            iomode: s.iomode,
                            layout_type: s.content.loc_type,
                            body: Bytes::from(s.content.loc_body),
                        })
                        .collect(),
                }),
                _ => Err(ClientError::Protocol("LAYOUTGET without result".into())),
            }
        })
    }

    fn layout_commit(
        &self,
        open: &OpenFile,
        args: LayoutCommitArgs,
    ) -> impl Future<Output = MdsResult<LayoutCommitResult>> + Send {
        let (fh, id) = (fh_of(open), open.id);
        self.run("LAYOUTCOMMIT", async move {
            let me = self.inner.clone();
            let reclaim = args.reclaim;
            let build = move || {
                Ok(vec![
                    NfsArgOp::Putfh(fh.clone()),
                    NfsArgOp::Layoutcommit(p::LayoutcommitArgs {
                        offset: args.offset_bytes,
                        length: args.length_bytes,
                        reclaim: args.reclaim,
                        stateid: me.resolve(id, args.stateid),
                        last_write_offset: args.last_write_offset_bytes,
                        time_modify: args.time_modify,
                        layoutupdate: p::LayoutUpdate {
                            lou_type: args.layout_type,
                            lou_body: args.update_body.to_vec(),
                        },
                    }),
                ])
            };
            let flags = CallFlags {
                idempotent: true,
                reclaim,
                ..CallFlags::STATEFUL
            };
            match self.inner.compound(&build, flags).await?.into_iter().nth(1) {
                Some(NfsResOp::Layoutcommit(Ok(c))) => Ok(LayoutCommitResult {
                    new_size_bytes: c.newsize,
                }),
                _ => Err(ClientError::Protocol("LAYOUTCOMMIT without result".into())),
            }
        })
    }

    fn layout_return(
        &self,
        open: &OpenFile,
        args: LayoutReturnArgs,
    ) -> impl Future<Output = MdsResult<LayoutReturnResult>> + Send {
        let fh = fh_of(open);
        self.run("LAYOUTRETURN", async move {
            let layoutreturn = match &args.target {
                LayoutReturnTarget::File {
                    offset_bytes,
                    length_bytes,
                    stateid,
                    body,
                } => p::Layoutreturn::File(p::LayoutreturnFile {
                    offset: *offset_bytes,
                    length: *length_bytes,
                    stateid: *stateid,
                    body: body.to_vec(),
                }),
                LayoutReturnTarget::Fsid => p::Layoutreturn::Fsid,
                LayoutReturnTarget::All => p::Layoutreturn::All,
            };
            let build = move || {
                Ok(vec![
                    NfsArgOp::Putfh(fh.clone()),
                    NfsArgOp::Layoutreturn(p::LayoutreturnArgs {
                        reclaim: args.reclaim,
                        layout_type: args.layout_type,
                        iomode: args.iomode,
                        layoutreturn: layoutreturn.clone(),
                    }),
                ])
            };
            let flags = CallFlags {
                uses_open_state: false,
                ..CallFlags::STATEFUL
            };
            match self.inner.compound(&build, flags).await?.into_iter().nth(1) {
                Some(NfsResOp::Layoutreturn(Ok(r))) => {
                    Ok(LayoutReturnResult { stateid: r.stateid })
                }
                _ => Err(ClientError::Protocol("LAYOUTRETURN without result".into())),
            }
        })
    }

    fn get_device_info(
        &self,
        layout_type: LayoutType,
        device_id: DeviceId,
        notify_mask: u32,
    ) -> impl Future<Output = MdsResult<DeviceInfo>> + Send {
        self.run("GETDEVICEINFO", async move {
            let limit = u32::try_from(wire::MAX_BODY_BYTES).unwrap_or(u32::MAX);
            let mut max_count = self.inner.max_io_bytes().min(limit);
            for _ in 0..2 {
                let mc = max_count;
                let build = move || {
                    Ok(vec![NfsArgOp::Getdeviceinfo(p::GetdeviceinfoArgs {
                        device_id,
                        layout_type,
                        maxcount: mc,
                        notify_types: Bitmap4(vec![notify_mask]),
                    })])
                };
                match self
                    .inner
                    .compound_raw(&build, CallFlags::READ_ONLY)
                    .await?
                {
                    Ok(res) => match res.into_iter().next() {
                        Some(NfsResOp::Getdeviceinfo(p::GetdeviceinfoRes::Ok(d))) => {
                            return Ok(DeviceInfo {
                                layout_type: d.device_addr.layout_type,
                                addr_body: Bytes::from(d.device_addr.addr_body),
                                notifications: d.notification.0.first().copied().unwrap_or(0),
                            })
                        }
                        _ => {
                            return Err(ClientError::Protocol(
                                "GETDEVICEINFO without result".into(),
                            ))
                        }
                    },
                    Err(wire::OpFailure {
                        status: NfsStat::TOOSMALL,
                        min_count: Some(min),
                        ..
                    }) if min > max_count && min <= limit => {
                        max_count = min;
                    }
                    Err(f) => {
                        return Err(ClientError::Nfs {
                            op: "GETDEVICEINFO",
                            status: f.status,
                        })
                    }
                }
            }
            Err(ClientError::Nfs {
                op: "GETDEVICEINFO",
                status: NfsStat::TOOSMALL,
            })
        })
    }

    fn read(
        &self,
        open: &OpenFile,
        offset_bytes: u64,
        length_bytes: u32,
    ) -> impl Future<Output = MdsResult<ReadResult>> + Send {
        let (fh, id) = (fh_of(open), open.id);
        self.run("READ", async move {
            let count_bytes = length_bytes.min(self.inner.max_io_bytes());
            let me = self.inner.clone();
            let build = move || {
                Ok(vec![
                    NfsArgOp::Putfh(fh.clone()),
                    NfsArgOp::Read(p::ReadArgs {
                        stateid: me.current_stateid(id),
                        offset: offset_bytes,
                        count: count_bytes,
                    }),
                ])
            };
            match self
                .inner
                .compound(&build, CallFlags::IO)
                .await?
                .into_iter()
                .nth(1)
            {
                Some(NfsResOp::Read(Ok(r)))
                    if r.data.len() <= usize::try_from(count_bytes).unwrap_or(usize::MAX) =>
                {
                    Ok(ReadResult {
                        data: Bytes::from(r.data),
                        eof: r.eof,
                    })
                }
                Some(NfsResOp::Read(Ok(r))) => Err(ClientError::Protocol(format!(
                    "READ returned {} bytes for {count_bytes}",
                    r.data.len()
                ))),
                _ => Err(ClientError::Protocol("READ without result".into())),
            }
        })
    }

    fn write(
        &self,
        open: &OpenFile,
        offset_bytes: u64,
        data: Bytes,
        stable: StableHow,
    ) -> impl Future<Output = MdsResult<WriteResult>> + Send {
        let (fh, id) = (fh_of(open), open.id);
        self.run("WRITE", async move {
            let max = usize::try_from(self.inner.max_io_bytes()).unwrap_or(usize::MAX);
            let data = data.slice(..data.len().min(max));
            let me = self.inner.clone();
            let build = move || {
                Ok(vec![
                    NfsArgOp::Putfh(fh.clone()),
                    NfsArgOp::Write(p::WriteArgs {
                        stateid: me.current_stateid(id),
                        offset: offset_bytes,
                        stable,
                        data: data.to_vec(),
                    }),
                ])
            };
            match self
                .inner
                .compound(&build, CallFlags::IO)
                .await?
                .into_iter()
                .nth(1)
            {
                Some(NfsResOp::Write(Ok(w))) => Ok(WriteResult {
                    count_bytes: w.count,
                    committed: w.committed,
                    verifier: w.writeverf,
                }),
                _ => Err(ClientError::Protocol("WRITE without result".into())),
            }
        })
    }

    fn commit(
        &self,
        open: &OpenFile,
        offset_bytes: u64,
        length_bytes: u64,
    ) -> impl Future<Output = MdsResult<Verifier>> + Send {
        let fh = fh_of(open);
        self.run("COMMIT", async move {
            // COMMIT's count is 32 bits; a longer range commits to EOF (count 0).
            let count_bytes = u32::try_from(length_bytes).unwrap_or(0);
            let build = move || {
                Ok(vec![
                    NfsArgOp::Putfh(fh.clone()),
                    NfsArgOp::Commit(p::CommitArgs {
                        offset: offset_bytes,
                        count: count_bytes,
                    }),
                ])
            };
            match self
                .inner
                .compound(&build, CallFlags::IO)
                .await?
                .into_iter()
                .nth(1)
            {
                Some(NfsResOp::Commit(Ok(c))) => Ok(c.writeverf),
                _ => Err(ClientError::Protocol("COMMIT without result".into())),
            }
        })
    }

    fn deallocate(
        &self,
        _open: &OpenFile,
        _offset_bytes: u64,
        _length_bytes: u64,
    ) -> impl Future<Output = MdsResult<()>> + Send {
        // The session is NFSv4.1: DEALLOCATE (4.2) is never sent.
        std::future::ready(Err(MdsError::new(
            MdsErrorKind::NotSupported,
            "DEALLOCATE",
            "NFSv4.1 session",
        )))
    }

    fn lease_watch(&self) -> watch::Receiver<LeaseStatus> {
        self.inner.lease_tx.subscribe()
    }
}
