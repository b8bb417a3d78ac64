//! Seeded round-trip tests: decode(encode(x)) == x for the arguments and results of every
//! NFSv4 operation, COMPOUNDs of them and typed attributes; and decoders never panic on
//! truncated, mutated or random input.
//!
//! The seed is printed; set `PNFS_PROTO_SEED` to replay one.

use pnfs_proto::nfs4::attr::*;
use pnfs_proto::nfs4::*;
use pnfs_proto::rpc::AuthSys;
use pnfs_proto::xdr::{from_bytes, to_bytes, XdrDecode, XdrEncode};

// ---------------------------------------------------------------------------------------------
// A small deterministic generator
// ---------------------------------------------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

fn seed() -> u64 {
    let seed = std::env::var("PNFS_PROTO_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026_1125);
    println!("PNFS_PROTO_SEED={seed}");
    seed
}

trait Gen: Sized {
    fn gen(r: &mut Rng) -> Self;
}

impl Gen for u8 {
    fn gen(r: &mut Rng) -> Self {
        r.next().to_le_bytes()[0]
    }
}
impl Gen for u32 {
    fn gen(r: &mut Rng) -> Self {
        // Mix small values (common on the wire) with arbitrary ones.
        if r.below(2) == 0 {
            u32::try_from(r.below(8)).unwrap()
        } else {
            u32::try_from(r.next() >> 32).unwrap()
        }
    }
}
impl Gen for i32 {
    fn gen(r: &mut Rng) -> Self {
        i32::from_be_bytes(u32::gen(r).to_be_bytes())
    }
}
impl Gen for u64 {
    fn gen(r: &mut Rng) -> Self {
        if r.below(2) == 0 {
            r.next() % 16
        } else {
            r.next()
        }
    }
}
impl Gen for bool {
    fn gen(r: &mut Rng) -> Self {
        r.below(2) == 1
    }
}
impl Gen for String {
    fn gen(r: &mut Rng) -> Self {
        let n = r.below(12);
        (0..n)
            .map(|_| char::from(b'a' + u8::try_from(r.below(26)).unwrap()))
            .collect()
    }
}
impl<T: Gen> Gen for Vec<T> {
    fn gen(r: &mut Rng) -> Self {
        let n = r.below(4);
        (0..n).map(|_| T::gen(r)).collect()
    }
}
impl<T: Gen> Gen for Option<T> {
    fn gen(r: &mut Rng) -> Self {
        if r.below(2) == 0 {
            None
        } else {
            Some(T::gen(r))
        }
    }
}
impl<const N: usize> Gen for [u8; N] {
    fn gen(r: &mut Rng) -> Self {
        let mut a = [0u8; N];
        for b in &mut a {
            *b = u8::gen(r);
        }
        a
    }
}

/// Error statuses that carry no data in any result (excludes DENIED, LAYOUTTRYLATER,
/// TOOSMALL, OFFLOAD_NO_REQS and CLID_INUSE, which select a different arm).
const PLAIN_ERRORS: &[NfsStat] = &[
    NfsStat::NOENT,
    NfsStat::IO,
    NfsStat::ACCESS,
    NfsStat::STALE,
    NfsStat::BADHANDLE,
    NfsStat::DELAY,
    NfsStat::BADSESSION,
    NfsStat::BAD_STATEID,
    NfsStat::LAYOUTUNAVAILABLE,
    NfsStat::NOTSUPP,
    NfsStat::GRACE,
    NfsStat::OP_ILLEGAL,
];

fn plain_error(r: &mut Rng) -> NfsStat {
    r.pick(PLAIN_ERRORS)
}

impl Gen for NfsStat {
    fn gen(r: &mut Rng) -> Self {
        if r.below(3) == 0 {
            NfsStat::OK
        } else {
            NfsStat(u32::gen(r))
        }
    }
}

impl<T: Gen> Gen for Result<T, NfsStat> {
    fn gen(r: &mut Rng) -> Self {
        if r.below(3) == 0 {
            Err(plain_error(r))
        } else {
            Ok(T::gen(r))
        }
    }
}

macro_rules! gen_struct {
    ($($ty:ident { $($f:ident),* $(,)? })*) => {
        $(
            impl Gen for $ty {
                fn gen(r: &mut Rng) -> Self {
                    Self { $($f: Gen::gen(r),)* }
                }
            }
        )*
    };
}

macro_rules! gen_newtype {
    ($($ty:ident),*) => {
        $(
            impl Gen for $ty {
                fn gen(r: &mut Rng) -> Self {
                    Self(Gen::gen(r))
                }
            }
        )*
    };
}

gen_newtype!(Verifier, SessionId, DeviceId, FileHandle, SecOid, AttrString);

impl Gen for NfsTime {
    fn gen(r: &mut Rng) -> Self {
        Self {
            seconds: i64::from_be_bytes(u64::gen(r).to_be_bytes()),
            nseconds: u32::try_from(r.next() % 1_000_000_000).unwrap(),
        }
    }
}

impl Gen for LayoutType {
    fn gen(r: &mut Rng) -> Self {
        r.pick(&[
            LayoutType::Files,
            LayoutType::Objects,
            LayoutType::BlockVolume,
            LayoutType::FlexFiles,
            LayoutType::Scsi,
            LayoutType::Other(0x8000_0001),
        ])
    }
}

impl Gen for LayoutIoMode {
    fn gen(r: &mut Rng) -> Self {
        r.pick(&[
            LayoutIoMode::Read,
            LayoutIoMode::ReadWrite,
            LayoutIoMode::Any,
        ])
    }
}

impl Gen for Bitmap4 {
    fn gen(r: &mut Rng) -> Self {
        Self(Gen::gen(r))
    }
}

gen_struct! {
    Stateid { seqid, other }
    Fattr4 { attrmask, attr_vals }
    AuthSys { stamp, machine_name, uid, gid, gids }
    ChangeInfo { atomic, before, after }
    StateOwner { clientid, owner }
    SpecData { specdata1, specdata2 }
    NfsAce { ace_type, flag, access_mask, who }
    NetAddr { netid, addr }
    NfsImplId { domain, name, date }
    ClientOwner { verifier, ownerid }
    ServerOwner { minor_id, major_id }
    StateProtectOps { must_enforce, must_allow }
    SsvSpParms { ops, hash_algs, encr_algs, window, num_gss_handles }
    SsvProtInfo { ops, hash_alg, encr_alg, ssv_len, window, handles }
    ExchangeIdArgs { clientowner, flags, state_protect, client_impl_id }
    ExchangeIdResOk { clientid, sequenceid, flags, state_protect, server_owner, server_scope, server_impl_id }
    ChannelAttrs { headerpadsize, maxrequestsize, maxresponsesize, maxresponsesize_cached, maxoperations, maxrequests, rdma_ird }
    GssCbHandles { service, handle_from_server, handle_from_client }
    CreateSessionArgs { clientid, sequence, flags, fore_chan_attrs, back_chan_attrs, cb_program, sec_parms }
    CreateSessionResOk { sessionid, sequence, flags, fore_chan_attrs, back_chan_attrs }
    SequenceArgs { sessionid, sequenceid, slotid, highest_slotid, cachethis }
    SequenceResOk { sessionid, sequenceid, slotid, highest_slotid, target_highest_slotid, status_flags }
    BindConnToSessionArgs { sessid, dir, use_conn_in_rdma_mode }
    BindConnToSessionResOk { sessid, dir, use_conn_in_rdma_mode }
    BackchannelCtlArgs { cb_program, sec_parms }
    SetSsvArgs { ssv, digest }
    SetSsvResOk { digest }
    TestStateidArgs { stateids }
    TestStateidResOk { status_codes }
    LookupArgs { objname }
    GetattrArgs { attr_request }
    GetattrResOk { obj_attributes }
    GetfhResOk { object }
    AccessArgs { access }
    AccessResOk { supported, access }
    SetattrArgs { stateid, obj_attributes }
    SetattrRes { status, attrsset }
    VerifyArgs { obj_attributes }
    RpcsecGssInfo { oid, qop, service }
    SecinfoArgs { name }
    SecinfoResOk { flavors }
    CreatVerfAttr { verf, attrs }
    OpenClaimDelegateCur { delegate_stateid, file }
    OpenArgs { seqid, share_access, share_deny, owner, openhow, claim }
    ModifiedLimit { num_blocks, bytes_per_block }
    OpenReadDelegation { stateid, recall, permissions }
    OpenWriteDelegation { stateid, recall, space_limit, permissions }
    OpenResOk { stateid, cinfo, rflags, attrset, delegation }
    CloseArgs { seqid, open_stateid }
    OpenDowngradeArgs { open_stateid, seqid, share_access, share_deny }
    OpenattrArgs { createdir }
    WantDelegationArgs { want, claim }
    GetDirDelegationArgs { signal_deleg_avail, notification_types, child_attr_delay, dir_attr_delay, child_attributes, dir_attributes }
    GetDirDelegationResOk { cookieverf, stateid, notification, child_attributes, dir_attributes }
    ReadArgs { stateid, offset, count }
    ReadResOk { eof, data }
    WriteArgs { stateid, offset, stable, data }
    WriteResOk { count, committed, writeverf }
    CommitArgs { offset, count }
    CommitResOk { writeverf }
    LayoutContent { loc_type, loc_body }
    Layout { offset, length, iomode, content }
    DeviceAddr { layout_type, addr_body }
    LayoutUpdate { lou_type, lou_body }
    LayoutgetArgs { signal_layout_avail, layout_type, iomode, offset, length, minlength, stateid, maxcount }
    LayoutgetResOk { return_on_close, stateid, layouts }
    LayoutcommitArgs { offset, length, reclaim, stateid, last_write_offset, time_modify, layoutupdate }
    LayoutcommitResOk { newsize }
    LayoutreturnFile { offset, length, stateid, body }
    LayoutreturnArgs { reclaim, layout_type, iomode, layoutreturn }
    LayoutreturnResOk { stateid }
    GetdeviceinfoArgs { device_id, layout_type, maxcount, notify_types }
    GetdeviceinfoResOk { device_addr, notification }
    GetdevicelistArgs { layout_type, maxdevices, cookie, cookieverf }
    GetdevicelistResOk { cookie, cookieverf, deviceid_list, eof }
    CreateArgs { objtype, objname, createattrs }
    CreateResOk { cinfo, attrset }
    RemoveArgs { target }
    CinfoResOk { cinfo }
    RenameArgs { oldname, newname }
    RenameResOk { source_cinfo, target_cinfo }
    LinkArgs { newname }
    ReadlinkResOk { link }
    ReaddirArgs { cookie, cookieverf, dircount, maxcount, attr_request }
    DirEntry { cookie, name, attrs }
    DirList { entries, eof }
    ReaddirResOk { cookieverf, reply }
    OpenToLockOwner { open_seqid, open_stateid, lock_seqid, lock_owner }
    ExistLockOwner { lock_stateid, lock_seqid }
    LockArgs { locktype, reclaim, offset, length, locker }
    LockDenied { offset, length, locktype, owner }
    LocktArgs { locktype, offset, length, owner }
    LockuArgs { locktype, seqid, lock_stateid, offset, length }
    OpenConfirmArgs { open_stateid, seqid }
    CbClient { cb_program, cb_location }
    SetclientidArgs { client, callback, callback_ident }
    SetclientidResOk { clientid, setclientid_confirm }
    SetclientidConfirmArgs { clientid, setclientid_confirm }
    AllocateArgs { stateid, offset, length }
    CopyArgs { src_stateid, dst_stateid, src_offset, dst_offset, count, consecutive, synchronous, source_server }
    WriteResponse { callback_id, count, committed, writeverf }
    CopyRequirements { consecutive, synchronous }
    CopyResOk { response, requirements }
    CopyNotifyArgs { src_stateid, destination_server }
    CopyNotifyResOk { lease_time, stateid, source_server }
    OffloadStatusResOk { count, complete }
    IoAdviseArgs { stateid, offset, count, hints }
    IoAdviseResOk { hints }
    DeviceError { deviceid, status, opnum }
    LayouterrorArgs { offset, length, stateid, errors }
    IoInfo { count, bytes }
    LayoutstatsArgs { offset, length, stateid, read, write, deviceid, layoutupdate }
    ReadPlusArgs { stateid, offset, count }
    Data4 { offset, data }
    DataInfo { offset, length }
    ReadPlusResOk { eof, contents }
    SeekArgs { stateid, offset, what }
    SeekResOk { eof, offset }
    AppDataBlock { offset, block_size, block_count, reloff_blocknum, block_num, reloff_pattern, pattern }
    WriteSameArgs { stateid, stable, adb }
    CloneArgs { src_stateid, dst_stateid, src_offset, dst_offset, count }
    // Attribute value types.
    Fsid { major, minor }
    ModeMasked { value_to_set, mask_bits }
    NfsAcl41 { flag, aces }
    ChangePolicy { major, minor }
    Pathname { components }
    FsLocation { server, rootpath }
    FsLocations { fs_root, locations }
    FsStatus { absent, status_type, source, current, age, version }
    LayoutHint { layout_type, body }
    ThresholdItem { layout_type, hintset, hintlist }
    MdsThreshold { hints }
    RetentionGet { duration, begin_time }
    RetentionSet { enable, duration }
    SecLabel { lfs, pi, data }
    Fattr {
        supported_attrs, file_type, fh_expire_type, change, size, link_support, symlink_support,
        named_attr, fsid, unique_handles, lease_time, rdattr_error, acl, aclsupport, archive,
        cansettime, case_insensitive, case_preserving, chown_restricted, filehandle, fileid,
        files_avail, files_free, files_total, fs_locations, hidden, homogeneous, maxfilesize,
        maxlink, maxname, maxread, maxwrite, mimetype, mode, no_trunc, numlinks, owner,
        owner_group, quota_avail_hard, quota_avail_soft, quota_used, rawdev, space_avail,
        space_free, space_total, space_used, system, time_access, time_access_set, time_backup,
        time_create, time_delta, time_metadata, time_modify, time_modify_set, mounted_on_fileid,
        dir_notif_delay, dirent_notif_delay, dacl, sacl, change_policy, fs_status,
        fs_layout_types, layout_hint, layout_types, layout_blksize, layout_alignment,
        mdsthreshold, retention_get, retention_set, retentevt_get, retentevt_set, retention_hold,
        mode_set_masked, suppattr_exclcreat, fs_charset_cap, clone_blksize, space_freed,
        change_attr_type, sec_label,
    }
}

/// Enums: each arm with an equal chance.
macro_rules! gen_enum {
    ($ty:ident, $r:ident => [$($arm:expr),* $(,)?]) => {
        impl Gen for $ty {
            fn gen($r: &mut Rng) -> Self {
                let arms: usize = [$(stringify!($arm)),*].len();
                let mut i = 0;
                let pick = $r.below(arms);
                $(
                    if pick == i {
                        return $arm;
                    }
                    i += 1;
                )*
                let _ = i;
                unreachable!()
            }
        }
    };
}

gen_enum!(StableHow, r => [StableHow::Unstable, StableHow::DataSync, StableHow::FileSync]);
gen_enum!(OpenDelegationType, r => [
    OpenDelegationType::None, OpenDelegationType::Read, OpenDelegationType::Write,
    OpenDelegationType::NoneExt,
]);
gen_enum!(LockType, r => [LockType::Read, LockType::Write, LockType::ReadW, LockType::WriteW]);
gen_enum!(StateProtectA, r => [
    StateProtectA::None, StateProtectA::MachCred(Gen::gen(r)), StateProtectA::Ssv(Gen::gen(r)),
]);
gen_enum!(StateProtectR, r => [
    StateProtectR::None, StateProtectR::MachCred(Gen::gen(r)), StateProtectR::Ssv(Gen::gen(r)),
]);
gen_enum!(CallbackSecParms, r => [
    CallbackSecParms::None, CallbackSecParms::Sys(Gen::gen(r)), CallbackSecParms::Gss(Gen::gen(r)),
]);
gen_enum!(ChannelDirFromClient, r => [
    ChannelDirFromClient::Fore, ChannelDirFromClient::Back, ChannelDirFromClient::ForeOrBoth,
    ChannelDirFromClient::BackOrBoth,
]);
gen_enum!(ChannelDirFromServer, r => [
    ChannelDirFromServer::Fore, ChannelDirFromServer::Back, ChannelDirFromServer::Both,
]);
gen_enum!(SecInfo, r => [
    SecInfo::Gss(Gen::gen(r)), SecInfo::Flavor(r.pick(&[0, 1, 390_003])),
]);
gen_enum!(SecinfoStyle, r => [SecinfoStyle::CurrentFh, SecinfoStyle::Parent]);
gen_enum!(CreateHow, r => [
    CreateHow::Unchecked(Gen::gen(r)), CreateHow::Guarded(Gen::gen(r)),
    CreateHow::Exclusive(Gen::gen(r)), CreateHow::Exclusive41(Gen::gen(r)),
]);
gen_enum!(OpenFlag, r => [OpenFlag::NoCreate, OpenFlag::Create(Gen::gen(r))]);
gen_enum!(OpenClaim, r => [
    OpenClaim::Null(Gen::gen(r)), OpenClaim::Previous(Gen::gen(r)),
    OpenClaim::DelegateCur(Gen::gen(r)), OpenClaim::DelegatePrev(Gen::gen(r)), OpenClaim::Fh,
    OpenClaim::DelegCurFh(Gen::gen(r)), OpenClaim::DelegPrevFh,
]);
gen_enum!(SpaceLimit, r => [SpaceLimit::Size(Gen::gen(r)), SpaceLimit::Blocks(Gen::gen(r))]);
gen_enum!(OpenNoneDelegation, r => [
    OpenNoneDelegation::Contention { server_will_push_deleg: Gen::gen(r) },
    OpenNoneDelegation::Resource { server_will_signal_avail: Gen::gen(r) },
    OpenNoneDelegation::Other(r.pick(&[0, 3, 4, 5, 6, 7, 8, 99])),
]);
gen_enum!(OpenDelegation, r => [
    OpenDelegation::None, OpenDelegation::Read(Gen::gen(r)), OpenDelegation::Write(Gen::gen(r)),
    OpenDelegation::NoneExt(Gen::gen(r)),
]);
gen_enum!(DelegClaim, r => [
    DelegClaim::Fh, DelegClaim::DelegPrevFh, DelegClaim::Previous(Gen::gen(r)),
]);
gen_enum!(GetDirDelegationNonFatal, r => [
    GetDirDelegationNonFatal::Ok(Gen::gen(r)), GetDirDelegationNonFatal::Unavail(Gen::gen(r)),
]);
gen_enum!(LayoutgetRes, r => [
    LayoutgetRes::Ok(Gen::gen(r)),
    LayoutgetRes::TryLater { will_signal_layout_avail: Gen::gen(r) },
    LayoutgetRes::Error(plain_error(r)),
]);
gen_enum!(Layoutreturn, r => [
    Layoutreturn::File(Gen::gen(r)), Layoutreturn::Fsid, Layoutreturn::All,
]);
gen_enum!(GetdeviceinfoRes, r => [
    GetdeviceinfoRes::Ok(Gen::gen(r)),
    GetdeviceinfoRes::TooSmall { mincount: Gen::gen(r) },
    GetdeviceinfoRes::Error(plain_error(r)),
]);
gen_enum!(CreateType, r => [
    CreateType::Link(Gen::gen(r)), CreateType::Block(Gen::gen(r)), CreateType::Char(Gen::gen(r)),
    CreateType::Socket, CreateType::Fifo, CreateType::Dir,
    CreateType::Other(r.pick(&[NF4REG, NF4ATTRDIR, NF4NAMEDATTR, 77])),
]);
gen_enum!(Locker, r => [Locker::Exist(Gen::gen(r)), Locker::New(Gen::gen(r))]);
gen_enum!(LockRes, r => [
    LockRes::Ok(Gen::gen(r)), LockRes::Denied(Gen::gen(r)), LockRes::Error(plain_error(r)),
]);
gen_enum!(LocktRes, r => [
    LocktRes::Ok, LocktRes::Denied(Gen::gen(r)), LocktRes::Error(plain_error(r)),
]);
gen_enum!(SetclientidRes, r => [
    SetclientidRes::Ok(Gen::gen(r)), SetclientidRes::ClidInUse(Gen::gen(r)),
    SetclientidRes::Error(plain_error(r)),
]);
gen_enum!(NetLoc, r => [
    NetLoc::Name(Gen::gen(r)), NetLoc::Url(Gen::gen(r)), NetLoc::NetAddr(Gen::gen(r)),
]);
gen_enum!(CopyRes, r => [
    CopyRes::Ok(Gen::gen(r)), CopyRes::OffloadNoReqs(Gen::gen(r)),
    CopyRes::Error(plain_error(r)),
]);
gen_enum!(ReadPlusContent, r => [
    ReadPlusContent::Data(Gen::gen(r)), ReadPlusContent::Hole(Gen::gen(r)),
    ReadPlusContent::Other(r.pick(&[2, 3, 1000])),
]);
gen_enum!(DataContent, r => [DataContent::Data, DataContent::Hole]);
gen_enum!(SetTime, r => [SetTime::ServerTime, SetTime::ClientTime(Gen::gen(r))]);

/// Number of argument-op kinds [`gen_argop`] covers (every op except Illegal).
const ARGOP_KINDS: usize = 68;

/// One argument op of kind `k` (0..ARGOP_KINDS).
fn gen_argop(k: usize, r: &mut Rng) -> NfsArgOp {
    use NfsArgOp as A;
    match k {
        0 => A::Access(Gen::gen(r)),
        1 => A::Close(Gen::gen(r)),
        2 => A::Commit(Gen::gen(r)),
        3 => A::Create(Gen::gen(r)),
        4 => A::Delegpurge(Gen::gen(r)),
        5 => A::Delegreturn(Gen::gen(r)),
        6 => A::Getattr(Gen::gen(r)),
        7 => A::Getfh,
        8 => A::Link(Gen::gen(r)),
        9 => A::Lock(Gen::gen(r)),
        10 => A::Lockt(Gen::gen(r)),
        11 => A::Locku(Gen::gen(r)),
        12 => A::Lookup(Gen::gen(r)),
        13 => A::Lookupp,
        14 => A::Nverify(Gen::gen(r)),
        15 => A::Open(Gen::gen(r)),
        16 => A::Openattr(Gen::gen(r)),
        17 => A::OpenConfirm(Gen::gen(r)),
        18 => A::OpenDowngrade(Gen::gen(r)),
        19 => A::Putfh(Gen::gen(r)),
        20 => A::Putpubfh,
        21 => A::Putrootfh,
        22 => A::Read(Gen::gen(r)),
        23 => A::Readdir(Gen::gen(r)),
        24 => A::Readlink,
        25 => A::Remove(Gen::gen(r)),
        26 => A::Rename(Gen::gen(r)),
        27 => A::Renew(Gen::gen(r)),
        28 => A::Restorefh,
        29 => A::Savefh,
        30 => A::Secinfo(Gen::gen(r)),
        31 => A::Setattr(Gen::gen(r)),
        32 => A::Setclientid(Gen::gen(r)),
        33 => A::SetclientidConfirm(Gen::gen(r)),
        34 => A::Verify(Gen::gen(r)),
        35 => A::Write(Gen::gen(r)),
        36 => A::ReleaseLockowner(Gen::gen(r)),
        37 => A::BackchannelCtl(Gen::gen(r)),
        38 => A::BindConnToSession(Gen::gen(r)),
        39 => A::ExchangeId(Gen::gen(r)),
        40 => A::CreateSession(Gen::gen(r)),
        41 => A::DestroySession(Gen::gen(r)),
        42 => A::FreeStateid(Gen::gen(r)),
        43 => A::GetDirDelegation(Gen::gen(r)),
        44 => A::Getdeviceinfo(Gen::gen(r)),
        45 => A::Getdevicelist(Gen::gen(r)),
        46 => A::Layoutcommit(Gen::gen(r)),
        47 => A::Layoutget(Gen::gen(r)),
        48 => A::Layoutreturn(Gen::gen(r)),
        49 => A::SecinfoNoName(Gen::gen(r)),
        50 => A::Sequence(Gen::gen(r)),
        51 => A::SetSsv(Gen::gen(r)),
        52 => A::TestStateid(Gen::gen(r)),
        53 => A::WantDelegation(Gen::gen(r)),
        54 => A::DestroyClientid(Gen::gen(r)),
        55 => A::ReclaimComplete(Gen::gen(r)),
        56 => A::Allocate(Gen::gen(r)),
        57 => A::Copy(Gen::gen(r)),
        58 => A::CopyNotify(Gen::gen(r)),
        59 => A::Deallocate(Gen::gen(r)),
        60 => A::IoAdvise(Gen::gen(r)),
        61 => A::Layouterror(Gen::gen(r)),
        62 => A::Layoutstats(Gen::gen(r)),
        63 => A::OffloadCancel(Gen::gen(r)),
        64 => A::OffloadStatus(Gen::gen(r)),
        65 => A::ReadPlus(Gen::gen(r)),
        66 => A::Seek(Gen::gen(r)),
        67 => A::WriteSame(Gen::gen(r)),
        _ => A::Clone(Gen::gen(r)),
    }
}

/// A result for the same kind of op as `op`.
fn gen_resop(op: &NfsArgOp, r: &mut Rng) -> NfsResOp {
    use NfsArgOp as A;
    use NfsResOp as R;
    match op {
        A::Access(_) => R::Access(Gen::gen(r)),
        A::Close(_) => R::Close(Gen::gen(r)),
        A::Commit(_) => R::Commit(Gen::gen(r)),
        A::Create(_) => R::Create(Gen::gen(r)),
        A::Delegpurge(_) => R::Delegpurge(Gen::gen(r)),
        A::Delegreturn(_) => R::Delegreturn(Gen::gen(r)),
        A::Getattr(_) => R::Getattr(Gen::gen(r)),
        A::Getfh => R::Getfh(Gen::gen(r)),
        A::Link(_) => R::Link(Gen::gen(r)),
        A::Lock(_) => R::Lock(Gen::gen(r)),
        A::Lockt(_) => R::Lockt(Gen::gen(r)),
        A::Locku(_) => R::Locku(Gen::gen(r)),
        A::Lookup(_) => R::Lookup(Gen::gen(r)),
        A::Lookupp => R::Lookupp(Gen::gen(r)),
        A::Nverify(_) => R::Nverify(Gen::gen(r)),
        A::Open(_) => R::Open(Gen::gen(r)),
        A::Openattr(_) => R::Openattr(Gen::gen(r)),
        A::OpenConfirm(_) => R::OpenConfirm(Gen::gen(r)),
        A::OpenDowngrade(_) => R::OpenDowngrade(Gen::gen(r)),
        A::Putfh(_) => R::Putfh(Gen::gen(r)),
        A::Putpubfh => R::Putpubfh(Gen::gen(r)),
        A::Putrootfh => R::Putrootfh(Gen::gen(r)),
        A::Read(_) => R::Read(Gen::gen(r)),
        A::Readdir(_) => R::Readdir(Gen::gen(r)),
        A::Readlink => R::Readlink(Gen::gen(r)),
        A::Remove(_) => R::Remove(Gen::gen(r)),
        A::Rename(_) => R::Rename(Gen::gen(r)),
        A::Renew(_) => R::Renew(Gen::gen(r)),
        A::Restorefh => R::Restorefh(Gen::gen(r)),
        A::Savefh => R::Savefh(Gen::gen(r)),
        A::Secinfo(_) => R::Secinfo(Gen::gen(r)),
        A::Setattr(_) => R::Setattr(Gen::gen(r)),
        A::Setclientid(_) => R::Setclientid(Gen::gen(r)),
        A::SetclientidConfirm(_) => R::SetclientidConfirm(Gen::gen(r)),
        A::Verify(_) => R::Verify(Gen::gen(r)),
        A::Write(_) => R::Write(Gen::gen(r)),
        A::ReleaseLockowner(_) => R::ReleaseLockowner(Gen::gen(r)),
        A::BackchannelCtl(_) => R::BackchannelCtl(Gen::gen(r)),
        A::BindConnToSession(_) => R::BindConnToSession(Gen::gen(r)),
        A::ExchangeId(_) => R::ExchangeId(Gen::gen(r)),
        A::CreateSession(_) => R::CreateSession(Gen::gen(r)),
        A::DestroySession(_) => R::DestroySession(Gen::gen(r)),
        A::FreeStateid(_) => R::FreeStateid(Gen::gen(r)),
        A::GetDirDelegation(_) => R::GetDirDelegation(Gen::gen(r)),
        A::Getdeviceinfo(_) => R::Getdeviceinfo(Gen::gen(r)),
        A::Getdevicelist(_) => R::Getdevicelist(Gen::gen(r)),
        A::Layoutcommit(_) => R::Layoutcommit(Gen::gen(r)),
        A::Layoutget(_) => R::Layoutget(Gen::gen(r)),
        A::Layoutreturn(_) => R::Layoutreturn(Gen::gen(r)),
        A::SecinfoNoName(_) => R::SecinfoNoName(Gen::gen(r)),
        A::Sequence(_) => R::Sequence(Gen::gen(r)),
        A::SetSsv(_) => R::SetSsv(Gen::gen(r)),
        A::TestStateid(_) => R::TestStateid(Gen::gen(r)),
        A::WantDelegation(_) => R::WantDelegation(Gen::gen(r)),
        A::DestroyClientid(_) => R::DestroyClientid(Gen::gen(r)),
        A::ReclaimComplete(_) => R::ReclaimComplete(Gen::gen(r)),
        A::Allocate(_) => R::Allocate(Gen::gen(r)),
        A::Copy(_) => R::Copy(Gen::gen(r)),
        A::CopyNotify(_) => R::CopyNotify(Gen::gen(r)),
        A::Deallocate(_) => R::Deallocate(Gen::gen(r)),
        A::IoAdvise(_) => R::IoAdvise(Gen::gen(r)),
        A::Layouterror(_) => R::Layouterror(Gen::gen(r)),
        A::Layoutstats(_) => R::Layoutstats(Gen::gen(r)),
        A::OffloadCancel(_) => R::OffloadCancel(Gen::gen(r)),
        A::OffloadStatus(_) => R::OffloadStatus(Gen::gen(r)),
        A::ReadPlus(_) => R::ReadPlus(Gen::gen(r)),
        A::Seek(_) => R::Seek(Gen::gen(r)),
        A::WriteSame(_) => R::WriteSame(Gen::gen(r)),
        A::Clone(_) => R::Clone(Gen::gen(r)),
        A::Illegal { .. } => R::Illegal(NfsStat::OP_ILLEGAL),
    }
}

fn round_trip<T: XdrEncode + XdrDecode + PartialEq + std::fmt::Debug>(x: &T) -> Vec<u8> {
    let bytes = to_bytes(x);
    assert_eq!(bytes.len() % 4, 0, "{x:?}: not whole XDR units");
    match from_bytes::<T>(&bytes) {
        Ok(back) => assert_eq!(&back, x),
        Err(e) => panic!("{x:?} did not decode: {e}"),
    }
    bytes
}

/// Every prefix shorter than the whole must fail (not panic), and so must a trailing byte.
fn truncations_fail<T: XdrDecode + std::fmt::Debug>(bytes: &[u8]) {
    for cut in 0..bytes.len() {
        if let Ok(v) = from_bytes::<T>(&bytes[..cut]) {
            panic!("prefix of {cut}/{} bytes decoded: {v:?}", bytes.len());
        }
    }
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert!(from_bytes::<T>(&longer).is_err());
}

/// Random byte flips must never panic (the result may be Ok or Err).
fn mutations_do_not_panic<T: XdrDecode>(bytes: &[u8], r: &mut Rng) {
    if bytes.is_empty() {
        return;
    }
    for _ in 0..32 {
        let mut m = bytes.to_vec();
        for _ in 0..=r.below(4) {
            let i = r.below(m.len());
            m[i] = u8::gen(r);
        }
        let _ = from_bytes::<T>(&m);
    }
}

#[test]
fn every_op_kind_is_covered_once() {
    // Each kind maps to a distinct opnum, and together they are every op but ILLEGAL.
    let mut r = Rng::new(1);
    let mut nums: Vec<u32> = (0..=ARGOP_KINDS)
        .map(|k| gen_argop(k, &mut r).opnum())
        .collect();
    nums.sort_unstable();
    nums.dedup();
    assert_eq!(nums, (OP_ACCESS..=OP_CLONE).collect::<Vec<_>>());
}

#[test]
fn every_op_args_and_result_round_trip() {
    let mut r = Rng::new(seed());
    for round in 0..40 {
        for k in 0..=ARGOP_KINDS {
            let arg = gen_argop(k, &mut r);
            let res = gen_resop(&arg, &mut r);
            let ab = round_trip(&arg);
            let rb = round_trip(&res);
            assert_eq!(res.opnum(), arg.opnum());
            if round < 4 {
                truncations_fail::<NfsArgOp>(&ab);
                truncations_fail::<NfsResOp>(&rb);
            }
            mutations_do_not_panic::<NfsArgOp>(&ab, &mut r);
            mutations_do_not_panic::<NfsResOp>(&rb, &mut r);
            // The error result for this op keeps the op and the status.
            let err = NfsResOp::error_for(&arg, NfsStat::SERVERFAULT);
            assert_eq!(
                (err.opnum(), err.status()),
                (arg.opnum(), NfsStat::SERVERFAULT)
            );
            round_trip(&err);
        }
    }
}

#[test]
fn compounds_round_trip_and_refuse_truncation() {
    let mut r = Rng::new(seed() ^ 0xc0de);
    for _ in 0..200 {
        let n = r.below(8);
        let ops: Vec<NfsArgOp> = (0..n)
            .map(|_| gen_argop(r.below(ARGOP_KINDS + 1), &mut r))
            .collect();
        let results: Vec<NfsResOp> = ops.iter().map(|op| gen_resop(op, &mut r)).collect();
        let args = CompoundArgs::new(String::gen(&mut r), ops);
        let res = CompoundRes::new(String::gen(&mut r), results);
        let ab = round_trip(&args);
        let rb = round_trip(&res);
        truncations_fail::<CompoundArgs>(&ab);
        truncations_fail::<CompoundRes>(&rb);
        mutations_do_not_panic::<CompoundArgs>(&ab, &mut r);
        mutations_do_not_panic::<CompoundRes>(&rb, &mut r);
    }
}

#[test]
fn random_bytes_never_panic_the_decoders() {
    let mut r = Rng::new(seed() ^ 0xf00d);
    for _ in 0..20_000 {
        let n = r.below(96);
        let mut bytes: Vec<u8> = (0..n).map(|_| u8::gen(&mut r)).collect();
        // Plausible headers make the decoders go deeper: empty tag, minor version 1, few ops,
        // and a real opnum.
        if n >= 16 && r.below(2) == 0 {
            bytes[..12].copy_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2]);
            let op = u32::try_from(3 + r.below(69)).unwrap();
            bytes[12..16].copy_from_slice(&op.to_be_bytes());
        }
        let _ = from_bytes::<CompoundArgs>(&bytes);
        let _ = from_bytes::<CompoundRes>(&bytes);
        let _ = from_bytes::<Fattr4>(&bytes).map(|f| Fattr::from_fattr4(&f));
    }
}

