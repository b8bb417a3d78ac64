//! Real Linux traffic through our decoders: in the QEMU guest, the kernel NFSv4.1 client talks
//! pNFS (block layout) to the kernel nfsd, then an NFSv4.2 mount allocates, punches, seeks,
//! clones and copies, while dumpcap records port 2049. On the host, every
//! RPC record of every TCP stream is decoded with this crate: each NFSv4 COMPOUND call and reply
//! must decode, re-encode to exactly the bytes Linux sent, and every fattr4 in it must decode
//! into the typed attribute set. Callback traffic on the same connection (CB_COMPOUND) is
//! counted and left to `crate::cb`'s tests.
//!
//! Needs the guest kernel and QEMU (pnfs-testbed) and tshark on the host: a loud SKIP without
//! them, a failure when `CI` is set.

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::time::Duration;

use pnfs_proto::nfs4::attr::Fattr;
use pnfs_proto::nfs4::*;
use pnfs_proto::rpc::*;
use pnfs_proto::xdr::{from_bytes, to_bytes};
use pnfs_testbed::{require, require_tool, GuestRunner, GuestScript};

const SCRIPT: &str = r#"
# Every group of NFS operations runs under a deadline (guarded in lib.sh; a few seconds each
# under TCG): a hang fails its step with the guest's state in $OUT/hang-N.txt.
NFS_DEADLINE_S=180
step "capture port 2049 on lo"
mkdir -p /run/cap
dumpcap -q -i lo -f "tcp port 2049" -s 0 -w /run/cap/nfs.pcapng 2>/run/cap/dumpcap.err &
echo $! > /run/cap/pid
wait_for 20 test -s /run/cap/nfs.pcapng

step "nfsd pNFS export"
start_nfsd_pnfs 320

step "kernel client: write, namespace ops, truncate"
mount_kernel_client /mnt/nfs
m=/mnt/nfs
head -c 3M /dev/urandom > /run/data
nfs_work() {
cp /run/data $m/data
sync
mkdir $m/dir
echo hello > $m/dir/small
ln -s small $m/dir/link
mv $m/dir/small $m/dir/renamed
ls -l $m $m/dir
truncate -s 1M $m/data
stat $m/data
rm $m/dir/link
ln $m/dir/renamed $m/dir/hard
ln -s renamed $m/dir/sym
mkfifo $m/dir/fifo
chmod 0600 $m/dir/hard
chown 1:1 $m/dir/hard
touch -d 2020-01-02T03:04:05 $m/dir/hard
# Under a delegation the client locks locally, so this may send no LOCK at all.
flock $m/dir/hard true
rm $m/dir/fifo
mkdir $m/gone && rmdir $m/gone
}
guarded $NFS_DEADLINE_S "write, namespace ops, truncate on the NFS mount" nfs_work
assert_eq LAYOUT_BLOCK_VOLUME "$(nfs_pnfs_type $m)" "pnfs layout type"
nfs_mountstats $m > $OUT/mountstats
umount_kernel_client $m

step "remount and read back"
drop_caches
mount_kernel_client /mnt/nfs
read_back() {
cmp <(head -c 1M /run/data) $m/data
assert_eq hello "$(cat $m/dir/renamed)" "small file"
assert_eq renamed "$(readlink $m/dir/sym)" "symlink"
rm $m/dir/sym
}
guarded $NFS_DEADLINE_S "read back on the NFS mount" read_back
umount_kernel_client $m

step "NFSv4.2 client: allocate, punch, seek, clone, copy"
mkdir -p /mnt/nfs42
guarded $PNFS_MOUNT_DEADLINE_S "mount -t nfs -o vers=4.2" mount -t nfs -o vers=4.2 localhost:/ /mnt/nfs42
f=/mnt/nfs42/v42
nfs42_work() {
fallocate -l 2M $f
fallocate -p -o 0 -l 1M $f
xfs_io -c "seek -d 0" $f
cp --reflink=always $f $f.clone
xfs_io -f -c "copy_range -s 0 -d 0 -l 65536 $f" $f.copy
}
guarded $NFS_DEADLINE_S "NFSv4.2 allocate, punch, seek, clone, copy" nfs42_work
nfs_mountstats /mnt/nfs42 > $OUT/mountstats42
umount_kernel_client /mnt/nfs42

