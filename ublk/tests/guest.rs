//! The ublk frontend against the Linux kernel's ublk driver, in the QEMU guest (the host
//! kernel has none), in one boot: ext4 round trip with fsck, fio randwrite + crc32c verify
//! with two jobs, discard / punch-hole / zero-range read back as zeros, a read error
//! completed with EIO while the device keeps working, and SIGTERM deleting the device.
//!
//! The device server is this test binary itself, re-run in the guest with
//! `--ignored --exact serve_ramdisk_for_guest` (the host's filesystem is the guest's root).
//! It serves a sparse RAM disk whose reads of one range fail with EIO.
//!
//! Also here: on the host (no ublk driver) starting a device fails with the clear message.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{FailReads, FlatRamDisk, RamDisk};
use pnfs_testbed::{require, GuestRunner, GuestScript};
use pnfs_ublk::{UblkDevice, UblkError, UblkParams, UBLK_CONTROL_PATH};

const MIB: u64 = 1024 * 1024;
/// The RAM disk: 256 MiB for the file system and fio, then the failing range.
const DISK_BYTES: u64 = 257 * MIB;
/// Reads of [FAULT_OFFSET, FAULT_OFFSET + FAULT_BYTES) fail with EIO.
const FAULT_OFFSET: u64 = 256 * MIB;
const FAULT_BYTES: u64 = 64 * 1024;

const SCRIPT: &str = r#"
# Deadlines (guarded / wait_exit in lib.sh; seconds, several times the TCG durations): a hang
# fails its step with the guest's state in $OUT/hang-N.txt.
IO_DEADLINE_S=60      # a few MiB direct through the device
FS_DEADLINE_S=300     # copying the tree into ext4 / diff -r of it
FIO_DEADLINE_S=600    # fio: 2 x 64 MiB of 4 KiB writes and their verify
EXIT_DEADLINE_S=60    # the server's exit after SIGTERM
step "modprobe ublk_drv"
require_module ublk_drv
test -c /dev/ublk-control

step "start the ublk server (this test binary) over a RAM disk"
# The server's output also goes to the console, so a failure's tail shows it.
UBLK_GUEST_SERVE=1 "$SERVER_BIN" serve_ramdisk_for_guest --ignored --exact --nocapture \
    > >(tee /run/ublk-server.log) 2>&1 &
PID=$!
wait_for 120 grep -q '^UBLK_READY ' /run/ublk-server.log
DEV=$(sed -n 's/^UBLK_READY //p' /run/ublk-server.log)
echo "device: $DEV"
test -b "$DEV"
NAME=$(basename "$DEV")
assert_eq "$DISK_BYTES" "$(blockdev --getsize64 "$DEV")" "device size"
Q=/sys/block/$NAME/queue
assert_eq 512 "$(cat $Q/logical_block_size)" "logical block size"
assert_eq 4096 "$(cat $Q/physical_block_size)" "physical block size"
assert_eq 1024 "$(cat $Q/max_hw_sectors_kb)" "max request size"
assert_eq "write back" "$(cat $Q/write_cache)" "volatile cache (FLUSH sent)"
assert_eq 1 "$(cat $Q/fua)" "FUA"
assert_eq 2 "$(ls /sys/block/$NAME/mq | wc -l)" "queues"
test "$(cat $Q/discard_max_hw_bytes)" -gt 0
test "$(cat $Q/write_zeroes_max_bytes)" -gt 0

step "mkfs.ext4, mount, copy a tree in"
guarded $PNFS_MKFS_DEADLINE_S mkfs.ext4 mkfs.ext4 -q -F "$DEV" 256M
mkdir -p /mnt/ublk /run/tree
guarded $PNFS_MOUNT_DEADLINE_S "mount ext4" mount "$DEV" /mnt/ublk
cp -a /usr/include/linux /run/tree/
cp -a /usr/share/doc/bash /usr/share/doc/coreutils /run/tree/ 2>/dev/null || true
head -c 8M /dev/urandom > /run/tree/random.bin
guarded $FS_DEADLINE_S "cp -a the tree into ext4" cp -a /run/tree /mnt/ublk/tree
guarded $PNFS_SYNC_DEADLINE_S sync sync
guarded $PNFS_MOUNT_DEADLINE_S "umount ext4" umount /mnt/ublk

