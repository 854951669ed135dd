//! A real authority in-process: `smqtt_authority::init` in a fresh temporary directory (secrets sealed with a
//! key file), no rate limit, an admin token, served on `127.0.0.1:0` (HTTP, or HTTPS with a certificate of the
//! test's) by a thread of its own; and devices registered with it and enrolled into device stores beside it,
//! as `smqtt enroll` does.
//!
//! The server thread owns its tokio runtime, so a [`TestAuthority`] may be created and dropped anywhere,
//! async code included; dropping it stops the server.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use smqtt_authority::{init, AppState, Authority, Config, TlsConfig, UnsealWith};
use smqtt_authority_api::{Client, DeviceCreated, NewDevice};
use smqtt_client::{DeviceStore, Identity};

use crate::now;

/// The unseal key every test authority is initialised with.
const UNSEAL_KEY: [u8; 32] = [3; 32];

/// A running authority, its directory (data in `authority/`, device stores in `store-<id>/`) and an admin
/// client.
pub struct TestAuthority {
    /// The directory of this authority and its devices' stores.
    pub dir: tempfile::TempDir,
    /// `http://127.0.0.1:<port>` (or `https://localhost:<port>` when served with TLS).
    pub authority_url: String,
    /// An admin client of the authority (HTTP only).
    pub admin: Client,
    /// The admin token `admin` carries.
    pub admin_token: String,
    /// The authority itself, for calls without HTTP.
    pub authority: Arc<Authority>,
    _server: Server,
}

impl std::fmt::Debug for TestAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestAuthority")
            .field("dir", &self.dir.path())
            .field("authority_url", &self.authority_url)
            .finish_non_exhaustive()
    }
}

/// A change to the authority's configuration, given the authority's directory.
type Adjustment = Box<dyn FnOnce(&Path, &mut Config)>;

/// How a [`TestAuthority`] is set up; [`TestAuthority::builder`].
pub struct AuthorityBuilder {
    workers: usize,
    tls: Option<TlsConfig>,
    adjust: Vec<Adjustment>,
}

impl std::fmt::Debug for AuthorityBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorityBuilder")
            .field("workers", &self.workers)
            .field("tls", &self.tls.is_some())
            .field("adjustments", &self.adjust.len())
            .finish()
    }
}

/// A device registered with the authority and enrolled into its own store.
#[derive(Debug)]
pub struct Enrolled {
    /// The device id.
    pub id: String,
    /// Its store directory.
    pub dir: PathBuf,
    /// The identity the enrollment returned.
    pub identity: Identity,
}

impl Enrolled {
    /// The device's store.
    pub fn store(&self) -> DeviceStore {
        DeviceStore::at(&self.dir)
    }
}

impl AuthorityBuilder {
    /// Worker threads of the server's runtime (default 2).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// Changes the configuration before the authority opens (given the authority's directory).
    pub fn configure(mut self, adjust: impl FnOnce(&Path, &mut Config) + 'static) -> Self {
        self.adjust.push(Box::new(adjust));
        self
    }

    /// `[epochs] statement_file`: the authority keeps the signed statement of its current epoch in
    /// [`TestAuthority::statement_file`] (written when it starts serving and after every epoch change).
    pub fn statement_file(self) -> Self {
        self.configure(|dir, config| config.epochs.statement_file = Some(dir.join(STATEMENT_FILE)))
    }

    /// Serves HTTPS with this certificate (for `localhost`) and key instead of HTTP; the URL is then
    /// `https://localhost:<port>`, and [`TestAuthority::admin`] cannot reach it (it does not trust the test's CA).
    pub fn tls(mut self, cert: &Path, key: &Path) -> Self {
        self.tls = Some(TlsConfig { cert: cert.to_owned(), key: key.to_owned() });
        self
    }

    /// Initialises, opens and serves the authority.
    pub fn start(self) -> TestAuthority {
        let dir = tempfile::tempdir().expect("a temporary directory for the authority");
        let data = dir.path().join("authority");
        let key = dir.path().join("unseal.key");
        std::fs::write(&key, UNSEAL_KEY).expect("write the unseal key file");
        init(&data, &UnsealWith::KeyFile(key.clone()), &mut rand_core::OsRng, now())
            .unwrap_or_else(|e| panic!("initialise the authority: {e}"));
        let mut config = Config::new(data);
        config.unseal.key_file = Some(key);
        config.limits.rate_per_sec = 0;
        for adjust in self.adjust {
            adjust(dir.path(), &mut config);
        }
        let authority = Arc::new(Authority::open(config).unwrap_or_else(|e| panic!("open the authority: {e}")));
        let admin_token = authority
            .create_admin_token("test", &mut rand_core::OsRng, now())
            .unwrap_or_else(|e| panic!("create an admin token: {e}"));
        let (server, addr) = Server::start(AppState::new(authority.clone()), self.workers, self.tls.clone());
        let authority_url = match self.tls {
            Some(_) => format!("https://localhost:{}", addr.port()),
            None => format!("http://{addr}"),
        };
        TestAuthority {
            dir,
            admin: Client::new(&authority_url).with_admin_token(&admin_token),
            authority_url,
            admin_token,
            authority,
            _server: server,
        }
    }
}

