//! An in-crate MDS test double for logic that needs exact control (fencing timing, recall
//! during in-flight I/O, error paths). It is NOT a substitute for the real servers: the
//! acceptance runs against the embedded MDS, nfsd and nfs-ganesha.
//!
//! It behaves like a block-layout server over real volume files: files are block maps onto a
//! logical volume (a topology of SLICE/CONCAT/STRIPE over SIMPLE leaves whose signatures sit
//! near their ends); LAYOUTGET allocates and hands out INVALID / READ_WRITE / (for clones)
//! READ_DATA+INVALID extents; LAYOUTCOMMIT marks blocks written; MDS READ/WRITE use the same
//! storage. Fault hooks: queued LAYOUTGET and LAYOUTCOMMIT errors, a stall switch (no replies,
//! no renewals), recalls on demand, and a LAYOUTCOMMIT or LAYOUTRETURN held on arrival until
//! the test releases it (to act while that call is on the wire, deterministically).

use crate::sync::LockExt;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use pnfs_proto::layout::block::{
    BlockDeviceAddr, BlockLayout, BlockLayoutUpdate, SigComponent, SimpleVolume,
};
use pnfs_proto::layout::scsi::{
    ScsiBaseVolume, ScsiCodeSet, ScsiDesignatorType, ScsiDeviceAddr, ScsiLayout, ScsiLayoutUpdate,
};
use pnfs_proto::layout::{Extent, ExtentState, VolumeNode};
use pnfs_proto::nfs4::{
    DeviceId, FileHandle, LayoutIoMode, LayoutType, NfsStat, Stateid, Verifier,
};
use pnfs_proto::xdr::{from_bytes, to_bytes};
use tokio::sync::{oneshot, watch, Notify};
use tokio::time::Instant;

use crate::mds_api::{
    CallbackSink, DeviceInfo, LayoutCommitArgs, LayoutCommitResult, LayoutGetArgs, LayoutGetResult,
    LayoutRecall, LayoutReturnArgs, LayoutReturnResult, LayoutReturnTarget, LayoutSegment,
    LeaseStatus, MdsError, MdsErrorKind, MdsResult, MetadataServer, OpenFile, OpenId, OpenMode,
    ReadResult, RecallTarget, StableHow, StateidArg, WriteResult,
};
use crate::pnfs::device::{resolve_block_device, ResolvedDevice};
use crate::pnfs::scsi::{Designator, ASSOCIATION_LOGICAL_UNIT};
use crate::pnfs::volume::{FileVolume, VolumeIo};

/// The PR key the fake hands out in SCSI mode (`sbv_pr_key`).
pub const FAKE_SCSI_PR_KEY: u64 = 0x7e57_5c51_0000_0001;

/// The NAA designator the fake gives leaf `i` in SCSI mode (attach it to the client's volume).
pub fn fake_scsi_designator(i: usize) -> Designator {
    let mut bytes = vec![0x60, 0x01, 0x40, 0x5f];
    bytes.extend_from_slice(b"fakeleaf");
    bytes.extend_from_slice(&u32::try_from(i).unwrap_or(u32::MAX).to_be_bytes());
    Designator {
        code_set: 1,
        association: ASSOCIATION_LOGICAL_UNIT,
        designator_type: 3,
        bytes,
    }
}

/// Bytes reserved at the end of every leaf for its signature.
pub const FAKE_SIG_RESERVE_BYTES: u64 = 1 << 20;
/// The signature's offset from the end of a leaf (negative offset on the wire).
const FAKE_SIG_OFFSET_FROM_END: i64 = -4096;

/// How the fake builds its logical volume from the leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeTopology {
    /// The first leaf alone (SIMPLE; the tail with the signature is never allocated).
    Simple,
    /// SLICE of the first leaf (everything but the signature tail).
    Slice,
    /// CONCAT of slices of every leaf.
    Concat,
    /// STRIPE over slices of every leaf.
    Stripe {
        /// Stripe unit.
        unit_bytes: u64,
    },
    /// STRIPE of two CONCATs of slices (needs 4 leaves): a nested topology.
    Nested {
        /// Stripe unit.
        unit_bytes: u64,
    },
}

/// Configuration of a [`FakeMds`].
#[derive(Debug, Clone)]
pub struct FakeMdsConfig {
    /// The leaf volume files (created and sized by the caller).
    pub leaves: Vec<PathBuf>,
    /// Topology over them.
    pub topology: FakeTopology,
    /// The server block size (extent granularity).
    pub block_bytes: u64,
    /// The lease.
    pub lease: Duration,
    /// Hand out layouts (false: LAYOUTGET says LAYOUTUNAVAILABLE, like a non-pNFS server).
    pub layouts: bool,
}

