//! Option haggling decisions, with no I/O: one option in, reply bytes and an action out.

use std::sync::Arc;

use bytes::BytesMut;
use tracing::debug;

use crate::codec::consts::*;
use crate::codec::{
    encode_export_name_reply, encode_option_reply, ClientOption, CodecLimits, GoRequest, InfoReply,
    MetaContextRequest, OptionReply, RawOption,
};
use crate::export::{BlockSizes, Export, ExportSet};
use crate::session::Session;

/// The id this server gives `base:allocation` in `NBD_OPT_SET_META_CONTEXT` replies.
pub const BASE_ALLOCATION_CONTEXT_ID: u32 = 1;

/// What the handshake has agreed so far.
#[derive(Debug, Default)]
pub(crate) struct NegotiationState {
    /// The client set `NBD_FLAG_C_NO_ZEROES`.
    pub no_zeroes: bool,
    /// `NBD_OPT_STRUCTURED_REPLY` was acknowledged.
    pub structured: bool,
    /// Contexts selected by the last `NBD_OPT_SET_META_CONTEXT`, for the canonical export
    /// name they were selected on.
    pub meta: Option<(String, bool)>,
}

/// What the connection does after sending the replies.
#[derive(Debug)]
pub(crate) enum Action {
    /// Read the next option.
    Continue,
    /// The client aborted: close after the replies.
    Close,
    /// Hard close (no reply possible), with the reason for the log.
    HardClose(String),
    /// Enter transmission on this session.
    Transmission(Box<Session>),
}

fn error_reply(option: u32, reply_type: u32, message: impl Into<String>, out: &mut BytesMut) {
    let message = message.into();
    debug!(
        option = option_name(option),
        reply_type, "option refused: {message}"
    );
    encode_option_reply(
        option,
        &OptionReply::Error {
            reply_type,
            message,
        },
        out,
    );
}

fn session_for(
    export: &Arc<Export>,
    state: &NegotiationState,
    max_payload_bytes: u32,
) -> Result<Session, String> {
    let info = export.effective_info();
    let sizes = BlockSizes::from_disk(&info, max_payload_bytes).map_err(|e| e.to_string())?;
    let flags = export.transmission_flags(&info, state.structured);
    let base_allocation = matches!(&state.meta, Some((n, true)) if n == export.name());
    Ok(Session {
        export: export.clone(),
        info,
        sizes,
        transmission_flags: flags,
        structured: state.structured,
        base_allocation_id: (base_allocation && state.structured)
            .then_some(BASE_ALLOCATION_CONTEXT_ID),
        max_block_status_descriptors: crate::server::DEFAULT_MAX_BLOCK_STATUS_DESCRIPTORS,
    })
}

/// Handles one framed option: writes the replies to `out`, says what to do next.
pub(crate) fn handle_option(
    state: &mut NegotiationState,
    exports: &ExportSet,
    limits: &CodecLimits,
    raw: &RawOption,
    out: &mut BytesMut,
) -> Action {
    let code = raw.code;
    let option = match ClientOption::parse(code, &raw.data, limits) {
        Ok(o) => o,
        Err(e) if code == OPT_EXPORT_NAME => {
            return Action::HardClose(format!("NBD_OPT_EXPORT_NAME: {}", e.message()));
        }
        Err(e) => {
            error_reply(code, e.reply_type(), e.message(), out);
            return Action::Continue;
        }
    };
    debug!(option = option_name(code), "option");
    match option {
        ClientOption::ExportName(name) => {
            let Some(export) = exports.lookup(&name) else {
                return Action::HardClose(format!(
                    "NBD_OPT_EXPORT_NAME for unknown export {name:?}"
                ));
            };
            match session_for(export, state, limits.max_write_payload_bytes) {
                Ok(session) => {
                    encode_export_name_reply(
                        session.info.size_bytes,
                        session.transmission_flags,
                        state.no_zeroes,
                        out,
                    );
                    Action::Transmission(Box::new(session))
                }
                Err(e) => Action::HardClose(format!("export {name:?}: {e}")),
            }
        }
        ClientOption::Abort => {
            encode_option_reply(code, &OptionReply::Ack, out);
            Action::Close
        }
        ClientOption::List => {
            for e in exports.iter() {
                encode_option_reply(
                    code,
                    &OptionReply::Server {
                        name: e.name().to_owned(),
                        description: e.description().to_owned(),
                    },
                    out,
                );
            }
            encode_option_reply(code, &OptionReply::Ack, out);
            Action::Continue
        }
        ClientOption::StartTls => {
            error_reply(
                code,
                REP_ERR_UNSUP,
                "TLS is not supported by this server",
                out,
            );
            Action::Continue
        }
        ClientOption::Info(g) => {
            info_or_go(state, exports, limits, code, &g, out);
            Action::Continue
        }
        ClientOption::Go(g) => match info_or_go(state, exports, limits, code, &g, out) {
            Some(session) => Action::Transmission(Box::new(session)),
            None => Action::Continue,
        },
        ClientOption::StructuredReply => {
            state.structured = true;
            encode_option_reply(code, &OptionReply::Ack, out);
            Action::Continue
        }
        ClientOption::ListMetaContext(m) => {
            list_meta(exports, code, &m, out);
            Action::Continue
        }
        ClientOption::SetMetaContext(m) => {
            set_meta(state, exports, code, &m, out);
            Action::Continue
        }
        ClientOption::Unsupported(c) => {
            error_reply(
                c,
                REP_ERR_UNSUP,
                format!("option {c} ({}) is not supported", option_name(c)),
                out,
            );
            Action::Continue
        }
    }
}

