//! The pNFS disk against Linux nfsd in the QEMU guest, shared by the block-layout
//! (`pnfs_nfsd.rs`) and SCSI-layout (`pnfs_nfsd_scsi.rs`) peers: the guest side's gateway and
//! workload, the guest-script lines both run, and the host's checks of what nfsd served.

use std::path::PathBuf;
use std::sync::Arc;

use pnfs_gateway::client::{ClientConfig, NfsClient};
use pnfs_gateway::pnfs::testing::workload::{Model, WorkloadConfig};
use pnfs_gateway::pnfs::volume::VolumeIo;
use pnfs_gateway::pnfs::{PnfsClient, PnfsConfig};
use pnfs_gateway::stats::Stats;

use super::{
    assert_kernel_copy_is_model, guest_env, nfsd_ops, OP_GETDEVICEINFO, OP_LAYOUTCOMMIT,
    OP_LAYOUTGET, OP_READ, OP_WRITE,
};

/// Size of the file the gateway serves as a disk.
pub const FILE_MIB: u64 = 8;
/// Guest deadline (`guarded`) of one run of a guest-side workload (200 ops on 8 MiB: well
/// under a minute under TCG, with recalls included).
pub const WORKLOAD_DEADLINE_S: u64 = 400;
/// Guest deadline of the kernel client's copy of the 8 MiB file (a few seconds under TCG).
pub const COPY_DEADLINE_S: u64 = 120;
/// Operations of the guest-side workload.
const WORKLOAD_OPS: u32 = 200;
/// Block size of the guest-side workload.
const WORKLOAD_BLOCK_BYTES: u64 = 4096;
/// Largest single I/O of the guest-side workload.
const WORKLOAD_MAX_IO_BYTES: u32 = 128 * 1024;

/// Guest side: the gateway's NFS client on nfsd (`PNFS_GUEST_ADDR`) as `owner`, and its pNFS
/// layer on `vol` with `cfg`.
pub async fn guest_gateway(
    owner: &str,
    vol: Arc<dyn VolumeIo>,
    cfg: PnfsConfig,
) -> PnfsClient<NfsClient> {
    let nfs = Arc::new(
        NfsClient::connect(&guest_env("PNFS_GUEST_ADDR"), ClientConfig::new(owner))
            .await
            .expect("connect to nfsd"),
    );
    PnfsClient::new(nfs, vec![vol], cfg, Arc::new(Stats::default()))
}

/// Guest side: the seeded workload's settings; every byte is defined (no trims), so the
/// kernel client's copy must equal the model.
pub fn guest_workload_config(seed: u64) -> WorkloadConfig {
    let mut cfg = WorkloadConfig::new(seed, WORKLOAD_BLOCK_BYTES);
    cfg.ops = WORKLOAD_OPS;
    cfg.trims = false;
    cfg.max_io_bytes = WORKLOAD_MAX_IO_BYTES;
    cfg
}

/// Guest side: saves the model as `$PNFS_GUEST_OUT/model{tag}.bin` and `report` as
/// `$PNFS_GUEST_OUT/{report_file}`, and prints the report.
pub fn guest_save(tag: &str, model: &Model, report_file: &str, report: &str) {
    let out = PathBuf::from(guest_env("PNFS_GUEST_OUT"));
    std::fs::write(out.join(format!("model{tag}.bin")), &model.data).expect("write model");
    std::fs::write(out.join(report_file), report).expect("write report");
    println!("{report}");
}

/// Guest-script lines: run this test binary's ignored `test` in the guest under
/// [`WORKLOAD_DEADLINE_S`], against nfsd on 127.0.0.1 and the file `disk.img`, with `env`
/// (more `NAME=value` words) and `rust_log`.
pub fn guest_workload_lines(what: &str, test: &str, env: &str, rust_log: &str) -> String {
    let exe = std::env::current_exe().expect("test exe");
    format!(
        r#"guarded {WORKLOAD_DEADLINE_S} "{what}" env PNFS_GUEST_ADDR=127.0.0.1:2049 \
  PNFS_GUEST_PATH=disk.img PNFS_GUEST_OUT="$OUT" {env} \
  RUST_LOG={rust_log} "{exe}" --ignored --exact {test} --nocapture
"#,
        exe = exe.display()
    )
}

/// Guest-script lines: a fresh kernel-client mount copies `disk.img` to `$OUT/{copy}`.
pub fn kernel_copy_lines(copy: &str) -> String {
    format!(
        r#"mount_kernel_client
guarded {COPY_DEADLINE_S} "the kernel client's copy of the file" cp "$PNFS_CLIENT_MNT/disk.img" "$OUT/{copy}"
umount_kernel_client
"#
    )
}

/// One `name=value` counter of a `key=value` text (a stats snapshot, an MDS stats line).
pub fn counter(text: &str, name: &str) -> u64 {
    text.split_whitespace()
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no counter {name} in:\n{text}"))
}

/// Host side, after a guest run whose workload left `model{tag}.bin`, the kernel copy
/// `kernel_copy`, nfsd's counts `nfsd_file` and the gateway's stats in `report`: the kernel
/// client read what the model says, nfsd handed out layouts and devices, saw LAYOUTCOMMITs
/// and served no data READ or WRITE, and the gateway moved no data through the MDS.
pub fn assert_layouts_only(
    outcome: &pnfs_testbed::GuestOutcome,
    tag: &str,
    kernel_copy: &str,
    nfsd_file: &str,
    report: &str,
    what: &str,
) {
    assert_kernel_copy_is_model(outcome, &format!("model{tag}.bin"), kernel_copy, what);
    let ops = nfsd_ops(outcome, nfsd_file);
    assert!(ops[OP_LAYOUTGET] > 0, "nfsd handed out no layouts");
    assert!(ops[OP_GETDEVICEINFO] > 0, "nfsd saw no GETDEVICEINFO");
    assert!(ops[OP_LAYOUTCOMMIT] > 0, "nfsd saw no LAYOUTCOMMIT");
    assert_eq!(ops[OP_READ], 0, "data went through nfsd's READ");
    assert_eq!(ops[OP_WRITE], 0, "data went through nfsd's WRITE");
    assert_eq!(counter(report, "mds_read_bytes"), 0, "{report}");
    assert_eq!(counter(report, "mds_write_bytes"), 0, "{report}");
    assert_eq!(counter(report, "request_errors"), 0, "{report}");
}
