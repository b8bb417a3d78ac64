//! NFSv4.1 COMPOUND processing: argument decoding, the server state (clients, sessions,
//! slots, opens, layouts) and every operation.
//!
//! The whole COMPOUND is decoded before anything runs, so a request that fails to decode
//! changes nothing. Operations run under one lock on [`State`]; nothing awaits while holding
//! it (callbacks are spawned).
//!
//! The per-operation argument codecs live here (private) because the shared protocol crate's
//! operation codecs were not available when this server was written; they follow RFC 8881
//! §18 and RFC 5663 §2.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use pnfs_proto::nfs4::types::{NfsStat, NfsTime};
use pnfs_proto::xdr::{Decoder, Encoder, XdrError, XdrResult};

use crate::fs::{Fs, Kind, LayoutPiece, SetAttrs, ROOT_ID};

/// Most operations in one COMPOUND.
pub const MAX_OPS: usize = 64;
const MAX_OPS_U32: u32 = 64;
/// Fore-channel slots per session.
pub const MAX_SLOTS: u32 = 64;
/// Largest READ/WRITE through the MDS.
pub const MAX_IO_BYTES: u32 = 1024 * 1024;
/// Largest RPC request/response we negotiate.
pub const MAX_RPC_BYTES: u32 = MAX_IO_BYTES + 64 * 1024;
/// Most bytes one RW LAYOUTGET allocates.
pub const MAX_RW_LAYOUT_BYTES: u64 = 64 << 20;
/// Most bytes one READ layout covers.
pub const MAX_READ_LAYOUT_BYTES: u64 = 1 << 30;
/// Encoded size of one pnfs_block_extent4.
const EXTENT_XDR_BYTES: u32 = 16 + 8 + 8 + 8 + 4;
/// Most names one READDIR returns.
const MAX_READDIR_ENTRIES: usize = 4096;

const OPAQUE_LIMIT: usize = 1024;

const FH_MAGIC: u32 = 0x504d_4453; // "PMDS"

/// File handle of an inode.
pub fn fh_of(id: u64) -> Vec<u8> {
    let mut e = Encoder::new();
    e.put_u32(FH_MAGIC);
    e.put_u32(0);
    e.put_u64(id);
    e.into_inner()
}

fn id_of(fh: &[u8]) -> Result<u64, NfsStat> {
    if fh.len() != 16 {
        return Err(NfsStat::BADHANDLE);
    }
    let mut d = Decoder::new(fh);
    if d.u32().ok() != Some(FH_MAGIC) || d.u32().ok() != Some(0) {
        return Err(NfsStat::BADHANDLE);
    }
    d.u64().map_err(|_| NfsStat::BADHANDLE)
}

// ---------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Sid {
    pub seqid: u32,
    pub other: [u8; 12],
}

fn get_sid(d: &mut Decoder<'_>) -> XdrResult<Sid> {
    Ok(Sid {
        seqid: d.u32()?,
        other: d.array_fixed()?,
    })
}
fn put_sid(e: &mut Encoder, s: &Sid) {
    e.put_u32(s.seqid);
    e.put_opaque_fixed(&s.other);
}

fn get_bitmap(d: &mut Decoder<'_>) -> XdrResult<Vec<u32>> {
    d.array("bitmap4", 8)
}
fn put_bitmap(e: &mut Encoder, b: &[u32]) {
    let mut n = b.len();
    while n > 0 && b[n - 1] == 0 {
        n -= 1;
    }
    e.put_u32(u32::try_from(n).unwrap_or(0));
    for w in &b[..n] {
        e.put_u32(*w);
    }
}
fn has(b: &[u32], bit: u32) -> bool {
    b.get(usize::try_from(bit / 32).unwrap_or(usize::MAX))
        .is_some_and(|w| w & (1 << (bit % 32)) != 0)
}
fn set_bit(b: &mut Vec<u32>, bit: u32) {
    let w = usize::try_from(bit / 32).unwrap_or(0);
    if b.len() <= w {
        b.resize(w + 1, 0);
    }
    b[w] |= 1 << (bit % 32);
}

fn get_name(d: &mut Decoder<'_>) -> XdrResult<String> {
    d.string("component4", 1024)
}

/// fattr4 sent by the client, parsed into what we can set.
#[derive(Debug, Default, Clone)]
pub(crate) struct InAttrs {
    pub set: SetAttrs,
    pub mask: Vec<u32>,
    pub unsupported: bool,
}

fn parse_owner(s: &str) -> Option<u32> {
    let n = s.split('@').next().unwrap_or(s);
    n.parse().ok()
}

fn get_fattr(d: &mut Decoder<'_>) -> XdrResult<InAttrs> {
    let mask = get_bitmap(d)?;
    let vals = d.opaque("attrlist4", 64 * 1024)?;
    let mut v = Decoder::new(vals);
    let mut a = InAttrs {
        mask: mask.clone(),
        ..Default::default()
    };
    for bit in 0..(u32::try_from(mask.len()).unwrap_or(0) * 32) {
        if !has(&mask, bit) {
            continue;
        }
        match bit {
            A_SIZE => a.set.size = Some(v.u64()?),
            A_MODE => a.set.mode = Some(v.u32()?),
            A_OWNER => {
                let s = v.string("owner", OPAQUE_LIMIT)?;
                a.set.uid = parse_owner(&s);
                if a.set.uid.is_none() {
                    a.unsupported = true;
                }
            }
            A_OWNER_GROUP => {
                let s = v.string("group", OPAQUE_LIMIT)?;
                a.set.gid = parse_owner(&s);
                if a.set.gid.is_none() {
                    a.unsupported = true;
                }
            }
            A_TIME_ACCESS_SET | A_TIME_MODIFY_SET => {
                let t = if v.u32()? == 1 {
                    Some(NfsTime {
                        seconds: v.i64()?,
                        nseconds: v.u32()?,
                    })
                } else {
                    None
                };
                if bit == A_TIME_ACCESS_SET {
                    a.set.atime = Some(t);
                } else {
                    a.set.mtime = Some(t);
                }
            }
            _ => {
                a.unsupported = true;
                break;
            }
        }
    }
    Ok(a)
}

#[derive(Debug)]
pub(crate) enum Create {
    Unchecked(InAttrs),
    Guarded(InAttrs),
    Exclusive(InAttrs),
}

#[derive(Debug)]
pub(crate) enum Claim {
    Null(String),
    Previous,
    Fh,
    Other,
}

#[derive(Debug)]
pub(crate) enum LrType {
    File { off: u64, len: u64, sid: Sid },
    Fsid,
    All,
}

#[derive(Debug)]
pub(crate) enum Op {
    Access(u32),
    Close(Sid),
    Commit,
    Create {
        kind: Kind,
        name: String,
        attrs: InAttrs,
    },
    GetAttr(Vec<u32>),
    GetFh,
    Link(String),
    Lookup(String),
    Lookupp,
    Open {
        access: u32,
        owner: (u64, Vec<u8>),
        create: Option<Create>,
        claim: Claim,
    },
    OpenDowngrade {
        sid: Sid,
        access: u32,
    },
    PutFh(Vec<u8>),
    PutRootFh,
    PutPubFh,
    Read {
        sid: Sid,
        off: u64,
        count: u32,
    },
    ReadDir {
        cookie: u64,
        maxcount: u32,
        attrs: Vec<u32>,
    },
    ReadLink,
    Remove(String),
    Rename(String, String),
    RestoreFh,
    SaveFh,
    SecInfo(String),
    SetAttr {
        attrs: InAttrs,
    },
    Verify {
        attrs: Vec<u8>,
        mask: Vec<u32>,
        not: bool,
    },
    Write {
        sid: Sid,
        off: u64,
        data: Vec<u8>,
    },
    BindConn {
        sess: [u8; 16],
        dir: u32,
    },
    ExchangeId {
        verifier: [u8; 8],
        owner: Vec<u8>,
        flags: u32,
    },
    CreateSession {
        clientid: u64,
        seq: u32,
        flags: u32,
        fore: [u32; 6],
        back: [u32; 6],
        prog: u32,
        sys: bool,
    },
    DestroySession([u8; 16]),
    FreeStateid(Sid),
    GetDeviceInfo {
        devid: [u8; 16],
        ltype: u32,
        maxcount: u32,
    },
    GetDeviceList {
        ltype: u32,
    },
    LayoutCommit {
        off: u64,
        len: u64,
        reclaim: bool,
        sid: Sid,
        last: Option<u64>,
        mtime: Option<NfsTime>,
        ltype: u32,
        body: Vec<u8>,
    },
    LayoutGet {
        ltype: u32,
        iomode: u32,
        off: u64,
        len: u64,
        minlen: u64,
        sid: Sid,
        maxcount: u32,
    },
    LayoutReturn {
        ltype: u32,
        iomode: u32,
        what: LrType,
    },
    SecInfoNoName,
    Sequence {
        sess: [u8; 16],
        seq: u32,
        slot: u32,
        highest: u32,
    },
    TestStateid(Vec<Sid>),
    DestroyClientId(u64),
    ReclaimComplete,
    Clone {
        src: Sid,
        dst: Sid,
        src_off: u64,
        dst_off: u64,
        count: u64,
    },
    NotSupp(u32),
    Illegal,
}

fn get_chan(d: &mut Decoder<'_>) -> XdrResult<[u32; 6]> {
    let v = [d.u32()?, d.u32()?, d.u32()?, d.u32()?, d.u32()?, d.u32()?];
    let _ird: Vec<u32> = d.array("rdma_ird", 1)?;
    Ok(v)
}

