//! Certificate authorities of a test (rcgen), and the server and client certificates they issue, as PEM files
//! in a directory of the test's.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};

/// A certificate authority of the test; its certificate is `<dir>/<name>.pem`.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
    /// The CA certificate's PEM file.
    pub file: PathBuf,
    dir: PathBuf,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").field("file", &self.file).finish_non_exhaustive()
    }
}

/// A certificate and key issued by a [`Ca`], as PEM files and text.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate's PEM file.
    pub cert: PathBuf,
    /// The key's PEM file.
    pub key: PathBuf,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The key, PEM.
    pub key_pem: String,
}

impl Ca {
    /// A new CA named `name`, its certificate written to `<dir>/<name>.pem`.
    pub fn new(name: &str, dir: &Path) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.distinguished_name.push(DnType::CommonName, format!("{name} test CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("a CA key");
        let cert = params.self_signed(&key).expect("the CA certificate");
        let file = dir.join(format!("{name}.pem"));
        std::fs::write(&file, cert.pem()).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
        Ca { cert, key, file, dir: dir.to_owned() }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA certificate.
    pub fn certificate(&self) -> &rcgen::Certificate {
        &self.cert
    }

    fn issue(&self, file: &str, common_name: &str, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Issued {
        let mut params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .expect("certificate parameters");
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("a key");
        let cert = params.signed_by(&key, &self.cert, &self.key).expect("sign the certificate");
        let issued = Issued {
            cert: self.dir.join(format!("{file}.pem")),
            key: self.dir.join(format!("{file}.key")),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        std::fs::write(&issued.cert, &issued.cert_pem).expect("write the certificate");
        std::fs::write(&issued.key, &issued.key_pem).expect("write the key");
        issued
    }

    /// A server certificate for `names` (DNS names or IP addresses), as `<dir>/<file>.pem` and `.key`.
    pub fn server(&self, file: &str, names: &[&str]) -> Issued {
        self.issue(file, names.first().copied().unwrap_or(file), names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate (no names) for `common_name`.
    pub fn client(&self, file: &str, common_name: &str) -> Issued {
        self.issue(file, common_name, &[], ExtendedKeyUsagePurpose::ClientAuth)
    }
}
