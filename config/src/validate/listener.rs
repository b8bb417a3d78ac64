//! `[[nbd.listener]]`: address, TLS and the export allow-list of one NBD listener.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;

use toml::Spanned;

use super::{Checker, Res};
use crate::model::{check_tls_dir, NbdAddress, NbdListener, NbdTls, NbdTlsMode, TLS_SERVER_FILES};
use crate::raw::{RawNbd, RawNbdListener};
use crate::{check_absolute_path, NBD_EXPORT_NAME_MAX_BYTES, NBD_LISTENERS_MAX};

/// Most names in one listener's `exports`.
pub const NBD_LISTENER_EXPORTS_MAX: usize = 1024;

impl Checker<'_> {
    pub(super) fn tcp_address(&self, a: &Spanned<String>) -> Res<SocketAddr> {
        let addr: SocketAddr = a.get_ref().parse().map_err(|_| {
            self.err(
                a.span(),
                format!(
                    "{:?} is not an IP address and port (e.g. \"127.0.0.1:10809\" or \"[::1]:10809\")",
                    a.get_ref()
                ),
            )
        })?;
        if addr.port() == 0 {
            return Err(self.err(
                a.span(),
                "NBD listen port 0 is not allowed: clients could not find it".into(),
            ));
        }
        Ok(addr)
    }

    /// The `[[nbd.listener]]` tables; `taken` holds the plain listeners' addresses, so none
    /// is bound twice.
    pub(super) fn nbd_listeners(
        &self,
        n: &RawNbd,
        tcp: &[SocketAddr],
        unix: &[PathBuf],
    ) -> Res<Vec<NbdListener>> {
        self.count_limit(&n.listener, "[[nbd.listener]]", NBD_LISTENERS_MAX)?;
        let mut out: Vec<NbdListener> = Vec::with_capacity(n.listener.len());
        for l in &n.listener {
            let raw = l.get_ref();
            let (address, address_span) = match (&raw.tcp, &raw.unix) {
                (Some(a), None) => (NbdAddress::Tcp(self.tcp_address(a)?), a.span()),
                (None, Some(u)) => (
                    NbdAddress::Unix(self.unix_socket_path(u, "NBD unix socket")?),
                    u.span(),
                ),
                _ => return Err(self.err(
                    l.span(),
                    "a [[nbd.listener]] has exactly one of tcp = \"IP:PORT\" or unix = \"PATH\""
                        .into(),
                )),
            };
            let duplicate = match &address {
                NbdAddress::Tcp(a) => tcp.contains(a),
                NbdAddress::Unix(p) => unix.contains(p),
            } || out.iter().any(|o| o.address == address);
            if duplicate {
                return Err(self.err(
                    address_span,
                    "this address is already an NBD listener".into(),
                ));
            }
            let tls = self.listener_tls(raw, &address)?;
            let exports = match &raw.exports {
                None => None,
                Some(list) => Some(self.export_list(list)?),
            };
            out.push(NbdListener {
                address,
                tls,
                exports,
            });
        }
        Ok(out)
    }

    fn listener_tls(&self, raw: &RawNbdListener, address: &NbdAddress) -> Res<Option<NbdTls>> {
        let mode = match &raw.tls {
            None => None,
            Some(t) => match t.get_ref().as_str() {
                "off" => None,
                "on" => Some((NbdTlsMode::On, t.span())),
                "require" => Some((NbdTlsMode::Require, t.span())),
                other => {
                    return Err(self.err(
                        t.span(),
                        format!("tls = {other:?}: expected \"off\", \"on\" or \"require\""),
                    ))
                }
            },
        };
        let verify_peer = raw
            .tls_verify_peer
            .as_ref()
            .map(|v| (*v.get_ref(), v.span()));
        let Some((mode, mode_span)) = mode else {
            if let Some(d) = &raw.tls_dir {
                return Err(self.err(d.span(), "tls_dir is set but tls is off".into()));
            }
            if let Some((true, span)) = verify_peer {
                return Err(self.err(span, "tls_verify_peer is set but tls is off".into()));
            }
            return Ok(None);
        };
        if let NbdAddress::Unix(p) = address {
            return Err(self.err(
                mode_span,
                format!(
                    "tls = \"{mode}\" on the Unix socket {}: TLS is offered on TCP listeners only \
                     (the socket file's permissions guard a Unix socket)",
                    p.display()
                ),
            ));
        }
        let Some(dir) = &raw.tls_dir else {
            return Err(self.err(
                mode_span,
                format!(
                    "tls = \"{mode}\" needs tls_dir, the directory with {} and {}",
                    TLS_SERVER_FILES[0], TLS_SERVER_FILES[1]
                ),
            ));
        };
        check_absolute_path(dir.get_ref())
            .map_err(|why| self.err(dir.span(), format!("tls_dir {:?}: {why}", dir.get_ref())))?;
        let verify_peer = verify_peer.is_some_and(|(v, _)| v);
        let path = PathBuf::from(dir.get_ref());
        check_tls_dir(&path, verify_peer).map_err(|why| self.err(dir.span(), why))?;
        Ok(Some(NbdTls {
            mode,
            dir: path,
            verify_peer,
        }))
    }

    fn export_list(&self, list: &Spanned<Vec<Spanned<String>>>) -> Res<Vec<String>> {
        if list.get_ref().is_empty() {
            return Err(self.err(
                list.span(),
                "exports is empty: the listener would serve nothing (leave exports out to \
                 serve every export)"
                    .into(),
            ));
        }
        self.count_limit(list.get_ref(), "exports", NBD_LISTENER_EXPORTS_MAX)?;
        let mut names: Vec<String> = Vec::new();
        for e in list.get_ref() {
            let v = e.get_ref();
            if v.is_empty() || v.len() > NBD_EXPORT_NAME_MAX_BYTES {
                return Err(self.err(
                    e.span(),
                    format!("export name must be 1 to {NBD_EXPORT_NAME_MAX_BYTES} bytes"),
                ));
            }
            if names.contains(v) {
                return Err(self.err(e.span(), format!("export {v:?} listed twice")));
            }
            names.push(v.clone());
        }
        Ok(names)
    }

    /// Every name in a listener's `exports` must be a device's NBD export.
    pub(super) fn check_listener_exports(
        &self,
        n: Option<&RawNbd>,
        exports: &HashMap<String, Range<usize>>,
    ) -> Res<()> {
        let Some(n) = n else { return Ok(()) };
        for l in &n.listener {
            for e in l.get_ref().exports.iter().flat_map(|x| x.get_ref()) {
                if !exports.contains_key(e.get_ref()) {
                    return Err(self.err(
                        e.span(),
                        format!(
                            "export {:?} is no device's NBD export (a device's export name \
                             defaults to its name)",
                            e.get_ref()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}