/// Operation counters of the fake.
#[derive(Debug, Default)]
pub struct FakeCounters {
    /// LAYOUTGET calls.
    pub layoutgets: AtomicU64,
    /// LAYOUTCOMMIT calls that succeeded.
    pub commits: AtomicU64,
    /// LAYOUTRETURN calls.
    pub returns: AtomicU64,
    /// GETDEVICEINFO calls.
    pub getdeviceinfos: AtomicU64,
    /// Bytes served by MDS READ.
    pub read_bytes: AtomicU64,
    /// Bytes written by MDS WRITE.
    pub write_bytes: AtomicU64,
    /// CB_LAYOUTRECALLs sent.
    pub recalls_sent: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct FBlock {
    /// Logical-volume block index.
    storage: u64,
    written: bool,
    /// For clones: the block whose data this one has until first written.
    cow_src: Option<u64>,
}

#[derive(Debug)]
struct FFile {
    path: String,
    fh: FileHandle,
    size_bytes: u64,
    blocks: HashMap<u64, FBlock>,
    layout_other: Option<[u8; 12]>,
    layout_seqid: u32,
    recall_pending: bool,
}

#[derive(Debug)]
struct FState {
    files: Vec<FFile>,
    next_block: u64,
    total_blocks: u64,
    next_other: u32,
    opens: HashMap<u64, usize>,
    next_open: u64,
}

/// The MDS test double. See the module docs.
pub struct FakeMds {
    cfg: FakeMdsConfig,
    device_id: DeviceId,
    addr_body: Bytes,
    /// The same topology as a SCSI device address (BASE leaves with NAA designators).
    scsi_addr_body: Bytes,
    /// Offer LAYOUT4_SCSI too (see [`FakeMds::serve_scsi`]).
    scsi: AtomicBool,
    dev: Arc<ResolvedDevice>,
    state: Mutex<FState>,
    lease_tx: watch::Sender<LeaseStatus>,
    sink: Mutex<Option<Weak<dyn CallbackSink>>>,
    stalled: AtomicBool,
    resumed: Notify,
    /// Statuses the next LAYOUTGETs fail with (front first).
    pub layoutget_errors: Mutex<VecDeque<NfsStat>>,
    /// Statuses the next LAYOUTCOMMITs fail with (front first), before any state is checked.
    pub layoutcommit_errors: Mutex<VecDeque<NfsStat>>,
    /// Answer MDS WRITEs UNSTABLE4 (the data is written at once all the same) and COMMIT with
    /// [`FakeMds::write_verifier`], so tests can change the verifier as a restart would.
    pub unstable_writes: AtomicBool,
    /// The write verifier of WRITE and COMMIT replies while `unstable_writes` is on.
    pub write_verifier: AtomicU64,
    /// The next LAYOUTCOMMIT to arrive is held here (see [`FakeMds::hold_next_layoutcommit`]).
    commit_hold: HoldSlot,
    /// The next LAYOUTRETURN to arrive is held here (see [`FakeMds::hold_next_layoutreturn`]).
    return_hold: HoldSlot,
    /// Counters.
    pub counters: FakeCounters,
}

impl std::fmt::Debug for FakeMds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeMds")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// An armed hold: (signal "arrived", wait for "release").
type HoldSlot = Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>;

/// Arms `slot` for the next call and returns the test's end of it.
fn arm_hold(slot: &HoldSlot) -> HeldCall {
    let (arrived_tx, arrived_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel();
    *slot.lock_unpoisoned() = Some((arrived_tx, release_rx));
    HeldCall {
        arrived: Some(arrived_rx),
        release: Some(release_tx),
    }
}

/// In a call: if `slot` is armed, signals the arrival and waits for the release.
async fn pass_hold(slot: &HoldSlot) {
    let hold = slot.lock_unpoisoned().take();
    if let Some((arrived, release)) = hold {
        // The test may have stopped waiting: then nobody needs the signal.
        let _ = arrived.send(());
        // Released, or the hold dropped: either way the call goes on.
        let _ = release.await;
    }
}

/// A call held by the fake on arrival (from [`FakeMds::hold_next_layoutcommit`] or
/// [`FakeMds::hold_next_layoutreturn`]).
#[derive(Debug)]
pub struct HeldCall {
    arrived: Option<oneshot::Receiver<()>>,
    release: Option<oneshot::Sender<()>>,
}

impl HeldCall {
    /// Waits until the held call has arrived (at most `limit`); false if it did not.
    pub async fn arrived(&mut self, limit: Duration) -> bool {
        let Some(rx) = self.arrived.take() else {
            return true;
        };
        matches!(tokio::time::timeout(limit, rx).await, Ok(Ok(())))
    }

    /// Lets the held call go on.
    pub fn release(mut self) {
        if let Some(tx) = self.release.take() {
            // The fake may be gone (test over): nothing to release then.
            let _ = tx.send(());
        }
    }
}

fn sig_contents(i: usize) -> Vec<u8> {
    let mut v = b"pnfsgw-fake-leaf-".to_vec();
    v.extend_from_slice(format!("{i:04}").as_bytes());
    v
}

fn err(op: &'static str, s: NfsStat) -> MdsError {
    MdsError::status(op, s)
}

impl FakeMds {
    /// Writes the leaf signatures, builds the device address and resolves it (with the same
    /// resolver the client uses, over its own handles).
    pub async fn new(cfg: FakeMdsConfig) -> Result<Arc<Self>, String> {
        let mut vols: Vec<Arc<dyn VolumeIo>> = Vec::new();
        let mut nodes: Vec<VolumeNode<SimpleVolume>> = Vec::new();
        for (i, p) in cfg.leaves.iter().enumerate() {
            let v =
                FileVolume::open(p, false, true).map_err(|e| format!("{}: {e}", p.display()))?;
            let size = v.size_bytes();
            if size < 2 * FAKE_SIG_RESERVE_BYTES {
                return Err(format!("{}: leaf too small ({size} bytes)", p.display()));
            }
            let comp = SigComponent {
                sig_offset_bytes: FAKE_SIG_OFFSET_FROM_END,
                contents: sig_contents(i),
            };
            let off = comp.absolute_offset(size).ok_or("signature does not fit")?;
            v.write(off, Bytes::from(comp.contents.clone()))
                .await
                .map_err(|e| format!("write signature: {e}"))?;
            v.sync().await.map_err(|e| format!("sync: {e}"))?;
            nodes.push(VolumeNode::Leaf(SimpleVolume {
                signature: vec![comp],
            }));
            vols.push(Arc::new(v));
        }
        let n = vols.len();
        let idx = |i: usize| u32::try_from(i).unwrap_or(u32::MAX);
        let mut slices = Vec::new();
        let mut add_slices = |nodes: &mut Vec<VolumeNode<SimpleVolume>>| {
            for (i, v) in vols.iter().enumerate() {
                nodes.push(VolumeNode::Slice {
                    start_bytes: 0,
                    length_bytes: v.size_bytes() - FAKE_SIG_RESERVE_BYTES,
                    volume: idx(i),
                });
                slices.push(idx(nodes.len() - 1));
            }
        };
        match cfg.topology {
            FakeTopology::Simple => {
                // The top is the last entry: move leaf 0 there.
                if n != 1 {
                    return Err("Simple topology takes one leaf".into());
                }
            }
            FakeTopology::Slice => {
                add_slices(&mut nodes);
                nodes.truncate(n + 1);
            }
            FakeTopology::Concat => {
                add_slices(&mut nodes);
                nodes.push(VolumeNode::Concat {
                    volumes: slices.clone(),
                });
            }
            FakeTopology::Stripe { unit_bytes } => {
                add_slices(&mut nodes);
                nodes.push(VolumeNode::Stripe {
                    stripe_unit_bytes: unit_bytes,
                    volumes: slices.clone(),
                });
            }
            FakeTopology::Nested { unit_bytes } => {
                if n != 4 {
                    return Err("Nested topology takes four leaves".into());
                }
                add_slices(&mut nodes);
                nodes.push(VolumeNode::Concat {
                    volumes: vec![slices[0], slices[1]],
                });
                nodes.push(VolumeNode::Concat {
                    volumes: vec![slices[2], slices[3]],
                });
                let a = idx(nodes.len() - 2);
                let b = idx(nodes.len() - 1);
                nodes.push(VolumeNode::Stripe {
                    stripe_unit_bytes: unit_bytes,
                    volumes: vec![a, b],
                });
            }
        }
        let scsi_nodes: Vec<VolumeNode<ScsiBaseVolume>> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| match n {
                VolumeNode::Leaf(_) => VolumeNode::Leaf(ScsiBaseVolume {
                    code_set: ScsiCodeSet::Binary,
                    designator_type: ScsiDesignatorType::Naa,
                    designator: fake_scsi_designator(i).bytes,
                    pr_key: FAKE_SCSI_PR_KEY,
                }),
                VolumeNode::Slice {
                    start_bytes,
                    length_bytes,
                    volume,
                } => VolumeNode::Slice {
                    start_bytes: *start_bytes,
                    length_bytes: *length_bytes,
                    volume: *volume,
                },
                VolumeNode::Concat { volumes } => VolumeNode::Concat {
                    volumes: volumes.clone(),
                },
                VolumeNode::Stripe {
                    stripe_unit_bytes,
                    volumes,
                } => VolumeNode::Stripe {
                    stripe_unit_bytes: *stripe_unit_bytes,
                    volumes: volumes.clone(),
                },
            })
            .collect();
        let scsi_addr_body = Bytes::from(to_bytes(&ScsiDeviceAddr {
            volumes: scsi_nodes,
        }));
        let addr = BlockDeviceAddr { volumes: nodes };
        let addr_body = Bytes::from(to_bytes(&addr));
        let device_id = DeviceId(*b"fake-mds-dev-001");
        let dev = Arc::new(
            resolve_block_device(device_id, &addr_body, &vols)
                .await
                .map_err(|e| format!("resolve own device: {e}"))?,
        );
        let usable = if cfg.topology == FakeTopology::Simple {
            dev.size_bytes() - FAKE_SIG_RESERVE_BYTES
        } else {
            dev.size_bytes()
        };
        let total_blocks = usable / cfg.block_bytes;
        let (lease_tx, _) = watch::channel(LeaseStatus {
            last_renewal_sent: Some(Instant::now()),
            lease: cfg.lease,
            client_epoch: 1,
        });
        Ok(Arc::new(Self {
            cfg,
            device_id,
            addr_body,
            scsi_addr_body,
            scsi: AtomicBool::new(false),
            dev,
            state: Mutex::new(FState {
                files: Vec::new(),
                next_block: 0,
                total_blocks,
                next_other: 1,
                opens: HashMap::new(),
                next_open: 1,
            }),
            lease_tx,
            sink: Mutex::new(None),
            stalled: AtomicBool::new(false),
            resumed: Notify::new(),
            layoutget_errors: Mutex::new(VecDeque::new()),
            layoutcommit_errors: Mutex::new(VecDeque::new()),
            unstable_writes: AtomicBool::new(false),
            write_verifier: AtomicU64::new(1),
            commit_hold: Mutex::new(None),
            return_hold: Mutex::new(None),
            counters: FakeCounters::default(),
        }))
    }

    /// How a WRITE is answered: FILE_SYNC4 with a fixed verifier, or UNSTABLE4 with
    /// [`FakeMds::write_verifier`].
    fn write_reply_state(&self) -> (StableHow, Verifier) {
        if self.unstable_writes.load(Ordering::SeqCst) {
            let v = self.write_verifier.load(Ordering::SeqCst);
            (StableHow::Unstable, Verifier(v.to_be_bytes()))
        } else {
            (StableHow::FileSync, Verifier([1; 8]))
        }
    }

    fn st(&self) -> std::sync::MutexGuard<'_, FState> {
        self.state.lock_unpoisoned()
    }

