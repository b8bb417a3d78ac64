//! One connection's transmission phase: request validation (once, at the boundary), execution
//! against the disk, and the reply bytes.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use pnfs_disk::{validate_request, DiskInfo, DiskRange, ExtentStatus, RequestKind, StatusExtent};
use tracing::{debug, warn};

use crate::codec::consts::*;
use crate::codec::{encode_chunk, encode_simple_reply, BlockDescriptor, Chunk, ChunkPayload};
use crate::codec::{encode_extended_chunk, BlockDescriptorExt, Command, HeaderStyle, Request};
use crate::error::nbd_error_from_disk;
use crate::export::{BlockSizes, Export};

/// What was agreed in the handshake for one connection.
#[derive(Debug)]
pub struct Session {
    /// The export.
    pub export: Arc<Export>,
    /// The disk info at the time of `NBD_OPT_GO` (read-only applied); requests are validated
    /// against it.
    pub info: DiskInfo,
    /// Advertised block size constraints.
    pub sizes: BlockSizes,
    /// Advertised transmission flags.
    pub transmission_flags: u16,
    /// Structured replies negotiated (also true with extended headers).
    pub structured: bool,
    /// The request and reply headers: extended after `NBD_OPT_EXTENDED_HEADERS`.
    pub header_style: HeaderStyle,
    /// The `base:allocation` context id, if selected for this export.
    pub base_allocation_id: Option<u32>,
    /// Most descriptors in one block status reply.
    pub max_block_status_descriptors: usize,
}

/// An error answered to one request: NBD error value and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub error: u32,
    pub message: String,
}

fn refuse(error: u32, message: impl Into<String>) -> Refusal {
    Refusal {
        error,
        message: message.into(),
    }
}

/// Flags each command accepts (FUA is accepted on every command, as the protocol asks).
fn allowed_flags(cmd: Command, session: &Session, fast_zero: bool) -> u16 {
    let mut allowed = CMD_FLAG_FUA;
    match cmd {
        Command::Write if session.header_style == HeaderStyle::Extended => {
            allowed |= CMD_FLAG_PAYLOAD_LEN;
        }
        Command::Read if session.structured => allowed |= CMD_FLAG_DF,
        Command::WriteZeroes => {
            allowed |= CMD_FLAG_NO_HOLE;
            if fast_zero {
                allowed |= CMD_FLAG_FAST_ZERO;
            }
        }
        Command::BlockStatus => allowed |= CMD_FLAG_REQ_ONE,
        _ => {}
    }
    allowed
}

/// The checks every request goes through before the disk sees it: command, flags, block
/// status negotiation, alignment to the minimum block, the maximum payload, and then the
/// Disk API's own [`validate_request`] (range, read-only, size), whose checked range (None for
/// the commands without one) is what the disk is called with.
pub(crate) fn check_request(
    req: &Request,
    session: &Session,
) -> Result<Option<DiskRange>, Refusal> {
    let kind = match req.command {
        Command::Read => RequestKind::Read,
        Command::Write => RequestKind::Write,
        Command::Trim => RequestKind::Trim,
        Command::WriteZeroes => RequestKind::WriteZeroes,
        Command::Cache | Command::BlockStatus => RequestKind::Status,
        Command::Flush => {
            check_flags(req, session)?;
            return Ok(None);
        }
        Command::Disc => return Ok(None),
        Command::Unknown(c) => return Err(refuse(NBD_EINVAL, format!("unknown command {c}"))),
    };
    check_flags(req, session)?;
    if req.command == Command::BlockStatus {
        if session.base_allocation_id.is_none() {
            return Err(refuse(
                NBD_EINVAL,
                "block status needs base:allocation selected with NBD_OPT_SET_META_CONTEXT",
            ));
        }
        if req.length_bytes == 0 {
            return Err(refuse(NBD_EINVAL, "block status of length 0"));
        }
    }
    let min = u64::from(session.sizes.minimum_bytes);
    if req.offset_bytes % min != 0 || req.length_bytes % min != 0 {
        return Err(refuse(
            NBD_EINVAL,
            format!(
                "offset {} / length {} not aligned to the minimum block size {min}",
                req.offset_bytes, req.length_bytes
            ),
        ));
    }
    // With extended headers CACHE has a 64-bit effect length like TRIM and WRITE_ZEROES; a
    // read or write is always bounded by the maximum payload.
    let bounded = match req.command {
        Command::Read | Command::Write => true,
        Command::Cache => session.header_style == HeaderStyle::Compact,
        _ => false,
    };
    if bounded && req.length_bytes > u64::from(session.sizes.maximum_bytes) {
        return Err(refuse(
            NBD_EINVAL,
            format!(
                "length {} exceeds the maximum block size {}",
                req.length_bytes, session.sizes.maximum_bytes
            ),
        ));
    }
    validate_request(&session.info, kind, req.offset_bytes, req.length_bytes)
        .map(Some)
        .map_err(|e| refuse(nbd_error_from_disk(&e), e.to_string()))
}