fn decode_op(d: &mut Decoder<'_>, opnum: u32) -> XdrResult<Op> {
    Ok(match opnum {
        3 => Op::Access(d.u32()?),
        4 => {
            let _seq = d.u32()?;
            Op::Close(get_sid(d)?)
        }
        5 => {
            let _off = d.u64()?;
            let _cnt = d.u32()?;
            Op::Commit
        }
        6 => {
            let t = d.u32()?;
            let kind = match t {
                5 => Kind::Symlink(d.string("linktext4", crate::fs::MAX_SYMLINK_BYTES)?),
                2 => Kind::Dir,
                3 | 4 => {
                    d.u32()?;
                    d.u32()?;
                    Kind::File
                }
                6 | 7 => Kind::File,
                value => {
                    return Err(XdrError::BadEnum {
                        what: "nfs_ftype4",
                        value,
                    })
                }
            };
            let is_special = matches!(t, 3 | 4 | 6 | 7);
            let name = get_name(d)?;
            let attrs = get_fattr(d)?;
            if is_special {
                // Devices, sockets and fifos are refused at execution time.
                return Ok(Op::NotSupp(6));
            }
            Op::Create { kind, name, attrs }
        }
        9 => Op::GetAttr(get_bitmap(d)?),
        10 => Op::GetFh,
        11 => Op::Link(get_name(d)?),
        15 => Op::Lookup(get_name(d)?),
        16 => Op::Lookupp,
        17 | 37 => {
            let mask = get_bitmap(d)?;
            let attrs = d.opaque("attrlist4", 64 * 1024)?.to_vec();
            Op::Verify {
                attrs,
                mask,
                not: opnum == 17,
            }
        }
        18 => {
            let _seq = d.u32()?;
            let access = d.u32()?;
            let _deny = d.u32()?;
            let clientid = d.u64()?;
            let owner = d.opaque("open_owner4", OPAQUE_LIMIT)?.to_vec();
            let create = match d.u32()? {
                0 => None,
                1 => Some(match d.u32()? {
                    0 => Create::Unchecked(get_fattr(d)?),
                    1 => Create::Guarded(get_fattr(d)?),
                    2 => {
                        let _verifier: [u8; 8] = d.array_fixed()?;
                        Create::Exclusive(InAttrs::default())
                    }
                    3 => {
                        let _verifier: [u8; 8] = d.array_fixed()?;
                        Create::Exclusive(get_fattr(d)?)
                    }
                    value => {
                        return Err(XdrError::BadEnum {
                            what: "createmode4",
                            value,
                        })
                    }
                }),
                value => {
                    return Err(XdrError::BadEnum {
                        what: "opentype4",
                        value,
                    })
                }
            };
            let claim = match d.u32()? {
                0 => Claim::Null(get_name(d)?),
                1 => {
                    d.u32()?;
                    Claim::Previous
                }
                2 => {
                    get_sid(d)?;
                    get_name(d)?;
                    Claim::Other
                }
                3 => {
                    get_name(d)?;
                    Claim::Other
                }
                4 => Claim::Fh,
                5 => {
                    get_sid(d)?;
                    Claim::Other
                }
                6 => Claim::Other,
                value => {
                    return Err(XdrError::BadEnum {
                        what: "open_claim_type4",
                        value,
                    })
                }
            };
            Op::Open {
                access,
                owner: (clientid, owner),
                create,
                claim,
            }
        }
        21 => {
            let sid = get_sid(d)?;
            let _seq = d.u32()?;
            let access = d.u32()?;
            let _deny = d.u32()?;
            Op::OpenDowngrade { sid, access }
        }
        22 => Op::PutFh(d.opaque("nfs_fh4", 128)?.to_vec()),
        23 => Op::PutPubFh,
        24 => Op::PutRootFh,
        25 => Op::Read {
            sid: get_sid(d)?,
            off: d.u64()?,
            count: d.u32()?,
        },
        26 => {
            let cookie = d.u64()?;
            let _verf: [u8; 8] = d.array_fixed()?;
            let _dircount = d.u32()?;
            let maxcount = d.u32()?;
            Op::ReadDir {
                cookie,
                maxcount,
                attrs: get_bitmap(d)?,
            }
        }
        27 => Op::ReadLink,
        28 => Op::Remove(get_name(d)?),
        29 => Op::Rename(get_name(d)?, get_name(d)?),
        31 => Op::RestoreFh,
        32 => Op::SaveFh,
        33 => Op::SecInfo(get_name(d)?),
        34 => {
            let _sid = get_sid(d)?;
            Op::SetAttr {
                attrs: get_fattr(d)?,
            }
        }
        38 => {
            let sid = get_sid(d)?;
            let off = d.u64()?;
            let _stable = d.u32()?;
            let data = d.opaque("write data", MAX_IO_BYTES as usize)?.to_vec();
            Op::Write { sid, off, data }
        }
        41 => {
            let sess = d.array_fixed()?;
            let dir = d.u32()?;
            let _rdma = d.bool()?;
            Op::BindConn { sess, dir }
        }
        42 => {
            let verifier = d.array_fixed()?;
            let owner = d.opaque("co_ownerid", OPAQUE_LIMIT)?.to_vec();
            let flags = d.u32()?;
            match d.u32()? {
                0 => {}
                1 => {
                    get_bitmap(d)?;
                    get_bitmap(d)?;
                }
                value => {
                    return Err(XdrError::BadEnum {
                        what: "state_protect_how4",
                        value,
                    })
                }
            }
            let n = d.length("impl_id", 1)?;
            for _ in 0..n {
                d.opaque("domain", OPAQUE_LIMIT)?;
                d.opaque("name", OPAQUE_LIMIT)?;
                d.i64()?;
                d.u32()?;
            }
            Op::ExchangeId {
                verifier,
                owner,
                flags,
            }
        }
        43 => {
            let clientid = d.u64()?;
            let seq = d.u32()?;
            let flags = d.u32()?;
            let fore = get_chan(d)?;
            let back = get_chan(d)?;
            let prog = d.u32()?;
            let n = d.length("callback_sec_parms4", 16)?;
            let mut sys = false;
            for i in 0..n {
                let flavor = d.u32()?;
                match flavor {
                    0 => {}
                    1 => {
                        d.u32()?;
                        d.opaque("machinename", 255)?;
                        d.u32()?;
                        d.u32()?;
                        let _g: Vec<u32> = d.array("gids", 16)?;
                        if i == 0 {
                            sys = true;
                        }
                    }
                    6 => {
                        d.u32()?;
                        d.opaque("gss handle", OPAQUE_LIMIT)?;
                        d.opaque("gss handle", OPAQUE_LIMIT)?;
                    }
                    value => {
                        return Err(XdrError::BadEnum {
                            what: "cb sec flavor",
                            value,
                        })
                    }
                }
            }
            Op::CreateSession {
                clientid,
                seq,
                flags,
                fore,
                back,
                prog,
                sys,
            }
        }
        44 => Op::DestroySession(d.array_fixed()?),
        45 => Op::FreeStateid(get_sid(d)?),
        47 => {
            let devid = d.array_fixed()?;
            let ltype = d.u32()?;
            let maxcount = d.u32()?;
            get_bitmap(d)?;
            Op::GetDeviceInfo {
                devid,
                ltype,
                maxcount,
            }
        }
        48 => {
            let ltype = d.u32()?;
            let _max = d.u32()?;
            let _cookie = d.u64()?;
            let _verf: [u8; 8] = d.array_fixed()?;
            Op::GetDeviceList { ltype }
        }
        49 => {
            let off = d.u64()?;
            let len = d.u64()?;
            let reclaim = d.bool()?;
            let sid = get_sid(d)?;
            let last = if d.bool()? { Some(d.u64()?) } else { None };
            let mtime = if d.bool()? {
                Some(NfsTime {
                    seconds: d.i64()?,
                    nseconds: d.u32()?,
                })
            } else {
                None
            };
            let ltype = d.u32()?;
            let body = d.opaque("layoutupdate", 1 << 20)?.to_vec();
            Op::LayoutCommit {
                off,
                len,
                reclaim,
                sid,
                last,
                mtime,
                ltype,
                body,
            }
        }
        50 => {
            let _signal = d.bool()?;
            Op::LayoutGet {
                ltype: d.u32()?,
                iomode: d.u32()?,
                off: d.u64()?,
                len: d.u64()?,
                minlen: d.u64()?,
                sid: get_sid(d)?,
                maxcount: d.u32()?,
            }
        }
        51 => {
            let _reclaim = d.bool()?;
            let ltype = d.u32()?;
            let iomode = d.u32()?;
            let what = match d.u32()? {
                1 => {
                    let off = d.u64()?;
                    let len = d.u64()?;
                    let sid = get_sid(d)?;
                    d.opaque("lrf_body", 1 << 20)?;
                    LrType::File { off, len, sid }
                }
                2 => LrType::Fsid,
                3 => LrType::All,
                value => {
                    return Err(XdrError::BadEnum {
                        what: "layoutreturn_type4",
                        value,
                    })
                }
            };
            Op::LayoutReturn {
                ltype,
                iomode,
                what,
            }
        }
        52 => {
            d.u32()?;
            Op::SecInfoNoName
        }
        53 => {
            let op = Op::Sequence {
                sess: d.array_fixed()?,
                seq: d.u32()?,
                slot: d.u32()?,
                highest: d.u32()?,
            };
            // Every reply is cached, whatever sa_cachethis says.
            let _cachethis = d.bool()?;
            op
        }
        55 => {
            let n = d.length("stateids", 1024)?;
            let mut v = Vec::with_capacity(n.min(d.remaining() / 16));
            for _ in 0..n {
                v.push(get_sid(d)?);
            }
            Op::TestStateid(v)
        }
        57 => Op::DestroyClientId(d.u64()?),
        58 => {
            d.bool()?;
            Op::ReclaimComplete
        }
        71 => Op::Clone {
            src: get_sid(d)?,
            dst: get_sid(d)?,
            src_off: d.u64()?,
            dst_off: d.u64()?,
            count: d.u64()?,
        },
        n if (3..=75).contains(&n) => Op::NotSupp(n),
        _ => Op::Illegal,
    })
}

/// A decoded COMPOUND.
#[derive(Debug)]
pub(crate) struct Compound {
    pub tag: Vec<u8>,
    pub minor: u32,
    pub ops: Vec<(u32, Op)>,
}

/// Decodes COMPOUND4args. Operations we do not implement decode as NotSupp and end the list
/// (their arguments cannot be skipped; execution stops at them anyway).
pub(crate) fn decode_compound(buf: &[u8]) -> XdrResult<Compound> {
    let mut d = Decoder::new(buf);
    let tag = d.opaque("tag", OPAQUE_LIMIT)?.to_vec();
    let minor = d.u32()?;
    let n = d.length("argarray", MAX_OPS)?;
    let mut ops = Vec::with_capacity(n);
    for _ in 0..n {
        let opnum = d.u32()?;
        let op = decode_op(&mut d, opnum)?;
        let stop = matches!(op, Op::NotSupp(_) | Op::Illegal);
        ops.push((opnum, op));
        if stop {
            return Ok(Compound { tag, minor, ops });
        }
    }
    d.finish()?;
    Ok(Compound { tag, minor, ops })
}