    /// Creates a file of `size_bytes` (no blocks allocated).
    pub fn create_file(&self, path: &str, size_bytes: u64) {
        let mut st = self.st();
        st.files.push(FFile {
            path: path.to_string(),
            fh: FileHandle(path.as_bytes().to_vec()),
            size_bytes,
            blocks: HashMap::new(),
            layout_other: None,
            layout_seqid: 0,
            recall_pending: false,
        });
    }

    /// Creates `dst` as a copy-on-write clone of `src`: it shares `src`'s written blocks until
    /// they are written (LAYOUTGET hands out READ_DATA + INVALID pairs for them).
    pub fn clone_file(&self, src: &str, dst: &str) -> Result<(), String> {
        let mut st = self.st();
        let s = st
            .files
            .iter()
            .position(|f| f.path == src)
            .ok_or("no such source")?;
        let size = st.files[s].size_bytes;
        let shared: Vec<(u64, u64)> = st.files[s]
            .blocks
            .iter()
            .filter(|(_, b)| b.written)
            .map(|(&i, b)| (i, b.storage))
            .collect();
        let mut blocks = HashMap::new();
        for (i, storage) in shared {
            let nb = st.next_block;
            if nb >= st.total_blocks {
                return Err("no space for the clone".into());
            }
            st.next_block += 1;
            blocks.insert(
                i,
                FBlock {
                    storage: nb,
                    written: false,
                    cow_src: Some(storage),
                },
            );
        }
        st.files.push(FFile {
            path: dst.to_string(),
            fh: FileHandle(dst.as_bytes().to_vec()),
            size_bytes: size,
            blocks,
            layout_other: None,
            layout_seqid: 0,
            recall_pending: false,
        });
        Ok(())
    }

