//! Live migration of a VM between two gateways on one pNFS file (the embedded MDS on the host).
//!
//! Two `pnfsgw export --path /vm` processes stand for two hosts (separate NBD ports, their
//! default control sockets and client owners). A qemu VM (TCG) boots an initramfs only (a
//! mounted virtio-9p device blocks migration) whose /init (tests/migration/init.sh) runs a
//! seeded disk workload on its virtio-blk disk `nbd://…/vm` (cache=none): every round writes
//! self-describing blocks (offset, round, seed) into fresh space with O_DIRECT and reads them
//! back, and the previous round's too (written before a switch, read after it). The test
//! migrates it with QMP to a destination qemu started with `-incoming` whose disk is on the
//! other gateway, back and forth ([`MIGRATIONS`] times); the workload goes on in each
//! destination and ends with zero errors and zero mismatches.
//!
//! Every round writes fresh space, so the source gateway has new extents to LAYOUTCOMMIT.
//! Each destination starts paused (`-S`): once the migration has completed, qemu has flushed
//! the source disk (the source gateway counted an NBD flush) and the source gateway must hold
//! no uncommitted writes, with no recall seen — the destination has not run yet, so the commit
//! was the flush's. Only then is the destination continued. This fails if the gateway skips
//! the LAYOUTCOMMIT on flush (a recall would still commit later, so the data check alone would
//! not see it). After the source qemu has quit, its gateway has revoked no layout and failed
//! no request; at the end both
//! gateways stop cleanly and the disk, read through the other gateway, holds every round's
//! blocks exactly.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const MIB: u64 = 1 << 20;
/// The guest workload's seed (its chunk order); also written into every block.
const SEED: u64 = 20_261_207;
/// 4 KiB blocks each round writes into fresh space (1 MiB).
const BLOCKS: u64 = 256;
const BLOCK_BYTES: u64 = 4096;
/// Workload rounds (one generation each): enough that the last migration ends well before
/// (the rounds run on during each migration's pre-copy).
const ROUNDS: u64 = 40;
/// Migrations: A→B, B→A, A→B.
const MIGRATIONS: usize = 3;
/// Each migration starts once the VM has verified this many rounds in its current qemu.
const ROUNDS_PER_HOST: u32 = 2;
const GUEST_MEMORY_MIB: u32 = 256;
/// Limits on each wait (TCG is slow, the machine is shared).
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
const ROUND_TIMEOUT: Duration = Duration::from_secs(240);
const MIGRATE_TIMEOUT: Duration = Duration::from_secs(180);
const QEMU_EXIT_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);
const INIT: &str = include_str!("migration/init.sh");

/// A QMP connection (one command at a time; events are skipped).
struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    fn connect(path: &Path, vm: &mut Vm) -> Qmp {
        let deadline = Instant::now() + BOOT_TIMEOUT;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) => {
                    vm.check_running();
                    assert!(Instant::now() < deadline, "QMP {}: {e}", path.display());
                    std::thread::sleep(POLL);
                }
            }
        };
        stream.set_read_timeout(Some(MIGRATE_TIMEOUT)).unwrap();
        let mut q = Qmp {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        };
        let greeting = q.line();
        assert!(greeting.get("QMP").is_some(), "{greeting}");
        q.execute("qmp_capabilities", serde_json::json!({}));
        q
    }

    fn line(&mut self) -> serde_json::Value {
        let mut s = String::new();
        let n = self.reader.read_line(&mut s).expect("read QMP");
        assert!(n > 0, "QMP connection closed");
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("QMP line {s:?}: {e}"))
    }

    /// Runs a command; returns its `return` value, fails the test on an `error`.
    fn execute(&mut self, cmd: &str, args: serde_json::Value) -> serde_json::Value {
        let msg = serde_json::json!({"execute": cmd, "arguments": args});
        writeln!(self.writer, "{msg}").expect("write QMP");
        loop {
            let v = self.line();
            if let Some(r) = v.get("return") {
                return r.clone();
            }
            assert!(v.get("error").is_none(), "QMP {cmd}: {v}");
        }
    }
}

/// One qemu process running (or about to receive) the VM.
struct Vm {
    name: String,
    child: Child,
    serial: PathBuf,
    qmp: PathBuf,
    stderr: PathBuf,
}

