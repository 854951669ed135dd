//! The running parts of the demo: the authority (in-process, SQLite, sealed secrets, HTTP on loopback), the
//! enrolled devices, and the embedded broker with the SMQTT gate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use smqtt_authority::{init, AppState, Authority, Config, UnsealWith};
use smqtt_authority_api::{Client, NewDevice};
use smqtt_client::{DeviceStore, Identity};

use crate::DemoError;

/// A device of the scenario: its id, attributes and publish rights.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DeviceSpec {
    pub(crate) id: &'static str,
    pub(crate) attributes: &'static str,
    pub(crate) publish: &'static [&'static str],
}

/// The authority, reachable over HTTP, and an administrator's client for it.
pub(crate) struct AuthorityHandle {
    pub(crate) url: String,
    pub(crate) admin: Client,
    pub(crate) admin_token: String,
    pub(crate) data_dir: PathBuf,
}

impl core::fmt::Debug for AuthorityHandle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AuthorityHandle").field("url", &self.url).finish_non_exhaustive()
    }
}

fn setup(what: &str) -> impl Fn(String) -> DemoError + '_ {
    move |e| DemoError::Setup(format!("{what}: {e}"))
}

/// Initialises an authority in `dir/authority` (secrets sealed under a key file, as `smqtt-authority init
/// --key-file` does), opens it and serves its API on a free loopback port from the current runtime.
pub(crate) async fn start_authority(dir: &Path) -> Result<AuthorityHandle, DemoError> {
    let data_dir = dir.join("authority");
    let key_file = dir.join("unseal.key");
    let mut unseal_key = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut unseal_key);
    write_private(&key_file, &unseal_key)?;
    init(
        &data_dir,
        &UnsealWith::KeyFile(key_file.clone()),
        &mut rand_core::OsRng,
        smqtt_client::UnixTime::now().as_secs(),
    )
    .map_err(|e| setup("authority init")(e.to_string()))?;
    let mut config = Config::new(data_dir.clone());
    config.unseal.key_file = Some(key_file);
    let authority = Arc::new(Authority::open(config).map_err(|e| setup("authority open")(e.to_string()))?);
    let admin_token = authority
        .create_admin_token("demo", &mut rand_core::OsRng, smqtt_client::UnixTime::now().as_secs())
        .map_err(|e| setup("admin token")(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| setup("bind")(e.to_string()))?;
    let addr = listener.local_addr().map_err(|e| setup("bind")(e.to_string()))?;
    tokio::spawn(smqtt_authority::serve(AppState::new(authority), listener, std::future::pending()));
    let url = format!("http://{addr}");
    Ok(AuthorityHandle { admin: Client::new(&url).with_admin_token(&admin_token), url, admin_token, data_dir })
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), DemoError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| setup("write key file")(e.to_string()))?;
    file.write_all(bytes).map_err(|e| setup("write key file")(e.to_string()))
}

/// Registers `spec` at the authority and enrolls it into its own store under `dir/stores/<id>`, as an
/// administrator (`smqtt-authority device add`) and the device (`smqtt enroll`) would.
pub(crate) async fn enroll(
    authority: &AuthorityHandle,
    dir: &Path,
    spec: DeviceSpec,
) -> Result<(DeviceStore, Identity), DemoError> {
    let admin = authority.admin.clone();
    let url = authority.url.clone();
    let store_dir = dir.join("stores").join(spec.id);
    tokio::task::spawn_blocking(move || {
        let created = admin
            .add_device(&NewDevice {
                device_id: spec.id.into(),
                attributes: spec.attributes.into(),
                publish: spec.publish.iter().map(|s| (*s).to_owned()).collect(),
                token_ttl_secs: None,
            })
            .map_err(|e| setup("add device")(e.to_string()))?;
        let identity = DeviceStore::enroll(&store_dir, &url, &created.enrollment_token)
            .map_err(|e| setup("enroll")(e.to_string()))?;
        Ok((DeviceStore::at(&store_dir), identity))
    })
    .await
    .map_err(|e| setup("enroll task")(e.to_string()))?
}

/// The broker's configuration for the scenario, as a `broker.toml` an operator would write.
pub(crate) struct BrokerPlan<'a> {
    pub(crate) dir: &'a Path,
    pub(crate) authority_pub: &'a Path,
    pub(crate) broker_store: &'a Path,
    pub(crate) authority_url: &'a str,
    pub(crate) epoch_file: &'a Path,
    pub(crate) legacy_username: &'a str,
    pub(crate) legacy_password: &'a str,
    pub(crate) legacy_topic: &'a str,
    pub(crate) legacy_policy: &'a str,
}

/// The running broker: where MQTT clients connect.
pub(crate) struct BrokerHandle {
    pub(crate) mqtt: SocketAddr,
    pub(crate) config_path: PathBuf,
    pub(crate) running: smqtt_broker::RunningBroker,
}

impl core::fmt::Debug for BrokerHandle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BrokerHandle").field("mqtt", &self.mqtt).finish_non_exhaustive()
    }
}

fn hash_password(password: &str) -> Result<String, DemoError> {
    use argon2::password_hash::{PasswordHasher as _, SaltString};
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| setup("password hash")(e.to_string()))
}

/// Writes `broker.toml` and starts the embedded broker (rumqttd + SMQTT gate) on a free loopback port.
pub(crate) fn start_broker(plan: &BrokerPlan<'_>) -> Result<BrokerHandle, DemoError> {
    let text = format!(
        r#"# Written by smqtt-demo: the embedded broker with SMQTT enforcement.
[v4]
listen = "127.0.0.1:0"   # a free port

[gate.authority]
verifying_key = "{vk}"
# The broker follows the authority's signed epoch statements (never backwards) and keeps the newest here.
url = "{url}"
epoch_poll_secs = 1
epoch_file = "{epoch}"

[gate.topics]
# Only envelopes signed by the connected publisher itself are accepted here.
protected = ["plant/#", "legacy/#"]

[gate.anonymous]
# Clients without credentials may only watch (they see ciphertext); they may never publish.
allow = true
subscribe = ["plant/#", "legacy/#"]

[gate.sealing]
# The broker's own device identity, enrolled at the authority with publish rights on legacy/#.
store = "{store}"
topics = [{{ filter = "{legacy_topic}", policy = "{legacy_policy}" }}]

[[gate.legacy]]
username = "{legacy_user}"
password_hash = "{hash}"
publish = ["{legacy_topic}"]
"#,
        vk = plan.authority_pub.display(),
        epoch = plan.epoch_file.display(),
        url = plan.authority_url,
        store = plan.broker_store.display(),
        legacy_topic = plan.legacy_topic,
        legacy_policy = plan.legacy_policy,
        legacy_user = plan.legacy_username,
        hash = hash_password(plan.legacy_password)?,
    );
    let config_path = plan.dir.join("broker.toml");
    std::fs::write(&config_path, &text).map_err(|e| setup("write broker.toml")(e.to_string()))?;
    let config =
        smqtt_broker::BrokerConfig::from_toml_str(&text, plan.dir).map_err(|e| setup("broker.toml")(e.to_string()))?;
    let running = smqtt_broker::start(config).map_err(|e| setup("start broker")(e.to_string()))?;
    let mqtt = running.v4.ok_or_else(|| DemoError::Setup("the broker has no MQTT 3.1.1 listener".into()))?;
    Ok(BrokerHandle { mqtt, config_path, running })
}
