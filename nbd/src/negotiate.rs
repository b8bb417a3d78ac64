//! Option haggling decisions, with no I/O: one option in, reply bytes and an action out.

use std::sync::Arc;

use bytes::BytesMut;
use tracing::debug;

use crate::codec::consts::*;
use crate::codec::{
    encode_export_name_reply, encode_option_reply, ClientOption, CodecLimits, GoRequest,
    HeaderStyle, InfoReply, MetaContextRequest, OptionReply, RawOption,
};
use crate::export::{BlockSizes, Export, ExportSet};
use crate::session::Session;

/// The id this server gives `base:allocation` in `NBD_OPT_SET_META_CONTEXT` replies.
pub const BASE_ALLOCATION_CONTEXT_ID: u32 = 1;

/// Where the connection stands with TLS.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsState {
    /// The listener has no TLS: STARTTLS is unsupported.
    #[default]
    Unavailable,
    /// TLS is offered, not yet started; `required`: nothing but STARTTLS and ABORT is
    /// answered until it is.
    Offered {
        /// The listener is in "require" mode.
        required: bool,
    },
    /// The connection runs over TLS.
    Active,
}

/// What the handshake has agreed so far.
#[derive(Debug, Default)]
pub(crate) struct NegotiationState {
    /// TLS on this connection.
    pub tls: TlsState,
    /// The client set `NBD_FLAG_C_NO_ZEROES`.
    pub no_zeroes: bool,
    /// `NBD_OPT_STRUCTURED_REPLY` was acknowledged.
    pub structured: bool,
    /// `NBD_OPT_EXTENDED_HEADERS` was acknowledged (implies structured replies and takes
    /// precedence over them).
    pub extended: bool,
    /// Contexts selected by the last `NBD_OPT_SET_META_CONTEXT`, for the canonical export
    /// name they were selected on.
    pub meta: Option<(String, bool)>,
}