step "fsck.ext4 -fn is clean"
guarded $PNFS_MKFS_DEADLINE_S "fsck.ext4 -fn" fsck.ext4 -fn "$DEV"

step "remount and compare the tree"
drop_caches
guarded $PNFS_MOUNT_DEADLINE_S "mount ext4 ro" mount -o ro "$DEV" /mnt/ublk
guarded $FS_DEADLINE_S "diff -r of the tree" diff -r /run/tree /mnt/ublk/tree
guarded $PNFS_MOUNT_DEADLINE_S "umount ext4" umount /mnt/ublk

step "fio randwrite, crc32c verify, iodepth 16, 2 jobs"
# bounded: a lost wakeup in the queue bridge shows up as this deadline, not a hung guest
guarded $FIO_DEADLINE_S fio fio --name=ublk-verify --filename="$DEV" --direct=1 --ioengine=libaio --rw=randwrite \
    --bs=4k --iodepth=16 --numjobs=2 --size=64M --offset_increment=64M \
    --verify=crc32c --verify_fatal=1 --do_verify=1 --group_reporting > /run/fio.out
cp /run/fio.out $OUT/fio.out
grep -q 'err= 0' /run/fio.out
if grep -qi 'verify.*bad\|crc32c.*mismatch' /run/fio.out; then fail "fio reported verify errors"; fi

step "blkdiscard, punch-hole and zero-range read back zeros"
head -c 3M /dev/urandom > /run/pattern
guarded $IO_DEADLINE_S "dd the pattern to the device" dd if=/run/pattern of="$DEV" bs=1M seek=200 oflag=direct conv=fsync status=none
guarded $IO_DEADLINE_S "dd from the device" dd if="$DEV" of=/run/got bs=1M skip=200 count=3 iflag=direct status=none
cmp -n $((3 * 1024 * 1024)) /run/pattern /run/got
guarded $IO_DEADLINE_S blkdiscard blkdiscard -o $((200 * 1024 * 1024)) -l $((1024 * 1024)) "$DEV"
guarded $IO_DEADLINE_S "fallocate --punch-hole" fallocate --punch-hole -o $((201 * 1024 * 1024)) -l $((1024 * 1024)) "$DEV"
guarded $IO_DEADLINE_S "fallocate --zero-range" fallocate --zero-range -o $((202 * 1024 * 1024)) -l $((1024 * 1024)) "$DEV"
guarded $IO_DEADLINE_S "dd from the device" dd if="$DEV" of=/run/got bs=1M skip=200 count=3 iflag=direct status=none
cmp -n $((3 * 1024 * 1024)) /dev/zero /run/got

step "a read of the failing range gets EIO and the device keeps working"
# dd's own status in a file: the EIO is a failing dd, a hang fails the script (guarded).
guarded $IO_DEADLINE_S "dd of the failing range" sh -c \
    'dd if="$1" of=/dev/null bs=4k skip="$2" count=1 iflag=direct 2>/run/dd.err; echo $? >/run/dd.status' \
    _ "$DEV" $((FAULT_OFFSET / 4096))
[ "$(cat /run/dd.status)" != 0 ] || fail "a read of the failing range succeeded"
grep -q 'Input/output error' /run/dd.err || fail "expected EIO, got: $(cat /run/dd.err)"
guarded $IO_DEADLINE_S "dd after the failing range" dd if="$DEV" of=/dev/null bs=4k skip=$(((FAULT_OFFSET + FAULT_BYTES) / 4096)) count=1 iflag=direct status=none
guarded $IO_DEADLINE_S "dd the pattern to the device" dd if=/run/pattern of="$DEV" bs=1M seek=210 count=1 oflag=direct status=none
guarded $IO_DEADLINE_S "dd from the device" dd if="$DEV" of=/run/got bs=1M skip=210 count=1 iflag=direct status=none
cmp -n $((1024 * 1024)) /run/pattern /run/got

