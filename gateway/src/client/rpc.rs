//! The client's use of ONC RPC (`pnfs_proto::rpc`): CALL messages with AUTH_SYS, and
//! classification of incoming records into replies (for the outstanding-call table) and
//! calls (the NFSv4.1 backchannel). No I/O.

use pnfs_proto::rpc::{
    decode_message, AcceptStat, AuthSys, CallBody, MsgBody, OpaqueAuth, RejectedReply, ReplyBody,
    RpcMsg,
};
use pnfs_proto::xdr::{Encoder, XdrEncode, XdrResult};

/// Encodes a complete CALL message (header, AUTH_SYS cred, AUTH_NONE verifier, then `args`).
pub fn encode_call(
    xid: u32,
    prog: u32,
    vers: u32,
    proc_num: u32,
    cred: &AuthSys,
    args: &[u8],
) -> Vec<u8> {
    let msg = RpcMsg::call(
        xid,
        CallBody::new(prog, vers, proc_num, OpaqueAuth::Sys(cred.clone())),
    );
    let mut enc = Encoder::with_buffer(Vec::with_capacity(args.len() + 128));
    msg.encode(&mut enc);
    let mut buf = enc.into_inner();
    buf.extend_from_slice(args);
    buf
}

/// Encodes an accepted REPLY (verifier AUTH_NONE) with `stat` and, for success, `results`.
pub fn encode_accepted_reply(xid: u32, stat: AcceptStat, results: &[u8]) -> Vec<u8> {
    let msg = RpcMsg::reply(xid, ReplyBody::accepted(stat));
    let mut enc = Encoder::with_buffer(Vec::with_capacity(results.len() + 32));
    msg.encode(&mut enc);
    let mut buf = enc.into_inner();
    buf.extend_from_slice(results);
    buf
}

/// One record read from the connection, classified.
#[derive(Debug)]
pub enum Message {
    /// A REPLY: its xid and either the offset of the results in the record, or why not.
    Reply {
        /// Transaction id.
        xid: u32,
        /// Offset of the procedure results in the record, or a description of the RPC error.
        body: Result<usize, String>,
    },
    /// A CALL from the server (the backchannel).
    Call {
        /// Transaction id.
        xid: u32,
        /// Program.
        prog: u32,
        /// Version.
        vers: u32,
        /// Procedure.
        proc_num: u32,
        /// Offset of the arguments in the record.
        args_offset: usize,
    },
}

/// Parses the RPC header of one record.
pub fn parse_message(record: &[u8]) -> XdrResult<Message> {
    let (msg, rest) = decode_message(record)?;
    let offset = record.len() - rest.len();
    Ok(match msg.body {
        MsgBody::Call(c) => Message::Call {
            xid: msg.xid,
            prog: c.prog,
            vers: c.vers,
            proc_num: c.proc_num,
            args_offset: offset,
        },
        MsgBody::Reply(ReplyBody::Accepted(a)) => Message::Reply {
            xid: msg.xid,
            body: match a.stat {
                AcceptStat::Success => Ok(offset),
                other => Err(format!("RPC call accepted but failed: {other:?}")),
            },
        },
        MsgBody::Reply(ReplyBody::Denied(r)) => Message::Reply {
            xid: msg.xid,
            body: Err(match r {
                RejectedReply::RpcMismatch { low, high } => {
                    format!("RPC version mismatch (server supports {low}..={high})")
                }
                RejectedReply::AuthError(s) => format!("RPC auth error {}", s.0),
            }),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_and_reply_round_trip_through_the_parser() {
        let cred = AuthSys {
            stamp: 1,
            machine_name: "gw".into(),
            uid: 0,
            gid: 0,
            gids: vec![],
        };
        let msg = encode_call(7, 100_003, 4, 1, &cred, &[0, 0, 0, 9]);
        match parse_message(&msg).unwrap() {
            Message::Call {
                xid,
                prog,
                vers,
                proc_num,
                args_offset,
            } => {
                assert_eq!((xid, prog, vers, proc_num), (7, 100_003, 4, 1));
                assert_eq!(&msg[args_offset..], &[0, 0, 0, 9]);
            }
            other => panic!("{other:?}"),
        }
        let reply = encode_accepted_reply(7, AcceptStat::Success, &[1, 2, 3, 4]);
        match parse_message(&reply).unwrap() {
            Message::Reply {
                xid: 7,
                body: Ok(off),
            } => assert_eq!(&reply[off..], &[1, 2, 3, 4]),
            other => panic!("{other:?}"),
        }
        let reply = encode_accepted_reply(8, AcceptStat::ProcUnavail, &[]);
        assert!(matches!(
            parse_message(&reply).unwrap(),
            Message::Reply {
                xid: 8,
                body: Err(_)
            }
        ));
        assert!(parse_message(&[0, 0, 0, 1, 0, 0, 0, 9]).is_err());
    }
}