// ---------------------------------------------------------------------------------------------
// Attributes
// ---------------------------------------------------------------------------------------------

const A_SUPPORTED: u32 = 0;
const A_TYPE: u32 = 1;
const A_FH_EXPIRE: u32 = 2;
const A_CHANGE: u32 = 3;
const A_SIZE: u32 = 4;
const A_LINK_SUPPORT: u32 = 5;
const A_SYMLINK_SUPPORT: u32 = 6;
const A_NAMED_ATTR: u32 = 7;
const A_FSID: u32 = 8;
const A_UNIQUE_HANDLES: u32 = 9;
const A_LEASE_TIME: u32 = 10;
const A_RDATTR_ERROR: u32 = 11;
const A_ACLSUPPORT: u32 = 13;
const A_CANSETTIME: u32 = 15;
const A_CASE_INSENSITIVE: u32 = 16;
const A_CASE_PRESERVING: u32 = 17;
const A_CHOWN_RESTRICTED: u32 = 18;
const A_FILEHANDLE: u32 = 19;
const A_FILEID: u32 = 20;
const A_FILES_AVAIL: u32 = 21;
const A_FILES_FREE: u32 = 22;
const A_FILES_TOTAL: u32 = 23;
const A_HOMOGENEOUS: u32 = 26;
const A_MAXFILESIZE: u32 = 27;
const A_MAXLINK: u32 = 28;
const A_MAXNAME: u32 = 29;
const A_MAXREAD: u32 = 30;
const A_MAXWRITE: u32 = 31;
const A_MODE: u32 = 33;
const A_NO_TRUNC: u32 = 34;
const A_NUMLINKS: u32 = 35;
const A_OWNER: u32 = 36;
const A_OWNER_GROUP: u32 = 37;
const A_RAWDEV: u32 = 41;
const A_SPACE_AVAIL: u32 = 42;
const A_SPACE_FREE: u32 = 43;
const A_SPACE_TOTAL: u32 = 44;
const A_SPACE_USED: u32 = 45;
const A_TIME_ACCESS: u32 = 47;
const A_TIME_ACCESS_SET: u32 = 48;
const A_TIME_DELTA: u32 = 51;
const A_TIME_METADATA: u32 = 52;
const A_TIME_MODIFY: u32 = 53;
const A_TIME_MODIFY_SET: u32 = 54;
const A_MOUNTED_ON_FILEID: u32 = 55;
const A_FS_LAYOUT_TYPES: u32 = 62;
const A_LAYOUT_TYPES: u32 = 64;
const A_LAYOUT_BLKSIZE: u32 = 65;
const A_LAYOUT_ALIGNMENT: u32 = 66;
const A_SUPPATTR_EXCLCREAT: u32 = 75;

const SUPPORTED: &[u32] = &[
    A_SUPPORTED,
    A_TYPE,
    A_FH_EXPIRE,
    A_CHANGE,
    A_SIZE,
    A_LINK_SUPPORT,
    A_SYMLINK_SUPPORT,
    A_NAMED_ATTR,
    A_FSID,
    A_UNIQUE_HANDLES,
    A_LEASE_TIME,
    A_RDATTR_ERROR,
    A_ACLSUPPORT,
    A_CANSETTIME,
    A_CASE_INSENSITIVE,
    A_CASE_PRESERVING,
    A_CHOWN_RESTRICTED,
    A_FILEHANDLE,
    A_FILEID,
    A_FILES_AVAIL,
    A_FILES_FREE,
    A_FILES_TOTAL,
    A_HOMOGENEOUS,
    A_MAXFILESIZE,
    A_MAXLINK,
    A_MAXNAME,
    A_MAXREAD,
    A_MAXWRITE,
    A_MODE,
    A_NO_TRUNC,
    A_NUMLINKS,
    A_OWNER,
    A_OWNER_GROUP,
    A_RAWDEV,
    A_SPACE_AVAIL,
    A_SPACE_FREE,
    A_SPACE_TOTAL,
    A_SPACE_USED,
    A_TIME_ACCESS,
    A_TIME_ACCESS_SET,
    A_TIME_DELTA,
    A_TIME_METADATA,
    A_TIME_MODIFY,
    A_TIME_MODIFY_SET,
    A_MOUNTED_ON_FILEID,
    A_FS_LAYOUT_TYPES,
    A_LAYOUT_TYPES,
    A_LAYOUT_BLKSIZE,
    A_LAYOUT_ALIGNMENT,
    A_SUPPATTR_EXCLCREAT,
];

fn supported_bitmap() -> Vec<u32> {
    let mut b = Vec::new();
    for &a in SUPPORTED {
        set_bit(&mut b, a);
    }
    b
}

fn put_time(e: &mut Encoder, t: NfsTime) {
    e.put_i64(t.seconds);
    e.put_u32(t.nseconds);
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

/// Server settings the protocol layer needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Lease time.
    pub lease: Duration,
    /// Grace period after a restart.
    pub grace: Duration,
    /// How long a recalled layout may stay before it is revoked.
    pub recall_timeout: Duration,
    /// Block size reported in layout_blksize.
    pub layout_blksize: u32,
}

/// Handle on a connection's writer and its pending callback replies.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    /// Connection id.
    pub id: u64,
    /// Records to send.
    pub tx: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    /// Callback replies awaited, by xid.
    pub pending:
        std::sync::Arc<std::sync::Mutex<HashMap<u32, tokio::sync::oneshot::Sender<Vec<u8>>>>>,
}

#[derive(Debug)]
pub(crate) struct Slot {
    seq: u32,
    reply: Option<Vec<u8>>,
}

#[derive(Debug)]
pub(crate) struct Session {
    pub clientid: u64,
    slots: Vec<Slot>,
    pub cb_prog: u32,
    pub cb_sys: bool,
    pub back: Option<ConnHandle>,
    pub cb_seq: std::sync::Arc<tokio::sync::Mutex<u32>>,
}

#[derive(Debug)]
pub(crate) struct Client {
    pub owner: Vec<u8>,
    verifier: [u8; 8],
    confirmed: bool,
    cs_seq: u32,
    cs_reply: Option<Vec<u8>>,
    pub renewed: Instant,
    reclaim_complete: bool,
    /// Known from a previous boot: may reclaim during grace.
    may_reclaim: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seg {
    pub rw: bool,
    pub off: u64,
    pub end: u64,
    /// `Fs::cut_gen` when granted (fences late LAYOUTCOMMITs after a truncation).
    pub gen: u64,
}

#[derive(Debug)]
pub(crate) enum StateEntry {
    Open {
        clientid: u64,
        owner: Vec<u8>,
        file: u64,
        access: u32,
        seqid: u32,
    },
    Layout {
        clientid: u64,
        file: u64,
        seqid: u32,
        segs: Vec<Seg>,
        recalled: Option<Instant>,
    },
}

/// A callback the caller should send after releasing the lock.
#[derive(Debug)]
pub(crate) struct Recall {
    pub clientid: u64,
    pub fh: Vec<u8>,
    pub sid: Sid,
    pub other: [u8; 12],
}

/// All server state.
#[derive(Debug)]
pub struct State {
    /// The file system.
    pub fs: Fs,
    pub(crate) settings: Settings,
    pub(crate) clients: HashMap<u64, Client>,
    pub(crate) sessions: HashMap<[u8; 16], Session>,
    pub(crate) states: HashMap<[u8; 12], StateEntry>,
    next_clientid: u64,
    next_state: u64,
    next_session: u64,
    grace_until: Option<Instant>,
    reclaim_pending: HashSet<Vec<u8>>,
    write_verf: [u8; 8],
    server_owner: Vec<u8>,
    /// Callbacks to send (drained by the server after each compound).
    pub(crate) recalls: Vec<Recall>,
    /// Count of CB_LAYOUTRECALLs sent.
    pub recalls_sent: u64,
    /// Count of layouts revoked after a recall timeout.
    pub revoked: u64,
}

/// Who is calling.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cred {
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
}

impl State {
    /// New state over `fs`; starts a grace period if earlier boots had clients.
    pub fn new(fs: Fs, settings: Settings) -> Result<Self, crate::MdsError> {
        let known = fs.known_clients()?;
        let grace_until = if known.is_empty() {
            None
        } else {
            Some(Instant::now() + settings.grace)
        };
        let epoch = fs.epoch;
        let mut server_owner = b"pnfs-mds-".to_vec();
        server_owner.extend_from_slice(&fs.vol.volumes[0].uuid);
        Ok(Self {
            fs,
            settings,
            clients: HashMap::new(),
            sessions: HashMap::new(),
            states: HashMap::new(),
            next_clientid: 1,
            next_state: 1,
            next_session: 1,
            grace_until,
            reclaim_pending: known.into_iter().collect(),
            write_verf: epoch.to_be_bytes(),
            server_owner,
            recalls: Vec::new(),
            recalls_sent: 0,
            revoked: 0,
        })
    }

    fn epoch32(&self) -> u32 {
        u32::try_from(self.fs.epoch & 0xffff_ffff).unwrap_or(0)
    }

    /// True while the grace period lasts.
    pub fn in_grace(&mut self) -> bool {
        match self.grace_until {
            Some(t) if Instant::now() < t && !self.reclaim_pending.is_empty() => true,
            Some(_) => {
                tracing::info!("grace period over");
                self.grace_until = None;
                self.reclaim_pending.clear();
                false
            }
            None => false,
        }
    }

    fn new_other(&mut self) -> [u8; 12] {
        let mut o = [0u8; 12];
        o[..4].copy_from_slice(&self.epoch32().to_be_bytes());
        o[4..].copy_from_slice(&self.next_state.to_be_bytes());
        self.next_state += 1;
        o
    }

    fn device_id(&self) -> [u8; 16] {
        self.fs.vol.volumes[0].uuid
    }