    /// Records a lease renewal sent now.
    pub fn renew(&self) {
        self.lease_tx
            .send_modify(|l| l.last_renewal_sent = Some(Instant::now()));
    }

    /// Spawns a renewal loop (every lease/4) that stops while stalled; ends when the fake is
    /// dropped.
    pub fn spawn_renewer(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let period = self.cfg.lease / 4;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(me) = weak.upgrade() else { return };
                if !me.stalled.load(Ordering::SeqCst) {
                    me.renew();
                }
            }
        });
    }

    /// Stalls (like SIGSTOP): no renewals, every call waits until [`FakeMds::resume`].
    pub fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
    }

    /// Ends a stall (like SIGCONT).
    pub fn resume(&self) {
        self.stalled.store(false, Ordering::SeqCst);
        self.resumed.notify_waiters();
    }

    async fn gate(&self) {
        loop {
            let n = self.resumed.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            if !self.stalled.load(Ordering::SeqCst) {
                return;
            }
            n.await;
        }
    }

    /// Holds the next LAYOUTCOMMIT that arrives (any file): it waits, before its stateid is
    /// checked or any state changes, until [`HeldCall::release`] (or the hold is dropped).
    /// The server then judges it by its state at that time, as a real server judges a request
    /// by its state when it processes it.
    pub fn hold_next_layoutcommit(&self) -> HeldCall {
        arm_hold(&self.commit_hold)
    }

    /// Holds the next LAYOUTRETURN that arrives, like [`FakeMds::hold_next_layoutcommit`].
    pub fn hold_next_layoutreturn(&self) -> HeldCall {
        arm_hold(&self.return_hold)
    }

    /// Sends CB_LAYOUTRECALL for the whole of `path`; returns the client's answer.
    pub fn recall(&self, path: &str) -> NfsStat {
        let (fh, stateid) = {
            let mut st = self.st();
            let Some(f) = st.files.iter_mut().find(|f| f.path == path) else {
                return NfsStat::NOENT;
            };
            let Some(other) = f.layout_other else {
                return NfsStat::NOMATCHING_LAYOUT;
            };
            f.layout_seqid += 1;
            f.recall_pending = true;
            (
                f.fh.clone(),
                Stateid {
                    seqid: f.layout_seqid,
                    other,
                },
            )
        };
        let sink = self.sink.lock_unpoisoned().clone();
        let Some(sink) = sink.and_then(|w| w.upgrade()) else {
            return NfsStat::NOMATCHING_LAYOUT;
        };
        self.counters.recalls_sent.fetch_add(1, Ordering::SeqCst);
        let answer = sink.layout_recall(LayoutRecall {
            layout_type: LayoutType::BlockVolume,
            iomode: LayoutIoMode::Any,
            changed: false,
            target: RecallTarget::File {
                fh,
                offset_bytes: 0,
                length_bytes: u64::MAX,
                stateid,
            },
        });
        if answer != NfsStat::OK {
            let mut st = self.st();
            if let Some(f) = st.files.iter_mut().find(|f| f.path == path) {
                f.recall_pending = false;
                if answer == NfsStat::NOMATCHING_LAYOUT {
                    f.layout_other = None;
                }
            }
        }
        answer
    }

    /// The registered callback sink (to send CB_RECALL_ANY, CB_NOTIFY_DEVICEID, bulk
    /// CB_LAYOUTRECALL directly).
    pub fn sink(&self) -> Option<Arc<dyn CallbackSink>> {
        self.sink
            .lock_unpoisoned()
            .clone()
            .and_then(|w| w.upgrade())
    }

    /// Offers LAYOUT4_SCSI besides LAYOUT4_BLOCK_VOLUME from now on (RFC 8154): the same
    /// volumes as BASE volumes whose designators are [`fake_scsi_designator`] (leaf `i` of the
    /// configuration is volume index `i`), with key [`FAKE_SCSI_PR_KEY`]; SCSI LAYOUTCOMMITs
    /// carry file ranges only. Leaves are listed first, so leaf `i` is array index `i`.
    pub fn serve_scsi(&self) {
        self.scsi.store(true, Ordering::SeqCst);
    }

    /// The device ID the fake hands out.
    pub fn device_id(&self) -> DeviceId {
        self.device_id
    }

    /// True while a recall of `path` waits for its LAYOUTRETURN.
    pub fn recall_pending(&self, path: &str) -> bool {
        self.st()
            .files
            .iter()
            .any(|f| f.path == path && f.recall_pending)
    }

    /// The file's content as the server sees it (committed and MDS-written data; zeros else).
    pub async fn server_view(&self, path: &str) -> Result<Vec<u8>, String> {
        let open = OpenFile {
            id: OpenId(0),
            path: path.into(),
            fh: FileHandle(path.as_bytes().to_vec()),
            open_stateid: Stateid::ANONYMOUS,
            size_bytes: 0,
            fsid: (1, 1),
            layout_types: vec![],
            layout_blksize_bytes: 0,
            layout_alignment_bytes: 0,
        };
        let size = self
            .st()
            .files
            .iter()
            .find(|f| f.path == path)
            .map(|f| f.size_bytes)
            .ok_or("no such file")?;
        let mut out = Vec::new();
        let mut at = 0u64;
        while at < size {
            let n = (size - at).min(1 << 20);
            let r = self
                .read(&open, at, u32::try_from(n).unwrap_or(1 << 20))
                .await
                .map_err(|e| e.to_string())?;
            out.extend_from_slice(&r.data);
            at += n;
        }
        Ok(out)
    }

    async fn dev_read(&self, block: u64) -> Result<Vec<u8>, MdsError> {
        let b = self.cfg.block_bytes;
        let mut out = Vec::new();
        for s in self
            .dev
            .map_range(block * b, b)
            .map_err(|e| MdsError::new(MdsErrorKind::Status(NfsStat::IO), "fake", e.to_string()))?
        {
            let d = s
                .volume
                .read(s.offset_bytes, usize::try_from(s.length_bytes).unwrap_or(0))
                .await
                .map_err(|e| {
                    MdsError::new(MdsErrorKind::Status(NfsStat::IO), "fake", e.to_string())
                })?;
            out.extend_from_slice(&d);
        }
        Ok(out)
    }

    async fn dev_write(&self, block: u64, data: &[u8]) -> Result<(), MdsError> {
        let b = self.cfg.block_bytes;
        let mut at = 0usize;
        for s in self
            .dev
            .map_range(block * b, b)
            .map_err(|e| MdsError::new(MdsErrorKind::Status(NfsStat::IO), "fake", e.to_string()))?
        {
            let n = usize::try_from(s.length_bytes).unwrap_or(0);
            s.volume
                .write(s.offset_bytes, Bytes::copy_from_slice(&data[at..at + n]))
                .await
                .map_err(|e| {
                    MdsError::new(MdsErrorKind::Status(NfsStat::IO), "fake", e.to_string())
                })?;
            at += n;
        }
        Ok(())
    }

    fn file_index(st: &FState, open: &OpenFile) -> Result<usize, MdsError> {
        st.files
            .iter()
            .position(|f| f.fh == open.fh)
            .ok_or_else(|| err("fake", NfsStat::STALE))
    }

    fn alloc(st: &mut FState, fi: usize, blk: u64) -> Result<FBlock, MdsError> {
        if let Some(b) = st.files[fi].blocks.get(&blk) {
            return Ok(*b);
        }
        if st.next_block >= st.total_blocks {
            return Err(err("fake", NfsStat::NOSPC));
        }
        let b = FBlock {
            storage: st.next_block,
            written: false,
            cow_src: None,
        };
        st.next_block += 1;
        st.files[fi].blocks.insert(blk, b);
        Ok(b)
    }
}