/// The authority's statement file, relative to its directory.
const STATEMENT_FILE: &str = "epoch.statement";

impl TestAuthority {
    /// The defaults: HTTP, two workers, the configuration as `init` wrote it (no rate limit).
    pub fn builder() -> AuthorityBuilder {
        AuthorityBuilder { workers: 2, tls: None, adjust: Vec::new() }
    }

    /// An authority with the defaults.
    pub fn new() -> TestAuthority {
        TestAuthority::builder().start()
    }

    /// An authority that keeps its epoch statement in [`statement_file`](Self::statement_file).
    pub fn with_statement_file() -> TestAuthority {
        TestAuthority::builder().statement_file().start()
    }

    /// An authority whose configuration `adjust` changes first (given the authority's directory).
    pub fn with_config(adjust: impl FnOnce(&Path, &mut Config) + 'static) -> TestAuthority {
        TestAuthority::builder().configure(adjust).start()
    }

    /// The authority's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("authority")
    }

    /// The authority's `authority.pub` (base64, as the authority writes it and the gate reads it).
    pub fn authority_pub(&self) -> PathBuf {
        self.data_dir().join("authority.pub")
    }

    /// Where the authority keeps its epoch statement when built with
    /// [`statement_file`](AuthorityBuilder::statement_file).
    pub fn statement_file(&self) -> PathBuf {
        self.dir.path().join(STATEMENT_FILE)
    }

    /// The store directory of device `id`.
    pub fn store_dir(&self, id: &str) -> PathBuf {
        self.dir.path().join(format!("store-{id}"))
    }

    /// Registers `id` with `attributes` and publish rights (blocking HTTP: call off the async workers).
    pub fn register(&self, id: &str, attributes: &str, publish: &[&str]) -> DeviceCreated {
        self.admin
            .add_device(&NewDevice {
                device_id: id.into(),
                attributes: attributes.into(),
                publish: publish.iter().map(|s| (*s).to_owned()).collect(),
                token_ttl_secs: None,
            })
            .unwrap_or_else(|e| panic!("add device {id}: {e}"))
    }

    /// Registers `id` and enrolls it into its own store, [`store_dir`](Self::store_dir) (blocking HTTP: call off
    /// the async workers).
    pub fn device(&self, id: &str, attributes: &str, publish: &[&str]) -> Enrolled {
        self.enroll_into(self.store_dir(id), id, attributes, publish)
    }

    /// [`device`](Self::device) with the store in `<dir>/store-<id>`, outside the authority's directory (a store
    /// that outlives the authority).
    pub fn device_in(&self, dir: &Path, id: &str, attributes: &str, publish: &[&str]) -> Enrolled {
        self.enroll_into(dir.join(format!("store-{id}")), id, attributes, publish)
    }

    fn enroll_into(&self, dir: PathBuf, id: &str, attributes: &str, publish: &[&str]) -> Enrolled {
        let created = self.register(id, attributes, publish);
        let identity = DeviceStore::enroll(&dir, &self.authority_url, &created.enrollment_token)
            .unwrap_or_else(|e| panic!("enroll {id}: {e}"));
        Enrolled { id: id.to_owned(), dir, identity }
    }

    /// The device's identity again, from its store (an `Identity` is consumed by `SmqttClient::connect`).
    pub fn identity(&self, id: &str) -> Identity {
        DeviceStore::at(&self.store_dir(id)).load().unwrap_or_else(|e| panic!("load the identity of {id}: {e}"))
    }
}

impl Default for TestAuthority {
    fn default() -> Self {
        TestAuthority::new()
    }
}

/// The server thread and the way to stop it.
struct Server {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(state: AppState, workers: usize, tls: Option<TlsConfig>) -> (Server, std::net::SocketAddr) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the authority's listener");
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let addr = listener.local_addr().expect("the authority's address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("test-authority".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(workers)
                    .enable_all()
                    .build()
                    .expect("the authority's runtime");
                runtime.block_on(async move {
                    let stopped = async {
                        let _ = stopped.await;
                    };
                    let served = async {
                        let result = match &tls {
                            Some(tls) => smqtt_authority::serve_tls(state, listener, tls, std::future::pending()).await,
                            None => match tokio::net::TcpListener::from_std(listener) {
                                Ok(listener) => smqtt_authority::serve(state, listener, std::future::pending()).await,
                                Err(e) => panic!("the authority's listener: {e}"),
                            },
                        };
                        if let Err(e) = result {
                            eprintln!("the test authority stopped: {e}");
                        }
                    };
                    // Stopping drops the server (and, with the runtime, its connections) at once, as dropping a
                    // runtime that serves it does.
                    tokio::select! {
                        () = stopped => {}
                        () = served => {}
                    }
                });
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .expect("spawn the authority's thread");
        (Server { stop: Some(stop), thread: Some(thread) }, addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