step "stop capture"
# Every umount ends with DESTROY_CLIENTID: wait until dumpcap has written all three replies.
three_destroy_replies() {
	[ "$(tshark -n -r /run/cap/nfs.pcapng -Y 'rpc.msgtyp == 1 && nfs.opcode == 57' 2>/dev/null | wc -l)" -ge 3 ]
}
wait_for 60 three_destroy_replies
pid=$(cat /run/cap/pid)
kill -INT "$pid"
wait_exit 60 "$pid" "dumpcap after SIGINT"
cp /run/cap/nfs.pcapng $OUT/nfs.pcapng
"#;

/// The two directions of one TCP stream, as `tshark -z follow,tcp,raw` prints them.
struct Stream {
    to_server: Vec<u8>,
    to_client: Vec<u8>,
}

fn tshark_out(tool: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(tool).args(args).output().expect("run tshark");
    assert!(
        out.status.success(),
        "tshark {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn hex_bytes(line: &str) -> Vec<u8> {
    let s = line.trim();
    assert_eq!(s.len() % 2, 0, "odd hex line {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn streams(tool: &std::path::Path, pcap: &std::path::Path) -> Vec<Stream> {
    let p = pcap.to_str().unwrap();
    let ids = tshark_out(tool, &["-n", "-r", p, "-T", "fields", "-e", "tcp.stream"]);
    let mut ids: Vec<u32> = ids.lines().filter_map(|l| l.trim().parse().ok()).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.iter()
        .map(|id| {
            let text = tshark_out(
                tool,
                &["-n", "-r", p, "-q", "-z", &format!("follow,tcp,raw,{id}")],
            );
            let mut node0_is_client = true;
            let mut s = Stream {
                to_server: Vec::new(),
                to_client: Vec::new(),
            };
            let mut in_data = false;
            for line in text.lines() {
                if let Some(rest) = line.strip_prefix("Node 0: ") {
                    node0_is_client = !rest.trim().ends_with(":2049");
                    continue;
                }
                if line.starts_with("Node 1: ") {
                    in_data = true;
                    continue;
                }
                if !in_data || line.starts_with("====") || line.trim().is_empty() {
                    continue;
                }
                // Node 1's data is indented with a tab.
                let from_node1 = line.starts_with('\t');
                let bytes = hex_bytes(line);
                if from_node1 == node0_is_client {
                    s.to_client.extend_from_slice(&bytes);
                } else {
                    s.to_server.extend_from_slice(&bytes);
                }
            }
            s
        })
        .collect()
}

fn records(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut reader = RecordReader::new(64 * 1024 * 1024);
    let recs = reader.feed_all(bytes).expect("record marking");
    assert!(reader.is_idle(), "stream ends inside a record");
    recs
}

#[derive(Default)]
struct Tally {
    calls: usize,
    replies: usize,
    callbacks: usize,
    attrs: usize,
    ops: BTreeMap<u32, usize>,
    unanswered: Vec<(u32, u32)>,
}

fn check_attrs(f: &Fattr4, what: &str, tally: &mut Tally) {
    if let Err(e) = Fattr::from_fattr4(f) {
        panic!("{what}: fattr4 {:?} does not decode: {e}", f.attrmask);
    }
    tally.attrs += 1;
}

fn check_args(args: &CompoundArgs, tally: &mut Tally) {
    for op in &args.argarray {
        *tally.ops.entry(op.opnum()).or_default() += 1;
        match op {
            NfsArgOp::Setattr(a) => check_attrs(&a.obj_attributes, "SETATTR", tally),
            NfsArgOp::Create(a) => check_attrs(&a.createattrs, "CREATE", tally),
            NfsArgOp::Open(OpenArgs {
                openhow: OpenFlag::Create(how),
                ..
            }) => match how {
                CreateHow::Unchecked(f) | CreateHow::Guarded(f) => check_attrs(f, "OPEN", tally),
                CreateHow::Exclusive41(c) => check_attrs(&c.attrs, "OPEN", tally),
                CreateHow::Exclusive(_) => {}
            },
            NfsArgOp::Illegal { opnum } => panic!("Linux sent an op we do not know: {opnum}"),
            _ => {}
        }
    }
}

fn check_res(res: &CompoundRes, tally: &mut Tally) {
    for r in &res.resarray {
        match r {
            NfsResOp::Getattr(Ok(ok)) => check_attrs(&ok.obj_attributes, "GETATTR", tally),
            NfsResOp::Readdir(Ok(ok)) => {
                for e in &ok.reply.entries {
                    check_attrs(&e.attrs, "READDIR entry", tally);
                }
            }
            _ => {}
        }
    }
}

#[test]
fn linux_client_and_nfsd_traffic_decodes_and_reencodes_exactly() {
    let Some(tshark) = require_tool("tshark") else {
        return;
    };
    let Some(runner) = require(GuestRunner::new()) else {
        return;
    };
    let outcome = runner
        .run(
            &GuestScript::new(SCRIPT)
                .name("proto-kernel-traffic")
                .timeout(Duration::from_secs(300)),
        )
        .expect("guest run");
    let pcap = outcome.out_file("nfs.pcapng");
    if let Some(keep) = std::env::var_os("PNFS_PROTO_PCAP_DIR") {
        // Keep a copy to look at with `tshark -V -r`.
        std::fs::copy(&pcap, std::path::Path::new(&keep).join("kernel.pcapng")).unwrap();
    }
    let mut tally = Tally::default();
    for s in streams(&tshark, &pcap) {
        // xid -> procedure of the NFS calls on this stream.
        let mut nfs_calls: HashMap<u32, u32> = HashMap::new();
        for rec in records(&s.to_server) {
            let (msg, body) = decode_message(&rec).expect("rpc_msg from the client");
            match &msg.body {
                MsgBody::Call(call) => {
                    assert_eq!((call.prog, call.vers), (NFS_PROGRAM, NFS_V4));
                    assert_eq!(to_bytes(&msg), rec[..rec.len() - body.len()]);
                    nfs_calls.insert(msg.xid, call.proc_num);
                    if call.proc_num == NFSPROC4_COMPOUND {
                        let args: CompoundArgs = from_bytes(body)
                            .unwrap_or_else(|e| panic!("COMPOUND4args xid {:#x}: {e}", msg.xid));
                        assert_eq!(to_bytes(&args), body, "re-encoded args differ");
                        check_args(&args, &mut tally);
                        tally.calls += 1;
                    }
                }
                // The client answering a callback.
                MsgBody::Reply(_) => tally.callbacks += 1,
            }
        }
        let mut answered = std::collections::HashSet::new();
        for rec in records(&s.to_client) {
            let (msg, body) = decode_message(&rec).expect("rpc_msg from the server");
            match &msg.body {
                MsgBody::Reply(reply) => {
                    answered.insert(msg.xid);
                    let proc_num = nfs_calls
                        .get(&msg.xid)
                        .unwrap_or_else(|| panic!("reply to unknown xid {:#x}", msg.xid));
                    assert_eq!(reply, &ReplyBody::success(), "xid {:#x}", msg.xid);
                    if *proc_num == NFSPROC4_COMPOUND {
                        let res: CompoundRes = from_bytes(body)
                            .unwrap_or_else(|e| panic!("COMPOUND4res xid {:#x}: {e}", msg.xid));
                        assert_eq!(to_bytes(&res), body, "re-encoded results differ");
                        check_res(&res, &mut tally);
                        tally.replies += 1;
                    }
                }
                // A callback from the server (CB_NULL / CB_COMPOUND).
                MsgBody::Call(call) => {
                    assert_eq!(call.vers, NFS_CB_VERSION);
                    tally.callbacks += 1;
                }
            }
        }
        tally.unanswered.extend(
            nfs_calls
                .iter()
                .filter(|(xid, _)| !answered.contains(*xid))
                .map(|(xid, p)| (*xid, *p)),
        );
    }
    let names: BTreeMap<u32, usize> = tally.ops.clone();
    println!(
        "decoded {} calls, {} replies, {} typed fattr4, {} callback records; ops {names:?}",
        tally.calls, tally.replies, tally.attrs, tally.callbacks
    );
    assert!(
        tally.calls > 20 && tally.replies == tally.calls,
        "{} calls, {} replies; calls without a reply (xid, proc): {:?}",
        tally.calls,
        tally.replies,
        tally.unanswered
    );
    for op in [
        OP_EXCHANGE_ID,
        OP_CREATE_SESSION,
        OP_SEQUENCE,
        OP_RECLAIM_COMPLETE,
        OP_OPEN,
        OP_GETATTR,
        OP_LAYOUTGET,
        OP_GETDEVICEINFO,
        OP_LAYOUTCOMMIT,
        OP_RENAME,
        OP_REMOVE,
        OP_CREATE,
        OP_READDIR,
        OP_SETATTR,
        OP_LINK,
        OP_READLINK,
        OP_ALLOCATE,
        OP_DEALLOCATE,
        OP_SEEK,
        OP_CLONE,
        OP_COPY,
    ] {
        assert!(
            tally.ops.contains_key(&op),
            "Linux never sent op {op}: {names:?}"
        );
    }
    assert!(tally.attrs > 10);
}