fn push_extent(v: &mut Vec<Extent>, e: Extent) {
    if let Some(last) = v.last_mut() {
        if last.state == e.state
            && last.device_id == e.device_id
            && last.file_offset_bytes + last.length_bytes == e.file_offset_bytes
            && (e.state == ExtentState::NoneData
                || last.storage_offset_bytes + last.length_bytes == e.storage_offset_bytes)
        {
            last.length_bytes += e.length_bytes;
            return;
        }
    }
    v.push(e);
}

impl MetadataServer for FakeMds {
    fn set_callback_sink(&self, sink: Weak<dyn CallbackSink>) {
        *self.sink.lock_unpoisoned() = Some(sink);
    }

    fn open(
        &self,
        path: &str,
        _mode: OpenMode,
    ) -> impl Future<Output = MdsResult<OpenFile>> + Send {
        let path = path.to_string();
        async move {
            self.gate().await;
            let mut st = self.st();
            let fi = st
                .files
                .iter()
                .position(|f| f.path == path)
                .ok_or_else(|| err("OPEN", NfsStat::NOENT))?;
            let id = st.next_open;
            st.next_open += 1;
            st.opens.insert(id, fi);
            let f = &st.files[fi];
            Ok(OpenFile {
                id: OpenId(id),
                path,
                fh: f.fh.clone(),
                open_stateid: Stateid {
                    seqid: 1,
                    other: [9; 12],
                },
                size_bytes: f.size_bytes,
                fsid: (1, 1),
                layout_types: match (self.cfg.layouts, self.scsi.load(Ordering::SeqCst)) {
                    (false, _) => vec![],
                    (true, false) => vec![LayoutType::BlockVolume],
                    (true, true) => vec![LayoutType::BlockVolume, LayoutType::Scsi],
                },
                layout_blksize_bytes: u32::try_from(self.cfg.block_bytes).unwrap_or(0),
                layout_alignment_bytes: u32::try_from(self.cfg.block_bytes).unwrap_or(0),
            })
        }
    }

