//! One entry point that runs every parser of the codec over arbitrary bytes and checks the
//! parsers' contracts; shared by the fuzz target (`fuzz/fuzz_targets/nbd_codec.rs`) and the
//! stable-Rust random-input test, so both exercise the same thing.

use bytes::BytesMut;

use super::consts::OPTION_REPLY_HEADER_BYTES;
use super::*;
use crate::error::NbdResult;

fn check<T>(what: &str, len: usize, r: &NbdResult<Decode<T>>) {
    match r {
        Ok(Decode::Done { consumed_bytes, .. }) => {
            assert!(
                *consumed_bytes <= len,
                "{what}: consumed {consumed_bytes} of {len}"
            );
        }
        Ok(Decode::NeedMore { total_bytes }) => {
            assert!(
                *total_bytes > len,
                "{what}: needs {total_bytes} but already has {len}"
            );
        }
        Err(_) => {}
    }
}

/// Runs every parser over `data` with `limits`. Panics only if a parser breaks its contract
/// (consumes more than it was given, asks for bytes it already has, or a value does not
/// survive an encode/parse round trip) — never on malformed input.
pub fn exercise_all_parsers(data: &[u8], limits: &CodecLimits) {
    let n = data.len();
    check("greeting", n, &decode_greeting(data));
    check("client flags", n, &decode_client_flags(data));
    let opt = decode_option(data, limits);
    check("option", n, &opt);
    if let Ok(Decode::Done { value, .. }) = &opt {
        if let Ok(parsed) = ClientOption::parse(value.code, &value.data, limits) {
            round_trip_option(&parsed, limits);
        }
    }
    // Interpret the data after a 4-byte code directly as option data, for every code.
    if n >= 4 {
        let code = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) % 16;
        if let Ok(parsed) = ClientOption::parse(code, &data[4..], limits) {
            round_trip_option(&parsed, limits);
        }
    }
    let rep = decode_option_reply(data, limits);
    check("option reply", n, &rep);
    if let Ok(Decode::Done { consumed_bytes, .. }) = &rep {
        assert!(*consumed_bytes >= OPTION_REPLY_HEADER_BYTES);
    }
    for no_zeroes in [false, true] {
        let r = decode_export_name_reply(data, no_zeroes);
        check("export name reply", n, &Ok::<_, crate::NbdError>(r));
    }
    for style in [HeaderStyle::Compact, HeaderStyle::Extended] {
        exercise_request(data, style, limits);
    }
    check("simple reply", n, &decode_simple_reply(data));
    exercise_extended_chunk(data, limits);
    let chunk = decode_chunk(data, limits);
    check("chunk", n, &chunk);
    if let Ok(Decode::Done { value, .. }) = &chunk {
        // A parsed chunk re-encodes to something that parses to the same chunk.
        let wire = value.to_bytes();
        let again = decode_chunk(&wire, limits)
            .ok()
            .and_then(Decode::done)
            .map(|(c, _)| c);
        if let ChunkPayload::Error { message, .. } | ChunkPayload::ErrorOffset { message, .. } =
            &value.payload
        {
            // Messages are parsed lossily; only a valid UTF-8 message must be kept exactly.
            if message.contains('\u{fffd}') {
                return;
            }
        }
        assert_eq!(again.as_ref(), Some(value), "chunk round trip");
    }
}

fn exercise_request(data: &[u8], style: HeaderStyle, limits: &CodecLimits) {
    let n = data.len();
    check("request header", n, &decode_request_header(data, style));
    let req = decode_request(data, style, limits);
    check("request", n, &req);
    if let Ok(Decode::Done {
        value,
        consumed_bytes,
    }) = &req
    {
        let header = style.request_header_bytes();
        let payload_len = usize::try_from(value.payload_bytes(style)).expect("payload in limit");
        assert_eq!(*consumed_bytes, header + payload_len);
        let mut out = BytesMut::new();
        let payload = &data[header..*consumed_bytes];
        match style {
            HeaderStyle::Compact => encode_request(value, payload, &mut out),
            HeaderStyle::Extended => encode_extended_request(value, payload, &mut out),
        }
        assert_eq!(&out[..], &data[..*consumed_bytes], "request round trip");
    }
}

/// A parsed extended chunk re-encodes to something that parses to the same chunk.
fn exercise_extended_chunk(data: &[u8], limits: &CodecLimits) {
    let chunk = decode_extended_chunk(data, limits);
    check("extended chunk", data.len(), &chunk);
    let Ok(Decode::Done { value, .. }) = &chunk else {
        return;
    };
    if let ChunkPayload::Error { message, .. } | ChunkPayload::ErrorOffset { message, .. } =
        &value.chunk.payload
    {
        if message.contains('\u{fffd}') {
            return;
        }
    }
    let again = decode_extended_chunk(&value.to_bytes(), limits)
        .ok()
        .and_then(Decode::done)
        .map(|(c, _)| c);
    assert_eq!(again.as_ref(), Some(value), "extended chunk round trip");
}

fn round_trip_option(parsed: &ClientOption, limits: &CodecLimits) {
    let mut out = BytesMut::new();
    parsed.encode(&mut out);
    let Ok(Decode::Done { value, .. }) = decode_option(&out, limits) else {
        // Re-encoding can only grow past the limit through ABORT's ignored data, which is
        // dropped, so a valid option always fits again.
        panic!("option {parsed:?} does not frame again");
    };
    let again = ClientOption::parse(value.code, &value.data, limits);
    assert_eq!(again.as_ref(), Ok(parsed), "option round trip");
}