impl Vm {
    /// Starts qemu with its disk on `uri`; with `incoming`, it waits paused for a migration.
    fn start(
        name: &str,
        dir: &Path,
        kernel: &Path,
        initrd: &Path,
        uri: &str,
        incoming: Option<&Path>,
    ) -> Vm {
        let serial = dir.join(format!("{name}.serial"));
        let qmp = dir.join(format!("{name}.qmp"));
        let stderr = dir.join(format!("{name}.stderr"));
        let append = format!(
            "console=ttyS0 quiet loglevel=1 panic=-1 mig.seed={SEED} mig.rounds={ROUNDS} mig.blocks={BLOCKS}"
        );
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "1"])
            .args(["-m", &GUEST_MEMORY_MIB.to_string()])
            .args(["-nodefaults", "-display", "none", "-no-reboot"])
            .arg("-kernel")
            .arg(kernel)
            .arg("-initrd")
            .arg(initrd)
            .args(["-append", &append])
            .arg("-serial")
            .arg(format!("file:{}", serial.display()))
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp.display()))
            .args([
                "-drive",
                &format!("file={uri},format=raw,if=virtio,cache=none"),
            ]);
        if let Some(sock) = incoming {
            cmd.arg("-S")
                .arg("-incoming")
                .arg(format!("unix:{}", sock.display()));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start qemu-system-x86_64");
        Vm {
            name: name.to_owned(),
            child,
            serial,
            qmp,
            stderr,
        }
    }

    fn console(&self) -> String {
        std::fs::read_to_string(&self.serial).unwrap_or_default()
    }

    fn report(&self) -> String {
        format!(
            "{} console:\n{}\n{} stderr:\n{}",
            self.name,
            self.console(),
            self.name,
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    fn check_running(&mut self) {
        if let Some(s) = self.child.try_wait().unwrap() {
            panic!("{} exited ({s}):\n{}", self.name, self.report());
        }
    }

    /// The console so far; fails the test if the workload reported a mismatch or an error.
    fn console_checked(&self) -> String {
        let text = self.console();
        assert!(
            !text.contains("MISMATCH")
                && !text.contains("MIG ERROR")
                && !text.contains("MIG FAILED"),
            "the workload failed:\n{}",
            self.report()
        );
        text
    }

    /// Waits for a console line starting with `prefix`; fails on a mismatch or error line.
    fn wait_console(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.console_checked();
            if let Some(line) = text.lines().find(|l| l.starts_with(prefix)) {
                return line.to_owned();
            }
            self.check_running();
            assert!(
                Instant::now() < deadline,
                "no {prefix:?} within {timeout:?}:\n{}",
                self.report()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Waits until this qemu's console shows `n` verified rounds.
    fn wait_rounds(&mut self, n: u32) {
        let deadline = Instant::now() + ROUND_TIMEOUT * n;
        loop {
            let text = self.console_checked();
            let done = text
                .lines()
                .filter(|l| l.starts_with("MIG round") && l.contains(" ok "))
                .count();
            if u32::try_from(done).unwrap_or(u32::MAX) >= n {
                return;
            }
            assert!(
                !self.console().contains("MIG DONE"),
                "the workload ended before the migrations:\n{}",
                self.report()
            );
            self.check_running();
            assert!(Instant::now() < deadline, "{n} rounds:\n{}", self.report());
            std::thread::sleep(POLL);
        }
    }

    fn wait_exit(&mut self) {
        let deadline = Instant::now() + QEMU_EXIT_TIMEOUT;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                assert!(
                    s.success(),
                    "{} exited with {s}:\n{}",
                    self.name,
                    self.report()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit:\n{}",
                self.name,
                self.report()
            );
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What the guest wrote in round `gen`, at `(gen - 1) * BLOCKS` blocks (init.sh's printf).
fn expected_region(gen: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(usize::try_from(BLOCKS * BLOCK_BYTES).unwrap());
    for b in (gen - 1) * BLOCKS..gen * BLOCKS {
        let h = format!("PNFSMIG off={} gen={gen} seed={SEED}", b * BLOCK_BYTES);
        for _ in 0..BLOCK_BYTES / 512 {
            out.extend_from_slice(format!("{h:<255}{h:>256}\n").as_bytes());
        }
    }
    out
}

/// Reads `len` bytes at 0 of an NBD export (libnbd's python bindings, the system python).
fn nbd_read(uri: &str, len: u64, out: &Path) {
    // In 4 MiB requests: one NBD request may not be larger than the server's maximum.
    let script = "import nbd,sys\nh=nbd.NBD()\nh.connect_uri(sys.argv[1])\nn=int(sys.argv[2])\n\
                  c=4<<20\nopen(sys.argv[3],'wb').write(b''.join(h.pread(min(c,n-o),o) for o in range(0,n,c)))\n\
                  h.shutdown()\n";
    let st = Command::new("/usr/bin/python3")
        .args(["-c", script, uri, &len.to_string(), out.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success(), "read {uri}");
}

#[test]
fn a_vm_migrates_back_and_forth_between_two_gateways() {
    let (Some(_), Some(_)) = (
        pnfs_testbed::require_tool("qemu-system-x86_64"),
        pnfs_testbed::require_tool("/usr/bin/python3"),
    ) else {
        return;
    };
    let Some(kernel) = pnfs_testbed::require(pnfs_testbed::find_guest_kernel()) else {
        return;
    };
    let initrd =
        pnfs_testbed::initramfs::ensure_initramfs_with(&kernel, INIT, &["virtio_blk"]).unwrap();
    // Two TCG guests at once: take the machine-wide guest lock like every guest test.
    let _lock =
        pnfs_testbed::util::FileLock::exclusive(&pnfs_testbed::guest::guest_lock_path(), || {
            eprintln!("waiting for the guest lock")
        })
        .unwrap();

    let dir = tmpdir("migration");
    let vol = dir.join("vol.img");
    std::fs::File::create(&vol)
        .unwrap()
        .set_len(256 * MIB)
        .unwrap();
    let mds_addr = format!("127.0.0.1:{}", pnfs_testbed::free_port().unwrap());
    let mut mds = Gw::spawn(&[
        "mds",
        "--listen",
        &mds_addr,
        "--state",
        dir.join("mds").to_str().unwrap(),
        "--volume",
        vol.to_str().unwrap(),
        "--block-size",
        "4096",
    ]);
    wait_listening(&mds_addr, &mut mds);
    let (gw_a, uri_a, ctl_a) = export_vm(&mds_addr, &vol, &["--create", "64M"]);
    let (gw_b, uri_b, ctl_b) = export_vm(&mds_addr, &vol, &[]);
    let gateways = [("A", &uri_a, &ctl_a), ("B", &uri_b, &ctl_b)];

    let mut vm = Vm::start("vm0-A", &dir, &kernel.image, &initrd, &uri_a, None);
    vm.wait_console("MIG START", BOOT_TIMEOUT);
    let mut report = String::new();
    for i in 0..MIGRATIONS {
        let (src_name, _, src_ctl) = gateways[i % 2];
        let (dst_name, dst_uri, _) = gateways[(i + 1) % 2];
        // The destination is started and both QMP sockets are open BEFORE the rounds are
        // awaited, so that `migrate` follows the observed rounds within milliseconds: an
        // idle machine runs a round in well under a second, and a destination started after
        // the wait let the workload run to its end first (seen in a clean-clone run).
        let sock = dir.join(format!("migrate-{i}.sock"));
        let mut dst = Vm::start(
            &format!("vm{}-{dst_name}", i + 1),
            &dir,
            &kernel.image,
            &initrd,
            dst_uri,
            Some(&sock),
        );
        let mut dst_qmp = Qmp::connect(&dst.qmp.clone(), &mut dst);
        let mut src_qmp = Qmp::connect(&vm.qmp.clone(), &mut vm);
        vm.wait_rounds(ROUNDS_PER_HOST);
        let commits_before = counter(src_ctl, "commits");
        let flushes_before = named_counter(src_ctl, "nbd.requests.flush");
        let uncommitted_before = counter(src_ctl, "uncommitted_pieces");
        let recalls_before = counter(src_ctl, "recalls");
        let started = Instant::now();
        src_qmp.execute(
            "migrate",
            serde_json::json!({"uri": format!("unix:{}", sock.display())}),
        );
        let info = loop {
            let info = src_qmp.execute("query-migrate", serde_json::json!({}));
            match info["status"].as_str() {
                Some("completed") => break info,
                Some("failed") | Some("cancelled") => {
                    panic!("migration {i} {info}:\n{}", vm.report())
                }
                _ => {}
            }
            assert!(
                started.elapsed() < MIGRATE_TIMEOUT,
                "migration {i}: {info}\n{}",
                vm.report()
            );
            std::thread::sleep(POLL);
        };
        let migrate_ms = started.elapsed().as_millis();

        // The destination has not run: whatever the source gateway committed since, it did
        // for qemu's flush before the switch, not for a recall.
        let commits = counter(src_ctl, "commits") - commits_before;
        let flushes = named_counter(src_ctl, "nbd.requests.flush") - flushes_before;
        let recalls = counter(src_ctl, "recalls") - recalls_before;
        let uncommitted = counter(src_ctl, "uncommitted_pieces");
        report += &format!(
            "migration {i} {src_name}->{dst_name}: {migrate_ms} ms (qemu: total {} ms, downtime {} ms), \
             source gateway on the switch: flushes +{flushes}, uncommitted pieces {uncommitted_before} -> {uncommitted}, commits +{commits} recalls +{recalls}\n",
            info["total-time"], info["downtime"]
        );
        assert!(
            flushes > 0,
            "qemu did not flush the source before the switch:\n{report}"
        );
        // What the flush must leave is nothing uncommitted (asserted below); a commit is due
        // only if there was something to commit (recalls during the earlier rounds may have
        // committed all of it, and the window may see no new write).
        assert!(
            commits > 0 || uncommitted_before == 0,
            "no LAYOUTCOMMIT for qemu's flush before the switch:\n{report}"
        );
        assert_eq!(recalls, 0, "{report}");
        assert_eq!(
            uncommitted, 0,
            "the source gateway holds uncommitted writes after qemu's flush:\n{report}"
        );

        dst_qmp.execute("cont", serde_json::json!({}));
        src_qmp.execute("quit", serde_json::json!({}));
        vm.wait_exit();
        let src_console = vm.console();
        vm = dst;

        // The destination's first verified round read what the source wrote. The source
        // gateway's layouts are recalled only where the destination's I/O conflicts with
        // them (the rest are returned when it stops): none revoked, no request failed.
        let line = vm.wait_console("MIG round", ROUND_TIMEOUT);
        let rounds_before = src_console
            .lines()
            .filter(|l| l.starts_with("MIG round"))
            .count();
        report += &format!(
            "  source ran {rounds_before} rounds; destination first: {line}; source gateway: recalls {} returns {} revoked {} errors {}\n",
            counter(src_ctl, "recalls"),
            counter(src_ctl, "layoutreturns"),
            counter(src_ctl, "layouts_revoked"),
            counter(src_ctl, "request_errors"),
        );
        assert_eq!(counter(src_ctl, "layouts_revoked"), 0, "{report}");
        assert_eq!(counter(src_ctl, "request_errors"), 0, "{report}");
    }
    let done = vm.wait_console("MIG DONE", ROUND_TIMEOUT * u32::try_from(ROUNDS).unwrap());
    vm.wait_exit();
    report += &format!("{}: {done}\n", vm.name);
    eprintln!("{report}");
    assert_eq!(
        done,
        format!("MIG DONE rounds={ROUNDS} errors=0 mismatches=0"),
        "{report}\n{}",
        vm.report()
    );

    // Every round's region, read through the gateway the VM did not end on.
    let (_, last_uri, _) = gateways[(MIGRATIONS + 1) % 2];
    let got = dir.join("disk.raw");
    nbd_read(last_uri, ROUNDS * BLOCKS * BLOCK_BYTES, &got);
    let got = std::fs::read(&got).unwrap();
    for gen in 1..=ROUNDS {
        let region = usize::try_from(BLOCKS * BLOCK_BYTES).unwrap();
        let at = usize::try_from(gen - 1).unwrap() * region;
        assert!(
            got[at..at + region] == expected_region(gen)[..],
            "round {gen}'s region differs on the disk"
        );
    }
    for (name, gw) in [("A", gw_a), ("B", gw_b)] {
        let (code, log) = gw.terminate();
        assert_eq!(code, Some(0), "gateway {name}:\n{log}");
        assert!(log.contains("stopped cleanly"), "gateway {name}:\n{log}");
    }
    let (code, log) = mds.terminate();
    assert_eq!(code, Some(0), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}