#[test]
fn typed_attributes_round_trip() {
    let mut r = Rng::new(seed() ^ 0xa77);
    for _ in 0..500 {
        let attrs = Fattr::gen(&mut r);
        let f = attrs.to_fattr4();
        assert!(f.attrmask.same_bits(&attrs.mask()));
        assert_eq!(Fattr::from_fattr4(&f), Ok(attrs.clone()));
        // Asking for a random subset yields exactly the set ∩ requested attributes.
        let request = Bitmap4::from_bits(
            &Fattr::KNOWN
                .iter()
                .copied()
                .filter(|_| r.below(2) == 0)
                .collect::<Vec<_>>(),
        );
        let sub = attrs.encode_masked(&request);
        assert!(sub.attrmask.same_bits(&attrs.mask().intersection(&request)));
        let back = Fattr::from_fattr4(&sub).unwrap();
        for bit in Fattr::KNOWN {
            assert_eq!(back.mask().contains(*bit), sub.attrmask.contains(*bit));
        }
        let bytes = round_trip(&attrs);
        mutations_do_not_panic::<Fattr>(&bytes, &mut r);
    }
}

#[test]
fn bitmap_set_operations() {
    let a = Bitmap4::from_bits(&[0, 4, 33, 65]);
    assert_eq!(a.0, vec![0b10001, 0b10, 0b10]);
    assert_eq!(a.iter().collect::<Vec<_>>(), vec![0, 4, 33, 65]);
    let b = Bitmap4::from_bits(&[4, 65, 70]);
    assert_eq!(a.intersection(&b).iter().collect::<Vec<_>>(), vec![4, 65]);
    assert_eq!(a.difference(&b).iter().collect::<Vec<_>>(), vec![0, 33]);
    assert!(Bitmap4(vec![1, 0, 0]).same_bits(&Bitmap4(vec![1])));
    let mut c = a.clone();
    c.clear(65);
    assert!(!c.contains(65) && c.contains(33));
    // Too many words on the wire.
    let words = Bitmap4(vec![0; NFS4_MAX_BITMAP_WORDS + 1]);
    assert!(from_bytes::<Bitmap4>(&to_bytes(&words)).is_err());
}
