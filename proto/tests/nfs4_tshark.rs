//! Our encodings read by an independent decoder: Wireshark's RPC/NFS dissector (tshark).
//!
//! Builds a pcap of CALL and REPLY records (one of every NFSv4 operation, realistic values,
//! plus the hand-checked SEQUENCE+PUTFH+LAYOUTGET compound) on TCP port 2049, then asks
//! tshark to dissect it: no frame may be malformed, every call and reply must be recognised,
//! and the operation numbers it sees must be ours. Needs `tshark`; without it the test is a
//! loud SKIP, or fails when `CI` is set.

#[path = "nfs4_gen.rs"]
mod gen;

use std::process::Command;

use gen::*;
use pnfs_proto::nfs4::*;
use pnfs_proto::rpc::*;
use pnfs_testbed::require_tool;
use pnfs_testbed::util::TempDir;

const NFS_PORT: u16 = 2049;
const CLIENT_PORT: u16 = 51000;
/// LINKTYPE_RAW: packets start with the IPv4 header.
const LINKTYPE_RAW: u32 = 101;

/// A pcap file of IPv4/TCP packets between 127.0.0.1:CLIENT_PORT and 127.0.0.1:2049.
struct Pcap {
    bytes: Vec<u8>,
    client_seq: u32,
    server_seq: u32,
    packets: u32,
}

impl Pcap {
    fn new() -> Pcap {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&0xa1b2_c3d4_u32.to_le_bytes()); // magic
        bytes.extend_from_slice(&2u16.to_le_bytes()); // version 2.4
        bytes.extend_from_slice(&4u16.to_le_bytes());
        bytes.extend_from_slice(&0i32.to_le_bytes()); // thiszone
        bytes.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        bytes.extend_from_slice(&262_144u32.to_le_bytes()); // snaplen
        bytes.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
        Pcap {
            bytes,
            client_seq: 1000,
            server_seq: 500_000,
            packets: 0,
        }
    }

    fn packet(&mut self, from_client: bool, payload: &[u8]) {
        let (sport, dport, seq, ack) = if from_client {
            (CLIENT_PORT, NFS_PORT, self.client_seq, self.server_seq)
        } else {
            (NFS_PORT, CLIENT_PORT, self.server_seq, self.client_seq)
        };
        let total = u16::try_from(20 + 20 + payload.len()).expect("payload fits one packet");
        let mut p = Vec::with_capacity(usize::from(total));
        // IPv4 header, checksum left zero (tshark does not verify it by default).
        p.extend_from_slice(&[0x45, 0]);
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&u16::try_from(self.packets % 65_536).unwrap().to_be_bytes());
        p.extend_from_slice(&[0x40, 0, 64, 6, 0, 0]);
        p.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 1]);
        // TCP header: PSH|ACK, no options.
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ack.to_be_bytes());
        p.extend_from_slice(&[0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        p.extend_from_slice(payload);
        let len = u32::try_from(p.len()).unwrap();
        self.packets += 1;
        for v in [self.packets, 0, len, len] {
            self.bytes.extend_from_slice(&v.to_le_bytes());
        }
        self.bytes.extend_from_slice(&p);
        let advance = u32::try_from(payload.len()).unwrap();
        if from_client {
            self.client_seq = self.client_seq.wrapping_add(advance);
        } else {
            self.server_seq = self.server_seq.wrapping_add(advance);
        }
    }
}

fn call_record(xid: u32, args: &CompoundArgs) -> Vec<u8> {
    let cred = OpaqueAuth::Sys(AuthSys {
        stamp: 7,
        machine_name: "client".into(),
        uid: 1000,
        gid: 1000,
        gids: vec![1000, 27],
    });
    let msg = RpcMsg::call(
        xid,
        CallBody::new(NFS_PROGRAM, NFS_V4, NFSPROC4_COMPOUND, cred),
    );
    encode_record(&msg, Some(args)).unwrap()
}

fn reply_record(xid: u32, res: &CompoundRes) -> Vec<u8> {
    encode_record(&RpcMsg::reply(xid, ReplyBody::success()), Some(res)).unwrap()
}

