//! NFSv4.2 operations (RFC 7862).

use super::*;
use crate::nfs4::attr::Bitmap4;
use crate::nfs4::macros::{xdr_status_union, xdr_struct, xdr_union};
use crate::nfs4::types::*;
use crate::xdr::{Decoder, Encoder, XdrDecode, XdrEncode, XdrError, XdrResult};

xdr_struct! {
    /// ALLOCATE4args and DEALLOCATE4args.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct AllocateArgs {
        /// stateid.
        pub stateid: Stateid,
        /// offset.
        pub offset: u64,
        /// length.
        pub length: u64,
    }
}

/// netloc4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetLoc {
    /// NL4_NAME.
    Name(String),
    /// NL4_URL.
    Url(String),
    /// NL4_NETADDR.
    NetAddr(NetAddr),
}

impl XdrEncode for NetLoc {
    fn encode(&self, enc: &mut Encoder) {
        match self {
            Self::Name(n) => {
                enc.put_u32(1);
                enc.put_str(n);
            }
            Self::Url(u) => {
                enc.put_u32(2);
                enc.put_str(u);
            }
            Self::NetAddr(a) => {
                enc.put_u32(3);
                a.encode(enc);
            }
        }
    }
}

impl XdrDecode for NetLoc {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(match dec.u32()? {
            1 => Self::Name(dec.string("netloc4.nl_name", NFS4_OPAQUE_LIMIT_BYTES)?),
            2 => Self::Url(dec.string("netloc4.nl_url", NFS4_OPAQUE_LIMIT_BYTES)?),
            3 => Self::NetAddr(dec.get()?),
            value => {
                return Err(XdrError::BadEnum {
                    what: "netloc_type4",
                    value,
                })
            }
        })
    }
}

xdr_struct! {
    /// COPY4args.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct CopyArgs {
        /// ca_src_stateid.
        pub src_stateid: Stateid,
        /// ca_dst_stateid.
        pub dst_stateid: Stateid,
        /// ca_src_offset.
        pub src_offset: u64,
        /// ca_dst_offset.
        pub dst_offset: u64,
        /// ca_count (0 = to the end of the source).
        pub count: u64,
        /// ca_consecutive.
        pub consecutive: bool,
        /// ca_synchronous.
        pub synchronous: bool,
        /// ca_source_server (empty for intra-server copy).
        pub source_server: Vec<NetLoc> => array(NFS4_MAX_NETLOCS),
    }
}

xdr_struct! {
    /// write_response4.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct WriteResponse {
        /// wr_callback_id<1> (asynchronous copies only).
        pub callback_id: Option<Stateid> => option,
        /// wr_count.
        pub count: u64,
        /// wr_committed.
        pub committed: StableHow,
        /// wr_writeverf.
        pub writeverf: Verifier,
    }
}

xdr_struct! {
    /// copy_requirements4.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct CopyRequirements {
        /// cr_consecutive.
        pub consecutive: bool,
        /// cr_synchronous.
        pub synchronous: bool,
    }
}

xdr_struct! {
    /// COPY4resok.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct CopyResOk {
        /// cr_response.
        pub response: WriteResponse,
        /// cr_requirements.
        pub requirements: CopyRequirements,
    }
}

xdr_status_union! {
    /// COPY4res.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum CopyRes {
        /// NFS4_OK.
        Ok(CopyResOk),
        /// NFS4ERR_OFFLOAD_NO_REQS with the requirements the server can meet.
        OffloadNoReqs(CopyRequirements) = OFFLOAD_NO_REQS,
        /// Any other error.
        Error(NfsStat),
    }
}

xdr_struct! {
    /// COPY_NOTIFY4args.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CopyNotifyArgs {
        /// cna_src_stateid.
        pub src_stateid: Stateid,
        /// cna_destination_server.
        pub destination_server: NetLoc,
    }
}

xdr_struct! {
    /// COPY_NOTIFY4resok.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct CopyNotifyResOk {
        /// cnr_lease_time.
        pub lease_time: NfsTime,
        /// cnr_stateid.
        pub stateid: Stateid,
        /// cnr_source_server.
        pub source_server: Vec<NetLoc> => array(NFS4_MAX_NETLOCS),
    }
}

xdr_struct! {
    /// OFFLOAD_STATUS4resok.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct OffloadStatusResOk {
        /// osr_count.
        pub count: u64,
        /// osr_complete<1>.
        pub complete: Option<NfsStat> => option,
    }
}

xdr_struct! {
    /// IO_ADVISE4args.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct IoAdviseArgs {
        /// iaa_stateid.
        pub stateid: Stateid,
        /// iaa_offset.
        pub offset: u64,
        /// iaa_count.
        pub count: u64,
        /// iaa_hints (IO_ADVISE4_* bit numbers).
        pub hints: Bitmap4,
    }
}

xdr_struct! {
    /// IO_ADVISE4resok.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct IoAdviseResOk {
        /// ior_hints.
        pub hints: Bitmap4,
    }
}

