//! TLS material for tests: a CA and a leaf, server and client configs.

use super::*;

/// TLS material made for one test run: a CA and a leaf for `localhost` and 127.0.0.1.
pub struct TestTls {
    /// The CA certificate clients must trust.
    pub ca: rustls::pki_types::CertificateDer<'static>,
    /// The CA certificate in PEM form.
    pub ca_pem: String,
    /// A server configuration offering h2 and http/1.1.
    pub server: Arc<rustls::ServerConfig>,
    ca_cert: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
    leaf: rustls::pki_types::CertificateDer<'static>,
    leaf_key: Vec<u8>,
    leaf_pem: (String, String),
}

fn server_config(
    verifier: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
    leaf: rustls::pki_types::CertificateDer<'static>,
    key: &[u8],
) -> Arc<rustls::ServerConfig> {
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.to_vec().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut server = builder
        .with_single_cert(vec![leaf], key)
        .expect("server cert");
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(server)
}

impl TestTls {
    /// Makes a fresh CA and server certificate.
    pub fn new() -> TestTls {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "wasi-http-host test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf_params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("leaf params");
        let leaf = leaf_params
            .signed_by(&leaf_key, &ca_cert, &ca_key)
            .expect("leaf cert");
        let leaf_pem = (leaf.pem(), leaf_key.serialize_pem());
        let leaf_key = leaf_key.serialize_der();
        let leaf = leaf.der().clone();
        TestTls {
            ca: ca_cert.der().clone(),
            ca_pem: ca_cert.pem(),
            server: server_config(None, leaf.clone(), &leaf_key),
            ca_cert,
            ca_key,
            leaf,
            leaf_key,
            leaf_pem,
        }
    }

    /// The server certificate for `localhost`/127.0.0.1: (certificate PEM, key PEM).
    pub fn server_cert_pem(&self) -> (String, String) {
        self.leaf_pem.clone()
    }

    /// A root store trusting only the test CA.
    pub fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).expect("add CA");
        roots
    }

    /// A server configuration that requires a client certificate issued by the CA.
    pub fn server_requiring_client_cert(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(self.roots()),
            provider,
        )
        .build()
        .expect("client verifier");
        server_config(Some(verifier), self.leaf.clone(), &self.leaf_key)
    }

    /// A client certificate issued by the CA: (certificate PEM, key PEM).
    pub fn client_cert_pem(&self) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("client key");
        let params =
            rcgen::CertificateParams::new(vec!["client.test".to_string()]).expect("client params");
        let cert = params
            .signed_by(&key, &self.ca_cert, &self.ca_key)
            .expect("client cert");
        (cert.pem(), key.serialize_pem())
    }
}

impl Default for TestTls {
    fn default() -> Self {
        TestTls::new()
    }
}

/// `GET /` over HTTPS (HTTP/1.1) to `addr`, as `localhost`, trusting `roots`
/// only: `Err` when the handshake or the request fails.
pub async fn tls_get(
    addr: SocketAddr,
    roots: &rustls::RootCertStore,
) -> Result<StatusCode, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let request = get("/", &[("host", "localhost")]);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    Ok(response.status())
}