fn tshark(tool: &std::path::Path, pcap: &std::path::Path, filter: &str, fields: &[&str]) -> String {
    let mut cmd = Command::new(tool);
    cmd.arg("-n")
        .arg("-r")
        .arg(pcap)
        .arg("-Y")
        .arg(filter)
        .args(["-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("run tshark");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn wireshark_dissects_every_op_without_malformed_frames() {
    let Some(tool) = require_tool("tshark") else {
        return;
    };
    let dir = TempDir::new("proto-tshark").unwrap();
    let mut r = Rng::new(seed() ^ 0x75a4);
    r.realistic = true;
    let mut pcap = Pcap::new();
    let mut expected_ops = Vec::new();
    let mut xid = 0x100;
    for k in 0..=ARGOP_KINDS {
        let op = gen_argop(k, &mut r);
        // NFSv4.0-only operations do not belong in a minor-version-1/2 stream. Wireshark 4.0
        // dissects WRITE_SAME's app_data_block4 with an RFC 7862 draft layout (32-bit block
        // fields, a "content index"), not the RFC's (RFC 7863 XDR: offset4, length4 x3,
        // count4, length4, opaque), so it would flag a correct encoding.
        if matches!(
            op.opnum(),
            OP_OPEN_CONFIRM
                | OP_RENEW
                | OP_SETCLIENTID
                | OP_SETCLIENTID_CONFIRM
                | OP_RELEASE_LOCKOWNER
                | OP_WRITE_SAME
        ) {
            continue;
        }
        let minor = if op.opnum() >= OP_ALLOCATE { 2 } else { 1 };
        let res = gen_resop(&op, &mut r);
        expected_ops.push(op.opnum());
        let args = CompoundArgs::new("", vec![op]).with_minorversion(minor);
        let reply = CompoundRes::new("", vec![res]);
        xid += 1;
        pcap.packet(true, &call_record(xid, &args));
        pcap.packet(false, &reply_record(xid, &reply));
    }
    let file = dir.path().join("ops.pcap");
    std::fs::write(&file, &pcap.bytes).unwrap();
    if let Some(keep) = std::env::var_os("PNFS_PROTO_PCAP_DIR") {
        // Keep a copy to look at with `tshark -V -r`.
        std::fs::copy(&file, std::path::Path::new(&keep).join("nfs4_ops.pcap")).unwrap();
    }

    let malformed = tshark(
        &tool,
        &file,
        "_ws.malformed",
        &["frame.number", "nfs.opcode"],
    );
    assert!(
        malformed.trim().is_empty(),
        "malformed frames:\n{malformed}"
    );
    let calls = tshark(&tool, &file, "rpc.msgtyp == 0 && nfs", &["nfs.opcode"]);
    let seen: Vec<u32> = calls
        .lines()
        .map(|l| {
            l.trim()
                .parse()
                .unwrap_or_else(|_| panic!("opcode line {l:?}"))
        })
        .collect();
    assert_eq!(seen, expected_ops, "operations tshark saw in the calls");
    let replies = tshark(&tool, &file, "rpc.msgtyp == 1 && nfs", &["rpc.xid"]);
    assert_eq!(
        replies.lines().count(),
        expected_ops.len(),
        "replies recognised"
    );
}

/// The fields tshark reports for a hand-built pNFS exchange are the values we encoded.
#[test]
fn wireshark_reads_our_pnfs_fields() {
    let Some(tool) = require_tool("tshark") else {
        return;
    };
    let dir = TempDir::new("proto-tshark-pnfs").unwrap();
    let stateid = Stateid {
        seqid: 1,
        other: *b"abcdefghijkl",
    };
    let args = CompoundArgs::new(
        "",
        vec![
            NfsArgOp::Sequence(SequenceArgs {
                sessionid: SessionId([7; 16]),
                sequenceid: 7,
                slotid: 3,
                highest_slotid: 5,
                cachethis: false,
            }),
            NfsArgOp::Putfh(FileHandle(vec![1, 2, 3, 4, 5, 6, 7, 8])),
            NfsArgOp::Layoutget(LayoutgetArgs {
                signal_layout_avail: false,
                layout_type: LayoutType::BlockVolume,
                iomode: LayoutIoMode::ReadWrite,
                offset: 4096,
                length: 1 << 20,
                minlength: 8192,
                stateid,
                maxcount: 4096,
            }),
        ],
    );
    let res = CompoundRes::new(
        "",
        vec![
            NfsResOp::Sequence(Ok(SequenceResOk {
                sessionid: SessionId([7; 16]),
                sequenceid: 7,
                slotid: 3,
                highest_slotid: 5,
                target_highest_slotid: 15,
                status_flags: 0,
            })),
            NfsResOp::Putfh(NfsStat::OK),
            NfsResOp::Layoutget(LayoutgetRes::Ok(LayoutgetResOk {
                return_on_close: true,
                stateid: Stateid {
                    seqid: 2,
                    ..stateid
                },
                layouts: vec![Layout {
                    offset: 4096,
                    length: 1 << 20,
                    iomode: LayoutIoMode::ReadWrite,
                    content: LayoutContent {
                        loc_type: LayoutType::BlockVolume,
                        loc_body: vec![0, 0, 0, 0],
                    },
                }],
            })),
        ],
    );
    let mut pcap = Pcap::new();
    pcap.packet(true, &call_record(0x77, &args));
    pcap.packet(false, &reply_record(0x77, &res));
    let file = dir.path().join("pnfs.pcap");
    std::fs::write(&file, &pcap.bytes).unwrap();

    let fields = [
        "nfs.opcode",
        "nfs.slotid",
        "nfs.high_slotid",
        "nfs.layouttype",
        "nfs.iomode",
        "nfs.offset4",
        "nfs.length4",
        "nfs.minlength4",
        "nfs.stateid.seqid",
    ];
    let call = tshark(&tool, &file, "rpc.msgtyp == 0", &fields);
    assert_eq!(
        call.trim_end(),
        "53,22,50\t3\t5\t3\t2\t4096\t1048576\t8192\t1"
    );
    let reply = tshark(
        &tool,
        &file,
        "rpc.msgtyp == 1",
        &[
            "nfs.opcode",
            "nfs.target_high_slotid",
            "nfs.layouttype",
            "nfs.offset4",
            "nfs.length4",
            "nfs.stateid.seqid",
        ],
    );
    assert_eq!(reply.trim_end(), "53,22,50\t15\t3\t4096\t1048576\t2");
    let malformed = tshark(&tool, &file, "_ws.malformed", &["frame.number"]);
    assert!(malformed.trim().is_empty(), "malformed frames: {malformed}");
}
