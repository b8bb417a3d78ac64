//! Shared deterministic generator of NFSv4 values for the nfs4_* tests (included with
//! `#[path = "nfs4_gen.rs"] mod gen;`). As a test target of its own it has no tests.
//!
//! `Rng::realistic` restricts values to what a protocol analyser can dissect: block layouts
//! only, attribute values that match their masks, known union arms.

#![allow(dead_code)]

use pnfs_proto::nfs4::attr::*;
use pnfs_proto::nfs4::*;
use pnfs_proto::rpc::AuthSys;

// ---------------------------------------------------------------------------------------------
// A small deterministic generator
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
pub struct Rng {
    state: u64,
    /// Only values a protocol analyser can dissect (see the module docs).
    pub realistic: bool,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self {
            state: seed | 1,
            realistic: false,
        }
    }
    pub fn next_u64(&mut self) -> u64 {
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next_u64() % u64::try_from(n).unwrap()).unwrap()
    }
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

pub fn seed() -> u64 {
    let seed = std::env::var("PNFS_PROTO_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026_1125);
    println!("PNFS_PROTO_SEED={seed}");
    seed
}

pub trait Gen: Sized {
    fn gen(r: &mut Rng) -> Self;
}

impl Gen for u8 {
    fn gen(r: &mut Rng) -> Self {
        r.next_u64().to_le_bytes()[0]
    }
}
impl Gen for u32 {
    fn gen(r: &mut Rng) -> Self {
        // Mix small values (common on the wire) with arbitrary ones.
        if r.below(2) == 0 {
            u32::try_from(r.below(8)).unwrap()
        } else {
            u32::try_from(r.next_u64() >> 32).unwrap()
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
            r.next_u64() % 16
        } else {
            r.next_u64()
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
pub const PLAIN_ERRORS: &[NfsStat] = &[
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

pub fn plain_error(r: &mut Rng) -> NfsStat {
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
            nseconds: u32::try_from(r.next_u64() % 1_000_000_000).unwrap(),
        }
    }
}

impl Gen for LayoutType {
    fn gen(r: &mut Rng) -> Self {
        if r.realistic {
            return LayoutType::BlockVolume;
        }
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

impl Gen for Fattr4 {
    fn gen(r: &mut Rng) -> Self {
        if r.realistic {
            // A few common attributes whose values match the mask.
            Fattr {
                file_type: Option::<bool>::gen(r).map(|_| NF4REG),
                size: Gen::gen(r),
                mode: Option::<u32>::gen(r).map(|m| m & MODE4_ALL_BITS),
                owner: Gen::gen(r),
                time_modify: Gen::gen(r),
                ..Fattr::default()
            }
            .to_fattr4()
        } else {
            Self {
                attrmask: Gen::gen(r),
                attr_vals: Gen::gen(r),
            }
        }
    }
}

impl Gen for Bitmap4 {
    fn gen(r: &mut Rng) -> Self {
        Self(Gen::gen(r))
    }
}

gen_struct! {
    Stateid { seqid, other }
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
    ModeUmask { mode, umask }
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
        change_attr_type, sec_label, mode_umask, xattr_support,
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
impl Gen for ReadPlusContent {
    fn gen(r: &mut Rng) -> Self {
        match r.below(if r.realistic { 2 } else { 3 }) {
            0 => ReadPlusContent::Data(Gen::gen(r)),
            1 => ReadPlusContent::Hole(Gen::gen(r)),
            _ => ReadPlusContent::Other(r.pick(&[2, 3, 1000])),
        }
    }
}
gen_enum!(DataContent, r => [DataContent::Data, DataContent::Hole]);
gen_enum!(SetTime, r => [SetTime::ServerTime, SetTime::ClientTime(Gen::gen(r))]);

/// Number of argument-op kinds [`gen_argop`] covers (every op except Illegal).
pub const ARGOP_KINDS: usize = 68;

/// One argument op of kind `k` (0..ARGOP_KINDS).
pub fn gen_argop(k: usize, r: &mut Rng) -> NfsArgOp {
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
pub fn gen_resop(op: &NfsArgOp, r: &mut Rng) -> NfsResOp {
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