fn info_or_go(
    state: &NegotiationState,
    exports: &ExportSet,
    limits: &CodecLimits,
    code: u32,
    g: &GoRequest,
    out: &mut BytesMut,
) -> Option<Session> {
    let Some(export) = exports.lookup(&g.name) else {
        let msg = if g.name.is_empty() {
            "no default export is configured; ask for an export by name".to_owned()
        } else {
            format!("no export named {:?}", g.name)
        };
        error_reply(code, REP_ERR_UNKNOWN, msg, out);
        return None;
    };
    let session = match session_for(export, state, limits.max_write_payload_bytes) {
        Ok(s) => s,
        Err(e) => {
            error_reply(code, REP_ERR_UNKNOWN, e, out);
            return None;
        }
    };
    encode_option_reply(
        code,
        &OptionReply::Info(InfoReply::Export {
            size_bytes: session.info.size_bytes,
            transmission_flags: session.transmission_flags,
        }),
        out,
    );
    if g.info_requests.contains(&INFO_NAME) {
        encode_option_reply(
            code,
            &OptionReply::Info(InfoReply::Name(export.name().to_owned())),
            out,
        );
    }
    if g.info_requests.contains(&INFO_DESCRIPTION) && !export.description().is_empty() {
        encode_option_reply(
            code,
            &OptionReply::Info(InfoReply::Description(export.description().to_owned())),
            out,
        );
    }
    // Sent whether asked or not: the constraints are not the protocol defaults.
    encode_option_reply(
        code,
        &OptionReply::Info(InfoReply::BlockSize {
            minimum_bytes: session.sizes.minimum_bytes,
            preferred_bytes: session.sizes.preferred_bytes,
            maximum_bytes: session.sizes.maximum_bytes,
        }),
        out,
    );
    encode_option_reply(code, &OptionReply::Ack, out);
    (code == OPT_GO).then_some(session)
}

/// Which of this server's contexts a query selects: `Ok(true)` for `base:allocation`,
/// `Ok(false)` for none, `Err` for a query without a namespace.
fn query_selects_base_allocation(query: &str, listing: bool) -> Result<bool, String> {
    let Some((namespace, leaf)) = query.split_once(':') else {
        return Err(format!("query {query:?} has no namespace"));
    };
    if namespace != "base" {
        // Unknown namespaces are ignored, as the protocol requires.
        return Ok(false);
    }
    Ok(leaf == "allocation" || (listing && leaf.is_empty()))
}

fn list_meta(exports: &ExportSet, code: u32, m: &MetaContextRequest, out: &mut BytesMut) {
    if exports.lookup(&m.export_name).is_none() {
        error_reply(
            code,
            REP_ERR_UNKNOWN,
            format!("no export named {:?}", m.export_name),
            out,
        );
        return;
    }
    let mut base = m.queries.is_empty();
    for q in &m.queries {
        match query_selects_base_allocation(q, true) {
            Ok(s) => base |= s,
            Err(e) => {
                error_reply(code, REP_ERR_INVALID, e, out);
                return;
            }
        }
    }
    if base {
        encode_option_reply(
            code,
            &OptionReply::MetaContext {
                id: 0,
                name: CONTEXT_BASE_ALLOCATION.to_owned(),
            },
            out,
        );
    }
    encode_option_reply(code, &OptionReply::Ack, out);
}

fn set_meta(
    state: &mut NegotiationState,
    exports: &ExportSet,
    code: u32,
    m: &MetaContextRequest,
    out: &mut BytesMut,
) {
    // The previous selection is replaced even if this option fails.
    state.meta = None;
    if !state.structured {
        error_reply(
            code,
            REP_ERR_INVALID,
            "negotiate NBD_OPT_STRUCTURED_REPLY before NBD_OPT_SET_META_CONTEXT",
            out,
        );
        return;
    }
    let Some(export) = exports.lookup(&m.export_name) else {
        error_reply(
            code,
            REP_ERR_UNKNOWN,
            format!("no export named {:?}", m.export_name),
            out,
        );
        return;
    };
    let mut base = false;
    for q in &m.queries {
        match query_selects_base_allocation(q, false) {
            Ok(s) => base |= s,
            Err(e) => {
                error_reply(code, REP_ERR_INVALID, e, out);
                return;
            }
        }
    }
    if base {
        encode_option_reply(
            code,
            &OptionReply::MetaContext {
                id: BASE_ALLOCATION_CONTEXT_ID,
                name: CONTEXT_BASE_ALLOCATION.to_owned(),
            },
            out,
        );
    }
    state.meta = Some((export.name().to_owned(), base));
    encode_option_reply(code, &OptionReply::Ack, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        assert_eq!(
            query_selects_base_allocation("base:allocation", false),
            Ok(true)
        );
        assert_eq!(query_selects_base_allocation("base:", false), Ok(false));
        assert_eq!(query_selects_base_allocation("base:", true), Ok(true));
        assert_eq!(query_selects_base_allocation("base:other", true), Ok(false));
        assert_eq!(
            query_selects_base_allocation("qemu:dirty-bitmap:a", true),
            Ok(false)
        );
        assert!(query_selects_base_allocation("nonamespace", true).is_err());
    }
}