    async fn close(&self, open: &OpenFile) -> MdsResult<()> {
        self.gate().await;
        self.st().opens.remove(&open.id.0);
        Ok(())
    }

    async fn get_size(&self, open: &OpenFile) -> MdsResult<u64> {
        self.gate().await;
        let st = self.st();
        let fi = Self::file_index(&st, open)?;
        Ok(st.files[fi].size_bytes)
    }

    async fn set_size(&self, open: &OpenFile, size_bytes: u64) -> MdsResult<()> {
        self.gate().await;
        let mut st = self.st();
        let fi = Self::file_index(&st, open)?;
        st.files[fi].size_bytes = size_bytes;
        Ok(())
    }

    async fn layout_get(&self, open: &OpenFile, args: LayoutGetArgs) -> MdsResult<LayoutGetResult> {
        self.gate().await;
        self.counters.layoutgets.fetch_add(1, Ordering::SeqCst);
        if let Some(s) = self.layoutget_errors.lock_unpoisoned().pop_front() {
            return Err(err("LAYOUTGET", s));
        }
        if !self.cfg.layouts {
            return Err(err("LAYOUTGET", NfsStat::LAYOUTUNAVAILABLE));
        }
        let scsi = args.layout_type == LayoutType::Scsi;
        if !(args.layout_type == LayoutType::BlockVolume
            || scsi && self.scsi.load(Ordering::SeqCst))
        {
            return Err(err("LAYOUTGET", NfsStat::UNKNOWN_LAYOUTTYPE));
        }
        let b = self.cfg.block_bytes;
        let mut st = self.st();
        let fi = Self::file_index(&st, open)?;
        if st.files[fi].recall_pending {
            return Err(err("LAYOUTGET", NfsStat::RECALLCONFLICT));
        }
        match (args.stateid, st.files[fi].layout_other) {
            (StateidArg::Open, _) => {}
            (StateidArg::Given(s), Some(o)) if s.other == o => {}
            (StateidArg::Given(_), _) => return Err(err("LAYOUTGET", NfsStat::BAD_STATEID)),
        }
        if args.offset_bytes % b != 0 {
            return Err(err("LAYOUTGET", NfsStat::INVAL));
        }
        let file_end = st.files[fi].size_bytes.div_ceil(b) * b;
        let end = args
            .offset_bytes
            .saturating_add(args.length_bytes)
            .min(file_end);
        if end <= args.offset_bytes {
            return Err(err("LAYOUTGET", NfsStat::INVAL));
        }
        let mut exts: Vec<Extent> = Vec::new();
        let mut blk = args.offset_bytes / b;
        while blk * b < end {
            let fo = blk * b;
            let rw = args.iomode == LayoutIoMode::ReadWrite;
            let fb = if rw {
                Some(Self::alloc(&mut st, fi, blk)?)
            } else {
                st.files[fi].blocks.get(&blk).copied()
            };
            let mk = |storage: u64, state| Extent {
                device_id: self.device_id,
                file_offset_bytes: fo,
                length_bytes: b,
                storage_offset_bytes: storage * b,
                state,
            };
            match fb {
                None => push_extent(
                    &mut exts,
                    Extent {
                        storage_offset_bytes: 0,
                        ..mk(0, ExtentState::NoneData)
                    },
                ),
                Some(x) if x.written => push_extent(
                    &mut exts,
                    mk(
                        x.storage,
                        if rw {
                            ExtentState::ReadWriteData
                        } else {
                            ExtentState::ReadData
                        },
                    ),
                ),
                Some(FBlock {
                    cow_src: Some(src),
                    storage,
                    ..
                }) => {
                    push_extent(&mut exts, mk(src, ExtentState::ReadData));
                    if rw {
                        push_extent(&mut exts, mk(storage, ExtentState::InvalidData));
                    }
                }
                Some(x) => {
                    if rw {
                        push_extent(&mut exts, mk(x.storage, ExtentState::InvalidData));
                    } else {
                        push_extent(
                            &mut exts,
                            Extent {
                                storage_offset_bytes: 0,
                                ..mk(0, ExtentState::NoneData)
                            },
                        );
                    }
                }
            }
            blk += 1;
        }
        // validate_extents sorts; COW pairs stay legal.
        let body = BlockLayout { extents: exts };
        body.validate()
            .map_err(|e| MdsError::new(MdsErrorKind::Protocol, "fake LAYOUTGET", e.to_string()))?;
        let encoded = if scsi {
            to_bytes(&ScsiLayout {
                extents: body.extents.clone(),
            })
        } else {
            to_bytes(&body)
        };
        let other = match st.files[fi].layout_other {
            Some(o) => o,
            None => {
                let n = st.next_other;
                st.next_other += 1;
                let mut o = [0u8; 12];
                o[..4].copy_from_slice(&n.to_be_bytes());
                st.files[fi].layout_other = Some(o);
                st.files[fi].layout_seqid = 0;
                o
            }
        };
        st.files[fi].layout_seqid += 1;
        Ok(LayoutGetResult {
            return_on_close: true,
            stateid: Stateid {
                seqid: st.files[fi].layout_seqid,
                other,
            },
            segments: vec![LayoutSegment {
                offset_bytes: args.offset_bytes,
                length_bytes: end - args.offset_bytes,
                iomode: args.iomode,
                layout_type: args.layout_type,
                body: Bytes::from(encoded),
            }],
        })
    }

