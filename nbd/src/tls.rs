//! NBD over TLS (`NBD_OPT_STARTTLS`): the server's X.509 credentials, loaded from a directory
//! laid out like qemu's `tls-creds-x509` directory, and the stream type a connection runs on
//! after the upgrade.
//!
//! ```text
//! DIR/ca-cert.pem       the CA that signed the client certificates (needed with verify_peer)
//! DIR/server-cert.pem   the server's certificate chain, leaf first
//! DIR/server-key.pem    the server's private key (PKCS#8, PKCS#1 or SEC1)
//! ```
//!
//! The crypto provider is rustls' `ring` one: it builds with a C compiler alone (no cmake,
//! no assembler tool chain), which is all the build machines and CI have; `aws-lc-rs`
//! (rustls' default, with post-quantum key exchange) needs cmake here.
//!
//! The protocol rules (`doc/proto.md` of the NetworkBlockDevice project, "TLS support") are
//! decided in `negotiate.rs`: in [`TlsMode::Require`] every option before STARTTLS except
//! `NBD_OPT_ABORT` is refused with `NBD_REP_ERR_TLS_REQD` (and `NBD_OPT_EXPORT_NAME`, which
//! cannot be refused, closes the connection); after the upgrade everything negotiated in
//! plain text is forgotten.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::error::{NbdError, NbdResult};
use crate::server::NbdStream;

/// The CA certificate file in a credentials directory.
pub const CA_CERT_FILE: &str = "ca-cert.pem";
/// The server certificate (chain) file in a credentials directory.
pub const SERVER_CERT_FILE: &str = "server-cert.pem";
/// The server private key file in a credentials directory.
pub const SERVER_KEY_FILE: &str = "server-key.pem";
/// Largest credentials file read (a PEM chain of a few certificates is a few KiB).
pub const TLS_FILE_MAX_BYTES: u64 = 1024 * 1024;
/// Most certificates taken from one PEM file.
pub const TLS_CERTS_PER_FILE_MAX: usize = 64;

/// Whether a listener offers TLS or insists on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// TLS is offered; plain-text clients are served too (the protocol's "selective TLS"
    /// with every export reachable both ways).
    On,
    /// TLS is required: nothing but STARTTLS and ABORT is answered before the upgrade
    /// (the protocol's "forced TLS").
    Require,
}

/// A listener's TLS: the credentials and the mode.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
    mode: TlsMode,
    verify_peer: bool,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("mode", &self.mode)
            .field("verify_peer", &self.verify_peer)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Loads the credentials from `dir` (see the module documentation). With `verify_peer`,
    /// clients must present a certificate signed by `ca-cert.pem`.
    pub fn from_dir(dir: &Path, verify_peer: bool, mode: TlsMode) -> NbdResult<Self> {
        let certs = read_certs(&dir.join(SERVER_CERT_FILE))?;
        let key_path = dir.join(SERVER_KEY_FILE);
        let key = PrivateKeyDer::from_pem_slice(&read_bounded(&key_path)?)
            .map_err(|e| NbdError::Tls(format!("{}: no private key: {e}", key_path.display())))?;
        // rustls 0.23.48 marks the ring provider deprecated because ring has no post-quantum
        // key exchange; the aws-lc-rs provider that has one needs cmake or a large C build
        // that the build machines do not have. Classical X25519/ECDHE is what qemu's and
        // libnbd's GnuTLS negotiate with us today.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| NbdError::Tls(format!("protocol versions: {e}")))?;
        let builder = if verify_peer {
            let ca_path = dir.join(CA_CERT_FILE);
            let mut roots = rustls::RootCertStore::empty();
            for c in read_certs(&ca_path)? {
                roots
                    .add(c)
                    .map_err(|e| NbdError::Tls(format!("{}: {e}", ca_path.display())))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| {
                NbdError::Tls(format!("client verifier from {}: {e}", ca_path.display()))
            })?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let config = builder.with_single_cert(certs, key).map_err(|e| {
            NbdError::Tls(format!(
                "{} and {}: {e}",
                dir.join(SERVER_CERT_FILE).display(),
                key_path.display()
            ))
        })?;
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            mode,
            verify_peer,
        })
    }

    /// The mode.
    pub fn mode(&self) -> TlsMode {
        self.mode
    }

    /// Whether client certificates are verified.
    pub fn verify_peer(&self) -> bool {
        self.verify_peer
    }

    /// Runs the server side of the TLS handshake on `stream`, bounded by `limit_ms`.
    pub(crate) async fn accept<S: NbdStream>(
        &self,
        stream: S,
        limit_ms: u64,
    ) -> NbdResult<TlsStream<S>> {
        let limit = std::time::Duration::from_millis(limit_ms);
        match tokio::time::timeout(limit, self.acceptor.accept(stream)).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(NbdError::Tls(format!("handshake failed: {e}"))),
            Err(_) => Err(NbdError::Tls(format!(
                "handshake not finished within {limit_ms} ms"
            ))),
        }
    }
}

/// Reads a credentials file, refusing one over [`TLS_FILE_MAX_BYTES`].
fn read_bounded(path: &PathBuf) -> NbdResult<Vec<u8>> {
    let f =
        std::fs::File::open(path).map_err(|e| NbdError::Tls(format!("{}: {e}", path.display())))?;
    let mut data = Vec::new();
    f.take(TLS_FILE_MAX_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(|e| NbdError::Tls(format!("{}: {e}", path.display())))?;
    if data.len() as u64 > TLS_FILE_MAX_BYTES {
        return Err(NbdError::Tls(format!(
            "{}: larger than {TLS_FILE_MAX_BYTES} bytes",
            path.display()
        )));
    }
    Ok(data)
}

fn read_certs(path: &PathBuf) -> NbdResult<Vec<CertificateDer<'static>>> {
    let data = read_bounded(path)?;
    let mut certs = Vec::new();
    for c in CertificateDer::pem_slice_iter(&data) {
        let c = c.map_err(|e| NbdError::Tls(format!("{}: {e}", path.display())))?;
        if certs.len() == TLS_CERTS_PER_FILE_MAX {
            return Err(NbdError::Tls(format!(
                "{}: more than {TLS_CERTS_PER_FILE_MAX} certificates",
                path.display()
            )));
        }
        certs.push(c);
    }
    if certs.is_empty() {
        return Err(NbdError::Tls(format!(
            "{}: no PEM certificate in the file",
            path.display()
        )));
    }
    Ok(certs)
}

/// A connection after STARTTLS: the halves share the TLS session through tokio's split.
impl<S: NbdStream> NbdStream for TlsStream<S> {
    type Reader = tokio::io::ReadHalf<TlsStream<S>>;
    type Writer = tokio::io::WriteHalf<TlsStream<S>>;
    fn into_halves(self) -> (Self::Reader, Self::Writer) {
        tokio::io::split(self)
    }
}
