//! TLS settings of the default client: trust roots, extra CAs, client certificates.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Which certificate authorities the client trusts before [`TlsOptions::extra_roots`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TrustRoots {
    /// Mozilla's roots as compiled into the binary (`webpki-roots`).
    #[default]
    Webpki,
    /// The operating system's certificate store.
    Native,
    /// None: only [`TlsOptions::extra_roots`].
    Empty,
}

/// A client certificate chain and its key, for mutual TLS.
#[derive(Debug)]
pub struct ClientAuth {
    /// The certificate chain, leaf first.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// The private key of the leaf.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for ClientAuth {
    fn clone(&self) -> Self {
        ClientAuth {
            cert_chain: self.cert_chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

/// TLS settings for outgoing `https` requests; [`TlsOptions::build`] makes the
/// rustls configuration (ring provider, TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct TlsOptions {
    /// The base set of trusted authorities.
    pub roots: TrustRoots,
    /// More trusted authorities (e.g. a private CA).
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// A client certificate to present when a server asks for one.
    pub client_auth: Option<ClientAuth>,
    /// Accept any server certificate without verifying it. Only for local testing:
    /// it lets anyone on the path read and change the traffic.
    pub danger_accept_invalid_certs: bool,
}

/// Why TLS settings could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or held no usable PEM item.
    Pem(PathBuf, String),
    /// The OS certificate store could not be loaded.
    NativeRoots(String),
    /// rustls refused the configuration.
    Rustls(rustls::Error),
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsError::Pem(path, why) => write!(f, "{}: {why}", path.display()),
            TlsError::NativeRoots(why) => write!(f, "loading the OS certificate store: {why}"),
            TlsError::Rustls(e) => write!(f, "TLS configuration: {e}"),
        }
    }
}

impl std::error::Error for TlsError {}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        TlsError::Rustls(e)
    }
}

/// A certificate chain and its private key from PEM files.
fn load_identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let cert_chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| TlsError::Pem(cert.to_owned(), e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(cert.to_owned(), e.to_string()))?;
    if cert_chain.is_empty() {
        return Err(TlsError::Pem(
            cert.to_owned(),
            "no certificates in file".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| TlsError::Pem(key.to_owned(), e.to_string()))?;
    Ok((cert_chain, key))
}

/// A server TLS configuration from a PEM certificate chain and key, offering HTTP/2
/// and HTTP/1.1 by ALPN (what `wasi-http-server` serves HTTPS with).
pub fn server_tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let (chain, key) = load_identity(cert, key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A server certificate that can be replaced while the server runs (renewed
/// files read again): new handshakes get the new one, established connections
/// keep theirs.
#[derive(Clone)]
pub struct ServerCertificate {
    current: Arc<std::sync::RwLock<Arc<rustls::sign::CertifiedKey>>>,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

impl std::fmt::Debug for ServerCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCertificate")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ServerCertificate {
    /// Reads the PEM chain and key.
    pub fn load(cert: &Path, key: &Path) -> Result<ServerCertificate, TlsError> {
        let certified = certified_key(cert, key)?;
        Ok(ServerCertificate {
            current: Arc::new(std::sync::RwLock::new(certified)),
            cert: cert.to_owned(),
            key: key.to_owned(),
        })
    }

    /// A server TLS configuration serving this certificate (and its
    /// replacements), offering HTTP/2 and HTTP/1.1 by ALPN.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(self.clone()));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Reads the files again; on an error the certificate in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let staged = self.stage()?;
        self.install(staged);
        Ok(())
    }

    /// Reads the files again without using them yet: a reload that can still
    /// fail elsewhere installs them only once all of it has loaded.
    pub fn stage(&self) -> Result<StagedCertificate, TlsError> {
        certified_key(&self.cert, &self.key).map(StagedCertificate)
    }

    /// Serves `staged` to new TLS connections from now on.
    pub fn install(&self, staged: StagedCertificate) {
        if let Ok(mut current) = self.current.write() {
            *current = staged.0;
        }
    }
}

/// A certificate and key read by [`ServerCertificate::stage`], not in use yet.
pub struct StagedCertificate(Arc<rustls::sign::CertifiedKey>);

impl std::fmt::Debug for StagedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedCertificate").finish_non_exhaustive()
    }
}

impl rustls::server::ResolvesServerCert for ServerCertificate {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}

/// The chain and key of PEM files, the key checked against the chain.
fn certified_key(cert: &Path, key: &Path) -> Result<Arc<rustls::sign::CertifiedKey>, TlsError> {
    let (chain, key) = load_identity(cert, key)?;
    let certified = rustls::sign::CertifiedKey::from_der(chain, key, &provider())?;
    Ok(Arc::new(certified))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsOptions {
    /// Adds every certificate in a PEM file to the trusted authorities.
    pub fn add_ca_pem_file(&mut self, path: &Path) -> Result<(), TlsError> {
        let pem_err = |why: String| TlsError::Pem(path.to_owned(), why);
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| pem_err(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_err(e.to_string()))?;
        if certs.is_empty() {
            return Err(pem_err("no certificates in file".into()));
        }
        self.extra_roots.extend(certs);
        Ok(())
    }

    /// Sets the client certificate from PEM files (chain, then key).
    pub fn set_client_auth_pem_files(&mut self, cert: &Path, key: &Path) -> Result<(), TlsError> {
        let (cert_chain, key) = load_identity(cert, key)?;
        self.client_auth = Some(ClientAuth { cert_chain, key });
        Ok(())
    }

    /// The rustls configuration for these options.
    pub fn build(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        match self.roots {
            TrustRoots::Webpki => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            TrustRoots::Native => {
                let loaded = rustls_native_certs::load_native_certs();
                if loaded.certs.is_empty() {
                    let why = loaded
                        .errors
                        .first()
                        .map_or_else(|| "no certificates found".to_owned(), |e| e.to_string());
                    return Err(TlsError::NativeRoots(why));
                }
                // Unparsable entries in the OS store are skipped, as browsers do.
                let _ = roots.add_parsable_certificates(loaded.certs);
            }
            TrustRoots::Empty => {}
        }
        for cert in &self.extra_roots {
            roots.add(cert.clone())?;
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let mut config = match &self.client_auth {
            Some(auth) => {
                builder.with_client_auth_cert(auth.cert_chain.clone(), auth.key.clone_key())?
            }
            None => builder.with_no_client_auth(),
        };
        if self.danger_accept_invalid_certs {
            config
                .dangerous()
                .set_certificate_verifier(Arc::new(AcceptAnyServerCert(provider())));
        }
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Skips certificate checks but still checks handshake signatures, so the peer must
/// hold the key of the certificate it shows.
#[derive(Debug)]
struct AcceptAnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Maps an I/O error of a connection that may be TLS: a rustls error inside it
/// becomes the TLS error codes, anything else as for plain connections.
pub(crate) fn from_io_error(err: &std::io::Error) -> wasi_http_core::ErrorCode {
    match err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => from_tls_error(tls),
        None => wasi_http_core::from_io_error(err),
    }
}

/// Maps a rustls error to the TLS error codes.
pub(crate) fn from_tls_error(err: &rustls::Error) -> wasi_http_core::ErrorCode {
    use wasi_http_core::{ErrorCode, TlsAlertReceivedPayload};
    match err {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            ErrorCode::TlsCertificateError
        }
        rustls::Error::AlertReceived(alert) => {
            ErrorCode::TlsAlertReceived(TlsAlertReceivedPayload {
                alert_id: Some(u8::from(*alert)),
                alert_message: Some(format!("{alert:?}")),
            })
        }
        _ => ErrorCode::TlsProtocolError,
    }
}
