//! The frontend-facing I/O path over real `O_DIRECT` volume files: `PnfsDisk::read_into` /
//! `write_from` (the in-crate MDS test double hands out the layouts) fill the caller's aligned
//! buffer in place and get the data right on every path (aligned, unaligned, across pieces);
//! a frontend thread holding a `Plug` submits the volume ring's I/O itself.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pnfs_gateway::disk::{validate_request, AlignedBuf, Disk, RequestKind};
use pnfs_gateway::pnfs::testing::fake_mds::{
    FakeMds, FakeMdsConfig, FakeTopology, FAKE_SIG_RESERVE_BYTES,
};
use pnfs_gateway::pnfs::testing::{make_volume_file, scratch_dir};
use pnfs_gateway::pnfs::volume::{FileVolume, VolumeIo};
use pnfs_gateway::pnfs::{PnfsClient, PnfsConfig};
use pnfs_gateway::stats::Stats;

const FILE_BYTES: u64 = 8 << 20;
const LEAF_BYTES: u64 = 16 << 20;
/// A ublk tag's buffer: larger than most requests.
const TAG_BUFFER_BYTES: usize = 1 << 20;

/// A byte that depends on its position, so misplaced data shows.
fn pattern(offset: u64, len: usize, salt: u8) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((offset + i) % 251) as u8 ^ salt)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_into_fills_the_callers_buffer_and_write_from_sends_it() {
    let dir = scratch_dir("zero-copy");
    let leaves: Vec<_> = (0..2)
        .map(|i| {
            make_volume_file(
                &dir,
                &format!("leaf{i}"),
                LEAF_BYTES + FAKE_SIG_RESERVE_BYTES,
            )
            .expect("volume file")
        })
        .collect();
    let fake = FakeMds::new(FakeMdsConfig {
        leaves: leaves.clone(),
        // Striped: one request crosses pieces on two volumes.
        topology: FakeTopology::Stripe {
            unit_bytes: 64 << 10,
        },
        block_bytes: 4096,
        lease: Duration::from_secs(30),
        layouts: true,
    })
    .await
    .expect("fake MDS");
    fake.create_file("/f", FILE_BYTES);
    let volumes: Vec<Arc<dyn VolumeIo>> = leaves
        .iter()
        .map(|p| {
            let v = FileVolume::open(p, false, true).expect("open volume");
            assert!(v.is_direct(), "the test needs O_DIRECT volumes");
            Arc::new(v) as Arc<dyn VolumeIo>
        })
        .collect();
    let client = PnfsClient::new(
        Arc::clone(&fake),
        volumes,
        PnfsConfig::default(),
        Arc::new(Stats::default()),
    );
    let disk = client.open_disk("/f", false).await.expect("open disk");
    let info = disk.info();

    // write_from: the caller's aligned buffer (longer than the range) goes to the volumes.
    let (offset, len) = (96u64 << 10, 256usize << 10);
    let mut wbuf = AlignedBuf::new(TAG_BUFFER_BYTES).expect("buffer");
    wbuf.as_mut_slice()[..len].copy_from_slice(&pattern(offset, len, 0x5a));
    let range = validate_request(&info, RequestKind::Write, offset, len as u64).expect("range");
    disk.write_from(range, wbuf, false)
        .await
        .expect("write_from");

    // read_into: the same buffer comes back, filled, with the range's length.
    let range = validate_request(&info, RequestKind::Read, offset, len as u64).expect("range");
    let rbuf = AlignedBuf::new(TAG_BUFFER_BYTES).expect("buffer");
    let given = rbuf.as_slice().as_ptr();
    let got = disk.read_into(range, rbuf).await.expect("read_into");
    assert_eq!(
        got.as_slice().as_ptr(),
        given,
        "read in place, no other buffer"
    );
    assert_eq!(got.len(), len);
    assert!(
        got.as_slice() == pattern(offset, len, 0x5a),
        "read_into data"
    );
    // The copying path agrees.
    let plain = disk
        .read(offset, u32::try_from(len).expect("len"))
        .await
        .expect("read");
    assert_eq!(plain, Bytes::from(pattern(offset, len, 0x5a)));

    // After a flush the pieces are written (READ_WRITE): an aligned write_from now goes to
    // the volumes straight from the caller's buffer (no copy into one of the gateway's own).
    disk.flush().await.expect("flush");
    let mut wbuf = AlignedBuf::new(TAG_BUFFER_BYTES).expect("buffer");
    wbuf.as_mut_slice()[..len].copy_from_slice(&pattern(offset, len, 0x77));
    let range = validate_request(&info, RequestKind::Write, offset, len as u64).expect("range");
    disk.write_from(range, wbuf, false)
        .await
        .expect("write_from in place");
    let range = validate_request(&info, RequestKind::Read, offset, len as u64).expect("range");
    let got = disk
        .read_into(range, AlignedBuf::new(TAG_BUFFER_BYTES).expect("buffer"))
        .await
        .expect("read_into");
    assert!(
        got.as_slice() == pattern(offset, len, 0x77),
        "data after an in-place write"
    );

    // Unaligned (a bounce through an aligned buffer inside the volume): still right.
    let (uo, ul) = (offset + 512, 9000usize);
    let range = validate_request(&info, RequestKind::Read, uo, ul as u64).expect("range");
    let got = disk
        .read_into(range, AlignedBuf::new(TAG_BUFFER_BYTES).expect("buffer"))
        .await
        .expect("unaligned read_into");
    assert!(
        got.as_slice() == pattern(uo, ul, 0x77),
        "unaligned read_into data"
    );

    // An unaligned write_from (read-modify-write in the volume), read back.
    let mut wbuf = AlignedBuf::new(TAG_BUFFER_BYTES).expect("buffer");
    wbuf.as_mut_slice()[..ul].copy_from_slice(&pattern(uo, ul, 0xc3));
    let range = validate_request(&info, RequestKind::Write, uo, ul as u64).expect("range");
    disk.write_from(range, wbuf, false)
        .await
        .expect("unaligned write_from");
    let back = disk
        .read(offset, u32::try_from(len).expect("len"))
        .await
        .expect("read");
    let mut want = pattern(offset, len, 0x77);
    want[512..512 + ul].copy_from_slice(&pattern(uo, ul, 0xc3));
    assert!(back == want, "data after the unaligned write_from");

    disk.close().await.expect("close");
    let snap = client.stats().snapshot();
    assert!(
        snap.direct_write_bytes > 0 && snap.direct_read_bytes > 0,
        "{snap}"
    );
    assert_eq!(snap.request_errors, 0, "{snap}");
    assert_eq!(snap.mds_read_bytes + snap.mds_write_bytes, 0, "{snap}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A volume read started under a plug reaches the kernel when the plug ends, submitted on
/// the plugging thread (here the runtime's own thread is not running, so nothing else could
/// have submitted it).
#[test]
fn plugged_ring_io_is_submitted_on_the_plugging_thread_when_the_plug_ends() {
    use std::task::{Context, Waker};

    const UNIT: usize = 4096;
    let dir = scratch_dir("plug");
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("vol");
    let data = pattern(0, 4 * UNIT, 0x11);
    std::fs::write(&path, &data).expect("volume file");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _in_runtime = rt.enter();
    let v = FileVolume::open(&path, false, true).expect("open volume");
    assert!(v.is_direct(), "the test needs an O_DIRECT volume");
    // The first read sets the ring up.
    let first = rt.block_on(v.read_into(0, AlignedBuf::new(UNIT).expect("buf"), 0, UNIT));
    assert_eq!(first.expect("read").as_slice(), &data[..UNIT]);
    let before = v.ring_submit_calls();
    assert!(before >= 1, "the read did not go through the ring");

    let mut read = v.read_into(UNIT as u64, AlignedBuf::new(UNIT).expect("buf"), 0, UNIT);
    {
        let _plug = pnfs_gateway::disk::plug::Plug::start();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(
            read.as_mut().poll(&mut cx).is_pending(),
            "pushed, not complete"
        );
        assert_eq!(
            v.ring_submit_calls(),
            before,
            "nothing submitted while plugged"
        );
    }
    assert_eq!(
        v.ring_submit_calls(),
        before + 1,
        "the plug's end submitted the read, on this thread"
    );
    let got = rt.block_on(read).expect("plugged read");
    assert_eq!(got.as_slice(), &data[UNIT..2 * UNIT]);
    let _ = std::fs::remove_dir_all(&dir);
}