fn check_flags(req: &Request, session: &Session) -> Result<(), Refusal> {
    let allowed = allowed_flags(req.command, session, session.export.fast_zero());
    let bad = req.flags & !allowed;
    if bad != 0 {
        return Err(refuse(
            NBD_EINVAL,
            format!(
                "flags {bad:#06x} are not valid for {} on this connection",
                req.command.name()
            ),
        ));
    }
    Ok(())
}

/// The bytes of one complete reply (all its chunks), in order.
#[derive(Debug, Default)]
pub(crate) struct WireReply {
    pub parts: Vec<Bytes>,
}

/// Bytes reserved for a reply chunk's header and body (the data goes as its own part): the
/// larger (extended) chunk header plus room for the small bodies of the hot replies (a
/// read's offset, a hole, a few block-status descriptors); longer bodies grow the buffer.
const CHUNK_HEAD_RESERVE_BYTES: usize = EXTENDED_REPLY_HEADER_BYTES + 64;
/// Parts of one reply: its header (with any small body) and its data.
const REPLY_PARTS_MAX: usize = 2;

impl WireReply {
    fn simple(error: u32, cookie: u64, data: Option<Bytes>) -> Self {
        let mut head = BytesMut::with_capacity(SIMPLE_REPLY_HEADER_BYTES);
        encode_simple_reply(error, cookie, &mut head);
        let mut parts = Vec::with_capacity(REPLY_PARTS_MAX);
        parts.push(head.freeze());
        parts.extend(data);
        Self { parts }
    }

    /// One final chunk answering `req`, with the header the session negotiated.
    fn chunk(session: &Session, req: &Request, payload: ChunkPayload) -> Self {
        let chunk = Chunk {
            flags: REPLY_FLAG_DONE,
            cookie: req.cookie,
            payload,
        };
        // Sized up front: growing from empty cost a few reallocations per read reply.
        let mut head = BytesMut::with_capacity(CHUNK_HEAD_RESERVE_BYTES);
        let tail = match session.header_style {
            HeaderStyle::Compact => encode_chunk(&chunk, &mut head),
            HeaderStyle::Extended => encode_extended_chunk(&chunk, req.offset_bytes, &mut head),
        };
        let mut parts = Vec::with_capacity(REPLY_PARTS_MAX);
        parts.push(head.freeze());
        parts.extend(tail);
        Self { parts }
    }
}

/// The reply for a refused or failed request.
pub(crate) fn error_reply(session: &Session, req: &Request, r: &Refusal) -> WireReply {
    if session.structured {
        let payload = ChunkPayload::Error {
            error: r.error,
            message: r.message.clone(),
        };
        WireReply::chunk(session, req, payload)
    } else {
        WireReply::simple(r.error, req.cookie, None)
    }
}

/// Success without data: a simple reply, or with extended headers (which have no simple
/// replies) a final `NBD_REPLY_TYPE_NONE` chunk.
fn ok_reply(session: &Session, req: &Request) -> WireReply {
    match session.header_style {
        HeaderStyle::Compact => WireReply::simple(0, req.cookie, None),
        HeaderStyle::Extended => WireReply::chunk(session, req, ChunkPayload::None),
    }
}

/// Runs one checked request (not DISC) and returns its reply.
pub(crate) async fn execute(session: &Session, req: Request, payload: Bytes) -> WireReply {
    let stats = session.export.stats();
    stats.request(req.command.code());
    let result = match check_request(&req, session) {
        Ok(range) => run(session, &req, range, payload).await,
        Err(r) => Err(r),
    };
    match result {
        Ok(reply) => reply,
        Err(r) => {
            stats.error();
            if r.error == NBD_EIO || r.error == NBD_ENOSPC {
                warn!("{} failed: {}", req.command.name(), r.message);
            } else {
                debug!("{} refused: {}", req.command.name(), r.message);
            }
            error_reply(session, &req, &r)
        }
    }
}

fn disk_err(e: pnfs_disk::DiskError) -> Refusal {
    refuse(nbd_error_from_disk(&e), e.to_string())
}