step "SIGTERM: the device disappears and the server exits 0"
kill -TERM "$PID"
wait_exit $EXIT_DEADLINE_S "$PID" "the ublk server after SIGTERM"
rc=$EXIT_STATUS
# tee may still be writing the last lines: poll for them (bounded).
for _ in $(seq 100); do grep -q 'stopped cleanly' /run/ublk-server.log && break; sleep 0.1; done
cp /run/ublk-server.log $OUT/server.log
assert_eq 0 "$rc" "server exit status"
test ! -e "$DEV"
test ! -e "/sys/block/$NAME"
"#;

#[test]
fn ublk_device_in_guest() {
    let Some(runner) = require(GuestRunner::new()) else {
        return;
    };
    let server_bin = std::env::current_exe().expect("test binary path");
    let outcome = runner
        .run(
            &GuestScript::new(SCRIPT)
                .name("ublk")
                .env("SERVER_BIN", server_bin.to_str().expect("utf-8 path"))
                .env("DISK_BYTES", DISK_BYTES.to_string())
                .env("FAULT_OFFSET", FAULT_OFFSET.to_string())
                .env("FAULT_BYTES", FAULT_BYTES.to_string())
                .memory_mib(1536)
                .timeout(Duration::from_secs(1200)),
        )
        .expect("ublk checks in the guest");
    for s in &outcome.steps {
        println!("step {:?}: {:.1}s", s.name, s.duration.as_secs_f64());
    }
    let log = std::fs::read_to_string(outcome.out_file("server.log")).unwrap_or_default();
    println!("{log}");
    assert!(
        log.contains("ublk server stopped cleanly") && !log.contains("panicked"),
        "the server did not stop cleanly on SIGTERM:\n{log}"
    );
    let stats = log
        .lines()
        .find_map(|l| l.strip_prefix("UBLK_STATS "))
        .expect("stats line");
    let get = |key: &str| -> u64 {
        stats
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{key} missing in {stats}"))
    };
    assert!(get("flushes") > 0, "FLUSH reached the disk: {stats}");
    assert!(get("discards") > 0, "DISCARD reached the disk: {stats}");
    assert!(
        get("write_zeroes") >= 2,
        "WRITE_ZEROES reached the disk: {stats}"
    );
    assert!(get("errors") >= 1, "the injected EIO was counted: {stats}");
}

/// Not a test: the ublk server the guest test starts (does nothing without
/// UBLK_GUEST_SERVE). Serves the RAM disk until SIGTERM, then stops the device.
#[test]
#[ignore = "helper: started inside the guest by ublk_device_in_guest"]
fn serve_ramdisk_for_guest() {
    if std::env::var_os("UBLK_GUEST_SERVE").is_none() {
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_ansi(false)
        .try_init();
    let (nr_queues, queue_depth) = bench_queues_and_depth(2, 32);
    let params = UblkParams {
        nr_queues,
        queue_depth,
        max_io_bytes: 1024 * 1024,
        dev_id: None,
        name: "guest-test".into(),
        pin_queue_threads: std::env::var_os("UBLK_PIN").is_some(),
        recovery: false,
    };
    // The benchmark's flat RAM disk of UBLK_BENCH_FLAT bytes; else the test's sparse one
    // with its failing range.
    match std::env::var("UBLK_BENCH_FLAT")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(bytes) => serve_until_sigterm(Arc::new(FlatRamDisk::new(bytes)), params),
        None => serve_until_sigterm(
            Arc::new(FailReads {
                inner: RamDisk::new(DISK_BYTES),
                eio_range: FAULT_OFFSET..FAULT_OFFSET + FAULT_BYTES,
            }),
            params,
        ),
    }
}

