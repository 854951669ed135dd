//! A real authority on a real loopback socket, in-process, for the HTTP tests.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::sync::Arc;

use smqtt_authority::{init, AppState, Authority, Config, UnsealWith};
use smqtt_authority_api::{Client, NewDevice};
use smqtt_wire::{DeviceId, SigningKey};

pub struct TestAuthority {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub admin_token: String,
    pub authority: Arc<Authority>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for TestAuthority {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub fn key_file(dir: &std::path::Path) -> PathBuf {
    let path = dir.join("unseal.key");
    if !path.exists() {
        std::fs::write(&path, [0x5a; 32]).expect("key file");
    }
    path
}

/// Initialises an authority in a fresh temporary directory and serves it on 127.0.0.1:0.
pub fn start(tweak: impl FnOnce(&mut Config)) -> TestAuthority {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = key_file(dir.path());
    init(&data, &UnsealWith::KeyFile(key.clone()), &mut rand_core::OsRng, now()).expect("init");
    let mut config = Config::new(data);
    config.unseal.key_file = Some(key);
    config.limits.rate_per_sec = 0;
    tweak(&mut config);
    let authority = Arc::new(Authority::open(config).expect("open"));
    let admin_token = authority.create_admin_token("test", &mut rand_core::OsRng, now()).expect("admin token");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let served = authority.clone();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            addr_tx.send(listener.local_addr().expect("addr")).expect("send addr");
            let _ = smqtt_authority::serve(AppState::new(served), listener, async {
                let _ = rx.await;
            })
            .await;
        });
    });
    let addr = addr_rx.recv().expect("server address");
    TestAuthority {
        dir,
        url: format!("http://{addr}"),
        admin_token,
        authority,
        shutdown: Some(tx),
        thread: Some(thread),
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
}

impl TestAuthority {
    pub fn admin(&self) -> Client {
        Client::new(&self.url).with_admin_token(&self.admin_token)
    }

    pub fn anonymous(&self) -> Client {
        Client::new(&self.url)
    }

    /// Registers and enrolls a device; returns its id and signing key.
    pub fn enrolled_device(&self, id: &str, attributes: &str, publish: &[&str]) -> (DeviceId, SigningKey) {
        let created = self
            .admin()
            .add_device(&NewDevice {
                device_id: id.into(),
                attributes: attributes.into(),
                publish: publish.iter().map(|s| s.to_string()).collect(),
                token_ttl_secs: None,
            })
            .expect("add device");
        let key = SigningKey::generate(&mut rand_core::OsRng);
        self.anonymous().enroll(&created.enrollment_token, &key).expect("enroll");
        (DeviceId::new(id).expect("id"), key)
    }

    /// A raw HTTP request (for malformed input): returns status and body.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
        bearer: Option<&str>,
    ) -> (u16, String) {
        let mut request = ureq::request(method, &format!("{}{}", self.url, path));
        if let Some(ct) = content_type {
            request = request.set("Content-Type", ct);
        }
        if let Some(token) = bearer {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        let result = if body.is_empty() && method == "GET" { request.call() } else { request.send_bytes(body) };
        match result {
            Ok(response) => (response.status(), response.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(status, response)) => (status, response.into_string().unwrap_or_default()),
            Err(e) => panic!("transport error: {e}"),
        }
    }
}