async fn run(
    session: &Session,
    req: &Request,
    range: Option<DiskRange>,
    payload: Bytes,
) -> Result<WireReply, Refusal> {
    let disk = session.export.disk();
    // Every command but FLUSH (and DISC, never run) was checked with a range.
    let range = || range.ok_or_else(|| refuse(NBD_EINVAL, "a request without a checked range"));
    let stats = session.export.stats();
    let fua = req.has_flag(CMD_FLAG_FUA);
    let offset = req.offset_bytes;
    let length = req.length_bytes;
    match req.command {
        Command::Read => {
            // check_request bounded it by the maximum block size, a u32.
            let read_len = u32::try_from(length)
                .map_err(|_| refuse(NBD_EINVAL, format!("read of {length} bytes")))?;
            let data = if length == 0 {
                Bytes::new()
            } else {
                disk.read(range()?).await.map_err(disk_err)?
            };
            if data.len() != read_len as usize {
                return Err(refuse(
                    NBD_EIO,
                    format!("disk returned {} bytes for a read of {length}", data.len()),
                ));
            }
            stats.add_read(length);
            if !session.structured {
                return Ok(WireReply::simple(0, req.cookie, Some(data)));
            }
            let payload = if data.is_empty() {
                ChunkPayload::None
            } else {
                ChunkPayload::OffsetData {
                    offset_bytes: offset,
                    data,
                }
            };
            Ok(WireReply::chunk(session, req, payload))
        }
        Command::Write => {
            if length > 0 {
                disk.write(range()?, payload, fua).await.map_err(disk_err)?;
            }
            stats.add_written(length);
            Ok(ok_reply(session, req))
        }
        Command::Flush => {
            disk.flush().await.map_err(disk_err)?;
            Ok(ok_reply(session, req))
        }
        Command::Trim => {
            if length > 0 {
                disk.trim(range()?).await.map_err(disk_err)?;
                if fua {
                    // The Disk API's trim has no FUA of its own.
                    disk.flush().await.map_err(disk_err)?;
                }
            }
            stats.add_trimmed(length);
            Ok(ok_reply(session, req))
        }
        Command::WriteZeroes => {
            if length > 0 {
                let may_unmap = !req.has_flag(CMD_FLAG_NO_HOLE);
                disk.write_zeroes(range()?, may_unmap, fua)
                    .await
                    .map_err(disk_err)?;
            }
            stats.add_zeroed(length);
            Ok(ok_reply(session, req))
        }
        Command::Cache => {
            // The Disk API has no prefetch; asking for the range's status loads the layouts
            // and extents a following read or write needs.
            if length > 0 {
                disk.block_status(range()?).await.map_err(disk_err)?;
            }
            Ok(ok_reply(session, req))
        }
        Command::BlockStatus => {
            let id = session
                .base_allocation_id
                .ok_or_else(|| refuse(NBD_EINVAL, "no metadata context selected"))?;
            let extents = disk.block_status(range()?).await.map_err(disk_err)?;
            let descriptors = descriptors_from_extents(
                &extents,
                offset,
                length,
                session.sizes.minimum_bytes,
                req.has_flag(CMD_FLAG_REQ_ONE),
                session.max_block_status_descriptors,
            )
            .map_err(|m| refuse(NBD_EIO, m))?;
            let payload = block_status_payload(session.header_style, id, descriptors)
                .map_err(|m| refuse(NBD_EIO, m))?;
            Ok(WireReply::chunk(session, req, payload))
        }
        Command::Disc | Command::Unknown(_) => Err(refuse(NBD_EINVAL, "not executable")),
    }
}