/// Serves `disk` on a new ublk device until SIGTERM, then prints the stats and stops it.
fn serve_until_sigterm<D: pnfs_disk::Disk>(disk: Arc<D>, params: UblkParams) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        let dev = UblkDevice::start_async(disk, params, tokio::runtime::Handle::current())
            .await
            .expect("start the ublk device");
        let status = dev.status();
        println!(
            "UBLK_READY {}\nstatus: id {} queues {} depth {} state {}",
            dev.path().display(),
            status.dev_id,
            status.nr_queues,
            status.queue_depth,
            status.state
        );
        term.recv().await;
        let s = dev.status().stats;
        println!(
            "UBLK_STATS reads={} writes={} flushes={} discards={} write_zeroes={} errors={} \
             bytes_read={} bytes_written={}",
            s.reads,
            s.writes,
            s.flushes,
            s.discards,
            s.write_zeroes,
            s.errors,
            s.bytes_read,
            s.bytes_written
        );
        dev.stop_async().await.expect("stop the ublk device");
        println!("ublk server stopped cleanly");
    });
}

/// The host kernel has no ublk driver: starting fails with the message naming it.
#[test]
fn missing_control_device_gives_the_clear_error() {
    if std::path::Path::new(UBLK_CONTROL_PATH).exists() {
        println!("this kernel has /dev/ublk-control: the missing-driver error cannot be reached");
        return;
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let err = UblkDevice::start(
        Arc::new(RamDisk::new(MIB)),
        UblkParams::default(),
        rt.handle().clone(),
    )
    .expect_err("no ublk driver on this kernel");
    assert!(matches!(err, UblkError::ControlMissing), "{err:?}");
    assert_eq!(
        err.to_string(),
        "ublk: /dev/ublk-control not found: the kernel needs the ublk_drv module \
         (CONFIG_BLK_DEV_UBLK)"
    );
}

/// Queues and depth for the benchmark's servers: `UBLK_QUEUES` / `UBLK_DEPTH` override the
/// defaults given (the acceptance test sets neither).
fn bench_queues_and_depth(queues: u16, depth: u16) -> (u16, u16) {
    let get = |key: &str, default: u16| {
        std::env::var(key)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    (get("UBLK_QUEUES", queues), get("UBLK_DEPTH", depth))
}

/// Not a test: the benchmark's ceiling (bench/ublk-guest.sh). The cheapest ublk server we
/// can write on libublk, with none of this crate's frontend: libublk's synchronous queue
/// loop (`wait_and_handle_io`), every request answered inside the completion handler.
/// `UBLK_BENCH_DIRECT=null` completes reads and writes without touching data;
/// `UBLK_BENCH_DIRECT=ram` copies to and from one flat RAM buffer of `UBLK_BENCH_BYTES`
/// (the same one copy per request our RAM disk does). Serves until SIGTERM.
#[test]
#[ignore = "helper: started inside the guest by bench/ublk-guest.sh"]
fn serve_direct_for_bench() {
    use libublk::io::{BufDescList, UblkDev, UblkIOCtx, UblkQueue};
    use libublk::{ctrl::UblkCtrlBuilder, sys, BufDesc, UblkFlags, UblkIORes};
    use std::sync::RwLock;

    let Ok(mode) = std::env::var("UBLK_BENCH_DIRECT") else {
        return;
    };
    let ram = match mode.as_str() {
        "null" => false,
        "ram" => true,
        other => panic!("UBLK_BENCH_DIRECT={other}: expected null or ram"),
    };
    let size_bytes: u64 = std::env::var("UBLK_BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DISK_BYTES);
    let (queues, depth) = bench_queues_and_depth(2, 32);
    let io_buf_bytes: u32 = 1024 * 1024;
    let store_bytes = if ram {
        usize::try_from(size_bytes).expect("size fits memory")
    } else {
        0
    };
    // Zeroed pages are mapped on first touch, like the sparse RAM disk.
    let store = Arc::new(RwLock::new(vec![0u8; store_bytes]));
    let ctrl = UblkCtrlBuilder::default()
        .name(&format!("bench-{mode}"))
        .nr_queues(queues)
        .depth(depth)
        .io_buf_bytes(io_buf_bytes)
        .dev_flags(UblkFlags::UBLK_DEV_F_ADD_DEV)
        .build()
        .expect("add the ublk device");
    // libublk's run_target pins every queue thread to its queue's CPUs; unless UBLK_PIN is
    // set, the first request undoes that (by then the pinning is long done), as our
    // frontend does not pin by default.
    let unpin = std::env::var_os("UBLK_PIN").is_none();
    let queue_fn = move |qid: u16, dev: &UblkDev| {
        let mut unpin_pending = unpin;
        let mut bufs = dev.alloc_queue_io_bufs();
        let q = UblkQueue::new(qid, dev)
            .and_then(|q| q.submit_fetch_commands_unified(BufDescList::Slices(Some(&bufs))))
            .expect("queue setup");
        let handler = move |q: &UblkQueue, tag: u16, _io: &UblkIOCtx| {
            if unpin_pending {
                unpin_pending = false;
                allow_all_cpus();
            }
            let iod = q.get_iod(tag);
            let op = iod.op_flags & 0xff;
            let bytes = u64::from(iod.nr_sectors) << 9;
            let start = iod.start_sector << 9;
            let buf = &mut bufs[usize::from(tag)];
            let in_range = start
                .checked_add(bytes)
                .is_some_and(|end| end <= size_bytes)
                && bytes <= u64::from(io_buf_bytes);
            let (at, len) = (
                usize::try_from(start).unwrap_or(usize::MAX),
                usize::try_from(bytes).unwrap_or(usize::MAX),
            );
            let res = match op {
                sys::UBLK_IO_OP_READ | sys::UBLK_IO_OP_WRITE if !in_range => -libc::EINVAL,
                sys::UBLK_IO_OP_READ => {
                    if ram {
                        let data = store.read().expect("store lock");
                        buf.as_mut_slice()[..len].copy_from_slice(&data[at..at + len]);
                    }
                    i32::try_from(bytes).unwrap_or(-libc::EINVAL)
                }
                sys::UBLK_IO_OP_WRITE => {
                    if ram {
                        let mut data = store.write().expect("store lock");
                        data[at..at + len].copy_from_slice(&buf.as_slice()[..len]);
                    }
                    i32::try_from(bytes).unwrap_or(-libc::EINVAL)
                }
                sys::UBLK_IO_OP_FLUSH => 0,
                _ => -libc::EOPNOTSUPP,
            };
            q.complete_io_cmd_unified(
                tag,
                BufDesc::Slice(buf.as_slice()),
                Ok(UblkIORes::Result(res)),
            )
            .expect("complete");
        };
        q.wait_and_handle_io(handler);
    };
    let device_fn = |ctrl: &libublk::ctrl::UblkCtrl| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            // On a line of its own (libtest's "test ... " prefix has no newline).
            println!("\nUBLK_READY {}", ctrl.get_bdev_path());
            term.recv().await;
        });
        ctrl.kill_dev().expect("stop the device");
    };
    ctrl.run_target(
        |dev: &mut UblkDev| {
            dev.set_default_params(size_bytes);
            Ok(())
        },
        queue_fn,
        device_fn,
    )
    .expect("run the device");
    ctrl.del_dev().expect("delete the device");
    println!("ublk server stopped cleanly");
}

/// Lets the calling thread run on every CPU again.
fn allow_all_cpus() {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set, CPU_SET only writes inside it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: sysconf takes no pointers.
    let configured = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) };
    let cpus = usize::try_from(configured).unwrap_or(1);
    for cpu in 0..cpus.min(libc::CPU_SETSIZE as usize) {
        // SAFETY: `cpu` is below CPU_SETSIZE, the set's capacity.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: passes a live cpu_set_t and its exact size for the calling thread (0).
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    assert_eq!(
        rc,
        0,
        "sched_setaffinity: {}",
        std::io::Error::last_os_error()
    );
}