    /// Periodic work: lease expiry, recall timeouts, grace end.
    pub fn tick(&mut self) {
        let now = Instant::now();
        self.in_grace();
        let lease = self.settings.lease;
        let expired: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, c)| now.duration_since(c.renewed) > lease + lease / 2)
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            tracing::info!("client {id:#x}: lease expired");
            if let Some(c) = self.clients.get(&id) {
                let owner = c.owner.clone();
                if let Err(e) = self.fs.record_client(&owner, false) {
                    tracing::error!("forgetting client record: {e}");
                }
            }
            self.drop_client(id);
        }
        let rt = self.settings.recall_timeout;
        let late: Vec<[u8; 12]> = self
            .states
            .iter()
            .filter_map(|(k, s)| match s {
                StateEntry::Layout {
                    recalled: Some(t), ..
                } if now.duration_since(*t) > rt => Some(*k),
                _ => None,
            })
            .collect();
        for k in late {
            tracing::warn!("layout {k:?}: recall timed out, revoked");
            self.states.remove(&k);
            self.revoked += 1;
        }
    }

    fn drop_client(&mut self, id: u64) {
        self.clients.remove(&id);
        self.sessions.retain(|_, s| s.clientid != id);
        self.states.retain(|_, s| match s {
            StateEntry::Open { clientid, .. } | StateEntry::Layout { clientid, .. } => {
                *clientid != id
            }
        });
    }

    /// Recalls every layout on the file at `path`; returns how many recalls were queued.
    pub fn recall_path(&mut self, path: &str) -> Result<usize, NfsStat> {
        let id = self.fs.resolve(path)?;
        Ok(self.recall_file(id, None, 0, u64::MAX, true))
    }

    /// Queues recalls for layouts on `file` overlapping [off, end) not held by `except`
    /// (only RW ones unless `any_mode`). Returns how many layouts are in conflict.
    fn recall_file(
        &mut self,
        file: u64,
        except: Option<u64>,
        off: u64,
        end: u64,
        any_mode: bool,
    ) -> usize {
        let mut n = 0;
        let fh = fh_of(file);
        for (k, s) in self.states.iter_mut() {
            if let StateEntry::Layout {
                clientid,
                file: f,
                seqid,
                segs,
                recalled,
            } = s
            {
                if *f != file || Some(*clientid) == except {
                    continue;
                }
                if !segs
                    .iter()
                    .any(|g| (any_mode || g.rw) && g.off < end && g.end > off)
                {
                    continue;
                }
                n += 1;
                if recalled.is_none() {
                    *recalled = Some(Instant::now());
                    *seqid += 1;
                    self.recalls.push(Recall {
                        clientid: *clientid,
                        fh: fh.clone(),
                        sid: Sid {
                            seqid: *seqid,
                            other: *k,
                        },
                        other: *k,
                    });
                }
            }
        }
        n
    }

    /// A callback got NOMATCHING_LAYOUT (the client holds nothing): forget the layout.
    pub(crate) fn recall_answered(&mut self, other: &[u8; 12], nomatch: bool) {
        if nomatch {
            self.states.remove(other);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// COMPOUND execution
// ---------------------------------------------------------------------------------------------

struct Ctx {
    cfh: Option<u64>,
    sfh: Option<u64>,
    clientid: Option<u64>,
    session: Option<[u8; 16]>,
    cred: Cred,
    conn: ConnHandle,
}

type R = Result<(), NfsStat>;

/// Outcome of a compound: the encoded result, and whether SEQUENCE made it cacheable.
pub(crate) struct Outcome {
    pub reply: Vec<u8>,
}

impl State {
    /// Runs a decoded COMPOUND and returns the encoded COMPOUND4res.
    pub(crate) fn compound(&mut self, c: Compound, cred: Cred, conn: &ConnHandle) -> Outcome {
        let mut enc = Encoder::new();
        let status_at = enc.len();
        enc.put_u32(0);
        enc.put_opaque(&c.tag);
        let count_at = enc.len();
        enc.put_u32(0);
        if c.minor != 1 && c.minor != 2 {
            enc.patch_u32(status_at, NfsStat::MINOR_VERS_MISMATCH.0);
            return Outcome {
                reply: enc.into_inner(),
            };
        }
        let mut ctx = Ctx {
            cfh: None,
            sfh: None,
            clientid: None,
            session: None,
            cred,
            conn: conn.clone(),
        };
        let mut status = NfsStat::OK;
        let mut count = 0u32;
        let mut slot_to_cache: Option<([u8; 16], u32)> = None;
        let nops = c.ops.len();
        if tracing::enabled!(tracing::Level::DEBUG) {
            let names: Vec<u32> = c.ops.iter().map(|(n, _)| *n).collect();
            tracing::debug!("compound {names:?}");
        }
        for (i, (opnum, op)) in c.ops.into_iter().enumerate() {
            let is_seq = matches!(op, Op::Sequence { .. });
            let sessionless = matches!(
                op,
                Op::ExchangeId { .. }
                    | Op::CreateSession { .. }
                    | Op::DestroySession(_)
                    | Op::BindConn { .. }
                    | Op::DestroyClientId(_)
            );
            let opnum_out = if matches!(op, Op::Illegal) {
                10044
            } else {
                opnum
            };
            enc.put_u32(opnum_out);
            count += 1;
            let st = if i == 0 && !is_seq && !sessionless {
                NfsStat::OP_NOT_IN_SESSION
            } else if i == 0
                && sessionless
                && nops > 1
                && !matches!(op, Op::DestroyClientId(_) | Op::DestroySession(_))
            {
                NfsStat::NOT_ONLY_OP
            } else if i > 0 && is_seq {
                NfsStat::SEQUENCE_POS
            } else {
                // SEQUENCE may answer from the replay cache.
                if let Op::Sequence {
                    sess,
                    seq,
                    slot,
                    highest,
                } = &op
                {
                    match self.sequence(&mut ctx, *sess, *seq, *slot, *highest) {
                        Ok(SeqResult::Replay(bytes)) => return Outcome { reply: bytes },
                        Ok(SeqResult::New) => {
                            slot_to_cache = Some((*sess, *slot));
                            let s = &self.sessions[sess];
                            let nslots = u32::try_from(s.slots.len()).unwrap_or(1);
                            enc.put_u32(0);
                            enc.put_opaque_fixed(sess);
                            enc.put_u32(*seq);
                            enc.put_u32(*slot);
                            enc.put_u32(nslots - 1);
                            enc.put_u32(nslots - 1);
                            let mut flags = 0u32;
                            if s.back.is_none() {
                                flags |= 0x10; // SEQ4_STATUS_CB_PATH_DOWN_SESSION
                            }
                            if self.revoked > 0 && self.has_revoked_for(ctx.clientid) {
                                flags |= 0x40; // RECALLABLE_STATE_REVOKED
                            }
                            enc.put_u32(flags);
                            continue;
                        }
                        Err(e) => {
                            tracing::debug!("SEQUENCE failed: {e}");
                            enc.put_u32(e.0);
                            status = e;
                            break;
                        }
                    }
                }
                let at = enc.len();
                enc.put_u32(0);
                match self.run_op(&mut ctx, op, &mut enc) {
                    Ok(()) => NfsStat::OK,
                    Err(e) => {
                        // Results of a failed op: status only (except the few with data on
                        // error, which run_op encodes itself and returns OK-with-status).
                        enc_truncate(&mut enc, at);
                        e
                    }
                }
            };
            if st != NfsStat::OK {
                tracing::debug!("op {opnum_out} failed: {st}");
                write_failed_status(&mut enc, st, opnum_out);
                status = st;
                break;
            }
        }
        enc.patch_u32(status_at, status.0);
        enc.patch_u32(count_at, count);
        let reply = enc.into_inner();
        if let Some((sess, slot)) = slot_to_cache {
            if let Some(s) = self.sessions.get_mut(&sess) {
                if let Some(sl) = s.slots.get_mut(usize::try_from(slot).unwrap_or(usize::MAX)) {
                    sl.reply = Some(reply.clone());
                }
            }
        }
        Outcome { reply }
    }

    fn has_revoked_for(&self, _c: Option<u64>) -> bool {
        false
    }
}

/// Cuts the encoder back to `len` bytes.
fn enc_truncate(enc: &mut Encoder, len: usize) {
    let mut v = std::mem::take(enc).into_inner();
    v.truncate(len);
    *enc = Encoder::with_buffer(v);
}

/// Writes the status of a failed op (the op number is already written) plus the few
/// error-case bodies the protocol requires.
fn write_failed_status(enc: &mut Encoder, st: NfsStat, opnum: u32) {
    enc.put_u32(st.0);
    match (opnum, st) {
        (34, _) => enc.put_u32(0), // SETATTR: empty attrsset
        (50, NfsStat::LAYOUTTRYLATER) => enc.put_bool(false),
        (47, NfsStat::TOOSMALL) => enc.put_u32(4096),
        _ => {}
    }
}

enum SeqResult {
    New,
    Replay(Vec<u8>),
}

fn cinfo(e: &mut Encoder, before: u64, after: u64) {
    e.put_bool(true);
    e.put_u64(before);
    e.put_u64(after);
}

impl State {
    fn sequence(
        &mut self,
        ctx: &mut Ctx,
        sess: [u8; 16],
        seq: u32,
        slot: u32,
        _highest: u32,
    ) -> Result<SeqResult, NfsStat> {
        let s = self.sessions.get_mut(&sess).ok_or(NfsStat::BADSESSION)?;
        let sl = s
            .slots
            .get_mut(usize::try_from(slot).unwrap_or(usize::MAX))
            .ok_or(NfsStat::BADSLOT)?;
        if seq == sl.seq {
            return match &sl.reply {
                Some(r) => Ok(SeqResult::Replay(r.clone())),
                None => Err(NfsStat::RETRY_UNCACHED_REP),
            };
        }
        if seq != sl.seq.wrapping_add(1) {
            return Err(NfsStat::SEQ_MISORDERED);
        }
        sl.seq = seq;
        sl.reply = None;
        let cid = s.clientid;
        if s.back.is_none() {
            // A session without a back channel still works; the client is told.
        }
        ctx.clientid = Some(cid);
        ctx.session = Some(sess);
        if let Some(c) = self.clients.get_mut(&cid) {
            c.renewed = Instant::now();
        }
        Ok(SeqResult::New)
    }

    fn cfh(ctx: &Ctx) -> Result<u64, NfsStat> {
        ctx.cfh.ok_or(NfsStat::NOFILEHANDLE)
    }

    fn encode_attrs(&self, id: u64, req: &[u32], e: &mut Encoder) -> Result<(), NfsStat> {
        let ino = self.fs.get(id)?;
        let mut mask = Vec::new();
        let mut v = Encoder::new();
        let total = self.fs.vol.size_bytes;
        let free = self.fs.free_bytes();
        for bit in 0..(u32::try_from(req.len()).unwrap_or(0) * 32) {
            if !has(req, bit) || !SUPPORTED.contains(&bit) {
                continue;
            }
            match bit {
                A_TIME_ACCESS_SET | A_TIME_MODIFY_SET => continue,
                A_SUPPORTED => put_bitmap(&mut v, &supported_bitmap()),
                A_TYPE => v.put_u32(match ino.kind {
                    Kind::File => 1,
                    Kind::Dir => 2,
                    Kind::Symlink(_) => 5,
                }),
                A_FH_EXPIRE => v.put_u32(0),
                A_CHANGE => v.put_u64(ino.change),
                A_SIZE => v.put_u64(ino.size),
                A_LINK_SUPPORT | A_SYMLINK_SUPPORT | A_UNIQUE_HANDLES | A_HOMOGENEOUS
                | A_NO_TRUNC | A_CANSETTIME | A_CASE_PRESERVING | A_CHOWN_RESTRICTED => {
                    v.put_bool(true)
                }
                A_NAMED_ATTR | A_CASE_INSENSITIVE => v.put_bool(false),
                A_FSID => {
                    v.put_u64(0x706e_6673);
                    v.put_u64(1);
                }
                A_LEASE_TIME => {
                    v.put_u32(u32::try_from(self.settings.lease.as_secs()).unwrap_or(10))
                }
                A_RDATTR_ERROR => v.put_u32(0),
                A_ACLSUPPORT => v.put_u32(0),
                A_FILEHANDLE => v.put_opaque(&fh_of(id)),
                A_FILEID | A_MOUNTED_ON_FILEID => v.put_u64(id),
                A_FILES_AVAIL | A_FILES_FREE => v.put_u64(1 << 30),
                A_FILES_TOTAL => v.put_u64(1 << 31),
                A_MAXFILESIZE => v.put_u64(crate::fs::MAX_FILE_BYTES),
                A_MAXLINK => v.put_u32(65000),
                A_MAXNAME => v.put_u32(255),
                A_MAXREAD | A_MAXWRITE => v.put_u64(u64::from(MAX_IO_BYTES)),
                A_MODE => v.put_u32(ino.mode),
                A_NUMLINKS => v.put_u32(ino.nlink),
                A_OWNER => v.put_str(&ino.uid.to_string()),
                A_OWNER_GROUP => v.put_str(&ino.gid.to_string()),
                A_RAWDEV => {
                    v.put_u32(0);
                    v.put_u32(0);
                }
                A_SPACE_AVAIL | A_SPACE_FREE => v.put_u64(free),
                A_SPACE_TOTAL => v.put_u64(total),
                A_SPACE_USED => v.put_u64(ino.used_bytes()),
                A_TIME_ACCESS => put_time(&mut v, ino.atime),
                A_TIME_DELTA => put_time(
                    &mut v,
                    NfsTime {
                        seconds: 0,
                        nseconds: 1,
                    },
                ),
                A_TIME_METADATA => put_time(&mut v, ino.ctime),
                A_TIME_MODIFY => put_time(&mut v, ino.mtime),
                A_FS_LAYOUT_TYPES | A_LAYOUT_TYPES => {
                    v.put_u32(1);
                    v.put_u32(3);
                }
                A_LAYOUT_BLKSIZE => v.put_u32(self.settings.layout_blksize),
                A_LAYOUT_ALIGNMENT => v.put_u32(u32::try_from(self.fs.block_bytes).unwrap_or(4096)),
                A_SUPPATTR_EXCLCREAT => {
                    let mut b = Vec::new();
                    for a in [
                        A_SIZE,
                        A_MODE,
                        A_OWNER,
                        A_OWNER_GROUP,
                        A_TIME_ACCESS_SET,
                        A_TIME_MODIFY_SET,
                    ] {
                        set_bit(&mut b, a);
                    }
                    put_bitmap(&mut v, &b);
                }
                _ => continue,
            }
            set_bit(&mut mask, bit);
        }
        put_bitmap(e, &mask);
        e.put_opaque(v.as_slice());
        Ok(())
    }

    fn check_sid_for_io(&self, sid: &Sid) -> R {
        if sid.other == [0; 12] || sid.other == [0xff; 12] {
            return Ok(());
        }
        if sid.other[..4] != self.epoch32().to_be_bytes() {
            return Err(NfsStat::STALE_STATEID);
        }
        if self.states.contains_key(&sid.other) {
            Ok(())
        } else {
            Err(NfsStat::BAD_STATEID)
        }
    }

    #[allow(clippy::too_many_lines)]
    fn run_op(&mut self, ctx: &mut Ctx, op: Op, e: &mut Encoder) -> R {
        match op {
            Op::PutRootFh | Op::PutPubFh => {
                ctx.cfh = Some(ROOT_ID);
            }
            Op::PutFh(fh) => {
                let id = id_of(&fh)?;
                self.fs.get(id)?;
                ctx.cfh = Some(id);
            }
            Op::GetFh => {
                let id = Self::cfh(ctx)?;
                e.put_opaque(&fh_of(id));
            }
            Op::SaveFh => ctx.sfh = Some(Self::cfh(ctx)?),
            Op::RestoreFh => ctx.cfh = Some(ctx.sfh.ok_or(NfsStat::RESTOREFH)?),
            Op::Lookup(name) => {
                let d = Self::cfh(ctx)?;
                ctx.cfh = Some(self.fs.lookup(d, &name)?);
            }
            Op::Lookupp => {
                let d = Self::cfh(ctx)?;
                let ino = self.fs.get(d)?;
                if !ino.is_dir() {
                    return Err(NfsStat::NOTDIR);
                }
                if d == ROOT_ID {
                    return Err(NfsStat::NOENT);
                }
                ctx.cfh = Some(ino.parent);
            }
            Op::GetAttr(req) => {
                let id = Self::cfh(ctx)?;
                self.encode_attrs(id, &req, e)?;
            }
            Op::Verify { attrs, mask, not } => {
                let id = Self::cfh(ctx)?;
                let mut mine = Encoder::new();
                self.encode_attrs(id, &mask, &mut mine)?;
                let mut want = Encoder::new();
                put_bitmap(&mut want, &mask);
                want.put_opaque(&attrs);
                let same = mine.as_slice() == want.as_slice();
                if same == not {
                    return Err(if not {
                        NfsStat::SAME
                    } else {
                        NfsStat::NOT_SAME
                    });
                }
            }
            Op::Access(req) => {
                let id = Self::cfh(ctx)?;
                self.fs.get(id)?;
                // Permissions are not enforced (trusted AUTH_SYS clients); all asked is granted.
                e.put_u32(req & 0x3f);
                e.put_u32(req & 0x3f);
            }
            Op::SecInfoNoName => {
                Self::cfh(ctx)?;
                e.put_u32(1);
                e.put_u32(1); // AUTH_SYS
                ctx.cfh = None;
            }
            Op::SecInfo(name) => {
                let d = Self::cfh(ctx)?;
                self.fs.lookup(d, &name)?;
                e.put_u32(1);
                e.put_u32(1);
                ctx.cfh = None;
            }
            Op::ReadLink => {
                let id = Self::cfh(ctx)?;
                match &self.fs.get(id)?.kind {
                    Kind::Symlink(t) => e.put_str(t),
                    _ => return Err(NfsStat::INVAL),
                }
            }
            Op::Create { kind, name, attrs } => {
                let d = Self::cfh(ctx)?;
                if attrs.unsupported {
                    return Err(NfsStat::ATTRNOTSUPP);
                }
                let (id, b, a) =
                    self.fs
                        .create(d, &name, kind, ctx.cred.uid, ctx.cred.gid, &attrs.set)?;
                cinfo(e, b, a);
                put_bitmap(e, &attrs.mask);
                ctx.cfh = Some(id);
            }
            Op::Remove(name) => {
                let d = Self::cfh(ctx)?;
                let id = self.fs.lookup(d, &name)?;
                let (b, a, freed) = self.fs.remove(d, &name)?;
                if freed.is_some() {
                    self.forget_file(id);
                }
                cinfo(e, b, a);
            }
            Op::Rename(old, new) => {
                let sd = ctx.sfh.ok_or(NfsStat::NOFILEHANDLE)?;
                let dd = Self::cfh(ctx)?;
                let victim = self.fs.lookup(dd, &new).ok();
                let (sb, sa, db, da, freed) = self.fs.rename(sd, &old, dd, &new)?;
                if let (Some(v), Some(_)) = (victim, freed) {
                    self.forget_file(v);
                }
                cinfo(e, sb, sa);
                cinfo(e, db, da);
            }
            Op::Link(name) => {
                let src = ctx.sfh.ok_or(NfsStat::NOFILEHANDLE)?;
                let d = Self::cfh(ctx)?;
                let (b, a) = self.fs.link(src, d, &name)?;
                cinfo(e, b, a);
            }
            Op::ReadDir {
                cookie,
                maxcount,
                attrs,
            } => {
                let d = Self::cfh(ctx)?;
                let entries = self.fs.readdir(d)?;
                let verf = self.fs.get(d)?.change;
                e.put_u64(verf);
                let start = if cookie < 3 {
                    0
                } else {
                    usize::try_from(cookie - 2).unwrap_or(usize::MAX)
                };
                let budget = usize::try_from(maxcount).unwrap_or(0).saturating_sub(128);
                let mut used = 0usize;
                let mut n = 0usize;
                let mut eof = true;
                for (i, (name, id)) in entries.iter().enumerate().skip(start) {
                    let mut one = Encoder::new();
                    one.put_bool(true);
                    one.put_u64(i as u64 + 3);
                    one.put_str(name);
                    self.encode_attrs(*id, &attrs, &mut one)?;
                    if used + one.len() > budget || n >= MAX_READDIR_ENTRIES {
                        eof = false;
                        break;
                    }
                    used += one.len();
                    n += 1;
                    e.put_opaque_fixed(one.as_slice());
                }
                if n == 0 && !eof {
                    return Err(NfsStat::TOOSMALL);
                }
                e.put_bool(false);
                e.put_bool(eof);
            }
            Op::SetAttr { attrs } => {
                let id = Self::cfh(ctx)?;
                if attrs.unsupported {
                    return Err(NfsStat::ATTRNOTSUPP);
                }
                if let Some(size) = attrs.set.size {
                    let cur = self.fs.get(id)?.size;
                    if size < cur {
                        // Shrinking: every layout past the new end must come back first.
                        let bs = self.fs.block_bytes;
                        let from = size / bs * bs;
                        // Other clients' layouts past the new end must come back first;
                        // Linux returns its own before truncating (LAYOUTRET_ON_SETATTR),
                        // anything left of the caller's is recalled without waiting.
                        if self.recall_file(id, ctx.clientid, from, u64::MAX, true) > 0 {
                            return Err(NfsStat::DELAY);
                        }
                        self.recall_file(id, None, from, u64::MAX, true);
                    }
                }
                self.fs.setattr(id, &attrs.set)?;
                put_bitmap(e, &attrs.mask);
            }
            Op::Open {
                access,
                owner,
                create,
                claim,
            } => self.open(ctx, access & 3, owner, create, claim, e)?,
            Op::OpenDowngrade { sid, access } => match self.states.get_mut(&sid.other) {
                Some(StateEntry::Open {
                    access: a, seqid, ..
                }) => {
                    *a = access & 3;
                    *seqid += 1;
                    put_sid(
                        e,
                        &Sid {
                            seqid: *seqid,
                            other: sid.other,
                        },
                    );
                }
                _ => return Err(NfsStat::BAD_STATEID),
            },
            Op::Close(sid) => {
                let cid = ctx.clientid.ok_or(NfsStat::OP_NOT_IN_SESSION)?;
                match self.states.remove(&sid.other) {
                    Some(StateEntry::Open { file, seqid, .. }) => {
                        // Layouts are return-on-close: the last close of the file by this client
                        // returns them.
                        let still_open = self.states.values().any(|s| matches!(s, StateEntry::Open { clientid, file: f, .. } if *clientid == cid && *f == file));
                        if !still_open {
                            self.states.retain(|_, s| !matches!(s, StateEntry::Layout { clientid, file: f, .. } if *clientid == cid && *f == file));
                        }
                        put_sid(
                            e,
                            &Sid {
                                seqid: seqid + 1,
                                other: sid.other,
                            },
                        );
                    }
                    Some(other) => {
                        self.states.insert(sid.other, other);
                        return Err(NfsStat::BAD_STATEID);
                    }
                    None => {
                        return Err(if sid.other[..4] != self.epoch32().to_be_bytes() {
                            NfsStat::STALE_STATEID
                        } else {
                            NfsStat::BAD_STATEID
                        })
                    }
                }
            }
            Op::Read { sid, off, count } => {
                let id = Self::cfh(ctx)?;
                self.check_sid_for_io(&sid)?;
                let (data, eof) = self.fs.read(id, off, count.min(MAX_IO_BYTES))?;
                e.put_bool(eof);
                e.put_opaque(&data);
            }
            Op::Write { sid, off, data } => {
                let id = Self::cfh(ctx)?;
                self.check_sid_for_io(&sid)?;
                let end = off.saturating_add(data.len() as u64);
                let bs = self.fs.block_bytes;
                let (a, b) = (off / bs * bs, end.div_ceil(bs) * bs);
                // Other clients' layouts on the range come back before the MDS writes it.
                if self.recall_file(id, ctx.clientid, a, b, true) > 0 {
                    return Err(NfsStat::DELAY);
                }
                let stale = self.fs.write_changes_map(id, off, data.len() as u64);
                self.fs.write(id, off, &data)?;
                if stale {
                    // The writer's own cached layout no longer matches the map (its page cache
                    // has the data): recall it without holding up this WRITE.
                    self.recall_file(id, None, a, b, true);
                }
                e.put_u32(u32::try_from(data.len()).unwrap_or(0));
                e.put_u32(2); // FILE_SYNC4: data and metadata are on disk
                e.put_opaque_fixed(&self.write_verf);
            }
            Op::Commit => {
                Self::cfh(ctx)?;
                e.put_opaque_fixed(&self.write_verf);
            }
            Op::ExchangeId {
                verifier,
                owner,
                flags,
            } => self.exchange_id(ctx, verifier, owner, flags, e)?,
            Op::CreateSession {
                clientid,
                seq,
                flags,
                fore,
                back,
                prog,
                sys,
            } => {
                self.create_session(ctx, clientid, seq, flags, fore, back, prog, sys, e)?;
            }
            Op::DestroySession(sess) => {
                let s = self.sessions.get(&sess).ok_or(NfsStat::BADSESSION)?;
                let _ = s;
                self.sessions.remove(&sess);
            }
            Op::BindConn { sess, dir } => {
                let s = self.sessions.get_mut(&sess).ok_or(NfsStat::BADSESSION)?;
                let back = matches!(dir, 2 | 3 | 7);
                if back {
                    s.back = Some(ctx.conn.clone());
                }
                e.put_opaque_fixed(&sess);
                e.put_u32(if back { 3 } else { 1 });
                e.put_bool(false);
            }
            Op::DestroyClientId(cid) => {
                let c = self.clients.get(&cid).ok_or(NfsStat::STALE_CLIENTID)?;
                if self.sessions.values().any(|s| s.clientid == cid) {
                    return Err(NfsStat::CLIENTID_BUSY);
                }
                let owner = c.owner.clone();
                self.fs.record_client(&owner, false)?;
                self.drop_client(cid);
            }
            Op::ReclaimComplete => {
                let cid = ctx.clientid.ok_or(NfsStat::OP_NOT_IN_SESSION)?;
                let c = self.clients.get_mut(&cid).ok_or(NfsStat::STALE_CLIENTID)?;
                if c.reclaim_complete {
                    return Err(NfsStat::COMPLETE_ALREADY);
                }
                c.reclaim_complete = true;
                let owner = c.owner.clone();
                self.reclaim_pending.remove(&owner);
                self.fs.record_client(&owner, true)?;
            }
            Op::TestStateid(sids) => {
                e.put_u32(u32::try_from(sids.len()).unwrap_or(0));
                for s in sids {
                    let st = match self.check_sid_for_io(&s) {
                        Ok(()) => NfsStat::OK,
                        Err(x) => x,
                    };
                    e.put_u32(st.0);
                }
            }
            Op::FreeStateid(sid) => match self.states.get(&sid.other) {
                Some(StateEntry::Layout { .. }) => {
                    self.states.remove(&sid.other);
                }
                Some(StateEntry::Open { .. }) => return Err(NfsStat::LOCKS_HELD),
                None => return Err(NfsStat::BAD_STATEID),
            },
            Op::GetDeviceList { ltype } => {
                if ltype != 3 {
                    return Err(NfsStat::UNKNOWN_LAYOUTTYPE);
                }
                e.put_u64(0);
                e.put_opaque_fixed(&[0u8; 8]);
                e.put_u32(1);
                e.put_opaque_fixed(&self.device_id());
                e.put_bool(true);
            }
            Op::GetDeviceInfo {
                devid,
                ltype,
                maxcount,
            } => {
                if ltype != 3 {
                    return Err(NfsStat::UNKNOWN_LAYOUTTYPE);
                }
                if devid != self.device_id() {
                    return Err(NfsStat::NOENT);
                }
                let body = self.fs.vol.encode_deviceaddr();
                let need = u32::try_from(body.len() + 16).unwrap_or(u32::MAX);
                if maxcount != 0 && maxcount < need {
                    return Err(NfsStat::TOOSMALL);
                }
                e.put_u32(3);
                e.put_opaque(&body);
                e.put_u32(0); // no notifications
            }
            Op::LayoutGet {
                ltype,
                iomode,
                off,
                len,
                minlen,
                sid,
                maxcount,
            } => {
                self.layout_get(ctx, ltype, iomode, off, len, minlen, sid, maxcount, e)?;
            }
            Op::LayoutCommit {
                off,
                len,
                reclaim,
                sid,
                last,
                mtime,
                ltype,
                body,
            } => {
                let id = Self::cfh(ctx)?;
                let _ = (off, len);
                if ltype != 3 {
                    return Err(NfsStat::UNKNOWN_LAYOUTTYPE);
                }
                if reclaim {
                    if !self.in_grace() {
                        return Err(NfsStat::NO_GRACE);
                    }
                } else {
                    if self.in_grace() {
                        return Err(NfsStat::GRACE);
                    }
                    match self.states.get(&sid.other) {
                        Some(StateEntry::Layout { file, .. }) if *file == id => {}
                        _ => {
                            return Err(if sid.other[..4] != self.epoch32().to_be_bytes() {
                                NfsStat::STALE_STATEID
                            } else {
                                NfsStat::BAD_STATEID
                            })
                        }
                    }
                }
                let exts = decode_layoutupdate(&body).map_err(|_| NfsStat::BADLAYOUT)?;
                let dev = self.device_id();
                if exts.iter().any(|x| x.0 != dev) {
                    return Err(NfsStat::BADLAYOUT);
                }
                let list: Vec<(u64, u64, u64)> = exts.iter().map(|x| (x.1, x.2, x.3)).collect();
                tracing::debug!("LAYOUTCOMMIT file {id} last {last:?} extents {list:?}");
                let grants: Vec<crate::fs::Grant> = match self.states.get(&sid.other) {
                    Some(StateEntry::Layout { segs, .. }) if !reclaim => segs
                        .iter()
                        .filter(|g| g.rw)
                        .map(|g| crate::fs::Grant {
                            off: g.off,
                            end: g.end,
                            gen: g.gen,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                match self.fs.layout_commit(id, &list, last, mtime, &grants)? {
                    Some(s) => {
                        e.put_bool(true);
                        e.put_u64(s);
                    }
                    None => e.put_bool(false),
                }
            }
            Op::LayoutReturn {
                ltype,
                iomode,
                what,
            } => {
                let cid = ctx.clientid.ok_or(NfsStat::OP_NOT_IN_SESSION)?;
                if ltype != 3 {
                    return Err(NfsStat::UNKNOWN_LAYOUTTYPE);
                }
                match what {
                    LrType::File { off, len, sid } => {
                        let id = Self::cfh(ctx)?;
                        let end = off.saturating_add(len);
                        let mut remove = false;
                        let out = match self.states.get_mut(&sid.other) {
                            Some(StateEntry::Layout {
                                file,
                                seqid,
                                segs,
                                clientid,
                                recalled,
                            }) if *file == id && *clientid == cid => {
                                let mut kept = Vec::new();
                                for g in segs.drain(..) {
                                    let match_mode = iomode == 3 || (iomode == 2) == g.rw;
                                    if !match_mode || g.end <= off || g.off >= end {
                                        kept.push(g);
                                        continue;
                                    }
                                    if g.off < off {
                                        kept.push(Seg {
                                            rw: g.rw,
                                            off: g.off,
                                            end: off,
                                            gen: g.gen,
                                        });
                                    }
                                    if g.end > end {
                                        kept.push(Seg {
                                            rw: g.rw,
                                            off: end,
                                            end: g.end,
                                            gen: g.gen,
                                        });
                                    }
                                }
                                *segs = kept;
                                *seqid += 1;
                                if segs.is_empty() {
                                    remove = true;
                                    None
                                } else {
                                    *recalled = None;
                                    Some(Sid {
                                        seqid: *seqid,
                                        other: sid.other,
                                    })
                                }
                            }
                            _ => None,
                        };
                        if remove {
                            self.states.remove(&sid.other);
                        }
                        match out {
                            Some(s) => {
                                e.put_bool(true);
                                put_sid(e, &s);
                            }
                            None => e.put_bool(false),
                        }
                    }
                    LrType::Fsid | LrType::All => {
                        self.states.retain(|_, s| !matches!(s, StateEntry::Layout { clientid, .. } if *clientid == cid));
                        e.put_bool(false);
                    }
                }
            }
            Op::Clone {
                src,
                dst,
                src_off,
                dst_off,
                count,
            } => {
                let d = Self::cfh(ctx)?;
                let s = ctx.sfh.ok_or(NfsStat::NOFILEHANDLE)?;
                self.check_sid_for_io(&src)?;
                self.check_sid_for_io(&dst)?;
                // Whole-file clones only.
                if src_off != 0 || dst_off != 0 || (count != 0 && count < self.fs.get(s)?.size) {
                    return Err(NfsStat::NOTSUPP);
                }
                if self.recall_file(d, None, 0, u64::MAX, true)
                    + self.recall_file(s, None, 0, u64::MAX, false)
                    > 0
                {
                    return Err(NfsStat::DELAY);
                }
                self.fs.clone_file(s, d)?;
            }
            Op::Sequence { .. } => return Err(NfsStat::SEQUENCE_POS),
            Op::NotSupp(n) => {
                tracing::debug!("operation {n} is not supported");
                return Err(NfsStat::NOTSUPP);
            }
            Op::Illegal => return Err(NfsStat::OP_ILLEGAL),
        }
        Ok(())
    }

    /// Drops all state of a file that no longer exists.
    fn forget_file(&mut self, id: u64) {
        self.states.retain(|_, s| match s {
            StateEntry::Open { file, .. } | StateEntry::Layout { file, .. } => *file != id,
        });
    }

    fn exchange_id(
        &mut self,
        _ctx: &mut Ctx,
        verifier: [u8; 8],
        owner: Vec<u8>,
        flags: u32,
        e: &mut Encoder,
    ) -> R {
        let _ = flags;
        let existing = self
            .clients
            .iter()
            .find(|(_, c)| c.owner == owner)
            .map(|(&id, _)| id);
        let (id, confirmed) = match existing {
            Some(id) if self.clients[&id].verifier == verifier => (id, self.clients[&id].confirmed),
            Some(old) => {
                // The client rebooted: its old state goes.
                self.drop_client(old);
                (self.new_client(owner, verifier), false)
            }
            None => (self.new_client(owner, verifier), false),
        };
        let c = &self.clients[&id];
        e.put_u64(id);
        e.put_u32(c.cs_seq);
        let mut f = 0x0002_0000; // EXCHGID4_FLAG_USE_PNFS_MDS
        if confirmed {
            f |= 0x8000_0000;
        }
        e.put_u32(f);
        e.put_u32(0); // SP4_NONE
        e.put_u64(0); // so_minor_id
        e.put_opaque(&self.server_owner);
        e.put_opaque(&self.server_owner);
        e.put_u32(0); // no impl id
        Ok(())
    }

    fn new_client(&mut self, owner: Vec<u8>, verifier: [u8; 8]) -> u64 {
        let id = (u64::from(self.epoch32()) << 32) | self.next_clientid;
        self.next_clientid += 1;
        let may_reclaim = self.reclaim_pending.contains(&owner);
        self.clients.insert(
            id,
            Client {
                owner,
                verifier,
                confirmed: false,
                cs_seq: 1,
                cs_reply: None,
                renewed: Instant::now(),
                reclaim_complete: false,
                may_reclaim,
            },
        );
        id
    }

    #[allow(clippy::too_many_arguments)]
    fn create_session(
        &mut self,
        ctx: &mut Ctx,
        clientid: u64,
        seq: u32,
        flags: u32,
        fore: [u32; 6],
        back: [u32; 6],
        prog: u32,
        sys: bool,
        e: &mut Encoder,
    ) -> R {
        let epoch32 = self.epoch32();
        let c = self
            .clients
            .get_mut(&clientid)
            .ok_or(NfsStat::STALE_CLIENTID)?;
        if seq == c.cs_seq.wrapping_sub(1) && c.confirmed {
            if let Some(r) = &c.cs_reply {
                e.put_opaque_fixed(r);
                return Ok(());
            }
        }
        if seq != c.cs_seq {
            return Err(NfsStat::SEQ_MISORDERED);
        }
        c.confirmed = true;
        c.cs_seq = c.cs_seq.wrapping_add(1);
        c.renewed = Instant::now();
        let mut sid = [0u8; 16];
        sid[..8].copy_from_slice(&clientid.to_be_bytes());
        sid[8..12].copy_from_slice(&epoch32.to_be_bytes());
        sid[12..].copy_from_slice(
            &u32::try_from(self.next_session & 0xffff_ffff)
                .unwrap_or(0)
                .to_be_bytes(),
        );
        self.next_session += 1;
        let nslots = fore[5].clamp(1, MAX_SLOTS);
        let back_ok = flags & 2 != 0;
        let mut r = Encoder::new();
        r.put_opaque_fixed(&sid);
        r.put_u32(seq);
        r.put_u32(if back_ok { 2 } else { 0 });
        // Fore channel: what the client asked for, clamped to our limits.
        r.put_u32(0);
        r.put_u32(fore[1].min(MAX_RPC_BYTES));
        r.put_u32(fore[2].min(MAX_RPC_BYTES));
        r.put_u32(fore[3].min(MAX_RPC_BYTES));
        r.put_u32(fore[4].clamp(8, MAX_OPS_U32));
        r.put_u32(nslots);
        r.put_u32(0);
        // Back channel: exactly what the client offered (we use one slot of it).
        r.put_u32(0);
        for v in &back[1..] {
            r.put_u32(*v);
        }
        r.put_u32(0);
        let bytes = r.into_inner();
        c.cs_reply = Some(bytes.clone());
        e.put_opaque_fixed(&bytes);
        let slots = (0..nslots)
            .map(|_| Slot {
                seq: 0,
                reply: None,
            })
            .collect();
        self.sessions.insert(
            sid,
            Session {
                clientid,
                slots,
                cb_prog: prog,
                cb_sys: sys,
                back: if back_ok {
                    Some(ctx.conn.clone())
                } else {
                    None
                },
                cb_seq: std::sync::Arc::new(tokio::sync::Mutex::new(0)),
            },
        );
        Ok(())
    }

    fn open(
        &mut self,
        ctx: &mut Ctx,
        access: u32,
        owner: (u64, Vec<u8>),
        create: Option<Create>,
        claim: Claim,
        e: &mut Encoder,
    ) -> R {
        let cid = ctx.clientid.ok_or(NfsStat::OP_NOT_IN_SESSION)?;
        if access == 0 {
            return Err(NfsStat::INVAL);
        }
        let mut cinfo_v = (0u64, 0u64);
        let mut attrset = Vec::new();
        let file = match claim {
            Claim::Null(name) => {
                if self.in_grace() {
                    return Err(NfsStat::GRACE);
                }
                let dir = Self::cfh(ctx)?;
                let dino = self.fs.get(dir)?;
                if !dino.is_dir() {
                    return Err(if matches!(dino.kind, Kind::Symlink(_)) {
                        NfsStat::SYMLINK
                    } else {
                        NfsStat::NOTDIR
                    });
                }
                cinfo_v = (dino.change, dino.change);
                match create {
                    None => self.fs.lookup(dir, &name)?,
                    Some(how) => {
                        let (attrs, guarded) = match how {
                            Create::Unchecked(a) => (a, false),
                            Create::Guarded(a) => (a, true),
                            Create::Exclusive(a) => (a, true),
                        };
                        if attrs.unsupported {
                            return Err(NfsStat::ATTRNOTSUPP);
                        }
                        match self.fs.lookup(dir, &name) {
                            Ok(id) => {
                                if guarded {
                                    return Err(NfsStat::EXIST);
                                }
                                if let Some(0) = attrs.set.size {
                                    if self.fs.get(id)?.size > 0 {
                                        if self.recall_file(id, None, 0, u64::MAX, true) > 0 {
                                            return Err(NfsStat::DELAY);
                                        }
                                        self.fs.setattr(
                                            id,
                                            &SetAttrs {
                                                size: Some(0),
                                                ..Default::default()
                                            },
                                        )?;
                                    }
                                    set_bit(&mut attrset, A_SIZE);
                                }
                                id
                            }
                            Err(NfsStat::NOENT) => {
                                let mut set = attrs.set.clone();
                                set.size = None;
                                let (id, b, a) = self.fs.create(
                                    dir,
                                    &name,
                                    Kind::File,
                                    ctx.cred.uid,
                                    ctx.cred.gid,
                                    &set,
                                )?;
                                cinfo_v = (b, a);
                                attrset = attrs.mask.clone();
                                id
                            }
                            Err(x) => return Err(x),
                        }
                    }
                }
            }
            Claim::Fh => {
                if self.in_grace() {
                    return Err(NfsStat::GRACE);
                }
                Self::cfh(ctx)?
            }
            Claim::Previous => {
                if !self.in_grace() {
                    return Err(NfsStat::NO_GRACE);
                }
                let c = self.clients.get(&cid).ok_or(NfsStat::STALE_CLIENTID)?;
                if !c.may_reclaim || c.reclaim_complete {
                    return Err(NfsStat::RECLAIM_BAD);
                }
                Self::cfh(ctx)?
            }
            Claim::Other => return Err(NfsStat::NOTSUPP),
        };
        match &self.fs.get(file)?.kind {
            Kind::File => {}
            Kind::Dir => return Err(NfsStat::ISDIR),
            Kind::Symlink(_) => return Err(NfsStat::SYMLINK),
        }
        // One open stateid per (client, owner, file); a second OPEN upgrades it.
        let found = self.states.iter_mut().find_map(|(k, s)| match s {
            StateEntry::Open {
                clientid,
                owner: o,
                file: f,
                access: a,
                seqid,
            } if *clientid == cid && *o == owner.1 && *f == file => {
                *a |= access;
                *seqid += 1;
                Some(Sid {
                    seqid: *seqid,
                    other: *k,
                })
            }
            _ => None,
        });
        let sid = match found {
            Some(s) => s,
            None => {
                let other = self.new_other();
                self.states.insert(
                    other,
                    StateEntry::Open {
                        clientid: cid,
                        owner: owner.1,
                        file,
                        access,
                        seqid: 1,
                    },
                );
                Sid { seqid: 1, other }
            }
        };
        ctx.cfh = Some(file);
        put_sid(e, &sid);
        cinfo(e, cinfo_v.0, cinfo_v.1);
        e.put_u32(4); // OPEN4_RESULT_LOCKTYPE_POSIX
        put_bitmap(e, &attrset);
        e.put_u32(0); // OPEN_DELEGATE_NONE: this server never hands out delegations
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn layout_get(
        &mut self,
        ctx: &mut Ctx,
        ltype: u32,
        iomode: u32,
        off: u64,
        len: u64,
        minlen: u64,
        sid: Sid,
        maxcount: u32,
        e: &mut Encoder,
    ) -> R {
        let cid = ctx.clientid.ok_or(NfsStat::OP_NOT_IN_SESSION)?;
        let id = Self::cfh(ctx)?;
        if ltype != 3 {
            return Err(NfsStat::UNKNOWN_LAYOUTTYPE);
        }
        let rw = match iomode {
            1 => false,
            2 => true,
            _ => return Err(NfsStat::BADIOMODE),
        };
        if self.in_grace() {
            return Err(NfsStat::GRACE);
        }
        if len == 0 || (len != u64::MAX && off.checked_add(len).is_none()) {
            return Err(NfsStat::INVAL);
        }
        if minlen > len {
            return Err(NfsStat::INVAL);
        }
        // The stateid: an open of this file by this client, or its layout stateid.
        let layout_other = match self.states.get(&sid.other) {
            Some(StateEntry::Open { clientid, file, .. }) if *clientid == cid && *file == id => {
                None
            }
            Some(StateEntry::Layout {
                clientid,
                file,
                seqid,
                ..
            }) if *clientid == cid && *file == id => {
                if sid.seqid > *seqid {
                    return Err(NfsStat::BAD_STATEID);
                }
                Some(sid.other)
            }
            Some(_) => return Err(NfsStat::BAD_STATEID),
            None => {
                return Err(if sid.other[..4] != self.epoch32().to_be_bytes() {
                    NfsStat::STALE_STATEID
                } else {
                    NfsStat::BAD_STATEID
                })
            }
        };
        // A layout being recalled from this client is not extended.
        if let Some(o) = layout_other {
            if matches!(
                self.states.get(&o),
                Some(StateEntry::Layout {
                    recalled: Some(_),
                    ..
                })
            ) {
                return Err(NfsStat::RECALLCONFLICT);
            }
        }
        let bs = self.fs.block_bytes;
        let size = self.fs.get(id)?.size;
        let a = off / bs * bs;
        let want_end = if len == u64::MAX { u64::MAX } else { off + len };
        let min_end = (off + minlen).div_ceil(bs) * bs;
        let mut end = if rw {
            let cap = a + MAX_RW_LAYOUT_BYTES;
            let e0 = if len == u64::MAX {
                size.div_ceil(bs) * bs
            } else {
                want_end.div_ceil(bs) * bs
            };
            e0.min(cap)
        } else {
            crate::fs::read_layout_end(a, want_end, size, bs, MAX_READ_LAYOUT_BYTES)
        };
        end = end.max(min_end).max(a + bs);
        // Conflicts with other clients: RW against anything, READ against RW.
        if self.recall_file(id, Some(cid), a, end, rw) > 0 {
            return Err(NfsStat::RECALLCONFLICT);
        }
        let pieces = self.fs.layout(id, a, end - a, rw)?;
        // Fit the body into maxcount.
        let overhead = 64u32;
        let max_exts = (maxcount.saturating_sub(overhead) / EXTENT_XDR_BYTES).max(1) as usize;
        let mut pieces: Vec<LayoutPiece> = pieces;
        if !rw {
            for p in &mut pieces {
                // READ layouts carry only READ_DATA and NONE_DATA (RFC 5663 §2.3.2).
                if p.es == 2 {
                    p.es = 3;
                    p.vol_off = 0;
                }
            }
            merge_none(&mut pieces);
        }
        if pieces.len() > max_exts {
            // Keep a prefix that does not cut a copy-on-write pair.
            let mut k = max_exts;
            while k > 0 && pieces[k].file_off < pieces[k - 1].file_off + pieces[k - 1].len {
                k -= 1;
            }
            let covered = pieces[..k]
                .iter()
                .map(|p| p.file_off + p.len)
                .max()
                .unwrap_or(a);
            if k == 0 || covered < min_end {
                return Err(NfsStat::TOOSMALL);
            }
            pieces.truncate(k);
            end = covered;
        }
        tracing::debug!(
            "LAYOUTGET file {id} rw {rw} asked {off}+{len} min {minlen} -> {a}..{end} {pieces:?}"
        );
        let dev = self.device_id();
        let mut body = Encoder::new();
        body.put_u32(u32::try_from(pieces.len()).unwrap_or(0));
        for p in &pieces {
            body.put_opaque_fixed(&dev);
            body.put_u64(p.file_off);
            body.put_u64(p.len);
            body.put_u64(p.vol_off);
            body.put_u32(p.es);
        }
        let seg = Seg {
            rw,
            off: a,
            end,
            gen: self.fs.cut_gen(),
        };
        let out_sid = match layout_other {
            Some(o) => match self.states.get_mut(&o) {
                Some(StateEntry::Layout { seqid, segs, .. }) => {
                    *seqid += 1;
                    segs.push(seg);
                    Sid {
                        seqid: *seqid,
                        other: o,
                    }
                }
                _ => return Err(NfsStat::SERVERFAULT),
            },
            None => {
                // Reuse this client's layout stateid for the file if it has one.
                let existing = self.states.iter_mut().find_map(|(k, s)| match s {
                    StateEntry::Layout {
                        clientid,
                        file,
                        seqid,
                        segs,
                        ..
                    } if *clientid == cid && *file == id => {
                        *seqid += 1;
                        segs.push(seg);
                        Some(Sid {
                            seqid: *seqid,
                            other: *k,
                        })
                    }
                    _ => None,
                });
                match existing {
                    Some(s) => s,
                    None => {
                        let other = self.new_other();
                        self.states.insert(
                            other,
                            StateEntry::Layout {
                                clientid: cid,
                                file: id,
                                seqid: 1,
                                segs: vec![seg],
                                recalled: None,
                            },
                        );
                        Sid { seqid: 1, other }
                    }
                }
            }
        };
        e.put_bool(true); // return on close
        put_sid(e, &out_sid);
        e.put_u32(1);
        e.put_u64(a);
        e.put_u64(end - a);
        e.put_u32(iomode);
        e.put_u32(3);
        e.put_opaque(body.as_slice());
        Ok(())
    }
}

fn merge_none(p: &mut Vec<LayoutPiece>) {
    let mut out: Vec<LayoutPiece> = Vec::with_capacity(p.len());
    for x in p.drain(..) {
        if let Some(l) = out.last_mut() {
            if l.es == 3 && x.es == 3 && l.file_off + l.len == x.file_off {
                l.len += x.len;
                continue;
            }
        }
        out.push(x);
    }
    *p = out;
}

type UpdExt = ([u8; 16], u64, u64, u64);

fn decode_layoutupdate(b: &[u8]) -> XdrResult<Vec<UpdExt>> {
    let mut d = Decoder::new(b);
    let n = d.length("blu_commit_list", 1 << 16)?;
    let mut v = Vec::with_capacity(n.min(d.remaining() / 44));
    for _ in 0..n {
        let dev = d.array_fixed()?;
        let fo = d.u64()?;
        let l = d.u64()?;
        let so = d.u64()?;
        let _es = d.u32()?;
        v.push((dev, fo, l, so));
    }
    d.finish()?;
    Ok(v)
}

/// Encodes a CB_COMPOUND carrying CB_SEQUENCE + CB_LAYOUTRECALL (FILE).
pub(crate) fn encode_cb_layoutrecall(sess: &[u8; 16], cb_seq: u32, r: &Recall) -> Vec<u8> {
    let mut e = Encoder::new();
    e.put_opaque(b"");
    e.put_u32(1); // minorversion
    e.put_u32(0); // callback_ident
    e.put_u32(2);
    e.put_u32(11); // OP_CB_SEQUENCE
    e.put_opaque_fixed(sess);
    e.put_u32(cb_seq);
    e.put_u32(0);
    e.put_u32(0);
    e.put_bool(false);
    e.put_u32(0);
    e.put_u32(5); // OP_CB_LAYOUTRECALL
    e.put_u32(3); // LAYOUT4_BLOCK_VOLUME
    e.put_u32(3); // LAYOUTIOMODE4_ANY
    e.put_bool(false);
    e.put_u32(1); // LAYOUTRECALL4_FILE
    e.put_opaque(&r.fh);
    e.put_u64(0);
    e.put_u64(u64::MAX);
    put_sid(&mut e, &r.sid);
    e.into_inner()
}

/// Status of the CB_LAYOUTRECALL in a CB_COMPOUND reply body (after the RPC header).
pub(crate) fn decode_cb_reply(b: &[u8]) -> XdrResult<(NfsStat, Option<NfsStat>)> {
    let mut d = Decoder::new(b);
    let status = NfsStat(d.u32()?);
    d.opaque("tag", OPAQUE_LIMIT)?;
    let n = d.length("resarray", 16)?;
    let mut recall = None;
    for _ in 0..n {
        let op = d.u32()?;
        let st = NfsStat(d.u32()?);
        if op == 11 && st.is_ok() {
            d.opaque_fixed(16)?;
            for _ in 0..4 {
                d.u32()?;
            }
        } else if op == 5 {
            recall = Some(st);
        }
        if !st.is_ok() {
            break;
        }
    }
    Ok((status, recall))
}