    async fn layout_commit(
        &self,
        open: &OpenFile,
        args: LayoutCommitArgs,
    ) -> MdsResult<LayoutCommitResult> {
        self.gate().await;
        pass_hold(&self.commit_hold).await;
        if let Some(s) = self.layoutcommit_errors.lock_unpoisoned().pop_front() {
            return Err(err("LAYOUTCOMMIT", s));
        }
        let b = self.cfg.block_bytes;
        let bad =
            |e: String| MdsError::new(MdsErrorKind::Status(NfsStat::BADLAYOUT), "LAYOUTCOMMIT", e);
        let scsi_ranges: Option<Vec<(u64, u64)>> = if args.layout_type == LayoutType::Scsi {
            let u: ScsiLayoutUpdate =
                from_bytes(&args.update_body).map_err(|e| bad(e.to_string()))?;
            let v = u.validate().map_err(|e| bad(e.to_string()))?;
            Some(
                v.iter()
                    .map(|r| (r.file_offset_bytes, r.length_bytes))
                    .collect(),
            )
        } else {
            None
        };
        let update: BlockLayoutUpdate = if scsi_ranges.is_some() {
            BlockLayoutUpdate::default()
        } else {
            from_bytes(&args.update_body).map_err(|e| bad(e.to_string()))?
        };
        let mut st = self.st();
        let fi = Self::file_index(&st, open)?;
        match (args.stateid, st.files[fi].layout_other) {
            (StateidArg::Open, _) if args.reclaim => {}
            (StateidArg::Given(s), Some(o)) if s.other == o => {}
            _ => return Err(err("LAYOUTCOMMIT", NfsStat::BAD_STATEID)),
        }
        for &(off, len) in scsi_ranges.iter().flatten() {
            // SCSI: the server knows where each block lives; the range must be allocated.
            if off % b != 0 || len % b != 0 {
                return Err(err("LAYOUTCOMMIT", NfsStat::INVAL));
            }
            for i in 0..len / b {
                match st.files[fi].blocks.get_mut(&(off / b + i)) {
                    Some(x) => {
                        x.written = true;
                        x.cow_src = None;
                    }
                    None => return Err(err("LAYOUTCOMMIT", NfsStat::INVAL)),
                }
            }
        }
        for e in &update.commit_list {
            if e.file_offset_bytes % b != 0
                || e.length_bytes % b != 0
                || e.storage_offset_bytes % b != 0
            {
                return Err(err("LAYOUTCOMMIT", NfsStat::INVAL));
            }
            for i in 0..e.length_bytes / b {
                let blk = e.file_offset_bytes / b + i;
                let want = e.storage_offset_bytes / b + i;
                match st.files[fi].blocks.get_mut(&blk) {
                    Some(x) if x.storage == want => {
                        x.written = true;
                        x.cow_src = None;
                    }
                    _ => return Err(err("LAYOUTCOMMIT", NfsStat::INVAL)),
                }
            }
        }
        self.counters.commits.fetch_add(1, Ordering::SeqCst);
        Ok(LayoutCommitResult {
            new_size_bytes: None,
        })
    }

    async fn layout_return(
        &self,
        open: &OpenFile,
        args: LayoutReturnArgs,
    ) -> MdsResult<LayoutReturnResult> {
        self.gate().await;
        pass_hold(&self.return_hold).await;
        self.counters.returns.fetch_add(1, Ordering::SeqCst);
        let mut st = self.st();
        let fi = Self::file_index(&st, open)?;
        match args.target {
            LayoutReturnTarget::File {
                offset_bytes,
                length_bytes,
                stateid,
                ..
            } => {
                if st.files[fi].layout_other != Some(stateid.other) {
                    return Err(err("LAYOUTRETURN", NfsStat::BAD_STATEID));
                }
                st.files[fi].recall_pending = false;
                if offset_bytes == 0 && length_bytes == u64::MAX {
                    st.files[fi].layout_other = None;
                    Ok(LayoutReturnResult { stateid: None })
                } else {
                    st.files[fi].layout_seqid += 1;
                    Ok(LayoutReturnResult {
                        stateid: Some(Stateid {
                            seqid: st.files[fi].layout_seqid,
                            other: stateid.other,
                        }),
                    })
                }
            }
            LayoutReturnTarget::Fsid | LayoutReturnTarget::All => {
                for f in &mut st.files {
                    f.layout_other = None;
                    f.recall_pending = false;
                }
                Ok(LayoutReturnResult { stateid: None })
            }
        }
    }