xdr_struct! {
    /// device_error4.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct DeviceError {
        /// de_deviceid.
        pub deviceid: DeviceId,
        /// de_status.
        pub status: NfsStat,
        /// de_opnum.
        pub opnum: u32,
    }
}

xdr_struct! {
    /// LAYOUTERROR4args.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct LayouterrorArgs {
        /// lea_offset.
        pub offset: u64,
        /// lea_length.
        pub length: u64,
        /// lea_stateid.
        pub stateid: Stateid,
        /// lea_errors.
        pub errors: Vec<DeviceError> => array(NFS4_MAX_LAYOUT_ERRORS),
    }
}

xdr_struct! {
    /// io_info4.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct IoInfo {
        /// ii_count.
        pub count: u64,
        /// ii_bytes.
        pub bytes: u64,
    }
}

xdr_struct! {
    /// LAYOUTSTATS4args.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct LayoutstatsArgs {
        /// lsa_offset.
        pub offset: u64,
        /// lsa_length.
        pub length: u64,
        /// lsa_stateid.
        pub stateid: Stateid,
        /// lsa_read.
        pub read: IoInfo,
        /// lsa_write.
        pub write: IoInfo,
        /// lsa_deviceid.
        pub deviceid: DeviceId,
        /// lsa_layoutupdate.
        pub layoutupdate: LayoutUpdate,
    }
}

xdr_struct! {
    /// READ_PLUS4args.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct ReadPlusArgs {
        /// rpa_stateid.
        pub stateid: Stateid,
        /// rpa_offset.
        pub offset: u64,
        /// rpa_count.
        pub count: u32,
    }
}

xdr_struct! {
    /// data4.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct Data4 {
        /// d_offset.
        pub offset: u64,
        /// d_data.
        pub data: Vec<u8> => opaque(NFS4_MAX_IO_BYTES),
    }
}

xdr_struct! {
    /// data_info4 (a hole).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct DataInfo {
        /// di_offset.
        pub offset: u64,
        /// di_length.
        pub length: u64,
    }
}

/// read_plus_content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadPlusContent {
    /// NFS4_CONTENT_DATA.
    Data(Data4),
    /// NFS4_CONTENT_HOLE.
    Hole(DataInfo),
    /// Any other content type (no body).
    Other(u32),
}

impl XdrEncode for ReadPlusContent {
    fn encode(&self, enc: &mut Encoder) {
        match self {
            Self::Data(d) => {
                enc.put_u32(0);
                d.encode(enc);
            }
            Self::Hole(h) => {
                enc.put_u32(1);
                h.encode(enc);
            }
            Self::Other(t) => enc.put_u32(*t),
        }
    }
}

impl XdrDecode for ReadPlusContent {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(match dec.u32()? {
            0 => Self::Data(dec.get()?),
            1 => Self::Hole(dec.get()?),
            t => Self::Other(t),
        })
    }
}

xdr_struct! {
    /// read_plus_res4.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct ReadPlusResOk {
        /// rpr_eof.
        pub eof: bool,
        /// rpr_contents.
        pub contents: Vec<ReadPlusContent> => array(NFS4_MAX_READ_PLUS_SEGMENTS),
    }
}

xdr_union! {
    /// data_content4 (SEEK's sa_what).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub enum DataContent: "data_content4" {
        /// NFS4_CONTENT_DATA.
        #[default]
        Data = 0,
        /// NFS4_CONTENT_HOLE.
        Hole = 1,
    }
}

xdr_struct! {
    /// SEEK4args.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct SeekArgs {
        /// sa_stateid.
        pub stateid: Stateid,
        /// sa_offset.
        pub offset: u64,
        /// sa_what.
        pub what: DataContent,
    }
}

xdr_struct! {
    /// seek_res4.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct SeekResOk {
        /// sr_eof.
        pub eof: bool,
        /// sr_offset.
        pub offset: u64,
    }
}

xdr_struct! {
    /// app_data_block4.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct AppDataBlock {
        /// adb_offset.
        pub offset: u64,
        /// adb_block_size.
        pub block_size: u64,
        /// adb_block_count.
        pub block_count: u64,
        /// adb_reloff_blocknum.
        pub reloff_blocknum: u64,
        /// adb_block_num.
        pub block_num: u32,
        /// adb_reloff_pattern.
        pub reloff_pattern: u64,
        /// adb_pattern.
        pub pattern: Vec<u8> => opaque(NFS4_MAX_IO_BYTES),
    }
}

xdr_struct! {
    /// WRITE_SAME4args.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct WriteSameArgs {
        /// wsa_stateid.
        pub stateid: Stateid,
        /// wsa_stable.
        pub stable: StableHow,
        /// wsa_adb.
        pub adb: AppDataBlock,
    }
}

xdr_struct! {
    /// CLONE4args (saved fh: source, current fh: destination).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct CloneArgs {
        /// cl_src_stateid.
        pub src_stateid: Stateid,
        /// cl_dst_stateid.
        pub dst_stateid: Stateid,
        /// cl_src_offset.
        pub src_offset: u64,
        /// cl_dst_offset.
        pub dst_offset: u64,
        /// cl_count (0 = to the end of the source).
        pub count: u64,
    }
}