impl NegotiationState {
    /// The TLS handshake succeeded: from here on the connection is encrypted, and whatever
    /// was negotiated in plain text is forgotten (an attacker could have injected it; cf.
    /// CVE-2021-3716), so the client negotiates again.
    pub fn tls_started(&mut self) {
        self.tls = TlsState::Active;
        self.structured = false;
        self.extended = false;
        self.meta = None;
    }
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
    /// STARTTLS was acknowledged: run the TLS handshake, then read options over TLS.
    StartTls,
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
    // Extended headers imply structured replies (chunks, never a simple read reply).
    let structured = state.structured || state.extended;
    let flags = export.transmission_flags(&info, structured);
    let base_allocation = matches!(&state.meta, Some((n, true)) if n == export.name());
    Ok(Session {
        export: export.clone(),
        info,
        sizes,
        transmission_flags: flags,
        structured,
        header_style: if state.extended {
            HeaderStyle::Extended
        } else {
            HeaderStyle::Compact
        },
        base_allocation_id: (base_allocation && structured).then_some(BASE_ALLOCATION_CONTEXT_ID),
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
    if state.tls == (TlsState::Offered { required: true })
        && code != OPT_STARTTLS
        && code != OPT_ABORT
    {
        if code == OPT_EXPORT_NAME {
            // No error reply exists for EXPORT_NAME: the protocol says to close.
            return Action::HardClose(
                "NBD_OPT_EXPORT_NAME before NBD_OPT_STARTTLS on a listener that requires TLS"
                    .into(),
            );
        }
        error_reply(
            code,
            REP_ERR_TLS_REQD,
            "this server requires TLS: send NBD_OPT_STARTTLS first",
            out,
        );
        return Action::Continue;
    }
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
        ClientOption::ExportName(_) if state.extended => {
            // The protocol forbids it after extended headers (the reply cannot say which
            // headers follow); no error reply exists for EXPORT_NAME.
            Action::HardClose("NBD_OPT_EXPORT_NAME after NBD_OPT_EXTENDED_HEADERS".into())
        }
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
        ClientOption::StartTls => match state.tls {
            TlsState::Unavailable => {
                error_reply(
                    code,
                    REP_ERR_UNSUP,
                    "TLS is not enabled on this listener",
                    out,
                );
                Action::Continue
            }
            TlsState::Active => {
                error_reply(code, REP_ERR_INVALID, "TLS is already active", out);
                Action::Continue
            }
            TlsState::Offered { .. } => {
                encode_option_reply(code, &OptionReply::Ack, out);
                Action::StartTls
            }
        },
        ClientOption::Info(g) => {
            info_or_go(state, exports, limits, code, &g, out);
            Action::Continue
        }
        ClientOption::Go(g) => match info_or_go(state, exports, limits, code, &g, out) {
            Some(session) => Action::Transmission(Box::new(session)),
            None => Action::Continue,
        },
        ClientOption::StructuredReply if state.extended => {
            error_reply(
                code,
                REP_ERR_EXT_HEADER_REQD,
                "extended headers are already negotiated and take precedence over structured replies",
                out,
            );
            Action::Continue
        }
        ClientOption::StructuredReply => {
            state.structured = true;
            encode_option_reply(code, &OptionReply::Ack, out);
            Action::Continue
        }
        ClientOption::ExtendedHeaders => {
            // Also after STRUCTURED_REPLY (extended headers take precedence), and again
            // (acknowledged again: nothing changes).
            state.extended = true;
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
    if !state.structured && !state.extended {
        error_reply(
            code,
            REP_ERR_INVALID,
            "negotiate NBD_OPT_STRUCTURED_REPLY or NBD_OPT_EXTENDED_HEADERS before NBD_OPT_SET_META_CONTEXT",
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
    use crate::codec::{decode_option_reply, Decode};

    /// Decodes every option reply in `out`: (option, reply type or 1 for ACK-like replies).
    fn replies(out: &BytesMut) -> Vec<(u32, OptionReply)> {
        let limits = CodecLimits::default();
        let mut rest = &out[..];
        let mut v = Vec::new();
        while !rest.is_empty() {
            match decode_option_reply(rest, &limits).expect("reply decodes") {
                Decode::Done {
                    value,
                    consumed_bytes,
                } => {
                    v.push(value);
                    rest = &rest[consumed_bytes..];
                }
                Decode::NeedMore { .. } => panic!("truncated reply"),
            }
        }
        v
    }

    #[cfg(feature = "testing")]
    fn exports() -> ExportSet {
        let mut set = ExportSet::new();
        let disk = std::sync::Arc::new(crate::testing::MemDisk::new(1024 * 1024));
        set.add(Export::new("d", disk)).expect("add");
        set
    }

    /// GO/INFO data asking for export "d" with no information requests.
    const GO_D: [u8; 7] = [0, 0, 0, 1, b'd', 0, 0];

    fn run(
        state: &mut NegotiationState,
        set: &ExportSet,
        code: u32,
        data: &[u8],
    ) -> (Action, Vec<(u32, OptionReply)>) {
        let mut out = BytesMut::new();
        let raw = RawOption {
            code,
            data: data.to_vec(),
        };
        let a = handle_option(state, set, &CodecLimits::default(), &raw, &mut out);
        if matches!(a, Action::Transmission(_)) && code == OPT_EXPORT_NAME {
            // The EXPORT_NAME reply is not an option reply.
            return (a, Vec::new());
        }
        (a, replies(&out))
    }

    fn error_type(r: &[(u32, OptionReply)]) -> Option<u32> {
        match r {
            [(_, OptionReply::Error { reply_type, .. })] => Some(*reply_type),
            _ => None,
        }
    }

    #[cfg(feature = "testing")]
    #[test]
    fn require_refuses_every_option_but_starttls_and_abort_before_tls() {
        let set = exports();
        let required = || NegotiationState {
            tls: TlsState::Offered { required: true },
            ..NegotiationState::default()
        };
        let meta = [0, 0, 0, 1, b'd', 0, 0, 0, 0];
        let refused: [(u32, &[u8]); 8] = [
            (OPT_LIST, &[]),
            (OPT_INFO, &GO_D),
            (OPT_GO, &GO_D),
            (OPT_STRUCTURED_REPLY, &[]),
            (OPT_LIST_META_CONTEXT, &meta),
            (OPT_SET_META_CONTEXT, &meta),
            (0x4242, &[]),
            // Malformed data is not even looked at.
            (OPT_GO, &[1, 2, 3]),
        ];
        for (code, data) in refused {
            let mut state = required();
            let (a, r) = run(&mut state, &set, code, data);
            assert!(matches!(a, Action::Continue), "{code}: {a:?}");
            assert_eq!(error_type(&r), Some(REP_ERR_TLS_REQD), "{code}: {r:?}");
            assert_eq!(r[0].0, code);
            assert!(!state.structured && state.meta.is_none());
        }
        // EXPORT_NAME cannot be refused: the connection closes.
        let (a, r) = run(&mut required(), &set, OPT_EXPORT_NAME, b"d");
        assert!(matches!(a, Action::HardClose(_)), "{a:?}");
        assert!(r.is_empty());
        // ABORT is answered.
        let (a, r) = run(&mut required(), &set, OPT_ABORT, &[]);
        assert!(matches!(a, Action::Close));
        assert!(matches!(r.as_slice(), [(OPT_ABORT, OptionReply::Ack)]));
        // STARTTLS is acknowledged; with data it is invalid.
        let (a, r) = run(&mut required(), &set, OPT_STARTTLS, &[]);
        assert!(matches!(a, Action::StartTls));
        assert!(matches!(r.as_slice(), [(OPT_STARTTLS, OptionReply::Ack)]));
        let (a, r) = run(&mut required(), &set, OPT_STARTTLS, &[0]);
        assert!(matches!(a, Action::Continue));
        assert_eq!(error_type(&r), Some(REP_ERR_INVALID));
    }

    #[cfg(feature = "testing")]
    #[test]
    fn after_tls_everything_is_served_and_plain_text_state_is_forgotten() {
        let set = exports();
        let mut state = NegotiationState {
            tls: TlsState::Offered { required: false },
            ..NegotiationState::default()
        };
        // Selective mode: plain text works.
        let (_, r) = run(&mut state, &set, OPT_STRUCTURED_REPLY, &[]);
        assert!(matches!(r.as_slice(), [(_, OptionReply::Ack)]));
        let (_, r) = run(
            &mut state,
            &set,
            OPT_SET_META_CONTEXT,
            &[0, 0, 0, 1, b'd', 0, 0, 0, 0],
        );
        assert!(matches!(r.last(), Some((_, OptionReply::Ack))), "{r:?}");
        assert!(state.structured && state.meta.is_some());
        let (a, _) = run(&mut state, &set, OPT_STARTTLS, &[]);
        assert!(matches!(a, Action::StartTls));
        state.tls_started();
        assert!(!state.structured && state.meta.is_none());
        // A second STARTTLS is invalid.
        let (a, r) = run(&mut state, &set, OPT_STARTTLS, &[]);
        assert!(matches!(a, Action::Continue));
        assert_eq!(error_type(&r), Some(REP_ERR_INVALID));
        // GO works over TLS.
        let (a, _) = run(&mut state, &set, OPT_GO, &GO_D);
        assert!(matches!(a, Action::Transmission(_)), "{a:?}");
    }

    #[cfg(feature = "testing")]
    #[test]
    fn starttls_is_unsupported_without_tls_and_required_mode_serves_after_it() {
        let set = exports();
        let mut plain = NegotiationState::default();
        let (a, r) = run(&mut plain, &set, OPT_STARTTLS, &[]);
        assert!(matches!(a, Action::Continue));
        assert_eq!(error_type(&r), Some(REP_ERR_UNSUP));
        let mut state = NegotiationState {
            tls: TlsState::Offered { required: true },
            ..NegotiationState::default()
        };
        state.tls_started();
        let (_, r) = run(&mut state, &set, OPT_LIST, &[]);
        assert!(
            matches!(r.last(), Some((OPT_LIST, OptionReply::Ack))),
            "{r:?}"
        );
        let (a, _) = run(&mut state, &set, OPT_EXPORT_NAME, b"d");
        assert!(matches!(a, Action::Transmission(_)), "{a:?}");
    }

    #[cfg(feature = "testing")]
    #[test]
    fn extended_headers_imply_structured_replies_and_rule_out_export_name() {
        let set = exports();
        let meta = [0, 0, 0, 1, b'd', 0, 0, 0, 1, 0, 0, 0, 15]
            .iter()
            .copied()
            .chain(CONTEXT_BASE_ALLOCATION.bytes())
            .collect::<Vec<u8>>();
        // Alone: acknowledged; SET_META_CONTEXT works without STRUCTURED_REPLY; GO gives an
        // extended, structured session with base:allocation and the DF flag.
        let mut state = NegotiationState::default();
        let (a, r) = run(&mut state, &set, OPT_EXTENDED_HEADERS, &[]);
        assert!(matches!(a, Action::Continue));
        assert!(matches!(
            r.as_slice(),
            [(OPT_EXTENDED_HEADERS, OptionReply::Ack)]
        ));
        let (_, r) = run(&mut state, &set, OPT_SET_META_CONTEXT, &meta);
        assert!(matches!(r.last(), Some((_, OptionReply::Ack))), "{r:?}");
        assert!(
            matches!(r.first(), Some((_, OptionReply::MetaContext { .. }))),
            "{r:?}"
        );
        // STRUCTURED_REPLY afterwards: EXT_HEADER_REQD, and the state stays extended.
        let (a, r) = run(&mut state, &set, OPT_STRUCTURED_REPLY, &[]);
        assert!(matches!(a, Action::Continue));
        assert_eq!(error_type(&r), Some(REP_ERR_EXT_HEADER_REQD));
        // Asking again is acknowledged again.
        let (_, r) = run(&mut state, &set, OPT_EXTENDED_HEADERS, &[]);
        assert!(matches!(r.as_slice(), [(_, OptionReply::Ack)]));
        let (a, _) = run(&mut state, &set, OPT_GO, &GO_D);
        let Action::Transmission(session) = a else {
            panic!("{a:?}")
        };
        assert_eq!(session.header_style, HeaderStyle::Extended);
        assert!(session.structured);
        assert_eq!(session.base_allocation_id, Some(BASE_ALLOCATION_CONTEXT_ID));
        assert_ne!(session.transmission_flags & TFLAG_SEND_DF, 0);
        // After STRUCTURED_REPLY it takes precedence.
        let mut state = NegotiationState::default();
        run(&mut state, &set, OPT_STRUCTURED_REPLY, &[]);
        let (_, r) = run(&mut state, &set, OPT_EXTENDED_HEADERS, &[]);
        assert!(matches!(r.as_slice(), [(_, OptionReply::Ack)]));
        let (a, _) = run(&mut state, &set, OPT_GO, &GO_D);
        assert!(
            matches!(&a, Action::Transmission(s) if s.header_style == HeaderStyle::Extended),
            "{a:?}"
        );
        // With data: INVALID, and nothing negotiated.
        let mut state = NegotiationState::default();
        let (_, r) = run(&mut state, &set, OPT_EXTENDED_HEADERS, &[0]);
        assert_eq!(error_type(&r), Some(REP_ERR_INVALID));
        assert!(!state.extended);
        let (a, _) = run(&mut state, &set, OPT_GO, &GO_D);
        assert!(
            matches!(&a, Action::Transmission(s) if s.header_style == HeaderStyle::Compact),
            "{a:?}"
        );
        // EXPORT_NAME after it: the connection closes (no reply can say which headers follow).
        let mut state = NegotiationState::default();
        run(&mut state, &set, OPT_EXTENDED_HEADERS, &[]);
        let (a, r) = run(&mut state, &set, OPT_EXPORT_NAME, b"d");
        assert!(matches!(a, Action::HardClose(_)), "{a:?}");
        assert!(r.is_empty());
    }

    #[cfg(feature = "testing")]
    #[test]
    fn starttls_forgets_extended_headers_and_require_mode_refuses_them_before_tls() {
        let set = exports();
        let mut state = NegotiationState {
            tls: TlsState::Offered { required: true },
            ..NegotiationState::default()
        };
        let (_, r) = run(&mut state, &set, OPT_EXTENDED_HEADERS, &[]);
        assert_eq!(error_type(&r), Some(REP_ERR_TLS_REQD));
        assert!(!state.extended);
        let mut state = NegotiationState {
            tls: TlsState::Offered { required: false },
            ..NegotiationState::default()
        };
        run(&mut state, &set, OPT_EXTENDED_HEADERS, &[]);
        assert!(state.extended);
        let (a, _) = run(&mut state, &set, OPT_STARTTLS, &[]);
        assert!(matches!(a, Action::StartTls));
        state.tls_started();
        assert!(!state.extended && !state.structured);
        // Renegotiated over TLS, or not: each gives its own style.
        let (a, _) = run(&mut state, &set, OPT_GO, &GO_D);
        assert!(
            matches!(&a, Action::Transmission(s) if s.header_style == HeaderStyle::Compact && !s.structured),
            "{a:?}"
        );
    }

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