    async fn get_device_info(
        &self,
        layout_type: LayoutType,
        device_id: DeviceId,
        notify_mask: u32,
    ) -> MdsResult<DeviceInfo> {
        self.gate().await;
        self.counters.getdeviceinfos.fetch_add(1, Ordering::SeqCst);
        let addr_body = match layout_type {
            LayoutType::BlockVolume => self.addr_body.clone(),
            LayoutType::Scsi if self.scsi.load(Ordering::SeqCst) => self.scsi_addr_body.clone(),
            _ => return Err(err("GETDEVICEINFO", NfsStat::UNKNOWN_LAYOUTTYPE)),
        };
        if device_id != self.device_id {
            return Err(err("GETDEVICEINFO", NfsStat::NOENT));
        }
        Ok(DeviceInfo {
            layout_type,
            addr_body,
            notifications: notify_mask,
        })
    }

    async fn read(
        &self,
        open: &OpenFile,
        offset_bytes: u64,
        length_bytes: u32,
    ) -> MdsResult<ReadResult> {
        self.gate().await;
        let b = self.cfg.block_bytes;
        let (size, blocks): (u64, Vec<(u64, Option<FBlock>)>) = {
            let st = self.st();
            let fi = Self::file_index(&st, open)?;
            let f = &st.files[fi];
            let end = (offset_bytes + u64::from(length_bytes)).min(f.size_bytes);
            let mut v = Vec::new();
            let mut blk = offset_bytes / b;
            while blk * b < end {
                v.push((blk, f.blocks.get(&blk).copied()));
                blk += 1;
            }
            (f.size_bytes, v)
        };
        let end = (offset_bytes + u64::from(length_bytes)).min(size);
        let mut out = Vec::new();
        for (blk, fb) in blocks {
            let data = match fb {
                Some(x) if x.written => self.dev_read(x.storage).await?,
                Some(FBlock {
                    cow_src: Some(src), ..
                }) => self.dev_read(src).await?,
                _ => vec![0u8; usize::try_from(b).unwrap_or(0)],
            };
            let bs = blk * b;
            let s = offset_bytes.max(bs) - bs;
            let e = end.min(bs + b) - bs;
            out.extend_from_slice(
                &data[usize::try_from(s).unwrap_or(0)..usize::try_from(e).unwrap_or(0)],
            );
        }
        self.counters
            .read_bytes
            .fetch_add(out.len() as u64, Ordering::SeqCst);
        Ok(ReadResult {
            eof: end >= size,
            data: Bytes::from(out),
        })
    }

    async fn write(
        &self,
        open: &OpenFile,
        offset_bytes: u64,
        data: Bytes,
        _stable: StableHow,
    ) -> MdsResult<WriteResult> {
        self.gate().await;
        let b = self.cfg.block_bytes;
        let end = offset_bytes + data.len() as u64;
        let mut blk = offset_bytes / b;
        while blk * b < end {
            let fb = {
                let mut st = self.st();
                let fi = Self::file_index(&st, open)?;
                if end > st.files[fi].size_bytes {
                    return Err(err("WRITE", NfsStat::FBIG));
                }
                Self::alloc(&mut st, fi, blk)?
            };
            let bs = blk * b;
            let mut buf = if fb.written {
                self.dev_read(fb.storage).await?
            } else if let Some(src) = fb.cow_src {
                self.dev_read(src).await?
            } else {
                vec![0u8; usize::try_from(b).unwrap_or(0)]
            };
            let s = offset_bytes.max(bs);
            let e = end.min(bs + b);
            buf[usize::try_from(s - bs).unwrap_or(0)..usize::try_from(e - bs).unwrap_or(0)]
                .copy_from_slice(
                    &data[usize::try_from(s - offset_bytes).unwrap_or(0)
                        ..usize::try_from(e - offset_bytes).unwrap_or(0)],
                );
            self.dev_write(fb.storage, &buf).await?;
            {
                let mut st = self.st();
                let fi = Self::file_index(&st, open)?;
                if let Some(x) = st.files[fi].blocks.get_mut(&blk) {
                    x.written = true;
                    x.cow_src = None;
                }
            }
            blk += 1;
        }
        self.counters
            .write_bytes
            .fetch_add(data.len() as u64, Ordering::SeqCst);
        let (committed, verifier) = self.write_reply_state();
        Ok(WriteResult {
            count_bytes: u32::try_from(data.len()).unwrap_or(u32::MAX),
            committed,
            verifier,
        })
    }

    async fn commit(
        &self,
        _open: &OpenFile,
        _offset_bytes: u64,
        _length_bytes: u64,
    ) -> MdsResult<Verifier> {
        self.gate().await;
        Ok(self.write_reply_state().1)
    }

    async fn deallocate(
        &self,
        _open: &OpenFile,
        _offset_bytes: u64,
        _length_bytes: u64,
    ) -> MdsResult<()> {
        Err(MdsError::new(
            MdsErrorKind::NotSupported,
            "DEALLOCATE",
            "the fake has no DEALLOCATE",
        ))
    }

    fn lease_watch(&self) -> watch::Receiver<LeaseStatus> {
        self.lease_tx.subscribe()
    }
}