/// The block status chunk for the header style: `NBD_REPLY_TYPE_BLOCK_STATUS_EXT` (64-bit
/// lengths, the only type allowed with extended headers) or `NBD_REPLY_TYPE_BLOCK_STATUS`,
/// whose 32-bit lengths always hold here: a compact request's length is 32 bits and the
/// descriptors never go past it.
fn block_status_payload(
    style: HeaderStyle,
    context_id: u32,
    descriptors: Vec<BlockDescriptorExt>,
) -> Result<ChunkPayload, String> {
    match style {
        HeaderStyle::Extended => Ok(ChunkPayload::BlockStatusExt {
            context_id,
            descriptors,
        }),
        HeaderStyle::Compact => {
            let descriptors = descriptors
                .into_iter()
                .map(|d| {
                    Ok(BlockDescriptor {
                        length_bytes: u32::try_from(d.length_bytes).map_err(|_| {
                            format!("block status extent of {} bytes", d.length_bytes)
                        })?,
                        status_flags: u32::try_from(d.status_flags)
                            .map_err(|_| format!("block status flags {:#x}", d.status_flags))?,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            Ok(ChunkPayload::BlockStatus {
                context_id,
                descriptors,
            })
        }
    }
}

/// `base:allocation` flags for a disk extent status.
pub fn status_flags(status: ExtentStatus) -> u32 {
    match status {
        ExtentStatus::Data => 0,
        ExtentStatus::Zero => STATE_ZERO,
        ExtentStatus::Hole => STATE_HOLE | STATE_ZERO,
    }
}

/// Turns the disk's extents for `[offset, offset + length)` into block status descriptors:
/// clipped to the request, aligned to `min_block` (a block that straddles two statuses gets
/// the flags both share, which is always safe), equal neighbours merged, at most
/// `max_descriptors` (only one with `req_one`). `offset` and `length` must be multiples of
/// `min_block` and `length` > 0. Extents that do not start at `offset` or have gaps are an
/// error (a broken disk), reported as EIO.
pub fn descriptors_from_extents(
    extents: &[StatusExtent],
    offset: u64,
    length: u64,
    min_block: u32,
    req_one: bool,
    max_descriptors: usize,
) -> Result<Vec<BlockDescriptorExt>, String> {
    let req_end = offset
        .checked_add(length)
        .ok_or("block status range overflows")?;
    let min = u64::from(min_block.max(1));
    // 1. Clip and check contiguity: runs of (end, flags) from `offset`.
    let mut runs: Vec<(u64, u32)> = Vec::new();
    let mut pos = offset;
    for e in extents {
        if e.length_bytes == 0 {
            continue;
        }
        if e.offset_bytes != pos {
            return Err(format!(
                "disk block status: extent at {} where {pos} was expected",
                e.offset_bytes
            ));
        }
        let end = e
            .offset_bytes
            .checked_add(e.length_bytes)
            .ok_or("disk block status: extent end overflows")?
            .min(req_end);
        runs.push((end, status_flags(e.status)));
        pos = end;
        if pos >= req_end {
            break;
        }
    }
    if runs.is_empty() {
        return Err("disk block status returned no extent".into());
    }
    // 2. Align run ends down to the minimum block; partial blocks AND into the next run.
    let mut out: Vec<(u64, u64, u32)> = Vec::new();
    let mut start = offset;
    let mut carry: Option<u32> = None;
    for (end, flags) in runs {
        let aligned_end = if end == req_end {
            end
        } else {
            end - (end - offset) % min
        };
        if let Some(c) = carry.take() {
            // The block at `start` is shared with earlier runs.
            if aligned_end >= start + min {
                out.push((start, start + min, c & flags));
                start += min;
            } else {
                carry = Some(c & flags);
                continue;
            }
        }
        if aligned_end > start {
            out.push((start, aligned_end, flags));
            start = aligned_end;
        }
        if aligned_end != end {
            carry = Some(carry.map_or(flags, |c| c & flags));
        }
    }
    if out.is_empty() {
        // Everything the disk described lies inside the first block.
        out.push((offset, offset + min, carry.unwrap_or(0)));
    }
    // 3. Merge equal neighbours, cap the count.
    let mut merged: Vec<BlockDescriptorExt> = Vec::new();
    let mut last_flags = None;
    for (s, e, f) in out {
        // Every run lies inside [offset, req_end): lengths and their sums fit a u64.
        let len = e - s;
        if last_flags == Some(f) {
            if let Some(d) = merged.last_mut() {
                d.length_bytes += len;
                continue;
            }
        }
        merged.push(BlockDescriptorExt {
            length_bytes: len,
            status_flags: u64::from(f),
        });
        last_flags = Some(f);
    }
    let cap = if req_one { 1 } else { max_descriptors.max(1) };
    merged.truncate(cap);
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(offset_bytes: u64, length_bytes: u64, status: ExtentStatus) -> StatusExtent {
        StatusExtent {
            offset_bytes,
            length_bytes,
            status,
        }
    }

    fn d(length_bytes: u64, status_flags: u32) -> BlockDescriptorExt {
        BlockDescriptorExt {
            length_bytes,
            status_flags: u64::from(status_flags),
        }
    }

    const H: u32 = STATE_HOLE | STATE_ZERO;

    #[test]
    fn extents_map_clip_and_merge() {
        let e = [
            ext(0, 4096, ExtentStatus::Data),
            ext(4096, 4096, ExtentStatus::Data),
            ext(8192, 8192, ExtentStatus::Zero),
            ext(16384, 1 << 20, ExtentStatus::Hole),
        ];
        let got = descriptors_from_extents(&e, 0, 32768, 512, false, 100).unwrap();
        assert_eq!(got, vec![d(8192, 0), d(8192, STATE_ZERO), d(16384, H)]);
        let got = descriptors_from_extents(&e, 0, 32768, 512, true, 100).unwrap();
        assert_eq!(got, vec![d(8192, 0)]);
        let got = descriptors_from_extents(&e, 0, 32768, 512, false, 2).unwrap();
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn unaligned_boundaries_share_flags() {
        // Data [0, 1000), hole [1000, 4096) with 512-byte blocks: block [512, 1024) is both.
        let e = [
            ext(0, 1000, ExtentStatus::Data),
            ext(1000, 3096, ExtentStatus::Hole),
        ];
        let got = descriptors_from_extents(&e, 0, 4096, 512, false, 100).unwrap();
        assert_eq!(got, vec![d(1024, 0), d(3072, H)]);
        // Zero [0,100) then hole: the first block is zero (HOLE dropped), rest hole.
        let e = [
            ext(0, 100, ExtentStatus::Zero),
            ext(100, 8092, ExtentStatus::Hole),
        ];
        let got = descriptors_from_extents(&e, 0, 8192, 4096, false, 100).unwrap();
        assert_eq!(got, vec![d(4096, STATE_ZERO), d(4096, H)]);
        // A disk that stops short inside the first block still yields one descriptor.
        let e = [ext(0, 10, ExtentStatus::Hole)];
        let got = descriptors_from_extents(&e, 0, 8192, 4096, false, 100).unwrap();
        assert_eq!(got, vec![d(4096, H)]);
        // Every descriptor is a multiple of the minimum block.
        let e = [
            ext(4096, 1, ExtentStatus::Data),
            ext(4097, 5000, ExtentStatus::Zero),
            ext(9097, 100_000, ExtentStatus::Hole),
        ];
        let got = descriptors_from_extents(&e, 4096, 65536, 4096, false, 100).unwrap();
        assert!(got.iter().all(|x| x.length_bytes % 4096 == 0));
        assert_eq!(got.iter().map(|x| x.length_bytes).sum::<u64>(), 65536);
    }

    #[test]
    fn extents_past_4_gib_give_64_bit_descriptors_and_compact_ones_still_fit() {
        const GIB: u64 = 1 << 30;
        let e = [
            ext(0, 5 * GIB, ExtentStatus::Hole),
            ext(5 * GIB, 4096, ExtentStatus::Data),
            ext(5 * GIB + 4096, 3 * GIB, ExtentStatus::Zero),
        ];
        let got = descriptors_from_extents(&e, 0, 8 * GIB, 512, false, 100).unwrap();
        assert_eq!(
            got,
            vec![d(5 * GIB, H), d(4096, 0), d(3 * GIB - 4096, STATE_ZERO)]
        );
        let ext_payload = block_status_payload(HeaderStyle::Extended, 1, got.clone()).unwrap();
        assert!(
            matches!(ext_payload, ChunkPayload::BlockStatusExt { ref descriptors, .. }
            if descriptors[0].length_bytes == 5 * GIB)
        );
        // A compact reply cannot carry them (compact requests never ask for that much).
        assert!(block_status_payload(HeaderStyle::Compact, 1, got).is_err());
        // A compact request of up to 4 GiB - 512 converts.
        let len = u64::from(u32::MAX) - 511;
        let got = descriptors_from_extents(&e, 0, len, 512, false, 100).unwrap();
        match block_status_payload(HeaderStyle::Compact, 1, got).unwrap() {
            ChunkPayload::BlockStatus { descriptors, .. } => assert_eq!(
                descriptors,
                vec![BlockDescriptor {
                    length_bytes: u32::try_from(len).unwrap(),
                    status_flags: H
                }]
            ),
            other => panic!("{other:?}"),
        }
        // The end of the range overflowing is an error, not a panic.
        assert!(descriptors_from_extents(&e, u64::MAX - 511, 1024, 512, false, 10).is_err());
    }

    #[test]
    fn broken_extents_are_errors() {
        assert!(descriptors_from_extents(&[], 0, 512, 512, false, 10).is_err());
        let e = [ext(512, 512, ExtentStatus::Data)];
        assert!(descriptors_from_extents(&e, 0, 1024, 512, false, 10).is_err());
        let e = [
            ext(0, 512, ExtentStatus::Data),
            ext(1024, 512, ExtentStatus::Data),
        ];
        assert!(descriptors_from_extents(&e, 0, 2048, 512, false, 10).is_err());
    }
}
